//go:build !amd64

package tensor

// kernels lists the microkernels this CPU runs: the portable one.
func kernels() []kernel { return []kernel{genericKernel} }

var bestKernel = genericKernel

func peakProbe() (func(int), int) { return nil, 0 }
