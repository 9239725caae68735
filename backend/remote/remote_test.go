package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braid-dev/braid/backend"
)

// fakeServer speaks OpenAI's streaming protocol, answering each request
// with the function's script: text pieces (streamed as events), a finish
// reason, or an HTTP failure.
type fakeServer struct {
	mu       sync.Mutex
	requests []map[string]any
	inFlight atomic.Int32
	peak     atomic.Int32
	respond  func(n int, req map[string]any, w http.ResponseWriter)
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cur := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		p := f.peak.Load()
		if cur <= p || f.peak.CompareAndSwap(p, cur) {
			break
		}
	}
	var req map[string]any
	body, _ := io.ReadAll(r.Body)
	json.Unmarshal(body, &req)
	req["_path"] = r.URL.Path
	req["_auth"] = r.Header.Get("Authorization")
	f.mu.Lock()
	f.requests = append(f.requests, req)
	n := len(f.requests)
	f.mu.Unlock()
	f.respond(n, req, w)
}

// sse writes a completions stream of the pieces, then a finish reason,
// usage and [DONE].
func sse(w http.ResponseWriter, chat bool, finish string, pieces ...string) {
	w.Header().Set("Content-Type", "text/event-stream")
	for _, p := range pieces {
		var ev any
		if chat {
			ev = map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": p}, "finish_reason": nil}}}
		} else {
			ev = map[string]any{"choices": []any{map[string]any{"index": 0, "text": p, "finish_reason": nil}}}
		}
		b, _ := json.Marshal(ev)
		fmt.Fprintf(w, "data: %s\n\n", b)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":%q}]}\n\n", finish)
	fmt.Fprintf(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":%d,\"prompt_tokens_details\":{\"cached_tokens\":3}}}\n\n", len(pieces))
	fmt.Fprint(w, "data: [DONE]\n\n")
}

func newClient(t *testing.T, f *fakeServer, opts Options) *Client {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	if opts.Endpoints == nil {
		opts.Endpoints = []string{srv.URL + "/v1"}
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStreamsACompletion(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) { sse(w, false, "stop", "Hel", "lo", " world") }}
	c := newClient(t, f, Options{Model: "m", APIKey: "k"})
	var chunks []string
	comp, err := c.Complete(context.Background(), &backend.Request{Prompt: "Say hi", MaxTokens: 10, Temperature: 0.5, Stop: []string{"\n"},
		OnChunk: func(ch backend.Chunk) { chunks = append(chunks, ch.Text) }})
	if err != nil {
		t.Fatal(err)
	}
	if comp.Text != "Hello world" || strings.Join(chunks, "|") != "Hel|lo| world" || comp.Finish != backend.FinishStop {
		t.Errorf("text %q, chunks %q, finish %q", comp.Text, chunks, comp.Finish)
	}
	if u := comp.Usage; u.PromptTokens != 7 || u.CompletionTokens != 3 || u.CachedPromptTokens != 3 {
		t.Errorf("usage %+v", u)
	}
	r := f.requests[0]
	if r["_path"] != "/v1/completions" || r["prompt"] != "Say hi" || r["model"] != "m" || r["stream"] != true || r["_auth"] != "Bearer k" ||
		r["max_tokens"] != float64(10) || r["temperature"] != 0.5 {
		t.Errorf("request %v", r)
	}
}

func TestChatWithReasoning(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"think \"},\"finish_reason\":null}]}\n\n")
		fmt.Fprint(w, ": a comment line\n\n")
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"42\"},\"finish_reason\":\"stop\"}]}\n\n")
		fmt.Fprint(w, "data: [DONE]\n\n")
	}}
	c := newClient(t, f, Options{Chat: true, ChatTemplateKwargs: map[string]any{"enable_thinking": true}, ReasoningEffort: "high"})
	comp, err := c.Complete(context.Background(), &backend.Request{Prompt: "6*7?"})
	if err != nil {
		t.Fatal(err)
	}
	if comp.Text != "think 42" {
		t.Errorf("text %q", comp.Text)
	}
	r := f.requests[0]
	msgs, _ := r["messages"].([]any)
	if r["_path"] != "/v1/chat/completions" || len(msgs) != 1 || r["reasoning_effort"] != "high" || r["chat_template_kwargs"] == nil {
		t.Errorf("request %v", r)
	}
	if _, err := c.Complete(context.Background(), &backend.Request{PromptTokens: []int{1}}); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("token prompt to chat: %v", err)
	}
}

