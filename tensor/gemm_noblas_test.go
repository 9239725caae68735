//go:build !openblas

package tensor

import "testing"

// benchReference runs nothing without the openblas build tag.
func benchReference(b *testing.B, name string, c, a, bb []float32, m, k, n int) {}
