package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/braid-dev/braid/task/countdown"
	"github.com/braid-dev/braid/tensor"
)

// braid runs the CLI in-process and returns exit code, stdout and stderr.
func braid(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func expectExit(t *testing.T, want int, stdin string, args ...string) (string, string) {
	t.Helper()
	code, out, errs := braid(t, stdin, args...)
	if code != want {
		t.Fatalf("braid %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errs)
	}
	return out, errs
}

func TestHelpListsCommandsWithExamples(t *testing.T) {
	out, _ := expectExit(t, 0, "", "help")
	for _, c := range []string{"gen", "countdown", "generate", "bench"} {
		if !strings.Contains(out, c) {
			t.Errorf("braid help does not list %q:\n%s", c, out)
		}
	}
	for _, cmd := range [][]string{
		{"gen"}, {"countdown"}, {"bench"}, {"bench", "kernels"}, {"bench", "decode"}, {"gen", "problems"}, {"gen", "traces"},
		{"countdown", "solve"}, {"countdown", "verify"}, {"generate"}, {"solve"}, {"train"}, {"train", "sft"}, {"train", "index"}, {"train", "export"}, {"eval"},
	} {
		out, _ := expectExit(t, 0, "", append(cmd, "--help")...)
		if !strings.Contains(out, "Examples:") || !strings.Contains(out, "braid "+strings.Join(cmd, " ")) {
			t.Errorf("braid %s --help has no examples:\n%s", strings.Join(cmd, " "), out)
		}
	}
}

func TestVersion(t *testing.T) {
	out, _ := expectExit(t, 0, "", "--version")
	if !strings.HasPrefix(out, "braid version ") {
		t.Errorf("--version printed %q", out)
	}
}

func TestVerifyCommand(t *testing.T) {
	out, _ := expectExit(t, 0, "", "countdown", "verify", "27", "22", "26", "31", "53", "26+(53/(31+22))")
	if !strings.HasPrefix(out, "correct:") {
		t.Errorf("output %q", out)
	}
	out, _ = expectExit(t, 1, "", "countdown", "verify", "27", "22", "26", "31", "53", "26+31+22")
	if !strings.Contains(out, "unused: [53]") {
		t.Errorf("output %q does not say which number is unused", out)
	}
	_, errs := expectExit(t, 2, "", "countdown", "verify", "27", "22", "x", "31", "53", "1+1")
	if !strings.Contains(errs, `"x" is not a plain number`) {
		t.Errorf("stderr %q", errs)
	}
	// strconv.Atoi would read "+27" as 27.
	_, errs = expectExit(t, 2, "", "countdown", "verify", "+27", "22", "26", "31", "53", "26+31/(53-22)")
	if !strings.Contains(errs, `target: "+27" is not a plain number`) {
		t.Errorf("stderr %q", errs)
	}
	expectExit(t, 2, "", "countdown", "verify", "27", "22")
	expectExit(t, 2, "", "countdown", "verify", "--bogus", "27", "22", "26", "1")
	// The answer left out: the last number would silently become it.
	_, errs = expectExit(t, 2, "", "countdown", "verify", "10", "1", "2", "3", "4")
	if !strings.Contains(errs, "missing EXPR") {
		t.Errorf("stderr %q", errs)
	}
}

func TestSolveCommand(t *testing.T) {
	out, _ := expectExit(t, 0, "", "countdown", "solve", "27", "22", "26", "31", "53")
	expr, _, _ := strings.Cut(strings.TrimSpace(out), " = ")
	if err := countdown.VerifyAnswer(countdown.Problem{Numbers: []int{22, 26, 31, 53}, Target: 27}, expr); err != nil {
		t.Fatalf("solve printed %q: %v", out, err)
	}
	out, _ = expectExit(t, 1, "", "countdown", "solve", "99", "1", "1", "1", "1")
	if !strings.Contains(out, "no solution") {
		t.Errorf("output %q", out)
	}
	out, _ = expectExit(t, 0, "", "countdown", "solve", "--all", "24", "4", "9", "3", "1")
	if n := strings.Count(out, "= 24\n"); n < 5 {
		t.Errorf("--all printed %d solutions", n)
	}
	out, _ = expectExit(t, 0, "", "countdown", "solve", "--trace", "parallel", "--beam", "4", "27", "22", "26", "31", "53")
	if !strings.Contains(out, "<Calling Sub Searches>") || !strings.Contains(out, "## thread #0,") || !strings.Contains(out, "(verified)") {
		t.Errorf("parallel trace output lacks a spawn, a child thread or the verified answer:\n%s", out)
	}
	expectExit(t, 2, "", "countdown", "solve", "--trace", "sideways", "27", "22", "26", "31", "53")
	expectExit(t, 2, "", "countdown", "solve", "--trace", "serial", "--beam", "-1", "27", "22", "26", "31", "53")
	expectExit(t, 2, "", "countdown", "solve", "--limit", "3", "27", "22", "26", "31", "53")
	expectExit(t, 2, "", "countdown", "solve", "--beam", "3", "27", "22", "26", "31", "53")
	expectExit(t, 2, "", "countdown", "solve", "27", "22", "26", "31", "53", "1", "2", "3")
	expectExit(t, 2, "", "countdown", "solve", "2000000", "22", "26", "31", "53")
}

func TestVerifyTraceCommand(t *testing.T) {
	p := countdown.Problem{Numbers: []int{22, 26, 31, 53}, Target: 27}
	rec, err := countdown.TraceConfig{Format: countdown.ModeSerial}.Generate(p, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "trace.txt")
	if err := os.WriteFile(path, []byte(rec.Text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := expectExit(t, 0, "", "countdown", "verify", "--trace", path, "27", "22", "26", "31", "53")
	if !strings.HasPrefix(out, "valid trace:") {
		t.Errorf("output %q", out)
	}
	bad := strings.Replace(rec.Text, "Resulting Numbers: [", "Resulting Numbers: [1, ", 1)
	out, _ = expectExit(t, 1, bad, "countdown", "verify", "--trace", "-", "27", "22", "26", "31", "53")
	if !strings.Contains(out, "line 2") {
		t.Errorf("output %q does not name line 2", out)
	}
	// A trace cut mid-search fails unless the caller accepts that.
	cut := strings.Join(strings.SplitAfter(rec.Text, "\n")[:3], "")
	out, _ = expectExit(t, 1, cut, "countdown", "verify", "--trace", "-", "27", "22", "26", "31", "53")
	if !strings.HasPrefix(out, "unfinished:") {
		t.Errorf("output %q", out)
	}
	expectExit(t, 0, cut, "countdown", "verify", "--trace", "-", "--allow-unfinished", "27", "22", "26", "31", "53")
}

func TestInterruptedRunExits130(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	path := filepath.Join(t.TempDir(), "traces.jsonl")
	code := run(ctx, []string{"gen", "traces", "--format", "serial", "--n", "1000", "--out", path}, strings.NewReader(""), &out, &errb)
	if code != 130 || !strings.Contains(errb.String(), "interrupted") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("an interrupted run left %s", path)
	}
}

func readJSONL[T any](t *testing.T, s string) []T {
	t.Helper()
	var out []T
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("bad JSONL line %q: %v", sc.Text(), err)
		}
		out = append(out, v)
	}
	return out
}

func TestGenProblems(t *testing.T) {
	out, _ := expectExit(t, 0, "", "gen", "problems", "--n", "50", "--split", "test", "--seed", "3")
	ps := readJSONL[countdown.Problem](t, out)
	if len(ps) != 50 {
		t.Fatalf("%d problems", len(ps))
	}
	for _, p := range ps {
		if err := p.Validate(); err != nil || countdown.SplitOf(p) != countdown.Test || !countdown.Solvable(p) {
			t.Fatalf("%v: not a valid, solvable test problem", p)
		}
	}
	again, _ := expectExit(t, 0, "", "gen", "problems", "--n", "50", "--split", "test", "--seed", "3")
	if again != out {
		t.Fatal("the same seed gave different problems")
	}
	expectExit(t, 2, "", "gen", "problems", "--n", "0")
	expectExit(t, 2, "", "gen", "problems", "--split", "holdout")
	// Validation problems are test-split ones, none of the seed's test
	// problems above.
	out, _ = expectExit(t, 0, "", "gen", "problems", "--n", "50", "--split", "validation", "--seed", "3")
	test := map[string]bool{}
	for _, p := range ps {
		test[p.Key()] = true
	}
	for _, p := range readJSONL[countdown.Problem](t, out) {
		if countdown.SplitOf(p) != countdown.Test || !countdown.Solvable(p) || test[p.Key()] {
			t.Fatalf("%v: not a solvable validation problem apart from the test ones", p)
		}
	}
	out, _ = expectExit(t, 0, "", "gen", "problems", "--n", "20", "--split", "test", "--unsolvable")
	for _, p := range readJSONL[countdown.Problem](t, out) {
		if err := p.Validate(); err != nil || countdown.SplitOf(p) != countdown.Test || countdown.Solvable(p) {
			t.Fatalf("%v: not a valid, unsolvable test problem", p)
		}
	}
}

func TestGenTraces(t *testing.T) {
	out, errs := expectExit(t, 0, "", "gen", "traces", "--format", "parallel", "--n", "20", "--seed", "2")
	recs := readJSONL[countdown.TraceRecord](t, out)
	if len(recs) != 20 {
		t.Fatalf("%d records", len(recs))
	}
	spawned := false
	for _, r := range recs {
		p := countdown.Problem{Numbers: r.Numbers, Target: r.Target}
		for _, s := range r.Sequences {
			if _, err := countdown.VerifyTrace(p, s.Prompt+s.Completion); err != nil {
				t.Fatalf("%v: sequence %s/%d: %v", p, s.Thread, s.Call, err)
			}
		}
		if r.Tree == nil {
			t.Fatal("parallel record without a tree")
		}
		spawned = spawned || r.Children > 0
		if r.Solved != (countdown.VerifyAnswer(p, r.Answer) == nil) {
			t.Fatalf("%v: solved=%v but answer %q", p, r.Solved, r.Answer)
		}
	}
	if !spawned {
		t.Error("no rollout of 20 spawned a child")
	}
	if !strings.Contains(errs, "reached the goal:") || !strings.Contains(errs, "traces/s") {
		t.Errorf("no summary on stderr: %q", errs)
	}
	if strings.Contains(out, `\u003c`) {
		t.Error("traces are HTML-escaped in the JSON")
	}
}

func TestGenTracesFromInputFile(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "problems.jsonl")
	os.WriteFile(in, []byte("{\"numbers\":[22,26,31,53],\"target\":27}\n\n{\"numbers\":[4,9,3,1],\"target\":24}\n"), 0o644)
	outPath := filepath.Join(dir, "traces.jsonl")
	expectExit(t, 0, "", "gen", "traces", "--format", "serial", "--input", in, "--out", outPath, "-q")
	data, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	recs := readJSONL[countdown.TraceRecord](t, string(data))
	if len(recs) != 2 || recs[1].Target != 24 || len(recs[0].Sequences) != 1 {
		t.Fatalf("records: %+v", recs)
	}
	if fi, err := os.Stat(outPath); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("output file mode %v, %v; want -rw-r--r--", fi.Mode(), err)
	}

	// A bad line is reported by number, and the earlier output survives.
	os.WriteFile(in, []byte("{\"numbers\":[22,26,31,53],\"target\":27}\n{\"numbers\":[1],\"target\":1}\n"), 0o644)
	_, errs := expectExit(t, 1, "", "gen", "traces", "--format", "serial", "--input", in, "--out", outPath)
	if !strings.Contains(errs, in+":2:") {
		t.Errorf("stderr %q does not name line 2", errs)
	}
	if again, _ := os.ReadFile(outPath); !bytes.Equal(again, data) {
		t.Error("a failed run changed the earlier output file")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}

	expectExit(t, 2, "", "gen", "traces", "--n", "3")
	expectExit(t, 2, "", "gen", "traces", "--format", "serial")
	expectExit(t, 2, "", "gen", "traces", "--format", "serial", "--n", "3", "--heuristic", "best")
	expectExit(t, 2, "", "gen", "traces", "--format", "serial", "--n", "3", "--beam-min", "4", "--beam-max", "2")
}

