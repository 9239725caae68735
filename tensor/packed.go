package tensor

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/braid-dev/braid/internal/half"
)

// Packed is a k×n matrix laid out once in the panels the microkernels read,
// for products that reuse it many times: a model's weights, multiplied by
// new activations at every decode step. A product with a Packed matrix
// skips the packing an ordinary Gemm does on every call, and reads the
// weights in one sequential stream.
type Packed struct {
	k, n int
	kern kernel
	// data holds, for each block of kcBlock depths, the ceil(n/nr) panels
	// of that block, each kc×nr: row p of a panel is nr consecutive values,
	// columns past n zero. half holds the same in half precision instead,
	// for a matrix packed by PackHalf.
	data []float32
	half []uint16
	// bf holds the panels in bfloat16 pairs instead, for a matrix packed
	// by PackBF16 (see there).
	bf []uint16
	// amx, when set, multiplies bf's panels on AMX tiles, every row of
	// every product: one kernel for all, so a row's bits do not depend on
	// the rows beside it.
	amx amxPanelsFunc
	// q8 holds the matrix in 8-bit blocks instead, for a matrix packed by
	// PackQ8 (see there), in panels of q8Cols columns.
	q8 []byte
}

// Pack lays out b for GemmPacked: b is stored k×n, or n×k with TransB (a
// Hugging Face weight [out, in], used as x·Wᵀ). Other flags are an error.
func Pack(b []float32, k, n int, f Flags) *Packed {
	ld := packStride("Pack", b, k, n, f)
	kern := bestKernel
	panels := ceilDiv(n, kern.nr)
	p := &Packed{k: k, n: n, kern: kern, data: make([]float32, panels*kern.nr*k)}
	for pc := 0; pc < k; pc += kcBlock {
		kc := min(kcBlock, k-pc)
		packPanels(p.data[pc*panels*kern.nr:], Mat{b, ld}, 0, n, pc, kc, kern.nr, f&TransB == 0)
	}
	return p
}

// packStride checks the arguments of a packing function (name) and
// returns b's row stride: n, or k with TransB.
func packStride(name string, b []float32, k, n int, f Flags) int {
	if f&^TransB != 0 || k <= 0 || n <= 0 {
		panic(fmt.Sprintf("tensor: %s of %dx%d with flags %d", name, k, n, f))
	}
	ld := n
	if f&TransB != 0 {
		ld = k
	}
	(gemmArgs{b: Mat{b, ld}, m: 1, k: k, n: n, f: f, a: Mat{make([]float32, k), k}, c: Mat{make([]float32, n), n}}).check()
	return ld
}

// PackHalf is Pack with the panels in half precision: half the memory and
// half the bytes each product streams, which is what bounds products of
// few rows (decoding), at the precision of the values rounded to halves
// (see internal/half). It reports false, packing nothing, on a CPU without
// half-precision kernels.
func PackHalf(b []float32, k, n int, f Flags) (*Packed, bool) {
	for _, t := range bestKernel.tiles {
		if t.run16 == nil {
			return nil, false
		}
	}
	p := Pack(b, k, n, f)
	p.half = make([]uint16, len(p.data))
	for i, v := range p.data {
		p.half[i] = half.FromFloat32(v)
	}
	p.data = nil
	return p, true
}

// tiles is how the matrix's products are cut: panels of nr columns,
// rows mr at a time.
func (p *Packed) tiles() (nr, mr int) {
	if p.q8 != nil {
		return q8Cols, 4
	}
	return p.kern.nr, p.kern.mr()
}

// Rows and Cols are the packed matrix's shape, k×n.
func (p *Packed) Rows() int { return p.k }
func (p *Packed) Cols() int { return p.n }

// panel returns panel q of the depth block starting at pc, in whichever
// precision the matrix holds.
func (p *Packed) panel(pc, q int) ([]float32, []uint16) {
	nr, kc := p.kern.nr, min(kcBlock, p.k-pc)
	off := pc*ceilDiv(p.n, nr)*nr + q*kc*nr
	if p.half != nil {
		return nil, p.half[off : off+kc*nr]
	}
	return p.data[off : off+kc*nr], nil
}

// GemmPacked computes c = a·b, or c += a·b with Accumulate, for a m×k
// (row stride lda), b packed and c m×n (row stride ldc), on at most threads
// goroutines. Every row of c has the bits it would have computed alone:
// batched decoding gives the tokens one-at-a-time decoding gives.
func GemmPacked(threads int, c []float32, ldc int, a []float32, lda int, b *Packed, m int, f Flags) {
	if f&^Accumulate != 0 {
		panic(fmt.Sprintf("tensor: GemmPacked takes only Accumulate, got flags %d", f))
	}
	if m == 0 {
		return
	}
	g := gemmArgs{c: Mat{c, ldc}, a: Mat{a, lda}, m: m, k: b.k, n: b.n, f: f}
	g.checkAC()
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	nr, mr := b.tiles()
	if m < mr {
		// Few rows stream the weights: split them when they are large.
		if b.n*b.k < minParallelStream {
			threads = 1
		}
	} else if 2*m*b.n*b.k < minParallelFlops {
		threads = 1
	}
	panels := ceilDiv(b.n, nr)
	rowTiles := ceilDiv(m, mr)
	if threads <= 1 || panels == 1 && rowTiles == 1 {
		packedSerial(g, b, 0, m, 0, panels)
		return
	}
	var wg sync.WaitGroup
	if rowTiles >= 2*threads {
		per := ceilDiv(rowTiles, threads) * mr
		for i0 := 0; i0 < m; i0 += per {
			wg.Go(func() { packedSerial(g, b, i0, min(m, i0+per), 0, panels) })
		}
	} else {
		threads = min(threads, panels)
		per := ceilDiv(panels, threads)
		for q0 := 0; q0 < panels; q0 += per {
			wg.Go(func() { packedSerial(g, b, 0, m, q0, min(panels, q0+per)) })
		}
	}
	wg.Wait()
}

