package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// A log (not a terminal) gets plain progress lines with the count, the
// rate and the time left.
func TestProgressLinesForLogs(t *testing.T) {
	var log bytes.Buffer
	p := newProgress(&log, 4, "eval")
	p.every = 0
	p.add(1)
	p.add(1)
	p.add(2) // done: the command prints its own summary
	p.finish()
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "eval: 1/4 (25%), ") || !strings.Contains(lines[1], "2/4 (50%)") || !strings.Contains(lines[1], "left") {
		t.Errorf("lines:\n%s", log.String())
	}
	var nothing *progress
	nothing.add(1) // a nil progress shows nothing
	nothing.finish()
}

// A step's phases each get their own progress, named after the step and
// the phase, counted from each phase's start.
func TestPhaseProgress(t *testing.T) {
	var log bytes.Buffer
	tick := phaseProgress(&log, 0, func(step int) string { return fmt.Sprintf("step %d/40", step) })
	tick(11, "rollouts", 0, 4)
	tick(11, "rollouts", 1, 4)
	tick(11, "rollouts", 4, 4)
	tick(11, "screening", 0, 0) // nothing to count: no line
	tick(11, "update", 0, 3)
	tick(11, "update", 2, 3)
	tick(11, "update", 3, 3)
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "step 11/40 rollouts: 1/4 (25%), ") ||
		!strings.HasPrefix(lines[1], "step 11/40 update: 2/3 (67%), ") {
		t.Errorf("lines:\n%s", log.String())
	}
}
