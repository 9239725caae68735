package soak

import (
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
