package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/braid-dev/braid/backend"
)

// Each kind of error a handler returns, or meets below it, is answered
// with the status, headers and body OpenAI's API uses for it.
func TestErrorsMapToOpenAIBodies(t *testing.T) {
	body := func(msg, typ, code string) string {
		c := "null"
		if code != "" {
			c = `"` + code + `"`
		}
		return fmt.Sprintf(`{"error":{"message":%q,"type":%q,"param":null,"code":%s}}`, msg, typ, c) + "\n"
	}
	s := &Server{opts: Options{Log: slog.New(slog.DiscardHandler)}}
	for _, c := range []struct {
		name   string
		err    error
		status int
		header string // "Name: value", if the error carries one
		body   string
	}{
		{"bad request", badRequest("n: %d is outside 1..64", 0), 400, "", body("n: 0 is outside 1..64", "invalid_request_error", "")},
		{"bad request wrapping", badRequest("prompt: %w", errors.New("required")), 400, "", body("prompt: required", "invalid_request_error", "")},
		{"no key", unauthorized("missing key"), 401, "", body("missing key", "invalid_request_error", "")},
		{"other origin", forbidden("origin %q", "x"), 403, "", body(`origin "x"`, "permission_error", "")},
		{"no model", notFound("model %q", "m"), 404, "", body(`model "m"`, "not_found_error", "")},
		{"no endpoint", noSuchPath("no endpoint GET /v1/x"), 404, "", body("no endpoint GET /v1/x", "not_found", "")},
		{"too many", tooMany("busy"), 429, "Retry-After: 1", body("busy", "rate_limit_error", "")},
		{"limit", &limitError{"over 5 threads"}, 400, "", body("over 5 threads", "invalid_request_error", "")},
		{"limit, wrapped", fmt.Errorf("reason: %w", &limitError{"over 5 threads"}), 400, "", body("over 5 threads", "invalid_request_error", "")},
		{"time limit", &timeLimitError{time.Minute}, 504, "", body("the request took longer than the server's limit of 1m0s", "timeout", "")},
		{"shutdown", errShutdown, 503, "", body("the server is shutting down; retry", "server_error", "")},
		{"body too large", &bodyError{err: &http.MaxBytesError{Limit: 100}}, 413, "Connection: close", body("the request body is over 100 bytes", "invalid_request_error", "")},
		{"body too slow", &bodyError{timeout: 30 * time.Second, err: os.ErrDeadlineExceeded}, 408, "Connection: close", body("the request body did not arrive within 30s", "invalid_request_error", "")},
		{"body cut off", &bodyError{err: errors.New("unexpected EOF")}, 400, "Connection: close", body("the request body could not be read: unexpected EOF", "invalid_request_error", "")},
		{"prompt too long", fmt.Errorf("engine: 3000 tokens: %w", backend.ErrPromptTooLong), 400, "",
			body("This model's maximum context length is exceeded: engine: 3000 tokens: the prompt is longer than the model's context", "invalid_request_error", "context_length_exceeded")},
		{"invalid prompt", backend.Invalid(errors.New("engine: token 99999")), 400, "", body("engine: token 99999", "invalid_request_error", "")},
		{"run failed", runFailed(backend.Invalid(errors.New("engine: token 99999"))), 500, "", body("the run failed: engine: token 99999", "server_error", "")},
		{"run timed out", runFailed(fmt.Errorf("remote: %w", context.DeadlineExceeded)), 504, "", body("the run failed: remote: context deadline exceeded", "server_error", "")},
		{"backend failed", errors.New("engine: out of memory\ngoroutine 1 [running]:"), 500, "", body("the run failed: engine: out of memory", "server_error", "")},
		{"internal", internal(errors.New("store: locked\ngoroutine 7")), 500, "", body("store: locked", "server_error", "")},
		{"long", internal(errors.New(strings.Repeat("x", 600))), 500, "", body(strings.Repeat("x", 500)+"...", "server_error", "")},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			s.writeError(w, httptest.NewRequest("GET", "/v1/x", nil), c.err)
			if w.Code != c.status || w.Body.String() != c.body {
				t.Errorf("%d %s\nwant %d %s", w.Code, w.Body, c.status, c.body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if name, value, ok := strings.Cut(c.header, ": "); ok && w.Header().Get(name) != value {
				t.Errorf("%s: %q, want %q", name, w.Header().Get(name), value)
			}
		})
	}
}

// In a stream, whose 200 has gone out, an error is its last event, and a
// failure on the server's side says so by its type.
func TestStreamedErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&limitError{"over 5 threads"}, `{"error":{"message":"over 5 threads","type":"invalid_request_error","param":null,"code":null}}`},
		{&timeLimitError{time.Second}, `{"error":{"message":"the request took longer than the server's limit of 1s","type":"server_error","param":null,"code":null}}`},
		{errShutdown, `{"error":{"message":"the server is shutting down; retry","type":"server_error","param":null,"code":null}}`},
		{internal(errors.New("engine: failed\nstack")), `{"error":{"message":"engine: failed","type":"server_error","param":null,"code":null}}`},
	} {
		if got := string(errorOf(c.err).streamed()); got != c.want {
			t.Errorf("%v: %s, want %s", c.err, got, c.want)
		}
	}
}

// A request's context says why it ended: the time limit, or a shutdown.
func TestCutShortSaysWhy(t *testing.T) {
	s, _ := newTestServer(t, Options{Timeout: 20 * time.Millisecond})
	got := make(chan error, 1)
	h := s.boundTime(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		got <- cutShort(r.Context())
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if err := <-got; errorOf(err).status != http.StatusGatewayTimeout {
		t.Errorf("past the time limit: %v", err)
	}
	s, _ = newTestServer(t, Options{Timeout: time.Hour})
	h = s.boundTime(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		s.Stop()
		<-r.Context().Done()
		got <- cutShort(r.Context())
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if err := <-got; !errors.Is(err, errShutdown) {
		t.Errorf("stopped: %v", err)
	}
}

// A handler's panic is a 500 that carries no stack, counted in the
// metrics as one; the stack goes to the log.
func TestPanicIsA500WithoutAStack(t *testing.T) {
	var log strings.Builder
	s, _ := newTestServer(t, Options{Log: slog.New(slog.NewTextHandler(&log, nil))})
	h := s.api(kindRead, func(http.ResponseWriter, *http.Request) error { panic("boom") })
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/v1/x", nil))
	want := `{"error":{"message":"internal error","type":"server_error","param":null,"code":null}}` + "\n"
	if w.Code != 500 || w.Body.String() != want {
		t.Errorf("%d %s", w.Code, w.Body)
	}
	if !strings.Contains(log.String(), "goroutine") || !strings.Contains(log.String(), "status=500") {
		t.Errorf("the log has no stack, or no 500: %s", log.String())
	}
}
