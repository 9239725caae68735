package reason

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/braid-dev/braid/backend"
)

// Confidence is how sure a thread's model was, by the measures of DeepConf
// (Fu et al. 2025; facebookresearch/deepconf): a token's confidence is the
// negative mean log-probability of the top-k candidates at its position,
// high where the model is sure (its alternatives unlikely); a group's is
// the mean over a window of consecutive tokens. Only the model's own
// tokens count: the environment's involve no choice.
type Confidence struct {
	Tokens int     `json:"tokens"` // the tokens measured
	Mean   float64 `json:"mean"`
	// LowestGroup is the lowest group confidence anywhere in the thread
	// (the mean of all its tokens when it has fewer than a window): where
	// it was least sure, which DeepConf finds predicts a wrong trace.
	LowestGroup float64 `json:"lowest_group"`
	// Tail is the mean over the thread's last window of tokens.
	Tail float64 `json:"tail"`
	// Pruned says the thread was stopped when its group confidence fell
	// below the run's threshold.
	Pruned bool `json:"pruned,omitempty"`
}

// Confident configures the measures and the pruning by them. The zero
// value measures nothing.
type Confident struct {
	// Measure asks every thread's backend for log-probabilities and keeps
	// each thread's Confidence.
	Measure bool
	// Window is the tokens a group spans (32 when 0): DeepConf's 2,048 is
	// for reasoning traces of tens of thousands of tokens; a Countdown
	// thread's model writes a few hundred.
	Window int
	// TopK is the candidates a token's confidence averages (10 when 0).
	TopK int
	// PruneBelow, when positive, stops a thread whose group confidence
	// falls below it, once it has written a window (DeepConf's online
	// mode): a stopped child joins as unsolved, a stopped sample does not
	// vote. A spawning search's root is never stopped: it carries the
	// run. It implies Measure.
	PruneBelow float64
}

func (c Confident) on() bool { return c.Measure || c.PruneBelow > 0 }

func (c Confident) window() int {
	if c.Window > 0 {
		return c.Window
	}
	return 32
}

func (c Confident) topK() int {
	if c.TopK > 0 {
		return c.TopK
	}
	return 10
}

// errLowConfidence is why a pruned thread was stopped.
var errLowConfidence = errors.New("its group confidence fell below the threshold")

// confTracker follows a thread's token confidences as they stream.
type confTracker struct {
	ring          []float64 // the last window's token confidences
	n             int       // tokens seen
	groupSum, sum float64
	lowest        float64
	below         float64 // the pruning threshold (0: none)
	// tripped: a group fell below the threshold; signalled: add said so
	// (once); pruned: the thread was stopped for it (its caller's say: a
	// call may finish before the stop reaches it).
	tripped, signalled, pruned bool
}

func newConfTracker(c Confident) *confTracker {
	return &confTracker{ring: make([]float64, c.window()), lowest: math.Inf(1), below: c.PruneBelow}
}

// tokenConfidence is a token's confidence: the negative mean logprob of
// its alternatives, or of the token itself when the backend gave none.
func tokenConfidence(t backend.Token) float64 {
	if len(t.Top) == 0 {
		return -t.Logprob
	}
	var s float64
	for _, a := range t.Top {
		s += a.Logprob
	}
	return -s / float64(len(t.Top))
}

// add takes a chunk's tokens and reports whether the thread has just
// fallen below the threshold (once).
func (c *confTracker) add(toks []backend.Token) bool {
	w := len(c.ring)
	for _, t := range toks {
		if t.Filled {
			continue
		}
		x := tokenConfidence(t)
		i := c.n % w
		c.groupSum += x - c.ring[i]
		c.ring[i] = x
		c.sum += x
		c.n++
		if c.n >= w {
			g := c.groupSum / float64(w)
			c.lowest = min(c.lowest, g)
			if c.below > 0 && g < c.below && !c.tripped {
				c.tripped = true
			}
		}
	}
	if c.tripped && !c.signalled {
		c.signalled = true
		return true
	}
	return false
}

// measure is the measures of a finished completion's tokens (nothing is
// pruned after the fact).
func (c Confident) measure(toks []backend.Token) *Confidence {
	t := newConfTracker(Confident{Window: c.Window})
	t.add(toks)
	return t.result()
}

// result is the thread's measures, nil when it wrote no token.
func (c *confTracker) result() *Confidence {
	if c.n == 0 {
		return nil
	}
	w := min(c.n, len(c.ring))
	var tail float64
	for i := range w {
		tail += c.ring[(c.n-1-i)%len(c.ring)]
	}
	tail /= float64(w)
	lowest := c.lowest
	if c.n < len(c.ring) {
		lowest = c.sum / float64(c.n)
	}
	return &Confidence{Tokens: c.n, Mean: c.sum / float64(c.n), LowestGroup: lowest, Tail: tail, Pruned: c.pruned}
}

// intArg reads a strategy's integer argument key=val, in lo..hi.
func intArg(key, val string, lo, hi int, what string) (int, error) {
	n, err := strconv.Atoi(val)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s=%q: want %s in %d..%d", key, val, what, lo, hi)
	}
	return n, nil
}

// parseConfident reads a strategy's confidence arguments,
// prune=T[,window=W][,topk=K] (or measure alone).
func parseConfident(args []string) (Confident, error) {
	var c Confident
	for _, a := range args {
		key, val, _ := strings.Cut(a, "=")
		switch key {
		case "measure":
			c.Measure = true
		case "prune":
			v, err := strconv.ParseFloat(val, 64)
			if err != nil || !(v > 0) || math.IsInf(v, 0) {
				return c, fmt.Errorf("prune=%q: want a positive confidence threshold", val)
			}
			c.PruneBelow = v
		case "window", "topk":
			n, err := intArg(key, val, 1, 1<<16, "a number of tokens")
			if err != nil {
				return c, err
			}
			if key == "window" {
				c.Window = n
			} else {
				c.TopK = n
			}
		default:
			return c, fmt.Errorf("unknown argument %q (want prune=T, window=W, topk=K or measure)", a)
		}
	}
	return c, nil
}
