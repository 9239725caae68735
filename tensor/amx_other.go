//go:build !linux || !amd64

package tensor

func amxKernel() amxFunc {
	return nil
}

func amxPanelsKernel() amxPanelsFunc { return nil }

func amxPairsKernel() amxPairsFunc { return nil }
