package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/braid-dev/braid/eval"
	"github.com/braid-dev/braid/store"
)

func newCompareCmd() *cobra.Command {
	var dbA, dbB string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "compare RUN/STRATEGY RUN/STRATEGY",
		Short: "Compare two evaluation runs on the problems they share: paired difference with a 95% interval",
		Long: `Compare a strategy's samples in one evaluation run with a strategy's samples
in another (two models, two checkpoints, two configurations), paired by
problem: the problems are matched by content, so runs of different sizes
compare on the problems both ran. Prints each side's accuracy with its 95%
interval, the paired difference (first minus second) with its interval and
p-value, the mean total tokens, critical-path tokens, threads and wall
time of a sample of each, and the ratios of the two sides' mean critical
paths, total tokens and wall times with their paired intervals (a
parallel search's latency against another's). A sample's wall time
depends on what ran beside it: compare runs taken alike (braid eval
--concurrent 1 measures each problem alone).

Each side is RUN/STRATEGY: a run id as braid eval --run named it (braid
report lists them) and one of its strategies. The second side's run may be
in another database (--db-b), such as a GRPO run's evaluations.`,
		Example: `  braid compare --db runs/eval.db rl-greedy/apr greedy-constrain/apr
  braid compare --db runs/eval.db greedy-constrain/apr greedy-constrain/serial
  braid compare --db runs/grpo/eval.db --db-b runs/eval.db step-100/serial greedy-constrain/serial --json`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dbB == "" {
				dbB = dbA
			}
			a, err := loadSide(cmd, dbA, args[0])
			if err != nil {
				return err
			}
			b, err := loadSide(cmd, dbB, args[1])
			if err != nil {
				return err
			}
			c, err := eval.Compare(args[0], a, args[1], b)
			if errors.Is(err, eval.ErrNoSharedProblems) {
				return fmt.Errorf("%s and %s ran no problem in common (%d and %d problems): compare runs drawn with the same --problem-seed or --input", args[0], args[1], c.OnlyA, c.OnlyB)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), c)
			}
			printComparison(cmd.OutOrStdout(), c)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dbA, "db", "braid.db", "the database of the first run: a SQLite file or a postgres:// address")
	f.StringVar(&dbB, "db-b", "", "the database of the second run (default: --db)")
	f.BoolVar(&asJSON, "json", false, "print the comparison as JSON")
	return cmd
}

// existingDB says why the database at path cannot be read from, or nil:
// a SQLite file must exist (opening one would create it empty); a
// postgres:// address is checked by connecting.
func existingDB(path string) error {
	if strings.Contains(path, "://") {
		return nil
	}
	_, err := os.Stat(path)
	return err
}

// loadSide reads the samples of side "RUN/STRATEGY" from the database at
// path.
func loadSide(cmd *cobra.Command, path, side string) ([]store.Sample, error) {
	// Strategies hold no slash; a run id might.
	i := strings.LastIndex(side, "/")
	if i <= 0 || i == len(side)-1 {
		return nil, usageErrorf("%q: want RUN/STRATEGY, such as greedy-constrain/apr", side)
	}
	run, strategy := side[:i], side[i+1:]
	if err := existingDB(path); err != nil {
		return nil, fmt.Errorf("database %s: %w (braid eval writes it)", path, err)
	}
	st, err := store.Open(cmd.Context(), path)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	path = store.Redact(path) // from here on, only in messages
	if _, err := st.Runs(cmd.Context(), run); err != nil {
		all, lerr := st.Runs(cmd.Context())
		if lerr != nil || len(all) == 0 {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var ids []string
		for _, r := range all {
			ids = append(ids, r.ID)
		}
		return nil, fmt.Errorf("%s: %w; it has %s", path, err, strings.Join(ids, ", "))
	}
	all, err := st.Samples(cmd.Context(), run)
	if err != nil {
		return nil, fmt.Errorf("%s: run %s: %w", path, run, err)
	}
	var out []store.Sample
	for _, s := range all {
		if s.Strategy == strategy {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("run %s in %s has no samples of strategy %q; it has %s", run, path, strategy, strings.Join(eval.Strategies(all), ", "))
	}
	return out, nil
}

func printComparison(out io.Writer, c eval.Comparison) {
	fmt.Fprintf(out, "%d problems in both", c.N)
	if c.OnlyA+c.OnlyB > 0 {
		fmt.Fprintf(out, " (%d only in %s, %d only in %s, left out)", c.OnlyA, c.A, c.OnlyB, c.B)
	}
	fmt.Fprintln(out)
	side := func(name string, acc float64, ci []float64, tok, crit, thr, lat float64) {
		fmt.Fprintf(out, "%s: %.1f%% (95%% CI %.1f–%.1f%%), %.0f tokens, critical path %.0f, %.1f threads, %.1f s per sample\n",
			name, 100*acc, 100*ci[0], 100*ci[1], tok, crit, thr, lat/1000)
	}
	side(c.A, c.AccuracyA, c.CI95A, c.TotalTokensA, c.CriticalTokensA, c.ThreadsA, c.LatencyA)
	side(c.B, c.AccuracyB, c.CI95B, c.TotalTokensB, c.CriticalTokensB, c.ThreadsB, c.LatencyB)
	fmt.Fprintln(out, c.Line())
	ratio := func(what string, r []float64) {
		if len(r) == 3 {
			fmt.Fprintf(out, "%s, %s over %s: %.3f (95%% CI %.3f–%.3f, paired by problem)\n", what, c.A, c.B, r[0], r[1], r[2])
		}
	}
	ratio("critical path", c.CriticalRatio)
	ratio("total tokens", c.TokensRatio)
	ratio("wall time per sample", c.LatencyRatio)
}
