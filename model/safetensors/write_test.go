package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/braid-dev/braid/internal/half"
)

func TestWriteRoundTrip(t *testing.T) {
	tensors := []Tensor{
		{Name: "model.layers.0.self_attn.q_proj.weight", Shape: []int{2, 3}, Data: []float32{1, -2, 3.5, 0x1p-149, float32(math.Inf(-1)), float32(math.NaN())}},
		{Name: "model.norm.weight", Shape: []int{3}, Data: []float32{1, float32(math.Copysign(0, -1)), math.MaxFloat32}},
		{Name: "empty", Shape: []int{0}, Data: []float32{}},
		{Name: "empty 2d", Shape: []int{4, 0}, Data: nil},
		{Name: "scalar", Shape: []int{}, Data: []float32{42}},
		{Name: "nil-shaped scalar", Data: []float32{7}},
		{Name: "needs <escaping> & \"quotes\"", Shape: []int{1}, Data: []float32{-1}},
	}
	metadata := map[string]string{"format": "pt", "braid": "step 7"}

	var buf bytes.Buffer
	if err := Write(&buf, tensors, metadata); err != nil {
		t.Fatal(err)
	}
	if n := binary.LittleEndian.Uint64(buf.Bytes()); n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	f, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}

	var wantNames []string
	for _, tt := range tensors {
		wantNames = append(wantNames, tt.Name)
	}
	slices.Sort(wantNames)
	if got := f.Names(); !slices.Equal(got, wantNames) {
		t.Errorf("Names() = %q, want %q", got, wantNames)
	}
	if got := f.Metadata(); len(got) != 2 || got["format"] != "pt" || got["braid"] != "step 7" {
		t.Errorf("Metadata() = %v, want %v", got, metadata)
	}
	for _, tt := range tensors {
		info, err := f.Info(tt.Name)
		if err != nil {
			t.Fatal(err)
		}
		if info.DType != F32 || !slices.Equal(info.Shape, tt.Shape) {
			t.Errorf("Info(%q) = %v %v, want F32 %v", tt.Name, info.DType, info.Shape, tt.Shape)
		}
		got, err := f.Float32(tt.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !sameFloats(got, tt.Data) {
			t.Errorf("Float32(%q) = %v, want %v", tt.Name, got, tt.Data)
		}
	}
}

// TestWriteLayout checks the exact bytes written. The first four cases are
// byte for byte the files the reference implementation's own tests expect
// it to write.
func TestWriteLayout(t *testing.T) {
	tests := []struct {
		name     string
		tensors  []Tensor
		metadata map[string]string
		want     []byte
	}{
		{
			name: "no tensors",
			want: withLength(8, "{}      "),
		},
		{
			name:     "metadata only",
			metadata: map[string]string{"framework": "pt"},
			want:     withLength(40, `{"__metadata__":{"framework":"pt"}}     `),
		},
		{
			name:    "header needs no padding",
			tensors: []Tensor{{Name: "attn.0", Shape: []int{1, 2, 3}, Data: []float32{0, 1, 2, 3, 4, 5}}},
			want: append(withLength(64, `{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`),
				f32Bytes(0, 1, 2, 3, 4, 5)...),
		},
		{
			name:    "header padded to align the data",
			tensors: []Tensor{{Name: "attn0", Shape: []int{1, 1, 2, 3}, Data: []float32{0, 1, 2, 3, 4, 5}}},
			want: append(withLength(72, `{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       `),
				f32Bytes(0, 1, 2, 3, 4, 5)...),
		},
		{
			name: "tensors sorted by name",
			tensors: []Tensor{
				{Name: "b", Shape: []int{1}, Data: []float32{2}},
				{Name: "a", Shape: []int{2}, Data: []float32{1, 1}},
			},
			metadata: map[string]string{"format": "pt"},
			want: file(`{"__metadata__":{"format":"pt"},`+
				`"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},`+
				`"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`,
				f32Bytes(1, 1, 2)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, tt.tensors, tt.metadata); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), tt.want) {
				t.Errorf("Write() wrote\n%q\nwant\n%q", buf.Bytes(), tt.want)
			}
		})
	}
}

