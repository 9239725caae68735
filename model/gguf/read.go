package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/braid-dev/braid/internal/half"
)

// The read side: a GGUF file as llama.cpp and ollama keep their models,
// checked against its own size before anything it declares is allocated,
// so that a truncated or hostile file is refused with an error naming what
// is wrong, never a panic or an allocation the size of a lie.

// More value types than the writer uses.
const (
	typeUint8   = 0
	typeInt8    = 1
	typeUint16  = 2
	typeInt16   = 3
	typeUint64  = 10
	typeInt64   = 11
	typeFloat64 = 12
)

// Tensor types braid reads; ggmlTypeNames names the others in refusals.
const (
	tensorQ4_0 = 2
	tensorQ8_0 = 8
	tensorBF16 = 30
)

var ggmlTypeNames = map[uint32]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
	10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K",
	16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
	24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
}

// TypeName is a tensor type's name in llama.cpp ("Q4_K"), or its number.
func TypeName(t uint32) string {
	if n, ok := ggmlTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type %d", t)
}

// blockOf is the values per block and bytes per block of the types braid
// reads; ok is false for the others.
func blockOf(t uint32) (values, bytes int, ok bool) {
	switch t {
	case tensorF32:
		return 1, 4, true
	case tensorF16, tensorBF16:
		return 1, 2, true
	case tensorQ8_0:
		return 32, 34, true // a half-precision scale, 32 signed bytes
	case tensorQ4_0:
		return 32, 18, true // a half-precision scale, 32 four-bit values
	}
	return 0, 0, false
}

// Limits on what a file may declare, far above any real model's.
const (
	maxDims      = 4
	maxStringLen = 1 << 24 // a chat template or token; 16 MiB
	maxArrayLen  = 1 << 26 // a vocabulary's tokens or merges
)

// TensorInfo is one tensor of a file: its name, its dimensions as GGUF
// lists them (the fastest-varying first, so a matrix of r rows and c
// columns is [c, r]), its type, and where its data starts, relative to the
// data section.
type TensorInfo struct {
	Name   string
	Dims   []uint64
	Type   uint32
	Offset uint64
}

// Elements is the tensor's number of values.
func (t TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// File is an open GGUF file: its metadata and tensor infos read, its data
// read on demand.
type File struct {
	// Meta holds the metadata by key: integers as int64 or uint64, floats
	// as float64, and bool, string, or []any for arrays.
	Meta      map[string]any
	Tensors   []TensorInfo
	byName    map[string]int
	r         io.ReaderAt
	size      int64
	dataStart int64
	closer    io.Closer
}

// Open reads the header, metadata and tensor infos of the GGUF file at path.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("gguf: %w", err)
	}
	g, err := Parse(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("gguf: %s: %w", path, err)
	}
	g.closer = f
	return g, nil
}

// Close closes the file Open opened.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	return f.closer.Close()
}

