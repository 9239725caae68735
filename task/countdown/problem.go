package countdown

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// The standard distribution, as in the public Stream-of-Search and APR
// generators: four numbers drawn uniformly from 1..99, a target drawn
// uniformly from 10..100, the numbers redrawn until the target can be reached
// using all of them.
const (
	StandardCount = 4
	MinNumber     = 1
	MaxNumber     = 99
	MinTarget     = 10
	MaxTarget     = 100
)

// Limits on problems braid accepts from users. They keep the exhaustive
// search small and the heuristics cheap; a product that would overflow an
// int64 is not offered as a step (see Combine).
const (
	MinCount       = 2
	MaxCount       = 6
	MaxInputNumber = 10000
	MaxInputTarget = 1_000_000
)

// Problem is one Countdown instance: reach Target using every number once.
type Problem struct {
	Numbers []int `json:"numbers"`
	Target  int   `json:"target"`
}

// Validate reports what is wrong with p, or nil.
func (p Problem) Validate() error {
	if len(p.Numbers) < MinCount || len(p.Numbers) > MaxCount {
		return fmt.Errorf("countdown: a problem needs %d to %d numbers, got %d", MinCount, MaxCount, len(p.Numbers))
	}
	for _, n := range p.Numbers {
		if n < 1 || n > MaxInputNumber {
			return fmt.Errorf("countdown: number %d is outside 1..%d", n, MaxInputNumber)
		}
	}
	if p.Target < 0 || p.Target > MaxInputTarget {
		return fmt.Errorf("countdown: target %d is outside 0..%d", p.Target, MaxInputTarget)
	}
	return nil
}

// Key identifies a problem up to the order of its numbers: the sorted
// numbers and the target, as the public generators deduplicate splits.
func (p Problem) Key() string {
	s := slices.Clone(p.Numbers)
	slices.Sort(s)
	b := make([]byte, 0, 24)
	for i, n := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(n), 10)
	}
	b = append(b, ':')
	return string(strconv.AppendInt(b, int64(p.Target), 10))
}

// String renders p as "27: 22 26 31 53".
func (p Problem) String() string {
	b := strconv.AppendInt(nil, int64(p.Target), 10)
	b = append(b, ':')
	for _, n := range p.Numbers {
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(n), 10)
	}
	return string(b)
}

// ParseProblemJSON reads one JSONL line of the form
// {"numbers":[22,26,31,53],"target":27} and validates it.
func ParseProblemJSON(line []byte) (Problem, error) {
	var p Problem
	if err := json.Unmarshal(line, &p); err != nil {
		return Problem{}, fmt.Errorf("countdown: problem JSON: %w", err)
	}
	if p.Numbers == nil {
		return Problem{}, fmt.Errorf("countdown: problem JSON has no \"numbers\"")
	}
	return p, p.Validate()
}
