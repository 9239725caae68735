package model

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// indexerConfig is tinyConfig with a lightning indexer.
func indexerConfig() Config {
	c := tinyConfig()
	c.IndexHeads, c.IndexDim, c.IndexTopK = 3, 4, 4
	return c
}

// The warm-up's gradient is the indexer's alone and matches central
// differences of IndexerLoss, for sequences shorter and longer than a
// block of attention rows.
func TestIndexerGradientsMatchFiniteDifferences(t *testing.T) {
	for _, T := range []int{6, attnBlock + 9} {
		c := indexerConfig()
		c.MaxSeq = 128
		m, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(3, 9))
		m.Params.Init(rng, 0.5)
		B := 2
		tokens, _ := randomBatch(rng, c, B, T)
		a := m.NewActivations(B, T)
		if _, err := m.Forward(a, tokens, nil); err != nil {
			t.Fatal(err)
		}
		loss := func() float64 {
			l, err := m.IndexerLoss(a, nil, 1)
			if err != nil {
				t.Fatal(err)
			}
			return float64(l)
		}
		if l := loss(); !(l > 0) {
			t.Fatalf("T=%d: KL divergence %g, want positive for a random indexer", T, l)
		}
		g := NewParams(c)
		if _, err := m.IndexerLoss(a, g, 1); err != nil {
			t.Fatal(err)
		}
		// Smaller steps than the model's own check: a ReLU's kink within
		// a step bends the differences, and a weight of the key moves
		// every position's scores.
		const h = 2e-3
		for ti, tn := range m.Params.Tensors() {
			for i, v := range g.Tensors()[ti].Data {
				if !tn.Indexer() && v != 0 {
					t.Fatalf("T=%d: %s[%d] has gradient %g: the warm-up trains the indexer alone", T, tn.Name, i, v)
				}
			}
		}
		compareSampled(t, m, g, loss, rng, 8, h, 3e-5, Tensor.Indexer)
	}
}

// Following the warm-up's gradient teaches the indexer the attention's
// distribution: 50 steps of descent on one batch halve the divergence.
func TestIndexerLossFallsAlongItsGradient(t *testing.T) {
	c := indexerConfig()
	m, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 1))
	m.Params.Init(rng, 0.5)
	tokens, _ := randomBatch(rng, c, 2, 8)
	a := m.NewActivations(2, 8)
	if _, err := m.Forward(a, tokens, nil); err != nil {
		t.Fatal(err)
	}
	first, err := m.IndexerLoss(a, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	last := first
	for range 50 {
		g := NewParams(c)
		if last, err = m.IndexerLoss(a, g, 1); err != nil {
			t.Fatal(err)
		}
		for i, v := range g.Data() {
			m.Params.Data()[i] -= 0.5 * v
		}
	}
	if !(last < first/2) {
		t.Errorf("KL %g after 50 steps of descent, from %g", last, first)
	}
}

func TestIndexerConfigValidate(t *testing.T) {
	for name, edit := range map[string]func(*Config){
		"heads without a size": func(c *Config) { c.IndexDim = 0 },
		"no top-k":             func(c *Config) { c.IndexTopK = 0 },
		"odd size":             func(c *Config) { c.IndexDim = 3 },
		"negative":             func(c *Config) { c.IndexHeads, c.IndexDim, c.IndexTopK = -1, -4, -2 },
	} {
		c := indexerConfig()
		edit(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	m, err := New(tinyConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.IndexerLoss(m.NewActivations(1, 2), nil, 1); err == nil {
		t.Error("IndexerLoss on a model without an indexer")
	}
}

// A model with an indexer names its shape in config.json as
// DeepSeek-V3.2's does (TestSaveLoadRoundTrip loads it back); a model
// without one names none of it.
func TestIndexerConfigNames(t *testing.T) {
	for _, c := range []Config{indexerConfig(), tinyConfig()} {
		m, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := m.Save(dir); err != nil {
			t.Fatal(err)
		}
		cfg, err := os.ReadFile(filepath.Join(dir, ConfigFile))
		if err != nil {
			t.Fatal(err)
		}
		for _, field := range []string{`"index_n_heads": 3`, `"index_head_dim": 4`, `"index_topk": 4`} {
			if got := strings.Contains(string(cfg), field); got != c.HasIndexer() {
				t.Errorf("indexer %v: config.json has %s: %v\n%s", c.HasIndexer(), field, got, cfg)
			}
		}
	}
}
