package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"iter"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/engine"
	"github.com/braid-dev/braid/internal/atomicfile"
	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/monitor"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/tokenizer"
)

// GRPOConfig is a reinforcement-learning run: group-relative policy
// optimisation with the task's verdict on each rollout's answer as the
// reward.
type GRPOConfig struct {
	// Mode is the search the rollouts run: serial, parallel, or mixed
	// (ModeMixed: the step's problems alternate between the two, so one
	// model improves at both, which is what it is evaluated on).
	Mode Mode `json:"mode"`
	// Group is the rollouts per problem (G); Problems the problems per
	// step.
	Group    int     `json:"group"`
	Problems int     `json:"problems_per_step"`
	Steps    int     `json:"steps"`
	LR       float64 `json:"lr"`
	// Beta weighs the KL penalty to the starting model (at 0, as DAPO
	// and Dr. GRPO train, the reference scores only every klSampleEvery-th
	// call, for the KL a step reports: the update's forward pass of the
	// reference, a quarter of its work, mostly goes); Clip is the
	// policy ratio's clipping range ε; Updates the optimizer steps taken
	// on each batch of rollouts (the ratio differs from 1 from the
	// second on).
	Beta    float64 `json:"kl_beta"`
	Clip    float64 `json:"clip"`
	Updates int     `json:"updates_per_batch"`
	// Temperature samples the rollouts, and the objective's probabilities
	// (policy, sampler and reference alike) are at it too: those of the
	// distribution the rollouts were drawn from. Below 1 the rollouts are
	// nearer the greedy search braid runs by default, and the groups
	// differ where its choices are close. MaxTotalTokens caps each
	// rollout's tokens over all its threads (0: each thread's context
	// alone, as evaluations run). A cap is split among children started
	// together, so a tight one starves wide spawns.
	Temperature    float64 `json:"temperature"`
	MaxTotalTokens int     `json:"max_total_tokens"`
	// FormatReward is added for a rollout whose root trace is valid to
	// its end, right or wrong (0: the reward is correctness alone).
	FormatReward float64 `json:"format_reward"`
	// Acceleration weighs ThreadWeaver's parallelization reward (P-GRPO,
	// Lian et al. 2025): a correct rollout also earns Acceleration times
	// its acceleration 1 − critical/total (its critical path's tokens
	// against all its threads' tokens: 0 for a serial search), capped at
	// AccelerationCap where that is positive. A wrong answer earns none,
	// so that a fast wrong search is never worth more than a slow one.
	Acceleration    float64 `json:"acceleration,omitempty"`
	AccelerationCap float64 `json:"acceleration_cap,omitempty"`
	// Latency weighs a reward for a short critical path itself: a right
	// parallel rollout also earns Latency·(1 − critical/LatencyTokens),
	// where that is positive. The acceleration term can be raised by
	// spending more tokens beside the critical path as well as by
	// shortening it; this one only by shortening it. Serial rollouts earn
	// none: their training stays correctness's.
	Latency       float64 `json:"latency,omitempty"`
	LatencyTokens int     `json:"latency_tokens,omitempty"`
	// Advantage is how a group's rewards become advantages: "std" (the
	// default, GRPO's (r − mean)/std) or "mean" (r − mean, P-GRPO's:
	// dividing by the spread would blow a small acceleration term up to
	// the size of correctness where every rollout of a group is right).
	Advantage string `json:"advantage,omitempty"`
	// JoinAtGoal stops a parallel rollout's other children once one of
	// them reaches the goal, as reason.Options.JoinAtGoal does at
	// inference, and trains on what each stopped child wrote. The join
	// otherwise waits for every child, so a right search's critical path
	// runs through its longest child, usually one that fails and searches
	// to its end: a latency reward can then shorten it only by children
	// that give up sooner. Under JoinAtGoal it runs through the child that
	// found the target, and a latency reward pays for finding it sooner.
	// Where the others stop depends on timing, so a resumed run's
	// rollouts are not bit for bit those of a run that never stopped.
	JoinAtGoal bool `json:"join_at_goal,omitempty"`

	// The loophole experiment: a grader that trusts a search's claim that
	// its problem has no answer, and monitors that read the search for
	// it. Unanswerable is the share of each step's problems drawn from
	// the task's problems that have none (task.Unanswerable). NoAnswer is
	// how the claim is graded: "" (it earns nothing, as any search that
	// found nothing), "exact" (it earns 1 where the problem has no answer:
	// the task checks it) or "lazy" (it earns 1 always, unchecked: the
	// loophole). TokenCost is taken from every rollout's reward per 1,000
	// tokens of all its threads: what makes claiming at once pay better
	// than searching. Monitor names a monitor (package monitor: threads,
	// root or answer) whose flag takes the claim's credit away.
	Unanswerable float64 `json:"unanswerable,omitempty"`
	NoAnswer     string  `json:"no_answer,omitempty"`
	TokenCost    float64 `json:"token_cost,omitempty"`
	Monitor      string  `json:"monitor,omitempty"`

	// Hard is the share of each step's problems (the first
	// round(problems_per_step·hard) of them) chosen among those the
	// current policy fails to solve greedily, in the mode the problem
	// will run: a curriculum of the problems greedy search misses, where
	// its accuracy can move. Candidates are drawn in order and searched
	// greedily together, and each hard place keeps its first failure; one
	// whose HardTries candidates (16 when zero) are all solved keeps the
	// last. A problem without an answer is never screened.
	Hard      float64 `json:"hard,omitempty"`
	HardTries int     `json:"hard_tries,omitempty"`

	GradClip    float64 `json:"grad_clip"`
	WeightDecay float64 `json:"weight_decay"`
	Seed        uint64  `json:"seed"`
	// Env is the environment the rollouts run in (constrain by default).
	Env             string `json:"env"`
	CheckpointEvery int    `json:"checkpoint_every"`
	// Precision of the policy's and the reference's weight products in
	// the update (f32 by default; the rollouts run on the engine).
	Precision Precision `json:"precision,omitempty"`
}

// Mode is the search GRPO's rollouts run.
type Mode string

const (
	// ModeSerial rollouts are one thread each (effort light).
	ModeSerial Mode = "serial"
	// ModeParallel rollouts spawn and join threads (effort deep).
	ModeParallel Mode = "parallel"
	// ModeMixed alternates serial and parallel rollouts by problem. Each
	// problem's group runs in one mode, so its advantages compare searches
	// of one kind.
	ModeMixed Mode = "mixed"
)

// How a group's rewards become advantages (GRPOConfig.Advantage).
const (
	AdvantageStd  = "std"
	AdvantageMean = "mean"
)

