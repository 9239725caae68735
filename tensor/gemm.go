package tensor

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// Flags select a matrix product's layout and whether it accumulates.
type Flags uint8

const (
	// TransA: a is stored k×m and used transposed.
	TransA Flags = 1 << iota
	// TransB: b is stored n×k and used transposed (x·Wᵀ with an HF weight).
	TransB
	// Accumulate adds the product to c instead of overwriting it.
	Accumulate
	// BF16 rounds a and b to bfloat16 and multiplies them on AMX tiles,
	// summing in float32: several times the float32 rate, at 8
	// significant bits for a and b instead of 24. Where the CPU has no
	// AMX, or the product is under 16 rows or columns, it is float32's
	// (BF16KernelName says which).
	BF16
)

// Gemm computes c = op(a)·op(b), or c += op(a)·op(b) with Accumulate, for
// row-major matrices: c is m×n, op(a) is m×k, op(b) is k×n; c must not
// overlap a or b. It uses every CPU when the product is large enough to pay
// for it. A slice too short for its matrix is a programming error: Gemm
// panics, naming the sizes.
func Gemm(c, a, b []float32, m, k, n int, f Flags) {
	GemmThreads(runtime.GOMAXPROCS(0), c, a, b, m, k, n, f)
}

// GemmThreads is Gemm on at most threads goroutines.
func GemmThreads(threads int, c, a, b []float32, m, k, n int, f Flags) {
	lda, ldb := k, n
	if f&TransA != 0 {
		lda = m
	}
	if f&TransB != 0 {
		ldb = k
	}
	GemmStrided(threads, Mat{c, n}, Mat{a, lda}, Mat{b, ldb}, m, k, n, f)
}

// Mat is a row-major matrix inside a larger one: element (i, j) is
// Data[i·Stride+j]. It lets a product read one head's columns out of a
// wider activation without copying.
type Mat struct {
	Data   []float32
	Stride int
}

// GemmStrided is GemmThreads on sub-matrices with row strides: a is stored
// m×k (k×m with TransA), b k×n (n×k with TransB), c m×n, each with its own
// stride. c must not overlap a or b.
func GemmStrided(threads int, c, a, b Mat, m, k, n int, f Flags) {
	gemm(bestKernel, threads, gemmArgs{c: c, a: a, b: b, m: m, k: k, n: n, f: f})
}

// gemmArgs is one product, as the blocked loops see it.
type gemmArgs struct {
	c, a, b Mat
	m, k, n int
	f       Flags
}

// minParallelFlops is the smallest product split across threads: below
// it, starting and joining goroutines costs more than it saves.
const minParallelFlops = 1 << 21

// minParallelStream is the smallest b (in values) a product of few rows
// splits across threads.
const minParallelStream = 1 << 15

func gemm(kern kernel, threads int, g gemmArgs) {
	g.check()
	if g.f&BF16 != 0 {
		// Tiles are 16 rows and 16 columns: a thinner product would pay
		// for packing its operands and fill few of them.
		if amx != nil && g.m >= amxMin && g.n >= amxMin && g.k > 0 {
			gemmAMX(threads, g)
			return
		}
		g.f &^= BF16
	}
	m, k, n := g.m, g.k, g.n
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		if g.f&Accumulate == 0 {
			for i := range m {
				clear(g.c.Data[i*g.c.Stride : i*g.c.Stride+n])
			}
		}
		return
	}
	if m < kern.mr()/2 {
		// Few rows stream b from memory once per row: splitting the
		// columns pays as soon as b outgrows what one core reads in the
		// time goroutines take to start.
		if n*k < minParallelStream {
			threads = 1
		}
	} else if 2*m*n*k < minParallelFlops {
		threads = 1
	}
	if threads <= 1 {
		gemmSerial(kern, g, 0, m, 0, n)
		return
	}
	// Split the rows when there are enough of them, else the columns; each
	// part packs what it needs, which costs little next to its share of
	// the product.
	var wg sync.WaitGroup
	if rows := ceilDiv(m, kern.mr()); rows >= 2*threads {
		per := ceilDiv(rows, threads) * kern.mr()
		for i0 := 0; i0 < m; i0 += per {
			wg.Add(1)
			go func(i0, i1 int) {
				defer wg.Done()
				gemmSerial(kern, g, i0, i1, 0, n)
			}(i0, min(m, i0+per))
		}
	} else {
		cols := ceilDiv(n, kern.nr)
		per := ceilDiv(cols, min(threads, cols)) * kern.nr
		for j0 := 0; j0 < n; j0 += per {
			wg.Add(1)
			go func(j0, j1 int) {
				defer wg.Done()
				gemmSerial(kern, g, 0, m, j0, j1)
			}(j0, min(n, j0+per))
		}
	}
	wg.Wait()
}

