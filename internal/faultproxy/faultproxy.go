// Package faultproxy is a reverse proxy that injects the faults a client
// of an OpenAI-compatible server must survive: 500s, 429s that say when to
// retry, and connections dropped partway through a stream, each on every
// Nth request. braid's own tests and `braid bench proxy` put it between a
// client and a server to measure what the faults cost.
package faultproxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// Faults says which requests fail, and how. A request number divisible
// by several of the Every fields gets the first fault of 500, 429, drop.
type Faults struct {
	// Every500 answers every Nth request with a 500 (0: never).
	Every500 int
	// Every429 answers every Nth request with a 429 whose Retry-After is
	// RetryAfter (0: never).
	Every429   int
	RetryAfter time.Duration
	// EveryDrop forwards every Nth request and drops the connection after
	// DropAfter bytes of its answer (0: never).
	EveryDrop int
	DropAfter int64
}

// Counts are the requests a proxy saw and the faults it injected.
type Counts struct {
	Requests, Injected500, Injected429, Dropped atomic.Int64
}

// String says what the proxy did.
func (c *Counts) String() string {
	return fmt.Sprintf("%d requests: %d answered 500, %d answered 429, %d dropped", c.Requests.Load(), c.Injected500.Load(),
		c.Injected429.Load(), c.Dropped.Load())
}

// New returns a proxy to upstream (a base URL such as
// http://127.0.0.1:8080) that injects f, and its counts.
func New(upstream string, f Faults) (http.Handler, *Counts, error) {
	u, err := url.Parse(upstream)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, nil, fmt.Errorf("faultproxy: upstream %q: want a URL such as http://127.0.0.1:8080", upstream)
	}
	if f.Every500 < 0 || f.Every429 < 0 || f.EveryDrop < 0 || f.RetryAfter < 0 || f.DropAfter < 0 {
		return nil, nil, fmt.Errorf("faultproxy: negative fault settings %+v", f)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1 // streams pass through as they come
	c := &Counts{}
	every := func(n int64, k int) bool { return k > 0 && n%int64(k) == 0 }
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := c.Requests.Add(1)
		switch {
		case every(n, f.Every500):
			c.Injected500.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"error":{"message":"injected by faultproxy","type":"server_error"}}`)
		case every(n, f.Every429):
			c.Injected429.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", strconv.Itoa(int(f.RetryAfter.Round(time.Second)/time.Second)))
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":{"message":"slow down (faultproxy)","type":"rate_limit_error"}}`)
		case every(n, f.EveryDrop):
			c.Dropped.Add(1)
			rp.ServeHTTP(&dropper{ResponseWriter: w, left: f.DropAfter}, r)
		default:
			rp.ServeHTTP(w, r)
		}
	})
	return h, c, nil
}

// dropper passes the first left bytes of an answer, then closes the
// connection under it.
type dropper struct {
	http.ResponseWriter
	left    int64
	dropped bool
}

func (d *dropper) Write(p []byte) (int, error) {
	if d.dropped {
		return 0, http.ErrAbortHandler
	}
	if int64(len(p)) > d.left {
		n, _ := d.ResponseWriter.Write(p[:d.left])
		d.drop()
		return n, http.ErrAbortHandler
	}
	d.left -= int64(len(p))
	return d.ResponseWriter.Write(p)
}

func (d *dropper) Flush() {
	if f, ok := d.ResponseWriter.(http.Flusher); ok && !d.dropped {
		f.Flush()
	}
}

// drop closes the connection: the client sees its stream end mid-way.
func (d *dropper) drop() {
	d.Flush()
	d.dropped = true
	if conn, _, err := http.NewResponseController(d.ResponseWriter).Hijack(); err == nil {
		conn.Close()
	}
}
