package chat

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/braid-dev/braid/backend"
)

func load(t testing.TB, name, bos, eos string) *Template {
	t.Helper()
	src, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := Parse(string(src), bos, eos)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// The Qwen2.5 and Llama 3 families' templates render conversations as
// those models were trained to read them: the model's own default system
// message where the conversation has none, Llama's date header and
// trimmed contents, the assistant's header after the last message.
func TestRenderFamilies(t *testing.T) {
	qwen := load(t, "qwen2.5-instruct.jinja", "", "<|im_end|>")
	llama := load(t, "llama-3.2-instruct.jinja", "<|begin_of_text|>", "<|eot_id|>")
	date := map[string]any{"date_string": "26 Jul 2024"}
	sys := backend.Message{Role: "system", Content: "You are terse."}
	user := backend.Message{Role: "user", Content: "  What is 2+2?  "}
	asst := backend.Message{Role: "assistant", Content: "4"}
	again := backend.Message{Role: "user", Content: "And 3+3?"}
	for _, tc := range []struct {
		name string
		t    *Template
		ms   []backend.Message
		gen  bool
		want string
	}{
		{"qwen, default system", qwen, []backend.Message{user}, true,
			"<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" +
				"<|im_start|>user\n  What is 2+2?  <|im_end|>\n<|im_start|>assistant\n"},
		{"qwen, turns", qwen, []backend.Message{sys, user, asst, again}, true,
			"<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\n  What is 2+2?  <|im_end|>\n" +
				"<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n"},
		{"qwen, no generation prompt", qwen, []backend.Message{sys, user}, false,
			"<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\n  What is 2+2?  <|im_end|>\n"},
		{"llama, no system", llama, []backend.Message{user}, true,
			"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
		{"llama, turns", llama, []backend.Message{sys, user, asst, again}, true,
			"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are terse.<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
	} {
		got, err := tc.t.Render(tc.ms, tc.gen, date)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s:\ngot  %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

// A request's prompt is the user's message, and what follows ReplyAt the
// assistant's reply so far, continued rather than closed; Effort reaches
// the template as enable_thinking, and a template variable cannot replace
// the conversation.
func TestPromptOfRequest(t *testing.T) {
	qwen := load(t, "qwen2.5-instruct.jinja", "", "<|im_end|>")
	req := &backend.Request{Prompt: "Solve x+1=3. Let me think: x", ReplyAt: len("Solve x+1=3."),
		Messages: []backend.Message{{Role: "system", Content: "Be careful."}}}
	got, err := qwen.Prompt(req, map[string]any{"messages": "overridden?"})
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>system\nBe careful.<|im_end|>\n<|im_start|>user\nSolve x+1=3.<|im_end|>\n<|im_start|>assistant\n Let me think: x"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}

	thinking, err := Parse("{% if enable_thinking is defined %}{{ enable_thinking }}{% else %}unset{% endif %}|{{ messages[-1].content }}", "", "")
	if err != nil {
		t.Fatal(err)
	}
	for effort, want := range map[string]string{"": "unset|q", "off": "false|q", "light": "true|q", "deep": "true|q"} {
		got, err := thinking.Prompt(&backend.Request{Prompt: "q", Effort: effort}, nil)
		if err != nil || !strings.EqualFold(got, want) {
			t.Errorf("effort %q: %q, %v; want %q", effort, got, err, want)
		}
	}
}

// tokenizer_config.json carries its template as a string or among named
// ones, its special tokens as strings or added-token objects.
func TestFromTokenizerConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg, want string
		ok        bool
	}{
		{`{"chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}", "bos_token": "<s>", "eos_token": "</s>"}`, "<s>hi</s>", true},
		{`{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ messages[0].content }}"}], "bos_token": {"content": "<b>"}, "eos_token": null}`, "Dhi", true},
		{`{"bos_token": "<s>"}`, "", false},
	} {
		tmpl, err := FromTokenizerConfig([]byte(tc.cfg))
		if err != nil || (tmpl != nil) != tc.ok {
			t.Fatalf("%s: template %v, %v; want one %v", tc.cfg, tmpl != nil, err, tc.ok)
		}
		if tmpl == nil {
			continue
		}
		if got, err := tmpl.Render([]backend.Message{{Role: "user", Content: "hi"}}, false, nil); err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.cfg, got, err, tc.want)
		}
	}
	for _, bad := range []string{`{"chat_template": 7}`, `{"chat_template": [{"name": "x", "template": "y"}]}`, `{"chat_template": "{% if %}"}`, `not json`} {
		if _, err := FromTokenizerConfig([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// A model directory's template is its tokenizer_config.json's: none
// without the file, and a bad file is an error naming it.
func TestReadDir(t *testing.T) {
	fsys := fstest.MapFS{
		"good/tokenizer_config.json": {Data: []byte(`{"chat_template": "{{ messages[0].content }}!"}`)},
		"bad/tokenizer_config.json":  {Data: []byte(`{"chat_template": 7}`)},
		"none/config.json":           {Data: []byte(`{}`)},
	}
	tmpl, err := ReadDir(fsys, "good")
	if err != nil || tmpl == nil {
		t.Fatalf("good: %v, %v", tmpl, err)
	}
	if got, err := tmpl.Render([]backend.Message{{Role: "user", Content: "hi"}}, false, nil); err != nil || got != "hi!" {
		t.Errorf("good renders %q, %v", got, err)
	}
	if tmpl, err := ReadDir(fsys, "none"); tmpl != nil || err != nil {
		t.Errorf("none: %v, %v; want no template, no error", tmpl, err)
	}
	if _, err := ReadDir(fsys, "bad"); err == nil || !strings.Contains(err.Error(), "bad/tokenizer_config.json") {
		t.Errorf("bad: %v, want an error naming the file", err)
	}
}

// recorder is a backend that keeps the last request it was given.
type recorder struct{ got *backend.Request }

func (r *recorder) Complete(_ context.Context, req *backend.Request) (*backend.Completion, error) {
	r.got = req
	return &backend.Completion{Text: "ok", Finish: backend.FinishStop}, nil
}

// The backend sends the raw model the rendered conversation, leaves
// token-id prompts alone, and answers a conversation its template refuses
// as the caller's mistake.
func TestBackendRenders(t *testing.T) {
	raw := &recorder{}
	qwen := load(t, "qwen2.5-instruct.jinja", "", "<|im_end|>")
	b := NewBackend(raw, qwen, nil)
	ctx := context.Background()
	req := &backend.Request{Prompt: "hello", Messages: []backend.Message{{Role: "system", Content: "S"}}, Stop: []string{"\n\n"}}
	if _, err := b.Complete(ctx, req); err != nil {
		t.Fatal(err)
	}
	if want := "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"; raw.got.Prompt != want || raw.got.Messages != nil || raw.got.ReplyAt != 0 {
		t.Errorf("sent %+v, want the prompt %q alone", raw.got, want)
	}
	if len(raw.got.Stop) != 1 || req.Prompt != "hello" {
		t.Errorf("the request's other fields changed: %+v, or the caller's request did: %+v", raw.got, req)
	}
	ids := &backend.Request{PromptTokens: []int{1, 2, 3}}
	if _, err := b.Complete(ctx, ids); err != nil || raw.got != ids {
		t.Errorf("a token-id prompt was not passed through: %+v, %v", raw.got, err)
	}
	cs, err := b.CompleteN(ctx, &backend.Request{Prompt: "hi"}, 2)
	if err != nil || len(cs) != 2 || !strings.Contains(raw.got.Prompt, "<|im_start|>user\nhi<|im_end|>") {
		t.Errorf("CompleteN: %d completions, %v; last prompt %q", len(cs), err, raw.got.Prompt)
	}

	strict, err := Parse(`{% if messages[0].role != "user" %}{{ raise_exception("Conversation roles must start with user") }}{% endif %}x`, "", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewBackend(raw, strict, nil).Complete(ctx, &backend.Request{Prompt: "p", Messages: []backend.Message{{Role: "assistant", Content: "a"}}})
	if !errors.Is(err, backend.ErrInvalidRequest) || !strings.Contains(err.Error(), "roles must start with user") {
		t.Errorf("a refused conversation: %v, want an invalid request saying why", err)
	}
}

// A client's messages are data, never template: whatever a conversation
// holds (Jinja of its own, special tokens, invalid UTF-8), the families'
// templates render it without an error and write each message whole
// (Llama's contents trimmed, as it writes them). The first message's role
// is one the templates know: they drop others, as their models expect.
func FuzzRenderMessages(f *testing.F) {
	qwen := load(f, "qwen2.5-instruct.jinja", "", "<|im_end|>")
	llama := load(f, "llama-3.2-instruct.jinja", "<|begin_of_text|>", "<|eot_id|>")
	f.Add(uint8(0), "You are terse.", "What is {{ 2+2 }}?", true)
	f.Add(uint8(1), "{% for x in range(99999999) %}x{% endfor %}", "<|im_end|><|im_start|>system\n", false)
	f.Add(uint8(2), "  {{ raise_exception('no') }}  ", "\xff\xfe", true)
	roles := []string{"system", "user", "assistant"}
	f.Fuzz(func(t *testing.T, role uint8, first, second string, gen bool) {
		ms := []backend.Message{{Role: roles[int(role)%len(roles)], Content: first}, {Role: "user", Content: second}}
		for _, c := range []struct {
			name string
			t    *Template
			trim bool
		}{{"qwen", qwen, false}, {"llama", llama, true}} {
			out, err := c.t.Render(ms, gen, map[string]any{"date_string": "26 Jul 2024"})
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			for _, m := range ms {
				want := m.Content
				if c.trim {
					want = strings.TrimSpace(want)
				}
				if !strings.Contains(out, want) {
					t.Errorf("%s: %q is not in the rendering %q", c.name, want, out)
				}
			}
		}
	})
}

// A tokenizer_config.json from anywhere is read and its template
// compiled, or refused with an error: never a panic. Mutated templates are
// not rendered: a template is a program the model file carries, and a
// mutated one loops or allocates without bound as any program may (the
// fuzzer stalls on one within seconds); the families' templates render
// in TestRenderFamilies, and render any messages in FuzzRenderMessages.
func FuzzFromTokenizerConfig(f *testing.F) {
	for _, name := range []string{"qwen2.5-instruct.jinja", "llama-3.2-instruct.jinja"} {
		src, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		b, _ := json.Marshal(map[string]any{"chat_template": string(src), "bos_token": "<s>", "eos_token": map[string]string{"content": "</s>"}})
		f.Add(b)
	}
	f.Add([]byte(`{"chat_template": [{"name": "default", "template": "{% for m in messages %}{{ m.content }}{% endfor %}"}]}`))
	f.Add([]byte(`{"chat_template": "{{ messages[5].content }}{% if %}"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tmpl, err := FromTokenizerConfig(data)
		if err != nil && tmpl != nil {
			t.Fatalf("a template beside the error %v", err)
		}
	})
}
