package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/engine"
	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/models"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

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
}

func (f *engineFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.modelDir, "model", "", "model directory: config.json, tokenizer.json, model.safetensors (default: the embedded Countdown model)")
	fl.IntVar(&f.cacheMiB, "kv-cache", engine.DefaultCacheBytes>>20, "KV cache budget in MiB")
	fl.DurationVar(&f.idle, "kv-idle-release", engine.DefaultIdleRelease, "after this long with nothing to do, drop the KV cache and return its memory (-1s: never)")
	fl.IntVar(&f.stepToks, "step-tokens", engine.DefaultStepTokens, "most tokens one forward pass carries")
	fl.IntVar(&f.stepWork, "step-work", engine.DefaultStepWork, "most work one forward pass carries, in rows of weight products, attention to cached positions counted: bounds how long a new request waits for the step in progress (-1: no bound)")
	fl.IntVar(&f.threadCap, "max-threads", engine.DefaultMaxThreads, "most threads decoding at once")
	fl.IntVar(&f.fairShare, "fair-share", engine.DefaultFairShare, "while several requests run, one wider than this many times the narrowest gets at most that much of each step's work (threads weighed by their rows' cost; -1: no bound, first come first served)")
	registerWeightFlags(fl, &f.weights, &f.f32Weights)
	fl.IntVar(&f.context, "context", 0, "positions a thread may reach, prompt included (0: the model's max_position_embeddings); past the positions it was trained on, a model extrapolates")
	fl.StringVar(&f.kvType, "kv-cache-type", "f16", "the KV cache's numbers: f16 (half precision) or q8 (8-bit integers with a scale per head and position: 0.56x the memory, faster attention over long contexts, each value within 1/254 of its head's largest)")
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
	return engine.Options{CacheBytes: int64(f.cacheMiB) << 20, StepTokens: f.stepToks, MaxThreads: f.threadCap, FairShare: f.fairShare, StepWork: f.stepWork, IdleRelease: f.idle,
		Weights: weights, KV8: kv8, Context: f.context, Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}, nil
}

// registerWeightFlags adds --weights, and --f32-weights, the flag it
// replaced, kept so that scripts written for it still run.
func registerWeightFlags(fl *pflag.FlagSet, weights *string, f32 *bool) {
	fl.StringVar(weights, "weights", string(engine.WeightsF16), "the weight matrices' numbers: f16 (half precision, float32 on a CPU without AVX-512), bf16 (bfloat16 weights and activations, needs AVX-512 BF16: products of many rows up to 2x faster, 8 significant bits) or f32")
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
		if w != engine.WeightsF16 && w != engine.WeightsF32 {
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
	return engine.Open(f.modelDir, opts)
}

// fingerprint identifies the model these flags open (model.Fingerprint).
// An eval run records it, so that samples of another model (a newer
// braid's embedded one, a checkpoint trained further) never join a run
// begun with this one.
func (f *engineFlags) fingerprint() (string, error) {
	if f.modelDir != "" {
		return model.Fingerprint(os.DirFS(f.modelDir), ".")
	}
	return model.Fingerprint(models.FS, models.Countdown)
}

func newGenerateCmd() *cobra.Command {
	var (
		ef        engineFlags
		maxTokens int
		temp      float64
		topP      float64
		topK      int
		seed      uint64
		stops     []string
		quiet     bool
	)
	cmd := &cobra.Command{
		Use:   "generate PROMPT",
		Short: "Continue a prompt with a model, streaming tokens to the terminal",
		Long: `Continue PROMPT with the model, printing the text as it is generated, then a
line on stderr with the tokens, the time and the speed. Decoding is greedy
unless --temperature is set; with a temperature, --seed makes the run
repeatable (without one, the seed drawn is printed).`,
		Example: `  braid generate --model ./my-model 'Once upon a time'
  braid generate --model ./my-model --temperature 0.8 --top-p 0.95 --seed 7 'Once upon a time'
  braid generate --model ./my-model --stop '\n\n' --max-tokens 64 'Q: 2+2?'`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if maxTokens < 0 {
				return usageErrorf("--max-tokens must be >= 0")
			}
			req := &backend.Request{Prompt: args[0], MaxTokens: maxTokens, Temperature: temp, TopP: topP, TopK: topK, Seed: seed, Stop: stops}
			if err := req.Validate(); err != nil {
				return usageErrorf("%v", err)
			}
			e, err := ef.open()
			if err != nil {
				return err
			}
			defer e.Close()
			out := cmd.OutOrStdout()
			var first time.Duration
			start := time.Now()
			var werr error
			req.OnChunk = func(c backend.Chunk) {
				if first == 0 && len(c.Tokens) > 0 {
					first = time.Since(start)
				}
				if _, err := fmt.Fprint(out, c.Text); err != nil && werr == nil {
					werr = err
				}
			}
			c, err := e.Complete(cmd.Context(), req)
			if c != nil {
				fmt.Fprintln(out)
			}
			if err != nil {
				return err
			}
			if werr != nil {
				return fmt.Errorf("write: %w", werr)
			}
			if !quiet {
				elapsed := time.Since(start)
				rate := 0.0
				if n := len(c.Tokens) - 1; n > 0 && elapsed > first {
					rate = float64(n) / (elapsed - first).Seconds()
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%d prompt tokens (%d cached), %d generated (%s) in %s; first token %s, then %.1f tokens/s; seed %d\n",
					c.Usage.PromptTokens, c.Usage.CachedPromptTokens, c.Usage.CompletionTokens, c.Finish,
					elapsed.Round(time.Millisecond), first.Round(time.Millisecond), rate, c.Seed)
			}
			return nil
		},
	}
	ef.register(cmd)
	f := cmd.Flags()
	f.IntVar(&maxTokens, "max-tokens", 256, "most tokens to generate (0: until the context is full)")
	f.Float64Var(&temp, "temperature", 0, "sampling temperature (0: greedy)")
	f.Float64Var(&topP, "top-p", 0, "nucleus sampling: keep the most likely tokens up to this probability (0: off)")
	f.IntVar(&topK, "top-k", 0, "keep only the k most likely tokens (0: off)")
	f.Uint64Var(&seed, "seed", 0, "sampling seed (0: draw one and print it)")
	f.StringArrayVar(&stops, "stop", nil, "stop before this string (repeatable); \\n and \\t are unescaped")
	f.BoolVar(&quiet, "quiet", false, "print no statistics")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		for i, s := range stops {
			stops[i] = unescape(s)
		}
		return nil
	}
	return cmd
}

// unescape turns the \n, \t and \\ a shell passes literally into the
// characters.
func unescape(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case 'n':
				b = append(b, '\n')
				i++
				continue
			case 't':
				b = append(b, '\t')
				i++
				continue
			case '\\':
				b = append(b, '\\')
				i++
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}
