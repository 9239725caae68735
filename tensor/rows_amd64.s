#include "textflag.h"

// func dotRowsF16AVX512(heads, n, hd int, q *float32, ldq int, rows *uintptr, hstride int, c *float32, ldc int)
//
// For each head h and row i: c[h·ldc+i] = Σ_d q[h·ldq+d]·row[d], the row
// being hd half-precision values at rows[i] + h·hstride bytes, widened 16
// at a time (VCVTPH2PS) into one float32 accumulator of 16 lanes, then
// summed across the lanes. The lines of the row four on are asked for
// meanwhile. hd is a positive multiple of 16.
TEXT ·dotRowsF16AVX512(SB), NOSPLIT, $0-72
	MOVQ heads+0(FP), R8
	MOVQ q+24(FP), R9
	MOVQ ldq+32(FP), R10
	SHLQ $2, R10
	MOVQ hstride+48(FP), R11
	MOVQ c+56(FP), R12
	MOVQ ldc+64(FP), R13
	SHLQ $2, R13
	XORQ R14, R14 // h·hstride

head:
	MOVQ rows+40(FP), SI
	MOVQ n+8(FP), CX
	MOVQ R12, DI

row:
	MOVQ (SI), AX
	ADDQ R14, AX
	CMPQ CX, $4
	JLE nofetch
	MOVQ 32(SI), BX
	ADDQ R14, BX
	PREFETCHT0 (BX)
nofetch:
	VXORPS Z0, Z0, Z0
	MOVQ R9, BX
	MOVQ hd+16(FP), DX

dims:
	VCVTPH2PS (AX), Z1
	VFMADD231PS (BX), Z1, Z0
	ADDQ $32, AX
	ADDQ $64, BX
	SUBQ $16, DX
	JNZ dims

	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0x4E, X0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0xB1, X0, X1
	VADDSS X1, X0, X0
	VMOVSS X0, (DI)
	ADDQ $4, DI
	ADDQ $8, SI
	DECQ CX
	JNZ row

	ADDQ R10, R9
	ADDQ R13, R12
	ADDQ R11, R14
	DECQ R8
	JNZ head
	VZEROUPPER
	RET

// func axpyRowsF16AVX512(heads, n, hd int, w *float32, ldw int, rows *uintptr, hstride int, out *float32, ldo int)
//
// For each head h and 16 dimensions at a time: out[h·ldo+d] = Σ_i
// w[h·ldw+i]·row_i[d], the row being hd half-precision values at rows[i] +
// h·hstride bytes: one chain of multiply-adds over i in order for each
// d, as dense attention's values are summed; the row four on is asked
// for meanwhile. hd is a positive multiple of 16; n is positive.
TEXT ·axpyRowsF16AVX512(SB), NOSPLIT, $0-72
	MOVQ heads+0(FP), R8
	MOVQ w+24(FP), R9
	MOVQ ldw+32(FP), R10
	SHLQ $2, R10
	MOVQ hstride+48(FP), R11
	MOVQ out+56(FP), R12
	MOVQ ldo+64(FP), R13
	SHLQ $2, R13
	XORQ R14, R14 // h·hstride

vhead:
	XORQ DX, DX // the byte offset of these 16 dimensions in a row
	MOVQ R12, DI

chunk:
	VXORPS Z0, Z0, Z0
	MOVQ rows+40(FP), SI
	MOVQ R9, BX
	MOVQ n+8(FP), CX

vrow:
	CMPQ CX, $4
	JLE vnofetch
	MOVQ 32(SI), AX
	ADDQ R14, AX
	PREFETCHT0 (AX)(DX*1)
vnofetch:
	MOVQ (SI), AX
	ADDQ R14, AX
	VCVTPH2PS (AX)(DX*1), Z1
	VBROADCASTSS (BX), Z2
	VFMADD231PS Z1, Z2, Z0
	ADDQ $8, SI
	ADDQ $4, BX
	DECQ CX
	JNZ vrow

	VMOVUPS Z0, (DI)
	ADDQ $64, DI
	ADDQ $32, DX
	MOVQ hd+16(FP), AX
	SHLQ $1, AX
	CMPQ DX, AX
	JLT chunk

	ADDQ R10, R9
	ADDQ R13, R12
	ADDQ R11, R14
	DECQ R8
	JNZ vhead
	VZEROUPPER
	RET

