// Package soak loads an OpenAI-compatible braid server on loopback with
// well-formed, malformed and hostile clients, then checks that it held
// up: no crash, no stack trace sent to a client, the right status for
// every kind of request, memory back near where it started, a small
// request's latency bounded while a greedy one floods the server, and
// the server idle after the load. 'braid soak' runs it.
package soak

import (
	"context"
	"io"
	"math/rand/v2"
	"sync"
	"time"
)

// Options configure one soak run; every field but PID and APIKey needs a
// value.
type Options struct {
	Base     string // the server, http://HOST:PORT on loopback
	PID      int    // the server's process, for its RSS; 0: RSS from /metrics
	APIKey   string // the server's bearer token, if it needs one
	Duration time.Duration
	Clients  int
	Seed     uint64
	Flood    string        // the flood's strategy
	Timeout  time.Duration // a request's bound
	SlowWait time.Duration // a stalled body's bound
	Settle   time.Duration // after the load, before memory is read
	Progress io.Writer     // where a line of progress goes
	Every    time.Duration // between progress lines
}

// These bound the phases that are not the load itself.
const (
	// Baseline is the number of probe requests sent alone, one after
	// another, before the load.
	Baseline  = 30
	idleWait  = 30 * time.Second // for the server to go idle after the load
	hugeBody  = 2 << 20
	bodyLimit = 16 << 20 // most of a response body soak reads
)

// Report is what a soak saw, and the checks it makes of it.
type Report struct {
	URL         string       `json:"url"`
	Model       string       `json:"model"`
	DurationS   float64      `json:"duration_s"`
	Clients     int          `json:"clients"`
	Seed        uint64       `json:"seed"`
	Flood       string       `json:"flood"`
	Kinds       []KindReport `json:"kinds"`
	Alone       Latency      `json:"probe_alone"`
	DuringFlood Latency      `json:"probe_during_flood"`
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
	Leaks    int      `json:"stack_traces_in_bodies"`
	Leak     string   `json:"stack_trace_example,omitempty"`
	Crash    []string `json:"server_crash_lines,omitempty"`
	Failures []string `json:"failures,omitempty"`
	Checks   []Check  `json:"checks"`
}

// KindReport counts one kind of request's outcomes, by label and by
// verdict.
type KindReport struct {
	Kind        string         `json:"kind"`
	Check       string         `json:"check"`
	Requests    int            `json:"requests"`
	Good        int            `json:"good"`
	RateLimited int            `json:"rate_limited"`
	Bad         int            `json:"bad"`
	Outcomes    map[string]int `json:"outcomes"`
}

// Latency is the probe's latency over the requests answered 200.
type Latency struct {
	N     int     `json:"n"`
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
}

// Check is one of the checks a soak makes.
type Check struct {
	Name   string `json:"name"`
	Result string `json:"result"` // PASS, FAIL, or SKIP where it could not be measured
	Detail string `json:"detail"`
}

// Run runs the baseline, the load and the after-load reads against the
// server at o.Base.
func Run(ctx context.Context, o Options) (*Report, error) {
	c := newClient(o)
	defer c.tr.CloseIdleConnections()
	model, err := c.modelName(ctx)
	if err != nil {
		return nil, err
	}
	kinds := mix(model, o.Seed)
	t := newTally(kinds)
	r := &Report{URL: o.Base, Model: model, DurationS: o.Duration.Seconds(), Clients: o.Clients, Seed: o.Seed,
		Flood: o.Flood + "/" + model}
	probe := call{method: "POST", path: "/v1/chat/completions",
		body: mustJSON(map[string]any{"model": "direct/" + model, "messages": []map[string]string{{"role": "user", "content": "27: 22 26 31 53"}}})}

	alone := c.baseline(ctx, t, kinds, probe)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.RSSStart, r.RSSFrom, _ = c.rss(ctx)
	during := c.load(ctx, t, kinds, model, probe)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.Idle, r.IdleS, r.RSSEnd = c.afterLoad(ctx)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.Alone, r.DuringFlood = latencyOf(alone), latencyOf(during)
	r.Kinds, r.Failures, r.Leaks, r.Leak = t.report()
	return r, nil
}

// baseline sends each well-formed kind once, so that what the server
// allocates on first use is in the memory read before the load, then the
// probe alone, Baseline times, and returns the probe's latencies in ms.
func (c *client) baseline(ctx context.Context, t *tally, kinds []requestKind, probe call) []float64 {
	rng := rand.New(rand.NewPCG(c.o.Seed, 1<<32))
	for _, k := range kinds {
		if k.warm {
			t.add(k.name, k.run(ctx, c, rng))
		}
	}
	var alone []float64
	for range Baseline {
		out := c.do(ctx, c.api, probe)
		t.add("probe alone", out)
		if out.label == "200" {
			alone = append(alone, ms(out.took))
		}
	}
	return alone
}

// load runs the mix for o.Duration: the clients, the stallers, and in the
// middle third the flood and the probe, whose latencies in ms it returns.
// It writes a line of progress every o.Every.
func (c *client) load(ctx context.Context, t *tally, kinds []requestKind, model string, probe call) []float64 {
	o := c.o
	start := time.Now()
	end := start.Add(o.Duration)
	floodFrom, floodTo := start.Add(o.Duration/3), start.Add(2*o.Duration/3)
	var during []float64
	var wg sync.WaitGroup
	for i := range o.Clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(o.Seed, uint64(i)))
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
	// each would hold its client for up to o.SlowWait, and soon
	// every client would be stalled.
	stallCtx, stopStalls := context.WithDeadline(ctx, end)
	defer stopStalls()
	for range max(1, o.Clients/8) {
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
	tick := time.NewTicker(o.Every)
	defer tick.Stop()
	for {
		select {
		case <-loadDone:
			return during
		case <-tick.C:
			c.progressLine(ctx, t, time.Since(start), o.Duration)
		}
	}
}

// afterLoad waits, forcing nothing, for the server to go idle, and then
// o.Settle more before it reads the server's memory. It returns whether
// the server went idle, how long after the load it was seen so, and its
// memory.
func (c *client) afterLoad(ctx context.Context) (idle bool, idleS float64, rss int64) {
	idleFrom := time.Now()
	for {
		n, err := c.metric(ctx, "braid_requests_in_flight")
		if err == nil && n == 0 {
			idle = true
			break
		}
		if time.Since(idleFrom) > idleWait || !sleepUntil(ctx, time.Now().Add(250*time.Millisecond)) {
			break
		}
	}
	idleS = time.Since(idleFrom).Seconds()
	return idle, idleS, c.settledRSS(ctx, idleFrom.Add(c.o.Settle))
}
