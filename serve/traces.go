package serve

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braid-dev/braid/reason"
)

// trace is one request's run: its events as they happened, and at the
// end its tree and answer.
type trace struct {
	ID       string `json:"id"`
	Model    string `json:"model"`
	Strategy string `json:"strategy"`
	Problem  string `json:"problem"`
	Created  int64  `json:"created"`

	owner   *traces
	mu      sync.Mutex
	events  []reason.Event
	size    int64         // the events' memory, roughly
	changed chan struct{} // closed and replaced at each change
	done    bool
	result  *reason.Result
	correct *bool
	err     string
	cause   error // err, for the status it maps to
}

// traces keeps the most recent traces: at most keep of them, and, oldest
// first, no more than about limit bytes of events (an apr run streams an
// event per token of every thread, tens of thousands).
type traces struct {
	mu    sync.Mutex
	keep  int
	limit int64
	bytes atomic.Int64
	byID  map[string]*trace
	order []string
}

func newTraces(keep int, limit int64) *traces {
	return &traces{keep: keep, limit: limit, byID: map[string]*trace{}}
}

// eventSize is an event's memory, roughly: its struct, its slice slot and
// its strings.
func eventSize(e reason.Event) int64 {
	return int64(96 + len(e.Text) + len(e.Thread) + len(e.Parent))
}

func (ts *traces) start(model, strategy, problem string) *trace {
	var b [8]byte
	rand.Read(b[:])
	t := &trace{ID: "trace-" + hex.EncodeToString(b[:]), Model: model, Strategy: strategy, Problem: problem,
		Created: time.Now().Unix(), changed: make(chan struct{}), owner: ts}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.byID[t.ID] = t
	ts.order = append(ts.order, t.ID)
	for len(ts.order) > ts.keep {
		ts.drop(0)
	}
	ts.trim()
	return t
}

// trim drops finished traces, oldest first, while the events held pass
// the limit. Runs still going stay (a client may be following one); each
// is bounded by its request's limits. ts.mu is held.
func (ts *traces) trim() {
	for i := 0; i < len(ts.order) && ts.bytes.Load() > ts.limit; {
		t := ts.byID[ts.order[i]]
		t.mu.Lock()
		done := t.done
		t.mu.Unlock()
		if !done {
			i++
			continue
		}
		ts.drop(i)
	}
}

// drop forgets the i-th oldest trace. ts.mu is held.
func (ts *traces) drop(i int) {
	t := ts.byID[ts.order[i]]
	t.mu.Lock()
	ts.bytes.Add(-t.size)
	t.size = 0 // a run still going counts no more
	t.owner = nil
	t.mu.Unlock()
	delete(ts.byID, ts.order[i])
	ts.order = append(ts.order[:i], ts.order[i+1:]...)
}

func (ts *traces) get(id string) *trace {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.byID[id]
}

func (t *trace) add(e reason.Event) {
	t.mu.Lock()
	t.events = append(t.events, e)
	owner := t.owner
	if owner != nil {
		sz := eventSize(e)
		t.size += sz
		owner.bytes.Add(sz)
	}
	close(t.changed)
	t.changed = make(chan struct{})
	t.mu.Unlock()
	if owner != nil && owner.bytes.Load() > owner.limit {
		owner.mu.Lock() // ts.mu before t.mu, as start takes them
		owner.trim()
		owner.mu.Unlock()
	}
}

func (t *trace) finish(r *reason.Result, correct *bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done, t.result, t.correct = true, r, correct
	if err != nil {
		t.err, t.cause = oneLine(err), err
	}
	t.events = compact(t.events)
	close(t.changed)
	t.changed = make(chan struct{})
}

// compact copies a finished trace's events, which it keeps for its readers
// for as long as it is among the kept ones, into memory of their exact
// size: one slice, one string for all texts, one string for each thread's
// name. As they came, they were thousands of small strings and a slice
// grown by doubling, which hold the heap's pages long after the run.
// Readers still holding the old events keep reading them unchanged.
func compact(events []reason.Event) []reason.Event {
	var b strings.Builder
	for _, e := range events {
		b.WriteString(e.Text)
	}
	texts := b.String()
	names := map[string]string{}
	intern := func(s string) string {
		if v, ok := names[s]; ok {
			return v
		}
		v := strings.Clone(s)
		names[v] = v
		return v
	}
	out := make([]reason.Event, len(events))
	off := 0
	for i, e := range events {
		e.Text = texts[off : off+len(e.Text)]
		off += len(e.Text)
		e.Thread, e.Parent = intern(e.Thread), intern(e.Parent)
		out[i] = e
	}
	return out
}

