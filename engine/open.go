package engine

import (
	"fmt"
	"io/fs"
	"path"
	"path/filepath"

	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/model/hfconfig"
	"github.com/braid-dev/braid/tokenizer"
)

// TokenizerFile is the tokenizer's file in a model directory, beside
// model.ConfigFile and model.WeightsFile.
const TokenizerFile = model.TokenizerFile

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

// OpenFS is Open for a model directory inside a file system, such as the
// model embedded in braid's binary.
func OpenFS(fsys fs.FS, dir string, opts Options) (*Engine, error) {
	m, err := model.LoadFS(fsys, dir)
	if err != nil {
		return nil, err
	}
	data, err := fs.ReadFile(fsys, path.Join(dir, TokenizerFile))
	if err != nil {
		return nil, fmt.Errorf("open model: %w", err)
	}
	tok, err := tokenizer.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path.Join(dir, TokenizerFile), err)
	}
	if opts.EOS == nil {
		data, err := fs.ReadFile(fsys, path.Join(dir, model.ConfigFile))
		if err != nil {
			return nil, fmt.Errorf("open model: %w", err)
		}
		hc, err := hfconfig.Parse(data)
		if err != nil {
			return nil, err
		}
		opts.EOS = hc.EOSTokenIDs
	}
	return New(m, tok, opts)
}
