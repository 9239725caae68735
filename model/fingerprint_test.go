package model

import (
	"testing"
	"testing/fstest"
)

// The fingerprint follows the files' bytes: the same model in another
// place matches, a changed byte in any file or a chat template added does
// not, a missing file is an error naming it.
func TestFingerprint(t *testing.T) {
	files := func(weights string) fstest.MapFS {
		return fstest.MapFS{
			"a/" + ConfigFile:    {Data: []byte(`{"hidden_size": 8}`)},
			"a/" + TokenizerFile: {Data: []byte(`{"model": {}}`)},
			"a/" + WeightsFile:   {Data: []byte(weights)},
		}
	}
	sum := func(fsys fstest.MapFS, dir string) string {
		t.Helper()
		s, err := Fingerprint(fsys, dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := sum(files("weights"), "a")
	moved := fstest.MapFS{}
	for name, f := range files("weights") {
		moved["elsewhere/"+name[len("a/"):]] = f
	}
	if got := sum(moved, "elsewhere"); got != base {
		t.Errorf("the same files elsewhere: %s, want %s", got, base)
	}
	if got := sum(files("weightz"), "a"); got == base {
		t.Error("a changed weight kept the fingerprint")
	}
	templated := files("weights")
	templated["a/"+TokenizerConfigFile] = &fstest.MapFile{Data: []byte(`{"chat_template": "{{ messages[0].content }}"}`)}
	if got := sum(templated, "a"); got == base {
		t.Error("a chat template added kept the fingerprint")
	}
	missing := files("weights")
	delete(missing, "a/"+TokenizerFile)
	if _, err := Fingerprint(missing, "a"); err == nil {
		t.Error("a directory without a tokenizer was fingerprinted")
	}
}
