package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/braid-dev/braid/eval/stats"
	"github.com/braid-dev/braid/task/countdown"
)

func newSoakCmd() *cobra.Command {
	var (
		o                    soakOptions
		target, serveFlags   string
		asJSON               bool
		maxSlowdown, maxGrow float64
	)
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case o.duration <= 0 || o.timeout <= 0 || o.slowWait <= 0 || o.settle < 0:
				return usageErrorf("--duration, --timeout and --slow-body-wait must be positive, --settle at least 0")
			case o.clients <= 0 || o.clients > 4096:
				return usageErrorf("--clients %d: want 1..4096", o.clients)
			case maxSlowdown < 1 || maxGrow < 0:
				return usageErrorf("--max-slowdown must be at least 1 and --max-memory-growth at least 0")
			case o.flood == "" || strings.Contains(o.flood, "/"):
				return usageErrorf("--flood %q: want a strategy, such as vote:k=1024 (the model's name is added)", o.flood)
			case target != "" && serveFlags != "":
				return usageErrorf("--serve-flags are for the server braid soak starts; with --url the server is already running")
			}
			if o.apiKey == "" {
				o.apiKey = os.Getenv("BRAID_API_KEY")
			}
			o.progress, o.every = cmd.ErrOrStderr(), 10*time.Second
			ctx := cmd.Context()
			var child *serveChild
			if target != "" {
				base, err := loopbackBase(target)
				if err != nil {
					return usageErrorf("--url: %v", err)
				}
				o.base = base
			} else {
				var err error
				child, err = startServe(ctx, strings.Fields(serveFlags))
				if err != nil {
					return err
				}
				defer child.stop()
				o.base, o.pid = child.base, child.cmd.Process.Pid
				fmt.Fprintf(cmd.ErrOrStderr(), "soak: braid serve %s on %s (pid %d)\n", strings.Join(child.cmd.Args[2:], " "), o.base, o.pid)
			}
			rep, err := soak(ctx, o)
			var crash []string
			if child != nil {
				// Stopped before judging, so a panic on the way out counts.
				crash = child.stop()
			}
			if err != nil {
				return err
			}
			rep.judge(child != nil, crash, maxSlowdown, maxGrow/100)
			if asJSON {
				err = printJSON(cmd.OutOrStdout(), rep)
			} else {
				err = rep.print(cmd.OutOrStdout())
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
		},
	}
	f := cmd.Flags()
	f.StringVar(&target, "url", "", "soak the server already running at this loopback `URL` (http://127.0.0.1:PORT) instead of starting one")
	f.StringVar(&serveFlags, "serve-flags", "", "more flags for the braid serve that soak starts, space-separated (\"--per-client 64 --max-body 1048576\")")
	f.StringVar(&o.apiKey, "api-key", "", "the server's bearer token (default $BRAID_API_KEY, which a started server reads too)")
	f.DurationVar(&o.duration, "duration", 10*time.Minute, "how long the load runs")
	f.IntVar(&o.clients, "clients", 32, "concurrent clients during the load")
	f.Uint64Var(&o.seed, "seed", 1, "seeds the request mix and the problems")
	f.StringVar(&o.flood, "flood", "vote:k=1024", "the strategy of the flood's requests (sent as STRATEGY/MODEL)")
	f.DurationVar(&o.timeout, "timeout", 2*time.Minute, "most time a request may take; a well-formed one that takes longer fails")
	f.DurationVar(&o.settle, "settle", 30*time.Second, "after the load, how long to wait before reading memory (the server drops its KV cache after --kv-idle-release, 10 s)")
	f.DurationVar(&o.slowWait, "slow-body-wait", 40*time.Second, "how long a stalled body waits for the server to cut it off before the client gives up")
	f.Float64Var(&maxSlowdown, "max-slowdown", 5, "most the probe's p99 may grow during the flood, as a multiple of its p99 alone")
	f.Float64Var(&maxGrow, "max-memory-growth", 20, "most the server's RSS may grow over the load, in percent")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// soakOptions configure one soak run.
type soakOptions struct {
	base     string // the server, http://HOST:PORT on loopback
	pid      int    // the server's process, for its RSS; 0: RSS from /metrics
	apiKey   string
	duration time.Duration
	clients  int
	seed     uint64
	flood    string        // the flood's strategy
	timeout  time.Duration // a request's bound
	slowWait time.Duration // a stalled body's bound
	settle   time.Duration // after the load, before memory is read
	progress io.Writer
	every    time.Duration // between progress lines
}

// These bound the phases that are not the load itself.
const (
	soakBaseline  = 30               // probe requests alone
	soakIdleWait  = 30 * time.Second // for the server to go idle after the load
	soakHugeBody  = 2 << 20
	soakBodyLimit = 16 << 20 // most of a response body soak reads
)

// soakReport is what a soak saw, and the checks it makes of it.
type soakReport struct {
	URL         string       `json:"url"`
	Model       string       `json:"model"`
	DurationS   float64      `json:"duration_s"`
	Clients     int          `json:"clients"`
	Seed        uint64       `json:"seed"`
	Flood       string       `json:"flood"`
	Kinds       []kindReport `json:"kinds"`
	Alone       latency      `json:"probe_alone"`
	DuringFlood latency      `json:"probe_during_flood"`
	// RSSStart and RSSEnd are the server's resident memory after the
	// warm-up and after the load; RSSFrom says where they were read.
	RSSStart int64  `json:"rss_start_bytes"`
	RSSEnd   int64  `json:"rss_end_bytes"`
	RSSFrom  string `json:"rss_from"`
	// Idle says whether the server had no request in flight within
	// IdleS seconds of the load's end.
	Idle  bool    `json:"idle"`
	IdleS float64 `json:"idle_after_s"`
	// Leaks counts response bodies that held a stack trace; Leak is the
	// first, cut short.
	Leaks    int         `json:"stack_traces_in_bodies"`
	Leak     string      `json:"stack_trace_example,omitempty"`
	Crash    []string    `json:"server_crash_lines,omitempty"`
	Failures []string    `json:"failures,omitempty"`
	Checks   []soakCheck `json:"checks"`
}

