package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/task/countdown"
)

// openInput opens the file at path, or stdin for "-", with the name errors
// should give it; closeInput releases it.
func openInput(path string, stdin io.Reader) (r io.Reader, name string, closeInput func(), err error) {
	if path == "-" {
		return stdin, "standard input", func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "", nil, err
	}
	return f, path, func() { f.Close() }, nil
}

// readProblems reads a JSONL file of Countdown problems; a bad line is an
// error naming it.
func readProblems(path string, stdin io.Reader) ([]countdown.Problem, error) {
	r, name, closeInput, err := openInput(path, stdin)
	if err != nil {
		return nil, err
	}
	defer closeInput()
	ps, _, err := task.ReadJSONL(r, name, countdown.Task{}, false)
	if err != nil {
		return nil, err
	}
	out := make([]countdown.Problem, len(ps))
	for i, p := range ps {
		out[i] = countdown.ProblemOf(p)
	}
	return out, nil
}

// readTaskProblems reads a JSONL file of t's problems ('-' for stdin) for
// a command with --skip-bad: a bad line is an error naming it, or with
// skipBad a warning on log.
func readTaskProblems(t task.Task, path string, stdin io.Reader, skipBad bool, log io.Writer) ([]task.Problem, error) {
	r, name, closeInput, err := openInput(path, stdin)
	if err != nil {
		return nil, err
	}
	defer closeInput()
	problems, skipped, err := task.ReadJSONL(r, name, t, skipBad)
	for _, e := range skipped {
		fmt.Fprintf(log, "skipped %v\n", e)
	}
	if len(skipped) > 0 {
		fmt.Fprintf(log, "skipped %d bad lines of %s\n", len(skipped), name)
	}
	var bad *task.LineError
	if errors.As(err, &bad) {
		return nil, fmt.Errorf("%w (--skip-bad skips such lines)", err)
	}
	return problems, err
}
