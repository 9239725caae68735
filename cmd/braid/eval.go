package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/braid-dev/braid/engine"
	"github.com/braid-dev/braid/eval"
	"github.com/braid-dev/braid/eval/stats"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/store"
	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/task/perturb"
	"github.com/braid-dev/braid/tokenizer/chat"
	"github.com/spf13/cobra"
)

// evalConfig is what defines an evaluation run: rerunning the same
// command finds the same run and resumes it. The store keeps and hashes
// it with its credentials hidden (a --backend URL's password or api_key).
type evalConfig struct {
	Task           string            `json:"task"`
	Problems       []json.RawMessage `json:"problems"`
	Strategies     []string          `json:"strategies"`
	Seeds          int               `json:"seeds"`
	Env            string            `json:"env"`
	Temperature    float64           `json:"temperature"`
	MaxTokens      int               `json:"max_tokens"`
	MaxTotalTokens int               `json:"max_total_tokens"`
	Model          string            `json:"model"`
	Perturb        string            `json:"perturb,omitempty"`
	MaxDepth       int               `json:"max_depth,omitempty"`
	// Context is --context, recorded only when set.
	Context    int  `json:"context,omitempty"`
	JoinAtGoal bool `json:"join_at_goal,omitempty"`
	// Weights and KVCache are --weights and --kv-cache-type, recorded
	// only when they are not the defaults, so that earlier runs keep
	// their ids: they change the numbers, and so the samples.
	Weights string `json:"weights,omitempty"`
	KVCache string `json:"kv_cache,omitempty"`
	// IndexTopK is the positions a token attended to where the engine
	// attended sparsely, 0 (and so absent) where it attended densely.
	IndexTopK int `json:"index_topk,omitempty"`
	// ModelSum fingerprints the embedded engine's model files (config,
	// tokenizer, weights); runs before it was kept lack it.
	ModelSum string `json:"model_sum,omitempty"`
	// API is "chat" for a --backend driven through its chat template;
	// runs over raw completions, the only way before, record nothing and
	// keep their ids.
	API string `json:"api,omitempty"`
}

// evalFlags are braid eval's flags.
type evalFlags struct {
	runFlags
	input, strategies string
	n, seeds          int
	problemSeed       uint64
	split             string
	dbPath, runID     string
	asJSON, skipBad   bool
	lease             time.Duration
	perturbName       string
	alone             int
}

