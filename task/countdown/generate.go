package countdown

import (
	"fmt"
	"hash/fnv"
	"iter"
	"math/rand/v2"
)

// Split is a disjoint part of the problem space: Train and Test by
// [SplitOf], and Validation, test-split problems kept apart from the test
// problems of their seed.
type Split int

const (
	Train Split = iota
	Test
	// Validation problems are of the test split, so no training run draws
	// them, from a stream of their own; [Problems] passes over any among
	// the first ValidationReserve test problems of the same seed, so that
	// a run tuned or stopped on validation problems is measured on test
	// problems it never saw.
	Validation
)

// ValidationReserve is how many of a seed's first test problems its
// validation problems pass over: every evaluation of up to that many test
// problems (the model cards' 500 included) is disjoint from validation.
const ValidationReserve = 10_000

func (s Split) String() string {
	switch s {
	case Test:
		return "test"
	case Validation:
		return "validation"
	}
	return "train"
}

// ParseSplit reads "train", "test" or "validation".
func ParseSplit(s string) (Split, error) {
	switch s {
	case "train":
		return Train, nil
	case "test":
		return Test, nil
	case "validation":
		return Validation, nil
	}
	return 0, fmt.Errorf("countdown: unknown split %q (want train, test or validation)", s)
}

// testBuckets: one problem key in testBuckets belongs to the test split.
const testBuckets = 10

// SplitOf assigns a problem to a split by a hash of its key (sorted numbers
// and target). The assignment depends on nothing else, so a test problem can
// never appear in any train set, whatever the seeds or sizes; and since the
// hash is unrelated to difficulty, both splits keep the standard
// distribution.
func SplitOf(p Problem) Split {
	h := fnv.New64a()
	h.Write([]byte(p.Key()))
	if h.Sum64()%testBuckets == 0 {
		return Test
	}
	return Train
}

// Streams of randomness, so problems and the traces generated for them never
// share random numbers even under the same seed.
const (
	streamProblems uint64 = iota + 1
	streamSerial
	streamParallel
	streamSearchConfig
	streamUnsolvable
	streamValidation
	streamUnsolvableValidation
)

// splitmix64 scrambles x; it turns small consecutive seeds and indices into
// unrelated PCG states.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// NewRand returns the generator for item i of a stream under seed. Each item
// has its own generator, so items can be produced in parallel, in any order,
// with the same result.
func NewRand(seed uint64, stream uint64, i int) *rand.Rand {
	return rand.New(rand.NewPCG(splitmix64(seed^splitmix64(stream)), splitmix64(uint64(i)+stream<<56)))
}

// DrawProblem draws one problem of the split from the standard distribution:
// the target uniform in 10..100, then four numbers uniform in 1..99, redrawn
// (target kept) until the target can be reached, as the public generators do;
// a draw that lands in the other split is redrawn the same way, so the target
// stays uniform within each split. Validation draws are test-split draws
// (only [Problems] knows the test problems they must not be).
func DrawProblem(rng *rand.Rand, split Split) Problem { return draw(rng, split, true) }

// DrawUnsolvable draws as DrawProblem does but keeps the draws whose
// target cannot be reached: problems where the right end of a search is
// "No solution found.", for measuring (or training) a model's giving up.
func DrawUnsolvable(rng *rand.Rand, split Split) Problem { return draw(rng, split, false) }

// draw redraws the numbers until the problem is in split and its
// solvability is solvable.
func draw(rng *rand.Rand, split Split, solvable bool) Problem {
	if split == Validation {
		split = Test
	}
	target := MinTarget + rng.IntN(MaxTarget-MinTarget+1)
	for {
		nums := make([]int, StandardCount)
		for i := range nums {
			nums[i] = MinNumber + rng.IntN(MaxNumber-MinNumber+1)
		}
		p := Problem{Numbers: nums, Target: target}
		// The hash is far cheaper than the search: test it first.
		if SplitOf(p) == split && Solvable(p) == solvable {
			return p
		}
	}
}

// Problems yields distinct problems of a split, deterministically from seed:
// problem candidates are drawn with NewRand(seed, ..., i) for i = 0, 1, ...
// and a candidate whose key was already yielded is skipped. The first n
// problems for a seed are the same whatever n is. Validation problems come
// from a stream of their own and pass over the seed's first
// ValidationReserve test problems.
func Problems(seed uint64, split Split) iter.Seq[Problem] {
	if split == Validation {
		return apart(distinct(seed, streamValidation, Test, DrawProblem), Problems(seed, Test))
	}
	return distinct(seed, streamProblems, split, DrawProblem)
}

// UnsolvableProblems is Problems for DrawUnsolvable: distinct problems of
// a split whose targets cannot be reached, from a stream of their own.
func UnsolvableProblems(seed uint64, split Split) iter.Seq[Problem] {
	if split == Validation {
		return apart(distinct(seed, streamUnsolvableValidation, Test, DrawUnsolvable), UnsolvableProblems(seed, Test))
	}
	return distinct(seed, streamUnsolvable, split, DrawUnsolvable)
}

// apart yields problems less the first ValidationReserve of test.
func apart(problems, test iter.Seq[Problem]) iter.Seq[Problem] {
	return func(yield func(Problem) bool) {
		reserved := make(map[string]bool, ValidationReserve)
		for p := range test {
			reserved[p.Key()] = true
			if len(reserved) == ValidationReserve {
				break
			}
		}
		for p := range problems {
			if !reserved[p.Key()] && !yield(p) {
				return
			}
		}
	}
}

// distinct yields draw's problems for NewRand(seed, stream, i), i = 0, 1,
// ..., each key once.
func distinct(seed, stream uint64, split Split, draw func(*rand.Rand, Split) Problem) iter.Seq[Problem] {
	return func(yield func(Problem) bool) {
		seen := make(map[string]bool)
		for i := 0; ; i++ {
			p := draw(NewRand(seed, stream, i), split)
			k := p.Key()
			if seen[k] {
				continue
			}
			seen[k] = true
			if !yield(p) {
				return
			}
		}
	}
}
