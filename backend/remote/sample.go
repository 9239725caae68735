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
	m := c.bodyMap(req, seed, req.Prompt, req.MaxTokens, nil)
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
		res = multiResult{finish: make([]backend.FinishReason, n), events: make([]int, n)}
		retry, err = c.send(ctx, ep, body, func(r io.Reader, idle func()) error { return res.read(r, n, emit, idle) })
		var perm *permanentError
		switch {
		case err == nil:
		case errors.As(err, &perm) && perm.status == 400 && mentionsN(perm.msg):
			ep.noN.Store(true)
			return backend.CompleteN(ctx, singles{c}, req, n)
		case errors.As(err, &perm) || ctx.Err() != nil || attempt >= c.opts.Retries || c.opts.Retries < 0:
			return nil, err
		case res.streamed == 0:
			// Nothing came: the whole request again, after a wait.
			wait := backoff(attempt)
			if retry > 0 {
				wait = retry
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
	for i, o := range out {
		o.Usage.CompletionTokens = res.events[i]
		o.Finish = res.finish[i]
		if err != nil && o.Finish == "" {
			if c.opts.Chat {
				return nil, err // a chat message cannot be continued mid-way
			}
			// Dropped mid-way (or a server that ignored n and sent one
			// sample): this one goes on alone from its text.
			r := *req
			r.Prompt, r.Seed = req.Prompt+texts[i].String(), seed+uint64(i)
			if req.MaxTokens > 0 {
				r.MaxTokens = max(1, req.MaxTokens-res.events[i])
			}
			r.OnChunk = func(ch backend.Chunk) {
				ch.Index = i
				emit(ch)
			}
			rest, err := c.Complete(ctx, &r)
			if err != nil {
				return nil, err
			}
			o.Finish, o.StopString = rest.Finish, rest.StopString
			o.Usage.CompletionTokens += rest.Usage.CompletionTokens
		}
		o.Text = texts[i].String()
	}
	// The prompt was sent, and billed, once.
	out[0].Usage.PromptTokens, out[0].Usage.CachedPromptTokens = res.promptTokens, res.cachedTokens
	if res.completionTokens > 0 && !res.dropped {
		spread(out, res.completionTokens)
	}
	return out, nil
}

// singles hides a client's CompleteN, so that backend.CompleteN falls
// back to concurrent single requests.
type singles struct{ c *Client }

func (s singles) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	return s.c.Complete(ctx, req)
}

// mentionsN says whether a server's 400 is about the n parameter.
func mentionsN(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range []string{"'n'", "\"n\"", "`n`", " n ", "n must", "n >", "n=", "parameter n", "best_of"} {
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
	events                                       []int
	streamed                                     int
	promptTokens, cachedTokens, completionTokens int
	dropped                                      bool
}

// read consumes an n-sample stream, each event's choices by index.
func (m *multiResult) read(body io.Reader, n int, emit func(backend.Chunk), idle func()) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
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
				var toks []backend.Token
				if lp := choice.Logprobs; lp != nil {
					for _, x := range lp.TokenLogprobs {
						toks = append(toks, backend.Token{ID: -1, Logprob: x})
					}
				}
				emit(backend.Chunk{Text: text, Tokens: toks, Index: choice.Index})
			}
			if f := choice.FinishReason; f != nil && *f != "" && m.finish[choice.Index] == "" {
				finished++
				m.finish[choice.Index] = backend.FinishStop
				if *f == "length" {
					m.finish[choice.Index] = backend.FinishLength
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