func TestBenchKernelsJSON(t *testing.T) {
	out, _ := expectExit(t, 0, "", "bench", "kernels", "--json", "--shapes", "16x32x48,1x40x24", "--threads", "1,2", "--time", "20ms")
	var rep struct {
		Matmul []struct {
			Shape        string  `json:"shape"`
			Threads      int     `json:"threads"`
			GFLOPS       float64 `json:"gflops"`
			PeakFraction float64 `json:"peak_fraction"`
		} `json:"matmul"`
		Q8Kernel string `json:"q8_kernel"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if rep.Q8Kernel != tensor.Q8KernelName() {
		t.Errorf("q8 kernel %q, want %q", rep.Q8Kernel, tensor.Q8KernelName())
	}
	if len(rep.Matmul) != 4 || rep.Matmul[0].Shape != "16x32x48" || rep.Matmul[3].Threads != 2 {
		t.Fatalf("rows: %+v", rep.Matmul)
	}
	for _, r := range rep.Matmul {
		if r.GFLOPS <= 0 || r.PeakFraction < 0 {
			t.Fatalf("row %+v", r)
		}
	}
	expectExit(t, 2, "", "bench", "kernels", "--shapes", "16x32")
	expectExit(t, 2, "", "bench", "kernels", "--threads", "0")
}
