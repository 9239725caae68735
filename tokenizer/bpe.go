package tokenizer

import "math"

// A merge is one rule of the merge table: the pair it applies to (the key of
// the table) makes the token id, and among the pairs of a word the rule of
// lowest rank, its index in the merges list, applies first.
type merge struct{ rank, id int32 }

// pairKey is the merge-table key of the pair (left, right).
func pairKey(left, right int32) uint64 {
	return uint64(uint32(left))<<32 | uint64(uint32(right))
}

// queueFrom is the length from which a word merges through a mergeQueue
// rather than by mergeNaive. Rescanning is quadratic, but it is faster up to
// about 300 symbols (measured on GPT-2's merges), and nearly all words are
// far shorter; the queue bounds the time of pathological long words.
const queueFrom = 256

// mergeNaive applies merges to a short word by scanning all its pairs for
// the next merge. It is the fast path for the short words that are nearly
// all of any text, and the test oracle for mergeQueue. ranks is scratch
// space: ranks[i] is the rule for the pair at i, so that each merge looks
// up only the two pairs it changes.
func mergeNaive(merges map[uint64]merge, syms []int32, ranks *[]merge) []int32 {
	r := (*ranks)[:0]
	for i := 0; i+1 < len(syms); i++ {
		r = append(r, rule(merges, syms[i], syms[i+1]))
	}
	*ranks = r
	for len(r) > 0 {
		at := 0
		for i := 1; i < len(r); i++ {
			if r[i].rank < r[at].rank {
				at = i
			}
		}
		if r[at].rank == noRule {
			break
		}
		syms[at] = r[at].id
		syms = append(syms[:at+1], syms[at+2:]...)
		r = append(r[:at], r[at+1:]...)
		if at > 0 {
			r[at-1] = rule(merges, syms[at-1], syms[at])
		}
		if at < len(r) {
			r[at] = rule(merges, syms[at], syms[at+1])
		}
	}
	return syms
}

// noRule is the rank of a pair that has no merge rule.
const noRule = math.MaxInt32

// rule returns the merge rule for (left, right), or rank noRule.
func rule(merges map[uint64]merge, left, right int32) merge {
	if m, ok := merges[pairKey(left, right)]; ok {
		return m
	}
	return merge{rank: noRule}
}

// A mergeQueue merges long words in O(n log n): symbols form a linked list
// over their original positions, and candidate pairs wait in a heap ordered
// by (rank, position). Entries go stale when a neighbour merges; they are
// checked when popped rather than removed. Its buffers are reused across the
// words of one Encode call.
type mergeQueue struct {
	prev, next []int32
	heap       candidateHeap
}

// A candidate is a pair that can merge: the symbols at pos and next[pos],
// with the ids left and right when it was pushed.
type candidate struct {
	rank, pos, left, right, id int32
}

func (c candidate) less(d candidate) bool {
	return c.rank < d.rank || c.rank == d.rank && c.pos < d.pos
}

func (q *mergeQueue) merge(merges map[uint64]merge, syms []int32) []int32 {
	n := len(syms)
	if n < 2 {
		return syms
	}
	q.prev = q.prev[:0]
	q.next = q.next[:0]
	for i := range n {
		q.prev = append(q.prev, int32(i-1))
		q.next = append(q.next, int32(i+1))
	}
	q.next[n-1] = -1
	q.heap = q.heap[:0]
	push := func(pos, right int32) {
		if m, ok := merges[pairKey(syms[pos], syms[right])]; ok {
			q.heap.push(candidate{m.rank, pos, syms[pos], syms[right], m.id})
		}
	}
	for i := int32(0); i+1 < int32(n); i++ {
		push(i, i+1)
	}
	for q.heap.len() > 0 {
		c := q.heap.pop()
		right := q.next[c.pos]
		// A merged-away symbol is -1, which no id equals.
		if syms[c.pos] != c.left || right < 0 || syms[right] != c.right {
			continue
		}
		syms[c.pos], syms[right] = c.id, -1
		after := q.next[right]
		q.next[c.pos] = after
		if after >= 0 {
			q.prev[after] = c.pos
			push(c.pos, after)
		}
		if before := q.prev[c.pos]; before >= 0 {
			push(before, c.pos)
		}
	}
	out := syms[:0]
	for i := int32(0); i >= 0; i = q.next[i] {
		out = append(out, syms[i])
	}
	return out
}

// candidateHeap is a binary min-heap. container/heap would box every
// candidate in an interface, an allocation per push on the hot path, and
// call less indirectly, which costs half the queue's time.
type candidateHeap []candidate

func (h *candidateHeap) len() int { return len(*h) }

func (h *candidateHeap) push(x candidate) {
	*h = append(*h, x)
	items := *h
	i := len(items) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !items[i].less(items[parent]) {
			break
		}
		items[i], items[parent] = items[parent], items[i]
		i = parent
	}
}

func (h *candidateHeap) pop() candidate {
	items := *h
	top := items[0]
	last := len(items) - 1
	items[0] = items[last]
	items = items[:last]
	*h = items
	i := 0
	for {
		least, l, r := i, 2*i+1, 2*i+2
		if l < last && items[l].less(items[least]) {
			least = l
		}
		if r < last && items[r].less(items[least]) {
			least = r
		}
		if least == i {
			return top
		}
		items[i], items[least] = items[least], items[i]
		i = least
	}
}
