package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// file assembles a safetensors file from its header JSON and data buffer,
// padding the header with spaces to a multiple of 8 bytes as the reference
// writer does.
func file(header string, data []byte) []byte {
	header += strings.Repeat(" ", (8-len(header)%8)%8)
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	out = append(out, header...)
	return append(out, data...)
}

// withLength is a file whose length prefix is n whatever follows it.
func withLength(n uint64, rest string) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
}

func f32Bytes(vals ...float32) []byte {
	var out []byte
	for _, v := range vals {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
	}
	return out
}

func u16Bytes(vals ...uint16) []byte {
	var out []byte
	for _, v := range vals {
		out = binary.LittleEndian.AppendUint16(out, v)
	}
	return out
}

func i64Bytes(vals ...int64) []byte {
	var out []byte
	for _, v := range vals {
		out = binary.LittleEndian.AppendUint64(out, uint64(v))
	}
	return out
}

// hfFixture is a file laid out as Hugging Face's safetensors writes one from
// a PyTorch state dict: "format": "pt" metadata first, tensors ordered by
// descending dtype alignment and then by name, the header padded with
// spaces. The F16 and BF16 tensors hold 1, -2.5, the largest finite value
// (65280 for BF16, which cannot hold 65504), the smallest subnormal, +Inf,
// NaN, -0 and the smallest normal.
func hfFixture() []byte {
	header := `{"__metadata__":{"format":"pt"},` +
		`"position_ids":{"dtype":"I64","shape":[1,3],"data_offsets":[0,24]},` +
		`"model.norm.weight":{"dtype":"F32","shape":[2],"data_offsets":[24,32]},` +
		`"model.embed_tokens.weight":{"dtype":"BF16","shape":[2,4],"data_offsets":[32,48]},` +
		`"lm_head.weight":{"dtype":"F16","shape":[2,4],"data_offsets":[48,64]}}`
	var data []byte
	data = append(data, i64Bytes(0, 1, 2)...)
	data = append(data, f32Bytes(1, -0.5)...)
	data = append(data, u16Bytes(0x3f80, 0xc020, 0x477f, 0x0001, 0x7f80, 0x7fc0, 0x8000, 0x0080)...)
	data = append(data, u16Bytes(0x3c00, 0xc100, 0x7bff, 0x0001, 0x7c00, 0x7e00, 0x8000, 0x0400)...)
	return file(header, data)
}

const fixturePath = "testdata/hf_f16_bf16.safetensors"

