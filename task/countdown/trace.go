package countdown

import (
	"fmt"
	"slices"
	"strings"
)

// TreeNode is a search state named in a trace.
type TreeNode struct {
	ID   string `json:"id"`
	Nums []int  `json:"nums"`
	// Ops is the path from the root; the last one produced this node.
	Ops []Op `json:"-"`
	// Line is the 1-based line that introduced the node.
	Line int `json:"line"`
}

// End says how a trace ends.
type End int

const (
	EndUnfinished End = iota // the text stops mid-search
	EndGoal                  // a Goal Reached line
	EndExhausted             // "No solution found."
	EndSpawn                 // a spawn block: the runtime runs the children next
)

func (e End) String() string {
	return [...]string{"unfinished", "goal", "exhausted", "spawn"}[e]
}

// SpawnBlock is a <Calling Sub Searches> block.
type SpawnBlock struct {
	Line  int
	Level int
	Nodes []string // the node each child searches from, by sub-search index
}

// SubResult is one entry of a join block.
type SubResult struct {
	Index, Level int
	Node         string
	Solved       bool
	Solution     Solution // from the root, when Solved
}

// JoinBlock is a <Sub Searches> block.
type JoinBlock struct {
	Line    int
	Results []SubResult
}

// Trace is a parsed search trace: the tree of states it names, its spawn and
// join blocks, and its outcome.
type Trace struct {
	Header Header
	Target int
	// Start is the node the text searches from: "0" for a root trace, the
	// child's node for a child thread.
	Start  string
	Nodes  []*TreeNode
	Spawns []SpawnBlock
	Joins  []JoinBlock
	End    End
	// Solution is the first solution the trace reaches, from the root.
	Solution Solution
	Lines    int

	byID map[string]*TreeNode
}

// Node returns the node with the given id, or nil.
func (t *Trace) Node(id string) *TreeNode { return t.byID[id] }

// Solved reports whether the trace reaches the goal.
func (t *Trace) Solved() bool { return t.Solution != nil }

// TraceError reports the first wrong line of a trace.
type TraceError struct {
	Line   int // 1-based
	Text   string
	Reason string
}

func (e *TraceError) Error() string {
	if e.Text == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
	}
	return fmt.Sprintf("line %d %q: %s", e.Line, e.Text, e.Reason)
}

// ParseTrace parses a trace and checks that every line is consistent with
// the lines before it. On error it returns the tree up to the wrong line and
// a *TraceError naming that line.
func ParseTrace(text string) (*Trace, error) {
	return walkTrace(nil, text)
}

// VerifyTrace is ParseTrace against a known problem: the target and the
// starting numbers must be p's too. Each Exploring Operation line's
// arithmetic and resulting numbers, each Generated Node line, each move and
// each verdict is checked; Goal Reached only when the state is exactly
// [target].
func VerifyTrace(p Problem, text string) (*Trace, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return walkTrace(&p, text)
}

// walker holds the state of one pass over a trace.
type walker struct {
	t       *Trace
	problem *Problem
	lineNo  int
	prev    LineKind

	cur       *TreeNode // the node whose Current State was written last
	pending   *TreeNode // a node moved to, whose Current State must come next
	explore   *Line     // an Exploring Operation awaiting its verdict
	exploreOf *TreeNode
	subLevels []int // open serial sub searches
	spawn     *SpawnBlock
	join      *JoinBlock
	joinPath  *SubResult // a join entry whose path is being replayed
	joinGoal  Solution   // the first solution a finished join reported
	finished  bool       // nothing may follow (spawn end, final "No solution found.")
}

