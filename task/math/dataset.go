package math

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/braid-dev/braid/task"
)

// record holds the fields of every shape Parse reads from a JSON line:
//
//   - braid's: {"text": question, "answer": reference}
//   - GSM8K: {"question": ..., "answer": worked solution ending "#### N"}
//   - MATH: {"problem": ..., "solution": worked solution with \boxed{}},
//     with "answer" taking precedence when present (MATH-500)
//
// The reference kept is the final answer alone (N, the boxed content).
type record struct {
	Text     *string `json:"text"`     // braid's own: text, answer
	Question *string `json:"question"` // GSM8K: question, answer ending "#### N"
	Problem  *string `json:"problem"`  // MATH: problem, solution with \boxed{}, maybe answer
	Answer   any     `json:"answer"`
	Solution *string `json:"solution"`
}

func parseRecord(line string) (task.Problem, error) {
	var r record
	d := json.NewDecoder(strings.NewReader(line))
	d.UseNumber()
	if err := d.Decode(&r); err != nil {
		return task.Problem{}, fmt.Errorf("not a JSON object: %w", err)
	}
	if d.More() {
		return task.Problem{}, errors.New("more than one JSON value on the line")
	}
	answer, err := answerField(r.Answer)
	if err != nil {
		return task.Problem{}, err
	}
	p := task.Problem{Task: "math"}
	switch {
	case r.Text != nil:
		p.Text, p.Answer = *r.Text, answer
	case r.Question != nil: // GSM8K
		p.Text = *r.Question
		if answer == "" {
			return p, errors.New(`a "question" needs an "answer"`)
		}
		if i := strings.LastIndex(answer, "####"); i >= 0 {
			answer = strings.TrimSpace(answer[i+4:])
			if answer == "" {
				return p, errors.New(`the "answer" has nothing after "####"`)
			}
		}
		p.Answer = answer
	case r.Problem != nil: // MATH
		p.Text = *r.Problem
		if answer == "" && r.Solution != nil {
			boxed, ok := lastBoxed(*r.Solution)
			if !ok {
				return p, errors.New(`the "solution" has no \boxed{} answer, and there is no "answer"`)
			}
			answer = boxed
		}
		if answer == "" {
			return p, errors.New(`a "problem" needs a "solution" or an "answer"`)
		}
		p.Answer = answer
	default:
		return p, errors.New(`want {"question", "answer"} (GSM8K), {"problem", "solution"} (MATH) or {"text", "answer"}`)
	}
	if strings.TrimSpace(p.Text) == "" {
		return p, errors.New("the question is empty")
	}
	return p, nil
}

// answerField reads an answer given as a string or a number.
func answerField(v any) (string, error) {
	switch a := v.(type) {
	case nil:
		return "", nil
	case string:
		return strings.TrimSpace(a), nil
	case json.Number:
		return a.String(), nil
	default:
		return "", fmt.Errorf(`"answer" is a %T, want a string or a number`, v)
	}
}
