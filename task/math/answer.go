// Package math extracts final answers from free-text math solutions and
// decides when two answers are the same, so that strategies that vote or
// pick among samples (self-consistency, best-of-N, aggregation) work on
// chat models: "\boxed{\frac{1}{2}}", "#### 0.5" and "The answer is 50%"
// are read as the numbers they write, and equal numbers are one answer.
package math

import (
	"math/big"
	"regexp"
	"strings"
	"unicode"
)

// Answer is an extracted final answer.
type Answer struct {
	// Text is the answer as written, trimmed.
	Text string
	// Value is its number when it is one, nil otherwise.
	Value *big.Rat
}

// Extract finds the final answer of a solution: the last \boxed{...} (or
// \fbox{...}), else the number after the last "####" (GSM8K), else what
// follows the last "answer is" or "Answer:", else the last number in the
// text. It reports false when it finds none.
func Extract(text string) (Answer, bool) {
	if s, ok := lastBoxed(text); ok {
		return answerOf(s), true
	}
	if i := strings.LastIndex(text, "####"); i >= 0 {
		if s := firstLine(text[i+4:]); s != "" {
			return answerOf(s), true
		}
	}
	lower := strings.ToLower(text)
	for _, cue := range []string{"answer is", "answer:"} {
		if i := strings.LastIndex(lower, cue); i >= 0 {
			s := firstLine(text[i+len(cue):])
			s = strings.TrimRight(strings.TrimSpace(s), ".")
			if n := lastNumber(s); n != "" && len(s) > 40 {
				s = n // a sentence: keep its number
			}
			if s != "" {
				return answerOf(s), true
			}
		}
	}
	if n := lastNumber(text); n != "" {
		return answerOf(n), true
	}
	return Answer{}, false
}

func answerOf(s string) Answer {
	s = strings.TrimSpace(s)
	v, _ := Parse(s)
	return Answer{Text: s, Value: v}
}

func firstLine(s string) string {
	s = strings.TrimLeft(s, " \t:")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// lastBoxed returns the content of the last \boxed{...} or \fbox{...},
// braces balanced.
func lastBoxed(text string) (string, bool) {
	best := -1
	var prefix string
	for _, p := range []string{`\boxed{`, `\fbox{`, `\boxed {`} {
		if i := strings.LastIndex(text, p); i > best {
			best, prefix = i, p
		}
	}
	if best < 0 {
		return "", false
	}
	start := best + len(prefix)
	depth := 1
	for i := start; i < len(text); i++ {
		switch text[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return text[start:i], true
			}
		}
	}
	return "", false
}

var numberRE = regexp.MustCompile(`-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+`)

// lastNumber returns the last number written in s, "" for none.
func lastNumber(s string) string {
	all := numberRE.FindAllString(s, -1)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1]
}

// Parse reads an answer as a number: integers and decimals (with thousands
// separators), fractions a/b, LaTeX \frac{a}{b} (also \dfrac, \tfrac),
// mixed numbers "1 1/2", a leading sign, and decorations that do not change
// the value: $ signs, \$, a trailing %, \text{...} units, \left and
// \right, thin spaces, a trailing period. It reports false for anything
// else.
func Parse(s string) (*big.Rat, bool) {
	s = normalize(s)
	if s == "" {
		return nil, false
	}
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	} else if strings.HasPrefix(s, "+") {
		s = s[1:]
	}
	v, ok := parseUnsigned(s)
	if !ok {
		return nil, false
	}
	if neg {
		v.Neg(v)
	}
	return v, true
}

