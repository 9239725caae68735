package tensor

import (
	"fmt"
	"testing"
)

// BenchmarkKeyScores scores one query per head against a KV cache's keys
// laid out as the engine lays them (8 heads of 32 dimensions, blocks of 16
// positions), in half precision and in 8 bits, over caches from one that
// stays in L2 to one far past L3. Bytes are counted as positions × heads ×
// dimensions, the same for both, so MB/s compares positions scored.
func BenchmarkKeyScores(b *testing.B) {
	const heads, hd, bt = 8, 32, 16
	block := heads * hd * bt
	for _, mib := range []int{1, 16, 64, 256} {
		n := (mib << 20) / block // blocks of this many million values
		halves, bytes := make([]uint16, n*block), make([]int8, n*block)
		for i := range halves {
			halves[i], bytes[i] = 0x3c00, 1
		}
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
	}
}