type kindReport struct {
	Kind        string         `json:"kind"`
	Check       string         `json:"check"`
	Requests    int            `json:"requests"`
	Good        int            `json:"good"`
	RateLimited int            `json:"rate_limited"`
	Bad         int            `json:"bad"`
	Outcomes    map[string]int `json:"outcomes"`
}

type latency struct {
	N     int     `json:"n"`
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
}

type soakCheck struct {
	Name   string `json:"name"`
	Result string `json:"result"` // PASS, FAIL, or SKIP where it could not be measured
	Detail string `json:"detail"`
}

// soak runs the baseline, the load and the after-load reads against the
// server at o.base.
func soak(ctx context.Context, o soakOptions) (*soakReport, error) {
	c := newSoakClient(o)
	defer c.tr.CloseIdleConnections()
	model, err := c.modelName(ctx)
	if err != nil {
		return nil, err
	}
	kinds := soakKinds(model, o.seed)
	t := newTally(kinds)
	r := &soakReport{URL: o.base, Model: model, DurationS: o.duration.Seconds(), Clients: o.clients, Seed: o.seed,
		Flood: o.flood + "/" + model}
	probe := call{method: "POST", path: "/v1/chat/completions",
		body: mustJSON(map[string]any{"model": "direct/" + model, "messages": []map[string]string{{"role": "user", "content": "27: 22 26 31 53"}}})}

	// Warm-up: each well-formed kind once, so that what the server
	// allocates on first use is in the memory read before the load.
	rng := rand.New(rand.NewPCG(o.seed, 1<<32))
	for _, k := range kinds {
		if k.warm {
			t.add(k.name, k.run(ctx, c, rng))
		}
	}
	var alone []float64
	for range soakBaseline {
		out := c.do(ctx, c.api, probe)
		t.add("probe alone", out)
		if out.label == "200" {
			alone = append(alone, ms(out.took))
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.RSSStart, r.RSSFrom, _ = c.rss(ctx)

	start := time.Now()
	end := start.Add(o.duration)
	floodFrom, floodTo := start.Add(o.duration/3), start.Add(2*o.duration/3)
	var during []float64
	var wg sync.WaitGroup
	for i := range o.clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(o.seed, uint64(i)))
			pick := weighted(kinds)
			for time.Now().Before(end) && ctx.Err() == nil {
				if now := time.Now(); !now.Before(floodFrom) && now.Before(floodTo) {
					// The flood has the server to itself and the probe, so
					// that the probe measures what one greedy request does
					// to a small one.
					sleepUntil(ctx, floodTo)
					continue
				}
				k := kinds[pick(rng)]
				out := k.run(ctx, c, rng)
				t.add(k.name, out)
				backoff(ctx, out)
			}
		})
	}
	// Stalled bodies come from a few clients of their own: in the mix,
	// each would hold its client for up to --slow-body-wait, and soon
	// every client would be stalled.
	stallCtx, stopStalls := context.WithDeadline(ctx, end)
	defer stopStalls()
	for range max(1, o.clients/8) {
		wg.Go(func() {
			for stallCtx.Err() == nil {
				t.add("slow body", c.slowBody(stallCtx, probe.body))
			}
		})
	}
	wg.Go(func() { c.flood(ctx, t, model, floodFrom, floodTo) })
	wg.Go(func() {
		if !sleepUntil(ctx, floodFrom) {
			return
		}
		for time.Now().Before(floodTo) && ctx.Err() == nil {
			out := c.do(ctx, c.api, probe)
			t.add("probe in flood", out)
			if out.label == "200" {
				during = append(during, ms(out.took)) // read after wg.Wait
			}
			backoff(ctx, out)
		}
	})
	loadDone := make(chan struct{})
	go func() { wg.Wait(); close(loadDone) }()
	tick := time.NewTicker(o.every)
	for running := true; running; {
		select {
		case <-loadDone:
			running = false
		case <-tick.C:
			c.progressLine(ctx, t, time.Since(start), o.duration)
		}
	}
	tick.Stop()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// After the load: nothing forced, only waited for.
	idleFrom := time.Now()
	for {
		n, err := c.metric(ctx, "braid_requests_in_flight")
		if err == nil && n == 0 {
			r.Idle = true
			break
		}
		if time.Since(idleFrom) > soakIdleWait || !sleepUntil(ctx, time.Now().Add(250*time.Millisecond)) {
			break
		}
	}
	r.IdleS = time.Since(idleFrom).Seconds()
	r.RSSEnd = c.settledRSS(ctx, idleFrom.Add(o.settle))
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	r.Alone, r.DuringFlood = latencyOf(alone), latencyOf(during)
	r.Kinds, r.Failures, r.Leaks, r.Leak = t.report()
	return r, nil
}

