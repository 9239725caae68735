package reason

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
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
	dec := json.NewDecoder(r.Body)
	dec.UseNumber() // seeds are 63-bit
	if err := dec.Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if n, _ := body["n"].(json.Number); n != "" && n != "1" {
		http.Error(w, `{"error":{"message":"n > 1 is not supported"}}`, http.StatusBadRequest)
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
	var maxTokens int64
	if n, ok := body["max_tokens"].(json.Number); ok {
		maxTokens, _ = n.Int64()
	}
	seed, _ := strconv.ParseUint(fmt.Sprint(body["seed"]), 10, 64)
	_, logprobs := body["logprobs"]
	c, err := s.model.Complete(r.Context(), &backend.Request{Prompt: text, Stop: stops, MaxTokens: int(maxTokens), Seed: seed, Logprobs: logprobs})
	if err != nil {
		http.Error(w, `{"error":{"message":`+fmt.Sprintf("%q", err.Error())+`}}`, http.StatusBadRequest)
		return
	}
	out := c.Text
	if c.StopString != "" && body["include_stop_str_in_output"] == true {
		out += c.StopString
	}
	w.Header().Set("Content-Type", "text/event-stream")
	event := func(text, finish, stop string, tok *backend.Token) {
		choice := map[string]any{"index": 0, "finish_reason": nil}
		if finish != "" {
			choice["finish_reason"], choice["stop_reason"] = finish, stop
		}
		if chat {
			choice["delta"] = map[string]any{"content": text}
		} else {
			choice["text"] = text
		}
		if tok != nil { // each API's form of a token's logprobs
			var top []map[string]any
			alts := map[string]float64{}
			for i, a := range tok.Top {
				top = append(top, map[string]any{"token": fmt.Sprint("t", i), "logprob": a.Logprob})
				alts[fmt.Sprint("t", i)] = a.Logprob
			}
			if chat {
				choice["logprobs"] = map[string]any{"content": []any{map[string]any{"token": text, "logprob": tok.Logprob, "top_logprobs": top}}}
			} else {
				choice["logprobs"] = map[string]any{"tokens": []string{text}, "token_logprobs": []float64{tok.Logprob}, "top_logprobs": []any{alts}}
			}
		}
		b, _ := json.Marshal(map[string]any{"choices": []any{choice}})
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	if logprobs && len(c.Tokens) == len(out) { // a token a byte, with its logprobs
		for i := range out {
			event(out[i:i+1], "", "", &c.Tokens[i])
		}
		out = ""
	}
	for len(out) > 0 { // a few bytes an event, as tokens come
		n := min(len(out), 5)
		event(out[:n], "", "", nil)
		out = out[n:]
	}
	finish := "stop"
	if c.Finish == backend.FinishLength {
		finish = "length"
	}
	event("", finish, c.StopString, nil)
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

// scorable answers sample i (by its seed) with answers[i], a token a
// byte, sure of itself (its alternatives unlikely) when the answer is 12;
// a judge's prompt it answers 9 for a solution of 12 and 2 for another,
// and one that lists the solutions, with 2.
type scorable struct{ scripted }

func (s *scorable) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	reply := func(text string) (*backend.Completion, error) {
		return &backend.Completion{Text: text, Finish: backend.FinishStop, Usage: backend.Usage{CompletionTokens: len(text)}}, nil
	}
	switch {
	case strings.Contains(req.Prompt, "How likely is this solution"):
		if strings.Contains(req.Prompt, `\boxed{12}`) {
			return reply("9: it checks out.")
		}
		return reply("2: no.")
	case strings.Contains(req.Prompt, "Which solution is most likely correct"):
		return reply("2, because it checks.")
	}
	c, err := s.scripted.Complete(ctx, req)
	if err != nil || !req.Logprobs && req.TopLogprobs == 0 {
		return c, err
	}
	sure := strings.Contains(c.Text, "{12}")
	for range c.Text {
		tk := backend.Token{ID: -1, Logprob: -0.5, Top: []backend.TopToken{{ID: -1, Logprob: -0.5}, {ID: -1, Logprob: -1}}}
		if sure {
			tk.Logprob, tk.Top = -0.01, []backend.TopToken{{ID: -1, Logprob: -0.01}, {ID: -1, Logprob: -9}}
		}
		c.Tokens = append(c.Tokens, tk)
	}
	return c, nil
}

// best-of-N's scorers over a server, both APIs: the samples' confidence
// from the logprobs the server returns, a judge's score of each sample, a
// judge's pick among them. Each picks 12 where the vote would say 7.
func TestScorersOverAServer(t *testing.T) {
	p := task.Problem{Task: "math", Text: "3*4?"}
	vote, err := Parse("vote:k=3", Options{Temperature: 1, Seed: 100}, taskmath.Task{})
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []string{"best:k=3,scorer=confidence", "best:k=3,scorer=judge", "best:k=3,scorer=judge-list"} {
		s, err := Parse(spec, Options{Temperature: 1, Seed: 100}, taskmath.Task{})
		if err != nil {
			t.Fatal(err)
		}
		for _, chat := range []bool{false, true} {
			srv := &recordedServer{model: &scorable{scripted{answers: []string{"7", "12", "7"}}}}
			hs := httptest.NewServer(srv)
			defer hs.Close()
			c, err := remote.New(remote.Options{Endpoints: []string{hs.URL + "/v1"}, Model: "m", Chat: chat})
			if err != nil {
				t.Fatal(err)
			}
			if v, err := vote.Solve(context.Background(), c, taskmath.Task{}, p, nil); err != nil || v.Answer != "7" {
				t.Fatalf("the vote: %q, %v", v.Answer, err)
			}
			r, err := s.Solve(context.Background(), c, taskmath.Task{}, p, nil)
			if err != nil {
				t.Fatalf("%s, chat %v: %v", spec, chat, err)
			}
			scored := 0
			for _, th := range r.Tree.Children {
				if th.Score != nil {
					scored++
				}
			}
			if r.Answer != "12" || scored != 3 {
				t.Errorf("%s, chat %v: answer %q, %d candidates scored", spec, chat, r.Answer, scored)
			}
			if spec == "best:k=3,scorer=confidence" {
				asked := false
				for _, b := range srv.bodies {
					asked = asked || b["top_logprobs"] != nil || b["logprobs"] != nil
				}
				if !asked {
					t.Errorf("chat %v: no request asked for logprobs", chat)
				}
			}
		}
	}
}

// thinking is scorable, and it carries a branch on: a branch of 12 stays
// 12, another turns to 5; a refinement restates the answer.
type thinking struct{ scorable }

func (s *thinking) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	reply := func(text string) (*backend.Completion, error) {
		return &backend.Completion{Text: text, Finish: backend.FinishStop, Usage: backend.Usage{CompletionTokens: len(text)}}, nil
	}
	switch {
	case strings.Contains(req.Prompt, "Here is a solution in progress") && strings.Contains(req.Prompt, `\boxed{12}`):
		return reply(`Checked again: \boxed{12}`)
	case strings.Contains(req.Prompt, "Here is a solution in progress"):
		return reply(`Redone: \boxed{5}`)
	case strings.Contains(req.Prompt, "Here is a solution:"):
		return reply(`Final: \boxed{12}`)
	}
	return s.scorable.Complete(ctx, req)
}

