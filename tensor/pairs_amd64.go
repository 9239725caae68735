package tensor

import "golang.org/x/sys/cpu"

//go:noescape
func pairsBF16AVX512(dst *uint16, r0, r1 *float32, blocks int, idx *uint16)

// pairsIndex interleaves the two halves of a vector of 32 words.
var pairsIndex = func() (idx [32]uint16) {
	for j := range 16 {
		idx[2*j], idx[2*j+1] = uint16(j), uint16(16+j)
	}
	return idx
}()

// pairsVector writes the pairs (r0[j], r1[j]) rounded to bfloat16 into
// dst[2j], dst[2j+1] for the leading multiple of 16 columns and returns
// how many columns it did.
func pairsVector(dst []uint16, r0, r1 []float32) int {
	blocks := len(r0) / 16
	if !cpu.X86.HasAVX512BF16 || !cpu.X86.HasAVX512BW || blocks == 0 {
		return 0
	}
	_, _ = dst[blocks*32-1], r1[blocks*16-1]
	pairsBF16AVX512(&dst[0], &r0[0], &r1[0], blocks, &pairsIndex[0])
	return blocks * 16
}
