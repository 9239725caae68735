// Package half converts between float32 and IEEE 754 half precision
// (binary16), the format of F16 weights and of the engine's KV cache.
package half

import "math"

// FromFloat32 rounds x to the nearest half, ties to even, as the
// hardware's conversion does: values past the half range become ±Inf, NaN
// stays NaN.
func FromFloat32(x float32) uint16 {
	b := math.Float32bits(x)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	switch {
	case e >= 0x1f:
		return sign | 0x7c00
	case e <= 0:
		// A subnormal half (or zero): the value is m·2⁻²⁴.
		if e < -10 {
			return sign
		}
		m := mant | 0x800000
		shift := uint(14 - e)
		h := m >> shift
		rem, half := m&(1<<shift-1), uint32(1)<<(shift-1)
		if rem > half || rem == half && h&1 == 1 {
			h++ // may carry into the smallest normal, which is right
		}
		return sign | uint16(h)
	}
	h := sign | uint16(e)<<10 | uint16(mant>>13)
	if rem := mant & 0x1fff; rem > 0x1000 || rem == 0x1000 && h&1 == 1 {
		h++ // may carry into the exponent, up to Inf, which is right
	}
	return h
}

// ToFloat32 widens a half, exactly: every half, subnormals included, is a
// float32.
func ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0:
		v := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(math.Float32bits(v) | sign)
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

// BF16FromFloat32 rounds x to bfloat16 (float32's sign and exponent, 7
// bits of mantissa) as VCVTNEPS2BF16 does, so that Go and the vector
// conversion agree bit for bit: to nearest, ties to even; subnormals
// become zero of the same sign; NaN stays a quiet NaN; values that round
// past the largest finite become ±Inf.
func BF16FromFloat32(x float32) uint16 {
	b := math.Float32bits(x)
	switch exp := b >> 23 & 0xff; {
	case exp == 0:
		return uint16(b>>16) & 0x8000
	case exp == 0xff:
		if b&0x7fffff != 0 {
			return uint16(b>>16) | 0x40
		}
		return uint16(b >> 16)
	}
	return uint16((b + 0x7fff + (b >> 16 & 1)) >> 16)
}

// BF16ToFloat32 widens a bfloat16 exactly.
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