// deepthink over rounds, in-process and over a server on both APIs: the
// judge's scores keep the two branches of 12, which grow two each; the
// other two are dropped, saying why; the best is refined.
func TestDeepThinkSearchesOverRounds(t *testing.T) {
	p := task.Problem{Task: "math", Text: "3*4?"}
	s, err := Parse("deepthink:k=4,rounds=1,keep=2,scorer=judge", Options{Temperature: 1, Seed: 100}, taskmath.Task{})
	if err != nil {
		t.Fatal(err)
	}
	model := func() backend.Backend { return &thinking{scorable{scripted{answers: []string{"7", "12", "9", "12"}}}} }
	want, err := s.Solve(context.Background(), model(), taskmath.Task{}, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	branches := want.Tree.Children[0].Children[:4]
	var dropped, grown int
	for _, br := range branches {
		if strings.HasPrefix(br.Dropped, "round 1: scored 0.20") {
			dropped++
		}
		if len(br.Children) == 2 && br.Score != nil && *br.Score == 0.9 {
			grown++
		}
	}
	if want.Answer != "12" || want.Tree.Node != "refine" || want.Threads != 17 || dropped != 2 || grown != 2 {
		t.Fatalf("answer %q, %d threads, root %s, %d dropped, %d grown:\n%q", want.Answer, want.Threads, want.Tree.Node, dropped, grown, texts(want.Tree))
	}
	for _, chat := range []bool{false, true} {
		hs := httptest.NewServer(&recordedServer{model: model()})
		defer hs.Close()
		c, err := remote.New(remote.Options{Endpoints: []string{hs.URL + "/v1"}, Model: "m", Chat: chat})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Solve(context.Background(), c, taskmath.Task{}, p, nil)
		if err != nil || got.Answer != "12" || got.Threads != want.Threads || !reflect.DeepEqual(texts(got.Tree), texts(want.Tree)) {
			t.Errorf("chat %v: %q, %d threads, %v", chat, got.Answer, got.Threads, err)
		}
	}
	for _, bad := range []string{"deepthink:k=4,keep=2", "deepthink:k=4,rounds=0", "deepthink:k=4,rounds=2,scorer=verifier"} {
		if _, err := Parse(bad, Options{Temperature: 1}, taskmath.Task{}); err == nil {
			t.Errorf("%s was accepted", bad)
		}
	}
}

// A reward model served by vLLM's pooling API scores each candidate after
// the problem: the one it rewards most is the answer.
func TestRewardScorerOverAServer(t *testing.T) {
	var inputs []string
	var mu sync.Mutex
	pool := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Model, Input string }
		json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		inputs = append(inputs, body.Input)
		mu.Unlock()
		if r.URL.Path != "/pooling" || body.Model != "rm" {
			http.Error(w, "wrong request", http.StatusBadRequest)
			return
		}
		score := -1.0
		if strings.Contains(body.Input, `\boxed{12}`) {
			score = 2.5
		}
		// A process reward model's steps: the last is the answer's.
		fmt.Fprintf(w, `{"data":[{"index":0,"object":"pooling","data":[[0.1],[%g]]}]}`, score)
	}))
	defer pool.Close()
	rm, err := remote.New(remote.Options{Endpoints: []string{pool.URL + "/v1"}, Model: "rm"})
	if err != nil {
		t.Fatal(err)
	}
	p := task.Problem{Task: "math", Text: "3*4?"}
	s, err := Parse("best:k=3,scorer=reward", Options{Temperature: 1, Seed: 100, Rewarder: rm}, taskmath.Task{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Solve(context.Background(), &scripted{answers: []string{"7", "12", "7"}}, taskmath.Task{}, p, nil)
	if err != nil || r.Answer != "12" || len(inputs) != 3 || !strings.HasPrefix(inputs[0], (taskmath.Task{}).Prompt(p)) {
		t.Errorf("answer %q, %v, inputs %q", r.Answer, err, inputs)
	}
	if _, err := Parse("best:k=3,scorer=reward", Options{Temperature: 1}, taskmath.Task{}); err == nil || !strings.Contains(err.Error(), "--reward") {
		t.Errorf("a reward scorer without a reward model: %v", err)
	}
}
