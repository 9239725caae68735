package math

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/task/perturb"
)

// Task is free-text math as a task: a question in words, answered with a
// number (or an expression) in \boxed{}.
type Task struct{}

var (
	_ task.Task      = Task{}
	_ task.Perturber = Task{}
)

// Name implements task.Task.
func (Task) Name() string { return "math" }

// Parse reads a JSON line as ReadJSONL does (GSM8K, MATH or {"text",
// "answer"}), or takes s as the question, without a reference answer.
func (Task) Parse(s string) (task.Problem, error) {
	if t := strings.TrimSpace(s); strings.HasPrefix(t, "{") {
		return parseRecord(t)
	}
	if strings.TrimSpace(s) == "" {
		return task.Problem{}, fmt.Errorf("math: the question is empty")
	}
	return task.Problem{Task: "math", Text: s}, nil
}

// Encode implements task.Task: {"task":"math","text":...,"answer":...}.
func (Task) Encode(p task.Problem) json.RawMessage {
	b, _ := json.Marshal(p) // strings always marshal
	return b
}

// Key implements task.Task: the question.
func (Task) Key(p task.Problem) string { return p.Text }

// Prompt asks the question and says where the answer goes, the convention
// chat models are trained on.
func (Task) Prompt(p task.Problem) string {
	return strings.TrimSpace(p.Text) + "\n\nReason step by step, and put your final answer within \\boxed{}."
}

// Extract implements task.Task. The prompt, when the text starts with it,
// is no part of the answer: it names \boxed{} itself.
func (t Task) Extract(p task.Problem, text string) string {
	a, ok := Extract(strings.TrimPrefix(text, t.Prompt(p)))
	if !ok {
		return ""
	}
	return a.Text
}

// Equivalent implements task.Task: equal numbers, or the same text.
func (Task) Equivalent(_ task.Problem, a, b string) bool {
	return Equivalent(answerOf(a), answerOf(b))
}

// Class implements task.Task: an answer's exact value when it is a
// number (1/2, 0.5 and \frac{1}{2} are one class), else its text without
// case or spaces.
func (Task) Class(_ task.Problem, answer string) string {
	if answer == "" {
		return ""
	}
	if v, ok := Parse(answer); ok {
		return "= " + v.RatString()
	}
	return strings.ToLower(strings.Join(strings.Fields(answer), ""))
}

// Perturb implements task.Perturber: "distractors" appends a sentence that
// has nothing to do with the question (perturb.Distract).
func (Task) Perturb(p task.Problem, kind string, key uint64) (task.Problem, error) {
	if kind != string(perturb.DistractorsKind) {
		return task.Problem{}, fmt.Errorf("math: perturbation %q: want distractors", kind)
	}
	p.Text = perturb.Distract(p.Text, key)
	return p, nil
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
