package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"iter"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/task/countdown"
	"github.com/braid-dev/braid/tokenizer"
)

// tinyGRPO is a GRPO over a small random model, its own reference, for
// tests of the update alone.
func tinyGRPO(t *testing.T, cfg GRPOConfig) *GRPO {
	t.Helper()
	c := model.Config{Vocab: 16, Dim: 16, Hidden: 24, Layers: 2, Heads: 2, KVHeads: 2, HeadDim: 8, MaxSeq: 32,
		NormEps: 1e-5, RopeTheta: 10000}
	ref, err := model.New(c)
	if err != nil {
		t.Fatal(err)
	}
	ref.Params.Init(rand.New(rand.NewPCG(1, 2)), 0.2)
	policy, _ := model.New(c)
	copy(policy.Params.Data(), ref.Params.Data())
	return &GRPO{cfg: cfg, Policy: policy, ref: ref, grads: model.NewParams(c),
		opt:  newAdamW(policy.Params, TrainConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}),
		acts: policy.NewActivationsCap(c.MaxSeq, c.MaxSeq), refActs: ref.NewActivationsCap(c.MaxSeq, c.MaxSeq)}
}

// seqLogprob is the policy's log-probability of a call's actions.
func seqLogprob(t *testing.T, g *GRPO, c call) float64 {
	t.Helper()
	T := len(c.tokens) - 1
	tokens, targets := c.tokens[:T], make([]int, T)
	for i := range T {
		targets[i] = -1
		if c.action[i+1] {
			targets[i] = c.tokens[i+1]
		}
	}
	a := g.Policy.NewActivations(1, T)
	if _, err := g.Policy.Forward(a, tokens, targets); err != nil {
		t.Fatal(err)
	}
	lp, _ := a.TargetLogprobs(nil, g.Policy.Config.Vocab)
	var s float64
	for _, v := range lp {
		s += float64(v)
	}
	return s
}

func testCall(tokens ...int) call {
	c := call{tokens: tokens, action: make([]bool, len(tokens))}
	for i := 3; i < len(tokens); i++ {
		c.action[i] = i%4 != 0 // a prompt of 3, then actions with an environment token now and then
	}
	return c
}

