package reason

import (
	"sync"
	"time"

	"github.com/braid-dev/braid/backend"
)

// EventKind says what happened.
type EventKind string

const (
	ThreadStarted  EventKind = "thread_started"
	ThreadDelta    EventKind = "delta"
	ThreadFinished EventKind = "thread_finished"
	AnswerReady    EventKind = "answer"
)

// Event is one step of a strategy's run, for streaming it as it happens:
// threads starting, their text as it is generated, threads finishing, the
// answer.
type Event struct {
	Kind EventKind `json:"kind"`
	// Thread names the thread ("0", "0,1" for a Countdown child,
	// "sample 3" for a sample); Parent its parent, "" for a root.
	Thread string `json:"thread,omitempty"`
	Parent string `json:"parent,omitempty"`
	// Text is the delta's text, or the answer.
	Text string `json:"text,omitempty"`
	// Tokens counts the delta's tokens, or a finished thread's.
	Tokens int `json:"tokens,omitempty"`
}

// Observer receives a run's events. Threads run concurrently: an observer
// is called from many goroutines and must be safe for that.
type Observer func(Event)

// serialized wraps an observer so that it is called by one goroutine at a
// time, in the order the events happened; nil stays nil.
func serialized(o Observer) Observer {
	if o == nil {
		return nil
	}
	var mu sync.Mutex
	return func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		o(e)
	}
}

func (o Observer) emit(e Event) {
	if o != nil {
		o(e)
	}
}

// stream returns the OnChunk of a thread's requests: its deltas as events.
func (o Observer) stream(thread, parent string) func(backend.Chunk) {
	if o == nil {
		return nil
	}
	return func(c backend.Chunk) {
		o(Event{Kind: ThreadDelta, Thread: thread, Parent: parent, Text: c.Text, Tokens: len(c.Tokens)})
	}
}

// under names a run's threads within a larger run: thread "0" of sample 3
// becomes "sample 3/0", and a root thread's parent becomes root, so that
// the threads of several runs make one tree.
func (o Observer) under(prefix, root string) Observer {
	if o == nil {
		return nil
	}
	return func(e Event) {
		if e.Kind == AnswerReady {
			return // one run's answer is not the whole's
		}
		if e.Thread != "" {
			e.Thread = prefix + "/" + e.Thread
		}
		if e.Parent != "" {
			e.Parent = prefix + "/" + e.Parent
		} else {
			e.Parent = root
		}
		o(e)
	}
}

// begin starts a thread of a run: it tells observe, and done records the
// thread's wall time and tells observe it finished, with its tokens.
func begin(observe Observer, node, parent string) (t *Thread, done func()) {
	start := time.Now()
	t = &Thread{Node: node, Started: start}
	observe.emit(Event{Kind: ThreadStarted, Thread: node, Parent: parent})
	return t, func() {
		t.Wall = time.Since(start)
		t.WallMS = t.Wall.Milliseconds()
		observe.emit(Event{Kind: ThreadFinished, Thread: node, Parent: parent, Tokens: t.Tokens})
	}
}
