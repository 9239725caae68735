package remote

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/braid-dev/braid/backend"
)

var _ backend.Sampler = (*Client)(nil)

// CompleteN implements backend.Sampler with the server's n: one request,
// one prefill, n samples streamed together. A server that refuses n (a 400
// that names it) gets n concurrent single requests, then and from then on.
// A stream dropped mid-way is retried whole when nothing came yet, else
// each unfinished sample continues on its own from its text so far.
func (c *Client) CompleteN(ctx context.Context, req *backend.Request, n int) ([]*backend.Completion, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, backend.Invalid(fmt.Errorf("remote: %d completions", n))
	}
	key := req.Affinity
	if key == "" {
		key = req.Prompt[:min(len(req.Prompt), 64)]
	}
	ep := c.route(key)
	if n == 1 || req.Env != nil || req.PromptTokens != nil || ep.noN.Load() {
		return backend.CompleteN(ctx, singles{c}, req, n)
	}
	seed := req.Seed
	for seed == 0 {
		seed = rand.Uint64() >> 1 // servers read seeds as signed integers
	}
	m := c.bodyMap(req, seed, req.Prompt, req.MaxTokens, nil, stopsNamed)
	m["n"] = n
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	out := make([]*backend.Completion, n)
	texts := make([]strings.Builder, n)
	for i := range out {
		out[i] = &backend.Completion{Seed: seed + uint64(i)}
	}
	emit := func(ch backend.Chunk) {
		texts[ch.Index].WriteString(ch.Text)
		o := out[ch.Index]
		o.Tokens = append(o.Tokens, ch.Tokens...)
		if req.OnChunk != nil {
			req.OnChunk(ch)
		}
	}
	var res multiResult
	for attempt := 0; ; attempt++ {
		var retry time.Duration
		res = multiResult{finish: make([]backend.FinishReason, n), stop: make([]string, n), events: make([]int, n)}
		retry, err = c.send(ctx, ep, body, func(r io.Reader, idle func()) error { return res.read(r, n, emit, idle) })
		var perm *permanentError
		switch {
		case err == nil:
		case res.streamed == 0 && mentionsN(err.Error()):
			// The server refuses n, whatever status it says it with
			// (llama.cpp answers 500): single requests, now and later.
			ep.noN.Store(true)
			return backend.CompleteN(ctx, singles{c}, req, n)
		case errors.As(err, &perm) || ctx.Err() != nil || c.opts.Retries < 0:
			return nil, err
		case attempt >= c.opts.Retries && (attempt >= maxRetries || !backend.TakeRetry(ctx)):
			// This request's retries are spent, and the shared budget too.
			return nil, err
		case res.streamed == 0:
			// Nothing came: the whole request again, after a wait, or at
			// once at another endpoint when this one cannot be reached.
			wait := backoff(attempt)
			if retry > 0 {
				wait = retry
			}
			if errors.Is(err, errUnreachable) {
				ep.downUntil.Store(time.Now().Add(c.opts.Cooldown).UnixNano())
				if next := c.route(key); next != ep {
					ep, wait = next, 0
				}
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		}
		break
	}
	// The prompt was sent, and billed, once.
	out[0].Usage.PromptTokens, out[0].Usage.CachedPromptTokens = res.promptTokens, res.cachedTokens
	var unfinished []int
	for i, o := range out {
		o.Usage.CompletionTokens = res.events[i]
		o.Finish, o.StopString = res.finish[i], res.stop[i]
		if o.Finish == "" && req.MaxTokens > 0 && res.events[i] >= req.MaxTokens {
			o.Finish = backend.FinishLength
		}
		if o.Finish == "" {
			unfinished = append(unfinished, i)
		}
	}
	if err != nil && len(unfinished) > 0 {
		if res.finish[0] != "" && res.streamed == res.events[0] {
			ep.noN.Store(true) // only the first sample came: the server ignores n
		}
		// Dropped mid-way (or n ignored): each unfinished sample goes on
		// alone from its text, all at once.
		if err := c.continueSamples(ctx, req, seed, unfinished, out, texts, res.events, emit); err != nil {
			return nil, err
		}
	}
	for i, o := range out {
		o.Text = texts[i].String()
	}
	if res.completionTokens > 0 && !res.dropped {
		spread(out, res.completionTokens)
	}
	return out, nil
}

