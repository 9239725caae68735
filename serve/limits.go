package serve

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/braid-dev/braid/backend"
)

// limitError stops a request that passed one of the server's
// per-request limits: the client asked for too much, a 400.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

// limited is one request's view of the backend: it counts the request's
// threads and their tokens, and stops the request, by cancelling its
// context with a limitError, when it would pass either limit (reach it,
// for tokens). Each call
// is also capped to the tokens left, so that no thread decodes far past
// the limit before it is seen. Every call carries the request's group,
// under which the backend shares its work fairly between requests.
type limited struct {
	backend.Backend
	group                 string
	maxThreads, maxTokens int64
	threads, tokens       atomic.Int64
	stop                  context.CancelCauseFunc
}

// limit returns ctx's request's limited b, and the context its work must
// run under.
func (s *Server) limit(ctx context.Context, group string, b backend.Backend) (*limited, context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(backend.WithGroup(ctx, group))
	return &limited{Backend: b, group: group, maxThreads: int64(s.opts.RequestThreads),
		maxTokens: int64(s.opts.RequestTokens), stop: cancel}, ctx, cancel
}

func (l *limited) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	r, err := l.admit(req, 1)
	if err != nil {
		return nil, err
	}
	return l.Backend.Complete(backend.WithGroup(ctx, l.group), r)
}

// CompleteN keeps a backend's way of drawing n samples in one call (a
// remote server's n), counting each sample as a thread.
func (l *limited) CompleteN(ctx context.Context, req *backend.Request, n int) ([]*backend.Completion, error) {
	s, ok := l.Backend.(backend.Sampler)
	if !ok {
		return backend.CompleteN(ctx, completer{l}, req, n)
	}
	r, err := l.admit(req, n)
	if err != nil {
		return nil, err
	}
	return s.CompleteN(backend.WithGroup(ctx, l.group), r, n)
}

// admit counts n threads of req against the limits and returns req as it
// may run: capped to the tokens left, its chunks counted.
func (l *limited) admit(req *backend.Request, n int) (*backend.Request, error) {
	if l.threads.Add(int64(n)) > l.maxThreads {
		err := &limitError{fmt.Sprintf("the request would run more than %d threads, the server's limit for one request (braid serve --request-threads)", l.maxThreads)}
		l.stop(err)
		return nil, err
	}
	left := l.maxTokens - l.tokens.Load()
	if left <= 0 {
		err := l.tokenError()
		l.stop(err)
		return nil, err
	}
	r := *req
	if r.MaxTokens == 0 || int64(r.MaxTokens) > left {
		r.MaxTokens = int(left)
	}
	next := req.OnChunk
	r.OnChunk = func(c backend.Chunk) {
		// Reaching the limit counts as passing it: a call capped to the
		// tokens left ends there, and its request would otherwise end
		// cut short without saying so.
		if l.tokens.Add(int64(len(c.Tokens))) >= l.maxTokens {
			l.stop(l.tokenError())
		}
		if next != nil {
			next(c)
		}
	}
	return &r, nil
}

// completer is limited without its CompleteN, which backend.CompleteN
// would otherwise call back.
type completer struct{ l *limited }

func (c completer) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	return c.l.Complete(ctx, req)
}

func (l *limited) tokenError() error {
	return &limitError{fmt.Sprintf("the request ran past %d tokens over all its threads, the server's limit for one request (braid serve --request-tokens)", l.maxTokens)}
}

// stoppedBy returns the limit that stopped a request's work, nil if none
// did.
func stoppedBy(ctx context.Context) error {
	if lim, ok := errors.AsType[*limitError](context.Cause(ctx)); ok {
		return lim
	}
	return nil
}
