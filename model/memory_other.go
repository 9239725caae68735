//go:build !linux

package model

// availableMemory reports false: only Linux says how much memory is
// available, in /proc/meminfo.
func availableMemory() (int64, bool) { return 0, false }
