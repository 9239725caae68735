package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/task/countdown"
	taskmath "github.com/braid-dev/braid/task/math"
)

// chatRequest is the part of OpenAI's chat request braid reads; other
// fields are accepted and ignored, as OpenAI clients send many.
type chatRequest struct {
	Model               string        `json:"model"`
	Messages            []chatMessage `json:"messages"`
	Stream              bool          `json:"stream"`
	StreamOptions       *streamOpts   `json:"stream_options"`
	MaxTokens           *int          `json:"max_tokens"`
	MaxCompletionTokens *int          `json:"max_completion_tokens"`
	Temperature         *float64      `json:"temperature"`
	Seed                *int64        `json:"seed"`
	N                   *int          `json:"n"`
	ReasoningEffort     string        `json:"reasoning_effort"`
	// Braid holds braid's own options.
	Braid *braidOptions `json:"braid"`
}

type streamOpts struct {
	IncludeUsage bool `json:"include_usage"`
}

type braidOptions struct {
	// Strategy overrides the model name's.
	Strategy string `json:"strategy"`
	// Env is the Countdown environment: off, fill or constrain.
	Env string `json:"env"`
	// JoinAtGoal stops apr's other children once one reaches the goal
	// (reason.Countdown.JoinAtGoal).
	JoinAtGoal bool `json:"join_at_goal"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// text reads a message's content: a string, or an array of parts of
// which the text parts count.
func (m chatMessage) text() (string, error) {
	var s string
	if err := json.Unmarshal(m.Content, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(m.Content, &parts); err != nil {
		return "", errors.New("a message's content must be a string or an array of content parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("content parts of type %q are not supported: send text", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// job is a request resolved: what to run, on what.
type job struct {
	model, strategy string
	problem         string // as the user stated it
	// run runs the job on b: the server's backend, seen through the
	// request's limits.
	run func(ctx context.Context, b backend.Backend, observe reason.Observer) (*reason.Result, error)
	// verdict says whether an answer is right, when the task can tell.
	verdict func(answer string) *bool
	// content is the answer as the assistant message says it.
	content func(r *reason.Result) string
}

// resolve checks a chat request and builds its job, or writes the 4xx
// error saying what is wrong.
func (s *Server) resolve(w http.ResponseWriter, req *chatRequest) (*job, bool) {
	strategy, ok := s.strategyOf(w, req.Model, req.ReasoningEffort, req.Braid)
	if !ok {
		return nil, false
	}
	if len(req.Messages) == 0 {
		badRequest(w, "messages: expected at least one message")
		return nil, false
	}
	if req.N != nil && *req.N != 1 {
		badRequest(w, "n: only 1 is supported; strategies sample for themselves (vote:k=N/%s)", s.opts.Model)
		return nil, false
	}
	maxTokens := 0
	for _, v := range []*int{req.MaxTokens, req.MaxCompletionTokens} {
		if v != nil {
			if *v < 0 {
				badRequest(w, "max_tokens: %d is negative", *v)
				return nil, false
			}
			maxTokens = *v
		}
	}
	temperature := -1.0
	if req.Temperature != nil {
		if *req.Temperature < 0 || *req.Temperature > 2 {
			badRequest(w, "temperature: %g is outside 0..2", *req.Temperature)
			return nil, false
		}
		if err := backend.CheckTemperature(*req.Temperature); err != nil {
			badRequest(w, "%v", err)
			return nil, false
		}
		temperature = *req.Temperature
	}
	var seed uint64
	if req.Seed != nil {
		seed = uint64(*req.Seed)
	}
	var question string
	for i := len(req.Messages) - 1; i >= 0; i-- {
		m := req.Messages[i]
		if m.Role != "user" {
			continue
		}
		text, err := m.text()
		if err != nil {
			badRequest(w, "messages[%d]: %v", i, err)
			return nil, false
		}
		question = text
		break
	}
	if strings.TrimSpace(question) == "" {
		badRequest(w, "messages: expected a user message with the problem")
		return nil, false
	}
	j := &job{model: s.opts.Model, strategy: strategy, problem: question}
	if s.opts.Countdown {
		p, err := countdown.ParseText(question)
		if err != nil {
			badRequest(w, "%v", err)
			return nil, false
		}
		env := reason.EnvConstrain
		if req.Braid != nil && req.Braid.Env != "" {
			if env, err = reason.ParseEnvMode(req.Braid.Env); err != nil {
				badRequest(w, "braid.env: %v", err)
				return nil, false
			}
		}
		if temperature < 0 {
			temperature = 0 // the Countdown model searches greedily by default
			if strings.HasPrefix(strategy, "vote:") {
				temperature = 1 // votes need samples that differ
			}
		}
		st, err := reason.ParseCountdown(strategy, reason.Countdown{Env: env, Temperature: temperature, Seed: seed, MaxTotalTokens: maxTokens,
			JoinAtGoal: req.Braid != nil && req.Braid.JoinAtGoal})
		if err != nil {
			badRequest(w, "model %q: %v", req.Model, err)
			return nil, false
		}
		j.run = func(ctx context.Context, b backend.Backend, observe reason.Observer) (*reason.Result, error) {
			switch c := st.(type) {
			case reason.Countdown:
				c.Observe = observe
				return c.Solve(ctx, b, p)
			case reason.CountdownVote:
				c.Inner.Observe = observe
				return c.Solve(ctx, b, p)
			}
			return st.Solve(ctx, b, p)
		}
		j.verdict = func(answer string) *bool {
			ok := answer != "" && countdown.VerifyAnswer(p, answer) == nil
			return &ok
		}
		j.content = func(r *reason.Result) string {
			if r.Answer == "" {
				return fmt.Sprintf("No solution found for %s.", p)
			}
			return fmt.Sprintf("%s = %d", r.Answer, p.Target)
		}
		return j, true
	}
	if req.Braid != nil && req.Braid.JoinAtGoal {
		badRequest(w, "braid.join_at_goal stops the Countdown model's apr children and vote samples; %s's strategies have no such stop", s.opts.Model)
		return nil, false
	}
	if temperature < 0 {
		temperature = 1 // OpenAI's default
	}
	sampling := reason.Sampling{MaxTokens: maxTokens, Temperature: temperature, Seed: seed}
	if _, err := reason.ParseStrategy(strategy, sampling); err != nil {
		badRequest(w, "model %q: %v", req.Model, err)
		return nil, false
	}
	t := taskmath.Task{}
	p := task.Problem{Task: "math", Text: question}
	j.run = func(ctx context.Context, b backend.Backend, observe reason.Observer) (*reason.Result, error) {
		sm := sampling
		sm.Observe = observe
		st, _ := reason.ParseStrategy(strategy, sm) // checked above
		return st.Solve(ctx, b, t, p)
	}
	j.verdict = func(string) *bool { return nil }
	j.content = func(r *reason.Result) string { return r.Answer }
	return j, true
}

// strategyOf reads the strategy from the model name ("apr/countdown"),
// the braid options or the reasoning effort, in that order of precedence
// after the name.
func (s *Server) strategyOf(w http.ResponseWriter, model, effort string, opts *braidOptions) (string, bool) {
	if model == "" {
		badRequest(w, "model: required; this server has %q (and STRATEGY/%s)", s.opts.Model, s.opts.Model)
		return "", false
	}
	strategy, name := "", model
	if model != s.opts.Model {
		// STRATEGY/MODEL; the model's own name may hold slashes too.
		if st, ok := strings.CutSuffix(model, "/"+s.opts.Model); ok && st != "" {
			strategy, name = st, s.opts.Model
		}
	}
	if name != s.opts.Model {
		writeError(w, http.StatusNotFound, "not_found_error",
			fmt.Sprintf("model %q does not exist here: this server has %q, and STRATEGY/%s (GET /v1/models lists them)", model, s.opts.Model, s.opts.Model))
		return "", false
	}
	if opts != nil && opts.Strategy != "" {
		if strategy != "" && strategy != opts.Strategy {
			badRequest(w, "braid.strategy %q contradicts the model name's %q", opts.Strategy, strategy)
			return "", false
		}
		strategy = opts.Strategy
	}
	if strategy == "" && effort != "" {
		e, ok := map[string]string{"none": "off", "minimal": "off", "low": "off", "medium": "light", "high": "deep"}[effort]
		if !ok {
			badRequest(w, "reasoning_effort %q: expected minimal, low, medium or high", effort)
			return "", false
		}
		strategy = "hybrid:effort=" + e
	}
	if strategy == "" {
		strategy = s.opts.DefaultStrategy
	}
	return strategy, true
}

// chat answers /v1/chat/completions.
func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var req chatRequest
	if !decodeBody(w, r, &req) {
		return
	}
	j, ok := s.resolve(w, &req)
	if !ok {
		return
	}
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()
	t := s.traces.start(j.model, j.strategy, j.problem)
	w.Header().Set("X-Braid-Trace", t.ID)
	go s.execute(r.Context(), j, t)
	id := "chatcmpl-" + t.ID[len("trace-"):]
	model := req.Model
	if !req.Stream {
		_, done, changed := t.since(0)
		for !done {
			select {
			case <-r.Context().Done():
				s.interrupted(w, r.Context())
				return
			case <-changed:
			}
			_, done, changed = t.since(0)
		}
		v := t.view()
		if v.Status == "failed" {
			switch err := t.failure(); {
			case errors.Is(err, errLimit):
				badRequest(w, "%v", err)
			case r.Context().Err() != nil:
				s.interrupted(w, r.Context())
			default:
				s.runFailed(w, err)
			}
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": id, "object": "chat.completion", "created": t.Created, "model": model,
			"choices": []map[string]any{{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": j.content(v.Result), "reasoning_content": reasoningText(v.Result)}}},
			"usage": usageOf(v.Result), "braid": braidInfo(v),
		})
		return
	}
	sse := newSSE(w)
	chunk := func(delta map[string]any, finish any) error {
		b, _ := json.Marshal(map[string]any{"id": id, "object": "chat.completion.chunk", "created": t.Created, "model": model,
			"choices": []map[string]any{{"index": 0, "delta": delta, "finish_reason": finish}}})
		return sse.event("", "", b)
	}
	if chunk(map[string]any{"role": "assistant", "content": ""}, nil) != nil {
		return
	}
	var last string // the thread the last delta came from
	threads := 0
	first := true
	for next := 0; ; {
		events, done, changed := t.since(next)
		for _, e := range events {
			next++
			switch e.Kind {
			case reason.ThreadStarted:
				threads++
			case reason.ThreadDelta:
				text := e.Text
				if e.Thread != last && (threads > 1 || last != "") {
					text = fmt.Sprintf("\n[thread %s]\n%s", e.Thread, text)
				}
				last = e.Thread
				if text == "" {
					continue
				}
				if first {
					s.metrics.firstToken.Observe(time.Since(start).Seconds())
					first = false
				}
				if chunk(map[string]any{"reasoning_content": text}, nil) != nil {
					return
				}
			}
		}
		if done {
			break
		}
		select {
		case <-r.Context().Done():
			// Cut short by the time limit or a shutdown: say so in the
			// stream (a client that left reads nothing).
			sse.error(s.cutShort(r.Context()), "server_error")
			return
		case <-changed:
		}
	}
	v := t.view()
	if v.Status == "failed" {
		if err := t.failure(); errors.Is(err, errLimit) {
			sse.error(err.Error(), "invalid_request_error")
		} else {
			sse.error("the run failed: "+oneLine(err), "server_error")
		}
		return
	}
	chunk(map[string]any{"content": j.content(v.Result)}, nil)
	chunk(map[string]any{}, "stop")
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		b, _ := json.Marshal(map[string]any{"id": id, "object": "chat.completion.chunk", "created": t.Created, "model": model,
			"choices": []any{}, "usage": usageOf(v.Result), "braid": braidInfo(v)})
		sse.event("", "", b)
	}
	w.Write([]byte("data: [DONE]\n\n"))
	sse.flush()
}

// execute runs a job into its trace. It outlives nothing: the request's
// context ends it.
func (s *Server) execute(ctx context.Context, j *job, t *trace) {
	defer func() {
		if v := recover(); v != nil {
			t.finish(nil, nil, fmt.Errorf("internal error: %v", v))
		}
	}()
	var mu sync.Mutex
	live := 0
	observe := func(e reason.Event) {
		switch e.Kind {
		case reason.ThreadStarted:
			s.metrics.threads.Inc()
			mu.Lock()
			live++
			mu.Unlock()
		case reason.ThreadFinished:
			s.metrics.threads.Dec()
			mu.Lock()
			live--
			mu.Unlock()
		}
		t.add(e)
	}
	// A run cut short (an error, a client gone) leaves threads that never
	// said they finished: they are not live any more either.
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		s.metrics.threads.Sub(float64(live))
	}()
	b, ctx, stop := s.limit(ctx, t.ID)
	defer stop(nil)
	r, err := j.run(ctx, b, observe)
	if lim := stoppedBy(ctx); lim != nil {
		err = lim // the strategy saw only a cancelled context
	}
	if err != nil {
		t.finish(nil, nil, err)
		return
	}
	prompt, completion, _ := tokenSums(r.Tree)
	s.metrics.tokens.WithLabelValues("prompt").Add(float64(prompt))
	s.metrics.tokens.WithLabelValues("completion").Add(float64(completion))
	t.finish(r, j.verdict(r.Answer), nil)
}

// interrupted answers a request whose work was cut short: by its time
// limit, or by a shutdown (a client that left reads nothing).
func (s *Server) interrupted(w http.ResponseWriter, ctx context.Context) {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		writeError(w, http.StatusGatewayTimeout, "timeout", s.cutShort(ctx))
		return
	}
	writeError(w, http.StatusServiceUnavailable, "server_error", s.cutShort(ctx))
}

// cutShort says why a request's context ended before its work: its time
// limit, or a shutdown.
func (s *Server) cutShort(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("the request took longer than the server's limit of %s", s.opts.Timeout)
	}
	return "the server is shutting down; retry"
}

// runFailed answers a run that failed on the server's side.
func (s *Server) runFailed(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	if errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusGatewayTimeout
	}
	writeError(w, status, "server_error", "the run failed: "+oneLine(err))
}

// oneLine is an error's first line, at most 500 bytes: what a client is
// told of a failure on the server's side, whose detail (a stack, were a
// bug to put one in an error) belongs in the log.
func oneLine(err error) string {
	if err == nil {
		return "unknown error"
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if len(msg) > 500 {
		msg = strings.ToValidUTF8(msg[:500], "") + "..."
	}
	return msg
}

// tokenSums adds up a tree's prompt, completion and cached prompt tokens.
func tokenSums(t *reason.Thread) (prompt, completion, cached int) {
	if t == nil {
		return 0, 0, 0
	}
	prompt, completion, cached = t.PromptTokens, t.Tokens, t.CachedTokens
	for _, c := range t.Children {
		p, k, ca := tokenSums(c)
		prompt, completion, cached = prompt+p, completion+k, cached+ca
	}
	return prompt, completion, cached
}

// usageOf is OpenAI's usage over every thread: all completion tokens are
// reasoning tokens, the answer being read from them.
func usageOf(r *reason.Result) map[string]any {
	var prompt, completion, cached int
	if r != nil {
		prompt, completion, cached = tokenSums(r.Tree)
	}
	return map[string]any{"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
		"completion_tokens_details": map[string]any{"reasoning_tokens": completion},
		"prompt_tokens_details":     map[string]any{"cached_tokens": cached}}
}

func braidInfo(v traceView) map[string]any {
	info := map[string]any{"trace_id": v.ID, "strategy": v.Strategy}
	if v.Correct != nil {
		info["correct"] = *v.Correct
	}
	if r := v.Result; r != nil {
		info["threads"], info["total_tokens"], info["critical_path_tokens"] = r.Threads, r.TotalTokens, r.CriticalPathTokens
		info["wall_ms"] = r.Wall.Milliseconds()
	}
	return info
}

// reasoningText is the threads' text for a non-streamed answer: each
// thread's text under its name.
func reasoningText(r *reason.Result) string {
	if r == nil || r.Tree == nil {
		return ""
	}
	var b strings.Builder
	var walk func(t *reason.Thread)
	walk = func(t *reason.Thread) {
		if t.Text != "" {
			fmt.Fprintf(&b, "[thread %s]\n%s\n", t.Node, strings.TrimRight(t.Text, "\n"))
		}
		for _, c := range t.Children {
			walk(c)
		}
	}
	walk(r.Tree)
	return b.String()
}

// models answers /v1/models: the model and its strategy variants.
func (s *Server) models(w http.ResponseWriter, _ *http.Request) {
	var data []map[string]any
	add := func(id string) {
		data = append(data, map[string]any{"id": id, "object": "model", "created": 0, "owned_by": "braid"})
	}
	add(s.opts.Model)
	strategies := []string{"serial", "hybrid:effort=light", "vote:k=8", "best:k=8", "aggregate:k=4", "deepthink:k=4"}
	if s.opts.Countdown {
		strategies = []string{"apr", "serial", "direct", "vote:k=8", "hybrid:effort=off", "hybrid:effort=light", "hybrid:effort=deep"}
	}
	for _, st := range strategies {
		add(st + "/" + s.opts.Model)
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}
