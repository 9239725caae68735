//go:build !amd64

package tensor

// kernels lists the microkernels this CPU runs: the portable one.
func kernels() []kernel { return []kernel{genericKernel} }

var bestKernel = genericKernel

func peakProbe() (func(int), int) { return nil, 0 }

func expVector(dst, src []float32) int { return 0 }

func dot4(a, b []float32, ldb int, out *[4]float32) int { return 0 }

func expShiftSumVector(dst, src []float32, shift float32) (int, float32) { return 0, 0 }

func maxVector(x []float32) (int, float32) { return 0, 0 }

func scaleVector(float32, []float32) int { return 0 }

func packPanelTrans(panel, src []float32, ldb, kc, nr int) bool { return false }

var vecMatHeadsKernels func(heads int, wide bool, k int, a *float32, lda int, b *float32, ldbh, ldb int, c *float32, ldc int, chain bool)

var vecMatF16Kernels headKernels[uint16]

var vecMatI8Kernels headKernels[int8]

var vecMatF16RowKernels headKernels[uint16]

var vecMatI8RowKernels headKernels[int8]

func softmaxBackVector(d, p []float32, scale float32, sum *float32, apply bool) int { return 0 }

func toHalfVector(dst []uint16, src []float32) int { return 0 }

func mulVector(dst, a, b []float32) int { return 0 }

func mulRowsVector(rows, n int, p []float32, ldp int, s []float32, lds int) bool { return false }

func toBF16Vector(dst []uint16, src []float32) int { return 0 }
