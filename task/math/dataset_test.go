package math

import (
	"errors"
	"strings"
	"testing"

	"github.com/braid-dev/braid/task"
)

func TestReadJSONLShapes(t *testing.T) {
	in := strings.Join([]string{
		`{"question": "Natalia sold clips to 48 friends in April, and half as many in May. How many in all?", "answer": "In May she sold 48/2 = <<48/2=24>>24.\n48+24 = <<48+24=72>>72\n#### 72"}`,
		``,
		`{"problem": "What is $\\frac{1}{2}+\\frac{1}{4}$?", "solution": "We get $\\boxed{\\frac{3}{4}}$.", "level": "Level 1"}`,
		`{"problem": "Compute $2^{10}$.", "solution": "It is $\\boxed{1000}$ (a typo)", "answer": "1024"}`,
		`{"text": "What is 15% of 80?", "answer": 12}`,
	}, "\n")
	ps, skipped, err := task.ReadJSONL(strings.NewReader(in), "mixed.jsonl", Task{}, false)
	if err != nil || len(skipped) != 0 {
		t.Fatal(err, skipped)
	}
	want := []string{"72", `\frac{3}{4}`, "1024", "12"}
	if len(ps) != len(want) {
		t.Fatalf("%d problems, want %d", len(ps), len(want))
	}
	for i, p := range ps {
		if p.Answer != want[i] || p.Task != "math" || p.Text == "" {
			t.Errorf("problem %d: %+v, want answer %q", i, p, want[i])
		}
	}
	var task Task
	if ok, known := task.Verify(ps[1], "0.75"); !ok || !known {
		t.Errorf("3/4 against %q: %v %v", ps[1].Answer, ok, known)
	}
}

func TestReadJSONLBadLines(t *testing.T) {
	in := strings.Join([]string{
		`{"question": "2+2?", "answer": "#### 4"}`,
		`{"question": "no answer"}`,
		`not json`,
		`{"problem": "x", "solution": "no box here"}`,
		`{"prompt": "another shape", "completion": "5"}`,
		`{"text": "ok", "answer": [1]}`,
		`{"text": "fine", "answer": "7"} {"text": "two"}`,
		`{"question": "3+3?", "answer": "#### 6"}`,
	}, "\n")
	_, _, err := task.ReadJSONL(strings.NewReader(in), "bad.jsonl", Task{}, false)
	var le *task.LineError
	if !errors.As(err, &le) || le.Line != 2 || !strings.Contains(err.Error(), "bad.jsonl:2:") {
		t.Fatalf("the first bad line: %v", err)
	}
	ps, skipped, err := task.ReadJSONL(strings.NewReader(in), "bad.jsonl", Task{}, true)
	if err != nil || len(ps) != 2 || ps[1].Answer != "6" {
		t.Fatalf("with skipBad: %d problems (%v)", len(ps), err)
	}
	var lines []int
	for _, e := range skipped {
		errors.As(e, &le)
		lines = append(lines, le.Line)
	}
	if len(lines) != 6 || lines[0] != 2 || lines[5] != 7 {
		t.Errorf("skipped lines %v, want 2..7", lines)
	}
	if _, _, err := task.ReadJSONL(strings.NewReader("\n\n"), "empty.jsonl", Task{}, true); err == nil || !strings.Contains(err.Error(), "no problems") {
		t.Errorf("an empty file: %v", err)
	}
}

func FuzzReadJSONL(f *testing.F) {
	f.Add(`{"question": "2+2?", "answer": "#### 4"}`)
	f.Add(`{"problem": "x", "solution": "\\boxed{\\frac{1}{2}}"}`)
	f.Add(`{"text": "q", "answer": 1e3}`)
	f.Add(`{"problem": "x", "solution": "\\boxed{"}`)
	f.Fuzz(func(t *testing.T, line string) {
		ps, skipped, err := task.ReadJSONL(strings.NewReader(line), "fuzz", Task{}, true)
		if err == nil && len(ps) == 0 {
			t.Fatal("no error and no problems")
		}
		for _, p := range ps {
			if strings.TrimSpace(p.Text) == "" || p.Task != "math" {
				t.Fatalf("problem %+v", p)
			}
		}
		for _, e := range skipped {
			var le *task.LineError
			if !errors.As(e, &le) || le.Line < 1 {
				t.Fatalf("skipped %v", e)
			}
		}
	})
}
