package tensor

import (
	"syscall"

	"golang.org/x/sys/cpu"
)

//go:noescape
func amxBF16(cfg *amxConfig, a, b *uint16, c *float32, ksteps, pairs, ldc int, acc bool)

//go:noescape
func amxPairs(cfg *amxConfig, a *uint16, lda int, b *uint16, ldb int, c *float32, ldc, ksteps, chunks int, acc bool)

//go:noescape
func amxPanels(cfg *amxConfig, a *uint16, lda int, b *uint16, panel int, c *float32, ldc, ksteps, panels int, acc bool)

// Linux hands out AMX's 8 KiB of tile state only to a process that asks
// (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA); until then the
// first tile instruction kills it with SIGILL.
const (
	archReqXcompPerm  = 0x1023
	xfeatureXtiledata = 18
)

// amxUsable says whether the CPU has AMX BF16 tiles and the kernel grants
// their state. It is asked once, at start-up: the permission is the
// process's, for every thread.
var amxUsable = func() bool {
	if !cpu.X86.HasAMXTile || !cpu.X86.HasAMXBF16 {
		return false
	}
	_, _, errno := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, archReqXcompPerm, xfeatureXtiledata, 0)
	return errno == 0
}()

// amxPanelsKernel returns the kernel over PackBF16 panels, nil without AMX.
func amxPanelsKernel() amxPanelsFunc {
	if !amxUsable {
		return nil
	}
	return func(cfg *amxConfig, a []uint16, lda int, b []uint16, panel int, c []float32, ldc, rows, ksteps, panels int, acc bool) {
		// The last value each operand's tiles reach, checked here because
		// the assembly cannot: a's rows reach ksteps·32 depths, b's last
		// panel a whole last step, c's rows 32 columns a panel.
		_, _, _ = a[(rows-1)*lda+ksteps*32-1], b[(panels-1)*panel+ksteps*1024-1], c[(rows-1)*ldc+panels*32-1]
		amxPanels(cfg, &a[0], 2*lda, &b[0], 2*panel, &c[0], 4*ldc, ksteps, panels, acc)
	}
}

// amxKernel returns the AMX product kernel, or nil without AMX.
func amxKernel() amxFunc {
	if !amxUsable {
		return nil
	}
	return func(cfg *amxConfig, a, b []uint16, c []float32, ksteps, pairs, ldc int, acc bool) {
		// The last value each operand's tiles reach, checked here because
		// the assembly cannot.
		_, _, _ = a[ksteps*1024-1], b[pairs*ksteps*1024-1], c[31*ldc+pairs*32-1]
		amxBF16(cfg, &a[0], &b[0], &c[0], ksteps, pairs, 4*ldc, acc)
	}
}

// amxPairsKernel returns the kernel over TileA and TileB operands, nil
// without AMX.
func amxPairsKernel() amxPairsFunc {
	if !amxUsable {
		return nil
	}
	return func(a []uint16, lda int, b []uint16, ldb int, c []float32, ldc, ksteps, chunks int, acc bool) {
		// The last value each operand's tiles reach: a's 32nd row at its
		// last step, b's last pair row of its last chunk, c's 32nd row.
		_, _, _ = a[31*lda+ksteps*32-1], b[(ksteps*16-1)*ldb+chunks*64-1], c[31*ldc+chunks*32-1]
		amxPairs(amxCfg, &a[0], 2*lda, &b[0], 2*ldb, &c[0], 4*ldc, ksteps, chunks, acc)
	}
}
