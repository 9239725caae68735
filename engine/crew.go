package engine

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// crew is a fixed team of goroutines that run one function together, the
// caller being member 0, meeting at barriers between its phases. A decode
// step is a few dozen short phases (a product, a norm, attention); starting
// goroutines for each costs more than the phase, so the members stay, and
// wait for each other by spinning, which costs a fraction of a
// microsecond. A member that has spun for spinFor sleeps until the phase
// ends instead: when other work shares the cores (a second braid, a
// training run), the member it waits for may be off its core for a whole
// time slice, and spinning then takes the core from it.
type crew struct {
	n       int
	work    func(member int)
	wake    []chan struct{}
	arrived atomic.Int32
	phase   atomic.Uint32
	stop    chan struct{}
	// Members asleep at a barrier wait on cond; the last to arrive wakes
	// them when sleepers says there are any.
	mu       sync.Mutex
	cond     *sync.Cond
	sleepers atomic.Int32
	// broken is set when a member panics: the others leave their
	// barriers instead of waiting forever, and the panic reaches member 0,
	// whose caller (the engine's loop) recovers it.
	broken atomic.Bool
	failed atomic.Pointer[crewPanic] // the first panic of a member other than 0
}

// crewPanic boxes a panic value: values of any type, one type per box.
type crewPanic struct{ v any }

// errBroken unwinds a member from a barrier after another member panicked.
var errBroken = errors.New("engine: a crew member failed")

func newCrew(n int) *crew {
	c := &crew{n: n, stop: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	for i := 1; i < n; i++ {
		ch := make(chan struct{})
		c.wake = append(c.wake, ch)
		go func() {
			for {
				select {
				case <-ch:
					c.member(i)
				case <-c.stop:
					return
				}
			}
		}()
	}
	return c
}

// member runs one member's part of a run, catching its panic for member 0
// to raise.
func (c *crew) member(i int) {
	defer func() {
		if p := recover(); p != nil {
			if p != errBroken {
				c.failed.CompareAndSwap(nil, &crewPanic{p})
			}
			c.breakUp()
		}
	}()
	c.work(i)
	c.barrier()
}

// run calls f(member) on every member at once and returns when all have
// finished. A panic in any member panics here.
func (c *crew) run(f func(member int)) {
	c.work = f
	defer func() {
		if p := recover(); p != nil {
			c.breakUp()
			if p == errBroken {
				if f := c.failed.Load(); f != nil {
					p = f.v
				}
			}
			panic(p)
		}
	}()
	for _, ch := range c.wake {
		ch <- struct{}{}
	}
	f(0)
	c.barrier()
	c.work = nil
}

// spinFor is how long a member spins at a barrier before it sleeps: a
// phase's members normally arrive within microseconds of each other, and
// waking a sleeper costs a few.
const spinFor = 50 * time.Microsecond

// barrier returns once every member has reached it.
func (c *crew) barrier() {
	if c.n == 1 {
		return
	}
	phase := c.phase.Load()
	if c.arrived.Add(1) == int32(c.n) {
		c.arrived.Store(0)
		c.phase.Add(1)
		// A sleeper counted itself before it last read the phase, so
		// either it reads the new one or it is counted here.
		if c.sleepers.Load() > 0 {
			c.mu.Lock()
			c.cond.Broadcast()
			c.mu.Unlock()
		}
		return
	}
	var start time.Time
	for spins := 0; c.phase.Load() == phase; spins++ {
		if c.broken.Load() {
			panic(errBroken)
		}
		if spins < 100 {
			continue
		}
		if spins%64 == 0 {
			if start.IsZero() {
				start = time.Now()
			} else if time.Since(start) > spinFor {
				c.sleep(phase)
				continue
			}
		}
		// Let other goroutines run, and a member that is not running
		// yet reach the barrier.
		runtime.Gosched()
	}
}

// sleep waits until the phase after phase begins or the crew breaks.
func (c *crew) sleep(phase uint32) {
	c.mu.Lock()
	c.sleepers.Add(1)
	for c.phase.Load() == phase && !c.broken.Load() {
		c.cond.Wait()
	}
	c.sleepers.Add(-1)
	c.mu.Unlock()
}

// breakUp marks the crew broken and wakes its sleepers, which then leave
// their barriers.
func (c *crew) breakUp() {
	c.broken.Store(true)
	c.mu.Lock()
	c.cond.Broadcast()
	c.mu.Unlock()
}

// close stops the members.
func (c *crew) close() { close(c.stop) }

// span is member w's share of n items split among the crew.
func (c *crew) span(n, w int) (int, int) {
	return w * n / c.n, (w + 1) * n / c.n
}
