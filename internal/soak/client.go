package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/braid-dev/braid/eval/stats"
)

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

// client makes the soak's requests, over connections it checks are to
// loopback.
type client struct {
	o      Options
	dialer *net.Dialer
	tr     *http.Transport
	api    *http.Client // bounded by o.Timeout
	floods *http.Client // bounded by the flood's window and o.Timeout

	mu     sync.Mutex
	traces []string // recent trace ids, for the trace reads
}

func newClient(o Options) *client {
	d := &net.Dialer{Timeout: 5 * time.Second, Control: loopbackOnly}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: o.Clients + 8, IdleConnTimeout: 30 * time.Second, DisableCompression: true}
	return &client{o: o, dialer: d, tr: tr,
		api:    &http.Client{Transport: tr, Timeout: o.Timeout},
		floods: &http.Client{Transport: tr, Timeout: o.Duration/3 + o.Timeout}}
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

// LoopbackBase checks that raw names a server on loopback and returns its
// base URL.
func LoopbackBase(raw string) (string, error) {
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
func (c *client) do(ctx context.Context, hc *http.Client, k call) outcome {
	var body io.Reader
	if k.body != nil {
		body = bytes.NewReader(k.body)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, c.o.Base+k.path, body)
	if err != nil {
		return outcome{label: "error", detail: err.Error()}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.o.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.o.APIKey)
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
		line, err := bufio.NewReader(io.LimitReader(resp.Body, bodyLimit)).ReadBytes('\n')
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
		// The report keeps a failure's first few hundred bytes: how the
		// stream ended goes first, then the rest for the search for
		// stack traces.
		o.label = "cut short"
		o.detail = fmt.Sprintf("last event %q, last bytes %q; began: %s ... %s",
			got.lastEvent(), got.tail[max(0, len(got.tail)-120):], got.head, got.tail)
	}
	return o
}

// keptBody keeps the first bodyLimit bytes written to it, the last
// keptTail, and the beginning of the latest server-sent event: how a
// stream ended is its last event's name or first line, and that event may
// be far longer than any tail (an "end" event carries the whole trace).
type keptBody struct {
	head, tail []byte
	// cur is the beginning of the event being read, last that of the
	// latest whole event with more than blank lines; nl says whether the
	// bytes so far end with a newline, for a blank line split across
	// writes.
	cur, last []byte
	nl        bool
}

const (
	keptTail  = 4096
	eventHead = 256 // an event's id, name and the start of its data
)

func (k *keptBody) Write(p []byte) (int, error) {
	if room := bodyLimit - len(k.head); room > 0 {
		k.head = append(k.head, p[:min(room, len(p))]...)
	}
	k.tail = append(k.tail, p...)
	if extra := len(k.tail) - keptTail; extra > 0 {
		k.tail = append(k.tail[:0], k.tail[extra:]...)
	}
	k.events(p)
	return len(p), nil
}

// events follows the event boundaries (blank lines) in p.
func (k *keptBody) events(p []byte) {
	for len(p) > 0 {
		if k.nl && p[0] == '\n' {
			k.endEvent()
			p, k.nl = p[1:], false
			continue
		}
		i := bytes.Index(p, []byte("\n\n"))
		if i < 0 {
			k.cur = append(k.cur, p[:min(eventHead-len(k.cur), len(p))]...)
			k.nl = p[len(p)-1] == '\n'
			return
		}
		k.cur = append(k.cur, p[:min(eventHead-len(k.cur), i)]...)
		k.endEvent()
		p, k.nl = p[i+2:], false
	}
}

func (k *keptBody) endEvent() {
	if len(bytes.TrimSpace(k.cur)) > 0 {
		k.last = append(k.last[:0], k.cur...)
	}
	k.cur = k.cur[:0]
}

// lastEvent is the beginning of the body's last event, blank lines
// trimmed: the one still open, if it has more than blank lines, else the
// latest whole one.
func (k *keptBody) lastEvent() []byte {
	if e := bytes.TrimSpace(k.cur); len(e) > 0 {
		return e
	}
	return bytes.TrimSpace(k.last)
}

