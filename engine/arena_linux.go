package engine

import "syscall"

// adviseHugePages asks for b in huge pages. Attention reads a step's
// blocks from all over the cache, a few kilobytes from each: in 4 KiB
// pages every block costs the core translations its TLB cannot hold, in
// 2 MiB pages a whole slab is a few entries. The advice is only that: a
// kernel without transparent huge pages maps small ones, and the memory
// is the same.
func adviseHugePages(b []byte) {
	_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE) // refused, small pages serve
}
