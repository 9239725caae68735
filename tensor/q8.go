package tensor

import (
	"encoding/binary"
	"math"

	"github.com/braid-dev/braid/internal/half"
)

// 8-bit weights: a PackQ8 matrix keeps each column's values in blocks of
// q8Block depths, each block a signed byte a value and one half-precision
// scale, as llama.cpp's Q8_0 does: a value and a sixteenth a byte, half of
// half precision's bytes, which is what bounds decoding one sequence. A
// product quantizes each row of a the same way (a block of 32 values, a
// float32 scale) and multiplies the bytes with AVX-512 VNNI, four products
// of bytes summed in 32-bit integers an instruction, exact; each block's
// integer sum is then scaled and added in float32.
//
// Layout: panels of q8Cols columns, one after another; a panel holds its
// blocks in depth order, each q8BlockBytes: the 32×16 values as 8 groups
// of 16 columns × 4 depths (the bytes VPDPBUSD multiplies by 4 depths of a
// row), each value stored plus 128, unsigned (VPDPBUSD multiplies unsigned
// bytes by signed ones); then the 16 columns' scales in half precision.
const (
	q8Block      = 32
	q8Cols       = 16
	q8BlockBytes = q8Block*q8Cols + 2*q8Cols
)

// q8Kernels are the kernels of 8-bit products, nil where the CPU lacks
// AVX-512 VNNI.
type q8Kernels struct {
	// row multiplies one quantized row by panels whole panels into c;
	// rows4 four rows, interleaved block by block (q8Rows's layout), c's
	// rows ldc bytes apart. Both do a row's arithmetic in the same order,
	// so a row's values do not depend on the rows beside it.
	row   func(a *int8, sa *float32, corr *int32, b *byte, c *float32, blocks, panels int, acc bool)
	rows4 func(a *int8, sa *float32, corr *int32, b *byte, c *float32, ldc, blocks, panels int, acc bool)
}

// Q8KernelName names the units PackQ8 matrices multiply on,
// "avx512-vnni", or "" where the CPU has none and PackQ8 refuses.
func Q8KernelName() string {
	if q8 != nil {
		return "avx512-vnni"
	}
	return ""
}

// PackQ8 lays out b (k×n, or n×k with TransB: a Hugging Face [out, in]
// weight) for GemmPacked in 8-bit blocks: each 32 depths of a column
// scaled by its largest magnitude over 127, as llama.cpp's Q8_0 rounds
// them, so a Q8_0 model's weights, widened, pack back to the same bytes.
// Depths past k are zero. It reports false, packing nothing, on a CPU
// without AVX-512 VNNI.
func PackQ8(b []float32, k, n int, f Flags) (*Packed, bool) {
	if q8 == nil {
		return nil, false
	}
	ld := packStride("PackQ8", b, k, n, f)
	at := func(d, j int) float32 {
		if d >= k || j >= n {
			return 0
		}
		if f&TransB != 0 {
			return b[j*ld+d]
		}
		return b[d*ld+j]
	}
	blocks, panels := ceilDiv(k, q8Block), ceilDiv(n, q8Cols)
	p := &Packed{k: k, n: n, kern: bestKernel, q8: make([]byte, panels*blocks*q8BlockBytes)}
	var vals [q8Block]float32
	var qs [q8Block]int8
	for q := range panels {
		for blk := range blocks {
			dst := p.q8[(q*blocks+blk)*q8BlockBytes:][:q8BlockBytes]
			for jj := range q8Cols {
				if j, d0 := q*q8Cols+jj, blk*q8Block; f&TransB != 0 && j < n && d0+q8Block <= k {
					copy(vals[:], b[j*ld+d0:]) // a whole block of a row of [out, in]
				} else {
					for d := range q8Block {
						vals[d] = at(d0+d, j)
					}
				}
				scale := QuantizeQ8(qs[:], vals[:])
				for d, v := range qs {
					dst[(d/4)*64+jj*4+d%4] = byte(int(v) + 128)
				}
				binary.LittleEndian.PutUint16(dst[q8Block*q8Cols+2*jj:], half.FromFloat32(scale))
			}
		}
	}
	return p, true
}

