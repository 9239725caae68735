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
	uiTimeline(ctx, t, hs.URL, key)
}

// timelineBar is a bar of the UI's timeline, as the page draws it.
type timelineBar struct {
	Thread   string `json:"thread"`
	Depth    int    `json:"depth"`
	Critical bool   `json:"critical"`
	// Within says the bar lies inside its lane's track, with a width.
	Within bool `json:"within"`
}

// readTimeline reads the bars of the timeline drawn into the element sel.
func readTimeline(ctx context.Context, t *testing.T, sel string) []timelineBar {
	t.Helper()
	return run[[]timelineBar](ctx, t, chromedp.Evaluate[[]timelineBar](`[...document.querySelectorAll("`+sel+` .bar")].map((b) => {
		const r = b.getBoundingClientRect(), tr = b.parentElement.getBoundingClientRect();
		return { thread: b.dataset.thread, depth: +b.dataset.depth, critical: b.dataset.critical === "true",
			within: r.width > 0 && r.left >= tr.left - 0.5 && r.right <= tr.right + 0.5 } })`))
}

// criticalNodes names the threads of the critical path under root, as
// reason's account measures it: at each thread, the child with the
// longest chain of tokens, the first of those that tie; and its tokens.
func criticalNodes(root *reason.Thread) ([]string, int) {
	var chain func(t *reason.Thread) int
	chain = func(t *reason.Thread) int {
		longest := 0
		for _, c := range t.Children {
			longest = max(longest, chain(c))
		}
		return t.Tokens + longest
	}
	var path []string
	tokens := 0
	for t := root; t != nil; {
		path = append(path, t.Node)
		tokens += t.Tokens
		var next *reason.Thread
		for _, c := range t.Children {
			if next == nil || chain(c) > chain(next) {
				next = c
			}
		}
		t = next
	}
	return path, tokens
}

// After an apr solve, the timeline below the tree draws a bar for every
// thread that ran, in tree order, and marks the critical path: the root
// and one child at each level that spawned, the chain whose tokens the
// trace's result counts as its critical path.
func uiTimeline(ctx context.Context, t *testing.T, url, key string) {
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#timeline .bar"))); err != nil {
		t.Fatalf("the timeline did not draw: %v", err)
	}
	id := run[chromedp.AttributeResult](ctx, t, chromedp.AttributeValue(chromedp.CSS("#timeline"), "data-trace")).Value
	resp, body := call(t, "GET", url+"/v1/traces/"+id, key, "")
	var view struct {
		Result *reason.Result `json:"result"`
	}
	if err := json.Unmarshal(body, &view); err != nil || view.Result == nil || view.Result.Tree == nil {
		t.Fatalf("trace %q: %d, %v", id, resp.StatusCode, err)
	}
	root := view.Result.Tree
	var ran []string
	var walk func(t *reason.Thread)
	walk = func(th *reason.Thread) {
		if !th.Started.IsZero() {
			ran = append(ran, th.Node)
		}
		for _, c := range th.Children {
			walk(c)
		}
	}
	walk(root)
	path, pathTokens := criticalNodes(root)
	if len(root.Children) == 0 || len(path) < 2 || pathTokens != view.Result.CriticalPathTokens {
		t.Fatalf("the trace's tree: %d children of the root, critical path %q of %d tokens, the result's %d",
			len(root.Children), path, pathTokens, view.Result.CriticalPathTokens)
	}

	bars := readTimeline(ctx, t, "#timeline")
	var drawn, critical []string
	for _, b := range bars {
		drawn = append(drawn, b.Thread)
		if !b.Within {
			t.Errorf("thread %s: its bar lies outside its track or has no width", b.Thread)
		}
		if b.Critical {
			critical = append(critical, b.Thread)
			// One marked bar per level, in order: the root's, then one of
			// its children's, and so on down.
			if b.Depth != len(critical)-1 {
				t.Errorf("critical bar %s at depth %d, want %d", b.Thread, b.Depth, len(critical)-1)
			}
		}
	}
	if fmt.Sprint(drawn) != fmt.Sprint(ran) {
		t.Errorf("timeline bars %q, want one per thread that ran, in tree order: %q", drawn, ran)
	}
	if fmt.Sprint(critical) != fmt.Sprint(path) {
		t.Errorf("critical path marked on %q, want %q", critical, path)
	}
	summary := run[string](ctx, t, chromedp.Text(chromedp.CSS("#timeline .summary")))
	want := fmt.Sprintf("critical path: %d tokens over %d threads", view.Result.CriticalPathTokens, len(path))
	speedup := fmt.Sprintf("parallel speedup %.2f×", float64(view.Result.TotalTokens)/float64(view.Result.CriticalPathTokens))
	if !strings.Contains(summary, want) || !strings.Contains(summary, speedup) {
		t.Errorf("timeline summary %q, want %q and %q", summary, want, speedup)
	}
}

