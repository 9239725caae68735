// Package tensor is the arithmetic under braid's model and engine: the
// float32 matrix products and the row-wise operations of a Llama-style
// transformer, on the CPU, over flat row-major slices whose shapes the
// caller passes explicitly. Products allocate nothing once warm: their
// scratch buffers are pooled. A slice too short for the sizes it comes
// with is a programming error, and panics.
//
// The package is cut by concept:
//
//   - gemm.go: Gemm and its variants, blocked in the manner of Goto's
//     GEMM (packed panels of b, register-tile microkernels, the work split
//     across goroutines when it pays);
//   - packed.go and bf16.go: Packed, a matrix laid out once in the
//     kernels' panels for products that reuse it, such as a model's
//     weights, in float32, half precision or bfloat16;
//   - vecmat.go: products of one row, alone or several attention heads at
//     once, against a matrix in float32, half precision or 8-bit integers
//     (the engine's KV cache);
//   - ops.go and exp.go: the elementwise and row-wise operations (RMSNorm,
//     softmax, RoPE, SwiGLU, ...), each a forward function and, where
//     training needs it, a backward one that accumulates into its
//     gradients, and a fast float32 Exp;
//   - peak.go: the machine's peak rate and Gemm's, the yardsticks of the
//     benchmarks.
//
// The kernels are the fastest the CPU has, chosen once at start-up:
// AVX-512 or AVX2 assembly on amd64 (kernel_amd64.s, written by gen_kernels.go;
// kernel_amd64.go wraps it), else portable Go (gemm_generic.go,
// kernel_other.go). Every kernel sums in the same order, so a row of a
// product (one without TransB) has the same bits whatever rows and threads
// share the call: batched decoding relies on it. The naive gemmRef stays
// beside the fast paths as the tests' oracle.
package tensor
