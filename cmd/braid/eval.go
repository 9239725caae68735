package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/braid-dev/braid/engine"
	"github.com/braid-dev/braid/eval"
	"github.com/braid-dev/braid/eval/stats"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/store"
	"github.com/braid-dev/braid/task/countdown"
	taskmath "github.com/braid-dev/braid/task/math"
	"github.com/braid-dev/braid/task/perturb"
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
	// ModelSum fingerprints the embedded engine's model files (config,
	// tokenizer, weights); runs before it was kept lack it.
	ModelSum string `json:"model_sum,omitempty"`
}

func newEvalCmd() *cobra.Command {
	var (
		ef                          engineFlags
		taskName, input, strategies string
		n, seeds, concurrent        int
		problemSeed                 uint64
		envMode, dbPath, runID      string
		temperature                 float64
		maxTokens, maxTotal         int
		asJSON, skipBad             bool
		remoteURLs                  []string
		remoteModel, apiKey         string
		guided                      bool
		lease                       time.Duration
		perturbName                 string
		maxDepth                    int
		joinAtGoal                  bool
	)
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
them) or are drawn from the test split (--n, --problem-seed). Math problems
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			names := strings.Split(strategies, ",")
			if seeds < 1 || concurrent < 1 || n < 1 || temperature < 0 || maxTokens < 0 || maxTotal < 0 {
				return usageErrorf("--seeds, --concurrent and --n must be positive; --temperature, --max-tokens and --max-total-tokens >= 0")
			}
			if lease < time.Second {
				return usageErrorf("--lease %s: want at least 1s", lease)
			}
			if seeds > 1 && temperature == 0 {
				return usageErrorf("--seeds %d with greedy decoding would repeat each sample: set --temperature", seeds)
			}
			env, err := reason.ParseEnvMode(envMode)
			if err != nil {
				return usageErrorf("--env: %v", err)
			}
			kind, err := perturb.Parse(perturbName)
			if err != nil {
				return usageErrorf("--perturb: %v", err)
			}
			cfg := evalConfig{Task: taskName, Strategies: names, Seeds: seeds, Env: envMode, Temperature: temperature,
				MaxTokens: maxTokens, MaxTotalTokens: maxTotal, Model: ef.modelDir, Perturb: string(kind), Context: ef.context,
				JoinAtGoal: joinAtGoal}
			if maxDepth > 1 {
				cfg.MaxDepth = maxDepth // recorded only when it differs, so earlier runs keep their ids
			}
			if len(remoteURLs) > 0 {
				cfg.Model = strings.Join(remoteURLs, ",") + " " + remoteModel
			} else {
				// Taken before the engine loads the files and checked
				// after: a checkpoint rewritten meanwhile (a training run
				// saving) is not recorded as the model it replaced.
				if cfg.ModelSum, err = ef.fingerprint(); err != nil {
					return err
				}
				opts, err := ef.options()
				if err != nil {
					return err
				}
				if opts.Weights != engine.WeightsF16 {
					cfg.Weights = string(opts.Weights)
				}
				if opts.KV8 {
					cfg.KVCache = "q8"
				}
			}
			var solve func(context.Context, eval.Cell) (eval.Outcome, error)
			var contextLen int // the embedded engine's; 0 for a --backend
			switch taskName {
			case "countdown":
				var problems []countdown.Problem
				if input != "" {
					if problems, err = readProblems(input, cmd.InOrStdin()); err != nil {
						return err
					}
				} else {
					next, stop := iter.Pull(countdown.Problems(problemSeed, countdown.Test))
					for range n {
						p, _ := next()
						problems = append(problems, p)
					}
					stop()
				}
				if maxDepth < 1 || maxDepth > 1 && env != reason.EnvOff {
					return usageErrorf("--max-depth %d: want 1, or more with --env off (the Countdown environment lets only the root spawn)", maxDepth)
				}
				base := reason.Countdown{Env: env, MaxTokens: maxTokens, Temperature: temperature, MaxTotalTokens: maxTotal, MaxDepth: maxDepth,
					JoinAtGoal: joinAtGoal}
				for _, name := range names {
					if strings.HasPrefix(name, "vote:") && temperature == 0 {
						return usageErrorf("--strategies: %s needs --temperature: greedy searches would all agree", name)
					}
					if _, err := reason.ParseCountdown(name, base); err != nil {
						return usageErrorf("--strategies: %v", err)
					}
				}
				for _, p := range problems {
					b, _ := json.Marshal(p)
					cfg.Problems = append(cfg.Problems, b)
				}
				if len(remoteURLs) > 0 && env == reason.EnvConstrain && !guided {
					return usageErrorf("--env constrain on --backend needs --guided-choice (a vLLM server); use --env fill or off otherwise")
				}
				b, closeB, err := openBackend(&ef, remoteURLs, remoteModel, apiKey, guided)
				if err != nil {
					return err
				}
				defer closeB()
				contextLen = engineContext(b)
				solve = func(ctx context.Context, c eval.Cell) (eval.Outcome, error) {
					p := problems[c.Index]
					seed := c.Seed
					if temperature == 0 {
						seed = 0 // greedy: no seed needed
					}
					cb := base
					cb.Seed, cb.Decoy = seed, c.Perturb != ""
					st, _ := reason.ParseCountdown(c.Strategy, cb) // checked above
					r, err := st.Solve(ctx, b, p)
					if err != nil {
						return eval.Outcome{}, err
					}
					o := eval.Outcome{Answer: r.Answer, TotalTokens: r.TotalTokens, CriticalPathTokens: r.CriticalPathTokens,
						Threads: r.Threads, LatencyMS: r.Wall.Milliseconds(), TokensToGoal: r.TokensToGoal, Tree: r.Tree}
					if r.Answer != "" {
						o.Correct = countdown.VerifyAnswer(p, r.Answer) == nil
						o.Class = "wrong: " + r.Answer
						if o.Correct {
							o.Class = "target" // every answer reaching the target is one answer
						}
					}
					return o, nil
				}
			case "math":
				if joinAtGoal {
					return errJoinAtGoalMath()
				}
				if input == "" {
					return usageErrorf("--task math needs --input FILE.jsonl (GSM8K, MATH or {\"text\", \"answer\"} lines)")
				}
				problems, err := readMathProblems(input, cmd.InOrStdin(), skipBad, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				for _, p := range problems {
					b, _ := json.Marshal(p)
					cfg.Problems = append(cfg.Problems, b)
				}
				strats := map[string]bool{}
				for _, name := range names {
					if _, err := reason.ParseStrategy(name, reason.Sampling{}); err != nil {
						return usageErrorf("--strategies: %v", err)
					}
					strats[name] = true
				}
				b, closeB, err := openBackend(&ef, remoteURLs, remoteModel, apiKey, false)
				if err != nil {
					return err
				}
				defer closeB()
				contextLen = engineContext(b)
				t := taskmath.Task{}
				solve = func(ctx context.Context, c eval.Cell) (eval.Outcome, error) {
					st, _ := reason.ParseStrategy(c.Strategy, reason.Sampling{MaxTokens: maxTokens, Temperature: temperature, Seed: c.Seed * 1000})
					p := problems[c.Index]
					if c.Perturb != "" {
						// Keyed by problem: every strategy and seed sees the same sentence.
						p.Text = perturb.Distract(p.Text, uint64(c.Index))
					}
					r, err := st.Solve(ctx, b, t, p)
					if err != nil {
						return eval.Outcome{}, err
					}
					o := eval.Outcome{Answer: r.Answer, TotalTokens: r.TotalTokens, CriticalPathTokens: r.CriticalPathTokens,
						Threads: r.Threads, LatencyMS: r.Wall.Milliseconds(), TokensToGoal: r.TokensToGoal, Tree: r.Tree}
					o.Correct, _ = t.Verify(p, r.Answer)
					o.Class = mathClass(r.Answer)
					return o, nil
				}
			default:
				return usageErrorf("--task %q: want countdown or math", taskName)
			}
			if len(remoteURLs) == 0 {
				if sum, err := ef.fingerprint(); err != nil {
					return err
				} else if sum != cfg.ModelSum {
					return fmt.Errorf("the model's files changed while it was loading (%s); try again once they are written", ef.modelDir)
				}
			}
			if runID == "" {
				if runID, err = store.RunID(cfg); err != nil {
					return err
				}
			}
			st, err := store.Open(ctx, dbPath)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.StartRun(ctx, runID, cfg); err != nil {
				return err
			}
			grid := eval.Grid{Strategies: names, Problems: cfg.Problems, Seeds: seeds, Perturb: cfg.Perturb, Concurrent: concurrent, Lease: lease}
			bar := newProgress(cmd.ErrOrStderr(), len(grid.Cells()), "eval")
			last := 0
			grid.Progress = func(done, total int) {
				bar.add(done - last)
				last = done
			}
			var told time.Time
			grid.Waiting = func(held int) {
				if time.Since(told) > 30*time.Second {
					told = time.Now()
					fmt.Fprintf(cmd.ErrOrStderr(), "\nwaiting: other workers hold the last %d cells (taken over if their claims lapse)\n", held)
				}
			}
			start := time.Now()
			setting := fmt.Sprintf("temperature %g", temperature)
			if taskName == "countdown" {
				setting = "env " + envMode + ", " + setting
			}
			if contextLen > 0 {
				setting += fmt.Sprintf(", context %d", contextLen)
			}
			if joinAtGoal {
				setting += ", join at goal"
			}
			if cfg.Perturb != "" {
				setting += ", each cell also on its " + cfg.Perturb + " twin"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "run %s in %s: %d strategies × %d problems × %d seeds, %s\n",
				runID, store.Redact(dbPath), len(names), len(cfg.Problems), seeds, setting)
			if err := grid.Run(ctx, st, runID, solve); err != nil {
				bar.finish()
				if ctx.Err() != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "stopped; the same command resumes run %s\n", runID)
				}
				return err
			}
			bar.finish()
			samples, err := st.Samples(ctx, runID)
			if err != nil {
				return err
			}
			rep := eval.Summarize(names, samples)
			fmt.Fprintf(cmd.ErrOrStderr(), "done in %s\n", time.Since(start).Round(time.Millisecond))
			if asJSON {
				return printEvalJSON(cmd.OutOrStdout(), runID, rep, samples)
			}
			return printEvalTable(cmd.OutOrStdout(), rep, setting)
		},
	}
	ef.register(cmd)
	f := cmd.Flags()
	f.StringVar(&taskName, "task", "countdown", "countdown or math")
	f.StringVar(&input, "input", "", "problems, JSONL ('-' for stdin); default for countdown: --n drawn from the test split")
	f.IntVar(&n, "n", 100, "countdown problems to draw from the test split, without --input")
	f.Uint64Var(&problemSeed, "problem-seed", 2, "the seed of the drawn problems")
	f.StringVar(&strategies, "strategies", "serial,apr", "comma-separated strategies, the first the baseline")
	f.IntVar(&seeds, "seeds", 1, "samples per strategy and problem (with --temperature)")
	f.StringVar(&envMode, "env", "constrain", "the Countdown environment: off, fill or constrain")
	f.Float64Var(&temperature, "temperature", 0, "sampling temperature (0: greedy)")
	f.IntVar(&maxTokens, "max-tokens", 0, "most tokens per model call (0: the model's context)")
	f.IntVar(&maxTotal, "max-total-tokens", 0, "most tokens of all threads of a Countdown run (0: no limit)")
	f.IntVar(&maxDepth, "max-depth", 1, "how deep apr spawns nest: 1 lets only the root spawn (the APR protocol); more needs --env off")
	f.BoolVar(&joinAtGoal, "join-at-goal", false, "apr: stop a spawn's other children once one finishes having reached the goal, and resume the parent at once; vote: stop the other samples at the first verified answer (fewer tokens; a run's tokens then vary with timing)")
	f.StringVar(&dbPath, "db", "braid.db", "the database that keeps the samples: a SQLite file, or a postgres:// address that several workers share")
	f.StringVar(&runID, "run", "", "the run's id (default: a hash of the configuration, so the same command resumes, and workers given the same flags share it)")
	f.DurationVar(&lease, "lease", 2*time.Minute, "how long a worker's claim on a cell lives unrenewed: a dead worker's cells go to others after this")
	f.BoolVar(&asJSON, "json", false, "print JSON: strategies, paired comparisons, samples")
	f.StringVar(&perturbName, "perturb", "", "also run every cell on a perturbed problem and report robustness: distractors (a sentence appended to math problems; for Countdown a tempting dead-end first move)")
	f.BoolVar(&skipBad, "skip-bad", false, "skip malformed lines of --input (each reported) instead of stopping at the first")
	f.IntVar(&concurrent, "concurrent", 16, "samples taken at once")
	f.StringSliceVar(&remoteURLs, "backend", nil, "OpenAI-compatible server(s) instead of the embedded model")
	f.StringVar(&remoteModel, "backend-model", "", "the model name to send to --backend")
	f.StringVar(&apiKey, "api-key", "", "API key for --backend (default $BRAID_API_KEY, then $OPENAI_API_KEY)")
	f.BoolVar(&guided, "guided-choice", false, "with --backend and --env constrain, send the legal choices as guided decoding")
	return cmd
}

// mathClass names a math answer's class for maj@k: its exact value when
// it is a number (1/2, 0.5 and \frac{1}{2} are one class), else its text
// without case or spaces.
func mathClass(answer string) string {
	if answer == "" {
		return ""
	}
	if v, ok := taskmath.Parse(answer); ok {
		return "= " + v.RatString()
	}
	return strings.ToLower(strings.Join(strings.Fields(answer), ""))
}

// printEvalTable prints the report; setting names the run's environment
// and sampling.
func printEvalTable(out io.Writer, rep eval.Report, setting string) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\tproblems\tsamples\taccuracy\t95% CI\ttotal tokens\tcritical path\tp50 ms\tp95 ms\ttokens/correct\t")
	for _, s := range rep.Strategies {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f%%\t%.1f–%.1f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t\n", s.Name, s.N, s.Samples, 100*s.Accuracy,
			100*s.CI95[0], 100*s.CI95[1], s.MeanTotalTokens, s.MeanCriticalTokens, s.LatencyP50MS, s.LatencyP95MS, s.TokensPerCorrect)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "(%s; intervals clustered by problem)\n", setting)
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
