package engine

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCrewRunsEveryMemberBetweenBarriers(t *testing.T) {
	c := newCrew(3)
	defer c.close()
	var hits [3]atomic.Int32
	for range 50 {
		c.run(func(m int) {
			hits[m].Add(1)
			c.barrier()
			hits[m].Add(1)
		})
	}
	for m := range hits {
		if got := hits[m].Load(); got != 100 {
			t.Errorf("member %d ran %d halves, want 100", m, got)
		}
	}
}

// A panic in any member reaches the caller of run; no member is left
// spinning at a barrier.
func TestCrewPanicsReachTheCaller(t *testing.T) {
	for _, bad := range []int{0, 1} {
		c := newCrew(2)
		done := make(chan any)
		go func() {
			defer func() { done <- recover() }()
			c.run(func(m int) {
				if m == bad {
					panic("member failed")
				}
				c.barrier()
			})
		}()
		select {
		case p := <-done:
			if s, _ := p.(string); !strings.Contains(s, "member failed") {
				t.Errorf("member %d's panic came back as %v", bad, p)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("member %d's panic left the crew waiting", bad)
		}
		c.close()
	}
}

// Members panicking with values of different types report one of them.
func TestCrewPanicsOfDifferentTypes(t *testing.T) {
	c := newCrew(3)
	defer c.close()
	done := make(chan any)
	go func() {
		defer func() { done <- recover() }()
		c.run(func(m int) {
			switch m {
			case 1:
				panic("a string")
			case 2:
				panic(errors.New("an error"))
			}
			c.barrier()
		})
	}()
	select {
	case p := <-done:
		if p == nil {
			t.Error("no panic came back")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the crew hung")
	}
}

// A member that reaches a barrier long after the others (descheduled by
// other work on the cores) finds them asleep, and wakes them; a member
// that panics that late wakes them too, and its panic reaches the caller.
func TestCrewSleepersWake(t *testing.T) {
	c := newCrew(3)
	defer c.close()
	var after atomic.Int32
	for range 3 {
		c.run(func(m int) {
			if m == 2 {
				time.Sleep(20 * spinFor)
			}
			c.barrier()
			after.Add(1)
		})
	}
	if got := after.Load(); got != 9 {
		t.Errorf("%d members passed the barriers, want 9", got)
	}
	late := newCrew(3)
	defer late.close()
	done := make(chan any)
	go func() {
		defer func() { done <- recover() }()
		late.run(func(m int) {
			if m == 1 {
				time.Sleep(20 * spinFor)
				panic("late failure")
			}
			late.barrier()
		})
	}()
	select {
	case p := <-done:
		if s, _ := p.(string); s != "late failure" {
			t.Errorf("the late panic came back as %v", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a late panic left the crew asleep")
	}
}
