package countdown

import (
	"fmt"
	"slices"
	"strings"
)

// walker checks a trace line by line, building its tree. Each line is
// checked against the state the lines before it left:
//
//   - a move names a known node, and its Current State line must follow;
//   - an Exploring Operation applies a legal step to the current state, and
//     its verdict (Generated Node, Goal Reached, No Solution) must follow;
//   - an inline sub search (serial) starts at a child of the current node and
//     exits only once it has reached the goal or found none;
//   - spawn and join entries name children of the current node, in order;
//   - a solution path (the replay after Goal Reached, or a solved child's
//     path in a join) is a chain: each move goes to the node generated just
//     before, from the thread's start (or the child's node) to the goal.
type walker struct {
	t       *Trace
	problem *Problem
	lineNo  int
	prev    LineKind

	cur       *TreeNode // the node whose Current State was written last
	pending   *TreeNode // a node moved to, whose Current State must come next
	explore   *Line     // an Exploring Operation awaiting its verdict
	exploreOf *TreeNode

	subs     []subSearch // open serial sub searches, innermost last
	exited   subOutcome  // how the sub search closed by the last Exit line ended
	spawn    *SpawnBlock
	join     *joinState
	joinGoal Solution    // the solution a just-closed join reported, if any
	path     *pathReplay // a solution path being replayed
	finished bool        // nothing may follow (a spawn block, the final "No solution found.")
}

type subOutcome int

const (
	subOpen subOutcome = iota
	subSolved
	subExhausted
)

type subSearch struct {
	parent  *TreeNode // the node whose child the sub search started from
	outcome subOutcome
}

type joinState struct {
	block  JoinBlock
	parent *TreeNode  // the node whose children the sub searches ran from
	entry  *SubResult // the solved entry whose path is being replayed
}

// pathReplay follows a solution path.
type pathReplay struct {
	next     string // the node the next move must go to
	optional bool   // the replay after a goal may be left out
	started  bool
	done     bool
}

func walkTrace(p *Problem, text string) (*Trace, error) {
	t := &Trace{byID: make(map[string]*TreeNode)}
	w := &walker{t: t, problem: p}
	h, body, err := SplitHeader(text)
	if h.Mode != "" {
		w.lineNo++ // the mode line
	}
	if err != nil {
		return t, &TraceError{Line: w.lineNo + 1, Reason: err.Error()}
	}
	t.Header = h
	body = strings.TrimSuffix(body, "\n")
	if body == "" {
		return t, &TraceError{Line: w.lineNo + 1, Reason: "empty trace"}
	}
	for line := range strings.SplitSeq(body, "\n") {
		w.lineNo++
		l, err := ParseLine(line)
		if err == nil {
			err = w.step(&l)
		}
		if err != nil {
			return t, &TraceError{Line: w.lineNo, Text: line, Reason: err.Error()}
		}
		w.prev = l.Kind
	}
	// A trace that stops mid-search (say, right after an Exploring
	// Operation) is unfinished, not wrong: t.End says so.
	t.Lines = w.lineNo
	return t, nil
}

// allowed checks what may come next before a line's own rules run.
func (w *walker) allowed(l *Line) error {
	t := w.t
	switch {
	case w.finished:
		return fmt.Errorf("nothing may follow the end of the search")
	case w.explore != nil && l.Kind != LineGenerated && l.Kind != LineGoal && l.Kind != LineNoSolution:
		return fmt.Errorf("the Exploring Operation on line %d has no verdict: want a Generated Node or a Goal Reached / No Solution line", w.lineNo-1)
	case w.pending != nil && l.Kind != LineCurrentState:
		return fmt.Errorf("want the Current State of node #%s after moving to it", w.pending.ID)
	case w.spawn != nil && l.Kind != LineSpawn && l.Kind != LineEndCalling:
		return fmt.Errorf("a spawn block holds only <Start Sub Search ...> lines and ends with <End Calling Sub Searches>")
	case w.join != nil && w.path == nil && l.Kind != LineJoinGoal && l.Kind != LineJoinNone && l.Kind != LineEndJoin:
		return fmt.Errorf("a join block holds only sub-search results and ends with <End Sub Searches>")
	case w.prev == LineEndJoin && w.joinGoal != nil && l.Kind != LineGoal:
		return fmt.Errorf("a sub search reached the goal: want \"%d,%d equal: Goal Reached\"", t.Target, t.Target)
	case t.Start == "" && l.Kind != LineCurrentState && l.Kind != LineMoving:
		return fmt.Errorf("a trace starts with the root's Current State or \"Moving to Node #id\"")
	}
	if p := w.path; p != nil && !p.done {
		if !p.started && p.optional && l.Kind == LineSubExit {
			w.path = nil // the goal was reached without a replay
			return nil
		}
		if !p.started && l.Kind != LineMoving {
			if w.join != nil {
				return fmt.Errorf("the path of sub search %d starts with \"Moving to Node #%s\"", w.join.entry.Index, p.next)
			}
			return fmt.Errorf("after Goal Reached only the solution path from \"Moving to Node #%s\" (or Exit Sub Search lines) may follow", p.next)
		}
		switch l.Kind {
		case LineMoving, LineCurrentState, LineExploring, LineGenerated, LineGoal:
			return nil
		}
		if w.join != nil {
			return fmt.Errorf("the path of sub search %d does not reach the goal", w.join.entry.Index)
		}
		return fmt.Errorf("the solution path does not reach the goal")
	}
	if t.Solved() && l.Kind != LineSubExit {
		return fmt.Errorf("after the goal and its solution path only Exit Sub Search lines may follow")
	}
	if len(w.subs) > 0 && w.subs[len(w.subs)-1].outcome == subExhausted && l.Kind != LineSubExit {
		return fmt.Errorf("the sub search at level %d found no solution: want \"Exit Sub Search at level %d\"", len(w.subs), len(w.subs))
	}
	mode := t.Header.Mode
	switch l.Kind {
	case LineCalling, LineJoin:
		if mode == ModeSerial || mode == ModeDirect {
			return fmt.Errorf("sub searches are spawned only in parallel mode, not %s", mode)
		}
	case LineSubStart, LineSubExit, LineSubFailed:
		if mode == ModeParallel || mode == ModeDirect {
			return fmt.Errorf("inline sub searches belong to serial mode, not %s", mode)
		}
	}
	return nil
}

