package countdown

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// roundTrip generates traces for n test problems and checks that every
// sequence parses and verifies, and that the parsed outcome is the
// generator's.
func roundTrip(t *testing.T, format Mode, n int) (solved int) {
	t.Helper()
	cfg := TraceConfig{Format: format}
	i := 0
	for p := range Problems(17, Test) {
		if i == n {
			break
		}
		rec, err := cfg.Generate(p, 17, i)
		i++
		if err != nil {
			t.Fatal(err)
		}
		if rec.Solved {
			solved++
			if err := VerifyAnswer(p, rec.Answer); err != nil {
				t.Fatalf("%v: answer %s: %v", p, rec.Answer, err)
			}
		}
		tr, err := VerifyTrace(p, rec.Text)
		if err != nil {
			t.Fatalf("%v (%s, %+v): %v\n%s", p, format, rec.Search, err, rec.Text)
		}
		if tr.Solved() != rec.Solved {
			t.Fatalf("%v: parsed solved=%v, generator says %v\n%s", p, tr.Solved(), rec.Solved, rec.Text)
		}
		if rec.Solved {
			e, err := PathExpression(p.Numbers, tr.Solution)
			if err != nil || VerifyAnswer(p, e.String()) != nil {
				t.Fatalf("%v: parsed solution %v does not verify: %v", p, tr.Solution, err)
			}
			if tr.End != EndGoal {
				t.Fatalf("%v: solved trace ends with %s", p, tr.End)
			}
		} else if tr.End != EndExhausted {
			t.Fatalf("%v: unsolved trace ends with %s", p, tr.End)
		}
		for _, s := range rec.Sequences {
			st, err := VerifyTrace(p, s.Prompt+s.Completion)
			if err != nil {
				t.Fatalf("%v: sequence %s/%d: %v\n%s%s", p, s.Thread, s.Call, err, s.Prompt, s.Completion)
			}
			if st.Start != s.Thread {
				t.Fatalf("%v: sequence of thread %s starts at #%s", p, s.Thread, st.Start)
			}
			// A prompt is itself a valid, unfinished trace prefix.
			if _, err := VerifyTrace(p, s.Prompt); err != nil {
				t.Fatalf("%v: prompt of %s/%d: %v", p, s.Thread, s.Call, err)
			}
		}
		if format == ModeParallel {
			checkRollout(t, p, rec.Tree)
		}
	}
	return solved
}

// checkRollout checks the spawn/join structure: each spawn block names the
// children that ran, each resumed call extends the call before it minus the
// spawn block, and the join reports each child's outcome.
func checkRollout(t *testing.T, p Problem, c *Call) {
	t.Helper()
	for k, kids := range c.Spawns {
		tr, err := VerifyTrace(p, c.Calls[k])
		if err != nil {
			t.Fatal(err)
		}
		if tr.End != EndSpawn || len(tr.Spawns) != 1 {
			t.Fatalf("call %d of #%s ends with %s", k, c.Node, tr.End)
		}
		nodes := tr.Spawns[0].Nodes
		if len(nodes) != len(kids) {
			t.Fatalf("spawn names %d children, %d ran", len(nodes), len(kids))
		}
		for i, kid := range kids {
			if kid.Node != nodes[i] || kid.Level != c.Level+1 {
				t.Fatalf("child %d runs #%s at level %d, spawn says #%s", i, kid.Node, kid.Level, nodes[i])
			}
			if !strings.HasPrefix(kid.Calls[0], "Moving to Node #"+kid.Node+"\nCurrent State: ") {
				t.Fatalf("child #%s does not start from its node alone:\n%s", kid.Node, kid.Calls[0])
			}
		}
		before, _, _ := strings.Cut(c.Calls[k], "<Calling Sub Searches>\n")
		if !strings.HasPrefix(c.Calls[k+1], before+"<Sub Searches>\n") {
			t.Fatalf("call %d of #%s does not resume call %d with a join", k+1, c.Node, k)
		}
		next, err := VerifyTrace(p, c.Calls[k+1])
		if err != nil {
			t.Fatal(err)
		}
		join := next.Joins[len(next.Joins)-1]
		for i, kid := range kids {
			if join.Results[i].Solved != kid.Solved {
				t.Fatalf("join reports child %d solved=%v, it ran solved=%v", i, join.Results[i].Solved, kid.Solved)
			}
		}
		for _, kid := range kids {
			checkRollout(t, p, kid)
		}
	}
}

