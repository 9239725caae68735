package soak

import (
	"fmt"
	"strings"
	"sync"
)

// tally counts outcomes by kind, keeps the first few failures, and looks
// for stack traces in every body.
type tally struct {
	kinds []requestKind
	mu    sync.Mutex
	count map[string]map[string]int // kind, then outcome label
	fails []string
	leaks int
	leak  string
}

func newTally(kinds []requestKind) *tally {
	t := &tally{kinds: kinds, count: map[string]map[string]int{}}
	for _, k := range kinds {
		t.count[k.name] = map[string]int{}
	}
	return t
}

func (t *tally) add(kind string, o outcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.count[kind][o.label]++
	if i := stackTrace(o.detail); i >= 0 {
		t.leaks++
		if t.leak == "" {
			t.leak = fmt.Sprintf("%s: %.200s", kind, o.detail[max(0, i-80):])
		}
	}
	for _, k := range t.kinds {
		if k.name == kind && k.judge(o.label) == bad && len(t.fails) < 10 {
			t.fails = append(t.fails, fmt.Sprintf("%s: %s: %.300s", kind, o.label, strings.TrimSpace(o.detail)))
		}
	}
}

// stackTrace is where a Go stack trace starts in s, or -1.
func stackTrace(s string) int {
	for _, m := range []string{"goroutine ", ".go:"} {
		if i := strings.Index(s, m); i >= 0 {
			return i
		}
	}
	return -1
}

// line is the progress: requests by check and verdict, and by kind.
func (t *tally) line() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	total, by := 0, [4]int{}
	var kinds []string
	for _, k := range t.kinds {
		n := 0
		for l, c := range t.count[k.name] {
			n += c
			by[k.judge(l)] += c
		}
		total += n
		if n > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d", k.name, n))
		}
	}
	return fmt.Sprintf("%d requests (%d good, %d 429, %d bad, %d other): %s", total, by[good], by[rateLimited], by[bad], by[neutral], strings.Join(kinds, ", "))
}

func (t *tally) report() ([]KindReport, []string, int, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []KindReport
	for _, k := range t.kinds {
		r := KindReport{Kind: k.name, Check: k.check, Outcomes: t.count[k.name]}
		for l, c := range r.Outcomes {
			r.Requests += c
			switch k.judge(l) {
			case good:
				r.Good += c
			case rateLimited:
				r.RateLimited += c
			case bad:
				r.Bad += c
			}
		}
		out = append(out, r)
	}
	return out, t.fails, t.leaks, t.leak
}
