package math

import (
	"strings"

	"github.com/braid-dev/braid/task"
)

// Task is free-text math as a task: a question in words, answered with a
// number (or an expression) in \boxed{}.
type Task struct{}

var _ task.Task = Task{}

// Name implements task.Task.
func (Task) Name() string { return "math" }

// Prompt asks the question and says where the answer goes, the convention
// chat models are trained on.
func (Task) Prompt(p task.Problem) string {
	return strings.TrimSpace(p.Text) + "\n\nReason step by step, and put your final answer within \\boxed{}."
}

// Extract implements task.Task.
func (Task) Extract(_ task.Problem, completion string) string {
	a, ok := Extract(completion)
	if !ok {
		return ""
	}
	return a.Text
}

// Equivalent implements task.Task: equal numbers, or the same text.
func (Task) Equivalent(_ task.Problem, a, b string) bool {
	return Equivalent(answerOf(a), answerOf(b))
}

// Verify compares with the reference answer, when the problem has one.
func (t Task) Verify(p task.Problem, answer string) (bool, bool) {
	if p.Answer == "" {
		return false, false
	}
	if answer == "" {
		return false, true
	}
	// A reference is the answer itself (72, \frac{3}{4}, x^2+1), or a
	// worked solution that marks it (#### 72, \boxed{72}).
	ref := answerOf(p.Answer)
	if strings.Contains(p.Answer, "####") || strings.Contains(p.Answer, `\boxed`) || strings.Contains(p.Answer, `\fbox`) {
		if a, ok := Extract(p.Answer); ok {
			ref = a
		}
	}
	return Equivalent(answerOf(answer), ref), true
}
