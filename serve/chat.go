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
	"github.com/braid-dev/braid/eval"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/task"
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
	// Env is the task's environment (Countdown's): off, fill or
	// constrain.
	Env string `json:"env"`
	// JoinAtGoal stops apr's other children once one reaches the goal,
	// and a vote's other samples at the first checked answer
	// (reason.Options.JoinAtGoal).
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
	// It returns the result, and whether its answer is right when the
	// task can tell (nil when it cannot).
	run func(ctx context.Context, b backend.Backend, observe reason.Observer) (*reason.Result, *bool, error)
	// content is the answer as the assistant message says it.
	content func(r *reason.Result) string
}

// resolve checks a chat request and builds its job, or says what is
// wrong with it.
func (s *Server) resolve(req *chatRequest) (*job, error) {
	strategy, err := s.strategyOf(req.Model, req.ReasoningEffort, req.Braid)
	if err != nil {
		return nil, err
	}
	if len(req.Messages) == 0 {
		return nil, badRequest("messages: expected at least one message")
	}
	if req.N != nil && *req.N != 1 {
		return nil, badRequest("n: only 1 is supported; strategies sample for themselves (vote:k=N/%s)", s.opts.Model)
	}
	maxTokens := 0
	for _, v := range []*int{req.MaxTokens, req.MaxCompletionTokens} {
		if v != nil {
			if *v < 0 {
				return nil, badRequest("max_tokens: %d is negative", *v)
			}
			maxTokens = *v
		}
	}
	temperature := -1.0
	if req.Temperature != nil {
		if *req.Temperature < 0 || *req.Temperature > 2 {
			return nil, badRequest("temperature: %g is outside 0..2", *req.Temperature)
		}
		if err := backend.CheckTemperature(*req.Temperature); err != nil {
			return nil, badRequest("%w", err)
		}
		temperature = *req.Temperature
	}
	var seed uint64
	if req.Seed != nil {
		seed = uint64(*req.Seed)
	}
	var question string
	last := -1
	for i := len(req.Messages) - 1; i >= 0; i-- {
		m := req.Messages[i]
		if m.Role != "user" {
			continue
		}
		text, err := m.text()
		if err != nil {
			return nil, badRequest("messages[%d]: %w", i, err)
		}
		question, last = text, i
		break
	}
	if strings.TrimSpace(question) == "" {
		return nil, badRequest("messages: expected a user message with the problem")
	}
	// What comes before the question (a system message, earlier turns)
	// reaches a chat model as it is; the question is the task's problem.
	var history []backend.Message
	for i, m := range req.Messages[:last] {
		switch m.Role {
		case "system", "developer", "user", "assistant":
		default:
			return nil, badRequest("messages[%d]: role %q: expected system, user or assistant", i, m.Role)
		}
		text, err := m.text()
		if err != nil {
			return nil, badRequest("messages[%d]: %w", i, err)
		}
		role := m.Role
		if role == "developer" {
			role = "system" // OpenAI's newer name for it
		}
		history = append(history, backend.Message{Role: role, Content: text})
	}
	t := s.opts.Task
	p, err := t.Parse(question)
	if err != nil {
		return nil, badRequest("%w", err)
	}
	o := reason.Options{Seed: seed, MaxTokens: maxTokens, MaxTotalTokens: maxTokens, Temperature: s.opts.Temperature}
	if temperature >= 0 {
		o.Temperature = temperature
	} else if reason.Samples(strategy) {
		o.Temperature = 1 // samples that differ, when the request names no temperature
	}
	if req.Braid != nil && req.Braid.Env != "" {
		if _, ok := t.(task.Environment); !ok {
			return nil, badRequest("braid.env: the %s task has no environment", t.Name())
		}
		if o.Env, err = reason.ParseEnvMode(req.Braid.Env); err != nil {
			return nil, badRequest("braid.env: %w", err)
		}
	}
	if req.Braid != nil && req.Braid.JoinAtGoal {
		if err := reason.CheckJoinAtGoal(t); err != nil {
			return nil, badRequest("braid.join_at_goal: %w", err)
		}
		o.JoinAtGoal = true
	}
	st, err := reason.Parse(strategy, o, t)
	if err != nil {
		return nil, badRequest("model %q: %w", req.Model, err)
	}
	j := &job{model: s.opts.Model, strategy: strategy, problem: question}
	j.run = func(ctx context.Context, b backend.Backend, observe reason.Observer) (*reason.Result, *bool, error) {
		r, o, err := eval.Run(ctx, backend.WithMessages(b, history), t, st, p, observe)
		if err != nil || !o.Verified {
			return r, nil, err
		}
		return r, &o.Correct, nil
	}
	j.content = func(r *reason.Result) string {
		if rp, ok := t.(task.Replier); ok {
			return rp.Reply(p, r.Answer)
		}
		return r.Answer
	}
	return j, nil
}

