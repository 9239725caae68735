package main

import (
	"fmt"

	"github.com/braid-dev/braid/model/gguf"
	"github.com/braid-dev/braid/models"
	"github.com/spf13/cobra"
)

func newExportCmd() *cobra.Command {
	export := &cobra.Command{
		Use:   "export",
		Short: "Write braid's models in other formats",
	}
	export.AddCommand(newExportGGUFCmd())
	return export
}

func newExportGGUFCmd() *cobra.Command {
	var (
		dir, out string
		f32      bool
	)
	cmd := &cobra.Command{
		Use:   "gguf",
		Short: "Write a model directory as one GGUF file, for llama.cpp and ollama",
		Long: `Write a model directory (the embedded model by default) as a GGUF file: the
Llama architecture's metadata, the weights under llama.cpp's names (matrices
in half precision unless --f32), the byte-level BPE tokenizer, and a chat
template that passes braid's prompts through unchanged, so that a chat
server continuing an assistant message reads braid's text as braid wrote it.`,
		Example: `  braid export gguf --out countdown.gguf
  braid export gguf --model runs/countdown/checkpoint --out checkpoint.gguf --f32
  llama-server -m countdown.gguf --port 8000 &
  braid solve --backend http://127.0.0.1:8000/v1 --backend-model countdown --env fill 27 22 26 31 53`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("--out FILE is required")
			}
			var err error
			if dir == "" {
				if !models.Has(models.Countdown) {
					return usageErrorf("this build embeds no model: give --model DIR")
				}
				err = gguf.ExportFS(models.FS, models.Countdown, models.Countdown, out, !f32)
			} else {
				err = gguf.Export(dir, out, !f32)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "model", "", "the model directory: config.json, tokenizer.json, model.safetensors (default: the embedded Countdown model)")
	f.StringVar(&out, "out", "", "the GGUF file to write")
	f.BoolVar(&f32, "f32", false, "keep the matrices in float32 (default: half precision, as the embedded model ships)")
	return cmd
}
