package tensor

import (
	"fmt"
	"unsafe"

	"github.com/braid-dev/braid/internal/half"
)

// IndexScoresF16 sets, for every block b of blocks and slot s < 16,
//
//	out[16·b+s] = Σ_{j<heads} w[j] · max(0, Σ_{d<dim} q[j·dim+d] · key_b[d·16+s])
//
// key_b being dim·16 half-precision values at blocks[b], laid out
// (dimension, slot) as a KV cache block lays out a head's keys: a
// lightning indexer's scores of 16 positions a block (DeepSeek's sparse
// attention). Each head's product is a chain of multiply-adds over d in
// order, and its weighted terms are added to zero in order of j, each
// rounded, whether or not the CPU has AVX-512 (which it uses, widening
// each key once for four heads). The lines of the block two on are
// fetched meanwhile. out holds at least 16·len(blocks) values; the
// memory at each block must hold dim·16 values, which this cannot check.
func IndexScoresF16(out, q, w []float32, heads, dim int, blocks []unsafe.Pointer) {
	n := len(blocks)
	if n == 0 || heads <= 0 || dim <= 0 {
		clear(out[:min(len(out), 16*n)])
		return
	}
	if len(out) < 16*n || len(q) < heads*dim || len(w) < heads {
		panic(fmt.Sprintf("tensor: IndexScoresF16 of %d blocks, %d heads of %d with %d queries, %d weights and %d scores", n, heads, dim, len(q), len(w), len(out)))
	}
	if indexKernels {
		indexScoresF16AVX512(n, &blocks[0], heads, dim, &q[0], &w[0], &out[0])
		return
	}
	indexScoresF16Go(out, q, w, heads, dim, blocks)
}

// indexScoresF16Go is IndexScoresF16 in Go.
func indexScoresF16Go(out, q, w []float32, heads, dim int, blocks []unsafe.Pointer) {
	var z [16]float32
	for b, p := range blocks {
		keys := unsafe.Slice((*uint16)(p), dim*16)
		o := out[16*b : 16*b+16]
		clear(o)
		for j := range heads {
			clear(z[:])
			for d, qd := range q[j*dim : (j+1)*dim] {
				for s, k := range keys[d*16 : d*16+16] {
					z[s] += qd * half.ToFloat32(k)
				}
			}
			for s, v := range z {
				o[s] += w[j] * relu(v)
			}
		}
	}
}

// AtLeast writes the values of x that are at least t (NaN never is), in
// order, to vals and their indices to at, and returns how many there
// are: the candidates of a top-k selection above a threshold. It uses
// AVX-512 where the CPU has it, which stores 16 values at a time, so vals
// and at must hold len(x)+16 values.
func AtLeast(vals []float32, at []int32, x []float32, t float32) int {
	n := len(x)
	if len(vals) < n+16 || len(at) < n+16 {
		panic(fmt.Sprintf("tensor: AtLeast of %d values into %d and %d", n, len(vals), len(at)))
	}
	c, i := 0, 0
	if indexKernels && n >= 16 {
		i = n &^ 15
		c = atLeastAVX512(&x[0], i, t, &vals[0], &at[0])
	}
	return atLeastGo(vals, at, x, t, c, i)
}

// atLeastGo is AtLeast in Go from x[i] on, c values found before it.
func atLeastGo(vals []float32, at []int32, x []float32, t float32, c, i int) int {
	for ; i < len(x); i++ {
		if v := x[i]; v >= t {
			vals[c], at[c] = v, int32(i)
			c++
		}
	}
	return c
}

// relu is max(v, 0), and 0 for NaN, as the kernel's VMAXPS computes it.
func relu(v float32) float32 {
	if v > 0 {
		return v
	}
	return 0
}

// CountAtLeast is how many values of x are at least t (NaN never is),
// with AVX-512 where the CPU has it: a top-k selection's count of the
// candidates above a trial threshold.
func CountAtLeast(x []float32, t float32) int {
	c, i := 0, 0
	if indexKernels && len(x) >= 16 {
		i = len(x) &^ 15
		c = countAtLeastAVX512(&x[0], i, t)
	}
	for _, v := range x[i:] {
		if v >= t {
			c++
		}
	}
	return c
}
