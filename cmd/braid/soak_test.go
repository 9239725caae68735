package main

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/braid-dev/braid/engine"
	"github.com/braid-dev/braid/internal/soak"
	"github.com/braid-dev/braid/serve"
	"github.com/braid-dev/braid/task/countdown"
)

// A short soak of an in-process server over a small random model: it
// completes and makes every check; those that do not depend on this
// machine's noise pass, and so do the kinds of malformed request the server
// has always refused.
func TestSoak(t *testing.T) {
	e, err := engine.Open(countdownModelDir(t), engine.Options{CacheBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	srv, err := serve.New(serve.Options{Backend: e, Model: "countdown", Task: countdown.Task{}, Raw: e,
		Stats: func() (int, int) { s := e.Stats(); return s.Running, s.Waiting }})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	code, out, errs := braid(t, "", "soak", "--url", hs.URL, "--duration", "3s", "--settle", "1s", "--clients", "4", "--flood", "vote:k=32",
		"--slow-body-wait", "2s", "--timeout", "20s", "--json")
	if code != 0 && code != 1 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	var rep soak.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Model != "countdown" || rep.Alone.N != soak.Baseline {
		t.Errorf("model %q, %d probes alone answered; want countdown, %d", rep.Model, rep.Alone.N, soak.Baseline)
	}
	results := map[string]string{}
	for _, c := range rep.Checks {
		results[c.Name] = c.Result
		t.Logf("%s %s: %s", c.Result, c.Name, c.Detail)
	}
	for _, f := range rep.Failures {
		t.Log("failure:", f)
	}
	for _, name := range []string{"no crash, no stack trace sent to a client", "well-formed requests answered 200", "server idle after the load"} {
		if results[name] != "PASS" {
			t.Errorf("%s: %q, want PASS", name, results[name])
		}
	}
	if len(rep.Checks) != 6 {
		t.Errorf("%d checks, want 6", len(rep.Checks))
	}
	if _, ok := results["malformed requests refused with a 4xx"]; !ok {
		t.Error("no check of malformed requests")
	}
	for _, k := range rep.Kinds {
		if (k.Kind == "chat direct" || k.Kind == "huge body" || k.Kind == "flood") && k.Requests == 0 {
			t.Errorf("no %s request was sent", k.Kind)
		}
		if (k.Kind == "malformed JSON" || k.Kind == "wrong types" || k.Kind == "huge body") && k.Bad > 0 {
			t.Errorf("%s: %v", k.Kind, k.Outcomes)
		}
	}
	failed := strings.Contains(errs, "checks failed")
	if failed != (code == 1) {
		t.Errorf("exit %d, stderr: %s", code, errs)
	}
}

// braid soak refuses a --url off loopback as bad usage; the package's own
// tests check the addresses it takes and the dials it allows.
func TestSoakIsLoopbackOnly(t *testing.T) {
	for _, u := range []string{"http://example.com:80", "http://10.0.0.1:8080", "http://[::2]:80", "https://127.0.0.1:8443",
		"http://127.0.0.1", "http://127.0.0.1:80/api"} {
		_, errs := expectExit(t, 2, "", "soak", "--url", u, "--duration", "1s")
		if !strings.Contains(errs, "--url") {
			t.Errorf("%s: %s", u, errs)
		}
	}
}