func (w *walker) step(l *Line) error {
	if err := w.allowed(l); err != nil {
		return err
	}
	t := w.t
	switch l.Kind {
	case LineMoving:
		return w.moving(l)
	case LineCurrentState:
		return w.currentState(l)
	case LineExploring:
		if w.cur == nil {
			return fmt.Errorf("an operation is explored before any Current State")
		}
		if w.path != nil && w.prev != LineCurrentState {
			return fmt.Errorf("a solution path explores one operation per state")
		}
		if err := checkOp(l.Op); err != nil {
			return err
		}
		want, ok := apply(w.cur.Nums, l.Op)
		if !ok {
			return fmt.Errorf("%s uses numbers not in the state %s", l.Op, formatNums(w.cur.Nums))
		}
		if !sameMultiset(want, l.Nums) {
			return fmt.Errorf("resulting numbers should be %s", formatNums(want))
		}
		w.explore, w.exploreOf = l, w.cur
	case LineGenerated:
		return w.generated(l)
	case LineGoal, LineNoSolution:
		return w.verdict(l)
	case LineSubStart:
		if err := w.childOfCurrent(l.Node); err != nil {
			return err
		}
		if l.Level != len(w.subs)+1 {
			return fmt.Errorf("sub search level should be %d", len(w.subs)+1)
		}
		w.subs = append(w.subs, subSearch{parent: w.cur})
		w.pending = t.byID[l.Node]
	case LineSubExit:
		n := len(w.subs)
		switch {
		case n == 0 || l.Level != n:
			return fmt.Errorf("no sub search at level %d is open", l.Level)
		case w.subs[n-1].outcome == subOpen:
			return fmt.Errorf("the sub search at level %d has neither reached the goal nor found no solution", n)
		}
		w.exited = w.subs[n-1].outcome
		w.cur = w.subs[n-1].parent
		w.subs = w.subs[:n-1]
		if w.path != nil && !w.path.started {
			w.path = nil
		}
	case LineSubFailed:
		if w.prev != LineSubExit || w.exited != subExhausted {
			return fmt.Errorf("\"No solution found in sub search\" must follow the exit of a sub search that found none")
		}
	case LineSearchFailed:
		if n := len(w.subs); n > 0 {
			w.subs[n-1].outcome = subExhausted
			return nil
		}
		t.End, w.finished = EndExhausted, true
	case LineCalling:
		if err := w.canBranch(); err != nil {
			return err
		}
		w.spawn = &SpawnBlock{Line: w.lineNo}
	case LineSpawn:
		if w.spawn == nil {
			return fmt.Errorf("<Start Sub Search ...> outside a <Calling Sub Searches> block")
		}
		if err := w.subEntry(l, w.cur, len(w.spawn.Nodes), w.spawn.Level); err != nil {
			return err
		}
		w.spawn.Level = l.Level
		w.spawn.Nodes = append(w.spawn.Nodes, l.Node)
	case LineEndCalling:
		if w.spawn == nil || len(w.spawn.Nodes) == 0 {
			return fmt.Errorf("a spawn block must start at least one sub search")
		}
		t.Spawns = append(t.Spawns, *w.spawn)
		w.spawn, w.finished, t.End = nil, true, EndSpawn
	case LineJoin:
		if err := w.canBranch(); err != nil {
			return err
		}
		w.join = &joinState{block: JoinBlock{Line: w.lineNo}, parent: w.cur}
	case LineJoinGoal, LineJoinNone:
		if w.join == nil {
			return fmt.Errorf("a sub-search result outside a <Sub Searches> block")
		}
		b := &w.join.block
		level := 0
		if len(b.Results) > 0 {
			level = b.Results[0].Level
		}
		if err := w.subEntry(l, w.join.parent, len(b.Results), level); err != nil {
			return err
		}
		b.Results = append(b.Results, SubResult{Index: l.Index, Level: l.Level, Node: l.Node})
		if l.Kind == LineJoinGoal {
			w.join.entry = &b.Results[len(b.Results)-1]
			w.path = &pathReplay{next: l.Node}
		}
	case LineEndJoin:
		if w.join == nil || len(w.join.block.Results) == 0 {
			return fmt.Errorf("a join block must report at least one sub search")
		}
		w.joinGoal = nil
		for _, r := range w.join.block.Results {
			if r.Solved {
				w.joinGoal = r.Solution
				break
			}
		}
		t.Joins = append(t.Joins, w.join.block)
		// The parent goes on from a move (or writes the goal the join
		// brought): no state is current.
		w.join, w.cur = nil, nil
	}
	return nil
}

