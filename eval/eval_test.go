package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/store"
	"github.com/braid-dev/braid/task"
	taskmath "github.com/braid-dev/braid/task/math"
)

func problemsN(n int) []json.RawMessage {
	var ps []json.RawMessage
	for i := range n {
		ps = append(ps, json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)))
	}
	return ps
}

// outcome: "good" is right on 3 problems in 4, "weak" on 1 in 4; each
// sample of a problem agrees.
func outcome(_ context.Context, c Cell) (Outcome, error) {
	right := c.Index%4 != 0
	if c.Strategy == "weak" {
		right = c.Index%4 == 0
	}
	class := "wrong"
	if right {
		class = "right"
	}
	return Outcome{Answer: class, Class: class, Correct: right, Usage: reason.Usage{TotalTokens: 100, CriticalPathTokens: 40, Threads: 2 + c.Index%2*2, Depth: c.Index % 3, LatencyMS: int64(c.Index)}}, nil
}

func TestRunResumesAndSummarizes(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "braid.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := Grid{Strategies: []string{"weak", "good"}, Problems: problemsN(40), Seeds: 2, Concurrent: 4}
	if err := st.StartRun(ctx, "r", "grid"); err != nil {
		t.Fatal(err)
	}
	// A first run stopped after 50 cells.
	cctx, cancel := context.WithCancel(ctx)
	var calls atomic.Int32
	err = g.Run(cctx, st, "r", func(ctx context.Context, c Cell) (Outcome, error) {
		if calls.Add(1) > 50 {
			cancel()
			return Outcome{}, ctx.Err()
		}
		return outcome(ctx, c)
	})
	if err == nil {
		t.Fatal("the stopped run reported success")
	}
	done, _ := st.Done(ctx, "r")
	if len(done) < 40 || len(done) > 50 {
		t.Fatalf("%d cells saved by the stopped run", len(done))
	}
	// The resumed run takes only the rest, and its progress starts from
	// the cells stored before (a bar's rate counts this run's cells).
	var rest atomic.Int32
	var reports [][2]int
	g.Progress = func(done, total int) { reports = append(reports, [2]int{done, total}) }
	if err := g.Run(ctx, st, "r", func(ctx context.Context, c Cell) (Outcome, error) {
		rest.Add(1)
		return outcome(ctx, c)
	}); err != nil {
		t.Fatal(err)
	}
	if len(reports) != 1+160-len(done) || reports[0] != [2]int{len(done), 160} || reports[len(reports)-1] != [2]int{160, 160} {
		t.Errorf("progress of the resumed run after %d cells: %v", len(done), reports)
	}
	samples, err := st.Samples(ctx, "r")
	if err != nil || len(samples) != 160 || int(rest.Load()) != 160-len(done) {
		t.Fatalf("%d samples, %d taken on resume after %d (%v)", len(samples), rest.Load(), len(done), err)
	}
	r := Summarize(g.Strategies, samples)
	weak, good := r.Strategies[0], r.Strategies[1]
	if weak.Accuracy != 0.25 || good.Accuracy != 0.75 || good.N != 40 || good.Samples != 2 {
		t.Errorf("accuracies %g and %g over %d problems", weak.Accuracy, good.Accuracy, good.N)
	}
	if !(good.CI95[0] < 0.75 && 0.75 < good.CI95[1]) || good.TokensPerCorrect != 100/0.75 || good.Speedup != 2.5 ||
		good.MeanThreads != 3 || good.MaxDepth != 2 {
		t.Errorf("good: %+v", good)
	}
	if good.PassAtK[2] != 0.75 || good.MajAtK[1] != 0.75 || good.MajAtK[2] != 0.75 {
		t.Errorf("pass@k %v, maj@k %v", good.PassAtK, good.MajAtK)
	}
	// 30 problems with pass@2 = 1 and 10 with 0: sd = sqrt(0.75·0.25·40/39),
	// se = sd/sqrt(40) = 0.069337, t(0.975, 39) = 2.022691, half = 0.140246.
	for name, ci := range map[string][]float64{"pass@2": good.PassAtKCI95[2], "maj@2": good.MajAtKCI95[2]} {
		if len(ci) != 2 || math.Abs(ci[0]-0.609754) > 1e-5 || math.Abs(ci[1]-0.890246) > 1e-5 {
			t.Errorf("%s interval %v, want [0.609754, 0.890246]", name, ci)
		}
	}
	p := r.Paired[0]
	if p.A != "good" || p.B != "weak" || math.Abs(p.Diff-0.5) > 1e-12 || p.PValue > 0.01 || p.InNoise {
		t.Errorf("paired: %+v", p)
	}
}

func TestNoiseWarning(t *testing.T) {
	var samples []store.Sample
	for i := range 20 {
		for _, s := range []string{"a", "b"} {
			right := (i+len(s))%2 == 0
			if s == "b" && i == 0 {
				right = !right
			}
			samples = append(samples, store.Sample{Key: fmt.Sprint(s, i), Strategy: s, Index: i, Correct: right})
		}
	}
	r := Summarize([]string{"a", "b"}, samples)
	if p := r.Paired[0]; !p.InNoise || p.ProblemsNeeded <= 20 {
		t.Errorf("a small difference on 20 problems: %+v", p)
	}
}

// An evaluation labels each measured thread with its success, and the
// report scores confidence as a predictor of it.
func TestConfidenceIsScoredAgainstSuccess(t *testing.T) {
	yes, no := true, false
	tree := func(solvedConf, failedConf float64, pruned bool) json.RawMessage {
		root := &reason.Thread{Node: "0", Confidence: &reason.Confidence{LowestGroup: 12}, Solved: &yes, Children: []*reason.Thread{
			{Node: "0,0", Confidence: &reason.Confidence{LowestGroup: solvedConf}, Solved: &yes},
			{Node: "0,1", Confidence: &reason.Confidence{LowestGroup: failedConf, Pruned: pruned}, Solved: &no},
		}}
		b, _ := json.Marshal(root)
		return b
	}
	var samples []store.Sample
	for i := range 30 {
		samples = append(samples, store.Sample{Strategy: "apr", Index: i, Tree: tree(9+float64(i%3), 8+float64(i%2), i%2 == 0)})
	}
	r := Summarize([]string{"apr"}, samples).Strategies[0].Confidence
	if r == nil || r.Threads != 90 || r.Solved != 60 || r.Pruned != 15 || r.LowestGroup == nil || r.LowestGroup[0] < 0.8 || r.LowestGroup[1] > r.LowestGroup[0] {
		t.Errorf("confidence report %+v", r)
	}
	// The labels: a run's root by its verified answer, a spawned thread by
	// its goal.
	root := &reason.Thread{Node: "0", Text: "q", Confidence: &reason.Confidence{}, Children: []*reason.Thread{{Node: "0,1", Text: "x", Confidence: &reason.Confidence{}}}}
	labelThreads(taskmath.Task{}, task.Problem{Task: "math", Text: "q", Answer: "1"}, root)
	if root.Solved == nil || *root.Solved || root.Children[0].Solved == nil {
		t.Errorf("labels %v %v", root.Solved, root.Children[0].Solved)
	}
}
