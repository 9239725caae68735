package tensor

import "fmt"

// Q8Head is a head's vector (queries, keys or values) quantized by
// QuantizeHead.
type Q8Head struct {
	// Corr is 128 times the sum of the head's bytes: ScoresQ8 takes it
	// away for the 128 added to every key's byte.
	Corr  int32
	Scale float32
}

// QuantizeHead rounds x, one head's vector, to signed bytes in dst times
// the returned scale (the largest magnitude over 127, each value rounded
// half to even), as the 8-bit weight products round their activations.
func QuantizeHead(dst []int8, x []float32) Q8Head {
	checkLen("QuantizeHead", len(dst), len(x))
	scale, sum := quantizeActivations(dst, x)
	return Q8Head{Corr: 128 * sum, Scale: scale}
}

// KeyByteQ8 is where ScoresQ8 reads dimension d of a block's key at slot
// (of 16) within one head's keys: dimensions in groups of four, each
// group's 16 slots of four bytes, as AVX-512 VNNI multiplies them. Each
// byte holds the key's signed 8-bit value plus 128.
func KeyByteQ8(d, slot int) int { return d/4*64 + slot*4 + d%4 }

// ScoresQ8 scores the 16 keys of a block of an 8-bit KV cache against
// quantized query heads: for h < heads and j < 16,
//
//	c[h·ldc+j] = float32(Σ_d q[h·ldq+d]·key_h[d][j]) · qh[h·ldh].Scale · ks[16h+j]
//
// where key_h[d][j] = b[h·ldbh + KeyByteQ8(d, j)] − 128 and ks holds the
// keys' scales, 16 a head; the sum over the hd dimensions (a multiple of
// 4) is exact in integers, then multiplied in that order. Meanwhile it
// fetches fetch (the next block's keys, heads·hd·16 bytes, or nil) into
// the core's caches.
//
// With AVX-512 VNNI (Ice Lake, Sapphire Rapids, Zen 4 and later), one
// instruction multiplies four dimensions of 16 keys: eight times the
// multiply-adds of widening half-precision keys to float32, from half the
// bytes. Elsewhere the same integers are summed in Go.
func ScoresQ8(heads, hd int, c []float32, ldc int, q []int8, ldq int, qh []Q8Head, ldh int, b []uint8, ldbh int, ks []float32, fetch []uint8) {
	if heads <= 0 {
		return
	}
	if hd <= 0 || hd%4 != 0 || len(c) < (heads-1)*ldc+16 || len(q) < (heads-1)*ldq+hd ||
		len(qh) < (heads-1)*ldh+1 || len(b) < (heads-1)*ldbh+hd*16 || len(ks) < 16*heads {
		panic(fmt.Sprintf("tensor: ScoresQ8 of %d heads of %d dimensions (strides %d, %d, %d, %d) with %d, %d, %d, %d and %d values",
			heads, hd, ldc, ldq, ldh, ldbh, len(c), len(q), len(qh), len(b), len(ks)))
	}
	if scoresQ8Kernel != nil {
		f := &b[0]
		if len(fetch) > 0 {
			f = &fetch[0]
		}
		scoresQ8Kernel(heads, hd/4, &q[0], ldq, &qh[0], ldh, &b[0], ldbh, &ks[0], &c[0], ldc, f)
		return
	}
	for h := range heads {
		qv, kb, head := q[h*ldq:h*ldq+hd], b[h*ldbh:], qh[h*ldh]
		for j := range 16 {
			var sum int32
			for d, x := range qv {
				sum += int32(x) * int32(kb[KeyByteQ8(d, j)])
			}
			c[h*ldc+j] = float32(sum-head.Corr) * head.Scale * ks[16*h+j]
		}
	}
}
