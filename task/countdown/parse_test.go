package countdown

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestParseText(t *testing.T) {
	for text, want := range map[string]Problem{
		"27: 22 26 31 53": {Target: 27, Numbers: []int{22, 26, 31, 53}},
		"Using the numbers 22, 26, 31, 53, create an equation that equals 27":    {Target: 27, Numbers: []int{22, 26, 31, 53}},
		"Using the numbers [22, 26, 31, 53], create an equation that equals 27.": {Target: 27, Numbers: []int{22, 26, 31, 53}},
		"make 24 from 4 9 3 1":                     {Target: 24, Numbers: []int{4, 9, 3, 1}},
		"Numbers: 4, 9, 3, 1. Target: 24":          {Target: 24, Numbers: []int{4, 9, 3, 1}},
		"Can you reach 100 with 25, 50, 75 and 2?": {Target: 100, Numbers: []int{25, 50, 75, 2}},
		"4 9 3 1 = 24":                             {Target: 24, Numbers: []int{4, 9, 3, 1}},
	} {
		got, err := ParseText(text)
		if err != nil || got.Target != want.Target || !slices.Equal(got.Numbers, want.Numbers) {
			t.Errorf("ParseText(%q) = %v, %v; want %v", text, got, err, want)
		}
	}
	for _, text := range []string{
		"What is the capital of France?",
		"22 26 31 53",                // no target named
		"make 27 from 22",            // one number
		"make 27 from 1 2 3 4 5 6 7", // seven
		"make 27 from 2.5 3 4",
		"Using 1, 2, 3, 4 make an equation that equals 27.5",
		"make 27 from 0 3 4",
		"make 99999999999999999999999 from 1 2",
	} {
		if p, err := ParseText(text); !errors.Is(err, ErrNotAProblem) {
			t.Errorf("ParseText(%q) = %v, %v; want ErrNotAProblem", text, p, err)
		}
	}
}

func TestParseTextKeepsProse(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       Problem
	}{
		{"and before the last number", "Using the numbers 22, 26, 31, and 53, make 27.", Problem{Target: 27, Numbers: []int{22, 26, 31, 53}}},
		{"sentence-final period", "Using the numbers 22, 26, 31, 53, create an equation that equals 27.", Problem{Target: 27, Numbers: []int{22, 26, 31, 53}}},
		{"period after a number", "Numbers: 4, 9, 3, 1. Target: 24.", Problem{Target: 24, Numbers: []int{4, 9, 3, 1}}},
		{"dash between words", "Make 24 from 4, 9, 3 and 1 - any order, all of them.", Problem{Target: 24, Numbers: []int{4, 9, 3, 1}}},
		{"non-ASCII prose", "Zahlen 4, 9, 3, 1 – Ziel = 24", Problem{Target: 24, Numbers: []int{4, 9, 3, 1}}},
		{"brackets and leading zero", "27: [022, 26, 31, 53]", Problem{Target: 27, Numbers: []int{22, 26, 31, 53}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseText(tc.text)
			if err != nil || got.Target != tc.want.Target || !slices.Equal(got.Numbers, tc.want.Numbers) {
				t.Errorf("ParseText(%q) = %v, %v; want %v", tc.text, got, err, tc.want)
			}
		})
	}
}

// Whatever is not plainly a number is refused by name, never read as the
// ASCII digits in it or skipped.
func TestParseTextRefusesNumbersThatAreNotPlain(t *testing.T) {
	for _, tc := range []struct {
		name, text, offending string
	}{
		{"superscript", "27: 5³ 22 26 31", "5³"},
		{"lone superscript", "27: 22 26 31 ²", "²"},
		{"minus sign", "make 27 from -53 22 26 31", "-53"},
		{"typographic minus", "make 27 from 22 26 31 −53", "−53"},
		{"plus sign", "27: +22 26 31 53", "+22"},
		{"negative target", "Using 22, 26, 31, 53 make an equation that equals -27", "-27"},
		{"exponent", "make 27 from 1e3 22 26", "1e3"},
		{"caret exponent", "make 27 from 5^3 22 26", "5^3"},
		{"decimal", "make 27 from 2.5 3 4", "2.5"},
		{"decimal target", "Using 1, 2, 3, 4 make an equation that equals 27.5", "27.5"},
		{"leading decimal point", "make 27 from .5 3 4", ".5"},
		{"digit then letter", "27: 5x 22 26", "5x"},
		{"letter then digit", "27: x5 22 26", "x5"},
		{"ordinal", "27: 22 26 31 and the 4th 53", "4th"},
		{"circled digit", "27: ⑤ 22 26 31", "⑤"},
		{"Arabic-Indic digits", "27: ٢٢ 26 31 53", "٢٢"},
		{"Arabic-Indic target", "make ٢٧ from 22 26 31 53", "٢٧"},
		{"fullwidth digits", "27: ２２ 26 31 53", "２２"},
		{"vulgar fraction", "27: ½ 22 26", "½"},
		{"Roman numeral", "27: Ⅻ 22 26", "Ⅻ"},
		{"keycap", "27: 5\ufe0f\u20e3 22 26", "5\ufe0f\u20e3"},
		{"zero-width space inside", "27: 2\u200b2 26 31", "2\u200b2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseText(tc.text)
			if !errors.Is(err, ErrNotAProblem) {
				t.Fatalf("ParseText(%q) = %v, %v; want ErrNotAProblem", tc.text, p, err)
			}
			if want := strconv.Quote(tc.offending) + " is not a plain number"; !strings.Contains(err.Error(), want) {
				t.Errorf("ParseText(%q): %v; want it to say %s", tc.text, err, want)
			}
		})
	}
}

