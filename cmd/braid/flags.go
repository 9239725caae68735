package main

import (
	"cmp"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/backend/remote"
	"github.com/braid-dev/braid/engine"
	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/models"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/task/countdown"
	"github.com/braid-dev/braid/tasks"
	"github.com/braid-dev/braid/tokenizer/chat"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// This file holds what several commands share in reading their command
// line: the usage error, positional-argument checks, the engine's flags,
// and the flags of a run of strategies on a task.

// usageErrorf reports bad arguments (exit 2).
func usageErrorf(format string, args ...any) error {
	return &exitError{code: 2, msg: fmt.Sprintf(format, args...)}
}

// exactArgs is cobra.ExactArgs with the usage exit code.
func exactArgs(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%s takes %d arguments, got %d (see '%s --help')", c.Name(), n, len(args), c.CommandPath())
		}
		return nil
	}
}

// problemArgs checks the arguments of a Countdown problem, the target and
// its numbers: between min and max of them.
func problemArgs(min, max int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) < min || len(args) > max {
			return usageErrorf("%s takes the target and %d to %d numbers, got %d arguments (see '%s --help')",
				c.Name(), countdown.MinCount, countdown.MaxCount, len(args), c.CommandPath())
		}
		return nil
	}
}

// parseProblemArgs reads "TARGET N1 N2 ..." from the command line.
func parseProblemArgs(args []string) (countdown.Problem, error) {
	var p countdown.Problem
	for i, a := range args {
		v, err := countdown.ParseNumber(a)
		if err != nil {
			what := "number"
			if i == 0 {
				what = "target"
			}
			return p, usageErrorf("%s: %v", what, err)
		}
		if i == 0 {
			p.Target = v
		} else {
			p.Numbers = append(p.Numbers, v)
		}
	}
	if err := p.Validate(); err != nil {
		return p, usageErrorf("%v", err)
	}
	return p, nil
}

// maxCount bounds the thread and client counts a benchmark takes.
const maxCount = 256

// parseInts reads a comma-separated list of counts in 1..most.
func parseInts(s string, most int) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || v <= 0 || v > most {
			return nil, fmt.Errorf("%q must be a whole number in 1..%d", part, most)
		}
		out = append(out, v)
	}
	return out, nil
}

// engineFlags are the options of every command that runs the embedded
// engine.
type engineFlags struct {
	modelDir   string
	cacheMiB   int
	stepToks   int
	threadCap  int
	fairShare  int
	stepWork   int
	idle       time.Duration
	weights    string
	f32Weights bool // the deprecated spelling of --weights f32
	kvType     string
	context    int
	attention  string
	indexTopK  int
}

func (f *engineFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.modelDir, "model", "", "model directory (config.json, tokenizer.json, model.safetensors) or GGUF file (F32, F16, BF16, Q8_0 or Q4_0 weights; default: the embedded Countdown model)")
	fl.IntVar(&f.cacheMiB, "kv-cache", engine.DefaultCacheBytes>>20, "KV cache budget in MiB")
	fl.DurationVar(&f.idle, "kv-idle-release", engine.DefaultIdleRelease, "after this long with nothing to do, drop the KV cache and return its memory (-1s: never)")
	fl.IntVar(&f.stepToks, "step-tokens", engine.DefaultStepTokens, "most tokens one forward pass carries")
	fl.IntVar(&f.stepWork, "step-work", engine.DefaultStepWork, "most work one forward pass carries, in rows of weight products, attention to cached positions counted: bounds how long a new request waits for the step in progress (-1: no bound)")
	fl.IntVar(&f.threadCap, "max-threads", engine.DefaultMaxThreads, "most threads decoding at once")
	fl.IntVar(&f.fairShare, "fair-share", engine.DefaultFairShare, "while several requests run, one wider than this many times the narrowest gets at most that much of each step's work (threads weighed by their rows' cost; -1: no bound, first come first served)")
	registerWeightFlags(fl, &f.weights, &f.f32Weights)
	fl.IntVar(&f.context, "context", 0, "positions a thread may reach, prompt included (0: the model's max_position_embeddings); past the positions it was trained on, a model extrapolates")
	fl.StringVar(&f.kvType, "kv-cache-type", "f16", "the KV cache's numbers: f16 (half precision) or q8 (8-bit integers with a scale per head and position: 0.56x the memory, faster attention over long contexts, each value within 1/254 of its head's largest)")
	registerAttentionFlags(fl, &f.attention, &f.indexTopK)
}