// since returns the events after the first n, whether the trace is done,
// and a channel closed at the next change.
func (t *trace) since(n int) ([]reason.Event, bool, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n > len(t.events) {
		n = len(t.events)
	}
	return t.events[n:], t.done, t.changed
}

// failure is why the run failed, nil if it did not.
func (t *trace) failure() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cause
}

// count returns how many events the trace has so far.
func (t *trace) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.events)
}

// traceView is the trace API's JSON.
type traceView struct {
	ID       string         `json:"id"`
	Model    string         `json:"model"`
	Strategy string         `json:"strategy"`
	Problem  string         `json:"problem"`
	Created  int64          `json:"created"`
	Status   string         `json:"status"` // running, done or failed
	Answer   string         `json:"answer,omitempty"`
	Correct  *bool          `json:"correct,omitempty"`
	Error    string         `json:"error,omitempty"`
	Result   *reason.Result `json:"result,omitempty"`
	Events   int            `json:"events"`
}

func (t *trace) view() traceView {
	t.mu.Lock()
	defer t.mu.Unlock()
	v := traceView{ID: t.ID, Model: t.Model, Strategy: t.Strategy, Problem: t.Problem, Created: t.Created, Status: "running",
		Correct: t.correct, Error: t.err, Result: t.result, Events: len(t.events)}
	switch {
	case t.done && t.err != "":
		v.Status = "failed"
	case t.done:
		v.Status = "done"
	}
	if t.result != nil {
		v.Answer = t.result.Answer
	}
	return v
}

func (s *Server) trace(w http.ResponseWriter, r *http.Request) error {
	t := s.traces.get(r.PathValue("id"))
	if t == nil {
		return noSuchPath("no trace %q (the server keeps the last %d)", r.PathValue("id"), s.opts.KeepTraces)
	}
	writeJSON(w, http.StatusOK, t.view())
	return nil
}

// traceEvents streams a trace's events as server-sent events, each with
// its index as id: a client that reconnects with Last-Event-ID (or
// ?after=N) gets only what it missed. The stream ends with an "end" event
// when the trace is done.
func (s *Server) traceEvents(w http.ResponseWriter, r *http.Request) error {
	t := s.traces.get(r.PathValue("id"))
	if t == nil {
		return noSuchPath("no trace %q", r.PathValue("id"))
	}
	next := 0
	for _, v := range []string{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("after")} {
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < -1 {
			return badRequest("Last-Event-ID %q: expected an event index", v)
		}
		next = n + 1
	}
	if n := t.count(); next > n {
		return badRequest("event %d does not exist yet: the trace has %d events", next-1, n)
	}
	sse := newSSE(w)
	for {
		events, done, changed := t.since(next)
		for _, e := range events {
			b, _ := json.Marshal(e)
			if err := sse.event(strconv.Itoa(next), string(e.Kind), b); err != nil {
				return nil // the client left
			}
			next++
		}
		if done {
			b, _ := json.Marshal(t.view())
			sse.event("", "end", b)
			return nil
		}
		sse.flush()
		select {
		case <-r.Context().Done():
			sse.event("", "error", errorOf(cutShort(r.Context())).streamed())
			return nil
		case <-changed:
		}
	}
}

// sseWriter writes server-sent events.
type sseWriter struct {
	w http.ResponseWriter
}

func newSSE(w http.ResponseWriter) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return &sseWriter{w: w}
}

// event writes one event; id and name may be empty. data is one line of
// JSON.
func (s *sseWriter) event(id, name string, data []byte) error {
	var b []byte
	if id != "" {
		b = append(b, "id: "+id+"\n"...)
	}
	if name != "" {
		b = append(b, "event: "+name+"\n"...)
	}
	b = append(b, "data: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	s.flush()
	return nil
}

// fail writes err, as OpenAI's error body, as the stream's last event: why
// it ends before its end.
func (s *sseWriter) fail(err error) {
	s.event("", "", errorOf(err).streamed())
}

func (s *sseWriter) flush() {
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}
