package remote

import "strings"

// How a request asks for its stop strings. A caller must learn which stop
// string ended a completion (a format's fork and branch ends are stop
// strings), and servers differ: vLLM names it (stop_reason) and keeps it
// in the text when asked (include_stop_str_in_output), SGLang keeps it
// when asked (no_stop_trim); llama.cpp's server trims it and names none,
// so that a stop cannot be told from the end of sequence.
type stopsAsk int

const (
	// stopsNamed sends the stops; the server names the one that ended a
	// completion (the n-sample requests, and those with an environment).
	stopsNamed stopsAsk = iota
	// stopsKept sends the stops and asks that the server keep the one
	// that ended the completion in the text, where the client finds it;
	// it also asks llama.cpp for its timings with every event, which name
	// the server at its first event (errStopsUnsaid).
	stopsKept
	// stopsFound sends none: the client finds them in the text and cuts
	// the stream there (for a server that would trim them unnamed).
	stopsFound
)

// stopScan finds a request's stop strings in streamed text, holding back
// a tail that may be the start of one.
type stopScan struct {
	stops []string
	held  string
}

// next takes an event's text and returns the text that is certainly
// before any stop string, and the stop string it found, if any (the text
// after it is dropped).
func (s *stopScan) next(text string) (string, string) {
	buf := s.held + text
	at, found := -1, ""
	for _, st := range s.stops {
		if i := strings.Index(buf, st); i >= 0 && (at < 0 || i < at) {
			at, found = i, st
		}
	}
	if at >= 0 {
		s.held = ""
		return buf[:at], found
	}
	keep := 0
	for _, st := range s.stops {
		for n := min(len(st)-1, len(buf)); n > keep; n-- {
			if strings.HasSuffix(buf, st[:n]) {
				keep = n
				break
			}
		}
	}
	s.held = buf[len(buf)-keep:]
	return buf[:len(buf)-keep], ""
}

// flush returns the text held back, at the end of the stream.
func (s *stopScan) flush() string {
	h := s.held
	s.held = ""
	return h
}
