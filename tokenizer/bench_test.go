package tokenizer

import (
	"context"
	"slices"
	"strings"
	"testing"
)

func BenchmarkEncode(b *testing.B) {
	tk := trainFixture(b)
	text := strings.Join(corpus(9, 50), "\n")
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		tk.Encode(text)
	}
}

func BenchmarkTrain(b *testing.B) {
	docs := corpus(9, 500)
	n := 0
	for _, d := range docs {
		n += len(d)
	}
	b.SetBytes(int64(n))
	for b.Loop() {
		if _, err := Train(context.Background(), slices.Values(docs), 1000, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEncodeAllocations locks in the scratch reuse of Encode: the result
// and a few buffers, not an allocation per word.
func TestEncodeAllocations(t *testing.T) {
	tk := trainFixture(t)
	text := strings.Join(corpus(9, 5), "\n")
	if n := testing.AllocsPerRun(10, func() { tk.Encode(text) }); n > 8 {
		t.Errorf("Encode of %d bytes makes %.0f allocations, want at most 8", len(text), n)
	}
}
