// Package parallel runs independent work items on several goroutines and
// hands the results back in input order, so output stays deterministic.
package parallel

import (
	"context"
	"runtime"
	"sync"
)

// Ordered calls work(i) for i in [0, n) on up to workers goroutines (0 means
// one per CPU) and emit(i, result) for each in increasing i, from the
// calling goroutine. At most a few results per worker wait for an earlier one,
// so memory stays bounded however large n is. An error from work or emit,
// or the context's end, stops the run and is returned; after a work error
// every result before the failed item is still emitted.
func Ordered[R any](ctx context.Context, n, workers int, work func(i int) (R, error), emit func(i int, r R) error) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, n))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type result struct {
		i   int
		r   R
		err error
	}
	window := 4 * workers
	tokens := make(chan struct{}, window) // bounds results in flight
	jobs := make(chan int)
	results := make(chan result, window)

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				r, err := work(i)
				results <- result{i, r, err}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i := 0; i < n; i++ {
			select {
			case tokens <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		wg.Wait()
		close(results)
	}()

	// On a work error the run stops dispatching, finishes the items already
	// started, emits every result before the failed item and returns the
	// error of the lowest failed index: all lower items were dispatched
	// earlier, so which error is returned does not depend on timing.
	pending := make(map[int]R, window)
	next := 0
	errIndex := n
	var workErr, emitErr error
	for res := range results {
		if emitErr != nil {
			continue // drain so the workers can exit
		}
		if res.err != nil {
			if res.i < errIndex {
				errIndex, workErr = res.i, res.err
			}
			cancel()
			continue
		}
		pending[res.i] = res.r
		for next < errIndex {
			r, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			if err := emit(next, r); err != nil {
				emitErr = err
				cancel()
				break
			}
			next++
			<-tokens
		}
	}
	switch {
	case emitErr != nil:
		return emitErr
	case workErr != nil:
		return workErr
	case next < n:
		return ctx.Err()
	}
	return nil
}