// check panics, naming the sizes, when a slice is too short for its matrix:
// a programming error, not a data one.
func (g gemmArgs) check() { g.checkMats(true) }

// checkAC is check for a and c only: a packed b is right by construction.
func (g gemmArgs) checkAC() { g.checkMats(false) }

func (g gemmArgs) checkMats(withB bool) {
	if g.m < 0 || g.k < 0 || g.n < 0 {
		panic(fmt.Sprintf("tensor: negative matrix size %dx%dx%d", g.m, g.k, g.n))
	}
	ar, ac := g.m, g.k
	if g.f&TransA != 0 {
		ar, ac = g.k, g.m
	}
	br, bc := g.k, g.n
	if g.f&TransB != 0 {
		br, bc = g.n, g.k
	}
	for _, x := range []struct {
		name       string
		mat        Mat
		rows, cols int
	}{{"a", g.a, ar, ac}, {"b", g.b, br, bc}, {"c", g.c, g.m, g.n}} {
		if x.rows == 0 || x.cols == 0 || x.name == "b" && !withB {
			continue
		}
		// Compare by division: (rows-1)·stride+cols could overflow for a
		// hostile stride and wrap to a small, passing number.
		n := len(x.mat.Data)
		if x.mat.Stride < x.cols || n < x.cols || (x.rows > 1 && (n-x.cols)/(x.rows-1) < x.mat.Stride) {
			panic(fmt.Sprintf("tensor: gemm %dx%dx%d: %s is %dx%d with stride %d; it has only %d values",
				g.m, g.k, g.n, x.name, x.rows, x.cols, x.mat.Stride, n))
		}
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// Blocking, in the manner of Goto's GEMM: a kc×nr panel of b is reused by
// every mr-row panel of the mc-row block of a, which stays in L2. kc is
// large because a panel of b needs only 2 vector loads per 28 FMAs, which
// L2 serves easily, while each extra kc block costs a pass over c.
// docs/performance.md compares it with smaller blockings.
const (
	kcBlock = 1024
	mcRows  = 12 // mc = mcRows·mr
	ncBlock = 2048
)

// tileKernel is a register-tile microkernel: it multiplies an mr×kc panel
// of a by a kc×nr panel of b (packed: for each p, nr consecutive values)
// into an mr×nr tile of c with row stride ldc, adding to c when acc is set.
// Value (i, p) of the a panel is a[p·pstride + i·istride], so the kernel
// reads a where it lies, row-major or transposed, without packing. Each
// value is one chain of fused multiply-adds over p from zero, added to c
// at the end with acc.
type tileKernel struct {
	mr  int
	run func(kc int, a []float32, pstride, istride int, b, c []float32, ldc int, acc bool)
	// run16 is the same kernel over a half-precision panel of b, nil
	// where the CPU has none.
	run16 func(kc int, a []float32, pstride, istride int, b []uint16, c []float32, ldc int, acc bool)
	// runBF is the kernel over bfloat16 pairs of both a and b (see
	// PackBF16), nil where the CPU has none: kc counts pairs of depths,
	// and the pair of row i at pair p starts at a[p·pstride+i·istride].
	runBF func(kc int, a []uint16, pstride, istride int, b []uint16, c []float32, ldc int, acc bool)
}

// kernel is the set of microkernels for one instruction set.
type kernel struct {
	name string
	nr   int
	// tiles are the tile kernels, tallest first: the first computes the
	// full tiles, the others the rows left over, so that leftover rows cost
	// their own work and not a full tile's.
	tiles []tileKernel
	// strips are the row-times-strip kernels for products of few rows,
	// widest first; nil for none.
	strips []gemvStrip
	// dot4 says the AVX-512 dot kernel goes with this one, for x·Wᵀ
	// products of few rows.
	dot4 bool
}

// mr is the height of the full tiles.
func (k kernel) mr() int { return k.tiles[0].mr }

// plan cuts rows into tiles, as indices into k.tiles, at the least cost
// by tileCost. Any plan gives the same bits: every kernel sums in the same
// order.
func (k kernel) plan(rows int, dst []int) []int {
	// best[r] is the least cost of r rows, first[r] the tile that starts
	// a plan of that cost. The products plan at most mc = mcRows·mr rows at
	// a time, and no tile is taller than 14, so these stay on the stack.
	var bestBuf, firstBuf [mcRows*14 + 1]int
	best, first := bestBuf[:0], firstBuf[:0]
	if rows+1 > len(bestBuf) {
		best, first = make([]int, 0, rows+1), make([]int, 0, rows+1)
	}
	best, first = append(best, 0), append(first, -1)
	for r := 1; r <= rows; r++ {
		best, first = append(best, math.MaxInt), append(first, -1)
		for t, tk := range k.tiles {
			if tk.mr <= r && best[r-tk.mr] != math.MaxInt {
				if c := best[r-tk.mr] + tileCost(tk.mr); c < best[r] {
					best[r], first[r] = c, t
				}
			}
		}
	}
	if best[rows] == math.MaxInt {
		panic("tensor: no kernel for the leftover rows")
	}
	dst = dst[:0]
	for r := rows; r > 0; r -= k.tiles[first[r]].mr {
		dst = append(dst, first[r])
	}
	return dst
}

// tileCost is the time of a tile of mr rows, in rows of a full tile: a
// tile of fewer than 5 rows keeps fewer than 10 accumulator chains, too
// few to hide the multiply-add's latency, and takes about as long as 5
// rows. So 16 rows run as 8 and 8, not 14 and 2; BenchmarkPackedDecode
// times the tile heights.
func tileCost(mr int) int { return max(mr, 5) }

// scratch holds one call's packing buffers; they are pooled so repeated
// products allocate nothing.
type scratch struct {
	b, tile, row []float32
	plan         []int
	abf          []uint16 // a in bfloat16, for products with PackBF16 matrices
	// a quantized, with its scales and corrections, for PackQ8 matrices
	qa   []int8
	sa   []float32
	corr []int32
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func grow[T float32 | uint16 | int8 | int32](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// gemmSerial computes rows [i0,i1) and columns [j0,j1) of c on one goroutine.
func gemmSerial(kern kernel, g gemmArgs, i0, i1, j0, j1 int) {
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	if i1-i0 < kern.mr()/2 {
		// Too few rows to fill a register tile: stream b in place instead
		// of packing it (a decode step is one row).
		if g.f&TransB != 0 {
			dotRows(s, g, i0, i1, j0, j1, kern.dot4)
			return
		}
		if kern.strips != nil {
			gemvRows(kern.strips, s, g, i0, i1, j0, j1)
			return
		}
	}
	nr := kern.nr
	mc := mcRows * kern.mr()
	for jc := j0; jc < j1; jc += ncBlock {
		nc := min(ncBlock, j1-jc)
		panels := ceilDiv(nc, nr)
		for pc := 0; pc < g.k; pc += kcBlock {
			kc := min(kcBlock, g.k-pc)
			acc := g.f&Accumulate != 0 || pc > 0
			s.b = grow(s.b, panels*nr*kc)
			packPanels(s.b, g.b, jc, nc, pc, kc, nr, g.f&TransB == 0)
			for ic := i0; ic < i1; ic += mc {
				s.plan = kern.plan(min(i1, ic+mc)-ic, s.plan)
				for jr := range panels {
					j := jc + jr*nr
					tiles(kern, s, g.a, g.f&TransA != 0, pc, kc, ic, s.b[jr*nr*kc:(jr+1)*nr*kc], nil, g.c, j, min(nr, jc+nc-j), acc)
				}
			}
		}
	}
}

// tiles multiplies the rows of op(a) from i0 on, depths [pc,pc+kc), by one
// packed panel of b (bp, or in half precision bp16) into columns
// [j, j+cols) of c, a tile at a time as s.plan says.
func tiles(kern kernel, s *scratch, a Mat, transA bool, pc, kc, i0 int, bp []float32, bp16 []uint16, c Mat, j, cols int, acc bool) {
	tileRows(kern, s, i0, c, j, cols, acc, func(tk tileKernel, i int, c []float32, ldc int, acc bool) {
		var ap []float32
		ps, is := 1, a.Stride
		if transA {
			ap, ps, is = a.Data[pc*a.Stride+i:], a.Stride, 1
		} else {
			ap = a.Data[i*a.Stride+pc:]
		}
		if bp16 != nil {
			tk.run16(kc, ap, ps, is, bp16, c, ldc, acc)
		} else {
			tk.run(kc, ap, ps, is, bp, c, ldc, acc)
		}
	})
}

// tileRows runs the tiles of s.plan from row i0 on into columns
// [j, j+cols) of c: run computes kernel tk's rows from i into c. An edge
// panel (cols < nr) is computed whole into scratch, and what fits is kept.
func tileRows(kern kernel, s *scratch, i0 int, c Mat, j, cols int, acc bool, run func(tk tileKernel, i int, c []float32, ldc int, acc bool)) {
	nr := kern.nr
	i := i0
	for _, t := range s.plan {
		tk := kern.tiles[t]
		ci := i*c.Stride + j
		if cols == nr {
			run(tk, i, c.Data[ci:], c.Stride, acc)
		} else {
			s.tile = grow(s.tile, tk.mr*nr)
			run(tk, i, s.tile, nr, false)
			for r := range tk.mr {
				dst := c.Data[ci+r*c.Stride : ci+r*c.Stride+cols]
				src := s.tile[r*nr : r*nr+cols]
				if acc {
					for x := range dst {
						dst[x] += src[x]
					}
				} else {
					copy(dst, src)
				}
			}
		}
		i += tk.mr
	}
}

// gemvStrip is a row-times-strip kernel of a given width: c[0:width] =
// Σ_p a[p]·b[p·ldb : p·ldb+width], each value one chain of fused
// multiply-adds over p in order; k must be at least 1. mode says what
// happens to c: stripSet overwrites it, stripAdd adds the sum to it (as the
// microkernels accumulate), stripChain starts the chains from its values.
type gemvStrip struct {
	width int
	run   func(k int, a, b, c *float32, ldb int, mode int)
}

const (
	stripSet = iota
	stripAdd
	stripChain
)

// gemvRows computes rows [i0,i1), columns [j0,j1) of c = op(a)·b one row
// at a time with the strip kernels, b read in place. It sums in the order
// the microkernels do, kcBlock depths at a time, and runs the last ragged
// columns through the narrowest strip on a padded copy, so every value has
// the same bits whichever path computed it: a row of a product does not
// change with the number of rows beside it.
func gemvRows(strips []gemvStrip, s *scratch, g gemmArgs, i0, i1, j0, j1 int) {
	b, ldb := g.b.Data, g.b.Stride
	narrow := strips[len(strips)-1].width
	tailFrom := j0 + (j1-j0)/narrow*narrow
	var tail [128]float32 // the padded tail's output, narrow <= 128
	for i := i0; i < i1; i++ {
		row := rowOfA(s, g, i)
		crow := g.c.Data[i*g.c.Stride : i*g.c.Stride+g.n]
		for pc := 0; pc < g.k; pc += kcBlock {
			kc := min(kcBlock, g.k-pc)
			mode := stripSet
			if g.f&Accumulate != 0 || pc > 0 {
				mode = stripAdd
			}
			j := j0
			for _, st := range strips {
				for ; j+st.width <= tailFrom; j += st.width {
					_ = b[(pc+kc-1)*ldb+j+st.width-1] // the last value the kernel reads
					st.run(kc, &row[pc], &b[pc*ldb+j], &crow[j], ldb, mode)
				}
			}
			if j == j1 {
				continue
			}
			// Pad the ragged columns to one narrow strip.
			s.b = grow(s.b, kc*narrow)
			for p := range kc {
				d := s.b[p*narrow : (p+1)*narrow]
				n := copy(d, b[(pc+p)*ldb+j:(pc+p)*ldb+j1])
				clear(d[n:])
			}
			strips[len(strips)-1].run(kc, &row[pc], &s.b[0], &tail[0], narrow, stripSet)
			for t := range j1 - j {
				if mode == stripAdd {
					crow[j+t] += tail[t]
				} else {
					crow[j+t] = tail[t]
				}
			}
		}
	}
}

// rowOfA returns row i of op(a), gathering it into s.a when a is stored
// transposed.
func rowOfA(s *scratch, g gemmArgs, i int) []float32 {
	if g.f&TransA == 0 {
		return g.a.Data[i*g.a.Stride : i*g.a.Stride+g.k]
	}
	s.row = grow(s.row, g.k)
	for p := range g.k {
		s.row[p] = g.a.Data[p*g.a.Stride+i]
	}
	return s.row
}

// dotRows computes rows [i0,i1), columns [j0,j1) of c = op(a)·bᵀ for b
// stored n×k (x·Wᵀ with an HF weight, one decode step): each value is a dot
// product of a row of a with a row of b, four rows of b at a time, with the
// AVX-512 dot kernel when vector is set and plain Go otherwise.
func dotRows(s *scratch, g gemmArgs, i0, i1, j0, j1 int, vector bool) {
	acc := g.f&Accumulate != 0
	k, b, ldb := g.k, g.b.Data, g.b.Stride
	for i := i0; i < i1; i++ {
		row := rowOfA(s, g, i)
		crow := g.c.Data[i*g.c.Stride : i*g.c.Stride+g.n]
		for j := j0; j < j1; j += 4 {
			var sums [4]float32
			w := min(4, j1-j)
			done := 0
			if w == 4 && vector {
				done = dot4(row, b[j*ldb:], ldb, &sums)
			}
			for r := range w {
				br := b[(j+r)*ldb : (j+r)*ldb+k]
				for p := done; p < k; p++ {
					sums[r] += row[p] * br[p]
				}
				if acc {
					crow[j+r] += sums[r]
				} else {
					crow[j+r] = sums[r]
				}
			}
		}
	}
}

// packPanels copies width-wide panels of a matrix for the microkernels:
// panel q holds, for each depth p in [p0, p0+kc), the values of lines
// q·width .. q·width+width-1 (counted from line0, count lines in all),
// lines past the end zero. A "line" is a row of a or a column of b. When
// depthMajor, the lines at one depth lie side by side (a stored
// transposed, b as is): each depth is one copy. Otherwise each line is
// contiguous over depth (a as is, b stored transposed), and a full panel
// of b may be gathered by the vector kernel.
func packPanels(dst []float32, src Mat, line0, count, p0, kc, width int, depthMajor bool) {
	ld := src.Stride
	for q := 0; q*width < count; q++ {
		panel := dst[q*width*kc : (q+1)*width*kc]
		lines := min(width, count-q*width)
		base := line0 + q*width
		if depthMajor {
			for p := range kc {
				d := panel[p*width : p*width+width]
				copy(d, src.Data[(p0+p)*ld+base:(p0+p)*ld+base+lines])
				clear(d[lines:])
			}
			continue
		}
		if lines == width && packPanelTrans(panel, src.Data[base*ld+p0:], ld, kc, width) {
			continue
		}
		for j := range lines {
			for p, v := range src.Data[(base+j)*ld+p0 : (base+j)*ld+p0+kc] {
				panel[p*width+j] = v
			}
		}
		for j := lines; j < width; j++ {
			for p := range kc {
				panel[p*width+j] = 0
			}
		}
	}
}

// KernelName names the microkernel Gemm uses on this CPU: "avx512", "avx2"
// or "go".
func KernelName() string { return bestKernel.name }
