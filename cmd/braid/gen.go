package main

import (
	"fmt"
	"io"
	"time"

	"github.com/braid-dev/braid/eval/stats"
	"github.com/braid-dev/braid/internal/parallel"
	"github.com/braid-dev/braid/task/countdown"
	"github.com/spf13/cobra"
)

func newGenCmd() *cobra.Command {
	gen := &cobra.Command{
		Use:   "gen",
		Short: "Generate datasets: Countdown problems and search traces",
		Example: `  braid gen problems --n 1000 --split test --seed 1 > test.jsonl
  braid gen traces --format parallel --input test.jsonl --out traces.jsonl`,
	}
	gen.AddCommand(newGenProblemsCmd(), newGenTracesCmd())
	return gen
}

func newGenProblemsCmd() *cobra.Command {
	var (
		n          int
		seed       uint64
		split      string
		out        string
		unsolvable bool
	)
	cmd := &cobra.Command{
		Use:   "problems",
		Short: "Generate Countdown problems as JSONL",
		Long: `Generate distinct Countdown problems from the public APR / Stream-of-Search
distribution: a target uniform in 10..100, four numbers uniform in 1..99
redrawn until the target can be reached using all four.

Every problem belongs to one split by a hash of its sorted numbers and target
(one in ten is test), so train and test sets are disjoint whatever their seeds
and sizes. Validation problems are test-split problems of a stream of their
own, none among the seed's first 10,000 test problems: what to tune a
training run on. Output is deterministic per seed, and the first N problems
for a seed are the same whatever N is. One {"numbers":[...],"target":T} per line.

With --unsolvable, the draws kept are those whose target cannot be
reached (the right end of a search for them is "No solution found."),
from a stream of their own: a set for measuring when a model gives up.`,
		Example: `  braid gen problems --n 1000 --split test --seed 1 > test.jsonl
  braid gen problems --n 100000 --seed 7 --out train-problems.jsonl
  braid gen problems --n 500 --split test --unsolvable > unsolvable.jsonl`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n <= 0 {
				return usageErrorf("--n must be positive, got %d", n)
			}
			sp, err := countdown.ParseSplit(split)
			if err != nil {
				return usageErrorf("--split: %v", err)
			}
			o, err := openOutput(out, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			defer o.abort()
			bar := newProgress(cmd.ErrOrStderr(), n, "problems")
			done := 0
			problems := countdown.Problems
			if unsolvable {
				problems = countdown.UnsolvableProblems
			}
			for p := range problems(seed, sp) {
				if err := cmd.Context().Err(); err != nil {
					return err
				}
				if err := o.write(p); err != nil {
					return err
				}
				bar.add(1)
				if done++; done == n {
					break
				}
			}
			bar.finish()
			return o.commit()
		},
	}
	f := cmd.Flags()
	f.IntVar(&n, "n", 1000, "number of problems")
	f.Uint64Var(&seed, "seed", 1, "random seed")
	f.StringVar(&split, "split", "train", "train, test or validation")
	f.BoolVar(&unsolvable, "unsolvable", false, "keep only problems whose target cannot be reached")
	f.StringVarP(&out, "out", "o", "", "output file (default standard output)")
	return cmd
}

// genTracesFlags are the flags of 'gen traces'.
type genTracesFlags struct {
	cfg     countdown.TraceConfig
	format  string
	n       int
	seed    uint64
	split   string
	input   string
	out     string
	workers int
	noTree  bool
	quiet   bool
}

