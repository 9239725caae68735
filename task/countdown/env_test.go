package countdown

import (
	"iter"
	"slices"
	"strings"
	"testing"
)

func firstProblems(seed uint64, n int) []Problem {
	next, stop := iter.Pull(Problems(seed, Train))
	defer stop()
	var ps []Problem
	for range n {
		p, _ := next()
		ps = append(ps, p)
	}
	return ps
}

// The environment writes exactly the determined parts of every sequence the
// generators produce, in every format.
func TestEnvReproducesGeneratedTraces(t *testing.T) {
	problems := firstProblems(11, 150)
	for _, format := range []Mode{ModeSerial, ModeParallel, ModeDirect} {
		cfg := TraceConfig{Format: format, ModeHeader: true}
		var envBytes, total int
		for i, p := range problems {
			rec, err := cfg.Generate(p, 11, i)
			if err != nil {
				t.Fatal(err)
			}
			for j, s := range rec.Sequences {
				spans, err := EnvSpans(p, s.Prompt, s.Completion)
				if err != nil {
					t.Fatalf("%s problem %d sequence %d: %v\nprompt:\n%s\ncompletion:\n%s", format, i, j, err, s.Prompt, s.Completion)
				}
				last := 0
				for _, sp := range spans {
					if sp.Start < last || sp.End <= sp.Start || sp.End > len(s.Completion) {
						t.Fatalf("%s problem %d: spans out of order: %v", format, i, spans)
					}
					last = sp.End
					envBytes += sp.End - sp.Start
				}
				total += len(s.Completion)
			}
		}
		t.Logf("%s: the environment writes %.0f%% of the completion bytes", format, 100*float64(envBytes)/float64(total))
		if envBytes == 0 {
			t.Errorf("%s: the environment wrote nothing", format)
		}
	}
}

// What the model writes, fed token by token in arbitrary pieces, draws the
// same text from the environment as whole lines do.
func TestEnvNextInPieces(t *testing.T) {
	p := firstProblems(12, 1)[0]
	rec, err := TraceConfig{Format: ModeSerial, ModeHeader: true}.Generate(p, 12, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := rec.Sequences[0]
	spans, err := EnvSpans(p, s.Prompt, s.Completion)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEnv(p, s.Prompt)
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	pos := 0
	for _, sp := range append(spans, Span{len(s.Completion), len(s.Completion)}) {
		model := s.Completion[pos:sp.Start]
		for k := 0; k < len(model); k += 3 {
			piece := model[k:min(len(model), k+3)]
			got.WriteString(piece)
			fill, err := e.Next(piece)
			if err != nil {
				t.Fatal(err)
			}
			if fill != "" && k+3 < len(model) {
				t.Fatalf("the environment wrote %q in the middle of the model's text %q", fill, model)
			}
			got.WriteString(fill)
		}
		pos = sp.End
	}
	if got.String() != s.Completion {
		t.Errorf("rebuilt:\n%s\nwant:\n%s", got.String(), s.Completion)
	}
	if !e.Done() {
		t.Error("the trace is complete but the environment is not done")
	}
}

func TestEnvRejectsIllegalOperations(t *testing.T) {
	p := Problem{Target: 27, Numbers: []int{22, 26, 31, 53}}
	prompt := "Mode: serial\nCurrent State: 27:[22, 26, 31, 53], Operations: []\n"
	for _, tc := range []struct{ written, want string }{
		{"Exploring Operation: 22-53=", "smaller number from the larger"},
		{"Exploring Operation: 22+99=", "not in the state"},
		{"Exploring Operation: 53/22=", "not exact"},
		{"Exploring Operation: x=", "want an operation"},
		// The model's line is completed with the operation as traces write
		// it, which must begin with what the model wrote: no sign, no
		// leading zero (enough of them once sliced past the completion).
		{"Exploring Operation: 53-+22=", "want an operation"},
		{"Exploring Operation: 053-22=", "want an operation"},
		{"Exploring Operation: " + strings.Repeat("0", 80) + "53-22=", "want an operation"},
		{"Exploring Operation: 53-٢٢=", "want an operation"},
		{"Moving to Node #0,7\n", "never generated"},
	} {
		e, err := NewEnv(p, prompt)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Next(tc.written)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error about %q", tc.written, err, tc.want)
		}
	}
	e, _ := NewEnv(p, prompt)
	fill, err := e.Next("Exploring Operation: 53-22=")
	if want := "31, Resulting Numbers: [26, 31, 31]\nGenerated Node #0,0: 27:[26, 31, 31] Operation: 53-22=31\n"; err != nil || fill != want {
		t.Errorf("fill %q, %v; want %q", fill, err, want)
	}
}

