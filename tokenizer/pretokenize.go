package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// A pattern is the rule that cuts text into pieces before BPE, so that no
// token spans two words or a word and its punctuation. Tokenizers write it as
// a regex with a lookahead, which Go's regexp lacks, so each known regex is
// reproduced here by a hand-written scanner; tests pin the scanners to the
// regexes as Hugging Face tokenizers (Oniguruma) runs them.
type pattern uint8

const (
	// gpt2Pattern is GPT-2's, also RoBERTa's and most byte-level BPE
	// tokenizers', and the one braid trains with.
	gpt2Pattern pattern = iota
	// llama3Pattern is tiktoken's cl100k_base pattern, used by Llama 3:
	// case-insensitive contractions, numbers in runs of up to three digits.
	llama3Pattern
	// qwen2Pattern is llama3Pattern with single digits, used by Qwen2.
	qwen2Pattern
)

// patternRegex is each pattern's regex, as tokenizer.json files spell it.
var patternRegex = [...]string{
	gpt2Pattern:   `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
	llama3Pattern: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
	qwen2Pattern:  `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
}

// patternOf returns the pattern whose regex is re.
func patternOf(re string) (pattern, bool) {
	for p, s := range patternRegex {
		if s == re {
			return pattern(p), true
		}
	}
	return 0, false
}

// piece returns the length in bytes of the first piece of s, which is not
// empty. Every byte of s lands in some piece: invalid UTF-8 counts as one
// punctuation-like rune per byte, so BPE stays lossless on any bytes.
func (p pattern) piece(s string) int {
	switch p {
	case llama3Pattern:
		return llama3Piece(s, 3)
	case qwen2Pattern:
		return llama3Piece(s, 1)
	default:
		return gpt2Piece(s)
	}
}

// A class is the regexes' partition of runes: \p{L}, \p{N}, \s and the rest,
// [^\s\p{L}\p{N}].
type class uint8

const (
	other class = iota
	letter
	number
	space
)

// asciiClass is the class of each ASCII rune, the common case.
var asciiClass = func() (c [utf8.RuneSelf]class) {
	for r := range c {
		c[r] = classOfRune(rune(r))
	}
	return c
}()

func classOfRune(r rune) class {
	switch {
	case unicode.IsLetter(r):
		return letter
	case unicode.IsNumber(r):
		return number
	case unicode.IsSpace(r): // the Unicode White_Space set, as \s in Oniguruma
		return space
	}
	return other
}

// next decodes the first rune of s (not empty) and returns its class and
// size. An invalid byte is one rune of class other.
func next(s string) (rune, class, int) {
	if c := s[0]; c < utf8.RuneSelf {
		return rune(c), asciiClass[c], 1
	}
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError {
		return r, other, n
	}
	return r, classOfRune(r), n
}

// classAt returns the class of the rune at s[i:], and false at the end of s.
func classAt(s string, i int) (class, bool) {
	if i >= len(s) {
		return 0, false
	}
	_, c, _ := next(s[i:])
	return c, true
}

// run returns the end of the run of class c that starts at s[i:].
func run(s string, i int, c class) int {
	for i < len(s) {
		_, ci, n := next(s[i:])
		if ci != c {
			break
		}
		i += n
	}
	return i
}

// contraction returns the length of the English contraction ('s, 't, 're,
// 've, 'm, 'll, 'd) that s starts with, or 0. With fold, letters match in
// either case, as under the regex flag (?i), which also lets the long s 'ſ'
// match 's'.
func contraction(s string, fold bool) int {
	if len(s) < 2 || s[0] != '\'' {
		return 0
	}
	lower := func(c byte) byte {
		if fold && 'A' <= c && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	switch lower(s[1]) {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if len(s) >= 3 && lower(s[2]) == 'e' {
			return 3
		}
	case 'l':
		if len(s) >= 3 && lower(s[2]) == 'l' {
			return 3
		}
	case 0xC5: // the first byte of 'ſ' (U+017F)
		if fold && len(s) >= 3 && s[2] == 0xBF {
			return 3
		}
	}
	return 0
}

// spaceEnd handles the two whitespace alternatives both patterns end with,
// \s+(?!\S)|\s+, for s starting with whitespace that ends at end: a run
// followed by more text gives its last rune to the next piece (where it
// prefixes a word), unless that rune is all it has.
func spaceEnd(s string, end int) int {
	if end == len(s) {
		return end
	}
	_, size := utf8.DecodeLastRuneInString(s[:end])
	if end-size > 0 {
		return end - size
	}
	return end
}

// gpt2Piece scans the first piece of s by GPT-2's regex:
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
func gpt2Piece(s string) int {
	if n := contraction(s, false); n > 0 {
		return n
	}
	r, c, size := next(s)
	if c != space {
		return run(s, size, c)
	}
	// A single ' ' joins the letters, digits or other runes after it.
	if r == ' ' {
		if c1, ok := classAt(s, 1); ok && c1 != space {
			return run(s, 1, c1)
		}
	}
	return spaceEnd(s, run(s, size, space))
}

// llama3Piece scans the first piece of s by the Llama 3 regex, or Qwen2's
// when maxDigits is 1:
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//	 ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func llama3Piece(s string, maxDigits int) int {
	if n := contraction(s, true); n > 0 {
		return n
	}
	r, c, size := next(s)
	switch c {
	case letter:
		return run(s, size, letter)
	case number:
		i := size
		for d := 1; d < maxDigits && i < len(s); d++ {
			_, ci, n := next(s[i:])
			if ci != number {
				break
			}
			i += n
		}
		return i
	}
	// Any one rune but a newline, digit or letter joins the letters after it.
	if r != '\r' && r != '\n' {
		if c1, ok := classAt(s, size); ok && c1 == letter {
			return run(s, size, letter)
		}
	}
	// Punctuation, after an optional ' ', takes the newlines that follow it.
	start := -1
	if c == other {
		start = 0
	} else if r == ' ' {
		if c1, ok := classAt(s, 1); ok && c1 == other {
			start = 1
		}
	}
	if start >= 0 {
		i := run(s, start, other)
		for i < len(s) && (s[i] == '\r' || s[i] == '\n') {
			i++
		}
		return i
	}
	// Whitespace holding newlines ends after its last newline.
	end, newline := 0, -1
	for end < len(s) {
		r, ci, n := next(s[end:])
		if ci != space {
			break
		}
		if r == '\r' || r == '\n' {
			newline = end
		}
		end += n
	}
	if newline >= 0 {
		return newline + 1
	}
	return spaceEnd(s, end)
}
