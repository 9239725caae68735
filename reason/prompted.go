package reason

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/task"
)

// Parallel is prompted parallel thinking, for a model trained on no
// parallel format: a first call asks it to split the problem into
// independent parts, braid works each part in a thread of its own,
// concurrently, and a last call reads the parts' work and concludes. A
// model that does not split the problem (it names no part, or one) is
// asked to solve it in one thread: the strategy degrades to serial.
type Parallel struct {
	Options
	// K caps the parts a plan may name (4 when 0); parts past it are
	// dropped.
	K int
	// Effort is the reasoning effort the requests ask for ("" for the
	// model's default).
	Effort string
}

// Name implements Strategy.
func (s Parallel) Name() string {
	if s.K > 0 {
		return fmt.Sprintf("parallel:k=%d", s.K)
	}
	return "parallel"
}

// part is one line of a plan: "<Part>1: ...</Part>".
var part = regexp.MustCompile(`<Part>\s*([0-9]+)\s*:\s*([^<]*?)\s*</Part>`)

// parts reads a plan's parts, at most k, numbered as the model numbered
// them, each once.
func parts(plan string, k int) (labels, texts []string) {
	seen := map[string]bool{}
	for _, m := range part.FindAllStringSubmatch(plan, -1) {
		if len(labels) == k || seen[m[1]] || m[2] == "" {
			continue
		}
		seen[m[1]] = true
		labels, texts = append(labels, m[1]), append(texts, m[2])
	}
	return labels, texts
}

// Solve implements Strategy.
func (s Parallel) Solve(ctx context.Context, b backend.Backend, t task.Task, p task.Problem, observe Observer) (*Result, error) {
	start := time.Now()
	observe = serialized(observe)
	k := s.K
	if k <= 0 {
		k = 4
	}
	question := t.Prompt(p)
	key := t.Key(p)
	planPrompt := question + fmt.Sprintf("\n\nDo not solve the problem yet. If it splits into parts that can be worked on independently, "+
		"at the same time, name 2 to %d of them, one per line, as\n<Part>1: what to work out</Part>\n<Part>2: what to work out</Part>\n"+
		"and nothing else. If it does not split, write only: <Part>1: the whole problem</Part>", k)
	var used atomic.Int64 // the run's tokens so far, against MaxTotalTokens
	plan, err := s.call(ctx, b, observe, "plan", "", planPrompt, seedOf(s.Seed, key, "plan", 0), s.budget(&used, 1))
	if err != nil {
		return nil, err
	}
	used.Add(int64(plan.Tokens))
	labels, texts := parts(plan.Text, k)
	var final *Thread
	if len(labels) < 2 {
		// Nothing to run in parallel: one thread solves it.
		plan.Reason = "the plan names fewer than two parts"
		final, err = s.call(ctx, b, observe, "solve", "", question, seedOf(s.Seed, key, "solve", 0), s.budget(&used, 1))
	} else {
		var list strings.Builder
		for i, l := range labels {
			fmt.Fprintf(&list, "Part %s: %s\n", l, texts[i])
		}
		kids := make([]*Thread, len(labels))
		errs := make([]error, len(labels))
		// The parts split what the plan left; the conclusion gets what
		// they leave, if anything.
		share := s.budget(&used, len(labels)+1)
		var wg sync.WaitGroup
		for i, l := range labels {
			wg.Go(func() {
				prompt := question + "\n\nThe problem has been split into parts that are worked on at the same time:\n" + list.String() +
					"\nWork on part " + l + " only: " + texts[i] + "\nShow the work briefly, and end with the part's result."
				kids[i], errs[i] = s.call(ctx, b, observe, "part "+l, "plan", prompt, seedOf(s.Seed, key, "part "+l, 0), share)
				if kids[i] != nil {
					used.Add(int64(kids[i].Tokens))
				}
				if errs[i] != nil && ctx.Err() == nil {
					// A part whose call failed for good is a failed
					// thread; the conclusion reads that it failed.
					kids[i] = &Thread{Node: "part " + l, Finish: finishFailed, Reason: oneLine(errs[i])}
					errs[i] = nil
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
		plan.Children = kids
		var work strings.Builder
		for i, kid := range kids {
			body := strings.TrimSpace(kid.Text)
			if kid.Finish == finishFailed {
				body = "(this part failed: " + kid.Reason + ")"
			}
			fmt.Fprintf(&work, "\n--- Part %s: %s ---\n%s\n", labels[i], texts[i], body)
		}
		conclude := question + "\n\nThe problem was split into parts, each worked on separately:\n" + work.String() +
			"\nCheck the parts against each other, combine them, and give the final answer."
		final, err = s.call(ctx, b, observe, "conclude", "", conclude, seedOf(s.Seed, key, "conclude", 0), s.budget(&used, 1))
	}
	if err != nil {
		return nil, err
	}
	final.Children = append([]*Thread{plan}, final.Children...)
	r := &Result{Tree: final, Answer: t.Extract(p, final.Text), TokensToGoal: -1}
	r.account(final)
	r.LatencyMS = time.Since(start).Milliseconds()
	observe.emit(Event{Kind: AnswerReady, Text: r.Answer})
	return r, nil
}

// budget is the tokens each of n calls starting now may write: MaxTokens,
// and within MaxTotalTokens an nth of what the run has left (at least
// one, so that a spent run still answers, if tersely).
func (s Parallel) budget(used *atomic.Int64, n int) int {
	if s.MaxTotalTokens <= 0 {
		return s.MaxTokens
	}
	share := max(1, (s.MaxTotalTokens-int(used.Load()))/n)
	if s.MaxTokens > 0 {
		share = min(share, s.MaxTokens)
	}
	return share
}

// call is one call of the strategy, as a thread named node under parent,
// writing at most maxTokens.
func (s Parallel) call(ctx context.Context, b backend.Backend, observe Observer, node, parent, prompt string, seed uint64, maxTokens int) (*Thread, error) {
	th, done := begin(observe, node, parent)
	defer done()
	c, err := b.Complete(ctx, &backend.Request{Prompt: prompt, MaxTokens: maxTokens, Temperature: s.Temperature, Seed: seed,
		Effort: s.Effort, OnChunk: observe.stream(node, parent)})
	if err != nil {
		return nil, err
	}
	th.Text, th.Calls, th.Tokens, th.Finish = c.Text, 1, c.Usage.CompletionTokens, string(c.Finish)
	th.PromptTokens, th.CachedTokens = c.Usage.PromptTokens, c.Usage.CachedPromptTokens
	return th, nil
}

// parallelK reads parallel's argument, "k=N", 0 for none.
func parallelK(args string) (int, error) {
	if args == "" {
		return 0, nil
	}
	v, ok := strings.CutPrefix(args, "k=")
	k, err := strconv.Atoi(v)
	if !ok || err != nil || k < 2 || k > 64 {
		return 0, fmt.Errorf("want parallel or parallel:k=N with N in 2..64")
	}
	return k, nil
}
