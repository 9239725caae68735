package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/braid-dev/braid/internal/parallel"
	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/model/safetensors"
	"github.com/braid-dev/braid/task/countdown"
	"github.com/braid-dev/braid/tokenizer"
	"github.com/braid-dev/braid/train"
	"github.com/spf13/cobra"
)

func newTrainCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "train",
		Short:   "Train braid's models",
		Example: "  braid train sft --config models/countdown/recipe.json --out runs/countdown",
	}
	cmd.AddCommand(newTrainSFTCmd(), newTrainIndexCmd(), newTrainGRPOCmd(), newTrainExportCmd())
	return cmd
}

func newTrainExportCmd() *cobra.Command {
	var (
		run, out        string
		f32             bool
		positions, step int
	)
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a run's model as a shippable model directory (half-precision weights)",
		Long: `Copy the latest checkpoint of a training run into a model directory:
config.json (with its end-of-sequence token), tokenizer.json and
model.safetensors, the weights in half precision unless --f32 (half the size;
the engine computes in float32 and keeps weights in half precision anyway).
--context sets the positions the model runs at (its max_position_embeddings)
when they should differ from those it was trained on: rotary embeddings
extrapolate, and whether that helps is for 'braid eval --context' to measure
first. The Countdown model braid embeds is exported this way into
models/countdown. --step N exports the model a GRPO run kept at step N
(--keep-every) instead of its latest checkpoint: a checkpoint chosen on
validation problems.`,
		Example: `  braid train export --run runs/countdown --out models/countdown --context 4096
  braid train export --run runs/grpo-hard --step 20 --out runs/grpo-hard/model --context 4096`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if run == "" || out == "" {
				return usageErrorf("train export needs --run DIR and --out DIR")
			}
			if positions < 0 || step < 0 {
				return usageErrorf("--context and --step must be >= 0 (0: the trained context, the latest checkpoint)")
			}
			dtype := safetensors.F16
			if f32 {
				dtype = safetensors.F32
			}
			from := filepath.Join(run, train.CheckpointDir)
			if step > 0 {
				from = train.KeptDir(run, step)
				if _, err := os.Stat(from); err != nil {
					return fmt.Errorf("step %d of %s: no kept model (a GRPO run keeps every --keep-every steps): %w", step, run, err)
				}
			}
			if err := train.Export(from, out, dtype, positions); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (%s weights)\n", out, dtype)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&run, "run", "", "the training run directory")
	f.StringVar(&out, "out", "", "the model directory to write")
	f.BoolVar(&f32, "f32", false, "keep the weights in float32")
	f.IntVar(&positions, "context", 0, "positions the exported model runs at (0: the context it was trained at)")
	f.IntVar(&step, "step", 0, "export the model a GRPO run kept at this step (0: the latest checkpoint)")
	return cmd
}

func newTrainSFTCmd() *cobra.Command {
	var (
		config, out, from string
		bench             bool
		benchSteps        int
		precision         string
		sparse            bool
	)
	cmd := &cobra.Command{
		Use:   "sft",
		Short: "Supervised training on Countdown search traces, resumable",
		Long: `Train a model on the search traces a recipe describes: generate the traces,
train a BPE tokenizer on them (or reuse the run's), mask from the loss what
the Countdown environment writes, and train with AdamW, warmup and cosine
decay. Every checkpoint_every steps the run directory gets a checkpoint (a
model directory 'braid generate --model' opens), log.csv and loss.svg. Run the
same command again to resume: the loss curve goes on exactly as if the run
had never stopped. Ctrl-C saves a checkpoint before exiting.

--from starts from a model directory's weights and tokenizer instead of
random ones (its shape must be the recipe's). --sparse trains a model with
an indexer (the recipe's index_heads, index_dim and index_topk) attending
only to the positions its indexer scores highest, the indexer learning on
beside it: sparse attention's second stage, after 'braid train index'.

--bench times the trainer instead, on the reference shape (d=256, 4 layers,
SwiGLU 704, a 37-token vocabulary, sequences of up to 1,536 tokens, mean
~700), and prints tokens per second.`,
		Example: `  braid train sft --config models/countdown/recipe.json --out runs/countdown
  braid train sft --bench`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if bench {
				return runTrainBench(cmd.Context(), cmd.OutOrStdout(), benchSteps, train.Precision(precision))
			}
			if config == "" || out == "" {
				return usageErrorf("train sft needs --config FILE and --out DIR (or --bench)")
			}
			r, err := train.LoadRecipe(config)
			if err != nil {
				return err
			}
			if precision != "" {
				if err := train.Precision(precision).Check(); err != nil {
					return usageErrorf("--precision: %v", err)
				}
				r.Train.Precision = train.Precision(precision)
			}
			if sparse {
				r.Train.Sparse = true
				if err := r.Validate(); err != nil {
					return usageErrorf("--sparse: %v", err)
				}
			}
			return runTrainSFT(cmd.Context(), cmd.ErrOrStderr(), r, out, from)
		},
	}
	f := cmd.Flags()
	f.StringVar(&config, "config", "", "the recipe (JSON)")
	f.StringVar(&out, "out", "", "the run directory: checkpoint, log, loss curve")
	f.StringVar(&from, "from", "", "start from this model directory's weights and tokenizer (default: random weights and a tokenizer trained on the traces)")
	f.BoolVar(&sparse, "sparse", false, "train the model attending to its indexer's top-k positions, the indexer learning beside it; overrides the recipe's train.sparse")
	f.BoolVar(&bench, "bench", false, "time the trainer on the reference shape instead")
	f.IntVar(&benchSteps, "bench-steps", 8, "timed steps for --bench")
	f.StringVar(&precision, "precision", "", "the products: f32 or bf16 (bfloat16 products with float32 sums: on AMX tiles where the CPU has them, attention's included; elsewhere the weight products alone); overrides the recipe's train.precision, which is part of the run's identity")
	return cmd
}

