package serve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/task/countdown"
)

const chat27 = `{"model":"%s/countdown","messages":[{"role":"user","content":"27: 22 26 31 53"}]%s}`

func chatBody(strategy, extra string) string { return fmt.Sprintf(chat27, strategy, extra) }

// A temperature whose inverse overflows is refused at the edge, on chat
// and on raw completions, before any sampler sees it.
func TestTemperatureTooSmallIsRefused(t *testing.T) {
	_, hs := newTestServer(t, Options{})
	for _, c := range []struct{ url, body string }{
		{"/v1/chat/completions", chatBody("direct", `,"temperature":1e-320`)},
		{"/v1/completions", `{"model":"countdown","prompt":"27:","temperature":1e-320}`},
	} {
		resp, body := post(t, hs.URL+c.url, "", c.body)
		if resp.StatusCode != 400 || !strings.Contains(string(body), "too close to 0") {
			t.Errorf("%s: %d %s", c.url, resp.StatusCode, body)
		}
	}
}

// /healthz and /readyz say 503 once the backend cannot serve, with its
// error in one line; /readyz says so too once a shutdown begins.
func TestHealthFollowsTheBackend(t *testing.T) {
	var failure error
	s, hs := newTestServer(t, Options{Health: func() error { return failure }})
	check := func(path string, status int, want string) {
		t.Helper()
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != status || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d %s, want %d with %q", path, resp.StatusCode, b, status, want)
		}
	}
	check("/healthz", 200, `"ok"`)
	check("/readyz", 200, `"ready"`)
	failure = errors.New("engine: internal error: index out of range")
	check("/healthz", 503, "index out of range")
	check("/readyz", 503, "failing")
	failure = nil
	s.stopping.Store(true)
	check("/readyz", 503, "stopping")
	check("/healthz", 200, `"ok"`)
}

// A request body that trickles in holds no place: it is cut off after
// ReadTimeout with a 408, and meanwhile the same client's other requests
// are served.
func TestSlowBodiesHoldNoPlace(t *testing.T) {
	_, hs := newTestServer(t, Options{PerClient: 2, ReadTimeout: 300 * time.Millisecond})
	addr := strings.TrimPrefix(hs.URL, "http://")
	var slow []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", addr)
		slow = append(slow, c)
	}
	time.Sleep(50 * time.Millisecond)
	if resp, body := post(t, hs.URL+"/v1/chat/completions", "", chatBody("direct", "")); resp.StatusCode != 200 {
		t.Errorf("a request beside trickling ones: %d %s", resp.StatusCode, body)
	}
	for i, c := range slow {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("trickler %d: %v", i, err)
		}
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("trickler %d: %d, want 408", i, resp.StatusCode)
		}
	}
}

// firehose streams text fast until its context ends.
type firehose struct{}

func (firehose) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	chunk := strings.Repeat("Exploring Operation: 53-22=31\n", 512)
	for ctx.Err() == nil {
		req.OnChunk(backend.Chunk{Text: chunk, Tokens: make([]backend.Token, 1)})
		time.Sleep(time.Millisecond)
	}
	return &backend.Completion{Finish: backend.FinishCancelled}, ctx.Err()
}

