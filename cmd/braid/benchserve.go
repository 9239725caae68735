package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net"
	"net/http"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/eval/stats"
	"github.com/braid-dev/braid/serve"
	"github.com/braid-dev/braid/task/countdown"
)

type serveResult struct {
	Clients      int     `json:"clients"`
	Requests     int     `json:"requests"`
	Failed       int     `json:"failed"`
	PerSec       float64 `json:"requests_per_s"`
	P50MS        float64 `json:"latency_p50_ms"`
	P99MS        float64 `json:"latency_p99_ms"`
	TokensPerSec float64 `json:"tokens_per_s"`
	// DelayP50US and DelayP99US are the delays, in microseconds, from a
	// chunk of tokens leaving the engine to its arrival at the client.
	DelayP50US float64 `json:"token_delay_p50_us"`
	DelayP99US float64 `json:"token_delay_p99_us"`
}

// stamped wraps a backend and notes when each chunk of each request
// leaves it, keyed by the request's seed, so that a client in the same
// process can measure the delay to its arrival.
type stamped struct {
	backend.Backend
	mu   sync.Mutex
	sent map[uint64][]time.Time
}

func (s *stamped) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	next := req.OnChunk
	seed := req.Seed
	req.OnChunk = func(c backend.Chunk) {
		s.mu.Lock()
		s.sent[seed] = append(s.sent[seed], time.Now())
		s.mu.Unlock()
		if next != nil {
			next(c)
		}
	}
	return s.Backend.Complete(ctx, req)
}

func (s *stamped) take(seed uint64) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.sent[seed]
	delete(s.sent, seed)
	return t
}

func newBenchServeCmd() *cobra.Command {
	var (
		ef        engineFlags
		clients   string
		duration  time.Duration
		maxTokens int
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Measure braid serve on loopback: requests/s, latency, and the delay from engine to client",
		Long: `Start braid serve in this process on a loopback port over the model, then
for each client count keep that many clients streaming /v1/completions
requests (a Countdown root prompt, --max-tokens tokens, greedy) for
--duration, and report requests/s, latency percentiles, tokens/s, and the
delay from a chunk of tokens leaving the engine to its arrival at the
client (the server's own cost on the token path).`,
		Example: `  braid bench serve --model runs/countdown/checkpoint --clients 1,8,32 --duration 20s
  braid bench serve --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			counts, err := parseInts(clients, maxCount)
			if err != nil || len(counts) == 0 {
				return usageErrorf("--clients %q: want a comma-separated list of positive counts", clients)
			}
			if duration <= 0 || maxTokens <= 0 {
				return usageErrorf("--duration and --max-tokens must be positive")
			}
			e, err := ef.open()
			if err != nil {
				return err
			}
			defer e.Close()
			st := &stamped{Backend: e, sent: map[uint64][]time.Time{}}
			srv, err := serve.New(serve.Options{Backend: st, Model: "countdown", Task: countdown.Task{}, Raw: st, PerClient: 1 << 20})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			hs := &http.Server{Handler: srv.Handler()}
			go hs.Serve(ln)
			defer hs.Close()
			url := "http://" + ln.Addr().String() + "/v1/completions"
			next, stop := iter.Pull(countdown.Problems(2, countdown.Test))
			defer stop()
			var prompts []string
			for range 256 {
				p, _ := next()
				prompts = append(prompts, countdown.RootPrompt(p, countdown.ModeSerial))
			}
			var results []serveResult
			seed := uint64(1)
			for _, n := range counts {
				r := benchServe(cmd.Context(), url, st, prompts, n, duration, maxTokens, &seed)
				results = append(results, r)
				fmt.Fprintf(cmd.ErrOrStderr(), "%d clients: %d requests, %.1f/s\n", n, r.Requests, r.PerSec)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]any{"max_tokens": maxTokens, "duration_s": duration.Seconds(), "serve": results})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "clients\trequests\tfailed\treq/s\tp50 ms\tp99 ms\ttokens/s\tdelay p50 µs\tdelay p99 µs\t")
			for _, r := range results {
				fmt.Fprintf(tw, "%d\t%d\t%d\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t\n", r.Clients, r.Requests, r.Failed, r.PerSec,
					r.P50MS, r.P99MS, r.TokensPerSec, r.DelayP50US, r.DelayP99US)
			}
			return tw.Flush()
		},
	}
	ef.register(cmd)
	f := cmd.Flags()
	f.StringVar(&clients, "clients", "1,8,32", "concurrent clients, comma-separated")
	f.DurationVar(&duration, "duration", 20*time.Second, "how long each client count runs")
	f.IntVar(&maxTokens, "max-tokens", 64, "tokens per request")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// benchServe runs n streaming clients for d.
func benchServe(ctx context.Context, url string, st *stamped, prompts []string, n int, d time.Duration, maxTokens int, seed *uint64) serveResult {
	var mu sync.Mutex
	var latencies, delays []float64
	r := serveResult{Clients: n}
	tokens := 0
	end := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range n {
		wg.Go(func() {
			for i := 0; time.Now().Before(end) && ctx.Err() == nil; i++ {
				mu.Lock()
				*seed++
				s := *seed
				mu.Unlock()
				body, _ := json.Marshal(map[string]any{"model": "countdown", "prompt": prompts[(c*31+i)%len(prompts)], "max_tokens": maxTokens,
					"temperature": 0, "seed": s, "stream": true, "stream_options": map[string]bool{"include_usage": true}})
				t0 := time.Now()
				arrived, n, err := streamCompletion(ctx, url, string(body))
				lat := time.Since(t0)
				sent := st.take(s)
				mu.Lock()
				if err != nil {
					r.Failed++
				} else {
					r.Requests++
					tokens += n
					latencies = append(latencies, float64(lat.Milliseconds()))
					for k := range min(len(sent), len(arrived)) {
						delays = append(delays, float64(arrived[k].Sub(sent[k]).Microseconds()))
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	r.PerSec, r.TokensPerSec = float64(r.Requests)/el, float64(tokens)/el
	r.P50MS, r.P99MS = stats.Percentile(latencies, 50), stats.Percentile(latencies, 99)
	r.DelayP50US, r.DelayP99US = stats.Percentile(delays, 50), stats.Percentile(delays, 99)
	return r
}

// streamCompletion posts a streamed completion and returns when each
// text chunk arrived and the completion tokens.
func streamCompletion(ctx context.Context, url, body string) ([]time.Time, int, error) {
	req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	var arrived []time.Time
	tokens := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || line == "[DONE]" {
			continue
		}
		now := time.Now()
		var c struct {
			Choices []struct {
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			return nil, 0, err
		}
		if c.Usage != nil {
			tokens = c.Usage.CompletionTokens
		}
		if len(c.Choices) > 0 && c.Choices[0].FinishReason == nil {
			arrived = append(arrived, now)
		}
	}
	return arrived, tokens, sc.Err()
}
