package engine

import (
	"cmp"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/model/gguf"
	"github.com/braid-dev/braid/tokenizer"
	"github.com/braid-dev/braid/tokenizer/chat"
)

// TokenizerFile is the tokenizer's file in a model directory, beside
// model.ConfigFile and model.WeightsFile.
const TokenizerFile = model.TokenizerFile

// Open starts an engine on a model directory: config.json,
// model.safetensors and tokenizer.json, the layout Hugging Face uses, and
// the chat template of tokenizer_config.json where there is one. The
// end-of-sequence tokens are the config's eos_token_id unless opts names
// some.
func Open(dir string, opts Options) (*Engine, error) {
	e, err := OpenFS(os.DirFS(cmp.Or(dir, ".")), ".", opts)
	if err != nil {
		return nil, onDisk(dir, err)
	}
	return e, nil
}

// OpenFS is Open for a model directory inside a file system, such as the
// model embedded in braid's binary. Errors name the files inside fsys.
func OpenFS(fsys fs.FS, dir string, opts Options) (*Engine, error) {
	m, err := model.LoadFS(fsys, dir)
	if err != nil {
		return nil, err
	}
	name := path.Join(dir, TokenizerFile)
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Parse(data)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	tmpl, err := chat.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	if opts.EOS == nil {
		opts.EOS = m.EOS
	}
	e, err := New(m, tok, opts)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	e.chat = tmpl
	return e, nil
}

// OpenGGUF starts an engine on a GGUF file, as llama.cpp and ollama keep
// their models: its weights (any type gguf.LoadModel reads, widened, then
// held as opts.Weights says), its byte-level BPE tokenizer, its chat
// template if it carries one, and its end-of-sequence and end-of-turn
// tokens unless opts names some.
func OpenGGUF(path string, opts Options) (*Engine, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := gguf.LoadModel(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	tok, err := f.Tokenizer()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	tmpl, err := f.ChatTemplate()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if opts.EOS == nil {
		opts.EOS = m.EOS
	}
	e, err := New(m, tok, opts)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	e.chat = tmpl
	return e, nil
}

// IsGGUF says whether path names a GGUF file rather than a model
// directory: a regular file named *.gguf.
func IsGGUF(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && strings.HasSuffix(strings.ToLower(path), ".gguf")
}

// onDisk makes err, an error of OpenFS on os.DirFS(dir), name the file or
// directory it is about by its path on disk rather than inside dir. Such
// errors are *fs.PathErrors: os.DirFS's are, and so are model.LoadFS's and
// OpenFS's own.
func onDisk(dir string, err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		pe.Path = filepath.Join(dir, filepath.FromSlash(pe.Path))
	}
	return err
}
