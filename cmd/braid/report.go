package main

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/braid-dev/braid/internal/atomicfile"
	"github.com/braid-dev/braid/report"
	"github.com/braid-dev/braid/store"
)

func newReportCmd() *cobra.Command {
	var dbPath, out, md string
	var runs []string
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Write an HTML page of charts and a Markdown summary of evaluation runs",
		Long: `Read evaluation runs from the database (every run, or those named by --run)
and write one self-contained HTML page (inline SVG charts; no network needed
to view it) and a Markdown summary beside it.

The page charts accuracy against total tokens and against latency with 95%
intervals, pass@k curves, token distributions per strategy, robustness
(clean against perturbed, from braid eval --perturb) and overthinking (the
share of tokens spent after the answer was found; accuracy under token
caps), each with named axes and units.`,
		Example: `  braid report --out report.html
  braid report --db runs.db --run 3fa2c1d09e7b --run big --out report.html --md summary.md
  braid report --db postgres://braid@db.local/braid --run big --out big.html`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("--out FILE.html is required")
			}
			if md == "" {
				md = strings.TrimSuffix(out, ".html") + ".md"
			}
			if md == out {
				return usageErrorf("--md %s would overwrite the page", md)
			}
			if err := existingDB(dbPath); dbPath != "" && err != nil {
				return fmt.Errorf("--db %s: %w (braid eval writes it)", dbPath, err)
			}
			st, err := store.Open(cmd.Context(), dbPath)
			if err != nil {
				return err
			}
			defer st.Close()
			rs, err := report.Load(cmd.Context(), st, runs...)
			if err != nil {
				return err
			}
			var page, summary bytes.Buffer
			if err := report.HTML(&page, rs); err != nil {
				return err
			}
			if err := report.Markdown(&summary, rs); err != nil {
				return err
			}
			// Whole files or none: a failed run leaves an earlier report as it was.
			if err := atomicfile.WriteFile(out, page.Bytes()); err != nil {
				return err
			}
			if err := atomicfile.WriteFile(md, summary.Bytes()); err != nil {
				return err
			}
			noun := "runs"
			if len(rs) == 1 {
				noun = "run"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s and %s from %d %s\n", out, md, len(rs), noun)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dbPath, "db", "braid.db", "the database braid eval wrote: a SQLite file or a postgres:// address")
	f.StringSliceVar(&runs, "run", nil, "runs to report (repeatable; default: every run in the database)")
	f.StringVar(&out, "out", "", "the HTML page to write")
	f.StringVar(&md, "md", "", "the Markdown summary to write (default: --out with .md)")
	return cmd
}
