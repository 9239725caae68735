package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A backend given with a user's password and a key in its query gets them
// on every request, while the database, the output and the messages never
// hold them; the same command with a rotated key resumes its run.
func TestEvalKeepsNoCredentials(t *testing.T) {
	t.Setenv("BRAID_API_KEY", "")
	t.Setenv("OPENAI_API_KEY", "")
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pw, _ := r.BasicAuth()
		seen = append(seen, r.URL.Path+" "+r.URL.Query().Get("api_key")+" "+user+":"+pw)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"text\":\"so \\\\boxed{4}\",\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	}))
	defer srv.Close()
	backendURL := func(pw, key string) string {
		return strings.Replace(srv.URL, "://", "://user:"+pw+"@", 1) + "/v1?api_key=" + key
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "braid.db")
	in := `{"text":"What is 2+2?","answer":"4"}` + "\n"
	args := []string{"eval", "--task", "math", "--input", "-", "--strategies", "serial", "--db", db, "--json"}
	out, errs := expectExit(t, 0, in, append(args, "--backend", backendURL("s3cretpw", "k3ysecret"))...)
	if len(seen) != 1 || seen[0] != "/v1/chat/completions k3ysecret user:s3cretpw" || !strings.Contains(out, `"correct": true`) {
		t.Errorf("the server saw %q; output %s", seen, out)
	}
	_, again := expectExit(t, 0, in, append(args, "--backend", backendURL("n3wpw", "n3wkey"))...)
	if evalRunID(again) != evalRunID(errs) || len(seen) != 1 {
		t.Errorf("a rotated key: run %s after %s, %d requests", evalRunID(again), evalRunID(errs), len(seen))
	}
	var stored strings.Builder // the database's files, WAL included
	files, _ := filepath.Glob(db + "*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		stored.Write(b)
	}
	if !strings.Contains(stored.String(), "user:xxxxx@127.0.0.1") {
		t.Errorf("the database does not hold the run's backend, credentials hidden")
	}
	for name, text := range map[string]string{"the output": out, "the messages": errs + again, "the database": stored.String()} {
		for _, s := range []string{"s3cretpw", "k3ysecret", "n3wpw", "n3wkey"} {
			if strings.Contains(text, s) {
				t.Errorf("%s holds %q", name, s)
			}
		}
	}
}
