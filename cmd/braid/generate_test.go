package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/braid-dev/braid/engine"
	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/models"
	"github.com/braid-dev/braid/store"
	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/task/countdown"
	taskmath "github.com/braid-dev/braid/task/math"
	"github.com/braid-dev/braid/tokenizer"
)

// tinyModelDir writes a small random model with a trained tokenizer.
func tinyModelDir(t *testing.T) string {
	t.Helper()
	tok, err := tokenizer.Train(context.Background(), slices.Values([]string{"hello world, hello braid", "27 22 26 31 53"}), 280, []string{"<|end|>"})
	if err != nil {
		t.Fatal(err)
	}
	return randomModelDir(t, tok, 128)
}

// randomModelDir writes a model directory: tok and a small model of its
// vocabulary with random weights and a context of maxSeq.
func randomModelDir(t *testing.T, tok *tokenizer.Tokenizer, maxSeq int) string {
	t.Helper()
	dir := t.TempDir()
	if err := tok.Save(filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Fatal(err)
	}
	m, err := model.New(model.Config{Vocab: tok.VocabSize(), Dim: 32, Hidden: 64, Layers: 2, Heads: 2, KVHeads: 2, HeadDim: 16,
		MaxSeq: maxSeq, NormEps: 1e-5, RopeTheta: 10000, TiedEmbeddings: true})
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Init(rand.New(rand.NewPCG(1, 1)), 0.5)
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestGenerateCommand(t *testing.T) {
	dir := tinyModelDir(t)
	out, errs := expectExit(t, 0, "", "generate", "--model", dir, "--max-tokens", "12", "--seed", "3", "--temperature", "0.9", "hello")
	if !strings.Contains(errs, "12 generated (length)") || !strings.Contains(errs, "seed 3") {
		t.Errorf("stderr: %s", errs)
	}
	again, _ := expectExit(t, 0, "", "generate", "--model", dir, "--max-tokens", "12", "--seed", "3", "--temperature", "0.9", "--quiet", "hello")
	if again != out {
		t.Errorf("the same seed printed %q, then %q", out, again)
	}
	if models.Has(models.Countdown) {
		// Without --model, the embedded model continues the prompt.
		_, errs = expectExit(t, 0, "", "generate", "--max-tokens", "5", "hello")
		if !strings.Contains(errs, "5 generated") {
			t.Errorf("the embedded model: %s", errs)
		}
	} else {
		_, errs = expectExit(t, 2, "", "generate", "hello")
		if !strings.Contains(errs, "--model") {
			t.Errorf("without a model: %s", errs)
		}
	}
	_, errs = expectExit(t, 1, "", "generate", "--model", filepath.Join(dir, "missing"), "hello")
	if !strings.Contains(errs, "missing") {
		t.Errorf("missing model directory: %s", errs)
	}
	_, errs = expectExit(t, 2, "", "generate", "--model", dir, "--top-p", "1.5", "hello")
	if !strings.Contains(errs, "top-p") {
		t.Errorf("bad top-p: %s", errs)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errs = expectExit(t, 1, "", "generate", "--model", dir, "hello")
	if !strings.Contains(errs, "tokenizer.json") {
		t.Errorf("broken tokenizer: %s", errs)
	}
}

func TestBenchDecodeJSON(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(`{"model_type":"llama","vocab_size":300,"hidden_size":32,"intermediate_size":64,
		"num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":1,"max_position_embeddings":256}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := expectExit(t, 0, "", "bench", "decode", "--config", cfg, "--threads", "1,3", "--prompt", "5", "--tokens", "6",
		"--prefix", "40", "--children", "4", "--suffix", "10", "--weights", "f32", "--rounds", "3", "--json")
	var rep struct {
		Weights string `json:"weights"`
		Rounds  int    `json:"rounds"`
		Decode  []struct {
			Threads      int     `json:"threads"`
			TokensPerSec float64 `json:"tokens_per_s"`
		} `json:"decode"`
		Prefill    []struct{ Threads int } `json:"prefill"`
		ForkMemory struct {
			Children         int     `json:"children"`
			ForkedBytes      int64   `json:"forked_bytes"`
			IndependentBytes int64   `json:"independent_bytes"`
			Ratio            float64 `json:"forked_over_one_thread_plus_suffixes"`
		} `json:"fork_memory"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Weights != "f32" || rep.Rounds != 3 {
		t.Errorf("weights %q, rounds %d; want f32, 3", rep.Weights, rep.Rounds)
	}
	if len(rep.Decode) != 2 || rep.Decode[0].Threads != 1 || rep.Decode[1].Threads != 3 || rep.Decode[1].TokensPerSec <= 0 || len(rep.Prefill) != 2 {
		t.Errorf("decode: %+v", rep.Decode)
	}
	fm := rep.ForkMemory
	if fm.Children != 4 || fm.ForkedBytes <= 0 || fm.IndependentBytes <= fm.ForkedBytes || fm.Ratio < 1 {
		t.Errorf("fork memory: %+v", fm)
	}
	_, errs := expectExit(t, 2, "", "bench", "decode", "--config", cfg, "--prompt", "250", "--tokens", "10")
	if !strings.Contains(errs, "256 positions") {
		t.Errorf("over-long prompt: %s", errs)
	}
	if _, errs := expectExit(t, 2, "", "bench", "decode", "--config", cfg, "--rounds", "0"); !strings.Contains(errs, "--rounds") {
		t.Errorf("--rounds 0: %s", errs)
	}
}

// --depths decodes at each depth of the context in turn, past the model's
// own positions with --context, and says so in the table.
func TestBenchDecodeDepths(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(`{"model_type":"llama","vocab_size":300,"hidden_size":32,"intermediate_size":64,
		"num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":1,"max_position_embeddings":64}`), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"bench", "decode", "--config", cfg, "--threads", "1,2", "--depths", "8,100", "--context", "128", "--tokens", "4",
		"--children", "0", "--rounds", "1"}
	out, _ := expectExit(t, 0, "", append(args, "--json")...)
	var rep struct {
		Context int `json:"context"`
		Decode  []struct{ Threads int }
		Depths  []struct {
			Depth  int `json:"depth"`
			Decode []struct {
				Threads      int     `json:"threads"`
				TokensPerSec float64 `json:"tokens_per_s"`
			} `json:"decode"`
		} `json:"depths"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Context != 128 || rep.Decode != nil || len(rep.Depths) != 2 || rep.Depths[0].Depth != 8 || rep.Depths[1].Depth != 100 ||
		len(rep.Depths[1].Decode) != 2 || rep.Depths[1].Decode[1].Threads != 2 || !(rep.Depths[1].Decode[1].TokensPerSec > 0) {
		t.Errorf("report %s", out)
	}
	table, _ := expectExit(t, 0, "", args...)
	if !strings.Contains(table, "context 128; D-token prompts") || !strings.Contains(table, "depth D") {
		t.Errorf("table:\n%s", table)
	}
	// Past --context, or past the model's own positions without it.
	for _, bad := range [][]string{{"--depths", "8,126", "--context", "128"}, {"--depths", "8,62"}, {"--depths", "0"}, {"--depths", "8,x"}} {
		if _, errs := expectExit(t, 2, "", append([]string{"bench", "decode", "--config", cfg, "--tokens", "4"}, bad...)...); !strings.Contains(errs, "--depths") {
			t.Errorf("%v: %s", bad, errs)
		}
	}
}

func TestSolveCommandWithAModel(t *testing.T) {
	dir := tinyModelDir(t)
	out, _ := expectExit(t, 1, "", "solve", "--model", dir, "--max-tokens", "30", "27", "22", "26", "31", "53")
	for _, want := range []string{"strategy apr, env constrain", "thread", "#0"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	in := `{"numbers":[22,26,31,53],"target":27}` + "\n" + `{"numbers":[1,2,3,4],"target":24}` + "\n"
	out, errs := expectExit(t, 0, in, "solve", "--model", dir, "--input", "-", "--json", "--strategy", "serial", "--env", "fill", "--max-tokens", "20")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines:\n%s", len(lines), out)
	}
	var o struct {
		Answer  string `json:"answer"`
		Correct bool   `json:"correct"`
		Env     string `json:"env"`
		Usage   struct {
			Total    int `json:"total_tokens"`
			Critical int `json:"critical_path_tokens"`
			Threads  int `json:"threads"`
		} `json:"usage"`
		WallMS *int64 `json:"wall_ms"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &o); err != nil {
		t.Fatal(err)
	}
	if o.Env != "fill" || o.Usage.Threads != 1 || o.Usage.Total == 0 || o.Usage.Critical != o.Usage.Total || o.WallMS == nil {
		t.Errorf("first line: %s", lines[0])
	}
	if !strings.Contains(errs, "serial, env fill: ") || !strings.Contains(errs, "of 2 correct") {
		t.Errorf("summary: %s", errs)
	}
	_, errs = expectExit(t, 2, "", "solve", "--model", dir, "--strategy", "wide", "27", "22", "26", "31", "53")
	if !strings.Contains(errs, "direct, serial, apr") {
		t.Errorf("bad strategy: %s", errs)
	}
	_, errs = expectExit(t, 2, "", "solve", "--model", dir, "--env", "on", "27", "22", "26", "31", "53")
	if !strings.Contains(errs, "off, fill or constrain") {
		t.Errorf("bad env: %s", errs)
	}
}

// The README's first command: the embedded model searches in parallel and
// the verifier confirms its answer.
func TestSolveOnTheEmbeddedModel(t *testing.T) {
	if !models.Has(models.Countdown) {
		_, errs := expectExit(t, 2, "", "solve", "27", "22", "26", "31", "53")
		if !strings.Contains(errs, "--model") {
			t.Errorf("without a model: %s", errs)
		}
		return
	}
	if testing.Short() {
		t.Skip("decodes with the embedded model for several seconds")
	}
	out, _ := expectExit(t, 0, "", "solve", "27", "22", "26", "31", "53")
	line, _, _ := strings.Cut(out, "\n")
	expr, ok := strings.CutPrefix(line, "answer: ")
	expr, _, _ = strings.Cut(expr, " = ")
	if !ok || !strings.HasSuffix(line, "= 27 (correct)") {
		t.Fatalf("first line %q, want the answer marked correct:\n%s", line, out)
	}
	if err := countdown.VerifyAnswer(countdown.Problem{Numbers: []int{22, 26, 31, 53}, Target: 27}, expr); err != nil {
		t.Errorf("the verifier disagrees with %q: %v", expr, err)
	}
	if !strings.Contains(out, "strategy apr, env constrain") || !strings.Contains(out, "\n  #") {
		t.Errorf("the output names no strategy and setting, or no child thread:\n%s", out)
	}
}

func TestSolveSamples(t *testing.T) {
	dir := tinyModelDir(t)
	in := `{"numbers":[22,26,31,53],"target":27}` + "\n"
	out, errs := expectExit(t, 0, in, "solve", "--model", dir, "--input", "-", "--samples", "3", "--temperature", "1", "--max-tokens", "20", "--strategy", "direct")
	var o struct {
		Samples int      `json:"samples"`
		Answers []string `json:"answers"`
		PassAt1 *float64 `json:"pass@1"`
	}
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if o.Samples != 3 || len(o.Answers) != 3 || o.PassAt1 == nil || !strings.Contains(errs, "pass@3") || !strings.Contains(errs, "cons@3") {
		t.Errorf("output %s, summary %s", out, errs)
	}
	_, errs = expectExit(t, 2, in, "solve", "--model", dir, "--input", "-", "--samples", "3")
	if !strings.Contains(errs, "--temperature") {
		t.Errorf("greedy samples: %s", errs)
	}
}

func TestSolveOnARemoteBackend(t *testing.T) {
	var prompts []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Prompt string `json:"prompt"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		prompts = append(prompts, req.Prompt)
		w.Header().Set("Content-Type", "text/event-stream")
		// A model that gives up at once.
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"text\":\"No solution found.\\n\",\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	}))
	defer srv.Close()
	out, _ := expectExit(t, 1, "", "solve", "--backend", srv.URL+"/v1", "--env", "off", "27", "22", "26", "31", "53")
	if !strings.Contains(out, "no answer") || len(prompts) != 1 || !strings.HasPrefix(prompts[0], "Mode: parallel\nMoving to Node #0\n") {
		t.Errorf("output %s; prompts %q", out, prompts)
	}
	_, errs := expectExit(t, 2, "", "solve", "--backend", srv.URL+"/v1", "--env", "fill", "--model", "x", "27", "22", "26", "31", "53")
	if !strings.Contains(errs, "exclude") {
		t.Errorf("--model with --backend: %s", errs)
	}
	_, errs = expectExit(t, 2, "", "solve", "--backend", srv.URL+"/v1", "27", "22", "26", "31", "53")
	if !strings.Contains(errs, "--guided-choice") {
		t.Errorf("constrain without guided choice on a server: %s", errs)
	}
	// A server that keeps failing makes that problem an error, not the run.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"message":"no such model"}}`)
	}))
	defer bad.Close()
	in := `{"numbers":[22,26,31,53],"target":27}` + "\n" + `{"numbers":[1,2,3,4],"target":24}` + "\n"
	out, _ = expectExit(t, 0, in, "solve", "--backend", bad.URL+"/v1", "--env", "off", "--input", "-", "--json")
	if n := strings.Count(out, `"error":"remote: HTTP 400: no such model"`); n != 2 {
		t.Errorf("%d problems report the server's error:\n%s", n, out)
	}
}

