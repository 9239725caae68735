package tensor

import "math"

// Exp is e^x in float32, within 2 ulp of math.Exp over the range where the
// result is a normal float32 (and 0 or +Inf outside it), and much cheaper:
// Cody-Waite range reduction x = n·ln2 + r, |r| ≤ ln2/2, then the Cephes
// degree-6 polynomial for e^r, scaled by 2^n through the exponent bits.
// Softmax and SiLU spend most of their time here.
func Exp(x float32) float32 {
	switch {
	case x > expHi:
		return float32(math.Inf(1))
	case x < expLo:
		return 0
	case x != x:
		return x
	}
	// Round x·log2(e) to the nearest integer by adding and removing
	// 1.5·2^23, which leaves no fraction bits.
	const magic = 12582912
	n := x*log2e + magic - magic
	r := x - n*ln2hi - n*ln2lo
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	y := p*r*r + r + 1
	// Scale by 2^n in two halves built from exponent bits: n runs from
	// -150 to 128, past what one float32 exponent holds at either end.
	h := int32(n) >> 1
	return y * pow2(h) * pow2(int32(n)-h)
}

// The constants of Exp, shared with the vector kernels.
const (
	expHi = 88.72283  // e^x overflows float32 above
	expLo = -103.9721 // e^x is below half the smallest subnormal below
	log2e = 1.44269504088896341
	ln2hi = 0.693359375
	ln2lo = -2.12194440e-4
)

// expConsts is the table the vector kernels broadcast from.
// Its upper clamp, 89, lies past the overflow bound so that the scaling
// itself overflows to +Inf, as Exp does above expHi.
var expConsts = [12]float32{expLo, 89, log2e, ln2hi, ln2lo,
	1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1, 1}

// ExpSlice writes e^src[i] to dst[i], with the vector kernel where the CPU
// has one; dst and src may be the same slice.
func ExpSlice(dst, src []float32) {
	checkLen("ExpSlice", len(dst), len(src))
	dst = dst[:len(src)]
	done := expVector(dst, src)
	for i := done; i < len(src); i++ {
		dst[i] = Exp(src[i])
	}
}

// pow2 is 2^e for -126 <= e <= 127.
func pow2(e int32) float32 { return math.Float32frombits(uint32(e+127) << 23) }
