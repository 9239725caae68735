package countdown

import (
	"strings"
	"testing"

	"github.com/braid-dev/braid/task"
)

func TestTaskReadsWritesAndJudgesProblems(t *testing.T) {
	var tk Task
	fromJSON, err := tk.Parse(`{"numbers":[22,26,31,53],"target":27}`)
	if err != nil {
		t.Fatal(err)
	}
	fromText, err := tk.Parse("Using the numbers 22, 26, 31, 53, create an equation that equals 27")
	if err != nil {
		t.Fatal(err)
	}
	if tk.Key(fromJSON) != tk.Key(fromText) || fromJSON.Text != "27: 22 26 31 53" {
		t.Errorf("keys %q and %q, text %q", tk.Key(fromJSON), tk.Key(fromText), fromJSON.Text)
	}
	again, err := tk.Parse(string(tk.Encode(fromText)))
	if err != nil || tk.Key(again) != tk.Key(fromText) {
		t.Errorf("encode then parse: %v, %v", again, err)
	}
	for _, bad := range []string{`{"numbers":[1],"target":2}`, `{"target":5}`, "What is love?", `{"numbers":"x"}`} {
		if _, err := tk.Parse(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	p := fromJSON
	right, wrong := "26+(53-31)/22", "53-26"
	if ok, known := tk.Verify(p, right); !ok || !known {
		t.Errorf("verify %s: %v, %v", right, ok, known)
	}
	if ok, _ := tk.Verify(p, wrong); ok || tk.Check(p, wrong) == nil || tk.Check(p, "") == nil {
		t.Errorf("%s was accepted", wrong)
	}
	if tk.Class(p, right) != tk.Class(p, "(53-31)/22+26") || tk.Class(p, wrong) == tk.Class(p, right) || tk.Class(p, "") != "" {
		t.Errorf("classes %q %q %q", tk.Class(p, right), tk.Class(p, "(53-31)/22+26"), tk.Class(p, wrong))
	}
	if !tk.Equivalent(p, right, "(53-31)/22+26") || tk.Equivalent(p, right, wrong) {
		t.Error("every answer reaching the target is one answer; a wrong one is not")
	}
	if got := tk.Reply(p, right); got != right+" = 27" {
		t.Errorf("reply %q", got)
	}
	if got := tk.Reply(p, ""); !strings.Contains(got, "No solution") {
		t.Errorf("reply without an answer %q", got)
	}
}

func TestTaskPromptsByEffort(t *testing.T) {
	var tk Task
	p := NewProblem(Problem{Numbers: []int{22, 26, 31, 53}, Target: 27})
	modes := map[string]Mode{task.EffortOff: ModeDirect, task.EffortLight: ModeSerial, task.EffortDeep: ModeParallel}
	for effort, mode := range modes {
		if got, want := tk.PromptAt(p, effort), RootPrompt(ProblemOf(p), mode); got != want {
			t.Errorf("effort %s: prompt %q, want %q", effort, got, want)
		}
	}
	if tk.Prompt(p) != RootPrompt(ProblemOf(p), ModeSerial) {
		t.Error("the default prompt is not the serial search's")
	}
	decoy, err := tk.Perturb(p, "distractors", 0)
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := DecoyPrompt(ProblemOf(p), ModeParallel)
	if tk.PromptAt(decoy, task.EffortDeep) != want || tk.Key(decoy) != tk.Key(p) {
		t.Error("the perturbed problem does not start at the decoy")
	}
	if _, err := tk.Perturb(p, "typos", 0); err == nil {
		t.Error("an unknown perturbation was accepted")
	}
}

func TestTaskDrawsAndDemonstrates(t *testing.T) {
	var tk Task
	test, err := task.Draw(tk, 2, task.SplitTest, 3)
	if err != nil || len(test) != 3 {
		t.Fatalf("%d test problems, %v", len(test), err)
	}
	train, _ := task.Draw(tk, 2, task.SplitTrain, 3)
	for _, p := range train {
		if ProblemOf(p).Key() == ProblemOf(test[0]).Key() {
			t.Error("a training problem is a test one")
		}
	}
	if _, err := task.Draw(tk, 2, "validation", 1); err == nil {
		t.Error("an unknown split was accepted")
	}
	for _, effort := range []string{task.EffortOff, task.EffortLight, task.EffortDeep} {
		demos, err := tk.Demonstrate(train[0], effort, 1, 0)
		if err != nil || len(demos) == 0 {
			t.Fatalf("effort %s: %d calls, %v", effort, len(demos), err)
		}
		root := demos[0]
		if err := tk.CheckTrace(train[0], root.Prompt+root.Completion); err != nil && effort != task.EffortDeep {
			t.Errorf("effort %s: the demonstration's trace is invalid: %v", effort, err)
		}
		for _, sp := range root.Env {
			if sp.Start < 0 || sp.End > len(root.Completion) || sp.Start >= sp.End {
				t.Errorf("effort %s: environment span %v outside the completion", effort, sp)
			}
		}
		if effort != task.EffortOff && len(root.Env) == 0 {
			t.Errorf("effort %s: a search with nothing the environment writes", effort)
		}
	}
	if _, err := tk.Demonstrate(train[0], "max", 1, 0); err == nil {
		t.Error("an unknown effort was accepted")
	}
}

// Whatever a user or a file gives, Parse refuses it or returns a problem
// that is valid and comes back the same from its own encoding.
func FuzzTaskParse(f *testing.F) {
	for _, s := range []string{`{"numbers":[22,26,31,53],"target":27}`, "27: 22 26 31 53", `{"numbers":[1,2],"target":-1}`,
		`{"numbers":[1e9,2],"target":3}`, "make 24 from 4 9 3 1", `{"numbers":null}`, `{`} {
		f.Add(s)
	}
	var tk Task
	f.Fuzz(func(t *testing.T, s string) {
		p, err := tk.Parse(s)
		if err != nil {
			return
		}
		if err := ProblemOf(p).Validate(); err != nil {
			t.Fatalf("%q parsed to an invalid problem: %v", s, err)
		}
		again, err := tk.Parse(string(tk.Encode(p)))
		if err != nil || tk.Key(again) != tk.Key(p) {
			t.Fatalf("%q: its encoding %s parses to %v, %v", s, tk.Encode(p), again, err)
		}
	})
}
