package eval

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braid-dev/braid/internal/storetest"
	"github.com/braid-dev/braid/store"
)

// Three workers, each with its own connection as separate processes have,
// share one run: every cell is taken once, and the report is the one a
// single process gives.
func TestThreeWorkersGiveOneProcessResults(t *testing.T) {
	for name, target := range storetest.Targets(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			g := Grid{Strategies: []string{"weak", "good"}, Problems: problemsN(30), Seeds: 2, Concurrent: 2}
			shared := target()
			var mu sync.Mutex
			taken := map[string]int{}
			perWorker := map[string]int{}
			var wg sync.WaitGroup
			errs := make([]error, 3)
			for w := range 3 {
				wg.Go(func() {
					st, err := store.Open(ctx, shared)
					if err != nil {
						errs[w] = err
						return
					}
					defer st.Close()
					if err := st.StartRun(ctx, "r", "grid"); err != nil {
						errs[w] = err
						return
					}
					gw := g
					gw.Worker = fmt.Sprintf("w%d", w)
					errs[w] = gw.Run(ctx, st, "r", func(ctx context.Context, c Cell) (Outcome, error) {
						mu.Lock()
						taken[c.Key()]++
						perWorker[gw.Worker]++
						mu.Unlock()
						// Hold the first cells until every worker has one, so
						// the test shows three sharing, not one racing ahead.
						for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
							mu.Lock()
							n := len(perWorker)
							mu.Unlock()
							if n == 3 {
								break
							}
						}
						return outcome(ctx, c)
					})
				})
			}
			wg.Wait()
			for w, err := range errs {
				if err != nil {
					t.Fatalf("worker %d: %v", w, err)
				}
			}
			for k, n := range taken {
				if n != 1 {
					t.Errorf("cell %s taken %d times", k, n)
				}
			}
			if len(taken) != len(g.Cells()) || len(perWorker) != 3 {
				t.Errorf("%d cells taken of %d, by workers %v", len(taken), len(g.Cells()), perWorker)
			}

			single, err := store.Open(ctx, target())
			if err != nil {
				t.Fatal(err)
			}
			defer single.Close()
			single.StartRun(ctx, "r", "grid")
			if err := g.Run(ctx, single, "r", outcome); err != nil {
				t.Fatal(err)
			}
			st, err := store.Open(ctx, shared)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			a, err := st.Samples(ctx, "r")
			if err != nil {
				t.Fatal(err)
			}
			b, err := single.Samples(ctx, "r")
			if err != nil {
				t.Fatal(err)
			}
			if ra, rb := Summarize(g.Strategies, a), Summarize(g.Strategies, b); !reflect.DeepEqual(ra, rb) {
				t.Errorf("three workers reported\n%+v\none process\n%+v", ra, rb)
			}
		})
	}
}

// A worker killed on this host leaves claims with a long lease; the next
// run sees its process is gone and takes its cells at once.
func TestDeadLocalWorkersClaimsAreReleased(t *testing.T) {
	ctx := context.Background()
	g := Grid{Strategies: []string{"good"}, Problems: problemsN(4), Seeds: 1, Concurrent: 1}
	st := listedRun(t, g)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skipf("no process to outlive: %v", err)
	}
	host, _ := os.Hostname()
	if got, err := st.Claim(ctx, "r", fmt.Sprintf("%s:%s:%d:0", host, pidNamespace(), dead.Process.Pid), 2, time.Hour); err != nil || len(got) != 2 {
		t.Fatalf("claim %v, %v", got, err)
	}
	finished := make(chan error, 1)
	go func() { finished <- g.Run(ctx, st, "r", outcome) }()
	select {
	case err := <-finished:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the run waited for the claims of a dead process")
	}
	if got, _ := st.Samples(ctx, "r"); len(got) != 4 {
		t.Errorf("%d samples, want 4", len(got))
	}
}

// Claims held by a worker on another machine are waited out, then taken
// over when they lapse.
func TestRemoteWorkersLapsedClaimsAreTakenOver(t *testing.T) {
	ctx := context.Background()
	g := Grid{Strategies: []string{"good"}, Problems: problemsN(4), Seeds: 1, Concurrent: 2, Lease: 400 * time.Millisecond}
	st := listedRun(t, g)
	if got, err := st.Claim(ctx, "r", "elsewhere:1:0", 1, 600*time.Millisecond); err != nil || len(got) != 1 {
		t.Fatalf("claim %v, %v", got, err)
	}
	var waited atomic.Int32
	g.Waiting = func(held int) {
		if held == 1 {
			waited.Add(1)
		}
	}
	start := time.Now()
	if err := g.Run(ctx, st, "r", outcome); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 500*time.Millisecond || waited.Load() == 0 {
		t.Errorf("finished after %v, told of waiting %d times: the remote claim was not waited out", time.Since(start), waited.Load())
	}
	if got, _ := st.Samples(ctx, "r"); len(got) != 4 {
		t.Errorf("%d samples, want 4", len(got))
	}
}

