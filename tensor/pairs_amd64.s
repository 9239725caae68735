#include "textflag.h"

// func pairsBF16AVX512(dst *uint16, r0, r1 *float32, blocks int, idx *uint16)
//
// Rounds 16 values of each of two rows to bfloat16 and interleaves them,
// r0[j] then r1[j], into 32 values of dst, for blocks rounds: two rows of a
// matrix as one row of TileB's pairs layout. idx holds VPERMW's word
// indices 0, 16, 1, 17, ..., 15, 31.
TEXT ·pairsBF16AVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ r0+8(FP), SI
	MOVQ r1+16(FP), BX
	MOVQ blocks+24(FP), CX
	MOVQ idx+32(FP), AX
	VMOVDQU64 (AX), Z3
loop:
	VMOVUPS (SI), Z0
	VMOVUPS (BX), Z1
	BYTE $0x62; BYTE $0xf2; BYTE $0x77; BYTE $0x48; BYTE $0x72; BYTE $0xd0 // vcvtne2ps2bf16 %zmm0,%zmm1,%zmm2: the low 16 words from zmm0 (r0), the high from zmm1 (r1)
	BYTE $0x62; BYTE $0xf2; BYTE $0xe5; BYTE $0x48; BYTE $0x8d; BYTE $0xe2 // vpermw %zmm2,%zmm3,%zmm4
	VMOVDQU64 Z4, (DI)
	ADDQ $64, SI
	ADDQ $64, BX
	ADDQ $64, DI
	DECQ CX
	JNZ loop
	VZEROUPPER
	RET
