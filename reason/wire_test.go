package reason

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/backend/remote"
	"github.com/braid-dev/braid/task"
	taskmath "github.com/braid-dev/braid/task/math"
)

// recordedServer serves a recorded model over OpenAI's streaming API, both
// endpoints, as vLLM does: a chat request's text is its user message and
// the assistant message it continues (a template that passes the text
// through); a stop string is named (stop_reason), and kept in the text
// when asked. It records every request body.
type recordedServer struct {
	model  backend.Backend
	mu     sync.Mutex
	bodies []map[string]any
}

func (s *recordedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	body["_path"] = r.URL.Path
	s.mu.Lock()
	s.bodies = append(s.bodies, body)
	s.mu.Unlock()
	chat := r.URL.Path == "/v1/chat/completions"
	text, _ := body["prompt"].(string)
	if chat {
		for _, m := range body["messages"].([]any) {
			text += m.(map[string]any)["content"].(string)
		}
	}
	var stops []string
	if list, ok := body["stop"].([]any); ok {
		for _, st := range list {
			stops = append(stops, st.(string))
		}
	}
	maxTokens, _ := body["max_tokens"].(float64)
	c, err := s.model.Complete(r.Context(), &backend.Request{Prompt: text, Stop: stops, MaxTokens: int(maxTokens)})
	if err != nil {
		http.Error(w, `{"error":{"message":`+fmt.Sprintf("%q", err.Error())+`}}`, http.StatusBadRequest)
		return
	}
	out := c.Text
	if c.StopString != "" && body["include_stop_str_in_output"] == true {
		out += c.StopString
	}
	w.Header().Set("Content-Type", "text/event-stream")
	event := func(text, finish, stop string) {
		choice := map[string]any{"index": 0, "finish_reason": nil}
		if finish != "" {
			choice["finish_reason"], choice["stop_reason"] = finish, stop
		}
		if chat {
			choice["delta"] = map[string]any{"content": text}
		} else {
			choice["text"] = text
		}
		b, _ := json.Marshal(map[string]any{"choices": []any{choice}})
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	for len(out) > 0 { // a few bytes an event, as tokens come
		n := min(len(out), 5)
		event(out[:n], "", "")
		out = out[n:]
	}
	finish := "stop"
	if c.Finish == backend.FinishLength {
		finish = "length"
	}
	event("", finish, c.StopString)
	fmt.Fprint(w, "data: [DONE]\n\n")
}

// Every format runs the same over a server as in-process, over both APIs,
// byte for byte: the same threads, texts and answer. The requests carry
// the format's stop strings (the recorded model checks them), and a chat
// request the run's prompt as the user's message, what was written after
// it as an assistant message the server continues, and the template's
// arguments.
func TestFormatsOverAServer(t *testing.T) {
	p := task.Problem{Task: "math", Text: "What is 6 times 7?"}
	runs := []struct {
		name  string
		strat Strategy
		model func() backend.Backend
	}{
		{"multiverse", Fork{Format: Multiverse{}}, func() backend.Backend { return multiverseModel() }},
		{"multiverse nested", Fork{Format: Multiverse{}}, func() backend.Backend { return nestedMultiverseModel() }},
		{"threadweaver", Fork{Format: ThreadWeaver{}}, func() backend.Backend { return threadWeaverModel() }},
		{"threadweaver malformed", Fork{Format: ThreadWeaver{}}, func() backend.Backend { return malformedThreadWeaverModel() }},
		{"parallel", Parallel{}, func() backend.Backend { return parallelModel() }},
	}
	for _, run := range runs {
		t.Run(run.name, func(t *testing.T) {
			want, err := run.strat.Solve(context.Background(), run.model(), taskmath.Task{}, p, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, chat := range []bool{false, true} {
				srv := &recordedServer{model: run.model()}
				hs := httptest.NewServer(srv)
				defer hs.Close()
				kwargs := map[string]any{"enable_thinking": true}
				c, err := remote.New(remote.Options{Endpoints: []string{hs.URL + "/v1"}, Model: "m", Chat: chat, ChatTemplateKwargs: kwargs})
				if err != nil {
					t.Fatal(err)
				}
				got, err := run.strat.Solve(context.Background(), c, taskmath.Task{}, p, nil)
				if err != nil {
					t.Fatalf("chat %v: %v", chat, err)
				}
				if got.Answer != want.Answer || got.Threads != want.Threads || got.Depth != want.Depth || got.FormatErrors != want.FormatErrors ||
					!reflect.DeepEqual(texts(got.Tree), texts(want.Tree)) {
					t.Errorf("chat %v: answer %q, %d threads at depth %d, %d format errors, texts\n%q\nin-process %q, %d at %d, %d,\n%q",
						chat, got.Answer, got.Threads, got.Depth, got.FormatErrors, texts(got.Tree),
						want.Answer, want.Threads, want.Depth, want.FormatErrors, texts(want.Tree))
				}
				checkBodies(t, srv.bodies, chat, kwargs)
			}
		})
	}
}

// texts are a tree's threads, name and text, depth first.
func texts(t *Thread) []string {
	out := []string{t.Node + ": " + t.Text}
	for _, c := range t.Children {
		out = append(out, texts(c)...)
	}
	return out
}

func checkBodies(t *testing.T, bodies []map[string]any, chat bool, kwargs map[string]any) {
	t.Helper()
	path := "/v1/completions"
	if chat {
		path = "/v1/chat/completions"
	}
	for _, b := range bodies {
		if b["_path"] != path || b["stream"] != true {
			t.Errorf("a request to %v (stream %v), want %s", b["_path"], b["stream"], path)
		}
		if !chat {
			if _, ok := b["prompt"].(string); !ok || b["messages"] != nil {
				t.Errorf("a completion request without its prompt: %v", b)
			}
			continue
		}
		msgs, _ := b["messages"].([]any)
		if len(msgs) == 0 || len(msgs) > 2 || msgs[0].(map[string]any)["role"] != "user" || !reflect.DeepEqual(b["chat_template_kwargs"], kwargs) {
			t.Errorf("a chat request %v", b)
			continue
		}
		continued := len(msgs) == 2
		if continued && (msgs[1].(map[string]any)["role"] != "assistant" || b["continue_final_message"] != true || b["add_generation_prompt"] != false) ||
			!continued && (b["continue_final_message"] != nil || b["add_generation_prompt"] != nil) {
			t.Errorf("a chat request's continuation: %v", b)
		}
	}
}
