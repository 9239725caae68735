package chat

import (
	"context"
	"fmt"

	"github.com/braid-dev/braid/backend"
)

// Backend drives a raw-text backend (the embedded engine on a chat
// model's weights) as a chat server would be: every text prompt is
// rendered by the template, with its conversation and the assistant's
// reply so far, before the model continues it. Prompts given as token
// ids are the model's own tokens already and pass through unchanged.
type Backend struct {
	raw  backend.Backend
	tmpl *Template
	vars map[string]any
}

// NewBackend puts t in front of raw. vars are template variables every
// rendering gets (chat_template_kwargs).
func NewBackend(raw backend.Backend, t *Template, vars map[string]any) *Backend {
	return &Backend{raw: raw, tmpl: t, vars: vars}
}

// Raw is the backend behind the template, for raw completions.
func (b *Backend) Raw() backend.Backend { return b.raw }

// Template is the template requests are rendered by.
func (b *Backend) Template() *Template { return b.tmpl }

// Complete renders req and has the raw backend continue it.
func (b *Backend) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	r, err := b.render(req)
	if err != nil {
		return nil, err
	}
	return b.raw.Complete(ctx, r)
}

// CompleteN keeps the raw backend's way of drawing several samples.
func (b *Backend) CompleteN(ctx context.Context, req *backend.Request, n int) ([]*backend.Completion, error) {
	r, err := b.render(req)
	if err != nil {
		return nil, err
	}
	return backend.CompleteN(ctx, b.raw, r, n)
}

// render is req with its prompt rendered: a copy, req itself unchanged.
func (b *Backend) render(req *backend.Request) (*backend.Request, error) {
	if req.PromptTokens != nil {
		return req, nil
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	text, err := b.tmpl.Prompt(req, b.vars)
	if err != nil {
		// A template that cannot render a conversation refuses it
		// (raise_exception: roles out of order), the client's to fix.
		return nil, backend.Invalid(fmt.Errorf("chat: the model's template refuses the conversation: %w", err))
	}
	r := *req
	r.Prompt, r.Messages, r.ReplyAt = text, nil, 0
	return &r, nil
}
