#include "textflag.h"

// func scoresQ8VNNI(heads, steps int, q *int8, ldq int, qh *Q8Head, ldh int, b *uint8, ldbh int, ks *float32, c *float32, ldc int, fetch *uint8)
//
// For each head: 16 int32 sums over steps groups of four dimensions,
// VPDPBUSD multiplying a group's keys (unsigned bytes: 16 slots × 4) by
// the four query bytes broadcast (signed); then the head's Corr taken
// away, the sums converted (exactly), times its Scale, then times the
// keys' 16 scales. One line of fetch is asked for each step.
TEXT ·scoresQ8VNNI(SB), NOSPLIT, $0-96
	MOVQ heads+0(FP), CX
	MOVQ ks+64(FP), DX
	MOVQ q+16(FP), SI
	MOVQ ldq+24(FP), R8
	MOVQ qh+32(FP), R9
	MOVQ ldh+40(FP), R11
	SHLQ $3, R11
	MOVQ b+48(FP), DI
	MOVQ ldbh+56(FP), R12
	MOVQ c+72(FP), R13
	MOVQ ldc+80(FP), R14
	SHLQ $2, R14
	MOVQ fetch+88(FP), R10

head:
	VPXORD Z0, Z0, Z0
	MOVQ SI, AX
	MOVQ DI, BX
	MOVQ steps+8(FP), R15

step:
	PREFETCHT0 (R10)
	ADDQ $64, R10
	VMOVDQU32 (BX), Z1
	VPDPBUSD.BCST (AX), Z1, Z0
	ADDQ $4, AX
	ADDQ $64, BX
	DECQ R15
	JNZ step

	VPSUBD.BCST (R9), Z0, Z0
	VCVTDQ2PS Z0, Z0
	VMULPS.BCST 4(R9), Z0, Z0
	VMULPS (DX), Z0, Z0
	VMOVUPS Z0, (R13)
	ADDQ $64, DX
	ADDQ R8, SI
	ADDQ R11, R9
	ADDQ R12, DI
	ADDQ R14, R13
	DECQ CX
	JNZ head
	VZEROUPPER
	RET
