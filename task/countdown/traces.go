package countdown

import (
	"fmt"
	"slices"
	"strings"
)

// TraceConfig says how `braid gen traces` samples a search for each problem.
// Its zero value, with a Format, is the published APR recipe for that format.
type TraceConfig struct {
	Format Mode
	// BeamMin..BeamMax is the range the beam is drawn from, uniformly. Zero
	// means the format's default, as the public scripts ran: 1..5 serial
	// (SoS+), 1..10 parallel (APR).
	BeamMin, BeamMax int
	// SubBeamMax bounds a child's beam, drawn from beam..SubBeamMax
	// (parallel only). Zero means 15, as APR's published script ran.
	SubBeamMax int
	// Heuristic is "mult", "sum" or "random" (each problem draws one). Empty
	// means mult, which both public generators use.
	Heuristic string
	// Prune is "beam", "threshold" (keep successors scoring at most the
	// target, the depth-first-like Stream-of-Search variant) or "random".
	// Serial only; empty means beam.
	Prune string
	// Promising is the sub-search probability; zero means the format's
	// default: 0.5 serial, 0.9 parallel. Negative means never.
	Promising float64
	// ModeHeader writes braid's "Mode: ..." line before each root sequence.
	ModeHeader bool
}

// SearchParams records what a trace's search actually used.
type SearchParams struct {
	Beam      int     `json:"beam,omitempty"`
	SubBeam   int     `json:"sub_beam,omitempty"`
	Heuristic string  `json:"heuristic,omitempty"`
	Prune     string  `json:"prune,omitempty"`
	Promising float64 `json:"promising,omitempty"`
}

// TraceRecord is one line of `braid gen traces` output: a problem, the search
// run on it and its training sequences.
type TraceRecord struct {
	Numbers []int        `json:"numbers"`
	Target  int          `json:"target"`
	Format  Mode         `json:"format"`
	Search  SearchParams `json:"search"`
	Solved  bool         `json:"solved"`
	// Answer is the solution as an expression, when Solved.
	Answer string `json:"answer,omitempty"`
	// Text is the whole search as one thread sees it: the serial trace, or
	// the root's final call (every spawn replaced by its join).
	Text string `json:"text"`
	// Sequences are the model calls to train on: one for serial and direct,
	// every parent and child call for parallel.
	Sequences []Sequence `json:"sequences"`
	// Children counts the child threads a parallel rollout spawned.
	Children int `json:"children"`
	// Tree is the whole parallel rollout, for inspection.
	Tree *Call `json:"tree,omitempty"`
}

// Validate reports a configuration that cannot run.
func (c TraceConfig) Validate() error {
	if _, err := ParseMode(string(c.Format)); err != nil {
		return err
	}
	lo, hi := c.beams()
	if lo < 1 || hi < lo {
		return fmt.Errorf("countdown: beam range %d..%d is empty or below 1", lo, hi)
	}
	if c.Format == ModeParallel && c.subBeamMax() < 1 {
		return fmt.Errorf("countdown: sub-call beam bound %d is below 1", c.subBeamMax())
	}
	switch c.Heuristic {
	case "", "mult", "sum", "random":
	default:
		return fmt.Errorf("countdown: unknown heuristic %q (want mult, sum or random)", c.Heuristic)
	}
	switch c.Prune {
	case "", "beam", "threshold", "random":
	default:
		return fmt.Errorf("countdown: unknown pruning %q (want beam, threshold or random)", c.Prune)
	}
	if c.Promising > 1 {
		return fmt.Errorf("countdown: sub-search probability %g is above 1", c.Promising)
	}
	return nil
}

func (c TraceConfig) beams() (int, int) {
	lo, hi := c.BeamMin, c.BeamMax
	if lo == 0 {
		lo = 1
	}
	if hi == 0 {
		hi = 5
		if c.Format == ModeParallel {
			hi = 10
		}
		hi = max(hi, lo)
	}
	return lo, hi
}

func (c TraceConfig) subBeamMax() int {
	if c.SubBeamMax == 0 {
		return 15
	}
	return c.SubBeamMax
}

func (c TraceConfig) promising() float64 {
	switch {
	case c.Promising < 0:
		return 0
	case c.Promising > 0:
		return c.Promising
	case c.Format == ModeParallel:
		return 0.9
	}
	return 0.5
}