// endsWith says whether a line of the body's last event is one of the
// ends given (an event's name, a data line).
func (k *keptBody) endsWith(ends ...string) bool {
	for line := range bytes.Lines(k.lastEvent()) {
		line = bytes.TrimRight(line, "\r\n")
		for _, e := range ends {
			if string(line) == e {
				return true
			}
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
func (c *client) slowBody(ctx context.Context, body []byte) outcome {
	host := strings.TrimPrefix(c.o.Base, "http://")
	conn, err := c.dialer.DialContext(ctx, "tcp", host)
	if err != nil {
		return failure(err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	conn.SetDeadline(time.Now().Add(c.o.SlowWait))
	auth := ""
	if c.o.APIKey != "" {
		auth = "Authorization: Bearer " + c.o.APIKey + "\r\n"
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
			return outcome{label: "gave up", detail: fmt.Sprintf("no answer in %s", c.o.SlowWait)}
		}
		return outcome{label: "closed", detail: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, bodyLimit))
	return outcome{label: strconv.Itoa(resp.StatusCode), detail: string(b)}
}

// flood sends the flood's requests, one at a time, from from to to; the
// one in flight at the end is cancelled.
func (c *client) flood(ctx context.Context, t *tally, model string, from, to time.Time) {
	if !sleepUntil(ctx, from) {
		return
	}
	wctx, cancel := context.WithDeadline(ctx, to)
	defer cancel()
	rng := rand.New(rand.NewPCG(c.o.Seed, 1<<33))
	for wctx.Err() == nil {
		stream := rng.IntN(2) == 0
		body := mustJSON(map[string]any{"model": c.o.Flood + "/" + model, "stream": stream,
			"messages": []map[string]string{{"role": "user", "content": "27: 22 26 31 53"}}})
		o := c.do(wctx, c.floods, call{method: "POST", path: "/v1/chat/completions", body: body, stream: stream})
		if wctx.Err() != nil && ctx.Err() == nil && (o.label == "timeout" || o.label == "error") {
			o.label = "cancelled" // by the window's end, not by a failure
		}
		t.add("flood", o)
		backoff(wctx, o)
	}
}

func (c *client) noteTrace(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.traces) >= 64 {
		c.traces = c.traces[1:]
	}
	c.traces = append(c.traces, id)
}

// traceID is a recent trace's id, or now and then one that never
// existed.
func (c *client) traceID(rng *rand.Rand) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.traces) == 0 || rng.IntN(8) == 0 {
		return "trace-0000000000000000"
	}
	return c.traces[rng.IntN(len(c.traces))]
}

// modelName is the first model /v1/models lists: the server's own name.
func (c *client) modelName(ctx context.Context) (string, error) {
	o := c.do(ctx, c.api, call{method: "GET", path: "/v1/models"})
	if o.label != "200" {
		return "", fmt.Errorf("soak: GET %s/v1/models: %s %s", c.o.Base, o.label, strings.TrimSpace(o.detail))
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(o.detail), &list); err != nil || len(list.Data) == 0 {
		return "", fmt.Errorf("soak: GET %s/v1/models: no model in %.200q", c.o.Base, o.detail)
	}
	return list.Data[0].ID, nil
}

// metric reads an unlabelled sample from /metrics.
func (c *client) metric(ctx context.Context, name string) (float64, error) {
	o := c.do(ctx, c.api, call{method: "GET", path: "/metrics"})
	if o.label != "200" {
		return 0, fmt.Errorf("soak: read %s/metrics: %s", c.o.Base, o.label)
	}
	for line := range strings.Lines(o.detail) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("soak: read %s/metrics: no %s", c.o.Base, name)
}

// rss is the server's resident memory: from /proc for a process soak
// started, else as the server's /metrics report it.
func (c *client) rss(ctx context.Context) (int64, string, error) {
	if c.o.PID > 0 {
		path := fmt.Sprintf("/proc/%d/status", c.o.PID)
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
func (c *client) settledRSS(ctx context.Context, from time.Time) int64 {
	if !sleepUntil(ctx, from) {
		return 0
	}
	var reads []float64
	for i := range 3 {
		if i > 0 && !sleepUntil(ctx, time.Now().Add(time.Second)) {
			return 0
		}
		v, _, err := c.rss(ctx)
		if err != nil {
			return 0
		}
		reads = append(reads, float64(v))
	}
	return int64(stats.Median(reads))
}

func (c *client) progressLine(ctx context.Context, t *tally, elapsed, total time.Duration) {
	rss, inFlight := "?", "?"
	if v, _, err := c.rss(ctx); err == nil {
		rss = fmt.Sprintf("%.0f MiB", mib(v))
	}
	if v, err := c.metric(ctx, "braid_requests_in_flight"); err == nil {
		inFlight = strconv.FormatFloat(v, 'f', -1, 64)
	}
	fmt.Fprintf(c.o.Progress, "soak %s/%s: %s; rss %s, in flight %s\n", elapsed.Round(time.Second), total, t.line(), rss, inFlight)
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

func latencyOf(msList []float64) Latency {
	if len(msList) == 0 {
		return Latency{}
	}
	return Latency{N: len(msList), P50MS: stats.Percentile(msList, 50), P99MS: stats.Percentile(msList, 99)}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

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
