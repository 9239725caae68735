package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/backend/remote"
	"github.com/braid-dev/braid/engine"
	"github.com/braid-dev/braid/eval/stats"
	"github.com/braid-dev/braid/internal/parallel"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/task/countdown"
	taskmath "github.com/braid-dev/braid/task/math"
	"github.com/spf13/cobra"
)

// solveOutput is one problem's line of `braid solve --json`.
type solveOutput struct {
	Problem  countdown.Problem `json:"problem"`
	Strategy string            `json:"strategy"`
	Env      reason.EnvMode    `json:"env"`
	Answer   string            `json:"answer"`
	Correct  bool              `json:"correct"`
	Usage    solveUsage        `json:"usage"`
	WallMS   int64             `json:"wall_ms"`
	Error    string            `json:"error,omitempty"`
	Tree     *reason.Thread    `json:"tree,omitempty"`
}

type solveUsage struct {
	TotalTokens        int `json:"total_tokens"`
	CriticalPathTokens int `json:"critical_path_tokens"`
	Threads            int `json:"threads"`
}

func newModelSolveCmd() *cobra.Command {
	var (
		ef          engineFlags
		strategy    string
		envMode     string
		input       string
		asJSON      bool
		skipBad     bool
		maxDepth    int
		joinAtGoal  bool
		withTree    bool
		showTrace   bool
		temperature float64
		seed        uint64
		maxTokens   int
		concurrent  int
		samples     int
		remoteURLs  []string
		remoteModel string
		apiKey      string
		guided      bool
		taskName    string
		maxTotal    int
	)
	cmd := &cobra.Command{
		Use:   "solve TARGET N1 N2 ...",
		Short: "Solve Countdown problems with a model: directly, by serial search, or by parallel search (APR)",
		Long: `Solve a Countdown problem with a language model that writes search traces.

--strategy direct writes the solution path; serial searches in one thread;
apr (the default) lets the root thread spawn child searches, which decode
concurrently in one batch, and resumes it with their results. The answer is
checked by the verifier. --env says what the Countdown environment does:
off (the model writes everything), fill (the environment writes what the
search state determines: results, states, node lines, the solution path),
or constrain (the default: fill, and the model may only choose legal
operations and existing nodes). Every output says which ran.

With --input FILE.jsonl (problems as 'braid gen problems' writes them, '-'
for stdin) it solves them all, several at once, one line each; --json
prints one object per problem.`,
		Example: `  braid solve 27 22 26 31 53
  braid solve --strategy serial --env fill 27 22 26 31 53
  braid solve --model runs/countdown/checkpoint 27 22 26 31 53
  braid gen problems --split test --n 100 | braid solve --input - --json
  braid solve --backend http://127.0.0.1:8000/v1 --backend-model apr 27 22 26 31 53`,
		Args: func(c *cobra.Command, args []string) error {
			switch {
			case input != "":
				return exactArgs(0)(c, args)
			case taskName == "math":
				return exactArgs(1)(c, args)
			}
			return problemArgs(countdown.MinCount+1, countdown.MaxCount+1)(c, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if taskName == "math" {
				if joinAtGoal {
					return errJoinAtGoalMath()
				}
				b, closeB, err := openBackend(&ef, remoteURLs, remoteModel, apiKey, false)
				if err != nil {
					return err
				}
				defer closeB()
				if strategy == "apr" {
					strategy = "serial" // the default strategy is Countdown's
				}
				st, err := reason.ParseStrategy(strategy, reason.Sampling{MaxTokens: maxTokens, Temperature: temperature, Seed: seed})
				if err != nil {
					return usageErrorf("--strategy: %v", err)
				}
				return runMath(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), b, st, args, input, cmd.InOrStdin(), skipBad, asJSON, concurrent)
			}
			if taskName != "countdown" {
				return usageErrorf("--task %q: want countdown or math", taskName)
			}
			env, err := reason.ParseEnvMode(envMode)
			if err != nil {
				return usageErrorf("--env: %v", err)
			}
			if maxTokens < 0 || maxTotal < 0 || concurrent <= 0 || temperature < 0 || samples <= 0 {
				return usageErrorf("--max-tokens must be >= 0, --concurrent and --samples positive, --temperature >= 0")
			}
			if samples > 1 && temperature == 0 {
				return usageErrorf("--samples %d with greedy decoding would repeat one answer: set --temperature", samples)
			}
			if samples > 1 && (withTree || showTrace) {
				return usageErrorf("--samples prints one JSON summary per problem: --tree and --trace do not apply")
			}
			var problems []countdown.Problem
			if input != "" {
				if problems, err = readProblems(input, cmd.InOrStdin()); err != nil {
					return err
				}
			} else {
				p, err := parseProblemArgs(args)
				if err != nil {
					return err
				}
				problems = []countdown.Problem{p}
			}
			if len(remoteURLs) > 0 && env == reason.EnvConstrain && !guided {
				return usageErrorf("--env constrain on --backend needs --guided-choice (a vLLM server); use --env fill or off otherwise")
			}
			b, closeB, err := openBackend(&ef, remoteURLs, remoteModel, apiKey, guided)
			if err != nil {
				return err
			}
			defer closeB()
			if strings.HasPrefix(strategy, "vote:") && temperature == 0 {
				return usageErrorf("--strategy %s needs --temperature: greedy searches would all agree", strategy)
			}
			if maxDepth < 1 || maxDepth > 1 && env != reason.EnvOff {
				return usageErrorf("--max-depth %d: want 1, or more with --env off (the Countdown environment lets only the root spawn)", maxDepth)
			}
			st, err := reason.ParseCountdown(strategy, reason.Countdown{Env: env, MaxTokens: maxTokens, Temperature: temperature, Seed: seed,
				MaxTotalTokens: maxTotal, MaxDepth: maxDepth, JoinAtGoal: joinAtGoal})
			if err != nil {
				return usageErrorf("--strategy: %v", err)
			}
			if samples > 1 {
				s, ok := st.(reason.Countdown)
				if !ok {
					return usageErrorf("--samples and %s: pick one", strategy)
				}
				return runSamples(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), b, s, strategy, problems, samples, concurrent)
			}
			return runSolve(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), b, st, env, strategy, problems, asJSON, withTree, showTrace, concurrent, input == "")
		},
	}
	ef.register(cmd)
	f := cmd.Flags()
	f.StringVar(&taskName, "task", "countdown", "countdown (TARGET N1 N2 ...), or math (a question in words; needs --backend)")
	f.StringVar(&strategy, "strategy", "apr", "countdown: direct, serial, apr or hybrid:effort=off|light|deep; math: serial, hybrid:effort=E, vote:k=N, best:k=N, aggregate:k=N or deepthink:k=N")
	f.StringVar(&envMode, "env", "constrain", "the Countdown environment: off, fill or constrain")
	f.StringVar(&input, "input", "", "solve the problems of a JSONL file ('-' for stdin)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per problem")
	f.BoolVar(&skipBad, "skip-bad", false, "skip malformed lines of --input (each reported) instead of stopping at the first")
	f.BoolVar(&withTree, "tree", false, "with --json, include the thread tree and texts")
	f.BoolVar(&showTrace, "trace", false, "print the root thread's trace")
	f.Float64Var(&temperature, "temperature", 0, "sampling temperature (0: greedy)")
	f.Uint64Var(&seed, "seed", 0, "sampling seed")
	f.IntVar(&maxTokens, "max-tokens", 0, "most tokens per model call (0: the model's context)")
	f.IntVar(&maxTotal, "max-total-tokens", 0, "most tokens of all threads of a Countdown run together (0: no limit)")
	f.IntVar(&maxDepth, "max-depth", 1, "how deep apr spawns nest: 1 lets only the root spawn (the APR protocol); more needs --env off")
	f.BoolVar(&joinAtGoal, "join-at-goal", false, "apr: stop a spawn's other children once one finishes having reached the goal, and resume the parent at once; vote: stop the other samples at the first verified answer (fewer tokens; a run's tokens then vary with timing)")
	f.IntVar(&concurrent, "concurrent", 16, "problems solved at once (their threads share the engine's batches)")
	f.StringSliceVar(&remoteURLs, "backend", nil, "OpenAI-compatible server(s) to run the model on, e.g. http://127.0.0.1:8000/v1 (repeat or comma-separate for several)")
	f.StringVar(&remoteModel, "backend-model", "", "the model name to send to --backend")
	f.StringVar(&apiKey, "api-key", "", "API key for --backend (default $BRAID_API_KEY, then $OPENAI_API_KEY)")
	f.BoolVar(&guided, "guided-choice", false, "with --backend and --env constrain, send the legal choices as vLLM's guided_choice")
	f.IntVar(&samples, "samples", 1, "independent samples per problem (with --temperature): one JSON object per problem with pass@1, pass@N and cons@N")
	return cmd
}

