package model

import (
	"runtime"

	"github.com/braid-dev/braid/tensor"
)

// gemm is tensor.Gemm for a weight product, in the model's precision.
func (m *Model) gemm(c, a, b []float32, rows, k, n int, f tensor.Flags) {
	if m.BF16 {
		f |= tensor.BF16
	}
	tensor.Gemm(c, a, b, rows, k, n, f)
}

// onTiles says whether the model's products run on AMX tiles through
// tensor.MulTiles: in bfloat16, on a CPU that has them. Gemm's BF16
// products pack both operands on every call, on each goroutine; with
// MulTiles an activation is rounded once for every weight it multiplies
// (the normalised input feeds three projections, or two) and a weight is
// laid out once for all the batch's rows.
func (m *Model) onTiles() bool { return m.BF16 && tensor.TilesAvailable() }

// operand is the left operand of the products of a layer's weights: an
// activation of rows×k values, and on tiles the same rounded to bfloat16
// (the activations' one TileA, valid until the next operand).
type operand struct {
	x       []float32
	rows, k int
	tile    *tensor.TileA
}

// lhs makes x (rows×k) the left operand of the products that follow.
func (m *Model) lhs(a *Activations, x []float32, rows, k int) operand {
	op := operand{x: x, rows: rows, k: k}
	if m.onTiles() {
		a.xTile.SetThreads(runtime.GOMAXPROCS(0), tensor.Mat{Data: x, Stride: k}, rows, k, false)
		op.tile = &a.xTile
	}
	return op
}

// project computes out = x·Wᵀ (out += with acc) for a weight w stored
// n×x.k, as a layer's forward pass multiplies its weights.
func (m *Model) project(a *Activations, out []float32, x operand, w []float32, n int, acc bool) {
	m.mul(a, out, x, w, n, true, acc)
}

// projectBack computes out = dy·W (out += with acc) for a weight w stored
// dy.k×n: the gradient with respect to a projection's input.
func (m *Model) projectBack(a *Activations, out []float32, dy operand, w []float32, n int, acc bool) {
	m.mul(a, out, dy, w, n, false, acc)
}

func (m *Model) mul(a *Activations, out []float32, x operand, w []float32, n int, trans, acc bool) {
	if x.tile == nil {
		f := tensor.Flags(0)
		if trans {
			f |= tensor.TransB
		}
		if acc {
			f |= tensor.Accumulate
		}
		m.gemm(out, x.x, w, x.rows, x.k, n, f)
		return
	}
	ld := n
	if trans {
		ld = x.k
	}
	// The weights change with every optimizer step, so they are laid out
	// again for every product: a small matrix next to the activations.
	a.wTile.SetThreads(runtime.GOMAXPROCS(0), tensor.Mat{Data: w, Stride: ld}, x.k, n, trans)
	tensor.MulTilesThreads(runtime.GOMAXPROCS(0), tensor.Mat{Data: out, Stride: n}, x.tile, &a.wTile, x.rows, x.k, n, acc)
}

// input is a layer's input x (rows×k) as the operand of the products that
// make its weights' gradients, dyᵀ·x for each weight's dy (rows×n). On
// tiles one operand of each must be transposed (AMX reads its left one by
// rows of depths, and the depth here runs down the rows of both): either
// each dy, or x once. rhs picks whichever transposes fewer values.
type input struct {
	x       []float32
	rows, k int
	tiles   bool
	// xT, with transposed set, is xᵀ (k×rows); otherwise xB is x in the
	// pairs layout. Either is the activations' one, valid until the next
	// input.
	xT         *tensor.TileA
	xB         *tensor.TileB
	transposed bool
}

// rhs makes x (rows×k) the input of the weight gradients that follow,
// whose outputs are widths wide.
func (m *Model) rhs(a *Activations, x []float32, rows, k int, widths ...int) input {
	in := input{x: x, rows: rows, k: k, tiles: m.onTiles()}
	if !in.tiles {
		return in
	}
	sum := 0
	for _, n := range widths {
		sum += n
	}
	threads := runtime.GOMAXPROCS(0)
	if in.transposed = k < sum; in.transposed {
		a.inT.SetThreads(threads, tensor.Mat{Data: x, Stride: k}, k, rows, true)
		in.xT = &a.inT
	} else {
		a.inB.SetThreads(threads, tensor.Mat{Data: x, Stride: k}, rows, k, false)
		in.xB = &a.inB
	}
	return in
}

// weightGrad adds dyᵀ·x into gw, the gradient of a weight stored n×x.k
// whose outputs' gradients are dy (x.rows×n).
func (m *Model) weightGrad(a *Activations, gw, dy []float32, n int, x input) {
	if !x.tiles {
		m.gemm(gw, dy, x.x, n, x.rows, x.k, tensor.TransA|tensor.Accumulate)
		return
	}
	threads := runtime.GOMAXPROCS(0)
	dym := tensor.Mat{Data: dy, Stride: n}
	if !x.transposed {
		a.dyT.SetThreads(threads, dym, n, x.rows, true)
		tensor.MulTilesThreads(threads, tensor.Mat{Data: gw, Stride: x.k}, &a.dyT, x.xB, n, x.rows, x.k, true)
		return
	}
	// gwᵀ = xᵀ·dy, then added into gw transposed: a weight's worth of
	// values, small next to the activations.
	a.dyB.SetThreads(threads, dym, x.rows, n, false)
	a.gradT = resize(a.gradT, x.k*n)
	tensor.MulTilesThreads(threads, tensor.Mat{Data: a.gradT, Stride: n}, x.xT, &a.dyB, x.k, x.rows, n, false)
	for j := range n {
		row := gw[j*x.k : (j+1)*x.k]
		for i := range row {
			row[i] += a.gradT[i*n+j]
		}
	}
}