// judge makes the checks. watched says whether the server's stderr was
// read, and crash holds the lines of it that show a crash.
func (r *soakReport) judge(watched bool, crash []string, maxSlowdown, maxGrowth float64) {
	r.Crash = crash
	add := func(name string, pass bool, detail string) {
		res := "PASS"
		if !pass {
			res = "FAIL"
		}
		r.Checks = append(r.Checks, soakCheck{Name: name, Result: res, Detail: detail})
	}
	bodies := 0
	sum := map[string]*kindReport{}
	for _, k := range r.Kinds {
		bodies += k.Requests
		s := sum[k.Check]
		if s == nil {
			s = &kindReport{}
			sum[k.Check] = s
		}
		s.Requests, s.Good, s.RateLimited, s.Bad = s.Requests+k.Requests, s.Good+k.Good, s.RateLimited+k.RateLimited, s.Bad+k.Bad
	}
	stderr := "its stderr was not watched (--url)"
	if watched {
		stderr = "no panic, fatal error, stack dump or data race in its stderr"
		if len(crash) > 0 {
			stderr = fmt.Sprintf("its stderr shows a crash: %q", crash[0])
		}
	}
	detail := fmt.Sprintf("%s; %d of %d response bodies held a stack trace", stderr, r.Leaks, bodies)
	if r.Leak != "" {
		detail += fmt.Sprintf(" (the first: %q)", r.Leak)
	}
	add("no crash, no stack trace sent to a client", len(crash) == 0 && r.Leaks == 0, detail)

	w, m := sum["well-formed"], sum["malformed"]
	if w == nil {
		w = &kindReport{}
	}
	if m == nil {
		m = &kindReport{}
	}
	add("well-formed requests answered 200", w.Bad == 0,
		fmt.Sprintf("%d of %d good, %d failed, %d rate-limited (429, not counted)%s", w.Good, w.Requests, w.Bad, w.RateLimited, r.failuresOf("well-formed")))
	add("malformed requests refused with a 4xx", m.Bad == 0,
		fmt.Sprintf("%d of %d good, %d failed, %d rate-limited (429); %s%s", m.Good, m.Requests, m.Bad, m.RateLimited, r.slowBodies(), r.failuresOf("malformed")))

	name := fmt.Sprintf("memory after the load within %.0f%% of the start", 100*maxGrowth)
	switch {
	case r.RSSStart <= 0 || r.RSSEnd <= 0:
		r.Checks = append(r.Checks, soakCheck{Name: name, Result: "SKIP", Detail: "the server's RSS could not be read (no /proc and no process_resident_memory_bytes in /metrics)"})
	default:
		g := float64(r.RSSEnd)/float64(r.RSSStart) - 1
		add(name, g <= maxGrowth, fmt.Sprintf("%.0f MiB after the load, %.0f MiB at the start (%+.1f%%), from %s", mib(r.RSSEnd), mib(r.RSSStart), 100*g, r.RSSFrom))
	}

	name = fmt.Sprintf("probe p99 during the flood within %gx its p99 alone", maxSlowdown)
	switch {
	case r.Alone.N == 0:
		add(name, false, "no probe alone was answered 200")
	case r.DuringFlood.N == 0:
		add(name, false, fmt.Sprintf("no probe during the flood was answered 200 (alone: p99 %.0f ms)", r.Alone.P99MS))
	default:
		x := r.DuringFlood.P99MS / max(r.Alone.P99MS, 1)
		add(name, x <= maxSlowdown, fmt.Sprintf("%.0f ms during (n %d, p50 %.0f ms), %.0f ms alone (n %d, p50 %.0f ms): %.1fx",
			r.DuringFlood.P99MS, r.DuringFlood.N, r.DuringFlood.P50MS, r.Alone.P99MS, r.Alone.N, r.Alone.P50MS, x))
	}
	if r.Idle {
		add("server idle after the load", true, fmt.Sprintf("no request in flight %.1fs after the load", r.IdleS))
	} else {
		add("server idle after the load", false, fmt.Sprintf("requests still in flight %.0fs after the load", r.IdleS))
	}
}

// failuresOf lists the bad outcomes of a check's kinds.
func (r *soakReport) failuresOf(check string) string {
	var b strings.Builder
	for _, k := range r.Kinds {
		if k.Check != check || k.Bad == 0 {
			continue
		}
		fmt.Fprintf(&b, "; %s: %s", k.Kind, outcomes(k.Outcomes))
	}
	return b.String()
}

func (r *soakReport) slowBodies() string {
	for _, k := range r.Kinds {
		if k.Kind == "slow body" {
			return fmt.Sprintf("stalled bodies: %d cut off by the server, %d given up on by the client, %d stopped by the load's end",
				k.Good, k.Outcomes["gave up"], k.Outcomes["cancelled"])
		}
	}
	return ""
}

func (r *soakReport) print(w io.Writer) error {
	fmt.Fprintf(w, "braid soak of %s at %s: %s, %d clients, seed %d, flood %s in the middle third\n\n",
		r.Model, r.URL, time.Duration(r.DurationS*float64(time.Second)), r.Clients, r.Seed, r.Flood)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "kind\tcheck\trequests\tgood\t429\tbad\toutcomes")
	for _, k := range r.Kinds {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", k.Kind, k.Check, k.Requests, k.Good, k.RateLimited, k.Bad, outcomes(k.Outcomes))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "probe latency\tn\tp50 ms\tp99 ms")
	fmt.Fprintf(tw, "alone\t%d\t%.0f\t%.0f\n", r.Alone.N, r.Alone.P50MS, r.Alone.P99MS)
	fmt.Fprintf(tw, "during the flood\t%d\t%.0f\t%.0f\n", r.DuringFlood.N, r.DuringFlood.P50MS, r.DuringFlood.P99MS)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nmemory (RSS, from %s): %.0f MiB after the warm-up, %.0f MiB after the load\n", r.RSSFrom, mib(r.RSSStart), mib(r.RSSEnd))
	for _, f := range r.Failures {
		fmt.Fprintln(w, "failure:", f)
	}
	fmt.Fprintln(w)
	for _, c := range r.Checks {
		fmt.Fprintf(w, "%s  %s: %s\n", c.Result, c.Name, c.Detail)
	}
	return nil
}

// A verdict is what an outcome means for a kind of request.
type verdict int

const (
	good verdict = iota
	rateLimited
	neutral // neither good nor bad: a stalled body the client gave up on
	bad
)

