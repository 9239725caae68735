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
		return &indexWork{i: make([]float32, attnBlock*T), z: make([]float32, c.IndexHeads*attnBlock*T), topk: new(TopK)}
	}
	eachTask(a.B, newWork, func(w *indexWork, _, b int) {
		for r0 := 0; r0 < T; r0 += attnBlock {
			r1 := min(T, r0+attnBlock)
			m.indexScores(a, la, w, b, r0, r1)
			for t := r0; t < r1; t++ {
				bits := la.sel[(b*T+t)*words : (b*T+t+1)*words]
				clear(bits)
				for _, p := range w.topk.Select(w.i[(t-r0)*r1:(t-r0)*r1+t+1], k) {
					bits[p/64] |= 1 << (p % 64)
				}
			}
		}
	})
}
