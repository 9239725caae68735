package reason

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/task"
)

// think is DeepThink with rounds: a search over branches. Round 0 draws K
// branches; each round scores every open branch, keeps the best Keep and
// extends each with new branches from its text (the K split among them),
// dropping the rest with the reason on their threads; the best branch
// left is refined into the final solution. The run's token budget caps
// the whole search: a round that finds it spent extends nothing.
func (s DeepThink) think(ctx context.Context, b backend.Backend, t task.Task, p task.Problem, observe Observer) (*Result, error) {
	start := time.Now()
	r, answers, err := samples(ctx, Search{Options: s.Options, Effort: s.Effort}, s.K, b, t, p, observe)
	if err != nil {
		return nil, err
	}
	root := r.Tree
	open := slices.Clone(root.Children)
	for round := 1; round <= s.Rounds; round++ {
		scores, judges, err := s.score(ctx, b, t, p, open, answers, observe, fmt.Sprintf("round %d", round))
		if err != nil {
			return nil, err
		}
		s.account(r, judges)
		root.Children = append(root.Children, judges...)
		for i, th := range open {
			if !math.IsNaN(scores[i]) {
				th.Score = &scores[i]
			}
		}
		keep := ranked(scores)[:min(s.keep(), len(open))]
		kept := make([]*Thread, len(keep))
		keptAnswers := make([]string, len(keep))
		for j, i := range keep {
			kept[j], keptAnswers[j] = open[i], answers[i]
		}
		for i, th := range open {
			if !slices.Contains(keep, i) {
				th.Dropped = fmt.Sprintf("round %d: scored %s, below the %d kept", round, scoreText(scores[i]), len(keep))
			}
		}
		if s.MaxTotalTokens > 0 && r.TotalTokens >= s.MaxTotalTokens {
			open, answers = kept, keptAnswers
			break
		}
		// Each kept branch grows K/Keep new ones from its text, at once.
		per := max(1, s.K/len(kept))
		next := make([][]*Thread, len(kept))
		errs := make([]error, len(kept))
		var wg sync.WaitGroup
		for j, th := range kept {
			wg.Go(func() {
				prompt := t.Prompt(p) + "\n\nHere is a solution in progress:\n\n" + strings.TrimSpace(th.Text) +
					"\n\nCheck every step, fix any mistake, and carry it on to a complete solution."
				for c := range per {
					name := fmt.Sprintf("%s.%d", th.Node, c+1)
					seed := uint64(0)
					if s.Seed != 0 {
						seed = seedOf(s.Seed, t.Key(p), name, round)
					}
					kid, err := s.branch(ctx, b, observe, name, th.Node, prompt, seed)
					if err != nil {
						errs[j] = err
						return
					}
					next[j] = append(next[j], kid)
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
		open, answers = nil, nil
		var longest int
		for j, kids := range next {
			kept[j].Children = append(kept[j].Children, kids...)
			for _, k := range kids {
				r.add(k)
				longest = max(longest, k.Tokens)
				open = append(open, k)
				answers = append(answers, t.Extract(p, k.Text))
			}
		}
		r.CriticalPathTokens += longest
	}
	// The best branch left, as the last round scored it (or the first
	// open one), is refined into the answer.
	chosen := open[0]
	scores, judges, err := s.score(ctx, b, t, p, open, answers, observe, "final")
	if err != nil {
		return nil, err
	}
	s.account(r, judges)
	root.Children = append(root.Children, judges...)
	if i := ranked(scores)[0]; !math.IsNaN(scores[i]) {
		chosen = open[i]
		chosen.Score = &scores[i]
	}
	refine := t.Prompt(p) + "\n\nHere is a solution:\n\n" + strings.TrimSpace(chosen.Text) +
		"\n\nCheck every step. Fix any mistake, and write the final solution."
	final, err := call(ctx, b, s.MaxTokens, s.Effort, observe, "refine", refine)
	if err != nil {
		return nil, err
	}
	final.Children = []*Thread{root}
	r.Tree = final
	r.add(final)
	r.CriticalPathTokens += final.Tokens
	r.LatencyMS = time.Since(start).Milliseconds()
	r.Answer = t.Extract(p, final.Text)
	observe.emit(Event{Kind: AnswerReady, Text: r.Answer})
	return r, nil
}

// score runs the scorer over the open branches, its judges' threads named
// within stage ("round 2/judge 1").
func (s DeepThink) score(ctx context.Context, b backend.Backend, t task.Task, p task.Problem, open []*Thread, answers []string,
	observe Observer, stage string) ([]float64, []*Thread, error) {
	scores, judges, err := s.Scorer.Score(ctx, b, t, p, open, answers, observe.under(stage, ""))
	for _, j := range judges {
		j.Node = stage + "/" + j.Node
	}
	return scores, judges, err
}

// branch draws one new branch, sampled.
func (s DeepThink) branch(ctx context.Context, b backend.Backend, observe Observer, name, parent, prompt string, seed uint64) (*Thread, error) {
	req := &backend.Request{Prompt: prompt, MaxTokens: s.MaxTokens, Temperature: s.Temperature, Seed: seed, Effort: s.Effort}
	if s.Confidence.on() {
		req.TopLogprobs = s.Confidence.topK() // for the confidence scorer
	}
	th, c, err := callThread(ctx, b, observe, name, parent, req)
	if err != nil {
		return nil, err
	}
	if s.Confidence.on() {
		th.Confidence = s.Confidence.measure(c.Tokens)
	}
	return th, nil
}

// account counts a scoring's judges, which ran together.
func (s DeepThink) account(r *Result, judges []*Thread) {
	longest := 0
	for _, j := range judges {
		r.add(j)
		longest = max(longest, j.Tokens)
	}
	r.CriticalPathTokens += longest
}

func (s DeepThink) keep() int {
	if s.Keep > 0 {
		return s.Keep
	}
	return 2
}

// ranked is the candidates' indexes, best score first, unscored last, the
// earlier first on a tie.
func ranked(scores []float64) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		sa, sb := scores[a], scores[b]
		switch {
		case math.IsNaN(sa) && math.IsNaN(sb):
			return 0
		case math.IsNaN(sa):
			return 1
		case math.IsNaN(sb):
			return -1
		}
		return cmp.Compare(sb, sa)
	})
	return idx
}

func scoreText(s float64) string {
	if math.IsNaN(s) {
		return "nothing"
	}
	return fmt.Sprintf("%.2f", s)
}
