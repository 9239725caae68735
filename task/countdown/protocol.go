package countdown

import (
	"fmt"
	"slices"
	"strings"
)

// The runtime's side of the spawn/join protocol: what a strategy needs to
// start threads, notice a spawn, give children their prompts, and resume a
// parent with the join, without reading trace lines itself.

// RootPrompt is what the root thread of a problem is given in a mode: the
// mode line, then the root's state, after "Moving to Node #0" for the
// parallel and direct formats as the generators write them.
func RootPrompt(p Problem, mode Mode) string { return Prompts{}.root(p, mode) }

const (
	callingLine    = "<Calling Sub Searches>\n"
	endCallingLine = "<End Calling Sub Searches>\n"
)

// Spawned reports whether a call's text ends with a spawn block, and
// returns the text before the block and the nodes it spawns, in order. The
// block's last newline may be missing: the APR checkpoints end a call
// there.
func Spawned(text string) (before string, nodes []string, ok bool) {
	if !strings.HasSuffix(text, endCallingLine) && !strings.HasSuffix(text, strings.TrimSuffix(endCallingLine, "\n")) {
		return "", nil, false
	}
	text = strings.TrimSuffix(text, "\n") + "\n"
	i := strings.LastIndex(text, callingLine)
	if i < 0 {
		return "", nil, false
	}
	block := strings.TrimSuffix(text[i+len(callingLine):], endCallingLine)
	for line := range strings.SplitSeq(strings.TrimSuffix(block, "\n"), "\n") {
		l, err := ParseLine(line)
		if err != nil || l.Kind != LineSpawn {
			return "", nil, false
		}
		nodes = append(nodes, l.Node)
	}
	return text[:i], nodes, len(nodes) > 0
}

// ChildPrompt is what a child thread searching from node id is given: the
// move to the node and its state, as the parent's text generated it.
func ChildPrompt(p Problem, parentText, id string) (string, error) {
	prompts, err := ChildPrompts(p, parentText, []string{id})
	if err != nil {
		return "", err
	}
	return prompts[0], nil
}

// ChildPrompts is ChildPrompt for each of a spawn's nodes, reading the
// parent's text once.
func ChildPrompts(p Problem, parentText string, ids []string) ([]string, error) {
	t, err := VerifyTrace(p, parentText)
	if err != nil && t == nil {
		return nil, err
	}
	prompts := make([]string, len(ids))
	for i, id := range ids {
		n := t.byID[id]
		if n == nil {
			return nil, fmt.Errorf("countdown: the parent never generated node #%s", id)
		}
		var w traceWriter
		w.moving(id)
		w.currentState(p.Target, n.Nums, n.Ops)
		prompts[i] = w.String()
	}
	return prompts, nil
}

// ChildResult is what a child thread came back with.
type ChildResult struct {
	Node string
	// Text is the child's whole text: its prompt and what it wrote.
	Text string
}

// Join writes the join block that resumes a parent whose spawn at the
// given level ran the children: one entry per child, in spawn order, and
// for a child that reached the goal its solution path from its node, as
// the environment writes it.
func Join(p Problem, level int, kids []ChildResult) string {
	var w traceWriter
	w.raw("<Sub Searches>\n")
	for i, k := range kids {
		path, solved := childPath(p, k.Text)
		w.joinEntry(solved, i, level, k.Node)
		w.raw(path)
	}
	w.raw("<End Sub Searches>\n")
	return w.String()
}

// ChildSolved reports whether a child's text reached the goal by a valid
// search of p, as Join reads it.
func ChildSolved(p Problem, text string) bool {
	_, solved := childPath(p, text)
	return solved
}

// childPath returns the solution path a child's text replays after its
// first Goal Reached, and whether the child really reached the goal: its
// text up to there must be a valid search of p.
func childPath(p Problem, text string) (string, bool) {
	const goalLine = " equal: Goal Reached\n"
	goal := strings.Index(text, goalLine)
	if goal < 0 {
		return "", false
	}
	head := goal + len(goalLine)
	t, err := VerifyTrace(p, text[:head])
	if err != nil || t.Solution == nil {
		return "", false
	}
	rest := text[head:]
	if end := strings.Index(rest, goalLine); end >= 0 && strings.HasPrefix(rest, "Moving to Node #") {
		return rest[:end+len(goalLine)], true
	}
	// Solved, but the replay was never written or was cut off (the
	// child's context ran out, say): the join still owes the parent the
	// path, which the search determines.
	return solutionPath(t)
}

// solutionPath rebuilds the path a solved thread replays after its goal,
// from its trace: from the thread's start node down to the goal, as the
// trace generators write it.
func solutionPath(t *Trace) (string, bool) {
	sol := t.Solution
	if len(sol) == 0 {
		return "", false
	}
	// The goal was reached from the node whose operations are the
	// solution's but the last; its ancestors up to the start lie on the
	// path.
	from := slices.IndexFunc(t.Nodes, func(n *TreeNode) bool {
		return slices.Equal(n.Ops, sol[:len(sol)-1]) && (n.ID == t.Start || strings.HasPrefix(n.ID, t.Start+","))
	})
	if from < 0 {
		return "", false
	}
	chain := []*TreeNode{t.Nodes[from]} // the goal's parent up to the start
	for id := chain[0].ID; id != t.Start; {
		parent, ok := parentID(id)
		n := t.Node(parent)
		if !ok || n == nil {
			return "", false
		}
		chain, id = append(chain, n), parent
	}
	// Linked as the generators' search links its nodes, start first, with
	// the goal below the last: writePath writes the replay from there.
	var start, cur *node
	for i := len(chain) - 1; i >= 0; i-- {
		n := chain[i]
		cur = &node{id: n.ID, nums: n.Nums, ops: n.Ops, parent: cur}
		if start == nil {
			start = cur
		}
	}
	goal := &node{nums: []int{sol[len(sol)-1].Result}, ops: sol, parent: cur}
	var w traceWriter
	writePath(&w, t.Target, start, goal)
	return w.String(), true
}

// Answer returns the expression a trace reached, and whether it reached
// one. The trace is read as far as it is valid.
func Answer(p Problem, text string) (string, bool) {
	t, _ := VerifyTrace(p, text)
	if t == nil || t.Solution == nil {
		return "", false
	}
	e, err := PathExpression(p.Numbers, t.Solution)
	if err != nil {
		return "", false
	}
	return e.String(), true
}