// Parse reads a GGUF file of size bytes from r: header, metadata and
// tensor infos, every tensor's data checked to lie inside the file.
func Parse(r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("a file of %d bytes", size)
	}
	d := &decoder{r: r, size: size}
	if m := d.u32(); d.err == nil && m != magic {
		return nil, fmt.Errorf("not a GGUF file (magic %#x)", m)
	}
	if v := d.u32(); d.err == nil && v != 2 && v != 3 {
		return nil, fmt.Errorf("GGUF version %d: braid reads versions 2 and 3", v)
	}
	tensors, kvs := d.u64(), d.u64()
	if d.err != nil {
		return nil, d.err
	}
	// Each entry takes at least a few bytes: a count beyond what the file
	// can hold is a lie, refused before anything is allocated for it.
	if kvs > uint64(size)/12 || tensors > uint64(size)/24 {
		return nil, fmt.Errorf("the header declares %d metadata entries and %d tensors, more than %d bytes can hold", kvs, tensors, size)
	}
	// The maps grow as entries are read: a size hint from the header would
	// be allocated before any entry proved it.
	f := &File{Meta: make(map[string]any, min(kvs, 1024)), byName: make(map[string]int, min(tensors, 1024)), r: r, size: size}
	for range kvs {
		key := d.str()
		v := d.value(d.u32(), 0)
		if d.err != nil {
			return nil, fmt.Errorf("metadata %q: %w", key, d.err)
		}
		if _, dup := f.Meta[key]; dup {
			return nil, fmt.Errorf("metadata key %q appears twice", key)
		}
		f.Meta[key] = v
	}
	for range tensors {
		t := TensorInfo{Name: d.str()}
		n := d.u32()
		if d.err == nil && (n == 0 || n > maxDims) {
			return nil, fmt.Errorf("tensor %q has %d dimensions: want 1 to %d", t.Name, n, maxDims)
		}
		for range n {
			t.Dims = append(t.Dims, d.u64())
		}
		t.Type, t.Offset = d.u32(), d.u64()
		if d.err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.Name, d.err)
		}
		if _, dup := f.byName[t.Name]; dup {
			return nil, fmt.Errorf("tensor %q appears twice", t.Name)
		}
		f.byName[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}
	align := int64(alignment)
	if a, ok := f.Meta["general.alignment"]; ok {
		v, ok := asInt(a)
		if !ok || v < 1 || v > 1<<16 || v&(v-1) != 0 {
			return nil, fmt.Errorf("general.alignment %v: want a power of two", a)
		}
		align = v
	}
	f.dataStart = (d.off + align - 1) / align * align
	for _, t := range f.Tensors {
		if err := f.checkExtent(t, align); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// checkExtent refuses a tensor whose data would lie outside the file. A
// tensor of a type braid does not read is not checked: Float32 refuses it.
func (f *File) checkExtent(t TensorInfo, align int64) error {
	per, bytes, ok := blockOf(t.Type)
	if !ok {
		return nil
	}
	n, overflow := uint64(1), false
	for _, d := range t.Dims {
		if d == 0 || n > math.MaxInt64/d {
			overflow = true
			break
		}
		n *= d
	}
	if overflow || n%uint64(per) != 0 {
		return fmt.Errorf("tensor %q: dimensions %v are not whole blocks of %d %s values", t.Name, t.Dims, per, TypeName(t.Type))
	}
	if t.Offset%uint64(align) != 0 {
		return fmt.Errorf("tensor %q: its data at offset %d is not aligned to %d bytes", t.Name, t.Offset, align)
	}
	avail := f.size - f.dataStart
	if blocks := n / uint64(per); avail < 0 || t.Offset > uint64(avail) || blocks > (uint64(avail)-t.Offset)/uint64(bytes) {
		return fmt.Errorf("tensor %q: its data (offset %d, %d values of %s) runs past the end of the file (%d bytes)", t.Name, t.Offset, n, TypeName(t.Type), f.size)
	}
	return nil
}

// Tensor returns the named tensor's info.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// Float32 reads tensor t's values as float32, widening half precision
// and dequantizing Q8_0 and Q4_0 blocks (value = scale × quant, Q4_0's
// quants stored offset by 8); any other type is refused by name.
func (f *File) Float32(t TensorInfo) ([]float32, error) {
	per, bytes, ok := blockOf(t.Type)
	if !ok {
		return nil, fmt.Errorf("tensor %s is %s: braid reads F32, F16, BF16, Q8_0 and Q4_0", t.Name, TypeName(t.Type))
	}
	n := t.Elements()
	raw := make([]byte, n/uint64(per)*uint64(bytes))
	if _, err := f.r.ReadAt(raw, f.dataStart+int64(t.Offset)); err != nil {
		return nil, fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	out := make([]float32, n)
	le := binary.LittleEndian
	switch t.Type {
	case tensorF32:
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
	case tensorF16:
		for i := range out {
			out[i] = half.ToFloat32(le.Uint16(raw[2*i:]))
		}
	case tensorBF16:
		for i := range out {
			out[i] = half.BF16ToFloat32(le.Uint16(raw[2*i:]))
		}
	case tensorQ8_0:
		for b := range len(out) / 32 {
			blk := raw[b*34 : (b+1)*34]
			scale := half.ToFloat32(le.Uint16(blk))
			for j, q := range blk[2:] {
				out[b*32+j] = scale * float32(int8(q))
			}
		}
	case tensorQ4_0:
		for b := range len(out) / 32 {
			blk := raw[b*18 : (b+1)*18]
			scale := half.ToFloat32(le.Uint16(blk))
			for j, q := range blk[2:] {
				// Byte j holds value j in its low nibble, j+16 in its high.
				out[b*32+j] = scale * float32(int(q&15)-8)
				out[b*32+j+16] = scale * float32(int(q>>4)-8)
			}
		}
	}
	return out, nil
}

// decoder reads little-endian values from a ReaderAt, keeping the first
// error; nothing it reads may pass the end of the file.
type decoder struct {
	r    io.ReaderAt
	size int64
	off  int64
	err  error
	buf  [8]byte
}

var errShort = errors.New("the file ends inside it")

func (d *decoder) read(n int) []byte {
	if d.err != nil {
		return nil
	}
	if int64(n) > d.size-d.off {
		d.err = errShort
		return nil
	}
	var b []byte
	if n <= len(d.buf) {
		b = d.buf[:n]
	} else {
		b = make([]byte, n)
	}
	if _, err := d.r.ReadAt(b, d.off); err != nil {
		d.err = err
		return nil
	}
	d.off += int64(n)
	return b
}

func (d *decoder) u8() uint8 {
	if b := d.read(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if b := d.read(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if b := d.read(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if b := d.read(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (d *decoder) str() string {
	n := d.u64()
	if d.err == nil && n > maxStringLen {
		d.err = fmt.Errorf("a string of %d bytes: at most %d", n, maxStringLen)
	}
	return string(d.read(int(n)))
}

// value reads one metadata value of type typ; arrays nest at most once
// (llama.cpp writes none deeper).
func (d *decoder) value(typ uint32, depth int) any {
	switch typ {
	case typeUint8:
		return uint64(d.u8())
	case typeInt8:
		return int64(int8(d.u8()))
	case typeUint16:
		return uint64(d.u16())
	case typeInt16:
		return int64(int16(d.u16()))
	case typeUint32:
		return uint64(d.u32())
	case typeInt32:
		return int64(int32(d.u32()))
	case typeUint64:
		return d.u64()
	case typeInt64:
		return int64(d.u64())
	case typeFloat32:
		return float64(math.Float32frombits(d.u32()))
	case typeFloat64:
		return math.Float64frombits(d.u64())
	case typeBool:
		return d.u8() != 0
	case typeString:
		return d.str()
	case typeArray:
		elem, n := d.u32(), d.u64()
		if d.err != nil {
			return nil
		}
		if depth > 0 {
			d.err = errors.New("an array nested in an array")
			return nil
		}
		// Every element takes at least one byte.
		if n > maxArrayLen || int64(n) > d.size-d.off {
			d.err = fmt.Errorf("an array of %d values: more than the file holds", n)
			return nil
		}
		out := make([]any, 0, min(n, 1<<16))
		for range n {
			v := d.value(elem, depth+1)
			if d.err != nil {
				return nil
			}
			out = append(out, v)
		}
		return out
	}
	if d.err == nil {
		d.err = fmt.Errorf("value type %d is not a GGUF type", typ)
	}
	return nil
}

// asInt reads an integer metadata value.
func asInt(v any) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return v, true
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v), true
		}
	}
	return 0, false
}

// String returns a string metadata value, "" when absent or not a string.
func (f *File) String(key string) string {
	s, _ := f.Meta[key].(string)
	return s
}

// Strings returns an array of strings, nil when absent or otherwise.
func (f *File) Strings(key string) []string {
	arr, ok := f.Meta[key].([]any)
	if !ok {
		return nil
	}
	out := make([]string, len(arr))
	for i, v := range arr {
		if out[i], ok = v.(string); !ok {
			return nil
		}
	}
	return out
}

// describe names a metadata value's kind for errors.
func describe(v any) string {
	switch v.(type) {
	case nil:
		return "absent"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%v (%T)", v, v)
}
