package countdown

import "fmt"

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
