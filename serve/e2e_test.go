package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/backend/remote"
	"github.com/braid-dev/braid/internal/faultproxy"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/task/countdown"
)

// The official OpenAI Go client talks to braid serve: chat, streamed and
// not, raw completions, models, and errors.
func TestOpenAIClient(t *testing.T) {
	_, hs := newTestServer(t, Options{APIKey: "secret"})
	ctx := context.Background()
	client := openai.NewClient(option.WithBaseURL(hs.URL+"/v1/"), option.WithAPIKey("secret"), option.WithMaxRetries(0))

	params := openai.ChatCompletionNewParams{
		Model:    "apr/countdown",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Using the numbers 22, 26, 31, 53, create an equation that equals 27")},
	}
	resp, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	msg := resp.Choices[0].Message
	if !strings.HasSuffix(msg.Content, "= 27") || resp.Choices[0].FinishReason != "stop" {
		t.Errorf("answer %q (%s)", msg.Content, resp.Choices[0].FinishReason)
	}
	if expr := strings.TrimSuffix(msg.Content, " = 27"); countdown.VerifyAnswer(problem27, expr) != nil {
		t.Errorf("the answer %q does not verify", expr)
	}
	reasoning := msg.JSON.ExtraFields["reasoning_content"].Raw()
	if !strings.Contains(reasoning, "[thread 0,") {
		t.Errorf("reasoning_content without the children's threads: %.200s", reasoning)
	}
	u := resp.Usage
	if u.CompletionTokens == 0 || u.PromptTokens == 0 || u.TotalTokens != u.PromptTokens+u.CompletionTokens ||
		u.CompletionTokensDetails.ReasoningTokens != u.CompletionTokens {
		t.Errorf("usage %+v", u)
	}

	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	var streamed strings.Builder
	chunks := 0
	for stream.Next() {
		c := stream.Current()
		acc.AddChunk(c)
		chunks++
		if len(c.Choices) > 0 {
			if f, ok := c.Choices[0].Delta.JSON.ExtraFields["reasoning_content"]; ok {
				var s string
				if err := jsonString(f.Raw(), &s); err == nil {
					streamed.WriteString(s)
				}
			}
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Choices[0].Message.Content != msg.Content || chunks < 10 {
		t.Errorf("streamed %q in %d chunks, want %q", acc.Choices[0].Message.Content, chunks, msg.Content)
	}
	if acc.Usage.CompletionTokens != u.CompletionTokens || !strings.Contains(streamed.String(), "Goal Reached") {
		t.Errorf("streamed usage %+v (want %d completion tokens); reasoning %.100s", acc.Usage, u.CompletionTokens, streamed.String())
	}

	// The raw model, as a completions backend.
	prompt := countdown.RootPrompt(problem27, countdown.ModeSerial)
	c, err := client.Completions.New(ctx, openai.CompletionNewParams{Model: "countdown",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)}, MaxTokens: openai.Int(40), Temperature: openai.Float(0)})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Choices[0].Text) != 40 || c.Choices[0].FinishReason != "length" || c.Usage.CompletionTokens != 40 {
		t.Errorf("raw completion %q (%s), usage %+v", c.Choices[0].Text, c.Choices[0].FinishReason, c.Usage)
	}
	cs := client.Completions.NewStreaming(ctx, openai.CompletionNewParams{Model: "countdown",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)}, MaxTokens: openai.Int(40)})
	var text strings.Builder
	for cs.Next() {
		if ch := cs.Current(); len(ch.Choices) > 0 {
			text.WriteString(ch.Choices[0].Text)
		}
	}
	if cs.Err() != nil || text.String() != c.Choices[0].Text {
		t.Errorf("streamed raw completion %q (%v), want %q", text.String(), cs.Err(), c.Choices[0].Text)
	}

	models, err := client.Models.List(ctx)
	if err != nil || len(models.Data) < 2 || models.Data[0].ID != "countdown" {
		t.Errorf("models %+v, %v", models, err)
	}

	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "countdown",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("tell me a joke")}})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "Countdown problem") {
		t.Errorf("a message that is no problem: %v", err)
	}
	bad := openai.NewClient(option.WithBaseURL(hs.URL+"/v1/"), option.WithAPIKey("wrong"), option.WithMaxRetries(0))
	if _, err := bad.Models.List(ctx); !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Errorf("a wrong key: %v", err)
	}
}

func jsonString(raw string, s *string) error {
	return json.Unmarshal([]byte(raw), s)
}

// faultyProxy forwards to upstream, but answers every 3rd request with a
// 500, every 5th with a 429 and drops every 7th stream partway through.
func faultyProxy(t testing.TB, upstream string) (*httptest.Server, *faultproxy.Counts) {
	h, counts, err := faultproxy.New(upstream, faultproxy.Faults{Every500: 3, Every429: 5, EveryDrop: 7, DropAfter: 300})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs, counts
}

