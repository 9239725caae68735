package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/braid-dev/braid/internal/faultproxy"
	"github.com/spf13/cobra"
)

func newBenchProxyCmd() *cobra.Command {
	var (
		upstream, listen string
		f                faultproxy.Faults
	)
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "A proxy that injects 500s, 429s and dropped streams between a client and a server",
		Long: `Forward every request to --upstream, but answer every --every-500th with a
500, every --every-429th with a 429 whose Retry-After is --retry-after, and
drop every --every-drop-th connection after --drop-after bytes of its
answer (a request number that several divide gets the first of these). It
prints what it did every 10 s and when stopped (Ctrl-C). Point a client's
--backend at it to measure what faults cost: a strategy whose threads are
hundreds of requests should lose threads, not problems.`,
		Example: `  braid serve --addr 127.0.0.1:8080 &
  braid bench proxy --upstream http://127.0.0.1:8080 --listen 127.0.0.1:8081 &
  braid gen problems --split test --n 100 --seed 2 | braid solve --input - --strategy apr --env constrain \
    --backend http://127.0.0.1:8081/v1 --backend-model countdown --guided-choice`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if upstream == "" {
				return usageErrorf("--upstream URL is required: the server to forward to")
			}
			h, counts, err := faultproxy.New(upstream, f)
			if err != nil {
				return usageErrorf("%v", err)
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", listen, err)
			}
			log := cmd.ErrOrStderr()
			fmt.Fprintf(log, "proxy: http://%s -> %s\n", ln.Addr(), upstream)
			srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ln) }()
			tick := time.NewTicker(10 * time.Second)
			defer tick.Stop()
			for {
				select {
				case <-tick.C:
					fmt.Fprintf(log, "proxy: %s\n", counts)
				case err := <-done:
					return err
				case <-cmd.Context().Done():
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					err := srv.Shutdown(ctx)
					fmt.Fprintf(log, "proxy: %s\n", counts)
					if errors.Is(err, context.DeadlineExceeded) {
						return nil // streams still open at the end are cut
					}
					return err
				}
			}
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&upstream, "upstream", "", "the server to forward to, e.g. http://127.0.0.1:8080")
	fl.StringVar(&listen, "listen", "127.0.0.1:8081", "the address to listen on")
	fl.IntVar(&f.Every500, "every-500", 3, "answer every Nth request with a 500 (0: never)")
	fl.IntVar(&f.Every429, "every-429", 5, "answer every Nth request with a 429 (0: never)")
	fl.DurationVar(&f.RetryAfter, "retry-after", time.Second, "the Retry-After of the 429s")
	fl.IntVar(&f.EveryDrop, "every-drop", 7, "drop every Nth connection partway through its answer (0: never)")
	fl.Int64Var(&f.DropAfter, "drop-after", 300, "bytes of an answer passed before its connection is dropped")
	return cmd
}
