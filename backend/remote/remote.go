// Package remote implements backend.Backend over OpenAI-compatible HTTP
// servers (vLLM, SGLang, llama.cpp's server, OpenAI): /v1/completions for
// raw text continuation, which spawn/join and task environments need, and
// /v1/chat/completions for chat models. Responses stream as server-sent
// events; failed requests are retried with backoff; several endpoints share
// the load with prefix affinity, so a thread's continuations reach the
// server that caches its prefix.
package remote

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/braid-dev/braid/backend"
)

// Options configure a Client.
type Options struct {
	// Endpoints are the servers' base URLs, such as
	// http://127.0.0.1:8000/v1.
	Endpoints []string
	// APIKey is sent as a bearer token; empty means $BRAID_API_KEY, then
	// $OPENAI_API_KEY, then none.
	APIKey string
	// Model names the model in each request.
	Model string
	// Chat selects /chat/completions: the prompt becomes the user's
	// message, and the text a completion continues (the prompt from its
	// ReplyAt, then what stop-and-continue wrote) an assistant message the
	// server continues (continue_final_message, as vLLM, SGLang and
	// llama.cpp's server read it), through the server's own chat template.
	Chat bool
	// MaxConcurrent caps the requests in flight per endpoint (16 when 0).
	MaxConcurrent int
	// Timeout caps one HTTP request (none when 0; the context still
	// applies).
	Timeout time.Duration
	// Retries is how many times a request is retried after a 429, a 5xx or
	// a dropped connection (4 when 0; -1 for none).
	Retries int
	// ChatTemplateKwargs and ReasoningEffort are passed through, for
	// hybrid-thinking models (e.g. {"enable_thinking": false}).
	ChatTemplateKwargs map[string]any
	ReasoningEffort    string
	// GuidedChoice sends an environment's choices as vLLM's guided-decoding
	// choice list (guided_choice, and structured_outputs for vLLM 0.12 and
	// later), so the server only generates legal ones. Without it an
	// environment only fills.
	GuidedChoice bool
	// Cooldown is how long an endpoint that could not be reached (a
	// refused or dropped connection before any answer, or a 502/503) is
	// passed over, its requests going to the next (5 s when 0).
	Cooldown time.Duration
	// Slots, for a server with a prefix cache per slot (llama.cpp's
	// llama-server, started with -np Slots), sends each call of a thread
	// to the free slot whose cache holds most of its text (id_slot), at
	// most Slots calls at a time per endpoint. 0 leaves the choice to the
	// server (vLLM and SGLang share one cache across requests).
	Slots int
	// HTTPClient is the client to use (http.DefaultClient when nil).
	HTTPClient *http.Client
}

// Client is a Backend over OpenAI-compatible servers. It is safe for
// concurrent use.
type Client struct {
	opts      Options
	endpoints []*endpoint
	http      *http.Client
	key       string
}

type endpoint struct {
	// base is the URL that request paths extend, without its query;
	// query ("?..." or "") follows the path, so that a server reading its
	// key or api-version there still finds them.
	base, query string
	// name is the URL as messages show it, without the password or query,
	// either of which may hold a credential.
	name  string
	slots chan struct{}
	noN   atomic.Bool // the server refused n: samples go one request each
	pool  *slotPool   // with Options.Slots
	// unsaidStops: the server ends a completion at a stop string without
	// saying which (llama.cpp's): requests leave the stops to the client.
	unsaidStops atomic.Bool
	// plain: the server refused a field only some servers read
	// (errStrict): requests carry none, and stops are found by the client.
	plain atomic.Bool
	// downUntil (Unix nanoseconds) is when an endpoint that could not be
	// reached may be tried again; routing passes over it until then.
	downUntil atomic.Int64
}

// up reports whether the endpoint may be routed to now.
func (e *endpoint) up() bool { return time.Now().UnixNano() >= e.downUntil.Load() }