func TestRetriesServerErrorsAndRateLimits(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
		switch n {
		case 1:
			http.Error(w, `{"error":{"message":"overloaded"}}`, http.StatusInternalServerError)
		case 2:
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":{"message":"slow down"}}`, http.StatusTooManyRequests)
		default:
			sse(w, false, "stop", "ok")
		}
	}}
	c := newClient(t, f, Options{})
	start := time.Now()
	comp, err := c.Complete(context.Background(), &backend.Request{Prompt: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if comp.Text != "ok" || len(f.requests) != 3 {
		t.Errorf("text %q after %d requests", comp.Text, len(f.requests))
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried after %s, before the second the 429 asked for", d)
	}
}

func TestNoRetryOnClientErrors(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"message":"max_tokens is too large","type":"invalid_request_error"}}`)
	}}
	c := newClient(t, f, Options{})
	_, err := c.Complete(context.Background(), &backend.Request{Prompt: "x"})
	if err == nil || !strings.Contains(err.Error(), "max_tokens is too large") || len(f.requests) != 1 {
		t.Errorf("%v after %d requests", err, len(f.requests))
	}
}

// An endpoint's credentials reach its server (the user's password as basic
// auth, a key in the query after the request's path), and no message
// names them: not a failed request's, nor a refused endpoint's.
func TestEndpointCredentialsStayOutOfMessages(t *testing.T) {
	t.Setenv("BRAID_API_KEY", "")
	t.Setenv("OPENAI_API_KEY", "")
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pw, _ := r.BasicAuth()
		got = append(got, r.URL.Path+" "+r.URL.Query().Get("api_key")+" "+user+":"+pw)
		http.Error(w, `{"error":{"message":"overloaded"}}`, http.StatusInternalServerError)
	}))
	defer srv.Close()
	secret := func(what string, err error) {
		t.Helper()
		if err == nil || strings.Contains(err.Error(), "s3cretpw") || strings.Contains(err.Error(), "k3ysecret") {
			t.Errorf("%s: %v", what, err)
		}
	}
	for _, base := range []string{srv.URL, "http://127.0.0.1:1"} {
		u := strings.Replace(base, "://", "://user:s3cretpw@", 1) + "/v1?api_key=k3ysecret"
		c, err := New(Options{Endpoints: []string{u}, Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Complete(context.Background(), &backend.Request{Prompt: "x"})
		secret(base, err)
		if err != nil && !strings.Contains(err.Error(), "user:xxxxx@127.0.0.1:") {
			t.Errorf("%s: the message does not name the endpoint: %v", base, err)
		}
	}
	if len(got) != 1 || got[0] != "/v1/completions k3ysecret user:s3cretpw" {
		t.Errorf("the server saw %q", got)
	}
	for _, bad := range []string{"ftp://user:s3cretpw@h/v1?api_key=k3ysecret", "http://user:s3cretpw%zz@h/v1?api_key=k3ysecret"} {
		_, err := New(Options{Endpoints: []string{bad}})
		secret(bad, err)
	}
}

// A connection dropped mid-stream is retried as a continuation: the text
// streamed so far joins the prompt.
func TestDroppedStreamContinues(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"text\":\"first \",\"finish_reason\":null}]}\n\n")
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		sse(w, false, "stop", "second")
	}}
	c := newClient(t, f, Options{})
	comp, err := c.Complete(context.Background(), &backend.Request{Prompt: "go: "})
	if err != nil {
		t.Fatal(err)
	}
	if comp.Text != "first second" || len(f.requests) != 2 || f.requests[1]["prompt"] != "go: first " {
		t.Errorf("text %q; second prompt %v", comp.Text, f.requests[len(f.requests)-1]["prompt"])
	}
}

func TestSlowFirstByteTimesOut(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
		if n == 1 {
			time.Sleep(300 * time.Millisecond)
		}
		sse(w, false, "stop", "late")
	}}
	c := newClient(t, f, Options{Timeout: 100 * time.Millisecond})
	comp, err := c.Complete(context.Background(), &backend.Request{Prompt: "x"})
	if err != nil || comp.Text != "late" || len(f.requests) != 2 {
		t.Errorf("%v, %+v after %d requests", err, comp, len(f.requests))
	}
}

// equalsEnv writes "[" + "X" + "]" after every "=" the model writes and is
// done after two.
type equalsEnv struct{ fills int }

func (e *equalsEnv) Begin() (string, error) { return "", nil }
func (e *equalsEnv) Next(w string) (string, error) {
	if w == "=" {
		e.fills++
		return "X\n", nil
	}
	return "", nil
}
func (e *equalsEnv) Choices() []string { return nil }
func (e *equalsEnv) Done() bool        { return e.fills >= 2 }

func TestEnvironmentStopsAndContinues(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
		// The model would write its own result after "="; the client
		// must cut it and continue after the environment's.
		sse(w, false, "stop", "a", "b=wrong", " more")
	}}
	c := newClient(t, f, Options{})
	comp, err := c.Complete(context.Background(), &backend.Request{Prompt: "P:", Env: &equalsEnv{}})
	if err != nil {
		t.Fatal(err)
	}
	if comp.Text != "ab=X\nab=X\n" || comp.Finish != backend.FinishStop || len(f.requests) != 2 {
		t.Errorf("text %q, finish %q, %d requests", comp.Text, comp.Finish, len(f.requests))
	}
	if f.requests[1]["prompt"] != "P:ab=X\n" {
		t.Errorf("the second request continued from %q", f.requests[1]["prompt"])
	}
}

func TestConcurrencyLimitAndRouting(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
		time.Sleep(20 * time.Millisecond)
		sse(w, false, "stop", "ok")
	}}
	c := newClient(t, f, Options{MaxConcurrent: 2})
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			if _, err := c.Complete(context.Background(), &backend.Request{Prompt: fmt.Sprint(i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if p := f.peak.Load(); p > 2 {
		t.Errorf("%d requests in flight at once, the limit is 2", p)
	}
	// Requests with one affinity key reach one server.
	var hits [2]atomic.Int32
	var urls []string
	for i := range hits {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			sse(w, false, "stop", "ok")
		}))
		defer srv.Close()
		urls = append(urls, srv.URL+"/v1")
	}
	two, err := New(Options{Endpoints: urls})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if _, err := two.Complete(context.Background(), &backend.Request{Prompt: fmt.Sprint("call ", i), Affinity: "thread 0"}); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := hits[0].Load(), hits[1].Load(); a != 8 && b != 8 {
		t.Errorf("one thread's calls went %d and %d ways", a, b)
	}
	if _, err := New(Options{Endpoints: []string{"ftp://x"}}); err == nil {
		t.Error("an ftp endpoint was accepted")
	}
}

// Cancelling the context ends the request at once and leaves no goroutine
// behind.
func TestCancelLeavesNoGoroutine(t *testing.T) {
	release := make(chan struct{})
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"text\":\"partial\",\"finish_reason\":null}]}\n\n")
		w.(http.Flusher).Flush()
		<-release
	}}
	c := newClient(t, f, Options{})
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := c.Complete(ctx, &backend.Request{Prompt: "x", OnChunk: func(backend.Chunk) { cancel() }})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling did not end the request")
	}
	close(release)
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after the request, %d before", n, before)
	}
}

// choiceEnv offers two whole lines as choices and is done after one.
// choiceEnv is done after need lines (2 when 0).
type choiceEnv struct{ lines, need int }

func (e *choiceEnv) Begin() (string, error) { return "", nil }
func (e *choiceEnv) Next(w string) (string, error) {
	if strings.HasSuffix(w, "\n") {
		e.lines++
	}
	return "", nil
}
func (e *choiceEnv) Choices() []string { return []string{"left\n", "right\n"} }
func (e *choiceEnv) Done() bool        { return e.lines >= max(2, e.need) }

// A guided request ends with its choice; the client goes on until the
// environment is done, and sends the choices to the server.
func TestGuidedChoicesContinue(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) { sse(w, false, "stop", "left\n") }}
	c := newClient(t, f, Options{GuidedChoice: true})
	comp, err := c.Complete(context.Background(), &backend.Request{Prompt: "go:", Env: &choiceEnv{}})
	if err != nil {
		t.Fatal(err)
	}
	if comp.Text != "left\nleft\n" || len(f.requests) != 2 || comp.Finish != backend.FinishStop {
		t.Errorf("text %q after %d requests, finish %q", comp.Text, len(f.requests), comp.Finish)
	}
	so, _ := f.requests[0]["structured_outputs"].(map[string]any)
	if f.requests[0]["guided_choice"] == nil || so["choice"] == nil {
		t.Errorf("request %v carries no choice list", f.requests[0])
	}
}

// doneEnv is done after the first line.
type doneEnv struct{ done bool }

func (e *doneEnv) Begin() (string, error) { return "", nil }
func (e *doneEnv) Next(w string) (string, error) {
	if w == "\n" {
		e.done = true
	}
	return "", nil
}
func (e *doneEnv) Choices() []string { return nil }
func (e *doneEnv) Done() bool        { return e.done }

func TestStreamCutWhenTheEnvironmentIsDone(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, p := range []string{"end", ".\nmore", " junk"} {
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"text\":%q,\"finish_reason\":null}]}\n\n", p)
		}
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n")
	}}
	c := newClient(t, f, Options{})
	comp, err := c.Complete(context.Background(), &backend.Request{Prompt: "x", MaxTokens: 50, Env: &doneEnv{}})
	if err != nil {
		t.Fatal(err)
	}
	if comp.Text != "end.\n" || comp.Finish != backend.FinishStop || comp.Usage.CompletionTokens != 2 {
		t.Errorf("text %q, finish %q, usage %+v", comp.Text, comp.Finish, comp.Usage)
	}
}

func TestPromptTooLong(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"message":"This model's maximum context length is 2048 tokens. However, you requested 3000 tokens."}}`)
	}}
	c := newClient(t, f, Options{})
	if _, err := c.Complete(context.Background(), &backend.Request{Prompt: "x"}); !errors.Is(err, backend.ErrPromptTooLong) {
		t.Errorf("a context-length 400: %v", err)
	}
	if _, err := c.Complete(context.Background(), &backend.Request{PromptTokens: []int{1}, Env: &doneEnv{}}); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("token prompt with an environment: %v", err)
	}
}