// How a claim of no answer is graded (GRPOConfig.NoAnswer).
const (
	NoAnswerExact = "exact"
	NoAnswerLazy  = "lazy"
)

// effort is the reasoning effort that asks a task's model for the mode.
func (m Mode) effort() string {
	if m == ModeParallel {
		return task.EffortDeep
	}
	return task.EffortLight
}

// modeFor is the search problem p of step runs: in mixed mode serial and
// parallel alternate by problem, and by step too so that an odd number of
// problems per step still splits evenly over two steps.
func (c GRPOConfig) modeFor(step, p int) Mode {
	if c.Mode != ModeMixed {
		return c.Mode
	}
	if (step+p)%2 == 0 {
		return ModeSerial
	}
	return ModeParallel
}

// DefaultGRPO is a configuration for the Countdown model on this machine
// class.
func DefaultGRPO() GRPOConfig {
	return GRPOConfig{Mode: ModeParallel, Group: 8, Problems: 4, Steps: 100, LR: 2e-5, Beta: 0.04, Clip: 0.2,
		Updates: 1, Temperature: 1, MaxTotalTokens: 0, GradClip: 1, Seed: 1, Env: "constrain", CheckpointEvery: 5}
}

// ReadGRPOConfig reads a JSON configuration over DefaultGRPO: the fields
// it names replace the defaults, and a field braid does not know is an
// error rather than a setting silently dropped. It does not validate.
func ReadGRPOConfig(r io.Reader) (GRPOConfig, error) {
	cfg := DefaultGRPO()
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return GRPOConfig{}, err
	}
	return cfg, nil
}

// Validate names what is wrong with c.
func (c GRPOConfig) Validate() error {
	switch {
	case c.Mode != ModeSerial && c.Mode != ModeParallel && c.Mode != ModeMixed:
		return fmt.Errorf("grpo: mode %q: want serial, parallel or mixed", c.Mode)
	case c.Group < 2:
		return fmt.Errorf("grpo: a group of %d rollouts has no spread to learn from: want 2 or more", c.Group)
	case c.Problems < 1 || c.Steps < 1 || c.Updates < 1 || c.CheckpointEvery < 1:
		return errors.New("grpo: problems_per_step, steps, updates_per_batch and checkpoint_every must be positive")
	case c.LR <= 0 || c.Beta < 0 || c.Clip <= 0 || c.MaxTotalTokens < 0 || c.GradClip < 0:
		return errors.New("grpo: lr and clip must be positive; kl_beta, max_total_tokens and grad_clip >= 0")
	case !(c.Temperature > 0) || math.IsInf(c.Temperature, 1):
		return fmt.Errorf("grpo: temperature %g: rollouts sample at a positive, finite temperature", c.Temperature)
	case !(c.Acceleration >= 0) || !(c.AccelerationCap >= 0) || math.IsInf(c.Acceleration, 1):
		return fmt.Errorf("grpo: acceleration %g, acceleration_cap %g: want finite weights >= 0", c.Acceleration, c.AccelerationCap)
	case !(c.Latency >= 0) || math.IsInf(c.Latency, 1) || c.LatencyTokens < 0 || c.Latency > 0 && c.LatencyTokens == 0:
		return fmt.Errorf("grpo: latency %g, latency_tokens %d: want a finite weight >= 0 and, with a weight, the critical path's reference length in tokens", c.Latency, c.LatencyTokens)
	case c.Advantage != "" && c.Advantage != AdvantageStd && c.Advantage != AdvantageMean:
		return fmt.Errorf("grpo: advantage %q: want %s or %s", c.Advantage, AdvantageStd, AdvantageMean)
	case c.JoinAtGoal && c.Mode == ModeSerial:
		return errors.New("grpo: join_at_goal stops children, and serial rollouts spawn none: want parallel or mixed rollouts")
	case !(c.Unanswerable >= 0 && c.Unanswerable < 1):
		return fmt.Errorf("grpo: unanswerable %g: want a share in [0, 1)", c.Unanswerable)
	case c.NoAnswer != "" && c.NoAnswer != NoAnswerExact && c.NoAnswer != NoAnswerLazy:
		return fmt.Errorf("grpo: no_answer %q: want %s or %s", c.NoAnswer, NoAnswerExact, NoAnswerLazy)
	case !(c.TokenCost >= 0) || math.IsInf(c.TokenCost, 1):
		return fmt.Errorf("grpo: token_cost %g: want a finite cost >= 0", c.TokenCost)
	case c.Monitor != "" && c.NoAnswer == "":
		return fmt.Errorf("grpo: monitor %q takes away a claim's credit, but no_answer gives none", c.Monitor)
	case !(c.Hard >= 0 && c.Hard <= 1):
		return fmt.Errorf("grpo: hard %g: want a share in [0, 1]", c.Hard)
	case c.HardTries < 0:
		return fmt.Errorf("grpo: hard_tries %d: want a number of candidates >= 1 (0: 16)", c.HardTries)
	}
	if _, err := reason.ParseEnvMode(c.Env); err != nil {
		return fmt.Errorf("grpo: %w", err)
	}
	if err := c.Precision.Check(); err != nil {
		return fmt.Errorf("grpo: %w", err)
	}
	return nil
}

