#include "textflag.h"

// The Go assembler has no AMX mnemonics, so each instruction is its bytes,
// with the GNU syntax that assembles to them beside it.

// func amxBF16(cfg *amxConfig, a, b *uint16, c *float32, ksteps, pairs, ldc int, acc bool)
//
// c (32 rows, row stride ldc bytes) = a (32 rows) · b (pairs·32 columns),
// or c += a·b with acc,
// over ksteps steps of 32 depths, in bfloat16 products summed in float32.
// a holds, for each step, two 1 KiB tiles of 16 rows × 32 depths; b holds
// 2·pairs panels of 16 columns, each ksteps 1 KiB tiles of 16 depth pairs ×
// 16 columns × 2. Accumulators tmm0..3 are the 2×2 tiles of a 32×32 block,
// tmm4/5 the two row tiles of a, tmm6/7 the two column tiles of b.
TEXT ·amxBF16(SB), NOSPLIT, $0-57
	MOVQ cfg+0(FP), AX
	BYTE $0xc4; BYTE $0xe2; BYTE $0x78; BYTE $0x49; BYTE $0x00 // ldtilecfg (%rax)
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), DX
	MOVQ ksteps+32(FP), R10
	MOVQ pairs+40(FP), R11
	MOVQ ldc+48(FP), R9
	MOVQ $64, R8           // every tile row is 64 bytes: the tiles are packed
	MOVQ R10, R12
	SHLQ $10, R12          // one panel of b: ksteps KiB
pair:
	MOVBLZX acc+56(FP), AX
	TESTL AX, AX
	JZ zero
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x04; BYTE $0x0a // tileloadd (%rdx,%r9,1),%tmm0
	LEAQ 64(DX), AX
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x0c; BYTE $0x08 // tileloadd (%rax,%r9,1),%tmm1
	MOVQ R9, AX
	SHLQ $4, AX
	ADDQ DX, AX
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x14; BYTE $0x08 // tileloadd (%rax,%r9,1),%tmm2
	ADDQ $64, AX
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x1c; BYTE $0x08 // tileloadd (%rax,%r9,1),%tmm3
	JMP steps
zero:
	BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xc0 // tilezero %tmm0
	BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xc8 // tilezero %tmm1
	BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xd0 // tilezero %tmm2
	BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xd8 // tilezero %tmm3
steps:
	MOVQ SI, AX            // a's tiles
	MOVQ DI, BX            // the pair's first panel
	LEAQ (DI)(R12*1), CX   // its second
	MOVQ R10, R13
step:
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x24; BYTE $0x00 // tileloadd (%rax,%r8,1),%tmm4
	ADDQ $1024, AX
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x2c; BYTE $0x00 // tileloadd (%rax,%r8,1),%tmm5
	ADDQ $1024, AX
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x34; BYTE $0x03 // tileloadd (%rbx,%r8,1),%tmm6
	ADDQ $1024, BX
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x3c; BYTE $0x01 // tileloadd (%rcx,%r8,1),%tmm7
	ADDQ $1024, CX
	BYTE $0xc4; BYTE $0xe2; BYTE $0x4a; BYTE $0x5c; BYTE $0xc4 // tdpbf16ps %tmm6,%tmm4,%tmm0
	BYTE $0xc4; BYTE $0xe2; BYTE $0x42; BYTE $0x5c; BYTE $0xcc // tdpbf16ps %tmm7,%tmm4,%tmm1
	BYTE $0xc4; BYTE $0xe2; BYTE $0x4a; BYTE $0x5c; BYTE $0xd5 // tdpbf16ps %tmm6,%tmm5,%tmm2
	BYTE $0xc4; BYTE $0xe2; BYTE $0x42; BYTE $0x5c; BYTE $0xdd // tdpbf16ps %tmm7,%tmm5,%tmm3
	DECQ R13
	JNZ step
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7a; BYTE $0x4b; BYTE $0x04; BYTE $0x0a // tilestored %tmm0,(%rdx,%r9,1)
	LEAQ 64(DX), AX
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7a; BYTE $0x4b; BYTE $0x0c; BYTE $0x08 // tilestored %tmm1,(%rax,%r9,1)
	MOVQ R9, AX
	SHLQ $4, AX
	ADDQ DX, AX            // 16 rows of c down
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7a; BYTE $0x4b; BYTE $0x14; BYTE $0x08 // tilestored %tmm2,(%rax,%r9,1)
	ADDQ $64, AX
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7a; BYTE $0x4b; BYTE $0x1c; BYTE $0x08 // tilestored %tmm3,(%rax,%r9,1)
	ADDQ $128, DX          // the next 32 columns of c
	LEAQ (DI)(R12*2), DI   // and of b
	DECQ R11
	JNZ pair
	BYTE $0xc4; BYTE $0xe2; BYTE $0x78; BYTE $0x49; BYTE $0xc0 // tilerelease
	RET
