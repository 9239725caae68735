package tensor

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/braid-dev/braid/internal/half"
)

// Products of operands kept in AMX's own layouts, for a caller that
// multiplies one operand many times or can lay it out as it makes it:
// attention's per-head products, where Gemm's packing of both operands on
// every call would cost more than the product. A TileA is bfloat16 rows,
// which a tile loads at any stride; a TileB is the "pairs" layout the
// instruction reads for its right operand, row p holding depths 2p and
// 2p+1 of every column side by side. Both are padded with zeros to whole
// tiles: 32 rows of a, 32 depths, 32 columns of b.

// amxPairsFunc computes 32 rows by chunks·32 columns of c (stride ldc)
// from a TileA's rows (stride lda) and a TileB's pair rows (stride ldb),
// over ksteps steps of 32 depths; strides in values.
type amxPairsFunc func(a []uint16, lda int, b []uint16, ldb int, c []float32, ldc, ksteps, chunks int, acc bool)

// amxPairsBF16 is the kernel of MulTiles, nil where the CPU has no AMX.
var amxPairsBF16 = amxPairsKernel()

// TilesAvailable says whether MulTiles can run here: the CPU has AMX
// tiles and the kernel grants them.
func TilesAvailable() bool { return amxPairsBF16 != nil }

func roundUp32(n int) int { return (n + 31) &^ 31 }

// TileA is an m×k matrix in bfloat16 rows, the left operand of MulTiles.
// Its zero value is empty; Set fills it, reusing its memory.
type TileA struct {
	m, k, ld int
	data     []uint16
	scratch  [][]uint16 // each part's pairs of a transposed operand
	zero     []float32
}

// Set lays out op(a) (m×k; a stored k×m when trans) as a TileA.
func (t *TileA) Set(a Mat, m, k int, trans bool) { t.SetThreads(1, a, m, k, trans) }

// SetThreads is Set on up to threads goroutines.
func (t *TileA) SetThreads(threads int, a Mat, m, k int, trans bool) {
	ar, ac := m, k
	if trans {
		ar, ac = k, m
	}
	checkMat("TileA", a, ar, ac)
	t.m, t.k, t.ld = m, k, roundUp32(k)
	t.data = grow(t.data, roundUp32(m)*t.ld)
	clear(t.data[m*t.ld:]) // the rows that pad the last tile
	if !trans {
		split(threads, m, m*k, func(_, lo, hi int) {
			for i := lo; i < hi; i++ {
				row := t.data[i*t.ld : (i+1)*t.ld]
				ToBF16(row[:k], a.Data[i*a.Stride:i*a.Stride+k])
				clear(row[k:])
			}
		})
		return
	}
	// a is stored k×m: lay out 32 of its rows (32 depths of every row of
	// op(a)) at a time as 16 rows of pairs, one 32-bit word per row of
	// op(a) each, then gather each row's 16 words into the one 64-byte
	// line they make, reading down the pairs while they are in L1. Each
	// part does its own steps of 32 depths.
	t.zero = grow(t.zero, m)
	clear(t.zero)
	words := unsafe.Slice((*uint32)(unsafe.Pointer(&t.data[0])), len(t.data)/2)
	wld := t.ld / 2
	t.scratch = partScratch(t.scratch, split(threads, ceilDiv(k, 32), m*k, nil), 32*m)
	split(threads, ceilDiv(k, 32), m*k, func(part, lo, hi int) {
		pairs := unsafe.Slice((*uint32)(unsafe.Pointer(&t.scratch[part][0])), 16*m)
		for d0 := lo * 32; d0 < min(k, hi*32); d0 += 32 {
			steps := (min(32, k-d0) + 1) / 2
			for p := range steps {
				r0, r1 := a.Data[(d0+2*p)*a.Stride:][:m], t.zero
				if d0+2*p+1 < k {
					r1 = a.Data[(d0+2*p+1)*a.Stride:][:m]
				}
				dst := t.scratch[part][2*p*m : 2*(p+1)*m]
				for i := pairsVector(dst, r0, r1); i < m; i++ {
					dst[2*i], dst[2*i+1] = half.BF16FromFloat32(r0[i]), half.BF16FromFloat32(r1[i])
				}
			}
			for i := range m {
				line := words[i*wld+d0/2 : i*wld+d0/2+steps]
				for p := range line {
					line[p] = pairs[p*m+i]
				}
			}
		}
	})
	if k < t.ld {
		for i := range m {
			clear(t.data[i*t.ld+k : (i+1)*t.ld])
		}
	}
}