func TestRoundTripSerial(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	solved := roundTrip(t, ModeSerial, n)
	// The public SoS+ generator (beam 1..5, mult heuristic) reaches the goal
	// on about 49% of problems.
	if rate := float64(solved) / float64(n); rate < 0.44 || rate > 0.54 {
		t.Errorf("serial traces reach the goal on %.1f%%, the public generator about 49%%", 100*rate)
	}
}

func TestRoundTripParallel(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	solved := roundTrip(t, ModeParallel, n)
	// APR's published script (beam 1..10, child beam ..15, p=0.9) reaches
	// the goal on about 70%.
	if rate := float64(solved) / float64(n); rate < 0.60 || rate > 0.75 {
		t.Errorf("parallel traces reach the goal on %.1f%%, the public generator about 70%%", 100*rate)
	}
}

func TestRoundTripDirect(t *testing.T) {
	if solved := roundTrip(t, ModeDirect, 2000); solved != 2000 {
		t.Errorf("direct traces solve %d of 2000", solved)
	}
}

func TestDirectTraceOfAnUnsolvableProblem(t *testing.T) {
	p := Problem{Numbers: []int{1, 1, 1, 1}, Target: 99}
	rec, err := TraceConfig{Format: ModeDirect}.Generate(p, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := VerifyTrace(p, rec.Text)
	if err != nil || rec.Solved || tr.End != EndExhausted {
		t.Fatalf("solved=%v end=%v err=%v\n%s", rec.Solved, tr.End, err, rec.Text)
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	for _, f := range []Mode{ModeSerial, ModeParallel, ModeDirect} {
		cfg := TraceConfig{Format: f, Heuristic: "random", Prune: "random"}
		if f != ModeSerial {
			cfg.Prune = ""
		}
		a, err := cfg.Generate(standard, 3, 9)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := cfg.Generate(standard, 3, 9)
		if a.Text != b.Text || a.Search != b.Search {
			t.Fatalf("%s: two runs with the same seed differ", f)
		}
		differ := false
		for i := range 20 {
			c, _ := cfg.Generate(standard, 3, 10+i)
			differ = differ || c.Text != a.Text
		}
		if !differ {
			t.Fatalf("%s: 20 other items all give the same trace", f)
		}
	}
}

func TestSerialVariants(t *testing.T) {
	// Both heuristics and both prunings, with and without sub searches,
	// produce verifiable traces.
	for _, h := range []Heuristic{MultHeuristic, SumHeuristic} {
		for _, th := range []float64{0, float64(standard.Target)} {
			for _, prom := range []float64{0, 0.5, 1} {
				for seed := range 30 {
					cfg := SerialConfig{Beam: 1 + seed%5, Threshold: th, Heuristic: h, Promising: prom}
					p := take(uint64(seed), Train, 1)[0]
					tr, err := GenerateSerial(p, cfg, NewRand(uint64(seed), 5, 0))
					if err != nil {
						t.Fatal(err)
					}
					parsed, err := VerifyTrace(p, tr.Text)
					if err != nil {
						t.Fatalf("%+v on %v: %v\n%s", cfg, p, err, tr.Text)
					}
					if parsed.Solved() != tr.Solved {
						t.Fatalf("%+v on %v: parsed solved=%v", cfg, p, parsed.Solved())
					}
					if prom == 1 && strings.Contains(tr.Text, "Generated Node") && !strings.Contains(tr.Text, "Start Sub Search at level 1") {
						t.Fatalf("promising=1 wrote no sub search:\n%s", tr.Text)
					}
					if prom == 0 && strings.Contains(tr.Text, "Sub Search") {
						t.Fatalf("promising=0 wrote a sub search")
					}
				}
			}
		}
	}
}

// validSerial is a small hand-checked serial trace for 27: 22 26 31 53.
const validSerial = `Current State: 27:[22, 26, 31, 53], Operations: []
Exploring Operation: 53-22=31, Resulting Numbers: [26, 31, 31]
Generated Node #0,0: 27:[26, 31, 31] Operation: 53-22=31
Exploring Operation: 26+22=48, Resulting Numbers: [31, 53, 48]
Generated Node #0,1: 27:[31, 53, 48] Operation: 26+22=48
Moving to Node #0,0
Current State: 27:[26, 31, 31], Operations: ['53-22=31']
Exploring Operation: 31/31=1, Resulting Numbers: [26, 1]
Generated Node #0,0,0: 27:[26, 1] Operation: 31/31=1
Moving to Node #0,0,0
Current State: 27:[26, 1], Operations: ['53-22=31', '31/31=1']
Exploring Operation: 26*1=26, Resulting Numbers: [26]
26,27 unequal: No Solution
Exploring Operation: 26+1=27, Resulting Numbers: [27]
27,27 equal: Goal Reached
`

// validParallel is a parent call resumed after a join.
const validParallel = `Moving to Node #0
Current State: 27:[22, 26, 31, 53], Operations: []
Exploring Operation: 53-22=31, Resulting Numbers: [26, 31, 31]
Generated Node #0,0: 27:[26, 31, 31] Operation: 53-22=31
Exploring Operation: 26+22=48, Resulting Numbers: [31, 53, 48]
Generated Node #0,1: 27:[31, 53, 48] Operation: 26+22=48
<Sub Searches>
<No Solution in Sub Search 0 at level 1 at Node #0,1>
<Goal Reached in Sub Search 1 at level 1 at Node #0,0>
Moving to Node #0,0
Current State: 27:[26, 31, 31], Operations: ['53-22=31']
Exploring Operation: 31/31=1, Resulting Numbers: [26, 1]
Generated Node #0,0,0: 27:[26, 1] Operation: 31/31=1
Moving to Node #0,0,0
Current State: 27:[26, 1], Operations: ['53-22=31', '31/31=1']
Exploring Operation: 26+1=27, Resulting Numbers: [27]
27,27 equal: Goal Reached
<End Sub Searches>
27,27 equal: Goal Reached
`

// validSpawn is a parent call ending in a spawn.
const validSpawn = `Moving to Node #0
Current State: 27:[22, 26, 31, 53], Operations: []
Exploring Operation: 53-22=31, Resulting Numbers: [26, 31, 31]
Generated Node #0,0: 27:[26, 31, 31] Operation: 53-22=31
Exploring Operation: 26+22=48, Resulting Numbers: [31, 53, 48]
Generated Node #0,1: 27:[31, 53, 48] Operation: 26+22=48
<Calling Sub Searches>
<Start Sub Search 0 at level 1> Moving to Node #0,1
<Start Sub Search 1 at level 1> Moving to Node #0,0
<End Calling Sub Searches>
`

// validSubSearch has a failed and a solved inline sub search (serial).
const validSubSearch = `Current State: 27:[22, 26, 31, 53], Operations: []
Exploring Operation: 53-22=31, Resulting Numbers: [26, 31, 31]
Generated Node #0,0: 27:[26, 31, 31] Operation: 53-22=31
Exploring Operation: 26+22=48, Resulting Numbers: [31, 53, 48]
Generated Node #0,1: 27:[31, 53, 48] Operation: 26+22=48
Start Sub Search at level 1: Moving to Node #0,1
Current State: 27:[31, 53, 48], Operations: ['26+22=48']
Exploring Operation: 53-48=5, Resulting Numbers: [31, 5]
Generated Node #0,1,0: 27:[31, 5] Operation: 53-48=5
Moving to Node #0,1,0
Current State: 27:[31, 5], Operations: ['26+22=48', '53-48=5']
Exploring Operation: 31-5=26, Resulting Numbers: [26]
26,27 unequal: No Solution
No solution found.
Exit Sub Search at level 1
No solution found in sub search
Start Sub Search at level 1: Moving to Node #0,0
Current State: 27:[26, 31, 31], Operations: ['53-22=31']
Exploring Operation: 31/31=1, Resulting Numbers: [26, 1]
Generated Node #0,0,0: 27:[26, 1] Operation: 31/31=1
Moving to Node #0,0,0
Current State: 27:[26, 1], Operations: ['53-22=31', '31/31=1']
Exploring Operation: 26+1=27, Resulting Numbers: [27]
27,27 equal: Goal Reached
Moving to Node #0
Current State: 27:[22, 26, 31, 53], Operations: []
Exploring Operation: 53-22=31, Resulting Numbers: [26, 31, 31]
Generated Node #0,0: 27:[26, 31, 31] Operation: 53-22=31
Moving to Node #0,0
Current State: 27:[26, 31, 31], Operations: ['53-22=31']
Exploring Operation: 31/31=1, Resulting Numbers: [26, 1]
Generated Node #0,0,0: 27:[26, 1] Operation: 31/31=1
Moving to Node #0,0,0
Current State: 27:[26, 1], Operations: ['53-22=31', '31/31=1']
Exploring Operation: 26+1=27, Resulting Numbers: [27]
27,27 equal: Goal Reached
Exit Sub Search at level 1
`

func TestHandWrittenTracesVerify(t *testing.T) {
	for name, text := range map[string]string{"serial": validSerial, "parallel": validParallel, "spawn": validSpawn, "sub search": validSubSearch} {
		tr, err := VerifyTrace(standard, text)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name != "spawn" && !slices.Equal(opStrings(tr.Solution), []string{"53-22=31", "31/31=1", "26+1=27"}) {
			t.Errorf("%s: solution %v", name, tr.Solution)
		}
	}
	tr, _ := VerifyTrace(standard, validSpawn)
	if tr.End != EndSpawn || !slices.Equal(tr.Spawns[0].Nodes, []string{"0,1", "0,0"}) {
		t.Errorf("spawn: end %s, spawns %+v", tr.End, tr.Spawns)
	}
	if n := tr.Node("0,1"); n == nil || !slices.Equal(n.Nums, []int{31, 53, 48}) || n.Line != 6 {
		t.Errorf("node #0,1 = %+v", n)
	}
}

func opStrings(ops []Op) []string {
	var s []string
	for _, o := range ops {
		s = append(s, o.String())
	}
	return s
}

// edit replaces line n (1-based) of text.
func edit(text string, n int, line string) string {
	lines := strings.Split(text, "\n")
	lines[n-1] = line
	return strings.Join(lines, "\n")
}

func TestVerifyTraceReportsTheFirstWrongLine(t *testing.T) {
	for _, tc := range []struct {
		name   string
		text   string
		line   int
		reason string
	}{
		{"arithmetic", edit(validSerial, 2, "Exploring Operation: 53-22=30, Resulting Numbers: [26, 31, 30]"), 2, "53-22 is 31, not 30"},
		{"negative subtraction", edit(validSerial, 2, "Exploring Operation: 22-53=0, Resulting Numbers: [26, 31, 0]"), 2, "smaller number from the larger"},
		{"inexact division", edit(validSerial, 2, "Exploring Operation: 53/22=2, Resulting Numbers: [26, 31, 2]"), 2, "not exact"},
		{"number not in state", edit(validSerial, 2, "Exploring Operation: 54-22=32, Resulting Numbers: [26, 31, 32]"), 2, "numbers not in the state"},
		{"resulting numbers", edit(validSerial, 2, "Exploring Operation: 53-22=31, Resulting Numbers: [26, 31, 30]"), 2, "should be [26, 31, 31]"},
		{"generated numbers", edit(validSerial, 3, "Generated Node #0,0: 27:[26, 31, 30] Operation: 53-22=31"), 3, "resulting numbers were [26, 31, 31]"},
		{"generated op", edit(validSerial, 3, "Generated Node #0,0: 27:[26, 31, 31] Operation: 53-26=27"), 3, "operation explored was 53-22=31"},
		{"generated id", edit(validSerial, 3, "Generated Node #0,0,1: 27:[26, 31, 31] Operation: 53-22=31"), 3, "must have an id #0,k"},
		{"generated target", edit(validSerial, 3, "Generated Node #0,0: 28:[26, 31, 31] Operation: 53-22=31"), 3, "the target is 27"},
		{"missing verdict", edit(validSerial, 3, "Moving to Node #0"), 3, "has no verdict"},
		{"goal not reached", edit(validSerial, 13, "26,27 equal: Goal Reached"), 13, "Goal Reached, but the state is [26], not [27]"},
		{"goal on wrong value", edit(edit(validSerial, 12, "Exploring Operation: 26*1=26, Resulting Numbers: [26]"), 13, "26,26 equal: Goal Reached"), 13, "the target is 27"},
		{"goal with numbers left", edit(validSerial, 3, "27,27 equal: Goal Reached"), 3, "not one number"},
		{"unequal at goal", edit(validSerial, 15, "27,27 unequal: No Solution"), 15, "the goal is reached"},
		{"move to unknown node", edit(validSerial, 6, "Moving to Node #0,5"), 6, "never generated"},
		{"state mismatch", edit(validSerial, 7, "Current State: 27:[26, 31, 30], Operations: ['53-22=31']"), 7, "node #0,0 holds [26, 31, 31]"},
		{"ops mismatch", edit(validSerial, 7, "Current State: 27:[26, 31, 31], Operations: ['53-26=27']"), 7, "reached by ['53-22=31']"},
		{"state without move", edit(validSerial, 6, "Current State: 27:[26, 31, 31], Operations: ['53-22=31']"), 6, "must follow \"Moving to Node"},
		{"move without state", edit(validSerial, 7, "Exploring Operation: 31/31=1, Resulting Numbers: [26, 1]"), 7, "want the Current State of node #0,0"},
		{"wrong target", edit(validSerial, 1, "Current State: 28:[22, 26, 31, 53], Operations: []"), 1, "the target is 27, not 28"},
		{"wrong numbers", edit(validSerial, 1, "Current State: 27:[22, 26, 31, 54], Operations: []"), 1, "should be [22, 26, 31, 53]"},
		{"root with ops", edit(validSerial, 1, "Current State: 27:[22, 26, 31, 53], Operations: ['1+1=2']"), 1, "root has no operations"},
		{"not a trace line", edit(validSerial, 4, "Exploring: 26+22"), 4, "not a line of the Countdown trace format"},
		{"malformed list", edit(validSerial, 2, "Exploring Operation: 53-22=31, Resulting Numbers: [26,31, 31]"), 2, "want \", \""},
		{"bad start", "Exploring Operation: 53-22=31, Resulting Numbers: [26, 31, 31]", 1, "a trace starts with"},
		{"text after the end", validSpawn + "Moving to Node #0\n", 11, "nothing may follow"},
		{"spawn unknown node", edit(validSpawn, 8, "<Start Sub Search 0 at level 1> Moving to Node #0,7"), 8, "never generated"},
		{"spawn index", edit(validSpawn, 9, "<Start Sub Search 2 at level 1> Moving to Node #0,0"), 9, "index should be 1"},
		{"spawn level", edit(validSpawn, 9, "<Start Sub Search 1 at level 2> Moving to Node #0,0"), 9, "same level"},
		{"empty spawn", edit(edit(validSpawn, 8, "<End Calling Sub Searches>"), 9, ""), 8, "at least one sub search"},
		{"stray line in spawn", edit(validSpawn, 9, "Moving to Node #0,0"), 9, "spawn block holds only"},
		{"join index", edit(validParallel, 9, "<Goal Reached in Sub Search 0 at level 1 at Node #0,0>"), 9, "index should be 1"},
		{"join path elsewhere", edit(validParallel, 10, "Moving to Node #0,1"), 10, "the solution path starts at #0,0"},
		{"join path unfinished", edit(edit(validParallel, 16, "Exploring Operation: 26*1=26, Resulting Numbers: [26]"), 17, "26,27 unequal: No Solution"), 17, "does not reach the goal"},
		{"goal after failed join", strings.Replace(edit(validParallel, 9, "<No Solution in Sub Search 1 at level 1 at Node #0,0>"), strings.Join(strings.Split(validParallel, "\n")[9:17], "\n")+"\n", "", 1), 11, "must follow the Exploring Operation"},
		{"sub search level", edit(validSerial, 6, "Start Sub Search at level 2: Moving to Node #0,0"), 6, "level should be 1"},
		{"exit without sub search", edit(validSerial, 6, "Exit Sub Search at level 1"), 6, "no sub search at level 1"},
		{"failure after goal", validSerial + "No solution found.\n", 16, "only the solution path"},
		{"sub failure after a solved sub search", validSubSearch + "No solution found in sub search\n", 38, "only Exit Sub Search lines"},
		{"exit before the sub search ends", edit(validSubSearch, 10, "Exit Sub Search at level 1"), 10, "neither reached the goal nor found no solution"},
		{"search goes on after an exhausted sub search", edit(validSubSearch, 15, "Moving to Node #0,0"), 15, "want \"Exit Sub Search at level 1\""},
		{"sub failure without a failed sub search", edit(validSubSearch, 6, "No solution found in sub search"), 6, "must follow the exit of a sub search that found none"},
		{"sub search of a non-child", edit(validSubSearch, 17, "Start Sub Search at level 1: Moving to Node #0,1,0"), 17, "not a child of the current node"},
		{"search goes on after the goal", edit(validSubSearch, 25, "Exploring Operation: 26+1=27, Resulting Numbers: [27]"), 25, "only the solution path"},
		{"replay from the wrong start", edit(validSubSearch, 25, "Moving to Node #0,0"), 25, "the solution path starts at #0"},
		{"replay skips a step", edit(validSubSearch, 29, "Moving to Node #0,0,0"), 29, "must move to the node it just generated, #0,0"},
		{"replay explores twice", edit(validSubSearch, 29, "Exploring Operation: 26+22=48, Resulting Numbers: [31, 53, 48]"), 29, "one operation per state"},
		{"join path not a chain", edit(validParallel, 14, "Moving to Node #0,0"), 14, "must move to the node it just generated, #0,0,0"},
		{"join path without its move", edit(validParallel, 10, "Exploring Operation: 31/31=1, Resulting Numbers: [26, 1]"), 10, "starts with \"Moving to Node #0,0\""},
		{"parent ignores a solved child", edit(validParallel, 19, "Moving to Node #0,1"), 19, "a sub search reached the goal"},
		{"spawn of the root itself", edit(validSpawn, 8, "<Start Sub Search 0 at level 1> Moving to Node #0"), 8, "not a child of the current node"},
		{"spawn in serial mode", "Mode: serial\n" + validSpawn, 8, "only in parallel mode"},
		{"sub search in parallel mode", "Mode: parallel\n" + validSubSearch, 7, "belong to serial mode"},
		{"bad budget after the mode line", "Mode: serial\nToken Budget: +4 " + validSerial, 2, "positive number"},
		{"leading zero", edit(validSerial, 2, "Exploring Operation: 53-22=031, Resulting Numbers: [26, 31, 31]"), 2, "leading zero"},
		{"bad mode", "Mode: sideways\n" + validSerial, 1, "unknown mode"},
		{"bad budget", "Token Budget: x " + validSerial, 1, "positive number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyTrace(standard, tc.text)
			te, ok := err.(*TraceError)
			if !ok {
				t.Fatalf("error %v (%T), want a *TraceError", err, err)
			}
			if te.Line != tc.line || !strings.Contains(te.Reason, tc.reason) {
				t.Fatalf("got %v; want line %d saying %q", te, tc.line, tc.reason)
			}
		})
	}
}

func TestParseTraceWithoutAProblem(t *testing.T) {
	// Without a problem the start state is taken as given; the lines after
	// it are checked all the same.
	_, err := ParseTrace("Current State: 5:[5, 0], Operations: []\nExploring Operation: 5/0=0, Resulting Numbers: [0]")
	if te, ok := err.(*TraceError); !ok || te.Line != 2 || !strings.Contains(te.Reason, "division by zero") {
		t.Fatalf("got %v, want line 2: division by zero", err)
	}
	tr, err := ParseTrace(validSpawn)
	if err != nil || tr.Target != 27 || len(tr.Nodes) != 3 {
		t.Fatalf("got %v, %+v", err, tr)
	}
}

func TestTruncatedTracesAreUnfinishedNotWrong(t *testing.T) {
	for name, text := range map[string]string{"serial": validSerial, "sub search": validSubSearch, "parallel": validParallel} {
		lines := strings.SplitAfter(text, "\n")
		goal := slices.IndexFunc(lines, func(l string) bool {
			return strings.HasSuffix(l, "Goal Reached\n") && !strings.HasPrefix(lines[0], "Moving")
		})
		if name == "parallel" {
			goal = len(lines) - 2 // the parent's own goal line
		}
		for n := 1; n < goal; n++ {
			tr, err := VerifyTrace(standard, strings.Join(lines[:n], ""))
			if err != nil {
				t.Fatalf("%s, first %d lines: %v", name, n, err)
			}
			// An inner "No solution found." ends only its sub search.
			if tr.End != EndUnfinished || tr.Solved() {
				t.Fatalf("%s, first %d lines: end %s", name, n, tr.End)
			}
		}
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []Header{
		{},
		{Mode: ModeParallel},
		{Mode: ModeSerial, TokenBudget: 4096},
		{SubCallBudget: 3},
		{Mode: ModeDirect, TokenBudget: 512, SubCallBudget: 8},
	} {
		text := h.Apply(validSerial)
		got, rest, err := SplitHeader(text)
		if err != nil || got != h || rest != validSerial {
			t.Fatalf("%+v: got %+v, %v", h, got, err)
		}
		tr, err := VerifyTrace(standard, text)
		if err != nil || tr.Header != h || !tr.Solved() {
			t.Fatalf("%+v: VerifyTrace: %v, header %+v", h, err, tr.Header)
		}
	}
	if got := (Header{Mode: ModeParallel, SubCallBudget: 4}).Apply("Moving to Node #0\n"); got != "Mode: parallel\nSub Call Budget: 4 Moving to Node #0\n" {
		t.Fatalf("Apply = %q", got)
	}
}

func TestParseLineForms(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Line
	}{
		{"Current State: 27:[22, 26, 31, 53], Operations: []", Line{Kind: LineCurrentState, Target: 27, Nums: []int{22, 26, 31, 53}}},
		{"Current State: 27:[26, 1], Operations: ['53-22=31', '31/31=1']", Line{Kind: LineCurrentState, Target: 27, Nums: []int{26, 1},
			Ops: []Op{{53, 22, '-', 31}, {31, 31, '/', 1}}}},
		{"Exploring Operation: 53*22=1166, Resulting Numbers: [26, 31, 1166]", Line{Kind: LineExploring, Op: Op{53, 22, '*', 1166}, Nums: []int{26, 31, 1166}}},
		{"Generated Node #0,1,12: 27:[26, 31] Operation: 5+21=26", Line{Kind: LineGenerated, Node: "0,1,12", Target: 27, Nums: []int{26, 31}, Op: Op{5, 21, '+', 26}}},
		{"Moving to Node #0", Line{Kind: LineMoving, Node: "0"}},
		{"27,27 equal: Goal Reached", Line{Kind: LineGoal, Value: 27, Target: 27}},
		{"26,27 unequal: No Solution", Line{Kind: LineNoSolution, Value: 26, Target: 27}},
		{"Start Sub Search at level 2: Moving to Node #0,1,0", Line{Kind: LineSubStart, Level: 2, Node: "0,1,0"}},
		{"Exit Sub Search at level 2", Line{Kind: LineSubExit, Level: 2}},
		{"No solution found in sub search", Line{Kind: LineSubFailed}},
		{"No solution found.", Line{Kind: LineSearchFailed}},
		{"<Calling Sub Searches>", Line{Kind: LineCalling}},
		{"<Start Sub Search 3 at level 1> Moving to Node #0,3", Line{Kind: LineSpawn, Index: 3, Level: 1, Node: "0,3"}},
		{"<End Calling Sub Searches>", Line{Kind: LineEndCalling}},
		{"<Sub Searches>", Line{Kind: LineJoin}},
		{"<Goal Reached in Sub Search 1 at level 1 at Node #0,1>", Line{Kind: LineJoinGoal, Index: 1, Level: 1, Node: "0,1"}},
		{"<No Solution in Sub Search 0 at level 1 at Node #0,0>", Line{Kind: LineJoinNone, Index: 0, Level: 1, Node: "0,0"}},
		{"<End Sub Searches>", Line{Kind: LineEndJoin}},
	} {
		got, err := ParseLine(tc.line)
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tc.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.line, got, tc.want)
		}
	}
	for _, bad := range []string{
		"", "Current State: 27:[22, 26, 31, 53]", "Current State: 27:[22,26], Operations: []",
		"Moving to Node #1", "Moving to Node #0,", "Moving to Node #0,01", "Moving to Node #0 ",
		"Exploring Operation: 53%22=9, Resulting Numbers: [9]", "Exploring Operation: 1234567890123456789+1=1234567890123456790, Resulting Numbers: [1]",
		"Exploring Operation: 05+1=6, Resulting Numbers: [6]", "Moving to Node #0,01",
		"27,27 equal: Goal reached", "<Sub Searches> ", "Current State: 27:[1], Operations: ['1+1=2'",
	} {
		if l, err := ParseLine(bad); err == nil {
			t.Errorf("%q parsed as %+v", bad, l)
		}
	}
}