// packedSerial computes rows [i0,i1) of c against panels [q0,q1) of b.
func packedSerial(g gemmArgs, b *Packed, i0, i1, q0, q1 int) {
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	if b.q8 != nil {
		packedQ8(s, g, b, i0, i1, q0, q1)
		return
	}
	if b.amx != nil {
		packedAMX(s, g, b, i0, i1, q0, q1)
		return
	}
	var abf []uint16 // a's rows in bfloat16 pairs, kp values each, for a PackBF16 matrix
	kp := b.k + b.k%2
	if b.bf != nil {
		abf = s.bf16Rows(g.a, i0, i1, b.k, kp)
	}
	kern, nr := b.kern, b.kern.nr
	mc := mcRows * kern.mr()
	for pc := 0; pc < b.k; pc += kcBlock {
		kc := min(kcBlock, b.k-pc)
		acc := g.f&Accumulate != 0 || pc > 0
		for ic := i0; ic < i1; ic += mc {
			s.plan = kern.plan(min(i1, ic+mc)-ic, s.plan)
			for q := q0; q < q1; q++ {
				j, cols := q*nr, min(nr, b.n-q*nr)
				if abf == nil {
					bp, bp16 := b.panel(pc, q)
					tiles(kern, s, g.a, false, pc, kc, ic, bp, bp16, g.c, j, cols, acc)
					continue
				}
				bp, pairs := b.panelBF(pc, q), (kc+1)/2
				tileRows(kern, s, ic, g.c, j, cols, acc, func(tk tileKernel, i int, c []float32, ldc int, acc bool) {
					tk.runBF(pairs, abf[(i-i0)*kp+pc:], 2, kp, bp, c, ldc, acc)
				})
			}
		}
	}
}

// packedAMX is packedSerial for a PackBF16 matrix on AMX tiles: 16 rows
// of a at a time by every whole panel in one call, the last, narrower
// panel through scratch, c's values in it first when they accumulate, so
// that the tiles sum every value in one order.
func packedAMX(s *scratch, g gemmArgs, b *Packed, i0, i1, q0, q1 int) {
	nr := b.kern.nr
	kp := bfDepth(b.k)
	abf := s.bf16Rows(g.a, i0, i1, b.k, kp)
	whole := q1
	if q1 == ceilDiv(b.n, nr) && b.n%nr != 0 {
		whole--
	}
	for pc := 0; pc < b.k; pc += kcBlock {
		depth := bfDepth(min(kcBlock, b.k-pc))
		steps := depth / 32
		acc := g.f&Accumulate != 0 || pc > 0
		for r0 := i0; r0 < i1; r0 += 16 {
			rows := min(16, i1-r0)
			cfg := &rowsConfigs[rows]
			a := abf[(r0-i0)*kp+pc:]
			if whole > q0 {
				b.amx(cfg, a, kp, b.bfFrom(pc, q0), depth*nr, g.c.Data[r0*g.c.Stride+q0*nr:], g.c.Stride, rows, steps, whole-q0, acc)
			}
			if whole == q1 {
				continue
			}
			cols := b.n - whole*nr
			s.tile = grow(s.tile, 16*nr)
			block := Mat{g.c.Data[r0*g.c.Stride+whole*nr:], g.c.Stride}
			if acc {
				copyBlock(Mat{s.tile, nr}, block, rows, cols)
			}
			b.amx(cfg, a, kp, b.bfFrom(pc, whole), depth*nr, s.tile, nr, rows, steps, 1, acc)
			copyBlock(block, Mat{s.tile, nr}, rows, cols)
		}
	}
}

// GemmPackedPart computes part `part` of `parts` of GemmPacked's product
// (a range of c's columns) on the calling goroutine, so a team of
// goroutines that already runs can share a product without starting new
// ones; together the parts compute the whole.
func GemmPackedPart(c []float32, ldc int, a []float32, lda int, b *Packed, m int, f Flags, part, parts int) {
	if f&^Accumulate != 0 || parts <= 0 || part < 0 || part >= parts {
		panic(fmt.Sprintf("tensor: GemmPackedPart part %d of %d, flags %d", part, parts, f))
	}
	if m == 0 {
		return
	}
	g := gemmArgs{c: Mat{c, ldc}, a: Mat{a, lda}, m: m, k: b.k, n: b.n, f: f}
	g.checkAC()
	nr, _ := b.tiles()
	panels := ceilDiv(b.n, nr)
	q0, q1 := part*panels/parts, (part+1)*panels/parts
	if q0 < q1 {
		packedSerial(g, b, 0, m, q0, q1)
	}
}
