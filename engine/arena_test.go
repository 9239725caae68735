package engine

import (
	"runtime"
	"testing"
)

// A full cache grows neither the Go heap nor what the collector tracks,
// and its blocks do not overlap.
func TestArenaBlocksLiveOffTheHeap(t *testing.T) {
	if _, err := mapAnonymous(4096); err != nil {
		t.Skipf("no anonymous mappings here: %v", err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	a := newArena(100_000)
	blocks := make([][]byte, 1000) // 100 MB
	for i := range blocks {
		blocks[i] = a.take()
		if len(blocks[i]) != a.stride || a.stride%64 != 0 || a.stride < 100_000 {
			t.Fatalf("block %d has %d bytes (stride %d), want 100000 rounded up to a cache line", i, len(blocks[i]), a.stride)
		}
		blocks[i][0], blocks[i][len(blocks[i])-1] = byte(i), byte(i>>8)
	}
	runtime.ReadMemStats(&after)
	// Signed: the heap can also shrink meanwhile (other tests' memory
	// returned under -race), which an unsigned difference reads as 16 EB.
	if grew := int64(after.HeapSys) - int64(before.HeapSys); grew > 8<<20 {
		t.Errorf("100 MB of blocks grew the heap by %d MB", grew>>20)
	}
	for i, b := range blocks {
		if b[0] != byte(i) || b[len(b)-1] != byte(i>>8) {
			t.Fatalf("block %d was overwritten by another", i)
		}
	}
	a.release()
	if len(a.slabs) != 0 {
		t.Errorf("%d slabs kept after release", len(a.slabs))
	}
	if b := a.take(); len(b) != a.stride {
		t.Errorf("after release the arena gives %d bytes", len(b))
	}
	a.release()
}