func newEvalCmd() *cobra.Command {
	var fl evalFlags
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Evaluate strategies on many problems, with confidence intervals, resumably",
		Long: `Run every strategy on every problem (--seeds times each), saving each sample
to the database as it finishes (SQLite, or PostgreSQL: --db), then print a table: accuracy
with a 95% interval clustered by problem, the paired difference against the
first strategy with its interval and p-value, pass@k and maj@k when samples
repeat, mean total and critical-path tokens, latency percentiles and tokens
per correct answer. A difference inside the noise says how many problems
would show it. Stopped at any moment (Ctrl-C, kill -9), the same command
resumes: samples already saved are not taken again. A run records the
model it ran (a fingerprint of its files): the same command on another
model, such as a newer braid's embedded one, starts a run of its own, and a
--run named for a run of another model is refused, naming what differs.

Scale out by starting the same command on several machines with one
PostgreSQL database (--db postgres://...): the workers share the run, each
cell is taken by one of them, a worker that dies has its cells taken over
when its claims lapse (--lease), and each prints the run's report when the
last cell is done.

Countdown problems come from --input (JSONL as 'braid gen problems' writes
them) or are drawn from the test split (--n, --problem-seed; --split
validation draws problems to tune and stop a training run on, none of them
among the seed's first 10,000 test problems). Math problems
come from --input, JSONL in GSM8K ({"question", "answer": "... #### N"}), MATH
({"problem", "solution" with \boxed{}}) or braid's ({"text", "answer"}) shape,
and need --backend. A malformed line stops the run, naming it; --skip-bad
skips such lines, each reported.`,
		Example: `  braid eval --n 500 --strategies serial,apr
  braid eval --model runs/countdown/checkpoint --n 100 --env fill
  braid eval --strategies serial,apr,vote:k=8 --temperature 1 --n 200 --json > grid.json
  braid eval --db postgres://braid@db.local/braid --run big --n 500 --strategies serial,apr   # on each machine
  braid eval --task math --input gsm8k.jsonl --backend http://127.0.0.1:8000/v1 --strategies serial,vote:k=8 --temperature 0.8`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error { return fl.run(cmd) },
	}
	fl.taskUsage = "countdown or math; countdown:apr[,sub-call-budget=N|,token-budget=N] writes the released APR checkpoints' prompts"
	fl.concurrentUsage = "samples taken at once"
	fl.backendUsage = "OpenAI-compatible server(s) instead of the embedded model"
	fl.register(cmd)
	f := cmd.Flags()
	f.StringVar(&fl.input, "input", "", "problems, JSONL ('-' for stdin); default for countdown: --n drawn from the test split")
	f.IntVar(&fl.n, "n", 100, "countdown problems to draw from --split, without --input")
	f.Uint64Var(&fl.problemSeed, "problem-seed", 2, "the seed of the drawn problems")
	f.StringVar(&fl.split, "split", task.SplitTest, "the split --n problems are drawn from: test, or validation (apart from the seed's test problems: to tune and stop training on)")
	f.StringVar(&fl.strategies, "strategies", "serial,apr", "comma-separated strategies, the first the baseline")
	f.IntVar(&fl.seeds, "seeds", 1, "samples per strategy and problem (with --temperature)")
	f.StringVar(&fl.dbPath, "db", "braid.db", "the database that keeps the samples: a SQLite file, or a postgres:// address that several workers share")
	f.StringVar(&fl.runID, "run", "", "the run's id (default: a hash of the configuration, so the same command resumes, and workers given the same flags share it)")
	f.DurationVar(&fl.lease, "lease", 2*time.Minute, "how long a worker's claim on a cell lives unrenewed: a dead worker's cells go to others after this")
	f.BoolVar(&fl.asJSON, "json", false, "print JSON: strategies, paired comparisons, samples")
	f.StringVar(&fl.perturbName, "perturb", "", "also run every cell on a perturbed problem and report robustness: distractors (a sentence appended to math problems; for Countdown a tempting dead-end first move)")
	f.IntVar(&fl.alone, "alone", 0, "after the run, time the first N problems of each strategy again one at a time, nothing else running: the latency of one answer, beside the run's queued one (not stored; the prompts may still be in the engine's prefix cache, as a repeated request's would be)")
	f.BoolVar(&fl.skipBad, "skip-bad", false, "skip malformed lines of --input (each reported) instead of stopping at the first")
	return cmd
}

// run runs the evaluation the flags describe.
func (fl *evalFlags) run(cmd *cobra.Command) error {
	ctx := cmd.Context()
	names := reason.SplitSpecs(fl.strategies)
	t, o, err := fl.check()
	if err != nil {
		return err
	}
	cfg, err := fl.config()
	if err != nil {
		return err
	}
	if chat, _ := chatAPI(fl.api, t); chat && len(fl.remoteURLs) > 0 {
		cfg.API = "chat"
	}
	problems, err := fl.problems(cmd, t)
	if err != nil {
		return err
	}
	for _, p := range problems {
		cfg.Problems = append(cfg.Problems, t.Encode(p))
	}
	runner := eval.Runner{Task: t, Problems: problems, Options: o, RetryBudget: fl.retryBudget}
	if err := runner.Check(names, cfg.Perturb); err != nil {
		return usageErrorf("--strategies: %v", err)
	}
	b, closeB, err := fl.backend(t)
	if err != nil {
		return err
	}
	defer closeB()
	runner.Backend = b
	if e := embedded(b); e != nil && e.Options().Attention == engine.AttentionSparse {
		cfg.IndexTopK = e.Options().IndexTopK
	}
	if _, ok := b.(*chat.Backend); ok {
		cfg.API = "chat" // the engine renders through the model's template
	}
	if len(fl.remoteURLs) == 0 {
		if sum, err := fl.ef.fingerprint(); err != nil {
			return err
		} else if sum != cfg.ModelSum {
			return fmt.Errorf("the model's files changed while it was loading (%s); try again once they are written", fl.ef.modelDir)
		}
	}
	runID := fl.runID
	if runID == "" {
		if runID, err = store.RunID(cfg); err != nil {
			return err
		}
	}
	st, err := store.Open(ctx, fl.dbPath)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.StartRun(ctx, runID, cfg); err != nil {
		return err
	}
	setting := fl.setting(t, embedded(b), cfg.Perturb)
	fmt.Fprintf(cmd.ErrOrStderr(), "run %s in %s: %d strategies × %d problems × %d seeds, %s\n",
		runID, store.Redact(fl.dbPath), len(names), len(cfg.Problems), fl.seeds, setting)
	grid := eval.Grid{Strategies: names, Problems: cfg.Problems, Seeds: fl.seeds, Perturb: cfg.Perturb, Concurrent: fl.concurrent, Lease: fl.lease}
	start := time.Now()
	if err := runGrid(ctx, cmd.ErrOrStderr(), grid, st, runID, runner.Solve); err != nil {
		return err
	}
	samples, err := st.Samples(ctx, runID)
	if err != nil {
		return err
	}
	rep := eval.Summarize(names, samples)
	fmt.Fprintf(cmd.ErrOrStderr(), "done in %s\n", time.Since(start).Round(time.Millisecond))
	if fl.alone > 0 {
		n := min(fl.alone, len(cfg.Problems))
		bar := newProgress(cmd.ErrOrStderr(), n*len(names), "alone")
		alone, err := eval.TimeAlone(ctx, names, len(cfg.Problems), n, runner.Solve, func() { bar.add(1) })
		bar.finish()
		if err != nil {
			return err
		}
		for i, s := range rep.Strategies {
			if a, ok := alone[s.Name]; ok {
				rep.Strategies[i].Alone = &a
			}
		}
	}
	if fl.asJSON {
		return printEvalJSON(cmd.OutOrStdout(), runID, rep, samples)
	}
	return printEvalTable(cmd.OutOrStdout(), rep, setting, fl.concurrent)
}

