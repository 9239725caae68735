package serve

import (
	"encoding/json"
	"io/fs"
	"math/rand/v2"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/braid-dev/braid/engine"
	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/models"
	"github.com/braid-dev/braid/tokenizer"
)

// FuzzCompletionOnEngine sends whatever body to /v1/completions over a
// real engine (a small random model with the Countdown tokenizer): every
// number reaches the sampler as a client wrote it. The server answers
// 200 or a 4xx with an error body, never a 5xx, and the engine is still
// serving afterwards: one request must never stop it for the others.
func FuzzCompletionOnEngine(f *testing.F) {
	for _, s := range []string{
		`{"model":"countdown","prompt":"27: 22 26","max_tokens":8,"temperature":1e-320}`,
		`{"model":"countdown","prompt":"27","max_tokens":9223372036854775807,"temperature":0.7,"top_p":0.5}`,
		`{"model":"countdown","prompt":[1,2,3],"max_tokens":4,"temperature":2,"top_k":1,"logprobs":20}`,
		`{"model":"countdown","prompt":"x","max_tokens":4,"temperature":5e-324,"seed":-1,"n":3}`,
		`{"model":"countdown","prompt":"Moving","max_tokens":6,"guided_choice":["a","b"],"temperature":1e-300}`,
		`{"model":"countdown","prompt":"x","max_tokens":3,"top_p":1e-300,"top_k":-1,"stop":["\n",""]}`,
		`{"model":"countdown","prompt":"x","stream":true,"max_tokens":3,"stream_options":{"include_usage":true}}`,
	} {
		f.Add(s)
	}
	e := fuzzEngine(f)
	_, hs := newTestServer(f, Options{Backend: e, Model: "countdown", Raw: e, Timeout: 5 * time.Second, Health: e.Err})
	f.Fuzz(func(t *testing.T, body string) {
		resp, b := post(t, hs.URL+"/v1/completions", "", body)
		if resp.StatusCode >= 500 {
			t.Fatalf("%d for %q: %s", resp.StatusCode, body, clipBody(b))
		}
		if resp.StatusCode != 200 {
			var ae apiError
			if json.Unmarshal(b, &ae) != nil || ae.Error.Message == "" {
				t.Fatalf("%d without an error body for %q: %s", resp.StatusCode, body, clipBody(b))
			}
		}
		if strings.Contains(string(b), "goroutine ") {
			t.Fatalf("a stack trace reached the client for %q: %s", body, clipBody(b))
		}
		if err := e.Err(); err != nil {
			t.Fatalf("the engine stopped after %q: %v", body, err)
		}
	})
}

// fuzzEngine is an engine over a small random model of the Countdown
// model's tokenizer, at a short context.
func fuzzEngine(t testing.TB) *engine.Engine {
	t.Helper()
	data, err := fs.ReadFile(models.FS, path.Join("countdown", engine.TokenizerFile))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(model.Config{Vocab: tok.VocabSize(), Dim: 32, Hidden: 48, Layers: 1, Heads: 2, KVHeads: 2, HeadDim: 16,
		MaxSeq: 64, NormEps: 1e-5, RopeTheta: 10000, TiedEmbeddings: true})
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Init(rand.New(rand.NewPCG(5, 5)), 0.3)
	e, err := engine.New(m, tok, engine.Options{CacheBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}
