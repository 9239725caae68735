// Package gguf reads and writes GGUF files, the format llama.cpp and
// ollama keep models in. Export writes a braid model directory as one
// file those servers load: llama (or, with q/k/v biases, qwen2)
// architecture metadata, the weights under llama.cpp's names (a llama's
// query and key rows permuted from Hugging Face's rotary layout to
// llama.cpp's, as its converter does), the byte-level BPE tokenizer, and
// the chat template of the directory's tokenizer_config.json, or where it
// has none one that passes braid's prompts through unchanged. Open,
// LoadModel and Tokenizer read such files back, braid's or anyone's, with
// F32, F16, BF16, Q8_0 or Q4_0 weights.
package gguf

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/braid-dev/braid/internal/atomicfile"
	"github.com/braid-dev/braid/internal/half"
	"github.com/braid-dev/braid/model"
	braidtensor "github.com/braid-dev/braid/tensor"
	"github.com/braid-dev/braid/tokenizer"
	"github.com/braid-dev/braid/tokenizer/chat"
)

// The GGUF format: version 3, values and tensor data little-endian,
// tensor data aligned to 32 bytes.
const (
	magic     = 0x46554747 // "GGUF"
	version   = 3
	alignment = 32
)

// Value types.
const (
	typeUint32  = 4
	typeInt32   = 5
	typeFloat32 = 6
	typeBool    = 7
	typeString  = 8
	typeArray   = 9
)

// Tensor types.
const (
	tensorF32 = 0
	tensorF16 = 1
)

// PassThroughTemplate is the chat template a file of a model without one
// carries: every message's content in order, nothing added, so that a
// chat server's continued assistant message reads as braid's prompt and
// text.
const PassThroughTemplate = "{% for message in messages %}{{ message['content'] }}{% endfor %}"

// kv is one metadata entry.
type kv struct {
	key   string
	value any // uint32, int32, float32, bool, string, []string, []int32
}

// tensor is one tensor to write: shape in row-major order, data stored as
// typ.
type tensor struct {
	name  string
	shape []int
	data  []float32
	typ   Type
}

// Type is how a file stores a matrix's numbers: F32, F16, BF16 or Q8_0
// (blocks of 32 signed bytes with a half-precision scale, as llama.cpp's
// quantize writes them).
type Type uint32

// The types Export writes matrices in.
const (
	F32  Type = tensorF32
	F16  Type = tensorF16
	BF16 Type = tensorBF16
	Q8_0 Type = tensorQ8_0
)

// exportTypes are the types Export writes matrices in.
var exportTypes = []Type{F32, F16, BF16, Q8_0}

