// Package safetensors reads and writes the Hugging Face safetensors format,
// the weight format of Hugging Face model repositories.
//
// A file is an 8-byte little-endian header length N, N bytes of JSON header,
// then one byte buffer. The header maps each tensor name to its dtype, shape
// and data_offsets (a half-open byte range of the buffer) and may carry
// string metadata under "__metadata__". The reader makes the checks of the
// reference implementation (a header of at most 100 MB, offsets inside the
// buffer that tile it with neither gap nor overlap, sizes that match shapes
// and dtypes) and also rejects a name given twice, which a JSON decoder
// would otherwise resolve silently. A malformed file is an error matching
// ErrMalformed, never a panic or an allocation the file's size does not
// justify.
package safetensors

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
)

// ErrMalformed is matched, with errors.Is, by every error that reports a
// file breaking the format.
var ErrMalformed = errors.New("safetensors: malformed file")

// ErrNotFound is matched by the error for a tensor name the file lacks.
var ErrNotFound = errors.New("safetensors: no such tensor")

// formatError says what is wrong with a file; it matches ErrMalformed
// without repeating its text in every message.
type formatError string

func (e formatError) Error() string { return "safetensors: " + string(e) }

func (formatError) Is(target error) bool { return target == ErrMalformed }

func malformed(format string, args ...any) error {
	return formatError(fmt.Sprintf(format, args...))
}

// File is a parsed safetensors file. It refers to the bytes it was parsed
// from, which must not change while it is in use. Its methods only read, so
// goroutines may convert tensors from one File concurrently.
type File struct {
	buf      []byte // the data buffer that follows the header
	tensors  map[string]tensor
	names    []string // sorted
	metadata map[string]string
}

// tensor is one validated header entry; begin and end index buf.
type tensor struct {
	dtype      DType
	shape      []int
	begin, end int
}

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	DType DType
	Shape []int // nil or empty for a scalar
}

// Open reads and parses the safetensors file at path. The file is read into
// one buffer that the returned File keeps; tensors are converted only when
// asked for.
func Open(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return f, nil
}

// Parse parses a whole safetensors file held in data. The File refers to
// data rather than copying it.
func Parse(data []byte) (*File, error) {
	header, buf, err := splitHeader(data)
	if err != nil {
		return nil, err
	}
	entries, metadata, err := decodeHeader(header)
	if err != nil {
		return nil, err
	}
	tensors, err := validateEntries(entries, len(buf))
	if err != nil {
		return nil, err
	}
	return &File{
		buf:      buf,
		tensors:  tensors,
		names:    slices.Sorted(maps.Keys(tensors)),
		metadata: metadata,
	}, nil
}

// Names returns the names of the file's tensors, sorted.
func (f *File) Names() []string {
	return slices.Clone(f.names)
}

// Info returns the dtype and shape of the named tensor.
func (f *File) Info(name string) (TensorInfo, error) {
	t, ok := f.tensors[name]
	if !ok {
		return TensorInfo{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return TensorInfo{DType: t.dtype, Shape: slices.Clone(t.shape)}, nil
}

// Metadata returns a copy of the header's "__metadata__" strings, or nil when
// the file has none.
func (f *File) Metadata() map[string]string {
	return maps.Clone(f.metadata)
}

// Float32 returns the named tensor's elements, in row-major order, as a new
// slice. F32 is copied, F16 and BF16 are widened exactly, and F64 is rounded
// to the nearest float32 (values beyond its range become ±Inf). Other dtypes
// are an error naming the dtype.
func (f *File) Float32(name string) ([]float32, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	out, ok := decodeFloats(t.dtype, f.buf[t.begin:t.end])
	if !ok {
		return nil, fmt.Errorf("safetensors: tensor %q has dtype %s; Float32 converts only F32, F16, BF16 and F64", name, t.dtype)
	}
	return out, nil
}