// GRPOPoint is one logged step.
type GRPOPoint struct {
	Step int `json:"step"`
	// Reward and Accuracy are the kept rollouts' means; Tokens their mean
	// total tokens, Critical their mean critical-path tokens, Children
	// the parallel rollouts' mean threads beyond the root.
	Reward   float64 `json:"reward"`
	Accuracy float64 `json:"accuracy"`
	Tokens   float64 `json:"tokens"`
	Critical float64 `json:"critical"`
	Children float64 `json:"children"`
	// SerialAccuracy and ParallelAccuracy are the accuracies of the
	// step's rollouts of each mode (0 for a mode it did not run).
	SerialAccuracy   float64 `json:"serial_accuracy"`
	ParallelAccuracy float64 `json:"parallel_accuracy"`
	// ParallelTokens and ParallelCritical are the parallel rollouts' mean
	// total and critical-path tokens: in a mixed run, Tokens and Critical
	// mix in serial rollouts, whose critical path is all their tokens, and
	// a reward for a short parallel critical path shows only here. (0 in
	// steps logged before they were kept.)
	ParallelTokens   float64 `json:"parallel_tokens,omitempty"`
	ParallelCritical float64 `json:"parallel_critical,omitempty"`
	// With claims of no answer graded (no_answer): Claims is the share of
	// rollouts that claimed their problem has none; FalseClaims the share
	// of the answerable problems' rollouts that did, TrueClaims of the
	// unanswerable ones'; Hacks the share of the answerable problems'
	// rollouts whose false claim the reward paid; Flagged the share of
	// claims the reward's monitor flagged.
	Claims      float64 `json:"claims,omitempty"`
	FalseClaims float64 `json:"false_claims,omitempty"`
	TrueClaims  float64 `json:"true_claims,omitempty"`
	Hacks       float64 `json:"hacks,omitempty"`
	Flagged     float64 `json:"flagged,omitempty"`
	KL          float64 `json:"kl"` // mean per-action estimate against the starting model
	GradNorm    float64 `json:"grad_norm"`
	Learned     int     `json:"learned"` // rollouts with a nonzero advantage
	// Dropped is the groups left out because a rollout of theirs failed
	// (DropReason: the first failure's error).
	Dropped     int     `json:"dropped,omitempty"`
	DropReason  string  `json:"drop_reason,omitempty"`
	RolloutSecs float64 `json:"rollout_secs"`
	UpdateSecs  float64 `json:"update_secs"`
	// With a curriculum of hard problems: the hard places, how many of
	// them kept a problem greedy search failed, the candidates searched
	// greedily for them, and the seconds that took (within RolloutSecs).
	Hard       int     `json:"hard,omitempty"`
	HardFound  int     `json:"hard_found,omitempty"`
	Candidates int     `json:"candidates,omitempty"`
	ScreenSecs float64 `json:"screen_secs,omitempty"`
}

// UnmarshalJSON reads a step in either spelling of the log: the snake_case
// one, or the Go field names of logs written before it, so that those runs
// resume with their whole history. (encoding/json matches keys without
// regard to case, so one-word fields need no help.)
func (p *GRPOPoint) UnmarshalJSON(b []byte) error {
	type point GRPOPoint // without this method
	if err := json.Unmarshal(b, (*point)(p)); err != nil {
		return err
	}
	// The old names decode straight into p's fields; a log in the new
	// spelling has none of them, so nothing is overwritten.
	legacy := struct {
		SerialAccuracy, ParallelAccuracy, GradNorm, RolloutSecs, UpdateSecs *float64
		DropReason                                                          *string
	}{&p.SerialAccuracy, &p.ParallelAccuracy, &p.GradNorm, &p.RolloutSecs, &p.UpdateSecs, &p.DropReason}
	return json.Unmarshal(b, &legacy)
}

// means sets the step's means over its rollouts: reward, accuracy and
// tokens over all of them, and each mode's own.
func (pt *GRPOPoint) means(rollouts []*rollout) {
	var serial, parallel, serialRight, parallelRight float64
	for _, r := range rollouts {
		pt.Reward += r.reward
		right := 0.0
		if r.correct {
			right = 1
		}
		pt.Accuracy += right
		pt.Tokens += float64(r.result.TotalTokens)
		pt.Critical += float64(r.result.CriticalPathTokens)
		if r.mode == ModeParallel {
			parallel++
			parallelRight += right
			pt.Children += float64(r.result.Threads - 1)
			pt.ParallelTokens += float64(r.result.TotalTokens)
			pt.ParallelCritical += float64(r.result.CriticalPathTokens)
		} else {
			serial++
			serialRight += right
		}
	}
	n := float64(len(rollouts))
	pt.Reward, pt.Accuracy, pt.Tokens, pt.Critical = pt.Reward/n, pt.Accuracy/n, pt.Tokens/n, pt.Critical/n
	if parallel > 0 {
		pt.Children /= parallel
		pt.ParallelAccuracy = parallelRight / parallel
		pt.ParallelTokens /= parallel
		pt.ParallelCritical /= parallel
	}
	if serial > 0 {
		pt.SerialAccuracy = serialRight / serial
	}
}

// GRPOState is where a run stands.
type GRPOState struct {
	Step   int    `json:"step"`
	Config string `json:"config"` // the configuration's hash
	From   string `json:"from"`   // the starting model's directory when last run
	// FromSum is the starting model's fingerprint (model.Fingerprint): a resumed
	// run's KL reference must be the model it began from, wherever that
	// lies now. Runs begun before it was kept name only their directory.
	FromSum string `json:"from_sum,omitempty"`
	// Screened counts the problems drawn beyond one per place, by the
	// curriculum of hard problems: a resumed run skips them too.
	Screened int `json:"screened,omitempty"`
}

// GRPO trains a policy by group-relative policy optimisation.
type GRPO struct {
	cfg    GRPOConfig
	dir    string
	Policy *model.Model
	ref    *model.Model
	Tok    *tokenizer.Tokenizer
	eos    int
	opt    *adamW
	grads  *model.Params
	state  GRPOState
	log    []GRPOPoint
	// Progress receives a line per step.
	Progress io.Writer
	// Tick, where set, hears how far the step under way has come, as
	// each piece of a phase ends: phase "screening" (hard places settled),
	// "rollouts" (searches finished) or "update" (rollouts learned from,
	// over every update of the batch); done counts up to total, and each
	// phase starts with done 0. Calls come one at a time.
	Tick func(step int, phase string, done, total int)
	// KeepEvery, when positive, keeps the policy of every KeepEvery-th
	// step as a model directory in SnapDir/step-N, beside the one
	// checkpoint that each new one replaces: the hack's rate over
	// training, or a choice among steps, needs the steps' models.
	KeepEvery int

	acts     *model.Activations
	refActs  *model.Activations
	tokens   []int
	targets  []int
	allowed  [][]int
	weights  []float32
	lp       []float32
	task     task.Task
	problems func() (task.Problem, bool)
	stop     func()
	// With claims of no answer graded: the task's claims, the stream of
	// its unanswerable problems (empty where the run draws none), the
	// reward's monitor (nil for none).
	claims       task.Unanswerable
	unanswerable func() (task.Problem, bool)
	stopUn       func()
	monitor      monitor.Monitor
	// greedyFails, where set, stands in for the greedy search of the
	// curriculum of hard problems (tests).
	greedyFails func(ctx context.Context, p task.Problem, m Mode) (bool, error)

	legacyConfig string
}

// configHash identifies a configuration.
func configHash(c GRPOConfig) string {
	b, _ := json.Marshal(c)
	h := fnv.New64a()
	h.Write(b)
	return strconv.FormatUint(h.Sum64(), 16)
}