// TestFixtureGolden keeps the checked-in fixture equal to hfFixture; run
// with -update to rewrite it.
func TestFixtureGolden(t *testing.T) {
	want := hfFixture()
	if *update {
		if err := os.WriteFile(fixturePath, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from hfFixture; run go test -run TestFixtureGolden -update", fixturePath)
	}
}

// sameFloats reports whether got and want hold the same values, telling -0
// from 0 and taking any NaN as equal to any NaN.
func sameFloats(got, want []float32) bool {
	return slices.EqualFunc(got, want, func(a, b float32) bool {
		if math.IsNaN(float64(a)) || math.IsNaN(float64(b)) {
			return math.IsNaN(float64(a)) && math.IsNaN(float64(b))
		}
		return a == b && math.Signbit(float64(a)) == math.Signbit(float64(b))
	})
}

func TestOpenHFFixture(t *testing.T) {
	f, err := Open(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{"lm_head.weight", "model.embed_tokens.weight", "model.norm.weight", "position_ids"}
	if got := f.Names(); !slices.Equal(got, wantNames) {
		t.Errorf("Names() = %q, want %q", got, wantNames)
	}
	if got := f.Metadata(); len(got) != 1 || got["format"] != "pt" {
		t.Errorf("Metadata() = %v, want map[format:pt]", got)
	}

	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	negZero := float32(math.Copysign(0, -1))
	tests := []struct {
		name  string
		dtype DType
		shape []int
		want  []float32
	}{
		{"lm_head.weight", F16, []int{2, 4}, []float32{1, -2.5, 65504, 0x1p-24, inf, nan, negZero, 0x1p-14}},
		{"model.embed_tokens.weight", BF16, []int{2, 4}, []float32{1, -2.5, 65280, 0x1p-133, inf, nan, negZero, 0x1p-126}},
		{"model.norm.weight", F32, []int{2}, []float32{1, -0.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := f.Info(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if info.DType != tt.dtype || !slices.Equal(info.Shape, tt.shape) {
				t.Errorf("Info() = %v %v, want %v %v", info.DType, info.Shape, tt.dtype, tt.shape)
			}
			got, err := f.Float32(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if !sameFloats(got, tt.want) {
				t.Errorf("Float32() = %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("I64 is listed but not converted", func(t *testing.T) {
		info, err := f.Info("position_ids")
		if err != nil || info.DType != "I64" || !slices.Equal(info.Shape, []int{1, 3}) {
			t.Errorf("Info() = %v, %v, want I64 [1 3]", info, err)
		}
		_, err = f.Float32("position_ids")
		if err == nil || !strings.Contains(err.Error(), "dtype I64") {
			t.Errorf("Float32() error = %v, want one naming dtype I64", err)
		}
	})
}

func TestMissingTensor(t *testing.T) {
	f, err := Parse(hfFixture())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Info("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Info(nope) error = %v, want ErrNotFound", err)
	}
	if _, err := f.Float32("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Float32(nope) error = %v, want ErrNotFound", err)
	}
}

func TestOpenMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.safetensors")
	_, err := Open(path)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("Open() error = %v, want a not-exist error naming the path", err)
	}
}

// TestParseAccepts covers files that are unusual but valid.
func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name      string
		data      []byte
		wantNames []string
	}{
		{"no tensors", file(`{}`, nil), []string{}},
		{"no padding", withLength(2, "{}"), []string{}},
		{"whitespace padding", withLength(6, "{}\t\r\n "), []string{}},
		{"null metadata", file(`{"__metadata__":null}`, nil), []string{}},
		{"header order differs from data order",
			file(`{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32Bytes(1, 2)),
			[]string{"a", "b"}},
		{"empty tensors share an offset",
			file(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F16","shape":[2,0],"data_offsets":[0,0]},"c":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, f32Bytes(1)),
			[]string{"a", "b", "c"}},
		{"unknown entry fields are ignored",
			file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"note":"x"}}`, []byte{7}),
			[]string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Names(); !slices.Equal(got, tt.wantNames) {
				t.Errorf("Names() = %q, want %q", got, tt.wantNames)
			}
		})
	}
}

