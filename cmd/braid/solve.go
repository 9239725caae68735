package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/engine"
	"github.com/braid-dev/braid/eval"
	"github.com/braid-dev/braid/eval/stats"
	"github.com/braid-dev/braid/internal/parallel"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/task/countdown"
	"github.com/braid-dev/braid/tokenizer/chat"
	"github.com/spf13/cobra"
)

// solveOutput is one problem's line of `braid solve --json`.
type solveOutput struct {
	Problem  json.RawMessage `json:"problem"`
	Strategy string          `json:"strategy"`
	// Env is the environment's mode, for a task that has one.
	Env    string `json:"env,omitempty"`
	Answer string `json:"answer"`
	// Correct is set when the task can tell (a checker, or a reference
	// answer).
	Correct *bool          `json:"correct,omitempty"`
	Usage   reason.Usage   `json:"usage"`
	WallMS  int64          `json:"wall_ms"`
	Error   string         `json:"error,omitempty"`
	Tree    *reason.Thread `json:"tree,omitempty"`
}

// solveFlags are braid solve's flags.
type solveFlags struct {
	runFlags
	strategy, input     string
	asJSON, skipBad     bool
	withTree, showTrace bool
	seed                uint64
	samples             int
}

func newModelSolveCmd() *cobra.Command {
	var fl solveFlags
	cmd := &cobra.Command{
		Use:   "solve TARGET N1 N2 ... | QUESTION",
		Short: "Solve problems with a model: directly, by serial search, or by parallel search (APR)",
		Long: `Solve a problem with a language model: by default a Countdown problem
(TARGET N1 N2 ...) with the embedded model, which writes search traces.

--strategy direct writes the solution path; serial searches in one thread;
apr (the default) lets the root thread spawn child searches, which decode
concurrently in one batch, and resumes it with their results; vote:k=N,
best:k=N (over serial, or over another strategy: vote:k=4:apr), aggregate:k=N
and deepthink:k=N sample several. The answer is checked by the task's
verifier. --env says what the Countdown environment does: off (the model
writes everything), fill (the environment writes what the search state
determines: results, states, node lines, the solution path), or constrain
(the default: fill, and the model may only choose legal operations and
existing nodes). Every output says which ran.

--task math solves a free-text question on a --backend server, or on a
--model chat model (a GGUF file or model directory that carries a chat
template) through its template; the embedded model is a Countdown model.

With --input FILE.jsonl (problems as 'braid gen problems' writes them, or
GSM8K/MATH lines for math; '-' for stdin) it solves them all, several at
once, one line each; --json prints one object per problem.`,
		Example: `  braid solve 27 22 26 31 53
  braid solve --strategy serial --env fill 27 22 26 31 53
  braid solve --model runs/countdown/checkpoint 27 22 26 31 53
  braid gen problems --split test --n 100 | braid solve --input - --json
  braid solve --backend http://127.0.0.1:8080/v1 --backend-model countdown --env fill 27 22 26 31 53   # another braid serve
  braid solve --task math --backend http://127.0.0.1:8000/v1 --backend-model Qwen/Qwen3-8B --strategy vote:k=8 --temperature 0.8 'What is 15% of 80?'`,
		Args: func(c *cobra.Command, args []string) error {
			if fl.input != "" {
				return exactArgs(0)(c, args)
			}
			if len(args) == 0 {
				return usageErrorf("%s takes a problem (TARGET N1 N2 ... for countdown, a question for math) or --input (see '%s --help')", c.Name(), c.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return fl.run(cmd, args) },
	}
	fl.taskUsage = "countdown (TARGET N1 N2 ...), or math (a question in words; needs --backend or a --model chat model); countdown:apr[,sub-call-budget=N|,token-budget=N] writes the released APR checkpoints' prompts"
	fl.concurrentUsage = "problems solved at once (their threads share the engine's batches)"
	fl.backendUsage = "OpenAI-compatible server(s) to run the model on, e.g. http://127.0.0.1:8000/v1 (repeat or comma-separate for several)"
	fl.register(cmd)
	f := cmd.Flags()
	f.StringVar(&fl.strategy, "strategy", "", "direct, serial, apr, hybrid:effort=off|light|deep, vote:k=N[:INNER], best:k=N[:INNER], aggregate:k=N or deepthink:k=N (default apr for countdown, serial for math)")
	f.StringVar(&fl.input, "input", "", "solve the problems of a JSONL file ('-' for stdin)")
	f.BoolVar(&fl.asJSON, "json", false, "print one JSON object per problem")
	f.BoolVar(&fl.skipBad, "skip-bad", false, "skip malformed lines of --input (each reported) instead of stopping at the first")
	f.BoolVar(&fl.withTree, "tree", false, "with --json, include the thread tree and texts")
	f.BoolVar(&fl.showTrace, "trace", false, "print the root thread's trace")
	f.Uint64Var(&fl.seed, "seed", 0, "sampling seed")
	f.IntVar(&fl.samples, "samples", 1, "independent samples per problem (with --temperature): one JSON object per problem with pass@1, pass@N and cons@N")
	return cmd
}

// run solves the problems the flags and arguments give.
func (fl *solveFlags) run(cmd *cobra.Command, args []string) error {
	t, o, err := fl.check()
	if err != nil {
		return err
	}
	if fl.samples <= 0 {
		return usageErrorf("--samples must be positive")
	}
	if fl.samples > 1 && fl.temperature == 0 {
		return usageErrorf("--samples %d with greedy decoding would repeat one answer: set --temperature", fl.samples)
	}
	if fl.samples > 1 && (fl.withTree || fl.showTrace) {
		return usageErrorf("--samples prints one JSON summary per problem: --tree and --trace do not apply")
	}
	problems, err := fl.problems(cmd, t, args)
	if err != nil {
		return err
	}
	strategy := fl.strategy
	if strategy == "" {
		strategy = "serial"
		if _, ok := t.(task.Protocol); ok {
			strategy = "apr"
		}
	}
	o.Seed = fl.seed
	st, err := reason.Parse(strategy, o, t)
	if err != nil {
		return usageErrorf("--strategy: %v", err)
	}
	b, closeB, err := fl.backend(t)
	if err != nil {
		return err
	}
	defer closeB()
	run := solveRun{t: t, st: st, b: b, env: fl.envName(t), log: cmd.ErrOrStderr(), concurrent: fl.concurrent, retryBudget: fl.retryBudget}
	if fl.samples > 1 {
		s, ok := st.(reason.Search)
		if !ok {
			return usageErrorf("--samples and %s: pick one", strategy)
		}
		return run.samples(cmd.Context(), cmd.OutOrStdout(), s, problems, fl.samples, fl.temperature)
	}
	return run.solve(cmd.Context(), cmd.OutOrStdout(), problems, fl.asJSON, fl.withTree, fl.showTrace, fl.input == "")
}

// problems reads --input, or the problem the arguments state: TARGET N1
// N2 ... for Countdown, a question in words otherwise.
func (fl *solveFlags) problems(cmd *cobra.Command, t task.Task, args []string) ([]task.Problem, error) {
	if fl.input != "" {
		return readTaskProblems(t, fl.input, cmd.InOrStdin(), fl.skipBad, cmd.ErrOrStderr())
	}
	if t.Name() == (countdown.Task{}).Name() {
		if err := problemArgs(countdown.MinCount+1, countdown.MaxCount+1)(cmd, args); err != nil {
			return nil, err
		}
		p, err := parseProblemArgs(args)
		if err != nil {
			return nil, err
		}
		return []task.Problem{countdown.NewProblem(p)}, nil
	}
	p, err := t.Parse(strings.Join(args, " "))
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return []task.Problem{p}, nil
}

// solveRun is what solving a list of problems shares.
type solveRun struct {
	t          task.Task
	st         reason.Strategy
	b          backend.Backend
	env        string // the environment's mode, "" for a task without one
	log        io.Writer
	concurrent int
	// retryBudget is the retries a problem's calls share
	// (backend.WithRetryBudget; 0: none).
	retryBudget int
}

// solve solves the problems, printing a line (or JSON object) each as it
// is done, in order, then the accuracy; single prints one problem's
// answer and its threads, and exits 1 when it is not right.
func (sr solveRun) solve(ctx context.Context, out io.Writer, problems []task.Problem, asJSON, withTree, showTrace, single bool) error {
	known, correct := 0, 0
	var bar *progress
	if !single {
		bar = newProgress(sr.log, len(problems), "solve")
	}
	start := time.Now()
	err := parallel.Ordered(ctx, len(problems), sr.concurrent, func(i int) (solved, error) {
		return sr.one(ctx, problems[i], sr.st)
	}, func(i int, sv solved) error {
		bar.add(1)
		p, r := problems[i], sv.r
		o := solveOutput{Problem: sr.t.Encode(p), Strategy: sr.st.Name(), Env: sr.env, Answer: r.Answer,
			Usage: r.Usage, WallMS: r.LatencyMS, Error: r.Error}
		if sv.o.Verified {
			o.Correct = &sv.o.Correct
			known++
			if sv.o.Correct {
				correct++
			}
		}
		if asJSON {
			if withTree {
				o.Tree = r.Tree
			}
			line, err := jsonLine(o)
			if err != nil {
				return err
			}
			_, err = out.Write(line)
			return err
		}
		if single {
			return sr.printSolved(out, p, o, r, showTrace)
		}
		_, err := fmt.Fprintf(out, "%s\t%s\t%s\t%d tokens (critical path %d), %d threads, %d ms\n",
			oneLine(p.Text), orDash(o.Answer), solveVerdict(o), o.Usage.TotalTokens, o.Usage.CriticalPathTokens, o.Usage.Threads, o.WallMS)
		return err
	})
	bar.finish()
	if err != nil {
		return err
	}
	if single {
		if known > 0 && correct == 0 {
			return &exitError{code: 1}
		}
		return nil
	}
	if known > 0 {
		w := stats.Wilson(correct, known)
		fmt.Fprintf(sr.log, "%s%s: %d of %d correct (%.1f%%, 95%% CI %.1f-%.1f%%) in %s\n",
			sr.st.Name(), sr.envNote(), correct, known, 100*float64(correct)/float64(known), 100*w.Low, 100*w.High, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// envNote is ", env MODE" for a task with an environment.
func (sr solveRun) envNote() string {
	if sr.env == "" {
		return ""
	}
	return ", env " + sr.env
}

// solveVerdict is how a line of solve's output judges its answer.
func solveVerdict(o solveOutput) string {
	switch {
	case o.Error != "":
		return "error: " + o.Error
	case o.Answer == "":
		return "no answer"
	case o.Correct == nil:
		return "unverified"
	case *o.Correct:
		return "correct"
	}
	return "wrong"
}

// oneLine is text on one line, for a table.
func oneLine(text string) string { return strings.Join(strings.Fields(text), " ") }

// solved is a problem's result and its verdict.
type solved struct {
	r *reason.Result
	o eval.Outcome
}

// one solves a problem; a failure other than an interruption (a server
// that kept failing, say) becomes that problem's result, unsolved and
// saying why, so that one problem does not end a run of many.
func (sr solveRun) one(ctx context.Context, p task.Problem, st reason.Strategy) (solved, error) {
	ctx = backend.WithRetryBudget(ctx, sr.retryBudget)
	r, o, err := eval.Run(ctx, sr.b, sr.t, st, p, nil)
	if err != nil && ctx.Err() == nil {
		r = &reason.Result{Tree: &reason.Thread{Node: "0", Finish: "error", Reason: err.Error()}, Error: err.Error(), TokensToGoal: -1}
		return solved{r: r}, nil
	}
	return solved{r, o}, err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printSolved prints one problem's answer, its verdict and its threads.
func (sr solveRun) printSolved(out io.Writer, p task.Problem, o solveOutput, r *reason.Result, showTrace bool) error {
	if showTrace {
		fmt.Fprint(out, r.Tree.Text)
		fmt.Fprintln(out, strings.Repeat("-", 40))
	}
	said := o.Answer
	if rp, ok := sr.t.(task.Replier); ok {
		said = rp.Reply(p, o.Answer)
	}
	switch {
	case o.Error != "":
		fmt.Fprintf(out, "error: %s\n", o.Error)
	case o.Answer == "":
		fmt.Fprintf(out, "no answer: the run ended without one (%s)\n", r.Tree.Finish)
	case o.Correct == nil:
		fmt.Fprintf(out, "answer: %s (not verified: the problem has no reference answer)\n", said)
	case *o.Correct:
		fmt.Fprintf(out, "answer: %s (correct)\n", said)
	default:
		why := "it differs from the reference answer"
		if c, ok := sr.t.(task.Checker); ok {
			why = c.Check(p, o.Answer).Error()
		}
		fmt.Fprintf(out, "answer: %s (wrong: %s)\n", o.Answer, why)
	}
	fmt.Fprintf(out, "strategy %s%s: %d threads, %d tokens (critical path %d), %d ms\n",
		o.Strategy, sr.envNote(), o.Usage.Threads, o.Usage.TotalTokens, o.Usage.CriticalPathTokens, o.WallMS)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "thread\ttokens\tfilled\tcalls\twall\tend\t")
	var walk func(t *reason.Thread, depth int)
	walk = func(t *reason.Thread, depth int) {
		end := t.Finish
		if t.Reason != "" {
			end += ": " + t.Reason
		}
		fmt.Fprintf(tw, "%s#%s\t%d\t%d\t%d\t%d ms\t%s\t\n", strings.Repeat("  ", depth), t.Node, t.Tokens, t.Filled, t.Calls, t.WallMS, end)
		for _, c := range t.Children {
			walk(c, depth+1)
		}
	}
	walk(r.Tree, 0)
	return tw.Flush()
}

// sampledOutput is one problem's line of `braid solve --samples N --json`.
type sampledOutput struct {
	Problem  json.RawMessage `json:"problem"`
	Strategy string          `json:"strategy"`
	Env      string          `json:"env,omitempty"`
	Samples  int             `json:"samples"`
	Answers  []string        `json:"answers"`
	Correct  int             `json:"correct"`
	PassAt1  float64         `json:"pass@1"`
	PassAtN  bool            `json:"pass@n"`
	ConsAtN  bool            `json:"cons@n"`
	// Mean tokens per sample.
	TotalTokens        float64 `json:"mean_total_tokens"`
	CriticalPathTokens float64 `json:"mean_critical_path_tokens"`
}

// samples solves each problem n times with seeds seed+1..seed+n (1..n
// without --seed) and reports, per problem and over all: pass@1 (the mean
// success of one sample), pass@n (any sample correct) and cons@n (the
// most frequent class of answers is a correct one; on Countdown, correct
// answers are all one class). An answer the task cannot verify counts as
// wrong.
func (sr solveRun) samples(ctx context.Context, out io.Writer, s reason.Search, problems []task.Problem, n int, temperature float64) error {
	results := make([][]solved, len(problems))
	for i := range results {
		results[i] = make([]solved, n)
	}
	bar := newProgress(sr.log, len(problems)*n, "samples")
	start := time.Now()
	var pass1 []float64
	passN, consN := 0, 0
	err := parallel.Ordered(ctx, len(problems)*n, sr.concurrent, func(j int) (solved, error) {
		sc := s
		sc.Seed = s.Seed + uint64(j%n) + 1
		return sr.one(ctx, problems[j/n], sc)
	}, func(j int, sv solved) error {
		bar.add(1)
		i, k := j/n, j%n
		results[i][k] = sv
		if k < n-1 {
			return nil
		}
		o := sr.sampled(problems[i], results[i])
		pass1 = append(pass1, o.PassAt1)
		if o.PassAtN {
			passN++
		}
		if o.ConsAtN {
			consN++
		}
		line, err := jsonLine(o)
		if err != nil {
			return err
		}
		results[i] = nil
		_, err = out.Write(line)
		return err
	})
	bar.finish()
	if err != nil {
		return err
	}
	var perProblem [][]float64
	for _, v := range pass1 {
		perProblem = append(perProblem, []float64{v})
	}
	c := stats.Clustered(perProblem)
	m, half := c.Estimate, c.High-c.Estimate
	wp, wc := stats.Wilson(passN, len(problems)), stats.Wilson(consN, len(problems))
	fmt.Fprintf(sr.log, "%s%s, %d samples at temperature %g on %d problems: pass@1 %.1f%% (95%% CI %.1f-%.1f), pass@%d %.1f%% (%.1f-%.1f), cons@%d %.1f%% (%.1f-%.1f) in %s\n",
		s.Name(), sr.envNote(), n, temperature, len(problems), 100*m, 100*(m-half), 100*(m+half),
		n, 100*float64(passN)/float64(len(problems)), 100*wp.Low, 100*wp.High,
		n, 100*float64(consN)/float64(len(problems)), 100*wc.Low, 100*wc.High, time.Since(start).Round(time.Millisecond))
	return nil
}

// sampled summarizes one problem's samples.
func (sr solveRun) sampled(p task.Problem, runs []solved) sampledOutput {
	n := len(runs)
	o := sampledOutput{Problem: sr.t.Encode(p), Strategy: sr.st.Name(), Env: sr.env, Samples: n}
	votes := map[string]int{}
	right := map[string]bool{}
	var order []string
	for _, sv := range runs {
		r := sv.r
		o.Answers = append(o.Answers, r.Answer)
		o.TotalTokens += float64(r.TotalTokens) / float64(n)
		o.CriticalPathTokens += float64(r.CriticalPathTokens) / float64(n)
		if r.Answer == "" {
			continue
		}
		ok := sv.o.Correct
		if ok {
			o.Correct++
		}
		class := sv.o.Class
		if _, seen := votes[class]; !seen {
			order = append(order, class)
		}
		votes[class]++
		right[class] = right[class] || ok
	}
	top := 0
	for _, class := range order {
		// A tie goes to a correct class: cons@n asks whether the vote
		// could pick a right answer.
		if v := votes[class]; v > top || v == top && right[class] {
			top, o.ConsAtN = v, right[class]
		}
	}
	o.PassAt1, o.PassAtN = float64(o.Correct)/float64(n), o.Correct > 0
	return o
}

// embedded is the engine under b, nil for a remote backend (whose server
// knows its own settings).
func embedded(b backend.Backend) *engine.Engine {
	if c, ok := b.(*chat.Backend); ok {
		b = c.Raw()
	}
	e, _ := b.(*engine.Engine)
	return e
}
