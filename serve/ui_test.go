package serve

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/braid-dev/braid/internal/browsertest"
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

func uiSolves(t *testing.T, key string) {
	browser := browsertest.Path(t)
	_, hs := newTestServer(t, Options{APIKey: key})
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(hs.URL+"/")); err != nil {
		t.Fatalf("driving %s: %v", browser, err)
	}
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
		t.Fatalf("driving %s: %v", browser, err)
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