// A client that stops reading a stream is cut off after WriteTimeout, and
// its request's work stops, long before the request's own time limit.
func TestStalledReaderIsCutOff(t *testing.T) {
	_, hs := newTestServer(t, Options{Backend: firehose{}, WriteTimeout: 300 * time.Millisecond, Timeout: time.Hour, TraceBytes: 1 << 20})
	addr := strings.TrimPrefix(hs.URL, "http://")
	d := net.Dialer{Control: nil}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4096)
	body := chatBody("serial", `,"stream":true`)
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", addr, len(body), body)
	// Never read: the server's writes block once the buffers are full.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(metricsText(t, hs.URL), "braid_requests_in_flight 0") {
		if time.Now().After(deadline) {
			t.Fatal("the stalled stream still holds its request after 20 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func metricsText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// Each kind of request has its own in-flight limit: a client whose
// completion holds its one place can still follow that completion's trace.
func TestTraceStreamsDoNotStarveCompletions(t *testing.T) {
	slow := newReplay(t, problem27)
	slow.delay = 20 * time.Millisecond
	_, hs := newTestServer(t, Options{Backend: slow, PerClient: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", hs.URL+"/v1/chat/completions", strings.NewReader(chatBody("serial", `,"stream":true`)))
	run, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer run.Body.Close()
	resp, err := http.Get(hs.URL + "/v1/traces/" + run.Header.Get("X-Braid-Trace") + "/events")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "event: end") {
		t.Errorf("following a trace beside its completion: %d %s", resp.StatusCode, b[:min(len(b), 300)])
	}
}

// One request's threads and tokens are bounded: passing either bound
// fails the request with a 400 naming the flag, streamed or not.
func TestRequestLimits(t *testing.T) {
	_, hs := newTestServer(t, Options{RequestThreads: 3, RequestTokens: 100})
	for _, c := range []struct{ name, strategy, extra, want string }{
		{"threads", "vote:k=8", `,"max_tokens":10`, "--request-threads"},
		{"tokens", "serial", "", "--request-tokens"},
	} {
		resp, body := post(t, hs.URL+"/v1/chat/completions", "", chatBody(c.strategy, c.extra))
		if resp.StatusCode != 400 || !strings.Contains(string(body), c.want) {
			t.Errorf("%s: %d %s", c.name, resp.StatusCode, body)
		}
		resp, body = post(t, hs.URL+"/v1/chat/completions", "", chatBody(c.strategy, c.extra+`,"stream":true`))
		if resp.StatusCode != 200 || !strings.Contains(string(body), c.want) || strings.Contains(string(body), "[DONE]") {
			t.Errorf("%s, streamed: %d %s", c.name, resp.StatusCode, body)
		}
	}
	if resp, body := post(t, hs.URL+"/v1/completions", "", `{"model":"countdown","prompt":"x","n":4}`); resp.StatusCode != 400 || !strings.Contains(string(body), "--request-threads") {
		t.Errorf("raw completions, n=4: %d %s", resp.StatusCode, body)
	}
}

// A page on another origin cannot drive the server (a text/plain POST
// needs no preflight), unless AllowOrigins names it; the server's own
// pages can.
func TestOtherOriginsAreRefused(t *testing.T) {
	_, hs := newTestServer(t, Options{AllowOrigins: []string{"https://app.example"}})
	send := func(origin, site string) (*http.Response, string) {
		req, _ := http.NewRequest("POST", hs.URL+"/v1/chat/completions", strings.NewReader(chatBody("direct", "")))
		req.Header.Set("Content-Type", "text/plain")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := send("https://evil.example", ""); resp.StatusCode != 403 || !strings.Contains(body, "--allow-origin") {
		t.Errorf("another origin: %d %s", resp.StatusCode, body)
	}
	if resp, body := send("null", ""); resp.StatusCode != 403 {
		t.Errorf("origin null (a sandboxed page): %d %s", resp.StatusCode, body)
	}
	if resp, body := send("", "cross-site"); resp.StatusCode != 403 {
		t.Errorf("cross-site without an origin: %d %s", resp.StatusCode, body)
	}
	if resp, body := send(hs.URL, "same-origin"); resp.StatusCode != 200 {
		t.Errorf("the server's own page: %d %s", resp.StatusCode, body)
	}
	resp, body := send("https://app.example", "cross-site")
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("an allowed origin: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	req, _ := http.NewRequest("OPTIONS", hs.URL+"/v1/chat/completions", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	pre, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pre.Body.Close()
	if pre.StatusCode != 204 || !strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight of an allowed origin: %d %v", pre.StatusCode, pre.Header)
	}
	if _, err := New(Options{Backend: canned(""), Model: "m", Task: countdown.Task{}, AllowOrigins: []string{"app.example"}}); err == nil {
		t.Error("an origin without a scheme was accepted")
	}
}

// On loopback, the server answers only loopback Host names and the ones
// it is told: a domain an attacker points at 127.0.0.1 gets a 403.
func TestLoopbackChecksHost(t *testing.T) {
	s, err := New(Options{Backend: newReplay(t, problem27), Model: "countdown", Task: countdown.Task{}, AllowHosts: []string{"braid.internal"}})
	if err != nil {
		t.Fatal(err)
	}
	url, stop, done := listen(s, time.Second)
	defer func() { stop(); <-done }()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(url, "http://"))
	for host, want := range map[string]int{
		"evil.example:" + port: 403, "127.0.0.1:" + port: 200, "localhost:" + port: 200, "[::1]:" + port: 200,
		"app.localhost": 200, "braid.internal:" + port: 200, "127.0.0.1.evil.example": 403,
	} {
		req, _ := http.NewRequest("GET", url+"/v1/models", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
}

// A stream cut short by a shutdown ends with an error event that says so,
// as the docs promise, never silently.
func TestShutdownEndsStreamsWithAnError(t *testing.T) {
	s, err := New(Options{Backend: firehose{}, Model: "countdown", Task: countdown.Task{}, Raw: firehose{}})
	if err != nil {
		t.Fatal(err)
	}
	url, stop, done := listen(s, 200*time.Millisecond)
	got := make(chan string, 2)
	for _, path := range []string{"/v1/chat/completions", "/v1/completions"} {
		body := chatBody("serial", `,"stream":true`)
		if path == "/v1/completions" {
			body = `{"model":"countdown","prompt":"` + strings.Repeat("x", 20) + `","stream":true}`
		}
		go func() {
			resp, err := http.Post(url+path, "application/json", strings.NewReader(body))
			if err != nil {
				got <- path + ": " + err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got <- path + ": " + string(b)
		}()
	}
	time.Sleep(150 * time.Millisecond)
	stop()
	if err := <-done; err != nil && err != http.ErrServerClosed {
		t.Errorf("shutdown: %v", err)
	}
	for range 2 {
		if b := <-got; !strings.Contains(b, "shutting down") {
			t.Errorf("a stream cut by the shutdown ends %q", b[max(0, len(b)-200):])
		}
	}
}

// Errors name JSON's types, never Go's.
func TestErrorsNameJSONTypes(t *testing.T) {
	_, hs := newTestServer(t, Options{})
	for _, body := range []string{`{"model":"apr/countdown","messages":"27: 22 26 31 53"}`, `[1,2]`, `{"model":3}`, `{"model":"direct/countdown","messages":[{"role":"user","content":"27: 22 26 31 53"}],"temperature":"hot"}`} {
		resp, b := post(t, hs.URL+"/v1/chat/completions", "", body)
		if resp.StatusCode != 400 || strings.Contains(string(b), "serve.") || strings.Contains(string(b), "[]") || strings.Contains(string(b), "float64") {
			t.Errorf("%s: %d %s", body, resp.StatusCode, b)
		}
	}
}
