package serve

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/braid-dev/braid/internal/browsertest"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/store"
)

// A person opens the UI, types a Countdown problem, picks apr and clicks
// Solve: the tree of threads draws, children inside the root, and the
// verified answer shows.
func TestUISolvesInABrowser(t *testing.T) {
	t.Run("open", func(t *testing.T) { uiSolves(t, "") })
	// With an API key, the page asks for it and sends it on every call
	// (models, the chat stream, the trace events, the trace).
	t.Run("with-key", func(t *testing.T) { uiSolves(t, "s3cret") })
}

// openUI opens the UI of the server at url in a headless browser, for 90
// seconds at most.
func openUI(t *testing.T, url string) context.Context {
	t.Helper()
	browser := browsertest.Path(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate(url+"/")); err != nil {
		t.Fatalf("driving %s: %v", browser, err)
	}
	return ctx
}

func uiSolves(t *testing.T, key string) {
	_, hs := newTestServer(t, Options{APIKey: key})
	ctx := openUI(t, hs.URL)
	if key != "" {
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const k = document.getElementById("key"); k.value = "`+key+`";
			k.dispatchEvent(new Event("change")); return true })()`)); err != nil {
			t.Fatal(err)
		}
	}
	err := chromedp.Do(ctx,
		chromedp.WaitReady(chromedp.CSS(`#model option[value="apr/countdown"]`)),
		chromedp.SetValue(chromedp.CSS("#model"), "apr/countdown"),
		chromedp.SetValue(chromedp.CSS("#problem"), "Using the numbers 22, 26, 31, 53, create an equation that equals 27"),
		chromedp.Click(chromedp.CSS("#solve")),
		chromedp.WaitVisible(chromedp.CSS("#answer")),
	)
	if err != nil {
		t.Fatalf("driving the browser: %v", err)
	}
	answer := run[string](ctx, t, chromedp.Text(chromedp.CSS("#answer")))
	verdict := run[chromedp.AttributeResult](ctx, t, chromedp.AttributeValue(chromedp.CSS("#answer"), "data-correct")).Value
	status := run[string](ctx, t, chromedp.Text(chromedp.CSS("#status")))
	nodes := run[int](ctx, t, chromedp.Evaluate[int](`document.querySelectorAll("#tree .node").length`))
	nested := run[int](ctx, t, chromedp.Evaluate[int](`document.querySelectorAll("#tree > .node > .children > .node").length`))
	finished := run[int](ctx, t, chromedp.Evaluate[int](`document.querySelectorAll('#tree .node[data-state="done"]').length`))
	goals := run[int](ctx, t, chromedp.Evaluate[int](`document.querySelectorAll('#tree .node[data-verdict="goal"]').length`))
	if verdict != "true" || !strings.Contains(answer, "= 27") || !strings.Contains(answer, "verified") {
		t.Errorf("answer %q (correct=%q), status %q", answer, verdict, status)
	}
	if nodes < 3 || nested != nodes-1 || finished != nodes {
		t.Errorf("tree: %d threads, %d of them children of the root, %d finished", nodes, nested, finished)
	}
	if goals < 2 { // the root, and the child whose search found the answer
		t.Errorf("%d threads show they reached the goal", goals)
	}
}

func run[T any](ctx context.Context, t *testing.T, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Two runs whose backend was given with a user's password and an API key:
// r1, as braid stores runs, and old, as an older braid stored them, with
// both in the clear. Each has a sample, and so a report.
func credentialRuns(t *testing.T) *store.Store {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "braid.db")
	st, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const model = "http://user:s3cretpw@127.0.0.1:8000/v1?api_key=k3ysecret qwen"
	if err := st.StartRun(ctx, "r1", map[string]any{"task": "math", "strategies": []string{"serial"}, "model": model}); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO runs (id, created, config) VALUES ('old', '2026-01-01T00:00:00Z', ?)`,
		`{"model":"`+model+`","strategies":["serial"],"task":"math"}`); err != nil {
		t.Fatal(err)
	}
	for _, run := range []string{"r1", "old"} {
		// Tokens that vary, so that every chart has a mark with a size.
		for i := range 4 {
			x := store.Sample{Key: fmt.Sprintf("serial|%d|1", i), Strategy: "serial", Problem: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)),
				Index: i, Correct: i%2 == 0, Usage: reason.Usage{TotalTokens: 10 << i, CriticalPathTokens: 10 << i, LatencyMS: 100}, TokensToGoal: -1}
			if err := st.Save(ctx, run, x); err != nil {
				t.Fatal(err)
			}
		}
	}
	return st
}

// getPage fetches a path of the server: its status, headers and body.
func getPage(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return r, string(b)
}

// Neither the runs list nor a report shows a run's credentials, whether
// braid stored the run or an older braid did, with them in the clear.
func TestRunsHideCredentials(t *testing.T) {
	_, hs := newTestServer(t, Options{Runs: credentialRuns(t)})
	for _, path := range []string{"/v1/braid/runs", "/v1/braid/runs/r1/report", "/v1/braid/runs/old/report"} {
		r, body := getPage(t, hs.URL+path)
		if r.StatusCode != 200 || strings.Contains(body, "s3cretpw") || strings.Contains(body, "k3ysecret") {
			t.Errorf("%s: %d %.600s", path, r.StatusCode, body)
		}
	}
	_, body := getPage(t, hs.URL+"/v1/braid/runs")
	var list struct {
		Runs []store.Run `json:"runs"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list.Runs) != 2 {
		t.Fatalf("runs %s: %v", body, err)
	}
	for _, r := range list.Runs {
		if !strings.Contains(string(r.Config), `"http://user:xxxxx@127.0.0.1:8000/v1?api_key=xxxxx qwen"`) {
			t.Errorf("run %s: config %s", r.ID, r.Config)
		}
	}
}

