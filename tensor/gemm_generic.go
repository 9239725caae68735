package tensor

// genericKernel is the portable kernel: plain Go over the packed panels,
// 4×16 tiles and narrower ones for leftover rows, the fallback on CPUs
// without AVX2. Every width runs the same loop, so a row's result does not
// depend on which one computed it.
var genericKernel = kernel{name: "go", nr: 16,
	tiles: []tileKernel{goTile(4), goTile(2), goTile(1)}}

func goTile(mr int) tileKernel {
	return tileKernel{mr: mr, run: func(kc int, a []float32, ps, is int, b, c []float32, ldc int, acc bool) {
		const nr = 16
		var t [4][nr]float32
		b = b[:kc*nr]
		for p := range kc {
			bp := (*[nr]float32)(b[p*nr:])
			for i := range mr {
				ai := a[p*ps+i*is]
				row := &t[i]
				for j := range nr {
					row[j] += ai * bp[j]
				}
			}
		}
		for i := range mr {
			dst := c[i*ldc : i*ldc+nr]
			if acc {
				for j := range dst {
					dst[j] += t[i][j]
				}
			} else {
				copy(dst, t[i][:])
			}
		}
	}}
}

// gemmRef is the textbook triple loop, the oracle every fast path is tested
// against.
func gemmRef(c, a, b []float32, m, k, n int, f Flags) {
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				var av, bv float32
				if f&TransA != 0 {
					av = a[p*m+i]
				} else {
					av = a[i*k+p]
				}
				if f&TransB != 0 {
					bv = b[j*k+p]
				} else {
					bv = b[p*n+j]
				}
				s += float64(av) * float64(bv)
			}
			if f&Accumulate != 0 {
				c[i*n+j] += float32(s)
			} else {
				c[i*n+j] = float32(s)
			}
		}
	}
}
