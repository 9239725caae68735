// Package backend is the one interface braid's strategies generate through:
// a completion of a prompt, streamed token by token, cancelled by its
// context, with the usage it cost. The embedded engine implements it
// in-process; an OpenAI-compatible server implements it over HTTP.
package backend

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
)

// Backend completes prompts. Complete may be called from many goroutines at
// once: that is how a strategy runs threads concurrently.
type Backend interface {
	// Complete continues req's prompt. It returns when the completion
	// finishes: at a stop string, the end-of-sequence token, MaxTokens or
	// the model's context length. When ctx is done first, it returns what
	// was generated so far with FinishCancelled and ctx's error.
	Complete(ctx context.Context, req *Request) (*Completion, error)
}

// Request is one completion to generate.
type Request struct {
	// Prompt is the text to continue. PromptTokens, when set, is used
	// instead: token ids, for a continuation that must match the tokens a
	// thread generated exactly. Backends that take only text return an
	// error wrapping errors.ErrUnsupported for it.
	Prompt       string
	PromptTokens []int
	// Messages are the conversation before the prompt: a system message,
	// earlier turns. A chat server is sent them before the prompt's user
	// message; the engine and raw-text servers, whose models have no
	// roles, read the prompt alone.
	Messages []Message
	// ReplyAt, when positive, is where in Prompt the model's own reply
	// begins (a thread resumed after a stop or a join): a chat server is
	// sent the text before it as the user's message and the rest as an
	// assistant message to continue, so that its chat template applies;
	// text backends read Prompt whole.
	ReplyAt int

	// MaxTokens caps the completion; 0 means until the context is full.
	MaxTokens int
	// Temperature 0 decodes greedily; otherwise logits are divided by it
	// before sampling.
	Temperature float64
	// TopK keeps the K most likely tokens (0: all). TopP keeps the
	// smallest set of most likely tokens whose probability reaches P (0 or
	// 1: all).
	TopK int
	TopP float64
	// Seed makes sampling reproducible: the same request with the same
	// seed gives the same tokens. 0 draws a seed, reported in the
	// completion so the run can be repeated.
	Seed uint64
	// Stop ends the completion at the first occurrence of any of these
	// strings; the text returned stops before it.
	Stop []string
	// Logprobs asks for the log-probability of each completion token under
	// the model (temperature 1, no top-k, top-p or environment mask), and
	// TopLogprobs for that many most likely alternatives at each position.
	// Tokens an environment wrote carry none.
	Logprobs    bool
	TopLogprobs int
	// Masks asks for the token ids the environment allowed at each
	// position where it restricted the model's choice (Token.Allowed):
	// what a trainer needs to differentiate the distribution a constrained
	// token was drawn from. Backends that do not apply Env's choices
	// themselves leave them nil.
	Masks bool

	// Effort asks a hybrid-thinking model for a reasoning effort: "off",
	// "light" or "deep" ("" for the server's default). Remote chat models
	// get it as their thinking switch (chat_template_kwargs.enable_thinking)
	// and reasoning_effort; backends without a switch ignore it.
	Effort string

	// Affinity, when set, routes a backend with several servers: requests
	// with the same key go to the same server, which caches their common
	// prefix (a thread's calls share one). Empty: the prompt's start.
	Affinity string

	// Env, when set, is the task's environment: it follows the text as it
	// is generated, writes what the task's state determines, may restrict
	// what the model writes next, and may end the completion.
	Env Environment

	// OnChunk, when set, receives the completion as it is generated, in
	// order, from a goroutine of the backend; the next chunk waits until it
	// returns. Text that could still turn out to start a stop string is
	// held back until it cannot.
	OnChunk func(Chunk)
}

// Validate reports a request no backend can serve.
func (r *Request) Validate() error {
	if err := r.validate(); err != nil {
		return Invalid(err)
	}
	return nil
}

// ErrInvalidRequest matches, with errors.Is, the errors of requests a
// backend refuses as malformed: the caller's mistake, not the backend's
// (a server answers them 400, not 500).
var ErrInvalidRequest = errors.New("invalid request")

// Invalid marks err as the caller's mistake: it matches ErrInvalidRequest
// and keeps its message.
func Invalid(err error) error { return invalidError{err} }

type invalidError struct{ error }

func (e invalidError) Is(target error) bool { return target == ErrInvalidRequest }
func (e invalidError) Unwrap() error        { return e.error }

