package parallel

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

func TestOrderedEmitsInOrder(t *testing.T) {
	for _, workers := range []int{1, 2, 7} {
		var got []int
		err := Ordered(context.Background(), 500, workers, func(i int) (int, error) {
			if rand.IntN(10) == 0 {
				time.Sleep(time.Microsecond * time.Duration(rand.IntN(200)))
			}
			return i * i, nil
		}, func(i, r int) error {
			if r != i*i {
				t.Fatalf("result for %d is %d", i, r)
			}
			got = append(got, i)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 500 {
			t.Fatalf("workers=%d: emitted %d of 500", workers, len(got))
		}
		for i, v := range got {
			if v != i {
				t.Fatalf("workers=%d: emitted %d at position %d", workers, v, i)
			}
		}
	}
}

func TestOrderedStopsAtFirstError(t *testing.T) {
	for range 20 {
		emitted := 0
		err := Ordered(context.Background(), 1000, 4, func(i int) (int, error) {
			if i >= 100 && i%7 == 2 { // items 100, 107, 114, ... fail
				return 0, fmt.Errorf("item %d failed", i)
			}
			return i, nil
		}, func(i, r int) error { emitted++; return nil })
		if err == nil || err.Error() != "item 100 failed" {
			t.Fatalf("err = %v, want the lowest failure, item 100", err)
		}
		if emitted != 100 {
			t.Fatalf("emitted %d results, want the 100 before the failure", emitted)
		}
	}
}

func TestOrderedHonoursCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	err := Ordered(ctx, 1_000_000, 2, func(i int) (int, error) { return i, nil },
		func(i, r int) error {
			if i == 10 {
				cancel()
			}
			return nil
		})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestOrderedStopsAtEmitError(t *testing.T) {
	stop := errors.New("disk full")
	calls := 0
	err := Ordered(context.Background(), 1000, 3, func(i int) (int, error) { return i, nil },
		func(i, r int) error {
			calls++
			if i == 5 {
				return stop
			}
			return nil
		})
	if !errors.Is(err, stop) || calls != 6 {
		t.Fatalf("err = %v after %d emits, want disk full after 6", err, calls)
	}
}

func TestOrderedZeroItems(t *testing.T) {
	if err := Ordered(context.Background(), 0, 2, func(int) (int, error) { return 0, nil },
		func(int, int) error { t.Fatal("emit called"); return nil }); err != nil {
		t.Fatal(err)
	}
}
