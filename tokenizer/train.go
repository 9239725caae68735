package tokenizer

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"
	"unicode/utf8"
)

// Train learns a byte-level BPE tokenizer of vocabSize tokens from docs,
// splitting words by GPT-2's pattern. The first 256 ids are the bytes in
// bytes_to_unicode order, as in GPT-2's vocabulary; then come the merged
// tokens in the order they were learnt; the special tokens take the last
// ids. Each step merges the most frequent pair of adjacent tokens within
// words, the lexicographically least pair (by the tokens' bytes) among
// equal counts, so the same corpus always gives the same tokenizer. Special
// tokens that occur in docs are cut out of the text rather than learnt.
//
// The vocabulary is smaller than vocabSize when the corpus runs out of
// pairs. Training stops early with ctx's error when ctx ends. To train on a
// slice, pass slices.Values(docs).
func Train(ctx context.Context, docs iter.Seq[string], vocabSize int, specials []string) (*Tokenizer, error) {
	if vocabSize < 256+len(specials) {
		return nil, fmt.Errorf("tokenizer: train: vocab size %d leaves no room for the 256 byte tokens and %d special tokens", vocabSize, len(specials))
	}
	added := make([]addedToken, len(specials))
	for i, s := range specials {
		if s == "" || !utf8.ValidString(s) {
			return nil, fmt.Errorf("tokenizer: train: special token %q is empty or not UTF-8", s)
		}
		added[i] = addedToken{content: s, special: true}
	}
	words, err := countWords(ctx, docs, newMatcher(added))
	if err != nil {
		return nil, fmt.Errorf("tokenizer: train: %w", err)
	}
	tr := newTrainer(words)
	if err := tr.run(ctx, vocabSize-len(specials)); err != nil {
		return nil, fmt.Errorf("tokenizer: train: %w", err)
	}
	s := spec{pattern: gpt2Pattern}
	for id, raw := range tr.tokens {
		s.vocab = append(s.vocab, vocabEntry{byteLevel(raw), id})
	}
	for _, p := range tr.merges {
		s.merges = append(s.merges, [2]string{byteLevel(tr.tokens[p[0]]), byteLevel(tr.tokens[p[1]])})
	}
	for i := range added {
		added[i].id = len(tr.tokens) + i
	}
	s.added = added
	t, err := build(s)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: train: %w", err)
	}
	return t, nil
}

// countWords counts the pieces of docs by GPT-2's pattern, leaving out the
// special tokens that specials finds.
func countWords(ctx context.Context, docs iter.Seq[string], specials *matcher) (map[string]int64, error) {
	counts := make(map[string]int64)
	for doc := range docs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for len(doc) > 0 {
			start, tok := specials.find(doc)
			plain := doc
			if start >= 0 {
				plain = doc[:start]
				doc = doc[start+len(tok.content):]
			} else {
				doc = ""
			}
			for len(plain) > 0 {
				n := gpt2Pattern.piece(plain)
				if c, ok := counts[plain[:n]]; ok {
					counts[plain[:n]] = c + 1
				} else {
					// A key of its own, not a window that pins the document.
					counts[strings.Clone(plain[:n])] = 1
				}
				plain = plain[n:]
			}
		}
	}
	return counts, nil
}

// A trainer runs BPE training over the distinct words of a corpus. Pair
// counts are kept up to date as merges change words, and an index lists the
// words each pair occurs in, so a merge touches only the words it changes.
type trainer struct {
	words [][]int32 // the distinct words as token ids, sorted by their bytes
	freq  []int64   // how often each word occurs

	tokens []string         // the bytes of each id
	ids    map[string]int32 // inverts tokens
	merges [][2]int32       // learnt merges, by rank
	merged map[uint64]bool  // pairs already in merges

	count map[uint64]int64   // occurrences of each pair, word frequency included
	where map[uint64][]int32 // the words a pair occurs in: stale entries and repeats allowed
	queue pairQueue          // pairs by count; entries go stale, checked when popped
}

// A pairCount is a queue entry: pair had count occurrences when pushed.
type pairCount struct {
	count int64
	pair  uint64
}

// pairQueue is a container/heap of pairs, most frequent first, then the
// least pair by the bytes of its tokens.
type pairQueue struct {
	items  []pairCount
	tokens *[]string // the trainer's, which grows
}

func (q *pairQueue) Len() int      { return len(q.items) }
func (q *pairQueue) Swap(i, j int) { q.items[i], q.items[j] = q.items[j], q.items[i] }
func (q *pairQueue) Push(x any)    { q.items = append(q.items, x.(pairCount)) }

func (q *pairQueue) Pop() any {
	last := q.items[len(q.items)-1]
	q.items = q.items[:len(q.items)-1]
	return last
}

