package remote

import (
	"context"
	"sync"
)

// slotPool keeps, from the client's side, the slots of a server whose
// prefix cache is one per slot (llama.cpp's llama-server, -np N), and
// sends each call to the free slot whose cache holds most of its prompt
// (id_slot). Left to itself such a server picks the slot, and a thread's
// next call often finds its own slot still busy: stop and continue cuts a
// stream and sends the next call at once, before the server has noticed
// the cut. The call then lands in a slot holding another thread's text
// and reads its whole prompt again. With the slot named, the server waits
// for it instead; with the pool, calls never outnumber the slots.
type slotPool struct {
	free chan struct{} // a token per free slot
	mu   sync.Mutex
	busy []bool
	text []string // what each slot's cache was last given
	used []uint64 // when each slot was last taken
	tick uint64
}

func newSlotPool(n int) *slotPool {
	p := &slotPool{free: make(chan struct{}, n), busy: make([]bool, n), text: make([]string, n), used: make([]uint64, n)}
	for range n {
		p.free <- struct{}{}
	}
	return p
}

// take waits for a free slot and returns the one whose text shares the
// longest prefix with prompt, of those that tie the least recently used.
func (p *slotPool) take(ctx context.Context, prompt string) (int, error) {
	select {
	case <-p.free:
	case <-ctx.Done():
		return -1, ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	best, bestLen := -1, -1
	for i, busy := range p.busy {
		if busy {
			continue
		}
		n := commonPrefix(prompt, p.text[i])
		if n > bestLen || n == bestLen && p.used[i] < p.used[best] {
			best, bestLen = i, n
		}
	}
	p.tick++
	p.busy[best], p.used[best] = true, p.tick
	return best, nil
}

// give returns slot i, whose cache now holds text.
func (p *slotPool) give(i int, text string) {
	p.mu.Lock()
	p.busy[i], p.text[i] = false, text
	p.mu.Unlock()
	p.free <- struct{}{}
}

// commonPrefix is the length of the longest common prefix of a and b.
func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
