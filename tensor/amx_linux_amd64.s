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

// func amxPanels(cfg *amxConfig, a *uint16, lda int, b *uint16, panel int, c *float32, ldc, ksteps, panels int, acc bool)
//
// c (up to 16 rows, as cfg configures, row stride ldc bytes) = a · b, or
// c += a·b with acc, over panels of 32 columns packed by PackBF16: for each
// pair of depths a row of 128 bytes, the pairs of 32 columns. a is rows of
// bfloat16 (stride lda bytes) whose depths past k are zero, so that a
// last step of 32 depths may read past a block's pairs. Panels lie panel
// bytes apart; column tile j of a panel is its 64 bytes at 64j.
TEXT ·amxPanels(SB), NOSPLIT, $0-73
	MOVQ cfg+0(FP), AX
	BYTE $0xc4; BYTE $0xe2; BYTE $0x78; BYTE $0x49; BYTE $0x00 // ldtilecfg (%rax)
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R8
	MOVQ b+24(FP), DI
	MOVQ panel+32(FP), R11
	MOVQ c+40(FP), DX
	MOVQ ldc+48(FP), R10
	MOVQ panels+64(FP), R12
	MOVQ $128, R9          // a pair of depths of a panel's 32 columns
panel:
	MOVBLZX acc+72(FP), AX
	TESTL AX, AX
	JZ zero
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x04; BYTE $0x12 // tileloadd (%rdx,%r10,1),%tmm0
	LEAQ 64(DX), AX
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x0c; BYTE $0x10 // tileloadd (%rax,%r10,1),%tmm1
	JMP steps
zero:
	BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xc0 // tilezero %tmm0
	BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xc8 // tilezero %tmm1
steps:
	MOVQ SI, AX
	MOVQ DI, BX
	LEAQ 64(DI), CX
	MOVQ ksteps+56(FP), R13
step:
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x24; BYTE $0x00 // tileloadd (%rax,%r8,1),%tmm4
	ADDQ $64, AX           // a's next 32 depths
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x34; BYTE $0x0b // tileloadd (%rbx,%r9,1),%tmm6
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x3c; BYTE $0x09 // tileloadd (%rcx,%r9,1),%tmm7
	// Fetch b's step 8 steps ahead, every line of it: with few rows a
	// product streams its weights from memory, and tile loads alone
	// leave the stream to the hardware prefetcher, which keeps too little
	// in flight (a 545 MB product of one row on two cores: 13 GB/s
	// without, 21 with, median of 5 alternating runs; 16 rows in L2 lose
	// nothing measurable).
	PREFETCHT0 16384(BX)
	PREFETCHT0 16448(BX)
	PREFETCHT0 16512(BX)
	PREFETCHT0 16576(BX)
	PREFETCHT0 16640(BX)
	PREFETCHT0 16704(BX)
	PREFETCHT0 16768(BX)
	PREFETCHT0 16832(BX)
	PREFETCHT0 16896(BX)
	PREFETCHT0 16960(BX)
	PREFETCHT0 17024(BX)
	PREFETCHT0 17088(BX)
	PREFETCHT0 17152(BX)
	PREFETCHT0 17216(BX)
	PREFETCHT0 17280(BX)
	PREFETCHT0 17344(BX)
	PREFETCHT0 17408(BX)
	PREFETCHT0 17472(BX)
	PREFETCHT0 17536(BX)
	PREFETCHT0 17600(BX)
	PREFETCHT0 17664(BX)
	PREFETCHT0 17728(BX)
	PREFETCHT0 17792(BX)
	PREFETCHT0 17856(BX)
	PREFETCHT0 17920(BX)
	PREFETCHT0 17984(BX)
	PREFETCHT0 18048(BX)
	PREFETCHT0 18112(BX)
	PREFETCHT0 18176(BX)
	PREFETCHT0 18240(BX)
	PREFETCHT0 18304(BX)
	PREFETCHT0 18368(BX)
	ADDQ $2048, BX         // b's next 16 pairs
	ADDQ $2048, CX
	BYTE $0xc4; BYTE $0xe2; BYTE $0x4a; BYTE $0x5c; BYTE $0xc4 // tdpbf16ps %tmm6,%tmm4,%tmm0
	BYTE $0xc4; BYTE $0xe2; BYTE $0x42; BYTE $0x5c; BYTE $0xcc // tdpbf16ps %tmm7,%tmm4,%tmm1
	DECQ R13
	JNZ step
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7a; BYTE $0x4b; BYTE $0x04; BYTE $0x12 // tilestored %tmm0,(%rdx,%r10,1)
	LEAQ 64(DX), AX
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7a; BYTE $0x4b; BYTE $0x0c; BYTE $0x10 // tilestored %tmm1,(%rax,%r10,1)
	ADDQ $128, DX          // the next 32 columns of c
	ADDQ R11, DI           // and of b
	DECQ R12
	JNZ panel
	BYTE $0xc4; BYTE $0xe2; BYTE $0x78; BYTE $0x49; BYTE $0xc0 // tilerelease
	RET

