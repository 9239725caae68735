package safetensors

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/braid-dev/braid/internal/atomicfile"
	"github.com/braid-dev/braid/internal/half"
)

// Tensor is a float32 tensor to write: Data holds the elements of Shape in
// row-major order. An empty Shape is a scalar of one element.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
	// DType is what the file stores: F32 (the default) or F16, rounded to
	// nearest even, for weights shipped at half the size.
	DType DType
}

// dtype is the tensor's stored dtype and its size in bytes.
func (t Tensor) dtype() (DType, uint64) {
	if t.DType == F16 {
		return F16, 2
	}
	return F32, 4
}

// Write writes tensors to w as a safetensors file (F32 values, or F16 for
// tensors that ask for it) laid out as the reference implementation lays
// it out: tensors sorted by name, the header
// padded with spaces to a multiple of 8 bytes so that the data buffer is
// aligned, and "__metadata__" first in the header when metadata is not
// empty. Hugging Face transformers refuses to load a PyTorch model from a
// file whose metadata names another format, and older versions from a file
// without metadata, so callers writing weights for it pass
// map[string]string{"format": "pt"}.
//
// Names must be unique, non-empty, valid UTF-8 and not "__metadata__", and
// each tensor's Data must hold exactly the elements its Shape needs; Write
// checks all of it before writing anything.
func Write(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	sorted := slices.Clone(tensors)
	slices.SortFunc(sorted, func(a, b Tensor) int { return cmp.Compare(a.Name, b.Name) })
	header, err := encodeHeader(sorted, metadata)
	if err != nil {
		return err
	}

	bw := bufio.NewWriterSize(w, 1<<16)
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(header)))
	bw.Write(prefix[:])
	bw.Write(header)
	for _, t := range sorted {
		if err := writeFloats(bw, t.Data, t.DType == F16); err != nil {
			return fmt.Errorf("safetensors: write: %w", err)
		}
	}
	// bufio.Writer keeps its first error and returns it from every later
	// call, so Flush also reports a failure of the writes above.
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	return nil
}

// writeFloats writes data little-endian, as float32 or, with f16, as
// halves, encoding straight into bw's buffer.
func writeFloats(bw *bufio.Writer, data []float32, f16 bool) error {
	size := 4
	if f16 {
		size = 2
	}
	for len(data) > 0 {
		if bw.Available() < size {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		buf := bw.AvailableBuffer()
		n := min(len(data), cap(buf)/size)
		for _, v := range data[:n] {
			if f16 {
				buf = binary.LittleEndian.AppendUint16(buf, half.FromFloat32(v))
			} else {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			}
		}
		if _, err := bw.Write(buf); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// WriteFile writes tensors to path as Write does. It writes a temporary file
// in the same directory and renames it over path, so a reader never sees a
// partly written file and a failure leaves any old file in place.
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	f, err := atomicfile.Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := Write(f, tensors, metadata); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}

// encodeHeader returns the padded JSON header for tensors, which are sorted
// by name and are laid out in that order in the data buffer.
func encodeHeader(sorted []Tensor, metadata map[string]string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	if len(metadata) > 0 {
		appendString(&b, metadataKey)
		b.WriteString(":{")
		for i, k := range slices.Sorted(maps.Keys(metadata)) {
			v := metadata[k]
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, fmt.Errorf("safetensors: metadata %q: %q: not valid UTF-8", k, v)
			}
			if i > 0 {
				b.WriteByte(',')
			}
			appendString(&b, k)
			b.WriteByte(':')
			appendString(&b, v)
		}
		b.WriteByte('}')
	}
	var offset uint64
	for i, t := range sorted {
		if err := checkTensor(t); err != nil {
			return nil, err
		}
		if i > 0 && t.Name == sorted[i-1].Name {
			return nil, fmt.Errorf("safetensors: tensor %q given twice", t.Name)
		}
		if i > 0 || len(metadata) > 0 {
			b.WriteByte(',')
		}
		dt, size := t.dtype()
		end := offset + size*uint64(len(t.Data))
		appendString(&b, t.Name)
		b.WriteString(`:{"dtype":"` + string(dt) + `","shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	return b.Bytes(), nil
}

// checkTensor checks that a tensor can be written as given.
func checkTensor(t Tensor) error {
	switch {
	case t.Name == "":
		return fmt.Errorf("safetensors: tensor with shape %v has no name", t.Shape)
	case t.Name == metadataKey:
		return fmt.Errorf("safetensors: tensor name %q is reserved for metadata", t.Name)
	case !utf8.ValidString(t.Name):
		return fmt.Errorf("safetensors: tensor name %q is not valid UTF-8", t.Name)
	}
	count := 1
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("safetensors: tensor %q: shape %v has a negative dimension", t.Name, t.Shape)
		}
		if d != 0 && count > math.MaxInt/d {
			return fmt.Errorf("safetensors: tensor %q: shape %v has too many elements", t.Name, t.Shape)
		}
		count *= d
	}
	if t.DType != "" && t.DType != F32 && t.DType != F16 {
		return fmt.Errorf("safetensors: tensor %q: braid writes F32 or F16, not %s", t.Name, t.DType)
	}
	if count != len(t.Data) {
		return fmt.Errorf("safetensors: tensor %q: shape %v needs %d values, Data has %d", t.Name, t.Shape, count, len(t.Data))
	}
	return nil
}

// appendString appends s as a JSON string. Unlike json.Marshal it leaves
// <, > and & unescaped, as the reference implementation does; s is valid
// UTF-8, so encoding cannot change it.
func appendString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // A string always encodes.
	// Encode ends the value with a newline; the header has none.
	b.Truncate(b.Len() - 1)
}