// Whatever a model writes, the environment answers with text or an error,
// never a panic.
func FuzzEnvNext(f *testing.F) {
	f.Add("Exploring Operation: 53-22=", "Moving to Node #0,0\n")
	f.Add("Exploring Operation: 53*26=", "Start Sub Search at level 1: Moving to Node #0,0\n")
	f.Add("<Calling Sub Searches>\n", "<Start Sub Search 0 at level 1> Moving to Node #0,0\n")
	f.Add("No solution found.\n", "x")
	f.Add("Exploring Operation: 0053-+22=", "Moving to Node #0,0\n")
	p := Problem{Target: 27, Numbers: []int{22, 26, 31, 53}}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, mode := range []Mode{ModeSerial, ModeParallel, ModeDirect} {
			e, err := NewEnv(p, Header{Mode: mode}.Apply("Moving to Node #0\nCurrent State: 27:[22, 26, 31, 53], Operations: []\n"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.Next(a); err != nil {
				continue
			}
			_, _ = e.Next(b)
			_ = e.Done()
		}
	})
}

// The choices the environment allows always include what the generators
// wrote: constraining a model never forbids a trace it was trained on.
func TestEnvChoicesAllowGeneratedTraces(t *testing.T) {
	problems := firstProblems(13, 80)
	for _, format := range []Mode{ModeSerial, ModeParallel, ModeDirect} {
		cfg := TraceConfig{Format: format, ModeHeader: true}
		for i, p := range problems {
			rec, err := cfg.Generate(p, 13, i)
			if err != nil {
				t.Fatal(err)
			}
			for j, s := range rec.Sequences {
				spans, err := EnvSpans(p, s.Prompt, s.Completion)
				if err != nil {
					t.Fatal(err)
				}
				e, err := NewEnv(p, s.Prompt)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := e.Begin(); err != nil {
					t.Fatal(err)
				}
				pos := 0
				for _, sp := range append(spans, Span{len(s.Completion), len(s.Completion)}) {
					model := s.Completion[pos:sp.Start]
					// The model's text between two fills is whole lines,
					// or a line up to an operation's "=".
					for model != "" {
						end := strings.IndexByte(model, '\n') + 1
						if end == 0 {
							end = len(model)
						}
						piece := model[:end]
						if !slices.Contains(e.Choices(), piece) {
							t.Fatalf("%s problem %d sequence %d: %q is not among the choices %q", format, i, j, piece, e.Choices())
						}
						if _, err := e.Next(piece); err != nil {
							t.Fatal(err)
						}
						model = model[end:]
					}
					pos = sp.End // Next already fed the fill
				}
			}
		}
	}
}

