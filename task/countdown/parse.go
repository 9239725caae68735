package countdown

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ErrNotAProblem is wrapped by ParseText's errors: the text does not state
// a Countdown problem.
var ErrNotAProblem = errors.New(`expected a Countdown problem: a target and 2 to 6 numbers, as "27: 22 26 31 53" or "Using the numbers 22, 26, 31, 53, create an equation that equals 27"`)

var (
	integer = regexp.MustCompile(`\d+(?:\.\d+)?`)
	// The target is the number after a word that names it, or before a
	// colon that opens the text.
	targetCue   = regexp.MustCompile(`(?i)(?:\bequals?(?:\s+to)?|\btarget(?:\s+(?:is|of|number))?|\bmakes?|\breach(?:es)?|\bgets?|\btotals?|\bsums?\s+to|\bresults?\s+in|=)\s*:?\s*(\d+)\b`)
	leadingGoal = regexp.MustCompile(`^\s*(\d+)\s*:`)
)

// ParseText reads a Countdown problem stated in words, as a person would
// type it into a chat: "27: 22 26 31 53", "Using the numbers 22, 26, 31,
// 53, create an equation that equals 27", "make 24 from 4 9 3 1". The
// target is the number that opens the text before a colon, or follows a
// word naming it (equals, target, make, reach, get, total, =); the numbers
// are every other whole number, in order.
func ParseText(text string) (Problem, error) {
	if len(text) > 4096 {
		return Problem{}, fmt.Errorf("%w; got %d bytes of text", ErrNotAProblem, len(text))
	}
	start, end := -1, -1
	if m := leadingGoal.FindStringSubmatchIndex(text); m != nil {
		start, end = m[2], m[3]
	} else if m := targetCue.FindStringSubmatchIndex(text); m != nil {
		start, end = m[2], m[3]
	}
	if start < 0 {
		return Problem{}, fmt.Errorf("%w; found no target in %q", ErrNotAProblem, clip(text))
	}
	if end+1 < len(text) && text[end] == '.' && text[end+1] >= '0' && text[end+1] <= '9' {
		return Problem{}, fmt.Errorf("%w; the target %s is not a whole number", ErrNotAProblem, integer.FindString(text[start:]))
	}
	var p Problem
	var err error
	if p.Target, err = strconv.Atoi(text[start:end]); err != nil {
		return Problem{}, fmt.Errorf("%w; the target %s is too large", ErrNotAProblem, text[start:end])
	}
	for _, m := range integer.FindAllStringIndex(text, -1) {
		if m[0] == start {
			continue
		}
		s := text[m[0]:m[1]]
		if strings.Contains(s, ".") {
			return Problem{}, fmt.Errorf("%w; %s is not a whole number", ErrNotAProblem, s)
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return Problem{}, fmt.Errorf("%w; %s is too large", ErrNotAProblem, s)
		}
		p.Numbers = append(p.Numbers, n)
	}
	if err := p.Validate(); err != nil {
		return Problem{}, fmt.Errorf("%w; %v", ErrNotAProblem, err)
	}
	return p, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
