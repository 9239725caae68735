package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/braid-dev/braid/internal/browsertest"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/store"
)

// fixture is a run with everything the charts draw: two strategies, four
// seeds (pass@k), perturbed twins (robustness) and goal tokens
// (overthinking).
func fixture(t *testing.T) []Run { return fixtureNamed(t, "grid1", "countdown", "serial", "apr") }

// fixtureNamed is fixture with the run, its task and its two strategies
// named by the caller.
func fixtureNamed(t *testing.T, id, task string, strategies ...string) []Run {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "braid.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.StartRun(ctx, id, map[string]any{"task": task, "strategies": strategies}); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		for si, s := range strategies {
			for seed := 1; seed <= 4; seed++ {
				for _, variant := range []string{"", "+distractors"} {
					right := (i+seed+si)%3 != 0
					if variant != "" {
						right = right && i%2 == 0
					}
					tokens := 800 + 900*si + 37*i + 11*seed
					goal := -1
					if right {
						goal = tokens / 2
					}
					x := store.Sample{Key: fmt.Sprintf("%s%s|%d|%d", s, variant, i, seed), Strategy: s + variant,
						Problem: json.RawMessage(`{}`), Index: i, Seed: uint64(seed), Correct: right, Answer: "x",
						Usage: reason.Usage{TotalTokens: tokens, CriticalPathTokens: tokens / (1 + si), LatencyMS: int64(tokens)}, TokensToGoal: goal}
					if err := st.Save(ctx, id, x); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	runs, err := Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

func TestHTMLAndMarkdown(t *testing.T) {
	runs := fixture(t)
	var page bytes.Buffer
	if err := HTML(&page, runs); err != nil {
		t.Fatal(err)
	}
	h := page.String()
	for _, want := range []string{"Accuracy against total tokens", "mean total tokens per sample", "mean critical-path tokens per sample", "accuracy (%)",
		"median latency per sample (s)", "pass@k (%)", "total tokens per sample", "Robustness: clean against perturbed",
		"cap on total tokens per sample", "share of all tokens (%)", "apr − serial", "critical-path tokens", "apr − serial at equal critical-path budgets"} {
		if !strings.Contains(h, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if n := strings.Count(h, `<figure class="chart"`); n != 9 {
		t.Errorf("%d charts, want 9", n)
	}
	for _, banned := range []string{"http://", "https://", "<link", "src="} {
		if strings.Contains(strings.ReplaceAll(h, `xmlns="http://www.w3.org/2000/svg"`, ""), banned) {
			t.Errorf("the page refers outside itself: %q", banned)
		}
	}
	var md bytes.Buffer
	if err := Markdown(&md, runs); err != nil {
		t.Fatal(err)
	}
	// Every problem has a right answer among its 4 serial samples: 30 of
	// 30, whose interval is Wilson's, 30/(30+z²) to 1.
	if !strings.Contains(md.String(), "| serial | 30 | 4 |") || !strings.Contains(md.String(), "## Run grid1") ||
		!strings.Contains(md.String(), "- serial: pass@1 ") || !strings.Contains(md.String(), "pass@4 100.0% (88.6%–100.0%)") {
		t.Errorf("markdown:\n%s", md.String())
	}
}

// Run ids, task and strategy names are whatever the user chose; in either
// output they read as themselves and add no structure.
func TestHostileNamesAreEscaped(t *testing.T) {
	id := "x|y</script><b>\n# z `code` *em* _u_ [l](http://h) &lt; ~s~ \\|"
	runs := fixtureNamed(t, id, "count|down\n# task", "se|rial<i>", "a`pr\n## h")
	var md bytes.Buffer
	if err := Markdown(&md, runs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(md.String(), "\n")
	var headings, tableWidths []int
	for i, l := range lines {
		if strings.HasPrefix(l, "#") {
			headings = append(headings, i)
		}
		if strings.HasPrefix(l, "|") {
			tableWidths = append(tableWidths, len(mdSplit(l)))
		}
		for _, c := range "`*_[]<>&~" {
			if cells := mdSplit(l); strings.ContainsRune(strings.Join(cells, ""), c) {
				t.Errorf("line %d has an unescaped %q: %s", i+1, c, l)
			}
		}
	}
	if len(headings) != 2 || !strings.HasPrefix(lines[headings[1]], "## Run x\\|y\\</script\\>\\<b\\> \\# z") {
		t.Errorf("want the title and one run heading with the id escaped on one line; headings at lines %v:\n%s", headings, md.String())
	}
	for _, w := range tableWidths {
		if w != 13+2 { // the outer pipes open and close the row
			t.Errorf("a table row has %d cells, want 13:\n%s", w-2, md.String())
			break
		}
	}

	var page bytes.Buffer
	if err := HTML(&page, runs); err != nil {
		t.Fatal(err)
	}
	h := page.String()
	for _, raw := range []string{"<b>", "<i>", "y</script>"} {
		if strings.Contains(h, raw) {
			t.Errorf("the page holds %q unescaped", raw)
		}
	}
	if !strings.Contains(h, "<h2>Run x|y&lt;/script&gt;&lt;b&gt;") || strings.Count(h, "</script>") != 1 {
		t.Errorf("the run id is not escaped as text, or a script is closed early")
	}
}

// mdSplit splits a Markdown line at its unescaped pipes, dropping the
// escapes, so a cell holds its text as the reader sees it.
func mdSplit(l string) []string {
	var cells []string
	var cell strings.Builder
	for i := 0; i < len(l); i++ {
		switch {
		case l[i] == '\\' && i+1 < len(l):
			i++
			cell.WriteString("\x00") // an escaped character reads as itself, not as structure
		case l[i] == '|':
			cells = append(cells, cell.String())
			cell.Reset()
		default:
			cell.WriteByte(l[i])
		}
	}
	return append(cells, cell.String())
}

func TestChartsDrawInABrowser(t *testing.T) {
	browser := browsertest.Path(t)
	var page bytes.Buffer
	if err := HTML(&page, fixture(t)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(path, page.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000", "--dump-dom", "file://"+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", browser, err, stderr.String())
	}
	if !strings.Contains(string(dom), `data-charts="drawn 9"`) {
		i := strings.Index(string(dom), "<body")
		t.Errorf("the browser did not draw every chart: %.300s", string(dom[max(i, 0):]))
	}
}