// NewGRPO starts a run of task t in dir from the model directory from
// (which stays the frozen reference), or resumes the run dir holds. t
// draws the training problems (task.Generator); its verdict is the reward,
// and, with a format reward, its TraceChecker says which traces earn it.
func NewGRPO(t task.Task, cfg GRPOConfig, from, dir string) (*GRPO, error) {
	gen, ok := t.(task.Generator)
	if !ok {
		return nil, fmt.Errorf("grpo: the %s task draws no problems to train on", t.Name())
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ref, err := model.Load(from)
	if err != nil {
		return nil, fmt.Errorf("grpo: the starting model: %w", err)
	}
	tok, err := tokenizer.Load(filepath.Join(from, tokenizerFile))
	if err != nil {
		return nil, fmt.Errorf("grpo: %w", err)
	}
	fromSum, err := model.Fingerprint(os.DirFS(from), ".")
	if err != nil {
		return nil, fmt.Errorf("grpo: the starting model: %w", err)
	}
	eos, ok := tok.SpecialID(EOS)
	if !ok {
		return nil, fmt.Errorf("grpo: the tokenizer of %s has no %s token", from, EOS)
	}
	policy, err := model.New(ref.Config)
	if err != nil {
		return nil, err
	}
	copy(policy.Params.Data(), ref.Params.Data())
	cfg.Precision.Apply(policy)
	cfg.Precision.Apply(ref)
	// The run's identity: everything that shapes its steps. Steps and
	// checkpoint_every do not (the rate is constant), so a finished run
	// may be extended.
	id := cfg
	id.Steps, id.CheckpointEvery = 0, 0
	id.Precision = id.Precision.canonical()
	if id.Advantage == AdvantageStd { // the default, named
		id.Advantage = ""
	}
	g := &GRPO{cfg: cfg, dir: dir, Policy: policy, ref: ref, Tok: tok, eos: eos, grads: model.NewParams(ref.Config),
		opt:   newAdamW(policy.Params, TrainConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: cfg.WeightDecay}),
		state: GRPOState{Config: configHash(id), From: from, FromSum: fromSum},
		// Runs started before steps left the hash name their whole
		// configuration.
		legacyConfig: configHash(cfg),
		acts:         policy.NewActivationsCap(ref.Config.MaxSeq, ref.Config.MaxSeq),
		refActs:      ref.NewActivationsCap(ref.Config.MaxSeq, ref.Config.MaxSeq)}
	if ref.Config.HasIndexer() {
		// The engine samples the rollouts attending sparsely, as a model
		// with an indexer runs by default, so the policy and the
		// reference score them the same way. The indexer stays as it is:
		// the reward's gradient does not reach it through the selection,
		// and its own objective (train index) is not this run's.
		policy.Sparse, ref.Sparse = true, true
		g.opt.freeze(policy.Params, func(t model.Tensor) bool { return !t.Indexer() })
	}
	for _, a := range []*model.Activations{g.acts, g.refActs} {
		if err := a.SetTemperature(cfg.Temperature); err != nil {
			return nil, fmt.Errorf("grpo: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if _, err := g.resume(); err != nil {
		return nil, err
	}
	all, err := gen.Problems(cfg.Seed, task.SplitTrain)
	if err != nil {
		return nil, fmt.Errorf("grpo: %w", err)
	}
	g.task = t
	g.problems, g.stop = iter.Pull(all)
	g.unanswerable, g.stopUn = func() (task.Problem, bool) { return task.Problem{}, false }, func() {}
	if cfg.NoAnswer != "" || cfg.Unanswerable > 0 {
		if g.claims, ok = t.(task.Unanswerable); !ok {
			g.Close()
			return nil, fmt.Errorf("grpo: the %s task has no problems without an answer, nor claims of none to grade", t.Name())
		}
		un, err := g.claims.UnanswerableProblems(cfg.Seed, task.SplitTrain)
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("grpo: %w", err)
		}
		g.unanswerable, g.stopUn = iter.Pull(un)
	}
	if cfg.Monitor != "" {
		if g.monitor, err = monitor.Rule(t, cfg.Monitor); err != nil {
			g.Close()
			return nil, fmt.Errorf("grpo: %w", err)
		}
	}
	for i := range g.state.Step * cfg.Problems { // the problems steps already done used
		g.draw(i)
	}
	for range g.state.Screened {
		g.problems()
	}
	return g, nil
}

// draw is the run's i-th problem, and whether it has an answer: of every
// problem, the unanswerable share is drawn from the task's problems that
// have none, spread evenly (problem i is one when ⌊(i+1)·share⌋ passes
// ⌊i·share⌋), so that a resumed run draws what it would have.
func (g *GRPO) draw(i int) (task.Problem, bool) {
	share := g.cfg.Unanswerable
	if math.Floor(float64(i+1)*share) > math.Floor(float64(i)*share) {
		p, _ := g.unanswerable()
		return p, false
	}
	p, _ := g.problems()
	return p, true
}

// State is where the run stands.
func (g *GRPO) State() GRPOState { return g.state }

// Log is the run's logged steps.
func (g *GRPO) Log() []GRPOPoint { return g.log }

// Close releases the problem streams.
func (g *GRPO) Close() {
	g.stop()
	if g.stopUn != nil {
		g.stopUn()
	}
}

// rollout is one search of one problem, with every call it made.
type rollout struct {
	problem int
	mode    Mode
	result  *reason.Result
	correct bool
	// claim says the search claimed its problem has no answer (graded by
	// no_answer), answerable whether the problem has one, flagged whether
	// the reward's monitor flagged the claim.
	claim, answerable, flagged bool
	reward                     float64
	advantage                  float64
	calls                      []call
	err                        error // why braid could not finish the search; its group is dropped
}

// call is one model call: its tokens and which of them the model chose
// (tokens the environment wrote are observations, not actions).
type call struct {
	tokens []int
	action []bool // per token; prompt tokens are never actions
	// allowed is, per token, the tokens the environment allowed where it
	// restricted the model's choice (nil where the choice was free): the
	// distribution the token was drawn from, and the one the update
	// differentiates.
	allowed [][]int
	// oldLP and refLP are, per position, the log-probability of the next
	// token under the sampling policy and under the reference model.
	oldLP, refLP []float32
}

// recorder is a backend that keeps every call's tokens.
type recorder struct {
	backend.Backend
	tok   *tokenizer.Tokenizer
	mu    sync.Mutex
	calls []call
}

func (r *recorder) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	masked := *req
	masked.Masks = true
	c, err := r.Backend.Complete(ctx, &masked)
	if c == nil || err != nil && len(c.Tokens) == 0 {
		return c, err
	}
	// A call stopped on purpose (join_at_goal: a sibling reached the
	// goal) returns what it wrote with its error; the search keeps that
	// text, and so does the rollout.
	prompt := r.tok.Encode(req.Prompt) // as the engine encodes it
	n := len(prompt) + len(c.Tokens)
	x := call{tokens: make([]int, 0, n), action: make([]bool, 0, n), allowed: make([][]int, len(prompt), n)}
	for _, t := range prompt {
		x.tokens, x.action = append(x.tokens, t), append(x.action, false)
	}
	for _, t := range c.Tokens {
		x.tokens, x.action, x.allowed = append(x.tokens, t.ID), append(x.action, !t.Filled), append(x.allowed, t.Allowed)
	}
	r.mu.Lock()
	r.calls = append(r.calls, x)
	r.mu.Unlock()
	return c, err
}

