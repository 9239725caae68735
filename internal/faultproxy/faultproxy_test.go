package faultproxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestInjectsEachFaultOnItsRequests(t *testing.T) {
	body := strings.Repeat("data: x\n\n", 100)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	defer up.Close()
	h, counts, err := New(up.URL, Faults{Every500: 3, Every429: 5, RetryAfter: time.Second, EveryDrop: 2, DropAfter: 10})
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(h)
	defer proxy.Close()
	type got struct {
		status int
		body   int
		err    bool
	}
	var seen []got
	for range 6 {
		resp, err := http.Get(proxy.URL + "/v1/completions")
		if err != nil {
			seen = append(seen, got{err: true})
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "1" {
			t.Errorf("a 429 with Retry-After %q", resp.Header.Get("Retry-After"))
		}
		seen = append(seen, got{status: resp.StatusCode, body: len(b), err: err != nil})
	}
	// 1 passes, 2 drops, 3 fails, 4 drops, 5 is limited, 6 fails (3 before 2).
	want := []got{{200, len(body), false}, {200, 10, true}, {500, -1, false}, {200, 10, true}, {429, -1, false}, {500, -1, false}}
	for i, w := range want {
		g := seen[i]
		if g.status != w.status || g.err != w.err || w.body >= 0 && g.body != w.body {
			t.Errorf("request %d: %+v, want %+v", i+1, g, w)
		}
	}
	if counts.Requests.Load() != 6 || counts.Injected500.Load() != 2 || counts.Injected429.Load() != 1 || counts.Dropped.Load() != 2 {
		t.Errorf("counts: %s", counts)
	}
	if _, _, err := New("not a url", Faults{}); err == nil {
		t.Error("a bad upstream was accepted")
	}
}
