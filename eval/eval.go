// Package eval runs experiment grids (strategies × problems × seeds) into
// a durable store, and summarises them with the statistics a reader can
// trust: accuracies with 95% intervals clustered by problem, paired
// differences against a baseline with their p-values, pass@k and maj@k,
// token and latency costs, and a warning when a difference is inside the
// noise.
package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync"

	"github.com/braid-dev/braid/eval/stats"
	"github.com/braid-dev/braid/internal/parallel"
	"github.com/braid-dev/braid/store"
)

// Cell is one sample to take: a strategy on a problem with a seed.
type Cell struct {
	Strategy string
	Index    int // the problem's index
	Seed     uint64
}

// Key is the cell's key in the store.
func (c Cell) Key() string { return fmt.Sprintf("%s|%d|%d", c.Strategy, c.Index, c.Seed) }

// Outcome is what a cell produced.
type Outcome struct {
	Answer             string
	Correct            bool
	Class              string // the answer's equivalence class ("" for none), for maj@k
	TotalTokens        int
	CriticalPathTokens int
	Threads            int
	LatencyMS          int64
	Tree               any
}

// Grid is an experiment: every strategy on every problem, Seeds times.
type Grid struct {
	Strategies []string
	Problems   []json.RawMessage
	Seeds      int
	// Concurrent bounds the cells running at once.
	Concurrent int
	// Progress, when set, is told of each finished cell (done, of total).
	Progress func(done, total int)
}

// Cells lists the grid's cells in a fixed order.
func (g Grid) Cells() []Cell {
	var cells []Cell
	for i := range g.Problems {
		for _, s := range g.Strategies {
			for seed := 1; seed <= g.Seeds; seed++ {
				cells = append(cells, Cell{s, i, uint64(seed)})
			}
		}
	}
	return cells
}

// Run takes every cell the store does not hold yet, at most Concurrent at
// once, and commits each as it finishes: a run stopped at any moment goes
// on from where it was when run again. A cell whose solve fails (other
// than by ctx) is stored with its error, as a wrong answer.
func (g Grid) Run(ctx context.Context, st *store.Store, run string, solve func(context.Context, Cell) (Outcome, error)) error {
	done, err := st.Done(ctx, run)
	if err != nil {
		return err
	}
	var todo []Cell
	all := g.Cells()
	for _, c := range all {
		if !done[c.Key()] {
			todo = append(todo, c)
		}
	}
	finished := len(all) - len(todo)
	var mu sync.Mutex
	return parallel.Ordered(ctx, len(todo), max(1, g.Concurrent), func(i int) (store.Sample, error) {
		c := todo[i]
		o, err := solve(ctx, c)
		if err != nil && ctx.Err() != nil {
			return store.Sample{}, ctx.Err()
		}
		x := store.Sample{Key: c.Key(), Strategy: c.Strategy, Problem: g.Problems[c.Index], Index: c.Index, Seed: c.Seed}
		if err != nil {
			x.Error = err.Error()
		} else {
			x.Answer, x.Class, x.Correct, x.TotalTokens, x.CriticalPathTokens = o.Answer, o.Class, o.Correct, o.TotalTokens, o.CriticalPathTokens
			x.Threads, x.LatencyMS = o.Threads, o.LatencyMS
			if o.Tree != nil {
				x.Tree, _ = json.Marshal(o.Tree)
			}
		}
		// Commit here, as soon as the cell is done, not in order.
		if err := st.Save(ctx, run, x); err != nil {
			return store.Sample{}, err
		}
		mu.Lock()
		finished++
		if g.Progress != nil {
			g.Progress(finished, len(all))
		}
		mu.Unlock()
		return x, nil
	}, func(int, store.Sample) error { return nil })
}

// StrategyReport summarises one strategy.
type StrategyReport struct {
	Name     string    `json:"name"`
	N        int       `json:"n"`       // problems
	Samples  int       `json:"samples"` // per problem
	Accuracy float64   `json:"accuracy"`
	CI95     []float64 `json:"ci95"`
	// PassAtK and MajAtK map k to the unbiased estimates, for k up to the
	// samples taken.
	PassAtK            map[int]float64 `json:"pass_at_k,omitempty"`
	MajAtK             map[int]float64 `json:"maj_at_k,omitempty"`
	MeanTotalTokens    float64         `json:"mean_total_tokens"`
	MeanCriticalTokens float64         `json:"mean_critical_path_tokens"`
	LatencyP50MS       float64         `json:"latency_p50_ms"`
	LatencyP95MS       float64         `json:"latency_p95_ms"`
	TokensPerCorrect   float64         `json:"tokens_per_correct"`
	Errors             int             `json:"errors,omitempty"`
}

