package countdown

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
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
			explore, goal := expand(&s.w, s.target, cur, s.sc, s.cfg.Beam, s.cfg.Threshold, s.rng, &s.seq)
			if goal != nil {
				writePath(&s.w, s.target, root, goal)
				return goal
			}
			if s.rng.Float64() < s.cfg.Promising {
				for _, n := range explore {
					s.w.subSearchStart(level+1, n.id)
					goal := s.run(root, n, level+1)
					s.w.subSearchExit(level + 1)
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