// braid solve --strategy apr --backend URL against braid serve, through a
// proxy that fails about half the requests with 500s, 429s and dropped
// streams: the run gets the answer it gets without the faults.
func TestAPRThroughFaultyProxy(t *testing.T) {
	_, hs := newTestServer(t, Options{})
	proxy, requests := faultyProxy(t, hs.URL)
	c, err := remote.New(remote.Options{Endpoints: []string{proxy.URL + "/v1"}, Model: "countdown", Retries: 8, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st := reason.Search{Options: reason.Options{Env: reason.EnvOff}, Effort: task.EffortDeep}
	want, err := st.Solve(ctx, newReplay(t, problem27), countdown.Task{}, countdown.NewProblem(problem27), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Solve(ctx, c, countdown.Task{}, countdown.NewProblem(problem27), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Answer != want.Answer || got.Threads != want.Threads || got.Answer == "" {
		t.Errorf("through the proxy: %q in %d threads; directly: %q in %d", got.Answer, got.Threads, want.Answer, want.Threads)
	}
	if requests.Requests.Load() < 10 || requests.Dropped.Load() == 0 {
		t.Errorf("the proxy saw too little: %s", requests)
	}
}

// Concurrent streaming clients for a fixed time: no errors, and memory and
// goroutines back where they were.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a load test")
	}
	_, hs := newTestServer(t, Options{KeepTraces: 8, PerClient: 64})
	body := `{"model":"apr/countdown","stream":true,"messages":[{"role":"user","content":"27: 22 26 31 53"}]}`
	run := func(d time.Duration, clients int) (done, failed int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		end := time.Now().Add(d)
		for range clients {
			wg.Go(func() {
				for time.Now().Before(end) {
					resp, err := http.Post(hs.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
					ok := err == nil && resp.StatusCode == 200
					if err == nil {
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						ok = ok && strings.HasSuffix(string(b), "data: [DONE]\n\n")
					}
					mu.Lock()
					if ok {
						done++
					} else {
						failed++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return done, failed
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	run(500*time.Millisecond, 8) // warm up: traces fill their ring
	http.DefaultClient.CloseIdleConnections()
	before, goroutines := heap(), runtime.NumGoroutine()
	done, failed := run(2*time.Second, 8)
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond)
	after := heap()
	t.Logf("%d requests in 2 s from 8 clients, %d failed; heap %d → %d KiB; goroutines %d → %d",
		done, failed, before>>10, after>>10, goroutines, runtime.NumGoroutine())
	if failed > 0 || done == 0 {
		t.Errorf("%d of %d requests failed", failed, done+failed)
	}
	if after > before+before/2+8<<20 {
		t.Errorf("heap grew from %d to %d KiB over the run", before>>10, after>>10)
	}
	if g := runtime.NumGoroutine(); g > goroutines+4 {
		t.Errorf("%d goroutines after the run, %d before", g, goroutines)
	}
}

// refusing is a backend that refuses every prompt, as the engine does one
// past its context, or a malformed one.
type refusing struct{ err error }

func (r refusing) Complete(context.Context, *backend.Request) (*backend.Completion, error) {
	return nil, r.err
}

// Braid as another braid's backend: a prompt past the context comes back
// to the client as backend.ErrPromptTooLong (so a strategy ends that
// thread instead of the run), a malformed one as a 400.
func TestRawCompletionErrorsReachTheRemoteClient(t *testing.T) {
	for _, c := range []struct {
		err  error
		want error
	}{
		{fmt.Errorf("engine: the prompt has 3000 tokens; the model's context is 2048: %w", backend.ErrPromptTooLong), backend.ErrPromptTooLong},
		{backend.Invalid(errors.New("engine: prompt token 99999 outside the vocabulary")), nil},
	} {
		_, hs := newTestServer(t, Options{Backend: refusing{c.err}, Model: "countdown", Task: countdown.Task{}, Raw: refusing{c.err}})
		cl, err := remote.New(remote.Options{Endpoints: []string{hs.URL + "/v1"}, Model: "countdown", Retries: 1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.Complete(context.Background(), &backend.Request{Prompt: "x"})
		if err == nil || c.want != nil && !errors.Is(err, c.want) || c.want == nil && errors.Is(err, backend.ErrPromptTooLong) {
			t.Errorf("%v came back as %v", c.err, err)
		}
		resp, body := post(t, hs.URL+"/v1/completions", "", `{"model":"countdown","prompt":"x"}`)
		if resp.StatusCode != 400 {
			t.Errorf("%v: %d %s", c.err, resp.StatusCode, body)
		}
	}
}

// Raw completions take n: the samples decode at once and stream
// interleaved by index; braid's client gets them in one request.
func TestRawCompletionsWithN(t *testing.T) {
	_, hs := newTestServer(t, Options{})
	var requests atomic.Int32
	counted := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		hs.Config.Handler.ServeHTTP(w, r)
	}))
	defer counted.Close()
	c, err := remote.New(remote.Options{Endpoints: []string{counted.URL + "/v1"}, Model: "countdown"})
	if err != nil {
		t.Fatal(err)
	}
	prompt := countdown.RootPrompt(problem27, countdown.ModeSerial)
	var mu sync.Mutex
	seen := map[int]int{}
	out, err := c.CompleteN(context.Background(), &backend.Request{Prompt: prompt, MaxTokens: 30, Seed: 3, OnChunk: func(ch backend.Chunk) {
		mu.Lock()
		seen[ch.Index]++
		mu.Unlock()
	}}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if requests.Load() != 1 || len(out) != 3 || len(seen) != 3 {
		t.Fatalf("%d requests, %d completions, chunks by index %v", requests.Load(), len(out), seen)
	}
	prompts := 0
	for i, o := range out {
		if len(o.Text) != 30 || o.Finish != backend.FinishLength {
			t.Errorf("sample %d: %q (%s)", i, o.Text, o.Finish)
		}
		prompts += o.Usage.PromptTokens
	}
	if prompts != len(prompt) {
		t.Errorf("prompt tokens over the samples: %d, want the prompt's %d once", prompts, len(prompt))
	}
	if resp, body := post(t, hs.URL+"/v1/completions", "", `{"model":"countdown","prompt":"x","n":2,"guided_choice":["a","b"]}`); resp.StatusCode != 400 {
		t.Errorf("n with guided choices: %d %s", resp.StatusCode, body)
	}
}
