// Package chat renders a conversation as the text a chat model was trained
// on, by the Jinja chat template its files carry (GGUF's
// tokenizer.chat_template, Hugging Face's tokenizer_config.json), and
// puts that rendering between braid's strategies and a model that reads
// raw text, such as the embedded engine.
package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/ardanlabs/jinja"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/model"
)

// Template is a model's compiled chat template with the special tokens it
// names. It is safe for concurrent use.
type Template struct {
	src      string
	t        *jinja.Template
	bos, eos string
}

// Parse compiles a chat template. bos and eos are the texts of the
// model's beginning- and end-of-sequence tokens, which templates write as
// bos_token and eos_token ("" where the model has none).
func Parse(src, bos, eos string) (*Template, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("chat template: empty")
	}
	var t *jinja.Template
	err := guard(func() (err error) { t, err = jinja.Compile(src); return err })
	if err != nil {
		return nil, fmt.Errorf("chat template: %w", err)
	}
	return &Template{src: src, t: t, bos: bos, eos: eos}, nil
}

// guard runs f, turning a panic into an error: a template comes from a
// model file, anyone's, and one the Jinja engine chokes on must fail its
// request, not the process.
func guard(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the template engine failed: %v", p)
		}
	}()
	return f()
}

// Source is the template's Jinja text.
func (t *Template) Source() string { return t.src }

// BOS is the text the template writes for bos_token.
func (t *Template) BOS() string { return t.bos }

// Render writes messages as the model reads them, followed by the start
// of the assistant's reply when addGenerationPrompt is set. vars are
// further template variables (chat_template_kwargs: enable_thinking,
// date_string); they cannot replace messages or the special tokens.
func (t *Template) Render(messages []backend.Message, addGenerationPrompt bool, vars map[string]any) (string, error) {
	if len(messages) == 0 {
		return "", errors.New("chat template: no messages to render")
	}
	ms := make([]any, len(messages))
	for i, m := range messages {
		ms[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	data := make(map[string]any, len(vars)+4)
	for k, v := range vars {
		data[k] = v
	}
	data["messages"] = ms
	data["add_generation_prompt"] = addGenerationPrompt
	data["bos_token"] = t.bos
	data["eos_token"] = t.eos
	var s string
	err := guard(func() (err error) { s, err = t.t.Render(data); return err })
	if err != nil {
		return "", fmt.Errorf("chat template: %w", err)
	}
	return s, nil
}

// Prompt is the text a raw-text model continues for req, as a chat server
// builds it: req.Messages, then req.Prompt (up to req.ReplyAt when that is
// set) as the user's message, then the start of the assistant's reply and
// the part of it already written (req.Prompt from ReplyAt). The thinking
// switch follows req.Effort as remote chat servers get it
// (enable_thinking false for "off", true for "light" and "deep").
func (t *Template) Prompt(req *backend.Request, vars map[string]any) (string, error) {
	user, reply := req.Prompt, ""
	if req.ReplyAt > 0 {
		user, reply = req.Prompt[:req.ReplyAt], req.Prompt[req.ReplyAt:]
	}
	ms := append(append(make([]backend.Message, 0, len(req.Messages)+1), req.Messages...), backend.Message{Role: "user", Content: user})
	if req.Effort != "" {
		v := make(map[string]any, len(vars)+1)
		for k, x := range vars {
			v[k] = x
		}
		v["enable_thinking"] = req.Effort != "off"
		vars = v
	}
	s, err := t.Render(ms, true, vars)
	if err != nil {
		return "", err
	}
	return s + reply, nil
}

// FromTokenizerConfig reads the chat template of a Hugging Face model
// directory's tokenizer_config.json, with its bos_token and eos_token: a
// template string, or a list of named templates of which the one named
// "default" is taken. It is nil for a file without a template.
func FromTokenizerConfig(data []byte) (*Template, error) {
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
		BOS          json.RawMessage `json:"bos_token"`
		EOS          json.RawMessage `json:"eos_token"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("tokenizer_config.json: %w", err)
	}
	src, err := templateSource(cfg.ChatTemplate)
	if err != nil || src == "" {
		return nil, err
	}
	bos, err := specialToken(cfg.BOS)
	if err != nil {
		return nil, fmt.Errorf("tokenizer_config.json: bos_token: %w", err)
	}
	eos, err := specialToken(cfg.EOS)
	if err != nil {
		return nil, fmt.Errorf("tokenizer_config.json: eos_token: %w", err)
	}
	t, err := Parse(src, bos, eos)
	if err != nil {
		return nil, fmt.Errorf("tokenizer_config.json: %w", err)
	}
	return t, nil
}

// ReadDir reads the chat template of the model directory dir of fsys
// (its tokenizer_config.json): nil where the file or its template is
// absent. Errors name the file.
func ReadDir(fsys fs.FS, dir string) (*Template, error) {
	name := path.Join(dir, model.TokenizerConfigFile)
	data, err := fs.ReadFile(fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	t, err := FromTokenizerConfig(data)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return t, nil
}

// templateSource is chat_template's text: a string, or the "default" of a
// list of {name, template}; "" where there is none.
func templateSource(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var named []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &named); err != nil {
		return "", errors.New("tokenizer_config.json: chat_template is neither a string nor a list of {name, template}")
	}
	for _, n := range named {
		if n.Name == "default" {
			return n.Template, nil
		}
	}
	return "", errors.New("tokenizer_config.json: chat_template lists no template named \"default\"")
}

// specialToken is a bos_token or eos_token: a string, or an added token's
// {"content": ...}; "" where absent.
func specialToken(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var tok struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &tok); err != nil {
		return "", errors.New("neither a string nor {\"content\": ...}")
	}
	return tok.Content, nil
}