// TileB is a k×n matrix in the pairs layout, the right operand of
// MulTiles. Its zero value is empty; Set fills it, reusing its memory.
type TileB struct {
	k, n, ld int // ld: values per pair row, 2·n rounded up to 64
	data     []uint16
	scratch  [][]uint16 // each part's rounded rows of a transposed operand
	zero     []float32
}

// Set lays out op(b) (k×n; b stored n×k when trans) as a TileB.
func (t *TileB) Set(b Mat, k, n int, trans bool) { t.SetThreads(1, b, k, n, trans) }

// SetThreads is Set on up to threads goroutines.
func (t *TileB) SetThreads(threads int, b Mat, k, n int, trans bool) {
	br, bc := k, n
	if trans {
		br, bc = n, k
	}
	checkMat("TileB", b, br, bc)
	t.k, t.n, t.ld = k, n, 2*roundUp32(n)
	pairRows := (k + 1) / 2
	t.data = grow(t.data, roundUp32(k)/2*t.ld)
	clear(t.data[pairRows*t.ld:]) // the pair rows that pad the last step
	if !trans {
		// Rows 2p and 2p+1 of b interleave into pair row p; a last odd
		// row pairs with zeros.
		if k%2 == 1 {
			t.zero = grow(t.zero, n)
			clear(t.zero)
		}
		split(threads, pairRows, k*n, func(_, lo, hi int) {
			for p := lo; p < hi; p++ {
				r0, r1 := b.Data[2*p*b.Stride:][:n], t.zero
				if 2*p+1 < k {
					r1 = b.Data[(2*p+1)*b.Stride:][:n]
				}
				dst := t.data[p*t.ld : (p+1)*t.ld]
				for j := pairsVector(dst, r0, r1); j < n; j++ {
					dst[2*j], dst[2*j+1] = half.BF16FromFloat32(r0[j]), half.BF16FromFloat32(r1[j])
				}
				clear(dst[2*n:])
			}
		})
		return
	}
	// Row j of b is column j of op(b): its words are its pairs, which go
	// down column j of the layout. Each part does its own columns.
	words := unsafe.Slice((*uint32)(unsafe.Pointer(&t.data[0])), len(t.data)/2)
	wld := t.ld / 2
	kp := k + k&1
	t.scratch = partScratch(t.scratch, split(threads, n, k*n, nil), kp)
	for _, row := range t.scratch {
		row[kp-1] = 0 // the pair of an odd last depth
	}
	split(threads, n, k*n, func(part, lo, hi int) {
		row := t.scratch[part]
		src := unsafe.Slice((*uint32)(unsafe.Pointer(&row[0])), kp/2)
		for j := lo; j < hi; j++ {
			ToBF16(row[:k], b.Data[j*b.Stride:j*b.Stride+k])
			for p, w := range src {
				words[p*wld+j] = w
			}
		}
	})
	if n < wld {
		for p := range pairRows {
			clear(words[p*wld+n : (p+1)*wld])
		}
	}
}

// partScratch returns scratch with at least parts slices of n values.
func partScratch(scratch [][]uint16, parts, n int) [][]uint16 {
	for len(scratch) < parts {
		scratch = append(scratch, nil)
	}
	for i := range scratch {
		scratch[i] = grow(scratch[i], n)
	}
	return scratch
}

// minSplitValues is the fewest values a layout splits across goroutines:
// below it, starting them costs more than the conversion.
const minSplitValues = 1 << 16

// split runs f on up to threads goroutines over [0,n) in contiguous
// parts, the last on the calling goroutine, and returns how many parts;
// with f nil it only counts them. values is the work's size: a small one
// runs in one part.
func split(threads, n, values int, f func(part, lo, hi int)) int {
	parts := max(1, min(threads, n))
	if values < minSplitValues {
		parts = 1
	}
	if f == nil {
		return parts
	}
	if parts == 1 {
		f(0, 0, n)
		return 1
	}
	per := ceilDiv(n, parts)
	var wg sync.WaitGroup
	for part := range parts - 1 {
		wg.Go(func() { f(part, part*per, min(n, (part+1)*per)) })
	}
	last := parts - 1
	f(last, last*per, n)
	wg.Wait()
	return parts
}