// soakKind is one kind of request in the mix.
type soakKind struct {
	name   string
	check  string // which check it counts toward: well-formed or malformed
	weight int    // in the load's mix; 0: not in it
	warm   bool   // sent once in the warm-up
	run    func(ctx context.Context, c *soakClient, rng *rand.Rand) outcome
	judge  func(label string) verdict
}

// soakKinds is the load's mix over the model.
func soakKinds(model string, seed uint64) []soakKind {
	next, stop := iter.Pull(countdown.Problems(seed, countdown.Test))
	var problems []countdown.Problem
	for range 64 {
		p, _ := next()
		problems = append(problems, p)
	}
	stop()
	problem := func(rng *rand.Rand) countdown.Problem { return problems[rng.IntN(len(problems))] }
	chat := func(strategy string, stream bool) func(context.Context, *soakClient, *rand.Rand) outcome {
		return func(ctx context.Context, c *soakClient, rng *rand.Rand) outcome {
			req := map[string]any{"model": strategy + "/" + model, "stream": stream,
				"messages": []map[string]string{{"role": "user", "content": problem(rng).String()}}}
			if strategy != "direct" {
				// Bounded, so that 32 clients' searches finish on a few cores.
				req["max_tokens"] = 256
			}
			return c.do(ctx, c.api, call{method: "POST", path: "/v1/chat/completions", body: mustJSON(req), stream: stream})
		}
	}
	completion := func(stream bool) func(context.Context, *soakClient, *rand.Rand) outcome {
		return func(ctx context.Context, c *soakClient, rng *rand.Rand) outcome {
			req := map[string]any{"model": model, "prompt": countdown.RootPrompt(problem(rng), countdown.ModeSerial), "max_tokens": 16,
				"temperature": rng.IntN(2), "seed": rng.IntN(1000), "stream": stream}
			return c.do(ctx, c.api, call{method: "POST", path: "/v1/completions", body: mustJSON(req), stream: stream})
		}
	}
	get := func(path string) func(context.Context, *soakClient, *rand.Rand) outcome {
		return func(ctx context.Context, c *soakClient, _ *rand.Rand) outcome {
			return c.do(ctx, c.api, call{method: "GET", path: path})
		}
	}
	// variants sends one of a kind's bodies, chosen at random.
	variants := func(path string, bodies []string) func(context.Context, *soakClient, *rand.Rand) outcome {
		return func(ctx context.Context, c *soakClient, rng *rand.Rand) outcome {
			i := rng.IntN(len(bodies))
			o := c.do(ctx, c.api, call{method: "POST", path: path, body: []byte(bodies[i])})
			o.detail = fmt.Sprintf("body %q: %s", bodies[i], o.detail)
			return o
		}
	}
	msgs := `"messages":[{"role":"user","content":"27: 22 26 31 53"}]`
	direct := `"model":"direct/` + model + `",` + msgs
	huge := mustJSON(map[string]any{"model": "direct/" + model,
		"messages": []map[string]string{{"role": "user", "content": strings.Repeat("27: 22 26 31 53 ", soakHugeBody/16)}}})
	return []soakKind{
		{name: "chat apr", check: "well-formed", weight: 2, warm: true, run: chat("apr", false), judge: want("200")},
		{name: "chat apr stream", check: "well-formed", weight: 2, warm: true, run: chat("apr", true), judge: want("200")},
		{name: "chat serial", check: "well-formed", weight: 2, warm: true, run: chat("serial", false), judge: want("200")},
		{name: "chat serial stream", check: "well-formed", weight: 2, warm: true, run: chat("serial", true), judge: want("200")},
		{name: "chat direct", check: "well-formed", weight: 3, warm: true, run: chat("direct", false), judge: want("200")},
		{name: "chat direct stream", check: "well-formed", weight: 3, warm: true, run: chat("direct", true), judge: want("200")},
		{name: "completions", check: "well-formed", weight: 2, warm: true, run: completion(false), judge: want("200")},
		{name: "completions stream", check: "well-formed", weight: 2, warm: true, run: completion(true), judge: want("200")},
		{name: "healthz", check: "well-formed", weight: 1, warm: true, run: get("/healthz"), judge: want("200")},
		{name: "metrics", check: "well-formed", weight: 1, warm: true, run: get("/metrics"), judge: want("200")},
		{name: "abandoned stream", check: "well-formed", weight: 3, run: func(ctx context.Context, c *soakClient, rng *rand.Rand) outcome {
			body := mustJSON(map[string]any{"model": "apr/" + model, "stream": true, "messages": []map[string]string{{"role": "user", "content": problem(rng).String()}}})
			return c.do(ctx, c.api, call{method: "POST", path: "/v1/chat/completions", body: body, stream: true, abandon: true})
		}, judge: want("abandoned")},
		{name: "trace", check: "well-formed", weight: 2, run: func(ctx context.Context, c *soakClient, rng *rand.Rand) outcome {
			return c.do(ctx, c.api, call{method: "GET", path: "/v1/traces/" + c.traceID(rng)})
		}, judge: want("200", "404")},
		{name: "trace events", check: "well-formed", weight: 2, run: func(ctx context.Context, c *soakClient, rng *rand.Rand) outcome {
			return c.do(ctx, c.api, call{method: "GET", path: "/v1/traces/" + c.traceID(rng) + "/events", stream: true})
		}, judge: want("200", "404")},
		{name: "trace events abandoned", check: "well-formed", weight: 1, run: func(ctx context.Context, c *soakClient, rng *rand.Rand) outcome {
			return c.do(ctx, c.api, call{method: "GET", path: "/v1/traces/" + c.traceID(rng) + "/events", stream: true, abandon: true})
		}, judge: want("abandoned", "404")},
		{name: "malformed JSON", check: "malformed", weight: 3, run: variants("/v1/chat/completions", []string{
			`{` + direct, `{` + direct + `} {}`, ``, `hello`, `{"model":"direct/` + model + `",` + msgs + `,}`, "{\"model\":\"\xff\xfe\"," + msgs + "}",
		}), judge: want4xx},
		{name: "wrong types", check: "malformed", weight: 3, run: variants("/v1/chat/completions", []string{
			`{"model":27,` + msgs + `}`, `{"model":"direct/` + model + `","messages":"27: 22 26 31 53"}`,
			`{"model":"direct/` + model + `","messages":[{"role":"user","content":27}]}`, `{` + direct + `,"max_tokens":"64"}`,
			`{` + direct + `,"stream":"yes"}`, `[1,2,3]`, `{` + direct + `,"n":2}`, `{"model":"direct/` + model + `","messages":[]}`,
		}), judge: want4xx},
		{name: "wrong types completions", check: "malformed", weight: 1, run: variants("/v1/completions", []string{
			`{"model":"` + model + `","prompt":{"a":1}}`, `{"model":"` + model + `","prompt":"27","max_tokens":-1}`,
			`{"model":"` + model + `","prompt":"27","n":1000000000}`, `{"model":"` + model + `"}`,
		}), judge: want4xx},
		{name: "unknown model", check: "malformed", weight: 2, run: variants("/v1/chat/completions", []string{
			`{"model":"gpt-4o",` + msgs + `}`, `{"model":"nosuch/` + model + `",` + msgs + `}`, `{"model":"vote:k=0/` + model + `",` + msgs + `}`,
			`{"model":"",` + msgs + `}`,
		}), judge: want4xx},
		{name: "hostile numbers", check: "malformed", weight: 3, run: variants("/v1/chat/completions", []string{
			`{` + direct + `,"temperature":1e-320}`, `{` + direct + `,"max_tokens":9223372036854775807}`,
			`{` + direct + `,"top_p":"NaN"}`, `{` + direct + `,"max_tokens":-1}`, `{` + direct + `,"temperature":-1}`,
			`{` + direct + `,"temperature":1e999}`, `{` + direct + `,"seed":-1}`, `{` + direct + `,"max_tokens":1e300}`,
			`{` + direct + `,"max_tokens":9223372036854775808}`,
		}), judge: wantNo5xx},
		{name: "hostile numbers completions", check: "malformed", weight: 1, run: variants("/v1/completions", []string{
			`{"model":"` + model + `","prompt":"27","max_tokens":9223372036854775807,"temperature":1e-320}`,
			`{"model":"` + model + `","prompt":"27","max_tokens":4,"top_p":-1}`, `{"model":"` + model + `","prompt":"27","max_tokens":4,"top_k":-9223372036854775808}`,
			`{"model":"` + model + `","prompt":[-1, 9999999],"max_tokens":4}`, `{"model":"` + model + `","prompt":"27","max_tokens":4,"logprobs":1e9}`,
		}), judge: wantNo5xx},
		{name: "huge body", check: "malformed", weight: 1, run: func(ctx context.Context, c *soakClient, _ *rand.Rand) outcome {
			return c.do(ctx, c.api, call{method: "POST", path: "/v1/chat/completions", body: huge})
		}, judge: want("413")},
		// Sent by the stallers, the flood and the probe, not in the mix.
		{name: "slow body", check: "malformed", judge: wantCutOff},
		{name: "flood", check: "well-formed", judge: want("200", "cancelled")},
		{name: "probe alone", check: "well-formed", judge: want("200")},
		{name: "probe in flood", check: "well-formed", judge: want("200")},
	}
}