// func amxPairs(cfg *amxConfig, a *uint16, lda int, b *uint16, ldb int, c *float32, ldc, ksteps, chunks int, acc bool)
//
// c (32 rows, row stride ldc bytes, chunks·32 columns) = a · b, or c +=
// a·b with acc, over ksteps steps of 32 depths: a is 32 rows of bfloat16
// (stride lda bytes), b the pairs layout of a k×n matrix, row p holding
// for every column j the values of depths 2p and 2p+1 side by side (stride
// ldb bytes). Neither needs packing into tiles: a tile of a is 16 rows of
// 64 bytes at any stride, and one of b 16 rows of pairs. Accumulators
// tmm0..3 are the 2×2 tiles of a 32×32 block of c, tmm4/5 the row tiles
// of a, tmm6/7 the column tiles of b.
TEXT ·amxPairs(SB), NOSPLIT, $0-73
	MOVQ cfg+0(FP), AX
	BYTE $0xc4; BYTE $0xe2; BYTE $0x78; BYTE $0x49; BYTE $0x00 // ldtilecfg (%rax)
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R8
	MOVQ b+24(FP), DI
	MOVQ ldb+32(FP), R9
	MOVQ c+40(FP), DX
	MOVQ ldc+48(FP), R10
	MOVQ chunks+64(FP), R11
	MOVQ R9, R14
	SHLQ $4, R14           // 16 rows of b: 32 depths
chunk:
	MOVBLZX acc+72(FP), AX
	TESTL AX, AX
	JZ zero
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x04; BYTE $0x12 // tileloadd (%rdx,%r10,1),%tmm0
	LEAQ 64(DX), AX
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x0c; BYTE $0x10 // tileloadd (%rax,%r10,1),%tmm1
	MOVQ R10, AX
	SHLQ $4, AX
	ADDQ DX, AX
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x14; BYTE $0x10 // tileloadd (%rax,%r10,1),%tmm2
	ADDQ $64, AX
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x1c; BYTE $0x10 // tileloadd (%rax,%r10,1),%tmm3
	JMP steps
zero:
	BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xc0 // tilezero %tmm0
	BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xc8 // tilezero %tmm1
	BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xd0 // tilezero %tmm2
	BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xd8 // tilezero %tmm3
steps:
	MOVQ SI, AX            // a's rows 0..15
	MOVQ R8, CX
	SHLQ $4, CX
	ADDQ SI, CX            // and 16..31
	MOVQ DI, BX            // b's first pair row of this chunk
	MOVQ ksteps+56(FP), R13
step:
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x24; BYTE $0x00 // tileloadd (%rax,%r8,1),%tmm4
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x2c; BYTE $0x01 // tileloadd (%rcx,%r8,1),%tmm5
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x34; BYTE $0x0b // tileloadd (%rbx,%r9,1),%tmm6
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x7c; BYTE $0x0b; BYTE $0x40 // tileloadd 0x40(%rbx,%r9,1),%tmm7
	BYTE $0xc4; BYTE $0xe2; BYTE $0x4a; BYTE $0x5c; BYTE $0xc4 // tdpbf16ps %tmm6,%tmm4,%tmm0
	BYTE $0xc4; BYTE $0xe2; BYTE $0x42; BYTE $0x5c; BYTE $0xcc // tdpbf16ps %tmm7,%tmm4,%tmm1
	BYTE $0xc4; BYTE $0xe2; BYTE $0x4a; BYTE $0x5c; BYTE $0xd5 // tdpbf16ps %tmm6,%tmm5,%tmm2
	BYTE $0xc4; BYTE $0xe2; BYTE $0x42; BYTE $0x5c; BYTE $0xdd // tdpbf16ps %tmm7,%tmm5,%tmm3
	ADDQ $64, AX           // the next 32 depths of a
	ADDQ $64, CX
	ADDQ R14, BX           // and of b
	DECQ R13
	JNZ step
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7a; BYTE $0x4b; BYTE $0x04; BYTE $0x12 // tilestored %tmm0,(%rdx,%r10,1)
	LEAQ 64(DX), AX
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7a; BYTE $0x4b; BYTE $0x0c; BYTE $0x10 // tilestored %tmm1,(%rax,%r10,1)
	MOVQ R10, AX
	SHLQ $4, AX
	ADDQ DX, AX            // 16 rows of c down
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7a; BYTE $0x4b; BYTE $0x14; BYTE $0x10 // tilestored %tmm2,(%rax,%r10,1)
	ADDQ $64, AX
	BYTE $0xc4; BYTE $0xa2; BYTE $0x7a; BYTE $0x4b; BYTE $0x1c; BYTE $0x10 // tilestored %tmm3,(%rax,%r10,1)
	ADDQ $128, DX          // the next 32 columns of c
	ADDQ $128, DI          // and of b's pairs
	DECQ R11
	JNZ chunk
	BYTE $0xc4; BYTE $0xe2; BYTE $0x78; BYTE $0x49; BYTE $0xc0 // tilerelease
	RET