func newGenTracesCmd() *cobra.Command {
	var fl genTracesFlags
	cmd := &cobra.Command{
		Use:   "traces",
		Short: "Generate Countdown search traces (training sequences) as JSONL",
		Long: `Run a symbolic search on each problem and write its trace in the line format
of the public checkpoints, one JSON record per problem.

Formats:
  serial    SoS+: beam search with inline sub searches; after "Goal Reached" the
            solution path is replayed from the root. Defaults follow the public
            generator: beam 1..5, mult heuristic, sub-search probability 0.5.
  parallel  APR: the root spawns one child search per generated node
            (<Calling Sub Searches>), children search serially from only their
            node, and the root resumes with the join block. Defaults follow
            APR's published script: beam 1..10, child beam beam..15,
            probability 0.9. Every parent and child
            call is its own training sequence; "tree" holds the whole rollout.
  direct    no search: the solution path alone (braid's direct-answer mode).

Problems come from --input (JSONL, as 'braid gen problems' writes) or are
generated from --seed and --split. Each record holds numbers, target, format,
search (the parameters drawn), solved, answer, text, sequences (prompt and
completion of each model call), children and, for parallel, tree. A summary
with the success rate, trace lengths and speed goes to stderr.`,
		Example: `  braid gen traces --format serial --n 10000 --seed 1 --out serial.jsonl
  braid gen traces --format parallel --input test.jsonl --out apr-test.jsonl
  braid gen traces --format serial --heuristic random --prune random --n 100`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error { return fl.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&fl.format, "format", "", "serial, parallel or direct (required)")
	f.IntVar(&fl.n, "n", 0, "number of problems (with --input: at most this many; 0 means all)")
	f.Uint64Var(&fl.seed, "seed", 1, "random seed for problems and searches")
	f.StringVar(&fl.split, "split", "train", "train, test or validation, when problems are generated")
	f.StringVar(&fl.input, "input", "", "read problems from this JSONL file ('-' for standard input)")
	f.StringVarP(&fl.out, "out", "o", "", "output file (default standard output)")
	f.IntVar(&fl.workers, "workers", 0, "goroutines generating traces (0: one per CPU)")
	f.IntVar(&fl.cfg.BeamMin, "beam-min", 0, "smallest beam drawn (0: 1)")
	f.IntVar(&fl.cfg.BeamMax, "beam-max", 0, "largest beam drawn (0: 5 serial, 10 parallel)")
	f.IntVar(&fl.cfg.SubBeamMax, "sub-beam-max", 0, "largest child beam drawn, parallel (0: 15)")
	f.StringVar(&fl.cfg.Heuristic, "heuristic", "mult", "mult, sum or random (per problem)")
	f.StringVar(&fl.cfg.Prune, "prune", "beam", "serial pruning: beam, threshold or random (per problem)")
	f.Float64Var(&fl.cfg.Promising, "promising", 0, "sub-search probability (0: 0.5 serial, 0.9 parallel; negative: never)")
	f.BoolVar(&fl.cfg.ModeHeader, "mode-header", false, "start each root sequence with braid's \"Mode: ...\" line")
	f.BoolVar(&fl.noTree, "no-tree", false, "leave the rollout tree out of parallel records")
	f.BoolVarP(&fl.quiet, "quiet", "q", false, "no summary on stderr")
	return cmd
}

func (fl *genTracesFlags) run(cmd *cobra.Command) error {
	if fl.format == "" {
		return usageErrorf("--format is required: serial, parallel or direct")
	}
	mode, err := countdown.ParseMode(fl.format)
	if err != nil {
		return usageErrorf("--format: %v", err)
	}
	fl.cfg.Format = mode
	if err := fl.cfg.Validate(); err != nil {
		return usageErrorf("%v", err)
	}
	if fl.n < 0 {
		return usageErrorf("--n must not be negative, got %d", fl.n)
	}
	problems, err := fl.problems(cmd)
	if err != nil {
		return err
	}
	o, err := openOutput(fl.out, cmd.OutOrStdout())
	if err != nil {
		return err
	}
	defer o.abort()

	bar := newProgress(cmd.ErrOrStderr(), len(problems), "traces")
	var st traceStats
	start := time.Now()
	err = parallel.Ordered(cmd.Context(), len(problems), fl.workers,
		func(i int) (encodedTrace, error) { return fl.trace(problems[i], i) },
		func(i int, t encodedTrace) error {
			st.add(t.sum)
			bar.add(1)
			return o.writeLine(t.line)
		})
	if err != nil {
		return err
	}
	bar.finish()
	if err := o.commit(); err != nil {
		return err
	}
	if !fl.quiet {
		st.print(cmd.ErrOrStderr(), mode, time.Since(start))
	}
	return nil
}

// problems are the problems to trace: the first --n of --input, or --n
// generated from --seed and --split.
func (fl *genTracesFlags) problems(cmd *cobra.Command) ([]countdown.Problem, error) {
	if fl.input != "" {
		problems, err := readProblems(fl.input, cmd.InOrStdin())
		if err != nil {
			return nil, err
		}
		if fl.n > 0 && fl.n < len(problems) {
			problems = problems[:fl.n]
		}
		return problems, nil
	}
	if fl.n == 0 {
		return nil, usageErrorf("--n must be positive when problems are generated (no --input)")
	}
	sp, err := countdown.ParseSplit(fl.split)
	if err != nil {
		return nil, usageErrorf("--split: %v", err)
	}
	var problems []countdown.Problem
	for p := range countdown.Problems(fl.seed, sp) {
		if err := cmd.Context().Err(); err != nil {
			return nil, err
		}
		if problems = append(problems, p); len(problems) == fl.n {
			break
		}
	}
	return problems, nil
}

// trace generates problem i's trace and encodes it; workers call it.
func (fl *genTracesFlags) trace(p countdown.Problem, i int) (encodedTrace, error) {
	rec, err := fl.cfg.Generate(p, fl.seed, i)
	if err != nil {
		return encodedTrace{}, err
	}
	sum := summarise(rec)
	if fl.noTree {
		rec.Tree = nil
	}
	line, err := jsonLine(rec)
	return encodedTrace{line, sum}, err
}

// encodedTrace is a trace record as a worker hands it to the writer.
type encodedTrace struct {
	line []byte
	sum  traceSummary
}

// traceSummary is what the run's summary needs of one record.
type traceSummary struct {
	solved                                    bool
	children, sequences, text, total, longest int
}

func summarise(r countdown.TraceRecord) traceSummary {
	s := traceSummary{solved: r.Solved, children: r.Children, sequences: len(r.Sequences), text: len(r.Text)}
	for _, q := range r.Sequences {
		l := len(q.Prompt) + len(q.Completion)
		s.total += l
		s.longest = max(s.longest, l)
	}
	return s
}

// traceStats summarises a trace run for the user.
type traceStats struct {
	n, solved, children, sequences int
	textLen, totalLen, longest     []float64
}

func (s *traceStats) add(t traceSummary) {
	s.n++
	if t.solved {
		s.solved++
	}
	s.children += t.children
	s.sequences += t.sequences
	s.textLen = append(s.textLen, float64(t.text))
	s.totalLen = append(s.totalLen, float64(t.total))
	s.longest = append(s.longest, float64(t.longest))
}

func (s *traceStats) print(w io.Writer, mode countdown.Mode, elapsed time.Duration) {
	if s.n == 0 {
		return
	}
	rate := float64(s.solved) / float64(s.n)
	fmt.Fprintf(w, "%d %s traces in %.2fs (%.0f traces/s)\n", s.n, mode, elapsed.Seconds(), float64(s.n)/elapsed.Seconds())
	fmt.Fprintf(w, "reached the goal: %d/%d = %.1f%%\n", s.solved, s.n, 100*rate)
	fmt.Fprintf(w, "text length (chars): mean %.0f, p95 %.0f\n", stats.Mean(s.textLen), stats.NearestRank(s.textLen, 95))
	if mode == countdown.ModeParallel {
		fmt.Fprintf(w, "all sequences of a rollout (chars): mean %.0f, p95 %.0f\n", stats.Mean(s.totalLen), stats.NearestRank(s.totalLen, 95))
		fmt.Fprintf(w, "longest sequence of a rollout (chars): mean %.0f, p95 %.0f\n", stats.Mean(s.longest), stats.NearestRank(s.longest, 95))
		fmt.Fprintf(w, "children per rollout: mean %.2f; sequences: %d\n", float64(s.children)/float64(s.n), s.sequences)
	}
}
