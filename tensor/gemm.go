package tensor

import (
	"fmt"
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
)

// Gemm computes c = op(a)·op(b), or c += op(a)·op(b) with Accumulate, for
// row-major matrices: c is m×n, op(a) is m×k, op(b) is k×n. It uses every
// CPU when the product is large enough to pay for it.
func Gemm(c, a, b []float32, m, k, n int, f Flags) {
	GemmThreads(runtime.GOMAXPROCS(0), c, a, b, m, k, n, f)
}

// minParallelFlops is the smallest product split across threads: below it
// (some 20 µs of work on one core), starting and joining goroutines costs
// more than it saves.
const minParallelFlops = 1 << 21

// GemmThreads is Gemm on at most threads goroutines.
func GemmThreads(threads int, c, a, b []float32, m, k, n int, f Flags) {
	gemm(bestKernel, threads, c, a, b, m, k, n, f)
}

func gemm(kern kernel, threads int, c, a, b []float32, m, k, n int, f Flags) {
	checkGemm(c, a, b, m, k, n)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		if f&Accumulate == 0 {
			clear(c[:m*n])
		}
		return
	}
	if 2*m*n*k < minParallelFlops {
		threads = 1
	}
	if threads <= 1 {
		gemmSerial(kern, c, a, b, m, k, n, 0, m, 0, n, f)
		return
	}
	// Split the rows when there are enough of them, else the columns; each
	// part packs what it needs, which costs little next to its share of
	// the product.
	var wg sync.WaitGroup
	if rows := ceilDiv(m, kern.mr); rows >= 2*threads {
		per := ceilDiv(rows, threads) * kern.mr
		for i0 := 0; i0 < m; i0 += per {
			wg.Add(1)
			go func(i0, i1 int) {
				defer wg.Done()
				gemmSerial(kern, c, a, b, m, k, n, i0, i1, 0, n, f)
			}(i0, min(m, i0+per))
		}
	} else {
		cols := ceilDiv(n, kern.nr)
		per := ceilDiv(cols, min(threads, cols)) * kern.nr
		for j0 := 0; j0 < n; j0 += per {
			wg.Add(1)
			go func(j0, j1 int) {
				defer wg.Done()
				gemmSerial(kern, c, a, b, m, k, n, 0, m, j0, j1, f)
			}(j0, min(n, j0+per))
		}
	}
	wg.Wait()
}