// config checks eval's own flags and returns the run's configuration,
// without its problems.
func (fl *evalFlags) config() (evalConfig, error) {
	if fl.seeds < 1 || fl.n < 1 {
		return evalConfig{}, usageErrorf("--seeds and --n must be positive")
	}
	if fl.alone < 0 {
		return evalConfig{}, usageErrorf("--alone %d: want a number of problems, 0 for none", fl.alone)
	}
	if fl.lease < time.Second {
		return evalConfig{}, usageErrorf("--lease %s: want at least 1s", fl.lease)
	}
	if fl.seeds > 1 && fl.temperature == 0 {
		return evalConfig{}, usageErrorf("--seeds %d with greedy decoding would repeat each sample: set --temperature", fl.seeds)
	}
	kind, err := perturb.Parse(fl.perturbName)
	if err != nil {
		return evalConfig{}, usageErrorf("--perturb: %v", err)
	}
	cfg := evalConfig{Task: fl.taskName, Strategies: reason.SplitSpecs(fl.strategies), Seeds: fl.seeds, Env: fl.envMode, Temperature: fl.temperature,
		MaxTokens: fl.maxTokens, MaxTotalTokens: fl.maxTotal, Model: fl.ef.modelDir, Perturb: string(kind), Context: fl.ef.context,
		JoinAtGoal: fl.joinAtGoal}
	if fl.maxDepth > 1 {
		cfg.MaxDepth = fl.maxDepth // recorded only when it differs, so earlier runs keep their ids
	}
	if len(fl.remoteURLs) > 0 {
		cfg.Model = strings.Join(fl.remoteURLs, ",") + " " + fl.remoteModel
		return cfg, nil
	}
	// Taken before the engine loads the files and checked after: a
	// checkpoint rewritten meanwhile (a training run saving) is not
	// recorded as the model it replaced.
	if cfg.ModelSum, err = fl.ef.fingerprint(); err != nil {
		return evalConfig{}, err
	}
	opts, err := fl.ef.options()
	if err != nil {
		return evalConfig{}, err
	}
	if opts.Weights != engine.WeightsF16 {
		cfg.Weights = string(opts.Weights)
	}
	if opts.KV8 {
		cfg.KVCache = "q8"
	}
	return cfg, nil
}

