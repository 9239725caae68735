package tensor

import "unsafe"

// Prefetch asks the CPU to bring s's memory into its caches, without
// waiting for it: for data a loop will read next whose address no
// hardware prefetcher can guess (the next block of a KV cache, which lies
// anywhere). It changes no value; a CPU without the instruction does
// nothing.
func Prefetch[E uint16 | int8 | float32](s []E) {
	if len(s) == 0 {
		return
	}
	prefetch((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(s[0])))
}
