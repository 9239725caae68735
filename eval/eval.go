// Package eval runs experiment grids (strategies × problems × seeds) into
// a durable store, and summarises them with the statistics a reader can
// trust: accuracies with 95% intervals clustered by problem, paired
// differences against a baseline with their p-values, pass@k and maj@k,
// token and latency costs, and a warning when a difference is inside the
// noise.
package eval

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braid-dev/braid/eval/stats"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/store"
)

// Cell is one sample to take: a strategy on a problem, perturbed or not,
// with a seed.
type Cell struct {
	Strategy string
	Index    int // the problem's index
	Seed     uint64
	// Perturb names the perturbation the problem is given with ("" for
	// the clean problem).
	Perturb string
}

// Name is the cell's strategy as the store records it: perturbed cells
// under "STRATEGY+PERTURBATION".
func (c Cell) Name() string {
	if c.Perturb == "" {
		return c.Strategy
	}
	return c.Strategy + "+" + c.Perturb
}

// Key is the cell's key in the store.
func (c Cell) Key() string { return fmt.Sprintf("%s|%d|%d", c.Name(), c.Index, c.Seed) }

// Outcome is what a cell produced.
type Outcome struct {
	Answer  string
	Correct bool
	Class   string // the answer's equivalence class ("" for none), for maj@k
	// Verified says the task could tell whether the answer is right (a
	// checker, or a reference answer); without it Correct is false.
	Verified bool
	reason.Usage
	// TokensToGoal counts the tokens spent when the answer was first
	// found, -1 when it was not or the task cannot tell.
	TokensToGoal int
	Tree         any
}

// Grid is an experiment: every strategy on every problem, Seeds times.
type Grid struct {
	Strategies []string
	Problems   []json.RawMessage
	Seeds      int
	// Perturb, when set, adds to every cell its twin on the perturbed
	// problem, for the robustness figures.
	Perturb string
	// Concurrent bounds the cells this worker runs at once.
	Concurrent int
	// Worker names this process in the store's claims; default
	// host:pid:nonce, which lets a worker on the same host see that the
	// holder of stale claims has died.
	Worker string
	// Lease is how long a claim on a cell lives without renewal; a worker
	// renews its claims every Lease/4 while it works, so only a dead
	// worker's claims lapse. Default 2 minutes.
	Lease time.Duration
	// Progress, when set, is told the run's cells done (by any worker),
	// of total: once as it starts (a resumed run's cells stored before),
	// then after each cell this worker finishes.
	Progress func(done, total int)
	// Waiting, when set, is told when this worker has nothing to claim
	// while other workers still hold cells (how many they hold).
	Waiting func(held int)
}

// Cells lists the grid's cells in a fixed order.
func (g Grid) Cells() []Cell {
	var cells []Cell
	for i := range g.Problems {
		for _, s := range g.Strategies {
			for seed := 1; seed <= g.Seeds; seed++ {
				cells = append(cells, Cell{Strategy: s, Index: i, Seed: uint64(seed)})
				if g.Perturb != "" {
					cells = append(cells, Cell{Strategy: s, Index: i, Seed: uint64(seed), Perturb: g.Perturb})
				}
			}
		}
	}
	return cells
}