// problems reads --input, or draws --n problems of a task that draws its
// own.
func (fl *evalFlags) problems(cmd *cobra.Command, t task.Task) ([]task.Problem, error) {
	if fl.input != "" {
		if cmd.Flags().Changed("split") {
			return nil, usageErrorf("--split chooses the problems --n draws; --input gives them")
		}
		return readTaskProblems(t, fl.input, cmd.InOrStdin(), fl.skipBad, cmd.ErrOrStderr())
	}
	g, ok := t.(task.Generator)
	if !ok {
		return nil, usageErrorf("--task %s needs --input FILE.jsonl (for math: GSM8K, MATH or {\"text\", \"answer\"} lines)", t.Name())
	}
	if err := checkMeasureSplit("--split", fl.split); err != nil {
		return nil, err
	}
	return task.Draw(g, fl.problemSeed, fl.split, fl.n)
}

// checkMeasureSplit says why flag's split is none a model is measured on
// (test, or validation), or nil.
func checkMeasureSplit(flag, split string) error {
	if split != task.SplitTest && split != task.SplitValidation {
		return usageErrorf("%s %q: want %s or %s", flag, split, task.SplitTest, task.SplitValidation)
	}
	return nil
}

// setting names the run's environment and sampling for the report.
func (fl *evalFlags) setting(t task.Task, e *engine.Engine, perturbation string) string {
	setting := fmt.Sprintf("temperature %g", fl.temperature)
	if _, ok := t.(task.Environment); ok {
		setting = "env " + fl.envMode + ", " + setting
	}
	if e != nil {
		setting += fmt.Sprintf(", context %d, weights %s", e.Config().MaxSeq, e.Options().Weights)
		if e.Options().KV8 {
			setting += ", 8-bit cache"
		}
		if e.Options().Attention == engine.AttentionSparse {
			setting += fmt.Sprintf(", sparse attention (top %d)", e.Options().IndexTopK)
		}
	}
	if fl.joinAtGoal {
		setting += ", join at goal"
	}
	if perturbation != "" {
		setting += ", each cell also on its " + perturbation + " twin"
	}
	return setting
}

// runGrid runs a grid with a progress bar on log, saying how to resume
// when it is stopped. A resumed run's bar counts the cells left, so that
// its rate and time left are this run's, not inflated by the cells stored
// before.
func runGrid(ctx context.Context, log io.Writer, grid eval.Grid, st *store.Store, runID string, solve func(context.Context, eval.Cell) (eval.Outcome, error)) error {
	var (
		bar     *progress
		started bool
		last    int
	)
	grid.Progress = func(done, total int) {
		if !started { // the cells done when the run starts
			started, last = true, done
			desc := "eval"
			if done > 0 {
				desc = fmt.Sprintf("eval (resumed, %d of %d stored before)", done, total)
			}
			bar = newProgress(log, total-done, desc)
			return
		}
		bar.add(done - last)
		last = done
	}
	var told time.Time
	grid.Waiting = func(held int) {
		if time.Since(told) > 30*time.Second {
			told = time.Now()
			fmt.Fprintf(log, "\nwaiting: other workers hold the last %d cells (taken over if their claims lapse)\n", held)
		}
	}
	err := grid.Run(ctx, st, runID, solve)
	bar.finish()
	if err != nil && ctx.Err() != nil {
		fmt.Fprintf(log, "stopped; the same command resumes run %s\n", runID)
	}
	return err
}

