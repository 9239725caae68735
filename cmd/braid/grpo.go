package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/braid-dev/braid/engine"
	"github.com/braid-dev/braid/eval"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/store"
	"github.com/braid-dev/braid/task/countdown"
	"github.com/braid-dev/braid/train"
)

func newTrainGRPOCmd() *cobra.Command {
	var (
		from, out, configPath, mode string
		steps, group, problems      int
		evalEvery, evalN            int
		temperature                 float64
	)
	cmd := &cobra.Command{
		Use:   "grpo",
		Short: "Reinforcement learning with verifiable rewards: GRPO on Countdown",
		Long: `Improve a model by group-relative policy optimisation: each step samples
--group searches of --problems training problems from the current model
(all batched on the engine), rewards each by the Countdown verifier
(1 right, 0 not, plus the configuration's optional format reward), takes
advantages (r − mean) / std within each problem's group, and updates the
model with a clipped policy-ratio objective and a KL penalty to the
starting model. The objective is of the distribution the rollouts were
drawn from: the model's at --temperature, over the tokens the environment
allowed. Tokens the environment wrote, or forced, are observations, not
actions.
In parallel mode every parent and child call of a rollout shares its
advantage, and the rollout's loss is divided by its number of calls. Mixed
mode alternates serial and parallel by problem, so that one model improves
at both.

The run checkpoints every checkpoint_every steps into --out and resumes
from there when run again; --out/grpo.svg draws reward, tokens and
children per rollout. With --eval-every N, each N-th step's checkpoint is
evaluated greedily on --eval-n test problems into --out/eval.db
(braid report --db OUT/eval.db charts it); a run stopped during an
evaluation finishes it when started again.`,
		Example: `  braid train grpo --from models/countdown-sft --out runs/grpo-apr --mode parallel
  braid train grpo --from models/countdown-sft --out runs/grpo-serial --mode serial --steps 60 --eval-every 10
  braid train grpo --from models/countdown-sft --out runs/grpo --mode mixed --eval-every 10
  braid train grpo --config grpo.json --from runs/countdown/checkpoint --out runs/grpo`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || out == "" {
				return usageErrorf("--from MODEL_DIR and --out RUN_DIR are required")
			}
			cfg := train.DefaultGRPO()
			if configPath != "" {
				data, err := os.ReadFile(configPath)
				if err != nil {
					return err
				}
				dec := json.NewDecoder(bytes.NewReader(data))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&cfg); err != nil {
					return usageErrorf("--config %s: %v", configPath, err)
				}
			}
			f := cmd.Flags()
			if f.Changed("mode") {
				cfg.Mode = countdown.Mode(mode)
			}
			if f.Changed("steps") {
				cfg.Steps = steps
			}
			if f.Changed("group") {
				cfg.Group = group
			}
			if f.Changed("problems") {
				cfg.Problems = problems
			}
			if f.Changed("temperature") {
				cfg.Temperature = temperature
			}
			if err := cfg.Validate(); err != nil {
				return usageErrorf("%v", err)
			}
			if evalEvery < 0 || evalN < 1 {
				return usageErrorf("--eval-every must be >= 0 and --eval-n positive")
			}
			if evalEvery > 0 {
				// Each evaluated step has its checkpoint, and the
				// checkpoints between evaluations stay as frequent as asked.
				cfg.CheckpointEvery = gcd(cfg.CheckpointEvery, evalEvery)
			}
			g, err := train.NewGRPO(cfg, from, out)
			if err != nil {
				return err
			}
			defer g.Close()
			g.Progress = cmd.ErrOrStderr()
			if st := g.State(); st.Step > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "resuming %s at step %d of %d\n", out, st.Step, cfg.Steps)
			}
			ctx := cmd.Context()
			evaluate := func() error {
				if evalEvery == 0 || g.State().Step == 0 || g.State().Step%evalEvery != 0 {
					return nil
				}
				return evalCheckpoint(ctx, cmd.ErrOrStderr(), filepath.Join(out, train.CheckpointDir), filepath.Join(out, "eval.db"),
					g.State().Step, evalN, cfg)
			}
			// A run stopped during an evaluation finishes it first (the
			// samples already stored are kept; a finished one returns at
			// once).
			if err := evaluate(); err != nil {
				return err
			}
			for g.State().Step < cfg.Steps {
				next := cfg.Steps
				if evalEvery > 0 {
					next = min(cfg.Steps, (g.State().Step/evalEvery+1)*evalEvery)
				}
				if err := runGRPOUntil(ctx, g, next); err != nil {
					return err
				}
				if err := evaluate(); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "the supervised model directory to start from (it stays the KL reference)")
	f.StringVar(&out, "out", "", "the run directory: checkpoints, grpo.svg, eval.db")
	f.StringVar(&configPath, "config", "", "a JSON configuration (train.GRPOConfig's fields); flags override it")
	f.StringVar(&mode, "mode", "parallel", "serial, parallel, or mixed rollouts (the step's problems alternate between the two)")
	f.IntVar(&steps, "steps", 100, "optimizer steps")
	f.IntVar(&group, "group", 8, "rollouts per problem")
	f.IntVar(&problems, "problems", 4, "problems per step")
	f.Float64Var(&temperature, "temperature", 1, "the rollouts' sampling temperature; the objective differentiates that distribution (below 1: nearer greedy search)")
	f.IntVar(&evalEvery, "eval-every", 0, "evaluate every N steps (0: never)")
	f.IntVar(&evalN, "eval-n", 100, "test problems per evaluation")
	return cmd
}