func runSolve(ctx context.Context, out, log io.Writer, e backend.Backend, s reason.CountdownStrategy, env reason.EnvMode, strategy string,
	problems []countdown.Problem, asJSON, withTree, showTrace bool, concurrent int, single bool) error {
	correct := 0
	var bar *progress
	if !single {
		bar = newProgress(log, len(problems), "solve")
	}
	start := time.Now()
	err := parallel.Ordered(ctx, len(problems), concurrent, func(i int) (*reason.Result, error) {
		return solveOne(ctx, s, e, problems[i])
	}, func(i int, r *reason.Result) error {
		bar.add(1)
		p := problems[i]
		o := solveOutput{Problem: p, Strategy: strategy, Env: env, Answer: r.Answer,
			Correct: r.Answer != "" && countdown.VerifyAnswer(p, r.Answer) == nil,
			Usage:   solveUsage{r.TotalTokens, r.CriticalPathTokens, r.Threads}, WallMS: r.Wall.Milliseconds(), Error: r.Error}
		if o.Correct {
			correct++
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
			return printSolved(out, p, o, r, showTrace)
		}
		verdict := "wrong"
		switch {
		case o.Correct:
			verdict = "correct"
		case o.Error != "":
			verdict = "error: " + o.Error
		case o.Answer == "":
			verdict = "no answer"
		}
		_, err := fmt.Fprintf(out, "%s\t%s\t%s\t%d tokens (critical path %d), %d threads, %d ms\n",
			p, orDash(o.Answer), verdict, o.Usage.TotalTokens, o.Usage.CriticalPathTokens, o.Usage.Threads, o.WallMS)
		return err
	})
	bar.finish()
	if err != nil {
		return err
	}
	if single {
		if correct == 0 {
			return &exitError{code: 1}
		}
		return nil
	}
	n := len(problems)
	w := stats.Wilson(correct, n)
	lo, hi := w.Low, w.High
	fmt.Fprintf(log, "%s, env %s: %d of %d correct (%.1f%%, 95%% CI %.1f-%.1f%%) in %s\n",
		strategy, env, correct, n, 100*float64(correct)/float64(n), 100*lo, 100*hi, time.Since(start).Round(time.Millisecond))
	return nil
}

