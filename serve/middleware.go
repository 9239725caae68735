package serve

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
)

// middleware wraps a handler in a concern every request of a route shares.
type middleware func(http.Handler) http.Handler

// chain wraps h in mw, the first outermost: a request passes through mw
// in order before it reaches h.
func chain(h http.Handler, mw ...middleware) http.Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// apiFunc is a /v1 handler: it answers, or returns why it cannot and
// writes nothing. A handler that has begun its answer (a stream) tells a
// later failure there, and returns nil.
type apiFunc func(w http.ResponseWriter, r *http.Request) error

// api is a /v1 endpoint: f behind the middleware every /v1 request goes
// through, its in-flight requests counted as kind.
func (s *Server) api(kind requestKind, f apiFunc) http.Handler {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
	return chain(h,
		s.observe,       // sees every answer, the others' refusals and panics included
		s.recoverPanics, // inside observe, which then counts the 500
		s.authenticate,
		s.readBody,    // before admit: a slow body holds no place
		s.admit(kind), // keyed by the client authenticate let in
		s.boundTime)
}

// requestKind is the in-flight limit a route counts against: each kind
// has its own, so that one kind of request cannot starve another.
type requestKind string

const (
	kindRead       requestKind = "request"      // quick reads: models, a trace, runs
	kindCompletion requestKind = "completion"   // chat and raw completions
	kindStream     requestKind = "trace stream" // a trace's events, followed
)

// observe gives every write a deadline, and counts and logs each answer.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusWriter{ResponseWriter: w, status: http.StatusOK, rc: http.NewResponseController(w), timeout: s.opts.WriteTimeout}
		// A connection kept alive keeps the deadline of its last write.
		rec.rc.SetWriteDeadline(time.Time{})
		defer func() {
			route := r.Pattern
			if route == "" {
				route = "unknown"
			}
			s.metrics.request(route, rec.status, time.Since(start))
			s.opts.Log.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "ms", time.Since(start).Milliseconds())
		}()
		next.ServeHTTP(rec, r)
	})
}

// recoverPanics answers a handler's panic with a 500 that carries no
// stack, and logs the stack.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				s.opts.Log.Error("panic", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				// An answer already begun can only be cut short.
				if rec, ok := w.(*statusWriter); !ok || !rec.wrote {
					s.writeError(w, r, internal(errPanic))
				}
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// errPanic is all a client learns of a handler's panic.
var errPanic = errors.New("internal error")

// authenticate refuses a request without the API key, when one is set.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.APIKey != "" {
			got, ok := bearer(r)
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.APIKey)) != 1 {
				s.writeError(w, r, unauthorized("missing or wrong API key: send Authorization: Bearer KEY"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func bearer(r *http.Request) (string, bool) {
	return strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
}

// readBody reads a request's body whole, within MaxBodyBytes and
// ReadTimeout, before the request takes a place: a client that trickles
// its body holds nothing but its own connection, and not for long.
func (s *Server) readBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		// A recorder in tests cannot set deadlines; a connection can.
		rc.SetReadDeadline(time.Now().Add(s.opts.ReadTimeout))
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
		if err != nil {
			s.writeError(w, r, &bodyError{timeout: s.opts.ReadTimeout, err: err})
			return
		}
		rc.SetReadDeadline(time.Time{})
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// admit holds a place among the client's requests of kind in flight for
// the request's time, or refuses it with a 429 when they are all taken.
func (s *Server) admit(kind requestKind) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			client := s.clientOf(r)
			if !s.enter(client, kind) {
				s.writeError(w, r, tooMany("this client already has %d %ss in flight", s.opts.PerClient, kind))
				return
			}
			defer s.leave(client, kind)
			next.ServeHTTP(w, r)
		})
	}
}

// clientOf is who a request counts against: its API key, else its
// address.
func (s *Server) clientOf(r *http.Request) string {
	if s.opts.APIKey != "" {
		if key, ok := bearer(r); ok {
			return "key " + key
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) enter(client string, kind requestKind) bool {
	key := string(kind) + " " + client
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients[key] >= s.opts.PerClient {
		return false
	}
	s.clients[key]++
	return true
}

func (s *Server) leave(client string, kind requestKind) {
	key := string(kind) + " " + client
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients[key]--; s.clients[key] <= 0 {
		delete(s.clients, key)
	}
}

// boundTime ends a request's context at the server's time limit, or when
// a shutdown runs out of grace, each with its own cause: the handler tells
// the client which (cutShort).
func (s *Server) boundTime(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancelCause(r.Context())
		defer cancel(nil)
		ctx, stopTimer := context.WithTimeoutCause(ctx, s.opts.Timeout, &timeLimitError{s.opts.Timeout})
		defer stopTimer()
		stop := context.AfterFunc(s.base, func() { cancel(errShutdown) })
		defer stop()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// statusWriter remembers the status written, for metrics, gives every
// write a deadline, so that a client that stops reading cannot hold its
// handler, and passes flushes through for streaming.
type statusWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	status  int
	wrote   bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	w.wrote = true
	w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	w.rc.Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