func (r *Request) validate() error {
	switch {
	case r.MaxTokens < 0:
		return fmt.Errorf("backend: max tokens %d is negative", r.MaxTokens)
	case CheckTemperature(r.Temperature) != nil:
		return fmt.Errorf("backend: %w", CheckTemperature(r.Temperature))
	case r.TopK < 0:
		return fmt.Errorf("backend: top-k %d is negative", r.TopK)
	case !(r.TopP >= 0 && r.TopP <= 1):
		return fmt.Errorf("backend: top-p %g must be in [0, 1]", r.TopP)
	case r.TopLogprobs < 0:
		return fmt.Errorf("backend: top logprobs %d is negative", r.TopLogprobs)
	case r.Prompt == "" && len(r.PromptTokens) == 0:
		return errors.New("backend: empty prompt")
	case r.ReplyAt < 0 || r.ReplyAt > len(r.Prompt):
		return fmt.Errorf("backend: reply at byte %d of a %d-byte prompt", r.ReplyAt, len(r.Prompt))
	}
	switch r.Effort {
	case "", "off", "light", "deep":
	default:
		return fmt.Errorf("backend: effort %q: want off, light or deep", r.Effort)
	}
	for i, s := range r.Stop {
		if s == "" {
			return fmt.Errorf("backend: stop string %d is empty", i)
		}
	}
	return nil
}

// CheckTemperature reports a temperature no sampler can use: negative,
// not a number, infinite, or so close to 0 that dividing by it overflows
// (1e-320 is a float64, its inverse is not). Servers call it at their edge
// so that such a request is the client's error, never the sampler's.
func CheckTemperature(t float64) error {
	switch {
	case t < 0 || math.IsNaN(t) || math.IsInf(t, 0):
		return fmt.Errorf("temperature %g must be a finite number >= 0", t)
	case t > 0 && math.IsInf(1/t, 0):
		return fmt.Errorf("temperature %g is too close to 0 to divide by: send 0 for greedy decoding", t)
	}
	return nil
}

// Environment is a task's side of a completion: the model writes the
// choices, the environment the consequences (a calculator's results, a
// search's states), so that a small model spends itself on the choices.
// Backends call it from one goroutine at a time.
type Environment interface {
	// Begin returns the text the environment writes before the model
	// writes anything, "" for none.
	Begin() (string, error)
	// Next takes the text the model wrote since the last call and returns
	// the text the environment appends to it, "" to let the model go on.
	// An error ends the completion (FinishEnv) and is reported in it.
	Next(written string) (string, error)
	// Choices returns, when what the model writes next must be one of a
	// set of strings, those strings (each up to where the environment
	// takes over again); nil when the model writes freely.
	Choices() []string
	// Done reports that the completion is complete.
	Done() bool
}

// ErrPromptTooLong is returned, wrapped, for a prompt longer than the
// model's context: a strategy that lets prompts grow (a parent resumed
// with its children's results) ends the thread there.
var ErrPromptTooLong = errors.New("the prompt is longer than the model's context")

// Chunk is the part of a completion generated since the last chunk.
type Chunk struct {
	Text   string  // text released since the last chunk
	Tokens []Token // tokens generated since the last chunk
	// Index says which of CompleteN's completions the chunk belongs to (0
	// for Complete).
	Index int
}

// Token is one generated token.
type Token struct {
	// ID is the token's id, -1 when the backend does not say (remote
	// servers stream text and logprobs, not ids).
	ID int
	// Filled marks a token the environment wrote, not the model.
	Filled  bool
	Logprob float64 // with Request.Logprobs
	// Top holds the most likely alternatives, most likely first, with
	// Request.TopLogprobs.
	Top []TopToken
	// Allowed holds, with Request.Masks, the ids the environment allowed
	// where it restricted the choice (ID is one of them), ascending; nil
	// where the model chose freely.
	Allowed []int
}

// TopToken is an alternative at one position.
type TopToken struct {
	ID      int
	Logprob float64
	// Text is the alternative's text, where the backend says it (the
	// engine always; a server where its response names the token): what
	// a reader of the alternatives that knows no token ids goes by.
	Text string
}

// FinishReason says why a completion ended.
type FinishReason string

const (
	FinishStop      FinishReason = "stop"      // a stop string or the end-of-sequence token
	FinishLength    FinishReason = "length"    // MaxTokens or the context length
	FinishCancelled FinishReason = "cancelled" // the context was done
	// FinishEnv: the environment rejected what the model wrote
	// (Completion.EnvError says why).
	FinishEnv FinishReason = "environment"
)

// Completion is a finished completion.
type Completion struct {
	Text string
	// Tokens are every token generated, including those that completed a
	// stop string, which Text leaves out.
	Tokens []Token
	Finish FinishReason
	// StopString is the stop string that ended the completion, if one did.
	StopString string
	// EnvError is why the environment ended the completion, with FinishEnv.
	EnvError string
	Usage    Usage
	// Seed is the seed sampling used: the request's, or the one drawn.
	Seed uint64
}

