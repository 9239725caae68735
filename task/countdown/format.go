package countdown

import (
	"strconv"
	"strings"
)

// The line formats of a Countdown search trace, byte-compatible with the
// public Stream-of-Search and APR generators (Python list reprs included).

func appendInt(dst []byte, n int) []byte { return strconv.AppendInt(dst, int64(n), 10) }

// appendNums writes a Python list of ints: "[26, 31, 31]".
func appendNums(dst []byte, nums []int) []byte {
	dst = append(dst, '[')
	for i, n := range nums {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = appendInt(dst, n)
	}
	return append(dst, ']')
}

// appendOps writes a Python list of operation strings: "['53-22=31', '50/5=10']".
func appendOps(dst []byte, ops []Op) []byte {
	dst = append(dst, '[')
	for i, o := range ops {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = append(dst, '\'')
		dst = appendOp(dst, o)
		dst = append(dst, '\'')
	}
	return append(dst, ']')
}

func formatNums(nums []int) string { return string(appendNums(nil, nums)) }

// traceWriter accumulates trace lines.
type traceWriter struct{ b []byte }

func (w *traceWriter) String() string { return string(w.b) }

func (w *traceWriter) raw(s string) { w.b = append(w.b, s...) }

// Current State: 27:[22, 26, 31, 53], Operations: []
func (w *traceWriter) currentState(target int, nums []int, ops []Op) {
	w.b = append(w.b, "Current State: "...)
	w.b = appendInt(w.b, target)
	w.b = append(w.b, ':')
	w.b = appendNums(w.b, nums)
	w.b = append(w.b, ", Operations: "...)
	w.b = appendOps(w.b, ops)
	w.b = append(w.b, '\n')
}

// Exploring Operation: 53-22=31, Resulting Numbers: [26, 31, 31]
func (w *traceWriter) exploring(op Op, nums []int) {
	w.b = append(w.b, "Exploring Operation: "...)
	w.b = appendOp(w.b, op)
	w.b = append(w.b, ", Resulting Numbers: "...)
	w.b = appendNums(w.b, nums)
	w.b = append(w.b, '\n')
}

// Generated Node #0,1: 27:[26, 31, 31] Operation: 53-22=31
func (w *traceWriter) generated(id string, target int, nums []int, op Op) {
	w.b = append(w.b, "Generated Node #"...)
	w.b = append(w.b, id...)
	w.b = append(w.b, ": "...)
	w.b = appendInt(w.b, target)
	w.b = append(w.b, ':')
	w.b = appendNums(w.b, nums)
	w.b = append(w.b, " Operation: "...)
	w.b = appendOp(w.b, op)
	w.b = append(w.b, '\n')
}

// Moving to Node #0,1
func (w *traceWriter) moving(id string) {
	w.b = append(w.b, "Moving to Node #"...)
	w.b = append(w.b, id...)
	w.b = append(w.b, '\n')
}

// 27,27 equal: Goal Reached  /  26,27 unequal: No Solution
func (w *traceWriter) verdict(result, target int) {
	w.b = appendInt(w.b, result)
	w.b = append(w.b, ',')
	w.b = appendInt(w.b, target)
	if result == target {
		w.b = append(w.b, " equal: Goal Reached\n"...)
	} else {
		w.b = append(w.b, " unequal: No Solution\n"...)
	}
}

// childID is the id of the k-th generated child of the node with id parent.
func childID(parent string, k int) string {
	return parent + "," + strconv.Itoa(k)
}

// parentID returns the id of the parent of id, or false for the root.
func parentID(id string) (string, bool) {
	i := strings.LastIndexByte(id, ',')
	if i < 0 {
		return "", false
	}
	return id[:i], true
}

// Start Sub Search at level 1: Moving to Node #0,1
func (w *traceWriter) subSearchStart(level int, id string) {
	w.b = append(w.b, "Start Sub Search at level "...)
	w.b = appendInt(w.b, level)
	w.b = append(w.b, ": Moving to Node #"...)
	w.b = append(w.b, id...)
	w.b = append(w.b, '\n')
}

// Exit Sub Search at level 1
func (w *traceWriter) subSearchExit(level int) {
	w.b = append(w.b, "Exit Sub Search at level "...)
	w.b = appendInt(w.b, level)
	w.b = append(w.b, '\n')
}

// spawn writes the block that ends a parent call, one child per node:
//
//	<Calling Sub Searches>
//	<Start Sub Search 0 at level 1> Moving to Node #0,0
//	<End Calling Sub Searches>
func (w *traceWriter) spawn(level int, kids []*node) {
	w.b = append(w.b, "<Calling Sub Searches>\n"...)
	for i, n := range kids {
		w.b = append(w.b, "<Start Sub Search "...)
		w.b = appendInt(w.b, i)
		w.b = append(w.b, " at level "...)
		w.b = appendInt(w.b, level)
		w.b = append(w.b, "> Moving to Node #"...)
		w.b = append(w.b, n.id...)
		w.b = append(w.b, '\n')
	}
	w.b = append(w.b, "<End Calling Sub Searches>\n"...)
}

// <Goal Reached in Sub Search 1 at level 1 at Node #0,1>  /  <No Solution in ...>
func (w *traceWriter) joinEntry(solved bool, index, level int, id string) {
	if solved {
		w.b = append(w.b, "<Goal Reached in Sub Search "...)
	} else {
		w.b = append(w.b, "<No Solution in Sub Search "...)
	}
	w.b = appendInt(w.b, index)
	w.b = append(w.b, " at level "...)
	w.b = appendInt(w.b, level)
	w.b = append(w.b, " at Node #"...)
	w.b = append(w.b, id...)
	w.b = append(w.b, ">\n"...)
}