// Run works through the run's cells with any other workers sharing the
// store: it claims cells no one holds, at most Concurrent at once, and
// commits each as it finishes, until every cell of the grid is done. A run
// stopped at any moment goes on from where it was when run again. A cell
// whose solve fails (other than by ctx) is stored with its error, as a
// wrong answer.
func (g Grid) Run(ctx context.Context, st *store.Store, run string, solve func(context.Context, Cell) (Outcome, error)) error {
	all := g.Cells()
	byKey := make(map[string]Cell, len(all))
	keys := make([]string, len(all))
	for i, c := range all {
		keys[i] = c.Key()
		byKey[keys[i]] = c
	}
	if err := st.AddCells(ctx, run, keys); err != nil {
		return err
	}
	worker := g.Worker
	if worker == "" {
		worker = newWorkerID()
	}
	lease := g.Lease
	if lease <= 0 {
		lease = 2 * time.Minute
	}
	if err := releaseDead(ctx, st, run, worker); err != nil {
		return err
	}
	if g.Progress != nil {
		todo, _, err := st.Remaining(ctx, run)
		if err != nil {
			return err
		}
		g.Progress(len(all)-todo, len(all))
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Whatever this worker still holds when it stops goes back at once,
	// for the next run or the other workers; a store that cannot be
	// reached gets a few seconds, then the leases lapse on their own.
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		st.Release(rctx, run, worker)
	}()
	go renew(ctx, cancel, st, run, worker, lease)

	var wg sync.WaitGroup
	var progress sync.Mutex
	var inFlight atomic.Int64 // cells this worker holds
	for range max(1, g.Concurrent) {
		wg.Go(func() {
			for ctx.Err() == nil {
				got, err := st.Claim(ctx, run, worker, 1, lease)
				if err != nil {
					cancel(err)
					return
				}
				if len(got) == 0 {
					todo, held, err := st.Remaining(ctx, run)
					if err != nil {
						cancel(err)
						return
					}
					if todo == 0 {
						return
					}
					// Others hold the rest: wait, in case one dies and
					// its claims lapse.
					if others := held - int(inFlight.Load()); others > 0 && g.Waiting != nil {
						g.Waiting(others)
					}
					if err := releaseDead(ctx, st, run, worker); err != nil {
						cancel(err)
						return
					}
					select {
					case <-ctx.Done():
					case <-time.After(min(lease/4, 2*time.Second)):
					}
					continue
				}
				c, ok := byKey[got[0]]
				if !ok {
					cancel(fmt.Errorf("eval: run %s holds cell %q, which this grid does not have", run, got[0]))
					return
				}
				inFlight.Add(1)
				err = g.take(ctx, st, run, c, solve)
				inFlight.Add(-1)
				if err != nil {
					cancel(err)
					return
				}
				if g.Progress != nil {
					todo, _, err := st.Remaining(ctx, run)
					if err != nil {
						cancel(err)
						return
					}
					progress.Lock()
					g.Progress(len(all)-todo, len(all))
					progress.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// take solves one cell and commits its sample.
func (g Grid) take(ctx context.Context, st *store.Store, run string, c Cell, solve func(context.Context, Cell) (Outcome, error)) error {
	o, err := solve(ctx, c)
	if err != nil && ctx.Err() != nil {
		return context.Cause(ctx)
	}
	x := store.Sample{Key: c.Key(), Strategy: c.Name(), Problem: g.Problems[c.Index], Index: c.Index, Seed: c.Seed}
	if err != nil {
		x.Error, x.TokensToGoal = err.Error(), -1
	} else {
		x.Answer, x.Class, x.Correct, x.Usage, x.TokensToGoal = o.Answer, o.Class, o.Correct, o.Usage, o.TokensToGoal
		if o.Tree != nil {
			if x.Tree, err = json.Marshal(o.Tree); err != nil {
				return fmt.Errorf("eval: the trace tree of %s: %w", c.Key(), err)
			}
		}
	}
	return st.Save(ctx, run, x)
}

// renew keeps worker's claims alive every lease/4 until ctx ends. A store
// that cannot be reached for most of a lease stops the run: its claims are
// about to lapse, and another worker would redo its cells.
func renew(ctx context.Context, cancel context.CancelCauseFunc, st *store.Store, run, worker string, lease time.Duration) {
	t := time.NewTicker(max(lease/4, time.Millisecond))
	defer t.Stop()
	failed := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := st.Renew(ctx, run, worker, lease); err != nil {
			if failed++; failed >= 3 && ctx.Err() == nil {
				cancel(err)
				return
			}
			continue
		}
		failed = 0
	}
}

// newWorkerID names this process: host, pid namespace, pid and a random
// nonce (a pid can be reused after a crash).
func newWorkerID() string {
	host, _ := os.Hostname()
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s:%s:%d:%s", host, pidNamespace(), os.Getpid(), hex.EncodeToString(b[:]))
}

// releaseDead frees the claims of workers on this host, in this pid
// namespace, whose processes have died (killed, say, with kill -9), so a
// resumed run need not wait for their leases to lapse. Workers elsewhere
// (other hosts, other containers) are left to their leases, as is any
// worker of this very process.
func releaseDead(ctx context.Context, st *store.Store, run, self string) error {
	ws, err := st.Claimants(ctx, run)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	ns := pidNamespace()
	for _, w := range ws {
		parts := strings.Split(w, ":")
		if w == self || len(parts) != 4 || parts[0] != host || parts[1] != ns || ns == "" {
			continue
		}
		pid, err := strconv.Atoi(parts[2])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if !processAlive(pid) {
			if err := st.Release(ctx, run, w); err != nil {
				return err
			}
		}
	}
	return nil
}

// StrategyReport summarises one strategy.
type StrategyReport struct {
	Name     string    `json:"name"`
	N        int       `json:"n"`       // problems
	Samples  int       `json:"samples"` // per problem
	Accuracy float64   `json:"accuracy"`
	CI95     []float64 `json:"ci95"`
	// PassAtK and MajAtK map k to the unbiased estimates, for k up to the
	// samples taken, and their CI95 maps to each one's 95% interval over
	// problems.
	PassAtK            map[int]float64   `json:"pass_at_k,omitempty"`
	PassAtKCI95        map[int][]float64 `json:"pass_at_k_ci95,omitempty"`
	MajAtK             map[int]float64   `json:"maj_at_k,omitempty"`
	MajAtKCI95         map[int][]float64 `json:"maj_at_k_ci95,omitempty"`
	MeanTotalTokens    float64           `json:"mean_total_tokens"`
	MeanCriticalTokens float64           `json:"mean_critical_path_tokens"`
	// LatencyP50MS and LatencyP95MS are the samples' wall times as the
	// run took them, queueing behind its other concurrent samples
	// included; Alone, when measured, is one sample at a time.
	LatencyP50MS     float64       `json:"latency_p50_ms"`
	LatencyP95MS     float64       `json:"latency_p95_ms"`
	Alone            *AloneLatency `json:"alone_latency,omitempty"`
	TokensPerCorrect float64       `json:"tokens_per_correct"`
	// Speedup is the parallel speedup the samples report: their tokens in
	// sequence over their critical paths (1 for a single thread).
	Speedup float64 `json:"speedup"`
	// MeanThreads is the mean number of threads a sample ran, MaxDepth
	// the deepest any sample's spawns nested.
	MeanThreads float64 `json:"mean_threads"`
	MaxDepth    int     `json:"max_depth"`
	// Confidence is how well the threads' confidence predicted their
	// success, when the runs measured it.
	Confidence *ConfidenceReport `json:"confidence,omitempty"`
	Errors     int               `json:"errors,omitempty"`
	// FormatErrors counts the places the samples' parallel structure was
	// malformed and closed by the orchestrator.
	FormatErrors int          `json:"format_errors,omitempty"`
	Overthinking Overthinking `json:"overthinking"`
	// CriticalPathCaps is the accuracy under each budget on a sample's
	// critical-path tokens (its longest chain of dependent tokens, the
	// latency a parallel run cannot hide), with 95% intervals: a sample
	// counts only if it was right and its critical path fit the budget.
	CriticalPathCaps []CapAccuracy `json:"accuracy_under_critical_path_caps,omitempty"`
	// Robustness is set when the run has the strategy's perturbed twin.
	Robustness *Robustness `json:"robustness,omitempty"`
}

// ConfidenceReport scores DeepConf's confidence measures as predictors of
// a thread's success (a run's root: its answer verified; a spawned
// thread: its goal reached): the area under the ROC curve of each, with a
// 95% bootstrap interval over problems (0.5 is chance).
type ConfidenceReport struct {
	Threads int `json:"threads"` // threads measured and judged
	Solved  int `json:"solved"`
	Pruned  int `json:"pruned"` // threads stopped for their confidence
	// AUROC of the lowest group confidence, the mean and the tail:
	// estimate, low, high; absent without both outcomes.
	LowestGroup []float64 `json:"auroc_lowest_group,omitempty"`
	Mean        []float64 `json:"auroc_mean,omitempty"`
	Tail        []float64 `json:"auroc_tail,omitempty"`
}

// judgedThread is what a stored tree says of a thread's confidence.
type judgedThread struct {
	Confidence *struct {
		Mean        float64 `json:"mean"`
		LowestGroup float64 `json:"lowest_group"`
		Tail        float64 `json:"tail"`
		Pruned      bool    `json:"pruned"`
	} `json:"confidence"`
	Solved   *bool           `json:"solved"`
	Children []*judgedThread `json:"children"`
}

// confidenceReport scores the measured threads of the samples' trees,
// clustered by problem; nil when no thread was measured.
func confidenceReport(samples []store.Sample) *ConfidenceReport {
	var r ConfidenceReport
	byProblem := map[int][3][]stats.Scored{}
	for _, x := range samples {
		var root judgedThread
		if len(x.Tree) == 0 || json.Unmarshal(x.Tree, &root) != nil {
			continue
		}
		c := byProblem[x.Index]
		var walk func(t *judgedThread)
		walk = func(t *judgedThread) {
			if t.Confidence != nil && t.Solved != nil {
				r.Threads++
				if *t.Solved {
					r.Solved++
				}
				if t.Confidence.Pruned {
					r.Pruned++
				}
				for i, v := range []float64{t.Confidence.LowestGroup, t.Confidence.Mean, t.Confidence.Tail} {
					c[i] = append(c[i], stats.Scored{Score: v, Positive: *t.Solved})
				}
			}
			for _, k := range t.Children {
				walk(k)
			}
		}
		walk(&root)
		byProblem[x.Index] = c
	}
	if r.Threads == 0 {
		return nil
	}
	for i, dst := range []*[]float64{&r.LowestGroup, &r.Mean, &r.Tail} {
		var clusters [][]stats.Scored
		for _, p := range slices.Sorted(maps.Keys(byProblem)) {
			clusters = append(clusters, byProblem[p][i])
		}
		if iv := stats.AUROCInterval(clusters, 1000, 1); !math.IsNaN(iv.Estimate) && !math.IsNaN(iv.Low) {
			*dst = []float64{iv.Estimate, iv.Low, iv.High}
		}
	}
	return &r
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
	// CriticalPathCaps compares the two at equal critical-path budgets:
	// the paired difference of their accuracies under each budget.
	CriticalPathCaps []CapDiff `json:"critical_path_caps,omitempty"`
}

// CapDiff is a paired difference in accuracy under one token budget.
type CapDiff struct {
	MaxTokens int       `json:"max_tokens"`
	Diff      float64   `json:"diff"`
	CI95      []float64 `json:"ci95"`
	PValue    float64   `json:"p_value"`
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
		byProblem    map[int][]float64
		classes      map[int][]string
		correctOf    map[int]map[string]bool
		tokens       []float64
		critical     []float64
		latency      []float64
		threads      []float64
		depth        int
		correct      int
		total        int
		errors       int
		formatErrors int
	}
	per := map[string]*acc{}
	for _, s := range strategies {
		per[s] = &acc{byProblem: map[int][]float64{}, classes: map[int][]string{}, correctOf: map[int]map[string]bool{}}
	}
	byName := map[string][]store.Sample{}
	for _, x := range samples {
		byName[x.Strategy] = append(byName[x.Strategy], x)
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
		a.threads = append(a.threads, float64(x.Threads))
		a.depth = max(a.depth, x.Depth)
		a.total += x.TotalTokens
		a.formatErrors += x.FormatErrors
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
		// In problem order: float sums must not depend on map order, or
		// the same samples would give reports differing in the last digit.
		problems := slices.Sorted(maps.Keys(a.byProblem))
		for _, i := range problems {
			v := a.byProblem[i]
			scores = append(scores, v)
			means[s][i] = mean(v)
			k = max(k, len(v))
		}
		ci := stats.Clustered(scores)
		sr := StrategyReport{Name: s, N: len(scores), Samples: k, Accuracy: ci.Estimate, CI95: []float64{ci.Low, ci.High},
			MeanTotalTokens: mean(a.tokens), MeanCriticalTokens: mean(a.critical),
			LatencyP50MS: finite(stats.Percentile(a.latency, 50)), LatencyP95MS: finite(stats.Percentile(a.latency, 95)), Errors: a.errors,
			FormatErrors: a.formatErrors, MeanThreads: mean(a.threads), MaxDepth: a.depth}
		if c := mean(a.critical); c > 0 {
			sr.Speedup = mean(a.tokens) / c
		}
		if a.correct > 0 {
			sr.TokensPerCorrect = float64(a.total) / float64(a.correct)
		}
		sr.Confidence = confidenceReport(byName[s])
		if k > 1 {
			sr.PassAtK, sr.MajAtK = map[int]float64{}, map[int]float64{}
			sr.PassAtKCI95, sr.MajAtKCI95 = map[int][]float64{}, map[int][]float64{}
			for kk := 1; kk <= k; kk *= 2 {
				pass := make([]float64, 0, len(problems))
				maj := make([]float64, 0, len(problems))
				for _, i := range problems {
					v := a.byProblem[i]
					c := 0
					for _, x := range v {
						if x == 1 {
							c++
						}
					}
					pass = append(pass, stats.PassAtK(len(v), c, kk))
					maj = append(maj, majAt(a.classes[i], a.correctOf[i], kk))
				}
				p, m := stats.OverProblems(pass), stats.OverProblems(maj)
				sr.PassAtK[kk], sr.PassAtKCI95[kk] = p.Estimate, []float64{p.Low, p.High}
				sr.MajAtK[kk], sr.MajAtKCI95[kk] = m.Estimate, []float64{m.Low, m.High}
			}
		}
		sr.Overthinking = overthinking(byName[s])
		sr.CriticalPathCaps = criticalPathCaps(byName[s], criticalCaps(byName[s]))
		for _, name := range slices.Sorted(maps.Keys(byName)) {
			if kind, ok := strings.CutPrefix(name, s+"+"); ok {
				rb := robustness(kind, byName[s], byName[name])
				sr.Robustness = &rb
				break
			}
		}
		r.Strategies = append(r.Strategies, sr)
	}
	if len(strategies) > 1 {
		base := strategies[0]
		for _, s := range strategies[1:] {
			var a, b []float64
			for _, i := range slices.Sorted(maps.Keys(means[s])) {
				v := means[s][i]
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
			pr.CriticalPathCaps = criticalPathDiffs(byName[s], byName[base])
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
