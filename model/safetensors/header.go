package safetensors

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxHeaderLen is the reference implementation's cap on the JSON header. It
// bounds what a corrupt length prefix can make Parse read and decode.
const maxHeaderLen = 100_000_000

// metadataKey is the header key that holds string metadata, not a tensor.
const metadataKey = "__metadata__"

// headerEntry is one tensor's header entry as written, before validation.
type headerEntry struct {
	name    string
	dtype   DType
	shape   []uint64
	offsets []uint64
}

// splitHeader checks the length prefix against the data and returns the
// header JSON and the data buffer after it.
func splitHeader(data []byte) (header, buf []byte, err error) {
	if len(data) < 8 {
		return nil, nil, malformed("file is %d bytes, too short for the 8-byte header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if err := checkHeaderLen(n, uint64(len(data))); err != nil {
		return nil, nil, err
	}
	return data[8 : 8+n], data[8+n:], nil
}

// checkHeaderLen checks a header length prefix n against the size of a
// file of size bytes, at least 8, before the header is read.
func checkHeaderLen(n, size uint64) error {
	if n > maxHeaderLen {
		return malformed("header length %d exceeds the limit of %d bytes", n, maxHeaderLen)
	}
	if n > size-8 {
		return malformed("header length %d runs past the end of the %d-byte file", n, size)
	}
	return nil
}

// decodeHeader decodes the header JSON into its tensor entries, in header
// order, and its metadata. It walks the top-level object token by token
// because encoding/json would silently keep the last of two equal keys, and
// a duplicated tensor name must be an error.
func decodeHeader(header []byte) ([]headerEntry, map[string]string, error) {
	if !utf8.Valid(header) {
		return nil, nil, malformed("header is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(header))
	if err := expectDelim(dec, '{'); err != nil {
		return nil, nil, err
	}
	var (
		entries  []headerEntry
		metadata map[string]string
		seen     = make(map[string]bool)
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, jsonError(dec, err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, nil, malformed("header JSON at byte %d: want a key, found %v", dec.InputOffset(), tok)
		}
		if seen[name] {
			return nil, nil, malformed("header names %q twice", name)
		}
		seen[name] = true
		if name == metadataKey {
			if metadata, err = decodeMetadata(dec); err != nil {
				return nil, nil, err
			}
			continue
		}
		e, err := decodeEntry(dec, name)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, e)
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, nil, err
	}
	// Writers pad the header with spaces to align the data buffer; JSON
	// whitespace is allowed after the object, anything else is not.
	if rest := bytes.TrimSpace(header[dec.InputOffset():]); len(rest) > 0 {
		return nil, nil, malformed("header has %.20q after its JSON object", rest)
	}
	return entries, metadata, nil
}

// decodeEntry decodes the value of one tensor's header entry. A missing
// field is an error, as in the reference implementation; unknown fields are
// ignored.
func decodeEntry(dec *json.Decoder, name string) (headerEntry, error) {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return headerEntry{}, jsonError(dec, err)
	}
	if raw[0] != '{' {
		return headerEntry{}, malformed("tensor %q: header entry %.40s is not an object", name, raw)
	}
	var fields struct {
		DType       *DType    `json:"dtype"`
		Shape       *[]uint64 `json:"shape"`
		DataOffsets *[]uint64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(raw, &fields); err != nil {
		return headerEntry{}, malformed("tensor %q: %v", name, err)
	}
	switch {
	case fields.DType == nil:
		return headerEntry{}, malformed("tensor %q: header entry has no dtype", name)
	case fields.Shape == nil:
		return headerEntry{}, malformed("tensor %q: header entry has no shape", name)
	case fields.DataOffsets == nil:
		return headerEntry{}, malformed("tensor %q: header entry has no data_offsets", name)
	}
	return headerEntry{name: name, dtype: *fields.DType, shape: *fields.Shape, offsets: *fields.DataOffsets}, nil
}

// decodeMetadata decodes the value of "__metadata__": an object of strings,
// or null as the reference implementation accepts.
func decodeMetadata(dec *json.Decoder) (map[string]string, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError(dec, err)
	}
	if tok == nil {
		return nil, nil
	}
	if tok != json.Delim('{') {
		return nil, malformed("%s is not an object of strings", metadataKey)
	}
	metadata := make(map[string]string)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonError(dec, err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, malformed("header JSON at byte %d: want a key, found %v", dec.InputOffset(), tok)
		}
		if tok, err = dec.Token(); err != nil {
			return nil, jsonError(dec, err)
		}
		value, ok := tok.(string)
		if !ok {
			return nil, malformed("%s value of %q is not a string", metadataKey, key)
		}
		if _, dup := metadata[key]; dup {
			return nil, malformed("%s names %q twice", metadataKey, key)
		}
		metadata[key] = value
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	return metadata, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonError(dec, err)
	}
	if tok != want {
		return malformed("header JSON at byte %d: want %v, found %v", dec.InputOffset(), want, tok)
	}
	return nil
}