func walkTrace(p *Problem, text string) (*Trace, error) {
	t := &Trace{byID: make(map[string]*TreeNode)}
	w := &walker{t: t, problem: p}
	h, body, err := SplitHeader(text)
	if err != nil {
		return t, &TraceError{Line: 1, Reason: err.Error()}
	}
	t.Header = h
	if h.Mode != "" {
		w.lineNo++
	}
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

func (w *walker) step(l *Line) error {
	t := w.t
	if w.finished {
		return fmt.Errorf("nothing may follow the end of the search")
	}
	if w.explore != nil && l.Kind != LineGenerated && l.Kind != LineGoal && l.Kind != LineNoSolution {
		return fmt.Errorf("the Exploring Operation on line %d has no verdict: want a Generated Node or a Goal Reached / No Solution line", w.lineNo-1)
	}
	if w.pending != nil && l.Kind != LineCurrentState {
		return fmt.Errorf("want the Current State of node #%s after moving to it", w.pending.ID)
	}
	if w.spawn != nil && l.Kind != LineSpawn && l.Kind != LineEndCalling {
		return fmt.Errorf("a spawn block holds only <Start Sub Search ...> lines and ends with <End Calling Sub Searches>")
	}
	if w.join != nil && w.joinPath == nil && l.Kind != LineJoinGoal && l.Kind != LineJoinNone && l.Kind != LineEndJoin {
		return fmt.Errorf("a join block holds only sub-search results and ends with <End Sub Searches>")
	}
	if w.joinPath != nil {
		switch l.Kind {
		case LineMoving, LineCurrentState, LineExploring, LineGenerated, LineGoal:
		default:
			return fmt.Errorf("the path of sub search %d does not reach the goal", w.joinPath.Index)
		}
	}
	if t.Start == "" && l.Kind != LineCurrentState && l.Kind != LineMoving {
		return fmt.Errorf("a trace starts with the root's Current State or \"Moving to Node #id\"")
	}

	switch l.Kind {
	case LineMoving:
		if t.Start == "" {
			t.Start = l.Node
			w.pending = &TreeNode{ID: l.Node} // defined by the Current State line next
			return nil
		}
		n := t.byID[l.Node]
		if n == nil {
			return fmt.Errorf("node #%s was never generated", l.Node)
		}
		if w.joinPath != nil && w.prev == LineJoinGoal && l.Node != w.joinPath.Node {
			return fmt.Errorf("the path of sub search %d must start at its node #%s", w.joinPath.Index, w.joinPath.Node)
		}
		w.pending = n
	case LineCurrentState:
		return w.currentState(l)
	case LineExploring:
		if w.cur == nil {
			return fmt.Errorf("an operation is explored before any Current State")
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
		n := t.byID[l.Node]
		if n == nil {
			return fmt.Errorf("node #%s was never generated", l.Node)
		}
		if l.Level != len(w.subLevels)+1 {
			return fmt.Errorf("sub search level should be %d", len(w.subLevels)+1)
		}
		w.subLevels = append(w.subLevels, l.Level)
		w.pending = n
	case LineSubExit:
		if len(w.subLevels) == 0 || w.subLevels[len(w.subLevels)-1] != l.Level {
			return fmt.Errorf("no sub search at level %d is open", l.Level)
		}
		w.subLevels = w.subLevels[:len(w.subLevels)-1]
		if t.End == EndExhausted {
			t.End = EndUnfinished // that "No solution found." ended only the sub search
		}
	case LineSubFailed:
		if w.prev != LineSubExit {
			return fmt.Errorf("\"No solution found in sub search\" must follow an Exit Sub Search line")
		}
	case LineSearchFailed:
		if t.Solved() {
			return fmt.Errorf("the goal was already reached")
		}
		t.End = EndExhausted
		if len(w.subLevels) == 0 {
			w.finished = true
		}
	case LineCalling:
		if len(w.subLevels) > 0 || t.Solved() {
			return fmt.Errorf("sub searches are spawned only from the top level of an unsolved search")
		}
		w.spawn = &SpawnBlock{Line: w.lineNo}
	case LineSpawn:
		if w.spawn == nil {
			return fmt.Errorf("<Start Sub Search ...> outside a <Calling Sub Searches> block")
		}
		if err := w.subEntry(l, len(w.spawn.Nodes), w.spawn.Level); err != nil {
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
		if len(w.subLevels) > 0 || t.Solved() {
			return fmt.Errorf("sub search results join only the top level of an unsolved search")
		}
		w.join = &JoinBlock{Line: w.lineNo}
	case LineJoinGoal, LineJoinNone:
		if w.join == nil {
			return fmt.Errorf("a sub-search result outside a <Sub Searches> block")
		}
		level := 0
		if len(w.join.Results) > 0 {
			level = w.join.Results[0].Level
		}
		if err := w.subEntry(l, len(w.join.Results), level); err != nil {
			return err
		}
		w.join.Results = append(w.join.Results, SubResult{Index: l.Index, Level: l.Level, Node: l.Node})
		if l.Kind == LineJoinGoal {
			w.joinPath = &w.join.Results[len(w.join.Results)-1]
		}
	case LineEndJoin:
		if w.join == nil || len(w.join.Results) == 0 {
			return fmt.Errorf("a join block must report at least one sub search")
		}
		w.joinGoal = nil
		for _, r := range w.join.Results {
			if r.Solved {
				w.joinGoal = r.Solution
				break
			}
		}
		t.Joins = append(t.Joins, *w.join)
		w.join, w.cur = nil, nil
	}
	return nil
}

// subEntry checks a spawn or join entry: consecutive indices, one level per
// block, and a node the search generated.
func (w *walker) subEntry(l *Line, index, level int) error {
	if l.Index != index {
		return fmt.Errorf("sub search index should be %d", index)
	}
	if l.Level < 1 || (index > 0 && l.Level != level) {
		return fmt.Errorf("every sub search of a block must be at the same level, at least 1")
	}
	if w.t.byID[l.Node] == nil {
		return fmt.Errorf("node #%s was never generated", l.Node)
	}
	return nil
}

func (w *walker) currentState(l *Line) error {
	t := w.t
	if w.problem != nil && l.Target != w.problem.Target {
		return fmt.Errorf("the target is %d, not %d", w.problem.Target, l.Target)
	}
	if t.Target == 0 && len(t.Nodes) == 0 {
		t.Target = l.Target
	} else if l.Target != t.Target {
		return fmt.Errorf("the target changed from %d", t.Target)
	}
	if t.Start == "" || (w.pending != nil && len(t.Nodes) == 0) {
		// The first state defines the start node.
		id := t.Start
		if id == "" {
			id = "0"
			t.Start = id
		}
		if err := w.checkStart(id, l); err != nil {
			return err
		}
		n := &TreeNode{ID: id, Nums: l.Nums, Ops: l.Ops, Line: w.lineNo}
		w.add(n)
		w.cur, w.pending = n, nil
		return nil
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
		// Replaying a solution path names nodes again; they must not change.
		if !sameMultiset(old.Nums, l.Nums) || !slices.Equal(old.Ops, ops) {
			return fmt.Errorf("node #%s was generated on line %d as %s", l.Node, old.Line, formatNums(old.Nums))
		}
	} else {
		w.add(&TreeNode{ID: l.Node, Nums: l.Nums, Ops: ops, Line: w.lineNo})
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
		return fmt.Errorf("Goal Reached, but the state is %s, not [%d]", formatNums(e.Nums), t.Target)
	}
	if l.Kind == LineNoSolution && l.Value == t.Target {
		return fmt.Errorf("the state is [%d]: the goal is reached", t.Target)
	}
	if l.Kind == LineGoal {
		sol := Solution(append(slices.Clip(w.exploreOf.Ops), e.Op))
		if w.joinPath != nil {
			w.joinPath.Solved, w.joinPath.Solution = true, sol
			w.joinPath = nil
		} else {
			w.reach(sol)
		}
	}
	w.explore, w.exploreOf = nil, nil
	return nil
}

func (w *walker) reach(sol Solution) {
	if w.t.Solution == nil {
		w.t.Solution = sol
		w.t.End = EndGoal
	}
}

func (w *walker) add(n *TreeNode) {
	w.t.Nodes = append(w.t.Nodes, n)
	w.t.byID[n.ID] = n
}
