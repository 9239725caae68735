package countdown

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrNotAProblem is wrapped by ParseText's errors: the text does not state
// a Countdown problem.
var ErrNotAProblem = errors.New(`expected a Countdown problem: a target and 2 to 6 numbers, as "27: 22 26 31 53" or "Using the numbers 22, 26, 31, 53, create an equation that equals 27"`)

var (
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
// are every other whole number, in order. Anything else that looks like a
// number ("-53", "2.5", "5³", "1e3", "5x", "٢٢") is refused, not read as the
// ASCII digits in it.
func ParseText(text string) (Problem, error) {
	if len(text) > 4096 {
		return Problem{}, fmt.Errorf("%w; got %d bytes of text", ErrNotAProblem, len(text))
	}
	nums, err := numbersIn(text)
	if err != nil {
		return Problem{}, fmt.Errorf("%w; %v", ErrNotAProblem, err)
	}
	start := -1
	if m := leadingGoal.FindStringSubmatchIndex(text); m != nil {
		start = m[2]
	} else if m := targetCue.FindStringSubmatchIndex(text); m != nil {
		start = m[2]
	}
	i := slices.IndexFunc(nums, func(n number) bool { return n.start == start })
	if i < 0 {
		return Problem{}, fmt.Errorf("%w; found no target in %q", ErrNotAProblem, clip(text))
	}
	p := Problem{Target: nums[i].value}
	for j, n := range nums {
		if j != i {
			p.Numbers = append(p.Numbers, n.value)
		}
	}
	if err := p.Validate(); err != nil {
		return Problem{}, fmt.Errorf("%w; %v", ErrNotAProblem, err)
	}
	return p, nil
}

// number is a plain number found in text, at its byte offset.
type number struct{ start, value int }

// signs may stand directly before a number to make it negative or positive.
const signs = "+-−±∓"

// numbersIn returns the plain numbers in text, in order, or an error that
// names the first thing that looks like a number but is not plain. A token
// is a run of letters, digits, numeric characters, combining marks and
// invisible format characters, joined across a '.' or '^' that a number
// follows (2.5, .5, 5^3); tokens with no numeric character are prose.
func numbersIn(text string) ([]number, error) {
	var out []number
	for i := 0; i < len(text); {
		r, w := utf8.DecodeRuneInString(text[i:])
		if !wordRune(r) && !joinsNumber(text, i) {
			i += w
			continue
		}
		start := i
		for i < len(text) {
			if r, w := utf8.DecodeRuneInString(text[i:]); wordRune(r) {
				i += w
			} else if joinsNumber(text, i) {
				i++
			} else {
				break
			}
		}
		tok := text[start:i]
		if !strings.ContainsFunc(tok, unicode.IsNumber) {
			continue
		}
		if r, w := utf8.DecodeLastRuneInString(text[:start]); strings.ContainsRune(signs, r) {
			return nil, notPlain(text[start-w : i])
		}
		n, err := ParseNumber(tok)
		if err != nil {
			return nil, err
		}
		out = append(out, number{start, n})
	}
	return out, nil
}

// wordRune reports whether r continues a word, so that a number written
// against it is not plain. Invisible format characters count: a zero-width
// space must not split "22" into two numbers that look like one.
func wordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r) || unicode.Is(unicode.Cf, r)
}

// joinsNumber reports whether text[i] is a '.' or '^' with a numeric
// character after it: a decimal point or an exponent, not the end of a
// sentence.
func joinsNumber(text string, i int) bool {
	if text[i] != '.' && text[i] != '^' {
		return false
	}
	r, _ := utf8.DecodeRuneInString(text[i+1:])
	return unicode.IsNumber(r)
}

// ParseNumber reads a number as a user writes one: ASCII digits and nothing
// else. strconv.Atoi would also take a sign; refusing it, and every other
// way of writing a number, keeps what braid reads equal to what the user
// sees.
func ParseNumber(s string) (int, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, notPlain(s)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s is too large", clip(s))
	}
	return n, nil
}

func notPlain(s string) error {
	return fmt.Errorf("%q is not a plain number: Countdown numbers are whole numbers written in ASCII digits", clip(s))
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