func jsonError(dec *json.Decoder, err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return malformed("header JSON at byte %d: %v", dec.InputOffset(), err)
}

// validateEntries checks every entry against the data buffer of bufLen
// bytes: a known dtype, offsets inside the buffer whose length is exactly
// what shape and dtype need, and tensors that tile the buffer with neither
// overlap nor gap. It returns the tensors by name.
func validateEntries(entries []headerEntry, bufLen int) (map[string]tensor, error) {
	tensors := make(map[string]tensor, len(entries))
	for _, e := range entries {
		t, err := validateEntry(e, uint64(bufLen))
		if err != nil {
			return nil, err
		}
		tensors[e.name] = t
	}

	// Sorting by offsets, as the reference does, makes overlap and gap
	// checks a single walk; header order is arbitrary.
	sorted := slices.Clone(entries)
	slices.SortStableFunc(sorted, func(a, b headerEntry) int {
		return cmp.Or(cmp.Compare(a.offsets[0], b.offsets[0]), cmp.Compare(a.offsets[1], b.offsets[1]))
	})
	var pos uint64
	prev := ""
	for _, e := range sorted {
		begin, end := e.offsets[0], e.offsets[1]
		switch {
		case begin < pos:
			return nil, malformed("tensor %q: data_offsets [%d, %d] overlap tensor %q, which ends at %d", e.name, begin, end, prev, pos)
		case begin > pos && prev == "":
			return nil, malformed("bytes [0, %d) of the data buffer, before tensor %q, belong to no tensor", begin, e.name)
		case begin > pos:
			return nil, malformed("bytes [%d, %d) of the data buffer, between tensors %q and %q, belong to no tensor", pos, begin, prev, e.name)
		}
		pos, prev = end, e.name
	}
	if pos != uint64(bufLen) {
		return nil, malformed("bytes [%d, %d) at the end of the data buffer belong to no tensor", pos, bufLen)
	}
	return tensors, nil
}

// validateEntry checks one entry on its own against a buffer of bufLen bytes.
func validateEntry(e headerEntry, bufLen uint64) (tensor, error) {
	size, ok := dtypeSize(e.dtype)
	if !ok {
		return tensor{}, malformed("tensor %q: unknown dtype %q", e.name, e.dtype)
	}
	if len(e.offsets) != 2 {
		return tensor{}, malformed("tensor %q: data_offsets %s is not a [begin, end] pair", e.name, formatDims(e.offsets))
	}
	begin, end := e.offsets[0], e.offsets[1]
	if end < begin {
		return tensor{}, malformed("tensor %q: data_offsets [%d, %d] end before they begin", e.name, begin, end)
	}
	if end > bufLen {
		return tensor{}, malformed("tensor %q: data_offsets [%d, %d] run past the %d-byte data buffer", e.name, begin, end, bufLen)
	}
	count := uint64(1)
	for _, d := range e.shape {
		// A dimension must fit an int even when another one is zero and
		// the product stays small.
		hi, lo := bits.Mul64(count, d)
		if hi != 0 || d > math.MaxInt {
			return tensor{}, malformed("tensor %q: shape %s has too many elements", e.name, formatDims(e.shape))
		}
		count = lo
	}
	nbytes := end - begin
	if nbytes%size != 0 {
		return tensor{}, malformed("tensor %q: data_offsets [%d, %d] hold %d bytes, not a whole number of %d-byte %s values",
			e.name, begin, end, nbytes, size, e.dtype)
	}
	if count != nbytes/size {
		return tensor{}, malformed("tensor %q: data_offsets [%d, %d] hold %d %s values, shape %s needs %d",
			e.name, begin, end, nbytes/size, e.dtype, formatDims(e.shape), count)
	}
	shape := make([]int, len(e.shape))
	for i, d := range e.shape {
		shape[i] = int(d)
	}
	return tensor{dtype: e.dtype, shape: shape, begin: int(begin), end: int(end)}, nil
}

// formatDims writes dims as the header does, "[4, 8]", for error messages.
func formatDims(dims []uint64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range dims {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatUint(d, 10))
	}
	b.WriteByte(']')
	return b.String()
}
