//go:build unix

package eval

import (
	"errors"
	"os"
	"strings"
	"syscall"
)

// processAlive says whether a process with this pid exists: signal 0
// checks without sending anything (EPERM: it exists, owned by another
// user).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// pidNamespace identifies this process's pid namespace ("" where the
// system does not say): pids of two containers on one host are not
// comparable.
func pidNamespace() string {
	link, err := os.Readlink("/proc/self/ns/pid") // "pid:[4026531836]"
	if err != nil {
		return ""
	}
	return strings.Trim(strings.TrimPrefix(link, "pid:"), "[]")
}
