package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/braid-dev/braid/tensor"
)

// TopK keeps the k highest scores, ties at the k-th going to the later
// positions, NaN never: checked against sorting, on short rows and on
// rows long enough for the sampled threshold, with many ties, with
// scores whose sample misleads (the sampled positions the highest, or
// the lowest), one TopK reused throughout as the engine reuses it.
func TestTopKSelectsTheTopK(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	var top TopK
	for trial := range 1500 {
		n, k := 1+rng.IntN(200), 1+rng.IntN(64)
		if trial%3 == 0 {
			n, k = 1024+rng.IntN(8000), 1+rng.IntN(600)
		}
		scores := make([]float32, n)
		shape := rng.IntN(5)
		for i := range scores {
			switch shape {
			case 0:
				scores[i] = float32(rng.IntN(12)) // ties
			case 1, 2:
				scores[i] = float32(rng.NormFloat64())
			case 3: // periodic: every 16th, or every 8th, high
				scores[i] = float32(rng.NormFloat64())
				if i%(8<<rng.IntN(2)) == 8 {
					scores[i] += 100
				}
			case 4: // rising, then flat: the sample's tail says little
				scores[i] = float32(min(i, n/2))
			}
			if rng.IntN(300) == 0 {
				scores[i] = float32(math.NaN())
			}
		}
		got := top.Select(scores, k)
		// Positions in order of preference: higher scores, then later.
		var order []int
		for i, v := range scores {
			if !math.IsNaN(float64(v)) {
				order = append(order, i)
			}
		}
		slices.SortFunc(order, func(a, b int) int {
			if scores[a] != scores[b] {
				if scores[a] > scores[b] {
					return -1
				}
				return 1
			}
			return b - a
		})
		var want []int32
		for _, p := range order[:min(k, len(order))] {
			want = append(want, int32(p))
		}
		if n <= k { // every position, even a NaN's
			want = want[:0]
			for p := range n {
				want = append(want, int32(p))
			}
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d, shape %d, n=%d k=%d: selected %v, want %v", trial, shape, n, k, got, want)
		}
	}
}

// sparseModel is a model with an indexer and random weights, sparse.
func sparseModel(t *testing.T, topK, maxSeq int) *Model {
	t.Helper()
	c := indexerConfig()
	c.IndexTopK, c.MaxSeq = topK, maxSeq
	m, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Init(rand.New(rand.NewPCG(4, 4)), 0.4)
	m.Sparse = true
	return m
}

// With a top-k of at least the sequence's length every position is
// selected, and the sparse model is the dense one to the bit: loss,
// gradients and the indexer's loss; in bfloat16 on AMX tiles too, where
// the CPU has them.
func TestSparseWithTopKAtLengthIsDense(t *testing.T) {
	for _, tc := range []struct {
		T    int
		bf16 bool // attention on tiles: heads of 32
	}{{7, false}, {attnBlock + 5, false}, {40, true}} {
		T, bf16 := tc.T, tc.bf16
		if bf16 && !tensor.TilesAvailable() {
			t.Log("no AMX tiles here: the sparse mask on tiles is not tested")
			continue
		}
		m := sparseModel(t, T, 128)
		if bf16 {
			c := m.Config
			c.Dim, c.HeadDim = 64, 32
			var err error
			if m, err = New(c); err != nil {
				t.Fatal(err)
			}
			m.Sparse = true
			m.Params.Init(rand.New(rand.NewPCG(4, 4)), 0.2)
			m.BF16 = true
			if !m.attentionOnTiles() {
				t.Fatal("the bfloat16 model's attention is not on tiles")
			}
		}
		rng := rand.New(rand.NewPCG(8, 8))
		tokens, targets := randomBatch(rng, m.Config, 2, T)
		run := func(sparse bool) (float32, float32, []float32) {
			m.Sparse = sparse
			a := m.NewActivations(2, T)
			loss, err := m.Forward(a, tokens, targets)
			if err != nil {
				t.Fatal(err)
			}
			g := NewParams(m.Config)
			if err := m.Backward(a, g); err != nil {
				t.Fatal(err)
			}
			il, err := m.IndexerLoss(a, g, 1)
			if err != nil {
				t.Fatal(err)
			}
			return loss, il, g.Data()
		}
		dl, dil, dg := run(false)
		sl, sil, sg := run(true)
		if dl != sl || dil != sil || !slices.Equal(dg, sg) {
			t.Errorf("T=%d, top-k %d: sparse loss %g, indexer loss %g; dense %g, %g; gradients equal: %v", T, T, sl, sil, dl, dil, slices.Equal(dg, sg))
		}
	}
}