// New checks the options and returns a client.
func New(opts Options) (*Client, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("remote: no endpoint")
	}
	if opts.MaxConcurrent == 0 {
		opts.MaxConcurrent = 16
	}
	if opts.Retries == 0 {
		opts.Retries = 4
	}
	if opts.Cooldown == 0 {
		opts.Cooldown = 5 * time.Second
	}
	if opts.MaxConcurrent < 0 || opts.Timeout < 0 || opts.Cooldown < 0 || opts.Slots < 0 {
		return nil, fmt.Errorf("remote: negative option in %+v", opts)
	}
	c := &Client{opts: opts, http: opts.HTTPClient, key: opts.APIKey}
	if c.http == nil {
		c.http = http.DefaultClient
	}
	if c.key == "" {
		c.key = os.Getenv("BRAID_API_KEY")
	}
	if c.key == "" {
		c.key = os.Getenv("OPENAI_API_KEY")
	}
	for i, e := range opts.Endpoints {
		u, err := url.Parse(e)
		if err != nil {
			// Named by its place, not its text: it may hold a password.
			return nil, fmt.Errorf("remote: endpoint %d of %d does not parse as a URL", i+1, len(opts.Endpoints))
		}
		name := *u
		name.RawQuery, name.ForceQuery, name.Fragment, name.RawFragment = "", false, "", ""
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("remote: endpoint %q is not an http(s) URL", name.Redacted())
		}
		base, query, ok := strings.Cut(e, "?")
		if ok {
			query = "?" + query
		}
		ep := &endpoint{base: strings.TrimSuffix(base, "/"), query: query, name: name.Redacted(),
			slots: make(chan struct{}, opts.MaxConcurrent)}
		if opts.Slots > 0 {
			ep.pool = newSlotPool(opts.Slots)
		}
		c.endpoints = append(c.endpoints, ep)
	}
	return c, nil
}

// route picks the endpoint for an affinity key, so that a thread's calls
// (which extend its prompt) reach the server that holds the prefix in its
// cache: of the endpoints that are up, the one whose hash with the key is
// highest (rendezvous hashing, so that adding or losing an endpoint moves
// only the keys it gains or held). When none is up, the best of all.
func (c *Client) route(key string) *endpoint {
	if len(c.endpoints) == 1 {
		return c.endpoints[0]
	}
	var best, bestUp *endpoint
	var top, topUp uint64
	for _, e := range c.endpoints {
		h := fnv.New64a()
		h.Write([]byte(key))
		h.Write([]byte{0})
		h.Write([]byte(e.name))
		score := h.Sum64()
		if best == nil || score > top {
			best, top = e, score
		}
		if e.up() && (bestUp == nil || score > topUp) {
			bestUp, topUp = e, score
		}
	}
	if bestUp != nil {
		return bestUp
	}
	return best
}

// errUnreachable marks a failure to reach an endpoint at all: the request
// may go to another.
var errUnreachable = errors.New("endpoint unreachable")

