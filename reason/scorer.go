package reason

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/task"
)

// Scorer scores a problem's candidate solutions, higher better, for
// best-of-N to pick by. A scorer that uses the reference answer would be
// an oracle (pass@k), and there is none.
type Scorer interface {
	Name() string
	// Score returns a score for each candidate (NaN where it has none),
	// and the threads the scoring ran (a judge's calls), for the tree.
	Score(ctx context.Context, b backend.Backend, t task.Task, p task.Problem, candidates []*Thread, answers []string, observe Observer) ([]float64, []*Thread, error)
}

// ParseScorer reads a scorer's name: verifier (the task's checker),
// confidence (a candidate's lowest group confidence, DeepConf), judge (the
// model scores each candidate from 0 to 10; judge-prompt=FILE gives the
// prompt, with {problem} and {solution} in it), judge-list (the model
// picks one of all candidates) or reward (a reward model, rm).
func ParseScorer(name, promptFile string, t task.Task, rm backend.Rewarder) (Scorer, error) {
	switch name {
	case "reward":
		if rm == nil {
			return nil, errors.New("scorer reward needs a reward model (--reward URL)")
		}
		return reward{rm}, nil
	case "verifier":
		c, ok := t.(task.Checker)
		if !ok {
			return nil, fmt.Errorf("scorer verifier: %s answers are judged only against a reference answer (picking by it is pass@k, an oracle)", t.Name())
		}
		return verifier{c}, nil
	case "confidence":
		return confidenceScorer{}, nil
	case "judge":
		prompt := defaultJudgePrompt
		if promptFile != "" {
			b, err := os.ReadFile(promptFile)
			if err != nil {
				return nil, fmt.Errorf("scorer judge: %w", err)
			}
			prompt = string(b)
			if !strings.Contains(prompt, "{solution}") {
				return nil, fmt.Errorf("scorer judge: the prompt in %s has no {solution} to put a candidate in", promptFile)
			}
		}
		return judge{prompt: prompt}, nil
	case "judge-list":
		return judgeList{}, nil
	}
	return nil, fmt.Errorf("unknown scorer %q (want verifier, confidence, judge, judge-list or reward)", name)
}

// reward scores each candidate, after the problem's prompt, by a reward
// model.
type reward struct{ rm backend.Rewarder }

func (reward) Name() string { return "reward" }

func (r reward) Score(ctx context.Context, _ backend.Backend, t task.Task, p task.Problem, candidates []*Thread, _ []string, _ Observer) ([]float64, []*Thread, error) {
	prompt := t.Prompt(p)
	texts := make([]string, len(candidates))
	for i, c := range candidates {
		texts[i] = c.Text // a search's thread holds its prompt
		if !strings.HasPrefix(c.Text, prompt) {
			texts[i] = prompt + "\n\n" + strings.TrimSpace(c.Text)
		}
	}
	s, err := r.rm.Reward(ctx, texts)
	if err != nil {
		return nil, nil, fmt.Errorf("scorer reward: %w", err)
	}
	return s, nil, nil
}

// verifier scores by the task's checker: 1 for an answer it accepts.
type verifier struct{ checker task.Checker }

func (verifier) Name() string { return "verifier" }

func (v verifier) Score(_ context.Context, _ backend.Backend, _ task.Task, p task.Problem, candidates []*Thread, answers []string, _ Observer) ([]float64, []*Thread, error) {
	s := make([]float64, len(candidates))
	for i, a := range answers {
		if a != "" && v.checker.Check(p, a) == nil {
			s[i] = 1
		}
	}
	return s, nil, nil
}

// confidenceScorer scores a candidate by its lowest group confidence.
type confidenceScorer struct{}

func (confidenceScorer) Name() string { return "confidence" }

func (confidenceScorer) Score(_ context.Context, _ backend.Backend, _ task.Task, _ task.Problem, candidates []*Thread, _ []string, _ Observer) ([]float64, []*Thread, error) {
	s := make([]float64, len(candidates))
	for i, c := range candidates {
		s[i] = math.NaN()
		if c.Confidence != nil && !c.Confidence.Pruned {
			s[i] = c.Confidence.LowestGroup
		}
	}
	return s, nil, nil
}

const defaultJudgePrompt = "{problem}\n\nHere is a proposed solution:\n\n{solution}\n\n" +
	"How likely is this solution to be correct? Reply first with a score from 0 (surely wrong) to 10 (surely right), then explain briefly."

// judge has the model score each candidate alone, concurrently.
type judge struct{ prompt string }

func (judge) Name() string { return "judge" }

func (j judge) Score(ctx context.Context, b backend.Backend, t task.Task, p task.Problem, candidates []*Thread, _ []string, observe Observer) ([]float64, []*Thread, error) {
	s := make([]float64, len(candidates))
	threads := make([]*Thread, len(candidates))
	errs := make([]error, len(candidates))
	var wg sync.WaitGroup
	for i, c := range candidates {
		wg.Go(func() {
			prompt := strings.NewReplacer("{problem}", t.Prompt(p), "{solution}", strings.TrimSpace(c.Text)).Replace(j.prompt)
			threads[i], errs[i] = call(ctx, b, 0, "", observe, fmt.Sprintf("judge %d", i+1), prompt)
			s[i] = math.NaN()
			if errs[i] == nil {
				if m := firstNumber.FindString(threads[i].Text); m != "" {
					if v, err := strconv.ParseFloat(m, 64); err == nil && v <= 10 {
						s[i] = v / 10
					}
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return s, threads, nil
}

// judgeList has the model read every candidate and name the best: 1 for
// it, 0 for the others.
type judgeList struct{}

func (judgeList) Name() string { return "judge-list" }

func (judgeList) Score(ctx context.Context, b backend.Backend, t task.Task, p task.Problem, candidates []*Thread, _ []string, observe Observer) ([]float64, []*Thread, error) {
	prompt := withSolutions(t.Prompt(p), "candidate", candidates) +
		fmt.Sprintf("\nWhich solution is most likely correct? Reply with its number, 1 to %d, first.", len(candidates))
	th, err := call(ctx, b, 0, "", observe, "judge", prompt)
	if err != nil {
		return nil, nil, err
	}
	s := make([]float64, len(candidates))
	if m := firstNumber.FindString(th.Text); m != "" {
		if n, err := strconv.Atoi(m); err == nil && n >= 1 && n <= len(candidates) {
			s[n-1] = 1
		}
	}
	return s, []*Thread{th}, nil
}

// best is the candidate with the highest score that gave an answer, the
// first of those that tie; -1 when none has both.
func best(scores []float64, answers []string) int {
	pick := -1
	for i, s := range scores {
		if math.IsNaN(s) || answers[i] == "" {
			continue
		}
		if pick < 0 || s > scores[pick] {
			pick = i
		}
	}
	return pick
}