// checkMat panics, naming the sizes, when m cannot hold rows×cols.
func checkMat(name string, m Mat, rows, cols int) {
	if rows <= 0 || cols <= 0 {
		panic(fmt.Sprintf("tensor: %s of %dx%d", name, rows, cols))
	}
	n := len(m.Data)
	if m.Stride < cols || n < cols || (rows > 1 && (n-cols)/(rows-1) < m.Stride) {
		panic(fmt.Sprintf("tensor: %s of %dx%d with stride %d: it has only %d values", name, rows, cols, m.Stride, n))
	}
}

// tilesPool holds scratch for MulTiles's ragged blocks.
var tilesPool = sync.Pool{New: func() any { return new([]float32) }}

// MulTiles computes c = a·b (c += a·b with acc), c m×n, over the first m
// rows of a, k depths and n columns of b, on AMX tiles in one goroutine;
// sums in float32. k must be a multiple of 32 or one operand's whole depth
// (whose padding is zero, so that the depths past k add nothing). It
// panics where TilesAvailable is false.
func MulTiles(c Mat, a *TileA, b *TileB, m, k, n int, acc bool) {
	MulTilesThreads(1, c, a, b, m, k, n, acc)
}

// MulTilesThreads is MulTiles on up to threads goroutines, each computing
// whole groups of 32 rows: a value's bits do not depend on how many.
func MulTilesThreads(threads int, c Mat, a *TileA, b *TileB, m, k, n int, acc bool) {
	if amxPairsBF16 == nil {
		panic("tensor: MulTiles without AMX tiles")
	}
	if m <= 0 || n <= 0 || k <= 0 || m > a.m || n > b.n || k > a.k || k > b.k || k%32 != 0 && a.k != k && b.k != k {
		panic(fmt.Sprintf("tensor: MulTiles %dx%dx%d of a %dx%d TileA and a %dx%d TileB", m, k, n, a.m, a.k, b.k, b.n))
	}
	checkMat("MulTiles c", c, m, n)
	groups := ceilDiv(m, 32)
	if threads = min(threads, groups); threads <= 1 || 2*m*n*k < minParallelFlops {
		mulTiles(c, a, b, 0, m, k, n, acc)
		return
	}
	per := ceilDiv(groups, threads) * 32
	var wg sync.WaitGroup
	for i0 := 0; i0 < m; i0 += per {
		wg.Go(func() { mulTiles(c, a, b, i0, min(m, i0+per), k, n, acc) })
	}
	wg.Wait()
}

// tilesKC is the most depths mulTiles multiplies in one pass over a block
// of rows, and tilesBlockBytes the most bytes of b one pass reads: that
// much stays in L2 while every group of rows passes over it, where a
// product as deep as a weight's gradient (a depth per token of the batch)
// would stream b from memory once per group.
const (
	tilesKC         = 1024
	tilesBlockBytes = 512 << 10
)

// tilesDepth is the depths of one pass of mulTiles over b's n columns.
func tilesDepth(n int) int {
	return max(32, min(tilesKC, tilesBlockBytes/(2*roundUp32(n))&^31))
}

// mulTiles computes rows [i0,i1) of MulTiles's product, i0 a multiple of 32.
func mulTiles(c Mat, a *TileA, b *TileB, i0, i1, k, n int, acc bool) {
	whole, kc := n/32, tilesDepth(n)
	var scratch *[]float32
	for pc := 0; pc < k; pc += kc {
		ksteps := roundUp32(min(kc, k-pc)) / 32
		bd := b.data[pc/2*b.ld:]
		acc := acc || pc > 0
		for i := i0; i < i1; i += 32 {
			rows := min(32, i1-i)
			ar := a.data[i*a.ld+pc:]
			if rows == 32 && whole > 0 {
				amxPairsBF16(ar, a.ld, bd, b.ld, c.Data[i*c.Stride:], c.Stride, ksteps, whole, acc)
			}
			if rows == 32 && whole*32 == n {
				continue
			}
			// A ragged block goes through scratch, c's values in it first
			// when they accumulate, so that the tiles sum them in the order
			// a whole block does.
			if scratch == nil {
				scratch = tilesPool.Get().(*[]float32)
				defer tilesPool.Put(scratch)
			}
			j0 := whole * 32
			if rows < 32 {
				j0 = 0
			}
			w := roundUp32(n - j0)
			*scratch = grow(*scratch, 32*w)
			s := Mat{*scratch, w}
			block := Mat{c.Data[i*c.Stride+j0:], c.Stride}
			if acc {
				copyBlock(s, block, rows, n-j0)
			}
			amxPairsBF16(ar, a.ld, bd[j0*2:], b.ld, s.Data, w, ksteps, w/32, acc)
			copyBlock(block, s, rows, n-j0)
		}
	}
}
