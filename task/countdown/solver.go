package countdown

import (
	"fmt"
	"slices"
)

// The exhaustive solver. It combines pairs of numbers under the rules until
// one number is left, exactly the move set the search generators use, so
// "solvable" means the same thing everywhere in braid. A search over four
// numbers visits at most 1,152 final states; the solver allocates nothing per
// state, so checking 100k problems takes well under a few seconds.

// Solution is a sequence of operations that reaches the target.
type Solution []Op

// SolveResult is the outcome of an exhaustive search.
type SolveResult struct {
	// Solutions found, in search order; empty means none exists (the search
	// was exhaustive, so this is a proof).
	Solutions []Solution
	// States is the number of search states visited.
	States int
}

// Solve returns one solution of p, or false when none exists.
func Solve(p Problem) (Solution, bool) {
	var sol Solution
	s := solver{target: p.Target, onSolution: func(path []Op) bool {
		sol = slices.Clone(path)
		return true
	}}
	s.run(p.Numbers)
	return sol, s.found > 0
}

// Solvable reports whether p has a solution under the rules.
func Solvable(p Problem) bool {
	s := solver{target: p.Target}
	s.run(p.Numbers)
	return s.found > 0
}

// SolveAll returns every solution of p, up to limit (0 means no limit), with
// solutions that are the same expression up to commutativity and
// associativity counted once. Duplicates are dropped as they are found, so
// memory grows with the distinct solutions only.
func SolveAll(p Problem, limit int) SolveResult {
	seen := make(map[string]bool)
	var out []Solution
	s := solver{target: p.Target, onSolution: func(path []Op) bool {
		e, err := PathExpression(p.Numbers, path)
		if err != nil {
			panic(fmt.Sprintf("countdown: the solver produced an invalid path %v: %v", path, err))
		}
		if key := e.canonical(); !seen[key] {
			seen[key] = true
			out = append(out, slices.Clone(path))
		}
		return limit > 0 && len(out) >= limit
	}}
	s.run(p.Numbers)
	return SolveResult{Solutions: out, States: s.states}
}

type solver struct {
	target int
	// onSolution is called with each solution path (valid only during the
	// call) and returns true to stop the search; nil stops at the first.
	onSolution func(path []Op) bool
	found      int
	states     int
	path       []Op
	// levels holds one scratch buffer of numbers per depth, so the search
	// never allocates a state.
	levels [MaxCount + 1][MaxCount]int
}

func (s *solver) run(nums []int) {
	if len(nums) == 1 {
		// Not a valid problem, but the answer is plain.
		s.states++
		if nums[0] == s.target {
			s.solution()
		}
		return
	}
	if len(nums) == 0 || len(nums) > MaxCount {
		return
	}
	copy(s.levels[len(nums)][:], nums)
	s.path = s.path[:0]
	s.walk(len(nums))
}

// solution records that s.path reaches the target and says whether to stop.
func (s *solver) solution() bool {
	s.found++
	if s.onSolution == nil {
		return true
	}
	return s.onSolution(s.path)
}

// walk searches from the state held in levels[n][:n], n >= 2; it returns
// true when the search should stop.
func (s *solver) walk(n int) bool {
	s.states++
	nums := s.levels[n][:n]
	var ops [4]Op
	if n == 2 {
		// The last step: compare each result with the target directly rather
		// than descending into 1-number states. Most states are leaves, so
		// this halves the search time.
		for _, op := range appendCombine(ops[:0], nums[0], nums[1]) {
			s.states++
			if op.Result != s.target {
				continue
			}
			s.path = append(s.path, op)
			stop := s.solution()
			s.path = s.path[:len(s.path)-1]
			if stop {
				return true
			}
		}
		return false
	}
	next := s.levels[n-1][:n-1]
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			k := 0
			for m := 0; m < n; m++ {
				if m != i && m != j {
					next[k] = nums[m]
					k++
				}
			}
			for _, op := range appendCombine(ops[:0], nums[i], nums[j]) {
				next[k] = op.Result
				s.path = append(s.path, op)
				stop := s.walk(n - 1)
				s.path = s.path[:len(s.path)-1]
				if stop {
					return true
				}
			}
		}
	}
	return false
}
