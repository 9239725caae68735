package backend

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := Request{Prompt: "hi"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		req  Request
		want string
	}{
		{Request{}, "empty prompt"},
		{Request{Prompt: "x", MaxTokens: -1}, "max tokens"},
		{Request{Prompt: "x", Temperature: -0.5}, "temperature"},
		{Request{Prompt: "x", TopK: -2}, "top-k"},
		{Request{Prompt: "x", TopP: 1.01}, "top-p"},
		{Request{Prompt: "x", TopLogprobs: -1}, "logprobs"},
		{Request{PromptTokens: []int{1}, Stop: []string{"a", ""}}, "stop string 1"},
	} {
		err := tc.req.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error about %q", tc.req, err, tc.want)
		}
	}
}

// failing fails every completion after its first, slowly succeeding ones
// notwithstanding.
type failing struct{ calls atomic.Int32 }

func (f *failing) Complete(ctx context.Context, req *Request) (*Completion, error) {
	if f.calls.Add(1) == 2 {
		return nil, errors.New("boom")
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(10 * time.Second):
		return &Completion{Text: "late"}, nil
	}
}

// CompleteN's concurrent requests stop at the first failure, which is the
// error returned; an environment takes one completion at a time.
func TestCompleteNStopsAtTheFirstFailure(t *testing.T) {
	start := time.Now()
	_, err := CompleteN(context.Background(), &failing{}, &Request{Prompt: "p"}, 4)
	if err == nil || err.Error() != "boom" || time.Since(start) > 5*time.Second {
		t.Errorf("error %v after %v", err, time.Since(start))
	}
	if _, err := CompleteN(context.Background(), &failing{}, &Request{Prompt: "p"}, 0); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("n = 0: %v", err)
	}
}