func TestEffortIsTheThinkingSwitch(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) { sse(w, true, "stop", "ok") }}
	c := newClient(t, f, Options{Chat: true, ChatTemplateKwargs: map[string]any{"x": 1}})
	for _, effort := range []string{"off", "deep", ""} {
		if _, err := c.Complete(context.Background(), &backend.Request{Prompt: "q", Effort: effort}); err != nil {
			t.Fatal(err)
		}
	}
	off, _ := f.requests[0]["chat_template_kwargs"].(map[string]any)
	deep, _ := f.requests[1]["chat_template_kwargs"].(map[string]any)
	if off["enable_thinking"] != false || off["x"] != float64(1) || f.requests[0]["reasoning_effort"] != nil {
		t.Errorf("effort off sent %v", f.requests[0])
	}
	if deep["enable_thinking"] != true || f.requests[1]["reasoning_effort"] != "high" {
		t.Errorf("effort deep sent %v", f.requests[1])
	}
	if def, _ := f.requests[2]["chat_template_kwargs"].(map[string]any); def["enable_thinking"] != nil {
		t.Errorf("no effort sent %v", f.requests[2])
	}
}

// A chat server is sent the prompt as the user's message and what the
// model has written as an assistant message it continues, through its
// own chat template: the prompt from its ReplyAt, and what
// stop-and-continue wrote, with an environment too.
func TestChatContinuesTheAssistantMessage(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
		sse(w, true, "stop", "a", "b=wrong", " more")
	}}
	c := newClient(t, f, Options{Chat: true})
	messages := func(i int) []any {
		m, _ := f.requests[i]["messages"].([]any)
		return m
	}
	if _, err := c.Complete(context.Background(), &backend.Request{Prompt: "Q?"}); err != nil {
		t.Fatal(err)
	}
	if m := messages(0); len(m) != 1 || f.requests[0]["continue_final_message"] != nil || f.requests[0]["add_generation_prompt"] != nil {
		t.Errorf("a fresh answer sent %v", f.requests[0])
	}
	// The conversation before the prompt goes first, as it is.
	if _, err := c.Complete(context.Background(), &backend.Request{Prompt: "Q2?",
		Messages: []backend.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Q1?"}, {Role: "assistant", Content: "A1."}}}); err != nil {
		t.Fatal(err)
	}
	hist := messages(1)
	if len(hist) != 4 || hist[0].(map[string]any)["role"] != "system" || hist[2].(map[string]any)["content"] != "A1." || hist[3].(map[string]any)["content"] != "Q2?" {
		t.Errorf("a conversation sent %v", hist)
	}
	f.requests = f.requests[:1]
	comp, err := c.Complete(context.Background(), &backend.Request{Prompt: "P:so ", ReplyAt: 2, Env: &equalsEnv{}})
	if err != nil {
		t.Fatal(err)
	}
	if comp.Text != "ab=X\nab=X\n" || len(f.requests) != 3 {
		t.Fatalf("text %q over %d requests", comp.Text, len(f.requests))
	}
	for i, want := range []string{"so ", "so ab=X\n"} {
		m := messages(1 + i)
		user, _ := m[0].(map[string]any)
		asst, _ := m[len(m)-1].(map[string]any)
		r := f.requests[1+i]
		if len(m) != 2 || user["content"] != "P:" || asst["role"] != "assistant" || asst["content"] != want ||
			r["continue_final_message"] != true || r["add_generation_prompt"] != false || r["_path"] != "/v1/chat/completions" {
			t.Errorf("call %d sent %v", 1+i, r)
		}
	}
}

