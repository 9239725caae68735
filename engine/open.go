package engine

import (
	"fmt"
	"path/filepath"

	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/model/hfconfig"
	"github.com/braid-dev/braid/tokenizer"
)

// TokenizerFile is the tokenizer's file in a model directory, beside
// model.ConfigFile and model.WeightsFile.
const TokenizerFile = "tokenizer.json"

// Open starts an engine on a model directory: config.json,
// model.safetensors and tokenizer.json, the layout Hugging Face uses. The
// end-of-sequence tokens are the config's eos_token_id unless opts names
// some.
func Open(dir string, opts Options) (*Engine, error) {
	m, err := model.Load(dir)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(filepath.Join(dir, TokenizerFile))
	if err != nil {
		return nil, err
	}
	if opts.EOS == nil {
		hc, err := hfconfig.Load(filepath.Join(dir, model.ConfigFile))
		if err != nil {
			return nil, err
		}
		opts.EOS = hc.EOSTokenIDs
	}
	e, err := New(m, tok, opts)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	return e, nil
}
