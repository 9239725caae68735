package tensor

import (
	"fmt"
	"math"
)

// The elementwise and row-wise operations of a Llama-style transformer, each
// a forward function and, where training needs it, a backward one. Shapes
// are in the comments; every matrix is row-major. Backward functions add
// into their gradient outputs (+=), as in llm.c, so a gradient that flows
// along two paths is summed without extra buffers.

// RMSNorm normalizes each of the n rows of x (n×c) by its root mean square
// and scales by w (c): out = x·rstd·w with rstd = 1/sqrt(mean(x²)+eps). It
// saves rstd (n) for the backward pass.
func RMSNorm(out, rstd, x, w []float32, n, c int, eps float32) {
	for i := range n {
		row := x[i*c : (i+1)*c]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		r := float32(1 / math.Sqrt(ss/float64(c)+float64(eps)))
		rstd[i] = r
		o := out[i*c : (i+1)*c]
		for j, v := range row {
			o[j] = v * r * w[j]
		}
	}
}

// RMSNormBackward adds the gradients of RMSNorm: with g = dout·w,
// dx += rstd·g − rstd³·x·mean(g·x) and dw += dout·x·rstd.
func RMSNormBackward(dx, dw, dout, x, w, rstd []float32, n, c int) {
	for i := range n {
		row := x[i*c : (i+1)*c]
		do := dout[i*c : (i+1)*c]
		r := rstd[i]
		var dot float64
		for j, v := range row {
			dot += float64(do[j]) * float64(w[j]) * float64(v)
		}
		k := r * r * r * float32(dot/float64(c))
		d := dx[i*c : (i+1)*c]
		for j, v := range row {
			d[j] += r*do[j]*w[j] - k*v
			dw[j] += do[j] * v * r
		}
	}
}

// Softmax writes the softmax of x (c values) to out, which may be x itself;
// stable against large values by subtracting the maximum first. The
// maximum, the exponentials and their sum run on the vector kernels where
// the CPU has them.
func Softmax(out, x []float32) {
	if sum := ExpShift(out, x); sum != 0 {
		Scale(1/sum, out[:len(x)])
	}
}

// SoftmaxStats is Softmax returning what SoftmaxAgain needs to recompute
// it bit for bit: the maximum subtracted and the reciprocal of the sum.
// Attention's forward pass keeps these two numbers per row instead of the
// row, and its backward pass recomputes the row from the scores.
func SoftmaxStats(out, x []float32) (maxv, inv float32) {
	checkLen("SoftmaxStats", len(out), len(x))
	maxv = rowMax(x)
	sum := expShift(out, x, maxv)
	if sum == 0 {
		return maxv, 0
	}
	inv = 1 / sum
	Scale(inv, out[:len(x)])
	return maxv, inv
}

// SoftmaxAgain writes exp(x − maxv)·inv into out: with SoftmaxStats's
// maxv and inv for the same x, the very values SoftmaxStats wrote.
func SoftmaxAgain(out, x []float32, maxv, inv float32) {
	checkLen("SoftmaxAgain", len(out), len(x))
	if inv == 0 {
		clear(out[:len(x)])
		return
	}
	expShift(out, x, maxv)
	Scale(inv, out[:len(x)])
}

// rowMax is the maximum of x, on the vector kernel where the CPU has it;
// 0 for no values.
func rowMax(x []float32) float32 {
	done, maxv := maxVector(x)
	if done == 0 && len(x) > 0 {
		maxv = x[0]
	}
	for _, v := range x[done:] {
		maxv = max(maxv, v)
	}
	return maxv
}

// expShift writes exp(x − shift) into out and returns their sum.
func expShift(out, x []float32, shift float32) float32 {
	out = out[:len(x)]
	done, sum := expShiftSumVector(out, x, shift)
	for i := done; i < len(x); i++ {
		e := Exp(x[i] - shift)
		out[i] = e
		sum += e
	}
	return sum
}

// ExpShift writes exp(x − max x) into out and returns their sum: a softmax
// left unnormalised, for a caller that divides something shorter by the
// sum instead (attention divides each head's output, not every score).
func ExpShift(out, x []float32) float32 {
	checkLen("ExpShift", len(out), len(x))
	if len(x) == 0 {
		return 0
	}
	return expShift(out, x, rowMax(x))
}

// SoftmaxBackward adds the gradient of y = Softmax(x):
// dx += y·(dy − Σ dy·y).
func SoftmaxBackward(dx, dy, y []float32) {
	var dot float64
	for i, v := range y {
		dot += float64(dy[i]) * float64(v)
	}
	d := float32(dot)
	for i, v := range y {
		dx[i] += v * (dy[i] - d)
	}
}

