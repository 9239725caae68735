package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/engine"
	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/model/hfconfig"
	"github.com/spf13/cobra"
)

// plannedConfig is the shape of the Countdown model issue #5 trains: d=256,
// 4 layers, SwiGLU 704 (~3.4M parameters with a 1,024-token BPE
// vocabulary). Until that model ships, 'bench decode' runs it with random
// weights.
func plannedConfig() model.Config {
	return model.Config{Vocab: 1024, Dim: 256, Hidden: 704, Layers: 4, Heads: 8, KVHeads: 8, HeadDim: 32,
		MaxSeq: 2048, NormEps: 1e-5, RopeTheta: 10000, TiedEmbeddings: true}
}

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
	Config       string       `json:"config"`
	Parameters   int          `json:"parameters"`
	Weights      string       `json:"weights"`
	PromptTokens int          `json:"prompt_tokens"`
	NewTokens    int          `json:"new_tokens"`
	Rounds       int          `json:"rounds"`
	Decode       []rateResult `json:"decode"`
	Prefill      []rateResult `json:"prefill"`
	ForkMemory   *forkMemory  `json:"fork_memory,omitempty"`
}

func newBenchDecodeCmd() *cobra.Command {
	var (
		asJSON              bool
		configPath, threads string
		prompt, tokens      int
		prefix, children    int
		suffix, rounds      int
		weights             string
		f32Weights          bool
		kvType              string
	)
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			kv8, err := parseKVCacheType(kvType)
			if err != nil {
				return err
			}
			wf, err := parseWeights(weights, f32Weights)
			if err != nil {
				return err
			}
			threadList, err := parseInts(threads)
			if err != nil {
				return usageErrorf("--threads: %v", err)
			}
			if prompt <= 0 || tokens <= 0 || prefix < 0 || children < 0 || suffix <= 0 || rounds <= 0 {
				return usageErrorf("--prompt, --tokens, --suffix and --rounds must be positive, --prefix and --children >= 0")
			}
			c := plannedConfig()
			name := "planned countdown model (d=256, 4 layers)"
			if configPath != "" {
				hc, err := hfconfig.Load(configPath)
				if err != nil {
					return err
				}
				if c, err = model.ConfigFromHF(hc); err != nil {
					return fmt.Errorf("%s: %w", configPath, err)
				}
				name = configPath
			}
			if prompt+tokens > c.MaxSeq || children > 0 && prefix+suffix > c.MaxSeq {
				return usageErrorf("--prompt + --tokens and --prefix + --suffix must fit the model's %d positions", c.MaxSeq)
			}
			m, err := model.New(c)
			if err != nil {
				return err
			}
			m.Params.Init(rand.New(rand.NewPCG(1, 1)), 0.02)
			rep := decodeReport{Config: name, Parameters: m.Params.Count(), Weights: string(wf), PromptTokens: prompt, NewTokens: tokens, Rounds: rounds}
			ctx := cmd.Context()
			bar := newProgress(cmd.ErrOrStderr(), rounds*len(threadList)+1, "decode")
			engines := make([]*engine.Engine, len(threadList))
			for i := range engines {
				if engines[i], err = engine.New(m, nil, engine.Options{Weights: wf, KV8: kv8}); err != nil {
					return err
				}
				defer engines[i].Close()
			}
			rng := rand.New(rand.NewPCG(2, 2))
			pre, dec := make([][]float64, len(threadList)), make([][]float64, len(threadList))
			for range rounds {
				for i, t := range threadList {
					p, d, err := benchThreads(ctx, engines[i], rng, t, prompt, tokens)
					if err != nil {
						return err
					}
					pre[i], dec[i] = append(pre[i], p), append(dec[i], d)
					bar.add(1)
				}
			}
			for i, t := range threadList {
				rep.Prefill = append(rep.Prefill, rateResult{t, round2(median(pre[i]))})
				rep.Decode = append(rep.Decode, rateResult{t, round2(median(dec[i]))})
			}
			if children > 0 && prefix > 0 {
				fm, err := benchForkMemory(ctx, m, children, prefix, suffix)
				if err != nil {
					return err
				}
				rep.ForkMemory = fm
			}
			bar.finish()
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, rep)
			}
			fmt.Fprintf(out, "%s, %d parameters, random weights in %s; %d-token prompts, %d new tokens per thread; medians of %d rounds\n",
				rep.Config, rep.Parameters, rep.Weights, prompt, tokens, rounds)
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
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.StringVar(&configPath, "config", "", "Hugging Face config.json of the shape to measure (default: the planned Countdown model)")
	f.StringVar(&threads, "threads", "1,4,16,64", "comma-separated numbers of concurrent threads")
	f.IntVar(&prompt, "prompt", 64, "prompt tokens per thread")
	f.IntVar(&tokens, "tokens", 128, "tokens each thread decodes")
	f.IntVar(&prefix, "prefix", 1000, "tokens of the shared prefix in the fork memory test (0: skip it)")
	f.IntVar(&children, "children", 16, "children in the fork memory test (0: skip it)")
	f.IntVar(&suffix, "suffix", 128, "tokens each child generates in the fork memory test")
	f.IntVar(&rounds, "rounds", 5, "rounds of every thread count, each with new prompts; the figures are their medians")
	registerWeightFlags(f, &weights, &f32Weights)
	f.StringVar(&kvType, "kv-cache-type", "f16", "the KV cache's numbers: f16 or q8 (8-bit)")
	return cmd
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// completeEach runs one request per prompt concurrently and returns the
// wall time.
func completeEach(ctx context.Context, e *engine.Engine, reqs []*backend.Request) (time.Duration, error) {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(reqs))
	for i, r := range reqs {
		wg.Go(func() { _, errs[i] = e.Complete(ctx, r) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// benchThreads returns one round's prefill and decode tokens/s for t threads
// of new random prompts on e.
func benchThreads(ctx context.Context, e *engine.Engine, rng *rand.Rand, t, prompt, tokens int) (prefill, decode float64, err error) {
	reqs := make([]*backend.Request, t)
	for i := range reqs {
		p := make([]int, prompt)
		for j := range p {
			p[j] = rng.IntN(e.Config().Vocab)
		}
		reqs[i] = &backend.Request{PromptTokens: p, MaxTokens: 1}
	}
	d, err := completeEach(ctx, e, reqs)
	if err != nil {
		return 0, 0, err
	}
	prefill = float64(t*prompt) / d.Seconds()
	for _, r := range reqs {
		r.MaxTokens = tokens
	}
	if d, err = completeEach(ctx, e, reqs); err != nil {
		return 0, 0, err
	}
	return prefill, float64(t*tokens) / d.Seconds(), nil
}

// median returns the middle of xs (the mean of the two middle ones for an
// even count); it sorts xs.
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// benchForkMemory measures the KV memory of n children of one prefix
// against n independent threads.
func benchForkMemory(ctx context.Context, m *model.Model, n, prefix, suffix int) (*forkMemory, error) {
	rng := rand.New(rand.NewPCG(3, 3))
	randomPrompt := func() []int {
		p := make([]int, prefix)
		for j := range p {
			p[j] = rng.IntN(m.Config.Vocab)
		}
		return p
	}
	run := func(prompts [][]int) (int64, error) {
		e, err := engine.New(m, nil, engine.Options{})
		if err != nil {
			return 0, err
		}
		defer e.Close()
		if _, err := e.Complete(ctx, &backend.Request{PromptTokens: prompts[0], MaxTokens: 1}); err != nil {
			return 0, err
		}
		reqs := make([]*backend.Request, n)
		for i := range reqs {
			// Sampled, so that the children's suffixes differ.
			reqs[i] = &backend.Request{PromptTokens: prompts[i%len(prompts)], MaxTokens: suffix, Temperature: 1, Seed: uint64(i + 1)}
		}
		if _, err := completeEach(ctx, e, reqs); err != nil {
			return 0, err
		}
		s := e.Stats()
		return int64(s.Blocks) * int64(s.BlockBytes), nil
	}
	shared := randomPrompt()
	forked, err := run([][]int{shared})
	if err != nil {
		return nil, err
	}
	independent := make([][]int, n)
	for i := range independent {
		independent[i] = randomPrompt()
	}
	indep, err := run(independent)
	if err != nil {
		return nil, err
	}
	c := m.Config
	perToken := int64(c.Layers * 2 * c.KVHeads * c.HeadDim * 2) // keys and values in half precision
	// Each child feeds back all but its last sampled token.
	floor := perToken * int64(prefix+n*(suffix-1))
	return &forkMemory{Children: n, PrefixTokens: prefix, SuffixTokens: suffix, ForkedBytes: forked, IndependentBytes: indep,
		OneThreadPlus: floor, ForkedRatio: round2(float64(forked) / float64(floor))}, nil
}