func TestSolveMathOnARemoteBackend(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Messages []struct{ Content string } `json:"messages"`
			Prompt   string                     `json:"prompt"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		answer := "4"
		for _, m := range req.Messages {
			req.Prompt += m.Content
		}
		if strings.Contains(req.Prompt, "half") {
			answer = `\\frac{1}{2}`
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"text\":\"so \\\\boxed{%s}\",\"delta\":{\"content\":\"so \\\\boxed{%s}\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n", answer, answer)
	}))
	defer srv.Close()
	out, _ := expectExit(t, 0, "", "solve", "--task", "math", "--backend", srv.URL+"/v1", "--strategy", "vote:k=3", "--temperature", "1", "What is 2+2?")
	if !strings.HasPrefix(out, "answer: 4 (not verified") || !strings.Contains(out, "3 threads") {
		t.Errorf("output %q", out)
	}
	in := `{"text":"What is 2+2?","answer":"4"}` + "\n" + `{"text":"What is one half?","answer":"0.5"}` + "\n"
	out, errs := expectExit(t, 0, in, "solve", "--task", "math", "--backend", srv.URL+"/v1", "--input", "-", "--json")
	if strings.Count(out, `"correct":true`) != 2 || !strings.Contains(errs, "2 of 2 correct") {
		t.Errorf("output %s; summary %s", out, errs)
	}
	_, errs = expectExit(t, 2, "", "solve", "--task", "math", "--backend", srv.URL+"/v1", "--strategy", "vote", "x")
	if !strings.Contains(errs, "vote:k=N") {
		t.Errorf("bad strategy: %s", errs)
	}
	// The embedded model is Countdown's: math without a server is refused,
	// not answered by the wrong model.
	for _, cmd := range [][]string{{"solve", "--task", "math", "What is 2+2?"}, {"eval", "--task", "math", "--input", "-"}} {
		if _, errs := expectExit(t, 2, in, cmd...); !strings.Contains(errs, "--backend") {
			t.Errorf("%v without --backend: %s", cmd, errs)
		}
	}
	if _, errs := expectExit(t, 2, "", "solve", "--task", "math", "--backend", srv.URL+"/v1", "--strategy", "best:k=3", "--temperature", "1", "x"); !strings.Contains(errs, "pass@k") {
		t.Errorf("best-of-N on math: %s", errs)
	}
}

func TestSolveCountdownVote(t *testing.T) {
	dir := tinyModelDir(t)
	out, _ := expectExit(t, 1, "", "solve", "--model", dir, "--strategy", "vote:k=3", "--temperature", "1", "--max-tokens", "20", "--env", "fill", "27", "22", "26", "31", "53")
	if !strings.Contains(out, "strategy vote:k=3") || !strings.Contains(out, "#samples") {
		t.Errorf("output:\n%s", out)
	}
	_, errs := expectExit(t, 2, "", "solve", "--model", dir, "--strategy", "vote:k=3", "27", "22", "26", "31", "53")
	if !strings.Contains(errs, "needs a temperature") {
		t.Errorf("greedy vote: %s", errs)
	}
}

func TestEvalResumes(t *testing.T) {
	dir := tinyModelDir(t)
	db := filepath.Join(t.TempDir(), "braid.db")
	args := []string{"eval", "--model", dir, "--n", "3", "--strategies", "serial,apr", "--max-tokens", "16", "--db", db, "--json"}
	out, errs := expectExit(t, 0, "", args...)
	var rep struct {
		Run        string `json:"run"`
		Strategies []struct {
			Name     string    `json:"name"`
			N        int       `json:"n"`
			Accuracy float64   `json:"accuracy"`
			CI95     []float64 `json:"ci95"`
		} `json:"strategies"`
		Paired []struct {
			A, B   string
			PValue float64 `json:"p_value"`
		} `json:"paired"`
		Samples []json.RawMessage `json:"samples"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.Strategies) != 2 || rep.Strategies[1].N != 3 || len(rep.Samples) != 6 || len(rep.Paired) != 1 || rep.Paired[0].A != "apr" {
		t.Errorf("report %s", out)
	}
	if !strings.Contains(errs, "run "+rep.Run) || !strings.Contains(errs, "2 strategies × 3 problems × 1 seeds, env constrain, temperature 0, context 128, weights "+string(engine.DefaultWeights())+"\n") {
		t.Errorf("stderr %s", errs)
	}
	// The same command finds its run done: nothing taken again.
	again, _ := expectExit(t, 0, "", args...)
	if again != out {
		t.Errorf("the resumed run reports otherwise:\n%s\nthen\n%s", out, again)
	}
	table, _ := expectExit(t, 0, "", args[:len(args)-1]...)
	if !strings.Contains(table, "accuracy") || !strings.Contains(table, "apr − serial") ||
		!strings.Contains(table, "(env constrain, temperature 0, context 128, weights "+string(engine.DefaultWeights())+"; intervals clustered by problem)") {
		t.Errorf("table:\n%s", table)
	}
	_, errs = expectExit(t, 2, "", "eval", "--model", dir, "--seeds", "3", "--db", db)
	if !strings.Contains(errs, "--temperature") {
		t.Errorf("greedy seeds: %s", errs)
	}
}

