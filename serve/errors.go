package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/braid-dev/braid/backend"
)

// Handlers and middleware say why they refuse or fail a request by
// returning an error: a statusError they build, or an error from below
// (a limit passed, the request's context ended, the body unreadable, a
// backend's refusal). errorOf is the one place that turns any of them into
// the status and the OpenAI error body a client gets.

// The types an error body names: OpenAI's, and two of braid's own
// (pathNotFound, timeoutError) that its clients already see.
const (
	invalidRequest  = "invalid_request_error"
	notFoundError   = "not_found_error"
	permissionError = "permission_error"
	rateLimitError  = "rate_limit_error"
	serverError     = "server_error"
	timeoutError    = "timeout"
	// pathNotFound is the type the router's and the trace API's 404s
	// carry, where no model is involved.
	pathNotFound = "not_found"
)

// statusError is an error as a client is told it: the status, OpenAI's
// type and code, and the message.
type statusError struct {
	status int
	typ    string
	code   string // OpenAI's machine-readable code, if the error has one
	msg    string
	header http.Header // sent with the error
	cause  error       // for errors.Is and the log
}

func (e *statusError) Error() string { return e.msg }
func (e *statusError) Unwrap() error { return e.cause }

func newError(status int, typ string, cause error) *statusError {
	return &statusError{status: status, typ: typ, msg: cause.Error(), cause: cause}
}

// badRequest is a 400 naming what was wrong with the request; format may
// wrap a cause with %w.
func badRequest(format string, args ...any) error {
	return newError(http.StatusBadRequest, invalidRequest, fmt.Errorf(format, args...))
}

// notFound is a 404 for a model, or a run, the server does not have.
func notFound(format string, args ...any) error {
	return newError(http.StatusNotFound, notFoundError, fmt.Errorf(format, args...))
}

// noSuchPath is a 404 for an endpoint or a trace the server does not have.
func noSuchPath(format string, args ...any) error {
	return newError(http.StatusNotFound, pathNotFound, fmt.Errorf(format, args...))
}

func unauthorized(format string, args ...any) error {
	return newError(http.StatusUnauthorized, invalidRequest, fmt.Errorf(format, args...))
}

func forbidden(format string, args ...any) error {
	return newError(http.StatusForbidden, permissionError, fmt.Errorf(format, args...))
}

// tooMany is a 429: the client's own requests in flight are what it
// waits for, and they end or make progress within moments.
func tooMany(format string, args ...any) error {
	e := newError(http.StatusTooManyRequests, rateLimitError, fmt.Errorf(format, args...))
	e.header = http.Header{"Retry-After": {"1"}}
	return e
}

// internal is a failure on the server's side, told in its own first line.
func internal(err error) error {
	return &statusError{status: http.StatusInternalServerError, typ: serverError, msg: oneLine(err), cause: err}
}

// runFailed is a run that failed on the server's side, whatever its
// cause: a backend that refuses a prompt a strategy wrote is the
// server's mistake, not the client's.
func runFailed(err error) error {
	status := http.StatusInternalServerError
	if errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusGatewayTimeout
	}
	return &statusError{status: status, typ: serverError, msg: "the run failed: " + oneLine(err), cause: err}
}

// errShutdown ends the work of requests still in flight when a graceful
// shutdown runs out of time.
var errShutdown = errors.New("the server is shutting down; retry")

// timeLimitError ends a request's work when it passes the server's time
// limit for a request.
type timeLimitError struct{ limit time.Duration }

func (e *timeLimitError) Error() string {
	return fmt.Sprintf("the request took longer than the server's limit of %s", e.limit)
}

// cutShort is why ctx, a request's context, ended before its work: the
// time limit, or a shutdown (a client that left reads nothing).
func cutShort(ctx context.Context) error {
	err := context.Cause(ctx)
	if _, ok := errors.AsType[*timeLimitError](err); ok {
		return err
	}
	return errShutdown
}