// runGRPOUntil steps the run to step target (Advance checkpoints there:
// targets are multiples of checkpoint_every, or the last step).
func runGRPOUntil(ctx context.Context, g *train.GRPO, target int) error {
	for g.State().Step < target {
		if err := g.Advance(ctx); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("stopped; the same command resumes from the last checkpoint: %w", ctx.Err())
			}
			return err
		}
	}
	return nil
}

// evalCheckpoint evaluates a checkpoint greedily on n test problems, in
// the run's mode and serially, into a SQLite store under run "step-N".
func evalCheckpoint(ctx context.Context, log io.Writer, dir, db string, step, n int, cfg train.GRPOConfig) error {
	e, err := engine.Open(dir, engine.Options{})
	if err != nil {
		return err
	}
	defer e.Close()
	st, err := store.Open(ctx, db)
	if err != nil {
		return err
	}
	defer st.Close()
	next, stop := iter.Pull(countdown.Problems(2, countdown.Test))
	var problems []countdown.Problem
	var raw []json.RawMessage
	for range n {
		p, _ := next()
		problems = append(problems, p)
		b, _ := json.Marshal(p)
		raw = append(raw, b)
	}
	stop()
	strategies := []string{"serial"}
	if cfg.Mode != countdown.ModeSerial {
		strategies = append(strategies, "apr")
	}
	run := fmt.Sprintf("step-%d", step)
	if err := st.StartRun(ctx, run, map[string]any{"task": "countdown", "strategies": strategies, "n": n, "grpo_step": step}); err != nil {
		return fmt.Errorf("evaluate step %d (an evaluation resumes with the --eval-n it began with): %w", step, err)
	}
	// A resumed run reprints an evaluation it finished before it stopped;
	// the line then says the figures are stored rather than timing nothing.
	before, err := st.Samples(ctx, run)
	if err != nil {
		return err
	}
	env, _ := reason.ParseEnvMode(cfg.Env)
	grid := eval.Grid{Strategies: strategies, Problems: raw, Seeds: 1, Concurrent: 16}
	start := time.Now()
	err = grid.Run(ctx, st, run, func(ctx context.Context, c eval.Cell) (eval.Outcome, error) {
		s, err := reason.ParseCountdown(c.Strategy, reason.Countdown{Env: env}) // as braid eval runs it: greedy, no budget
		if err != nil {
			return eval.Outcome{}, err
		}
		p := problems[c.Index]
		r, err := s.Solve(ctx, e, p)
		if err != nil {
			return eval.Outcome{}, err
		}
		o := eval.Outcome{Answer: r.Answer, TotalTokens: r.TotalTokens, CriticalPathTokens: r.CriticalPathTokens, Threads: r.Threads,
			LatencyMS: r.Wall.Milliseconds(), TokensToGoal: r.TokensToGoal}
		o.Correct = r.Answer != "" && countdown.VerifyAnswer(p, r.Answer) == nil
		return o, nil
	})
	if err != nil {
		return err
	}
	samples, err := st.Samples(ctx, run)
	if err != nil {
		return err
	}
	var parts []string
	for _, s := range eval.Summarize(strategies, samples).Strategies {
		parts = append(parts, fmt.Sprintf("%s %.1f%% (95%% CI %.1f–%.1f)", s.Name, 100*s.Accuracy, 100*s.CI95[0], 100*s.CI95[1]))
	}
	took := time.Since(start).Round(time.Second).String()
	if len(before) == len(samples) {
		took = "stored before"
	}
	fmt.Fprintf(log, "eval at step %d on %d test problems (%s): %s\n", step, n, took, strings.Join(parts, ", "))
	return nil
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
