package engine

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/tensor"
)

// sampler picks a thread's next token from its logits: greedily at
// temperature 0, else from the softmax at the temperature, restricted to
// the top k and then to the top-p nucleus. Its random source is the
// thread's own, seeded from the request, so a thread samples the same
// tokens whatever runs beside it.
type sampler struct {
	temperature float64
	topK        int
	topP        float64
	rng         *rand.Rand
	// scratch is where a draw works: the engine's, which draws for one
	// thread at a time (a vocabulary's weights are too large to keep for
	// each of hundreds of threads), else the sampler's own.
	scratch *sampleScratch
	own     sampleScratch
}

// sampleScratch is a draw's working memory.
type sampleScratch struct {
	w    []float32 // each token's weight
	cand []candidate
}

type candidate struct {
	id int
	p  float64
}

func newSampler(req *backend.Request, seed uint64) *sampler {
	return &sampler{temperature: req.Temperature, topK: req.TopK, topP: req.TopP,
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// sample returns the chosen token. It never fails: logits that are not
// numbers (a corrupt model) count as impossible, a distribution that
// leaves no candidate, or only infinite ones, falls back to the most
// likely token, and a temperature whose inverse is not finite decodes
// greedily.
func (s *sampler) sample(logits []float32) int {
	best := argmax(logits)
	inv, top := 1/s.temperature, logits[best]
	if s.temperature == 0 || s.topK == 1 || math.IsInf(inv, 0) || math.IsNaN(inv) || math.IsInf(float64(top), 0) || top != top {
		return best
	}
	sc := s.scratch
	if sc == nil {
		sc = &s.own
	}
	cand := sc.cand[:0]
	// Weights relative to the most likely token, by the vector exp (a
	// vocabulary of 150,000 tokens is 150,000 exps a token); those below
	// e^-40 of it cannot be drawn in practice and only slow the sort. A
	// NaN logit fails the comparison and is dropped.
	if cap(sc.w) < len(logits) {
		sc.w = make([]float32, len(logits))
	}
	w := sc.w[:len(logits)]
	inv32 := float32(inv)
	for id, l := range logits {
		w[id] = (l - top) * inv32
	}
	tensor.ExpSlice(w, w)
	const cut = 4.248354e-18 // e^-40
	for id, p := range w {
		if p > cut {
			cand = append(cand, candidate{id, float64(p)})
		}
	}
	sc.cand = cand
	if s.topK == 0 && s.topP > 0 && s.topP < 1 && len(cand) > 1 {
		// A token below (1-p)/(n-1) of the total cannot be in the nucleus:
		// the tokens above it would reach p first. Dropping them before
		// the sort saves most of it.
		var total float64
		for _, c := range cand {
			total += c.p
		}
		// The most likely token (weight 1) always stays.
		cut := min(1, (1-s.topP)/float64(len(cand)-1)*total)
		kept := cand[:0]
		for _, c := range cand {
			if c.p >= cut {
				kept = append(kept, c)
			}
		}
		cand = kept
	}
	needSort := s.topK > 0 && s.topK < len(cand) || s.topP > 0 && s.topP < 1
	if needSort {
		slices.SortFunc(cand, func(a, b candidate) int {
			if c := cmp.Compare(b.p, a.p); c != 0 {
				return c
			}
			return cmp.Compare(a.id, b.id)
		})
		if s.topK > 0 && s.topK < len(cand) {
			cand = cand[:s.topK]
		}
		if s.topP > 0 && s.topP < 1 {
			var total float64
			for _, c := range cand {
				total += c.p
			}
			var sum float64
			for i, c := range cand {
				sum += c.p
				if sum >= s.topP*total {
					cand = cand[:i+1]
					break
				}
			}
		}
	}
	var total float64
	for _, c := range cand {
		total += c.p
	}
	if len(cand) == 0 || !(total > 0) || math.IsInf(total, 0) {
		return best
	}
	u := s.rng.Float64() * total
	for _, c := range cand {
		u -= c.p
		if u < 0 {
			return c.id
		}
	}
	return cand[len(cand)-1].id
}

// argmax returns the first index of the largest value, NaN counting as
// smaller than every number; 0 when every value is NaN.
func argmax(x []float32) int {
	best := -1
	for i, v := range x {
		if v == v && (best < 0 || v > x[best]) {
			best = i
		}
	}
	return max(best, 0)
}

// logprobs returns the log-probability of token under the model's own
// distribution (the raw logits' softmax) and, with top > 0, the top most
// likely tokens.
func logprobs(logits []float32, token, top int) (float64, []backend.TopToken) {
	max := float64(logits[argmax(logits)])
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l) - max)
	}
	lse := max + math.Log(sum)
	lp := float64(logits[token]) - lse
	if top <= 0 {
		return lp, nil
	}
	top = min(top, len(logits))
	best := make([]backend.TopToken, 0, top+1)
	for id, l := range logits {
		v := float64(l) - lse
		if len(best) == top && v <= best[top-1].Logprob {
			continue
		}
		i, _ := slices.BinarySearchFunc(best, v, func(t backend.TopToken, v float64) int { return cmp.Compare(v, t.Logprob) })
		// Equal values keep id order: insert after them.
		for i < len(best) && best[i].Logprob == v {
			i++
		}
		best = slices.Insert(best, i, backend.TopToken{ID: id, Logprob: v})
		if len(best) > top {
			best = best[:top]
		}
	}
	return lp, best
}
