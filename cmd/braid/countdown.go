package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/braid-dev/braid/task/countdown"
	"github.com/spf13/cobra"
)

func newCountdownCmd() *cobra.Command {
	cd := &cobra.Command{
		Use:   "countdown",
		Short: "The Countdown task: solve, verify answers and traces",
		Long: `Countdown: reach the target using each given number exactly once with
+, *, larger-minus-smaller and exact division larger/smaller.`,
		Example: `  braid countdown solve 27 22 26 31 53
  braid countdown verify 27 22 26 31 53 '26+(53/(31+22))'`,
	}
	cd.AddCommand(newSolveCmd(), newVerifyCmd())
	return cd
}

func newSolveCmd() *cobra.Command {
	var (
		all   bool
		limit int
		trace string
		seed  uint64
		beam  int
	)
	cmd := &cobra.Command{
		Use:   "solve TARGET N1 N2 N3 N4",
		Short: "Solve a problem with the exhaustive solver, or show a search trace",
		Long: `Solve a Countdown problem with the exhaustive symbolic solver: print one
solution (or, with --all, every distinct one), or say that none exists, which
the exhaustive search proves. Exit status 1 when there is no solution.

With --trace serial or --trace parallel, run the symbolic search-trace
generator instead and print its trace: for parallel, every thread's calls
(the root's spawn, each child's search, the root resumed with the join).`,
		Example: `  braid countdown solve 27 22 26 31 53
  braid countdown solve --all 24 4 9 3 1
  braid countdown solve --trace parallel --seed 3 27 22 26 31 53`,
		Args: problemArgs(countdown.MinCount+1, countdown.MaxCount+1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := parseProblemArgs(args)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			switch {
			case f.Changed("limit") && !all:
				return usageErrorf("--limit needs --all")
			case limit < 0:
				return usageErrorf("--limit must not be negative, got %d", limit)
			case (f.Changed("beam") || f.Changed("seed")) && trace == "":
				return usageErrorf("--beam and --seed apply to --trace")
			case all && trace != "":
				return usageErrorf("--all and --trace do not go together")
			}
			out := cmd.OutOrStdout()
			if trace != "" {
				mode, err := countdown.ParseMode(trace)
				if err != nil {
					return usageErrorf("--trace: %v", err)
				}
				cfg := countdown.TraceConfig{Format: mode, BeamMin: beam, BeamMax: beam}
				if err := cfg.Validate(); err != nil {
					return usageErrorf("%v", err)
				}
				return printTrace(out, p, cfg, seed)
			}
			var sols []countdown.Solution
			if all {
				res := countdown.SolveAll(p, limit)
				sols = res.Solutions
				if len(sols) == 0 {
					fmt.Fprintf(out, "no solution: the exhaustive search of %d states finds none for %s\n", res.States, p)
				}
			} else if sol, ok := countdown.Solve(p); ok {
				sols = []countdown.Solution{sol}
			} else {
				fmt.Fprintf(out, "no solution: the exhaustive search finds none for %s\n", p)
			}
			if len(sols) == 0 {
				return &exitError{code: 1}
			}
			for _, sol := range sols {
				e, err := countdown.PathExpression(p.Numbers, sol)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "%s = %d\n", e, p.Target)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&all, "all", false, "print every distinct solution")
	f.IntVar(&limit, "limit", 0, "with --all, print at most this many (0: no limit)")
	f.StringVar(&trace, "trace", "", "print a search trace: serial, parallel or direct")
	f.Uint64Var(&seed, "seed", 1, "random seed of the traced search")
	f.IntVar(&beam, "beam", 0, "beam of the traced search (0: drawn as in 'gen traces')")
	return cmd
}

func printTrace(w io.Writer, p countdown.Problem, cfg countdown.TraceConfig, seed uint64) error {
	rec, err := cfg.Generate(p, seed, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "# %s search on %s, %+v\n", cfg.Format, p, rec.Search)
	for _, s := range rec.Sequences {
		if cfg.Format == countdown.ModeParallel {
			role := "root"
			if s.Level > 0 {
				role = fmt.Sprintf("child at level %d", s.Level)
			}
			fmt.Fprintf(w, "\n## thread #%s (%s), call %d\n", s.Thread, role, s.Call+1)
		}
		fmt.Fprint(w, s.Prompt, s.Completion)
	}
	fmt.Fprintln(w)
	if rec.Solved {
		if err := countdown.VerifyAnswer(p, rec.Answer); err != nil {
			return fmt.Errorf("the search produced a wrong answer %s: %w", rec.Answer, err)
		}
		fmt.Fprintf(w, "answer: %s = %d (verified)", rec.Answer, p.Target)
		if rec.Children > 0 {
			fmt.Fprintf(w, "; %d child threads", rec.Children)
		}
		fmt.Fprintln(w)
		return nil
	}
	if sol, ok := countdown.Solve(p); ok {
		e, _ := countdown.PathExpression(p.Numbers, sol)
		fmt.Fprintf(w, "this search did not reach the goal; the exhaustive solver finds %s = %d\n", e, p.Target)
		return nil
	}
	fmt.Fprintln(w, "no solution exists")
	return &exitError{code: 1}
}

func newVerifyCmd() *cobra.Command {
	var (
		traceFile       string
		allowUnfinished bool
	)
	cmd := &cobra.Command{
		Use:   "verify TARGET N1 N2 N3 N4 EXPR",
		Short: "Check an answer expression, or a whole search trace",
		Long: `Check an answer to a Countdown problem: every number used exactly once, only
+ - * / and parentheses, and an exact value equal to the target. Exit status
0 and a confirmation when it is right; 1 and the reason when it is not.

With --trace FILE ('-' for standard input), check a serialized search trace
instead, line by line: each operation's arithmetic and resulting numbers,
each generated node, each move, each spawn and join, and Goal Reached only
when the state is exactly [target]. The first wrong line is reported. A trace
must be finished (reach the goal, find no solution, or end a parent call with
a spawn block) unless --allow-unfinished is given.`,
		Example: `  braid countdown verify 27 22 26 31 53 '26+31/(53-22)'
  braid countdown verify --trace trace.txt 27 22 26 31 53`,
		Args: func(c *cobra.Command, args []string) error {
			extra := 1
			if traceFile != "" {
				extra = 0
			}
			return problemArgs(countdown.MinCount+1+extra, countdown.MaxCount+1+extra)(c, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if traceFile != "" {
				p, err := parseProblemArgs(args)
				if err != nil {
					return err
				}
				return verifyTraceFile(out, cmd.InOrStdin(), p, traceFile, allowUnfinished)
			}
			expr := args[len(args)-1]
			if _, err := strconv.Atoi(expr); err == nil {
				// A lone number can never use every input: the answer was left out.
				return usageErrorf("missing EXPR: the last argument %s is a number; give the answer expression after the numbers", expr)
			}
			p, err := parseProblemArgs(args[:len(args)-1])
			if err != nil {
				return err
			}
			if err := countdown.VerifyAnswer(p, expr); err != nil {
				fmt.Fprintf(out, "wrong: %s: %v\n", expr, err)
				return &exitError{code: 1}
			}
			fmt.Fprintf(out, "correct: %s = %d, using %s once each\n", expr, p.Target, strings.Trim(fmt.Sprint(p.Numbers), "[]"))
			return nil
		},
	}
	cmd.Flags().StringVar(&traceFile, "trace", "", "check the search trace in this file ('-' for standard input) instead of an expression")
	cmd.Flags().BoolVar(&allowUnfinished, "allow-unfinished", false, "with --trace, accept a trace that stops mid-search")
	return cmd
}

func verifyTraceFile(w io.Writer, stdin io.Reader, p countdown.Problem, path string, allowUnfinished bool) error {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return fmt.Errorf("read trace: %w", err)
	}
	t, err := countdown.VerifyTrace(p, string(data))
	var te *countdown.TraceError
	if errors.As(err, &te) {
		fmt.Fprintf(w, "wrong: %v\n", te)
		return &exitError{code: 1}
	}
	if err != nil {
		return err
	}
	if t.End == countdown.EndUnfinished && !allowUnfinished {
		fmt.Fprintf(w, "unfinished: the trace stops mid-search after line %d (--allow-unfinished accepts that)\n", t.Lines)
		return &exitError{code: 1}
	}
	fmt.Fprintf(w, "valid trace: %d lines, %d nodes, %d spawns, %d joins, ends with %s", t.Lines, len(t.Nodes), len(t.Spawns), len(t.Joins), t.End)
	if t.Solved() {
		e, err := countdown.PathExpression(p.Numbers, t.Solution)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "; solution %s = %d", e, p.Target)
	}
	fmt.Fprintln(w)
	return nil
}
