package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/braid-dev/braid/backend"
)

// completionRequest is the part of OpenAI's (and vLLM's) completion
// request braid reads.
type completionRequest struct {
	Model         string          `json:"model"`
	Prompt        json.RawMessage `json:"prompt"`
	MaxTokens     *int            `json:"max_tokens"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
	TopK          *int            `json:"top_k"`
	Seed          *int64          `json:"seed"`
	Stop          json.RawMessage `json:"stop"`
	Stream        bool            `json:"stream"`
	StreamOptions *streamOpts     `json:"stream_options"`
	Logprobs      *int            `json:"logprobs"`
	N             *int            `json:"n"`
	// GuidedChoice is vLLM's: the completion is one of these strings.
	GuidedChoice      []string `json:"guided_choice"`
	StructuredOutputs *struct {
		Choice []string `json:"choice"`
	} `json:"structured_outputs"`
}

// completions answers /v1/completions with the model itself, no strategy:
// a raw continuation, as vLLM serves it, so that braid can be another
// braid's (or any OpenAI client's) backend.
func (s *Server) completions(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	var req completionRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if s.opts.Raw == nil {
		return badRequest("this server runs a remote model: /v1/completions is served only for braid's embedded model; use /v1/chat/completions")
	}
	if req.Model != s.opts.Model {
		return notFound("model %q: raw completions are served for %q, without a strategy", req.Model, s.opts.Model)
	}
	breq := &backend.Request{Temperature: 1} // OpenAI's default
	if err := readPrompt(req.Prompt, breq); err != nil {
		return badRequest("prompt: %w", err)
	}
	switch {
	case req.N != nil && (*req.N < 1 || *req.N > 64):
		return badRequest("n: %d is outside 1..64", *req.N)
	case req.MaxTokens != nil && *req.MaxTokens < 0:
		return badRequest("max_tokens: %d is negative", *req.MaxTokens)
	case req.Temperature != nil && (*req.Temperature < 0 || *req.Temperature > 2):
		return badRequest("temperature: %g is outside 0..2", *req.Temperature)
	case req.Temperature != nil && backend.CheckTemperature(*req.Temperature) != nil:
		return badRequest("%w", backend.CheckTemperature(*req.Temperature))
	case req.TopP != nil && (*req.TopP <= 0 || *req.TopP > 1):
		return badRequest("top_p: %g is outside (0, 1]", *req.TopP)
	case req.TopK != nil && *req.TopK < -1:
		return badRequest("top_k: %d: expected -1 (off) or more", *req.TopK)
	case req.Logprobs != nil && (*req.Logprobs < 0 || *req.Logprobs > 20):
		return badRequest("logprobs: %d is outside 0..20", *req.Logprobs)
	}
	if req.MaxTokens != nil {
		breq.MaxTokens = *req.MaxTokens
	}
	if req.Temperature != nil {
		breq.Temperature = *req.Temperature
	}
	if req.TopP != nil {
		breq.TopP = *req.TopP
	}
	if req.TopK != nil && *req.TopK > 0 {
		breq.TopK = *req.TopK
	}
	if req.Seed != nil {
		breq.Seed = uint64(*req.Seed)
	}
	if req.Logprobs != nil {
		breq.Logprobs, breq.TopLogprobs = true, *req.Logprobs
	}
	if len(req.Stop) > 0 && string(req.Stop) != "null" {
		var one string
		if json.Unmarshal(req.Stop, &one) == nil {
			breq.Stop = []string{one}
		} else if err := json.Unmarshal(req.Stop, &breq.Stop); err != nil {
			return badRequest("stop: expected a string or an array of strings")
		}
	}
	choices := req.GuidedChoice
	if req.StructuredOutputs != nil && len(req.StructuredOutputs.Choice) > 0 {
		choices = req.StructuredOutputs.Choice
	}
	if len(choices) > 0 {
		breq.Env = &guidedChoice{choices: choices}
	}
	n := 1
	if req.N != nil {
		n = *req.N
	}
	if n > 1 && breq.Env != nil {
		return badRequest("n: guided choices steer one completion at a time; send n=1")
	}
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()
	id := "cmpl-" + time.Now().Format("150405") + fmt.Sprintf("%06d", time.Now().Nanosecond()/1000)
	created := time.Now().Unix()
	var total backend.Usage
	sum := func(cs []*backend.Completion) {
		// The samples share the prompt, computed once (the others find it
		// in the cache): it is counted once.
		total.PromptTokens, total.CachedPromptTokens = cs[0].Usage.PromptTokens, cs[0].Usage.CachedPromptTokens
		for _, c := range cs {
			total.CompletionTokens += c.Usage.CompletionTokens
		}
		s.countTokens(total)
	}
	lb, ctx, stop := s.limit(r.Context(), id, s.opts.Raw)
	defer stop(nil)
	if !req.Stream {
		cs, err := backend.CompleteN(ctx, lb, breq, n)
		if lim := stoppedBy(ctx); lim != nil {
			err = lim
		}
		if err != nil {
			if stop := interruption(r.Context(), err); stop != nil {
				return stop
			}
			// The backend's: errorOf tells a prompt the client got
			// wrong from a failure of the server's.
			return err
		}
		sum(cs)
		var choices []map[string]any
		for i, c := range cs {
			choices = append(choices, map[string]any{"index": i, "text": c.Text, "finish_reason": finishOf(c), "logprobs": logprobsOf(c.Tokens, req.Logprobs)})
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "text_completion", "created": created, "model": req.Model,
			"choices": choices, "usage": completionUsage(total)})
		return nil
	}
	// Stream: chunks go out from OnChunk as the engine releases them; n
	// samples decode at once, so their chunks interleave, each with its
	// index.
	var mu sync.Mutex
	var sse *sseWriter
	first := true
	var werr error
	breq.OnChunk = func(ch backend.Chunk) {
		mu.Lock()
		defer mu.Unlock()
		if werr != nil {
			return
		}
		if sse == nil {
			sse = newSSE(w)
		}
		if first && ch.Text != "" {
			s.metrics.firstToken.Observe(time.Since(start).Seconds())
			first = false
		}
		b, _ := json.Marshal(map[string]any{"id": id, "object": "text_completion", "created": created, "model": req.Model,
			"choices": []map[string]any{{"index": ch.Index, "text": ch.Text, "finish_reason": nil, "logprobs": logprobsOf(ch.Tokens, req.Logprobs)}}})
		werr = sse.event("", "", b)
	}
	cs, err := backend.CompleteN(ctx, lb, breq, n)
	if lim := stoppedBy(ctx); lim != nil {
		err = lim
	}
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		if stop := interruption(r.Context(), err); stop != nil {
			err = stop
		} else if sse != nil {
			// Mid-stream, in the backend's own words: a braid client
			// that reads it adds its own ("the server failed mid-stream").
			err = internal(err)
		}
		if sse == nil {
			return err
		}
		sse.fail(err)
		return nil
	}
	sum(cs)
	if sse == nil {
		sse = newSSE(w)
	}
	for i, c := range cs {
		b, _ := json.Marshal(map[string]any{"id": id, "object": "text_completion", "created": created, "model": req.Model,
			"choices": []map[string]any{{"index": i, "text": "", "finish_reason": finishOf(c), "logprobs": nil}}})
		sse.event("", "", b)
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		b, _ := json.Marshal(map[string]any{"id": id, "object": "text_completion", "created": created, "model": req.Model,
			"choices": []any{}, "usage": completionUsage(total)})
		sse.event("", "", b)
	}
	w.Write([]byte("data: [DONE]\n\n"))
	sse.flush()
	return nil
}

func (s *Server) countTokens(u backend.Usage) {
	s.metrics.tokens.WithLabelValues("prompt").Add(float64(u.PromptTokens))
	s.metrics.tokens.WithLabelValues("completion").Add(float64(u.CompletionTokens))
}

// readPrompt reads a prompt: a string, an array of one string, or an
// array of token ids.
func readPrompt(raw json.RawMessage, req *backend.Request) error {
	if len(raw) == 0 || string(raw) == "null" {
		return errors.New("required")
	}
	var text string
	if json.Unmarshal(raw, &text) == nil {
		req.Prompt = text
		return nil
	}
	var texts []string
	if json.Unmarshal(raw, &texts) == nil {
		if len(texts) != 1 {
			return fmt.Errorf("an array of %d prompts: send one", len(texts))
		}
		req.Prompt = texts[0]
		return nil
	}
	var ids []int
	if json.Unmarshal(raw, &ids) == nil {
		if len(ids) == 0 {
			return errors.New("no tokens")
		}
		req.PromptTokens = ids
		return nil
	}
	return errors.New("expected a string, an array of one string, or an array of token ids")
}

func finishOf(c *backend.Completion) string {
	if c.Finish == backend.FinishLength {
		return "length"
	}
	return "stop"
}

func completionUsage(u backend.Usage) map[string]any {
	return map[string]any{"prompt_tokens": u.PromptTokens, "completion_tokens": u.CompletionTokens,
		"total_tokens": u.PromptTokens + u.CompletionTokens, "prompt_tokens_details": map[string]any{"cached_tokens": u.CachedPromptTokens}}
}

// logprobsOf is OpenAI's legacy completion logprobs for tokens, nil when
// not asked for.
func logprobsOf(tokens []backend.Token, n *int) any {
	if n == nil {
		return nil
	}
	lp := map[string]any{"tokens": []string{}, "token_logprobs": []float64{}, "top_logprobs": []map[string]float64{}, "text_offset": []int{}}
	var toks []string
	var lps []float64
	var tops []map[string]float64
	for _, t := range tokens {
		toks = append(toks, fmt.Sprint(t.ID))
		lps = append(lps, finiteLogprob(t.Logprob))
		top := map[string]float64{}
		for _, a := range t.Top {
			top[fmt.Sprint(a.ID)] = finiteLogprob(a.Logprob)
		}
		tops = append(tops, top)
	}
	if toks != nil {
		lp["tokens"], lp["token_logprobs"], lp["top_logprobs"] = toks, lps, tops
	}
	return lp
}

// finiteLogprob is lp as JSON can carry it: -9999 (vLLM's stand-in for
// minus infinity) for an impossible token or a model whose numbers are
// not numbers.
func finiteLogprob(lp float64) float64 {
	if math.IsNaN(lp) || math.IsInf(lp, 0) {
		return -9999
	}
	return lp
}

// guidedChoice is vLLM's guided_choice as an environment: the model writes
// one of the choices, and the completion ends there.
type guidedChoice struct {
	choices []string
	written string
	done    bool
}

func (g *guidedChoice) Begin() (string, error) { return "", nil }

func (g *guidedChoice) Next(written string) (string, error) {
	g.written += written
	for _, c := range g.choices {
		if g.written == c {
			g.done = true
		}
	}
	return "", nil
}

// Choices returns, as the engine wants them, the rest of each choice
// that what was written so far begins.
func (g *guidedChoice) Choices() []string {
	if g.done {
		return nil
	}
	var rest []string
	for _, c := range g.choices {
		if r, ok := strings.CutPrefix(c, g.written); ok && r != "" {
			rest = append(rest, r)
		}
	}
	return rest
}

func (g *guidedChoice) Done() bool { return g.done }
