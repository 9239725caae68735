package tensor

import (
	"syscall"

	"golang.org/x/sys/cpu"
)

//go:noescape
func amxBF16(cfg *amxConfig, a, b *uint16, c *float32, ksteps, pairs, ldc int, acc bool)

// Linux hands out AMX's 8 KiB of tile state only to a process that asks
// (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA); until then the
// first tile instruction kills it with SIGILL.
const (
	archReqXcompPerm  = 0x1023
	xfeatureXtiledata = 18
)

// amxKernel returns the AMX product kernel, or nil where the CPU has no
// AMX BF16 tiles or the kernel will not grant their state. It asks once, at
// start-up: the permission is the process's, for every thread.
func amxKernel() amxFunc {
	if !cpu.X86.HasAMXTile || !cpu.X86.HasAMXBF16 {
		return nil
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, archReqXcompPerm, xfeatureXtiledata, 0); errno != 0 {
		return nil
	}
	return func(cfg *amxConfig, a, b []uint16, c []float32, ksteps, pairs, ldc int, acc bool) {
		// The last value each operand's tiles reach, checked here because
		// the assembly cannot.
		_, _, _ = a[ksteps*1024-1], b[pairs*ksteps*1024-1], c[31*ldc+pairs*32-1]
		amxBF16(cfg, &a[0], &b[0], &c[0], ksteps, pairs, 4*ldc, acc)
	}
}