// canBranch checks that a spawn or join block may start here.
func (w *walker) canBranch() error {
	if len(w.subs) > 0 {
		return fmt.Errorf("sub searches are spawned only from the top level of a search")
	}
	if w.cur == nil {
		return fmt.Errorf("sub searches are spawned from a node's Current State and the nodes it generated")
	}
	return nil
}

func (w *walker) moving(l *Line) error {
	t := w.t
	if t.Start == "" {
		t.Start = l.Node
		w.pending = &TreeNode{ID: l.Node} // defined by the Current State line next
		return nil
	}
	if p := w.path; p != nil {
		if l.Node != p.next {
			if !p.started {
				return fmt.Errorf("the solution path starts at #%s", p.next)
			}
			return fmt.Errorf("the solution path must move to the node it just generated, #%s", p.next)
		}
		p.started = true
	}
	n := t.byID[l.Node]
	if n == nil {
		return fmt.Errorf("node #%s was never generated", l.Node)
	}
	w.pending = n
	return nil
}

// childOfCurrent checks that id names a generated child of the current node.
func (w *walker) childOfCurrent(id string) error {
	return childOf(w.t, id, w.cur)
}

func childOf(t *Trace, id string, parent *TreeNode) error {
	if t.byID[id] == nil {
		return fmt.Errorf("node #%s was never generated", id)
	}
	if p, ok := parentID(id); parent == nil || !ok || p != parent.ID {
		return fmt.Errorf("node #%s is not a child of the current node", id)
	}
	return nil
}

// subEntry checks a spawn or join entry: consecutive indices, one level per
// block, and a child of the node that spawned.
func (w *walker) subEntry(l *Line, parent *TreeNode, index, level int) error {
	if l.Index != index {
		return fmt.Errorf("sub search index should be %d", index)
	}
	if l.Level < 1 || (index > 0 && l.Level != level) {
		return fmt.Errorf("every sub search of a block must be at the same level, at least 1")
	}
	return childOf(w.t, l.Node, parent)
}

func (w *walker) currentState(l *Line) error {
	t := w.t
	if w.problem != nil && l.Target != w.problem.Target {
		return fmt.Errorf("the target is %d, not %d", w.problem.Target, l.Target)
	}
	if len(t.Nodes) == 0 {
		// The first state defines the start node and the target.
		t.Target = l.Target
		if t.Start == "" {
			t.Start = "0"
		}
		if err := w.checkStart(t.Start, l); err != nil {
			return err
		}
		n := &TreeNode{ID: t.Start, Nums: l.Nums, Ops: l.Ops, Line: w.lineNo}
		w.add(n)
		w.cur, w.pending = n, nil
		return nil
	}
	if l.Target != t.Target {
		return fmt.Errorf("the target changed from %d", t.Target)
	}
	if w.pending == nil {
		return fmt.Errorf("a Current State must follow \"Moving to Node #id\"")
	}
	n := w.pending
	if !sameMultiset(n.Nums, l.Nums) {
		return fmt.Errorf("node #%s holds %s", n.ID, formatNums(n.Nums))
	}
	if !slices.Equal(n.Ops, l.Ops) {
		return fmt.Errorf("node #%s was reached by %s", n.ID, appendOps(nil, n.Ops))
	}
	w.cur, w.pending = n, nil
	return nil
}

