package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/braid-dev/braid/backend"
)

// sseN streams n samples interleaved: sample i's pieces are "s<i>-<k>".
// With cut, the stream stops after the first round of pieces, before any
// finish (a dropped connection).
func sseN(w http.ResponseWriter, n, pieces int, cut bool) {
	w.Header().Set("Content-Type", "text/event-stream")
	for k := range pieces {
		for i := range n {
			b, _ := json.Marshal(map[string]any{"choices": []any{map[string]any{"index": i, "text": fmt.Sprintf("s%d-%d ", i, k), "finish_reason": nil}}})
			fmt.Fprintf(w, "data: %s\n\n", b)
		}
		if cut {
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
	}
	for i := range n {
		fmt.Fprintf(w, "data: {\"choices\":[{\"index\":%d,\"text\":\"\",\"finish_reason\":\"stop\"}]}\n\n", i)
	}
	fmt.Fprintf(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":%d}}\n\n", n*pieces*2)
	fmt.Fprint(w, "data: [DONE]\n\n")
}

// n samples come in one request, each its own text, the prompt billed once.
func TestCompleteNInOneRequest(t *testing.T) {
	f := &fakeServer{respond: func(_ int, req map[string]any, w http.ResponseWriter) { sseN(w, int(req["n"].(float64)), 3, false) }}
	c := newClient(t, f, Options{Model: "m"})
	var mu sync.Mutex
	streamed := map[int]string{}
	out, err := c.CompleteN(context.Background(), &backend.Request{Prompt: "p", Seed: 40, OnChunk: func(ch backend.Chunk) {
		mu.Lock()
		streamed[ch.Index] += ch.Text
		mu.Unlock()
	}}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.requests) != 1 || f.requests[0]["n"] != 3.0 || f.requests[0]["seed"] != 40.0 {
		t.Fatalf("requests %v", f.requests)
	}
	prompt, completion := 0, 0
	for i, o := range out {
		want := fmt.Sprintf("s%d-0 s%d-1 s%d-2 ", i, i, i)
		if o.Text != want || streamed[i] != want || o.Finish != backend.FinishStop || o.Seed != 40+uint64(i) {
			t.Errorf("sample %d: %+v (streamed %q), want %q", i, o, streamed[i], want)
		}
		prompt += o.Usage.PromptTokens
		completion += o.Usage.CompletionTokens
	}
	if prompt != 9 || completion != 18 {
		t.Errorf("usage over the samples: %d prompt, %d completion tokens; want 9 and 18", prompt, completion)
	}
}

// A server that refuses n gets single requests, then and after.
func TestCompleteNFallsBackWhenNIsRefused(t *testing.T) {
	f := &fakeServer{respond: func(_ int, req map[string]any, w http.ResponseWriter) {
		if _, ok := req["n"]; ok {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":{"message":"n must be 1 for this model"}}`)
			return
		}
		sse(w, false, "stop", fmt.Sprint("seed ", req["seed"]))
	}}
	c := newClient(t, f, Options{Model: "m"})
	for round := range 2 {
		out, err := c.CompleteN(context.Background(), &backend.Request{Prompt: "p", Seed: 10}, 3)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range out {
			if o.Text != fmt.Sprint("seed ", 10+i) {
				t.Errorf("round %d sample %d: %q", round, i, o.Text)
			}
		}
	}
	if len(f.requests) != 1+3+3 {
		t.Errorf("%d requests: want one refused n, then 3 singles per round", len(f.requests))
	}
}

// A stream dropped mid-way: each sample continues alone from its text.
func TestCompleteNContinuesDroppedSamples(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
		if _, ok := req["n"]; ok {
			sseN(w, 2, 3, true)
			return
		}
		sse(w, false, "stop", "rest of "+req["prompt"].(string))
	}}
	c := newClient(t, f, Options{Model: "m"})
	out, err := c.CompleteN(context.Background(), &backend.Request{Prompt: "p:", Seed: 5}, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		want := fmt.Sprintf("s%d-0 rest of p:s%d-0 ", i, i)
		if o.Text != want || o.Finish != backend.FinishStop {
			t.Errorf("sample %d: %q, want %q", i, o.Text, want)
		}
	}
}

// llama.cpp refuses n with a 500: that too falls back to single requests,
// at once, not after retries.
func TestCompleteNFallsBackOnA500AboutN(t *testing.T) {
	f := &fakeServer{respond: func(_ int, req map[string]any, w http.ResponseWriter) {
		if _, ok := req["n"]; ok {
			w.WriteHeader(500)
			fmt.Fprint(w, `{"error":{"code":500,"message":"Only one completion choice is allowed","type":"server_error"}}`)
			return
		}
		sse(w, false, "stop", "one")
	}}
	c := newClient(t, f, Options{Model: "m"})
	out, err := c.CompleteN(context.Background(), &backend.Request{Prompt: "p", Seed: 2}, 2)
	if err != nil || len(out) != 2 || out[1].Text != "one" {
		t.Fatalf("%v, %v", out, err)
	}
	if len(f.requests) != 3 {
		t.Errorf("%d requests: want the refused one, then 2 singles", len(f.requests))
	}
}

// A dropped stream's samples report the prompt tokens their continuations
// sent.
func TestCompleteNDroppedUsage(t *testing.T) {
	f := &fakeServer{respond: func(n int, req map[string]any, w http.ResponseWriter) {
		if _, ok := req["n"]; ok {
			sseN(w, 2, 3, true)
			return
		}
		sse(w, false, "stop", "rest")
	}}
	c := newClient(t, f, Options{Model: "m"})
	out, err := c.CompleteN(context.Background(), &backend.Request{Prompt: "p:", Seed: 5}, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if o.Usage.PromptTokens != 7 { // sse bills 7 prompt tokens per request
			t.Errorf("sample %d: %d prompt tokens, want its continuation's 7", i, o.Usage.PromptTokens)
		}
	}
}

// n samples whose endpoint refuses connections go, whole, to another one,
// which is then where the key's requests go.
func TestCompleteNFailsOver(t *testing.T) {
	live := &fakeServer{respond: func(_ int, req map[string]any, w http.ResponseWriter) { sseN(w, int(req["n"].(float64)), 2, false) }}
	up := httptest.NewServer(live)
	defer up.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	c, err := New(Options{Endpoints: []string{down.URL + "/v1", up.URL + "/v1"}, Retries: 2, Cooldown: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	key := "thread 0"
	for i := 1; c.route(key) != c.endpoints[0]; i++ {
		key = fmt.Sprint("thread ", i) // one the dead endpoint holds
	}
	start := time.Now()
	out, err := c.CompleteN(context.Background(), &backend.Request{Prompt: "p", Seed: 1, Affinity: key}, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if want := fmt.Sprintf("s%d-0 s%d-1 ", i, i); o.Text != want {
			t.Errorf("sample %d: %q, want %q", i, o.Text, want)
		}
	}
	if len(live.requests) != 1 || c.route(key) != c.endpoints[1] || time.Since(start) > 5*time.Second {
		t.Errorf("%d requests reached the live endpoint in %v; the key routes to %s", len(live.requests), time.Since(start), c.route(key).name)
	}
}