// registerAttentionFlags adds --attention and --index-topk.
func registerAttentionFlags(fl *pflag.FlagSet, attention *string, topK *int) {
	fl.StringVar(attention, "attention", "", "dense (every earlier position) or sparse (the --index-topk positions the model's lightning indexer scores highest; DeepSeek sparse attention); default: sparse for a model with an indexer, else dense")
	fl.IntVar(topK, "index-topk", 0, "positions a token attends to with sparse attention (0: the model's index_topk)")
}

// parseAttention reads --attention and --index-topk.
func parseAttention(s string, topK int) (engine.AttentionMode, error) {
	a, err := engine.ParseAttention(s)
	if err != nil {
		return "", usageErrorf("--attention: %v", err)
	}
	if topK < 0 {
		return "", usageErrorf("--index-topk must be >= 0 (0: the model's own)")
	}
	if topK > 0 && a == engine.AttentionDense {
		return "", usageErrorf("--index-topk %d contradicts --attention dense", topK)
	}
	return a, nil
}

func (f *engineFlags) options() (engine.Options, error) {
	switch {
	case f.cacheMiB <= 0:
		return engine.Options{}, usageErrorf("--kv-cache must be a positive number of MiB")
	case f.stepToks <= 0:
		return engine.Options{}, usageErrorf("--step-tokens must be positive")
	case f.threadCap <= 0:
		return engine.Options{}, usageErrorf("--max-threads must be positive")
	case f.idle == 0:
		return engine.Options{}, usageErrorf("--kv-idle-release must be positive, or negative for never")
	case f.stepWork == 0 || f.stepWork < -1:
		return engine.Options{}, usageErrorf("--step-work must be positive, or -1 for no bound")
	case f.fairShare == 0 || f.fairShare < -1:
		return engine.Options{}, usageErrorf("--fair-share must be positive, or -1 for no bound")
	case f.context < 0:
		return engine.Options{}, usageErrorf("--context must be >= 0 (0: the model's own)")
	}
	kv8, err := parseKVCacheType(f.kvType)
	if err != nil {
		return engine.Options{}, err
	}
	weights, err := parseWeights(f.weights, f.f32Weights)
	if err != nil {
		return engine.Options{}, err
	}
	attention, err := parseAttention(f.attention, f.indexTopK)
	if err != nil {
		return engine.Options{}, err
	}
	return engine.Options{CacheBytes: int64(f.cacheMiB) << 20, StepTokens: f.stepToks, MaxThreads: f.threadCap, FairShare: f.fairShare, StepWork: f.stepWork, IdleRelease: f.idle,
		Weights: weights, KV8: kv8, Context: f.context, Attention: attention, IndexTopK: f.indexTopK,
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}, nil
}

// open opens the engine these flags describe: --model's, or the embedded
// Countdown model.
func (f *engineFlags) open() (*engine.Engine, error) {
	opts, err := f.options()
	if err != nil {
		return nil, err
	}
	if f.modelDir == "" {
		if !models.Has(models.Countdown) {
			return nil, usageErrorf("this build embeds no model yet: pass --model DIR (config.json, tokenizer.json, model.safetensors)")
		}
		return engine.OpenFS(models.FS, models.Countdown, opts)
	}
	if engine.IsGGUF(f.modelDir) {
		return engine.OpenGGUF(f.modelDir, opts)
	}
	return engine.Open(f.modelDir, opts)
}

// fingerprint identifies the model these flags open (model.Fingerprint).
// An eval run records it, so that samples of another model (a newer
// braid's embedded one, a checkpoint trained further) never join a run
// begun with this one.
func (f *engineFlags) fingerprint() (string, error) {
	if engine.IsGGUF(f.modelDir) {
		return model.FingerprintFile(os.DirFS(filepath.Dir(f.modelDir)), filepath.Base(f.modelDir))
	}
	if f.modelDir != "" {
		return model.Fingerprint(os.DirFS(f.modelDir), ".")
	}
	return model.Fingerprint(models.FS, models.Countdown)
}

