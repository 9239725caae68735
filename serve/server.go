// Package serve is braid's HTTP face: an OpenAI-compatible API
// (/v1/chat/completions, /v1/completions, /v1/models) whose strategies run
// many reasoning threads per request and stream them as reasoning_content,
// a trace API that replays and follows each request's tree of threads, a
// web UI that draws it, /healthz and Prometheus /metrics.
//
// Every request it refuses gets an OpenAI-style JSON error with a 4xx
// status, and no error it answers carries a stack; it authenticates with
// a bearer token when one is set; it bounds request bodies and the time
// they take to arrive, each client's concurrent requests of each kind,
// each request's time, threads and tokens, and the time a write to a
// client may block; it refuses browsers' requests from other origins and,
// on loopback, Host names other than loopback's (DNS rebinding); and it
// shuts down gracefully, telling open streams why they end.
package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/store"
	"github.com/braid-dev/braid/task"
)

// Options configure a server.
type Options struct {
	// Backend runs the model.
	Backend backend.Backend
	// Model is the model's name ("countdown" for braid's embedded model).
	Model string
	// Task is what the chat messages state problems of: Countdown for the
	// embedded model, free-text math for a general one.
	Task task.Task
	// RetryBudget is the retries a request's calls to a remote backend
	// share on top of each call's own (backend.WithRetryBudget; 0: none).
	RetryBudget int
	// Temperature is a request's temperature when it names none: 0
	// (greedy) for a search model, 1 (OpenAI's default) for a chat model.
	// Strategies that sample several draw at 1 then.
	Temperature float64
	// Raw, when set, serves /v1/completions: the embedded engine with no
	// chat template between (Backend itself, or what Backend renders chat
	// through), so that one braid can be another's remote backend.
	Raw backend.Backend
	// DefaultStrategy is used when the model name names none (default
	// "apr" for a task with a parallel protocol, "serial" otherwise).
	DefaultStrategy string
	// APIKey, when set, is the bearer token every /v1 request must carry.
	APIKey string
	// MaxBodyBytes bounds a request body (default 1 MiB).
	MaxBodyBytes int64
	// PerClient bounds the completions (chat and raw) one client (API
	// key, else address) has in flight, and apart from them its trace
	// event streams and its other requests: more of a kind are refused
	// with 429, and streams of traces cannot starve completions (default
	// 16 each).
	PerClient int
	// Timeout bounds a request's work (default 10 minutes).
	Timeout time.Duration
	// ReadTimeout bounds the time a request body takes to arrive; it is
	// read whole before the request counts as in flight, so a client that
	// trickles its bodies holds no place (default 30 seconds).
	ReadTimeout time.Duration
	// WriteTimeout bounds each write to a client: one that stops reading
	// a stream is cut off, and its request's work stops (default 30
	// seconds).
	WriteTimeout time.Duration
	// RequestThreads and RequestTokens bound one chat request's threads
	// (backend calls) and the completion tokens of all of them together:
	// a request that would pass either fails with a 400 naming the limit
	// (defaults 4,096 threads and 4,000,000 tokens).
	RequestThreads int
	RequestTokens  int
	// AllowOrigins are the browser origins ("https://app.example", or "*"
	// for any) whose pages may call the API; the server's own pages
	// always may. Requests from any other origin are refused with 403.
	AllowOrigins []string
	// AllowHosts are Host names, besides loopback's, that a server
	// listening on a loopback address answers (a proxy's name); any other
	// Host is refused with 403: a page on a domain that resolves to
	// 127.0.0.1 must not reach a local server.
	AllowHosts []string
	// Health, when set, says whether the backend can serve: /healthz and
	// /readyz answer 503 with its error (an engine stopped by a failure).
	Health func() error
	// KeepTraces is how many recent traces the trace API keeps (default
	// 256), and TraceBytes about how much memory their events may hold,
	// oldest finished dropped first (default 32 MiB: kept traces are a
	// cache for readers, and a server given a burst should not keep
	// hundreds of megabytes of it).
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
	handler http.Handler

	mu      sync.Mutex
	clients map[string]int // requests in flight per client and kind

	// loopback is set while the server listens on a loopback address
	// only: requests must then name a loopback Host. stopping is set once
	// a shutdown begins: the server is not ready for more.
	loopback atomic.Bool
	stopping atomic.Bool

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
	if opts.Task == nil {
		return nil, errors.New("serve: no task")
	}
	if opts.DefaultStrategy == "" {
		opts.DefaultStrategy = "serial"
		if _, ok := opts.Task.(task.Protocol); ok {
			opts.DefaultStrategy = "apr"
		}
	}
	if _, err := reason.Parse(opts.DefaultStrategy, reason.Options{Temperature: 1}, opts.Task); err != nil {
		return nil, fmt.Errorf("serve: default strategy: %w", err)
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
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 30 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	if opts.RequestThreads <= 0 {
		opts.RequestThreads = 4096
	}
	if opts.RequestTokens <= 0 {
		opts.RequestTokens = 4_000_000
	}
	for _, o := range opts.AllowOrigins {
		if o != "*" && !validOrigin(o) {
			return nil, fmt.Errorf("serve: allowed origin %q: want scheme://host[:port], as a browser sends it, or *", o)
		}
	}
	if opts.KeepTraces <= 0 {
		opts.KeepTraces = 256
	}
	if opts.TraceBytes <= 0 {
		opts.TraceBytes = 32 << 20
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, traces: newTraces(opts.KeepTraces, opts.TraceBytes), clients: map[string]int{}}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.metrics = newMetrics(opts.Stats)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.metrics.handler())
	mux.Handle("GET /v1/models", s.api(kindRead, s.models))
	mux.Handle("POST /v1/chat/completions", s.api(kindCompletion, s.chat))
	mux.Handle("POST /v1/completions", s.api(kindCompletion, s.completions))
	mux.Handle("GET /v1/traces/{id}", s.api(kindRead, s.trace))
	mux.Handle("GET /v1/traces/{id}/events", s.api(kindStream, s.traceEvents))
	mux.Handle("/v1/", s.api(kindRead, func(_ http.ResponseWriter, r *http.Request) error {
		return noSuchPath("no endpoint %s %s", r.Method, r.URL.Path)
	}))
	s.ui(mux)
	s.handler = chain(mux, s.guard)
	return s, nil
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

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
	// No ReadTimeout or WriteTimeout here: they would bound a whole
	// stream. Bodies and writes are bounded request by request instead.
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && a.IP.IsLoopback() {
		s.loopback.Store(true)
	}
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
	s.stopping.Store(true)
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
		// Out of grace: the work left is cancelled, and its handlers get
		// a moment to tell their clients so (an error event in a stream,
		// a 503) before the connections close.
		s.Stop()
		last, cancel := context.WithTimeout(context.Background(), shutdownNotice)
		defer cancel()
		if err = hs.Shutdown(last); errors.Is(err, context.DeadlineExceeded) {
			err = hs.Close()
		}
	}
	return err
}