// drawTimeline draws any tree it is given: bars placed by start and wall
// time on one scale, the critical path through the first of children
// that tie, a thread that never ran listed without a bar, and a run of
// a single thread.
func TestUITimelineDraws(t *testing.T) {
	_, hs := newTestServer(t, Options{})
	ctx := openUI(t, hs.URL)
	// draw draws tree into a fresh box on the page, 1000 pixels wide.
	draw := func(tree string) {
		t.Helper()
		run[bool](ctx, t, chromedp.Evaluate[bool](`(() => { let b = document.getElementById("probe");
			if (!b) { b = document.createElement("div"); b.id = "probe"; b.style.width = "1000px"; document.querySelector("main").appendChild(b) }
			drawTimeline(b, `+tree+`); return true })()`))
	}
	const at = `"2026-01-01T00:00:00.`
	// Root from 0 to 100 ms; children a (30 tokens, 0 to 40 ms) and b
	// (20+10 tokens, 50 to 100 ms) tie at 30: the path goes through a.
	// b's children: b1 from 60 to 80 ms, and b2, which failed unstarted;
	// c, a sliver at the very end.
	draw(`{node: "0", tokens: 100, started: ` + at + `000000001Z", wall_ms: 100, children: [
		{node: "0,a", tokens: 30, started: ` + at + `000000001Z", wall_ms: 40},
		{node: "0,b", tokens: 20, started: ` + at + `050000001Z", wall_ms: 50, children: [
			{node: "0,b,1", tokens: 10, started: ` + at + `060000001Z", wall_ms: 20},
			{node: "0,b,2", tokens: 0, finish: "error"}]},
		{node: "0,c", tokens: 0, started: ` + at + `100000001Z", wall_ms: 0}]}`)
	bars := readTimeline(ctx, t, "#probe")
	var got []string
	for _, b := range bars {
		got = append(got, fmt.Sprintf("%s@%d:%t", b.Thread, b.Depth, b.Critical))
		if !b.Within { // c's sliver too, at the very end
			t.Errorf("thread %s: its bar lies outside its track or has no width", b.Thread)
		}
	}
	if want := "[0@0:true 0,a@1:true 0,b@1:false 0,b,1@2:false 0,c@1:false]"; fmt.Sprint(got) != want {
		t.Errorf("bars %v, want %s", got, want)
	}
	// Where each bar lies in its track, in percent of the track: its
	// start and its width.
	geometry := run[string](ctx, t, chromedp.Evaluate[string](`[...document.querySelectorAll("#probe .bar")].map((b) => {
		const r = b.getBoundingClientRect(), tr = b.parentElement.getBoundingClientRect();
		return Math.round(100 * (r.left - tr.left) / tr.width) + "+" + Math.round(100 * r.width / tr.width) }).join(" ")`))
	if want := "0+100 0+40 50+50 60+20 100+0"; geometry != want {
		t.Errorf("bars at %q, want %q", geometry, want)
	}
	norun := run[string](ctx, t, chromedp.Text(chromedp.CSS(`#probe .lane[data-thread="0,b,2"]`)))
	lanes := run[int](ctx, t, chromedp.Evaluate[int](`document.querySelectorAll("#probe .lane:not(.axis)").length`))
	if !strings.Contains(norun, "did not run") || lanes != 6 {
		t.Errorf("%d lanes; the failed thread's: %q", lanes, norun)
	}
	summary := run[string](ctx, t, chromedp.Text(chromedp.CSS("#probe .summary")))
	ticks := run[string](ctx, t, chromedp.Evaluate[string](`[...document.querySelectorAll("#probe .tick")].map((e) => e.textContent).join(" ")`))
	if !strings.Contains(summary, "critical path: 130 tokens over 2 threads") || !strings.Contains(summary, "parallel speedup 1.23×") ||
		ticks != "0 ms 20 ms 40 ms 60 ms 80 ms 100 ms" {
		t.Errorf("summary %q, ticks %q", summary, ticks)
	}

	// A single thread, a slow one: one bar over the whole axis, in seconds.
	draw(`{node: "0", tokens: 7, started: "2026-01-01T00:00:00Z", wall_ms: 2500}`)
	bars = readTimeline(ctx, t, "#probe")
	summary = run[string](ctx, t, chromedp.Text(chromedp.CSS("#probe .summary")))
	ticks = run[string](ctx, t, chromedp.Evaluate[string](`[...document.querySelectorAll("#probe .tick")].map((e) => e.textContent).join(" ")`))
	if len(bars) != 1 || !bars[0].Critical || !bars[0].Within || !strings.Contains(summary, "critical path: 7 tokens over 1 thread") ||
		!strings.Contains(summary, "parallel speedup 1.00×") || ticks != "0.0 s 0.5 s 1.0 s 1.5 s 2.0 s 2.5 s" {
		t.Errorf("a single thread: bars %+v, summary %q, ticks %q", bars, summary, ticks)
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
