package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/braid-dev/braid/backend/remote"
	"github.com/braid-dev/braid/engine"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/serve"
	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/task/countdown"
	"github.com/braid-dev/braid/train"
)

// One braid as another's backend, with the Countdown environment's choices
// sent as guided choices: every line the remote model writes is one the
// environment allowed, as on the engine itself.
func TestBraidOverBraidWithGuidedChoices(t *testing.T) {
	e, err := engine.Open(countdownModelDir(t), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	srv, err := serve.New(serve.Options{Backend: e, Model: "countdown", Task: countdown.Task{}, Raw: e})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	c, err := remote.New(remote.Options{Endpoints: []string{hs.URL + "/v1"}, Model: "countdown", GuidedChoice: true})
	if err != nil {
		t.Fatal(err)
	}
	p := countdown.Problem{Target: 27, Numbers: []int{22, 26, 31, 53}}
	for mode, effort := range map[countdown.Mode]string{countdown.ModeSerial: task.EffortLight, countdown.ModeParallel: task.EffortDeep} {
		s := reason.Search{Options: reason.Options{Env: reason.EnvConstrain, MaxTokens: 60}, Effort: effort}
		r, err := s.Solve(context.Background(), c, countdown.Task{}, countdown.NewProblem(p), nil)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if r.Tree.Finish == "env" {
			t.Errorf("%s: the remote model wrote outside the choices: %s", mode, r.Tree.Reason)
		}
		whole := r.Tree.Text[:strings.LastIndex(r.Tree.Text, "\n")+1] // cut by the token limit mid-line
		if _, err := countdown.VerifyTrace(p, whole); err != nil {
			t.Errorf("%s: the trace is invalid (%v):\n%s", mode, err, whole)
		}
		prompt := countdown.RootPrompt(p, mode)
		if lines := strings.Count(whole, "\n") - strings.Count(prompt, "\n"); lines < 3 {
			t.Errorf("%s: %d whole lines in 60 tokens, each chosen within the environment's choices:\n%s", mode, lines, r.Tree.Text)
		}
	}
}

// countdownModelDir writes a small random model whose tokenizer was trained
// on Countdown traces, so it can write every line the environment allows.
func countdownModelDir(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	seqs, _, err := train.Traces(ctx, countdown.Task{}, train.DataConfig{Seed: 3, Serial: 8, Parallel: 4, Direct: 4, Validation: 1})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := train.TrainTokenizer(ctx, seqs, 300)
	if err != nil {
		t.Fatal(err)
	}
	return randomModelDir(t, tok, 512)
}
