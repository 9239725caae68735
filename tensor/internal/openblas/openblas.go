//go:build openblas

// Package openblas calls OpenBLAS's sgemm through cgo, for the side-by-side
// benchmark only (go test -tags openblas -bench Matmul ./tensor/). It builds
// only under the openblas tag and needs Debian's libopenblas-dev; braid's own
// build never includes it. It is a package of its own because Go does not
// allow cgo beside assembly in one package.
package openblas

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
void openblas_set_num_threads(int num_threads);
*/
import "C"

import "unsafe"

// Gemm computes c = a·b (row-major, m×k times k×n) with sgemm on one thread.
func Gemm(c, a, b []float32, m, k, n int) {
	C.openblas_set_num_threads(1)
	C.cblas_sgemm(C.CblasRowMajor, C.CblasNoTrans, C.CblasNoTrans, C.blasint(m), C.blasint(n), C.blasint(k),
		1, (*C.float)(unsafe.Pointer(&a[0])), C.blasint(k), (*C.float)(unsafe.Pointer(&b[0])), C.blasint(n),
		0, (*C.float)(unsafe.Pointer(&c[0])), C.blasint(n))
}