// A request's shared retry budget lets a call retry past its own retries,
// and only while the budget lasts.
func TestRetryBudgetOutlastsACallsOwnRetries(t *testing.T) {
	failing := func(fails int) *fakeServer {
		return &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
			if n <= fails {
				http.Error(w, `{"error":{"message":"overloaded"}}`, http.StatusInternalServerError)
				return
			}
			sse(w, false, "stop", "ok")
		}}
	}
	f := failing(3)
	c := newClient(t, f, Options{Retries: 1})
	comp, err := c.Complete(backend.WithRetryBudget(context.Background(), 2), &backend.Request{Prompt: "x"})
	if err != nil || comp.Text != "ok" || len(f.requests) != 4 {
		t.Errorf("with a budget of 2: %v after %d requests", err, len(f.requests))
	}
	f = failing(3)
	c = newClient(t, f, Options{Retries: 1})
	if _, err := c.Complete(context.Background(), &backend.Request{Prompt: "x"}); err == nil || len(f.requests) != 2 {
		t.Errorf("without a budget: %v after %d requests", err, len(f.requests))
	}
	f = failing(3)
	c = newClient(t, f, Options{Retries: 1})
	if _, err := c.Complete(backend.WithRetryBudget(context.Background(), 1), &backend.Request{Prompt: "x"}); err == nil || len(f.requests) != 3 {
		t.Errorf("with a budget of 1: %v after %d requests", err, len(f.requests))
	}
}