// smallEval is a tiny random model's directory and the arguments of a quick
// serial eval of it into a fresh database.
func smallEval(t *testing.T) (dir string, args []string) {
	dir = tinyModelDir(t)
	db := filepath.Join(t.TempDir(), "braid.db")
	return dir, []string{"eval", "--model", dir, "--n", "2", "--strategies", "serial", "--max-tokens", "8", "--db", db}
}

// evalRunID is the run an eval names on stderr ("run ID in DB: ...").
func evalRunID(stderr string) string {
	return strings.Fields(stderr[strings.Index(stderr, "run "):])[1]
}

// --split validation draws other problems than the test ones, and so
// makes a run of its own; it is refused with --input and for a split
// that is not one to measure on.
func TestEvalSplit(t *testing.T) {
	_, args := smallEval(t)
	_, test := expectExit(t, 0, "", args...)
	out, val := expectExit(t, 0, "", append(args, "--split", "validation", "--json")...)
	if evalRunID(val) == evalRunID(test) {
		t.Errorf("the validation problems resumed the test run %s", evalRunID(test))
	}
	var rep struct {
		Samples []struct {
			Problem json.RawMessage `json:"problem"`
		} `json:"samples"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	want, err := task.Draw(countdown.Task{}, 2, task.SplitValidation, 2)
	if err != nil {
		t.Fatal(err)
	}
	var first bytes.Buffer
	if len(rep.Samples) != 2 || json.Compact(&first, rep.Samples[0].Problem) != nil || first.String() != string(countdown.Task{}.Encode(want[0])) {
		t.Errorf("--split validation evaluated %d samples, the first %s; want %s", len(rep.Samples), first.String(), countdown.Task{}.Encode(want[0]))
	}
	if _, errs := expectExit(t, 2, "", append(args, "--split", "train")...); !strings.Contains(errs, "--split") {
		t.Errorf("--split train: %s", errs)
	}
	if _, errs := expectExit(t, 2, "", append(args, "--split", "validation", "--input", "x.jsonl")...); !strings.Contains(errs, "--input") {
		t.Errorf("--split with --input: %s", errs)
	}
}

// --context (the embedded model at another length) and --join-at-goal are
// each named in the setting and make a run of their own, and each is
// refused where it cannot apply.
func TestEvalContext(t *testing.T) {
	_, args := smallEval(t)
	_, own := expectExit(t, 0, "", args...)
	_, longer := expectExit(t, 0, "", append(args, "--context", "256")...)
	if !strings.Contains(longer, "env constrain, temperature 0, context 256, weights ") {
		t.Errorf("stderr at --context 256: %s", longer)
	}
	if evalRunID(own) == evalRunID(longer) {
		t.Errorf("--context 256 resumed the run of the model's own context, %s", evalRunID(own))
	}
	_, joined := expectExit(t, 0, "", append(args, "--join-at-goal")...)
	if !strings.Contains(joined, "temperature 0, context 128, weights "+string(engine.DefaultWeights())+", join at goal\n") || evalRunID(joined) == evalRunID(own) {
		t.Errorf("stderr with --join-at-goal: %s", joined)
	}
	for _, bad := range [][]string{{"--context", "-1"}, {"--context", "256", "--backend", "http://127.0.0.1:1/v1", "--model", "", "--env", "fill"},
		{"--join-at-goal", "--task", "math"}} {
		if _, errs := expectExit(t, 2, "", append(args, bad...)...); !strings.Contains(errs, bad[0]) {
			t.Errorf("%v: %s", bad, errs)
		}
	}
}

// The weights' and the KV cache's numbers change the samples, so they
// are part of a run and named in its setting: another format starts
// another run, the default named resumes the run it names by default, and
// a bad name is a usage error.
func TestEvalWeightsAndCache(t *testing.T) {
	_, args := smallEval(t)
	_, own := expectExit(t, 0, "", args...)
	def := string(engine.DefaultWeights())
	_, named := expectExit(t, 0, "", append(args, "--weights", def, "--kv-cache-type", "f16")...)
	if evalRunID(named) != evalRunID(own) {
		t.Errorf("--weights %s --kv-cache-type f16 started run %s, not the default's %s", def, evalRunID(named), evalRunID(own))
	}
	if _, errs := expectExit(t, 0, "", append(args, "--kv-cache-type", "q8")...); !strings.Contains(errs, ", weights "+def+", 8-bit cache\n") {
		t.Errorf("the setting with an 8-bit cache: %s", errs)
	}
	others := [][]string{{"--weights", "f32"}, {"--f32-weights"}, {"--kv-cache-type", "q8"}}
	if def != "f16" {
		others = append(others, []string{"--weights", "f16"})
	}
	for _, other := range others {
		if _, errs := expectExit(t, 0, "", append(args, other...)...); evalRunID(errs) == evalRunID(own) {
			t.Errorf("%v resumed the default's run %s", other, evalRunID(own))
		}
	}
	for _, bad := range [][]string{{"--weights", "fp8"}, {"--f32-weights", "--weights", "bf16"}} {
		if _, errs := expectExit(t, 2, "", append(args, bad...)...); !strings.Contains(errs, "--weights") {
			t.Errorf("%v: %s", bad, errs)
		}
	}
}

// A run remembers its model: the same command on a changed model (retrained,
// or a newer braid's embedded one) starts anew instead of mixing samples of
// two models, and a named run refuses it.
func TestEvalRefusesAnotherModel(t *testing.T) {
	dir, args := smallEval(t)
	_, before := expectExit(t, 0, "", args...)
	_, named := expectExit(t, 0, "", append(args, "--run", "named")...)
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Data()[0] += 0.5
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	_, after := expectExit(t, 0, "", args...)
	if evalRunID(before) == evalRunID(after) {
		t.Errorf("the changed model resumed the run of the first:\n%s\n%s", before, after)
	}
	if _, errs := expectExit(t, 1, "", append(args, "--run", "named")...); !strings.Contains(errs, "another configuration") {
		t.Errorf("the named run of the first model took the changed one: %s (first: %s)", errs, named)
	}
}

// An eval with perturbed twins reports robustness, and braid report draws
// the run into a page and a Markdown summary.
func TestEvalPerturbAndReport(t *testing.T) {
	dir := tinyModelDir(t)
	tmp := t.TempDir()
	db := filepath.Join(tmp, "braid.db")
	out, errs := expectExit(t, 0, "", "eval", "--model", dir, "--n", "2", "--strategies", "serial", "--max-tokens", "16",
		"--perturb", "distractors", "--db", db, "--json")
	if !strings.Contains(errs, "each cell also on its distractors twin") {
		t.Errorf("stderr %s", errs)
	}
	var rep struct {
		Strategies []struct {
			Name       string `json:"name"`
			Robustness *struct {
				Perturbation string   `json:"perturbation"`
				N            int      `json:"n"`
				TokenRatio   *float64 `json:"token_ratio"`
			} `json:"robustness"`
			Overthinking struct {
				Caps []struct {
					MaxTokens int `json:"max_tokens"`
				} `json:"accuracy_under_caps"`
			} `json:"overthinking"`
		} `json:"strategies"`
		Samples []struct {
			Strategy string `json:"strategy"`
		} `json:"samples"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	s := rep.Strategies[0]
	if len(rep.Strategies) != 1 || s.Robustness == nil || s.Robustness.Perturbation != "distractors" || s.Robustness.N != 2 ||
		len(s.Overthinking.Caps) == 0 || len(rep.Samples) != 4 {
		t.Fatalf("report %s", out)
	}
	_, errs = expectExit(t, 2, "", "eval", "--model", dir, "--perturb", "typos", "--db", db)
	if !strings.Contains(errs, "distractors") {
		t.Errorf("an unknown perturbation: %s", errs)
	}
	page := filepath.Join(tmp, "report.html")
	if _, errs := expectExit(t, 0, "", "report", "--db", db, "--out", page); !strings.Contains(errs, "from 1 run\n") {
		t.Errorf("report stderr: %s", errs)
	}
	html, err := os.ReadFile(page)
	if err != nil || !strings.Contains(string(html), "Robustness: clean against perturbed") {
		t.Errorf("the page: %v %.200s", err, html)
	}
	if md, err := os.ReadFile(filepath.Join(tmp, "report.md")); err != nil || !strings.Contains(string(md), "| serial |") {
		t.Errorf("the summary: %v %s", err, md)
	}
	if _, errs := expectExit(t, 2, "", "report", "--db", db); !strings.Contains(errs, "--out") {
		t.Errorf("report without --out: %s", errs)
	}
}

// braid train grpo runs, checkpoints, evaluates, and resumes where it
// stopped.
func TestTrainGRPOCommand(t *testing.T) {
	dir := tinyModelDir(t)
	out := filepath.Join(t.TempDir(), "grpo")
	args := []string{"train", "grpo", "--from", dir, "--out", out, "--steps", "1", "--problems", "1", "--group", "2", "--eval-every", "1", "--eval-n", "2"}
	_, errs := expectExit(t, 0, "", args...)
	if !strings.Contains(errs, "step 1/1 reward") || !strings.Contains(errs, "eval at step 1 on 2 validation problems") {
		t.Errorf("stderr: %s", errs)
	}
	for _, f := range []string{"checkpoint/model.safetensors", "checkpoint/state.json", "grpo.svg", "eval.db"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	// The evaluation's problems are validation ones, not the test
	// problems braid eval measures on.
	evaluated := func() map[string]bool {
		st, err := store.Open(t.Context(), filepath.Join(out, "eval.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		samples, err := st.Samples(t.Context(), "step-1")
		if err != nil {
			t.Fatal(err)
		}
		keys := map[string]bool{}
		for _, s := range samples {
			keys[string(s.Problem)] = true
		}
		return keys
	}
	for split, want := range map[string]bool{task.SplitValidation: true, task.SplitTest: false} {
		ps, err := task.Draw(countdown.Task{}, 2, split, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if got := evaluated()[string(countdown.Task{}.Encode(p))]; got != want {
				t.Errorf("%s problem %s evaluated: %v", split, countdown.Task{}.Encode(p), got)
			}
		}
	}
	// An evaluation resumes with the split it began with.
	if _, errs := expectExit(t, 1, "", append(args, "--eval-split", "test")...); !strings.Contains(errs, "--eval-split") {
		t.Errorf("an evaluation resumed on another split: %s", errs)
	}
	if _, errs := expectExit(t, 2, "", append(args, "--eval-split", "train")...); !strings.Contains(errs, "--eval-split") {
		t.Errorf("evaluations on training problems: %s", errs)
	}
	if _, errs := expectExit(t, 1, "", append(args, "--eval-context", "256")...); !strings.Contains(errs, "--eval-context") {
		t.Errorf("an evaluation resumed at another context: %s", errs)
	}
	if _, errs := expectExit(t, 2, "", append(args, "--eval-weights", "f8")...); !strings.Contains(errs, "--eval-weights") {
		t.Errorf("--eval-weights f8: %s", errs)
	}
	// At a context of its own, as a model is measured once exported.
	longer := slices.Clone(args)
	longer[5] = filepath.Join(t.TempDir(), "grpo-256")
	if _, errs := expectExit(t, 0, "", append(longer, "--eval-context", "256", "--eval-weights", "f32", "--keep-every", "1")...); !strings.Contains(errs, "eval at step 1 on 2 validation problems at 256 positions") {
		t.Errorf("stderr of evaluations at 256 positions: %s", errs)
	}
	// The model kept at a step exports as the latest checkpoint does.
	exported := filepath.Join(t.TempDir(), "step-1")
	expectExit(t, 0, "", "train", "export", "--run", longer[5], "--step", "1", "--out", exported, "--context", "512")
	if cfg, err := os.ReadFile(filepath.Join(exported, "config.json")); err != nil || !strings.Contains(string(cfg), `"max_position_embeddings": 512`) {
		t.Errorf("the exported step's config (%v): %s", err, cfg)
	}
	if _, errs := expectExit(t, 1, "", "train", "export", "--run", longer[5], "--step", "2", "--out", exported); !strings.Contains(errs, "no kept model") {
		t.Errorf("export of a step not kept: %s", errs)
	}
	// Stopped during step 1's evaluation (here: before it stored
	// anything), the run finishes that evaluation when started again.
	if err := os.Remove(filepath.Join(out, "eval.db")); err != nil {
		t.Fatal(err)
	}
	if _, errs := expectExit(t, 0, "", args...); !strings.Contains(errs, "eval at step 1 on 2 validation problems") || strings.Contains(errs, "step 2/") {
		t.Errorf("stderr of a run resumed after its last step: %s", errs)
	}
	// Started once more, the finished evaluation is reprinted as stored,
	// not timed.
	if _, errs := expectExit(t, 0, "", args...); !strings.Contains(errs, "eval at step 1 on 2 validation problems (stored before)") {
		t.Errorf("stderr of a run whose evaluation was finished: %s", errs)
	}
	args[7] = "2" // --steps 2: resumes at step 1
	if _, errs := expectExit(t, 0, "", args...); !strings.Contains(errs, "resuming "+out+" at step 1 of 2") || !strings.Contains(errs, "step 2/2") {
		t.Errorf("resumed stderr: %s", errs)
	}
	// GRPO's default advantage, named, is the same run.
	if _, errs := expectExit(t, 0, "", append(args, "--advantage", "std")...); strings.Contains(errs, "step 3/") {
		t.Errorf("stderr of a finished run named with its default advantage: %s", errs)
	}
	if _, errs := expectExit(t, 2, "", "train", "grpo", "--from", dir, "--out", out, "--group", "1"); !strings.Contains(errs, "group of 1") {
		t.Errorf("a group of one: %s", errs)
	}
	// Joining at the goal stops children; serial rollouts have none.
	if _, errs := expectExit(t, 2, "", "train", "grpo", "--from", dir, "--out", filepath.Join(t.TempDir(), "jag"), "--mode", "serial", "--join-at-goal"); !strings.Contains(errs, "join_at_goal") {
		t.Errorf("--join-at-goal with serial rollouts: %s", errs)
	}
	// P-GRPO: the acceleration reward and mean-centred advantages.
	pgrpo := filepath.Join(t.TempDir(), "pgrpo")
	if _, errs := expectExit(t, 0, "", "train", "grpo", "--from", dir, "--out", pgrpo, "--steps", "1", "--problems", "1", "--group", "2",
		"--acceleration", "0.5", "--advantage", "mean"); !strings.Contains(errs, "step 1/1 reward") {
		t.Errorf("P-GRPO stderr: %s", errs)
	}
	if _, errs := expectExit(t, 2, "", "train", "grpo", "--from", dir, "--out", pgrpo, "--advantage", "median"); !strings.Contains(errs, `advantage "median"`) {
		t.Errorf("an unknown advantage: %s", errs)
	}
	// The latency reward needs its reference length.
	if _, errs := expectExit(t, 2, "", "train", "grpo", "--from", dir, "--out", filepath.Join(t.TempDir(), "lat"), "--latency", "1"); !strings.Contains(errs, "latency_tokens 0") {
		t.Errorf("a latency weight without its length: %s", errs)
	}
}

// braid compare pairs two runs' samples by problem: here two evaluations
// of different sizes, which share their first two problems.
func TestCompareCommand(t *testing.T) {
	dir := tinyModelDir(t)
	db := filepath.Join(t.TempDir(), "braid.db")
	expectExit(t, 0, "", "eval", "--model", dir, "--n", "2", "--strategies", "serial", "--max-tokens", "8", "--db", db, "--run", "small")
	expectExit(t, 0, "", "eval", "--model", dir, "--n", "3", "--strategies", "serial,direct", "--max-tokens", "8", "--db", db, "--run", "big")
	out, _ := expectExit(t, 0, "", "compare", "--db", db, "big/direct", "small/serial")
	for _, want := range []string{"2 problems in both (1 only in big/direct, 0 only in small/serial, left out)", "big/direct − small/serial:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	js, _ := expectExit(t, 0, "", "compare", "--db", db, "--db-b", db, "--json", "big/serial", "small/serial")
	var c struct {
		N    int     `json:"n"`
		Diff float64 `json:"diff"`
	}
	// Greedy decoding of the same model on the same problems: no difference.
	if err := json.Unmarshal([]byte(js), &c); err != nil || c.N != 2 || c.Diff != 0 {
		t.Errorf("JSON %v: %s", err, js)
	}
	if _, errs := expectExit(t, 1, "", "compare", "--db", db, "big/vote", "small/serial"); !strings.Contains(errs, "it has direct, serial") {
		t.Errorf("an unknown strategy: %s", errs)
	}
	if _, errs := expectExit(t, 1, "", "compare", "--db", db, "huge/serial", "small/serial"); !strings.Contains(errs, `no run "huge" in this database; it has `) || !strings.Contains(errs, "small") || !strings.Contains(errs, "big") {
		t.Errorf("an unknown run: %s", errs)
	}
	if _, errs := expectExit(t, 2, "", "compare", "--db", db, "big", "small/serial"); !strings.Contains(errs, "RUN/STRATEGY") {
		t.Errorf("a side without a strategy: %s", errs)
	}
}

// --api says how a --backend is driven: chat servers through their chat
// template by default for free-text tasks, raw completions when asked (a
// base checkpoint), and nothing for the embedded model.
func TestAPIPicksTheEndpoint(t *testing.T) {
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"text\":\"\\\\boxed{4}\",\"delta\":{\"content\":\"\\\\boxed{4}\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	}))
	defer srv.Close()
	for _, api := range []string{"", "completions", "chat"} {
		args := []string{"solve", "--task", "math", "--backend", srv.URL + "/v1", "What is 2+2?"}
		if api != "" {
			args = append(args, "--api", api)
		}
		expectExit(t, 0, "", args...)
	}
	if want := []string{"/v1/chat/completions", "/v1/completions", "/v1/chat/completions"}; !slices.Equal(paths, want) {
		t.Errorf("paths %v, want %v", paths, want)
	}
	if _, errs := expectExit(t, 2, "", "solve", "--task", "math", "--backend", srv.URL+"/v1", "--api", "grpc", "x"); !strings.Contains(errs, "--api") {
		t.Errorf("an unknown api: %s", errs)
	}
	if _, errs := expectExit(t, 2, "", "solve", "--api", "chat", "27", "22", "26", "31", "53"); !strings.Contains(errs, "--backend") {
		t.Errorf("--api without --backend: %s", errs)
	}
}

func TestExportGGUF(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m.gguf")
	expectExit(t, 0, "", "export", "gguf", "--model", tinyModelDir(t), "--out", out)
	data, err := os.ReadFile(out)
	if err != nil || len(data) < 64 || string(data[:4]) != "GGUF" {
		t.Errorf("the file: %d bytes, %v", len(data), err)
	}
	if _, errs := expectExit(t, 2, "", "export", "gguf"); !strings.Contains(errs, "--out") {
		t.Errorf("no --out: %s", errs)
	}
}

// A model exported as GGUF runs from that file as from its directory:
// the same tokens, greedy and sampled, and eval keys it by the file.
func TestGenerateFromGGUF(t *testing.T) {
	dir := tinyModelDir(t)
	file := filepath.Join(t.TempDir(), "tiny.gguf")
	expectExit(t, 0, "", "export", "gguf", "--model", dir, "--out", file, "--f32")
	for _, args := range [][]string{{"--max-tokens", "12", "hello"}, {"--max-tokens", "12", "--seed", "3", "--temperature", "0.9", "hello"}} {
		want, _ := expectExit(t, 0, "", append([]string{"generate", "--quiet", "--model", dir}, args...)...)
		got, _ := expectExit(t, 0, "", append([]string{"generate", "--quiet", "--model", file}, args...)...)
		if got != want {
			t.Errorf("%v: from the GGUF file %q, from the directory %q", args, got, want)
		}
	}
	db := filepath.Join(t.TempDir(), "braid.db")
	_, errs := expectExit(t, 0, "", "eval", "--model", file, "--n", "1", "--strategies", "serial", "--max-tokens", "8", "--db", db)
	if !strings.Contains(errs, "run ") {
		t.Errorf("eval of a GGUF file: %s", errs)
	}
	bad := filepath.Join(t.TempDir(), "bad.gguf")
	os.WriteFile(bad, []byte("GGUF"), 0o644)
	if _, errs := expectExit(t, 1, "", "generate", "--model", bad, "hello"); !strings.Contains(errs, "bad.gguf") || !strings.Contains(errs, "ends inside") {
		t.Errorf("a truncated GGUF file: %s", errs)
	}
}

// --alone times samples one at a time after the run, beside the run's
// queued latencies, and keeps them out of the stored samples.
func TestEvalAlone(t *testing.T) {
	_, args := smallEval(t)
	table, _ := expectExit(t, 0, "", append(args, "--alone", "5")...)
	if !strings.Contains(table, "serial alone: p50 ") || !strings.Contains(table, "over 2 problems one at a time") {
		t.Errorf("table with --alone 5 over 2 problems:\n%s", table)
	}
	out, _ := expectExit(t, 0, "", append(args, "--json")...)
	var rep struct {
		Strategies []struct {
			Alone *struct{ N int } `json:"alone_latency"`
		} `json:"strategies"`
		Samples []json.RawMessage `json:"samples"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Samples) != 2 || rep.Strategies[0].Alone != nil {
		t.Errorf("after --alone the run holds %d samples (want 2) and without it reports alone latency %+v", len(rep.Samples), rep.Strategies[0].Alone)
	}
}

// A chat model's files carry its template, and braid drives the model
// through it: a directory's tokenizer_config.json, exported into the GGUF
// file, rendered around a free-text task's question by the engine, the
// token count of the rendered conversation the prompt's; --api completions
// sends the question raw, and --api chat on a model without a template is
// refused.
func TestChatModelRunsThroughItsTemplate(t *testing.T) {
	tok, err := tokenizer.Train(context.Background(), slices.Values([]string{"What is 2+2? system user assistant\n", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."}), 300, []string{"<|im_start|>", "<|im_end|>"})
	if err != nil {
		t.Fatal(err)
	}
	dir := randomModelDir(t, tok, 256)
	src, err := os.ReadFile("../../tokenizer/chat/testdata/qwen2.5-instruct.jinja")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{"chat_template": string(src), "eos_token": "<|im_end|>"})
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "chat.gguf")
	expectExit(t, 0, "", "export", "gguf", "--model", dir, "--out", file)

	question := taskmath.Task{}.Prompt(task.Problem{Text: "What is 2+2?"})
	rendered := "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\n" + question + "<|im_end|>\n<|im_start|>assistant\n"
	promptTokens := func(out string) int {
		t.Helper()
		var res struct {
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return res.Usage.PromptTokens
	}
	for _, m := range []string{dir, file} {
		out, _ := expectExit(t, 0, "", "solve", "--model", m, "--task", "math", "--strategy", "serial", "--max-tokens", "4", "--json", "What is 2+2?")
		if got, want := promptTokens(out), len(tok.Encode(rendered)); got != want {
			t.Errorf("%s: %d prompt tokens, want the rendered conversation's %d", m, got, want)
		}
		for _, strategy := range []string{"direct", "parallel", "multiverse", "threadweaver", "hybrid:effort=deep", "vote:k=2", "best:k=2,scorer=judge", "aggregate:k=2", "deepthink:k=2"} {
			expectExit(t, 0, "", "solve", "--model", m, "--task", "math", "--strategy", strategy, "--temperature", "1", "--max-tokens", "4", "What is 2+2?")
		}
		out, _ = expectExit(t, 0, "", "solve", "--model", m, "--task", "math", "--strategy", "serial", "--max-tokens", "4", "--json", "--api", "completions", "What is 2+2?")
		if got, want := promptTokens(out), len(tok.Encode(question)); got != want {
			t.Errorf("%s, --api completions: %d prompt tokens, want the raw question's %d", m, got, want)
		}
	}
	if _, errs := expectExit(t, 2, "", "solve", "--model", tinyModelDir(t), "--task", "math", "--api", "chat", "What is 2+2?"); !strings.Contains(errs, "no chat template") {
		t.Errorf("--api chat without a template: %s", errs)
	}

	// generate --chat renders its prompt as the user's message, after
	// --system's.
	_, errs := expectExit(t, 0, "", "generate", "--model", file, "--chat", "--system", "Be brief.", "--max-tokens", "2", "What is 2+2?")
	withSystem := "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
	if want := fmt.Sprintf("%d prompt tokens", len(tok.Encode(withSystem))); !strings.Contains(errs, want) {
		t.Errorf("generate --chat: %s, want %s", errs, want)
	}
	if _, errs := expectExit(t, 2, "", "generate", "--model", file, "--system", "x", "hi"); !strings.Contains(errs, "--chat") {
		t.Errorf("--system without --chat: %s", errs)
	}
}

// export gguf --config writes random weights in a config's shape, those
// bench decode --config measures: read back from an f32 file they are the
// same numbers, and bench decode --model measures the file itself, in any
// of the types llama.cpp is compared in.
func TestExportRandomWeights(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, []byte(`{"model_type":"qwen2","vocab_size":300,"hidden_size":64,"intermediate_size":96,
		"num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":1,"max_position_embeddings":256,"tie_word_embeddings":true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	want, err := randomModel(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"f32", "bf16", "q8_0"} {
		file := filepath.Join(dir, typ+".gguf")
		expectExit(t, 0, "", "export", "gguf", "--config", cfg, "--type", typ, "--out", file)
		got, err := loadModel(file)
		if err != nil {
			t.Fatal(err)
		}
		if got.Config != want.Config {
			t.Fatalf("%s: config %+v, want %+v", typ, got.Config, want.Config)
		}
		if typ == "f32" {
			if wt, gt := want.Params.Tensors(), got.Params.Tensors(); !slices.Equal(wt[1].Data, gt[1].Data) {
				t.Errorf("%s: %s differs from bench decode --config's", typ, wt[1].Name)
			}
		}
		out, _ := expectExit(t, 0, "", "bench", "decode", "--model", file, "--threads", "1", "--prompt", "4", "--tokens", "3", "--children", "0", "--rounds", "1", "--weights", "f32", "--json")
		if !strings.Contains(out, `"tokens_per_s"`) || !strings.Contains(out, file) {
			t.Errorf("%s: bench decode --model: %s", typ, out)
		}
	}
	for _, bad := range [][]string{{"--config", cfg, "--model", dir}, {"--config", cfg, "--type", "q4_k"}} {
		if _, errs := expectExit(t, 2, "", append([]string{"export", "gguf", "--out", filepath.Join(dir, "x.gguf")}, bad...)...); errs == "" {
			t.Errorf("%v: no error", bad)
		}
	}
}

// braid train index adds an indexer to a model and trains it alone, from
// the model's weights and tokenizer; braid train sft --sparse then trains
// the whole model attending sparsely, from that checkpoint.
func TestTrainIndexCommand(t *testing.T) {
	tok, err := tokenizer.Train(context.Background(), slices.Values([]string{"Current State: 27:[22, 26, 31, 53], Operations: []"}), 290, []string{"<|end|>"})
	if err != nil {
		t.Fatal(err)
	}
	from := randomModelDir(t, tok, 1024)
	recipe := func(index bool) string {
		path := filepath.Join(t.TempDir(), "recipe.json")
		shape := ""
		if index {
			shape = `, "index_heads": 2, "index_dim": 8, "index_topk": 32`
		}
		body := `{"data": {"seed": 3, "serial": 6, "parallel": 3, "direct": 6, "validation": 1},
			"tokenizer": {"vocab": 290, "sample": 10},
			"model": {"dim": 32, "hidden": 64, "layers": 2, "heads": 2, "kv_heads": 2, "max_seq": 1024, "rope_theta": 10000,
				"tied_embeddings": true, "init_std": 0.05` + shape + `},
			"train": {"seed": 1, "steps": 2, "micro_tokens": 2048, "micro_batches": 1, "lr": 0.003, "min_lr": 0.0003, "warmup": 1,
				"weight_decay": 0.1, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "clip": 1, "checkpoint_every": 1, "eval_every": 1, "log_every": 1}}`
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	run := filepath.Join(t.TempDir(), "index")
	_, errs := expectExit(t, 0, "", "train", "index", "--config", recipe(true), "--from", from, "--out", run)
	if !strings.Contains(errs, "the tokenizer of "+from) || !strings.Contains(errs, "step 2/2") {
		t.Errorf("stderr: %s", errs)
	}
	before, err := model.Load(from)
	if err != nil {
		t.Fatal(err)
	}
	after, err := model.Load(filepath.Join(run, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	if c := after.Config; c.IndexHeads != 2 || c.IndexDim != 8 || c.IndexTopK != 32 {
		t.Errorf("the checkpoint's shape: %+v", c)
	}
	if !slices.Equal(after.Params.Layers[1].Wq, before.Params.Layers[1].Wq) || !slices.Equal(after.Params.Embed, before.Params.Embed) {
		t.Error("train index changed the model's own weights")
	}
	sparse := filepath.Join(t.TempDir(), "sparse")
	if _, errs := expectExit(t, 0, "", "train", "sft", "--sparse", "--config", recipe(true), "--from", filepath.Join(run, "checkpoint"), "--out", sparse); !strings.Contains(errs, "step 2/2") {
		t.Errorf("sft --sparse: %s", errs)
	}
	// The sparse model runs sparse by default, dense or with another
	// top-k when asked, each a run of its own named in its setting.
	db := filepath.Join(t.TempDir(), "braid.db")
	evalArgs := []string{"eval", "--model", filepath.Join(sparse, "checkpoint"), "--n", "2", "--strategies", "serial", "--max-tokens", "8", "--db", db}
	ids := map[string]bool{}
	for _, c := range []struct {
		flags   []string
		setting string
	}{
		{nil, ", sparse attention (top 32)\n"},
		{[]string{"--index-topk", "4"}, ", sparse attention (top 4)\n"},
		{[]string{"--attention", "dense"}, ", weights " + string(engine.DefaultWeights()) + "\n"},
	} {
		_, errs := expectExit(t, 0, "", append(evalArgs, c.flags...)...)
		if !strings.Contains(errs, c.setting) {
			t.Errorf("%v: %s", c.flags, errs)
		}
		ids[evalRunID(errs)] = true
	}
	if len(ids) != 3 {
		t.Errorf("sparse, top-4 and dense runs share ids: %v", ids)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{append(evalArgs, "--attention", "diagonal"), "--attention"},
		{append(evalArgs, "--index-topk", "-1"), "--index-topk"},
		{append(evalArgs, "--attention", "dense", "--index-topk", "4"), "--index-topk"},
		{[]string{"train", "index", "--config", recipe(true), "--out", run}, "--from"},
		{[]string{"train", "index", "--config", recipe(false), "--from", from, "--out", t.TempDir()}, "index_heads"},
		{[]string{"train", "sft", "--sparse", "--config", recipe(false), "--out", t.TempDir()}, "--sparse"},
	} {
		if _, errs := expectExit(t, 2, "", bad.args...); !strings.Contains(errs, bad.want) {
			t.Errorf("%v: %s", bad.args, errs)
		}
	}
	if _, errs := expectExit(t, 1, "", "eval", "--model", from, "--attention", "sparse", "--n", "1", "--db", db); !strings.Contains(errs, "lightning indexer") {
		t.Errorf("--attention sparse on a dense model: %s", errs)
	}
}