// Complete implements backend.Backend. With an environment, a completion
// is generated piece by piece: the stream is cut where the environment
// takes over, and generation continues from the text with the
// environment's part appended (stop and continue).
func (c *Client) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if req.PromptTokens != nil && (c.opts.Chat || req.Env != nil) {
		return nil, fmt.Errorf("remote: token prompts need /completions and no environment: %w", errors.ErrUnsupported)
	}
	seed := req.Seed
	for seed == 0 {
		seed = rand.Uint64() >> 1 // servers read seeds as signed integers
	}
	key := req.Affinity
	if key == "" {
		key = req.Prompt[:min(len(req.Prompt), 64)]
	}
	ep := c.route(key)
	out := &backend.Completion{Seed: seed}
	var text strings.Builder
	emit := func(ch backend.Chunk) {
		text.WriteString(ch.Text)
		out.Tokens = append(out.Tokens, ch.Tokens...)
		if req.OnChunk != nil {
			req.OnChunk(ch)
		}
	}
	env := req.Env
	var t *turn
	if env != nil {
		t = &turn{env: env}
		begin, err := env.Begin()
		if err != nil {
			return nil, fmt.Errorf("remote: the environment refuses the prompt: %w", err)
		}
		if c.opts.GuidedChoice {
			// Guided calls end at each choice: the environment's text
			// goes first, as what the choices continue.
			emit(backend.Chunk{Text: begin})
		} else {
			t.due = begin
		}
	}
	// The thread's length in the server's tokens, the environment's
	// included (it wrote them into the prompt of the calls after): the
	// growth of the calls' prompts, then what the last call generated.
	firstPrompt, length, covered := -1, -1, 0
	for calls := 0; ; calls++ {
		if env != nil && t.due == "" && env.Done() {
			out.Finish = backend.FinishStop
			break
		}
		used := out.Usage.CompletionTokens
		if length >= 0 {
			used = length
		}
		budget := 0
		if req.MaxTokens > 0 {
			budget = req.MaxTokens - used
			if budget <= 0 {
				out.Finish = backend.FinishLength
				break
			}
		}
		var choices []string
		if env != nil && c.opts.GuidedChoice {
			choices = env.Choices()
		}
		res, at, err := c.stream(ctx, ep, key, req, seed, req.Prompt+text.String(), budget, choices, t, emit)
		ep = at // a thread's later calls follow it where it failed over
		// Every call's prompt, as the server billed it: a stop-and-continue
		// completion re-sends its text at each call, which the server's
		// prefix cache mostly holds (cached).
		out.Usage.PromptTokens += res.promptTokens
		out.Usage.CachedPromptTokens += res.cachedTokens
		out.Usage.CompletionTokens += res.completionTokens
		if res.prompt > 0 {
			if firstPrompt < 0 {
				firstPrompt = res.prompt
			}
			length, covered = res.prompt-firstPrompt+res.kept, text.Len()
		}
		if errors.Is(err, backend.ErrPromptTooLong) && calls > 0 {
			// The continuation outgrew the context: the text so far is
			// the completion.
			out.Finish = backend.FinishLength
			break
		}
		if err != nil {
			out.Text, out.Finish = text.String(), backend.FinishCancelled
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			return nil, err
		}
		switch {
		case res.envErr != nil:
			out.Finish, out.EnvError = backend.FinishEnv, res.envErr.Error()
		case res.fill != "":
			emit(backend.Chunk{Text: res.fill})
			continue
		case env != nil && choices != nil && res.finish == backend.FinishStop && !env.Done():
			// A guided request ends with its choice, not with the thread.
			continue
		default:
			// The model ended the completion (a stop string, the end of
			// sequence, the length), or the environment is done.
			out.Finish, out.StopString = res.finish, res.stop
		}
		break
	}
	out.Text = text.String()
	if t != nil {
		// Count as a thread's tokens what the engine counts: the
		// model's and the environment's, the latter in the server's own
		// tokens where the server said how its prompts grew (each call's
		// usage, or per event), else only what the model wrote for it.
		out.Usage.FilledTokens = t.dueEvents
		if rest := text.Len() - covered; rest > 0 && firstPrompt > 0 {
			// The environment's last text came after the last call, so no
			// prompt counted it: count it at the thread's own tokens a
			// byte, or its prompt's before it has any (a parent resumed
			// with a join that brought the goal, whose environment writes
			// the rest).
			perByte := float64(firstPrompt) / float64(max(1, len(req.Prompt)))
			if length > 0 && covered > 0 {
				perByte = float64(length) / float64(covered)
			}
			length += int(math.Round(float64(rest) * perByte))
		}
		if length >= 0 {
			out.Usage.CompletionTokens = length
			out.Usage.FilledTokens = max(0, length-t.modelEvents)
		}
	}
	return out, nil
}

// result is what one streamed request produced.
type result struct {
	finish backend.FinishReason
	stop   string
	fill   string // the environment's text, when it cut the stream
	envErr error
	// Billed over the request's attempts.
	promptTokens, cachedTokens, completionTokens int
	// prompt is the last attempt's prompt in the server's tokens (0 when
	// the server did not say), and kept the events of its text the
	// thread kept.
	prompt, kept int
}

