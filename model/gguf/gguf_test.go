package gguf

import (
	"encoding/binary"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	parser "github.com/gpustack/gguf-parser-go"

	"github.com/braid-dev/braid/internal/half"
	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/models"
)

// The embedded model, exported and read back by an independent GGUF
// parser: the metadata llama.cpp reads, every tensor under its name and
// shape, and the weights themselves, the query and key rows permuted.
func TestExportReadsBack(t *testing.T) {
	if !models.Has(models.Countdown) {
		t.Skip("this build embeds no model")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "model")
	sub, err := fs.Sub(models.FS, models.Countdown)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(src, sub); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, f16 := range []bool{false, true} {
		out := filepath.Join(dir, "model.gguf")
		if err := Export(src, out, f16); err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseGGUFFile(out)
		if err != nil {
			t.Fatalf("f16 %v: the parser refuses the file: %v", f16, err)
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
		want := tensorsOf(m, f16)
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
			if ti.Name != w.name || !slices.Equal(ti.Dimensions, dims) || (ti.Type == parser.GGMLTypeF16) != w.f16 {
				t.Fatalf("tensor %d: %s %v %v, want %s %v f16 %v", i, ti.Name, ti.Dimensions, ti.Type, w.name, dims, w.f16)
			}
			at := f.TensorDataStartOffset + int64(ti.Offset)
			for k, v := range w.data {
				var got float32
				if w.f16 {
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
