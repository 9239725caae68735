package gguf

import (
	"encoding/binary"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	parser "github.com/gpustack/gguf-parser-go"

	"github.com/braid-dev/braid/internal/half"
	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/models"
	braidtensor "github.com/braid-dev/braid/tensor"
)

// embeddedModel copies the embedded model's directory to src inside a
// temporary directory dir, and loads it; it skips a build without one.
func embeddedModel(t *testing.T) (dir, src string, m *model.Model) {
	t.Helper()
	if !models.Has(models.Countdown) {
		t.Skip("this build embeds no model")
	}
	dir = t.TempDir()
	src = filepath.Join(dir, "model")
	sub, err := fs.Sub(models.FS, models.Countdown)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(src, sub); err != nil {
		t.Fatal(err)
	}
	if m, err = model.Load(src); err != nil {
		t.Fatal(err)
	}
	return dir, src, m
}

// The embedded model, exported and read back by an independent GGUF
// parser: the metadata llama.cpp reads, every tensor under its name and
// shape, and the weights themselves, the query and key rows permuted.
func TestExportReadsBack(t *testing.T) {
	dir, src, m := embeddedModel(t)
	for _, typ := range []Type{F32, F16, BF16, Q8_0} {
		out := filepath.Join(dir, "model.gguf")
		if err := Export(src, out, typ); err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseGGUFFile(out)
		if err != nil {
			t.Fatalf("%s: the parser refuses the file: %v", typ, err)
		}
		a, tok := f.Architecture(), f.Tokenizer()
		c := m.Config
		if a.Architecture != "llama" || a.BlockCount != uint64(c.Layers) || a.EmbeddingLength != uint64(c.Dim) ||
			a.AttentionHeadCount != uint64(c.Heads) || a.AttentionHeadCountKV != uint64(c.KVHeads) || a.MaximumContextLength != uint64(c.MaxSeq) {
			t.Errorf("architecture %+v", a)
		}
		if tok.Model != "gpt2" || tok.TokensLength != uint64(c.Vocab) || tok.EOSTokenID != int64(m.EOS[0]) || tok.MergesLength == 0 {
			t.Errorf("tokenizer %+v", tok)
		}
		if tmpl, ok := f.Header.MetadataKV.Get("tokenizer.chat_template"); !ok || tmpl.ValueString() != PassThroughTemplate {
			t.Errorf("chat template %v", tmpl)
		}
		want := tensorsOf(m, typ)
		if len(f.TensorInfos) != len(want) {
			t.Fatalf("%d tensors, want %d", len(f.TensorInfos), len(want))
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		for i, ti := range f.TensorInfos {
			w := want[i]
			dims := make([]uint64, len(w.shape))
			for j, d := range w.shape {
				dims[len(dims)-1-j] = uint64(d)
			}
			if ti.Name != w.name || !slices.Equal(ti.Dimensions, dims) || uint32(ti.Type) != uint32(w.typ) {
				t.Fatalf("tensor %d: %s %v %v, want %s %v %v", i, ti.Name, ti.Dimensions, ti.Type, w.name, dims, w.typ)
			}
			if w.typ != F32 && w.typ != F16 {
				continue // TestLoadModelReadsExport reads the others' values back
			}
			at := f.TensorDataStartOffset + int64(ti.Offset)
			for k, v := range w.data {
				var got float32
				if w.typ == F16 {
					got = half.ToFloat32(binary.LittleEndian.Uint16(data[at+int64(2*k):]))
					v = half.ToFloat32(half.FromFloat32(v))
				} else {
					got = math.Float32frombits(binary.LittleEndian.Uint32(data[at+int64(4*k):]))
				}
				if got != v {
					t.Fatalf("%s[%d] reads %g, wrote %g", w.name, k, got, v)
				}
			}
		}
	}
}

// The permutation takes a head's two rotary halves to interleaved pairs,
// row for row, as llama.cpp's converter does.
func TestPermuteInterleavesTheHalves(t *testing.T) {
	// 2 heads of 4 rows, 1 column: rows h*4 + [0 1 | 2 3] become [0 2 1 3].
	w := []float32{0, 1, 2, 3, 10, 11, 12, 13}
	if got, want := permute(w, 2, 1), []float32{0, 2, 1, 3, 10, 12, 11, 13}; !slices.Equal(got, want) {
		t.Errorf("permuted %v, want %v", got, want)
	}
}

// A model that rescales its rotary frequencies, Llama 3.1's way, carries
// them as llama.cpp's converter writes them: a float32 rope_freqs.weight of
// head_dim/2 divisors, 1 in the high band, the factor in the low band and
// interpolated between; one that does not carries no such tensor.
func TestExportWritesRopeFreqs(t *testing.T) {
	tok := smallTokenizer(t)
	c := model.Config{Vocab: tok.VocabSize(), Dim: 16, Hidden: 24, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 8, MaxSeq: 32,
		NormEps: 1e-5, RopeTheta: 10000, TiedEmbeddings: true}
	plain, err := model.New(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range tensorsOf(plain, F16) {
		if ts.name == "rope_freqs.weight" {
			t.Fatal("a model without RoPE scaling got a rope_freqs tensor")
		}
	}

	// Frequencies 10000^(−i/4) have wavelengths 2π·10^i: two below the high
	// band's edge of 1024/4, one between, one above the low band's 1024/1.
	c.RopeScaling = braidtensor.RopeScaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 1024}
	m, err := model.New(c)
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Init(rand.New(rand.NewPCG(3, 3)), 0.5)
	dir := t.TempDir()
	src := filepath.Join(dir, "model")
	if err := m.Save(src); err != nil {
		t.Fatal(err)
	}
	if err := tok.Save(filepath.Join(src, "tokenizer.json")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "model.gguf")
	if err := Export(src, out, F16); err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseGGUFFile(out)
	if err != nil {
		t.Fatalf("the parser refuses the file: %v", err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}

	// llama.cpp's convert_hf_to_gguf.py, LlamaModel.generate_extra_tensors.
	s := c.RopeScaling
	lowWavelen, highWavelen := float64(s.OriginalMaxPos)/s.LowFreqFactor, float64(s.OriginalMaxPos)/s.HighFreqFactor
	want := make([]float64, c.HeadDim/2)
	for i := range want {
		freq := 1 / math.Pow(c.RopeTheta, float64(2*i)/float64(c.HeadDim))
		switch wavelen := 2 * math.Pi / freq; {
		case wavelen < highWavelen:
			want[i] = 1
		case wavelen > lowWavelen:
			want[i] = s.Factor
		default:
			smooth := (float64(s.OriginalMaxPos)/wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
			want[i] = 1 / ((1-smooth)/s.Factor + smooth)
		}
	}
	if want[0] != 1 || want[1] != 1 || !(1 < want[2] && want[2] < s.Factor) || want[3] != s.Factor {
		t.Fatalf("factors %v do not cover the three bands", want)
	}

	var found bool
	for _, ti := range f.TensorInfos {
		if ti.Name != "rope_freqs.weight" {
			continue
		}
		found = true
		if ti.Type != parser.GGMLTypeF32 || !slices.Equal(ti.Dimensions, []uint64{uint64(c.HeadDim / 2)}) {
			t.Fatalf("rope_freqs.weight is %v %v, want F32 [%d]", ti.Type, ti.Dimensions, c.HeadDim/2)
		}
		at := f.TensorDataStartOffset + int64(ti.Offset)
		for i, w := range want {
			got := float64(math.Float32frombits(binary.LittleEndian.Uint32(data[at+int64(4*i):])))
			if math.Abs(got-w) > 1e-6*w {
				t.Errorf("rope_freqs.weight[%d] = %g, want %g", i, got, w)
			}
		}
	}
	if !found {
		t.Fatal("no rope_freqs.weight tensor")
	}

	// Loaded back, the model rotates by the frequencies it was written with.
	gf, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer gf.Close()
	back, err := LoadModel(gf)
	if err != nil {
		t.Fatal(err)
	}
	wantFreqs := braidtensor.RoPEFreqs(c.HeadDim, c.RopeTheta, c.RopeScaling)
	for i, f := range braidtensor.RoPEFreqs(c.HeadDim, c.RopeTheta, back.Config.RopeScaling) {
		if math.Abs(f-wantFreqs[i]) > 1e-6*wantFreqs[i] {
			t.Errorf("loaded back, frequency %d is %g, want %g", i, f, wantFreqs[i])
		}
	}
}

// A model with a sparse-attention indexer is refused by name: llama.cpp
// would run it dense.
func TestExportRefusesAnIndexer(t *testing.T) {
	c := model.Config{Vocab: 8, Dim: 8, Hidden: 8, Layers: 1, Heads: 2, KVHeads: 2, HeadDim: 4, MaxSeq: 8,
		NormEps: 1e-5, RopeTheta: 10000, IndexHeads: 1, IndexDim: 4, IndexTopK: 4}
	m, err := model.New(c)
	if err != nil {
		t.Fatal(err)
	}
	err = ExportModel(m, nil, nil, "x", filepath.Join(t.TempDir(), "m.gguf"), F16)
	if err == nil || !strings.Contains(err.Error(), "indexer") {
		t.Fatalf("exporting a model with an indexer: %v", err)
	}
}