func TestParseNumber(t *testing.T) {
	for _, tc := range []struct {
		name, s string
		want    int // -1: refused
	}{
		{"plain", "27", 27},
		{"leading zero", "027", 27},
		{"plus sign", "+27", -1},
		{"minus sign", "-27", -1},
		{"space", " 27", -1},
		{"empty", "", -1},
		{"Arabic-Indic", "٢٧", -1},
		{"too large", "99999999999999999999999", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := ParseNumber(tc.s)
			if tc.want < 0 && err == nil || tc.want >= 0 && (err != nil || n != tc.want) {
				t.Errorf("ParseNumber(%q) = %d, %v; want %d", tc.s, n, err, tc.want)
			}
		})
	}
}

// plainRuns returns the values of the maximal runs of ASCII digits in s,
// and whether all of them are plain numbers: no letter, numeric character,
// combining mark or decimal point against them, and no numeric character
// outside ASCII anywhere in s. It is the fuzz targets' oracle for what a
// parser that accepts s may have read from it.
func plainRuns(s string) ([]int, bool) {
	if strings.ContainsFunc(s, func(r rune) bool { return r >= utf8.RuneSelf && unicode.IsNumber(r) }) {
		return nil, false
	}
	apart := func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) && !unicode.IsMark(r) }
	var vals []int
	for i := 0; i < len(s); {
		if s[i] < '0' || s[i] > '9' {
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		before, _ := utf8.DecodeLastRuneInString(s[:i])
		after, _ := utf8.DecodeRuneInString(s[j:])
		n, err := strconv.Atoi(s[i:j])
		if err != nil || !apart(before) || !apart(after) || before == '.' || after == '.' && j+1 < len(s) && s[j+1] >= '0' && s[j+1] <= '9' {
			return nil, false
		}
		vals = append(vals, n)
		i = j
	}
	return vals, true
}

func FuzzParseText(f *testing.F) {
	for _, s := range []string{
		"27: 22 26 31 53",
		"Using the numbers 22, 26, 31, 53, create an equation that equals 27",
		"Using the numbers 22, 26, 31, and 53, make 27.",
		"= 3 4",
		"27: 5³ 22 26", "make 27 from -53 22", "make 27 from 1e3 22", "27: ⑤ ٢٢ 26 31", "27: 2.5 3 4", "27: 2\u200b2 26",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		p, err := ParseText(text)
		if err != nil {
			if !errors.Is(err, ErrNotAProblem) {
				t.Fatalf("an error that is not ErrNotAProblem: %v", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("ParseText(%q) = %v, which is invalid: %v", text, p, err)
		}
		runs, ok := plainRuns(text)
		if !ok {
			t.Fatalf("ParseText(%q) = %v, but the text holds a number that is not plain", text, p)
		}
		read := append([]int{p.Target}, p.Numbers...)
		slices.Sort(read)
		slices.Sort(runs)
		if !slices.Equal(read, runs) {
			t.Fatalf("ParseText(%q) = %v, but the plain numbers in it are %v", text, p, runs)
		}
		for i, r := range text {
			if next := i + utf8.RuneLen(r); strings.ContainsRune(signs, r) && next < len(text) && text[next] >= '0' && text[next] <= '9' {
				t.Fatalf("ParseText(%q) = %v, reading a signed number as unsigned", text, p)
			}
		}
	})
}
