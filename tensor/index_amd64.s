#include "textflag.h"

// func indexScoresF16AVX512(n int, blocks *unsafe.Pointer, heads, dim int, q, w, out *float32)
//
// For each of the n blocks (keys dim×16 half-precision values by
// dimension, at blocks[b]): 16 scores Σ_j w[j]·max(0, q_j·key), the heads
// four at a time (each dimension's 16 keys widened once for the four),
// then one at a time. Each head's product is a chain of FMAs over the
// dimensions in order; the weighted terms are added to zero in order of
// heads. Blocks go in pairs, so that eight chains, not four, hide the
// FMA's latency (a last odd block with itself); the lines of the pair two
// blocks on are fetched meanwhile, one a dimension of the first four heads
// (32 bytes): every line twice.
TEXT ·indexScoresF16AVX512(SB), NOSPLIT, $0-56
	MOVQ n+0(FP), CX
	MOVQ blocks+8(FP), SI
	MOVQ out+48(FP), DI
	MOVQ dim+24(FP), R13
	SHLQ $2, R13           // bytes from one head's query to the next's
	LEAQ (R13)(R13*2), R14 // three heads'
	VXORPS Z31, Z31, Z31

pair:
	TESTQ CX, CX
	JZ done
	MOVQ (SI), AX // the first block's keys
	MOVQ AX, R15  // the second's: a last odd block is its own, stored once
	CMPQ CX, $2
	JLT pairfetch
	MOVQ 8(SI), R15

pairfetch:
	MOVQ AX, BX // the next pair's, to fetch (themselves at the end)
	MOVQ R15, DX
	CMPQ CX, $4
	JLT pairset
	MOVQ 16(SI), BX
	MOVQ 24(SI), DX

pairset:
	VXORPS Z0, Z0, Z0   // the first block's scores
	VXORPS Z11, Z11, Z11 // the second's
	MOVQ q+32(FP), R9
	MOVQ w+40(FP), R10
	MOVQ heads+16(FP), R11

pquad:
	CMPQ R11, $4
	JLT psingle
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	VXORPS Z4, Z4, Z4
	VXORPS Z6, Z6, Z6
	VXORPS Z7, Z7, Z7
	VXORPS Z8, Z8, Z8
	VXORPS Z9, Z9, Z9
	XORQ R8, R8 // the dimension's offset in a block
	MOVQ dim+24(FP), R12

pdims4:
	PREFETCHT0 (BX)(R8*1)
	PREFETCHT0 (DX)(R8*1)
	VCVTPH2PS (AX)(R8*1), Z5
	VCVTPH2PS (R15)(R8*1), Z10
	VBROADCASTSS (R9), Z12
	VBROADCASTSS (R9)(R13*1), Z13
	VBROADCASTSS (R9)(R13*2), Z14
	VBROADCASTSS (R9)(R14*1), Z15
	VFMADD231PS Z12, Z5, Z1
	VFMADD231PS Z12, Z10, Z6
	VFMADD231PS Z13, Z5, Z2
	VFMADD231PS Z13, Z10, Z7
	VFMADD231PS Z14, Z5, Z3
	VFMADD231PS Z14, Z10, Z8
	VFMADD231PS Z15, Z5, Z4
	VFMADD231PS Z15, Z10, Z9
	ADDQ $32, R8
	ADDQ $4, R9
	DECQ R12
	JNZ pdims4

	ADDQ R14, R9 // past the four heads' queries
	VBROADCASTSS (R10), Z12
	VBROADCASTSS 4(R10), Z13
	VBROADCASTSS 8(R10), Z14
	VBROADCASTSS 12(R10), Z15
	VMAXPS Z31, Z1, Z1
	VMULPS Z12, Z1, Z1
	VADDPS Z1, Z0, Z0
	VMAXPS Z31, Z6, Z6
	VMULPS Z12, Z6, Z6
	VADDPS Z6, Z11, Z11
	VMAXPS Z31, Z2, Z2
	VMULPS Z13, Z2, Z2
	VADDPS Z2, Z0, Z0
	VMAXPS Z31, Z7, Z7
	VMULPS Z13, Z7, Z7
	VADDPS Z7, Z11, Z11
	VMAXPS Z31, Z3, Z3
	VMULPS Z14, Z3, Z3
	VADDPS Z3, Z0, Z0
	VMAXPS Z31, Z8, Z8
	VMULPS Z14, Z8, Z8
	VADDPS Z8, Z11, Z11
	VMAXPS Z31, Z4, Z4
	VMULPS Z15, Z4, Z4
	VADDPS Z4, Z0, Z0
	VMAXPS Z31, Z9, Z9
	VMULPS Z15, Z9, Z9
	VADDPS Z9, Z11, Z11
	ADDQ $16, R10
	SUBQ $4, R11
	MOVQ AX, BX // fetched once: the rest reads what is here
	MOVQ R15, DX
	JMP pquad