// A connection dropped in the middle of an event is a dropped stream,
// retried from what came whole, not a malformed event.
func TestAnEventCutMidwayIsRetried(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"text\":\"he\",\"finish_reason\":null}]}\n\ndata: {\"choices\":[{\"index\":0,\"te")
			w.(http.Flusher).Flush()
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		sse(w, false, "stop", "llo")
	}}
	c := newClient(t, f, Options{})
	comp, err := c.Complete(context.Background(), &backend.Request{Prompt: "say "})
	if err != nil || comp.Text != "hello" || len(f.requests) != 2 || f.requests[1]["prompt"] != "say he" {
		t.Errorf("%q, %v after %d requests (second prompt %v)", comp.Text, err, len(f.requests), f.requests[1]["prompt"])
	}
}

// A completion of several calls counts every call's prompt as the server
// billed it: each re-sent the text so far. (A call the environment cuts,
// the last here, never reaches its usage, and counts none.)
func TestEveryCallsPromptCounts(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) { sse(w, false, "stop", "left\n") }}
	c := newClient(t, f, Options{GuidedChoice: true})
	comp, err := c.Complete(context.Background(), &backend.Request{Prompt: "go:", Env: &choiceEnv{need: 3}})
	if err != nil || len(f.requests) != 3 {
		t.Fatalf("%v after %d requests", err, len(f.requests))
	}
	if u := comp.Usage; u.PromptTokens != 14 || u.CachedPromptTokens != 6 {
		t.Errorf("usage %+v, want the two answered calls' prompts (7 each, 3 cached)", u)
	}
}

// Routing is rendezvous hashing: an endpoint that goes down loses only
// the keys it held, which spread over the others, and gets them back
// when it is up again.
func TestRoutingMovesOnlyAFallenEndpointsKeys(t *testing.T) {
	c, err := New(Options{Endpoints: []string{"http://a.test/v1", "http://b.test/v1", "http://c.test/v1"}})
	if err != nil {
		t.Fatal(err)
	}
	before := map[string]*endpoint{}
	held := map[*endpoint]int{}
	for i := range 300 {
		k := fmt.Sprintf("thread %d", i)
		before[k] = c.route(k)
		held[before[k]]++
	}
	for _, e := range c.endpoints {
		if held[e] < 60 {
			t.Errorf("%s holds %d of 300 keys", e.name, held[e])
		}
	}
	b := c.endpoints[1]
	b.downUntil.Store(time.Now().Add(time.Hour).UnixNano())
	for k, e := range before {
		now := c.route(k)
		if e != b && now != e || e == b && now == b {
			t.Fatalf("key %q moved from %s to %s", k, e.name, now.name)
		}
	}
	b.downUntil.Store(0)
	for k, e := range before {
		if c.route(k) != e {
			t.Fatalf("key %q did not come back to %s", k, e.name)
		}
	}
}

// Two endpoints, one killed mid-run: every request is answered, each with
// its whole text once, continued on the other from what had streamed.
func TestFailoverWhenAnEndpointDies(t *testing.T) {
	const want = "abcdefghijklmnopqrstuvwxyz0123456789"
	var started atomic.Int32
	serve := func(w http.ResponseWriter, r *http.Request) {
		var req map[string]any
		json.NewDecoder(r.Body).Decode(&req)
		prompt, _ := req["prompt"].(string)
		_, written, _ := strings.Cut(prompt, "|")
		started.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		for _, ch := range want[len(written):] {
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"text\":%q,\"finish_reason\":null}]}\n\n", string(ch))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	}
	a, b := httptest.NewServer(http.HandlerFunc(serve)), httptest.NewServer(http.HandlerFunc(serve))
	defer b.Close()
	c, err := New(Options{Endpoints: []string{a.URL + "/v1", b.URL + "/v1"}, Retries: 8, Cooldown: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	texts := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			comp, err := c.Complete(context.Background(), &backend.Request{Prompt: fmt.Sprintf("%d|", i), Affinity: fmt.Sprint("thread ", i)})
			if err == nil {
				texts[i] = comp.Text
			}
			errs[i] = err
		})
	}
	for started.Load() < n/2 {
		time.Sleep(time.Millisecond)
	}
	a.CloseClientConnections()
	a.Close()
	wg.Wait()
	for i := range n {
		if errs[i] != nil || texts[i] != want {
			t.Errorf("request %d: %q, %v", i, texts[i], errs[i])
		}
	}
	if c.endpoints[0].up() {
		t.Error("the dead endpoint is still routed to")
	}
}

