package safetensors

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error it returns is
// ErrMalformed, that reading the file with ReadHeader and ReadData agrees,
// that they and Float32 allocate in proportion to the input, and that
// whatever Parse accepts converts and survives a write and a re-read.
func FuzzParse(f *testing.F) {
	if fixture, err := os.ReadFile(fixturePath); err == nil {
		f.Add(fixture)
	}
	for _, tt := range parseRejects {
		f.Add(tt.data)
	}
	var buf bytes.Buffer
	Write(&buf, []Tensor{
		{Name: "a", Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4}},
		{Name: "b", Shape: []int{0}},
		{Name: "c", Data: []float32{5}},
	}, map[string]string{"format": "pt"})
	f.Add(buf.Bytes())

	f.Fuzz(func(t *testing.T, data []byte) {
		var (
			parsed    *File
			err       error
			converted []Tensor
		)
		allocated := bytesAllocated(func() {
			parsed, err = Parse(data)
			// Reading the file in two steps, as Open does, must agree.
			if _, err2 := readInTwo(data, int64(len(data))); (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
				t.Fatalf("Parse() error %v, ReadHeader() and ReadData() error %v", err, err2)
			}
			if err != nil {
				return
			}
			for _, name := range parsed.Names() {
				info, err := parsed.Info(name)
				if err != nil {
					t.Fatalf("Info(%q) of a listed name: %v", name, err)
				}
				values, err := parsed.Float32(name)
				if err != nil {
					if slices.Contains([]DType{F32, F16, BF16, F64}, info.DType) {
						t.Fatalf("Float32(%q) of a %s tensor: %v", name, info.DType, err)
					}
					continue
				}
				count := 1
				for _, d := range info.Shape {
					count *= d
				}
				if count != len(values) {
					t.Fatalf("Float32(%q) returned %d values for shape %v", name, len(values), info.Shape)
				}
				converted = append(converted, Tensor{Name: name, Shape: info.Shape, Data: values})
			}
		})
		// Decoding JSON costs some tens of bytes per header byte, and F16
		// widens to twice its size; a limit well above both still catches
		// an allocation sized by a number read from the file.
		if limit := uint64(200*len(data) + 1<<20); allocated > limit {
			t.Fatalf("a %d-byte input allocated %d bytes", len(data), allocated)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse() error %q does not match ErrMalformed", err)
			}
			return
		}

		// Write refuses an empty name, which the format allows.
		if slices.ContainsFunc(converted, func(t Tensor) bool { return t.Name == "" }) {
			return
		}
		var buf bytes.Buffer
		if err := Write(&buf, converted, parsed.Metadata()); err != nil {
			t.Fatalf("Write() of parsed tensors: %v", err)
		}
		again, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("Parse() of written file: %v", err)
		}
		for _, want := range converted {
			got, err := again.Float32(want.Name)
			if err != nil {
				t.Fatal(err)
			}
			if !sameFloats(got, want.Data) {
				t.Fatalf("tensor %q read back as %v, want %v", want.Name, got, want.Data)
			}
		}
	})
}
