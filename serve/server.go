// Package serve is braid's HTTP face: an OpenAI-compatible API
// (/v1/chat/completions, /v1/completions, /v1/models) whose strategies run
// many reasoning threads per request and stream them as reasoning_content,
// a trace API that replays and follows each request's tree of threads, a
// web UI that draws it, /healthz and Prometheus /metrics.
//
// Every request it refuses gets an OpenAI-style JSON error with a 4xx
// status; it authenticates with a bearer token when one is set, bounds
// request bodies, each client's concurrent requests and each request's
// time, and shuts down gracefully.
package serve

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/store"
)

// Options configure a server.
type Options struct {
	// Backend runs the model.
	Backend backend.Backend
	// Model is the model's name: "countdown" for braid's embedded
	// Countdown model (its chat messages state Countdown problems); any
	// other name is a general model, whose chat messages are questions
	// answered by the task-agnostic strategies.
	Model string
	// Countdown says the model is a Countdown search model.
	Countdown bool
	// Raw serves /v1/completions straight from Backend (the embedded
	// engine), so that one braid can be another's remote backend.
	Raw bool
	// DefaultStrategy is used when the model name names none (default
	// "apr" for Countdown, "serial" otherwise).
	DefaultStrategy string
	// APIKey, when set, is the bearer token every /v1 request must carry.
	APIKey string
	// MaxBodyBytes bounds a request body (default 1 MiB).
	MaxBodyBytes int64
	// PerClient bounds the requests one client (API key, else address)
	// has in flight; more are refused with 429 (default 16).
	PerClient int
	// Timeout bounds a request's work (default 10 minutes).
	Timeout time.Duration
	// KeepTraces is how many recent traces the trace API keeps (default
	// 256), and TraceBytes about how much memory their events may hold,
	// oldest dropped first (default 256 MiB).
	KeepTraces int
	TraceBytes int64
	// Stats, when set, reports the backend's decoding and waiting
	// threads, for /metrics.
	Stats func() (running, waiting int)
	// Runs, when set, is the evaluation store the UI lists and charts.
	Runs *store.Store
	// Log receives one line per request (default: discard).
	Log *slog.Logger
}

// Server serves the API.
type Server struct {
	opts    Options
	traces  *traces
	metrics *metrics
	mux     *http.ServeMux

	mu      sync.Mutex
	clients map[string]int // requests in flight per client

	// base is cancelled when a graceful shutdown runs out of time: work
	// still in flight then stops.
	base   context.Context
	cancel context.CancelFunc
}

// New returns a server.
func New(opts Options) (*Server, error) {
	if opts.Backend == nil {
		return nil, errors.New("serve: no backend")
	}
	if opts.Model == "" {
		return nil, errors.New("serve: no model name")
	}
	if strings.Contains(opts.Model, "/") && opts.Countdown {
		return nil, fmt.Errorf("serve: model name %q: a slash separates a strategy from the model", opts.Model)
	}
	if opts.DefaultStrategy == "" {
		opts.DefaultStrategy = "serial"
		if opts.Countdown {
			opts.DefaultStrategy = "apr"
		}
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.PerClient <= 0 {
		opts.PerClient = 16
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Minute
	}
	if opts.KeepTraces <= 0 {
		opts.KeepTraces = 256
	}
	if opts.TraceBytes <= 0 {
		opts.TraceBytes = 256 << 20
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, traces: newTraces(opts.KeepTraces, opts.TraceBytes), clients: map[string]int{}}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.metrics = newMetrics(opts.Stats)
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.Handle("GET /metrics", s.metrics.handler())
	s.mux.HandleFunc("GET /v1/models", s.api(s.models))
	s.mux.HandleFunc("POST /v1/chat/completions", s.api(s.chat))
	s.mux.HandleFunc("POST /v1/completions", s.api(s.completions))
	s.mux.HandleFunc("GET /v1/traces/{id}", s.api(s.trace))
	s.mux.HandleFunc("GET /v1/traces/{id}/events", s.api(s.traceEvents))
	s.mux.HandleFunc("/v1/", s.api(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
	}))
	s.ui(s.mux)
	return s, nil
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Stop cancels the work of every request still in flight; a graceful
// shutdown calls it when its time runs out (http.Server.Shutdown waits for
// handlers, and cancelled work lets them end).
func (s *Server) Stop() { s.cancel() }

// ListenAndServe serves on addr until ctx ends, then shuts down
// gracefully: no new connections, requests in flight given grace to
// finish, then cancelled.
func (s *Server) ListenAndServe(ctx context.Context, addr string, grace time.Duration, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serve: listen on %s: %w", addr, err)
	}
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	if ready != nil {
		ready(ln.Addr())
	}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	stopped := make(chan struct{})
	go func() {
		select {
		case <-sctx.Done():
			s.Stop() // out of grace: cancel what is left
		case <-stopped:
		}
	}()
	err = hs.Shutdown(sctx)
	close(stopped)
	if errors.Is(err, context.DeadlineExceeded) {
		s.Stop()
		err = hs.Close()
	}
	return err
}

