package tensor

import (
	"github.com/braid-dev/braid/internal/half"
)

// BF16Available reports whether this CPU runs the bfloat16 products
// (AVX-512 BF16): whether PackBF16 packs.
func BF16Available() bool {
	for _, t := range bestKernel.tiles {
		if t.runBF == nil {
			return false
		}
	}
	return true
}

// PackBF16 is Pack for products in bfloat16: b's values rounded to
// bfloat16 and laid out in pairs of depths, which the AVX-512 BF16
// kernels multiply by a's rows, rounded the same way, two multiply-adds
// to an instruction into float32 sums. That doubles the arithmetic rate of
// products of many rows (batched decoding, prefill), which are bound by
// it, and streams as many bytes as PackHalf for products of few. The
// price is precision: 8 significant bits for a and b instead of 24 and 11.
// It reports false, packing nothing, on a CPU without the kernels.
//
// Panel q of the depth block at pc holds, for each pair of depths p, nr
// pairs: value 2j is b[pc+2p][q·nr+j], 2j+1 is b[pc+2p+1][q·nr+j], zero
// past k up to a whole 32 depths, the step AMX tiles read.
func PackBF16(b []float32, k, n int, f Flags) (*Packed, bool) {
	if !BF16Available() {
		return nil, false
	}
	p := Pack(b, k, n, f)
	nr := p.kern.nr
	panels := ceilDiv(n, nr)
	p.bf = make([]uint16, panels*nr*bfDepth(k))
	for pc := 0; pc < k; pc += kcBlock {
		kc := min(kcBlock, k-pc)
		for q := range panels {
			src, _ := p.panel(pc, q)
			dst := p.panelBF(pc, q)
			for d := range kc {
				for j := range nr {
					dst[(d/2)*2*nr+2*j+d%2] = half.BF16FromFloat32(src[d*nr+j])
				}
			}
		}
	}
	p.data = nil
	if nr == 32 { // the AMX kernel reads panels of two 16-column tiles
		p.amx = amxPanelsBF16
	}
	return p, true
}

// bfDepth is the depths a block of kc takes in a PackBF16 panel: whole
// steps of 32. Every block but the last is a whole kcBlock already.
func bfDepth(kc int) int { return ceilDiv(kc, 32) * 32 }

// bfFrom returns the bfloat16 panels of the matrix from panel q of the
// depth block at pc to its end, for the AMX kernel, which reads on.
func (p *Packed) bfFrom(pc, q int) []uint16 {
	nr := p.kern.nr
	return p.bf[pc*ceilDiv(p.n, nr)*nr+q*bfDepth(min(kcBlock, p.k-pc))*nr:]
}

// panelBF returns panel q of the depth block starting at pc of a matrix
// packed by PackBF16. Every block but the last is a whole, even kcBlock, so
// block pc starts where it does in the float32 layout.
func (p *Packed) panelBF(pc, q int) []uint16 {
	nr, kc := p.kern.nr, bfDepth(min(kcBlock, p.k-pc))
	off := pc*ceilDiv(p.n, nr)*nr + q*kc*nr
	return p.bf[off : off+kc*nr]
}

// ToBF16 rounds src to bfloat16 into dst (as half.BF16FromFloat32).
func ToBF16(dst []uint16, src []float32) {
	checkLen("ToBF16", len(dst), len(src))
	for i := toBF16Vector(dst, src); i < len(src); i++ {
		dst[i] = half.BF16FromFloat32(src[i])
	}
}

// bf16Rows rounds rows [i0,i1) of a's first k columns to bfloat16, for
// the pair kernels: row i at (i-i0)·kp, kp ≥ k (k rounded up to even for
// the AVX-512 kernels, to 32 for AMX's), the pad zero. The rows live in s
// until its next use.
func (s *scratch) bf16Rows(a Mat, i0, i1, k, kp int) []uint16 {
	if cap(s.abf) < (i1-i0)*kp {
		s.abf = make([]uint16, (i1-i0)*kp)
	}
	abf := s.abf[:(i1-i0)*kp]
	for i := i0; i < i1; i++ {
		row := abf[(i-i0)*kp : (i-i0+1)*kp]
		ToBF16(row[:k], a.Data[i*a.Stride:i*a.Stride+k])
		clear(row[k:])
	}
	return abf
}