func FuzzParseTrace(f *testing.F) {
	f.Add(validSerial)
	f.Add(validParallel)
	f.Add(validSpawn)
	f.Add("Mode: serial\nToken Budget: 9 " + validSerial)
	for i, format := range []Mode{ModeSerial, ModeParallel} {
		rec, err := TraceConfig{Format: format}.Generate(standard, 1, i)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rec.Text)
	}
	f.Fuzz(func(t *testing.T, text string) {
		tr, err := ParseTrace(text)
		if tr == nil {
			t.Fatal("ParseTrace returned no tree")
		}
		if err != nil {
			if _, ok := err.(*TraceError); !ok {
				t.Fatalf("error %v is not a *TraceError", err)
			}
			return
		}
		// A trace that parses names each node once, under a known parent.
		for _, n := range tr.Nodes {
			if tr.Node(n.ID) != n {
				t.Fatalf("node #%s indexed wrongly", n.ID)
			}
		}
		if tr.Solved() {
			if len(tr.Solution) == 0 || tr.Solution[len(tr.Solution)-1].Result != tr.Target {
				t.Fatalf("solution %v does not end at the target %d", tr.Solution, tr.Target)
			}
		}
	})
}

func TestSequencesRunInOrder(t *testing.T) {
	rec, err := TraceConfig{Format: ModeParallel, BeamMin: 3, BeamMax: 3, Promising: 1}.Generate(standard, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Root call 0 spawns, the children run, then root call 1 joins.
	var got []string
	for _, s := range rec.Sequences {
		got = append(got, fmt.Sprintf("%s/%d", s.Thread, s.Call))
	}
	if len(got) < 3 || got[0] != "0/0" || got[len(got)-1] != "0/1" || !strings.HasPrefix(got[1], "0,") {
		t.Fatalf("sequence order %v, want 0/0, the children, 0/1", got)
	}
}
