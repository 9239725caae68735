package tasks

import (
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	for _, name := range Names() {
		tk, err := Lookup(name)
		if err != nil || tk.Name() != name {
			t.Errorf("%s: %v, %v", name, tk, err)
		}
	}
	if _, err := Lookup("chess"); err == nil || !strings.Contains(err.Error(), "countdown") {
		t.Errorf("an unknown task: %v", err)
	}
}

// A spec's options configure the task; a task without options refuses
// them, and bad options are named.
func TestLookupWithOptions(t *testing.T) {
	tk, err := Lookup("countdown:apr,sub-call-budget=10")
	if err != nil || tk.Name() != "countdown" {
		t.Fatalf("%v, %v", tk, err)
	}
	plain, _ := Lookup("countdown")
	if tk == plain {
		t.Error("the options changed nothing")
	}
	if _, err := Lookup("math:apr"); err == nil || !strings.Contains(err.Error(), "takes no options") {
		t.Errorf("options for the math task: %v", err)
	}
	if _, err := Lookup("countdown:gpt"); err == nil || !strings.Contains(err.Error(), `"gpt"`) {
		t.Errorf("a bad option: %v", err)
	}
}