// strategyOf reads the strategy from the model name ("apr/countdown"),
// the braid options or the reasoning effort, in that order of precedence
// after the name.
func (s *Server) strategyOf(model, effort string, opts *braidOptions) (string, error) {
	if model == "" {
		return "", badRequest("model: required; this server has %q (and STRATEGY/%s)", s.opts.Model, s.opts.Model)
	}
	strategy, name := "", model
	if model != s.opts.Model {
		// STRATEGY/MODEL; the model's own name may hold slashes too.
		if st, ok := strings.CutSuffix(model, "/"+s.opts.Model); ok && st != "" {
			strategy, name = st, s.opts.Model
		}
	}
	if name != s.opts.Model {
		return "", notFound("model %q does not exist here: this server has %q, and STRATEGY/%s (GET /v1/models lists them)", model, s.opts.Model, s.opts.Model)
	}
	if opts != nil && opts.Strategy != "" {
		if strategy != "" && strategy != opts.Strategy {
			return "", badRequest("braid.strategy %q contradicts the model name's %q", opts.Strategy, strategy)
		}
		strategy = opts.Strategy
	}
	if strategy == "" && effort != "" {
		e, ok := map[string]string{"none": "off", "minimal": "off", "low": "off", "medium": "light", "high": "deep"}[effort]
		if !ok {
			return "", badRequest("reasoning_effort %q: expected minimal, low, medium or high", effort)
		}
		strategy = "hybrid:effort=" + e
	}
	if strategy == "" {
		strategy = s.opts.DefaultStrategy
	}
	return strategy, nil
}

// chat answers /v1/chat/completions.
func (s *Server) chat(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	var req chatRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	j, err := s.resolve(&req)
	if err != nil {
		return err
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
				return cutShort(r.Context())
			case <-changed:
			}
			_, done, changed = t.since(0)
		}
		v := t.view()
		if v.Status == "failed" {
			return whyRunFailed(r.Context(), t.failure())
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": id, "object": "chat.completion", "created": t.Created, "model": model,
			"choices": []map[string]any{{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": j.content(v.Result), "reasoning_content": reasoningText(v.Result)}}},
			"usage": usageOf(v.Result), "braid": braidInfo(v),
		})
		return nil
	}
	sse := newSSE(w)
	chunk := func(delta map[string]any, finish any) error {
		b, _ := json.Marshal(map[string]any{"id": id, "object": "chat.completion.chunk", "created": t.Created, "model": model,
			"choices": []map[string]any{{"index": 0, "delta": delta, "finish_reason": finish}}})
		return sse.event("", "", b)
	}
	if chunk(map[string]any{"role": "assistant", "content": ""}, nil) != nil {
		return nil // the client left
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
					return nil
				}
			}
		}
		if done {
			break
		}
		select {
		case <-r.Context().Done():
			sse.fail(cutShort(r.Context()))
			return nil
		case <-changed:
		}
	}
	v := t.view()
	if v.Status == "failed" {
		sse.fail(whyRunFailed(r.Context(), t.failure()))
		return nil
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
	return nil
}

// whyRunFailed is why a run failed, err being what it failed with: the
// limit it passed or the end of the request's context, ctx, else err, as a
// failure on the server's side.
func whyRunFailed(ctx context.Context, err error) error {
	if stop := interruption(ctx, err); stop != nil {
		return stop
	}
	return runFailed(err)
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
	b, ctx, stop := s.limit(ctx, t.ID, s.opts.Backend)
	defer stop(nil)
	ctx = backend.WithRetryBudget(ctx, s.opts.RetryBudget)
	r, verdict, err := j.run(ctx, b, observe)
	if lim := stoppedBy(ctx); lim != nil {
		err = lim // the strategy saw only a cancelled context
	}
	if err != nil {
		t.finish(nil, nil, err)
		return
	}
	s.metrics.tokens.WithLabelValues("prompt").Add(float64(r.PromptTokens))
	s.metrics.tokens.WithLabelValues("completion").Add(float64(r.TotalTokens))
	if r.FormatErrors > 0 {
		s.metrics.malformed.WithLabelValues(j.strategy).Add(float64(r.FormatErrors))
	}
	t.finish(r, verdict, nil)
}

// usageOf is OpenAI's usage over every thread: all completion tokens are
// reasoning tokens, the answer being read from them.
func usageOf(r *reason.Result) map[string]any {
	var prompt, completion, cached int
	if r != nil {
		prompt, completion, cached = r.PromptTokens, r.TotalTokens, r.CachedTokens
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
		info["threads"], info["depth"], info["total_tokens"], info["critical_path_tokens"] = r.Threads, r.Depth, r.TotalTokens, r.CriticalPathTokens
		info["wall_ms"] = r.LatencyMS
		info["format_errors"] = r.FormatErrors
		if r.CriticalPathTokens > 0 {
			info["speedup"] = float64(r.TotalTokens) / float64(r.CriticalPathTokens)
		}
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

// offered are the strategies /v1/models lists, those the task can run.
var offered = []string{"apr", "serial", "direct", "hybrid:effort=off", "hybrid:effort=light", "hybrid:effort=deep", "parallel", "multiverse", "threadweaver",
	"vote:k=8", "vote:k=4:apr", "best:k=8", "best:k=4:apr", "aggregate:k=4", "deepthink:k=4"}

// models answers /v1/models: the model and its strategy variants.
func (s *Server) models(w http.ResponseWriter, _ *http.Request) error {
	var data []map[string]any
	add := func(id string) {
		data = append(data, map[string]any{"id": id, "object": "model", "created": 0, "owned_by": "braid"})
	}
	add(s.opts.Model)
	var strategies []string
	for _, st := range offered {
		if _, err := reason.Parse(st, reason.Options{Temperature: 1}, s.opts.Task); err == nil {
			strategies = append(strategies, st)
		}
	}
	for _, st := range strategies {
		add(st + "/" + s.opts.Model)
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
	return nil
}
