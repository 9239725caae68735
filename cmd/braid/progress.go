package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows a long job's progress on stderr: a bar on a terminal,
// and, for logs and pipes (a job running in the background), a plain line
// every logEvery with the rate and the time left (a job shorter than that
// prints none; the command's own summary follows either way). A nil
// *progress is valid and shows nothing.
type progress struct {
	bar *progressbar.ProgressBar

	// The plain-line mode.
	mu          sync.Mutex
	w           io.Writer
	desc        string
	total, done int
	start, last time.Time
	every       time.Duration
}

// logEvery is how often a log gets a progress line.
const logEvery = 30 * time.Second

func newProgress(w io.Writer, total int, desc string) *progress {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &progress{bar: progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("items"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)}
	}
	if w == nil || total <= 0 {
		return nil
	}
	now := time.Now()
	return &progress{w: w, desc: desc, total: total, start: now, last: now, every: logEvery}
}

func (p *progress) add(n int) {
	if p == nil {
		return
	}
	if p.bar != nil {
		_ = p.bar.Add(n)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if now := time.Now(); now.Sub(p.last) >= p.every && p.done < p.total {
		p.last = now
		p.line(now)
	}
}

// line writes one plain progress line.
func (p *progress) line(now time.Time) {
	el := now.Sub(p.start)
	rate := float64(p.done) / el.Seconds()
	left := "?"
	if rate > 0 {
		left = time.Duration(float64(p.total-p.done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "%s: %d/%d (%.0f%%), %.2f/s, %s elapsed, %s left\n", p.desc, p.done, p.total,
		100*float64(p.done)/float64(p.total), rate, el.Round(time.Second), left)
}

func (p *progress) finish() {
	if p == nil {
		return
	}
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

// phaseProgress shows the phases of a long step (train.GRPO.Tick's
// reports, each phase counted from 0) as progress: a bar for each phase
// on a terminal and, in a log, a line each time every passes (braid's
// commands pass logEvery). label names the step, "step 11/40".
func phaseProgress(w io.Writer, every time.Duration, label func(step int) string) func(step int, phase string, done, total int) {
	var (
		p    *progress
		last int
	)
	return func(step int, phase string, done, total int) {
		if done == 0 {
			p.finish()
			p, last = nil, 0
			if total > 0 {
				p = newProgress(w, total, label(step)+" "+phase)
			}
			if p != nil && p.bar == nil {
				p.every = every
			}
			return
		}
		p.add(done - last)
		last = done
		if done >= total {
			p.finish()
			p = nil
		}
	}
}
