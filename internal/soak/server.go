package soak

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Server is a braid serve that StartServe started and watches.
type Server struct {
	Base string   // where it listens, http://HOST:PORT on loopback
	PID  int      // its process
	Args []string // the flags it was given

	cmd   *exec.Cmd
	watch *stderrWatch
	done  chan struct{} // closed when the process has exited
	err   error         // how it exited, once done is closed
	once  sync.Once
	stopC context.CancelFunc
	crash []string
}

// StartServe starts exe serve, exe being braid, on a loopback port with
// extra flags, and waits until it says where it listens.
func StartServe(ctx context.Context, exe string, extra []string) (*Server, error) {
	cctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(cctx, exe, append([]string{"serve", "--addr", "127.0.0.1:0", "--quiet"}, extra...)...)
	// Interrupted, serve drains its requests and exits; one that does
	// not within WaitDelay is killed.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	w := &stderrWatch{addr: make(chan string, 1)}
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("soak: start %s serve: %w", exe, err)
	}
	s := &Server{PID: cmd.Process.Pid, Args: cmd.Args[2:], cmd: cmd, watch: w, done: make(chan struct{}), stopC: cancel}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	select {
	case addr := <-w.addr:
		base, err := LoopbackBase("http://" + addr)
		if err != nil {
			s.Stop()
			return nil, fmt.Errorf("soak: the server listens on %s: %w", addr, err)
		}
		s.Base = base
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("soak: braid serve exited (%v) before it listened:\n%s", s.err, strings.Join(w.tailLines(), "\n"))
	case <-time.After(time.Minute):
		s.Stop()
		return nil, fmt.Errorf("soak: braid serve did not say where it listens within a minute:\n%s", strings.Join(w.tailLines(), "\n"))
	case <-ctx.Done():
		s.Stop()
		return nil, ctx.Err()
	}
}

// Stop interrupts the server, waits for it to exit, and returns the lines
// of its stderr that show a crash; a server that had exited on its own
// is one.
func (s *Server) Stop() []string {
	s.once.Do(func() {
		select {
		case <-s.done:
			s.crash = append(s.crash, fmt.Sprintf("braid serve exited during the soak: %v", s.err))
		default:
		}
		s.stopC()
		<-s.done
		s.crash = append(s.crash, s.watch.crashLines()...)
	})
	return s.crash
}

// serveLine is the line braid serve writes once it listens.
var serveLine = regexp.MustCompile(`^braid serving \S+ on http://(\S+) \(`)

// stderrWatch reads the server's stderr line by line: it finds the line
// that says where the server listens, and keeps the lines that show a
// crash, and the last few, for an error.
type stderrWatch struct {
	addr chan string // receives the address once

	mu      sync.Mutex
	partial []byte
	found   bool
	crash   []string // the first few
	crashes int
	tail    []string
}

func (w *stderrWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

func (w *stderrWatch) line(l string) {
	if !w.found {
		if m := serveLine.FindStringSubmatch(l); m != nil {
			w.found = true
			w.addr <- m[1]
		}
	}
	if strings.Contains(l, "panic") || strings.Contains(l, "fatal error") || strings.Contains(l, "goroutine ") || strings.Contains(l, "DATA RACE") {
		w.crashes++
		if len(w.crash) < 20 {
			w.crash = append(w.crash, l)
		}
	}
	if len(w.tail) >= 20 {
		w.tail = w.tail[1:]
	}
	w.tail = append(w.tail, l)
}

// crashLines are the crash lines seen, the last line included even if it
// has no newline.
func (w *stderrWatch) crashLines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.line(string(w.partial))
		w.partial = nil
	}
	out := append([]string(nil), w.crash...)
	if w.crashes > len(w.crash) {
		out = append(out, fmt.Sprintf("... and %d more", w.crashes-len(w.crash)))
	}
	return out
}

func (w *stderrWatch) tailLines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.tail...)
}
