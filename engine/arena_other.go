//go:build !unix

package engine

import "errors"

// mapAnonymous is not available here: the arena takes its slabs from the
// heap.
func mapAnonymous(int) ([]byte, error) { return nil, errors.New("no anonymous mappings") }

func unmap([]byte) {}