// solveOne solves a problem; a failure other than an interruption (a
// server that kept failing, say) becomes that problem's result, unsolved
// and saying why, so that one problem does not end a run of many.
func solveOne(ctx context.Context, s reason.CountdownStrategy, b backend.Backend, p countdown.Problem) (*reason.Result, error) {
	r, err := s.Solve(ctx, b, p)
	if err != nil && ctx.Err() == nil {
		return &reason.Result{Tree: &reason.Thread{Node: "0", Finish: "error", Reason: err.Error()}, Error: err.Error(), TokensToGoal: -1}, nil
	}
	return r, err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printSolved(out io.Writer, p countdown.Problem, o solveOutput, r *reason.Result, showTrace bool) error {
	if showTrace {
		fmt.Fprint(out, r.Tree.Text)
		fmt.Fprintln(out, strings.Repeat("-", 40))
	}
	switch {
	case o.Correct:
		fmt.Fprintf(out, "answer: %s = %d (correct)\n", o.Answer, p.Target)
	case o.Answer != "":
		fmt.Fprintf(out, "answer: %s (wrong: %v)\n", o.Answer, countdown.VerifyAnswer(p, o.Answer))
	default:
		fmt.Fprintf(out, "no answer: the search ended without reaching %d (%s)\n", p.Target, r.Tree.Finish)
	}
	fmt.Fprintf(out, "strategy %s, env %s: %d threads, %d tokens (critical path %d), %d ms\n",
		o.Strategy, o.Env, o.Usage.Threads, o.Usage.TotalTokens, o.Usage.CriticalPathTokens, o.WallMS)
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
	Problem  countdown.Problem `json:"problem"`
	Strategy string            `json:"strategy"`
	Env      reason.EnvMode    `json:"env"`
	Samples  int               `json:"samples"`
	Answers  []string          `json:"answers"`
	Correct  int               `json:"correct"`
	PassAt1  float64           `json:"pass@1"`
	PassAtN  bool              `json:"pass@n"`
	ConsAtN  bool              `json:"cons@n"`
	// Mean tokens per sample.
	TotalTokens        float64 `json:"mean_total_tokens"`
	CriticalPathTokens float64 `json:"mean_critical_path_tokens"`
}

// runSamples solves each problem n times with seeds seed+1..seed+n (1..n
// without --seed) and reports, per problem and over all: pass@1 (the mean
// success of one sample), pass@n (any sample correct) and cons@n (the
// most frequent answer is correct; correct answers all count as one).
func runSamples(ctx context.Context, out, log io.Writer, e backend.Backend, s reason.Countdown, strategy string,
	problems []countdown.Problem, n, concurrent int) error {
	results := make([][]*reason.Result, len(problems))
	for i := range results {
		results[i] = make([]*reason.Result, n)
	}
	bar := newProgress(log, len(problems)*n, "samples")
	start := time.Now()
	var pass1 []float64
	passN, consN := 0, 0
	err := parallel.Ordered(ctx, len(problems)*n, concurrent, func(j int) (*reason.Result, error) {
		sc := s
		sc.Seed = s.Seed + uint64(j%n) + 1
		return solveOne(ctx, sc, e, problems[j/n])
	}, func(j int, r *reason.Result) error {
		bar.add(1)
		i, k := j/n, j%n
		results[i][k] = r
		if k < n-1 {
			return nil
		}
		p := problems[i]
		o := sampledOutput{Problem: p, Strategy: strategy, Env: s.Env, Samples: n}
		votes := map[string]int{}
		for _, r := range results[i] {
			o.Answers = append(o.Answers, r.Answer)
			o.TotalTokens += float64(r.TotalTokens) / float64(n)
			o.CriticalPathTokens += float64(r.CriticalPathTokens) / float64(n)
			switch {
			case r.Answer == "":
			case countdown.VerifyAnswer(p, r.Answer) == nil:
				o.Correct++
				votes["correct"]++
			default:
				votes[r.Answer]++
			}
		}
		best, top := "", 0
		for a, v := range votes {
			if v > top || v == top && a == "correct" {
				best, top = a, v
			}
		}
		o.PassAt1, o.PassAtN, o.ConsAtN = float64(o.Correct)/float64(n), o.Correct > 0, best == "correct"
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
	lp, hp, lc, hc := wp.Low, wp.High, wc.Low, wc.High
	fmt.Fprintf(log, "%s, env %s, %d samples at temperature %g on %d problems: pass@1 %.1f%% (95%% CI %.1f-%.1f), pass@%d %.1f%% (%.1f-%.1f), cons@%d %.1f%% (%.1f-%.1f) in %s\n",
		strategy, s.Env, n, s.Temperature, len(problems), 100*m, 100*(m-half), 100*(m+half),
		n, 100*float64(passN)/float64(len(problems)), 100*lp, 100*hp,
		n, 100*float64(consN)/float64(len(problems)), 100*lc, 100*hc, time.Since(start).Round(time.Millisecond))
	return nil
}

// openBackend is the remote servers when given, else the engine.
func openBackend(ef *engineFlags, urls []string, model, key string, guided bool) (backend.Backend, func(), error) {
	if len(urls) > 0 {
		if ef.modelDir != "" {
			return nil, nil, usageErrorf("--model and --backend exclude each other: the model runs either here or on the server")
		}
		if ef.context != 0 {
			return nil, nil, usageErrorf("--context is the embedded engine's; a --backend server sets its own")
		}
		c, err := remote.New(remote.Options{Endpoints: urls, Model: model, APIKey: key, GuidedChoice: guided})
		if err != nil {
			return nil, nil, usageErrorf("--backend: %v", err)
		}
		return c, func() {}, nil
	}
	e, err := ef.open()
	if err != nil {
		return nil, nil, err
	}
	return e, func() { e.Close() }, nil
}

// errJoinAtGoalMath refuses --join-at-goal on --task math, in solve and eval
// alike.
func errJoinAtGoalMath() error {
	return usageErrorf("--join-at-goal stops Countdown's apr children and vote samples; it has no math form yet")
}

// engineContext is the context an embedded engine runs at, 0 for a remote
// backend (whose server knows its own).
func engineContext(b backend.Backend) int {
	if e, ok := b.(*engine.Engine); ok {
		return e.Config().MaxSeq
	}
	return 0
}

// mathOutput is one problem's line of `braid solve --task math --json`.
type mathOutput struct {
	Problem  task.Problem `json:"problem"`
	Strategy string       `json:"strategy"`
	Answer   string       `json:"answer"`
	// Correct is set when the problem has a reference answer.
	Correct *bool      `json:"correct,omitempty"`
	Usage   solveUsage `json:"usage"`
	WallMS  int64      `json:"wall_ms"`
	Error   string     `json:"error,omitempty"`
}

// runMath solves free-text math questions: one from the command line, or
// a JSONL file (GSM8K, MATH or braid shape).
func runMath(ctx context.Context, out, log io.Writer, b backend.Backend, st reason.Strategy, args []string,
	input string, stdin io.Reader, skipBad, asJSON bool, concurrent int) error {
	var problems []task.Problem
	if input != "" {
		var err error
		if problems, err = readMathProblems(input, stdin, skipBad, log); err != nil {
			return err
		}
	} else {
		problems = []task.Problem{{Task: "math", Text: args[0]}}
	}
	t := taskmath.Task{}
	known, correct := 0, 0
	err := parallel.Ordered(ctx, len(problems), concurrent, func(i int) (mathOutput, error) {
		o := mathOutput{Problem: problems[i], Strategy: st.Name()}
		r, err := st.Solve(ctx, b, t, problems[i])
		if err != nil {
			if ctx.Err() != nil {
				return o, err
			}
			o.Error = err.Error()
			return o, nil
		}
		o.Answer, o.WallMS = r.Answer, r.Wall.Milliseconds()
		o.Usage = solveUsage{r.TotalTokens, r.CriticalPathTokens, r.Threads}
		if ok, k := t.Verify(problems[i], r.Answer); k {
			o.Correct = &ok
		}
		return o, nil
	}, func(i int, o mathOutput) error {
		if o.Correct != nil {
			known++
			if *o.Correct {
				correct++
			}
		}
		if asJSON {
			line, err := jsonLine(o)
			if err != nil {
				return err
			}
			_, err = out.Write(line)
			return err
		}
		verdict := ""
		switch {
		case o.Error != "":
			verdict = " (error: " + o.Error + ")"
		case o.Correct != nil && *o.Correct:
			verdict = " (correct)"
		case o.Correct != nil:
			verdict = " (wrong)"
		}
		_, err := fmt.Fprintf(out, "%s%s\t%d tokens (critical path %d), %d threads, %d ms\n",
			orDash(o.Answer), verdict, o.Usage.TotalTokens, o.Usage.CriticalPathTokens, o.Usage.Threads, o.WallMS)
		return err
	})
	if err != nil {
		return err
	}
	if known > 0 {
		w := stats.Wilson(correct, known)
		lo, hi := w.Low, w.High
		fmt.Fprintf(log, "%s: %d of %d correct (%.1f%%, 95%% CI %.1f-%.1f%%)\n", st.Name(), correct, known,
			100*float64(correct)/float64(known), 100*lo, 100*hi)
	}
	return nil
}

// readMathProblems reads a JSONL file of math problems in any shape
// taskmath.ReadJSONL knows; a bad line is an error naming it, or with
// skipBad a warning on log.
func readMathProblems(path string, stdin io.Reader, skipBad bool, log io.Writer) ([]task.Problem, error) {
	r, name, closeInput, err := openInput(path, stdin)
	if err != nil {
		return nil, err
	}
	defer closeInput()
	problems, skipped, err := taskmath.ReadJSONL(r, name, skipBad)
	for _, e := range skipped {
		fmt.Fprintf(log, "skipped %v\n", e)
	}
	if len(skipped) > 0 {
		fmt.Fprintf(log, "skipped %d bad lines of %s\n", len(skipped), name)
	}
	return problems, err
}