// want is the verdict of a kind whose good outcomes are labels; 429 is
// always a rate limit, anything else bad.
func want(labels ...string) func(string) verdict {
	return func(l string) verdict {
		switch {
		case l == "429":
			return rateLimited
		case slices.Contains(labels, l):
			return good
		}
		return bad
	}
}

func want4xx(l string) verdict {
	switch {
	case l == "429":
		return rateLimited
	case len(l) == 3 && l[0] == '4':
		return good
	}
	return bad
}

// wantNo5xx judges hostile numbers: the server may take one it can
// bound (a tiny temperature) or refuse it, but never fail on it.
func wantNo5xx(l string) verdict {
	if l == "200" {
		return good
	}
	return want4xx(l)
}

// wantCutOff judges a stalled body: the server should refuse it or hang
// up; a client that gave up first, or one stopped by the load's end, is
// reported, not failed.
func wantCutOff(l string) verdict {
	switch l {
	case "closed":
		return good
	case "gave up", "cancelled":
		return neutral
	}
	return want4xx(l)
}

func weighted(kinds []soakKind) func(*rand.Rand) int {
	var cum []int
	total := 0
	for _, k := range kinds {
		total += k.weight
		cum = append(cum, total)
	}
	return func(rng *rand.Rand) int {
		x := rng.IntN(total)
		for i, c := range cum {
			if x < c {
				return i
			}
		}
		return len(cum) - 1
	}
}

// outcome is how one request ended: its label is the status code, or
// timeout, error, cancelled, abandoned (hung up on purpose after the
// first event), cut short (a 200 whose body did not end as it should),
// closed or gave up (a stalled body).
type outcome struct {
	label  string
	detail string
	took   time.Duration
	retry  time.Duration // a 429's Retry-After
}

// backoff waits out a 429's Retry-After, as a well-behaved client does:
// one that retried at once would measure only the limiter, in a busy
// loop.
func backoff(ctx context.Context, o outcome) {
	if o.label == "429" {
		sleepUntil(ctx, time.Now().Add(min(max(o.retry, 100*time.Millisecond), 5*time.Second)))
	}
}

// call is one HTTP request.
type call struct {
	method, path string
	body         []byte
	stream       bool // an SSE answer, which must end with [DONE] or an end event
	abandon      bool // hang up after the first line of a 200
}