// With a top-k of 1 each row attends to one position, the one its indexer
// scores highest, so each head's output is that position's value.
func TestSparseAttendsToTheSelectedPositions(t *testing.T) {
	m := sparseModel(t, 1, 16)
	c := m.Config
	T := 9
	rng := rand.New(rand.NewPCG(2, 5))
	tokens, _ := randomBatch(rng, c, 1, T)
	a := m.NewActivations(1, T)
	if _, err := m.Forward(a, tokens, nil); err != nil {
		t.Fatal(err)
	}
	la := &a.layers[0]
	sel := m.selectionOf(a, la, 0)
	hd, qd, kd, group := c.HeadDim, c.qDim(), c.kvDim(), c.Heads/c.KVHeads
	for r := range T {
		var chosen []int
		for p := range r + 1 {
			if sel.bits[r*sel.words+p/64]&(1<<(p%64)) != 0 {
				chosen = append(chosen, p)
			}
		}
		if len(chosen) != 1 {
			t.Fatalf("row %d attends to %v, want one position", r, chosen)
		}
		s := chosen[0]
		for h := range c.Heads {
			out := la.attOut[r*qd+h*hd : r*qd+(h+1)*hd]
			v := la.v[s*kd+h/group*hd : s*kd+(h/group+1)*hd]
			for d := range hd {
				if math.Abs(float64(out[d]-v[d])) > 1e-6 {
					t.Fatalf("row %d head %d: output %v, the value of position %d is %v", r, h, out, s, v)
				}
			}
		}
	}
}

// The sparse model's gradient matches central differences of its loss,
// the selection held where the small steps leave it.
func TestSparseGradientsMatchFiniteDifferences(t *testing.T) {
	m := sparseModel(t, 3, 16)
	checkLossGradients(t, m, rand.New(rand.NewPCG(6, 1)), 2, 8, 4, 2e-3)
}

func TestSparseNeedsAnIndexer(t *testing.T) {
	m, err := New(tinyConfig())
	if err != nil {
		t.Fatal(err)
	}
	m.Sparse = true
	if _, err := m.Forward(m.NewActivations(1, 3), []int{1, 2, 3}, nil); err == nil {
		t.Error("a sparse model without an indexer ran")
	}
}

// kthLargest is the k-th of the values sorted in descending order, on
// values of both signs, zeros of both, ties and extremes.
func TestKthLargest(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, math.MaxFloat32, -math.MaxFloat32, float32(math.Inf(1)), float32(math.Inf(-1)), 1e-40, -1e-40}
	for range 2000 {
		n := 1 + rng.IntN(300)
		x := make([]float32, n)
		for i := range x {
			switch rng.IntN(4) {
			case 0:
				x[i] = special[rng.IntN(len(special))]
			case 1:
				x[i] = float32(rng.IntN(5)) // ties
			default:
				x[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(9)-4)))
			}
		}
		sorted := slices.Clone(x)
		slices.SortFunc(sorted, func(a, b float32) int {
			switch {
			case a > b:
				return -1
			case a < b:
				return 1
			}
			return 0
		})
		k := 1 + rng.IntN(n)
		if got, want := kthLargest(slices.Clone(x), k), sorted[k-1]; got != want {
			t.Fatalf("k=%d of %v: %v, want %v", k, x, got, want)
		}
	}
}

// BenchmarkTopK selects 256 of 4,096 indexer-like scores (ReLU sums: many
// small, a few large), the shipped sparse model's choice at its context.
func BenchmarkTopK(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	scores := make([]float32, 4096)
	for i := range scores {
		scores[i] = float32(max(0, rng.NormFloat64()) + max(0, rng.NormFloat64()))
	}
	var top TopK
	for b.Loop() {
		top.Select(scores, 256)
	}
}
