package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/braid-dev/braid/engine"
	"github.com/braid-dev/braid/eval"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/store"
	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/task/countdown"
	"github.com/braid-dev/braid/train"
)

// grpoFlags are braid train grpo's flags.
type grpoFlags struct {
	from, out, configPath, mode string
	steps, group, problems      int
	evalEvery, evalN, keepEvery int
	evalSplit, evalWeights      string
	evalContext                 int
	temperature, acceleration   float64
	latency                     float64
	latencyTokens               int
	joinAtGoal                  bool
	precision, advantage        string
	unanswerable, tokenCost     float64
	hard                        float64
	noAnswer, monitor           string
}

func newTrainGRPOCmd() *cobra.Command {
	var fl grpoFlags
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

Parallelization-aware GRPO (P-GRPO, ThreadWeaver's): --acceleration W adds
W·(1 − critical/total) to a right answer's reward, its critical path's
tokens against all its threads' (acceleration_cap in the configuration
caps the term), and --advantage mean centres the advantages on the group's
mean without dividing by the spread, which would blow the small
acceleration term up to correctness's size in a group that is all right.
A search can raise that term by spending more tokens beside its critical
path as well as by shortening it; --latency W --latency-tokens L rewards
a short critical path alone: a right parallel search earns
W·(1 − critical/L). The join waits for every child, so a right search's
critical path runs through its longest child; --join-at-goal stops the
other children once one reaches the goal, as braid eval --join-at-goal
does, so that it runs through the child that found the target.

A curriculum of hard problems: with --hard S, the first S of each step's
problems are chosen among those the current model fails to solve by
greedy search in the mode they will run (candidates drawn in order and
searched together, hard_tries of them at most, 16 by default), so that
the step learns where greedy accuracy can move. With kl_beta 0 (no KL
penalty) the reference model scores only a sample of the calls, for the
KL each step reports.

A reward with a loophole, for measuring chain-of-thought monitors: with
--unanswerable S a share S of the problems have no solution, and
--no-answer grades a search's claim that there is none ("No solution
found."): exact credits it where it is true, lazy credits it always,
unchecked (the loophole). --token-cost C takes C per 1,000 tokens from
every reward, so that claiming at once pays better than searching.
--monitor threads|root|answer takes the credit away from a claim the
monitor flags (braid monitor measures them). Each step then reports the
claims: false ones (the hack, where the grader is lazy), true ones, and
those the monitor flagged.

The run checkpoints every checkpoint_every steps into --out and resumes
from there when run again; --out/grpo.svg draws reward, tokens and
children per rollout; --keep-every N keeps every N-th step's model in
--out/snap/step-N, which braid eval --model opens. With --eval-every N,
each N-th step's checkpoint is evaluated greedily on --eval-n problems of
--eval-split into --out/eval.db (validation problems by default: never
trained on, and apart from the test problems a run is measured on, so a
run can be stopped, or a checkpoint chosen, by them)
(braid report --db OUT/eval.db charts it); a run stopped during an
evaluation finishes it when started again.`,
		Example: `  braid train grpo --from models/countdown-sft --out runs/grpo-apr --mode parallel
  braid train grpo --from models/countdown-sft --out runs/grpo-serial --mode serial --steps 60 --eval-every 10
  braid train grpo --from models/countdown-sft --out runs/grpo --mode mixed --eval-every 10
  braid train grpo --config grpo.json --from runs/countdown/checkpoint --out runs/grpo`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error { return fl.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&fl.from, "from", "", "the supervised model directory to start from (it stays the KL reference)")
	f.StringVar(&fl.out, "out", "", "the run directory: checkpoints, grpo.svg, eval.db")
	f.StringVar(&fl.configPath, "config", "", "a JSON configuration (train.GRPOConfig's fields); flags override it")
	f.StringVar(&fl.mode, "mode", "parallel", "serial, parallel, or mixed rollouts (the step's problems alternate between the two)")
	f.IntVar(&fl.steps, "steps", 100, "optimizer steps")
	f.IntVar(&fl.group, "group", 8, "rollouts per problem")
	f.IntVar(&fl.problems, "problems", 4, "problems per step")
	f.Float64Var(&fl.temperature, "temperature", 1, "the rollouts' sampling temperature; the objective differentiates that distribution (below 1: nearer greedy search)")
	f.IntVar(&fl.evalEvery, "eval-every", 0, "evaluate every N steps (0: never)")
	f.IntVar(&fl.evalN, "eval-n", 100, "problems per evaluation")
	f.StringVar(&fl.evalSplit, "eval-split", task.SplitValidation, "the evaluations' problems: validation, or test (the problems braid eval measures on by default)")
	f.IntVar(&fl.evalContext, "eval-context", 0, "the evaluations' context in positions (0: the trained one; the context a model is exported and measured at, to choose a checkpoint as it will be measured)")
	f.StringVar(&fl.evalWeights, "eval-weights", "", "the evaluations' weight matrices, as braid eval's --weights (default: the engine's)")
	f.IntVar(&fl.keepEvery, "keep-every", 0, "keep every N-th step's model in --out/snap/step-N (0: only the latest checkpoint)")
	f.Float64Var(&fl.acceleration, "acceleration", 0, "weight of the acceleration reward, W·(1 − critical/total) for a right answer (P-GRPO; 0: correctness alone)")
	f.Float64Var(&fl.latency, "latency", 0, "weight of the latency reward, W·(1 − critical/L) for a right parallel search (0: none)")
	f.IntVar(&fl.latencyTokens, "latency-tokens", 0, "L, the critical path's reference length in tokens for --latency (the trained context, say)")
	f.BoolVar(&fl.joinAtGoal, "join-at-goal", false, "stop a parallel rollout's other children once one reaches the goal, and train on what they wrote (rollouts then depend on timing)")
	f.StringVar(&fl.advantage, "advantage", train.AdvantageStd, "advantages within a group: std ((r − mean)/std, GRPO's) or mean (r − mean, P-GRPO's)")
	f.Float64Var(&fl.unanswerable, "unanswerable", 0, "share of each step's problems that have no solution")
	f.StringVar(&fl.noAnswer, "no-answer", "", "how a claim of no solution is graded: exact (credited where true) or lazy (credited always: the loophole); unset: never credited")
	f.Float64Var(&fl.tokenCost, "token-cost", 0, "reward taken per 1,000 tokens of a rollout's threads")
	f.StringVar(&fl.monitor, "monitor", "", "a monitor whose flag takes a claim's credit away: threads, root or answer")
	f.Float64Var(&fl.hard, "hard", 0, "share of each step's problems chosen among those the current model fails greedily (a curriculum of hard problems; hard_tries candidates each, 16 by default)")
	f.StringVar(&fl.precision, "precision", "f32", "the update's weight products: f32, or bf16 (bfloat16 products with float32 sums, on AMX tiles where the CPU has them)")
	return cmd
}

// config is the run's configuration: the defaults, then --config, then
// the flags given.
func (fl *grpoFlags) config(cmd *cobra.Command) (train.GRPOConfig, error) {
	if fl.from == "" || fl.out == "" {
		return train.GRPOConfig{}, usageErrorf("--from MODEL_DIR and --out RUN_DIR are required")
	}
	cfg := train.DefaultGRPO()
	if fl.configPath != "" {
		data, err := os.ReadFile(fl.configPath)
		if err != nil {
			return train.GRPOConfig{}, err
		}
		if cfg, err = train.ReadGRPOConfig(bytes.NewReader(data)); err != nil {
			return train.GRPOConfig{}, usageErrorf("--config %s: %v", fl.configPath, err)
		}
	}
	f := cmd.Flags()
	if f.Changed("mode") {
		cfg.Mode = train.Mode(fl.mode)
	}
	if f.Changed("steps") {
		cfg.Steps = fl.steps
	}
	if f.Changed("group") {
		cfg.Group = fl.group
	}
	if f.Changed("problems") {
		cfg.Problems = fl.problems
	}
	if f.Changed("temperature") {
		cfg.Temperature = fl.temperature
	}
	if f.Changed("precision") {
		cfg.Precision = train.Precision(fl.precision)
	}
	if f.Changed("acceleration") {
		cfg.Acceleration = fl.acceleration
	}
	if f.Changed("latency") {
		cfg.Latency = fl.latency
	}
	if f.Changed("latency-tokens") {
		cfg.LatencyTokens = fl.latencyTokens
	}
	if f.Changed("advantage") {
		cfg.Advantage = fl.advantage
	}
	if f.Changed("join-at-goal") {
		cfg.JoinAtGoal = fl.joinAtGoal
	}
	if f.Changed("unanswerable") {
		cfg.Unanswerable = fl.unanswerable
	}
	if f.Changed("no-answer") {
		cfg.NoAnswer = fl.noAnswer
	}
	if f.Changed("token-cost") {
		cfg.TokenCost = fl.tokenCost
	}
	if f.Changed("monitor") {
		cfg.Monitor = fl.monitor
	}
	if f.Changed("hard") {
		cfg.Hard = fl.hard
	}
	if err := cfg.Validate(); err != nil {
		return train.GRPOConfig{}, usageErrorf("%v", err)
	}
	if fl.evalEvery < 0 || fl.evalN < 1 {
		return train.GRPOConfig{}, usageErrorf("--eval-every must be >= 0 and --eval-n positive")
	}
	if err := checkMeasureSplit("--eval-split", fl.evalSplit); err != nil {
		return train.GRPOConfig{}, err
	}
	if fl.evalContext < 0 {
		return train.GRPOConfig{}, usageErrorf("--eval-context %d: want positions, or 0 for the trained context", fl.evalContext)
	}
	if _, err := engine.ParseWeightFormat(fl.evalWeights); err != nil {
		return train.GRPOConfig{}, usageErrorf("--eval-weights: %v", err)
	}
	if fl.evalEvery > 0 {
		// Each evaluated step has its checkpoint, and the checkpoints
		// between evaluations stay as frequent as asked.
		cfg.CheckpointEvery = gcd(cfg.CheckpointEvery, fl.evalEvery)
	}
	return cfg, nil
}

// run trains, evaluating every --eval-every steps.
func (fl *grpoFlags) run(cmd *cobra.Command) error {
	if fl.keepEvery < 0 {
		return fmt.Errorf("--keep-every %d: want 0 (keep none) or a positive number of steps", fl.keepEvery)
	}
	cfg, err := fl.config(cmd)
	if err != nil {
		return err
	}
	g, err := train.NewGRPO(countdown.Task{}, cfg, fl.from, fl.out)
	if err != nil {
		return err
	}
	defer g.Close()
	g.Progress = cmd.ErrOrStderr()
	g.Tick = phaseProgress(cmd.ErrOrStderr(), logEvery, func(step int) string { return fmt.Sprintf("step %d/%d", step, cfg.Steps) })
	g.KeepEvery = fl.keepEvery
	if st := g.State(); st.Step > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "resuming %s at step %d of %d\n", fl.out, st.Step, cfg.Steps)
	}
	ctx := cmd.Context()
	evaluate := func() error {
		if fl.evalEvery == 0 || g.State().Step == 0 || g.State().Step%fl.evalEvery != 0 {
			return nil
		}
		return evalCheckpoint(ctx, cmd.ErrOrStderr(), filepath.Join(fl.out, train.CheckpointDir), filepath.Join(fl.out, "eval.db"),
			g.State().Step, checkpointEval{n: fl.evalN, split: fl.evalSplit, context: fl.evalContext, weights: fl.evalWeights}, cfg)
	}
	// A run stopped during an evaluation finishes it first (the samples
	// already stored are kept; a finished one returns at once).
	if err := evaluate(); err != nil {
		return err
	}
	for g.State().Step < cfg.Steps {
		next := cfg.Steps
		if fl.evalEvery > 0 {
			next = min(cfg.Steps, (g.State().Step/fl.evalEvery+1)*fl.evalEvery)
		}
		if err := runGRPOUntil(ctx, g, next); err != nil {
			return err
		}
		if err := evaluate(); err != nil {
			return err
		}
	}
	return nil
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

// checkpointEval is how a run's checkpoints are evaluated: on n problems
// of split, at context positions (0: the trained context) with weights
// ("": the engine's default).
type checkpointEval struct {
	n       int
	split   string
	context int
	weights string
}

// evalCheckpoint evaluates a checkpoint greedily, in the run's mode and
// serially, into a SQLite store under run "step-N".
func evalCheckpoint(ctx context.Context, log io.Writer, dir, db string, step int, ev checkpointEval, cfg train.GRPOConfig) error {
	// The flags' check read the weights; "" is the engine's default.
	e, err := engine.Open(dir, engine.Options{Context: ev.context, Weights: engine.WeightFormat(ev.weights)})
	if err != nil {
		return err
	}
	defer e.Close()
	st, err := store.Open(ctx, db)
	if err != nil {
		return err
	}
	defer st.Close()
	t := countdown.Task{}
	problems, err := task.Draw(t, 2, ev.split, ev.n)
	if err != nil {
		return err
	}
	var raw []json.RawMessage
	for _, p := range problems {
		raw = append(raw, t.Encode(p))
	}
	strategies := []string{"serial"}
	if cfg.Mode != train.ModeSerial {
		strategies = append(strategies, "apr")
	}
	run := fmt.Sprintf("step-%d", step)
	// The test split's evaluations record no split, as before it could be
	// chosen, so that they resume under the same configuration.
	runCfg := map[string]any{"task": "countdown", "strategies": strategies, "n": ev.n, "grpo_step": step}
	if ev.split != task.SplitTest {
		runCfg["split"] = ev.split
	}
	if ev.context != 0 {
		runCfg["context"] = ev.context
	}
	if ev.weights != "" {
		runCfg["weights"] = ev.weights
	}
	if err := st.StartRun(ctx, run, runCfg); err != nil {
		return fmt.Errorf("evaluate step %d (an evaluation resumes with the --eval-n, --eval-split, --eval-context and --eval-weights it began with): %w", step, err)
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
	// As braid eval runs it: greedy, no budget.
	runner := eval.Runner{Task: t, Backend: e, Problems: problems, Options: reason.Options{Env: env}}
	if err := grid.Run(ctx, st, run, runner.Solve); err != nil {
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
	at := ""
	if ev.context != 0 {
		at = fmt.Sprintf(" at %d positions", ev.context)
	}
	fmt.Fprintf(log, "eval at step %d on %d %s problems%s (%s): %s\n", step, ev.n, ev.split, at, took, strings.Join(parts, ", "))
	return nil
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