// printEvalTable prints the report; setting names the run's environment
// and sampling.
func printEvalTable(out io.Writer, rep eval.Report, setting string, concurrent int) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\tproblems\tsamples\taccuracy\t95% CI\ttotal tokens\tcritical path\tspeedup\tthreads\tdepth\tp50 ms\tp95 ms\ttokens/correct\t")
	for _, s := range rep.Strategies {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f%%\t%.1f–%.1f\t%.0f\t%.0f\t%.2fx\t%.1f\t%d\t%.0f\t%.0f\t%.0f\t\n", s.Name, s.N, s.Samples, 100*s.Accuracy,
			100*s.CI95[0], 100*s.CI95[1], s.MeanTotalTokens, s.MeanCriticalTokens, s.Speedup, s.MeanThreads, s.MaxDepth, s.LatencyP50MS, s.LatencyP95MS, s.TokensPerCorrect)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range rep.Strategies {
		if c := s.Confidence; c != nil && c.LowestGroup != nil && c.Tail != nil {
			fmt.Fprintf(out, "%s: lowest group confidence predicts a thread's success with AUROC %.2f (%.2f–%.2f), its tail %.2f (%.2f–%.2f), over %d threads (%d succeeded, %d pruned)\n",
				s.Name, c.LowestGroup[0], c.LowestGroup[1], c.LowestGroup[2], c.Tail[0], c.Tail[1], c.Tail[2], c.Threads, c.Solved, c.Pruned)
		}
	}
	for _, s := range rep.Strategies {
		if s.FormatErrors > 0 {
			fmt.Fprintf(out, "%s: %d places where the model's parallel structure was malformed, closed by braid and counted\n", s.Name, s.FormatErrors)
		}
	}
	fmt.Fprintf(out, "(%s; intervals clustered by problem)\n", setting)
	if concurrent > 1 {
		// A sample's wall time then waits on the others it shares the
		// machine with: say so beside the latencies.
		fmt.Fprintf(out, "(latencies: a sample's wall time with %d problems at once, queueing behind each other included; --alone N times N problems one at a time)\n", concurrent)
	}
	for _, s := range rep.Strategies {
		if a := s.Alone; a != nil {
			fmt.Fprintf(out, "%s alone: p50 %.0f ms, p95 %.0f ms over %d problems one at a time", s.Name, a.P50MS, a.P95MS, a.N)
			if a.Errors > 0 {
				fmt.Fprintf(out, " (%d failed, not timed)", a.Errors)
			}
			fmt.Fprintln(out)
		}
	}
	for _, s := range rep.Strategies {
		if l := s.PassLine(); l != "" {
			fmt.Fprintln(out, l)
		}
	}
	for _, s := range rep.Strategies {
		o := s.Overthinking
		var parts []string
		if o.ShareAfterAnswer != nil {
			parts = append(parts, fmt.Sprintf("%.0f%% of tokens spent after the answer was found (found in %d of %d samples)",
				100**o.ShareAfterAnswer, o.AnswerFound, o.Samples))
		}
		var caps []string
		for _, c := range o.Caps {
			caps = append(caps, fmt.Sprintf("%dk %.1f%%", c.MaxTokens/1024, 100*c.Accuracy))
		}
		if len(caps) > 0 {
			parts = append(parts, "accuracy within "+strings.Join(caps, ", ")+" tokens")
		}
		if len(parts) > 0 {
			fmt.Fprintf(out, "%s: %s\n", s.Name, strings.Join(parts, "; "))
		}
		if r := s.Robustness; r != nil && r.N > 0 {
			fmt.Fprintf(out, "%s with %s: accuracy %.1f%% → %.1f%% (%+.1f points", s.Name, r.Perturbation,
				100*r.CleanAccuracy, 100*r.PerturbedAccuracy, 100*r.Diff)
			if r.PValue != nil {
				fmt.Fprintf(out, ", 95%% CI %+.1f to %+.1f, %s", 100*r.DiffCI95[0], 100*r.DiffCI95[1], stats.FormatP(*r.PValue))
			}
			fmt.Fprint(out, ")")
			if r.ErrorRateRatio != nil {
				fmt.Fprintf(out, ", error rate ×%.2f", *r.ErrorRateRatio)
			}
			if r.TokenRatio != nil {
				fmt.Fprintf(out, ", tokens ×%.2f", *r.TokenRatio)
			}
			fmt.Fprintln(out)
		}
	}
	for _, p := range rep.Paired {
		fmt.Fprintln(out, p.Line())
		if line := p.CriticalPathLine(); line != "" {
			fmt.Fprintln(out, line)
		}
	}
	return nil
}

func printEvalJSON(out io.Writer, run string, rep eval.Report, samples []store.Sample) error {
	type sampleOut struct {
		Strategy string          `json:"strategy"`
		Problem  json.RawMessage `json:"problem"`
		Seed     uint64          `json:"seed"`
		Correct  bool            `json:"correct"`
		Answer   string          `json:"answer"`
		Error    string          `json:"error,omitempty"`
	}
	doc := struct {
		Run        string                `json:"run"`
		Strategies []eval.StrategyReport `json:"strategies"`
		Paired     []eval.PairedReport   `json:"paired"`
		Samples    []sampleOut           `json:"samples"`
	}{Run: run, Strategies: rep.Strategies, Paired: rep.Paired}
	for _, x := range samples {
		doc.Samples = append(doc.Samples, sampleOut{x.Strategy, x.Problem, x.Seed, x.Correct, x.Answer, x.Error})
	}
	return printJSON(out, doc)
}