// A report runs sandboxed, in an origin of its own: the page served with
// a policy that allows only what it uses (inline style and script, nothing
// loaded), and the UI's iframe with a sandbox that lets its script run but
// keeps it out of the UI's origin.
func TestReportIsSandboxed(t *testing.T) {
	_, hs := newTestServer(t, Options{Runs: credentialRuns(t)})
	r, body := getPage(t, hs.URL+"/v1/braid/runs/r1/report")
	csp := r.Header.Get("Content-Security-Policy")
	for _, d := range []string{"sandbox allow-scripts;", "default-src 'none'", "script-src 'unsafe-inline'", "style-src 'unsafe-inline'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, d)
		}
	}
	if strings.Contains(csp, "allow-same-origin") || r.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", r.Header)
	}
	// What the policy allows is what the page needs: its script and style
	// inline, nothing fetched.
	if !strings.Contains(body, "<script>") || !strings.Contains(body, "<style>") {
		t.Errorf("the report has no inline script or style to allow: %.300s", body)
	}
	for _, outside := range []string{" src=", " href=", "url(", "@import"} {
		if strings.Contains(body, outside) {
			t.Errorf("the report loads something (%q) its policy refuses", outside)
		}
	}
	page, err := uiFiles.ReadFile("ui/index.html")
	if err != nil {
		t.Fatal(err)
	}
	frame := regexp.MustCompile(`<iframe [^>]*id="report"[^>]*>`).FindString(string(page))
	if !strings.Contains(frame, ` sandbox="allow-scripts"`) {
		t.Errorf("the report's iframe is not sandboxed to scripts alone: %q", frame)
	}
}

// Under its policy, served, a report's charts still draw: the page's
// self-check script runs and finds every chart laid out.
func TestReportDrawsUnderItsPolicy(t *testing.T) {
	browser := browsertest.Path(t)
	_, hs := newTestServer(t, Options{Runs: credentialRuns(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000", "--dump-dom", hs.URL+"/v1/braid/runs/r1/report")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", browser, err, stderr.String())
	}
	if !regexp.MustCompile(`<body data-charts="drawn [1-9]`).Match(dom) {
		i := strings.Index(string(dom), "<body")
		t.Errorf("the charts did not draw under the policy: %.300s", string(dom[max(i, 0):]))
	}
}

// A person picks a run in the UI: its report shows in the iframe with its
// charts drawn, in an origin of its own (the sandbox), so that its script
// reaches neither the UI's page nor the API key the UI keeps.
func TestUIShowsAReportSandboxed(t *testing.T) {
	_, hs := newTestServer(t, Options{Runs: credentialRuns(t)})
	ctx := openUI(t, hs.URL)
	run[bool](ctx, t, chromedp.Evaluate[bool](`localStorage.setItem("braid-key", "s3cret"), true`))
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#runs a")), chromedp.WaitReady(chromedp.CSS("#report[srcdoc]"))); err != nil {
		t.Fatalf("driving the browser: %v", err)
	}
	if run[bool](ctx, t, chromedp.Evaluate[bool](`document.getElementById("report").contentDocument !== null`)) {
		t.Fatal("the UI reaches into the report's document: the report shares the UI's origin")
	}
	// Chrome runs a sandboxed frame as a target of its own, which the
	// test attaches to.
	var frame context.Context
	for frame == nil {
		infos, err := chromedp.Targets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range infos {
			if info.Type == "iframe" {
				var cancel context.CancelFunc
				frame, cancel = chromedp.NewContext(ctx, chromedp.WithTargetID(info.TargetID))
				defer cancel()
			}
		}
		if frame == nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Measured here rather than read off the page's own self-check, which
	// a frame of its own may run before the UI has given it its size.
	const drawn = `(() => { const figs = [...document.querySelectorAll("figure.chart")];
		return figs.length > 0 && figs.every((f) => { const b = f.querySelector("svg").getBoundingClientRect();
			return b.width > 0 && b.height > 0 && [...f.querySelectorAll(".mark")].every((m) => { const r = m.getBBox(); return r.width > 0 || r.height > 0 }) }) })()`
	for !run[bool](frame, t, chromedp.Evaluate[bool](drawn)) {
		if ctx.Err() != nil {
			t.Fatal("the report's charts did not draw in the iframe")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := run[string](frame, t, chromedp.Evaluate[string](`(() => { try { return origin + " " + localStorage.getItem("braid-key") } catch (e) { return origin + " " + e.name } })()`)); got != "null SecurityError" {
		t.Errorf("the report's script: origin and API key %q, want an opaque origin and no storage", got)
	}
}
