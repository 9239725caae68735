package countdown

import (
	"strings"
	"testing"
)

func TestDecoyPrompt(t *testing.T) {
	p := Problem{Target: 27, Numbers: []int{22, 26, 31, 53}}
	for _, mode := range []Mode{ModeSerial, ModeParallel} {
		prompt, op, ok := DecoyPrompt(p, mode)
		if !ok {
			t.Fatalf("%s: no decoy for %v", mode, p)
		}
		clean := RootPrompt(p, mode)
		rest, found := strings.CutPrefix(prompt, clean)
		if !found || strings.Count(rest, "\n") != 2 || !strings.Contains(rest, "Generated Node #0,0: 27:") {
			t.Fatalf("%s: decoy prompt\n%s", mode, prompt)
		}
		// The decoy is a dead end: no solution starts with it.
		for _, sol := range SolveAll(p, 0).Solutions {
			if sol[0] == op {
				t.Errorf("%s: decoy %v starts the solution %v", mode, op, sol)
			}
		}
		// The environment reads the decoy as the model's own lines, and the
		// search may go on from it.
		env, err := NewEnv(p, prompt)
		if err != nil {
			t.Fatalf("%s: the environment refuses the decoy prompt: %v", mode, err)
		}
		if _, err := env.Begin(); err != nil {
			t.Fatal(err)
		}
	}
	if prompt, _, ok := DecoyPrompt(p, ModeDirect); ok || prompt != RootPrompt(p, ModeDirect) {
		t.Errorf("direct mode has no search to mislead, got %q", prompt)
	}
}