// beginEnv writes "S\n" before the model and "X\n" after every "=", and
// is done after two.
type beginEnv struct{ equalsEnv }

func (e *beginEnv) Begin() (string, error) { return "S\n", nil }

// A model that writes the environment's text itself goes on in the same
// call; one that writes anything else is cut there, and the environment's
// text written for it in the next call. Either way the text is the same.
func TestTheModelMayWriteTheEnvironmentsText(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pieces []string
		calls  int
		second string // the second call's prompt
	}{
		{"agrees", []string{"S", "\na", "b=X", "\nab", "=X\n", "more"}, 1, ""},
		{"differs at the start", []string{"T\nab=X\nab=X\n"}, 2, "P:S\n"},
		{"differs in a fill", []string{"S\na", "b=Y\n"}, 2, "P:S\nab=X\n"},
		{"stops in a fill", []string{"S\nab=X"}, 2, "P:S\nab=X\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
				if n == 1 {
					sse(w, false, "stop", tc.pieces...)
					return
				}
				sse(w, false, "stop", "ab=X\nab=X\n")
			}}
			c := newClient(t, f, Options{})
			comp, err := c.Complete(context.Background(), &backend.Request{Prompt: "P:", Env: &beginEnv{}})
			if err != nil {
				t.Fatal(err)
			}
			want := "S\nab=X\nab=X\n"
			if comp.Text != want || comp.Finish != backend.FinishStop || len(f.requests) != tc.calls {
				t.Errorf("text %q, finish %q, %d calls; want %q in %d", comp.Text, comp.Finish, len(f.requests), want, tc.calls)
			}
			if tc.calls > 1 && f.requests[1]["prompt"] != tc.second {
				t.Errorf("the second call continued from %q, want %q", f.requests[1]["prompt"], tc.second)
			}
		})
	}
}

// A stream that drops while the model is writing the environment's text
// is retried, and the retry's model writes it afresh.
func TestADroppedStreamInAFillStartsItAfresh(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"text\":\"S\\nab=X\",\"finish_reason\":null}]}\n\n")
			w.(http.Flusher).Flush()
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		sse(w, false, "stop", "X\nab=X\n")
	}}
	c := newClient(t, f, Options{})
	comp, err := c.Complete(context.Background(), &backend.Request{Prompt: "P:", Env: &beginEnv{}})
	if err != nil || comp.Text != "S\nab=X\nab=X\n" || len(f.requests) != 2 || f.requests[1]["prompt"] != "P:S\nab=" {
		t.Errorf("%q, %v after %d calls (second prompt %v)", comp.Text, err, len(f.requests), f.requests[len(f.requests)-1]["prompt"])
	}
}

// A thread's tokens are counted as the engine counts them, the
// environment's included, from how the server says its prompts grew:
// llama.cpp's timings with every event, asked for by timings_per_token.
func TestTheEnvironmentsTokensCount(t *testing.T) {
	// Each call: the prompt as the server counts it, then the model's
	// text. The environment's "X\n" is 2 tokens; the prompt 5.
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/event-stream")
		prompt, pieces := 5, []string{"S", "\n", "a", "b", "=", "Y"}
		if n == 2 {
			prompt, pieces = 5+2+3+2, []string{"a", "b", "=", "Z", "more"}
		}
		for _, p := range pieces {
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"text\":%q,\"finish_reason\":null}],\"timings\":{\"cache_n\":%d,\"prompt_n\":1}}\n\n", p, prompt-1)
		}
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	}}
	c := newClient(t, f, Options{})
	comp, err := c.Complete(context.Background(), &backend.Request{Prompt: "P:", Env: &beginEnv{}})
	if err != nil || comp.Text != "S\nab=X\nab=X\n" || len(f.requests) != 2 {
		t.Fatalf("%q, %v after %d calls", comp.Text, err, len(f.requests))
	}
	for _, r := range f.requests {
		if r["timings_per_token"] != true || r["stream_options"].(map[string]any)["continuous_usage_stats"] != true {
			t.Errorf("a call with an environment asked for no counts per event: %v", r)
		}
	}
	// The thread: "S\n" (2, written by the model for the environment),
	// "ab=" (3, the model's), "X\n" (2, filled), "ab=" (3), "X\n" (2
	// filled): 12 tokens, 6 filled.
	u := comp.Usage
	if u.CompletionTokens != 12 || u.FilledTokens != 6 || u.PromptTokens != 5+12 || u.CachedPromptTokens != 4+11 {
		t.Errorf("usage %+v; want 12 tokens, 6 filled, prompts 17 (15 cached)", u)
	}
}