// registerWeightFlags adds --weights, and --f32-weights, the flag it
// replaced, kept so that scripts written for it still run.
func registerWeightFlags(fl *pflag.FlagSet, weights *string, f32 *bool) {
	fl.StringVar(weights, "weights", "", "the weight matrices' numbers (default: bf16 on a CPU with AVX-512 BF16, else f16): f16 (half precision, float32 on a CPU without AVX-512), bf16 (bfloat16 weights and activations, needs AVX-512 BF16; on AMX tiles where the CPU has them: products of many rows several times faster, 8 significant bits), q8 (8-bit blocks of 32 with a scale, as llama.cpp's Q8_0, activations likewise; needs AVX-512 VNNI: half the bytes of f16, for one sequence up to 2x faster) or f32")
	fl.BoolVar(f32, "f32-weights", false, "keep the weights in float32")
	if err := fl.MarkDeprecated("f32-weights", "use --weights f32"); err != nil {
		panic(err) // the flag was just added
	}
}

// parseWeights reads --weights, and --f32-weights where it was given.
func parseWeights(s string, f32 bool) (engine.WeightFormat, error) {
	w, err := engine.ParseWeightFormat(s)
	if err != nil {
		return "", usageErrorf("--weights: %v", err)
	}
	if f32 {
		if s != "" && w != engine.WeightsF32 {
			return "", usageErrorf("--f32-weights contradicts --weights %s", w)
		}
		w = engine.WeightsF32
	}
	return w, nil
}

// parseKVCacheType reads --kv-cache-type: whether the cache is 8-bit.
func parseKVCacheType(s string) (kv8 bool, err error) {
	switch s {
	case "f16":
		return false, nil
	case "q8":
		return true, nil
	}
	return false, usageErrorf("--kv-cache-type %q: want f16 or q8", s)
}

// runFlags are the flags of a run of strategies on a task, shared by
// solve and eval: the model, where it runs, and the strategies' options.
type runFlags struct {
	ef                  engineFlags
	taskName, envMode   string
	temperature         float64
	maxTokens, maxTotal int
	maxDepth            int
	joinAtGoal          bool
	concurrent          int
	remoteURLs          []string
	remoteModel, apiKey string
	guided              bool
	api                 string
	retryBudget         int
	rewardURL           string
	rewardModel         string
	servers             serverFlags
	// The help of the flags that differ between commands.
	taskUsage, concurrentUsage, backendUsage string
}

// register adds the flags to cmd.
func (f *runFlags) register(cmd *cobra.Command) {
	f.ef.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.taskName, "task", "countdown", f.taskUsage)
	fl.StringVar(&f.envMode, "env", "constrain", "the Countdown environment: off, fill or constrain")
	fl.Float64Var(&f.temperature, "temperature", 0, "sampling temperature (0: greedy)")
	fl.IntVar(&f.maxTokens, "max-tokens", 0, "most tokens per model call (0: the model's context)")
	fl.IntVar(&f.maxTotal, "max-total-tokens", 0, "most tokens of all threads of a run together (0: no limit)")
	fl.IntVar(&f.maxDepth, "max-depth", 0, "how deep spawns nest: 1 lets only the root spawn (apr's default, the APR protocol; more needs --env off); 0 is the strategy's own (multiverse: 5)")
	fl.BoolVar(&f.joinAtGoal, "join-at-goal", false, "apr: stop a spawn's other children once one finishes having reached the goal, and resume the parent at once; vote: stop the other samples at the first verified answer (fewer tokens; a run's tokens then vary with timing)")
	fl.IntVar(&f.concurrent, "concurrent", 16, f.concurrentUsage)
	fl.StringSliceVar(&f.remoteURLs, "backend", nil, f.backendUsage)
	fl.StringVar(&f.remoteModel, "backend-model", "", "the model name to send to --backend")
	fl.StringVar(&f.apiKey, "api-key", "", "API key for --backend (default $BRAID_API_KEY, then $OPENAI_API_KEY)")
	fl.BoolVar(&f.guided, "guided-choice", false, "with --backend and --env constrain, send the legal choices as guided decoding (vLLM, or another braid serve)")
	registerAPIFlag(fl, &f.api)
	registerRetryBudgetFlag(fl, &f.retryBudget)
	fl.StringVar(&f.rewardURL, "reward", "", "a reward model's server (vLLM --runner pooling, e.g. http://127.0.0.1:8001), for best:k=N,scorer=reward")
	fl.StringVar(&f.rewardModel, "reward-model", "", "the reward model's name to send to --reward")
	f.servers.register(fl)
}

