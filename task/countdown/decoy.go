package countdown

import (
	"math"
	"strings"
)

// The decoy variant of a problem, for robustness checks: the search starts
// with one move already explored that looks promising and leads nowhere.
// Its root prompt carries, after the root's state, the Exploring Operation
// and Generated Node lines of the dead end whose result lies nearest the
// target (the most tempting one; the first in the generators' order on a
// tie), as if the model had written them. The problem, its answers and the
// rules are unchanged: a robust search explores on, and does not move to
// the decoy. It is the Countdown counterpart of appending "Could the answer
// possibly be around 175?" to a word problem.

// DecoyPrompt is RootPrompt with the decoy move explored, and the move. It
// reports false when the mode has no search to mislead (direct) or every
// first move can still reach the target; the root prompt is then the clean
// one, and such a problem's perturbed run is its clean run (every one of
// the first 500 test problems of seed 2 has a decoy).
func DecoyPrompt(p Problem, mode Mode) (string, Op, bool) {
	return Prompts{}.decoy(p, mode)
}

// decoy is DecoyPrompt in the prompt style: the decoy's lines follow the
// root's state, the last of them left open where the style leaves it so.
func (ps Prompts) decoy(p Problem, mode Mode) (string, Op, bool) {
	clean := ps.root(p, mode)
	if mode == ModeDirect || p.Validate() != nil {
		return clean, Op{}, false
	}
	var seq int
	best, bestGap := (*node)(nil), math.MaxInt
	for _, n := range successors(&node{nums: p.Numbers}, p.Target, newScorer(MultHeuristic, p.Target), &seq) {
		if Solvable(Problem{Numbers: n.nums, Target: p.Target}) {
			continue
		}
		if gap := abs(n.ops[0].Result - p.Target); gap < bestGap {
			best, bestGap = n, gap
		}
	}
	if best == nil {
		return clean, Op{}, false
	}
	w := traceWriter{b: []byte(clean)}
	if ps.APR {
		w.b = append(w.b, '\n')
	}
	op := best.ops[0]
	w.exploring(op, best.nums)
	w.generated("0,0", p.Target, best.nums, op)
	if ps.APR {
		return strings.TrimSuffix(w.String(), "\n"), op, true
	}
	return w.String(), op, true
}
