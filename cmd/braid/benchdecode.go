package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"text/tabwriter"

	"github.com/braid-dev/braid/engine"
	"github.com/braid-dev/braid/engine/enginebench"
	"github.com/braid-dev/braid/eval/stats"
	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/model/gguf"
	"github.com/spf13/cobra"
)

type rateResult struct {
	Threads      int     `json:"threads"`
	TokensPerSec float64 `json:"tokens_per_s"`
}

type forkMemory struct {
	Children     int `json:"children"`
	PrefixTokens int `json:"prefix_tokens"`
	SuffixTokens int `json:"suffix_tokens"`
	// Bytes of KV cache in use: children forked from one prefix, the same
	// number of independent threads, and the floor of one thread plus
	// every child's own suffix at exactly bytes-per-token.
	ForkedBytes      int64   `json:"forked_bytes"`
	IndependentBytes int64   `json:"independent_bytes"`
	OneThreadPlus    int64   `json:"one_thread_plus_suffixes_bytes"`
	ForkedRatio      float64 `json:"forked_over_one_thread_plus_suffixes"`
}

type decodeReport struct {
	Config       string `json:"config"`
	Parameters   int    `json:"parameters"`
	Weights      string `json:"weights"`
	PromptTokens int    `json:"prompt_tokens"`
	NewTokens    int    `json:"new_tokens"`
	Rounds       int    `json:"rounds"`
	// SharedPrompt: each count's threads shared one prompt, prefilled
	// once (prefill is that prompt's tokens/s).
	SharedPrompt bool         `json:"shared_prompt,omitempty"`
	Decode       []rateResult `json:"decode"`
	Prefill      []rateResult `json:"prefill"`
	ForkMemory   *forkMemory  `json:"fork_memory,omitempty"`
}

// benchDecodeFlags are the flags of 'bench decode'.
type benchDecodeFlags struct {
	asJSON              bool
	configPath, threads string
	modelPath           string
	prompt, tokens      int
	prefix, children    int
	suffix, rounds      int
	weights             string
	f32Weights          bool
	kvType              string
	sharedPrompt        bool
}

func newBenchDecodeCmd() *cobra.Command {
	var fl benchDecodeFlags
	cmd := &cobra.Command{
		Use:   "decode",
		Short: "Decode tokens/s of the engine for several numbers of concurrent threads",
		Long: `Measure the engine on a model of random weights: for each thread count T,
T threads with distinct random prompts are prefilled together (prefill
tokens/s), then decode --tokens tokens each, concurrently in one batch
(aggregate decode tokens/s, the prompts already cached). That is repeated
--rounds times with new prompts, the thread counts taking turns within each
round so that all see the same machine, and each figure is the median of
its rounds: a shared machine's speed drifts within minutes. Then --children
threads forked from one --prefix-token prompt each generate --suffix tokens,
and their KV memory is compared with as many independent threads and with
one thread plus the children's own suffixes.

The shape is the Countdown model braid trains (d=256, 4 layers) unless
--config names a Hugging Face config.json.`,
		Example: `  braid bench decode
  braid bench decode --threads 1,4,16,64 --json
  braid bench decode --config configs/llama2c-stories15m.json --threads 1`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error { return fl.run(cmd) },
	}
	f := cmd.Flags()
	f.BoolVar(&fl.asJSON, "json", false, "print JSON")
	f.StringVar(&fl.configPath, "config", "", "Hugging Face config.json of the shape to measure (default: the planned Countdown model)")
	f.StringVar(&fl.modelPath, "model", "", "measure this model's own weights instead: a model directory or GGUF file (as braid export gguf --config writes, to measure llama.cpp on the same file)")
	f.StringVar(&fl.threads, "threads", "1,4,16,64", "comma-separated numbers of concurrent threads")
	f.IntVar(&fl.prompt, "prompt", 64, "prompt tokens per thread")
	f.IntVar(&fl.tokens, "tokens", 128, "tokens each thread decodes")
	f.IntVar(&fl.prefix, "prefix", 1000, "tokens of the shared prefix in the fork memory test (0: skip it)")
	f.IntVar(&fl.children, "children", 16, "children in the fork memory test (0: skip it)")
	f.IntVar(&fl.suffix, "suffix", 128, "tokens each child generates in the fork memory test")
	f.IntVar(&fl.rounds, "rounds", 5, "rounds of every thread count, each with new prompts; the figures are their medians")
	registerWeightFlags(f, &fl.weights, &fl.f32Weights)
	f.StringVar(&fl.kvType, "kv-cache-type", "f16", "the KV cache's numbers: f16 or q8 (8-bit)")
	f.BoolVar(&fl.sharedPrompt, "shared-prompt", false, "each count's threads share one --prompt-token prompt, prefilled once, then each samples --tokens tokens from it (the samples of a vote; llama-batched-bench -pps)")
	return cmd
}