// shutdownNotice is how long handlers whose work a shutdown cancelled get
// to answer before their connections close.
const shutdownNotice = 5 * time.Second

// healthz says whether the server can answer: 503 once its backend has
// failed (an engine stopped by an internal error), whose requests would
// all fail.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	if err := s.health(); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "failing", "model": s.opts.Model, "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "model": s.opts.Model})
}

// readyz says whether the server takes new work: not once a shutdown has
// begun, nor with a failed backend. A load balancer sends traffic
// elsewhere on 503.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	switch err := s.health(); {
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "failing", "error": err.Error()})
	case s.stopping.Load():
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "stopping"})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
	}
}

func (s *Server) health() error {
	if s.opts.Health == nil {
		return nil
	}
	return s.opts.Health()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// jsonKind names the JSON a Go type decodes from, for an error a client
// can read: never a Go type name.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "another JSON value"
}

// decodeBody reads a JSON request body into v, with errors a client can
// act on: not JSON, a field of the wrong type.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		if typeErr, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			if typeErr.Field == "" {
				return badRequest("the body must be a JSON object, not a JSON %s", typeErr.Value)
			}
			return badRequest("field %q: expected %s, got a JSON %s", typeErr.Field, jsonKind(typeErr.Type), typeErr.Value)
		}
		if syntaxErr, ok := errors.AsType[*json.SyntaxError](err); ok {
			return badRequest("the body is not valid JSON: %w (at byte %d)", err, syntaxErr.Offset)
		}
		switch {
		case errors.Is(err, io.EOF):
			return badRequest("the body is empty: expected a JSON object")
		case errors.Is(err, io.ErrUnexpectedEOF):
			return badRequest("the body is not valid JSON: it ends before the JSON value does")
		}
		return badRequest("the body is not a valid request: %w", err)
	}
	if dec.More() {
		return badRequest("the body holds more than one JSON value")
	}
	return nil
}
