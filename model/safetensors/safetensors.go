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
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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

// Header is a file's header on its own: the tensors' dtypes and shapes,
// checked against the size of the file as Parse checks them, read before
// the data so that a caller can tell from the shapes what the file will
// cost before reading it. Its methods only read.
type Header struct {
	tensors  map[string]tensor
	names    []string // sorted
	metadata map[string]string
	dataLen  int // bytes of the data buffer that follows the header
}

// File is a parsed safetensors file. It refers to the bytes it was parsed
// from, which must not change while it is in use. Its methods only read, so
// goroutines may convert tensors from one File concurrently.
type File struct {
	Header
	buf []byte // the data buffer that follows the header
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
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	h, err := ReadHeader(f, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	file, err := h.ReadData(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return file, nil
}

// Parse parses a whole safetensors file held in data. The File refers to
// data rather than copying it.
func Parse(data []byte) (*File, error) {
	header, buf, err := splitHeader(data)
	if err != nil {
		return nil, err
	}
	h, err := newHeader(header, len(buf))
	if err != nil {
		return nil, err
	}
	return &File{Header: *h, buf: buf}, nil
}

// ReadHeader reads the header of a safetensors file of size bytes from r,
// positioned at the file's start, and leaves r at the data buffer. It
// allocates for the header alone, whose length is capped, and reads none of
// the data, whatever sizes the header claims.
func ReadHeader(r io.Reader, size int64) (*Header, error) {
	if size < 8 {
		return nil, malformed("file is %d bytes, too short for the 8-byte header length", size)
	}
	var prefix [8]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return nil, shortRead(err, size)
	}
	n := binary.LittleEndian.Uint64(prefix[:])
	if err := checkHeaderLen(n, uint64(size)); err != nil {
		return nil, err
	}
	header := make([]byte, n)
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, shortRead(err, size)
	}
	return newHeader(header, int(uint64(size)-8-n))
}

// ReadData reads the data buffer that follows h from r, where ReadHeader
// left it, into one buffer of the length the header was checked against,
// and returns the file.
func (h *Header) ReadData(r io.Reader) (*File, error) {
	buf := make([]byte, h.dataLen)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, shortRead(err, int64(h.dataLen))
	}
	// Bytes past the size the header was checked against belong to no
	// tensor, as in a file that grew while it was read.
	var extra [1]byte
	if _, err := io.ReadFull(r, extra[:]); err == nil {
		return nil, malformed("file has bytes past the %d-byte data buffer its header describes", h.dataLen)
	} else if err != io.EOF {
		return nil, err
	}
	return &File{Header: *h, buf: buf}, nil
}

// shortRead is the error for a read of a file that ends before the size it
// was said to have: the file shrank, or size was wrong.
func shortRead(err error, size int64) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return malformed("file ends before the %d bytes it was said to have", size)
	}
	return err
}

// newHeader decodes and validates header, the JSON of a file whose data
// buffer is dataLen bytes long.
func newHeader(header []byte, dataLen int) (*Header, error) {
	entries, metadata, err := decodeHeader(header)
	if err != nil {
		return nil, err
	}
	tensors, err := validateEntries(entries, dataLen)
	if err != nil {
		return nil, err
	}
	return &Header{
		tensors:  tensors,
		names:    slices.Sorted(maps.Keys(tensors)),
		metadata: metadata,
		dataLen:  dataLen,
	}, nil
}

// Names returns the names of the file's tensors, sorted.
func (h *Header) Names() []string {
	return slices.Clone(h.names)
}

// Info returns the dtype and shape of the named tensor.
func (h *Header) Info(name string) (TensorInfo, error) {
	t, ok := h.tensors[name]
	if !ok {
		return TensorInfo{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return TensorInfo{DType: t.dtype, Shape: slices.Clone(t.shape)}, nil
}

// Metadata returns a copy of the header's "__metadata__" strings, or nil when
// the file has none.
func (h *Header) Metadata() map[string]string {
	return maps.Clone(h.metadata)
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
