package main

import (
	"fmt"
	"math/rand/v2"

	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/model/gguf"
	"github.com/braid-dev/braid/model/hfconfig"
	"github.com/braid-dev/braid/models"
	"github.com/braid-dev/braid/tokenizer"
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
		dir, out, typeName, configPath string
		seed                           uint64
		f32                            bool
	)
	cmd := &cobra.Command{
		Use:   "gguf",
		Short: "Write a model directory as one GGUF file, for llama.cpp and ollama",
		Long: `Write a model directory (the embedded model by default) as a GGUF file: the
Llama (or Qwen2) architecture's metadata, the weights under llama.cpp's names
(matrices as --type: f16 by default, f32, bf16, or q8_0, llama.cpp's 8-bit
blocks), the byte-level BPE tokenizer, and the chat template of the
directory's tokenizer_config.json, or one that passes braid's prompts through
unchanged, so that a chat server continuing an assistant message reads
braid's text as braid wrote it.

With --config, the model is one of random weights in that Hugging Face
config's shape (those 'braid bench decode --config' measures, for the same
--seed) with a byte-level tokenizer of its vocabulary's size: the file to
measure llama.cpp on the very weights braid runs.`,
		Example: `  braid export gguf --out countdown.gguf
  braid export gguf --model runs/countdown/checkpoint --out checkpoint.gguf --type f32
  braid export gguf --config configs/qwen2.5-0.5b.json --type q8_0 --out qwen-shape-q8.gguf
  llama-server -m countdown.gguf --port 8000 &
  braid solve --backend http://127.0.0.1:8000/v1 --backend-model countdown --env fill 27 22 26 31 53`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("--out FILE is required")
			}
			typ, err := gguf.ParseType(typeName)
			if err != nil {
				return usageErrorf("--type: %v", err)
			}
			if f32 {
				if cmd.Flags().Changed("type") && typ != gguf.F32 {
					return usageErrorf("--f32 contradicts --type %s", typeName)
				}
				typ = gguf.F32
			}
			switch {
			case configPath != "":
				if dir != "" {
					return usageErrorf("--config and --model exclude each other: random weights of a shape, or a model's own")
				}
				err = exportRandom(configPath, seed, out, typ)
			case dir == "":
				if !models.Has(models.Countdown) {
					return usageErrorf("this build embeds no model: give --model DIR")
				}
				err = gguf.ExportFS(models.FS, models.Countdown, models.Countdown, out, typ)
			default:
				err = gguf.Export(dir, out, typ)
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
	f.StringVar(&typeName, "type", "f16", "the matrices' numbers: f32, f16 (half precision, as the embedded model ships), bf16 or q8_0 (8-bit blocks of 32 with a scale); norms stay f32")
	f.StringVar(&configPath, "config", "", "instead of a model, random weights in this Hugging Face config.json's shape, with a byte-level tokenizer of its vocabulary")
	f.Uint64Var(&seed, "seed", 1, "with --config, the random weights' seed (1: those of braid bench decode --config)")
	f.BoolVar(&f32, "f32", false, "keep the matrices in float32")
	if err := f.MarkDeprecated("f32", "use --type f32"); err != nil {
		panic(err) // the flag was just added
	}
	return cmd
}

// exportRandom writes a model of random weights in the shape of the
// config.json at configPath as a GGUF file.
func exportRandom(configPath string, seed uint64, out string, typ gguf.Type) error {
	m, err := randomModel(configPath, seed)
	if err != nil {
		return err
	}
	tok, err := tokenizer.Bytes(m.Config.Vocab)
	if err != nil {
		return fmt.Errorf("%s: %w", configPath, err)
	}
	tj, err := tok.MarshalJSON()
	if err != nil {
		return err
	}
	return gguf.ExportModel(m, tj, nil, "random "+configPath, out, typ)
}

// randomModel is randomWeights in the shape of the Hugging Face
// config.json at configPath.
func randomModel(configPath string, seed uint64) (*model.Model, error) {
	c, err := configFromHF(configPath)
	if err != nil {
		return nil, err
	}
	return randomWeights(c, seed)
}

// configFromHF reads the model shape of a Hugging Face config.json.
func configFromHF(configPath string) (model.Config, error) {
	hc, err := hfconfig.Load(configPath)
	if err != nil {
		return model.Config{}, err
	}
	c, err := model.ConfigFromHF(hc)
	if err != nil {
		return model.Config{}, fmt.Errorf("%s: %w", configPath, err)
	}
	return c, nil
}

// randomWeights is a model of shape c, its matrices drawn from
// N(0, 0.02²) with seed: the weights the benchmarks measure.
func randomWeights(c model.Config, seed uint64) (*model.Model, error) {
	m, err := model.New(c)
	if err != nil {
		return nil, err
	}
	m.Params.Init(rand.New(rand.NewPCG(seed, seed)), 0.02)
	return m, nil
}
