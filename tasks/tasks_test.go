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
