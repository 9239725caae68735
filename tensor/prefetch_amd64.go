package tensor

// prefetch is PREFETCHT0 of the line at addr: a hint that never faults,
// so an address is enough (no pointer for the collector to follow).
//
//go:noescape
func prefetch(addr uintptr)
