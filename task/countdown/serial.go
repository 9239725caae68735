package countdown

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"strconv"
)

// SerialConfig configures the serial (SoS+) search-trace generator.
type SerialConfig struct {
	// Beam is how many frontier nodes are expanded per round and, with beam
	// pruning, how many successors of each are kept. At least 1.
	Beam int
	// Threshold, when positive, switches to depth-first-like pruning: keep
	// every successor scoring at most Threshold (Stream of Search used the
	// target). Zero means beam pruning.
	Threshold float64
	Heuristic Heuristic
	// Promising is the probability, per expanded node, of searching each of
	// its successors at once in an inline sub search instead of queueing
	// them. The public SoS+ generator uses 0.5.
	Promising float64
}

// SerialTrace is a generated serial search.
type SerialTrace struct {
	Text     string
	Solved   bool
	Solution Solution // the operations from the root to the goal, when Solved
}

// GenerateSerial runs the SoS+ search on p and returns its trace: the
// exploration line by line, inline sub searches
// ("Start Sub Search at level 1: Moving to Node #0,1" ... "Exit Sub Search at
// level 1"), and after "Goal Reached" the solution path replayed from the
// root. All randomness comes from rng.
func GenerateSerial(p Problem, cfg SerialConfig, rng *rand.Rand) (SerialTrace, error) {
	if err := p.Validate(); err != nil {
		return SerialTrace{}, err
	}
	if cfg.Beam < 1 {
		return SerialTrace{}, fmt.Errorf("countdown: serial beam %d must be at least 1", cfg.Beam)
	}
	s := serialSearch{target: p.Target, cfg: cfg, rng: rng, sc: newScorer(cfg.Heuristic, p.Target)}
	root := &node{id: "0", nums: append([]int(nil), p.Numbers...)}
	goal := s.run(root, root, 0)
	t := SerialTrace{Text: s.w.String()}
	if goal != nil {
		t.Solved, t.Solution = true, Solution(goal.ops)
	}
	return t, nil
}

type serialSearch struct {
	target int
	cfg    SerialConfig
	rng    *rand.Rand
	sc     scorer
	w      traceWriter
	seq    int
}

// run searches from start and returns the goal node, or nil.
func (s *serialSearch) run(root, start *node, level int) *node {
	open := &openSet{start}
	for open.Len() > 0 {
		current := popBeam(open, s.cfg.Beam)
		for ci, cur := range current {
			s.w.currentState(s.target, cur.nums, cur.ops)
			gen := prune(successors(cur, s.target, s.sc, &s.seq), s.cfg.Beam, s.cfg.Threshold, s.rng)
			var explore []*node
			for _, n := range gen {
				n.id = childID(cur.id, len(explore))
				op := n.ops[len(n.ops)-1]
				s.w.exploring(op, n.nums)
				switch {
				case len(n.nums) == 1 && n.nums[0] == s.target:
					s.w.verdict(n.nums[0], s.target)
					writePath(&s.w, s.target, root, n)
					return n
				case len(n.nums) == 1:
					s.w.verdict(n.nums[0], s.target)
				default:
					s.w.generated(n.id, s.target, n.nums, op)
					explore = append(explore, n)
				}
			}
			sortByScore(explore)
			if s.rng.Float64() < s.cfg.Promising {
				for _, n := range explore {
					lv := strconv.Itoa(level + 1)
					s.w.raw("Start Sub Search at level " + lv + ": Moving to Node #" + n.id + "\n")
					goal := s.run(root, n, level+1)
					s.w.raw("Exit Sub Search at level " + lv + "\n")
					if goal != nil {
						return goal
					}
					s.w.raw("No solution found in sub search\n")
				}
			} else {
				for _, n := range explore {
					heap.Push(open, n)
				}
			}
			if ci+1 < len(current) {
				s.w.moving(current[ci+1].id)
			}
		}
		if open.Len() > 0 {
			s.w.moving((*open)[0].id)
		}
	}
	s.w.raw("No solution found.\n")
	return nil
}
