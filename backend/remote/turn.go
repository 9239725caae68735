package remote

import "github.com/braid-dev/braid/backend"

// turn is a completion's environment across the calls of stop and
// continue. Where the environment would write, the stream is not cut at
// once: its text becomes due, and a model that writes that text itself
// (as a model trained on the environment's traces mostly does) goes on in
// the same call. Only a model that writes something else is cut, and the
// environment's text written for it in a new call. Each cut costs a
// server a new request, a prefill of the text so far, and (where a cut
// races the server's own cancelling) a slot without that text cached.
type turn struct {
	env backend.Environment
	// due is the environment's text the model is expected to write next,
	// agreed how much of it the model has written so far.
	due    string
	agreed int
	// Events are about a token each: modelEvents carried the model's own
	// text, dueEvents only text the environment had determined (run
	// counts those of the due text not yet complete). kept counts the
	// events of the current attempt whose text the thread keeps.
	modelEvents, dueEvents, run, kept int
}

// restart readies the turn for a new attempt, whose model writes any due
// text afresh.
func (t *turn) restart() { t.agreed, t.run, t.kept = 0, 0, 0 }

// verdict is what an event's text means for the call reading it.
type verdict int

const (
	goOn    verdict = iota
	cutDue          // the model left the environment's text: write it, and continue in a new call
	cutDone         // the environment is done: what follows is not the thread's
	cutErr          // the environment rejected what the model wrote
)

// feed takes one event's text, emitting the model's part and each due
// text the model completed.
func (t *turn) feed(text string, toks []backend.Token, emit func(backend.Chunk)) (verdict, error) {
	model, due, completed := false, false, false
	defer func() {
		if model {
			t.modelEvents++
			t.kept++
		} else if due {
			t.run++
		}
		if completed {
			t.dueEvents += t.run
			t.kept += t.run
			t.run = 0
		}
	}()
	start := 0 // the model's text from here is not emitted yet
	for i := 0; i < len(text); i++ {
		if t.due != "" {
			if text[i] != t.due[t.agreed] {
				return cutDue, nil
			}
			due = true
			if t.agreed++; t.agreed < len(t.due) {
				continue
			}
			emit(backend.Chunk{Text: t.due})
			t.due, t.agreed, start, completed = "", 0, i+1, true
			if t.env.Done() {
				return cutDone, nil
			}
			continue
		}
		model = true
		fill, err := t.env.Next(text[i : i+1])
		switch {
		case err != nil:
			emit(backend.Chunk{Text: text[start : i+1]})
			return cutErr, err
		case fill != "":
			emit(backend.Chunk{Text: text[start : i+1]})
			t.due, t.agreed, start = fill, 0, i+1
		case t.env.Done():
			// The thread is complete; what follows is not.
			emit(backend.Chunk{Text: text[start : i+1]})
			return cutDone, nil
		}
	}
	if start == 0 && !due {
		emit(backend.Chunk{Text: text, Tokens: toks})
	} else if start < len(text) && t.due == "" {
		emit(backend.Chunk{Text: text[start:]})
	}
	return goOn, nil
}

// take returns the due text for the caller to write, and clears it.
func (t *turn) take() string {
	d := t.due
	t.due, t.agreed, t.run = "", 0, 0
	return d
}