// parseRejects lists one malformed file for every reason Parse rejects one.
var parseRejects = []struct {
	name    string
	data    []byte
	wantErr string
}{
	{"empty file", nil, "file is 0 bytes, too short for the 8-byte header length"},
	{"truncated header length", []byte{8, 0, 0}, "file is 3 bytes, too short"},
	{"header length past EOF", withLength(100, `{}`), "header length 100 runs past the end of the 10-byte file"},
	{"header length past the cap", withLength(1<<40, `{}`), "header length 1099511627776 exceeds the limit of 100000000 bytes"},
	{"header length wraps around", withLength(math.MaxUint64, `{}`), "exceeds the limit"},
	{"empty header", withLength(0, ""), "header JSON at byte 0: unexpected EOF"},
	{"bad JSON", file(`{"a":{"dtype":"F32",}}`, nil), "header JSON"},
	{"truncated JSON", withLength(5, `{"a":`), "unexpected EOF"},
	{"header is not an object", file(`[1]`, nil), "want {, found ["},
	{"header is not UTF-8", file("{\"\xff\":1}", nil), "not valid UTF-8"},
	{"data after the header object", file(`{} {}`, nil), `header has "{}" after its JSON object`},
	{"NUL padding", withLength(8, "{}\x00\x00\x00\x00\x00\x00"), `header has "\x00\x00\x00\x00\x00\x00" after its JSON object`},
	{"duplicate tensor name",
		file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32Bytes(1, 2)),
		`header names "a" twice`},
	{"duplicate metadata", file(`{"__metadata__":{},"__metadata__":{}}`, nil), `header names "__metadata__" twice`},
	{"duplicate metadata key", file(`{"__metadata__":{"format":"pt","format":"np"}}`, nil), `__metadata__ names "format" twice`},
	{"metadata value not a string", file(`{"__metadata__":{"step":1}}`, nil), `__metadata__ value of "step" is not a string`},
	{"metadata not an object", file(`{"__metadata__":["pt"]}`, nil), "__metadata__ is not an object of strings"},
	{"entry not an object", file(`{"a":[1,2]}`, nil), `tensor "a": header entry [1,2] is not an object`},
	{"missing dtype", file(`{"a":{"shape":[0],"data_offsets":[0,0]}}`, nil), `tensor "a": header entry has no dtype`},
	{"missing shape", file(`{"a":{"dtype":"F32","data_offsets":[0,0]}}`, nil), `tensor "a": header entry has no shape`},
	{"missing data_offsets", file(`{"a":{"dtype":"F32","shape":[0]}}`, nil), `tensor "a": header entry has no data_offsets`},
	{"negative dimension", file(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}`, nil), `tensor "a": json: cannot unmarshal number -1`},
	{"fractional offset", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.5]}}`, nil), `tensor "a": json: cannot unmarshal number 4.5`},
	{"unknown dtype", file(`{"a":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}}`, f32Bytes(1)), `tensor "a": unknown dtype "F17"`},
	{"sub-byte dtype", file(`{"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}`, []byte{0}), `tensor "a": unknown dtype "F4"`},
	{"offsets not a pair", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, f32Bytes(1, 2)), `tensor "a": data_offsets [0, 4, 8] is not a [begin, end] pair`},
	{"offsets reversed", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, f32Bytes(1)), `tensor "a": data_offsets [4, 0] end before they begin`},
	{"offsets out of range", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, f32Bytes(1)), `tensor "a": data_offsets [0, 8] run past the 4-byte data buffer`},
	{"shape mismatch",
		file(`{"model.embed_tokens.weight":{"dtype":"F32","shape":[4,8],"data_offsets":[0,96]}}`, make([]byte, 96)),
		`safetensors: tensor "model.embed_tokens.weight": data_offsets [0, 96] hold 24 F32 values, shape [4, 8] needs 32`},
	{"partial element", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,6]}}`, make([]byte, 6)), `tensor "a": data_offsets [0, 6] hold 6 bytes, not a whole number of 4-byte F32 values`},
	{"shape overflows", file(`{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, nil), `tensor "a": shape [4294967296, 4294967296] has too many elements`},
	{"dimension past MaxInt beside a zero", file(`{"a":{"dtype":"U8","shape":[0,9223372036854775808],"data_offsets":[0,0]}}`, nil), "has too many elements"},
	{"overlap",
		file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, f32Bytes(1, 2, 3)),
		`tensor "b": data_offsets [4, 12] overlap tensor "a", which ends at 8`},
	{"same range twice",
		file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32Bytes(1)),
		`tensor "b": data_offsets [0, 4] overlap tensor "a"`},
	{"gap between tensors",
		file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, f32Bytes(1, 2, 3)),
		`bytes [4, 8) of the data buffer, between tensors "a" and "b", belong to no tensor`},
	{"gap before the first tensor",
		file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32Bytes(1, 2)),
		`bytes [0, 4) of the data buffer, before tensor "a", belong to no tensor`},
	{"bytes after the last tensor",
		file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32Bytes(1, 2)),
		"bytes [4, 8) at the end of the data buffer belong to no tensor"},
	{"data but no tensors", file(`{}`, []byte{1}), "bytes [0, 1) at the end of the data buffer belong to no tensor"},
}

