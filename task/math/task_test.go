package math

import (
	"strings"
	"testing"
)

func TestTaskReadsAndJudges(t *testing.T) {
	var tk Task
	q, err := tk.Parse("What is 15% of 80?")
	if err != nil || q.Text != "What is 15% of 80?" || q.Answer != "" {
		t.Fatalf("a question: %+v, %v", q, err)
	}
	if ok, known := tk.Verify(q, "12"); known || ok {
		t.Error("an answer was judged without a reference")
	}
	g, err := tk.Parse(`{"question": "3*4?", "answer": "3 times 4 #### 12"}`)
	if err != nil || g.Answer != "12" {
		t.Fatalf("a GSM8K line: %+v, %v", g, err)
	}
	back, err := tk.Parse(string(tk.Encode(g)))
	if err != nil || back.Text != g.Text || back.Answer != g.Answer {
		t.Errorf("encode then parse: %+v, %v", back, err)
	}
	for _, bad := range []string{"", "  ", `{"question": "no answer"}`, `{"x": 1}`} {
		if _, err := tk.Parse(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if tk.Class(g, "0.5") != tk.Class(g, `\frac{1}{2}`) || tk.Class(g, "x + 1") != tk.Class(g, "X+1") || tk.Class(g, "") != "" {
		t.Error("equal values are not one class")
	}
	// The prompt names \boxed{} itself: an answer is found only in what
	// the model wrote after it.
	prompt := tk.Prompt(g)
	if got := tk.Extract(g, prompt+"so \\boxed{12}"); got != "12" {
		t.Errorf("extract after the prompt: %q", got)
	}
	if got := tk.Extract(g, prompt+"I am not sure."); got != "" {
		t.Errorf("extract from the prompt alone: %q", got)
	}
	d, err := tk.Perturb(g, "distractors", 3)
	if err != nil || !strings.HasPrefix(d.Text, g.Text) || d.Text == g.Text || d.Answer != g.Answer {
		t.Errorf("perturbed: %+v, %v", d, err)
	}
	if _, err := tk.Perturb(g, "typos", 3); err == nil {
		t.Error("an unknown perturbation was accepted")
	}
}