// soakClient makes the soak's requests, over connections it checks are to
// loopback.
type soakClient struct {
	o      soakOptions
	dialer *net.Dialer
	tr     *http.Transport
	api    *http.Client // bounded by --timeout
	floods *http.Client // bounded by the flood's window and --timeout

	mu     sync.Mutex
	traces []string // recent trace ids, for the trace reads
}

func newSoakClient(o soakOptions) *soakClient {
	d := &net.Dialer{Timeout: 5 * time.Second, Control: loopbackOnly}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: o.clients + 8, IdleConnTimeout: 30 * time.Second, DisableCompression: true}
	return &soakClient{o: o, dialer: d, tr: tr,
		api:    &http.Client{Transport: tr, Timeout: o.timeout},
		floods: &http.Client{Transport: tr, Timeout: o.duration/3 + o.timeout}}
}

// loopbackOnly refuses, at each dial, an address that is not loopback:
// "localhost" is checked as what it resolves to.
func loopbackOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("soak: %s is not a loopback address", host)
	}
	return nil
}

// loopbackBase checks that raw names a server on loopback and returns its
// base URL.
func loopbackBase(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" || u.Host == "" || u.Port() == "" {
		return "", fmt.Errorf("%q: want http://HOST:PORT", raw)
	}
	if h := u.Hostname(); !strings.EqualFold(h, "localhost") {
		if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
			return "", fmt.Errorf("%s is not a loopback address (127.0.0.0/8, ::1, localhost): braid soak soaks only servers on this machine", h)
		}
	}
	if p := strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/v1"); p != "" {
		return "", fmt.Errorf("%q: want the server's root, http://HOST:PORT", raw)
	}
	return "http://" + u.Host, nil
}

// do makes one request and reads its answer, looking for stack traces in
// it.
func (c *soakClient) do(ctx context.Context, hc *http.Client, k call) outcome {
	var body io.Reader
	if k.body != nil {
		body = bytes.NewReader(k.body)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, c.o.base+k.path, body)
	if err != nil {
		return outcome{label: "error", detail: err.Error()}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.o.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.o.apiKey)
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return failure(err)
	}
	defer resp.Body.Close()
	if id := resp.Header.Get("X-Braid-Trace"); id != "" {
		c.noteTrace(id)
	}
	o := outcome{label: strconv.Itoa(resp.StatusCode)}
	if resp.StatusCode == http.StatusTooManyRequests {
		o.retry = time.Second
		if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			o.retry = time.Duration(n) * time.Second
		}
	}
	if k.abandon && resp.StatusCode == http.StatusOK {
		line, err := bufio.NewReader(io.LimitReader(resp.Body, soakBodyLimit)).ReadBytes('\n')
		o.detail = string(line)
		if err != nil {
			return failure(err)
		}
		// Closing the body before its end hangs up the connection.
		o.label = "abandoned"
		return o
	}
	// A stream is read to its end, however long (a flood's runs to
	// hundreds of MiB); what is kept is its head, for the report and the
	// search for stack traces, and its tail, for how it ended.
	var got keptBody
	_, err = io.Copy(&got, resp.Body)
	o.took = time.Since(start)
	o.detail = string(got.head)
	if err != nil {
		f := failure(err)
		f.detail = fmt.Sprintf("status %d, then %s", resp.StatusCode, f.detail)
		return f
	}
	if k.stream && resp.StatusCode == http.StatusOK && !got.endsWith("data: [DONE]", "event: end") {
		o.label = "cut short"
		o.detail += " ... " + string(got.tail)
	}
	return o
}

// keptBody keeps the first soakBodyLimit bytes written to it and the last
// keptTail.
type keptBody struct {
	head, tail []byte
}

const keptTail = 4096

func (k *keptBody) Write(p []byte) (int, error) {
	if room := soakBodyLimit - len(k.head); room > 0 {
		k.head = append(k.head, p[:min(room, len(p))]...)
	}
	k.tail = append(k.tail, p...)
	if extra := len(k.tail) - keptTail; extra > 0 {
		k.tail = append(k.tail[:0], k.tail[extra:]...)
	}
	return len(p), nil
}

// endsWith says whether the body's last event is one of the ends given.
func (k *keptBody) endsWith(ends ...string) bool {
	last := bytes.TrimSpace(k.tail)
	if i := bytes.LastIndex(last, []byte("\n\n")); i >= 0 {
		last = last[i+2:]
	}
	for _, e := range ends {
		if bytes.Contains(last, []byte(e)) {
			return true
		}
	}
	return false
}

// failure labels a request that got no whole answer.
func failure(err error) outcome {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return outcome{label: "cancelled", detail: err.Error()}
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return outcome{label: "timeout", detail: err.Error()}
	}
	return outcome{label: "error", detail: err.Error()}
}

