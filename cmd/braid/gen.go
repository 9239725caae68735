package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

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
		n     int
		seed  uint64
		split string
		out   string
	)
	cmd := &cobra.Command{
		Use:   "problems",
		Short: "Generate Countdown problems as JSONL",
		Long: `Generate distinct Countdown problems from the public APR / Stream-of-Search
distribution: a target uniform in 10..100, four numbers uniform in 1..99
redrawn until the target can be reached using all four.

Every problem belongs to one split by a hash of its sorted numbers and target
(one in ten is test), so train and test sets are disjoint whatever their seeds
and sizes. Output is deterministic per seed, and the first N problems for a
seed are the same whatever N is. One {"numbers":[...],"target":T} per line.`,
		Example: `  braid gen problems --n 1000 --split test --seed 1 > test.jsonl
  braid gen problems --n 100000 --seed 7 --out train-problems.jsonl`,
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
			for p := range countdown.Problems(seed, sp) {
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
	f.StringVar(&split, "split", "train", "train or test")
	f.StringVarP(&out, "out", "o", "", "output file (default standard output)")
	return cmd
}

func newGenTracesCmd() *cobra.Command {
	var (
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
	)
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format == "" {
				return usageErrorf("--format is required: serial, parallel or direct")
			}
			mode, err := countdown.ParseMode(format)
			if err != nil {
				return usageErrorf("--format: %v", err)
			}
			cfg.Format = mode
			if err := cfg.Validate(); err != nil {
				return usageErrorf("%v", err)
			}
			if n < 0 {
				return usageErrorf("--n must not be negative, got %d", n)
			}
			var problems []countdown.Problem
			if input != "" {
				problems, err = readProblems(input, cmd.InOrStdin())
				if err != nil {
					return err
				}
				if n > 0 && n < len(problems) {
					problems = problems[:n]
				}
			} else {
				if n == 0 {
					return usageErrorf("--n must be positive when problems are generated (no --input)")
				}
				sp, err := countdown.ParseSplit(split)
				if err != nil {
					return usageErrorf("--split: %v", err)
				}
				for p := range countdown.Problems(seed, sp) {
					if err := cmd.Context().Err(); err != nil {
						return err
					}
					if problems = append(problems, p); len(problems) == n {
						break
					}
				}
			}
			o, err := openOutput(out, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			defer o.abort()

			bar := newProgress(cmd.ErrOrStderr(), len(problems), "traces")
			var st traceStats
			start := time.Now()
			err = parallel.Ordered(cmd.Context(), len(problems), workers,
				func(i int) (encodedTrace, error) {
					rec, err := cfg.Generate(problems[i], seed, i)
					if err != nil {
						return encodedTrace{}, err
					}
					sum := summarise(rec)
					if noTree {
						rec.Tree = nil
					}
					line, err := jsonLine(rec)
					return encodedTrace{line, sum}, err
				},
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
			if !quiet {
				st.print(cmd.ErrOrStderr(), mode, time.Since(start))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "", "serial, parallel or direct (required)")
	f.IntVar(&n, "n", 0, "number of problems (with --input: at most this many; 0 means all)")
	f.Uint64Var(&seed, "seed", 1, "random seed for problems and searches")
	f.StringVar(&split, "split", "train", "train or test, when problems are generated")
	f.StringVar(&input, "input", "", "read problems from this JSONL file ('-' for standard input)")
	f.StringVarP(&out, "out", "o", "", "output file (default standard output)")
	f.IntVar(&workers, "workers", 0, "goroutines generating traces (0: one per CPU)")
	f.IntVar(&cfg.BeamMin, "beam-min", 0, "smallest beam drawn (0: 1)")
	f.IntVar(&cfg.BeamMax, "beam-max", 0, "largest beam drawn (0: 5 serial, 10 parallel)")
	f.IntVar(&cfg.SubBeamMax, "sub-beam-max", 0, "largest child beam drawn, parallel (0: 15)")
	f.StringVar(&cfg.Heuristic, "heuristic", "mult", "mult, sum or random (per problem)")
	f.StringVar(&cfg.Prune, "prune", "beam", "serial pruning: beam, threshold or random (per problem)")
	f.Float64Var(&cfg.Promising, "promising", 0, "sub-search probability (0: 0.5 serial, 0.9 parallel; negative: never)")
	f.BoolVar(&cfg.ModeHeader, "mode-header", false, "start each root sequence with braid's \"Mode: ...\" line")
	f.BoolVar(&noTree, "no-tree", false, "leave the rollout tree out of parallel records")
	f.BoolVarP(&quiet, "quiet", "q", false, "no summary on stderr")
	return cmd
}

// openInput opens the file at path, or stdin for "-", with the name errors
// should give it; closeInput releases it.
func openInput(path string, stdin io.Reader) (r io.Reader, name string, closeInput func(), err error) {
	if path == "-" {
		return stdin, "standard input", func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "", nil, err
	}
	return f, path, func() { f.Close() }, nil
}

// readProblems reads a JSONL problem file; a bad line is an error naming it.
func readProblems(path string, stdin io.Reader) ([]countdown.Problem, error) {
	r, name, closeInput, err := openInput(path, stdin)
	if err != nil {
		return nil, err
	}
	defer closeInput()
	var out []countdown.Problem
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		p, err := countdown.ParseProblemJSON([]byte(text))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no problems", name)
	}
	return out, nil
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
	textLen, totalLen, longest     []int
}

func (s *traceStats) add(t traceSummary) {
	s.n++
	if t.solved {
		s.solved++
	}
	s.children += t.children
	s.sequences += t.sequences
	s.textLen = append(s.textLen, t.text)
	s.totalLen = append(s.totalLen, t.total)
	s.longest = append(s.longest, t.longest)
}

func (s *traceStats) print(w io.Writer, mode countdown.Mode, elapsed time.Duration) {
	if s.n == 0 {
		return
	}
	rate := float64(s.solved) / float64(s.n)
	fmt.Fprintf(w, "%d %s traces in %.2fs (%.0f traces/s)\n", s.n, mode, elapsed.Seconds(), float64(s.n)/elapsed.Seconds())
	fmt.Fprintf(w, "reached the goal: %d/%d = %.1f%%\n", s.solved, s.n, 100*rate)
	fmt.Fprintf(w, "text length (chars): mean %.0f, p95 %d\n", mean(s.textLen), percentile(s.textLen, 0.95))
	if mode == countdown.ModeParallel {
		fmt.Fprintf(w, "all sequences of a rollout (chars): mean %.0f, p95 %d\n", mean(s.totalLen), percentile(s.totalLen, 0.95))
		fmt.Fprintf(w, "longest sequence of a rollout (chars): mean %.0f, p95 %d\n", mean(s.longest), percentile(s.longest, 0.95))
		fmt.Fprintf(w, "children per rollout: mean %.2f; sequences: %d\n", float64(s.children)/float64(s.n), s.sequences)
	}
}

func mean(xs []int) float64 {
	t := 0
	for _, x := range xs {
		t += x
	}
	return float64(t) / float64(len(xs))
}

// percentile is the nearest-rank percentile.
func percentile(xs []int, q float64) int {
	s := slices.Clone(xs)
	slices.Sort(s)
	k := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(k, len(s)-1))]
}
