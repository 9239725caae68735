package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-dev/braid/internal/storetest"
)

func keys(n int) []string {
	var ks []string
	for i := range n {
		ks = append(ks, fmt.Sprintf("serial|%d|1", i))
	}
	return ks
}

func TestClaimsAreExclusiveAndExpire(t *testing.T) {
	for name, target := range storetest.Targets(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, target())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.StartRun(ctx, "r", "cfg"); err != nil {
				t.Fatal(err)
			}
			// A sample saved before the cells were listed counts as done.
			if err := s.Save(ctx, "r", sample(0)); err != nil {
				t.Fatal(err)
			}
			if err := s.AddCells(ctx, "r", keys(6)); err != nil {
				t.Fatal(err)
			}
			if err := s.AddCells(ctx, "r", keys(6)); err != nil {
				t.Fatalf("adding the cells twice: %v", err)
			}
			if todo, claimed, err := s.Remaining(ctx, "r"); err != nil || todo != 5 || claimed != 0 {
				t.Fatalf("remaining %d claimed %d (%v), want 5 and 0", todo, claimed, err)
			}
			a, err := s.Claim(ctx, "r", "a", 2, time.Hour)
			if err != nil || strings.Join(a, " ") != "serial|1|1 serial|2|1" {
				t.Fatalf("a claimed %v (%v), want cells 1 and 2 in grid order", a, err)
			}
			b, err := s.Claim(ctx, "r", "b", 10, 300*time.Millisecond)
			if err != nil || strings.Join(b, " ") != "serial|3|1 serial|4|1 serial|5|1" {
				t.Fatalf("b claimed %v (%v), want the 3 cells a does not hold", b, err)
			}
			if c, err := s.Claim(ctx, "r", "c", 10, time.Hour); err != nil || len(c) != 0 {
				t.Fatalf("c claimed %v (%v) while every cell is held", c, err)
			}
			if ws, err := s.Claimants(ctx, "r"); err != nil || strings.Join(sorted(ws), " ") != "a b" {
				t.Fatalf("claimants %v (%v)", ws, err)
			}
			// b finishes one cell, then dies: its other claims expire and c
			// takes them over; a's live claims stay a's.
			x := sample(3)
			if err := s.Save(ctx, "r", x); err != nil {
				t.Fatal(err)
			}
			time.Sleep(400 * time.Millisecond)
			c, err := s.Claim(ctx, "r", "c", 10, time.Hour)
			if err != nil || strings.Join(c, " ") != "serial|4|1 serial|5|1" {
				t.Fatalf("c took over %v (%v), want b's two unfinished cells", c, err)
			}
			// Renewing keeps a's claims; releasing gives them up at once.
			if err := s.Renew(ctx, "r", "a", time.Hour); err != nil {
				t.Fatal(err)
			}
			if d, _ := s.Claim(ctx, "r", "d", 10, time.Hour); len(d) != 0 {
				t.Fatalf("d claimed %v while a and c hold everything", d)
			}
			if err := s.Release(ctx, "r", "a"); err != nil {
				t.Fatal(err)
			}
			if d, err := s.Claim(ctx, "r", "d", 10, time.Hour); err != nil || len(d) != 2 {
				t.Fatalf("d claimed %v (%v) after a released its two cells", d, err)
			}
			if todo, claimed, err := s.Remaining(ctx, "r"); err != nil || todo != 4 || claimed != 4 {
				t.Fatalf("remaining %d claimed %d (%v), want 4 and 4", todo, claimed, err)
			}
		})
	}
}

// Three workers share one run, each claiming, working and saving as an
// eval process does; one of them dies holding claims. Every cell ends with
// exactly one sample.
func TestThreeWorkersShareARun(t *testing.T) {
	for name, target := range storetest.Targets(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dsn := target()
			const cells = 60
			var mu sync.Mutex
			did := map[string][]string{}
			// The others start once w0 has saved a sample: on a loaded
			// machine they could otherwise take every cell before w0 gets
			// the five it dies after.
			w0Saved := make(chan struct{})
			var once sync.Once
			work := func(worker string, dieAfter int) error {
				s, err := Open(ctx, dsn) // each worker its own connection pool, as separate processes have
				if err != nil {
					return err
				}
				defer s.Close()
				if err := s.StartRun(ctx, "r", "cfg"); err != nil {
					return err
				}
				if err := s.AddCells(ctx, "r", keys(cells)); err != nil {
					return err
				}
				for n := 0; ; {
					ks, err := s.Claim(ctx, "r", worker, 2, 500*time.Millisecond)
					if err != nil {
						return err
					}
					if len(ks) == 0 {
						todo, _, err := s.Remaining(ctx, "r")
						if err != nil || todo == 0 {
							return err
						}
						time.Sleep(50 * time.Millisecond) // others hold the rest; their claims may yet expire
						continue
					}
					for _, k := range ks {
						if n == dieAfter {
							return nil // dies holding its claims
						}
						n++
						mu.Lock()
						did[k] = append(did[k], worker)
						mu.Unlock()
						time.Sleep(5 * time.Millisecond)
						var i int
						fmt.Sscanf(k, "serial|%d|1", &i)
						if err := s.Save(ctx, "r", sample(i)); err != nil {
							return err
						}
						if worker == "w0" {
							once.Do(func() { close(w0Saved) })
						}
					}
				}
			}
			var wg sync.WaitGroup
			errs := make([]error, 3)
			for w := range 3 {
				wg.Go(func() {
					die := -1
					if w == 0 {
						die = 5
						defer once.Do(func() { close(w0Saved) }) // a w0 that fails first frees the others
					} else {
						<-w0Saved
					}
					errs[w] = work(fmt.Sprintf("w%d", w), die)
				})
			}
			wg.Wait()
			for w, err := range errs {
				if err != nil {
					t.Fatalf("worker %d: %v", w, err)
				}
			}
			s, err := Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got, err := s.Samples(ctx, "r")
			if err != nil || len(got) != cells {
				t.Fatalf("%d samples (%v), want %d", len(got), err, cells)
			}
			workers := map[string]int{}
			for k, ws := range did {
				if len(ws) != 1 {
					t.Errorf("cell %s was worked by %v: a live claim was given twice", k, ws)
				}
				workers[ws[0]]++
			}
			if len(did) != cells || workers["w0"] != 5 || workers["w1"] == 0 || workers["w2"] == 0 {
				t.Errorf("cells per worker %v over %d cells: want w0 to stop at 5 and the others to share the rest", workers, len(did))
			}
		})
	}
}

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}
