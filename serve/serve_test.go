package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/store"
	"github.com/braid-dev/braid/task/countdown"
	taskmath "github.com/braid-dev/braid/task/math"
)

// replay is a backend that answers each prompt with the completion a
// generated rollout has for it, as a model that learned the generator
// would, streamed a token per byte in small chunks. Unknown prompts get
// an empty completion.
type replay struct {
	mu      sync.Mutex
	answers map[string]string
	delay   time.Duration // per chunk, to make runs take time
}

func newReplay(t testing.TB, problems ...countdown.Problem) *replay {
	r := &replay{answers: map[string]string{}}
	for i, p := range problems {
		for _, mode := range []countdown.Mode{countdown.ModeParallel, countdown.ModeSerial} {
			rec, err := countdown.TraceConfig{Format: mode, ModeHeader: true}.Generate(p, 21, i)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range rec.Sequences {
				r.answers[s.Prompt] = s.Completion
			}
		}
	}
	return r
}

func (r *replay) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	r.mu.Lock()
	c, ok := r.answers[req.Prompt]
	if !ok {
		// A continuation (a client resuming a dropped stream): the rest
		// of the completion whose prompt and start it is.
		for p, full := range r.answers {
			if rest, ok := strings.CutPrefix(req.Prompt, p); ok && strings.HasPrefix(full, rest) {
				c = full[len(rest):]
				break
			}
		}
	}
	r.mu.Unlock()
	finish := backend.FinishStop
	if req.MaxTokens > 0 && len(c) > req.MaxTokens {
		c, finish = c[:req.MaxTokens], backend.FinishLength
	}
	for i := 0; i < len(c); i += 7 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		j := min(i+7, len(c))
		if req.OnChunk != nil {
			req.OnChunk(backend.Chunk{Text: c[i:j], Tokens: make([]backend.Token, j-i)})
		}
		if r.delay > 0 {
			time.Sleep(r.delay)
		}
	}
	return &backend.Completion{Text: c, Finish: finish, Usage: backend.Usage{PromptTokens: len(req.Prompt), CompletionTokens: len(c)}}, nil
}

var problem27 = countdown.Problem{Target: 27, Numbers: []int{22, 26, 31, 53}}