// listedRun opens a SQLite store holding run "r" with g's cells listed, as
// a worker that had started on it would have left it.
func listedRun(t *testing.T, g Grid) *store.Store {
	ctx := context.Background()
	st, err := store.Open(ctx, storetest.Targets(t)["sqlite"]())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var keys []string
	for _, c := range g.Cells() {
		keys = append(keys, c.Key())
	}
	if err := st.StartRun(ctx, "r", "grid"); err != nil {
		t.Fatal(err)
	}
	if err := st.AddCells(ctx, "r", keys); err != nil {
		t.Fatal(err)
	}
	return st
}

// An eval process killed with SIGKILL mid-run, then run again, ends with
// the samples an uninterrupted run gives: none lost, none twice.
func TestKill9MidRunResumes(t *testing.T) {
	g := Grid{Strategies: []string{"weak", "good"}, Problems: problemsN(40), Seeds: 2, Concurrent: 3}
	slow := func(ctx context.Context, c Cell) (Outcome, error) {
		time.Sleep(3 * time.Millisecond)
		return outcome(ctx, c)
	}
	if path := os.Getenv("BRAID_EVAL_WORKER"); path != "" {
		ctx := context.Background()
		st, err := store.Open(ctx, path)
		if err != nil {
			os.Exit(3)
		}
		st.StartRun(ctx, "r", "grid")
		g.Progress = func(done, _ int) { fmt.Println(done) }
		g.Run(ctx, st, "r", slow)
		os.Exit(0)
	}
	ctx := context.Background()
	path := storetest.Targets(t)["sqlite"]()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestKill9MidRunResumes$")
	cmd.Env = append(os.Environ(), "BRAID_EVAL_WORKER="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	seen := 0
	for deadline := time.Now().Add(30 * time.Second); seen < 40 && time.Now().Before(deadline); {
		n, err := out.Read(buf)
		if err != nil {
			break
		}
		seen += strings.Count(string(buf[:n]), "\n")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if seen < 40 {
		t.Fatalf("the worker finished only %d cells before the kill", seen)
	}
	st, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	before, _ := st.Samples(ctx, "r")
	if len(before) >= len(g.Cells()) {
		t.Fatalf("the worker finished all %d cells before the kill", len(before))
	}
	if todo, held, _ := st.Remaining(ctx, "r"); held == 0 || todo == 0 {
		t.Logf("the kill left %d cells to do, %d held", todo, held)
	}
	var taken atomic.Int32
	finished := make(chan error, 1)
	go func() {
		finished <- g.Run(ctx, st, "r", func(ctx context.Context, c Cell) (Outcome, error) {
			taken.Add(1)
			return slow(ctx, c)
		})
	}()
	select {
	case err := <-finished:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the resumed run waited on the dead worker's claims")
	}
	after, err := st.Samples(ctx, "r")
	if err != nil || len(after) != len(g.Cells()) || int(taken.Load()) != len(g.Cells())-len(before) {
		t.Fatalf("%d samples after resuming (%v), %d taken on resume, %d saved before the kill", len(after), err, taken.Load(), len(before))
	}
	single := listedRun(t, g)
	if err := g.Run(ctx, single, "r", outcome); err != nil {
		t.Fatal(err)
	}
	want, _ := single.Samples(ctx, "r")
	if ra, rb := Summarize(g.Strategies, after), Summarize(g.Strategies, want); !reflect.DeepEqual(ra, rb) {
		t.Errorf("killed and resumed:\n%+v\nuninterrupted:\n%+v", ra, rb)
	}
}

// Two grids in one process, with the default worker names, never take
// each other's live claims for a dead predecessor's.
func TestWorkersOfOneProcessKeepTheirClaims(t *testing.T) {
	ctx := context.Background()
	g := Grid{Strategies: []string{"good"}, Problems: problemsN(6), Seeds: 1, Concurrent: 2}
	st := listedRun(t, g)
	var mu sync.Mutex
	taken := map[string]int{}
	solve := func(ctx context.Context, c Cell) (Outcome, error) {
		mu.Lock()
		taken[c.Key()]++
		mu.Unlock()
		time.Sleep(100 * time.Millisecond)
		return outcome(ctx, c)
	}
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 30 * time.Millisecond)
			if err := g.Run(ctx, st, "r", solve); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for k, n := range taken {
		if n != 1 {
			t.Errorf("cell %s solved %d times", k, n)
		}
	}
}