// slowBody sends the head of a request and a few bytes of its body, then
// stalls, and waits for the server to answer or hang up.
func (c *soakClient) slowBody(ctx context.Context, body []byte) outcome {
	host := strings.TrimPrefix(c.o.base, "http://")
	conn, err := c.dialer.DialContext(ctx, "tcp", host)
	if err != nil {
		return failure(err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	conn.SetDeadline(time.Now().Add(c.o.slowWait))
	auth := ""
	if c.o.apiKey != "" {
		auth = "Authorization: Bearer " + c.o.apiKey + "\r\n"
	}
	if _, err := fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n",
		host, len(body), auth); err != nil {
		return outcome{label: "closed", detail: err.Error()}
	}
	for _, b := range body[:8] {
		if _, err := conn.Write([]byte{b}); err != nil {
			return outcome{label: "closed", detail: err.Error()}
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		if ctx.Err() != nil {
			return outcome{label: "cancelled"}
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return outcome{label: "gave up", detail: fmt.Sprintf("no answer in %s", c.o.slowWait)}
		}
		return outcome{label: "closed", detail: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, soakBodyLimit))
	return outcome{label: strconv.Itoa(resp.StatusCode), detail: string(b)}
}

// flood sends the flood's requests, one at a time, from from to to; the
// one in flight at the end is cancelled.
func (c *soakClient) flood(ctx context.Context, t *tally, model string, from, to time.Time) {
	if !sleepUntil(ctx, from) {
		return
	}
	wctx, cancel := context.WithDeadline(ctx, to)
	defer cancel()
	rng := rand.New(rand.NewPCG(c.o.seed, 1<<33))
	for wctx.Err() == nil {
		stream := rng.IntN(2) == 0
		body := mustJSON(map[string]any{"model": c.o.flood + "/" + model, "stream": stream,
			"messages": []map[string]string{{"role": "user", "content": "27: 22 26 31 53"}}})
		o := c.do(wctx, c.floods, call{method: "POST", path: "/v1/chat/completions", body: body, stream: stream})
		if wctx.Err() != nil && ctx.Err() == nil && (o.label == "timeout" || o.label == "error") {
			o.label = "cancelled" // by the window's end, not by a failure
		}
		t.add("flood", o)
		backoff(wctx, o)
	}
}

func (c *soakClient) noteTrace(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.traces) >= 64 {
		c.traces = c.traces[1:]
	}
	c.traces = append(c.traces, id)
}

// traceID is a recent trace's id, or now and then one that never
// existed.
func (c *soakClient) traceID(rng *rand.Rand) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.traces) == 0 || rng.IntN(8) == 0 {
		return "trace-0000000000000000"
	}
	return c.traces[rng.IntN(len(c.traces))]
}

// modelName is the first model /v1/models lists: the server's own name.
func (c *soakClient) modelName(ctx context.Context) (string, error) {
	o := c.do(ctx, c.api, call{method: "GET", path: "/v1/models"})
	if o.label != "200" {
		return "", fmt.Errorf("soak: GET %s/v1/models: %s %s", c.o.base, o.label, strings.TrimSpace(o.detail))
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(o.detail), &list); err != nil || len(list.Data) == 0 {
		return "", fmt.Errorf("soak: GET %s/v1/models: no model in %.200q", c.o.base, o.detail)
	}
	return list.Data[0].ID, nil
}

// metric reads an unlabelled sample from /metrics.
func (c *soakClient) metric(ctx context.Context, name string) (float64, error) {
	o := c.do(ctx, c.api, call{method: "GET", path: "/metrics"})
	if o.label != "200" {
		return 0, fmt.Errorf("soak: read %s/metrics: %s", c.o.base, o.label)
	}
	for line := range strings.Lines(o.detail) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("soak: read %s/metrics: no %s", c.o.base, name)
}

// rss is the server's resident memory: from /proc for a process soak
// started, else as the server's /metrics report it.
func (c *soakClient) rss(ctx context.Context) (int64, string, error) {
	if c.o.pid > 0 {
		path := fmt.Sprintf("/proc/%d/status", c.o.pid)
		if b, err := os.ReadFile(path); err == nil {
			for line := range strings.Lines(string(b)) {
				if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
					kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
					if err != nil {
						return 0, "", fmt.Errorf("soak: read %s: %w", path, err)
					}
					return kb << 10, "/proc", nil
				}
			}
		}
	}
	v, err := c.metric(ctx, "process_resident_memory_bytes")
	return int64(v), "/metrics", err
}

// settledRSS waits until from, for the server to let go of what it holds
// only while busy (the engine drops its KV cache after a while idle), then
// returns the median of three reads a second apart.
func (c *soakClient) settledRSS(ctx context.Context, from time.Time) int64 {
	if !sleepUntil(ctx, from) {
		return 0
	}
	var reads []int64
	for i := range 3 {
		if i > 0 && !sleepUntil(ctx, time.Now().Add(time.Second)) {
			return 0
		}
		v, _, err := c.rss(ctx)
		if err != nil {
			return 0
		}
		reads = append(reads, v)
	}
	slices.Sort(reads)
	return reads[1]
}

func (c *soakClient) progressLine(ctx context.Context, t *tally, elapsed, total time.Duration) {
	rss, inFlight := "?", "?"
	if v, _, err := c.rss(ctx); err == nil {
		rss = fmt.Sprintf("%.0f MiB", mib(v))
	}
	if v, err := c.metric(ctx, "braid_requests_in_flight"); err == nil {
		inFlight = strconv.FormatFloat(v, 'f', -1, 64)
	}
	fmt.Fprintf(c.o.progress, "soak %s/%s: %s; rss %s, in flight %s\n", elapsed.Round(time.Second), total, t.line(), rss, inFlight)
}

// tally counts outcomes by kind, keeps the first few failures, and looks
// for stack traces in every body.
type tally struct {
	kinds []soakKind
	mu    sync.Mutex
	count map[string]map[string]int // kind, then outcome label
	fails []string
	leaks int
	leak  string
}

func newTally(kinds []soakKind) *tally {
	t := &tally{kinds: kinds, count: map[string]map[string]int{}}
	for _, k := range kinds {
		t.count[k.name] = map[string]int{}
	}
	return t
}

func (t *tally) add(kind string, o outcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.count[kind][o.label]++
	if i := stackTrace(o.detail); i >= 0 {
		t.leaks++
		if t.leak == "" {
			t.leak = fmt.Sprintf("%s: %.200s", kind, o.detail[max(0, i-80):])
		}
	}
	for _, k := range t.kinds {
		if k.name == kind && k.judge(o.label) == bad && len(t.fails) < 10 {
			t.fails = append(t.fails, fmt.Sprintf("%s: %s: %.300s", kind, o.label, strings.TrimSpace(o.detail)))
		}
	}
}

