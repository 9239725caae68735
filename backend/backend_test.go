package backend

import (
	"strings"
	"testing"
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
