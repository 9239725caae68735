package countdown

import (
	"slices"
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
	val, err := task.Draw(tk, 2, task.SplitValidation, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range val {
		if SplitOf(ProblemOf(p)) != Test || ProblemOf(p).Key() == ProblemOf(test[0]).Key() {
			t.Errorf("validation problem %v is a training one or the first test one", ProblemOf(p))
		}
	}
	if _, err := task.Draw(tk, 2, "holdout", 1); err == nil {
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

// The APR checkpoints' prompts, byte for byte as the authors' evaluation
// code writes them (src/eval/eval_apr.py get_prefix,
// parallel_infernce_utils.py construct_sub_search_prefix, eval_sosp.py):
// no mode line, the Current State line left open, the budget before the
// root (and, for a token budget, before every child).
func TestAPRCheckpointPrompts(t *testing.T) {
	p := NewProblem(Problem{Numbers: []int{25, 36, 49, 51}, Target: 39})
	parent := "Moving to Node #0\nCurrent State: 39:[25, 36, 49, 51], Operations: []\n" +
		"Exploring Operation: 51-49=2, Resulting Numbers: [25, 36, 2]\nGenerated Node #0,0: 39:[25, 36, 2] Operation: 51-49=2\n"
	for _, tc := range []struct {
		options               string
		parallel, serial, kid string
	}{
		{"apr",
			"Moving to Node #0\nCurrent State: 39:[25, 36, 49, 51], Operations: []",
			"Current State: 39:[25, 36, 49, 51], Operations: []",
			"Moving to Node #0,0\nCurrent State: 39:[25, 36, 2], Operations: ['51-49=2']"},
		{"apr,sub-call-budget=10",
			"Sub Call Budget: 10 Moving to Node #0\nCurrent State: 39:[25, 36, 49, 51], Operations: []",
			"Current State: 39:[25, 36, 49, 51], Operations: []",
			"Moving to Node #0,0\nCurrent State: 39:[25, 36, 2], Operations: ['51-49=2']"},
		{"apr,token-budget=4096",
			"Token Budget: 4096 Moving to Node #0\nCurrent State: 39:[25, 36, 49, 51], Operations: []",
			"Token Budget: 4096 Current State: 39:[25, 36, 49, 51], Operations: []",
			"Token Budget: 4096 Moving to Node #0,0\nCurrent State: 39:[25, 36, 2], Operations: ['51-49=2']"},
	} {
		c, err := Task{}.Configure(tc.options)
		if err != nil {
			t.Fatal(err)
		}
		tk := c.(Task)
		if got := tk.PromptAt(p, task.EffortDeep); got != tc.parallel {
			t.Errorf("%s: parallel root %q, want %q", tc.options, got, tc.parallel)
		}
		for _, effort := range []string{task.EffortLight, task.EffortOff} { // no direct mode
			if got := tk.PromptAt(p, effort); got != tc.serial {
				t.Errorf("%s: effort %s: root %q, want %q", tc.options, effort, got, tc.serial)
			}
		}
		kids, err := tk.ChildPrompts(p, parent, []string{"0,0"})
		if err != nil || len(kids) != 1 || kids[0] != tc.kid {
			t.Errorf("%s: child %q (%v), want %q", tc.options, kids, err, tc.kid)
		}
		if tk.Prompts.String() != tc.options {
			t.Errorf("%s reads back as %s", tc.options, tk.Prompts)
		}
	}
	for _, bad := range []string{"apr,sub-call-budget=0", "apr,token-budget=x", "gpt", "apr,tokens=5", "apr,apr"} {
		if _, err := (Task{}).Configure(bad); err == nil {
			t.Errorf("options %q were accepted", bad)
		}
	}
}

// The environment takes a prompt that leaves its last line open, as the
// APR checkpoints' do: the model ends it, and the environment writes what
// it writes after a braid prompt.
func TestEnvironmentUnderAPRPrompts(t *testing.T) {
	c := Problem{Numbers: []int{25, 36, 49, 51}, Target: 39}
	for _, mode := range []Mode{ModeSerial, ModeParallel} {
		rec, err := TraceConfig{Format: mode}.Generate(c, 7, 0)
		if err != nil {
			t.Fatal(err)
		}
		seq := rec.Sequences[0] // the root's first call
		braidPrompt := RootPrompt(c, mode)
		_, body, _ := SplitHeader(braidPrompt)
		if !strings.HasPrefix(seq.Prompt+seq.Completion, braidPrompt) && !strings.HasPrefix(seq.Prompt+seq.Completion, body) {
			t.Fatalf("%s: the generated call %q does not start at the root", mode, seq.Prompt)
		}
		text := strings.TrimPrefix(seq.Prompt+seq.Completion, "Mode: "+string(mode)+"\n")
		want, err := EnvSpans(c, body, text[len(body):])
		if err != nil {
			t.Fatal(err)
		}
		apr := Prompts{APR: true, TokenBudget: 512}.root(c, mode)
		got, err := EnvSpans(c, apr, text[len(body)-1:])
		if err != nil {
			t.Fatalf("%s: the environment under %q: %v", mode, apr, err)
		}
		if len(got) != len(want) || len(got) == 0 || got[0].Start != want[0].Start+1 {
			t.Errorf("%s: the environment wrote %v under APR's prompt, %v under braid's", mode, got, want)
		}
	}
	e, err := NewEnv(c, Prompts{APR: true}.root(c, ModeParallel))
	if err != nil {
		t.Fatal(err)
	}
	if ch := e.Choices(); len(ch) != 1 || ch[0] != "\n" {
		t.Errorf("choices on the open line: %q, want only its end", ch)
	}
	if fill, err := e.Next("\n"); err != nil || fill != "" || !slices.ContainsFunc(e.Choices(), func(s string) bool { return strings.HasPrefix(s, "Exploring Operation: ") }) {
		t.Errorf("after the open line: %q, %v, choices %q", fill, err, e.Choices())
	}
	if _, nodes, ok := Spawned("x\n<Calling Sub Searches>\n<Start Sub Search 0 at level 1> Moving to Node #0,0\n<End Calling Sub Searches>"); !ok || len(nodes) != 1 {
		t.Error("a spawn block without its last newline is not a spawn")
	}
}
