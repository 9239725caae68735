// Package atomicfile writes files that appear whole or not at all: the data
// goes to a temporary file beside the target, which is synced and renamed
// over it only on Commit. A reader never sees a partial file, and a failed
// or interrupted write leaves the old file as it was.
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File is a file being written. Write to it, then Commit; Abort (safe after
// Commit, so it can be deferred) drops it.
type File struct {
	tmp       *os.File
	path      string
	committed bool
}

// Create starts writing path. The result gets the mode of the file it
// replaces, or 0644 for a new one (os.CreateTemp alone would make it
// private).
func Create(path string) (*File, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &File{tmp: tmp, path: path}, nil
}

// Write writes to the temporary file.
func (f *File) Write(p []byte) (int, error) { return f.tmp.Write(p) }

// Commit syncs the data and moves the file into place.
func (f *File) Commit() error {
	err := f.tmp.Sync()
	if cerr := f.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.tmp.Name(), f.path)
	}
	if err != nil {
		os.Remove(f.tmp.Name())
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	f.committed = true
	return nil
}

// Abort drops an uncommitted file; after Commit it does nothing.
func (f *File) Abort() {
	if !f.committed {
		f.tmp.Close()
		os.Remove(f.tmp.Name())
	}
}

// WriteFile writes data to path atomically.
func WriteFile(path string, data []byte) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}
