package countdown

import (
	"errors"
	"strings"
)

// LineKind names one line form of the trace grammar.
type LineKind int

const (
	LineCurrentState LineKind = iota + 1 // Current State: 27:[22, 26, 31, 53], Operations: []
	LineExploring                        // Exploring Operation: 53-22=31, Resulting Numbers: [26, 31, 31]
	LineGenerated                        // Generated Node #0,1: 27:[26, 31, 31] Operation: 53-22=31
	LineMoving                           // Moving to Node #0,1
	LineGoal                             // 27,27 equal: Goal Reached
	LineNoSolution                       // 26,27 unequal: No Solution
	LineSubStart                         // Start Sub Search at level 1: Moving to Node #0,1
	LineSubExit                          // Exit Sub Search at level 1
	LineSubFailed                        // No solution found in sub search
	LineSearchFailed                     // No solution found.
	LineCalling                          // <Calling Sub Searches>
	LineSpawn                            // <Start Sub Search 0 at level 1> Moving to Node #0,0
	LineEndCalling                       // <End Calling Sub Searches>
	LineJoin                             // <Sub Searches>
	LineJoinGoal                         // <Goal Reached in Sub Search 1 at level 1 at Node #0,1>
	LineJoinNone                         // <No Solution in Sub Search 0 at level 1 at Node #0,0>
	LineEndJoin                          // <End Sub Searches>
)

// Line is one parsed trace line. Which fields are set depends on Kind.
type Line struct {
	Kind   LineKind
	Target int    // CurrentState, Generated, Goal, NoSolution
	Value  int    // Goal, NoSolution: the number compared with the target
	Nums   []int  // CurrentState, Exploring, Generated
	Ops    []Op   // CurrentState
	Op     Op     // Exploring, Generated
	Node   string // Moving, Generated, SubStart, Spawn, JoinGoal, JoinNone
	Level  int    // SubStart, SubExit, Spawn, JoinGoal, JoinNone
	Index  int    // Spawn, JoinGoal, JoinNone
}

var errUnknownLine = errors.New("not a line of the Countdown trace format")

// ParseLine parses one line (without its newline).
func ParseLine(s string) (Line, error) {
	switch s {
	case "No solution found in sub search":
		return Line{Kind: LineSubFailed}, nil
	case "No solution found.":
		return Line{Kind: LineSearchFailed}, nil
	case "<Calling Sub Searches>":
		return Line{Kind: LineCalling}, nil
	case "<End Calling Sub Searches>":
		return Line{Kind: LineEndCalling}, nil
	case "<Sub Searches>":
		return Line{Kind: LineJoin}, nil
	case "<End Sub Searches>":
		return Line{Kind: LineEndJoin}, nil
	}
	c := cursor{s: s}
	switch {
	case c.eat("Current State: "):
		l := Line{Kind: LineCurrentState}
		l.Target = c.int()
		c.expect(":")
		l.Nums = c.nums()
		c.expect(", Operations: ")
		l.Ops = c.opList()
		return l, c.done()
	case c.eat("Exploring Operation: "):
		l := Line{Kind: LineExploring}
		l.Op = c.op()
		c.expect(", Resulting Numbers: ")
		l.Nums = c.nums()
		return l, c.done()
	case c.eat("Generated Node #"):
		l := Line{Kind: LineGenerated}
		l.Node = c.nodeID()
		c.expect(": ")
		l.Target = c.int()
		c.expect(":")
		l.Nums = c.nums()
		c.expect(" Operation: ")
		l.Op = c.op()
		return l, c.done()
	case c.eat("Moving to Node #"):
		l := Line{Kind: LineMoving}
		l.Node = c.nodeID()
		return l, c.done()
	case c.eat("Start Sub Search at level "):
		l := Line{Kind: LineSubStart}
		l.Level = c.int()
		c.expect(": Moving to Node #")
		l.Node = c.nodeID()
		return l, c.done()
	case c.eat("Exit Sub Search at level "):
		l := Line{Kind: LineSubExit}
		l.Level = c.int()
		return l, c.done()
	case c.eat("<Start Sub Search "):
		l := Line{Kind: LineSpawn}
		l.Index = c.int()
		c.expect(" at level ")
		l.Level = c.int()
		c.expect("> Moving to Node #")
		l.Node = c.nodeID()
		return l, c.done()
	case c.eat("<Goal Reached in Sub Search "), c.eat("<No Solution in Sub Search "):
		l := Line{Kind: LineJoinGoal}
		if strings.HasPrefix(s, "<No") {
			l.Kind = LineJoinNone
		}
		l.Index = c.int()
		c.expect(" at level ")
		l.Level = c.int()
		c.expect(" at Node #")
		l.Node = c.nodeID()
		c.expect(">")
		return l, c.done()
	case len(s) > 0 && s[0] >= '0' && s[0] <= '9':
		var l Line
		l.Value = c.int()
		c.expect(",")
		l.Target = c.int()
		switch {
		case c.eat(" equal: Goal Reached"):
			l.Kind = LineGoal
		case c.eat(" unequal: No Solution"):
			l.Kind = LineNoSolution
		default:
			c.fail("want \" equal: Goal Reached\" or \" unequal: No Solution\"")
		}
		return l, c.done()
	}
	return Line{}, errUnknownLine
}