func TestParseRejects(t *testing.T) {
	for _, tt := range parseRejects {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(tt.data)
			if err == nil {
				t.Fatalf("Parse() = %v, want an error", f.Names())
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Parse() error %q does not match ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse() error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestOpenRejectsWithPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.safetensors")
	if err := os.WriteFile(path, withLength(100, `{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), path) {
		t.Errorf("Open() error = %v, want ErrMalformed naming the path", err)
	}
}

// bytesAllocated reports how many heap bytes fn allocates.
func bytesAllocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestParseAllocation checks that headers claiming far more than the file
// holds cost no more than the file's size justifies.
func TestParseAllocation(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"huge header length", withLength(maxHeaderLen, `{}`)},
		{"huge tensor", file(`{"a":{"dtype":"F32","shape":[1000000000],"data_offsets":[0,4000000000]}}`, f32Bytes(1))},
		{"huge empty tensor", file(`{"a":{"dtype":"F32","shape":[1000000000,1000000000,0],"data_offsets":[0,0]}}`, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := bytesAllocated(func() {
				if f, err := Parse(tt.data); err == nil {
					for _, name := range f.Names() {
						f.Float32(name)
					}
				}
			})
			if n > 64<<10 {
				t.Errorf("parsing a %d-byte file allocated %d bytes", len(tt.data), n)
			}
		})
	}
}

// readInTwo reads data as Open reads a file: the header, then the data.
func readInTwo(data []byte, size int64) (*File, error) {
	r := bytes.NewReader(data)
	h, err := ReadHeader(r, size)
	if err != nil {
		return nil, err
	}
	return h.ReadData(r)
}

// TestReadHeaderMatchesParse checks that reading a file in two steps
// accepts and rejects what Parse does, with the same errors.
func TestReadHeaderMatchesParse(t *testing.T) {
	for _, tt := range parseRejects {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readInTwo(tt.data, int64(len(tt.data)))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ReadHeader(), ReadData() error = %v, want ErrMalformed containing %q", err, tt.wantErr)
			}
		})
	}
	f, err := readInTwo(hfFixture(), int64(len(hfFixture())))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Parse(hfFixture())
	if !slices.Equal(f.Names(), want.Names()) || !bytes.Equal(f.buf, want.buf) {
		t.Errorf("read tensors %q, %d data bytes; Parse gives %q, %d", f.Names(), len(f.buf), want.Names(), len(want.buf))
	}
}

// TestReadHeaderReadsNoData checks that a header claiming a terabyte of
// tensors is read, and its shapes reported, without reading or allocating
// the data.
func TestReadHeaderReadsNoData(t *testing.T) {
	header := file(`{"a":{"dtype":"F32","shape":[250000000000],"data_offsets":[0,1000000000000]}}`, nil)
	size := int64(len(header)) + 1e12
	var h *Header
	var err error
	n := bytesAllocated(func() {
		// A reader that ends at the header fails any read of the data.
		h, err = ReadHeader(bytes.NewReader(header), size)
	})
	if err != nil {
		t.Fatal(err)
	}
	if info, err := h.Info("a"); err != nil || !slices.Equal(info.Shape, []int{250000000000}) {
		t.Errorf("Info(a) = %v, %v", info, err)
	}
	if n > 64<<10 {
		t.Errorf("reading a %d-byte header allocated %d bytes", len(header), n)
	}
}

func TestReadDataRejects(t *testing.T) {
	data := file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, f32Bytes(1, 2))
	for _, tt := range []struct {
		name    string
		data    []byte
		size    int64
		wantErr string
	}{
		{"file shorter than its size", data[:len(data)-1], int64(len(data)), "file ends before the 8 bytes it was said to have"},
		{"header shorter than its length", data[:12], int64(len(data)), "file ends before"},
		{"file longer than its size", append(slices.Clone(data), 0), int64(len(data)), "file has bytes past the 8-byte data buffer"},
		{"size under 8", data, 7, "file is 7 bytes, too short"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readInTwo(tt.data, tt.size)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want ErrMalformed containing %q", err, tt.wantErr)
			}
		})
	}
}