// registerRetryBudgetFlag adds --retry-budget.
func registerRetryBudgetFlag(fl *pflag.FlagSet, budget *int) {
	fl.IntVar(budget, "retry-budget", 64, "retries a problem's calls to --backend share on top of each call's own: a search of hundreds of calls rides out a failing server while it lasts (0: none)")
}

// registerAPIFlag adds --api, how --backend servers are driven.
func registerAPIFlag(fl *pflag.FlagSet, api *string) {
	fl.StringVar(api, "api", "", "how --backend, or the model of --model, is driven: chat (/v1/chat/completions, or the chat template the model's files carry: a resumed thread continues the assistant's message) or completions (raw text: base and research checkpoints); default completions for a task with an environment (a search model), chat otherwise where the model has a template")
}

// chatAPI reads --api for a task: whether its --backend is a chat server.
func chatAPI(api string, t task.Task) (bool, error) {
	switch api {
	case "chat":
		return true, nil
	case "completions":
		return false, nil
	case "":
		_, hasEnv := t.(task.Environment)
		return !hasEnv, nil
	}
	return false, usageErrorf("--api %q: want chat or completions", api)
}

// serverFlags are how --backend servers are reached, shared by the
// commands that take --backend.
type serverFlags struct {
	concurrent int
	slots      int
	timeout    time.Duration
	cooldown   time.Duration
}

// register adds the flags.
func (f *serverFlags) register(fl *pflag.FlagSet) {
	fl.IntVar(&f.concurrent, "backend-concurrency", 16, "requests in flight to each --backend server at once")
	fl.DurationVar(&f.timeout, "backend-timeout", 0, "how long a --backend server may stay silent (before its first byte, or between two) before the request is retried (0: no limit)")
	fl.IntVar(&f.slots, "backend-slots", 0, "for llama.cpp's llama-server started with -np N: N, so that each call goes to the slot whose cache holds its text (id_slot); 0 leaves it to the server, as vLLM and SGLang need")
	fl.DurationVar(&f.cooldown, "backend-cooldown", 5*time.Second, "how long a --backend server that could not be reached is passed over, its requests going to another")
}

// options are the remote client's options for urls.
func (f *serverFlags) options(urls []string, model, key string, guided, chat bool) (remote.Options, error) {
	if f.concurrent <= 0 || f.timeout < 0 || f.cooldown <= 0 || f.slots < 0 {
		return remote.Options{}, usageErrorf("--backend-concurrency and --backend-cooldown must be positive, --backend-timeout and --backend-slots >= 0")
	}
	return remote.Options{Endpoints: urls, Model: model, APIKey: key, GuidedChoice: guided, Chat: chat,
		MaxConcurrent: f.concurrent, Timeout: f.timeout, Cooldown: f.cooldown, Slots: f.slots}, nil
}

// openBackend is the remote servers when opts names any, else the engine,
// which opts.Chat drives through its model's chat template.
func openBackend(ef *engineFlags, opts remote.Options, api string) (backend.Backend, func(), error) {
	if len(opts.Endpoints) > 0 {
		if ef.modelDir != "" {
			return nil, nil, usageErrorf("--model and --backend exclude each other: the model runs either here or on the server")
		}
		if ef.context != 0 {
			return nil, nil, usageErrorf("--context is the embedded engine's; a --backend server sets its own")
		}
		c, err := remote.New(opts)
		if err != nil {
			return nil, nil, usageErrorf("--backend: %v", err)
		}
		return c, func() {}, nil
	}
	e, err := ef.open()
	if err != nil {
		return nil, nil, err
	}
	b, err := ef.chatOver(e, opts.Chat, api)
	if err != nil {
		e.Close()
		return nil, nil, err
	}
	return b, func() { e.Close() }, nil
}

