// Command braid is a parallel reasoning engine: it forks a language model's
// reasoning into branches, runs them concurrently, joins them into one
// verified answer, and measures the result honestly.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code; its message, if any, is printed.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal asks commands to stop cleanly; restoring the
		// default handling lets a second one kill at once.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the CLI and returns the exit code: 0 success, 1 failure (a
// wrong answer, a failed command), 2 bad usage, 130 interrupted.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var prof cpuProfile
	root := newRootCmd(&prof)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	// Stopped here rather than in a post-run hook, which cobra skips when a
	// command fails: an evaluation cut short by Ctrl-C is worth profiling too.
	if perr := prof.stop(); perr != nil && err == nil {
		err = perr
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		fmt.Fprintln(stderr, "braid: interrupted")
		return 130
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, "braid:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "braid:", err)
	return 1
}

// cpuProfile is the CPU profile that --cpuprofile asks for.
type cpuProfile struct {
	path string
	f    *os.File
}

func (p *cpuProfile) start() error {
	if p.path == "" {
		return nil
	}
	f, err := os.Create(p.path)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("cpu profile %s: %w", p.path, err)
	}
	p.f = f
	return nil
}

func (p *cpuProfile) stop() error {
	if p.f == nil {
		return nil
	}
	pprof.StopCPUProfile()
	err := p.f.Close()
	p.f = nil
	if err != nil {
		return fmt.Errorf("cpu profile %s: %w", p.path, err)
	}
	return nil
}

func newRootCmd(prof *cpuProfile) *cobra.Command {
	root := &cobra.Command{
		Use:   "braid",
		Short: "braid makes language models reason wider: branch, run concurrently, join, verify",
		Long: `braid is a parallel reasoning engine. It forks a model's reasoning into
branches, runs them concurrently, joins them into one verified answer, and
measures the result with honest statistics.

It ships its own Countdown reasoning model, embedded in this binary: 'braid
solve' runs it serially, in parallel (the model spawns child searches), or
directly, with no download and no GPU. Any OpenAI-compatible server can stand
in for it (--backend), for Countdown or free-text math. Around the model:
evaluation with confidence intervals that survives kill -9, an
OpenAI-compatible server that reasons in parallel, and trainers (supervised
and GRPO).`,
		Example: `  braid solve 27 22 26 31 53
  braid solve --strategy serial --env fill 27 22 26 31 53
  braid eval --n 500 --strategies serial,apr --db eval.db
  braid serve
  braid countdown verify 27 22 26 31 53 '26+31/(53-22)'
  braid gen traces --format parallel --n 10000 --seed 1 --out train.jsonl`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&prof.path, "cpuprofile", "", "write a CPU profile of the command to `FILE` (read it with 'go tool pprof')")
	root.PersistentPreRunE = func(*cobra.Command, []string) error { return prof.start() }
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErrorf("%v (see '%s --help')", err, c.CommandPath())
	})
	root.AddCommand(newGenCmd(), newCountdownCmd(), newModelSolveCmd(), newEvalCmd(), newCompareCmd(), newMonitorCmd(), newReportCmd(), newServeCmd(), newGenerateCmd(), newTrainCmd(), newBenchCmd(), newSoakCmd(), newExportCmd())
	return root
}

// version reports the module version and, for a build from a checkout, the
// commit it was built from.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
		if s.Key == "vcs.modified" && s.Value == "true" {
			v += " (modified)"
		}
	}
	return v
}