// Usage is what a completion cost.
type Usage struct {
	// PromptTokens counts the prompt of every call the completion took: a
	// remote server's stop-and-continue calls each re-send the text so far
	// (their cached part in CachedPromptTokens); the engine reads a prompt
	// once.
	PromptTokens int
	// CachedPromptTokens are prompt tokens whose forward pass the backend
	// reused from earlier work instead of running.
	CachedPromptTokens int
	// CompletionTokens counts every completion token; FilledTokens those
	// of them the environment wrote (0 from remote servers, which count
	// only what they generate, in their own tokens).
	CompletionTokens int
	FilledTokens     int
}

// Message is one message of a conversation.
type Message struct {
	Role    string `json:"role"` // system, user or assistant
	Content string `json:"content"`
}

// WithMessages is b with every request's conversation before the prompt
// set to messages: a chat client's system message and earlier turns reach
// the model whatever strategy runs on it.
func WithMessages(b Backend, messages []Message) Backend {
	if len(messages) == 0 {
		return b
	}
	return withMessages{b, messages}
}

type withMessages struct {
	Backend
	messages []Message
}

func (w withMessages) Complete(ctx context.Context, req *Request) (*Completion, error) {
	r := *req
	r.Messages = w.messages
	return w.Backend.Complete(ctx, &r)
}

// CompleteN keeps the wrapped backend's way of drawing several samples.
func (w withMessages) CompleteN(ctx context.Context, req *Request, n int) ([]*Completion, error) {
	r := *req
	r.Messages = w.messages
	return CompleteN(ctx, w.Backend, &r, n)
}

// Rewarder scores texts with a reward model: higher is better.
type Rewarder interface {
	// Reward scores each text (a prompt and a solution after it).
	Reward(ctx context.Context, texts []string) ([]float64, error)
}

// Sampler is a backend that draws several completions of one prompt in one
// request (OpenAI's n): the server prefills the prompt once and bills it
// once. Completion i samples with Seed+i (with Seed 0, seeds are drawn),
// and its chunks carry Index i.
type Sampler interface {
	CompleteN(ctx context.Context, req *Request, n int) ([]*Completion, error)
}

// CompleteN draws n completions of req: in one request where b is a
// Sampler, else as n concurrent requests. Either way completion i samples
// with req.Seed+i (each draws its own when req.Seed is 0), and its chunks
// reach req.OnChunk with Index i, possibly from several goroutines at
// once. An environment steers one completion at a time, so a request with
// one takes n = 1 only. The first failure cancels the other completions
// and is the error returned.
func CompleteN(ctx context.Context, b Backend, req *Request, n int) ([]*Completion, error) {
	switch {
	case n < 1:
		return nil, Invalid(fmt.Errorf("backend: %d completions", n))
	case n > 1 && req.Env != nil:
		return nil, Invalid(errors.New("backend: an environment steers one completion at a time; ask for n = 1"))
	}
	if s, ok := b.(Sampler); ok && n > 1 {
		return s.CompleteN(ctx, req, n)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	out := make([]*Completion, n)
	var wg sync.WaitGroup
	for i := range n {
		r := *req
		if req.Seed != 0 {
			r.Seed = req.Seed + uint64(i)
		}
		if req.OnChunk != nil {
			r.OnChunk = func(c Chunk) {
				c.Index = i
				req.OnChunk(c)
			}
		}
		wg.Go(func() {
			c, err := b.Complete(ctx, &r)
			if err != nil {
				cancel(err) // the first cause stays: later ones are the cancellation
				return
			}
			out[i] = c
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// groupKey is the context key of WithGroup.
type groupKey struct{}

// WithGroup marks ctx's completions as the threads of one request, named
// by group: a backend that runs many threads at once shares its work
// fairly between groups, so that one request's thousand threads cannot
// starve another's one. Completions without a group form one group.
func WithGroup(ctx context.Context, group string) context.Context {
	return context.WithValue(ctx, groupKey{}, group)
}

// Group returns the group WithGroup put in ctx, "" for none.
func Group(ctx context.Context) string {
	g, _ := ctx.Value(groupKey{}).(string)
	return g
}

type retryKey struct{}

// WithRetryBudget gives ctx's completions n retries to share, on top of
// each call's own: a request whose threads make hundreds of calls rides
// out a failing server as long as its budget lasts, where calls that
// each gave up after their own few would fail its threads one by one. A
// budget of 0 or less is none: ctx as it is.
func WithRetryBudget(ctx context.Context, n int) context.Context {
	if n <= 0 {
		return ctx
	}
	b := new(atomic.Int64)
	b.Store(int64(n))
	return context.WithValue(ctx, retryKey{}, b)
}

// TakeRetry takes one retry from ctx's budget, reporting whether one was
// left (false for a context without a budget).
func TakeRetry(ctx context.Context) bool {
	b, _ := ctx.Value(retryKey{}).(*atomic.Int64)
	return b != nil && b.Add(-1) >= 0
}
