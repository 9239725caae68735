package countdown

import (
	"fmt"
	"strconv"
	"strings"
)

// Prompts says how a Task writes its threads' prompts. The zero value is
// braid's: the mode line before the root's trace, every prompt ending with
// a whole line.
type Prompts struct {
	// APR writes the prompts of the released APR checkpoints (Pan et al.
	// 2025), as their evaluation code sends them (src/eval/eval_apr.py,
	// parallel_infernce_utils.py, eval_sosp.py): no mode line, and the last
	// line, the thread's Current State, left for the model to end. Those
	// models have no direct mode; the serial (SoS+) prompt starts at the
	// Current State, the parallel one at "Moving to Node #0".
	APR bool
	// SubCallBudget, when positive, is written as "Sub Call Budget: N "
	// before the root's prompt (the checkpoints conditioned on the number
	// of child threads); children get none.
	SubCallBudget int
	// TokenBudget, when positive, is written as "Token Budget: B " before
	// the root's prompt and every child's (the checkpoints conditioned on
	// tokens).
	TokenBudget int
}

// ParsePrompts reads a prompt style: "" or "braid" for braid's own, "apr"
// for the APR checkpoints', each optionally followed by budgets, as in
// "apr,sub-call-budget=10" or "apr,token-budget=4096".
func ParsePrompts(s string) (Prompts, error) {
	var p Prompts
	for i, part := range strings.Split(s, ",") {
		key, val, hasVal := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case i == 0 && !hasVal && (key == "" || key == "braid"):
		case i == 0 && !hasVal && key == "apr":
			p.APR = true
		case key == "sub-call-budget" || key == "token-budget":
			n, err := strconv.Atoi(val)
			if !hasVal || err != nil || n <= 0 || n > 1e9 {
				return Prompts{}, fmt.Errorf("countdown: %s wants a positive number, not %q", key, val)
			}
			if key == "sub-call-budget" {
				p.SubCallBudget = n
			} else {
				p.TokenBudget = n
			}
		default:
			return Prompts{}, fmt.Errorf("countdown: prompt option %q: want braid or apr, then sub-call-budget=N or token-budget=N", part)
		}
	}
	return p, nil
}

// String is p as ParsePrompts reads it.
func (p Prompts) String() string {
	parts := []string{"braid"}
	if p.APR {
		parts[0] = "apr"
	}
	if p.SubCallBudget > 0 {
		parts = append(parts, "sub-call-budget="+strconv.Itoa(p.SubCallBudget))
	}
	if p.TokenBudget > 0 {
		parts = append(parts, "token-budget="+strconv.Itoa(p.TokenBudget))
	}
	return strings.Join(parts, ",")
}

// root is the root thread's prompt for problem p in a mode.
func (p Prompts) root(c Problem, mode Mode) string {
	if !p.APR {
		return Header{Mode: mode, TokenBudget: p.TokenBudget, SubCallBudget: p.SubCallBudget}.Apply(rootTrace(c, mode))
	}
	h := Header{TokenBudget: p.TokenBudget}
	if mode == ModeParallel {
		h.SubCallBudget = p.SubCallBudget
	} else {
		mode = ModeSerial // the checkpoints have no direct mode
	}
	return strings.TrimSuffix(h.Apply(rootTrace(c, mode)), "\n")
}

// child is a child thread's prompt, from what ChildPrompts wrote.
func (p Prompts) child(prompt string) string {
	if !p.APR {
		return prompt
	}
	return strings.TrimSuffix(Header{TokenBudget: p.TokenBudget}.Apply(prompt), "\n")
}

// rootTrace is the start of a root trace: the root's state, after "Moving
// to Node #0" for the parallel and direct formats as the generators write
// them.
func rootTrace(p Problem, mode Mode) string {
	var w traceWriter
	if mode != ModeSerial {
		w.moving("0")
	}
	w.currentState(p.Target, p.Numbers, nil)
	return w.String()
}
