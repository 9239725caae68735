package safetensors

import (
	"encoding/binary"
	"math"

	"github.com/braid-dev/braid/internal/half"
)

// DType names the element type of a tensor as the safetensors header spells
// it ("F32", "BF16", "I64", ...). Files may hold any dtype dtypeSize
// knows; Float32 converts only the floating-point ones named below.
type DType string

// The dtypes that (*File).Float32 converts.
const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	F64  DType = "F64"
)

// dtypeSize reports the size in bytes of one element of dtype, for every
// dtype the reader accepts: the list of the reference implementation, whose
// files carry these names. Sub-byte dtypes (F4, F6_*) are left out: no model
// braid loads uses them, and a header naming one is reported as unknown.
func dtypeSize(dtype DType) (uint64, bool) {
	switch dtype {
	case "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0":
		return 1, true
	case "I16", "U16", F16, BF16:
		return 2, true
	case "I32", "U32", F32:
		return 4, true
	case F64, "I64", "U64", "C64":
		return 8, true
	}
	return 0, false
}

// decodeFloats converts raw little-endian elements of dtype to float32. It
// reports false, having allocated nothing, for a dtype that is not one of
// the float dtypes above.
func decodeFloats(dtype DType, raw []byte) ([]float32, bool) {
	var out []float32
	switch dtype {
	case F32:
		out = make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case F16:
		out = make([]float32, len(raw)/2)
		for i := range out {
			out[i] = half.ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case BF16:
		out = make([]float32, len(raw)/2)
		for i := range out {
			out[i] = bfloat16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case F64:
		out = make([]float32, len(raw)/8)
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	default:
		return nil, false
	}
	return out, true
}

// bfloat16ToFloat32 widens a bfloat16, which is the top half of a float32:
// every value, NaN payloads included, converts exactly.
func bfloat16ToFloat32(b uint16) float32 {
	return math.Float32frombits(uint32(b) << 16)
}