// PairedReport compares a strategy with the baseline on the same problems.
type PairedReport struct {
	A      string    `json:"a"`
	B      string    `json:"b"`
	Diff   float64   `json:"diff"`
	CI95   []float64 `json:"ci95"`
	PValue float64   `json:"p_value"`
	// InNoise says the interval holds 0; ProblemsNeeded is how many
	// problems would show a difference of this size (80% power, 5%).
	InNoise        bool `json:"in_noise"`
	ProblemsNeeded int  `json:"problems_needed,omitempty"`
}

// Report is a run's summary.
type Report struct {
	Strategies []StrategyReport `json:"strategies"`
	Paired     []PairedReport   `json:"paired"`
}

// Summarize computes the report of a run's samples, comparing every
// strategy with the first.
func Summarize(strategies []string, samples []store.Sample) Report {
	type acc struct {
		byProblem map[int][]float64
		classes   map[int][]string
		correctOf map[int]map[string]bool
		tokens    []float64
		critical  []float64
		latency   []float64
		correct   int
		total     int
		errors    int
	}
	per := map[string]*acc{}
	for _, s := range strategies {
		per[s] = &acc{byProblem: map[int][]float64{}, classes: map[int][]string{}, correctOf: map[int]map[string]bool{}}
	}
	for _, x := range samples {
		a := per[x.Strategy]
		if a == nil {
			continue
		}
		v := 0.0
		if x.Correct {
			v = 1
			a.correct++
		}
		a.byProblem[x.Index] = append(a.byProblem[x.Index], v)
		class := x.Class
		a.classes[x.Index] = append(a.classes[x.Index], class)
		if a.correctOf[x.Index] == nil {
			a.correctOf[x.Index] = map[string]bool{}
		}
		if class != "" && x.Correct {
			a.correctOf[x.Index][class] = true
		}
		a.tokens = append(a.tokens, float64(x.TotalTokens))
		a.critical = append(a.critical, float64(x.CriticalPathTokens))
		a.latency = append(a.latency, float64(x.LatencyMS))
		a.total += x.TotalTokens
		if x.Error != "" {
			a.errors++
		}
	}
	var r Report
	means := map[string]map[int]float64{}
	for _, s := range strategies {
		a := per[s]
		var scores [][]float64
		means[s] = map[int]float64{}
		k := 0
		for i, v := range a.byProblem {
			scores = append(scores, v)
			means[s][i] = mean(v)
			k = max(k, len(v))
		}
		ci := stats.Clustered(scores)
		sr := StrategyReport{Name: s, N: len(scores), Samples: k, Accuracy: ci.Estimate, CI95: []float64{ci.Low, ci.High},
			MeanTotalTokens: mean(a.tokens), MeanCriticalTokens: mean(a.critical),
			LatencyP50MS: finite(stats.Percentile(a.latency, 50)), LatencyP95MS: finite(stats.Percentile(a.latency, 95)), Errors: a.errors}
		if a.correct > 0 {
			sr.TokensPerCorrect = float64(a.total) / float64(a.correct)
		}
		if k > 1 {
			sr.PassAtK, sr.MajAtK = map[int]float64{}, map[int]float64{}
			for kk := 1; kk <= k; kk *= 2 {
				var pass, maj float64
				for i, v := range a.byProblem {
					c := 0
					for _, x := range v {
						if x == 1 {
							c++
						}
					}
					pass += stats.PassAtK(len(v), c, kk)
					maj += majAt(a.classes[i], a.correctOf[i], kk)
				}
				sr.PassAtK[kk] = pass / float64(len(a.byProblem))
				sr.MajAtK[kk] = maj / float64(len(a.byProblem))
			}
		}
		r.Strategies = append(r.Strategies, sr)
	}
	if len(strategies) > 1 {
		base := strategies[0]
		for _, s := range strategies[1:] {
			var a, b []float64
			for i, v := range means[s] {
				if w, ok := means[base][i]; ok {
					a, b = append(a, v), append(b, w)
				}
			}
			p, err := stats.Compare(a, b)
			if err != nil {
				continue
			}
			pr := PairedReport{A: s, B: base, Diff: p.Diff.Estimate, CI95: []float64{p.Diff.Low, p.Diff.High}, PValue: p.PValue,
				InNoise: p.Diff.Low <= 0 && 0 <= p.Diff.High}
			if pr.InNoise {
				pr.ProblemsNeeded = stats.ProblemsToDetect(p.Diff.Estimate, p.SD)
			}
			r.Paired = append(r.Paired, pr)
		}
	}
	return r
}

// majAt is maj@k for one problem's sample classes.
func majAt(classes []string, correct map[string]bool, k int) float64 {
	ids := map[string]int{}
	answers := make([]int, len(classes))
	right := map[int]bool{}
	for i, c := range classes {
		if c == "" {
			answers[i] = -1
			continue
		}
		id, ok := ids[c]
		if !ok {
			id = len(ids)
			ids[c] = id
		}
		answers[i] = id
		right[id] = correct[c]
	}
	return stats.MajAtK(answers, right, k)
}

// mean is 0 for no data: a report must encode as JSON, which has no NaN.
func mean(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}