func TestWriteRejects(t *testing.T) {
	tests := []struct {
		name     string
		tensors  []Tensor
		metadata map[string]string
		wantErr  string
	}{
		{"duplicate name", []Tensor{{Name: "a", Data: []float32{1}}, {Name: "a", Data: []float32{2}}}, nil, `tensor "a" given twice`},
		{"empty name", []Tensor{{Shape: []int{1}, Data: []float32{1}}}, nil, "tensor with shape [1] has no name"},
		{"reserved name", []Tensor{{Name: "__metadata__", Data: []float32{1}}}, nil, `tensor name "__metadata__" is reserved`},
		{"name not UTF-8", []Tensor{{Name: "\xff", Data: []float32{1}}}, nil, "not valid UTF-8"},
		{"negative dimension", []Tensor{{Name: "a", Shape: []int{-1}}}, nil, `tensor "a": shape [-1] has a negative dimension`},
		{"too few values", []Tensor{{Name: "a", Shape: []int{2, 3}, Data: []float32{1}}}, nil, `tensor "a": shape [2 3] needs 6 values, Data has 1`},
		{"shape overflows", []Tensor{{Name: "a", Shape: []int{math.MaxInt, 2}}}, nil, "has too many elements"},
		{"metadata not UTF-8", nil, map[string]string{"format": "\xff"}, `metadata "format"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, tt.tensors, tt.metadata)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Write() error = %v, want it to contain %q", err, tt.wantErr)
			}
			if buf.Len() != 0 {
				t.Errorf("Write() wrote %d bytes before failing", buf.Len())
			}
		})
	}
}

// failingWriter accepts n bytes, then fails.
type failingWriter struct{ n int }

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errDiskFull
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteReportsWriterError(t *testing.T) {
	big := Tensor{Name: "big", Shape: []int{1 << 16}, Data: make([]float32, 1<<16)}
	for _, n := range []int{0, 100, 1 << 17} {
		err := Write(&failingWriter{n: n}, []Tensor{big}, nil)
		if !errors.Is(err, errDiskFull) {
			t.Errorf("Write() to a writer failing after %d bytes: error = %v, want %v", n, err, errDiskFull)
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	tensors := []Tensor{{Name: "w", Shape: []int{2}, Data: []float32{1, 2}}}
	if err := WriteFile(path, tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}

	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := f.Float32("w"); err != nil || !slices.Equal(got, []float32{1, 2}) {
		t.Errorf("Float32(w) = %v, %v, want [1 2]", got, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// The replaced file's mode is kept (a new file gets 0644).
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode = %v, want the replaced file's 0600", perm)
	}
	expectOnlyFile(t, dir, "model.safetensors")
}

func TestWriteFileFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := []Tensor{{Name: "w", Shape: []int{3}, Data: []float32{1}}}
	err := WriteFile(path, bad, nil)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("WriteFile() error = %v, want one naming %s", err, path)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("file holds %q after a failed write, want the old contents", got)
	}
	expectOnlyFile(t, dir, "model.safetensors")
}

func TestWriteFileMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "model.safetensors")
	if err := WriteFile(path, nil, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("WriteFile() error = %v, want a not-exist error", err)
	}
}

// expectOnlyFile fails unless dir holds exactly one entry, name: no
// temporary file may be left behind.
func expectOnlyFile(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{name}) {
		t.Errorf("directory holds %q, want only %q", names, name)
	}
}

func TestWriteF16RoundTrips(t *testing.T) {
	data := []float32{0, 1, -2.5, 65504, 1e-7, 3.14159, 1e6}
	var b bytes.Buffer
	if err := Write(&b, []Tensor{{Name: "w", Shape: []int{7}, Data: data, DType: F16}, {Name: "x", Shape: []int{1}, Data: []float32{1.5}}}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	info, _ := f.Info("w")
	got, err := f.Float32("w")
	if err != nil || info.DType != F16 {
		t.Fatalf("%v, dtype %s", err, info.DType)
	}
	for i, v := range data {
		if want := half.ToFloat32(half.FromFloat32(v)); got[i] != want {
			t.Errorf("value %d: %g, want %g (%g rounded to a half)", i, got[i], want, v)
		}
	}
	if x, _ := f.Float32("x"); x[0] != 1.5 {
		t.Errorf("the F32 tensor beside it reads %g", x[0])
	}
	if err := Write(io.Discard, []Tensor{{Name: "w", Shape: []int{1}, Data: []float32{1}, DType: BF16}}, nil); err == nil {
		t.Error("a BF16 tensor was written")
	}
}
