package countdown

import (
	"errors"
	"slices"
	"testing"
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

func FuzzParseText(f *testing.F) {
	f.Add("27: 22 26 31 53")
	f.Add("Using the numbers 22, 26, 31, 53, create an equation that equals 27")
	f.Add("= 3 4")
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
	})
}
