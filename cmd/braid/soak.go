package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/braid-dev/braid/internal/soak"
)

// soakFlags are the flags of 'soak'.
type soakFlags struct {
	o                    soak.Options
	target, serveFlags   string
	asJSON               bool
	maxSlowdown, maxGrow float64
}

func newSoakCmd() *cobra.Command {
	var fl soakFlags
	cmd := &cobra.Command{
		Use:   "soak",
		Short: "Soak braid serve on loopback with well-formed, malformed and hostile clients, then check it held up",
		Long: `Start braid serve as a child process on a loopback port (or, with --url,
use one already running on this machine), then:

 1. baseline: every well-formed kind of request once, then a small direct
    request alone, sequentially, 30 times (its latency alone), then the
    server's memory (RSS);
 2. load, for --duration: --clients clients each loop over a seeded random
    mix of well-formed chat (apr, serial, direct; streamed and not) and
    /v1/completions requests, malformed JSON, fields of the wrong type,
    unknown models, hostile numbers, 2 MiB bodies, streams abandoned after
    their first chunk, trace reads (some abandoned), /healthz and /metrics;
    one client in 8 more sends bodies that stall. The middle third is the
    flood's: the mix waits while one client at a time sends --flood
    requests and a probe client measures the small request's latency
    again;
 3. after the load: a bounded wait for the server to go idle, --settle for
    it to let go of what it holds only while busy, then its memory again.

A line of progress goes to stderr every 10 s. The checks at the end, each
PASS or FAIL with its numbers: the server's stderr shows no panic, fatal
error, stack dump or data race, and no response body holds a stack trace;
every well-formed request is answered 200 (429s are counted apart, and
waited out as their Retry-After says); every malformed one gets a 4xx
(hostile numbers: anything but a 5xx; 2 MiB bodies: 413); memory after
the load is within --max-memory-growth of the start; the probe's p99
during the flood is within --max-slowdown of its p99 alone; the server is
idle after the load. Any failed check exits 1.

braid soak talks only to loopback addresses: it refuses any other --url,
and every connection it makes is checked to be one.`,
		Example: `  braid soak --duration 60s
  braid soak --duration 10m --clients 32 --serve-flags "--per-client 64" --json
  braid soak --url http://127.0.0.1:8080 --duration 2m --flood vote:k=64`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error { return fl.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&fl.target, "url", "", "soak the server already running at this loopback `URL` (http://127.0.0.1:PORT) instead of starting one")
	f.StringVar(&fl.serveFlags, "serve-flags", "", "more flags for the braid serve that soak starts, space-separated (\"--per-client 64 --max-body 1048576\")")
	f.StringVar(&fl.o.APIKey, "api-key", "", "the server's bearer token (default $BRAID_API_KEY, which a started server reads too)")
	f.DurationVar(&fl.o.Duration, "duration", 10*time.Minute, "how long the load runs")
	f.IntVar(&fl.o.Clients, "clients", 32, "concurrent clients during the load")
	f.Uint64Var(&fl.o.Seed, "seed", 1, "seeds the request mix and the problems")
	f.StringVar(&fl.o.Flood, "flood", "vote:k=1024", "the strategy of the flood's requests (sent as STRATEGY/MODEL)")
	f.DurationVar(&fl.o.Timeout, "timeout", 2*time.Minute, "most time a request may take; a well-formed one that takes longer fails")
	f.DurationVar(&fl.o.Settle, "settle", 30*time.Second, "after the load, how long to wait before reading memory (the server drops its KV cache after --kv-idle-release, 10 s)")
	f.DurationVar(&fl.o.SlowWait, "slow-body-wait", 40*time.Second, "how long a stalled body waits for the server to cut it off before the client gives up")
	f.Float64Var(&fl.maxSlowdown, "max-slowdown", 5, "most the probe's p99 may grow during the flood, as a multiple of its p99 alone")
	f.Float64Var(&fl.maxGrow, "max-memory-growth", 20, "most the server's RSS may grow over the load, in percent")
	f.BoolVar(&fl.asJSON, "json", false, "print the report as JSON")
	return cmd
}

func (fl *soakFlags) run(cmd *cobra.Command) error {
	o := fl.o
	switch {
	case o.Duration <= 0 || o.Timeout <= 0 || o.SlowWait <= 0 || o.Settle < 0:
		return usageErrorf("--duration, --timeout and --slow-body-wait must be positive, --settle at least 0")
	case o.Clients <= 0 || o.Clients > 4096:
		return usageErrorf("--clients %d: want 1..4096", o.Clients)
	case fl.maxSlowdown < 1 || fl.maxGrow < 0:
		return usageErrorf("--max-slowdown must be at least 1 and --max-memory-growth at least 0")
	case o.Flood == "" || strings.Contains(o.Flood, "/"):
		return usageErrorf("--flood %q: want a strategy, such as vote:k=1024 (the model's name is added)", o.Flood)
	case fl.target != "" && fl.serveFlags != "":
		return usageErrorf("--serve-flags are for the server braid soak starts; with --url the server is already running")
	}
	if o.APIKey == "" {
		o.APIKey = os.Getenv("BRAID_API_KEY")
	}
	o.Progress, o.Every = cmd.ErrOrStderr(), 10*time.Second
	ctx := cmd.Context()
	var child *soak.Server
	if fl.target != "" {
		base, err := soak.LoopbackBase(fl.target)
		if err != nil {
			return usageErrorf("--url: %v", err)
		}
		o.Base = base
	} else {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("soak: find braid: %w", err)
		}
		child, err = soak.StartServe(ctx, exe, strings.Fields(fl.serveFlags))
		if err != nil {
			return err
		}
		defer child.Stop()
		o.Base, o.PID = child.Base, child.PID
		fmt.Fprintf(cmd.ErrOrStderr(), "soak: braid serve %s on %s (pid %d)\n", strings.Join(child.Args, " "), o.Base, o.PID)
	}
	rep, err := soak.Run(ctx, o)
	var crash []string
	if child != nil {
		// Stopped before judging, so a panic on the way out counts.
		crash = child.Stop()
	}
	if err != nil {
		return err
	}
	rep.Judge(child != nil, crash, fl.maxSlowdown, fl.maxGrow/100)
	if fl.asJSON {
		err = printJSON(cmd.OutOrStdout(), rep)
	} else {
		err = rep.WriteText(cmd.OutOrStdout())
	}
	if err != nil {
		return err
	}
	failed := 0
	for _, c := range rep.Checks {
		if c.Result == "FAIL" {
			failed++
		}
	}
	if failed > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("soak: %d of %d checks failed", failed, len(rep.Checks))}
	}
	return nil
}
