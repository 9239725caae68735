package countdown

import (
	"fmt"
	"math"
	"math/bits"
)

// Op is one arithmetic step of a search: A Sym B = Result.
type Op struct {
	A, B   int
	Sym    byte // one of + * - /
	Result int
}

// String formats the operation the way traces write it: "53-22=31".
func (o Op) String() string {
	return fmt.Sprintf("%d%c%d=%d", o.A, o.Sym, o.B, o.Result)
}

// MarshalText writes o as "53-22=31", so paths read naturally in JSON.
func (o Op) MarshalText() ([]byte, error) { return appendOp(nil, o), nil }

// UnmarshalText reads "53-22=31".
func (o *Op) UnmarshalText(b []byte) error {
	c := cursor{s: string(b)}
	op := c.op()
	if err := c.done(); err != nil {
		return fmt.Errorf("countdown: operation %q: %w", b, err)
	}
	*o = op
	return nil
}

// appendOp appends the trace form of o to dst without allocating a string.
func appendOp(dst []byte, o Op) []byte {
	dst = appendInt(dst, o.A)
	dst = append(dst, o.Sym)
	dst = appendInt(dst, o.B)
	dst = append(dst, '=')
	return appendInt(dst, o.Result)
}

// Combine returns the operations the rules allow on a pair of numbers, in
// the order of the public generators (Stream of Search, APR): a+b, a*b, then
// larger-smaller and, when exact, larger/smaller. Subtraction of equal numbers
// gives 0; division by 0 is never offered. The order matters: it decides which
// successor a search generates first.
func Combine(a, b int) []Op {
	var buf [4]Op
	return appendCombine(buf[:0], a, b)
}

// appendCombine is Combine into a caller-owned buffer, for the solver's hot loop.
func appendCombine(dst []Op, a, b int) []Op {
	dst = append(dst, Op{A: a, B: b, Sym: '+', Result: a + b})
	if p, ok := mulChecked(a, b); ok {
		dst = append(dst, Op{A: a, B: b, Sym: '*', Result: p})
	}
	hi, lo := a, b
	if a <= b {
		hi, lo = b, a
	}
	dst = append(dst, Op{A: hi, B: lo, Sym: '-', Result: hi - lo})
	if lo != 0 && hi%lo == 0 {
		dst = append(dst, Op{A: hi, B: lo, Sym: '/', Result: hi / lo})
	}
	return dst
}

// mulChecked multiplies two non-negative ints, reporting false on overflow
// (possible only for problems far outside the standard distribution).
func mulChecked(a, b int) (int, bool) {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, false
	}
	return int(lo), true
}

// checkOp reports why o is not a legal step under the rules, or nil.
func checkOp(o Op) error {
	if o.A < 0 || o.B < 0 {
		return fmt.Errorf("operands must not be negative")
	}
	var want int
	switch o.Sym {
	case '+':
		want = o.A + o.B
	case '*':
		p, ok := mulChecked(o.A, o.B)
		if !ok {
			return fmt.Errorf("%d*%d overflows", o.A, o.B)
		}
		want = p
	case '-':
		if o.A < o.B {
			return fmt.Errorf("subtraction must take the smaller number from the larger: %d-%d", o.A, o.B)
		}
		want = o.A - o.B
	case '/':
		if o.B == 0 {
			return fmt.Errorf("division by zero")
		}
		if o.A < o.B {
			return fmt.Errorf("division must divide the larger number by the smaller: %d/%d", o.A, o.B)
		}
		if o.A%o.B != 0 {
			return fmt.Errorf("%d/%d is not exact", o.A, o.B)
		}
		want = o.A / o.B
	default:
		return fmt.Errorf("unknown operator %q", o.Sym)
	}
	if o.Result != want {
		return fmt.Errorf("%d%c%d is %d, not %d", o.A, o.Sym, o.B, want, o.Result)
	}
	return nil
}

// apply returns nums with one o.A and one o.B removed and o.Result appended,
// the order the generators use ("remaining + [result]"). It reports false when
// an operand is not available.
func apply(nums []int, o Op) ([]int, bool) {
	if len(nums) < 2 {
		return nil, false
	}
	out := make([]int, 0, len(nums)-1)
	usedA, usedB := false, false
	for _, n := range nums {
		switch {
		case !usedA && n == o.A:
			usedA = true
		case !usedB && n == o.B:
			usedB = true
		default:
			out = append(out, n)
		}
	}
	if !usedA || !usedB {
		return nil, false
	}
	return append(out, o.Result), true
}

// sameMultiset reports whether a and b hold the same numbers, in any order.
func sameMultiset(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	counts := make(map[int]int, len(a))
	for _, n := range a {
		counts[n]++
	}
	for _, n := range b {
		counts[n]--
		if counts[n] < 0 {
			return false
		}
	}
	return true
}