// continueSamples finishes the samples a dropped n-stream left unfinished,
// each by its own request from its text so far, concurrently.
func (c *Client) continueSamples(ctx context.Context, req *backend.Request, seed uint64, which []int, out []*backend.Completion,
	texts []strings.Builder, events []int, emit func(backend.Chunk)) error {
	prompts := make([]string, len(which))
	for k, i := range which {
		prompts[k] = req.Prompt + texts[i].String()
	}
	var mu sync.Mutex // emit writes texts and out, shared by the goroutines
	errs := make([]error, len(which))
	var wg sync.WaitGroup
	for k, i := range which {
		r := *req
		r.Prompt, r.Seed = prompts[k], seed+uint64(i)
		if req.MaxTokens > 0 {
			r.MaxTokens = req.MaxTokens - events[i]
		}
		r.OnChunk = func(ch backend.Chunk) {
			ch.Index = i
			mu.Lock()
			defer mu.Unlock()
			emit(ch)
		}
		wg.Go(func() {
			rest, err := c.Complete(ctx, &r)
			if err != nil {
				errs[k] = err
				return
			}
			mu.Lock()
			defer mu.Unlock()
			o := out[i]
			o.Finish, o.StopString = rest.Finish, rest.StopString
			o.Usage.CompletionTokens += rest.Usage.CompletionTokens
			// Each continuation sent its prompt again.
			o.Usage.PromptTokens += rest.Usage.PromptTokens
			o.Usage.CachedPromptTokens += rest.Usage.CachedPromptTokens
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// singles hides a client's CompleteN, so that backend.CompleteN falls
// back to concurrent single requests.
type singles struct{ c *Client }

func (s singles) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	return s.c.Complete(ctx, req)
}

// mentionsN says whether a server's refusal is about the n parameter.
func mentionsN(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range []string{"'n'", "\"n\"", "`n`", " n ", "n must", "n >", "n=", "parameter n", "best_of", "completion choice"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return strings.HasPrefix(m, "n ") || strings.HasPrefix(m, "n:")
}

// spread shares the server's completion-token total among the samples in
// proportion to their streamed events (servers count tokens, not events,
// and give only the total).
func spread(out []*backend.Completion, total int) {
	events := 0
	for _, o := range out {
		events += o.Usage.CompletionTokens
	}
	if events == 0 {
		return
	}
	given := 0
	for i, o := range out {
		share := total * o.Usage.CompletionTokens / events
		if i == len(out)-1 {
			share = total - given
		}
		o.Usage.CompletionTokens = share
		given += share
	}
}

// multiResult is what one n-sample stream produced.
type multiResult struct {
	finish                                       []backend.FinishReason
	stop                                         []string
	events                                       []int
	streamed                                     int
	promptTokens, cachedTokens, completionTokens int
	dropped                                      bool
}

// read consumes an n-sample stream, each event's choices by index.
func (m *multiResult) read(body io.Reader, n int, emit func(backend.Chunk), idle func()) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	sc.Split(wholeLines)
	finished := 0
	for sc.Scan() {
		idle()
		data, ok := strings.CutPrefix(sc.Text(), "data:")
		if !ok {
			continue
		}
		data = strings.TrimSpace(data)
		if data == "[DONE]" {
			break
		}
		var ch streamChunk
		if err := json.Unmarshal([]byte(data), &ch); err != nil {
			return fmt.Errorf("remote: a malformed event %.80q: %w", data, err)
		}
		if ch.Error != nil {
			return &permanentError{msg: "the server failed mid-stream: " + ch.Error.Message}
		}
		if u := ch.Usage; u != nil {
			m.promptTokens, m.completionTokens = u.PromptTokens, u.CompletionTokens
			if u.PromptTokensDetails != nil {
				m.cachedTokens = u.PromptTokensDetails.CachedTokens
			}
		}
		for _, choice := range ch.Choices {
			if choice.Index < 0 || choice.Index >= n {
				return &permanentError{msg: fmt.Sprintf("the server sent choice %d of %d", choice.Index, n)}
			}
			if text := choice.Delta.ReasoningContent + choice.Text + choice.Delta.Content; text != "" {
				m.events[choice.Index]++
				m.streamed++
				emit(backend.Chunk{Text: text, Tokens: choice.Logprobs.tokens(), Index: choice.Index})
			}
			if f := choice.FinishReason; f != nil && *f != "" && m.finish[choice.Index] == "" {
				finished++
				m.finish[choice.Index] = backend.FinishStop
				if *f == "length" {
					m.finish[choice.Index] = backend.FinishLength
				}
				if stop, ok := choice.StopReason.(string); ok {
					m.stop[choice.Index] = stop
				}
			}
		}
	}
	if err := sc.Err(); err != nil || finished < n {
		m.dropped = true
		return fmt.Errorf("remote: %w (%d of %d samples finished)", errDropped, finished, n)
	}
	return nil
}
