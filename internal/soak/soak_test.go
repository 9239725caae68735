package soak

import (
	"bytes"
	"strings"
	"testing"
)

func TestLoopbackOnly(t *testing.T) {
	for _, u := range []string{"http://example.com:80", "http://10.0.0.1:8080", "http://[::2]:80", "https://127.0.0.1:8443",
		"http://127.0.0.1", "http://127.0.0.1:80/api"} {
		if b, err := LoopbackBase(u); err == nil {
			t.Errorf("%s was taken as %s", u, b)
		}
	}
	for _, c := range []struct{ url, base string }{
		{"http://127.0.0.2:8080", "http://127.0.0.2:8080"},
		{"http://[::1]:8080/", "http://[::1]:8080"},
		{"http://localhost:1/v1", "http://localhost:1"},
	} {
		if b, err := LoopbackBase(c.url); err != nil || b != c.base {
			t.Errorf("%s: %q, %v; want %q", c.url, b, err, c.base)
		}
	}
	if err := loopbackOnly("tcp", "192.0.2.1:80", nil); err == nil {
		t.Error("a dial to 192.0.2.1 was allowed")
	}
	if err := loopbackOnly("tcp", "127.0.0.1:80", nil); err != nil {
		t.Errorf("a dial to 127.0.0.1: %v", err)
	}
}

func TestStderrWatch(t *testing.T) {
	w := &stderrWatch{addr: make(chan string, 1)}
	for _, s := range []string{"braid serving count", "down on http://127.0.0.1:4321 (no API key); the UI is at /\n",
		"2026/01/01 http: panic serving 127.0.0.1:5: boom\ngoroutine 7 [running]:\n", "fatal error: concurrent map writes"} {
		w.Write([]byte(s))
	}
	if got := <-w.addr; got != "127.0.0.1:4321" {
		t.Errorf("address %q", got)
	}
	if got := w.crashLines(); len(got) != 3 || !strings.HasPrefix(got[2], "fatal error") {
		t.Errorf("crash lines %q", got)
	}
}

// How a stream ended is read from its last event's beginning, however the
// body was split into reads and however long that event is: a trace's
// "end" event carries the whole trace, far more than any kept tail.
func TestStreamEnd(t *testing.T) {
	long := strings.Repeat("x", 20000)
	for _, c := range []struct {
		body string
		ends bool
	}{
		{"id: 0\nevent: token\ndata: {}\n\nevent: end\ndata: {\"tree\":\"" + long + "\"}\n\n", true},
		{"data: {\"a\":1}\n\ndata: [DONE]\n\n\n", true},
		{"data: {\"a\":1}\n\ndata: [DONE]", true},
		{"event: end\ndata: {}\n\nevent: token\ndata: {\"text\":\"" + long + "\"}\n\n", false},
		{"id: 3\nevent: token\ndata: {\"text\":\"" + long, false},
		{"event: error\ndata: {\"error\":\"event: end\"}\n\n", false},
		{"", false},
	} {
		for _, size := range []int{1, 2, 7, 4096, len(c.body) + 1} {
			var k keptBody
			for b := []byte(c.body); len(b) > 0; b = b[min(size, len(b)):] {
				k.Write(b[:min(size, len(b))])
			}
			if got := k.endsWith("data: [DONE]", "event: end"); got != c.ends {
				t.Errorf("%.60q in writes of %d: ended %v, want %v (last event %q)", c.body, size, got, c.ends, k.lastEvent())
			}
		}
	}
}

// The verdict on a body does not depend on how it was split into writes.
func FuzzStreamEnd(f *testing.F) {
	f.Add([]byte("event: end\ndata: {}\n\n"), uint8(3))
	f.Add([]byte("data: x\n\n\n\ndata: [DONE]\n"), uint8(1))
	f.Fuzz(func(t *testing.T, body []byte, size uint8) {
		var whole, split keptBody
		whole.Write(body)
		n := int(size%64) + 1
		for b := body; len(b) > 0; b = b[min(n, len(b)):] {
			split.Write(b[:min(n, len(b))])
		}
		if !bytes.Equal(whole.lastEvent(), split.lastEvent()) {
			t.Errorf("last event %q whole, %q in writes of %d", whole.lastEvent(), split.lastEvent(), n)
		}
	})
}
