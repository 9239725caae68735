// Package task is what strategies know of a problem domain: how to pose a
// problem to a model, how to find the answer in what it writes, when two
// answers are the same, and whether an answer is right. Countdown
// (task/countdown) and free-text math (task/math) are tasks.
package task

// Problem is one question of a task.
type Problem struct {
	// Task names the task ("math", "countdown").
	Task string `json:"task,omitempty"`
	// Text is the question, for free-text tasks.
	Text string `json:"text,omitempty"`
	// Answer is the reference answer, when known.
	Answer string `json:"answer,omitempty"`
}

// Task is a problem domain as strategies see it.
type Task interface {
	// Name is the task's name, as in Problem.Task.
	Name() string
	// Prompt is what a model is given to solve p.
	Prompt(p Problem) string
	// Extract finds the answer a completion gives, "" for none.
	Extract(p Problem, completion string) string
	// Equivalent reports whether two extracted answers are one answer:
	// votes count them together.
	Equivalent(p Problem, a, b string) bool
	// Verify reports whether answer is right, and whether the task can
	// tell (it cannot without a reference answer or a checker).
	Verify(p Problem, answer string) (correct, known bool)
}