func newTrainIndexCmd() *cobra.Command {
	var config, out, from string
	cmd := &cobra.Command{
		Use:   "index",
		Short: "Train a model's sparse-attention indexer on its own attention (the dense warm-up), resumable",
		Long: `Add a lightning indexer to a model (the recipe's index_heads, index_dim and
index_topk; DeepSeek-V3.2's sparse attention) and train it alone: at every
layer and position, on the KL divergence from the model's attention over
the earlier positions (its heads averaged) to the indexer's softmax, on the
traces the recipe describes. Every other weight stays the model's. The run
directory and resuming work as in 'braid train sft'; then 'braid train sft
--sparse --from RUN/checkpoint' adapts the model to attending sparsely.`,
		Example: `  braid train index --config models/countdown/index.json --from models/countdown --out runs/countdown-index`,
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if config == "" || out == "" || from == "" {
				return usageErrorf("train index needs --config FILE, --from MODEL and --out DIR")
			}
			r, err := train.LoadRecipe(config)
			if err != nil {
				return err
			}
			r.Train.Objective = train.ObjectiveIndex
			if err := r.Validate(); err != nil {
				return usageErrorf("--config %s: %v", config, err)
			}
			return runTrainSFT(cmd.Context(), cmd.ErrOrStderr(), r, out, from)
		},
	}
	f := cmd.Flags()
	f.StringVar(&config, "config", "", "the recipe (JSON), with the indexer's shape in its model section")
	f.StringVar(&from, "from", "", "the model directory whose indexer to train")
	f.StringVar(&out, "out", "", "the run directory: checkpoint, log, loss curve")
	return cmd
}

// runTrainSFT runs the recipe's training in dir, from the model directory
// from when it is not "" (its weights and tokenizer).
func runTrainSFT(ctx context.Context, log io.Writer, r *train.Recipe, dir, from string) error {
	var initial *model.Model
	var startTok *tokenizer.Tokenizer
	if from != "" {
		var err error
		if r.Train.Start, err = model.Fingerprint(os.DirFS(from), "."); err != nil {
			return fmt.Errorf("--from %s: %w", from, err)
		}
		if initial, err = model.Load(from); err != nil {
			return fmt.Errorf("--from: %w", err)
		}
		if startTok, err = tokenizer.Load(filepath.Join(from, model.TokenizerFile)); err != nil {
			return fmt.Errorf("--from: %w", err)
		}
	}
	start := time.Now()
	fmt.Fprintf(log, "generating traces for %d+%d+%d problems (+%d per format for validation)...\n",
		r.Data.Serial, r.Data.Parallel, r.Data.Direct, r.Data.Validation)
	trainSeqs, valSeqs, err := train.Traces(ctx, countdown.Task{}, r.Data)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "%d training and %d validation sequences in %s\n", len(trainSeqs), len(valSeqs), time.Since(start).Round(time.Millisecond))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tokPath := filepath.Join(dir, "tokenizer.json")
	tok, err := tokenizer.Load(tokPath)
	switch {
	case err == nil && startTok != nil && !sameTokenizer(tok, startTok):
		return fmt.Errorf("%s is not the tokenizer of --from %s: use a new directory", tokPath, from)
	case err == nil:
		fmt.Fprintf(log, "reusing %s (%d tokens)\n", tokPath, tok.VocabSize())
	case errors.Is(err, os.ErrNotExist) && startTok != nil:
		tok = startTok
		if err := tok.Save(tokPath); err != nil {
			return err
		}
		fmt.Fprintf(log, "the tokenizer of %s (%d tokens)\n", from, tok.VocabSize())
	case errors.Is(err, os.ErrNotExist):
		sample := sampleSequences(trainSeqs, r.Tokenizer.Sample)
		if tok, err = train.TrainTokenizer(ctx, sample, r.Tokenizer.Vocab); err != nil {
			return err
		}
		if err := tok.Save(tokPath); err != nil {
			return err
		}
		fmt.Fprintf(log, "trained a %d-token BPE vocabulary on %d sequences\n", tok.VocabSize(), len(sample))
	default:
		return err
	}
	trainSet, dropped, err := encodeAll(ctx, tok, trainSeqs, r.Model.MaxSeq)
	if err != nil {
		return err
	}
	valSet, _, err := encodeAll(ctx, tok, valSeqs, r.Model.MaxSeq)
	if err != nil {
		return err
	}
	var tokens, learned int
	for _, x := range trainSet {
		tokens += len(x.Tokens)
		for _, l := range x.Learn {
			if l {
				learned++
			}
		}
	}
	fmt.Fprintf(log, "%d training examples, %d tokens (mean %.0f), %.0f%% of them learned; %d longer than %d tokens dropped\n",
		len(trainSet), tokens, float64(tokens)/float64(max(1, len(trainSet))), 100*float64(learned)/float64(max(1, tokens)), dropped, r.Model.MaxSeq)
	t, err := train.NewTrainer(r, dir, tok, trainSet, valSet, initial)
	if err != nil {
		return err
	}
	t.Progress = log
	if st := t.State(); st.Step > 0 {
		fmt.Fprintf(log, "resuming at step %d of %d (epoch %d)\n", st.Step, r.Train.Steps, st.Epoch)
	}
	fmt.Fprintf(log, "model: %d parameters\n", t.Model.Params.Count())
	if err := t.Run(ctx); err != nil {
		return err
	}
	st := t.State()
	fmt.Fprintf(log, "done: %d steps, %d tokens in %s of training; model in %s\n", st.Step, st.Tokens,
		time.Duration(st.Seconds*float64(time.Second)).Round(time.Second), filepath.Join(dir, train.CheckpointDir))
	return nil
}