// Generate samples a search for problem i of a run under seed and runs it.
// The result depends only on (c, p, seed, i).
func (c TraceConfig) Generate(p Problem, seed uint64, i int) (TraceRecord, error) {
	if err := c.Validate(); err != nil {
		return TraceRecord{}, err
	}
	rec := TraceRecord{Numbers: p.Numbers, Target: p.Target, Format: c.Format}
	pick := NewRand(seed, streamSearchConfig, i)
	lo, hi := c.beams()
	beam := lo + pick.IntN(hi-lo+1)
	h := MultHeuristic
	if c.Heuristic == "sum" || (c.Heuristic == "random" && pick.IntN(2) == 1) {
		h = SumHeuristic
	}
	header := Header{}
	if c.ModeHeader {
		header.Mode = c.Format
	}

	switch c.Format {
	case ModeDirect:
		rng := NewRand(seed, streamSerial, i)
		all := SolveAll(p, 0).Solutions
		if len(all) == 0 {
			// The direct answer to an unsolvable problem is that it has none.
			var w traceWriter
			w.moving("0")
			w.currentState(p.Target, p.Numbers, nil)
			w.raw("No solution found.\n")
			rec.Text = w.String()
		} else {
			sol := all[rng.IntN(len(all))]
			rec.Solved, rec.Text, rec.Answer = true, DirectTrace(p, sol), mustAnswer(p, sol)
		}
		rec.Sequences = rootSequence(p, header, rec.Text)
	case ModeSerial:
		threshold := 0.0
		prune := c.Prune
		if prune == "random" {
			prune = [...]string{"beam", "threshold"}[pick.IntN(2)]
		}
		if prune == "threshold" {
			threshold = float64(p.Target)
		} else {
			prune = "beam"
		}
		cfg := SerialConfig{Beam: beam, Threshold: threshold, Heuristic: h, Promising: c.promising()}
		rec.Search = SearchParams{Beam: beam, Heuristic: h.String(), Prune: prune, Promising: cfg.Promising}
		t, err := GenerateSerial(p, cfg, NewRand(seed, streamSerial, i))
		if err != nil {
			return rec, err
		}
		rec.Text, rec.Solved = t.Text, t.Solved
		if t.Solved {
			rec.Answer = mustAnswer(p, t.Solution)
		}
		rec.Sequences = rootSequence(p, header, t.Text)
	case ModeParallel:
		sub := c.subBeamMax()
		if sub > beam {
			sub = beam + pick.IntN(sub-beam+1)
		}
		cfg := ParallelConfig{Beam: beam, SubBeam: sub, Heuristic: h, Promising: c.promising()}
		rec.Search = SearchParams{Beam: beam, SubBeam: sub, Heuristic: h.String(), Prune: "beam", Promising: cfg.Promising}
		root, err := GenerateParallel(p, cfg, NewRand(seed, streamParallel, i))
		if err != nil {
			return rec, err
		}
		rec.Text, rec.Solved, rec.Tree, rec.Children = root.Final(), root.Solved, root, root.Children()
		if root.Solved {
			rec.Answer = mustAnswer(p, root.Solution)
		}
		rec.Sequences = root.Sequences()
		if header != (Header{}) {
			for k := range rec.Sequences {
				if s := &rec.Sequences[k]; s.Thread == "0" {
					s.Prompt = header.Apply(s.Prompt)
				}
			}
		}
	}
	return rec, nil
}

// rootSequence splits a one-thread trace into the prompt (the first state)
// and the completion.
func rootSequence(p Problem, h Header, text string) []Sequence {
	var w traceWriter
	if strings.HasPrefix(text, "Moving") {
		w.moving("0")
	}
	w.currentState(p.Target, p.Numbers, nil)
	prompt := w.String()
	return []Sequence{{Thread: "0", Prompt: h.Apply(prompt), Completion: text[len(prompt):]}}
}

// DirectTrace writes a solution as a direct-mode trace: the solution path
// alone, in the replay format, each step's node the first child of the last.
func DirectTrace(p Problem, sol Solution) string {
	cur := &node{id: "0", nums: p.Numbers}
	for _, op := range sol {
		nums, ok := apply(cur.nums, op)
		if !ok {
			panic(fmt.Sprintf("countdown: DirectTrace given a path that does not apply: %s", op))
		}
		cur = &node{id: childID(cur.id, 0), nums: nums, ops: append(slices.Clip(cur.ops), op), parent: cur}
	}
	var w traceWriter
	start := cur
	for start.parent != nil {
		start = start.parent
	}
	writePath(&w, p.Target, start, cur)
	return w.String()
}

func mustAnswer(p Problem, sol Solution) string {
	e, err := PathExpression(p.Numbers, sol)
	if err != nil {
		panic(fmt.Sprintf("countdown: a search produced an invalid path for %s: %v", p, err))
	}
	return e.String()
}