func parseUnsigned(s string) (*big.Rat, bool) {
	// \frac{a}{b}, after normalize turned every variant into \frac.
	if rest, ok := strings.CutPrefix(s, `\frac{`); ok {
		a, rest, ok := braced(rest)
		if !ok || !strings.HasPrefix(rest, "{") {
			return nil, false
		}
		b, rest, ok := braced(rest[1:])
		if !ok || rest != "" {
			return nil, false
		}
		return divide(a, b)
	}
	// A mixed number: "1 1/2".
	if i := strings.IndexByte(s, ' '); i > 0 {
		whole, ok1 := plainNumber(s[:i])
		frac, ok2 := parseUnsigned(s[i+1:])
		if ok1 && ok2 && whole.IsInt() && strings.Contains(s[i+1:], "/") {
			return whole.Add(whole, frac), true
		}
		return nil, false
	}
	if i := strings.IndexByte(s, '/'); i > 0 {
		return divide(s[:i], s[i+1:])
	}
	return plainNumber(s)
}

// braced splits "a}rest" at the brace closing the one already opened.
func braced(s string) (inner, rest string, ok bool) {
	depth := 1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return s[:i], s[i+1:], true
			}
		}
	}
	return "", "", false
}

func divide(a, b string) (*big.Rat, bool) {
	x, ok1 := Parse(a)
	y, ok2 := Parse(b)
	if !ok1 || !ok2 || y.Sign() == 0 {
		return nil, false
	}
	return x.Quo(x, y), true
}

// plainNumber reads digits with an optional decimal part; thousands
// separators must group by three.
func plainNumber(s string) (*big.Rat, bool) {
	if s == "" || len(s) > 200 {
		return nil, false
	}
	if strings.Contains(s, ",") {
		parts := strings.Split(s, ",")
		for i, p := range parts {
			digits := p
			if i == len(parts)-1 {
				digits, _, _ = strings.Cut(p, ".")
			}
			if (i > 0 && len(digits) != 3) || (i == 0 && (len(digits) == 0 || len(digits) > 3)) {
				return nil, false
			}
		}
		s = strings.ReplaceAll(s, ",", "")
	}
	dot := false
	digits := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.' && !dot:
			dot = true
		default:
			return nil, false
		}
	}
	if digits == 0 {
		return nil, false
	}
	v, ok := new(big.Rat).SetString(s)
	return v, ok
}

var (
	textRE  = regexp.MustCompile(`\\(?:text|textbf|mathrm|mbox)\s*\{[^{}]*\}`)
	spaceRE = regexp.MustCompile(`\s+`)
)

// normalize strips what decorates a number without changing it. \text{...}
// goes whole (a unit) when the answer is to be read as a number, else its
// content stays.
func normalize(s string) string { return decorate(s, true) }

func decorate(s string, number bool) string {
	s = strings.TrimSpace(s)
	for _, r := range []string{`\left`, `\right`, `\!`, `\,`, `\;`, `\:`, `\ `, `\$`, `\%`, `$`, `%`, `^\circ`, `^{\circ}`, `°`} {
		s = strings.ReplaceAll(s, r, "")
	}
	for _, f := range []string{`\dfrac`, `\tfrac`, `\cfrac`} {
		s = strings.ReplaceAll(s, f, `\frac`)
	}
	if number {
		s = textRE.ReplaceAllString(s, "")
	} else {
		s = textRE.ReplaceAllStringFunc(s, func(m string) string {
			return m[strings.IndexByte(m, '{')+1 : len(m)-1]
		})
	}
	s = strings.TrimSpace(spaceRE.ReplaceAllString(s, " "))
	s = strings.TrimRight(s, ".")
	// Wrapping braces or parentheses: {12}, (12).
	for len(s) >= 2 && (s[0] == '{' && s[len(s)-1] == '}' || s[0] == '(' && s[len(s)-1] == ')') {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	return s
}

// Equivalent reports whether two answers are the same: equal numbers when
// both are numbers (1/2, 0.5, \frac{1}{2} and 50% are not all equal: 50%
// reads as 50), else the same text once case, spaces and LaTeX decoration
// are set aside.
func Equivalent(a, b Answer) bool {
	if a.Value != nil && b.Value != nil {
		return a.Value.Cmp(b.Value) == 0
	}
	if a.Value != nil || b.Value != nil {
		return false
	}
	return canonical(a.Text) == canonical(b.Text)
}

func canonical(s string) string {
	s = strings.ToLower(decorate(s, false))
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}
