//go:build !amd64

package tensor

// prefetch does nothing where braid has no assembly for it.
func prefetch(uintptr) {}