// interruption is what stopped a request's work before the work itself
// could fail: a limit it passed, or the end of its context; nil if
// neither did, and err is the work's own failure.
func interruption(ctx context.Context, err error) error {
	if lim, ok := errors.AsType[*limitError](err); ok {
		return lim
	}
	if ctx.Err() != nil {
		return cutShort(ctx)
	}
	return nil
}

// bodyError is a request body that could not be read whole within the
// server's limits of size and time.
type bodyError struct {
	timeout time.Duration // the limit on its time, to say so
	err     error
}

func (e *bodyError) Error() string { return "serve: read the request body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// errorOf is err as a client is told it.
func errorOf(err error) *statusError {
	var (
		known     *statusError
		limit     *limitError
		timeLimit *timeLimitError
		body      *bodyError
	)
	switch {
	case errors.As(err, &known):
		return known
	case errors.As(err, &limit):
		return &statusError{status: http.StatusBadRequest, typ: invalidRequest, msg: limit.msg, cause: err}
	case errors.As(err, &timeLimit):
		return &statusError{status: http.StatusGatewayTimeout, typ: timeoutError, msg: timeLimit.Error(), cause: err}
	case errors.Is(err, errShutdown):
		return &statusError{status: http.StatusServiceUnavailable, typ: serverError, msg: errShutdown.Error(), cause: err}
	case errors.As(err, &body):
		return body.status()
	case errors.Is(err, backend.ErrPromptTooLong):
		// In the words and code vLLM and OpenAI use, which clients (braid's
		// own included) read as "the prompt outgrew the context".
		return &statusError{status: http.StatusBadRequest, typ: invalidRequest, code: "context_length_exceeded",
			msg: "This model's maximum context length is exceeded: " + err.Error(), cause: err}
	case errors.Is(err, backend.ErrInvalidRequest):
		return &statusError{status: http.StatusBadRequest, typ: invalidRequest, msg: err.Error(), cause: err}
	default:
		// What is left failed on the server's side.
		return errorOf(runFailed(err))
	}
}

func (e *bodyError) status() *statusError {
	// The rest of the body will not be read: the connection closes after
	// the answer, instead of net/http waiting to discard what is left.
	se := &statusError{status: http.StatusBadRequest, typ: invalidRequest, header: http.Header{"Connection": {"close"}}, cause: e}
	var tooBig *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(e.err, &tooBig):
		se.status, se.msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is over %d bytes", tooBig.Limit)
	case errors.As(e.err, &netErr) && netErr.Timeout():
		se.status, se.msg = http.StatusRequestTimeout, fmt.Sprintf("the request body did not arrive within %s", e.timeout)
	default:
		se.msg = "the request body could not be read: " + e.err.Error()
	}
	return se
}

// apiError is OpenAI's error body.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// body is e as OpenAI's error body. A failure on the server's side says
// one line: its detail (a stack, were a bug to put one in an error)
// belongs in the log.
func (e *statusError) body() apiError {
	var b apiError
	b.Error.Message, b.Error.Type = e.msg, e.typ
	if e.status >= 500 {
		b.Error.Message, _, _ = strings.Cut(e.msg, "\n")
	}
	if e.code != "" {
		code := e.code
		b.Error.Code = &code
	}
	return b
}

// streamed is e as the last event of a stream. The stream's 200 went out
// before the failure, so its type is all that tells a failure on the
// server's side from the client's: a server_error, whatever status it
// would have had.
func (e *statusError) streamed() []byte {
	b := e.body()
	if e.status >= 500 {
		b.Error.Type = serverError
	}
	data, _ := json.Marshal(b)
	return data
}

// writeError answers a request with err, and logs a failure on the
// server's side with the detail its answer leaves out.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := errorOf(err)
	if e.status >= 500 {
		var detail error = e
		if e.cause != nil {
			detail = e.cause
		}
		s.opts.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", e.status, "error", detail)
	}
	maps.Copy(w.Header(), e.header)
	writeJSON(w, e.status, e.body())
}

// oneLine is an error's first line, at most 500 bytes: what a client is
// told of a failure on the server's side, whose detail belongs in the log.
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
