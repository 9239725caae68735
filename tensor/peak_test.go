package tensor

import (
	"testing"
	"time"
)

func TestGemmGFLOPS(t *testing.T) {
	for _, threads := range []int{1, 2} {
		if g := GemmGFLOPS(16, 32, 48, threads, 0, time.Millisecond); g <= 0 {
			t.Errorf("%d threads: %g GFLOP/s", threads, g)
		}
	}
}
