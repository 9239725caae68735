package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCommitReplacesAbortKeeps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.txt")
	if err := WriteFile(path, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Fatalf("new file mode %v", fi.Mode())
	}
	os.Chmod(path, 0o600)

	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("two"))
	if data, _ := os.ReadFile(path); string(data) != "one" {
		t.Fatalf("the file changed before Commit: %q", data)
	}
	f.Abort()
	if data, _ := os.ReadFile(path); string(data) != "one" {
		t.Fatalf("Abort changed the file: %q", data)
	}

	f, _ = Create(path)
	f.Write([]byte("three"))
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Abort() // after Commit: nothing
	data, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if string(data) != "three" || fi.Mode().Perm() != 0o600 {
		t.Fatalf("after Commit: %q, mode %v (the replaced file's mode should be kept)", data, fi.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	if _, err := Create(filepath.Join(dir, "missing", "f")); err == nil {
		t.Fatal("created a file in a missing directory")
	}
}
