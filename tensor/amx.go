package tensor

import (
	"encoding/binary"
	"sync"
)

// Products on AMX tiles (Sapphire Rapids and later): TDPBF16PS multiplies
// a 16×32 tile of bfloat16 rows by a 32×16 tile of bfloat16 columns into
// a 16×16 tile of float32 sums, 16,384 operations an instruction against
// AVX-512's 32. Both operands are packed first into whole tiles, a as rows
// of 32 depths and b as pairs of depths (the layout the instruction
// reads), padded with zeros to whole tiles; each call of the kernel
// computes 32 rows of c by every column of a block of b.

// Blocking: a 32×amxKC block of a (64 KiB) stays in L1 and L2 while the
// kernel streams amxKC×amxNC of b (1 MiB) from L2.
const (
	amxKC = 1024
	amxNC = 512
)

// amxMin is the fewest rows and columns a BF16 product runs on tiles.
const amxMin = 16

// amxConfig is the 64 bytes LDTILECFG reads: palette 1, and every tile 16
// rows of 64 bytes.
type amxConfig [64]byte

func newAMXConfig() *amxConfig {
	var c amxConfig
	c[0] = 1
	for t := range 8 {
		binary.LittleEndian.PutUint16(c[16+2*t:], 64)
		c[48+t] = 16
	}
	return &c
}

// amxFunc computes 32 rows of c, row stride ldc, from packed a and b
// (see amxSerial), adding to c with acc.
type amxFunc func(cfg *amxConfig, a, b []uint16, c []float32, ksteps, pairs, ldc int, acc bool)

// amxPanelsFunc computes rows (at most 16) of c, row stride ldc, from a
// (bfloat16 rows of stride lda, zero past k) and panels of a PackBF16
// matrix, panel values apart; all counts in values, not bytes.
type amxPanelsFunc func(cfg *amxConfig, a []uint16, lda int, b []uint16, panel int, c []float32, ldc, rows, ksteps, panels int, acc bool)

// amx and amxPanelsBF16 are the AMX kernels, nil where the CPU or the
// kernel has none; like bestKernel they are fixed at start-up.
var (
	amx           = amxKernel()
	amxPanelsBF16 = amxPanelsKernel()
	amxCfg        = newAMXConfig()
)

// rowsConfigs[r] is the tile configuration of amxPanels for r rows of a
// and c: tiles 0 and 1 accumulate c, 4 holds a, 6 and 7 hold b. They are
// made once: a configuration made per call would escape to the heap
// through the kernel's function value.
var rowsConfigs = func() (cs [17]amxConfig) {
	for rows := range cs {
		c := &cs[rows]
		c[0] = 1
		for _, t := range []int{0, 1, 4, 6, 7} {
			binary.LittleEndian.PutUint16(c[16+2*t:], 64)
			c[48+t] = byte(rows)
		}
		c[48+6], c[48+7] = 16, 16
	}
	return cs
}()

// BF16KernelName names the kernel Gemm's BF16 products run on: "amx", or
// "" where they run in float32.
func BF16KernelName() string {
	if amx != nil {
		return "amx"
	}
	return ""
}

// gemmAMX is gemm for a BF16 product on AMX tiles. It splits the product
// across threads by rows when b is the smaller operand (each part packs
// all of b), else by columns (each packs all of a).
func gemmAMX(threads int, g gemmArgs) {
	m, n := g.m, g.n
	if 2*m*n*g.k < minParallelFlops {
		threads = 1
	}
	rowGroups, colGroups := ceilDiv(m, 32), ceilDiv(n, 32)
	if threads <= 1 || rowGroups == 1 && colGroups == 1 {
		amxSerial(g, 0, m, 0, n)
		return
	}
	var wg sync.WaitGroup
	if m >= n && rowGroups > 1 || colGroups == 1 {
		per := ceilDiv(rowGroups, min(threads, rowGroups)) * 32
		for i0 := 0; i0 < m; i0 += per {
			wg.Go(func() { amxSerial(g, i0, min(m, i0+per), 0, n) })
		}
	} else {
		per := ceilDiv(colGroups, min(threads, colGroups)) * 32
		for j0 := 0; j0 < n; j0 += per {
			wg.Go(func() { amxSerial(g, 0, m, j0, min(n, j0+per)) })
		}
	}
	wg.Wait()
}

// amxScratch holds one part's packed operands; pooled like scratch.
type amxScratch struct {
	a, b, row []uint16
	c         []float32
}

var amxPool = sync.Pool{New: func() any { return new(amxScratch) }}

