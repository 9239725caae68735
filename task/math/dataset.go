package math

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/braid-dev/braid/task"
)

// LineError is a dataset line that could not be read.
type LineError struct {
	Name string // the file
	Line int    // 1-based
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Name, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// record holds the fields of every shape ReadJSONL reads.
type record struct {
	Text     *string `json:"text"`     // braid's own: text, answer
	Question *string `json:"question"` // GSM8K: question, answer ending "#### N"
	Problem  *string `json:"problem"`  // MATH: problem, solution with \boxed{}, maybe answer
	Answer   any     `json:"answer"`
	Solution *string `json:"solution"`
}

// ReadJSONL reads math problems, one JSON object per line, in the common
// shapes:
//
//   - braid's: {"text": question, "answer": reference}
//   - GSM8K: {"question": ..., "answer": worked solution ending "#### N"}
//   - MATH: {"problem": ..., "solution": worked solution with \boxed{}},
//     with "answer" taking precedence when present (MATH-500)
//
// The reference kept is the final answer alone (N, the boxed content). A
// line that is not one of these shapes is an error naming its line number;
// with skipBad, such lines are skipped instead and returned in skipped.
// name labels the errors (the file's name).
func ReadJSONL(r io.Reader, name string, skipBad bool) (problems []task.Problem, skipped []error, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<24)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		p, err := parseRecord(text)
		if err != nil {
			lerr := &LineError{Name: name, Line: line, Err: err}
			if !skipBad {
				return nil, nil, fmt.Errorf("%w (--skip-bad skips such lines)", lerr)
			}
			skipped = append(skipped, lerr)
			continue
		}
		problems = append(problems, p)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(problems) == 0 {
		return nil, skipped, fmt.Errorf("%s holds no problems", name)
	}
	return problems, skipped, nil
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