// stream runs one request, with retries, emitting the model's text as it
// comes. With an environment it feeds the environment as it goes and cuts
// the stream where the environment writes.
func (c *Client) stream(ctx context.Context, ep *endpoint, key string, req *backend.Request, seed uint64, prompt string, maxTokens int,
	choices []string, t *turn, emit func(backend.Chunk)) (result, *endpoint, error) {
	var res result
	written := ""
	for attempt := 0; ; attempt++ {
		// A retry continues after what was streamed: the choices, too,
		// are what remains of those that begin with it.
		var rest []string
		for _, ch := range choices {
			if r, ok := strings.CutPrefix(ch, written); ok && r != "" {
				rest = append(rest, r)
			}
		}
		if choices != nil && rest == nil {
			rest = []string{}
		}
		ask := stopsNamed
		switch {
		case len(req.Stop) == 0 || t != nil:
		case ep.unsaidStops.Load() || ep.plain.Load():
			ask = stopsFound
		default:
			ask = stopsKept
		}
		m := c.bodyMap(req, seed, prompt+written, maxTokens, rest, ask)
		if t != nil && !ep.plain.Load() {
			// A call the environment cuts never reaches its usage: ask
			// for the counts with every event (vLLM's and SGLang's
			// continuous_usage_stats, llama.cpp's timings_per_token), so
			// that the thread's tokens are the server's own count.
			m["stream_options"].(map[string]any)["continuous_usage_stats"] = true
			m["timings_per_token"] = true
		}
		body, err := json.Marshal(m)
		if err != nil {
			return res, ep, err
		}
		slot := -1
		if ep.pool != nil {
			if slot, err = ep.pool.take(ctx, prompt+written); err != nil {
				return res, ep, err
			}
			// id_slot, last in the object: the body is what was marshalled.
			body = append(body[:len(body)-1], fmt.Sprintf(`,"id_slot":%d}`, slot)...)
		}
		if t != nil {
			t.restart()
		}
		watch := scan{t: t, ask: ask}
		if ask != stopsNamed {
			watch.stops = &stopScan{stops: req.Stop}
		}
		got, retryAfter, err := c.attempt(ctx, ep, body, watch, func(ch backend.Chunk) {
			written += ch.Text
			emit(ch)
		})
		if slot >= 0 {
			ep.pool.give(slot, prompt+written)
		}
		res.promptTokens += got.promptTokens // each attempt is billed
		res.cachedTokens += got.cachedTokens
		res.completionTokens += got.completionTokens
		res.prompt, res.kept = got.prompt, got.kept
		if err == nil {
			res.finish, res.stop, res.fill, res.envErr = got.finish, got.stop, got.fill, got.envErr
			return res, ep, nil
		}
		if errors.Is(err, errStopsUnsaid) {
			// Ask again at once, the stops left to the client, now and
			// for every later request to this server.
			ep.unsaidStops.Store(true)
			attempt--
			continue
		}
		if errors.Is(err, errStrict) && !ep.plain.Load() {
			// A server that refuses the fields other servers read (a
			// strict OpenAI-compatible one): ask again at once without
			// them, now and later.
			ep.plain.Store(true)
			attempt--
			continue
		}
		var perm *permanentError
		if errors.As(err, &perm) || ctx.Err() != nil || c.opts.Retries < 0 {
			return res, ep, err
		}
		if attempt >= c.opts.Retries && (attempt >= maxRetries || !backend.TakeRetry(ctx)) {
			// This call's retries are spent, and the request's shared
			// budget too (or it has none).
			return res, ep, err
		}
		if written != "" && req.PromptTokens != nil {
			// A prompt of token ids cannot be continued with text.
			return res, ep, err
		}
		wait := backoff(attempt)
		if retryAfter > 0 {
			wait = retryAfter
		}
		if errors.Is(err, errUnreachable) {
			// Pass over the endpoint for a while; when another is up, go
			// there at once, from what was written.
			ep.downUntil.Store(time.Now().Add(c.opts.Cooldown).UnixNano())
			if next := c.route(key); next != ep {
				ep, wait = next, 0
			}
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return res, ep, ctx.Err()
		}
	}
}

