package model

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/braid-dev/braid/tensor"
)

// The passes between the products (norms, SwiGLU, rotary embeddings,
// scaling) go over the batch's rows on every CPU, a chunk of rows at a
// time: on one goroutine they were a quarter of a bfloat16 step's CPU
// time once the products ran on tiles, and left the other core idle.

// rowChunk is the rows of one chunk. Chunks are fixed, whatever the
// number of CPUs, so that a sum over rows (a norm's weight gradient) adds
// the same partial sums in the same order on every machine.
const rowChunk = 256

// eachTask runs f for tasks [0,n) on all CPUs, handing each worker
// (numbered from 0) the scratch newWork made for it.
func eachTask[W any](n int, newWork func() W, f func(w W, worker, task int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for worker := range min(n, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			w := newWork()
			for {
				task := int(next.Add(1)) - 1
				if task >= n {
					return
				}
				f(w, worker, task)
			}
		})
	}
	wg.Wait()
}

// eachChunk runs f over rows [0,n) by chunks of rowChunk on all CPUs.
func eachChunk(n int, f func(chunk, lo, hi int)) {
	chunks := (n + rowChunk - 1) / rowChunk
	workers := min(chunks, runtime.GOMAXPROCS(0))
	run := func(next *atomic.Int64) {
		for {
			ch := int(next.Add(1)) - 1
			if ch >= chunks {
				return
			}
			f(ch, ch*rowChunk, min(n, (ch+1)*rowChunk))
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(func() { run(&next) })
	}
	run(&next)
	wg.Wait()
}

// rmsNorm is tensor.RMSNorm over n rows of c on all CPUs.
func rmsNorm(out, rstd, x, w []float32, n, c int, eps float32) {
	eachChunk(n, func(_, lo, hi int) {
		tensor.RMSNorm(out[lo*c:hi*c], rstd[lo:hi], x[lo*c:hi*c], w, hi-lo, c, eps)
	})
}

// rmsNormBackward is tensor.RMSNormBackward over n rows of c on all CPUs:
// each chunk sums its part of dw into a.normParts, added into dw in order.
func (a *Activations) rmsNormBackward(dx, dw, dout, x, w, rstd []float32, n, c int) {
	chunks := (n + rowChunk - 1) / rowChunk
	a.normParts = resize(a.normParts, chunks*c)
	clear(a.normParts)
	eachChunk(n, func(ch, lo, hi int) {
		tensor.RMSNormBackward(dx[lo*c:hi*c], a.normParts[ch*c:(ch+1)*c], dout[lo*c:hi*c], x[lo*c:hi*c], w, rstd[lo:hi], hi-lo, c)
	})
	for ch := range chunks {
		tensor.Axpy(1, a.normParts[ch*c:(ch+1)*c], dw)
	}
}

// rowsOf runs f on the chunks of n rows of width values each of x.
func rowsOf(x []float32, n, width int, f func(x []float32, lo, hi int)) {
	eachChunk(n, func(_, lo, hi int) { f(x[lo*width:hi*width], lo, hi) })
}
