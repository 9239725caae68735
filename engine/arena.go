package engine

import "unsafe"

// arenaSlab is the size of the mappings an arena carves blocks from: a
// thousand blocks of a small model, a few hundred of a large one's, few
// enough mappings that the kernel's limit on them is never near, and
// large enough that huge pages (arena_linux.go) cover nearly all of one
// whatever 2 MiB boundary it starts beside. Its memory is committed as
// blocks are written, a page (or huge page) at a time.
const arenaSlab = 64 << 20

// arena hands out the KV cache's blocks from memory mapped outside the Go
// heap. The cache is most of what a server allocates, and it fills in
// bursts: on the heap, a full cache leaves the runtime with arenas,
// metadata and fragmented spans sized for it long after it is dropped, and
// the collector lets garbage grow in proportion to it. Mapped blocks cost
// the collector nothing and go back to the system whole when the arena is
// released. Where the system cannot map memory, slabs come from the heap.
type arena struct {
	stride int // bytes per block, a multiple of 64 so blocks share no cache line
	slabs  [][]byte
	mapped []bool // whether slabs[i] was mapped, rather than allocated
	used   int    // bytes handed out of the last slab
}

func newArena(blockBytes int) *arena {
	return &arena{stride: (blockBytes + 63) &^ 63}
}

// take returns the memory of one block, zeroed.
func (a *arena) take() []byte {
	if len(a.slabs) == 0 || a.used+a.stride > len(a.slabs[len(a.slabs)-1]) {
		size := max(a.stride, arenaSlab/a.stride*a.stride)
		mem, err := mapAnonymous(size)
		a.slabs = append(a.slabs, mem)
		a.mapped = append(a.mapped, err == nil)
		if err != nil {
			a.slabs[len(a.slabs)-1] = make([]byte, size)
		}
		a.used = 0
	}
	b := a.slabs[len(a.slabs)-1][a.used : a.used+a.stride : a.used+a.stride]
	a.used += a.stride
	return b
}

// release unmaps every slab. No block taken from the arena may be used
// after it.
func (a *arena) release() {
	for i, s := range a.slabs {
		if a.mapped[i] {
			unmap(s)
		}
	}
	a.slabs, a.mapped, a.used = nil, nil, 0
}

// halves views b as half-precision values.
func halves(b []byte, n int) []uint16 {
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// floats views b as float32s.
func floats(b []byte, n int) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// int8s views b as int8s.
func int8s(b []byte, n int) []int8 {
	return unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(b))), n)
}