func newTestServer(t testing.TB, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	if opts.Backend == nil {
		opts.Backend = newReplay(t, problem27)
	}
	if opts.Model == "" {
		opts.Model, opts.Task, opts.Raw = "countdown", countdown.Task{}, opts.Backend
	}
	if opts.Task == nil {
		opts.Task, opts.Temperature = taskmath.Task{}, 1
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return s, hs
}

func post(t testing.TB, url, key, body string) (*http.Response, []byte) {
	t.Helper()
	return call(t, "POST", url, key, body)
}

// call sends a request with the API key, if any, and reads the answer.
func call(t testing.TB, method, url, key, body string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// Every bad request is answered with a 4xx and an OpenAI-style error that
// says what was wrong, and the server stays healthy.
func TestMalformedRequests(t *testing.T) {
	_, hs := newTestServer(t, Options{APIKey: "k", MaxBodyBytes: 1 << 20})
	chat := hs.URL + "/v1/chat/completions"
	good := `{"model":"apr/countdown","messages":[{"role":"user","content":"27: 22 26 31 53"}]}`
	for _, c := range []struct {
		name, url, key, body string
		status               int
		says                 string
	}{
		{"no key", chat, "", good, 401, "API key"},
		{"wrong key", chat, "x", good, 401, "API key"},
		{"broken JSON", chat, "k", `{"model": "countdown", "messages": [`, 400, "not valid JSON"},
		{"empty body", chat, "k", ``, 400, "empty"},
		{"two values", chat, "k", good + good, 400, "more than one"},
		{"wrong type", chat, "k", `{"model": 7, "messages": []}`, 400, `"model"`},
		{"messages wrong type", chat, "k", `{"model": "countdown", "messages": "hi"}`, 400, `"messages"`},
		{"no messages", chat, "k", `{"model": "countdown", "messages": []}`, 400, "at least one message"},
		{"no model", chat, "k", `{"messages": [{"role":"user","content":"27: 22 26 31 53"}]}`, 400, "model: required"},
		{"unknown model", chat, "k", `{"model": "gpt-4o", "messages": [{"role":"user","content":"27: 22 26 31 53"}]}`, 404, "does not exist"},
		{"unknown strategy", chat, "k", `{"model": "ponder/countdown", "messages": [{"role":"user","content":"27: 22 26 31 53"}]}`, 400, "want direct, serial, apr"},
		{"negative max_tokens", chat, "k", `{"model": "countdown", "max_tokens": -5, "messages": [{"role":"user","content":"27: 22 26 31 53"}]}`, 400, "negative"},
		{"temperature", chat, "k", `{"model": "countdown", "temperature": 7, "messages": [{"role":"user","content":"27: 22 26 31 53"}]}`, 400, "temperature"},
		{"n", chat, "k", `{"model": "countdown", "n": 3, "messages": [{"role":"user","content":"27: 22 26 31 53"}]}`, 400, "n: only 1"},
		{"not a problem", chat, "k", `{"model": "countdown", "messages": [{"role":"user","content":"What is love?"}]}`, 400, "expected a Countdown problem"},
		{"no user message", chat, "k", `{"model": "countdown", "messages": [{"role":"system","content":"27: 22 26 31 53"}]}`, 400, "user message"},
		{"image part", chat, "k", `{"model": "countdown", "messages": [{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400, "image_url"},
		{"bad effort", chat, "k", `{"model": "countdown", "reasoning_effort": "max", "messages": [{"role":"user","content":"27: 22 26 31 53"}]}`, 400, "reasoning_effort"},
		{"5 MB body", chat, "k", `{"model": "countdown", "messages": [{"role":"user","content":"` + strings.Repeat("a", 5<<20) + `"}]}`, 413, "over 1048576 bytes"},
		{"raw with strategy", hs.URL + "/v1/completions", "k", `{"model": "apr/countdown", "prompt": "x"}`, 404, "without a strategy"},
		{"raw bad prompt", hs.URL + "/v1/completions", "k", `{"model": "countdown", "prompt": {"a": 1}}`, 400, "prompt"},
		{"raw bad stop", hs.URL + "/v1/completions", "k", `{"model": "countdown", "prompt": "x", "stop": 3}`, 400, "stop"},
		{"no endpoint", hs.URL + "/v1/embeddings", "k", `{}`, 404, "no endpoint"},
	} {
		resp, body := post(t, c.url, c.key, c.body)
		var e apiError
		if resp.StatusCode != c.status || json.Unmarshal(body, &e) != nil || e.Error.Type == "" || !strings.Contains(e.Error.Message, c.says) {
			t.Errorf("%s: %d %s; want %d and an error saying %q", c.name, resp.StatusCode, clipBody(body), c.status, c.says)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", c.name, ct)
		}
	}
	// Still healthy, and still answering.
	if resp, err := http.Get(hs.URL + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after the bad requests: %v %v", resp, err)
	}
	resp, body := post(t, chat, "k", good)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"correct":true`) {
		t.Errorf("a good request after the bad ones: %d %s", resp.StatusCode, clipBody(body))
	}
}

func clipBody(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// A client over its limit of requests in flight is told to retry.
func TestPerClientLimit(t *testing.T) {
	slow := newReplay(t, problem27)
	slow.delay = 2 * time.Millisecond
	_, hs := newTestServer(t, Options{Backend: slow, Model: "countdown", Task: countdown.Task{}, PerClient: 1})
	body := `{"model":"apr/countdown","stream":true,"messages":[{"role":"user","content":"27: 22 26 31 53"}]}`
	first, err := http.Post(hs.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Body.Close()
	resp, b := post(t, hs.URL+"/v1/chat/completions", "", body)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "in flight") {
		t.Errorf("a second request at once: %d %s", resp.StatusCode, b)
	}
	io.Copy(io.Discard, first.Body)
}

// The trace API replays a finished run's events, and a client that
// reconnects with Last-Event-ID gets only the rest.
func TestTraceEventsResume(t *testing.T) {
	_, hs := newTestServer(t, Options{})
	resp, body := post(t, hs.URL+"/v1/chat/completions", "", `{"model":"apr/countdown","messages":[{"role":"user","content":"27: 22 26 31 53"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	id := resp.Header.Get("X-Braid-Trace")
	var view traceView
	r, err := http.Get(hs.URL + "/v1/traces/" + id)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(r.Body).Decode(&view)
	r.Body.Close()
	if view.Status != "done" || view.Correct == nil || !*view.Correct || view.Result == nil || view.Result.Threads < 2 || view.Events == 0 {
		t.Fatalf("trace %+v", view)
	}
	all := readEvents(t, hs.URL+"/v1/traces/"+id+"/events", "")
	if len(all) != view.Events+1 || all[len(all)-1].name != "end" {
		t.Fatalf("%d events streamed, the trace has %d (+ end)", len(all), view.Events)
	}
	rest := readEvents(t, hs.URL+"/v1/traces/"+id+"/events", "9")
	if len(rest) != len(all)-10 || rest[0].id != "10" || rest[0].data != all[10].data {
		t.Errorf("after Last-Event-ID 9: %d events from id %q, want %d from 10", len(rest), rest[0].id, len(all)-10)
	}
	req, _ := http.NewRequest("GET", hs.URL+"/v1/traces/"+id+"/events", nil)
	req.Header.Set("Last-Event-ID", "99999")
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 400 {
		t.Errorf("a Last-Event-ID past the end: %v %v", r.StatusCode, err)
	}
	if r, _ := http.Get(hs.URL + "/v1/traces/trace-nope"); r.StatusCode != 404 {
		t.Errorf("an unknown trace: %d", r.StatusCode)
	}
}

type sseEvent struct{ id, name, data string }

func readEvents(t testing.TB, url, lastID string) []sseEvent {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []sseEvent
	var e sseEvent
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			out = append(out, e)
			e = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			e.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			e.name = line[7:]
		case strings.HasPrefix(line, "data: "):
			e.data = line[6:]
		}
	}
	return out
}

// /metrics speaks Prometheus, and counts what the server did.
func TestMetrics(t *testing.T) {
	_, hs := newTestServer(t, Options{Stats: func() (int, int) { return 3, 5 }})
	post(t, hs.URL+"/v1/chat/completions", "", `{"model":"serial/countdown","messages":[{"role":"user","content":"27: 22 26 31 53"}]}`)
	post(t, hs.URL+"/v1/chat/completions", "", `{"model":"nope","messages":[]}`)
	r, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	for _, want := range []string{
		`braid_requests_total{code="200",route="POST /v1/chat/completions"} 1`,
		`braid_requests_total{code="404",route="POST /v1/chat/completions"} 1`,
		`braid_tokens_total{kind="completion"}`, `braid_live_threads 0`, `braid_engine_queue_depth 5`,
		`braid_request_duration_seconds_bucket`, `braid_requests_in_flight 0`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// listen serves s on a loopback port, shutting down with grace once stop
// is called; done receives what ListenAndServe returned.
func listen(s *Server, grace time.Duration) (url string, stop context.CancelFunc, done <-chan error) {
	ctx, stop := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	ended := make(chan error, 1)
	go func() {
		ended <- s.ListenAndServe(ctx, "127.0.0.1:0", grace, func(a net.Addr) { addr <- a.String() })
	}()
	return "http://" + <-addr, stop, ended
}

// Shutting down with a request in flight gives it the grace period, then
// cancels it; the server returns.
func TestGracefulShutdown(t *testing.T) {
	slow := newReplay(t, problem27)
	slow.delay = 200 * time.Millisecond
	s, err := New(Options{Backend: slow, Model: "countdown", Task: countdown.Task{}})
	if err != nil {
		t.Fatal(err)
	}
	url, stop, done := listen(s, 200*time.Millisecond)
	got := make(chan int, 1)
	go func() {
		resp, err := http.Post(url+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"apr/countdown","messages":[{"role":"user","content":"27: 22 26 31 53"}]}`))
		if err != nil {
			got <- -1
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	time.Sleep(100 * time.Millisecond)
	stop()
	select {
	case err := <-done:
		if err != nil && err != http.ErrServerClosed {
			t.Errorf("shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not stop")
	}
	if code := <-got; code != 503 && code != -1 {
		t.Errorf("a request longer than the grace period: %d, want 503 or a closed connection", code)
	}
}

// canned answers every prompt with one worked solution.
type canned string

func (c canned) Complete(_ context.Context, req *backend.Request) (*backend.Completion, error) {
	if req.OnChunk != nil {
		req.OnChunk(backend.Chunk{Text: string(c), Tokens: make([]backend.Token, 5)})
	}
	return &backend.Completion{Text: string(c), Finish: backend.FinishStop, Usage: backend.Usage{PromptTokens: 11, CompletionTokens: 5}}, nil
}

// Over a general (remote) chat model, the strategy in the model name runs
// on the question and the answer is the one extracted; usage sums the
// samples.
func TestGeneralModelStrategies(t *testing.T) {
	_, hs := newTestServer(t, Options{Backend: canned("Half of 48 is 24, and 48+24 = 72. \\boxed{72}"), Model: "Qwen/Qwen3-8B"})
	resp, body := post(t, hs.URL+"/v1/chat/completions", "", `{"model":"vote:k=3/Qwen/Qwen3-8B","temperature":0.7,
		"messages":[{"role":"user","content":"Natalia sold 48 clips in April and half as many in May. How many in all?"}]}`)
	var out struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
		Braid struct {
			Strategy string `json:"strategy"`
			Threads  int    `json:"threads"`
		} `json:"braid"`
	}
	if err := json.Unmarshal(body, &out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if out.Choices[0].Message.Content != "72" || out.Braid.Strategy != "vote:k=3" || out.Usage.CompletionTokens != 15 || out.Usage.PromptTokens != 33 {
		t.Errorf("answer %q by %s, usage %+v", out.Choices[0].Message.Content, out.Braid.Strategy, out.Usage)
	}
	// The model alone runs the default strategy; a name it does not have is a 404.
	resp, body = post(t, hs.URL+"/v1/chat/completions", "", `{"model":"Qwen/Qwen3-8B","messages":[{"role":"user","content":"2+2?"}]}`)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"strategy":"serial"`) {
		t.Errorf("the bare model: %d %s", resp.StatusCode, clipBody(body))
	}
	if resp, _ := post(t, hs.URL+"/v1/chat/completions", "", `{"model":"vote:k=3/Qwen","messages":[{"role":"user","content":"2+2?"}]}`); resp.StatusCode != 404 {
		t.Errorf("a model this server lacks: %d", resp.StatusCode)
	}
	if resp, _ := post(t, hs.URL+"/v1/completions", "", `{"model":"Qwen/Qwen3-8B","prompt":"x"}`); resp.StatusCode != 400 {
		t.Errorf("raw completions of a remote model: %d", resp.StatusCode)
	}
	resp, body = post(t, hs.URL+"/v1/chat/completions", "", `{"model":"Qwen/Qwen3-8B","braid":{"join_at_goal":true},"messages":[{"role":"user","content":"2+2?"}]}`)
	if resp.StatusCode != 400 || !strings.Contains(string(body), "join_at_goal") {
		t.Errorf("join_at_goal on a general model: %d %s", resp.StatusCode, clipBody(body))
	}
	// Best-of-N would pick by the reference answer, an oracle: refused.
	resp, body = post(t, hs.URL+"/v1/chat/completions", "", `{"model":"best:k=3/Qwen/Qwen3-8B","messages":[{"role":"user","content":"2+2?"}]}`)
	if resp.StatusCode != 400 || !strings.Contains(string(body), "pass@k") {
		t.Errorf("best-of-N on a general model: %d %s", resp.StatusCode, clipBody(body))
	}
}

// /v1/models lists, for every task, the strategies of the one family that
// the task can run: apr and best-of-N where the task has a parallel
// protocol and a checker, not where it has not.
func TestModelsListWhatTheTaskRuns(t *testing.T) {
	for _, c := range []struct {
		opts       Options
		has, lacks []string
	}{
		{Options{}, []string{"apr/countdown", "vote:k=4:apr/countdown", "best:k=8/countdown", "serial/countdown", "direct/countdown"}, nil},
		{Options{Backend: canned("x"), Model: "m"}, []string{"serial/m", "vote:k=8/m", "hybrid:effort=deep/m", "aggregate:k=4/m"},
			[]string{"apr/m", "best:k=8/m", "vote:k=4:apr/m"}},
	} {
		_, hs := newTestServer(t, c.opts)
		resp, err := http.Get(hs.URL + "/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		var list struct{ Data []struct{ ID string } }
		json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		ids := map[string]bool{}
		for _, m := range list.Data {
			ids[m.ID] = true
		}
		for _, id := range c.has {
			if !ids[id] {
				t.Errorf("%s not listed: %v", id, ids)
			}
		}
		for _, id := range c.lacks {
			if ids[id] {
				t.Errorf("%s listed, though its task cannot run it", id)
			}
		}
	}
}

// A client that leaves mid-run stops its threads, and the live-threads
// gauge comes back to zero; a streamed answer cut by the time limit says
// so in the stream.
func TestCutShortRuns(t *testing.T) {
	slow := newReplay(t, problem27)
	slow.delay = 5 * time.Millisecond
	_, hs := newTestServer(t, Options{Backend: slow, Model: "countdown", Task: countdown.Task{}, Timeout: 300 * time.Millisecond})
	body := `{"model":"apr/countdown","stream":true,"messages":[{"role":"user","content":"27: 22 26 31 53"}]}`
	resp, b := post(t, hs.URL+"/v1/chat/completions", "", body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "longer than the server's limit") || strings.Contains(string(b), "[DONE]") {
		t.Errorf("a stream past the time limit: %d %s", resp.StatusCode, clipBody(b[max(0, len(b)-300):]))
	}
	time.Sleep(100 * time.Millisecond)
	r, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(m), "braid_live_threads 0\n") {
		t.Errorf("live threads after the cut run: %s", grepLine(string(m), "braid_live_threads "))
	}
}

func grepLine(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return "(none)"
}

// The UI's runs list is an empty array on a fresh database, and a run's
// report renders.
func TestRunsForTheUI(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "braid.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, hs := newTestServer(t, Options{Runs: st})
	get := func(path string) (int, string) {
		r, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	if code, body := get("/v1/braid/runs"); code != 200 || !strings.Contains(body, `"runs":[]`) {
		t.Errorf("runs of a fresh database: %d %s", code, body)
	}
	st.StartRun(ctx, "r1", map[string]any{"task": "countdown", "strategies": []string{"serial"}})
	st.Save(ctx, "r1", store.Sample{Key: "serial|0|1", Strategy: "serial", Problem: json.RawMessage(`{}`), Correct: true, Usage: reason.Usage{TotalTokens: 10}, TokensToGoal: 5})
	if code, body := get("/v1/braid/runs/r1/report"); code != 200 || !strings.Contains(body, "Accuracy against total tokens") {
		t.Errorf("a run's report: %d %.200s", code, body)
	}
	if code, _ := get("/v1/braid/runs/nope/report"); code != 404 {
		t.Errorf("an unknown run's report: %d", code)
	}
}

// Whatever body a client sends to the chat or completions endpoint, the
// server answers
// with an answer or a 4xx JSON error that says what was wrong; never a
// 5xx, never a panic.
func FuzzChatRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"apr/countdown","messages":[{"role":"user","content":"27: 22 26 31 53"}]}`,
		`{"model":"countdown","messages":[{"role":"user","content":[{"type":"text","text":"make 24 from 4 9 3 1"}]}],"max_tokens":50}`,
		`{"model":"vote:k=2/countdown","temperature":1,"seed":3,"messages":[{"role":"user","content":"10: 2 5 1"}]}`,
		`{"model":"countdown","braid":{"strategy":"serial","env":"fill"},"messages":[{"role":"user","content":"7: 3 4"}]}`,
		`{"model":"apr/countdown","braid":{"join_at_goal":true},"messages":[{"role":"user","content":"27: 22 26 31 53"}]}`,
		`{"model":"countdown","reasoning_effort":"low","messages":[{"role":"user","content":"9: 3 3"}]}`,
		`{"messages":null}`, `[]`, `"x"`, `{"model":"countdown","n":0}`,
		`{"model":"direct/countdown","temperature":1e-320,"messages":[{"role":"user","content":"27: 22 26 31 53"}]}`,
		`{"model":"serial/countdown","max_tokens":9223372036854775807,"messages":[{"role":"user","content":"27: 22 26 31 53"}]}`,
		`{"model":"countdown","messages":[{"role":"user","content":"5³: -53 1e3 ⑤ ٢٢"}]}`,
		`{"model":"countdown","stream":true,"messages":[{"role":"user","content":"27: 22 26 31 53"}]}`,
	} {
		f.Add(s)
	}
	_, hs := newTestServer(f, Options{Timeout: 5 * time.Second})
	f.Add(`{"model":"countdown","prompt":"Mode: serial\nCurrent State: 27:[22, 26, 31, 53], Operations: []\n","max_tokens":20,"stop":["\n"],"logprobs":2}`)
	f.Add(`{"model":"countdown","prompt":[1,2,3],"guided_choice":["a","b"]}`)
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{"/v1/chat/completions", "/v1/completions"} {
			resp, b := post(t, hs.URL+path, "", body)
			if resp.StatusCode >= 500 {
				t.Fatalf("%s: %d for %q: %s", path, resp.StatusCode, body, clipBody(b))
			}
			if resp.StatusCode != 200 {
				var e apiError
				if json.Unmarshal(b, &e) != nil || e.Error.Message == "" {
					t.Fatalf("%s: %d without an error body for %q: %s", path, resp.StatusCode, body, clipBody(b))
				}
			}
		}
	})
}

// vLLM's guided choice, as an environment: after each piece the model
// writes, what it may write next is the rest of the choices that piece
// begins, and the completion ends on a whole choice.
func TestGuidedChoice(t *testing.T) {
	g := &guidedChoice{choices: []string{"Moving to Node #0,1\n", "Moving to Node #0,2\n", "Exploring Operation: "}}
	if got := g.Choices(); len(got) != 3 {
		t.Fatalf("at the start: %q", got)
	}
	g.Next("Moving to")
	if got := g.Choices(); len(got) != 2 || got[0] != " Node #0,1\n" || got[1] != " Node #0,2\n" {
		t.Errorf("after %q: %q", "Moving to", got)
	}
	g.Next(" Node #0,2\n")
	if !g.Done() || g.Choices() != nil {
		t.Errorf("a whole choice written: done %v, choices %q", g.Done(), g.Choices())
	}
}

// Kept traces hold at most about TraceBytes of events: older ones go
// first, the newest stays.
func TestTraceMemoryBudget(t *testing.T) {
	s, hs := newTestServer(t, Options{TraceBytes: 64 << 10})
	var ids []string
	for range 3 {
		resp, body := post(t, hs.URL+"/v1/chat/completions", "", `{"model":"apr/countdown","messages":[{"role":"user","content":"27: 22 26 31 53"}]}`)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		ids = append(ids, resp.Header.Get("X-Braid-Trace"))
	}
	one := s.traces.get(ids[2]).size
	if one < 64<<10 {
		t.Fatalf("a trace of %d bytes does not test a budget of 64 KiB", one)
	}
	for i, id := range ids {
		r, err := http.Get(hs.URL + "/v1/traces/" + id)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if want := map[bool]int{true: 200, false: 404}[i == 2]; r.StatusCode != want {
			t.Errorf("trace %d: %d, want %d", i, r.StatusCode, want)
		}
	}
	if got := s.traces.bytes.Load(); got != one {
		t.Errorf("%d bytes counted for the one trace kept, of %d", got, one)
	}
}

// stalling is a replay whose child searches that never reach the goal
// stall until their call is cancelled (or for a minute), and whose child
// that does reach it answers after 100 ms, when its siblings are running.
type stalling struct {
	*replay
	stalled *atomic.Int32
}

func (s stalling) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	s.mu.Lock()
	c := s.answers[req.Prompt]
	s.mu.Unlock()
	if strings.HasPrefix(req.Prompt, "Moving to Node #0,") && !strings.Contains(c, "Goal Reached") {
		s.stalled.Add(1)
		select {
		case <-ctx.Done():
			return &backend.Completion{Finish: backend.FinishCancelled}, ctx.Err()
		case <-time.After(time.Minute):
		}
	} else if strings.HasPrefix(req.Prompt, "Moving to Node #0,") {
		time.Sleep(100 * time.Millisecond)
	}
	return s.replay.Complete(ctx, req)
}

// braid.join_at_goal reaches the apr search: once the child that reaches
// the goal finishes, its stalled siblings are stopped and the run answers.
func TestJoinAtGoalRequest(t *testing.T) {
	b := stalling{newReplay(t, problem27), new(atomic.Int32)}
	_, hs := newTestServer(t, Options{Backend: b})
	start := time.Now()
	resp, body := post(t, hs.URL+"/v1/chat/completions", "", `{"model":"apr/countdown","braid":{"join_at_goal":true},
		"messages":[{"role":"user","content":"27: 22 26 31 53"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, clipBody(body))
	}
	if wall := time.Since(start); wall > 30*time.Second {
		t.Errorf("the run took %s: the stalled children were not stopped", wall)
	}
	if b.stalled.Load() == 0 {
		t.Error("no child stalled: the test shows nothing")
	}
}

// recording answers every request with a boxed 4 and keeps the requests.
type recording struct {
	mu   sync.Mutex
	reqs []backend.Request
}

func (r *recording) Complete(_ context.Context, req *backend.Request) (*backend.Completion, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, *req)
	r.mu.Unlock()
	return &backend.Completion{Text: "\\boxed{4}", Finish: backend.FinishStop, Usage: backend.Usage{CompletionTokens: 3}}, nil
}

// A chat client's system message and earlier turns reach a general model
// with every call; the last user message is the problem.
func TestHistoryReachesTheModel(t *testing.T) {
	b := &recording{}
	_, hs := newTestServer(t, Options{Backend: b, Model: "m"})
	resp, body := post(t, hs.URL+"/v1/chat/completions", "", `{"model":"vote:k=2/m","temperature":1,"messages":[
		{"role":"system","content":"Answer in one line."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello."},
		{"role":"user","content":"What is 2+2?"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	want := []backend.Message{{Role: "system", Content: "Answer in one line."}, {Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello."}}
	if len(b.reqs) != 2 {
		t.Fatalf("%d calls", len(b.reqs))
	}
	for _, r := range b.reqs {
		if !slices.Equal(r.Messages, want) || !strings.HasPrefix(r.Prompt, "What is 2+2?") {
			t.Errorf("a call with messages %v and prompt %q", r.Messages, r.Prompt)
		}
	}
	if resp, _ := post(t, hs.URL+"/v1/chat/completions", "", `{"model":"m","messages":[{"role":"wizard","content":"x"},{"role":"user","content":"2+2?"}]}`); resp.StatusCode != 400 {
		t.Errorf("an unknown role: %d", resp.StatusCode)
	}
}
