package tensor

import (
	"fmt"
	"testing"
)

// BenchmarkKeyScores scores one query per head against a KV cache's keys
// laid out as the engine lays them (8 heads of 32 dimensions, blocks of 16
// positions), in half precision, in 8 bits widened to float32 and in 8
// bits on VNNI (ScoresQ8, as the engine's 8-bit cache scores them), over
// caches from one that stays in L2 to one far past L3. Bytes are counted as positions × heads ×
// dimensions, the same for both, so MB/s compares positions scored.
func BenchmarkKeyScores(b *testing.B) {
	const heads, hd, bt = 8, 32, 16
	block := heads * hd * bt
	for _, mib := range []int{1, 16, 64, 256} {
		n := (mib << 20) / block // blocks of this many million values
		halves, bytes, keys := make([]uint16, n*block), make([]int8, n*block), make([]uint8, n*block)
		for i := range halves {
			halves[i], bytes[i], keys[i] = 0x3c00, 1, 129
		}
		q8, qh, ks := make([]int8, heads*hd), make([]Q8Head, heads), make([]float32, heads*bt)
		q := make([]float32, heads*hd)
		scores := make([]float32, heads*bt*n)
		b.Run(fmt.Sprintf("f16/Mvalues=%d", mib), func(b *testing.B) {
			b.SetBytes(int64(len(halves)))
			for b.Loop() {
				for i := range n {
					VecMatHeadsF16(heads, scores[i*bt:], bt*n, q, hd, halves[i*block:], hd*bt, bt, hd, bt, false, nil)
				}
			}
		})
		b.Run(fmt.Sprintf("i8/Mvalues=%d", mib), func(b *testing.B) {
			b.SetBytes(int64(len(bytes)))
			for b.Loop() {
				for i := range n {
					VecMatHeadsI8(heads, scores[i*bt:], bt*n, q, hd, bytes[i*block:], hd*bt, bt, hd, bt, false, nil)
				}
			}
		})
		b.Run(fmt.Sprintf("q8/Mvalues=%d", mib), func(b *testing.B) {
			b.SetBytes(int64(len(keys)))
			for b.Loop() {
				for i := range n {
					ScoresQ8(heads, hd, scores[i*bt:], bt*n, q8, hd, qh, 1, keys[i*block:], hd*bt, ks, nil)
				}
			}
		})
	}
}