// api wraps a /v1 handler: authentication, the body limit, the client's
// concurrency limit, the request's time limit, metrics and a log line.
func (s *Server) api(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if v := recover(); v != nil {
				s.opts.Log.Error("panic", "path", r.URL.Path, "panic", v)
				if !rec.wrote {
					writeError(rec, http.StatusInternalServerError, "server_error", "internal error")
				}
			}
			route := r.Pattern
			if route == "" {
				route = "unknown"
			}
			s.metrics.request(route, rec.status, time.Since(start))
			s.opts.Log.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "ms", time.Since(start).Milliseconds())
		}()
		client := clientOf(r)
		if s.opts.APIKey != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.APIKey)) != 1 {
				writeError(rec, http.StatusUnauthorized, "invalid_request_error", "missing or wrong API key: send Authorization: Bearer KEY")
				return
			}
			client = "key " + got
		}
		if !s.enter(client) {
			rec.Header().Set("Retry-After", "1")
			writeError(rec, http.StatusTooManyRequests, "rate_limit_error",
				fmt.Sprintf("this client already has %d requests in flight", s.opts.PerClient))
			return
		}
		defer s.leave(client)
		r.Body = http.MaxBytesReader(rec, r.Body, s.opts.MaxBodyBytes)
		ctx, cancel := context.WithTimeout(r.Context(), s.opts.Timeout)
		defer cancel()
		stop := context.AfterFunc(s.base, cancel)
		defer stop()
		h(rec, r.WithContext(ctx))
	}
}

func clientOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) enter(client string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients[client] >= s.opts.PerClient {
		return false
	}
	s.clients[client]++
	return true
}

func (s *Server) leave(client string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients[client]--; s.clients[client] <= 0 {
		delete(s.clients, client)
	}
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "model": s.opts.Model})
}

// statusWriter remembers the status written, for metrics, and passes
// flushes through for streaming.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	w.wrote = true
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// apiError is the OpenAI error body.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	var e apiError
	e.Error.Message, e.Error.Type = msg, typ
	writeJSON(w, status, e)
}

// badRequest is a 400 invalid_request_error naming what was wrong.
func badRequest(w http.ResponseWriter, format string, args ...any) {
	writeError(w, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf(format, args...))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// decodeBody reads a JSON request body into v, with errors a client can
// act on: too large, not JSON, a field of the wrong type.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &tooBig):
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error",
				fmt.Sprintf("the request body is over %d bytes", tooBig.Limit))
		case errors.As(err, &typeErr):
			badRequest(w, "field %q: expected %s, got a JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
		case errors.As(err, &syntaxErr):
			badRequest(w, "the body is not valid JSON: %v (at byte %d)", err, syntaxErr.Offset)
		case errors.Is(err, io.EOF):
			badRequest(w, "the body is empty: expected a JSON object")
		case errors.Is(err, io.ErrUnexpectedEOF):
			badRequest(w, "the body is not valid JSON: it ends before the JSON value does")
		default:
			badRequest(w, "the body is not a valid request: %v", err)
		}
		return false
	}
	if dec.More() {
		badRequest(w, "the body holds more than one JSON value")
		return false
	}
	return true
}
