//go:build !unix

package eval

// processAlive cannot tell on this system, so it says yes: the claims of
// a dead worker then wait for their lease to lapse.
func processAlive(int) bool { return true }
