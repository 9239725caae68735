package tensor

import "golang.org/x/sys/cpu"

//go:noescape
func scoresQ8VNNI(heads, steps int, q *int8, ldq int, qh *Q8Head, ldh int, b *uint8, ldbh int, ks *float32, c *float32, ldc int, fetch *uint8)

// scoresQ8Kernel is ScoresQ8's kernel where the CPU has AVX-512 VNNI.
var scoresQ8Kernel = func() func(heads, steps int, q *int8, ldq int, qh *Q8Head, ldh int, b *uint8, ldbh int, ks *float32, c *float32, ldc int, fetch *uint8) {
	if !cpu.X86.HasAVX512F || !cpu.X86.HasAVX512VNNI {
		return nil
	}
	return scoresQ8VNNI
}()