// sameTokenizer says whether a and b are the same tokenizer, as their JSON
// says.
func sameTokenizer(a, b *tokenizer.Tokenizer) bool {
	ja, errA := a.MarshalJSON()
	jb, errB := b.MarshalJSON()
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// sampleSequences takes about 3n sequences spread evenly over seqs, which
// hold the formats one after another, for the tokenizer.
func sampleSequences(seqs []train.Sequence, n int) []train.Sequence {
	if len(seqs) <= 3*n {
		return seqs
	}
	out := make([]train.Sequence, 0, 3*n)
	for i := range 3 * n {
		out = append(out, seqs[i*len(seqs)/(3*n)])
	}
	return out
}

// encodeAll encodes the sequences on all CPUs, dropping those longer than
// maxSeq tokens.
func encodeAll(ctx context.Context, tok *tokenizer.Tokenizer, seqs []train.Sequence, maxSeq int) ([]train.Example, int, error) {
	var out []train.Example
	dropped := 0
	err := parallel.Ordered(ctx, len(seqs), runtime.GOMAXPROCS(0), func(i int) (train.Example, error) {
		return train.Encode(tok, seqs[i])
	}, func(i int, x train.Example) error {
		if x.Len() > maxSeq {
			dropped++
			return nil
		}
		out = append(out, x)
		return nil
	})
	return out, dropped, err
}

// benchRecipe is the reference shape of the trainer benchmark: the PyTorch
// figure it is compared with trained this model.
func benchRecipe() *train.Recipe {
	return &train.Recipe{
		Model: train.ModelConfig{Dim: 256, Hidden: 704, Layers: 4, Heads: 8, KVHeads: 8, MaxSeq: 1536, RopeTheta: 10000, Tied: true, InitStd: 0.02},
		Train: train.TrainConfig{Seed: 1, Steps: 1000, MicroTokens: 8192, MicroBatches: 2, LR: 1e-3, MinLR: 1e-4, Warmup: 10,
			WeightDecay: 0.1, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, Clip: 1, CheckpointEvery: 1000, EvalEvery: 1000, LogEvery: 1000},
	}
}

func runTrainBench(ctx context.Context, out io.Writer, steps int, p train.Precision) error {
	if steps <= 0 {
		return usageErrorf("--bench-steps must be positive")
	}
	if err := p.Check(); err != nil {
		return usageErrorf("--precision: %v", err)
	}
	r := benchRecipe()
	r.Train.Precision = p
	const vocab = 37
	rng := rand.New(rand.NewPCG(1, 1))
	examples := make([]train.Example, 400)
	for i := range examples {
		n := 64 + rng.IntN(1273) // mean ~700, at most 1,336
		x := train.Example{Tokens: make([]int32, n), Learn: make([]bool, n)}
		for j := range x.Tokens {
			x.Tokens[j], x.Learn[j] = int32(rng.IntN(vocab)), true
		}
		examples[i] = x
	}
	rate, err := train.Bench(ctx, r, vocab, examples, 2, steps)
	if err != nil {
		return err
	}
	if p == "" {
		p = train.PrecisionF32
	}
	fmt.Fprintf(out, "trainer: %.0f tokens/s (d=256, 4 layers, SwiGLU 704, vocabulary 37, sequences of mean ~700 tokens, %d steps of %d micro-batches of %d tokens, %d threads, %s products)\n",
		rate, steps, r.Train.MicroBatches, r.Train.MicroTokens, runtime.GOMAXPROCS(0), p)
	return nil
}
