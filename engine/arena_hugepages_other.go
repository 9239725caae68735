//go:build unix && !linux

package engine

// adviseHugePages does nothing: only Linux takes the advice.
func adviseHugePages([]byte) {}