// stackTrace is where a Go stack trace starts in s, or -1.
func stackTrace(s string) int {
	for _, m := range []string{"goroutine ", ".go:"} {
		if i := strings.Index(s, m); i >= 0 {
			return i
		}
	}
	return -1
}

// line is the progress: requests by check and verdict, and by kind.
func (t *tally) line() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	total, by := 0, [4]int{}
	var kinds []string
	for _, k := range t.kinds {
		n := 0
		for l, c := range t.count[k.name] {
			n += c
			by[k.judge(l)] += c
		}
		total += n
		if n > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d", k.name, n))
		}
	}
	return fmt.Sprintf("%d requests (%d good, %d 429, %d bad, %d other): %s", total, by[good], by[rateLimited], by[bad], by[neutral], strings.Join(kinds, ", "))
}

func (t *tally) report() ([]kindReport, []string, int, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []kindReport
	for _, k := range t.kinds {
		r := kindReport{Kind: k.name, Check: k.check, Outcomes: t.count[k.name]}
		for l, c := range r.Outcomes {
			r.Requests += c
			switch k.judge(l) {
			case good:
				r.Good += c
			case rateLimited:
				r.RateLimited += c
			case bad:
				r.Bad += c
			}
		}
		out = append(out, r)
	}
	return out, t.fails, t.leaks, t.leak
}

// serveChild is a braid serve that soak started and watches.
type serveChild struct {
	cmd   *exec.Cmd
	base  string
	watch *stderrWatch
	done  chan struct{} // closed when the process has exited
	err   error         // how it exited, once done is closed
	once  sync.Once
	stopC context.CancelFunc
	crash []string
}

// startServe starts braid serve on a loopback port, with extra flags, and
// waits until it says where it listens.
func startServe(ctx context.Context, extra []string) (*serveChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("soak: find braid: %w", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(cctx, exe, append([]string{"serve", "--addr", "127.0.0.1:0", "--quiet"}, extra...)...)
	// Interrupted, serve drains its requests and exits; one that does
	// not within WaitDelay is killed.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	w := &stderrWatch{addr: make(chan string, 1)}
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("soak: start %s serve: %w", exe, err)
	}
	s := &serveChild{cmd: cmd, watch: w, done: make(chan struct{}), stopC: cancel}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	select {
	case addr := <-w.addr:
		base, err := loopbackBase("http://" + addr)
		if err != nil {
			s.stop()
			return nil, fmt.Errorf("soak: the server listens on %s: %w", addr, err)
		}
		s.base = base
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("soak: braid serve exited (%v) before it listened:\n%s", s.err, strings.Join(w.tailLines(), "\n"))
	case <-time.After(time.Minute):
		s.stop()
		return nil, fmt.Errorf("soak: braid serve did not say where it listens within a minute:\n%s", strings.Join(w.tailLines(), "\n"))
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
}

// stop interrupts the server, waits for it to exit, and returns the lines
// of its stderr that show a crash; a server that had exited on its own
// is one.
func (s *serveChild) stop() []string {
	s.once.Do(func() {
		select {
		case <-s.done:
			s.crash = append(s.crash, fmt.Sprintf("braid serve exited during the soak: %v", s.err))
		default:
		}
		s.stopC()
		<-s.done
		s.crash = append(s.crash, s.watch.crashLines()...)
	})
	return s.crash
}

// serveLine is the line braid serve writes once it listens.
var serveLine = regexp.MustCompile(`^braid serving \S+ on http://(\S+) \(`)

// stderrWatch reads the server's stderr line by line: it finds the line
// that says where the server listens, and keeps the lines that show a
// crash, and the last few, for an error.
type stderrWatch struct {
	addr chan string // receives the address once

	mu      sync.Mutex
	partial []byte
	found   bool
	crash   []string // the first few
	crashes int
	tail    []string
}

func (w *stderrWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

func (w *stderrWatch) line(l string) {
	if !w.found {
		if m := serveLine.FindStringSubmatch(l); m != nil {
			w.found = true
			w.addr <- m[1]
		}
	}
	if strings.Contains(l, "panic") || strings.Contains(l, "fatal error") || strings.Contains(l, "goroutine ") || strings.Contains(l, "DATA RACE") {
		w.crashes++
		if len(w.crash) < 20 {
			w.crash = append(w.crash, l)
		}
	}
	if len(w.tail) >= 20 {
		w.tail = w.tail[1:]
	}
	w.tail = append(w.tail, l)
}

// crashLines are the crash lines seen, the last line included even if it
// has no newline.
func (w *stderrWatch) crashLines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.line(string(w.partial))
		w.partial = nil
	}
	out := append([]string(nil), w.crash...)
	if w.crashes > len(w.crash) {
		out = append(out, fmt.Sprintf("... and %d more", w.crashes-len(w.crash)))
	}
	return out
}

func (w *stderrWatch) tailLines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.tail...)
}

// sleepUntil waits until t, and says whether ctx is still live.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

func latencyOf(msList []float64) latency {
	if len(msList) == 0 {
		return latency{}
	}
	return latency{N: len(msList), P50MS: stats.Percentile(msList, 50), P99MS: stats.Percentile(msList, 99)}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// outcomes formats outcome counts, most first.
func outcomes(m map[string]int) string {
	type lc struct {
		l string
		c int
	}
	var s []lc
	for l, c := range m {
		s = append(s, lc{l, c})
	}
	slices.SortFunc(s, func(a, b lc) int {
		if a.c != b.c {
			return b.c - a.c
		}
		return strings.Compare(a.l, b.l)
	})
	var parts []string
	for _, x := range s {
		parts = append(parts, fmt.Sprintf("%s %d", x.l, x.c))
	}
	return strings.Join(parts, ", ")
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings and numbers always marshal
	}
	return b
}
