package eval

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TimeAlone runs one cell at a time, the first n problems of each
// strategy, and leaves failed solves out of the times.
func TestTimeAlone(t *testing.T) {
	var running, most atomic.Int32
	var cells []Cell
	solve := func(ctx context.Context, c Cell) (Outcome, error) {
		n := running.Add(1)
		defer running.Add(-1)
		if n > most.Load() {
			most.Store(n)
		}
		cells = append(cells, c)
		if c.Strategy == "slow" {
			time.Sleep(20 * time.Millisecond)
		}
		if c.Strategy == "broken" && c.Index == 1 {
			return Outcome{}, errors.New("boom")
		}
		return Outcome{}, nil
	}
	calls := 0
	got, err := TimeAlone(t.Context(), []string{"fast", "slow", "broken"}, 5, 3, solve, func() { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if most.Load() != 1 || len(cells) != 9 || calls != 9 {
		t.Errorf("%d cells, %d at most at once, %d reported; want 9, 1, 9", len(cells), most.Load(), calls)
	}
	for _, c := range cells {
		if c.Index > 2 || c.Seed != 1 {
			t.Errorf("cell %+v: want the first 3 problems, seed 1", c)
		}
	}
	if f, s := got["fast"], got["slow"]; f.N != 3 || s.N != 3 || s.P50MS < 20 || f.P50MS >= s.P50MS {
		t.Errorf("fast %+v, slow %+v", f, s)
	}
	if b := got["broken"]; b.N != 2 || b.Errors != 1 {
		t.Errorf("broken %+v: want 2 timed, 1 failed", b)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := TimeAlone(ctx, []string{"fast"}, 5, 3, solve, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
