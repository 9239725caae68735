package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/braid-dev/braid/internal/atomicfile"
)

// output is where a command writes its JSONL: stdout, or a file that appears
// only when the command succeeds, so an interrupted run never clobbers an
// earlier good file with half of a new one.
type output struct {
	w    *bufio.Writer
	file *atomicfile.File // nil for stdout
	path string
}

func openOutput(path string, stdout io.Writer) (*output, error) {
	o := &output{path: path}
	dst := stdout
	if path != "" && path != "-" {
		f, err := atomicfile.Create(path)
		if err != nil {
			return nil, err
		}
		o.file, dst = f, f
	}
	o.w = bufio.NewWriterSize(dst, 1<<16)
	return o, nil
}

// jsonLine encodes v as one JSONL line. Workers call it, so encoding runs in
// parallel and the writer only copies bytes.
func jsonLine(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // traces are full of < and >: keep them readable
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// write writes v as one JSONL line.
func (o *output) write(v any) error {
	line, err := jsonLine(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	return o.writeLine(line)
}

// writeLine writes one encoded line.
func (o *output) writeLine(line []byte) error {
	if _, err := o.w.Write(line); err != nil {
		return fmt.Errorf("write %s: %w", o.name(), err)
	}
	return nil
}

func (o *output) name() string {
	if o.file == nil {
		return "standard output"
	}
	return o.path
}

// commit flushes and, for a file, moves it into place.
func (o *output) commit() error {
	if err := o.w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", o.name(), err)
	}
	if o.file == nil {
		return nil
	}
	return o.file.Commit()
}

// abort drops a file output; it is safe after commit.
func (o *output) abort() {
	if o.file != nil {
		o.file.Abort()
	}
}

// printJSON writes v to w as indented JSON: the --json output of the
// commands that print one document.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
