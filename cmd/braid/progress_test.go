package main

import (
	"bytes"
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
