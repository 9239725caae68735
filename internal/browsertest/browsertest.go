// Package browsertest finds a headless browser for tests that load braid's
// pages: the one BRAID_TEST_CHROMIUM names (.ci/run sets it, so CI never
// skips those tests), else chromium on the PATH; without one the test is
// skipped, saying why.
package browsertest

import (
	"os"
	"os/exec"
	"testing"
)

// Env names the browser's path for tests.
const Env = "BRAID_TEST_CHROMIUM"

// Path returns the browser's path, or skips the test.
func Path(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(Env); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skipf("no headless browser: set %s or install chromium", Env)
	return ""
}
