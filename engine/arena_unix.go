//go:build unix

package engine

import "syscall"

// mapAnonymous maps n bytes of zeroed private memory, asking for huge
// pages where the system has them (adviseHugePages).
func mapAnonymous(n int) ([]byte, error) {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, err
	}
	adviseHugePages(b)
	return b, nil
}

// unmap gives a mapping back to the system. It can fail only for a slice
// mapAnonymous did not return, which would be a bug.
func unmap(b []byte) {
	if err := syscall.Munmap(b); err != nil {
		panic("engine: unmap KV cache: " + err.Error())
	}
}
