package countdown

import (
	"fmt"
	"strconv"
	"strings"
)

// Mode is braid's hybrid-thinking switch for the Countdown model, written as
// a header line before a root trace.
type Mode string

const (
	// ModeDirect: no search; the model writes the solution path directly.
	ModeDirect Mode = "direct"
	// ModeSerial: one thread searches (SoS+).
	ModeSerial Mode = "serial"
	// ModeParallel: the root may spawn child searches (APR).
	ModeParallel Mode = "parallel"
)

// ParseMode reads a mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeDirect, ModeSerial, ModeParallel:
		return m, nil
	}
	return "", fmt.Errorf("countdown: unknown mode %q (want direct, serial or parallel)", s)
}

const (
	modePrefix          = "Mode: "
	tokenBudgetPrefix   = "Token Budget: "
	subCallBudgetPrefix = "Sub Call Budget: "
)

// Header is what may precede a root trace: braid's mode line and the APR
// budget prefixes. A budget of 0 means absent.
type Header struct {
	Mode          Mode
	TokenBudget   int
	SubCallBudget int
}

// Apply writes h in front of a root trace: "Mode: parallel\n" on its own
// line, then "Token Budget: {b} " and/or "Sub Call Budget: {n} " glued to the
// first trace line, the way the APR checkpoints were trained.
func (h Header) Apply(trace string) string {
	var b strings.Builder
	if h.Mode != "" {
		b.WriteString(modePrefix + string(h.Mode) + "\n")
	}
	if h.TokenBudget > 0 {
		b.WriteString(tokenBudgetPrefix + strconv.Itoa(h.TokenBudget) + " ")
	}
	if h.SubCallBudget > 0 {
		b.WriteString(subCallBudgetPrefix + strconv.Itoa(h.SubCallBudget) + " ")
	}
	b.WriteString(trace)
	return b.String()
}

// SplitHeader separates a header from the trace after it.
func SplitHeader(text string) (Header, string, error) {
	var h Header
	if rest, ok := strings.CutPrefix(text, modePrefix); ok {
		line, after, _ := strings.Cut(rest, "\n")
		m, err := ParseMode(line)
		if err != nil {
			return h, text, err
		}
		h.Mode, text = m, after
	}
	for _, pre := range []struct {
		prefix string
		dst    *int
	}{{tokenBudgetPrefix, &h.TokenBudget}, {subCallBudgetPrefix, &h.SubCallBudget}} {
		rest, ok := strings.CutPrefix(text, pre.prefix)
		if !ok {
			continue
		}
		num, after, found := strings.Cut(rest, " ")
		n, err := strconv.Atoi(num)
		if !found || err != nil || n <= 0 || len(num) > 9 || num[0] < '1' || num[0] > '9' {
			return h, text, fmt.Errorf("countdown: %q must be followed by a positive number and a space", strings.TrimSpace(pre.prefix))
		}
		*pre.dst, text = n, after
	}
	return h, text, nil
}
