package engine

import "syscall"

// mapAnonymous maps n bytes of zeroed private memory, asking for it in
// huge pages. Attention reads a step's blocks from all over the cache,
// a few kilobytes from each: in 4 KiB pages every block costs the core
// translations its TLB cannot hold, in 2 MiB pages a whole slab is a few
// entries. The advice is only that: a kernel without transparent huge
// pages maps small ones, and the memory is the same.
func mapAnonymous(n int) ([]byte, error) {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, err
	}
	_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE) // advice: refused, small pages serve
	return b, nil
}

// unmap gives a mapping back to the system. It can fail only for a slice
// mapAnonymous did not return, which would be a bug.
func unmap(b []byte) {
	if err := syscall.Munmap(b); err != nil {
		panic("engine: unmap KV cache: " + err.Error())
	}
}