// func dotRowsU8VNNI(heads, n, hd int, q *int8, ldq int, rows *uintptr, hstride int, dots *int32, ldd int)
//
// For each head h and row i: dots[h·ldd+i] = Σ_d row[d]·q[h·ldq+d], the
// row being hd unsigned bytes at rows[i] + h·hstride, the query signed:
// VPDPBUSD on 32 bytes at a time into eight 32-bit lanes, then summed
// across them, exact. The row four on is asked for meanwhile. hd is a
// positive multiple of 32.
TEXT ·dotRowsU8VNNI(SB), NOSPLIT, $0-72
	MOVQ heads+0(FP), R8
	MOVQ q+24(FP), R9
	MOVQ ldq+32(FP), R10
	MOVQ hstride+48(FP), R11
	MOVQ dots+56(FP), R12
	MOVQ ldd+64(FP), R13
	SHLQ $2, R13
	XORQ R14, R14 // h·hstride

qhead:
	MOVQ rows+40(FP), SI
	MOVQ n+8(FP), CX
	MOVQ R12, DI

qrow:
	MOVQ (SI), AX
	ADDQ R14, AX
	CMPQ CX, $4
	JLE qnofetch
	MOVQ 32(SI), BX
	ADDQ R14, BX
	PREFETCHT0 (BX)
qnofetch:
	VPXORD Y0, Y0, Y0
	MOVQ R9, BX
	MOVQ hd+16(FP), DX

qdims:
	VMOVDQU (AX), Y1
	VPDPBUSD (BX), Y1, Y0 // Y0 += u8(Y1)·s8(q), four bytes a lane
	ADDQ $32, AX
	ADDQ $32, BX
	SUBQ $32, DX
	JNZ qdims

	VEXTRACTI128 $1, Y0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0x4E, X0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0xB1, X0, X1
	VPADDD X1, X0, X0
	VMOVD X0, (DI)
	ADDQ $4, DI
	ADDQ $8, SI
	DECQ CX
	JNZ qrow

	ADDQ R10, R9
	ADDQ R13, R12
	ADDQ R11, R14
	DECQ R8
	JNZ qhead
	VZEROUPPER
	RET

// func axpyRowsI8AVX512(heads, n, hd int, w *float32, ldw int, rows *uintptr, hstride int, out *float32, ldo int)
//
// axpyRowsF16AVX512 over signed bytes: each row's 16 values of a chunk
// widened to 32-bit integers (VPMOVSXBD), then to float32, exactly, and
// multiplied-added in one chain over i in order. hd is a positive
// multiple of 16; n is positive.
TEXT ·axpyRowsI8AVX512(SB), NOSPLIT, $0-72
	MOVQ heads+0(FP), R8
	MOVQ w+24(FP), R9
	MOVQ ldw+32(FP), R10
	SHLQ $2, R10
	MOVQ hstride+48(FP), R11
	MOVQ out+56(FP), R12
	MOVQ ldo+64(FP), R13
	SHLQ $2, R13
	XORQ R14, R14 // h·hstride

ihead:
	XORQ DX, DX // the byte offset of these 16 dimensions in a row
	MOVQ R12, DI

ichunk:
	VXORPS Z0, Z0, Z0
	MOVQ rows+40(FP), SI
	MOVQ R9, BX
	MOVQ n+8(FP), CX

irow:
	CMPQ CX, $4
	JLE inofetch
	MOVQ 32(SI), AX
	ADDQ R14, AX
	PREFETCHT0 (AX)(DX*1)
inofetch:
	MOVQ (SI), AX
	ADDQ R14, AX
	VPMOVSXBD (AX)(DX*1), Z1
	VCVTDQ2PS Z1, Z1
	VBROADCASTSS (BX), Z2
	VFMADD231PS Z1, Z2, Z0
	ADDQ $8, SI
	ADDQ $4, BX
	DECQ CX
	JNZ irow

	VMOVUPS Z0, (DI)
	ADDQ $64, DI
	ADDQ $16, DX
	CMPQ DX, hd+16(FP)
	JLT ichunk

	ADDQ R10, R9
	ADDQ R13, R12
	ADDQ R11, R14
	DECQ R8
	JNZ ihead
	VZEROUPPER
	RET
