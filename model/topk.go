package model

import (
	"math"

	"github.com/braid-dev/braid/tensor"
)

// TopK selects the positions a sparse model's token attends to: the k
// with the highest indexer scores. It holds the scratch of the selection,
// reused from one row to the next; the zero value is ready to use, and
// one TopK serves one goroutine.
//
// The selection is exact and its set the only one the rule allows, so
// how it is found does not change what a model computes: a sample of the
// scores gives a threshold that a little more than k of them pass
// (tensor.AtLeast finds those in one vector pass), and the k-th highest
// is found among those alone, not among every score; should fewer than k
// pass, among all.
type TopK struct {
	sample, vals []float32
	at, picks    []int32
}

// topKSample is how many scores the threshold is estimated from.
const topKSample = 256

// Select returns the positions of the k highest scores, in increasing
// order: all of them when there are no more than k; else ties at the
// k-th go to the later positions and a NaN score is never chosen (a model
// whose indexer makes NaN has no ranking to follow). The slice is t's,
// valid until its next Select.
func (t *TopK) Select(scores []float32, k int) []int32 {
	n := len(scores)
	t.picks = t.picks[:0]
	if k <= 0 {
		return t.picks
	}
	if n <= k {
		for p := range n {
			t.picks = append(t.picks, int32(p))
		}
		return t.picks
	}
	t.vals, t.at = resize(t.vals, n+16), resize(t.at, n+16)
	c := -1
	if th, ok := t.threshold(scores, k); ok {
		c = tensor.AtLeast(t.vals, t.at, scores, th)
	}
	if c < k { // no threshold, or one too high: every score is a candidate
		c = tensor.AtLeast(t.vals, t.at, scores, float32(math.Inf(-1)))
	}
	vals, at := t.vals[:c], t.at[:c]
	if c <= k {
		return append(t.picks, at...)
	}
	tau := kthLargest(vals, k)
	above := tensor.CountAtLeast(vals, fromOrder(order(tau)+1))
	equal := tensor.CountAtLeast(vals, tau) - above
	skip := equal - (k - above) // the ties before those taken
	for i, v := range vals {
		if v > tau || v == tau && skip <= 0 {
			t.picks = append(t.picks, at[i])
		}
		if v == tau {
			skip--
		}
	}
	return t.picks
}

// threshold estimates from an even sample of the scores a value that a
// little more than k of them reach: the sample's quantile at k/n moved
// three standard deviations of its rank up, so that fewer than k pass
// about once in a thousand rows. It says false where a sample would not
// save work: few scores, or k a large share of them.
func (t *TopK) threshold(scores []float32, k int) (float32, bool) {
	n := len(scores)
	if n < 4*topKSample || n < 4*k {
		return 0, false
	}
	stride := n / topKSample
	t.sample = t.sample[:0]
	for i := stride / 2; len(t.sample) < topKSample; i += stride {
		t.sample = append(t.sample, scores[i])
	}
	e := float64(k) * topKSample / float64(n) // k's rank in the sample
	r := int(e+3*math.Sqrt(e)) + 2
	if r >= topKSample {
		return 0, false
	}
	return kthLargest(t.sample, r), true
}

// kthLargest returns the k-th largest value of x (k from 1, no more than
// x has values that are not NaN): the highest t that k of them reach,
// found by bisection over float32's order, one vector count a step (32
// steps, each a pass over x: on a few hundred values, several times
// faster than Hoare's selection, whose branches the CPU cannot predict).
// Zeros of either sign count as equal, as comparisons have them: a
// k-th largest zero is +0.
func kthLargest(x []float32, k int) float32 {
	lo, hi := order(float32(math.Inf(-1))), order(float32(math.Inf(1)))
	for lo < hi { // k values reach fromOrder(lo); none beyond hi does
		mid := int32((int64(lo) + int64(hi) + 1) >> 1)
		if tensor.CountAtLeast(x, fromOrder(mid)) >= k {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return fromOrder(lo)
}

// order maps a float32 that is not NaN to an integer of the same order:
// its bits as a signed integer, the magnitude bits of a negative one
// flipped so that larger magnitudes come lower.
func order(v float32) int32 {
	b := int32(math.Float32bits(v))
	if b < 0 {
		b ^= math.MaxInt32
	}
	return b
}

// fromOrder is order's inverse.
func fromOrder(b int32) float32 {
	if b < 0 {
		b ^= math.MaxInt32
	}
	return math.Float32frombits(uint32(b))
}
