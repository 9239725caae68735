package countdown

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

var standard = Problem{Numbers: []int{22, 26, 31, 53}, Target: 27}

func TestVerifyAnswerAccepts(t *testing.T) {
	for _, answer := range []string{
		"26+(53/(31+22))",
		"26+53/(31+22)",
		" 26 + 31 / ( 53 - 22 ) ",
		"(53-22)/31+26",
		"26+31÷(53−22)",
		"53/(22+31)+26",
	} {
		if err := VerifyAnswer(standard, answer); err != nil {
			t.Errorf("%q rejected: %v", answer, err)
		}
	}
	// Rational intermediates and negative ones are exact arithmetic too.
	if err := VerifyAnswer(Problem{Numbers: []int{1, 3, 3, 9}, Target: 10}, "(1/3)*3+9"); err != nil {
		t.Errorf("rational intermediate rejected: %v", err)
	}
	if err := VerifyAnswer(Problem{Numbers: []int{2, 5, 20}, Target: 17}, "20-(5-2)"); err != nil {
		t.Errorf("rejected: %v", err)
	}
	if err := VerifyAnswer(Problem{Numbers: []int{2, 5, 20}, Target: 17}, "(2-5)+20"); err != nil {
		t.Errorf("negative intermediate rejected: %v", err)
	}
}

func TestVerifyAnswerRejectionReasons(t *testing.T) {
	for _, tc := range []struct {
		answer string
		reason string // a fragment of the error
	}{
		{"", "empty answer"},
		{"   ", "empty answer"},
		{strings.Repeat("1", 1001), "longer than 1000"},
		{"26+53/(31+22", "'(' is never closed at position 7"},
		{"26+53/(31+22))", "unmatched ')'"},
		{"26+53)/(31+22", "unmatched ')'"},
		{"-26+53/(31+22)", "no unary -"},
		{"26+(-53)/(31+22)", "no unary -"},
		{"*26+53/(31+22)", "has no left operand"},
		{"26+53/(31+22)+", "answer ended"},
		{"26+53/()", "found ')'"},
		{"26+53/(31+22) x", "unexpected 'x'"},
		{"26+53/(31+22)=27", "unexpected '='"},
		{"26+53/(31+22)(1)", "unexpected '('"},
		{"26+53^1", "unexpected '^'"},
		{"26.0+53/(31+22)", "only whole numbers"},
		{"1234567890123+1", "number is too long"},
		{strings.Repeat("(", 70) + "1" + strings.Repeat(")", 70), "nested deeper than 64"},
		{"26+53/(31+21)", "21 is not one of the numbers [22, 26, 31, 53]"},
		{"26+53/(31+22)+22-22", "22 is used more often than it is given"},
		{"26+53/31", "unused: [22]"},
		{"26+31+22", "unused: [53]"},
		{"26+53/(31-31+22-22)", "31 is used more often"},
		{"26*53+31-22", "equals 1387, not the target 27"},
		{"26+31/53*22", "equals 2060/53, not the target 27"},
	} {
		err := VerifyAnswer(standard, tc.answer)
		if err == nil {
			t.Errorf("%q accepted", tc.answer)
			continue
		}
		if !errors.Is(err, ErrInvalidAnswer) {
			t.Errorf("%q: error %v does not wrap ErrInvalidAnswer", tc.answer, err)
		}
		if !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%q: error %q does not say %q", tc.answer, err, tc.reason)
		}
	}
	// Division by zero needs the right numbers to happen.
	err := VerifyAnswer(Problem{Numbers: []int{5, 5, 3}, Target: 3}, "3/(5-5)")
	if err == nil || !strings.Contains(err.Error(), "division by zero") {
		t.Errorf("3/(5-5): %v", err)
	}
}