func checkGemm(c, a, b []float32, m, k, n int) {
	if m < 0 || k < 0 || n < 0 {
		panic(fmt.Sprintf("tensor: negative matrix size %dx%dx%d", m, k, n))
	}
	if len(a) < m*k || len(b) < k*n || len(c) < m*n {
		panic(fmt.Sprintf("tensor: gemm %dx%dx%d needs a %d, b %d, c %d values; have %d, %d, %d",
			m, k, n, m*k, k*n, m*n, len(a), len(b), len(c)))
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// Blocking, in the manner of Goto's GEMM: a kc×nr panel of b stays in L1
// while every mr×kc panel of the mc-row block of a (in L2) streams past it.
const (
	kcBlock = 256
	mcRows  = 12 // mc = mcRows·mr
	ncBlock = 2048
)

// kernel is a register-tile microkernel: it multiplies an mr×kc panel of a
// (packed: for each p, mr consecutive values) by a kc×nr panel of b (packed:
// for each p, nr consecutive values) into an mr×nr tile of c with row stride
// ldc, adding to c when acc is set.
type kernel struct {
	name   string
	mr, nr int
	run    func(kc int, a, b, c []float32, ldc int, acc bool)
}

// scratch holds one call's packing buffers; they are pooled so repeated
// products allocate nothing.
type scratch struct {
	a, b, tile []float32
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// gemmSerial computes rows [i0,i1) and columns [j0,j1) of c on one goroutine.
func gemmSerial(kern kernel, c, a, b []float32, m, k, n, i0, i1, j0, j1 int, f Flags) {
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	if i1-i0 < kern.mr/2 && f&TransB == 0 {
		// Too few rows to fill a register tile: stream b in place instead
		// of packing it (a decode step is one row).
		if strips := gemvStrips(kern); strips != nil {
			gemvRows(strips, s, c, a, b, m, k, n, i0, i1, j0, j1, f)
			return
		}
	}
	mr, nr := kern.mr, kern.nr
	mc := mcRows * mr
	s.tile = grow(s.tile, mr*nr)
	for jc := j0; jc < j1; jc += ncBlock {
		nc := min(ncBlock, j1-jc)
		panels := ceilDiv(nc, nr)
		for pc := 0; pc < k; pc += kcBlock {
			kc := min(kcBlock, k-pc)
			acc := f&Accumulate != 0 || pc > 0
			s.b = grow(s.b, panels*nr*kc)
			packB(s.b, b, k, n, pc, kc, jc, nc, nr, f&TransB != 0)
			for ic := i0; ic < i1; ic += mc {
				mcc := min(mc, i1-ic)
				rowPanels := ceilDiv(mcc, mr)
				s.a = grow(s.a, rowPanels*mr*kc)
				packA(s.a, a, m, k, ic, mcc, pc, kc, mr, f&TransA != 0)
				for jr := 0; jr < panels; jr++ {
					bp := s.b[jr*nr*kc : (jr+1)*nr*kc]
					cols := min(nr, nc-jr*nr)
					for ir := 0; ir < rowPanels; ir++ {
						ap := s.a[ir*mr*kc : (ir+1)*mr*kc]
						rows := min(mr, mcc-ir*mr)
						ci := (ic+ir*mr)*n + jc + jr*nr
						if rows == mr && cols == nr {
							kern.run(kc, ap, bp, c[ci:], n, acc)
							continue
						}
						// An edge tile: compute it whole, keep what fits.
						kern.run(kc, ap, bp, s.tile, nr, false)
						for i := range rows {
							dst := c[ci+i*n : ci+i*n+cols]
							src := s.tile[i*nr : i*nr+cols]
							if acc {
								for j := range dst {
									dst[j] += src[j]
								}
							} else {
								copy(dst, src)
							}
						}
					}
				}
			}
		}
	}
}

// gemvRows computes rows [i0,i1), columns [j0,j1) of c = op(a)·b one row
// at a time with the strip kernels, b read in place.
func gemvRows(strips []gemvStrip, s *scratch, c, a, b []float32, m, k, n, i0, i1, j0, j1 int, f Flags) {
	acc := f&Accumulate != 0
	s.a = grow(s.a, k)
	for i := i0; i < i1; i++ {
		row := a[i*k : (i+1)*k]
		if f&TransA != 0 {
			row = s.a
			for p := range k {
				row[p] = a[p*m+i]
			}
		}
		crow := c[i*n : (i+1)*n]
		j := j0
		for _, st := range strips {
			for ; j+st.width <= j1; j += st.width {
				_ = b[(k-1)*n+j+st.width-1] // the last value the kernel reads
				st.run(k, &row[0], &b[j], &crow[j], n, acc)
			}
		}
		for ; j < j1; j++ {
			var sum float32
			for p, av := range row {
				sum += av * b[p*n+j]
			}
			if acc {
				crow[j] += sum
			} else {
				crow[j] = sum
			}
		}
	}
}

// packA copies rows [i0, i0+mc) and depths [p0, p0+kc) of op(a) into
// panels of mr rows: panel r holds, for each p, rows r·mr..r·mr+mr-1 at
// depth p. Rows past the end are zero.
func packA(dst, a []float32, m, k, i0, mc, p0, kc, mr int, trans bool) {
	for r := 0; r*mr < mc; r++ {
		panel := dst[r*mr*kc : (r+1)*mr*kc]
		rows := min(mr, mc-r*mr)
		base := i0 + r*mr
		if trans {
			// a is k×m: the mr values for depth p are contiguous.
			for p := range kc {
				src := a[(p0+p)*m+base:]
				d := panel[p*mr : p*mr+mr]
				copy(d, src[:rows])
				clear(d[rows:])
			}
			continue
		}
		for i := range rows {
			src := a[(base+i)*k+p0 : (base+i)*k+p0+kc]
			for p, v := range src {
				panel[p*mr+i] = v
			}
		}
		for i := rows; i < mr; i++ {
			for p := range kc {
				panel[p*mr+i] = 0
			}
		}
	}
}

// packB copies depths [p0, p0+kc) and columns [j0, j0+nc) of op(b) into
// panels of nr columns: panel q holds, for each p, columns q·nr..q·nr+nr-1.
// Columns past the end are zero.
func packB(dst, b []float32, k, n, p0, kc, j0, nc, nr int, trans bool) {
	for q := 0; q*nr < nc; q++ {
		panel := dst[q*nr*kc : (q+1)*nr*kc]
		cols := min(nr, nc-q*nr)
		base := j0 + q*nr
		if !trans {
			// b is k×n: the nr values for depth p are contiguous.
			for p := range kc {
				d := panel[p*nr : p*nr+nr]
				copy(d, b[(p0+p)*n+base:(p0+p)*n+base+cols])
				clear(d[cols:])
			}
			continue
		}
		// b is n×k: walk each column's row of b.
		for j := range cols {
			src := b[(base+j)*k+p0 : (base+j)*k+p0+kc]
			for p, v := range src {
				panel[p*nr+j] = v
			}
		}
		for j := cols; j < nr; j++ {
			for p := range kc {
				panel[p*nr+j] = 0
			}
		}
	}
}

// KernelName names the microkernel Gemm uses on this CPU: "avx512", "avx2"
// or "go".
func KernelName() string { return bestKernel.name }