// With the server's slots named (llama.cpp's -np), each call goes to the
// free slot whose cache holds most of its text: a thread's calls keep to
// one slot, another thread takes the slot used least lately, and the
// client never lends more slots than the server has.
func TestSlotsKeepAThreadsText(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
		time.Sleep(5 * time.Millisecond)
		sse(w, false, "stop", "ab=wrong")
	}}
	c := newClient(t, f, Options{Slots: 2})
	slotOf := func(i int) any { return f.requests[i]["id_slot"] }
	solve := func(prompt string) {
		if _, err := c.Complete(context.Background(), &backend.Request{Prompt: prompt, Env: &equalsEnv{}}); err != nil {
			t.Fatal(err)
		}
	}
	solve("P:")
	solve("Q:")
	solve("P:ab=X\nab=X\nmore:")
	if len(f.requests) != 6 {
		t.Fatalf("%d calls", len(f.requests))
	}
	a, b := slotOf(0), slotOf(2)
	if a == nil || slotOf(1) != a || a == b || slotOf(3) != b || slotOf(4) != a {
		t.Errorf("slots %v %v | %v %v | %v %v: want a thread's calls in one slot, the next thread in the other, the first's text back in its own",
			slotOf(0), slotOf(1), slotOf(2), slotOf(3), slotOf(4), slotOf(5))
	}
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() { solve(fmt.Sprint(i, ":")) })
	}
	wg.Wait()
	for _, r := range f.requests {
		if s := r["id_slot"]; s != 0.0 && s != 1.0 {
			t.Errorf("a call sent to slot %v of 2", s)
		}
	}
	// A third call waits for a slot: the pool never lends more than the
	// server has.
	pool := newSlotPool(2)
	ctx := context.Background()
	a0, _ := pool.take(ctx, "x")
	pool.take(ctx, "y")
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if s, err := pool.take(short, "z"); err == nil {
		t.Errorf("a third call got slot %d of 2", s)
	}
	pool.give(a0, "xz")
	if s, err := pool.take(ctx, "xzz"); err != nil || s != a0 {
		t.Errorf("after a slot came back: slot %d, %v; want %d", s, err, a0)
	}
}

// A caller learns which stop string ended a completion from every server:
// vLLM keeps it in the text when asked, and llama.cpp's server, which
// trims it and names none, is known by its timings at its first event and
// asked again with the stops left to the client, which finds them in the
// text (across events too); later requests to it carry no stops.
func TestWhichStopEndedACompletion(t *testing.T) {
	const text = "think </Go" + "al>\n<Path>"
	for _, server := range []string{"vllm", "llama.cpp"} {
		t.Run(server, func(t *testing.T) {
			f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
				w.Header().Set("Content-Type", "text/event-stream")
				stops, _ := req["stop"].([]any)
				out, named := text, ""
				for _, s := range stops {
					if i := strings.Index(out, s.(string)); i >= 0 {
						named = s.(string)
						out = out[:i]
						if server == "vllm" && req["include_stop_str_in_output"] == true {
							out += named
						}
					}
				}
				timings := ""
				if server == "llama.cpp" && req["timings_per_token"] == true {
					timings = `,"timings":{"cache_n":3,"prompt_n":1}`
				}
				for _, piece := range []string{out[:min(len(out), 8)], out[min(len(out), 8):]} {
					fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"text\":%q,\"finish_reason\":null}]%s}\n\n", piece, timings)
				}
				reason := "null"
				if server == "vllm" && named != "" {
					reason = fmt.Sprintf("%q", named)
				}
				fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"stop\",\"stop_reason\":%s}]}\n\ndata: [DONE]\n\n", reason)
			}}
			c := newClient(t, f, Options{})
			for range 2 {
				comp, err := c.Complete(context.Background(), &backend.Request{Prompt: "q", Stop: []string{"</Path>", "</Goal>"}})
				if err != nil || comp.Text != "think " || comp.StopString != "</Goal>" || comp.Finish != backend.FinishStop {
					t.Fatalf("%+v, %v", comp, err)
				}
			}
			want := 2 // one request each
			if server == "llama.cpp" {
				want = 3 // the first asked again, without stops
				if f.requests[1]["stop"] != nil || f.requests[2]["stop"] != nil {
					t.Errorf("stops still sent to a server that trims them unnamed: %v", f.requests[1:])
				}
			}
			if len(f.requests) != want || f.requests[0]["stop"] == nil {
				t.Errorf("%d requests, the first %v; want %d", len(f.requests), f.requests[0], want)
			}
		})
	}
}