func TestExprStringUsesMinimalParentheses(t *testing.T) {
	for in, want := range map[string]string{
		"(1+2)+3":     "1+2+3",
		"1+(2+3)":     "1+2+3",
		"1-(2-3)":     "1-(2-3)",
		"1-(2+3)":     "1-(2+3)",
		"(1-2)-3":     "1-2-3",
		"(1*2)/3":     "1*2/3",
		"1/(2*3)":     "1/(2*3)",
		"1/(2/3)":     "1/(2/3)",
		"(1+2)*3":     "(1+2)*3",
		"1+(2*3)":     "1+2*3",
		"((((7))))":   "7",
		"(4-1)*(9-3)": "(4-1)*(9-3)",
	} {
		e, err := ParseExpr(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := e.String(); got != want {
			t.Errorf("String(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestPathExpression(t *testing.T) {
	path := Solution{{A: 53, B: 22, Sym: '-', Result: 31}, {A: 31, B: 31, Sym: '/', Result: 1}, {A: 26, B: 1, Sym: '+', Result: 27}}
	e, err := PathExpression(standard.Numbers, path)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.String(); got != "26+31/(53-22)" {
		t.Errorf("PathExpression = %s, want 26+31/(53-22)", got)
	}
	for name, bad := range map[string]Solution{
		"number not given":  {{A: 53, B: 21, Sym: '-', Result: 32}},
		"wrong arithmetic":  {{A: 53, B: 22, Sym: '-', Result: 30}},
		"negative result":   {{A: 22, B: 53, Sym: '-', Result: -31}},
		"inexact division":  {{A: 53, B: 22, Sym: '/', Result: 2}},
		"unknown operator":  {{A: 53, B: 22, Sym: '%', Result: 9}},
		"number used twice": {{A: 53, B: 53, Sym: '-', Result: 0}},
		"numbers left over": {{A: 53, B: 22, Sym: '-', Result: 31}},
	} {
		if e, err := PathExpression(standard.Numbers, bad); err == nil {
			t.Errorf("%s: path %v accepted as %s", name, bad, e)
		}
	}
}

func TestCanonicalIgnoresOrderAndGrouping(t *testing.T) {
	same := [][2]string{
		{"4*1*(9-3)", "1*(4*(9-3))"},
		{"1+9*3-4", "1+(9*3-4)"},
		{"(9-3)*4", "4*(9-3)"},
	}
	for _, pair := range same {
		a, _ := ParseExpr(pair[0])
		b, _ := ParseExpr(pair[1])
		if a.canonical() != b.canonical() {
			t.Errorf("%s and %s have different canonical forms %s, %s", pair[0], pair[1], a.canonical(), b.canonical())
		}
	}
	a, _ := ParseExpr("4-(9-3)")
	b, _ := ParseExpr("4-9-3")
	if a.canonical() == b.canonical() {
		t.Errorf("4-(9-3) and 4-9-3 share a canonical form")
	}
}

// A number written any way but in plain ASCII digits is refused by name,
// not misread or reported as a stray byte.
func TestVerifyAnswerRefusesNumbersThatAreNotPlain(t *testing.T) {
	for _, tc := range []struct {
		name, answer, reason string
	}{
		{"Arabic-Indic digits", "26+53/(31+٢٢)", `"٢٢" is not a plain number: Countdown numbers are whole numbers written in ASCII digits at position 11`},
		{"fullwidth digits", "26+53/(31+２２)", `"２２" is not a plain number`},
		{"superscript", "26+53³/(31+22)", `"53³" is not a plain number: Countdown numbers are whole numbers written in ASCII digits at position 4`},
		{"superscript after a group", "26+53/(31+22)³", `"³" is not a plain number`},
		{"circled digit", "26+53/(31+⑳)", `"⑳" is not a plain number`},
		{"exponent", "1e3", `"1e3" is not a plain number`},
		{"digit then letter", "26+53/(31+22x)", `"22x" is not a plain number`},
		{"zero-width space inside", "26+53/(31+2\u200b2)", `"2\u200b2" is not a plain number`},
		{"other character named whole", "26+53/(31+22)→27", "unexpected '→' after a complete expression"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyAnswer(standard, tc.answer)
			if !errors.Is(err, ErrInvalidAnswer) || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("VerifyAnswer(%q) = %v; want an invalid answer that says %s", tc.answer, err, tc.reason)
			}
		})
	}
}

func FuzzParseExpr(f *testing.F) {
	for _, s := range []string{"26+(53/(31+22))", "1-(2-3)*4/5", "((7))", "-1", "1++2", "(", ")", "9999999999999", "2×3÷1−0", "5³+٢٢", "1e3", "2\u200b2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseExpr(s)
		if err != nil {
			var ae *AnswerError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v is not an *AnswerError", err)
			}
			return
		}
		// Every number read is a plain number in the answer, and every
		// plain number in it is read.
		runs, ok := plainRuns(s)
		leaves := e.Leaves()
		slices.Sort(runs)
		slices.Sort(leaves)
		if !ok || !slices.Equal(runs, leaves) {
			t.Fatalf("ParseExpr(%q) = %s, but the plain numbers in it are %v (all plain: %v)", s, e, runs, ok)
		}
		// Printing and re-parsing keeps the numbers and the value.
		again, err := ParseExpr(e.String())
		if err != nil {
			t.Fatalf("String() = %q does not parse: %v", e, err)
		}
		v1, err1 := e.Eval()
		v2, err2 := again.Eval()
		if (err1 == nil) != (err2 == nil) || (err1 == nil && v1.Cmp(v2) != 0) {
			t.Fatalf("%q and its rendering %q evaluate differently", s, e)
		}
		if a, b := e.Leaves(), again.Leaves(); len(a) != len(b) {
			t.Fatalf("%q and %q use different numbers", s, e)
		}
	})
}