func (q *pairQueue) Less(i, j int) bool {
	a, b := q.items[i], q.items[j]
	if a.count != b.count {
		return a.count > b.count
	}
	tokens := *q.tokens
	al, ar := splitKey(a.pair)
	bl, br := splitKey(b.pair)
	return cmp.Or(strings.Compare(tokens[al], tokens[bl]), strings.Compare(tokens[ar], tokens[br])) < 0
}

func newTrainer(counts map[string]int64) *trainer {
	tr := &trainer{
		ids:    make(map[string]int32),
		merged: make(map[uint64]bool),
		count:  make(map[uint64]int64),
		where:  make(map[uint64][]int32),
	}
	tr.queue.tokens = &tr.tokens
	for id, b := range byteOrder {
		tr.tokens = append(tr.tokens, string([]byte{b}))
		tr.ids[tr.tokens[id]] = int32(id)
	}
	// Sorted words make the index, and so everything after, deterministic.
	keys := make([]string, 0, len(counts))
	for w := range counts {
		keys = append(keys, w)
	}
	slices.Sort(keys)
	for w, key := range keys {
		syms := make([]int32, len(key))
		for i := range len(key) {
			syms[i] = tr.ids[key[i:i+1]]
		}
		tr.words = append(tr.words, syms)
		tr.freq = append(tr.freq, counts[key])
		for i := 0; i+1 < len(syms); i++ {
			p := pairKey(syms[i], syms[i+1])
			tr.count[p] += counts[key]
			tr.index(p, int32(w))
		}
	}
	for p, c := range tr.count {
		tr.queue.items = append(tr.queue.items, pairCount{c, p})
	}
	heap.Init(&tr.queue)
	return tr
}

func splitKey(p uint64) (left, right int32) { return int32(p >> 32), int32(uint32(p)) }

// index records that pair p occurs in word w.
func (tr *trainer) index(p uint64, w int32) {
	if ws := tr.where[p]; len(ws) == 0 || ws[len(ws)-1] != w {
		tr.where[p] = append(ws, w)
	}
}

// run merges until there are size tokens or no pairs are left.
func (tr *trainer) run(ctx context.Context, size int) error {
	visited := make([]int, len(tr.words)) // the last step that visited each word; steps count from 1
	changes := make(map[uint64]int64)
	for step := 1; len(tr.tokens) < size; step++ {
		if step%64 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		p, ok := tr.best()
		if !ok {
			break
		}
		left, right := splitKey(p)
		joined := tr.tokens[left] + tr.tokens[right]
		id, ok := tr.ids[joined]
		if !ok {
			id = int32(len(tr.tokens))
			tr.tokens = append(tr.tokens, joined)
			tr.ids[joined] = id
		}
		// A token can be the join of two pairs ("a"+"bc", "ab"+"c"); a pair
		// met again after its merge is merged again but listed once.
		if !tr.merged[p] {
			tr.merged[p] = true
			tr.merges = append(tr.merges, [2]int32{left, right})
		}
		clear(changes)
		for _, w := range tr.where[p] {
			if visited[w] == step {
				continue
			}
			visited[w] = step
			tr.mergeIn(w, left, right, id, changes)
		}
		delete(tr.where, p)
		for q, d := range changes {
			c := tr.count[q] + d
			if c <= 0 {
				delete(tr.count, q)
				continue
			}
			tr.count[q] = c
			if d > 0 {
				heap.Push(&tr.queue, pairCount{c, q})
			}
		}
	}
	return nil
}

// best pops the most frequent pair, skipping entries whose count is stale.
func (tr *trainer) best() (uint64, bool) {
	for tr.queue.Len() > 0 {
		e := heap.Pop(&tr.queue).(pairCount)
		c := tr.count[e.pair]
		if c == e.count {
			return e.pair, true
		}
		// Counts of queued pairs only fall, except for pairs that gain
		// occurrences, which were pushed again with their new count.
		if c > 0 && c < e.count {
			heap.Push(&tr.queue, pairCount{c, e.pair})
		}
	}
	return 0, false
}

// mergeIn merges every (left, right) in word w, left to right, into id and
// adds to changes the difference it makes to the counts of pairs.
func (tr *trainer) mergeIn(w int32, left, right, id int32, changes map[uint64]int64) {
	syms, f := tr.words[w], tr.freq[w]
	out := syms[:0]
	for i := 0; i < len(syms); i++ {
		if i+1 == len(syms) || syms[i] != left || syms[i+1] != right {
			out = append(out, syms[i])
			continue
		}
		changes[pairKey(left, right)] -= f
		if len(out) > 0 {
			prev := out[len(out)-1]
			changes[pairKey(prev, left)] -= f
			changes[pairKey(prev, id)] += f
			tr.index(pairKey(prev, id), w)
		}
		if i+2 < len(syms) {
			next := syms[i+2]
			changes[pairKey(right, next)] -= f
			changes[pairKey(id, next)] += f
			tr.index(pairKey(id, next), w)
		}
		out = append(out, id)
		i++
	}
	tr.words[w] = out
}
