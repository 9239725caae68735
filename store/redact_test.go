package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/braid-dev/braid/internal/storetest"
)

func TestRedact(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"database password", "postgres://braid:s3cret@db:5432/braid", "postgres://braid:xxxxx@db:5432/braid"},
		{"password parameter", "postgres://db/braid?user=braid&password=s3cret", "postgres://db/braid?user=braid&password=xxxxx"},
		{"user alone", "postgres://braid@db/braid", "postgres://braid@db/braid"},
		{"empty password", "http://braid:@db/v1", "http://braid:@db/v1"},
		{"a file", "runs/braid.db", "runs/braid.db"},
		{"backend with user and key", "http://user:pw@host:8000/v1?api_key=k&api-version=2024-02-01",
			"http://user:xxxxx@host:8000/v1?api_key=xxxxx&api-version=2024-02-01"},
		{"a run's backends and model", "http://a:1@h1/v1,https://h2/v1?token=t2 qwen",
			"http://a:xxxxx@h1/v1,https://h2/v1?token=xxxxx qwen"},
		{"secret names", "https://h/?Key=1&X-Amz-Signature=2&X-Amz-Credential=3&client_secret=4&sig=5&subscription-key=6&access_token=7&n=8",
			"https://h/?Key=xxxxx&X-Amz-Signature=xxxxx&X-Amz-Credential=xxxxx&client_secret=xxxxx&sig=xxxxx&subscription-key=xxxxx&access_token=xxxxx&n=8"},
		{"fragment token", "https://h/cb#access_token=t&state=s", "https://h/cb#access_token=xxxxx&state=s"},
		{"query then fragment", "https://h/?token=t#id_token=u", "https://h/?token=xxxxx#id_token=xxxxx"},
		{"'@' in the path is no user", "http://h:8000/a@b:c", "http://h:8000/a@b:c"},
		// Nothing to hide: the text as written, not respelled by a parser.
		{"unusual spelling kept", "HTTP://Host:80/a%2Fb/?x=1&&y&z=#frag", "HTTP://Host:80/a%2Fb/?x=1&&y&z=#frag"},
		{"prose", "see http://example.com, then :// alone", "see http://example.com, then :// alone"},
	} {
		if got := Redact(c.in); got != c.want {
			t.Errorf("%s: Redact(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
}

// A JSON document is rewritten only in the strings that held credentials:
// one without keeps its bytes, so that its run keeps its id.
func TestRedactJSON(t *testing.T) {
	plain := []byte(`{"model":"http://h/v1?a=1\u0026b=2 m","problems":[{"text":"\"://\" and \\ stay"}],"n":0.50}`)
	if got := redactJSON(plain); !bytes.Equal(got, plain) {
		t.Errorf("a document without credentials became %s", got)
	}
	doc := []byte(`{"a":"x","model":"http://u:pw@h/v1?api_key=k\u0026b=\u003c2\u003e m","z":[1]}`)
	want := `{"a":"x","model":"http://u:xxxxx@h/v1?api_key=xxxxx\u0026b=\u003c2\u003e m","z":[1]}`
	if got := redactJSON(doc); string(got) != want {
		t.Errorf("redactJSON = %s, want %s", got, want)
	}
}

// A run's id hashes its configuration with credentials hidden: a run
// without any keeps the id it always had (json.Encoder's output hashed),
// another key resumes the same run, and anything else that names the
// server (host, user, path, other parameters, model) still tells runs
// apart.
func TestRunID(t *testing.T) {
	type config struct {
		Task  string `json:"task"`
		Model string `json:"model"`
	}
	id := func(model string) string {
		t.Helper()
		s, err := RunID(config{"math", model})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	plain := config{"math", "http://h/v1?api-version=1 m"}
	var legacy bytes.Buffer
	json.NewEncoder(&legacy).Encode(plain)
	sum := sha256.Sum256(legacy.Bytes())
	if got, want := id(plain.Model), hex.EncodeToString(sum[:])[:12]; got != want {
		t.Errorf("a run without credentials: id %s, was %s", got, want)
	}
	base := id("http://u:pw1@h/v1?api_key=k1 m")
	if got := id("http://u:pw2@h/v1?api_key=k2 m"); got != base {
		t.Errorf("another password and key: run %s, not %s", got, base)
	}
	for _, other := range []string{"http://u:pw1@h2/v1?api_key=k1 m", "http://v:pw1@h/v1?api_key=k1 m", "http://u@h/v1?api_key=k1 m",
		"http://u:pw1@h/v2?api_key=k1 m", "http://u:pw1@h/v1?api_key=k1&api-version=2 m", "http://u:pw1@h/v1?api_key=k1 m2", "http://h/v1 m"} {
		if id(other) == base {
			t.Errorf("%q shares the run of %q", other, "http://u:pw1@h/v1?api_key=k1 m")
		}
	}
}

// The database never holds a run's credentials: StartRun stores the
// configuration without them, Runs hides those an older braid stored, and
// resuming such a run rewrites it without them.
func TestRunsHoldNoCredentials(t *testing.T) {
	for name, target := range storetest.Targets(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, target())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			cfg := map[string]any{"strategies": []string{"serial"}, "model": "http://user:s3cretpw@h/v1?api_key=k3ysecret m"}
			if err := s.StartRun(ctx, "new", cfg); err != nil {
				t.Fatal(err)
			}
			old := `{"model":"http://user:s3cretpw@h/v1?api_key=k3ysecret m","strategies":["serial"]}`
			if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO runs (id, created, config) VALUES (?, ?, ?)`), "old", "2026-01-01T00:00:00Z", old); err != nil {
				t.Fatal(err)
			}
			stored := func(id string) string {
				t.Helper()
				var c string
				if err := s.db.QueryRowContext(ctx, s.q(`SELECT config FROM runs WHERE id = ?`), id).Scan(&c); err != nil {
					t.Fatal(err)
				}
				return c
			}
			const want = `{"model":"http://user:xxxxx@h/v1?api_key=xxxxx m","strategies":["serial"]}`
			if got := stored("new"); got != want {
				t.Errorf("stored %s, want %s", got, want)
			}
			runs, err := s.Runs(ctx)
			if err != nil || len(runs) != 2 {
				t.Fatalf("runs %v, %v", runs, err)
			}
			for _, r := range runs {
				if string(r.Config) != want {
					t.Errorf("run %s read back as %s", r.ID, r.Config)
				}
			}
			err = s.StartRun(ctx, "old", map[string]any{"strategies": []string{"apr"}, "model": "http://user:s3cretpw@h/v1?api_key=k3ysecret m"})
			if err == nil || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("another grid on the old run: %v", err)
			}
			if err := s.StartRun(ctx, "old", cfg); err != nil {
				t.Fatalf("resuming the old run: %v", err)
			}
			if got := stored("old"); got != want {
				t.Errorf("the resumed old run is stored as %s", got)
			}
		})
	}
}
