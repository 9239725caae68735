package model

import "math"

// selection is the positions each row of one sequence attends to in a
// sparse model: row t's bits start at word t·words, bit s set for each
// position s ≤ t it sees. A nil selection is dense: every position up to
// the row's own.
type selection struct {
	bits  []uint64
	words int
}

// selectionOf is sequence b's selection in layer la, nil for a dense model.
func (m *Model) selectionOf(a *Activations, la *layerActs, b int) selection {
	if !m.sparse() {
		return selection{}
	}
	w := selectionWords(a.maxT)
	return selection{bits: la.sel[b*a.T*w : (b+1)*a.T*w], words: w}
}

// selectionWords is the 64-bit words one row's selection takes.
func selectionWords(maxT int) int { return (maxT + 63) / 64 }

// mask sets the scores of the positions row t does not see, among 0..t,
// to −Inf, which the softmax turns into probability 0.
func (s selection) mask(row []float32, t int) {
	if s.bits == nil {
		return
	}
	bits := s.bits[t*s.words:]
	for p := range row[:t+1] {
		if bits[p/64]&(1<<(p%64)) == 0 {
			row[p] = float32(math.Inf(-1))
		}
	}
}

// sparse says whether the model attends to its indexer's top positions.
func (m *Model) sparse() bool { return m.Sparse && m.Config.HasIndexer() }

// selectTopK marks, for every row of layer la, the positions it attends
// to: the IndexTopK with the highest indexer scores among 0..t (all of them
// while there are no more), ties going to the later positions. It runs the
// sequences on all CPUs.
func (m *Model) selectTopK(a *Activations, la *layerActs) {
	c := m.Config
	T, words, k := a.T, selectionWords(a.maxT), c.IndexTopK
	newWork := func() *indexWork {
		return &indexWork{i: make([]float32, attnBlock*T), z: make([]float32, c.IndexHeads*attnBlock*T), top: make([]float32, T)}
	}
	eachTask(a.B, newWork, func(w *indexWork, _, b int) {
		for r0 := 0; r0 < T; r0 += attnBlock {
			r1 := min(T, r0+attnBlock)
			m.indexScores(a, la, w, b, r0, r1)
			for t := r0; t < r1; t++ {
				bits := la.sel[(b*T+t)*words : (b*T+t+1)*words]
				SelectTopK(bits, w.i[(t-r0)*r1:(t-r0)*r1+t+1], k, w.top)
			}
		}
	})
}

// SelectTopK sets bits (bit p of word p/64 for score p) to the k highest
// of scores, all of them when there are no more than k, ties at the k-th
// going to the later positions: a sparse model's choice of the positions
// a token attends to, which the engine makes the same way. scratch holds
// at least len(scores) values.
func SelectTopK(bits []uint64, scores []float32, k int, scratch []float32) {
	clear(bits)
	n := len(scores)
	if n <= k {
		for p := range n {
			bits[p/64] |= 1 << (p % 64)
		}
		return
	}
	tau := kthLargest(append(scratch[:0], scores...), k)
	above := 0
	for _, v := range scores {
		if v > tau {
			above++
		}
	}
	ties := k - above // of the scores equal to tau, how many to take
	for p := n - 1; p >= 0; p-- {
		if v := scores[p]; v > tau || v == tau && ties > 0 {
			if v == tau {
				ties--
			}
			bits[p/64] |= 1 << (p % 64)
		}
	}
}

// kthLargest returns the k-th largest value of x (k from 1), reordering x:
// Hoare's selection, linear on average.
func kthLargest(x []float32, k int) float32 {
	target := k - 1 // its index were x sorted in descending order
	lo, hi := 0, len(x)-1
	for lo < hi {
		a, b, c := x[lo], x[(lo+hi)/2], x[hi]
		pivot := max(min(a, b), min(max(a, b), c)) // the median of three
		i, j := lo, hi
		for i <= j {
			for x[i] > pivot {
				i++
			}
			for x[j] < pivot {
				j--
			}
			if i <= j {
				x[i], x[j] = x[j], x[i]
				i++
				j--
			}
		}
		switch {
		case target <= j:
			hi = j
		case target >= i:
			lo = i
		default:
			return x[target]
		}
	}
	return x[target]
}
