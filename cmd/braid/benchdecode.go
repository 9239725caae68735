package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
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
	SharedPrompt bool `json:"shared_prompt,omitempty"`
	// Context is --context, the engine's positions when not the model's.
	Context int `json:"context,omitempty"`
	// IndexTopK is the positions a token attended to, sparsely; absent
	// for dense attention.
	IndexTopK  int          `json:"index_topk,omitempty"`
	Decode     []rateResult `json:"decode,omitempty"`
	Prefill    []rateResult `json:"prefill,omitempty"`
	Depths     []depthRates `json:"depths,omitempty"`
	ForkMemory *forkMemory  `json:"fork_memory,omitempty"`
}

// depthRates are the rates of --depths: decoding at one depth of the
// context, prompts of that many tokens already cached.
type depthRates struct {
	Depth   int          `json:"depth"`
	Decode  []rateResult `json:"decode"`
	Prefill []rateResult `json:"prefill"`
}

// benchDecodeFlags are the flags of 'bench decode'.
type benchDecodeFlags struct {
	asJSON              bool
	configPath, threads string
	modelPath           string
	prompt, tokens      int
	depths              string
	contextLen          int
	prefix, children    int
	suffix, rounds      int
	weights             string
	f32Weights          bool
	kvType              string
	sharedPrompt        bool
	attention           string
	indexTopK           int
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
	f.StringVar(&fl.depths, "depths", "", "comma-separated depths of the context to decode at, each in place of --prompt (e.g. 512,1024,2048,4096): what attention costs as a function of position")
	f.IntVar(&fl.contextLen, "context", 0, "the engine's positions (0: the model's own); past those it was trained on, rotary embeddings extrapolate")
	f.IntVar(&fl.prefix, "prefix", 1000, "tokens of the shared prefix in the fork memory test (0: skip it)")
	f.IntVar(&fl.children, "children", 16, "children in the fork memory test (0: skip it)")
	f.IntVar(&fl.suffix, "suffix", 128, "tokens each child generates in the fork memory test")
	f.IntVar(&fl.rounds, "rounds", 5, "rounds of every thread count, each with new prompts; the figures are their medians")
	registerWeightFlags(f, &fl.weights, &fl.f32Weights)
	f.StringVar(&fl.kvType, "kv-cache-type", "f16", "the KV cache's numbers: f16 or q8 (8-bit)")
	registerAttentionFlags(f, &fl.attention, &fl.indexTopK)
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
	attention, err := parseAttention(fl.attention, fl.indexTopK)
	if err != nil {
		return err
	}
	threadList, err := parseInts(fl.threads, maxCount)
	if err != nil {
		return usageErrorf("--threads: %v", err)
	}
	if fl.prompt <= 0 || fl.tokens <= 0 || fl.prefix < 0 || fl.children < 0 || fl.suffix <= 0 || fl.rounds <= 0 {
		return usageErrorf("--prompt, --tokens, --suffix and --rounds must be positive, --prefix and --children >= 0")
	}
	if fl.contextLen < 0 {
		return usageErrorf("--context must be >= 0 (0: the model's own)")
	}
	prompts := []int{fl.prompt}
	if fl.depths != "" {
		if prompts, err = parseInts(fl.depths, 1<<24); err != nil {
			return usageErrorf("--depths: %v", err)
		}
	}
	// --index-topk alone asks for sparse attention too.
	sparse := attention == engine.AttentionSparse || attention == "" && fl.indexTopK > 0
	m, name, err := fl.model(slices.Max(prompts), sparse)
	if err != nil {
		return err
	}
	rep := decodeReport{Config: name, Parameters: m.Params.Count(), Weights: string(wf), NewTokens: fl.tokens, Rounds: fl.rounds,
		SharedPrompt: fl.sharedPrompt, Context: fl.contextLen}
	ctx := cmd.Context()
	bar := newProgress(cmd.ErrOrStderr(), len(prompts)*fl.rounds*len(threadList)+1, "decode")
	opts := engine.Options{Weights: wf, KV8: kv8, Context: fl.contextLen, Attention: attention, IndexTopK: fl.indexTopK}
	if m.Config.HasIndexer() && attention != engine.AttentionDense {
		rep.IndexTopK = cmp.Or(fl.indexTopK, m.Config.IndexTopK)
	}
	for _, prompt := range prompts {
		pre, dec, err := fl.rates(ctx, m, opts, prompt, threadList, bar)
		if err != nil {
			return err
		}
		if fl.depths == "" {
			rep.PromptTokens, rep.Prefill, rep.Decode = prompt, pre, dec
			continue
		}
		rep.Depths = append(rep.Depths, depthRates{Depth: prompt, Decode: dec, Prefill: pre})
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
// Countdown model's shape or --config's, or --model's own. Prompts of up
// to prompt tokens and the fork test must fit its context (or --context).
// A random shape measured sparse gets a random lightning indexer of
// benchIndexHeads heads of benchIndexDim, as the Countdown model's recipe
// trains.
func (fl *benchDecodeFlags) model(prompt int, sparse bool) (*model.Model, string, error) {
	var m *model.Model
	name := "planned countdown model (d=256, 4 layers; random weights)"
	var err error
	switch {
	case fl.configPath != "" && fl.modelPath != "":
		return nil, "", usageErrorf("--config and --model exclude each other: random weights of a shape, or a model's own")
	case fl.configPath != "":
		var c model.Config
		if c, err = configFromHF(fl.configPath); err == nil {
			m, err = randomWeights(withIndexer(c, sparse), 1)
		}
		name = fl.configPath + " (random weights)"
	case fl.modelPath != "":
		m, err = loadModel(fl.modelPath)
		name = fl.modelPath
	default:
		m, err = randomWeights(withIndexer(enginebench.CountdownConfig(), sparse), 1)
	}
	if err != nil {
		return nil, "", err
	}
	positions, whose := m.Config.MaxSeq, "the model's"
	if fl.contextLen > 0 {
		positions, whose = fl.contextLen, "--context's"
	}
	if prompt <= 0 || prompt+fl.tokens > positions || fl.children > 0 && fl.prefix+fl.suffix > m.Config.MaxSeq {
		return nil, "", usageErrorf("--prompt (or each of --depths) + --tokens must fit %s %d positions and be positive, --prefix + --suffix the model's %d", whose, positions, m.Config.MaxSeq)
	}
	return m, name, nil
}

// rates measures prefill and decode tokens/s for each thread count with
// prompts of prompt tokens, on an engine of its own, the counts taking
// turns within each round, and returns the medians of the rounds.
func (fl *benchDecodeFlags) rates(ctx context.Context, m *model.Model, opts engine.Options, prompt int, threadList []int, bar *progress) (prefill, decode []rateResult, err error) {
	engines := make([]*engine.Engine, len(threadList))
	for i := range engines {
		e, err := engine.New(m, nil, opts)
		if err != nil {
			return nil, nil, err
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
			p, d, err := rates(ctx, engines[i], rng, t, prompt, fl.tokens)
			if err != nil {
				return nil, nil, err
			}
			pre[i], dec[i] = append(pre[i], p), append(dec[i], d)
			bar.add(1)
		}
	}
	for i, t := range threadList {
		prefill = append(prefill, rateResult{t, round2(stats.Median(pre[i]))})
		decode = append(decode, rateResult{t, round2(stats.Median(dec[i]))})
	}
	return prefill, decode, nil
}

func (rep *decodeReport) print(out io.Writer) error {
	prompts := "%s-token prompts"
	if rep.SharedPrompt {
		prompts = "one %s-token prompt shared by each count's threads, prefilled once"
	}
	depths := []depthRates{{Depth: rep.PromptTokens, Decode: rep.Decode, Prefill: rep.Prefill}}
	prompt := strconv.Itoa(rep.PromptTokens)
	if rep.Depths != nil {
		depths, prompt = rep.Depths, "D"
	}
	positions := ""
	if rep.Context > 0 {
		positions = fmt.Sprintf(", context %d", rep.Context)
	}
	if rep.IndexTopK > 0 {
		positions += fmt.Sprintf(", sparse attention (top %d)", rep.IndexTopK)
	}
	fmt.Fprintf(out, "%s, %d parameters, weights held in %s%s; "+prompts+", %d new tokens per thread; medians of %d rounds\n",
		rep.Config, rep.Parameters, rep.Weights, positions, prompt, rep.NewTokens, rep.Rounds)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	header := "threads\tdecode tokens/s\tper thread\tprefill tokens/s\t"
	if rep.Depths != nil {
		header = "depth D\t" + header
	}
	fmt.Fprintln(tw, header)
	for _, d := range depths {
		for i, r := range d.Decode {
			if rep.Depths != nil {
				fmt.Fprintf(tw, "%d\t", d.Depth)
			}
			fmt.Fprintf(tw, "%d\t%.0f\t%.1f\t%.0f\t\n", r.Threads, r.TokensPerSec, r.TokensPerSec/float64(r.Threads), d.Prefill[i].TokensPerSec)
		}
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

// The lightning indexer a random shape gets to be measured sparse: the
// Countdown model's recipe (models/countdown/index.json).
const (
	benchIndexHeads = 4
	benchIndexDim   = 16
	benchIndexTopK  = 256
)

// withIndexer is c with a lightning indexer where sparse asks for one and
// c has none.
func withIndexer(c model.Config, sparse bool) model.Config {
	if sparse && !c.HasIndexer() {
		c.IndexHeads, c.IndexDim, c.IndexTopK = benchIndexHeads, benchIndexDim, benchIndexTopK
	}
	return c
}