// backoff is the wait before retry attempt+1: exponential from 250 ms,
// capped at 8 s, with full jitter.
func backoff(attempt int) time.Duration {
	d := 250 * time.Millisecond << min(attempt, 5)
	return time.Duration(rand.Int64N(int64(min(d, 8*time.Second))) + 1)
}

// permanentError is a failure retrying cannot fix (a 4xx other than 429,
// an error event mid-stream).
type permanentError struct {
	status int
	msg    string
	kind   error // backend.ErrPromptTooLong, or nil
}

func (e *permanentError) Error() string {
	if e.status == 0 {
		return "remote: " + e.msg
	}
	return fmt.Sprintf("remote: HTTP %d: %s", e.status, e.msg)
}

func (e *permanentError) Unwrap() error { return e.kind }

// errStrict marks a server's refusal of a field it does not know.
var errStrict = errors.New("the server refuses fields it does not know")

// vendorFields are the fields braid sends that only some servers read.
var vendorFields = []string{"include_stop_str_in_output", "no_stop_trim", "timings_per_token", "continuous_usage_stats", "id_slot"}

// strict recognises a refusal that names one of vendorFields, or says
// unknown fields are refused (OpenAI: "Unrecognized request argument",
// pydantic: "Extra inputs are not permitted").
func strict(msg string) bool {
	m := strings.ToLower(msg)
	if strings.Contains(m, "unrecognized request argument") || strings.Contains(m, "extra inputs are not permitted") {
		return true
	}
	for _, f := range vendorFields {
		if strings.Contains(m, f) {
			return true
		}
	}
	return false
}

