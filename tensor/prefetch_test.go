package tensor

import "testing"

// Prefetch is a hint: it takes any slice, empty, unaligned or spanning
// many lines, and changes nothing in it.
func TestPrefetchChangesNothing(t *testing.T) {
	b := make([]uint16, 1000)
	for i := range b {
		b[i] = uint16(i)
	}
	Prefetch(b)
	Prefetch(b[3:5])
	Prefetch(b[999:])
	Prefetch(b[:0])
	Prefetch[float32](nil)
	for i, v := range b {
		if v != uint16(i) {
			t.Fatalf("value %d is %d after Prefetch", i, v)
		}
	}
}
