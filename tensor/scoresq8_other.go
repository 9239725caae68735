//go:build !amd64

package tensor

// scoresQ8Kernel is nil: ScoresQ8 sums in Go.
var scoresQ8Kernel func(heads, steps int, q *int8, ldq int, qh *Q8Head, ldh int, b *uint8, ldbh int, ks *float32, c *float32, ldc int, fetch *uint8)