// tooLong recognises the servers' ways of saying a prompt exceeds the
// context (vLLM, OpenAI, SGLang, llama.cpp).
func tooLong(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range []string{"maximum context length", "context length", "context_length_exceeded", "too many tokens", "exceeds the context", "prompt is too long"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// bodyMap is a request's JSON body, as a map. prompt is the whole text to
// continue: req.Prompt, then what the model has written.
func (c *Client) bodyMap(req *backend.Request, seed uint64, prompt string, maxTokens int, choices []string, ask stopsAsk) map[string]any {
	b := map[string]any{"model": c.opts.Model, "stream": true, "stream_options": map[string]any{"include_usage": true}}
	if c.opts.Chat {
		user := req.Prompt
		if req.ReplyAt > 0 {
			user = req.Prompt[:req.ReplyAt]
		}
		var messages []map[string]string
		for _, m := range req.Messages {
			messages = append(messages, map[string]string{"role": m.Role, "content": m.Content})
		}
		messages = append(messages, map[string]string{"role": "user", "content": user})
		if written := strings.TrimPrefix(prompt, user); written != "" {
			// The server continues the assistant's message rather than
			// start a new one after it.
			messages = append(messages, map[string]string{"role": "assistant", "content": written})
			b["continue_final_message"], b["add_generation_prompt"] = true, false
		}
		b["messages"] = messages
		kwargs := map[string]any{}
		for k, v := range c.opts.ChatTemplateKwargs {
			kwargs[k] = v
		}
		effort := c.opts.ReasoningEffort
		switch req.Effort {
		case "off":
			kwargs["enable_thinking"] = false
			effort = ""
		case "light":
			kwargs["enable_thinking"], effort = true, "low"
		case "deep":
			kwargs["enable_thinking"], effort = true, "high"
		}
		if len(kwargs) > 0 {
			b["chat_template_kwargs"] = kwargs
		}
		if effort != "" {
			b["reasoning_effort"] = effort
		}
	} else if req.PromptTokens != nil {
		b["prompt"] = req.PromptTokens
	} else {
		b["prompt"] = prompt
	}
	if maxTokens > 0 {
		b["max_tokens"] = maxTokens
	}
	b["temperature"] = req.Temperature
	if req.TopP > 0 {
		b["top_p"] = req.TopP
	}
	if req.TopK > 0 {
		b["top_k"] = req.TopK
	}
	b["seed"] = seed
	if len(req.Stop) > 0 && ask != stopsFound {
		b["stop"] = req.Stop
		if ask == stopsKept { // not sent to a plain server: it gets stopsFound
			b["include_stop_str_in_output"], b["no_stop_trim"], b["timings_per_token"] = true, true, true
		}
	}
	if req.Logprobs || req.TopLogprobs > 0 {
		if c.opts.Chat {
			b["logprobs"] = true
			b["top_logprobs"] = req.TopLogprobs
		} else {
			b["logprobs"] = max(1, req.TopLogprobs)
		}
	}
	if len(choices) > 0 {
		// vLLM before 0.12 reads guided_choice, later versions
		// structured_outputs; each ignores the other.
		b["guided_choice"] = choices
		b["structured_outputs"] = map[string]any{"choice": choices}
	}
	return b
}

// attempt sends one request and reads its stream. It returns how long the
// server asked to wait before a retry, if it did.
func (c *Client) attempt(ctx context.Context, ep *endpoint, body []byte, sc scan, emit func(backend.Chunk)) (result, time.Duration, error) {
	var res result
	retry, err := c.send(ctx, ep, body, func(r io.Reader, idle func()) error {
		var err error
		res, _, err = c.read(r, sc, emit, idle)
		return err
	})
	return res, retry, err
}

// send posts one request and hands its stream to consume. It returns how
// long the server asked to wait before a retry, if it did.
func (c *Client) send(ctx context.Context, ep *endpoint, body []byte, consume func(r io.Reader, idle func()) error) (time.Duration, error) {
	select {
	case ep.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-ep.slots }()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The timeout bounds the wait for the first byte and every silence
	// after it, not a long generation.
	idle := func() {}
	if c.opts.Timeout > 0 {
		timer := time.AfterFunc(c.opts.Timeout, cancel)
		defer timer.Stop()
		idle = func() { timer.Reset(c.opts.Timeout) }
	}
	path := "/completions"
	if c.opts.Chat {
		path = "/chat/completions"
	}
	hreq, err := http.NewRequestWithContext(rctx, http.MethodPost, ep.base+path+ep.query, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "text/event-stream")
	if c.key != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(hreq)
	if err != nil {
		// net/http names the request's URL with its query, and a key in it.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			ue.URL = ep.name + path
		}
		if ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", errUnreachable, err)
		}
		return 0, fmt.Errorf("remote: %s: %w", ep.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg := errorMessage(resp.Body)
		err := fmt.Errorf("remote: %s: HTTP %d: %s", ep.name, resp.StatusCode, msg)
		if resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable {
			// A gateway without its server, or a server not serving.
			err = fmt.Errorf("%w: %w", errUnreachable, err)
		}
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			return retryAfter(resp.Header.Get("Retry-After")), err
		}
		if resp.StatusCode == http.StatusBadRequest && tooLong(msg) {
			return 0, &permanentError{resp.StatusCode, msg, backend.ErrPromptTooLong}
		}
		if resp.StatusCode == http.StatusBadRequest && strict(msg) {
			return 0, &permanentError{resp.StatusCode, msg, errStrict}
		}
		return 0, &permanentError{resp.StatusCode, msg, nil}
	}
	return 0, consume(resp.Body, idle)
}

// errorMessage reads an OpenAI error body ({"error": {"message": ...}}),
// or the start of whatever the server sent.
func errorMessage(r io.Reader) string {
	data, _ := io.ReadAll(io.LimitReader(r, 8<<10))
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(data, &e) == nil {
		if e.Error.Message != "" {
			return e.Error.Message
		}
		if e.Message != "" {
			return e.Message
		}
	}
	s := strings.TrimSpace(string(data))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s >= 0 {
		return min(time.Duration(s)*time.Second, 5*time.Minute)
	}
	if t, err := http.ParseTime(h); err == nil {
		return min(max(0, time.Until(t)), 5*time.Minute)
	}
	return 0
}

