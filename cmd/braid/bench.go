package main

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/braid-dev/braid/tensor"
	"github.com/spf13/cobra"
)

func newBenchCmd() *cobra.Command {
	bench := &cobra.Command{
		Use:     "bench",
		Short:   "Measure braid's kernels on this machine",
		Example: "  braid bench kernels --json",
	}
	bench.AddCommand(newBenchKernelsCmd(), newBenchDecodeCmd(), newBenchServeCmd(), newBenchProxyCmd())
	return bench
}

// matmulResult is one row of 'bench kernels'.
type matmulResult struct {
	Shape        string  `json:"shape"`
	Threads      int     `json:"threads"`
	GFLOPS       float64 `json:"gflops"`
	PeakFraction float64 `json:"peak_fraction"`
	// BF16GFLOPS is the same product with tensor.BF16, where the CPU runs
	// it on bfloat16 units.
	BF16GFLOPS float64 `json:"bf16_gflops,omitempty"`
}

type kernelsReport struct {
	Kernel     string `json:"kernel"`
	BF16Kernel string `json:"bf16_kernel,omitempty"`
	// Q8Kernel is the units of the engine's 8-bit products (--weights
	// q8), "" where there are none.
	Q8Kernel          string         `json:"q8_kernel,omitempty"`
	PeakGFLOPSPerCore float64        `json:"peak_gflops_per_core"`
	WindowSeconds     float64        `json:"window_seconds"`
	Matmul            []matmulResult `json:"matmul"`
}

func newBenchKernelsCmd() *cobra.Command {
	var (
		asJSON  bool
		shapes  string
		threads string
		dur     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "kernels",
		Short: "GFLOP/s of matrix multiply for a d=256 model's shapes, with the fraction of peak",
		Long: `Time braid's matrix multiply (c = a·b, row-major MxK times KxN) on the shapes
of a d=256 model, on 1 and 2 threads, and report GFLOP/s and the fraction of
this CPU's peak; where the CPU has bfloat16 units (AMX tiles), the same
products in bfloat16 (what --precision bf16 trains with) beside them. The
peak is measured, not looked up: a loop of independent
fused multiply-adds on registers, per core, times the threads used. Each
figure is the best of three timed windows after a warm-up, since other work
on the machine only ever slows a measurement down.`,
		Example: `  braid bench kernels
  braid bench kernels --json
  braid bench kernels --shapes 512x512x512,1x256x768 --threads 1`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			shapeList, err := parseShapes(shapes)
			if err != nil {
				return usageErrorf("--shapes: %v", err)
			}
			threadList, err := parseInts(threads, maxCount)
			if err != nil {
				return usageErrorf("--threads: %v", err)
			}
			if dur <= 0 {
				return usageErrorf("--time must be positive")
			}
			rep := kernelsReport{Kernel: tensor.KernelName(), BF16Kernel: tensor.BF16KernelName(), Q8Kernel: tensor.Q8KernelName(), WindowSeconds: dur.Seconds()}
			rep.PeakGFLOPSPerCore = round2(tensor.PeakGFLOPS(dur))
			bar := newProgress(cmd.ErrOrStderr(), len(shapeList)*len(threadList), "matmul")
			for _, sh := range shapeList {
				for _, t := range threadList {
					if err := cmd.Context().Err(); err != nil {
						return err
					}
					g := tensor.GemmGFLOPS(sh[0], sh[1], sh[2], t, 0, dur)
					r := matmulResult{Shape: fmt.Sprintf("%dx%dx%d", sh[0], sh[1], sh[2]), Threads: t, GFLOPS: round2(g)}
					if rep.BF16Kernel != "" {
						r.BF16GFLOPS = round2(tensor.GemmGFLOPS(sh[0], sh[1], sh[2], t, tensor.BF16, dur))
					}
					if rep.PeakGFLOPSPerCore > 0 {
						r.PeakFraction = round2(g / (rep.PeakGFLOPSPerCore * float64(t)))
					}
					rep.Matmul = append(rep.Matmul, r)
					bar.add(1)
				}
			}
			bar.finish()
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, rep)
			}
			fmt.Fprintf(out, "kernel %s, measured peak %.1f GFLOP/s per core\n", rep.Kernel, rep.PeakGFLOPSPerCore)
			if rep.BF16Kernel != "" {
				fmt.Fprintf(out, "bfloat16 products on %s\n", rep.BF16Kernel)
			} else {
				fmt.Fprintln(out, "no bfloat16 product units: --precision bf16 runs in float32")
			}
			if rep.Q8Kernel != "" {
				fmt.Fprintf(out, "8-bit weight products (--weights q8) on %s\n", rep.Q8Kernel)
			} else {
				fmt.Fprintln(out, "no 8-bit product units: --weights q8 needs AVX-512 VNNI")
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
			head := "shape (MxKxN)\tthreads\tGFLOP/s\tof peak\t"
			if rep.BF16Kernel != "" {
				head += "bf16 GFLOP/s\tbf16/f32\t"
			}
			fmt.Fprintln(tw, head)
			for _, r := range rep.Matmul {
				fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.0f%%\t", r.Shape, r.Threads, r.GFLOPS, 100*r.PeakFraction)
				if rep.BF16Kernel != "" {
					fmt.Fprintf(tw, "%.1f\t%.2fx\t", r.BF16GFLOPS, r.BF16GFLOPS/r.GFLOPS)
				}
				fmt.Fprintln(tw)
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.StringVar(&shapes, "shapes", "1024x256x256,1024x256x768,1024x768x256,1x256x768", "comma-separated MxKxN shapes")
	f.StringVar(&threads, "threads", "1,2", "comma-separated thread counts")
	f.DurationVar(&dur, "time", 300*time.Millisecond, "length of each timed window")
	return cmd
}

// parseShapes reads --shapes: comma-separated MxKxN products.
func parseShapes(s string) ([][3]int, error) {
	var out [][3]int
	for _, part := range strings.Split(s, ",") {
		dims := strings.Split(strings.TrimSpace(part), "x")
		if len(dims) != 3 {
			return nil, fmt.Errorf("%q is not MxKxN", part)
		}
		var sh [3]int
		for i, d := range dims {
			v, err := strconv.Atoi(d)
			if err != nil || v <= 0 || v > 1<<16 {
				return nil, fmt.Errorf("%q: size %q must be a whole number in 1..65536", part, d)
			}
			sh[i] = v
		}
		out = append(out, sh)
	}
	return out, nil
}

// round2 rounds x to two decimals, as the reports give their figures.
func round2(x float64) float64 { return float64(int(x*100+0.5)) / 100 }
