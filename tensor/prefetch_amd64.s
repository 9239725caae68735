#include "textflag.h"

// func prefetch(p *byte, n int)
//
// PREFETCHT0 every 64-byte line of the n bytes at p (n > 0).
TEXT ·prefetch(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), AX
	MOVQ n+8(FP), CX
	LEAQ (AX)(CX*1), CX
line:
	PREFETCHT0 (AX)
	ADDQ $64, AX
	CMPQ AX, CX
	JB line
	RET
