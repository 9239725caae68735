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
	browser := browsertest.Path(t)
	_, hs := newTestServer(t, Options{})
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	err := chromedp.Do(ctx,
		chromedp.Navigate(hs.URL+"/"),
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
	if verdict != "true" || !strings.Contains(answer, "= 27") || !strings.Contains(answer, "verified") {
		t.Errorf("answer %q (correct=%q), status %q", answer, verdict, status)
	}
	if nodes < 3 || nested != nodes-1 || finished != nodes {
		t.Errorf("tree: %d threads, %d of them children of the root, %d finished", nodes, nested, finished)
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
