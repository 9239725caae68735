package countdown

import (
	"container/heap"
	"math/rand/v2"
	"slices"
)

// Heuristic scores a search state; lower is more promising.
type Heuristic int

const (
	// MultHeuristic sums each number's distance to the nearest factor of the
	// target (the public generators' "mult_heuristic").
	MultHeuristic Heuristic = iota
	// SumHeuristic is the mean distance of the numbers to the target
	// ("sum_heuristic").
	SumHeuristic
)

func (h Heuristic) String() string {
	if h == SumHeuristic {
		return "sum"
	}
	return "mult"
}

// scorer evaluates a heuristic against one target; it holds the target's
// factors so the mult heuristic costs a binary search per number.
type scorer struct {
	h       Heuristic
	target  int
	factors []int // the target's factors >= 2, ascending
}

func newScorer(h Heuristic, target int) scorer {
	s := scorer{h: h, target: target}
	if h != MultHeuristic {
		return s
	}
	var high []int
	for f := 2; f*f <= target; f++ {
		if target%f == 0 {
			s.factors = append(s.factors, f)
			if g := target / f; g != f {
				high = append(high, g)
			}
		}
	}
	slices.Reverse(high)
	s.factors = append(s.factors, high...)
	if target >= 2 {
		s.factors = append(s.factors, target)
	}
	return s
}

func (s scorer) score(nums []int) float64 {
	if s.h == SumHeuristic {
		if len(nums) == 1 {
			return float64(abs(nums[0] - s.target))
		}
		t := 0
		for _, n := range nums {
			t += abs(n - s.target)
		}
		return float64(t) / float64(len(nums))
	}
	t := 0
	for _, n := range nums {
		t += s.nearestFactor(n)
	}
	return float64(t)
}

// nearestFactor is n's distance to the nearest factor of the target (to the
// target itself when it has no factor >= 2).
func (s scorer) nearestFactor(n int) int {
	if len(s.factors) == 0 {
		return abs(n - s.target)
	}
	i, _ := slices.BinarySearch(s.factors, n)
	best := -1
	for _, j := range []int{i - 1, i} {
		if j >= 0 && j < len(s.factors) {
			if d := abs(n - s.factors[j]); best < 0 || d < best {
				best = d
			}
		}
	}
	return best
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// node is a state in a search tree.
type node struct {
	id     string
	nums   []int
	ops    []Op // the path from the root, in order
	h      float64
	parent *node
	seq    int // creation order, the tie-break between equal scores
}

// successors expands n in the generators' order: pairs (i<j) left to right,
// each pair's operations in Combine order.
func successors(n *node, target int, sc scorer, seq *int) []*node {
	var out []*node
	var buf [4]Op
	for i := 0; i < len(n.nums); i++ {
		for j := i + 1; j < len(n.nums); j++ {
			for _, op := range appendCombine(buf[:0], n.nums[i], n.nums[j]) {
				nums := make([]int, 0, len(n.nums)-1)
				for k, v := range n.nums {
					if k != i && k != j {
						nums = append(nums, v)
					}
				}
				nums = append(nums, op.Result)
				*seq++
				out = append(out, &node{
					nums:   nums,
					ops:    append(slices.Clip(n.ops), op),
					h:      sc.score(nums),
					parent: n,
					seq:    *seq,
				})
			}
		}
	}
	return out
}

// openSet is the frontier: a min-heap on (score, creation order). The public
// generators use Python's heapq, whose order among equal scores is an
// implementation detail; braid breaks ties first-created-first, so its traces
// are reproducible from the seed alone.
type openSet []*node

func (o openSet) Len() int { return len(o) }
func (o openSet) Less(i, j int) bool {
	if o[i].h != o[j].h {
		return o[i].h < o[j].h
	}
	return o[i].seq < o[j].seq
}
func (o openSet) Swap(i, j int) { o[i], o[j] = o[j], o[i] }
func (o *openSet) Push(x any)   { *o = append(*o, x.(*node)) }
func (o *openSet) Pop() any {
	old := *o
	n := old[len(old)-1]
	*o = old[:len(old)-1]
	return n
}

func byScore(a, b *node) int {
	switch {
	case a.h < b.h:
		return -1
	case a.h > b.h:
		return 1
	}
	return 0
}

// prune keeps the successors a search explores: the best beam by score
// (breadth-first-like) or, with a threshold, all scoring at most it
// (depth-first-like). Then it shuffles them, as the public generators do, so
// the first child explored is not always the same.
func prune(gen []*node, beam int, threshold float64, rng *rand.Rand) []*node {
	if threshold > 0 {
		gen = slices.DeleteFunc(gen, func(n *node) bool { return n.h > threshold })
	} else {
		slices.SortStableFunc(gen, byScore)
		gen = gen[:min(beam, len(gen))]
	}
	rng.Shuffle(len(gen), func(i, j int) { gen[i], gen[j] = gen[j], gen[i] })
	return gen
}

// writePath replays the solution path from start down to goal:
//
//	Moving to Node #0
//	Current State: 27:[22, 26, 31, 53], Operations: []
//	Exploring Operation: 53-22=31, Resulting Numbers: [26, 31, 31]
//	Generated Node #0,1: 27:[26, 31, 31] Operation: 53-22=31
//	...
//	27,27 equal: Goal Reached
func writePath(w *traceWriter, target int, start, goal *node) {
	var chain []*node
	for n := goal; n != nil; n = n.parent {
		chain = append(chain, n)
		if n == start {
			break
		}
	}
	slices.Reverse(chain)
	for i := 0; i+1 < len(chain); i++ {
		cur, next := chain[i], chain[i+1]
		op := next.ops[len(next.ops)-1]
		w.moving(cur.id)
		w.currentState(target, cur.nums, cur.ops)
		w.exploring(op, next.nums)
		if next == goal {
			w.verdict(next.nums[0], target)
		} else {
			w.generated(next.id, target, next.nums, op)
		}
	}
}

// popBeam takes up to beam nodes from the frontier, best first.
func popBeam(open *openSet, beam int) []*node {
	cur := make([]*node, 0, min(beam, open.Len()))
	for len(cur) < beam && open.Len() > 0 {
		cur = append(cur, heap.Pop(open).(*node))
	}
	return cur
}

func sortByScore(ns []*node) { slices.SortStableFunc(ns, byScore) }

// expand writes the Current State of cur, generates and prunes its
// successors, and writes each one's Exploring Operation line and verdict.
// It returns the nodes left to explore, best first, or the goal node, which
// ends the search; the caller writes the solution path.
func expand(w *traceWriter, target int, cur *node, sc scorer, beam int, threshold float64, rng *rand.Rand, seq *int) (explore []*node, goal *node) {
	w.currentState(target, cur.nums, cur.ops)
	for _, n := range prune(successors(cur, target, sc, seq), beam, threshold, rng) {
		n.id = childID(cur.id, len(explore))
		op := n.ops[len(n.ops)-1]
		w.exploring(op, n.nums)
		switch {
		case len(n.nums) == 1:
			w.verdict(n.nums[0], target)
			if n.nums[0] == target {
				return nil, n
			}
		default:
			w.generated(n.id, target, n.nums, op)
			explore = append(explore, n)
		}
	}
	sortByScore(explore)
	return explore, nil
}
