package perturb_test

import (
	"strings"
	"testing"

	"github.com/braid-dev/braid/task"
	taskmath "github.com/braid-dev/braid/task/math"
	"github.com/braid-dev/braid/task/perturb"
)

func TestDistract(t *testing.T) {
	q := "Natalia sold 48 clips in April and half as many in May. How many in all?\n"
	seen := map[string]bool{}
	for key := range uint64(50) {
		d := perturb.Distract(q, key)
		if d != perturb.Distract(q, key) {
			t.Fatal("the same key gave two perturbations")
		}
		rest, ok := strings.CutPrefix(d, strings.TrimSpace(q)+" ")
		if !ok {
			t.Fatalf("the question changed: %q", d)
		}
		found := false
		for _, s := range perturb.Distractors {
			found = found || rest == s
		}
		if !found {
			t.Fatalf("appended %q, not a distractor", rest)
		}
		seen[rest] = true
		// The reference answer still verifies the same way.
		p := task.Problem{Task: "math", Text: d, Answer: "72"}
		if ok, _ := (taskmath.Task{}).Verify(p, "72"); !ok {
			t.Fatal("the perturbed problem no longer accepts its answer")
		}
	}
	if len(seen) < 3 {
		t.Errorf("50 keys drew only %d distractors", len(seen))
	}
	if _, err := perturb.Parse("typos"); err == nil || !strings.Contains(err.Error(), "distractors") {
		t.Errorf("an unknown perturbation: %v", err)
	}
	if k, err := perturb.Parse("distractors"); k != perturb.DistractorsKind || err != nil {
		t.Errorf("Parse: %v %v", k, err)
	}
}