psingle:
	TESTQ R11, R11
	JZ pstore
	VXORPS Z1, Z1, Z1
	VXORPS Z6, Z6, Z6
	XORQ R8, R8
	MOVQ dim+24(FP), R12

pdims1:
	VCVTPH2PS (AX)(R8*1), Z5
	VCVTPH2PS (R15)(R8*1), Z10
	VBROADCASTSS (R9), Z12
	VFMADD231PS Z12, Z5, Z1
	VFMADD231PS Z12, Z10, Z6
	ADDQ $32, R8
	ADDQ $4, R9
	DECQ R12
	JNZ pdims1

	VBROADCASTSS (R10), Z12
	VMAXPS Z31, Z1, Z1
	VMULPS Z12, Z1, Z1
	VADDPS Z1, Z0, Z0
	VMAXPS Z31, Z6, Z6
	VMULPS Z12, Z6, Z6
	VADDPS Z6, Z11, Z11
	ADDQ $4, R10
	DECQ R11
	JMP psingle

pstore:
	VMOVUPS Z0, (DI)
	CMPQ CX, $2
	JLT done
	VMOVUPS Z11, 64(DI)
	ADDQ $128, DI
	ADDQ $16, SI
	SUBQ $2, CX
	JMP pair

done:
	VZEROUPPER
	RET

DATA iota<>+0(SB)/4, $0
DATA iota<>+4(SB)/4, $1
DATA iota<>+8(SB)/4, $2
DATA iota<>+12(SB)/4, $3
DATA iota<>+16(SB)/4, $4
DATA iota<>+20(SB)/4, $5
DATA iota<>+24(SB)/4, $6
DATA iota<>+28(SB)/4, $7
DATA iota<>+32(SB)/4, $8
DATA iota<>+36(SB)/4, $9
DATA iota<>+40(SB)/4, $10
DATA iota<>+44(SB)/4, $11
DATA iota<>+48(SB)/4, $12
DATA iota<>+52(SB)/4, $13
DATA iota<>+56(SB)/4, $14
DATA iota<>+60(SB)/4, $15
GLOBL iota<>(SB), RODATA|NOPTR, $64

// func atLeastAVX512(x *float32, n int, t float32, vals *float32, at *int32) int
//
// The values of x[0:n] (n a positive multiple of 16) at least t, and
// their indices, packed to the front of 16 lanes (VCOMPRESSPS) and stored
// whole: each store writes 16 values, of which the first popcount(mask)
// count.
TEXT ·atLeastAVX512(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS t+16(FP), Z0
	MOVQ vals+24(FP), DI
	MOVQ at+32(FP), R8
	VMOVDQU32 iota<>(SB), Z1
	MOVL $16, AX
	VPBROADCASTD AX, Z2
	XORQ DX, DX

chunk:
	VMOVUPS (SI), Z3
	VCMPPS $0x1d, Z0, Z3, K1 // x ≥ t, ordered: NaN is not
	VCOMPRESSPS Z3, K1, Z4
	VPCOMPRESSD Z1, K1, Z5
	VMOVUPS Z4, (DI)(DX*4)
	VMOVDQU32 Z5, (R8)(DX*4)
	KMOVW K1, AX
	POPCNTL AX, AX
	ADDQ AX, DX
	VPADDD Z2, Z1, Z1
	ADDQ $64, SI
	SUBQ $16, CX
	JNZ chunk

	MOVQ DX, ret+40(FP)
	VZEROUPPER
	RET

// func countAtLeastAVX512(x *float32, n int, t float32) int
//
// How many of x[0:n] (n a positive multiple of 16) are at least t: a
// mask's popcount, 16 values at a time, two vectors a step where there
// are two.
TEXT ·countAtLeastAVX512(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS t+16(FP), Z0
	XORQ DX, DX
	CMPQ CX, $32
	JLT one

two:
	VCMPPS $0x12, (SI), Z0, K1 // t ≤ x, ordered: NaN is not
	VCMPPS $0x12, 64(SI), Z0, K2
	KMOVW K1, AX
	KMOVW K2, BX
	POPCNTL AX, AX
	POPCNTL BX, BX
	ADDQ AX, DX
	ADDQ BX, DX
	ADDQ $128, SI
	SUBQ $32, CX
	CMPQ CX, $32
	JGE two
	TESTQ CX, CX
	JZ done

one:
	VCMPPS $0x12, (SI), Z0, K1
	KMOVW K1, AX
	POPCNTL AX, AX
	ADDQ AX, DX

done:
	MOVQ DX, ret+24(FP)
	VZEROUPPER
	RET