// streamChunk is one server-sent event of either endpoint.
type streamChunk struct {
	Choices []struct {
		Index int    `json:"index"`
		Text  string `json:"text"`
		Delta struct {
			Content          string `json:"content"`
			ReasoningContent string `json:"reasoning_content"`
		} `json:"delta"`
		FinishReason *string        `json:"finish_reason"`
		StopReason   any            `json:"stop_reason"`
		Logprobs     *eventLogprobs `json:"logprobs"`
	} `json:"choices"`
	// Timings are llama.cpp's: its prompt is CacheN tokens from its cache
	// and PromptN read afresh.
	Timings *struct {
		CacheN  int `json:"cache_n"`
		PromptN int `json:"prompt_n"`
	} `json:"timings"`
	Usage *struct {
		PromptTokens        int `json:"prompt_tokens"`
		CompletionTokens    int `json:"completion_tokens"`
		PromptTokensDetails *struct {
			CachedTokens int `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	} `json:"usage"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// eventLogprobs are an event's log-probabilities: the completions API's
// (a list per token, the alternatives as a map from token to logprob) or
// the chat API's (content, each token with its alternatives).
type eventLogprobs struct {
	TokenLogprobs []float64            `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	Content       []struct {
		Logprob     float64 `json:"logprob"`
		TopLogprobs []struct {
			Token   string  `json:"token"`
			Logprob float64 `json:"logprob"`
		} `json:"top_logprobs"`
	} `json:"content"`
}

// tokens are the event's tokens with their logprobs and alternatives, most
// likely first (servers do not give ids: -1).
func (lp *eventLogprobs) tokens() []backend.Token {
	if lp == nil {
		return nil
	}
	var toks []backend.Token
	for i, x := range lp.TokenLogprobs {
		tok := backend.Token{ID: -1, Logprob: x}
		if i < len(lp.TopLogprobs) {
			for text, v := range lp.TopLogprobs[i] {
				tok.Top = append(tok.Top, backend.TopToken{ID: -1, Logprob: v, Text: text})
			}
			slices.SortFunc(tok.Top, func(a, b backend.TopToken) int { return cmp.Compare(b.Logprob, a.Logprob) })
		}
		toks = append(toks, tok)
	}
	for _, x := range lp.Content {
		tok := backend.Token{ID: -1, Logprob: x.Logprob}
		for _, a := range x.TopLogprobs {
			tok.Top = append(tok.Top, backend.TopToken{ID: -1, Logprob: a.Logprob, Text: a.Token})
		}
		toks = append(toks, tok)
	}
	return toks
}

// errDropped marks a stream that ended without [DONE] or a finish reason:
// a dropped connection, retried.
var errDropped = errors.New("the stream ended early")

// maxRetries bounds one call's retries, the request's budget
// (backend.WithRetryBudget) included: a call that fails this often is
// failing, not unlucky.
const maxRetries = 32

// wholeLines splits a stream into the lines that ended. A line the end of
// the stream cuts (a dropped connection mid-event) is not an event: it is
// the stream ending early, retried like any dropped connection.
func wholeLines(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, bytes.TrimSuffix(data[:i], []byte("\r")), nil
	}
	if atEOF && len(data) > 0 {
		return 0, nil, errDropped
	}
	return 0, nil, nil
}

// scan is what read watches a stream for besides its text.
type scan struct {
	t     *turn     // the environment's turn, or nil
	ask   stopsAsk  // how the request asked for its stop strings
	stops *stopScan // the stop strings the client finds, or nil
}

// errStopsUnsaid: the server is one that trims a stop string without
// naming it (llama.cpp's, known by its timings), and nothing was read yet:
// the request goes again with the stops left to the client.
var errStopsUnsaid = errors.New("the server does not say which stop string ended a completion")

// read consumes a stream of server-sent events. With an environment, the
// model's text goes to it byte by byte (so that nothing past the point
// where the environment writes is kept), and the stream is cut where the
// model leaves the environment's text. With stop strings the client finds,
// the stream is cut at the first.
func (c *Client) read(body io.Reader, w scan, emit func(backend.Chunk), idle func()) (res result, _ time.Duration, _ error) {
	t := w.t
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	sc.Split(wholeLines)
	finished := false
	// Servers stream about a token an event; a stream cut before its usage
	// (by the environment, or a dropped connection) is counted that way.
	events := 0
	defer func() {
		res.completionTokens = max(res.completionTokens, events)
		res.prompt = res.promptTokens
	}()
	// A stream that ends (or that the model leaves) before the model
	// wrote the environment's text is done: the next call starts after it.
	// Text held back as the possible start of a stop string was not one.
	due := func() {
		if t != nil {
			res.fill = t.take()
		}
		if w.stops != nil {
			if held := w.stops.flush(); held != "" {
				emit(backend.Chunk{Text: held})
			}
		}
	}
	for sc.Scan() {
		idle()
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data:")
		if !ok {
			continue // comments, event names, blank separators
		}
		data = strings.TrimSpace(data)
		if data == "[DONE]" {
			if !finished {
				return res, 0, fmt.Errorf("remote: %w before a finish reason", errDropped)
			}
			due()
			return res, 0, nil
		}
		var ch streamChunk
		if err := json.Unmarshal([]byte(data), &ch); err != nil {
			return res, 0, fmt.Errorf("remote: a malformed event %.80q: %w", data, err)
		}
		if ch.Error != nil {
			return res, 0, &permanentError{msg: "the server failed mid-stream: " + ch.Error.Message}
		}
		if u := ch.Usage; u != nil {
			res.promptTokens, res.completionTokens = u.PromptTokens, u.CompletionTokens
			if u.PromptTokensDetails != nil {
				res.cachedTokens = u.PromptTokensDetails.CachedTokens
			}
		}
		if tm := ch.Timings; tm != nil && ch.Usage == nil && tm.CacheN >= 0 && tm.PromptN >= 0 {
			res.promptTokens, res.cachedTokens = tm.CacheN+tm.PromptN, tm.CacheN
		}
		if ch.Timings != nil && w.ask == stopsKept && events == 0 {
			return res, 0, errStopsUnsaid
		}
		if len(ch.Choices) == 0 {
			continue
		}
		choice := ch.Choices[0]
		text := choice.Text + choice.Delta.Content
		// Thinking tokens (reasoning_content) are part of the thread's
		// text: braid reasons over them like any other.
		text = choice.Delta.ReasoningContent + text
		if text != "" {
			events++
			toks := choice.Logprobs.tokens()
			if t == nil && w.stops != nil {
				before, stop := w.stops.next(text)
				if before != "" {
					emit(backend.Chunk{Text: before, Tokens: toks})
				}
				if stop != "" {
					res.finish, res.stop = backend.FinishStop, stop
					return res, 0, nil
				}
			} else if t == nil {
				emit(backend.Chunk{Text: text, Tokens: toks})
			} else {
				v, err := t.feed(text, toks, emit)
				res.kept = t.kept
				switch v {
				case cutErr:
					res.envErr = err
					return res, 0, nil
				case cutDue:
					due()
					return res, 0, nil
				case cutDone:
					res.finish = backend.FinishStop
					return res, 0, nil
				}
			}
		}
		if f := choice.FinishReason; f != nil && *f != "" {
			finished = true
			switch *f {
			case "length":
				res.finish = backend.FinishLength
			default:
				res.finish = backend.FinishStop
			}
			if s, ok := choice.StopReason.(string); ok {
				res.stop = s
			}
		}
	}
	if err := sc.Err(); errors.Is(err, errDropped) {
		return res, 0, fmt.Errorf("remote: %w, in the middle of an event", errDropped)
	} else if err != nil {
		return res, 0, fmt.Errorf("remote: reading the stream: %w: %w", errDropped, err)
	}
	if !finished {
		return res, 0, fmt.Errorf("remote: %w", errDropped)
	}
	due()
	return res, 0, nil
}