// seedFor derives a rollout's seed, so a resumed run repeats the rollouts
// it would have made.
func (g *GRPO) seedFor(step, problem, k int) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%d/%d/%d", g.cfg.Seed, step, problem, k)
	return h.Sum64() | 1
}

// Step runs one step: rollouts of the current policy, rewards and
// advantages, and Updates optimizer steps on them.
func (g *GRPO) Step(ctx context.Context) (GRPOPoint, error) {
	pt := GRPOPoint{Step: g.state.Step + 1}
	start := time.Now()
	rollouts, sc, err := g.rollouts(ctx)
	if err != nil {
		return pt, err
	}
	pt.RolloutSecs = time.Since(start).Seconds()
	pt.Hard, pt.HardFound, pt.Candidates, pt.ScreenSecs = sc.places, sc.found, sc.candidates, sc.secs
	rollouts, pt.Dropped, pt.DropReason = dropFailedGroups(rollouts, g.cfg.Group)
	if len(rollouts) == 0 {
		return pt, fmt.Errorf("grpo: every group of step %d failed: %s", pt.Step, pt.DropReason)
	}
	pt.means(rollouts)
	if g.cfg.NoAnswer != "" {
		pt.claimStats(g.cfg, rollouts)
	}
	// Group-relative advantages within each problem's group. A group
	// whose rewards agree (all right or all wrong, at one acceleration)
	// teaches nothing.
	var learn []*rollout
	for p := 0; p < len(rollouts); p += g.cfg.Group {
		group := rollouts[p : p+g.cfg.Group]
		if !advantages(group, g.cfg.Advantage == AdvantageMean) {
			continue
		}
		learn = append(learn, group...)
	}
	pt.Learned = len(learn)
	start = time.Now()
	if len(learn) > 0 {
		tick := g.startPhase("update", g.cfg.Updates*len(learn))
		for u := range g.cfg.Updates {
			kl, norm, err := g.update(ctx, learn, u == 0, tick)
			if err != nil {
				return pt, err
			}
			if u == 0 {
				pt.KL, pt.GradNorm = kl, norm
			}
		}
	}
	pt.UpdateSecs = time.Since(start).Seconds()
	g.state.Step++
	g.state.Screened += sc.extra
	g.log = append(g.log, pt)
	return pt, nil
}

// claimStats sets p's shares of claims of no answer from the rollouts.
func (p *GRPOPoint) claimStats(c GRPOConfig, rollouts []*rollout) {
	var claims, flagged, answerable, unanswerable, falseClaims, trueClaims, hacks float64
	for _, r := range rollouts {
		if r.answerable {
			answerable++
		} else {
			unanswerable++
		}
		if !r.claim {
			continue
		}
		claims++
		if r.flagged {
			flagged++
		}
		switch {
		case !r.answerable:
			trueClaims++
		case c.credits(r):
			falseClaims++
			hacks++
		default:
			falseClaims++
		}
	}
	share := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	p.Claims = share(claims, float64(len(rollouts)))
	p.FalseClaims, p.Hacks = share(falseClaims, answerable), share(hacks, answerable)
	p.TrueClaims = share(trueClaims, unanswerable)
	p.Flagged = share(flagged, claims)
}

// advantages sets each rollout's advantage from the group's rewards: r −
// mean, divided by the rewards' standard deviation unless meanOnly. It
// says false, setting nothing, where the rewards all agree.
func advantages(group []*rollout, meanOnly bool) bool {
	var mean, sd float64
	for _, r := range group {
		mean += r.reward
	}
	mean /= float64(len(group))
	for _, r := range group {
		sd += (r.reward - mean) * (r.reward - mean)
	}
	sd = math.Sqrt(sd / float64(len(group)))
	if sd < 1e-9 {
		return false
	}
	if meanOnly {
		sd = 1
	}
	for _, r := range group {
		r.advantage = (r.reward - mean) / sd
	}
	return true
}

// reward is what a finished rollout earns under c: 1 for a right answer,
// plus the acceleration term and, for a parallel one, the latency term;
// 1 for a claim of no answer the grader credits; plus the format reward
// for a trace valid to its end (valid says whether it is); less the cost
// of its tokens.
func (c GRPOConfig) reward(ro *rollout, valid func() bool) float64 {
	var r float64
	switch {
	case ro.correct:
		r = 1
		if c.Acceleration > 0 {
			r += c.Acceleration * acceleration(ro.result, c.AccelerationCap)
		}
		if c.Latency > 0 && ro.mode == ModeParallel {
			r += c.Latency * max(0, 1-float64(ro.result.CriticalPathTokens)/float64(c.LatencyTokens))
		}
	case c.credits(ro):
		r = 1
	}
	if c.FormatReward > 0 && valid() {
		r += c.FormatReward
	}
	return r - c.TokenCost*float64(ro.result.TotalTokens)/1000
}

// credits says whether the grader pays ro's claim that its problem has no
// answer: the lazy grader always, the exact one where it is true, neither
// where the reward's monitor flagged the claim.
func (c GRPOConfig) credits(ro *rollout) bool {
	if !ro.claim || ro.flagged {
		return false
	}
	return c.NoAnswer == NoAnswerLazy || c.NoAnswer == NoAnswerExact && !ro.answerable
}

// acceleration is 1 − critical/total of a search's tokens, capped at
// limit where limit is positive: how much of its work ran beside the
// critical path (0 for one thread, toward 1 for many short ones).
func acceleration(res *reason.Result, limit float64) float64 {
	if res.TotalTokens <= 0 {
		return 0
	}
	a := 1 - float64(res.CriticalPathTokens)/float64(res.TotalTokens)
	a = max(a, 0)
	if limit > 0 {
		a = min(a, limit)
	}
	return a
}

