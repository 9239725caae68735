package math

import (
	"math/big"
	"testing"
)

func TestExtract(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{`So the total is \boxed{42}.`, "42"},
		{`First \boxed{1}, then correcting: \boxed{\frac{3}{4}}`, `\frac{3}{4}`},
		{`\boxed{\frac{\sqrt{2}}{2}}`, `\frac{\sqrt{2}}{2}`},
		{"Natalia sold 48/2 = 24 clips in May.\n#### 72", "72"},
		{"The answer is 1,234.", "1,234"},
		{"Answer: $18", "$18"},
		{"She has 3 apples and 5 pears, so 8 fruits", "8"},
		{"The answer is that she paid 16 dollars in the end, after all the discounts were applied.", "16"},
		{"no numbers here", ""},
	} {
		a, ok := Extract(tc.text)
		if a.Text != tc.want || ok != (tc.want != "") {
			t.Errorf("Extract(%q) = %q, %v; want %q", tc.text, a.Text, ok, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want string // a rational, or "" for not a number
	}{
		{"42", "42"}, {"-7", "-7"}, {"+3", "3"}, {"3.50", "7/2"}, {".5", "1/2"}, {"1,234,567", "1234567"},
		{"1,23", ""}, {"$18.00", "18"}, {`\$5`, "5"}, {"50%", "50"}, {`50\%`, "50"},
		{`\frac{1}{2}`, "1/2"}, {`\dfrac{3}{4}`, "3/4"}, {`-\frac{10}{4}`, "-5/2"}, {"3/4", "3/4"},
		{"1 1/2", "3/2"}, {`12\text{ cm}`, "12"}, {`\left(7\right)`, "7"}, {"{9}", "9"}, {"90^\\circ", "90"},
		{"x+1", ""}, {`\sqrt{2}`, ""}, {"1/0", ""}, {"", ""}, {"1.2.3", ""}, {"12.", "12"},
	} {
		v, ok := Parse(tc.s)
		if tc.want == "" {
			if ok {
				t.Errorf("Parse(%q) = %v, want not a number", tc.s, v)
			}
			continue
		}
		want, _ := new(big.Rat).SetString(tc.want)
		if !ok || v.Cmp(want) != 0 {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.s, v, ok, want)
		}
	}
}

func TestEquivalent(t *testing.T) {
	same := [][2]string{{"0.5", `\frac{1}{2}`}, {"1/2", `\dfrac{1}{2}`}, {"1,000", "1000"}, {"$12", "12.00"}, {`\text{Paris}`, "paris"}, {"x + 1", "X+1"}}
	differ := [][2]string{{"0.5", "50%"}, {"2", "3"}, {"12", "twelve"}, {"x+1", "x+2"}}
	for _, p := range same {
		if !Equivalent(answerOf(p[0]), answerOf(p[1])) {
			t.Errorf("%q and %q should be one answer", p[0], p[1])
		}
	}
	for _, p := range differ {
		if Equivalent(answerOf(p[0]), answerOf(p[1])) {
			t.Errorf("%q and %q should differ", p[0], p[1])
		}
	}
}

func FuzzExtract(f *testing.F) {
	for _, s := range []string{`\boxed{\frac{1}{2}}`, "#### 72", "answer is 1,234", `\boxed{{{`, `\frac{`, "1 1/", "-", "\\frac{1}{0}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, _ := Extract(s)
		_ = Equivalent(a, a)
		if v, ok := Parse(s); ok && v == nil {
			t.Fatal("a number without a value")
		}
	})
}
