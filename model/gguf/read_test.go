package gguf

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/braid-dev/braid/internal/half"
	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/tokenizer"
)

// rawTensor is a tensor written as given: its GGUF type and data bytes.
type rawTensor struct {
	name string
	dims []uint64 // GGUF order: the fastest-varying first
	typ  uint32
	data []byte
}

// handMade writes a GGUF file by hand, as another writer would, without
// the package's writer: header, metadata, tensor infos, aligned data.
func handMade(meta []kv, tensors []rawTensor) []byte {
	var buf bytes.Buffer
	e := &encoder{w: &buf}
	e.u32(magic)
	e.u32(version)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(len(meta)))
	for _, m := range meta {
		e.str(m.key)
		e.value(m.value)
	}
	var off uint64
	for _, t := range tensors {
		e.str(t.name)
		e.u32(uint32(len(t.dims)))
		for _, d := range t.dims {
			e.u64(d)
		}
		e.u32(t.typ)
		e.u64(off)
		off += aligned(uint64(len(t.data)))
	}
	e.pad()
	for _, t := range tensors {
		e.bytes(t.data)
		e.pad()
	}
	return buf.Bytes()
}

func parseBytes(t *testing.T, b []byte) *File {
	t.Helper()
	f, err := Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Each type braid reads, from hand-made blocks, against the values the
// format defines: Q8_0 and Q4_0 are a half-precision scale times signed
// quants, Q4_0's stored offset by 8, value j in byte j's low nibble and
// j+16 in its high.
func TestFloat32OfEachType(t *testing.T) {
	want := make([]float32, 64)
	var f32, f16, bf16, q8, q4 []byte
	le := binary.LittleEndian
	for i := range want {
		want[i] = float32(i%13) - 6
	}
	for _, v := range want {
		f32 = le.AppendUint32(f32, math.Float32bits(v))
		f16 = le.AppendUint16(f16, half.FromFloat32(v))
		bf16 = le.AppendUint16(bf16, half.BF16FromFloat32(v))
	}
	wantQ := make([]float32, 64)
	for b := range 2 {
		scale := float32(0.5 * float64(b+1))
		q8 = le.AppendUint16(q8, half.FromFloat32(scale))
		q4 = le.AppendUint16(q4, half.FromFloat32(scale))
		for j := range 32 {
			q8 = append(q8, byte(int8(want[b*32+j])))
		}
		for j := range 16 {
			lo, hi := int(want[b*32+j])+8, int(want[b*32+j+16])+8
			q4 = append(q4, byte(lo|hi<<4))
		}
		for j := range 32 {
			wantQ[b*32+j] = scale * want[b*32+j]
		}
	}
	file := handMade([]kv{{"general.alignment", uint32(32)}}, []rawTensor{
		{"f32", []uint64{32, 2}, tensorF32, f32},
		{"f16", []uint64{32, 2}, tensorF16, f16},
		{"bf16", []uint64{64}, tensorBF16, bf16},
		{"q8", []uint64{32, 2}, tensorQ8_0, q8},
		{"q4", []uint64{64}, tensorQ4_0, q4},
		{"q4k", []uint64{256}, 12, make([]byte, 144)},
	})
	f := parseBytes(t, file)
	for _, tc := range []struct {
		name string
		want []float32
	}{{"f32", want}, {"f16", want}, {"bf16", want}, {"q8", wantQ}, {"q4", wantQ}} {
		ti, _ := f.Tensor(tc.name)
		got, err := f.Float32(ti)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for i := range tc.want {
			if got[i] != tc.want[i] {
				t.Fatalf("%s: value %d = %g, want %g", tc.name, i, got[i], tc.want[i])
			}
		}
	}
	ti, _ := f.Tensor("q4k")
	if _, err := f.Float32(ti); err == nil || !strings.Contains(err.Error(), "q4k is Q4_K") {
		t.Errorf("a Q4_K tensor: %v", err)
	}
}

// A damaged or lying file is refused, naming what is wrong.
func TestParseRefusesBadFiles(t *testing.T) {
	good := handMade([]kv{{"general.architecture", "llama"}}, []rawTensor{{"w", []uint64{4, 2}, tensorF32, make([]byte, 32)}})
	patch := func(at int, v uint64) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint64(b[at:], v)
		return b
	}
	tensorCountAt, kvCountAt := 8, 16
	for _, tc := range []struct {
		name, want string
		file       []byte
	}{
		{"not GGUF", "not a GGUF file", append([]byte("GGML"), good[4:]...)},
		{"truncated header", "ends inside", good[:12]},
		{"truncated data", "runs past the end", good[:len(good)-8]},
		{"a lying tensor count", "more than", patch(tensorCountAt, 1<<40)},
		{"a lying metadata count", "more than", patch(kvCountAt, 1<<40)},
		{"a huge string", "at most", patch(24, 1<<40)},
	} {
		if _, err := Parse(bytes.NewReader(tc.file), int64(len(tc.file))); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	odd := handMade(nil, []rawTensor{{"q", []uint64{31}, tensorQ8_0, make([]byte, 34)}})
	if _, err := Parse(bytes.NewReader(odd), int64(len(odd))); err == nil || !strings.Contains(err.Error(), "whole blocks") {
		t.Errorf("31 Q8_0 values: %v", err)
	}
}

// A file Export writes loads back as the model it was written from: the
// same shape, float32 weights bit for bit, half-precision and bfloat16 ones
// as rounded, Q8_0 ones within half a step of their block's scale (and
// exactly as llama.cpp's dequantize gives them), the query and key rows
// back in Hugging Face's layout.
func TestLoadModelReadsExport(t *testing.T) {
	dir, src, want := embeddedModel(t)
	for _, typ := range []Type{F32, F16, BF16, Q8_0} {
		out := filepath.Join(dir, "model.gguf")
		if err := Export(src, out, typ); err != nil {
			t.Fatal(err)
		}
		f, err := Open(out)
		if err != nil {
			t.Fatal(err)
		}
		got, err := LoadModel(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got.Config != want.Config {
			t.Fatalf("%s: config %+v, want %+v", typ, got.Config, want.Config)
		}
		if len(got.EOS) != 1 || got.EOS[0] != want.EOS[0] {
			t.Errorf("%s: EOS %v, want %v", typ, got.EOS, want.EOS[:1])
		}
		wt, gt := want.Params.Tensors(), got.Params.Tensors()
		for i := range wt {
			matrix := len(wt[i].Shape) == 2
			for j, v := range wt[i].Data {
				w, tol := v, float32(0)
				switch {
				case matrix && typ == F16:
					w = half.ToFloat32(half.FromFloat32(v))
				case matrix && typ == BF16:
					w = half.BF16ToFloat32(half.BF16FromFloat32(v))
				case matrix && typ == Q8_0:
					block := wt[i].Data[j/32*32 : j/32*32+32]
					var amax float32
					for _, x := range block {
						amax = max(amax, float32(math.Abs(float64(x))))
					}
					tol = amax / 127 * 0.57 // half a step, and up to 127 times the scale's rounding to half precision (2^-11)
				}
				if d := float32(math.Abs(float64(gt[i].Data[j] - w))); d > tol || (tol == 0 && gt[i].Data[j] != w) {
					t.Fatalf("%s: %s[%d] = %g, want %g (within %g)", typ, wt[i].Name, j, gt[i].Data[j], w, tol)
				}
			}
		}
	}
}

// smallTokenizer is a byte-level BPE trained on two lines, with one
// special token.
func smallTokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Train(t.Context(), slices.Values([]string{"hello world, hello braid", "27 22 26 31 53"}), 280, []string{"<|end|>"})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func FuzzParse(f *testing.F) {
	f.Add(handMade([]kv{{"general.architecture", "llama"}, {"x", []string{"a", "b"}}}, []rawTensor{{"w", []uint64{4, 2}, tensorF32, make([]byte, 32)}}))
	f.Add(handMade([]kv{{"llama.block_count", uint32(1)}}, []rawTensor{{"q", []uint64{32}, tensorQ4_0, make([]byte, 18)}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := Parse(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		for _, ti := range g.Tensors {
			if _, _, ok := blockOf(ti.Type); ok && ti.Elements() < 1<<20 {
				if _, err := g.Float32(ti); err != nil {
					t.Fatalf("tensor %s passed the checks but does not read: %v", ti.Name, err)
				}
			}
		}
		LoadModel(g) // must not panic
	})
}

// A model with query, key and value biases exports as llama.cpp's qwen2
// architecture, rows unpermuted and biases kept, and reads back whole,
// tokenizer included.
func TestQwen2ShapeRoundTrip(t *testing.T) {
	tok := smallTokenizer(t)
	dir := t.TempDir()
	if err := tok.Save(filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Fatal(err)
	}
	want, err := model.New(model.Config{Vocab: tok.VocabSize(), Dim: 32, Hidden: 48, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8,
		MaxSeq: 64, NormEps: 1e-6, RopeTheta: 1e6, QKVBias: true})
	if err != nil {
		t.Fatal(err)
	}
	want.Params.Init(rand.New(rand.NewPCG(1, 2)), 0.3)
	for i := range want.Params.Layers {
		for _, b := range [][]float32{want.Params.Layers[i].Bq, want.Params.Layers[i].Bk, want.Params.Layers[i].Bv} {
			for j := range b {
				b[j] = float32(j%7) * 0.1
			}
		}
	}
	if err := want.Save(dir); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "qwen.gguf")
	if err := Export(dir, out, F32); err != nil {
		t.Fatal(err)
	}
	f, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if a := f.String("general.architecture"); a != "qwen2" {
		t.Errorf("architecture %q, want qwen2", a)
	}
	got, err := LoadModel(f)
	if err != nil {
		t.Fatal(err)
	}
	if got.Config != want.Config {
		t.Fatalf("config %+v, want %+v", got.Config, want.Config)
	}
	if !slices.Equal(got.Params.Data(), want.Params.Data()) {
		t.Error("the weights differ after the round trip")
	}
	gotTok, err := f.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"hello world, hello braid<|end|>", "27 22 26 31 53\n", "unseen ünïcode"} {
		if g, w := gotTok.Encode(s), tok.Encode(s); !slices.Equal(g, w) {
			t.Errorf("%q encodes to %v from the file, %v from tokenizer.json", s, g, w)
		}
	}
}

// A file whose model braid would run wrongly is refused, naming why.
func TestLoadModelRefusesWhatItCannotRun(t *testing.T) {
	for _, tc := range []struct {
		meta []kv
		want string
	}{
		{[]kv{{"general.architecture", "gemma"}}, `architecture "gemma"`},
		{[]kv{{"general.architecture", "qwen2"}, {"qwen2.rope.scaling.type", "yarn"}}, `rope.scaling.type "yarn"`},
		{[]kv{{"general.architecture", "llama"}, {"llama.embedding_length", uint32(8)}}, "llama.feed_forward_length is absent"},
	} {
		f := parseBytes(t, handMade(tc.meta, nil))
		if _, err := LoadModel(f); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error saying %s", tc.meta, err, tc.want)
		}
	}
}