// maxDigits bounds numbers in trace text. Problems braid accepts reach at
// most 10000^6 = 10^24 before the rules' overflow check stops a product, so
// real traces stay far below 18 digits; 18 keeps every sum of two numbers
// inside an int64, and products are checked.
const maxDigits = 18

// cursor is a tiny strict scanner; after the first failure every method is a
// no-op and done reports that failure.
type cursor struct {
	s   string
	pos int
	err error
}

func (c *cursor) fail(want string) {
	if c.err == nil {
		rest := c.s[c.pos:]
		if len(rest) > 20 {
			rest = rest[:20] + "..."
		}
		if rest == "" {
			c.err = errors.New(want + ", but the line ended")
		} else {
			c.err = errors.New(want + " at \"" + rest + "\"")
		}
	}
}

func (c *cursor) eat(prefix string) bool {
	if c.err == nil && strings.HasPrefix(c.s[c.pos:], prefix) {
		c.pos += len(prefix)
		return true
	}
	return false
}

func (c *cursor) expect(prefix string) {
	if !c.eat(prefix) {
		c.fail("want \"" + prefix + "\"")
	}
}

func (c *cursor) int() int {
	if c.err != nil {
		return 0
	}
	start, n := c.pos, 0
	for c.pos < len(c.s) && c.s[c.pos] >= '0' && c.s[c.pos] <= '9' {
		n = n*10 + int(c.s[c.pos]-'0')
		c.pos++
		if c.pos-start > maxDigits {
			c.fail("number has more than 18 digits")
			return 0
		}
	}
	switch {
	case c.pos == start:
		c.fail("want a number")
	case c.s[start] == '0' && c.pos-start > 1:
		c.pos = start
		c.fail("number has a leading zero")
	}
	return n
}

// nums reads "[26, 31, 31]".
func (c *cursor) nums() []int {
	c.expect("[")
	out := []int{}
	if c.eat("]") {
		return out
	}
	for c.err == nil {
		out = append(out, c.int())
		if c.eat("]") {
			return out
		}
		c.expect(", ")
	}
	return nil
}

// op reads "53-22=31".
func (c *cursor) op() Op {
	var o Op
	o.A = c.int()
	if c.err == nil {
		if c.pos < len(c.s) && strings.IndexByte("+-*/", c.s[c.pos]) >= 0 {
			o.Sym = c.s[c.pos]
			c.pos++
		} else {
			c.fail("want an operator + - * /")
		}
	}
	o.B = c.int()
	c.expect("=")
	o.Result = c.int()
	return o
}

// opList reads "['53-22=31', '50/5=10']".
func (c *cursor) opList() []Op {
	c.expect("[")
	var out []Op
	if c.eat("]") {
		return out
	}
	for c.err == nil {
		c.expect("'")
		out = append(out, c.op())
		c.expect("'")
		if c.eat("]") {
			return out
		}
		c.expect(", ")
	}
	return nil
}

// nodeID reads "0,1,2": comma-separated indices starting at the root 0.
func (c *cursor) nodeID() string {
	start := c.pos
	if !c.eat("0") {
		c.fail("want a node id starting with 0")
		return ""
	}
	for c.eat(",") {
		c.int()
	}
	return c.s[start:c.pos]
}

func (c *cursor) done() error {
	if c.err == nil && c.pos != len(c.s) {
		c.fail("unexpected text")
	}
	return c.err
}