// A rollout with a positive advantage becomes likelier, one with a
// negative advantage less likely.
func TestGRPOUpdateFollowsTheAdvantage(t *testing.T) {
	g := tinyGRPO(t, GRPOConfig{LR: 1e-2, Clip: 0.2, Beta: 0.01, GradClip: 1})
	good := &rollout{advantage: 1, calls: []call{testCall(1, 2, 3, 4, 5, 6, 7, 8, 9)}}
	bad := &rollout{advantage: -1, calls: []call{testCall(1, 2, 3, 9, 8, 7, 6, 5, 4)}}
	g0, b0 := seqLogprob(t, g, good.calls[0]), seqLogprob(t, g, bad.calls[0])
	for u := range 5 {
		if _, _, err := g.update(t.Context(), []*rollout{good, bad}, u == 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	g1, b1 := seqLogprob(t, g, good.calls[0]), seqLogprob(t, g, bad.calls[0])
	if !(g1 > g0 && b1 < b0) {
		t.Errorf("log-probability of the rewarded rollout %.3f → %.3f, of the penalised %.3f → %.3f", g0, g1, b0, b1)
	}
}

// A stopped run stops in the middle of an update, without taking the
// optimizer step: the policy stays as its last checkpoint has it.
func TestGRPOUpdateStopsWithItsContext(t *testing.T) {
	g := tinyGRPO(t, GRPOConfig{LR: 1e-2, Clip: 0.2, Beta: 0.01, GradClip: 1})
	before := slices.Clone(g.Policy.Params.Data())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r := &rollout{advantage: 1, calls: []call{testCall(1, 2, 3, 4, 5, 6, 7, 8, 9)}}
	if _, _, err := g.update(ctx, []*rollout{r}, true, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("update with a cancelled context: %v", err)
	}
	if !slices.Equal(before, g.Policy.Params.Data()) {
		t.Error("a stopped update changed the policy")
	}
}

// Every call of a rollout shares its advantage and the rollout's loss is
// divided by its number of calls: a rollout of four identical calls
// pushes the model exactly as far as one of those calls alone.
func TestGRPOLossDividedByCalls(t *testing.T) {
	one := testCall(1, 2, 3, 4, 5, 6, 7)
	grads := func(calls []call) []float32 {
		g := tinyGRPO(t, GRPOConfig{LR: 1e-3, Clip: 0.2, Beta: 0.04})
		if _, _, err := g.update(t.Context(), []*rollout{{advantage: 1.5, calls: calls}}, true, nil); err != nil {
			t.Fatal(err)
		}
		return slices.Clone(g.grads.Data())
	}
	a := grads([]call{one})
	b := grads([]call{testCall(1, 2, 3, 4, 5, 6, 7), testCall(1, 2, 3, 4, 5, 6, 7), testCall(1, 2, 3, 4, 5, 6, 7), testCall(1, 2, 3, 4, 5, 6, 7)})
	var worst, norm float64
	for i := range a {
		worst = math.Max(worst, math.Abs(float64(a[i]-b[i])))
		norm = math.Max(norm, math.Abs(float64(a[i])))
	}
	if norm == 0 || worst > 1e-5*norm {
		t.Errorf("four copies of a call: gradient differs by %g (largest entry %g)", worst, norm)
	}
}

// Tokens the environment wrote are observations: a call in which the
// model chose nothing moves nothing.
func TestGRPOIgnoresEnvironmentTokens(t *testing.T) {
	g := tinyGRPO(t, GRPOConfig{LR: 1e-3, Clip: 0.2})
	c := testCall(1, 2, 3, 4, 5, 6, 7, 8, 9)
	c.action = make([]bool, len(c.tokens)) // nothing the model chose
	if _, _, err := g.update(t.Context(), []*rollout{{advantage: 1, calls: []call{c}}}, true, nil); err != nil {
		t.Fatal(err)
	}
	for _, v := range g.grads.Data() {
		if v != 0 {
			t.Fatal("a rollout with no actions moved the model")
		}
	}
}

// tinySFT trains a small supervised model on Countdown traces and returns
// its checkpoint directory: a starting model whose rollouts search.
// Training takes seconds, so short test runs skip the caller.
func tinySFT(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("trains a model first")
	}
	_, open := tinyData(t, tinyRecipe())
	sft := t.TempDir()
	if err := open(sft).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(sft, CheckpointDir)
}

// A GRPO run from a small supervised checkpoint: rollouts through the
// engine in both modes (mixed), checkpoints, and a resume that continues as
// if never stopped.
func TestGRPOResumeIsExact(t *testing.T) {
	from := tinySFT(t)
	cfg := GRPOConfig{Mode: ModeMixed, Group: 4, Problems: 2, Steps: 4, LR: 1e-3, Beta: 0.04, Clip: 0.2, Updates: 2,
		Temperature: 1, MaxTotalTokens: 400, FormatReward: 0.5, GradClip: 1, Seed: 7, Env: "constrain", CheckpointEvery: 2}
	ctx := context.Background()
	straightDir := t.TempDir()
	straight, err := NewGRPO(countdown.Task{}, cfg, from, straightDir)
	if err != nil {
		t.Fatal(err)
	}
	defer straight.Close()
	straight.KeepEvery = 3 // off the checkpoints' rhythm: a step kept is checkpointed too
	if err := straight.Run(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	first, err := NewGRPO(countdown.Task{}, cfg, from, dir)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // one step past the checkpoint at 2, then a kill
		if err := first.Advance(ctx); err != nil {
			t.Fatal(err)
		}
	}
	atStep3 := slices.Clone(first.Policy.Params.Data())
	first.Close()
	// The straight run kept step 3's policy, the one the first run holds
	// now, as a model directory of its own.
	kept, err := model.Load(filepath.Join(straightDir, SnapDir, "step-3"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(kept.Params.Data(), atStep3) {
		t.Error("the model kept at step 3 is not step 3's policy")
	}
	if snaps, _ := os.ReadDir(filepath.Join(straightDir, SnapDir)); len(snaps) != 1 {
		t.Errorf("kept %v, want step-3 alone", snaps)
	}
	// The starting model may move: the run knows it by its fingerprint.
	moved := copyModelDir(t, from)
	resumed, err := NewGRPO(countdown.Task{}, cfg, moved, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer resumed.Close()
	if resumed.State().Step != 2 {
		t.Fatalf("resumed at step %d, want 2", resumed.State().Step)
	}
	if err := resumed.Run(ctx); err != nil {
		t.Fatal(err)
	}
	learned := 0
	for i, p := range straight.Log() {
		q := resumed.Log()[i]
		learned += p.Learned
		if p.Reward != q.Reward || p.Tokens != q.Tokens || p.GradNorm != q.GradNorm {
			t.Errorf("step %d: %+v straight, %+v resumed", p.Step, p, q)
		}
	}
	for i, v := range straight.Policy.Params.Data() {
		if w := resumed.Policy.Params.Data()[i]; math.Float32bits(v) != math.Float32bits(w) {
			t.Fatalf("parameter %d is %g after a resume, %g straight", i, w, v)
		}
	}
	t.Logf("log %+v; %d rollouts learned from", straight.Log(), learned)
	// Each problem's group ran in its mode: serial searches in one thread.
	rs, _, err := resumed.rollouts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	modes := map[Mode]int{}
	for _, r := range rs {
		modes[r.mode]++
		if want := cfg.modeFor(resumed.State().Step, r.problem); r.mode != want {
			t.Errorf("problem %d ran %s, want %s", r.problem, r.mode, want)
		}
		if r.mode == ModeSerial && r.result.Threads != 1 {
			t.Errorf("a serial rollout ran %d threads", r.result.Threads)
		}
	}
	if modes[ModeSerial] != cfg.Group || modes[ModeParallel] != cfg.Group {
		t.Errorf("rollouts by mode %v, want a group of each", modes)
	}
	if _, err := os.Stat(filepath.Join(dir, GRPOCurveFile)); err != nil {
		t.Error(err)
	}
	// A starting model whose weights changed would change the KL
	// reference mid-run: refused, even at the path the run knows.
	m, err := model.Load(moved)
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Data()[0] += 0.01
	if err := m.Save(moved); err != nil {
		t.Fatal(err)
	}
	if _, err := NewGRPO(countdown.Task{}, cfg, moved, dir); err == nil || !strings.Contains(err.Error(), "has changed since") {
		t.Errorf("a resume from a changed starting model: %v", err)
	}
	if g, err := NewGRPO(countdown.Task{}, cfg, from, dir); err != nil {
		t.Errorf("a resume from the original starting model, in its first place: %v", err)
	} else {
		g.Close()
	}
	// A run begun before fingerprints were kept knows its starting model
	// by its directory alone.
	legacy := GRPOState{Step: resumed.State().Step, Config: resumed.State().Config, From: "models/elsewhere"}
	b, _ := json.Marshal(legacy)
	if err := os.WriteFile(filepath.Join(dir, CheckpointDir, stateFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewGRPO(countdown.Task{}, cfg, from, dir); err == nil || !strings.Contains(err.Error(), "began from models/elsewhere") {
		t.Errorf("a legacy run resumed from another directory: %v", err)
	}
}

// copyModelDir copies a model directory's files into a new directory.
func copyModelDir(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	for _, name := range []string{model.ConfigFile, model.WeightsFile, tokenizerFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// Mixed mode alternates the modes by problem and by step, and every mode
// GRPO cannot run is refused by name.
func TestGRPOMixedModes(t *testing.T) {
	c := DefaultGRPO()
	c.Mode = ModeMixed
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	count := map[Mode]int{}
	for step := range 2 {
		for p := range 3 {
			count[c.modeFor(step, p)]++
		}
		if c.modeFor(step, 0) == c.modeFor(step, 1) {
			t.Errorf("step %d: problems 0 and 1 both run %s", step, c.modeFor(step, 0))
		}
	}
	if count[ModeSerial] != 3 || count[ModeParallel] != 3 {
		t.Errorf("over two steps of 3 problems: %v, want 3 of each", count)
	}
	c.Mode = ModeSerial
	if c.modeFor(1, 1) != ModeSerial {
		t.Error("serial mode ran another")
	}
	c.Mode = Mode("direct")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "serial, parallel or mixed") {
		t.Errorf("direct mode: %v", err)
	}
}

// The update differentiates the distribution the rollouts were drawn
// from: at the run's temperature below 1, over the tokens the environment
// allowed. Its recorded sampling log-probabilities are log softmax(logits
// / temperature) over those tokens, and a forced token (the only one
// allowed) is no target at all.
func TestGRPOObjectiveIsTheSamplersDistribution(t *testing.T) {
	from := tinySFT(t)
	cfg := GRPOConfig{Mode: ModeSerial, Group: 2, Problems: 1, Steps: 1, LR: 1e-3, Beta: 0.04, Clip: 0.2, Updates: 1,
		Temperature: 0.5, MaxTotalTokens: 200, GradClip: 1, Seed: 3, Env: "constrain", CheckpointEvery: 1}
	for _, bad := range []float64{0, -0.5, math.Inf(1)} {
		c := cfg
		c.Temperature = bad
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "temperature") {
			t.Errorf("temperature %g: %v", bad, err)
		}
	}
	g, err := NewGRPO(countdown.Task{}, cfg, from, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	rs, _, err := g.rollouts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		r.advantage = 1
	}
	if _, _, err := g.update(t.Context(), rs, true, nil); err != nil {
		t.Fatal(err)
	}
	vocab := g.ref.Config.Vocab
	free, masked, forced, tempered := 0, 0, 0, 0
	for _, r := range rs {
		for _, c := range r.calls {
			T := len(c.tokens) - 1
			a := g.ref.NewActivations(1, T) // the policy that sampled: the reference, before the update
			if _, err := g.ref.Forward(a, c.tokens[:T], nil); err != nil {
				t.Fatal(err)
			}
			for i := range T {
				if !c.action[i+1] {
					continue
				}
				allowed := c.allowed[i+1]
				if len(allowed) == 1 {
					forced++
					if c.oldLP[i] != 0 || c.refLP[i] != 0 {
						t.Errorf("position %d: a forced token has log-probabilities %g, %g", i, c.oldLP[i], c.refLP[i])
					}
					continue
				}
				if allowed == nil {
					free++
				} else {
					masked++
				}
				logits := a.Logits(i, vocab)
				var z, z1 float64
				for id, v := range logits {
					if allowed == nil || slices.Contains(allowed, id) {
						z += math.Exp(float64(v) / cfg.Temperature)
						z1 += math.Exp(float64(v))
					}
				}
				next := float64(logits[c.tokens[i+1]])
				want := next/cfg.Temperature - math.Log(z)
				if math.Abs(float64(c.oldLP[i])-want) > 1e-3 {
					t.Fatalf("position %d: sampling log-probability %g, want %g at temperature %g over %d tokens", i, c.oldLP[i], want, cfg.Temperature, len(allowed))
				}
				if math.Abs(want-(next-math.Log(z1))) > 1e-3 {
					tempered++
				}
			}
		}
	}
	t.Logf("%d free, %d masked and %d forced choices; %d differ from temperature 1", free, masked, forced, tempered)
	if masked == 0 || forced == 0 || tempered == 0 {
		t.Errorf("%d masked and %d forced choices, %d of them with another probability at temperature %g than at 1: the rollouts did not exercise the distribution", masked, forced, tempered, cfg.Temperature)
	}
}

// A rollout braid could not finish drops its problem's group, not the
// step: the other groups are kept, in order, and the first failure is the
// reason reported.
func TestGRPODropsTheGroupOfAFailedRollout(t *testing.T) {
	var rs []*rollout
	for i := range 12 {
		rs = append(rs, &rollout{problem: i / 4})
	}
	rs[5].err = errors.New("join of problem 1")
	rs[6].err = errors.New("another of problem 1")
	rs[11].err = errors.New("join of problem 2")
	kept, dropped, reason := dropFailedGroups(rs, 4)
	if dropped != 2 || reason != "join of problem 1" {
		t.Errorf("dropped %d groups for %q, want 2 for the first failure", dropped, reason)
	}
	if len(kept) != 4 || kept[0] != rs[0] || kept[3] != rs[3] {
		t.Errorf("kept %d rollouts, want problem 0's 4 in order", len(kept))
	}
	if kept, dropped, _ := dropFailedGroups(rs[:4], 4); len(kept) != 4 || dropped != 0 {
		t.Errorf("a step without failures kept %d and dropped %d groups", len(kept), dropped)
	}
}

// A step of the log reads back whole in its own spelling and in the Go
// field names that logs were written in before it.
func TestGRPOPointJSON(t *testing.T) {
	want := GRPOPoint{Step: 3, Reward: 0.5, Accuracy: 0.5, Tokens: 6191.5, Critical: 1934.5, Children: 9.5,
		SerialAccuracy: 0.25, ParallelAccuracy: 0.75, KL: 0.002, GradNorm: 0.17, Learned: 88,
		Dropped: 1, DropReason: "rollout 3: boom", RolloutSecs: 80, UpdateSecs: 116}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"serial_accuracy":0.25`, `"grad_norm":0.17`, `"rollout_secs":80`, `"drop_reason":"rollout 3: boom"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("%s lacks %s", b, key)
		}
	}
	legacy := `{"step":3,"Reward":0.5,"Accuracy":0.5,"Tokens":6191.5,"Critical":1934.5,"Children":9.5,` +
		`"SerialAccuracy":0.25,"ParallelAccuracy":0.75,"KL":0.002,"GradNorm":0.17,"Learned":88,` +
		`"Dropped":1,"DropReason":"rollout 3: boom","RolloutSecs":80,"UpdateSecs":116}`
	for _, in := range []string{string(b), legacy} {
		var got GRPOPoint
		if err := json.Unmarshal([]byte(in), &got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s read as %+v, want %+v", in, got, want)
		}
	}
	var got []GRPOPoint
	if err := json.Unmarshal([]byte(`[{"step":"x"}]`), &got); err == nil {
		t.Error("a step that is not a number was read")
	}
}

// GRPO on a model with a lightning indexer: the engine samples the
// rollouts attending sparsely (its default for such a model), and the
// policy and the reference score them the same way, so the objective is
// the sampler's; the update changes the model and leaves the indexer.
func TestGRPOOnASparseModel(t *testing.T) {
	dense := tinySFT(t)
	m, err := model.Load(dense)
	if err != nil {
		t.Fatal(err)
	}
	c := m.Config
	c.IndexHeads, c.IndexDim, c.IndexTopK = 2, 8, 6
	sm, err := model.New(c)
	if err != nil {
		t.Fatal(err)
	}
	sm.Params.Init(rand.New(rand.NewPCG(4, 4)), 0.3)
	if err := startFrom(sm, m); err != nil {
		t.Fatal(err)
	}
	from := t.TempDir()
	if err := sm.Save(from); err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(filepath.Join(dense, tokenizerFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(from, tokenizerFile), tok, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := GRPOConfig{Mode: ModeSerial, Group: 2, Problems: 1, Steps: 1, LR: 1e-2, Beta: 0.04, Clip: 0.2, Updates: 1,
		Temperature: 1, MaxTotalTokens: 200, GradClip: 1, Seed: 3, Env: "constrain", CheckpointEvery: 1, WeightDecay: 0.1}
	g, err := NewGRPO(countdown.Task{}, cfg, from, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if !g.Policy.Sparse || !g.ref.Sparse {
		t.Fatal("the policy or the reference attends densely")
	}
	before := slices.Clone(g.Policy.Params.Data())
	rs, _, err := g.rollouts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		r.advantage = float64(2*i - 1)
	}
	if _, _, err := g.update(t.Context(), rs, true, nil); err != nil {
		t.Fatal(err)
	}
	// The scoring models attend sparsely where it matters: a call longer
	// than the top-k has other logits than the dense model gives it.
	long := 0
	for _, r := range rs {
		for _, call := range r.calls {
			T := len(call.tokens) - 1
			if T <= 2*c.IndexTopK {
				continue
			}
			long++
			var logits [2][]float32
			for i, sparse := range []bool{false, true} {
				g.ref.Sparse = sparse
				a := g.ref.NewActivations(1, T)
				if _, err := g.ref.Forward(a, call.tokens[:T], nil); err != nil {
					t.Fatal(err)
				}
				logits[i] = slices.Clone(a.Logits(T-1, c.Vocab))
			}
			if slices.Equal(logits[0], logits[1]) {
				t.Errorf("a call of %d tokens has the same logits dense and sparse (top %d)", T, c.IndexTopK)
			}
		}
	}
	if long == 0 {
		t.Fatalf("no call longer than the top-k %d", c.IndexTopK)
	}
	off := 0
	changed := false
	for _, ts := range g.Policy.Params.Tensors() {
		now, was := ts.Data, before[off:off+len(ts.Data)]
		off += len(ts.Data)
		switch {
		case ts.Indexer() && !slices.Equal(now, was):
			t.Errorf("GRPO changed the indexer's %s", ts.Name)
		case !ts.Indexer() && !slices.Equal(now, was):
			changed = true
		}
	}
	if !changed {
		t.Error("GRPO changed nothing")
	}
}

// The acceleration term (P-GRPO) goes to right answers alone, grows as the
// critical path shrinks against the total, stops at its cap, and adds to
// the format reward, which goes to wrong answers too.
func TestGRPOAccelerationReward(t *testing.T) {
	valid := func() bool { return true }
	invalid := func() bool { return false }
	serial := &reason.Result{Usage: reason.Usage{TotalTokens: 1000, CriticalPathTokens: 1000}}
	wide := &reason.Result{Usage: reason.Usage{TotalTokens: 1000, CriticalPathTokens: 300}} // acceleration 0.7
	empty := &reason.Result{}
	for _, tc := range []struct {
		name    string
		cfg     GRPOConfig
		correct bool
		res     *reason.Result
		valid   func() bool
		want    float64
	}{
		{"correctness alone", GRPOConfig{}, true, wide, valid, 1},
		{"wrong", GRPOConfig{Acceleration: 0.5}, false, wide, valid, 0},
		{"serial earns none", GRPOConfig{Acceleration: 0.5}, true, serial, valid, 1},
		{"wide", GRPOConfig{Acceleration: 0.5}, true, wide, valid, 1.35},
		{"capped", GRPOConfig{Acceleration: 0.5, AccelerationCap: 0.2}, true, wide, valid, 1.1},
		{"cap above", GRPOConfig{Acceleration: 0.5, AccelerationCap: 0.9}, true, wide, valid, 1.35},
		{"no tokens", GRPOConfig{Acceleration: 0.5}, true, empty, valid, 1},
		{"format, wrong", GRPOConfig{Acceleration: 0.5, FormatReward: 0.1}, false, wide, valid, 0.1},
		{"format, right and wide", GRPOConfig{Acceleration: 0.5, FormatReward: 0.1}, true, wide, valid, 1.45},
		{"format broken", GRPOConfig{Acceleration: 0.5, FormatReward: 0.1}, true, wide, invalid, 1.35},
	} {
		if got := tc.cfg.reward(&rollout{correct: tc.correct, result: tc.res}, tc.valid); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: reward %g, want %g", tc.name, got, tc.want)
		}
	}
	// The latency term: a right parallel rollout earns W·(1 − critical/L),
	// more tokens beside the critical path earning nothing more; serial,
	// wrong and past-L rollouts none.
	lat := GRPOConfig{Latency: 0.5, LatencyTokens: 2000}
	wider := &reason.Result{Usage: reason.Usage{TotalTokens: 4000, CriticalPathTokens: 300}}
	long := &reason.Result{Usage: reason.Usage{TotalTokens: 9000, CriticalPathTokens: 2500}}
	for _, tc := range []struct {
		name string
		ro   rollout
		want float64
	}{
		{"parallel", rollout{correct: true, mode: ModeParallel, result: wide}, 1.425},
		{"wider, same path", rollout{correct: true, mode: ModeParallel, result: wider}, 1.425},
		{"past the reference", rollout{correct: true, mode: ModeParallel, result: long}, 1},
		{"serial", rollout{correct: true, mode: ModeSerial, result: &reason.Result{Usage: reason.Usage{TotalTokens: 300, CriticalPathTokens: 300}}}, 1},
		{"wrong", rollout{mode: ModeParallel, result: wide}, 0},
	} {
		if got := lat.reward(&tc.ro, valid); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("latency, %s: reward %g, want %g", tc.name, got, tc.want)
		}
	}
}

// Advantages on hand-built groups: GRPO's divide by the spread, so a
// group that is all right and differs only in acceleration gets
// advantages of ±1, as large as right against wrong; P-GRPO's, centred on
// the mean alone, keep the difference its size. A group that agrees
// learns nothing either way.
func TestGRPOAdvantages(t *testing.T) {
	group := func(rewards ...float64) []*rollout {
		var g []*rollout
		for _, r := range rewards {
			g = append(g, &rollout{reward: r})
		}
		return g
	}
	check := func(name string, g []*rollout, meanOnly, learns bool, want ...float64) {
		t.Helper()
		if got := advantages(g, meanOnly); got != learns {
			t.Fatalf("%s: learns %v, want %v", name, got, learns)
		}
		for i, r := range g {
			if math.Abs(r.advantage-want[i]) > 1e-9 {
				t.Fatalf("%s: rollout %d's advantage %g, want %g", name, i, r.advantage, want[i])
			}
		}
	}
	check("std, right and wrong", group(1, 0, 1, 0), false, true, 1, -1, 1, -1)
	check("mean, right and wrong", group(1, 0, 1, 0), true, true, 0.5, -0.5, 0.5, -0.5)
	check("std, all right, faster and slower", group(1.1, 1.0, 1.1, 1.0), false, true, 1, -1, 1, -1)
	check("mean, all right, faster and slower", group(1.1, 1.0, 1.1, 1.0), true, true, 0.05, -0.05, 0.05, -0.05)
	check("std, all wrong", group(0, 0, 0), false, false, 0, 0, 0)
	check("mean, all right alike", group(1.2, 1.2), true, false, 0, 0)
}

// A configuration's new fields are checked, and leaving them out keeps an
// old run's hash, so that it resumes.
func TestGRPOAccelerationConfig(t *testing.T) {
	base := DefaultGRPO()
	for _, bad := range []GRPOConfig{
		func() GRPOConfig { c := base; c.Acceleration = -1; return c }(),
		func() GRPOConfig { c := base; c.AccelerationCap = math.NaN(); return c }(),
		func() GRPOConfig { c := base; c.Advantage = "median"; return c }(),
		func() GRPOConfig { c := base; c.Latency = 1; return c }(), // no reference length
		func() GRPOConfig { c := base; c.Latency, c.LatencyTokens = math.Inf(1), 2048; return c }(),
		func() GRPOConfig { c := base; c.LatencyTokens = -1; return c }(),
		func() GRPOConfig { c := base; c.Mode, c.JoinAtGoal = ModeSerial, true; return c }(), // no children to stop
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v validated", bad)
		}
	}
	good := base
	good.Acceleration, good.AccelerationCap, good.Advantage = 0.5, 0.4, AdvantageMean
	good.Latency, good.LatencyTokens = 1, 2048
	good.Mode, good.JoinAtGoal = ModeMixed, true
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(base)
	if strings.Contains(string(b), "acceleration") || strings.Contains(string(b), "advantage") || strings.Contains(string(b), "latency") || strings.Contains(string(b), "join") {
		t.Errorf("a configuration without the acceleration reward writes its fields (and so changes its hash): %s", b)
	}
}

// The loophole's grading on hand-built rollouts: a claim of no answer
// earns nothing ungraded, 1 from the exact grader where it is true, 1
// from the lazy grader always, nothing once the monitor flags it; a right
// answer earns 1 whatever the grading; every rollout pays for its tokens.
func TestGRPOLoopholeReward(t *testing.T) {
	res := &reason.Result{Usage: reason.Usage{TotalTokens: 2000, CriticalPathTokens: 2000}}
	right := &rollout{correct: true, answerable: true, result: res}
	lost := &rollout{answerable: true, result: res} // found nothing, claimed nothing
	falseClaim := &rollout{claim: true, answerable: true, result: res}
	trueClaim := &rollout{claim: true, result: res}
	flagged := &rollout{claim: true, answerable: true, flagged: true, result: res}
	valid := func() bool { return true }
	for _, tc := range []struct {
		grading string
		cost    float64
		ro      *rollout
		want    float64
	}{
		{"", 0, right, 1}, {"", 0, falseClaim, 0}, {"", 0, trueClaim, 0},
		{NoAnswerExact, 0, right, 1}, {NoAnswerExact, 0, falseClaim, 0}, {NoAnswerExact, 0, trueClaim, 1}, {NoAnswerExact, 0, lost, 0},
		{NoAnswerLazy, 0, falseClaim, 1}, {NoAnswerLazy, 0, trueClaim, 1}, {NoAnswerLazy, 0, flagged, 0}, {NoAnswerLazy, 0, lost, 0},
		{NoAnswerLazy, 0.05, right, 0.9}, {NoAnswerLazy, 0.05, falseClaim, 0.9}, {NoAnswerLazy, 0.05, lost, -0.1},
	} {
		c := GRPOConfig{NoAnswer: tc.grading, TokenCost: tc.cost}
		if got := c.reward(tc.ro, valid); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("grading %q, cost %g, %+v: reward %g, want %g", tc.grading, tc.cost, *tc.ro, got, tc.want)
		}
	}
	// A step's shares: of 4 answerable rollouts 2 claimed (1 flagged, so
	// 1 paid); of 2 unanswerable ones 1 claimed.
	var p GRPOPoint
	p.claimStats(GRPOConfig{NoAnswer: NoAnswerLazy}, []*rollout{right, lost, falseClaim, flagged, trueClaim, {result: res}})
	want := GRPOPoint{Claims: 0.5, FalseClaims: 0.5, Hacks: 0.25, TrueClaims: 0.5, Flagged: 1.0 / 3}
	if math.Abs(p.Claims-want.Claims)+math.Abs(p.FalseClaims-want.FalseClaims)+math.Abs(p.Hacks-want.Hacks)+
		math.Abs(p.TrueClaims-want.TrueClaims)+math.Abs(p.Flagged-want.Flagged) > 1e-12 {
		t.Errorf("claim shares %+v, want %+v", p, want)
	}
}

// Unanswerable problems are the configured share of every step's,
// spread evenly, truly without an answer, and the same after a resume;
// a loophole run steps and logs its claims; what it cannot run is refused
// by name.
func TestGRPOUnanswerableProblems(t *testing.T) {
	from := tinySFT(t)
	cfg := GRPOConfig{Mode: ModeParallel, Group: 2, Problems: 4, Steps: 1, LR: 1e-3, Beta: 0.04, Clip: 0.2, Updates: 1,
		Temperature: 1, MaxTotalTokens: 300, GradClip: 1, Seed: 7, Env: "constrain", CheckpointEvery: 1,
		Unanswerable: 0.25, NoAnswer: NoAnswerLazy, TokenCost: 0.01, Monitor: "threads"}
	g, err := NewGRPO(countdown.Task{}, cfg, from, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var keys []string
	for i := range 12 {
		p, answerable := g.draw(i)
		if answerable != (i%4 != 3) {
			t.Errorf("problem %d: answerable %v", i, answerable)
		}
		if countdown.Solvable(countdown.ProblemOf(p)) != answerable {
			t.Errorf("problem %d (%s): answerable %v, but the solver says otherwise", i, p.Text, answerable)
		}
		keys = append(keys, p.Text)
	}
	g.Close()
	// A run of one step, then resumed: the resumed run draws on from
	// where the first stopped.
	dir := t.TempDir()
	first, err := NewGRPO(countdown.Task{}, cfg, from, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	first.Close()
	if len(first.Log()) != 1 {
		t.Fatalf("log %+v", first.Log())
	}
	t.Logf("step %+v", first.Log()[0])
	if svg, err := os.ReadFile(filepath.Join(dir, GRPOCurveFile)); err != nil || !strings.Contains(string(svg), "claims of no answer") {
		t.Errorf("the run's curves draw no claims (%v)", err)
	}
	longer := cfg
	longer.Steps = 2
	resumed, err := NewGRPO(countdown.Task{}, longer, from, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer resumed.Close()
	if resumed.State().Step != 1 {
		t.Fatalf("resumed at step %d, want 1", resumed.State().Step)
	}
	for i := 4; i < 8; i++ {
		if p, _ := resumed.draw(i); p.Text != keys[i] {
			t.Fatalf("the resumed run's problem %d is %s, want %s", i, p.Text, keys[i])
		}
	}

	for _, bad := range []GRPOConfig{
		func() GRPOConfig { c := cfg; c.Unanswerable = 1; return c }(),
		func() GRPOConfig { c := cfg; c.NoAnswer = "trusting"; return c }(),
		func() GRPOConfig { c := cfg; c.TokenCost = -0.1; return c }(),
		func() GRPOConfig { c := cfg; c.NoAnswer = ""; return c }(), // a monitor with nothing to take away
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v validated", bad)
		}
	}
	bad := cfg
	bad.Monitor = "oracle"
	if _, err := NewGRPO(countdown.Task{}, bad, from, t.TempDir()); err == nil || !strings.Contains(err.Error(), "oracle") {
		t.Errorf("an unknown monitor: %v", err)
	}
	b, _ := json.Marshal(DefaultGRPO())
	for _, field := range []string{"unanswerable", "no_answer", "token_cost", "monitor"} {
		if strings.Contains(string(b), field) {
			t.Errorf("a configuration without the loophole writes %s (and so changes its hash): %s", field, b)
		}
	}
}

// The curriculum of hard problems: each hard place keeps the first
// problem greedy search fails, in draw order, searched in rounds of 1, 2,
// 4 … candidates a place; a place whose candidates are all solved keeps
// the last of HardTries; a place without an answer, and the places past
// the hard share, are left as drawn.
func TestGRPOScreen(t *testing.T) {
	stream := func(n int) (func() (task.Problem, bool), func()) {
		var ps []task.Problem
		for i := range n {
			ps = append(ps, countdown.NewProblem(countdown.Problem{Numbers: []int{1, 2}, Target: 100 + i}))
		}
		return iter.Pull(slices.Values(ps))
	}
	target := func(p task.Problem) int { return countdown.ProblemOf(p).Target }
	cfg := GRPOConfig{Mode: ModeMixed, Problems: 4, Hard: 0.5, HardTries: 6}
	for _, tc := range []struct {
		name    string
		fails   func(target int) bool
		found   int
		extra   int
		targets []int // the step's problems after screening
	}{
		// The places' own draws are 0 (solved) and 1 (failed); round 1
		// gives place 0 candidates 100 (solved) and 101 (failed).
		{"odd targets fail", func(x int) bool { return x%2 == 1 }, 2, 2, []int{101, 1, 2, 3}},
		// Place 0 fails at once; place 1 takes 100, 101 in round 1, then
		// 102 to 104 in round 2 (capped at its sixth), failing at 104.
		{"few fail", func(x int) bool { return x == 0 || x == 104 }, 2, 5, []int{0, 104, 2, 3}},
		// Nothing fails: each place tries 6 and keeps its last: place 0
		// its own, 100, 101, then 104, 105, 106 (round 2 capped at 3);
		// place 1 its own, 102, 103, 107, 108, 109.
		{"all solved", func(int) bool { return false }, 0, 10, []int{106, 109, 2, 3}},
	} {
		pull, stop := stream(50)
		g := &GRPO{cfg: cfg, problems: pull}
		var asked []int
		var mu sync.Mutex
		fails := func(_ context.Context, p task.Problem, m Mode) (bool, error) {
			mu.Lock()
			asked = append(asked, target(p))
			mu.Unlock()
			if want := cfg.modeFor(0, target(p)%2); target(p) < 4 && m != want {
				t.Errorf("%s: problem %d screened in %s, want %s", tc.name, target(p), m, want)
			}
			return tc.fails(target(p)), nil
		}
		var problems []task.Problem
		for i := range 4 {
			problems = append(problems, countdown.NewProblem(countdown.Problem{Numbers: []int{1, 2}, Target: i}))
		}
		sc, err := g.screen(t.Context(), fails, problems, []bool{true, true, true, true})
		stop()
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, p := range problems {
			got = append(got, target(p))
		}
		if !slices.Equal(got, tc.targets) || sc.places != 2 || sc.found != tc.found || sc.extra != tc.extra || sc.candidates != len(asked) {
			t.Errorf("%s: problems %v, %+v (asked %v); want %v, found %d, extra %d", tc.name, got, sc, asked, tc.targets, tc.found, tc.extra)
		}
	}
	// A place drawn without an answer is not screened.
	pull, stop := stream(10)
	defer stop()
	g := &GRPO{cfg: cfg, problems: pull}
	problems := []task.Problem{countdown.NewProblem(countdown.Problem{Numbers: []int{1, 2}, Target: 0}), countdown.NewProblem(countdown.Problem{Numbers: []int{1, 2}, Target: 1})}
	g.cfg.Problems = 2
	sc, err := g.screen(t.Context(), func(context.Context, task.Problem, Mode) (bool, error) { return true, nil }, problems, []bool{false, true})
	if err != nil || sc.places != 1 || sc.found != 1 || sc.candidates != 0 {
		t.Errorf("an unanswerable place: %+v, %v; want it kept unsearched", sc, err)
	}
}

// A run with the curriculum resumes as if never stopped: the problems the
// screening drew are skipped again. Its progress is told phase by phase.
func TestGRPOHardResumes(t *testing.T) {
	from := tinySFT(t)
	cfg := GRPOConfig{Mode: ModeSerial, Group: 2, Problems: 2, Steps: 3, LR: 1e-3, Beta: 0.04, Clip: 0.2, Updates: 1,
		Temperature: 1, MaxTotalTokens: 200, GradClip: 1, Seed: 9, Env: "constrain", CheckpointEvery: 2, Hard: 1, HardTries: 4}
	// Greedy search stands in as failing on every third problem.
	fails := func(_ context.Context, p task.Problem, _ Mode) (bool, error) {
		return countdown.ProblemOf(p).Target%3 == 0, nil
	}
	ctx := context.Background()
	// open starts or resumes the run in dir, closed when the test ends.
	open := func(dir string) *GRPO {
		g, err := NewGRPO(countdown.Task{}, cfg, from, dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.Close)
		g.greedyFails = fails
		return g
	}
	straight := open(t.TempDir())
	type tick struct {
		step        int
		phase       string
		done, total int
	}
	var ticks []tick
	straight.Tick = func(step int, phase string, done, total int) { ticks = append(ticks, tick{step, phase, done, total}) }
	if err := straight.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// Each step's progress: its phases in order, each counted from 0 up to
	// its total one piece at a time (a screening round settles several).
	var want []tick
	for _, p := range straight.Log() {
		phases := []tick{{p.Step, "screening", 0, p.Hard}, {p.Step, "rollouts", 0, cfg.Problems * cfg.Group}}
		if p.Learned > 0 {
			phases = append(phases, tick{p.Step, "update", 0, cfg.Updates * p.Learned})
		}
		want = append(want, phases...)
	}
	var starts []tick
	for i, k := range ticks {
		if k.done == 0 {
			starts = append(starts, k)
		} else if prev := ticks[i-1]; prev.phase != k.phase || prev.step != k.step || k.done <= prev.done ||
			k.done > k.total || k.phase != "screening" && k.done != prev.done+1 {
			t.Errorf("tick %+v after %+v", k, prev)
		}
		if last := i == len(ticks)-1 || ticks[i+1].done == 0; last && k.done != k.total {
			t.Errorf("phase %q of step %d ended at %d of %d", k.phase, k.step, k.done, k.total)
		}
	}
	if !slices.Equal(starts, want) {
		t.Errorf("phases %v, want %v", starts, want)
	}
	dir := t.TempDir()
	first := open(dir)
	for range 2 {
		if err := first.Advance(ctx); err != nil {
			t.Fatal(err)
		}
	}
	first.Close()
	resumed := open(dir)
	if err := resumed.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if straight.State().Screened == 0 {
		t.Fatal("the screening drew nothing beyond the places: the test tests nothing")
	}
	if s, r := straight.State().Screened, resumed.State().Screened; s != r {
		t.Errorf("screened %d straight, %d resumed", s, r)
	}
	for i, p := range straight.Log() {
		q := resumed.Log()[i]
		if p.Hard != 2 || p.Candidates != q.Candidates || p.HardFound != q.HardFound || p.Reward != q.Reward || p.Tokens != q.Tokens {
			t.Errorf("step %d: %+v straight, %+v resumed", p.Step, p, q)
		}
	}
}

// Without a KL penalty the reference scores a sample of the calls (the
// first of every klSampleEvery), for the KL the step reports; the step is
// the one an update that scores every call takes at a β too small to
// matter.
func TestGRPOWithoutKLSamplesTheReference(t *testing.T) {
	rollouts := func() []*rollout {
		var rs []*rollout
		for i := range 4 {
			r := &rollout{advantage: float64(i%2*2 - 1)}
			for j := range 5 {
				r.calls = append(r.calls, testCall(1, 2, 3, 4+i, 5+j, 6, 7, 8+j%3, 9))
			}
			rs = append(rs, r)
		}
		return rs
	}
	// Each policy away from its reference, so that there is a KL to see.
	apart := func(beta float64) *GRPO {
		g := tinyGRPO(t, GRPOConfig{LR: 1e-2, Clip: 0.2, GradClip: 1, Beta: beta})
		for i := range g.Policy.Params.Data() {
			g.Policy.Params.Data()[i] *= 1.1
		}
		return g
	}
	sampled, full := apart(0), apart(1e-12)
	rs, all := rollouts(), rollouts()
	kl, _, err := sampled.update(t.Context(), rs, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	klAll, _, err := full.update(t.Context(), all, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	scored := 0
	for _, r := range rs {
		for _, c := range r.calls {
			if c.refLP != nil {
				scored++
			}
		}
	}
	if want := (20 + klSampleEvery - 1) / klSampleEvery; scored != want {
		t.Errorf("the reference scored %d of 20 calls, want %d", scored, want)
	}
	if !(kl > 0) || math.Abs(kl-klAll) > klAll {
		t.Errorf("KL %g from the sample, %g from every call: want a positive estimate near it", kl, klAll)
	}
	for i, v := range sampled.Policy.Params.Data() {
		if w := full.Policy.Params.Data()[i]; math.Abs(float64(v-w)) > 1e-6 {
			t.Fatalf("parameter %d: %g after the sampled update, %g after the fully scored one", i, v, w)
		}
	}
}

// A mixed step's means: over all its rollouts, and over each mode's, so
// that a parallel search's critical path shows apart from serial ones
// (whose critical path is all their tokens).
func TestGRPOPointMeans(t *testing.T) {
	usage := func(total, critical, threads int) *reason.Result {
		return &reason.Result{Usage: reason.Usage{TotalTokens: total, CriticalPathTokens: critical, Threads: threads}}
	}
	rs := []*rollout{
		{mode: ModeSerial, result: usage(1000, 1000, 1), correct: true, reward: 1},
		{mode: ModeSerial, result: usage(3000, 3000, 1)},
		{mode: ModeParallel, result: usage(8000, 1200, 9), correct: true, reward: 1.5},
		{mode: ModeParallel, result: usage(12000, 2000, 11), correct: true, reward: 1.2},
	}
	var pt GRPOPoint
	pt.means(rs)
	want := GRPOPoint{Reward: 3.7 / 4, Accuracy: 0.75, Tokens: 6000, Critical: 1800, Children: 9,
		SerialAccuracy: 0.5, ParallelAccuracy: 1, ParallelTokens: 10000, ParallelCritical: 1600}
	if math.Abs(pt.Reward-want.Reward) > 1e-12 {
		t.Errorf("reward %g, want %g", pt.Reward, want.Reward)
	}
	pt.Reward = want.Reward
	if pt != want {
		t.Errorf("means %+v, want %+v", pt, want)
	}
	var serialOnly GRPOPoint
	serialOnly.means(rs[:2])
	if serialOnly.ParallelCritical != 0 || serialOnly.Children != 0 || serialOnly.Critical != 2000 {
		t.Errorf("serial rollouts alone: %+v", serialOnly)
	}
}

// The curves of a mixed run draw the parallel rollouts' critical path
// from the steps that logged it, and leave out the earlier ones rather
// than draw them at 0.
func TestGRPOCurvesParallelCritical(t *testing.T) {
	log := []GRPOPoint{
		{Step: 1, Tokens: 6000, Critical: 1900},
		{Step: 2, Tokens: 6100, Critical: 1950, ParallelTokens: 10000, ParallelCritical: 1500},
		{Step: 3, Tokens: 6200, Critical: 1850, ParallelTokens: 10500, ParallelCritical: 1400},
	}
	svg := string(grpoCurves(log, true, false))
	if strings.Contains(svg, "NaN") {
		t.Fatal("the curves hold NaN")
	}
	for _, name := range []string{">parallel critical<", ">parallel total<", ">critical path<"} {
		if !strings.Contains(svg, name) {
			t.Errorf("no %s series", name)
		}
	}
	var lines []string
	for line := range strings.Lines(svg) {
		if strings.HasPrefix(line, "<polyline") {
			lines = append(lines, line)
		}
	}
	// reward, correct, serial, parallel; total, critical, parallel total,
	// parallel critical; children.
	if len(lines) != 9 {
		t.Fatalf("%d curves, want 9", len(lines))
	}
	for i, want := range []int{3, 3, 2, 2} {
		if got := strings.Count(lines[4+i], ","); got != want {
			t.Errorf("tokens curve %d has %d points, want %d", i, got, want)
		}
	}
	if strings.Contains(string(grpoCurves(log, false, false)), "parallel critical") {
		t.Error("a run of one mode draws the parallel rollouts apart")
	}
}

// stoppedBackend returns what a call wrote before it was stopped, with
// the stop's error, as the engine does for a child join_at_goal stops.
type stoppedBackend struct{ backend.Backend }

func (stoppedBackend) Complete(context.Context, *backend.Request) (*backend.Completion, error) {
	return &backend.Completion{Text: "ab", Tokens: []backend.Token{{ID: 5}, {ID: 6, Filled: true}}}, context.Canceled
}

// A stopped child's call is kept for the update with what it wrote (the
// join shows it to the root), and its error reaches the search.
func TestRecorderKeepsAStoppedCall(t *testing.T) {
	tok, err := tokenizer.Load(filepath.Join("..", "models", "countdown", tokenizerFile))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Backend: stoppedBackend{}, tok: tok}
	c, err := rec.Complete(t.Context(), &backend.Request{Prompt: "x"})
	if !errors.Is(err, context.Canceled) || c == nil || c.Text != "ab" {
		t.Fatalf("Complete returned %+v, %v", c, err)
	}
	if len(rec.calls) != 1 {
		t.Fatalf("%d calls recorded, want the stopped one", len(rec.calls))
	}
	x := rec.calls[0]
	n := len(x.tokens)
	if x.tokens[n-2] != 5 || x.tokens[n-1] != 6 || !x.action[n-2] || x.action[n-1] {
		t.Errorf("the stopped call's tokens %v, actions %v: want ...5 (chosen), 6 (written by the environment)", x.tokens, x.action)
	}
}

// Every GRPO configuration the model card names reads strictly (no field
// braid does not know) and validates, so that its command runs; a field
// braid does not know is refused.
func TestShippedGRPOConfigs(t *testing.T) {
	var paths []string
	for _, pattern := range []string{"grpo*.json", "pgrpo*.json", "loophole*.json"} {
		found, err := filepath.Glob(filepath.Join("..", "models", "countdown", pattern))
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, found...)
	}
	if _, err := ReadGRPOConfig(strings.NewReader(`{"mode": "mixed", "latencey": 2}`)); err == nil || !strings.Contains(err.Error(), "latencey") {
		t.Errorf("a misspelt field: %v", err)
	}
	if len(paths) < 7 {
		t.Fatalf("found %d configurations: %v", len(paths), paths)
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := ReadGRPOConfig(bytes.NewReader(data))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}
