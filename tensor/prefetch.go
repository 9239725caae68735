package tensor

import "unsafe"

// Prefetch asks the core to bring the cache lines of s into its caches,
// without waiting for them: for data a loop will read soon at addresses
// no hardware prefetcher can guess (the scattered positions of a sparse
// attention's selection), so that several lines are in flight at once
// rather than each read stalling on its own. It never faults; an empty s
// asks for nothing.
func Prefetch[E any](s []E) {
	if len(s) == 0 {
		return
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	end := start + uintptr(len(s))*unsafe.Sizeof(s[0])
	for a := start &^ 63; a < end; a += 64 {
		prefetch(a)
	}
}