// ParseType reads a matrix type by llama.cpp's name, in either case: f32,
// f16, bf16 or q8_0.
func ParseType(s string) (Type, error) {
	for _, t := range exportTypes {
		if strings.EqualFold(s, t.String()) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("gguf: type %q: want f32, f16, bf16 or q8_0", s)
}

func (t Type) String() string { return TypeName(uint32(t)) }

// Export writes the model directory dir as a GGUF file at out, its
// matrices as typ (norms and biases stay float32, as llama.cpp's converter
// keeps them). out appears whole or not at all.
func Export(dir, out string, typ Type) error {
	return ExportFS(os.DirFS(dir), ".", filepath.Base(filepath.Clean(dir)), out, typ)
}

// ExportFS is Export of the model directory dir of fsys (the embedded
// models), named name in the file's metadata.
func ExportFS(fsys fs.FS, dir, name, out string, typ Type) error {
	m, err := model.LoadFS(fsys, dir)
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	tok, err := fs.ReadFile(fsys, path.Join(dir, "tokenizer.json"))
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	tmpl, err := chat.ReadDir(fsys, dir)
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	return ExportModel(m, tok, tmpl, name, out, typ)
}

// ExportModel writes m, with the tokenizer of tokenizerJSON (a Hugging Face
// tokenizer.json) and the chat template tmpl (nil: one that passes
// braid's prompts through), as a GGUF file at out named name, its matrices
// as typ.
func ExportModel(m *model.Model, tokenizerJSON []byte, tmpl *chat.Template, name, out string, typ Type) error {
	if !slices.Contains(exportTypes, typ) {
		return fmt.Errorf("gguf: type %s: braid writes matrices in f32, f16, bf16 or q8_0", typ)
	}
	if m.Config.HasIndexer() {
		// llama.cpp's llama and qwen2 architectures have no indexer, and
		// a file without it would run the model dense, unlike braid.
		return fmt.Errorf("gguf: the model has a sparse-attention indexer, which GGUF's llama and qwen2 architectures cannot hold")
	}
	src, bos := PassThroughTemplate, ""
	if tmpl != nil {
		src, bos = tmpl.Source(), tmpl.BOS()
	}
	meta, err := metadata(m, tokenizerJSON, name, src, bos)
	if err != nil {
		return err
	}
	ts := tensorsOf(m, typ)
	for _, t := range ts {
		if t.typ == Q8_0 && t.shape[len(t.shape)-1]%32 != 0 {
			return fmt.Errorf("gguf: %s has rows of %d values: Q8_0 needs whole blocks of 32", t.name, t.shape[len(t.shape)-1])
		}
	}
	f, err := atomicfile.Create(out)
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	if err := write(f, meta, ts); err != nil {
		f.Abort()
		return fmt.Errorf("gguf: write %s: %w", out, err)
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	return nil
}

// metadata is the file's metadata: architecture, shape, tokenizer, and the
// chat template with the text of its beginning-of-sequence token ("" for
// none).
func metadata(m *model.Model, tokenizerJSON []byte, name, template, bos string) ([]kv, error) {
	c := m.Config
	arch := architecture(c)
	tokens, types, merges, err := vocabulary(tokenizerJSON, c.Vocab)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Parse(tokenizerJSON)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	meta := []kv{
		{"general.architecture", arch},
		{"general.name", name},
		{"general.alignment", uint32(alignment)},
		{arch + ".context_length", uint32(c.MaxSeq)},
		{arch + ".embedding_length", uint32(c.Dim)},
		{arch + ".block_count", uint32(c.Layers)},
		{arch + ".feed_forward_length", uint32(c.Hidden)},
		{arch + ".attention.head_count", uint32(c.Heads)},
		{arch + ".attention.head_count_kv", uint32(c.KVHeads)},
		{arch + ".rope.dimension_count", uint32(c.HeadDim)},
		{arch + ".rope.freq_base", float32(c.RopeTheta)},
		{arch + ".attention.layer_norm_rms_epsilon", c.NormEps},
		{arch + ".vocab_size", uint32(c.Vocab)},
		{"tokenizer.ggml.model", "gpt2"},
		{"tokenizer.ggml.pre", tok.PreName()}, // the pattern the tokenizer splits text by
		{"tokenizer.ggml.tokens", tokens},
		{"tokenizer.ggml.token_type", types},
		{"tokenizer.ggml.merges", merges},
		{"tokenizer.ggml.add_bos_token", false},
		{"tokenizer.chat_template", template},
	}
	if len(m.EOS) > 0 {
		meta = append(meta, kv{"tokenizer.ggml.eos_token_id", uint32(m.EOS[0])})
	}
	if id := slices.Index(tokens, bos); bos != "" && id >= 0 {
		meta = append(meta, kv{"tokenizer.ggml.bos_token_id", uint32(id)})
	}
	return meta, nil
}

// vocabulary reads a Hugging Face tokenizer.json's byte-level BPE: its
// tokens by id, their types (1 normal, 3 control for added special
// tokens), and its merges as "left right".
func vocabulary(data []byte, size int) (tokens []string, types []int32, merges []string, err error) {
	var t struct {
		AddedTokens []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens"`
		Model struct {
			Type   string            `json:"type"`
			Vocab  map[string]int    `json:"vocab"`
			Merges []json.RawMessage `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, nil, nil, fmt.Errorf("gguf: tokenizer.json: %w", err)
	}
	if t.Model.Type != "BPE" {
		return nil, nil, nil, fmt.Errorf("gguf: tokenizer.json: a %q model, want byte-level BPE", t.Model.Type)
	}
	tokens, types = make([]string, size), make([]int32, size)
	set := func(id int, s string, typ int32) error {
		if id < 0 || id >= size {
			return fmt.Errorf("gguf: tokenizer.json: token %q has id %d, outside the model's %d", s, id, size)
		}
		tokens[id], types[id] = s, typ
		return nil
	}
	for s, id := range t.Model.Vocab {
		if err := set(id, s, 1); err != nil {
			return nil, nil, nil, err
		}
	}
	for _, a := range t.AddedTokens {
		typ := int32(1)
		if a.Special {
			typ = 3
		}
		if err := set(a.ID, a.Content, typ); err != nil {
			return nil, nil, nil, err
		}
	}
	for id, s := range tokens {
		if s == "" {
			// An id the tokenizer never produces: a placeholder llama.cpp
			// reads as unused.
			tokens[id], types[id] = fmt.Sprintf("[PAD%d]", id), 5
		}
	}
	for i, raw := range t.Model.Merges {
		var s string
		var pair []string
		switch {
		case json.Unmarshal(raw, &s) == nil:
		case json.Unmarshal(raw, &pair) == nil && len(pair) == 2:
			s = pair[0] + " " + pair[1]
		default:
			return nil, nil, nil, fmt.Errorf("gguf: tokenizer.json: merge %d is neither \"a b\" nor [a, b]", i)
		}
		merges = append(merges, s)
	}
	return tokens, types, merges, nil
}

// architecture is llama.cpp's architecture for c: qwen2 for a model with
// query, key and value biases, else llama.
func architecture(c model.Config) string {
	if c.QKVBias {
		return "qwen2"
	}
	return "llama"
}

// weight is one of a model's tensors under llama.cpp's name: its shape
// (row-major), the model's storage of it, and, for a llama's query and
// key, the heads whose rows llama.cpp's rotary layout interleaves.
type weight struct {
	name  string
	shape []int
	data  []float32
	heads int
}

// weights lists the tensors of a model of shape c under llama.cpp's
// names, in the order its converter writes them, with p's storage of each
// (nil data when p is nil: the names and shapes a file must have). Export
// writes them and LoadModel reads them, so the two agree by construction.
func weights(c model.Config, p *model.Params) []weight {
	if p == nil {
		p = &model.Params{Layers: make([]model.LayerParams, c.Layers)}
	}
	qd, kd := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	qHeads, kHeads := 0, 0
	if architecture(c) == "llama" {
		qHeads, kHeads = c.Heads, c.KVHeads
	}
	out := []weight{{"token_embd.weight", []int{c.Vocab, c.Dim}, p.Embed, 0}}
	for i, l := range p.Layers {
		blk := fmt.Sprintf("blk.%d.", i)
		out = append(out,
			weight{blk + "attn_norm.weight", []int{c.Dim}, l.AttnNorm, 0},
			weight{blk + "attn_q.weight", []int{qd, c.Dim}, l.Wq, qHeads},
			weight{blk + "attn_k.weight", []int{kd, c.Dim}, l.Wk, kHeads},
			weight{blk + "attn_v.weight", []int{kd, c.Dim}, l.Wv, 0},
			weight{blk + "attn_output.weight", []int{c.Dim, qd}, l.Wo, 0},
			weight{blk + "ffn_norm.weight", []int{c.Dim}, l.MLPNorm, 0},
			weight{blk + "ffn_gate.weight", []int{c.Hidden, c.Dim}, l.Wgate, 0},
			weight{blk + "ffn_up.weight", []int{c.Hidden, c.Dim}, l.Wup, 0},
			weight{blk + "ffn_down.weight", []int{c.Dim, c.Hidden}, l.Wdown, 0},
		)
		if c.QKVBias {
			out = append(out,
				weight{blk + "attn_q.bias", []int{qd}, l.Bq, 0},
				weight{blk + "attn_k.bias", []int{kd}, l.Bk, 0},
				weight{blk + "attn_v.bias", []int{kd}, l.Bv, 0})
		}
	}
	out = append(out, weight{"output_norm.weight", []int{c.Dim}, p.FinalNorm, 0})
	if !c.TiedEmbeddings {
		out = append(out, weight{"output.weight", []int{c.Vocab, c.Dim}, p.LMHead, 0})
	}
	return out
}

// tensorsOf is what Export writes of the model: its weights, a llama's
// query and key rows permuted from Hugging Face's rotary layout (halves)
// to llama.cpp's (interleaved pairs), the matrices as typ. A model that
// rescales its rotary frequencies gets them first, as llama.cpp's
// converter writes them.
func tensorsOf(m *model.Model, typ Type) []tensor {
	c := m.Config
	var out []tensor
	if c.RopeScaling != (braidtensor.RopeScaling{}) {
		out = append(out, tensor{name: "rope_freqs.weight", shape: []int{c.HeadDim / 2}, data: ropeFreqFactors(c), typ: F32})
	}
	for _, w := range weights(c, m.Params) {
		data := w.data
		if w.heads > 0 {
			data = permute(data, w.heads, c.Dim)
		}
		t := tensor{name: w.name, shape: w.shape, data: data, typ: F32}
		if len(w.shape) == 2 {
			t.typ = typ
		}
		out = append(out, t)
	}
	return out
}

// ropeFreqFactors is llama.cpp's rope_freqs tensor for c's RoPE scaling:
// for each rotary frequency θ^(−2i/d), what the scaling divides it by. It
// stays float32 whatever the matrices are, as llama.cpp's converter keeps
// it.
func ropeFreqFactors(c model.Config) []float32 {
	base := braidtensor.RoPEFreqs(c.HeadDim, c.RopeTheta, braidtensor.RopeScaling{})
	factors := make([]float32, len(base))
	for i, freq := range base {
		factors[i] = float32(c.RopeScaling.Divisor(freq))
	}
	return factors
}

// permute reorders the rows of a [heads·headDim, in] projection as
// llama.cpp's converter does: within each head, the rows of the two
// rotary halves interleave, so that llama.cpp's rotation of adjacent pairs
// computes what the Hugging Face model's rotation of halves does.
func permute(w []float32, heads, in int) []float32 { return permuteRows(w, heads, in, false) }

// unpermute is the inverse of permute: llama.cpp's interleaved rotary
// rows back to Hugging Face's halves.
func unpermute(w []float32, heads, in int) []float32 { return permuteRows(w, heads, in, true) }

// permuteRows moves, in each head, row i of rotary half h to row 2i+h, or
// back with inverse.
func permuteRows(w []float32, heads, in int, inverse bool) []float32 {
	rows := len(w) / in
	headDim := rows / heads
	out := make([]float32, len(w))
	for h := range heads {
		for i := range headDim / 2 {
			for half := range 2 {
				halves := h*headDim + half*headDim/2 + i
				pairs := h*headDim + 2*i + half
				src, dst := halves, pairs
				if inverse {
					src, dst = pairs, halves
				}
				copy(out[dst*in:(dst+1)*in], w[src*in:(src+1)*in])
			}
		}
	}
	return out
}

// write writes the file: header, metadata, tensor infos, then the data.
func write(w io.Writer, meta []kv, tensors []tensor) error {
	bw := bufio.NewWriter(w)
	e := &encoder{w: bw}
	e.u32(magic)
	e.u32(version)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(len(meta)))
	for _, m := range meta {
		e.str(m.key)
		e.value(m.value)
	}
	var offset uint64
	for _, t := range tensors {
		e.str(t.name)
		e.u32(uint32(len(t.shape)))
		for i := len(t.shape) - 1; i >= 0; i-- { // GGUF lists the fastest-varying dimension first
			e.u64(uint64(t.shape[i]))
		}
		e.u32(uint32(t.typ))
		e.u64(offset)
		offset += aligned(t.bytes())
	}
	e.pad()
	for _, t := range tensors {
		start := e.n
		switch t.typ {
		case F16:
			for _, v := range t.data {
				e.u16(half.FromFloat32(v))
			}
		case BF16:
			for _, v := range t.data {
				e.u16(half.BF16FromFloat32(v))
			}
		case Q8_0:
			var block [34]byte
			for i := 0; i < len(t.data); i += 32 {
				quantizeQ8_0(block[:], t.data[i:i+32])
				e.bytes(block[:])
			}
		default:
			for _, v := range t.data {
				e.u32(math.Float32bits(v))
			}
		}
		if e.n-start != t.bytes() {
			return fmt.Errorf("gguf: tensor %s wrote %d bytes, want %d", t.name, e.n-start, t.bytes())
		}
		e.pad()
	}
	if e.err != nil {
		return e.err
	}
	return bw.Flush()
}

func (t tensor) bytes() uint64 {
	values, bytes, _ := blockOf(uint32(t.typ))
	return uint64(len(t.data) / values * bytes)
}

// quantizeQ8_0 writes 32 values as one Q8_0 block: the scale in half
// precision, then the bytes, rounded as tensor.QuantizeQ8 rounds them.
func quantizeQ8_0(dst []byte, x []float32) {
	var q [32]int8
	d := braidtensor.QuantizeQ8(q[:], x)
	binary.LittleEndian.PutUint16(dst, half.FromFloat32(d))
	for i, v := range q {
		dst[2+i] = byte(v)
	}
}

func aligned(n uint64) uint64 { return (n + alignment - 1) / alignment * alignment }

// encoder writes little-endian values, counting bytes, keeping the first
// error.
type encoder struct {
	w   io.Writer
	n   uint64
	err error
}

func (e *encoder) bytes(b []byte) {
	if e.err != nil {
		return
	}
	k, err := e.w.Write(b)
	e.n += uint64(k)
	e.err = err
}

func (e *encoder) u16(v uint16) { e.bytes(binary.LittleEndian.AppendUint16(nil, v)) }
func (e *encoder) u32(v uint32) { e.bytes(binary.LittleEndian.AppendUint32(nil, v)) }
func (e *encoder) u64(v uint64) { e.bytes(binary.LittleEndian.AppendUint64(nil, v)) }
func (e *encoder) str(s string) { e.u64(uint64(len(s))); e.bytes([]byte(s)) }
func (e *encoder) pad()         { e.bytes(make([]byte, aligned(e.n)-e.n)) }

func (e *encoder) value(v any) {
	switch v := v.(type) {
	case uint32:
		e.u32(typeUint32)
		e.u32(v)
	case int32:
		e.u32(typeInt32)
		e.u32(uint32(v))
	case float32:
		e.u32(typeFloat32)
		e.u32(math.Float32bits(v))
	case bool:
		e.u32(typeBool)
		b := byte(0)
		if v {
			b = 1
		}
		e.bytes([]byte{b})
	case string:
		e.u32(typeString)
		e.str(v)
	case []string:
		e.u32(typeArray)
		e.u32(typeString)
		e.u64(uint64(len(v)))
		for _, s := range v {
			e.str(s)
		}
	case []int32:
		e.u32(typeArray)
		e.u32(typeInt32)
		e.u64(uint64(len(v)))
		for _, x := range v {
			e.u32(uint32(x))
		}
	default:
		e.err = fmt.Errorf("gguf: a metadata value of type %T", v)
	}
}