// checkStart checks the state a trace starts from: the root's numbers, or a
// child's numbers reached from the root by its operations.
func (w *walker) checkStart(id string, l *Line) error {
	if id == "0" && len(l.Ops) > 0 {
		return fmt.Errorf("the root has no operations yet")
	}
	if id != "0" && len(l.Ops) != strings.Count(id, ",") {
		return fmt.Errorf("node #%s is %d steps from the root, but %d operations are listed", id, strings.Count(id, ","), len(l.Ops))
	}
	if w.problem == nil {
		return nil
	}
	nums := w.problem.Numbers
	for _, op := range l.Ops {
		if err := checkOp(op); err != nil {
			return fmt.Errorf("operation %s: %w", op, err)
		}
		next, ok := apply(nums, op)
		if !ok {
			return fmt.Errorf("operation %s uses numbers not in %s", op, formatNums(nums))
		}
		nums = next
	}
	if !sameMultiset(nums, l.Nums) {
		return fmt.Errorf("the state should be %s", formatNums(nums))
	}
	return nil
}

func (w *walker) generated(l *Line) error {
	t := w.t
	e := w.explore
	if e == nil {
		return fmt.Errorf("a Generated Node line must follow its Exploring Operation")
	}
	if len(e.Nums) < 2 {
		return fmt.Errorf("one number is left: want a Goal Reached or No Solution line")
	}
	if l.Target != t.Target {
		return fmt.Errorf("the target is %d", t.Target)
	}
	if l.Op != e.Op {
		return fmt.Errorf("the operation explored was %s", e.Op)
	}
	if !sameMultiset(l.Nums, e.Nums) {
		return fmt.Errorf("the resulting numbers were %s", formatNums(e.Nums))
	}
	if p, ok := parentID(l.Node); !ok || p != w.exploreOf.ID {
		return fmt.Errorf("a node generated from #%s must have an id #%s,k", w.exploreOf.ID, w.exploreOf.ID)
	}
	ops := append(slices.Clip(w.exploreOf.Ops), l.Op)
	if old := t.byID[l.Node]; old != nil {
		// A solution path names nodes again; they must not change.
		if !sameMultiset(old.Nums, l.Nums) || !slices.Equal(old.Ops, ops) {
			return fmt.Errorf("node #%s was generated on line %d as %s", l.Node, old.Line, formatNums(old.Nums))
		}
	} else {
		w.add(&TreeNode{ID: l.Node, Nums: l.Nums, Ops: ops, Line: w.lineNo})
	}
	if w.path != nil {
		w.path.next = l.Node
	}
	w.explore, w.exploreOf = nil, nil
	return nil
}

func (w *walker) verdict(l *Line) error {
	t := w.t
	if l.Target != t.Target {
		return fmt.Errorf("the target is %d", t.Target)
	}
	e := w.explore
	if e == nil {
		// The one Goal Reached not tied to an operation: right after a join
		// that reported a solved sub search.
		if l.Kind == LineGoal && w.prev == LineEndJoin && w.joinGoal != nil {
			if l.Value != t.Target {
				return fmt.Errorf("the sub search reached %d", t.Target)
			}
			w.reach(w.joinGoal)
			return nil
		}
		return fmt.Errorf("a verdict must follow the Exploring Operation that left one number")
	}
	if len(e.Nums) != 1 {
		return fmt.Errorf("the state is %s, not one number", formatNums(e.Nums))
	}
	if l.Value != e.Nums[0] {
		return fmt.Errorf("the number left is %d", e.Nums[0])
	}
	if l.Kind == LineGoal && l.Value != t.Target {
		return fmt.Errorf("the line says Goal Reached, but the state is %s, not [%d]", formatNums(e.Nums), t.Target)
	}
	if l.Kind == LineNoSolution && l.Value == t.Target {
		return fmt.Errorf("the state is [%d]: the goal is reached", t.Target)
	}
	if l.Kind == LineNoSolution && w.path != nil {
		return fmt.Errorf("a solution path ends at the goal")
	}
	of := w.exploreOf
	w.explore, w.exploreOf = nil, nil
	if l.Kind == LineNoSolution {
		return nil
	}
	sol := Solution(append(slices.Clip(of.Ops), e.Op))
	switch {
	case w.join != nil:
		w.join.entry.Solved, w.join.entry.Solution = true, sol
		w.path = nil
	case w.path != nil:
		w.path.done = true
	default:
		w.reach(sol)
	}
	return nil
}

// reach records the thread's first solution. Every open sub search has now
// reached the goal, and the solution path may be replayed from the thread's
// start.
func (w *walker) reach(sol Solution) {
	w.t.Solution, w.t.End = sol, EndGoal
	for i := range w.subs {
		w.subs[i].outcome = subSolved
	}
	w.path = &pathReplay{next: w.t.Start, optional: true}
}

func (w *walker) add(n *TreeNode) {
	w.t.Nodes = append(w.t.Nodes, n)
	w.t.byID[n.ID] = n
}