// Replaying a parallel rollout through the protocol functions gives the
// generator's calls: the spawns it notices, the children's prompts, the
// joins that resume the parent.
func TestProtocolReplaysParallelRollouts(t *testing.T) {
	problems := firstProblems(14, 60)
	cfg := TraceConfig{Format: ModeParallel, ModeHeader: true}
	joins, rebuilt := 0, 0
	for i, p := range problems {
		rec, err := cfg.Generate(p, 14, i)
		if err != nil {
			t.Fatal(err)
		}
		seqs := rec.Sequences
		if seqs[0].Prompt != RootPrompt(p, ModeParallel) {
			t.Fatalf("root prompt %q, want %q", RootPrompt(p, ModeParallel), seqs[0].Prompt)
		}
		// Root calls, in order, and each one's children.
		var root []Sequence
		kids := map[string]Sequence{}
		for _, s := range seqs {
			if s.Thread == "0" {
				root = append(root, s)
			} else {
				kids[s.Thread] = s
			}
		}
		for k := 0; k+1 < len(root); k++ {
			text := root[k].Prompt + root[k].Completion
			before, nodes, ok := Spawned(text)
			if !ok {
				t.Fatalf("problem %d call %d ends without a spawn:\n%s", i, k, text)
			}
			var results []ChildResult
			for _, id := range nodes {
				kid, ok := kids[id]
				if !ok {
					t.Fatalf("problem %d: no child thread for #%s", i, id)
				}
				prompt, err := ChildPrompt(p, before, id)
				if err != nil || prompt != kid.Prompt {
					t.Fatalf("problem %d child #%s: prompt %q (%v), want %q", i, id, prompt, err, kid.Prompt)
				}
				results = append(results, ChildResult{Node: id, Text: kid.Prompt + kid.Completion})
			}
			resumed := before + Join(p, 1, results)
			if !strings.HasPrefix(root[k+1].Prompt, resumed) || root[k+1].Prompt != resumed {
				t.Fatalf("problem %d: resumed prompt\n%s\nwant\n%s", i, resumed, root[k+1].Prompt)
			}
			joins++
			// A solved child cut off before or during its replay of the
			// path (its context ran out) joins just the same: the join
			// rebuilds the path from the search.
			for j, r := range results {
				const goal = " equal: Goal Reached\n"
				at := strings.Index(r.Text, goal)
				if at < 0 {
					continue
				}
				head := at + len(goal)
				for _, cut := range []int{head, head + (len(r.Text)-head)/2} {
					cutResults := slices.Clone(results)
					cutResults[j].Text = r.Text[:cut]
					if got := before + Join(p, 1, cutResults); got != resumed {
						t.Fatalf("problem %d: child #%s cut at %d of %d bytes joins as\n%s\nwant\n%s", i, r.Node, cut, len(r.Text), got, resumed)
					}
					rebuilt++
				}
			}
		}
		if rec.Solved {
			final := root[len(root)-1]
			answer, ok := Answer(p, final.Prompt+final.Completion)
			if !ok || VerifyAnswer(p, answer) != nil {
				t.Errorf("problem %d: answer %q (%v)", i, answer, ok)
			}
		}
	}
	if joins == 0 || rebuilt == 0 {
		t.Errorf("%d rollouts spawned, %d joins of cut-off solved children", joins, rebuilt)
	}
}

func TestChoicesInSpawnBlocksAndChildren(t *testing.T) {
	p := Problem{Target: 27, Numbers: []int{22, 26, 31, 53}}
	e, err := NewEnv(p, RootPrompt(p, ModeParallel))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Next("Exploring Operation: 53-22="); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Next("<Calling Sub Searches>\n"); err != nil {
		t.Fatal(err)
	}
	for _, c := range e.Choices() {
		if strings.Contains(c, "End Calling") {
			t.Errorf("an empty spawn block may end: %q", e.Choices())
		}
	}
	child, err := NewEnv(p, "Moving to Node #0,0\nCurrent State: 27:[26, 31, 31], Operations: ['53-22=31']\n")
	if err != nil {
		t.Fatal(err)
	}
	child.AsChild()
	if _, err := child.Next("Exploring Operation: 26+31="); err != nil {
		t.Fatal(err)
	}
	for _, c := range child.Choices() {
		if strings.Contains(c, "Sub Search") {
			t.Errorf("a parallel child may start a sub search: %q", child.Choices())
		}
	}
}