// amxSerial computes rows [i0,i1) and columns [j0,j1) of c on one
// goroutine.
func amxSerial(g gemmArgs, i0, i1, j0, j1 int) {
	s := amxPool.Get().(*amxScratch)
	defer amxPool.Put(s)
	groups := ceilDiv(i1-i0, 32)
	for pc := 0; pc < g.k; pc += amxKC {
		kc := min(amxKC, g.k-pc)
		ksteps := ceilDiv(kc, 32)
		s.packA(g.a, g.f&TransA != 0, i0, i1, pc, kc, ksteps)
		acc := g.f&Accumulate != 0 || pc > 0
		for jc := j0; jc < j1; jc += amxNC {
			nc := min(amxNC, j1-jc)
			pairs := ceilDiv(nc, 32)
			s.packB(g.b, g.f&TransB != 0, jc, nc, pc, kc, ksteps, pairs)
			for gr := range groups {
				i := i0 + gr*32
				if i+32 <= i1 && nc == pairs*32 {
					// A whole block: the tiles load and store c itself.
					amx(amxCfg, s.a[gr*ksteps*1024:], s.b, g.c.Data[i*g.c.Stride+jc:], ksteps, pairs, g.c.Stride, acc)
					continue
				}
				// A ragged block goes through scratch, c's values in it
				// first when they accumulate, so that the tiles sum them in
				// the order a whole block does: a value's bits do not
				// depend on the rows and columns beside it.
				ldc, rows := pairs*32, min(32, i1-i)
				s.c = grow(s.c, 32*ldc)
				block := Mat{g.c.Data[i*g.c.Stride+jc:], g.c.Stride}
				if acc {
					copyBlock(Mat{s.c, ldc}, block, rows, nc)
				}
				amx(amxCfg, s.a[gr*ksteps*1024:], s.b, s.c, ksteps, pairs, ldc, acc)
				copyBlock(block, Mat{s.c, ldc}, rows, nc)
			}
		}
	}
}

// copyBlock copies the first rows×cols values of src into dst: the block
// of c a product computes through scratch, in and out.
func copyBlock(dst, src Mat, rows, cols int) {
	for r := range rows {
		copy(dst.Data[r*dst.Stride:r*dst.Stride+cols], src.Data[r*src.Stride:r*src.Stride+cols])
	}
}

// packA packs rows [i0,i1), depths [pc,pc+kc) of op(a) into s.a in
// bfloat16: for each group of 32 rows and each step of 32 depths, two
// tiles of 16 rows × 32 depths; value (row 16r+i of the group, depth
// 32t+d) at (2t+r)·512 + 32i + d of the group's ksteps·1024 values.
func (s *amxScratch) packA(a Mat, trans bool, i0, i1, pc, kc, ksteps int) {
	rows := i1 - i0
	s.a = grow(s.a, ceilDiv(rows, 32)*ksteps*1024)
	clear(s.a)
	if !trans {
		s.row = grow(s.row, kc)
		for i := range rows {
			off := (i0+i)*a.Stride + pc
			ToBF16(s.row, a.Data[off:off+kc])
			// Row i's 32 depths of step t sit in tile 2t+r of its group.
			o := i/32*ksteps*1024 + (i%32/16)*512 + i%16*32
			for d := 0; d < kc; d += 32 {
				copy(s.a[o+d/32*1024:o+d/32*1024+min(32, kc-d)], s.row[d:])
			}
		}
		return
	}
	// a is stored k×m: a row of it is one depth of every row of op(a).
	// Round 32 of them (one step of depths), then write each row's 32
	// values as the one 64-byte line they make in its tile.
	s.row = grow(s.row, 32*rows)
	for d0 := 0; d0 < kc; d0 += 32 {
		depths := min(32, kc-d0)
		for d := range depths {
			off := (pc+d0+d)*a.Stride + i0
			ToBF16(s.row[d*rows:(d+1)*rows], a.Data[off:off+rows])
		}
		for i := range rows {
			o := i/32*ksteps*1024 + (2*(d0/32)+i%32/16)*512 + i%16*32
			line := s.a[o : o+depths]
			for d := range line {
				line[d] = s.row[d*rows+i]
			}
		}
	}
}

// packB packs depths [pc,pc+kc), columns [jc,jc+nc) of op(b) into s.b in
// bfloat16, as 2·pairs panels of 16 columns: panel q holds, for each pair
// of depths 2p, 2p+1 and column j, the two values at q·ksteps·512 +
// 32p + 2j (+1). Each panel is written in order, 32 values a pair.
func (s *amxScratch) packB(b Mat, trans bool, jc, nc, pc, kc, ksteps, pairs int) {
	s.b = grow(s.b, pairs*ksteps*1024)
	clear(s.b)
	panel := ksteps * 512
	if !trans {
		// Two rows of b are one pair of depths of every column.
		s.row = grow(s.row, 2*nc)
		r0, r1 := s.row[:nc], s.row[nc:]
		for d := 0; d < kc; d += 2 {
			off := (pc+d)*b.Stride + jc
			ToBF16(r0, b.Data[off:off+nc])
			if d+1 < kc {
				ToBF16(r1, b.Data[off+b.Stride:off+b.Stride+nc])
			} else {
				clear(r1)
			}
			for j0 := 0; j0 < nc; j0 += 16 {
				dst := s.b[j0/16*panel+d/2*32:]
				dst = dst[:32]
				for j := range min(16, nc-j0) {
					dst[2*j], dst[2*j+1] = r0[j0+j], r1[j0+j]
				}
			}
		}
		return
	}
	// b is stored n×k: a row of it is one column of op(b). Round 16 of
	// them, then interleave their pairs into the panel.
	kp := ksteps * 32
	s.row = grow(s.row, 16*kp)
	for j0 := 0; j0 < nc; j0 += 16 {
		cols := min(16, nc-j0)
		clear(s.row)
		for j := range cols {
			off := (jc+j0+j)*b.Stride + pc
			ToBF16(s.row[j*kp:j*kp+kc], b.Data[off:off+kc])
		}
		dst := s.b[j0/16*panel : (j0/16+1)*panel]
		for p := range kp / 2 {
			line := dst[32*p : 32*p+32]
			for j := range cols {
				line[2*j], line[2*j+1] = s.row[j*kp+2*p], s.row[j*kp+2*p+1]
			}
		}
	}
}