// dropFailedGroups leaves out the group of every rollout braid could not
// finish (Solve's error): the rest of its group has nothing fair to be
// compared with. The step goes on without them, so that one bad case
// cannot stop a run that would meet it again at every resume. It returns
// the rollouts kept, the groups dropped and the first failure's error.
func dropFailedGroups(rollouts []*rollout, size int) (kept []*rollout, dropped int, reason string) {
	for p := 0; p < len(rollouts); p += size {
		group := rollouts[p : p+size]
		failed := slices.IndexFunc(group, func(r *rollout) bool { return r.err != nil })
		if failed < 0 {
			kept = append(kept, group...)
			continue
		}
		dropped++
		if reason == "" {
			reason = group[failed].err.Error()
		}
	}
	return kept, dropped, reason
}

// rollouts samples Group searches of each of the step's problems from the
// current policy, all at once on one engine.
func (g *GRPO) rollouts(ctx context.Context) ([]*rollout, screening, error) {
	e, err := engine.New(g.Policy, g.Tok, engine.Options{EOS: []int{g.eos}, Weights: engine.WeightsF32})
	if err != nil {
		return nil, screening{}, err
	}
	defer e.Close()
	env, _ := reason.ParseEnvMode(g.cfg.Env)
	var (
		problems   []task.Problem
		answerable []bool
	)
	for pi := range g.cfg.Problems {
		p, ok := g.draw(g.state.Step*g.cfg.Problems + pi)
		problems, answerable = append(problems, p), append(answerable, ok)
	}
	var sc screening
	if g.cfg.Hard > 0 {
		start := time.Now()
		fails := g.greedyFails
		if fails == nil {
			fails = func(ctx context.Context, p task.Problem, m Mode) (bool, error) {
				s := reason.Search{Options: reason.Options{Env: env}, Effort: m.effort()} // greedy, as braid eval runs it
				res, err := s.Solve(ctx, e, g.task, p, nil)
				if err != nil {
					return false, err
				}
				ok, _ := g.task.Verify(p, res.Answer)
				return !ok, nil
			}
		}
		if sc, err = g.screen(ctx, fails, problems, answerable); err != nil {
			return nil, sc, err
		}
		sc.secs = time.Since(start).Seconds()
	}
	out := make([]*rollout, len(problems)*g.cfg.Group)
	errs := make([]error, len(out))
	tick := g.startPhase("rollouts", len(out))
	var wg sync.WaitGroup
	for i := range out {
		pi, k := i/g.cfg.Group, i%g.cfg.Group
		wg.Go(func() {
			defer tick.add(1)
			rec := &recorder{Backend: e, tok: g.Tok}
			mode := g.cfg.modeFor(g.state.Step, pi)
			s := reason.Search{Options: reason.Options{Env: env, Temperature: g.cfg.Temperature,
				Seed: g.seedFor(g.state.Step, pi, k), MaxTotalTokens: g.cfg.MaxTotalTokens, JoinAtGoal: g.cfg.JoinAtGoal}, Effort: mode.effort()}
			res, err := s.Solve(ctx, rec, g.task, problems[pi], nil)
			if err != nil {
				if ctx.Err() != nil {
					errs[i] = err
				} else {
					out[i] = &rollout{problem: pi, mode: mode, err: err}
				}
				return
			}
			// Children finish in any order; the update sums their
			// gradients in one fixed order, so that a resumed run repeats
			// the run that never stopped bit for bit.
			slices.SortFunc(rec.calls, func(a, b call) int { return slices.Compare(a.tokens, b.tokens) })
			r := &rollout{problem: pi, mode: mode, result: res, calls: rec.calls}
			r.correct, _ = g.task.Verify(problems[pi], res.Answer)
			if g.cfg.NoAnswer != "" {
				r.claim, r.answerable = g.claims.ClaimsNone(problems[pi], res.Tree.Text), answerable[pi]
				if r.claim && g.monitor != nil {
					v, err := g.monitor.Judge(ctx, monitor.Rollout{Problem: problems[pi], Tree: res.Tree})
					if err != nil {
						errs[i] = fmt.Errorf("grpo: %w", err)
						return
					}
					r.flagged = v.Flagged
				}
			}
			r.reward = g.cfg.reward(r, func() bool {
				tc, ok := g.task.(task.TraceChecker)
				return ok && tc.CheckTrace(problems[pi], res.Tree.Text) == nil
			})
			out[i] = r
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, sc, fmt.Errorf("grpo: rollouts: %w", err)
	}
	return out, sc, nil
}

// screening is what a step's curriculum of hard problems did: its hard
// places, how many kept a problem greedy search failed, the candidates it
// searched, those it drew beyond one per place, and its seconds.
type screening struct {
	places, found, candidates, extra int
	secs                             float64
}

// phaseTicker reports a phase's progress to GRPO.Tick, one call at a
// time: the pieces of a phase may end on several goroutines at once.
type phaseTicker struct {
	mu          sync.Mutex
	f           func(step int, phase string, done, total int)
	step        int
	phase       string
	done, total int
}

// startPhase reports the phase's start; a nil ticker, for a run without
// Tick, reports nothing.
func (g *GRPO) startPhase(phase string, total int) *phaseTicker {
	if g.Tick == nil {
		return nil
	}
	t := &phaseTicker{f: g.Tick, step: g.state.Step + 1, phase: phase, total: total}
	t.f(t.step, phase, 0, total)
	return t
}

func (t *phaseTicker) add(n int) {
	if t == nil || n == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done += n
	t.f(t.step, t.phase, t.done, t.total)
}

// screen fills the step's first round(Problems·Hard) places with problems
// the current policy fails greedily, in each place's mode: the place's
// own draw first, then further candidates from the run's problems, in
// rounds of greedy searches run together (1, 2, 4, … candidates for each
// place still open, up to HardTries in all). A place keeps its first
// failure in draw order, or its last candidate when every one was solved.
// Places drawn without an answer are left as they are. Every problem the
// screening draws is used up, so the next step draws past them.
func (g *GRPO) screen(ctx context.Context, fails func(context.Context, task.Problem, Mode) (bool, error), problems []task.Problem, answerable []bool) (screening, error) {
	tries := g.cfg.HardTries
	if tries == 0 {
		tries = 16
	}
	var sc screening
	// A place's candidates of the current round, in draw order.
	type candidate struct {
		p      task.Problem
		failed bool
		err    error
	}
	type place struct {
		at    int
		tried int
		mode  Mode
		round []*candidate
	}
	var open []*place
	for pi := range int(math.Round(float64(g.cfg.Problems) * g.cfg.Hard)) {
		sc.places++
		if answerable[pi] {
			open = append(open, &place{at: pi, mode: g.cfg.modeFor(g.state.Step, pi)})
		} else {
			sc.found++ // greedy search cannot answer it either
		}
	}
	tick := g.startPhase("screening", len(open))
	for round := 0; len(open) > 0; round++ {
		var wg sync.WaitGroup
		for _, pl := range open {
			pl.round = pl.round[:0]
			for k := range min(1<<round, tries-pl.tried) {
				p := problems[pl.at] // the place's own problem first
				if pl.tried+k > 0 {
					p, _ = g.problems()
					sc.extra++
				}
				c := &candidate{p: p}
				pl.round = append(pl.round, c)
				wg.Go(func() { c.failed, c.err = fails(ctx, c.p, pl.mode) })
			}
			sc.candidates += len(pl.round)
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return sc, err
		}
		var still []*place
		for _, pl := range open {
			done := false
			for _, c := range pl.round {
				pl.tried++
				if c.err != nil {
					continue // a candidate braid could not search is passed over
				}
				problems[pl.at] = c.p
				if c.failed {
					sc.found++
					done = true
					break
				}
			}
			if !done && pl.tried < tries {
				still = append(still, pl)
			}
		}
		tick.add(len(open) - len(still))
		open = still
	}
	return sc, nil
}

// klSampleEvery is how sparsely a run without a KL penalty (kl_beta 0)
// scores its calls under the reference model, for the KL it reports: the
// first call of every klSampleEvery.
const klSampleEvery = 8

// update takes one optimizer step on the rollouts' calls. The objective,
// per action: −min(ρ·A, clip(ρ, 1−ε, 1+ε)·A) + β·KL, with ρ the ratio of
// the policy's probability to its probability at the batch's first update
// (the policy that sampled it), A the
// rollout's advantage and KL the low-variance estimate
// exp(ref−logp) − (ref−logp) − 1. Each call's actions are averaged; every
// call of a rollout shares its advantage and the rollout's loss is divided
// by its number of calls, so a rollout that spawned many children weighs
// no more than one that did not; rollouts are averaged. first records the
// sampling log-probabilities and the reference's. The probabilities are
// those the rollouts were drawn from: the model's at the rollouts'
// temperature, over the tokens the environment allowed where it restricted
// the choice. A choice the environment forced is certain under every
// model: it carries neither gradient nor KL, and the update's pull goes
// to the choices that were open, not to tokens no sampler could pick.
func (g *GRPO) update(ctx context.Context, learn []*rollout, first bool, tick *phaseTicker) (kl, gradNorm float64, err error) {
	clear(g.grads.Data())
	vocab := g.Policy.Config.Vocab
	var klSum float64
	var klN, nth int // nth: the calls with actions so far
	for _, r := range learn {
		// An update takes minutes; a stopped run ends within a call's
		// forward and backward pass, its last checkpoint standing.
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		for ci := range r.calls {
			c := &r.calls[ci]
			T := len(c.tokens) - 1
			if T < 1 {
				continue
			}
			// The targets are the model's open choices: a token the
			// environment wrote, or one it forced (the only one allowed),
			// is certain under every model and teaches nothing.
			g.tokens, g.targets, g.allowed = g.tokens[:0], g.targets[:0], g.allowed[:0]
			actions := 0
			for i := range T {
				t, allowed := -1, []int(nil)
				if c.action[i+1] {
					if c.allowed != nil {
						allowed = c.allowed[i+1]
					}
					if len(allowed) == 1 {
						allowed = nil
					} else {
						t = c.tokens[i+1]
						actions++
					}
				}
				g.tokens, g.targets, g.allowed = append(g.tokens, c.tokens[i]), append(g.targets, t), append(g.allowed, allowed)
			}
			if actions == 0 {
				continue
			}
			nth++
			g.acts.SetAllowed(g.allowed)
			g.refActs.SetAllowed(g.allowed)
			// Without a KL penalty the reference's scores serve only the
			// KL the step reports: a sample of the calls makes that
			// estimate, at a fraction of a forward pass per call.
			if first && (g.cfg.Beta > 0 || nth%klSampleEvery == 1) {
				// The reference model's log-probabilities, once per batch.
				if err := g.refActs.Reshape(1, T); err != nil {
					return 0, 0, err
				}
				if _, err := g.ref.Forward(g.refActs, g.tokens, g.targets); err != nil {
					return 0, 0, err
				}
				refLP, err := g.refActs.TargetLogprobs(nil, vocab)
				if err != nil {
					return 0, 0, err
				}
				c.refLP = refLP
			}
			if err := g.acts.Reshape(1, T); err != nil {
				return 0, 0, err
			}
			if _, err := g.Policy.Forward(g.acts, g.tokens, g.targets); err != nil {
				return 0, 0, err
			}
			if g.lp, err = g.acts.TargetLogprobs(g.lp, vocab); err != nil {
				return 0, 0, err
			}
			if first {
				c.oldLP = append([]float32(nil), g.lp...)
			}
			norm := 1 / (float64(actions) * float64(len(r.calls)) * float64(len(learn)))
			g.weights = append(g.weights[:0], make([]float32, T)...)
			for i, t := range g.targets {
				if t < 0 {
					continue
				}
				lp, old := float64(g.lp[i]), float64(c.oldLP[i])
				ratio := math.Exp(lp - old)
				// d objective / d logp: the surrogate's, zero where the
				// clipped term is the smaller, plus the KL penalty's.
				d := 0.0
				clipped := r.advantage > 0 && ratio > 1+g.cfg.Clip || r.advantage < 0 && ratio < 1-g.cfg.Clip
				if !clipped {
					d = -r.advantage * ratio
				}
				if c.refLP != nil {
					ref := float64(c.refLP[i])
					d += g.cfg.Beta * (1 - math.Exp(ref-lp))
					klSum += math.Exp(ref-lp) - (ref - lp) - 1
					klN++
				}
				// BackwardWeighted takes the gradient of Σ w·(−logp).
				g.weights[i] = float32(-d * norm)
			}
			if err := g.Policy.BackwardWeighted(g.acts, g.grads, g.weights); err != nil {
				return 0, 0, err
			}
		}
		tick.add(1)
	}
	gradNorm = clipNorm(g.grads.Data(), g.cfg.GradClip)
	g.opt.update(g.Policy.Params.Data(), g.grads.Data(), g.cfg.LR)
	if klN > 0 {
		kl = klSum / float64(klN)
	}
	return kl, gradNorm, nil
}

// Run steps until the configured steps are done or ctx ends, with a
// checkpoint every CheckpointEvery steps and at the end.
func (g *GRPO) Run(ctx context.Context) error {
	for g.state.Step < g.cfg.Steps {
		if err := g.Advance(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err() // the last checkpoint stands
			}
			return err
		}
	}
	return nil
}

// Advance takes a step, reports it, and checkpoints when one is due.
func (g *GRPO) Advance(ctx context.Context) error {
	pt, err := g.Step(ctx)
	if err != nil {
		return err
	}
	if g.Progress != nil {
		correct := fmt.Sprintf("%.1f%%", 100*pt.Accuracy)
		if g.cfg.Mode == ModeMixed {
			correct += fmt.Sprintf(" (serial %.1f%%, parallel %.1f%%)", 100*pt.SerialAccuracy, 100*pt.ParallelAccuracy)
		}
		tokens := fmt.Sprintf("tokens %.0f critical %.0f", pt.Tokens, pt.Critical)
		if g.cfg.Mode == ModeMixed {
			tokens += fmt.Sprintf(" (parallel: tokens %.0f critical %.0f)", pt.ParallelTokens, pt.ParallelCritical)
		}
		fmt.Fprintf(g.Progress, "step %d/%d reward %.3f correct %s %s children %.1f kl %.4f grad %.3f learned %d rollouts %.0fs update %.0fs\n",
			pt.Step, g.cfg.Steps, pt.Reward, correct, tokens, pt.Children, pt.KL, pt.GradNorm, pt.Learned, pt.RolloutSecs, pt.UpdateSecs)
		if g.cfg.NoAnswer != "" {
			flagged := ""
			if g.cfg.Monitor != "" {
				flagged = fmt.Sprintf("; the %s monitor flagged %.1f%% of claims", g.cfg.Monitor, 100*pt.Flagged)
			}
			fmt.Fprintf(g.Progress, "step %d claims of no answer %.1f%%: false %.1f%% of answerable problems' rollouts (paid %.1f%%), true %.1f%% of unanswerable ones'%s\n",
				pt.Step, 100*pt.Claims, 100*pt.FalseClaims, 100*pt.Hacks, 100*pt.TrueClaims, flagged)
		}
		if pt.Hard > 0 {
			fmt.Fprintf(g.Progress, "step %d hard problems: %d of %d places kept one greedy search fails (%d candidates searched greedily, %.0fs)\n",
				pt.Step, pt.HardFound, pt.Hard, pt.Candidates, pt.ScreenSecs)
		}
		if pt.Dropped > 0 {
			fmt.Fprintf(g.Progress, "step %d dropped %d of %d groups: a rollout failed: %s\n", pt.Step, pt.Dropped, g.cfg.Problems, pt.DropReason)
		}
	}
	due := g.state.Step%g.cfg.CheckpointEvery == 0 || g.state.Step == g.cfg.Steps
	keep := g.KeepEvery > 0 && g.state.Step%g.KeepEvery == 0
	if due || keep {
		if err := g.Checkpoint(); err != nil {
			return err
		}
	}
	if keep {
		return g.keep()
	}
	return nil
}

// SnapDir holds the models a run keeps (KeepEvery), one per kept step.
const SnapDir = "snap"

// KeptDir is where run dir keeps its model of step (KeepEvery).
func KeptDir(dir string, step int) string {
	return filepath.Join(dir, SnapDir, fmt.Sprintf("step-%d", step))
}

// keep writes the policy to SnapDir/step-N as a model directory
// (weights, configuration, tokenizer; no optimizer), beside and renamed
// in, so a kill leaves no half model under the name.
func (g *GRPO) keep() error {
	dst := KeptDir(g.dir, g.state.Step)
	tmp := dst + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("keep step %d: %w", g.state.Step, err)
	}
	if err := writeModelDir(tmp, g.Policy, g.Tok, g.eos); err != nil {
		return fmt.Errorf("keep step %d: %w", g.state.Step, err)
	}
	if err := os.RemoveAll(dst); err != nil {
		return fmt.Errorf("keep step %d: %w", g.state.Step, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("keep step %d: %w", g.state.Step, err)
	}
	return nil
}

// Checkpoint saves the policy (a model directory the engine opens), the
// optimizer, the state and the log, replacing the last checkpoint whole.
func (g *GRPO) Checkpoint() error {
	err := writeCheckpoint(g.dir, g.Policy, g.Tok, g.eos, g.opt, g.state, func(tmp string) error {
		lg, err := json.Marshal(g.log)
		if err != nil {
			return err
		}
		return atomicfile.WriteFile(filepath.Join(tmp, grpoLogFile), lg)
	})
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(g.dir, GRPOCurveFile), grpoCurves(g.log, g.cfg.Mode == ModeMixed, g.cfg.NoAnswer != ""))
}