// chatOver is e driven through its model's chat template where wantChat
// (--api resolved for the task) says so and the model carries one, else e
// itself. api is --api as given: "chat" on a model without a template is
// an error, where the default falls back to raw text (a base model).
func (f *engineFlags) chatOver(e *engine.Engine, wantChat bool, api string) (backend.Backend, error) {
	if !wantChat {
		return e, nil
	}
	tmpl := e.ChatTemplate()
	if tmpl == nil {
		if api == "chat" {
			return nil, usageErrorf("--api chat: the model (%s) carries no chat template; --api completions runs it on raw text", cmp.Or(f.modelDir, "embedded"))
		}
		return e, nil
	}
	return chat.NewBackend(e, tmpl, nil), nil
}

// check reads the task and the strategies' options, refusing what the task
// cannot run where the model runs.
func (f *runFlags) check() (task.Task, reason.Options, error) {
	t, err := tasks.Lookup(f.taskName)
	if err != nil {
		return nil, reason.Options{}, usageErrorf("--task: %v", err)
	}
	env, err := reason.ParseEnvMode(f.envMode)
	if err != nil {
		return nil, reason.Options{}, usageErrorf("--env: %v", err)
	}
	if f.maxTokens < 0 || f.maxTotal < 0 || f.concurrent <= 0 || f.temperature < 0 || f.retryBudget < 0 {
		return nil, reason.Options{}, usageErrorf("--max-tokens, --max-total-tokens and --retry-budget must be >= 0, --concurrent positive, --temperature >= 0")
	}
	if f.joinAtGoal {
		if err := reason.CheckJoinAtGoal(t); err != nil {
			return nil, reason.Options{}, usageErrorf("--join-at-goal: %v", err)
		}
	}
	if _, err := chatAPI(f.api, t); err != nil {
		return nil, reason.Options{}, err
	}
	if f.api != "" && len(f.remoteURLs) == 0 && f.ef.modelDir == "" {
		return nil, reason.Options{}, usageErrorf("--api %s: it says how --backend servers and --model files are driven; the embedded model takes text", f.api)
	}
	// The embedded model is a Countdown search model; --model may be
	// anything, a chat model's GGUF file included.
	if len(f.remoteURLs) == 0 && f.ef.modelDir == "" && t.Name() != (countdown.Task{}).Name() {
		return nil, reason.Options{}, usageErrorf("--task %s needs --backend (and --backend-model) or --model: the embedded model is a Countdown search model", t.Name())
	}
	_, hasEnv := t.(task.Environment)
	if f.maxDepth < 0 || f.maxDepth > 1 && hasEnv && env != reason.EnvOff {
		return nil, reason.Options{}, usageErrorf("--max-depth %d: want 0 or 1, or more with --env off (the %s environment lets only the root spawn)", f.maxDepth, t.Name())
	}
	if len(f.remoteURLs) > 0 && hasEnv && env == reason.EnvConstrain && !f.guided {
		return nil, reason.Options{}, usageErrorf("--env constrain on --backend needs --guided-choice (a vLLM server); use --env fill or off otherwise")
	}
	o := reason.Options{Env: env, MaxTokens: f.maxTokens, Temperature: f.temperature, MaxTotalTokens: f.maxTotal,
		MaxDepth: f.maxDepth, JoinAtGoal: f.joinAtGoal}
	if f.rewardURL != "" {
		rm, err := remote.New(remote.Options{Endpoints: []string{f.rewardURL}, Model: f.rewardModel, APIKey: f.apiKey})
		if err != nil {
			return nil, reason.Options{}, usageErrorf("--reward: %v", err)
		}
		o.Rewarder = rm
	}
	return t, o, nil
}

// backend opens where the model runs: the --backend servers, else the
// engine. Guided choices go to a server only for a task with an
// environment.
func (f *runFlags) backend(t task.Task) (backend.Backend, func(), error) {
	_, hasEnv := t.(task.Environment)
	chat, err := chatAPI(f.api, t)
	if err != nil {
		return nil, nil, err
	}
	opts, err := f.servers.options(f.remoteURLs, f.remoteModel, f.apiKey, f.guided && hasEnv, chat)
	if err != nil {
		return nil, nil, err
	}
	return openBackend(&f.ef, opts, f.api)
}

// envName is the environment's mode as outputs name it, "" for a task
// without an environment.
func (f *runFlags) envName(t task.Task) string {
	if _, ok := t.(task.Environment); ok {
		return f.envMode
	}
	return ""
}
