package model

import (
	"fmt"
	"math"
)

// maxBytes bounds what one model may allocate: Go's heap spans at most
// 2^48 bytes on 64-bit platforms, and make panics past that.
const maxBytes = min(1<<48, math.MaxInt)

// paramBytes is the size of c's parameters as float32: what NewParams
// allocates. Counted in float64, it cannot overflow, and it is exact while
// it is at most maxBytes: every term and factor is a positive integer no
// larger than the total, so below 2^53.
func (c Config) paramBytes() float64 {
	v, d, h := float64(c.Vocab), float64(c.Dim), float64(c.Hidden)
	qd, kvd := float64(c.Heads)*float64(c.HeadDim), float64(c.KVHeads)*float64(c.HeadDim)
	layer := 2*d + 2*qd*d + 2*kvd*d + 3*h*d
	if c.QKVBias {
		layer += qd + 2*kvd
	}
	if c.HasIndexer() {
		ih, id := float64(c.IndexHeads), float64(c.IndexDim)
		layer += (ih*id + id + ih) * d
	}
	n := v*d + float64(c.Layers)*layer + d
	if !c.TiedEmbeddings {
		n += v * d
	}
	return 4 * n
}

// ropeBytes is the size of c's rotary tables, a float32 cosine and sine
// for every position and pair of head dimensions (the attention's and the
// indexer's), counted as paramBytes is.
func (c Config) ropeBytes() float64 {
	return 4 * float64(c.MaxSeq) * float64(c.HeadDim+c.IndexDim)
}

// CheckMemory reports an error when need bytes are more than one model may
// allocate or than the memory available, so that a shape too large for the
// machine fails with an error naming the sizes, not in the allocator; its
// callers count need in float64, which cannot overflow. Where the
// available memory cannot be read, only the 2^48 bytes a Go heap can span
// are checked.
func CheckMemory(need float64) error {
	if need > maxBytes {
		return fmt.Errorf("they need %s, more than the %s a Go program can allocate", formatBytes(need), formatBytes(maxBytes))
	}
	if avail, ok := availableMemory(); ok && need > float64(avail) {
		return fmt.Errorf("they need %s; %s of memory is available", formatBytes(need), formatBytes(float64(avail)))
	}
	return nil
}

// formatBytes writes n bytes in the largest binary unit below it.
func formatBytes(n float64) string {
	for _, u := range []struct {
		name string
		size float64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size {
			return fmt.Sprintf("%.4g %s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%.0f bytes", n)
}