func (fl *benchDecodeFlags) run(cmd *cobra.Command) error {
	kv8, err := parseKVCacheType(fl.kvType)
	if err != nil {
		return err
	}
	wf, err := parseWeights(fl.weights, fl.f32Weights)
	if err != nil {
		return err
	}
	threadList, err := parseInts(fl.threads)
	if err != nil {
		return usageErrorf("--threads: %v", err)
	}
	if fl.prompt <= 0 || fl.tokens <= 0 || fl.prefix < 0 || fl.children < 0 || fl.suffix <= 0 || fl.rounds <= 0 {
		return usageErrorf("--prompt, --tokens, --suffix and --rounds must be positive, --prefix and --children >= 0")
	}
	m, name, err := fl.model()
	if err != nil {
		return err
	}
	rep := decodeReport{Config: name, Parameters: m.Params.Count(), Weights: string(wf), PromptTokens: fl.prompt, NewTokens: fl.tokens, Rounds: fl.rounds,
		SharedPrompt: fl.sharedPrompt}
	ctx := cmd.Context()
	bar := newProgress(cmd.ErrOrStderr(), fl.rounds*len(threadList)+1, "decode")
	if err := fl.rates(ctx, &rep, m, engine.Options{Weights: wf, KV8: kv8}, threadList, bar); err != nil {
		return err
	}
	if fl.children > 0 && fl.prefix > 0 {
		fm, err := enginebench.MeasureForkMemory(ctx, m, fl.children, fl.prefix, fl.suffix)
		if err != nil {
			return err
		}
		rep.ForkMemory = &forkMemory{Children: fm.Children, PrefixTokens: fm.PrefixTokens, SuffixTokens: fm.SuffixTokens,
			ForkedBytes: fm.Forked, IndependentBytes: fm.Independent, OneThreadPlus: fm.Floor, ForkedRatio: round2(float64(fm.Forked) / float64(fm.Floor))}
	}
	bar.finish()
	if fl.asJSON {
		return printJSON(cmd.OutOrStdout(), rep)
	}
	return rep.print(cmd.OutOrStdout())
}

// model is the model to measure and its name: random weights in the
// Countdown model's shape or --config's, or --model's own.
func (fl *benchDecodeFlags) model() (*model.Model, string, error) {
	var m *model.Model
	name := "planned countdown model (d=256, 4 layers; random weights)"
	var err error
	switch {
	case fl.configPath != "" && fl.modelPath != "":
		return nil, "", usageErrorf("--config and --model exclude each other: random weights of a shape, or a model's own")
	case fl.configPath != "":
		m, err = randomModel(fl.configPath, 1)
		name = fl.configPath + " (random weights)"
	case fl.modelPath != "":
		m, err = loadModel(fl.modelPath)
		name = fl.modelPath
	default:
		m, err = randomWeights(enginebench.CountdownConfig(), 1)
	}
	if err != nil {
		return nil, "", err
	}
	if c := m.Config; fl.prompt+fl.tokens > c.MaxSeq || fl.children > 0 && fl.prefix+fl.suffix > c.MaxSeq {
		return nil, "", usageErrorf("--prompt + --tokens and --prefix + --suffix must fit the model's %d positions", c.MaxSeq)
	}
	return m, name, nil
}

// rates measures prefill and decode tokens/s for each thread count, on an
// engine of its own, the counts taking turns within each round, and
// reports the median of the rounds.
func (fl *benchDecodeFlags) rates(ctx context.Context, rep *decodeReport, m *model.Model, opts engine.Options, threadList []int, bar *progress) error {
	engines := make([]*engine.Engine, len(threadList))
	for i := range engines {
		e, err := engine.New(m, nil, opts)
		if err != nil {
			return err
		}
		defer e.Close()
		engines[i] = e
	}
	rng := rand.New(rand.NewPCG(2, 2))
	pre, dec := make([][]float64, len(threadList)), make([][]float64, len(threadList))
	for range fl.rounds {
		for i, t := range threadList {
			rates := enginebench.Rates
			if fl.sharedPrompt {
				rates = enginebench.SharedRates
			}
			p, d, err := rates(ctx, engines[i], rng, t, fl.prompt, fl.tokens)
			if err != nil {
				return err
			}
			pre[i], dec[i] = append(pre[i], p), append(dec[i], d)
			bar.add(1)
		}
	}
	for i, t := range threadList {
		rep.Prefill = append(rep.Prefill, rateResult{t, round2(stats.Median(pre[i]))})
		rep.Decode = append(rep.Decode, rateResult{t, round2(stats.Median(dec[i]))})
	}
	return nil
}

func (rep *decodeReport) print(out io.Writer) error {
	prompts := "%d-token prompts"
	if rep.SharedPrompt {
		prompts = "one %d-token prompt shared by each count's threads, prefilled once"
	}
	fmt.Fprintf(out, "%s, %d parameters, weights held in %s; "+prompts+", %d new tokens per thread; medians of %d rounds\n",
		rep.Config, rep.Parameters, rep.Weights, rep.PromptTokens, rep.NewTokens, rep.Rounds)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "threads\tdecode tokens/s\tper thread\tprefill tokens/s\t")
	for i, r := range rep.Decode {
		fmt.Fprintf(tw, "%d\t%.0f\t%.1f\t%.0f\t\n", r.Threads, r.TokensPerSec, r.TokensPerSec/float64(r.Threads), rep.Prefill[i].TokensPerSec)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if fm := rep.ForkMemory; fm != nil {
		fmt.Fprintf(out, "KV memory, %d threads of a %d-token prefix plus %d tokens each: forked %.1f MiB, independent %.1f MiB;\n"+
			"forked is %.3fx one thread plus the children's own suffixes (%.1f MiB)\n",
			fm.Children, fm.PrefixTokens, fm.SuffixTokens, mib(fm.ForkedBytes), mib(fm.IndependentBytes), fm.ForkedRatio, mib(fm.OneThreadPlus))
	}
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// loadModel reads the model of a model directory or GGUF file.
func loadModel(path string) (*model.Model, error) {
	if !engine.IsGGUF(path) {
		return model.Load(path)
	}
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := gguf.LoadModel(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