// QuantizeQ8 rounds x (a block of Q8_0's 32 values) to signed bytes
// times the returned scale, the largest magnitude over 127: each value
// times 1/scale, rounded half away from zero, as llama.cpp's
// quantize_row_q8_0_ref does. PackQ8 rounds weights so, and a GGUF file's
// Q8_0 blocks are written so.
func QuantizeQ8(q []int8, x []float32) float32 {
	var amax float32
	for _, v := range x {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	for i, v := range x {
		q[i] = int8(math.Round(float64(v * id)))
	}
	return d
}

// quantizeActivations is QuantizeQ8 for a product's activations, by a
// quicker rule: each value times 1/scale rounded half to even, by adding
// and taking away 1.5·2²³ in float32 (exact for magnitudes up to 127),
// with the sum of the bytes. It runs for every row of every product (and
// every head an 8-bit cache stores or scores), so where the CPU has
// AVX-512 and the row is a multiple of 16 long, two vector passes do it
// with the same bits (quantizeVector).
func quantizeActivations(q []int8, x []float32) (scale float32, sum int32) {
	if amax, sum, ok := quantizeVector(q, x); ok {
		return math.Float32frombits(amax) / 127, sum
	}
	return quantizeScalar(q, x)
}

// quantizeScalar is quantizeActivations in Go, for any length.
func quantizeScalar(q []int8, x []float32) (scale float32, sum int32) {
	var amax uint32 // the largest magnitude's bits: they order as the magnitudes do
	for _, v := range x {
		amax = max(amax, math.Float32bits(v)&0x7fffffff)
	}
	id := idOf(amax)
	const magic = 0x1.8p23
	for i, v := range x {
		r := int8(int32(v*id + magic - magic))
		q[i] = r
		sum += int32(r)
	}
	return math.Float32frombits(amax) / 127, sum
}

// idOf is the factor that takes values of largest magnitude amax (its
// bits) to within ±127: the reciprocal of the scale, 0 for all zeros.
func idOf(amax uint32) float32 {
	d := math.Float32frombits(amax) / 127
	if d == 0 {
		return 0
	}
	return 1 / d
}

// q8Rows quantizes rows [i0,i1) of a, k values each, for the 8-bit
// kernels: in groups of four rows (then one at a time for the last
// i1−i0 mod 4), each group's data block by block: the rows' 32 bytes
// each, then (in sa and corr) their scales and 128 times the sum of their
// bytes, which the kernels subtract for the 128 added to b's bytes.
func (s *scratch) q8Rows(a Mat, i0, i1, k int) (qa []int8, sa []float32, corr []int32) {
	blocks, rows := ceilDiv(k, q8Block), i1-i0
	s.qa, s.sa, s.corr = grow(s.qa, rows*blocks*q8Block), grow(s.sa, rows*blocks), grow(s.corr, rows*blocks)
	qa, sa, corr = s.qa, s.sa, s.corr
	var vals [q8Block]float32
	for r := range rows {
		group, width := r/4*4, 4
		if rows-group < 4 {
			width = 1 // the rows after the last group of four go one by one
			group = r
		}
		row := a.Data[(i0+r)*a.Stride:][:k]
		for blk := range blocks {
			clear(vals[:])
			copy(vals[:], row[min(k, blk*q8Block):min(k, blk*q8Block+q8Block)])
			at := group*blocks + blk*width + (r - group)
			q := qa[at*q8Block:][:q8Block]
			var sum int32
			sa[at], sum = quantizeActivations(q, vals[:])
			corr[at] = 128 * sum
		}
	}
	return qa, sa, corr
}

// packedQ8 is packedSerial for a PackQ8 matrix: rows [i0,i1) of c against
// panels [q0,q1) of b.
func packedQ8(s *scratch, g gemmArgs, b *Packed, i0, i1, q0, q1 int) {
	qa, sa, corr := s.q8Rows(g.a, i0, i1, b.k)
	blocks := ceilDiv(b.k, q8Block)
	acc := g.f&Accumulate != 0
	whole := q1
	if q1 == ceilDiv(b.n, q8Cols) && b.n%q8Cols != 0 {
		whole--
	}
	panel := func(q int) *byte { return &b.q8[q*blocks*q8BlockBytes] }
	ldc := g.c.Stride
	// run multiplies the rows from r0 (four, or one) by panels [q, q+n)
	// into c, whose rows are ldc apart.
	run := func(r0, width int, c []float32, ldc, q, n int) {
		at := (r0 - i0) * blocks
		if width == 4 {
			q8.rows4(&qa[at*q8Block], &sa[at], &corr[at], panel(q), &c[0], 4*ldc, blocks, n, acc)
		} else {
			q8.row(&qa[at*q8Block], &sa[at], &corr[at], panel(q), &c[0], blocks, n, acc)
		}
	}
	// forRows calls f for each group of rows: fours, then ones.
	forRows := func(f func(r0, width int)) {
		for r0 := i0; r0 < i1; {
			width := 4
			if i1-r0 < 4 {
				width = 1
			}
			f(r0, width)
			r0 += width
		}
	}
	// Every group of rows goes over a few panels before the next few:
	// those panels' bytes stay in L1 for all the groups, not streamed
	// from memory once a group.
	step := max(1, 32<<10/(blocks*q8BlockBytes))
	for q := q0; q < whole; q += step {
		n := min(step, whole-q)
		forRows(func(r0, width int) {
			// The kernels write c's rows r0..r0+width at columns
			// q·16..(q+n)·16: in bounds, as checkAC saw.
			_ = g.c.Data[(r0+width-1)*ldc+(q+n)*q8Cols-1]
			run(r0, width, g.c.Data[r0*ldc+q*q8Cols:], ldc, q, n)
		})
	}
	if whole < q1 {
		cols := b.n - whole*q8Cols
		s.tile = grow(s.tile, 4*q8Cols)
		forRows(func(r0, width int) {
			block := Mat{g.c.Data[r0*ldc+whole*q8Cols:], ldc}
			if acc {
				copyBlock(Mat{s.tile, q8Cols}, block, width, cols)
			}
			run(r0, width, s.tile, q8Cols, whole, 1)
			copyBlock(block, Mat{s.tile, q8Cols}, width, cols)
		})
	}
}
