package task

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// LineError is a line of a problem file that could not be read.
type LineError struct {
	Name string // the file
	Line int    // 1-based
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Name, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// ReadJSONL reads t's problems, one JSON object per line, each as t's
// Parse reads it; blank lines are skipped. A line Parse refuses is an
// error naming its line number; with skipBad, such lines are skipped
// instead and returned in skipped. name labels the errors (the file's
// name).
func ReadJSONL(r io.Reader, name string, t Task, skipBad bool) (problems []Problem, skipped []error, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<24)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		p, err := parseLine(t, text)
		if err != nil {
			lerr := &LineError{Name: name, Line: line, Err: err}
			if !skipBad {
				return nil, nil, lerr
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

func parseLine(t Task, line string) (Problem, error) {
	if !strings.HasPrefix(line, "{") {
		return Problem{}, errors.New("not a JSON object")
	}
	return t.Parse(line)
}