// SoftmaxRowBackward turns d, the gradient with respect to a softmax's
// output p, into scale times the gradient with respect to its input, in
// place: d = p·(d − Σ d·p)·scale. Attention's backward pass runs it on
// every score row; the sum is in float32, 16 lanes at a time.
func SoftmaxRowBackward(d, p []float32, scale float32) {
	checkLen("SoftmaxRowBackward", len(p), len(d))
	var sum float32
	n := softmaxBackVector(d, p, scale, &sum, false)
	for i := n; i < len(d); i++ {
		sum += d[i] * p[i]
	}
	n = softmaxBackVector(d, p, scale, &sum, true)
	for i := n; i < len(d); i++ {
		d[i] = p[i] * (d[i] - sum) * scale
	}
}

// RoPE holds the rotary position embedding tables of one head size: cos and
// sin of pos·freq[i] for every position below maxPos and i < d/2, where
// freq[i] is θ^(−2i/d), rescaled for long contexts where a RopeScaling says.
type RoPE struct {
	half     int
	cos, sin []float32 // maxPos × half
}

// RopeScaling is Llama 3.1's rescaling of the rotary frequencies ("llama3"
// in Hugging Face configs), which stretches a model pretrained on
// OriginalMaxPos positions to longer contexts. A frequency whose wavelength
// 2π/freq is below OriginalMaxPos/HighFreqFactor turns within the
// pretraining context many times over and keeps its value; one whose
// wavelength is above OriginalMaxPos/LowFreqFactor is divided by Factor, as
// if positions were Factor times closer; those between are interpolated.
// The zero value is no scaling. Otherwise Factor ≥ 1, HighFreqFactor >
// LowFreqFactor > 0 and OriginalMaxPos > 0, which model.Config.Validate
// checks.
type RopeScaling struct {
	Factor         float64 // divisor of the low frequencies
	LowFreqFactor  float64 // OriginalMaxPos over the wavelength where the low band ends
	HighFreqFactor float64 // OriginalMaxPos over the wavelength where the high band starts
	OriginalMaxPos int     // the context length the model was pretrained on
}

