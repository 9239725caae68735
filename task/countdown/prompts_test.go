package countdown

import (
	"strings"
	"testing"
)

// Any prompt style ParsePrompts accepts reads back from its String as
// itself; what it refuses, it refuses with a message naming the option.
func FuzzParsePrompts(f *testing.F) {
	for _, s := range []string{"", "braid", "apr", "apr,sub-call-budget=10", "apr,token-budget=4096", "braid,token-budget=1,sub-call-budget=2", "apr,x", "apr,token-budget=-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrompts(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "countdown: ") {
				t.Errorf("%q: an error %q not naming the task", s, err)
			}
			return
		}
		again, err := ParsePrompts(p.String())
		if err != nil || again != p {
			t.Errorf("%q parses as %+v, which reads back from %q as %+v (%v)", s, p, p.String(), again, err)
		}
	})
}