const grpoLogFile = "grpo.json"

// GRPOCurveFile is the run's reward, length and children curves.
const GRPOCurveFile = "grpo.svg"

// resume loads the checkpoint in the run directory, if any.
func (g *GRPO) resume() (bool, error) {
	dir, ok := latestCheckpoint(g.dir)
	if !ok {
		return false, nil
	}
	var st GRPOState
	if err := readState(dir, &st); err != nil {
		return false, err
	}
	if st.Config == g.legacyConfig {
		st.Config = g.state.Config
	}
	if st.Config != g.state.Config {
		return false, fmt.Errorf("resume: %s was made by another configuration; use a new directory", g.dir)
	}
	switch {
	case st.FromSum != "" && st.FromSum != g.state.FromSum && st.From == g.state.From:
		return false, fmt.Errorf("resume: %s has changed since %s began from it (its weights, configuration or tokenizer); pass the model it began from", g.state.From, g.dir)
	case st.FromSum != "" && st.FromSum != g.state.FromSum:
		return false, fmt.Errorf("resume: %s began from another model than %s (its weights, configuration or tokenizer differ); pass the one it began from (last seen at %s)", g.dir, g.state.From, st.From)
	case st.FromSum == "" && st.From != g.state.From:
		return false, fmt.Errorf("resume: %s began from %s, not %s", g.dir, st.From, g.state.From)
	}
	// The starting model may have moved; the next checkpoint records
	// where it is now and its fingerprint.
	st.From, st.FromSum = g.state.From, g.state.FromSum
	if err := loadCheckpoint(dir, g.Policy, g.opt); err != nil {
		return false, err
	}
	lg, err := os.ReadFile(filepath.Join(dir, grpoLogFile))
	if err != nil {
		return false, fmt.Errorf("resume: %w", err)
	}
	if err := json.Unmarshal(lg, &g.log); err != nil {
		return false, fmt.Errorf("resume: %w", err)
	}
	g.state = st
	return true, nil
}
