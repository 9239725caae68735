package main

import (
	"fmt"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/spf13/cobra"
)

func newGenerateCmd() *cobra.Command {
	var (
		ef        engineFlags
		maxTokens int
		temp      float64
		topP      float64
		topK      int
		seed      uint64
		stops     []string
		quiet     bool
		asChat    bool
		system    string
	)
	cmd := &cobra.Command{
		Use:   "generate PROMPT",
		Short: "Continue a prompt with a model, streaming tokens to the terminal",
		Long: `Continue PROMPT with the model, printing the text as it is generated, then a
line on stderr with the tokens, the time and the speed. Decoding is greedy
unless --temperature is set; with a temperature, --seed makes the run
repeatable (without one, the seed drawn is printed). With --chat, PROMPT is
a user's message, rendered by the chat template the model's files carry
(a GGUF file's, or tokenizer_config.json's), and the model writes the
assistant's reply.`,
		Example: `  braid generate --model ./my-model 'Once upon a time'
  braid generate --model ./my-model --temperature 0.8 --top-p 0.95 --seed 7 'Once upon a time'
  braid generate --model ./my-model --stop '\n\n' --max-tokens 64 'Q: 2+2?'
  braid generate --model qwen2.5-0.5b-instruct.gguf --chat --system 'Be brief.' 'What is a prime?'`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if maxTokens < 0 {
				return usageErrorf("--max-tokens must be >= 0")
			}
			req := &backend.Request{Prompt: args[0], MaxTokens: maxTokens, Temperature: temp, TopP: topP, TopK: topK, Seed: seed, Stop: stops}
			if err := req.Validate(); err != nil {
				return usageErrorf("%v", err)
			}
			if system != "" {
				if !asChat {
					return usageErrorf("--system is a chat's system message: it needs --chat")
				}
				req.Messages = []backend.Message{{Role: "system", Content: system}}
			}
			e, err := ef.open()
			if err != nil {
				return err
			}
			defer e.Close()
			var b backend.Backend = e
			if asChat {
				if b, err = ef.chatOver(e, true, "chat"); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			var first time.Duration
			start := time.Now()
			var werr error
			req.OnChunk = func(c backend.Chunk) {
				if first == 0 && len(c.Tokens) > 0 {
					first = time.Since(start)
				}
				if _, err := fmt.Fprint(out, c.Text); err != nil && werr == nil {
					werr = err
				}
			}
			c, err := b.Complete(cmd.Context(), req)
			if c != nil {
				fmt.Fprintln(out)
			}
			if err != nil {
				return err
			}
			if werr != nil {
				return fmt.Errorf("write: %w", werr)
			}
			if !quiet {
				elapsed := time.Since(start)
				rate := 0.0
				if n := len(c.Tokens) - 1; n > 0 && elapsed > first {
					rate = float64(n) / (elapsed - first).Seconds()
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%d prompt tokens (%d cached), %d generated (%s) in %s; first token %s, then %.1f tokens/s; seed %d\n",
					c.Usage.PromptTokens, c.Usage.CachedPromptTokens, c.Usage.CompletionTokens, c.Finish,
					elapsed.Round(time.Millisecond), first.Round(time.Millisecond), rate, c.Seed)
			}
			return nil
		},
	}
	ef.register(cmd)
	f := cmd.Flags()
	f.IntVar(&maxTokens, "max-tokens", 256, "most tokens to generate (0: until the context is full)")
	f.Float64Var(&temp, "temperature", 0, "sampling temperature (0: greedy)")
	f.Float64Var(&topP, "top-p", 0, "nucleus sampling: keep the most likely tokens up to this probability (0: off)")
	f.IntVar(&topK, "top-k", 0, "keep only the k most likely tokens (0: off)")
	f.Uint64Var(&seed, "seed", 0, "sampling seed (0: draw one and print it)")
	f.StringArrayVar(&stops, "stop", nil, "stop before this string (repeatable); \\n and \\t are unescaped")
	f.BoolVar(&quiet, "quiet", false, "print no statistics")
	f.BoolVar(&asChat, "chat", false, "PROMPT is a user's message: render it by the model's chat template, and generate the assistant's reply")
	f.StringVar(&system, "system", "", "with --chat, a system message before PROMPT")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		for i, s := range stops {
			stops[i] = unescape(s)
		}
		return nil
	}
	return cmd
}

// unescape turns the \n, \t and \\ a shell passes literally into the
// characters.
func unescape(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case 'n':
				b = append(b, '\n')
				i++
				continue
			case 't':
				b = append(b, '\t')
				i++
				continue
			case '\\':
				b = append(b, '\\')
				i++
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}
