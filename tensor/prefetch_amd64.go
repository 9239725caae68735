package tensor

//go:noescape
func prefetch(p *byte, n int)
