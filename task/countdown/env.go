package countdown

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Env is a thread's Countdown environment: it follows the text a model
// writes and writes, itself, everything the search state determines, so a
// small model spends its capacity on the search policy (which operation to
// explore, which node to move to, when to spawn which children) instead of
// on arithmetic. The environment writes:
//
//   - after "Exploring Operation: a-b=", the result, the resulting numbers
//     and the verdict line (the Generated Node, or Goal Reached / No
//     Solution when one number is left);
//   - after every move, the Current State of the node moved to;
//   - after the goal, the solution path replayed from the thread's start and
//     the Exit Sub Search lines of every open sub search;
//   - after a sub search gave up ("No solution found."), its Exit line and
//     "No solution found in sub search";
//   - after a join that brought the goal, the Goal Reached line and the
//     solution path from the root.
//
// The model writes the rest: the start of every line, the operation, the
// node a move goes to, sub searches, spawn blocks, and giving up. Training
// masks the environment's text from the loss; decoding appends it as forced
// tokens. A line the rules reject is an error naming it.
type Env struct {
	w    *walker
	line strings.Builder // the line being written
	out  traceWriter     // scratch for the text the environment writes
	// explored counts, per node and operation, how often the operation
	// was explored there: with repeated numbers one operation has several
	// variants ("42-37" on either 42 of [37, 42, 44, 42]), taken in turn.
	explored map[string]int
	// expect, when set, is the text the trace goes on with (EnvSpans):
	// of an operation's variants, the environment writes the one it
	// holds.
	expect string
	// visited are the nodes whose state has been written (moved to) or
	// that a spawn handed to a child (named in a spawn or join block).
	visited map[string]bool
	// Every search, the thread's own and each inline sub search, has a
	// scope: the nodes generated while it was the innermost open one,
	// which only it moves to, and which it must all visit before it may
	// give up, as the generators' searches do. scopes is the stack of
	// open ones; scopeOf maps a node to the scope that generated it.
	scopes  []int
	nscopes int
	scopeOf map[string]int
	// child marks a parallel child thread, whose prompt carries no mode:
	// it searches serially, without inline sub searches or spawns, as the
	// APR generator's children do.
	child bool
	// open marks a line the prompt left open, until the model ends it:
	// the only choice there is the end of the line.
	open bool
	// parallel marks a root that may spawn children: its mode line says
	// parallel, or it has none and starts at node #0 (APR's).
	parallel bool
	// goalAt is the node whose operation first reached the goal (in a
	// join, the first solved sub search's), for the solution path.
	goalAt *TreeNode
}

