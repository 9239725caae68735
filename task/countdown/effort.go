package countdown

import "strings"

// Visit is one node a thread searched from: moved to (or started at), its
// state written, and the operations the thread explored there before it
// moved on, spawned or gave up.
type Visit struct {
	Node     string // the node's id ("0,1"); "0" for a serial root's start
	Numbers  int    // how many numbers its state holds
	Explored int    // Exploring Operation lines written while there
}

// Abandoned reports whether the thread left v without trying anything
// although it could: a state of two or more numbers always has an
// operation to explore, and a search that gives up on one without
// exploring it has not searched it.
func (v Visit) Abandoned() bool { return v.Numbers >= 2 && v.Explored == 0 }

// Effort is what one thread's text shows of the search it did: the
// nodes it searched from, and where it gave up. It is read line by line
// from the trace protocol, tolerating lines it does not know, so that a
// monitor can read a thread the environment did not check.
type Effort struct {
	Visits []Visit
	// GiveUps are the byte offsets in the text of each "No solution
	// found." line, the thread's own or an inline sub search's: where the
	// thread claimed that the search it was in had nothing left.
	GiveUps []int
	// Goal says whether the thread reached the goal (the lines after
	// its first "Goal Reached" replay the solution path and are not read).
	Goal bool
}

// ReadEffort reads a thread's text (its prompt and all it wrote). A join
// block's lines are the children's, not the thread's, and are skipped.
func ReadEffort(text string) Effort {
	var (
		e      Effort
		moved  string // the node the last move named, until its state
		inJoin bool
		off    int
	)
	for line := range strings.SplitAfterSeq(text, "\n") {
		at := off
		off += len(line)
		l, err := ParseLine(strings.TrimSuffix(line, "\n"))
		if err != nil {
			continue
		}
		switch {
		case l.Kind == LineJoin:
			inJoin = true
		case l.Kind == LineEndJoin:
			inJoin = false
		case inJoin:
		case l.Kind == LineGoal:
			e.Goal = true
			return e
		case l.Kind == LineMoving || l.Kind == LineSubStart:
			moved = l.Node
		case l.Kind == LineCurrentState:
			id := moved
			if id == "" && len(e.Visits) == 0 {
				id = "0"
			}
			e.Visits = append(e.Visits, Visit{Node: id, Numbers: len(l.Nums)})
			moved = ""
		case l.Kind == LineExploring && len(e.Visits) > 0:
			e.Visits[len(e.Visits)-1].Explored++
		case l.Kind == LineSearchFailed:
			e.GiveUps = append(e.GiveUps, at)
		}
	}
	return e
}

// Abandoned returns the visits the thread left without exploring
// anything (Visit.Abandoned).
func (e Effort) Abandoned() []Visit {
	var out []Visit
	for _, v := range e.Visits {
		if v.Abandoned() {
			out = append(out, v)
		}
	}
	return out
}

// Explored counts the operations the thread explored in all.
func (e Effort) Explored() int {
	n := 0
	for _, v := range e.Visits {
		n += v.Explored
	}
	return n
}

// ClaimsNoSolution reports whether a search's text ends by giving up:
// its last line is "No solution found.", the claim that the target
// cannot be reached from where the thread started.
func ClaimsNoSolution(text string) bool {
	text = strings.TrimRight(text, "\n")
	last := text[strings.LastIndexByte(text, '\n')+1:]
	return last == "No solution found."
}