// Divisor returns what s divides the rotary frequency freq by: 1 in the
// high band, Factor in the low band, and between them the divisor that
// makes the scaled frequency (1−t)·freq/Factor + t·freq, with t running
// linearly in OriginalMaxPos/wavelength from 0 at the low band's edge to 1
// at the high band's. These are the values llama.cpp keeps per frequency
// as its rope_freqs tensor. The zero RopeScaling returns 1.
func (s RopeScaling) Divisor(freq float64) float64 {
	if s == (RopeScaling{}) {
		return 1
	}
	orig := float64(s.OriginalMaxPos)
	wavelen := 2 * math.Pi / freq
	switch {
	case wavelen < orig/s.HighFreqFactor:
		return 1
	case wavelen > orig/s.LowFreqFactor:
		return s.Factor
	}
	t := (orig/wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
	return 1 / ((1-t)/s.Factor + t)
}

// RoPEFreqs returns the rotary frequencies of the headDim/2 element pairs
// of a head: θ^(−2i/headDim) for pair i, divided by s.Divisor of it. With
// the zero RopeScaling they are the plain frequencies, bit for bit, as
// dividing by 1 is exact.
func RoPEFreqs(headDim int, theta float64, s RopeScaling) []float64 {
	freqs := make([]float64, headDim/2)
	for i := range freqs {
		freq := 1 / math.Pow(theta, float64(2*i)/float64(headDim))
		freqs[i] = freq / s.Divisor(freq)
	}
	return freqs
}

// NewRoPE builds the tables for heads of size headDim (even) and positions
// below maxPos, with base theta (10000 in Llama 2, 500000 in Llama 3).
func NewRoPE(headDim, maxPos int, theta float64) *RoPE {
	return NewScaledRoPE(headDim, maxPos, theta, RopeScaling{})
}

// NewScaledRoPE is NewRoPE with the frequencies rescaled by s, as Llama 3.1
// and 3.2 are; the zero s gives NewRoPE's tables.
func NewScaledRoPE(headDim, maxPos int, theta float64, s RopeScaling) *RoPE {
	if headDim%2 != 0 {
		panic(fmt.Sprintf("tensor: RoPE head size %d is odd", headDim))
	}
	half := headDim / 2
	freqs := RoPEFreqs(headDim, theta, s)
	r := &RoPE{half: half, cos: make([]float32, maxPos*half), sin: make([]float32, maxPos*half)}
	for p := range maxPos {
		for i, freq := range freqs {
			a := float64(p) * freq
			r.cos[p*half+i] = float32(math.Cos(a))
			r.sin[p*half+i] = float32(math.Sin(a))
		}
	}
	return r
}

// Apply rotates x (t × heads × headDim) in place, token i at position
// pos[i], pairing element j with j+headDim/2 as Hugging Face's Llama does
// ("rotate_half"), not adjacent elements.
func (r *RoPE) Apply(x []float32, pos []int, heads int) {
	r.rotate(x, pos, heads, 1)
}

// Backward rotates the gradient dx (t × heads × headDim) back in place: the
// inverse rotation, since a rotation's Jacobian is the rotation itself.
func (r *RoPE) Backward(dx []float32, pos []int, heads int) {
	r.rotate(dx, pos, heads, -1)
}

func (r *RoPE) rotate(x []float32, pos []int, heads int, sign float32) {
	h, d := r.half, 2*r.half
	for t, p := range pos {
		cs, sn := r.cos[p*h:(p+1)*h], r.sin[p*h:(p+1)*h]
		for hd := range heads {
			v := x[(t*heads+hd)*d : (t*heads+hd+1)*d]
			lo, hi := v[:h], v[h:]
			for i := range h {
				c, s := cs[i], sign*sn[i]
				a, b := lo[i], hi[i]
				lo[i] = a*c - b*s
				hi[i] = b*c + a*s
			}
		}
	}
}

// SwiGLU computes the Llama MLP's gate: out = silu(gate)·up, elementwise,
// with silu(x) = x·σ(x) = x/(1+e^−x). out must not alias gate or up.
func SwiGLU(out, gate, up []float32) {
	checkLen("SwiGLU", len(out), len(gate))
	out = out[:len(gate)]
	for i, g := range gate {
		out[i] = -g
	}
	ExpSlice(out, out)
	for i, g := range gate {
		out[i] = g * up[i] / (1 + out[i])
	}
}

// SwiGLUBackward adds the gradients of SwiGLU: dup += dout·silu(gate),
// dgate += dout·up·σ(gate)·(1 + gate·(1 − σ(gate))).
func SwiGLUBackward(dgate, dup, dout, gate, up []float32) {
	// σ(g) = 1/(1+e^−g), with the exponentials taken a chunk at a time by
	// the vector kernel into a buffer on the stack.
	var e [256]float32
	for lo := 0; lo < len(gate); lo += len(e) {
		g := gate[lo:min(lo+len(e), len(gate))]
		ex := e[:len(g)]
		for i, v := range g {
			ex[i] = -v
		}
		ExpSlice(ex, ex)
		for i, v := range g {
			s := 1 / (1 + ex[i])
			j := lo + i
			dup[j] += dout[j] * v * s
			dgate[j] += dout[j] * up[j] * s * (1 + v*(1-s))
		}
	}
}

// Axpy adds alpha·x to y.
func Axpy(alpha float32, x, y []float32) {
	for i, v := range x {
		y[i] += alpha * v
	}
}

// Mul sets dst[i] = a[i]·b[i]; dst may be a or b.
func Mul(dst, a, b []float32) {
	checkLen("Mul", len(dst), len(a))
	checkLen("Mul", len(dst), len(b))
	for i := mulVector(dst, a, b); i < len(dst); i++ {
		dst[i] = a[i] * b[i]
	}
}

// MulRows multiplies rows of p by rows of s in place: for r < rows,
// p[r·ldp+j] *= s[r·lds+j] for j < n (lds may be 0: every row by the same
// values). Short rows, such as one cache block's attention weights per
// head times its values' scales, take one masked vector each.
func MulRows(rows, n int, p []float32, ldp int, s []float32, lds int) {
	if rows <= 0 || n <= 0 {
		return
	}
	if len(p) < (rows-1)*ldp+n || len(s) < (rows-1)*lds+n {
		panic(fmt.Sprintf("tensor: MulRows of %d rows of %d (strides %d, %d) with %d and %d values", rows, n, ldp, lds, len(p), len(s)))
	}
	if mulRowsVector(rows, n, p, ldp, s, lds) {
		return
	}
	for r := range rows {
		Mul(p[r*ldp:r*ldp+n], p[r*ldp:r*ldp+n], s[r*lds:r*lds+n])
	}
}

// Scale multiplies x by alpha in place.
func Scale(alpha float32, x []float32) {
	for i := scaleVector(alpha, x); i < len(x); i++ {
		x[i] *= alpha
	}
}

// Dot returns Σ a·b, accumulated in float64.
func Dot(a, b []float32) float32 {
	var s float64
	for i, v := range a {
		s += float64(v) * float64(b[i])
	}
	return float32(s)
}

// AddBias adds bias (c) to each of the n rows of x (n×c).
func AddBias(x, bias []float32, n, c int) {
	for i := range n {
		row := x[i*c : (i+1)*c]
		for j, b := range bias {
			row[j] += b
		}
	}
}

// BiasBackward adds the column sums of dout (n×c) to dbias (c).
func BiasBackward(dbias, dout []float32, n, c int) {
	for i := range n {
		for j, v := range dout[i*c : (i+1)*c] {
			dbias[j] += v
		}
	}
}

// checkLen panics when an output is shorter than its input, rather than
// letting a reslice write into the caller's spare capacity.
func checkLen(op string, out, in int) {
	if out < in {
		panic(fmt.Sprintf("tensor: %s into %d values from %d", op, out, in))
	}
}