// NewEnv starts the environment of a thread of problem p whose prompt is
// prompt: a root thread's header and start, a child's move and state, or a
// parent resumed with its join block.
func NewEnv(p Problem, prompt string) (*Env, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	e := &Env{w: &walker{t: &Trace{byID: make(map[string]*TreeNode), Target: p.Target}, problem: &p}, explored: map[string]int{}, visited: map[string]bool{},
		scopes: []int{0}, nscopes: 1, scopeOf: map[string]int{}}
	h, body, err := SplitHeader(prompt)
	if err != nil {
		return nil, err
	}
	e.w.t.Header = h
	if h.Mode != "" {
		e.w.lineNo++
	}
	// An APR checkpoint's root starts at node #0 with no mode line: it is
	// a parallel one.
	e.parallel = h.Mode == ModeParallel || h.Mode == "" && strings.HasPrefix(body, "Moving to Node #0\n")
	// A prompt may leave its last line for the model to end, as the APR
	// checkpoints' prompts do: the line is the one being written.
	body, open := cutOpenLine(body)
	e.line.WriteString(open)
	e.open = open != ""
	for line := range strings.SplitSeq(strings.TrimSuffix(body, "\n"), "\n") {
		if line == "" && body == "" {
			break
		}
		if err := e.feed(line); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// cutOpenLine splits text after its last newline: the whole lines, and
// the line left open.
func cutOpenLine(text string) (whole, open string) {
	i := strings.LastIndexByte(text, '\n')
	return text[:i+1], text[i+1:]
}

// AsChild marks the thread as a parallel (APR) child, whose choices
// include no inline sub search and no spawn.
func (e *Env) AsChild() *Env {
	e.child, e.parallel = true, false
	return e
}

// Begin returns what the environment writes before the model writes
// anything: after a join that brought the goal, the Goal Reached line and
// the solution path.
func (e *Env) Begin() (string, error) {
	if e.line.Len() > 0 {
		return "", nil
	}
	return e.determined()
}

// Done reports whether the thread's trace is complete: the goal reached
// with its solution path and every sub search closed, a spawn block
// written, or the search given up.
func (e *Env) Done() bool {
	w := e.w
	if w.finished {
		return true
	}
	replayed := w.path == nil || w.path.done || w.t.Header.Mode == ModeDirect
	return w.t.Solved() && replayed && len(w.subs) == 0 && w.join == nil && e.line.Len() == 0
}

// Next takes the text the model wrote since the last call and returns the
// text the environment writes after it, "" when the model writes next. An
// error names a line the rules reject.
func (e *Env) Next(written string) (string, error) {
	var fill strings.Builder
	for written != "" {
		i := strings.IndexByte(written, '\n')
		if i < 0 {
			e.line.WriteString(written)
			written = ""
			f, err := e.partial()
			if err != nil {
				return "", err
			}
			if f != "" {
				fill.WriteString(f)
			}
			break
		}
		e.line.WriteString(written[:i])
		written = written[i+1:]
		line := e.line.String()
		e.line.Reset()
		e.open = false
		if err := e.feed(line); err != nil {
			return "", err
		}
		f, err := e.determined()
		if err != nil {
			return "", err
		}
		fill.WriteString(f)
	}
	return fill.String(), nil
}

// Feed tells the environment about text written by neither the model nor
// itself: a join block the runtime inserted. It returns what the
// environment writes after it.
func (e *Env) Feed(text string) (string, error) {
	if e.line.Len() > 0 {
		return "", errors.New("countdown: text inserted in the middle of a line")
	}
	return e.Next(text)
}

func (e *Env) feed(line string) error {
	w := e.w
	w.lineNo++
	l, err := ParseLine(line)
	if err == nil && l.Kind == LineGoal && w.exploreOf != nil && e.goalAt == nil {
		e.goalAt = w.exploreOf
	}
	if err == nil {
		err = w.step(&l)
	}
	if err != nil {
		return &TraceError{Line: w.lineNo, Text: line, Reason: err.Error()}
	}
	w.prev = l.Kind
	switch l.Kind {
	case LineCurrentState:
		if w.cur != nil {
			e.visited[w.cur.ID] = true
		}
	case LineGenerated:
		if _, ok := e.scopeOf[l.Node]; !ok {
			e.scopeOf[l.Node] = e.scopes[len(e.scopes)-1]
		}
	case LineSpawn, LineJoinGoal, LineJoinNone:
		// A child searched it (a resumed parent sees only the join).
		e.visited[l.Node] = true
	case LineSubStart:
		e.scopes = append(e.scopes, e.nscopes)
		e.nscopes++
	case LineSubExit:
		if len(e.scopes) > 1 {
			e.scopes = e.scopes[:len(e.scopes)-1]
		}
	}
	return nil
}

// frontier lists the nodes of the innermost open search not yet visited.
func (e *Env) frontier() []string {
	scope := e.scopes[len(e.scopes)-1]
	var ids []string
	for _, n := range e.w.t.Nodes {
		if !e.visited[n.ID] && e.scopeOf[n.ID] == scope {
			ids = append(ids, n.ID)
		}
	}
	return ids
}

// Choices returns what the model may write next, from where it is in the
// current line, up to where the environment takes over: at a line's start,
// the lines the state allows (an operation not yet explored at the current
// node, a move to a node the current search generated and has not yet
// visited, a sub search of one of the current node's children, a spawn
// block, and giving up once the search has no such node left); within one,
// the rest of those lines. It returns nil when the model writes freely (the
// trace is finished).
func (e *Env) Choices() []string {
	w := e.w
	if w.finished || e.Done() {
		return nil
	}
	if e.open {
		return []string{"\n"}
	}
	written := e.line.String()
	var out []string
	for _, c := range e.lines() {
		if rest, ok := strings.CutPrefix(c, written); ok && rest != "" {
			out = append(out, rest)
		}
	}
	return out
}

// lines lists the whole lines (or line starts, up to the environment's
// part) the model may write at this point.
func (e *Env) lines() []string {
	w, t := e.w, e.w.t
	var out []string
	children := func(of *TreeNode) []string {
		var ids []string
		for _, n := range t.Nodes {
			if p, ok := parentID(n.ID); ok && of != nil && p == of.ID {
				ids = append(ids, n.ID)
			}
		}
		return ids
	}
	if b := w.spawn; b != nil {
		in := map[string]bool{}
		for _, id := range b.Nodes {
			in[id] = true
		}
		for _, id := range children(w.cur) {
			if !in[id] {
				out = append(out, fmt.Sprintf("<Start Sub Search %d at level 1> Moving to Node #%s\n", len(b.Nodes), id))
			}
		}
		if len(b.Nodes) > 0 {
			out = append(out, "<End Calling Sub Searches>\n")
		}
		return out
	}
	if cur := w.cur; cur != nil && len(cur.Nums) > 1 {
		seen := map[string]bool{}
		for i := range cur.Nums {
			for j := i + 1; j < len(cur.Nums); j++ {
				for _, o := range Combine(cur.Nums[i], cur.Nums[j]) {
					s := o.String()
					key := cur.ID + " " + s
					if seen[s] {
						continue
					}
					seen[s] = true
					if e.explored[key] < e.variants(o) {
						out = append(out, "Exploring Operation: "+s[:strings.IndexByte(s, '=')+1])
					}
				}
			}
		}
	}
	frontier := e.frontier()
	for _, id := range frontier {
		out = append(out, "Moving to Node #"+id+"\n")
	}
	mode := t.Header.Mode
	if !e.parallel && mode != ModeDirect && !e.child && w.cur != nil {
		for _, id := range children(w.cur) {
			if !e.visited[id] {
				out = append(out, fmt.Sprintf("Start Sub Search at level %d: Moving to Node #%s\n", len(w.subs)+1, id))
			}
		}
	}
	if e.parallel && len(w.subs) == 0 && t.Start == "0" && w.cur != nil && len(children(w.cur)) > 0 {
		out = append(out, "<Calling Sub Searches>\n")
	}
	if len(frontier) == 0 {
		out = append(out, "No solution found.\n")
	}
	return out
}

// variants counts the pairs of positions in the current state that op can
// be taken on.
func (e *Env) variants(op Op) int {
	nums := e.w.cur.Nums
	n := 0
	for i := range nums {
		for j := i + 1; j < len(nums); j++ {
			for _, o := range Combine(nums[i], nums[j]) {
				if o == op {
					n++
				}
			}
		}
	}
	return n
}

// partial is what follows an unfinished line: the rest of an Exploring
// Operation line once the model has written its operation and "=".
func (e *Env) partial() (string, error) {
	s := e.line.String()
	rest, ok := strings.CutPrefix(s, "Exploring Operation: ")
	if !ok || !strings.HasSuffix(rest, "=") {
		return "", nil
	}
	w := e.w
	op, err := parseOperands(strings.TrimSuffix(rest, "="))
	if err != nil {
		return "", &TraceError{Line: w.lineNo + 1, Text: s, Reason: err.Error()}
	}
	if w.cur == nil {
		return "", &TraceError{Line: w.lineNo + 1, Text: s, Reason: "an operation is explored before any Current State"}
	}
	nums, ok := e.variant(op, s)
	if !ok {
		return "", &TraceError{Line: w.lineNo + 1, Text: s, Reason: fmt.Sprintf("%s uses numbers not in the state %s", op, formatNums(w.cur.Nums))}
	}
	e.out.b = e.out.b[:0]
	e.out.exploring(op, nums)
	full := e.out.String()
	e.line.Reset()
	fill := full[len(s):]
	if err := e.feed(strings.TrimSuffix(full, "\n")); err != nil {
		return "", err
	}
	// The verdict follows.
	e.out.b = e.out.b[:0]
	if len(nums) == 1 {
		e.out.verdict(nums[0], w.t.Target)
	} else {
		e.out.generated(childID(w.exploreOf.ID, e.children(w.exploreOf.ID)), w.t.Target, nums, op)
	}
	verdict := e.out.String()
	if err := e.feed(strings.TrimSuffix(verdict, "\n")); err != nil {
		return "", err
	}
	more, err := e.determined()
	if err != nil {
		return "", err
	}
	return fill + verdict + more, nil
}

// variant returns the numbers op leaves in the current state, in the
// generators' order: the numbers not used, then the result. When repeated
// numbers give op several variants, the k-th exploration of op at a node
// takes the k-th (in the order of the operands' positions), unless the text
// expected next names another.
func (e *Env) variant(op Op, written string) ([]int, bool) {
	cur := e.w.cur
	var variants [][]int
	nums := cur.Nums
	for i := range nums {
		for j := i + 1; j < len(nums); j++ {
			for _, o := range Combine(nums[i], nums[j]) {
				if o != op {
					continue
				}
				v := make([]int, 0, len(nums)-1)
				for k, x := range nums {
					if k != i && k != j {
						v = append(v, x)
					}
				}
				variants = append(variants, append(v, op.Result))
			}
		}
	}
	if len(variants) == 0 {
		// Operands in another order than the generators write them
		// ("22+26" for 26 before 22): still a legal step.
		return apply(nums, op)
	}
	key := cur.ID + " " + op.String()
	k := e.explored[key]
	e.explored[key]++
	if e.expect != "" {
		for _, v := range variants {
			e.out.b = e.out.b[:0]
			e.out.exploring(op, v)
			if strings.HasPrefix(e.expect, e.out.String()[len(written):]) {
				return v, true
			}
		}
	}
	return variants[k%len(variants)], true
}

// parseOperands reads "a-b" into an operation with its result, checking it
// against the rules. The numbers are read as traces write them, without a
// sign or a leading zero: the environment completes the model's line with
// the operation's own rendering, which must begin with what the model wrote.
func parseOperands(s string) (Op, error) {
	c := cursor{s: s}
	op := Op{A: c.int()}
	if c.err == nil && c.pos < len(s) && strings.IndexByte("+-*/", s[c.pos]) >= 0 {
		op.Sym = s[c.pos]
		c.pos++
	}
	op.B = c.int()
	if op.Sym == 0 || c.done() != nil || op.A > 1e9 || op.B > 1e9 {
		return Op{}, fmt.Errorf("want an operation such as 53-22, not %q", s)
	}
	for _, o := range Combine(op.A, op.B) {
		if o.Sym == op.Sym && o.A == op.A && o.B == op.B {
			return o, nil
		}
	}
	if err := checkOp(op); err != nil {
		return Op{}, err
	}
	return Op{}, fmt.Errorf("%s is not a legal step", s)
}

// children counts the nodes generated from the node with the given id.
func (e *Env) children(id string) int {
	n := 0
	for _, c := range e.w.t.Nodes {
		if p, ok := parentID(c.ID); ok && p == id {
			n++
		}
	}
	return n
}

// determined writes the lines the state determines after a whole line,
// feeding them back, until the model is to write.
func (e *Env) determined() (string, error) {
	var fill strings.Builder
	for {
		line, ok := e.nextLine()
		if !ok {
			return fill.String(), nil
		}
		fill.WriteString(line)
		for l := range strings.SplitSeq(strings.TrimSuffix(line, "\n"), "\n") {
			if err := e.feed(l); err != nil {
				return "", err
			}
		}
	}
}

// nextLine is the line the state determines next, if any.
func (e *Env) nextLine() (string, bool) {
	w, t := e.w, e.w.t
	e.out.b = e.out.b[:0]
	switch {
	case w.finished || w.spawn != nil || w.join != nil && w.path == nil:
		return "", false
	case w.pending != nil:
		if w.pending.Nums == nil {
			return "", false // a thread's start: its state is in the prompt
		}
		e.out.currentState(t.Target, w.pending.Nums, w.pending.Ops)
	case w.explore != nil:
		return "", false // only after the model's operation
	case w.prev == LineEndJoin && w.joinGoal != nil:
		e.out.verdict(t.Target, t.Target)
	case w.path != nil && !w.path.done && t.Header.Mode != ModeDirect:
		// Direct mode's trace is the path itself: no replay.
		if !e.replayLine() {
			return "", false
		}
	case len(w.subs) > 0 && w.subs[len(w.subs)-1].outcome != subOpen:
		n := len(w.subs)
		e.out.raw("Exit Sub Search at level " + strconv.Itoa(n) + "\n")
	case w.prev == LineSubExit && w.exited == subExhausted:
		e.out.raw("No solution found in sub search\n")
	default:
		return "", false
	}
	return e.out.String(), true
}

// replayLine writes the next line of the solution path being replayed: a
// move, then (after its Current State) the step toward the goal, along the
// chain of nodes from the thread's start to the node that reached it.
func (e *Env) replayLine() bool {
	w, t := e.w, e.w.t
	if w.join != nil || e.goalAt == nil || len(t.Solution) == 0 {
		return false // a child's path inside a join: the runtime writes it
	}
	if w.prev != LineCurrentState {
		e.out.moving(w.path.next)
		return true
	}
	cur := w.cur
	if cur.ID == e.goalAt.ID {
		op := t.Solution[len(t.Solution)-1]
		e.out.exploring(op, []int{op.Result})
		e.out.verdict(op.Result, t.Target)
		return true
	}
	// The next node: the ancestor of the goal's node whose parent is cur.
	next := e.goalAt
	for {
		p, ok := parentID(next.ID)
		if !ok {
			return false
		}
		if p == cur.ID {
			break
		}
		if next = t.byID[p]; next == nil {
			return false
		}
	}
	op := next.Ops[len(next.Ops)-1]
	e.out.exploring(op, next.Nums)
	e.out.generated(next.ID, t.Target, next.Nums, op)
	return true
}

// Span is a byte range [Start, End) of a text.
type Span struct{ Start, End int }

// EnvSpans returns the parts of a thread's completion that its environment
// writes, in order, checking that the environment writes exactly them: the
// model writes up to each end of line and each "=" of an Exploring
// Operation, and whatever the environment writes there must come next.
func EnvSpans(p Problem, prompt, completion string) ([]Span, error) {
	e, err := NewEnv(p, prompt)
	if err != nil {
		return nil, err
	}
	var spans []Span
	pos := 0
	begin, err := e.Begin()
	if err != nil {
		return nil, err
	}
	if begin != "" {
		if !strings.HasPrefix(completion, begin) {
			return nil, fmt.Errorf("countdown: the environment begins with %q, the trace with %q", begin, completion[:min(len(completion), len(begin))])
		}
		spans = append(spans, Span{0, len(begin)})
		pos = len(begin)
	}
	for pos < len(completion) {
		end := strings.IndexByte(completion[pos:], '\n')
		if end < 0 {
			end = len(completion)
		} else {
			end += pos + 1
		}
		line := e.line.String() + completion[pos:end]
		if rest, ok := strings.CutPrefix(line, "Exploring Operation: "); ok {
			if i := strings.IndexByte(rest, '='); i >= 0 {
				end = pos + (len("Exploring Operation: ") + i + 1 - e.line.Len())
			}
		}
		e.expect = completion[end:]
		fill, err := e.Next(completion[pos:end])
		if err != nil {
			return nil, err
		}
		pos = end
		if fill == "" {
			continue
		}
		if !strings.HasPrefix(completion[pos:], fill) {
			return nil, fmt.Errorf("countdown: at byte %d the environment writes %q, the trace %q", pos, fill, completion[pos:min(len(completion), pos+len(fill))])
		}
		spans = append(spans, Span{pos, pos + len(fill)})
		pos += len(fill)
	}
	return spans, nil
}