func TestStopScan(t *testing.T) {
	s := stopScan{stops: []string{"</Path>", "</Goal>", "ab"}}
	var got strings.Builder
	for _, piece := range []string{"x</", "Pa", "y a", "</Go", "al> rest"} {
		before, stop := s.next(piece)
		got.WriteString(before)
		if stop != "" {
			got.WriteString("|" + stop)
			break
		}
	}
	if got.String() != "x</Pay a|</Goal>" {
		t.Errorf("scanned %q", got.String())
	}
	s = stopScan{stops: []string{"</Path>"}}
	before, stop := s.next("end </Pa")
	if before != "end " || stop != "" || s.flush() != "</Pa" {
		t.Errorf("held back %q, %q", before, stop)
	}
}

// Log-probabilities come through both APIs with their alternatives, most
// likely first and named by their text, and the request asks for them as
// each API names it.
func TestLogprobsWithAlternatives(t *testing.T) {
	for _, chat := range []bool{false, true} {
		f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/event-stream")
			if chat {
				fmt.Fprint(w, `data: {"choices":[{"index":0,"delta":{"content":"ab"},"logprobs":{"content":[{"token":"a","logprob":-0.2,"top_logprobs":[{"token":"a","logprob":-0.2},{"token":"x","logprob":-1.9}]},{"token":"b","logprob":-0.5,"top_logprobs":[{"token":"b","logprob":-0.5},{"token":"y","logprob":-1.1}]}]},"finish_reason":null}]}`+"\n\n")
			} else {
				fmt.Fprint(w, `data: {"choices":[{"index":0,"text":"ab","logprobs":{"tokens":["a","b"],"token_logprobs":[-0.2,-0.5],"top_logprobs":[{"x":-1.9,"a":-0.2},{"b":-0.5,"y":-1.1}]},"finish_reason":null}]}`+"\n\n")
			}
			fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
		}}
		c := newClient(t, f, Options{Chat: chat})
		comp, err := c.Complete(context.Background(), &backend.Request{Prompt: "q", TopLogprobs: 2})
		if err != nil {
			t.Fatal(err)
		}
		want := []backend.Token{
			{ID: -1, Logprob: -0.2, Top: []backend.TopToken{{ID: -1, Logprob: -0.2, Text: "a"}, {ID: -1, Logprob: -1.9, Text: "x"}}},
			{ID: -1, Logprob: -0.5, Top: []backend.TopToken{{ID: -1, Logprob: -0.5, Text: "b"}, {ID: -1, Logprob: -1.1, Text: "y"}}},
		}
		if !reflect.DeepEqual(comp.Tokens, want) {
			t.Errorf("chat %v: tokens %+v", chat, comp.Tokens)
		}
		r := f.requests[0]
		if chat && (r["logprobs"] != true || r["top_logprobs"] != 2.0) || !chat && r["logprobs"] != 2.0 {
			t.Errorf("chat %v: asked %v, %v", chat, r["logprobs"], r["top_logprobs"])
		}
	}
}

// A reward model's score is the last number it gives a text, whatever the
// pooling response's shape; a response without one is an error naming it.
func TestRewardReadsPoolingResponses(t *testing.T) {
	for _, tc := range []struct {
		data string
		want float64
	}{{`3.5`, 3.5}, {`[1, 2]`, 2}, {`[[0.1, 0.9], [0.3, 0.7]]`, 0.7}} {
		f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
			fmt.Fprintf(w, `{"data":[{"index":0,"data":%s}]}`, tc.data)
		}}
		c := newClient(t, f, Options{Model: "rm"})
		got, err := c.Reward(context.Background(), []string{"a text"})
		if err != nil || len(got) != 1 || got[0] != tc.want || f.requests[0]["_path"] != "/pooling" || f.requests[0]["input"] != "a text" {
			t.Errorf("%s: %v, %v (request %v)", tc.data, got, err, f.requests[0])
		}
	}
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) { fmt.Fprint(w, `{"data":[{"data":[]}]}`) }}
	if _, err := newClient(t, f, Options{}).Reward(context.Background(), []string{"x"}); err == nil || !strings.Contains(err.Error(), "no score") {
		t.Errorf("an empty score: %v", err)
	}
}

// A strict server that refuses the fields only some servers read is asked
// again without them, now and later, and its stops are found by the
// client.
func TestAStrictServerGetsPlainRequests(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
		for _, k := range vendorFields {
			if _, ok := req[k]; ok {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, `{"error":{"message":"Unrecognized request argument supplied: %s"}}`, k)
				return
			}
		}
		sse(w, false, "length", "one </end> two")
	}}
	c := newClient(t, f, Options{})
	for range 2 {
		comp, err := c.Complete(context.Background(), &backend.Request{Prompt: "q", Stop: []string{"</end>"}})
		if err != nil || comp.Text != "one " || comp.StopString != "</end>" {
			t.Fatalf("%+v, %v", comp, err)
		}
	}
	if len(f.requests) != 3 {
		t.Errorf("%d requests: want the first refused, then plain ones", len(f.requests))
	}
}
