// Package report turns evaluation runs into a page a person reads at a
// glance: one self-contained HTML file (inline SVG charts, no script
// library, nothing fetched from the network) and a Markdown summary.
// Every chart is titled and has named axes with units.
package report

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"unicode"

	"github.com/braid-dev/braid/eval"
	"github.com/braid-dev/braid/eval/stats"
	"github.com/braid-dev/braid/store"
)

// Run is one evaluation run with its summary.
type Run struct {
	ID         string
	Created    string
	Task       string
	Strategies []string
	Report     eval.Report
	Samples    []store.Sample
}

// Load reads runs from the store (all of them without ids) and summarises
// each.
func Load(ctx context.Context, st *store.Store, ids ...string) ([]Run, error) {
	recorded, err := st.Runs(ctx, ids...)
	if err != nil {
		return nil, err
	}
	var runs []Run
	for _, r := range recorded {
		var cfg struct {
			Task       string   `json:"task"`
			Strategies []string `json:"strategies"`
		}
		if err := json.Unmarshal(r.Config, &cfg); err != nil || len(cfg.Strategies) == 0 {
			continue // not an eval grid: nothing to chart
		}
		samples, err := st.Samples(ctx, r.ID)
		if err != nil {
			return nil, fmt.Errorf("report: run %s: %w", r.ID, err)
		}
		runs = append(runs, Run{ID: r.ID, Created: r.Created, Task: cfg.Task, Strategies: cfg.Strategies,
			Report: eval.Summarize(cfg.Strategies, samples), Samples: samples})
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("report: no evaluation runs to report")
	}
	return runs, nil
}

// entry is one strategy of one run, as the charts name it.
type entry struct {
	name    string
	s       eval.StrategyReport
	samples []store.Sample
}

func entries(runs []Run) []entry {
	var out []entry
	for _, r := range runs {
		for _, s := range r.Report.Strategies {
			name := s.Name
			if len(runs) > 1 {
				name = r.ID + "/" + s.Name
			}
			var xs []store.Sample
			for _, x := range r.Samples {
				if x.Strategy == s.Name {
					xs = append(xs, x)
				}
			}
			out = append(out, entry{name, s, xs})
		}
	}
	return out
}

// chart is a titled figure, or a note saying why it is absent.
type chart struct {
	id, title, caption, svg, absent string
}

func charts(runs []Run) []chart {
	es := entries(runs)
	var out []chart
	var tokens, critical, latency []series
	for _, e := range es {
		ci := func(p float64) point {
			return point{Y: 100 * e.s.Accuracy, YLo: 100 * e.s.CI95[0], YHi: 100 * e.s.CI95[1], X: p}
		}
		tokens = append(tokens, series{e.name, []point{ci(max(e.s.MeanTotalTokens, 1))}})
		critical = append(critical, series{e.name, []point{ci(max(e.s.MeanCriticalTokens, 1))}})
		latency = append(latency, series{e.name, []point{ci(e.s.LatencyP50MS / 1000)}})
	}
	out = append(out,
		chart{id: "accuracy-tokens", title: "Accuracy against total tokens",
			caption: "Mean tokens of all threads per sample (log scale); bars are 95% intervals clustered by problem.",
			svg:     xyChart("Accuracy against total tokens", "mean total tokens per sample (log scale)", "accuracy (%)", true, true, false, tokens)},
		chart{id: "accuracy-critical", title: "Accuracy against critical-path tokens",
			caption: "Mean critical-path tokens per sample (the longest chain of dependent tokens: what a parallel run cannot hide; log scale); bars are 95% intervals clustered by problem. Against total tokens it shows what parallelism buys: the same accuracy sooner, at more tokens.",
			svg:     xyChart("Accuracy against critical-path tokens", "mean critical-path tokens per sample (log scale)", "accuracy (%)", true, true, false, critical)},
		chart{id: "accuracy-latency", title: "Accuracy against latency",
			caption: "Median wall time per sample; bars are 95% intervals.",
			svg:     xyChart("Accuracy against latency", "median latency per sample (s)", "accuracy (%)", false, true, false, latency)})

	var pass []series
	for _, e := range es {
		if len(e.s.PassAtK) == 0 {
			continue
		}
		var pts []point
		for _, k := range slices.Sorted(maps.Keys(e.s.PassAtK)) {
			ci := e.s.PassAtKCI95[k]
			pts = append(pts, point{X: float64(k), Y: 100 * e.s.PassAtK[k], YLo: 100 * ci[0], YHi: 100 * ci[1]})
		}
		pass = append(pass, series{e.name, pts})
	}
	c := chart{id: "pass-at-k", title: "pass@k", caption: "Unbiased pass@k: the chance that at least one of k samples is right; bars are 95% intervals over problems."}
	if len(pass) == 0 {
		c.absent = "pass@k needs several samples per problem (braid eval --seeds N --temperature T)."
	} else {
		c.svg = xyChart("pass@k", "k, samples per problem (log scale)", "pass@k (%)", true, true, true, pass)
	}
	out = append(out, c)

	var boxes []box
	for _, e := range es {
		var t []float64
		for _, x := range e.samples {
			t = append(t, float64(x.TotalTokens))
		}
		if len(t) == 0 {
			continue
		}
		boxes = append(boxes, box{e.name, stats.Percentile(t, 5), stats.Percentile(t, 25), stats.Percentile(t, 50),
			stats.Percentile(t, 75), stats.Percentile(t, 95)})
	}
	out = append(out, chart{id: "token-distribution", title: "Tokens per sample",
		caption: "Total tokens per sample: whiskers at the 5th and 95th percentiles, box from the 25th to the 75th, line at the median.",
		svg:     boxChart("Tokens per sample", "total tokens per sample", boxes)})

	var cats []string
	var rob [][]bar
	for _, e := range es {
		r := e.s.Robustness
		if r == nil || r.N == 0 {
			continue
		}
		cats = append(cats, e.name)
		rob = append(rob, []bar{{100 * r.CleanAccuracy, math.NaN(), math.NaN()},
			{100 * r.PerturbedAccuracy, 100 * r.PerturbedCI95[0], 100 * r.PerturbedCI95[1]}})
	}
	c = chart{id: "robustness", title: "Robustness", caption: "Accuracy on the clean problems and on the same problems perturbed (bars on the perturbed: 95% intervals)."}
	if len(rob) == 0 {
		c.absent = "No perturbed runs: braid eval --perturb distractors adds them."
	} else {
		c.svg = barChart("Robustness: clean against perturbed", "accuracy (%)", cats, []string{"clean", "perturbed"}, rob, 100)
	}
	out = append(out, c)

	caps := capSeries(es, func(s eval.StrategyReport) []eval.CapAccuracy { return s.Overthinking.Caps })
	crit := capSeries(es, func(s eval.StrategyReport) []eval.CapAccuracy { return s.CriticalPathCaps })
	out = append(out, chart{id: "critical-path", title: "Accuracy against critical-path budget",
		caption: "The accuracy each strategy would have had under a budget on its critical path (the longest chain of dependent tokens, what a parallel run cannot hide): a sample counts only if right with its critical path within the budget. Bars: 95% intervals.",
		svg:     xyChart("Accuracy against critical-path budget", "critical-path tokens", "accuracy (%)", false, true, true, crit)})
	out = append(out, chart{id: "token-caps", title: "Accuracy under token caps",
		caption: "The accuracy each strategy would have had if every sample were cut at the cap: a sample counts only if right and finished within it.",
		svg:     xyChart("Accuracy under token caps", "cap on total tokens per sample (log scale)", "accuracy (%)", true, true, true, caps)})

	cats, rob = nil, nil
	for _, e := range es {
		if sh := e.s.Overthinking.ShareAfterAnswer; sh != nil {
			cats = append(cats, e.name)
			rob = append(rob, []bar{{100 * *sh, math.NaN(), math.NaN()}})
		}
	}
	c = chart{id: "overthinking", title: "Tokens after the answer was found",
		caption: "Of all tokens a strategy spent, the share spent after its answer was first found (Countdown: the first Goal Reached in any thread)."}
	if len(rob) == 0 {
		c.absent = "The task cannot tell when an answer was first found (free-text math), or no sample found one."
	} else {
		c.svg = barChart("Tokens spent after the answer was found", "share of all tokens (%)", cats, []string{"after the answer"}, rob, 0)
	}
	out = append(out, c)
	for i := range out {
		if out[i].absent == "" && !strings.Contains(out[i].svg, `class="mark"`) {
			out[i].svg, out[i].absent = "", "No data for this chart in these runs."
		}
	}
	return out
}

// capSeries draws each strategy's accuracy under budgets, with error bars
// where the budgets carry intervals.
func capSeries(es []entry, caps func(eval.StrategyReport) []eval.CapAccuracy) []series {
	var out []series
	for _, e := range es {
		var pts []point
		for _, cp := range caps(e.s) {
			p := point{X: float64(cp.MaxTokens), Y: 100 * cp.Accuracy, YLo: math.NaN()}
			if len(cp.CI95) == 2 {
				p.YLo, p.YHi = 100*cp.CI95[0], 100*cp.CI95[1]
			}
			pts = append(pts, p)
		}
		if len(pts) > 0 {
			out = append(out, series{e.name, pts})
		}
	}
	return out
}

// HTML writes the report page.
func HTML(w io.Writer, runs []Run) error {
	var b strings.Builder
	b.WriteString(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>braid evaluation report</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child{text-align:left}figure{margin:1.5em 0}figcaption{color:#555;font-size:13px;max-width:680px}
svg .title{font-weight:600;font-size:15px}svg .label{font-size:13px;fill:#333}svg .tick{font-size:11px;fill:#444}
svg .grid{stroke:#e4e4e4}svg .plot{fill:none;stroke:#999}.absent{color:#777;font-style:italic}
.note{color:#555}.wide{overflow-x:auto}
</style></head>
<body data-charts="pending">
<h1>braid evaluation report</h1>
`)
	for _, r := range runs {
		fmt.Fprintf(&b, "<h2>Run %s</h2>\n<p class=\"note\">task %s, started %s, %d samples</p>\n", esc(r.ID), esc(r.Task), esc(r.Created), len(r.Samples))
		b.WriteString(tableHTML(r))
	}
	b.WriteString("<h2>Charts</h2>\n")
	for _, c := range charts(runs) {
		if c.absent != "" {
			fmt.Fprintf(&b, "<h3>%s</h3><p class=\"absent\">%s</p>\n", esc(c.title), esc(c.absent))
			continue
		}
		fmt.Fprintf(&b, "<figure class=\"chart\" data-chart=\"%s\">%s<figcaption>%s</figcaption></figure>\n", c.id, c.svg, esc(c.caption))
	}
	// A self-check a browser runs on load: every chart laid out, every
	// mark drawn with a size. Tests read the verdict off the body.
	b.WriteString(`<script>
(function(){var figs=document.querySelectorAll("figure.chart"),ok=0,bad=[];
figs.forEach(function(f){var s=f.querySelector("svg"),marks=f.querySelectorAll(".mark"),drawn=0;
marks.forEach(function(m){var r=m.getBBox();if(r.width>0||r.height>0)drawn++;});
var box=s?s.getBoundingClientRect():{width:0,height:0};
if(s&&box.width>0&&box.height>0&&marks.length>0&&drawn===marks.length){ok++;f.setAttribute("data-drawn","yes");}
else{bad.push(f.getAttribute("data-chart"));f.setAttribute("data-drawn","no");}});
document.body.setAttribute("data-charts",bad.length?"failed: "+bad.join(" "):"drawn "+ok);})();
</script>
</body></html>
`)
	_, err := io.WriteString(w, b.String())
	return err
}

// row is one line of the summary tables, shared by HTML and Markdown.
func rows(r Run) (head []string, body [][]string) {
	head = []string{"strategy", "problems", "samples", "accuracy", "95% CI", "total tokens", "critical path", "p50 latency", "tokens/correct", "after answer", "perturbed", "error ×", "tokens ×"}
	for _, s := range r.Report.Strategies {
		row := []string{s.Name, fmt.Sprint(s.N), fmt.Sprint(s.Samples), eval.Percent(s.Accuracy), eval.Percent(s.CI95[0]) + "–" + eval.Percent(s.CI95[1]),
			fmt.Sprintf("%.0f", s.MeanTotalTokens), fmt.Sprintf("%.0f", s.MeanCriticalTokens), fmt.Sprintf("%.1f s", s.LatencyP50MS/1000),
			fmt.Sprintf("%.0f", s.TokensPerCorrect), "–", "–", "–", "–"}
		if sh := s.Overthinking.ShareAfterAnswer; sh != nil {
			row[9] = eval.Percent(*sh)
		}
		if rb := s.Robustness; rb != nil && rb.N > 0 {
			row[10] = eval.Percent(rb.PerturbedAccuracy)
			if rb.ErrorRateRatio != nil {
				row[11] = fmt.Sprintf("%.2f", *rb.ErrorRateRatio)
			}
			if rb.TokenRatio != nil {
				row[12] = fmt.Sprintf("%.2f", *rb.TokenRatio)
			}
		}
		body = append(body, row)
	}
	return head, body
}

// summaryLines are the sentences under a run's table: pass@k and maj@k
// of each strategy whose samples repeat, then the paired comparisons.
func summaryLines(r Run) []string {
	var out []string
	for _, s := range r.Report.Strategies {
		if l := s.PassLine(); l != "" {
			out = append(out, l)
		}
	}
	for _, p := range r.Report.Paired {
		out = append(out, p.Line())
		if cl := p.CriticalPathLine(); cl != "" {
			out = append(out, cl)
		}
	}
	return out
}

func tableHTML(r Run) string {
	head, body := rows(r)
	var b strings.Builder
	b.WriteString("<div class=\"wide\"><table><thead><tr>")
	for _, h := range head {
		fmt.Fprintf(&b, "<th>%s</th>", esc(h))
	}
	b.WriteString("</tr></thead><tbody>\n")
	for _, row := range body {
		b.WriteString("<tr>")
		for _, c := range row {
			fmt.Fprintf(&b, "<td>%s</td>", esc(c))
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</tbody></table></div>\n")
	for _, l := range summaryLines(r) {
		fmt.Fprintf(&b, "<p>%s</p>\n", esc(l))
	}
	return b.String()
}

// Markdown writes the summary: per run, the table, pass@k and maj@k where
// samples repeat, and the paired comparisons.
func Markdown(w io.Writer, runs []Run) error {
	var b strings.Builder
	b.WriteString("# braid evaluation report\n")
	for _, r := range runs {
		fmt.Fprintf(&b, "\n## Run %s\n\nTask %s, started %s, %d samples. Intervals are 95%%, clustered by problem.\n\n", mdText(r.ID), mdText(r.Task), mdText(r.Created), len(r.Samples))
		head, body := rows(r)
		b.WriteString(mdRow(head) + "\n|")
		for i := range head {
			if i == 0 {
				b.WriteString(" --- |")
			} else {
				b.WriteString(" ---: |")
			}
		}
		b.WriteString("\n")
		for _, row := range body {
			b.WriteString(mdRow(row) + "\n")
		}
		if ls := summaryLines(r); len(ls) > 0 {
			b.WriteString("\n")
			for _, l := range ls {
				b.WriteString("- " + mdText(l) + "\n")
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mdRow writes one table row, every cell as literal text.
func mdRow(cells []string) string {
	var b strings.Builder
	b.WriteString("|")
	for _, c := range cells {
		b.WriteString(" " + mdText(c) + " |")
	}
	return b.String()
}

// mdSpecial are the characters that make Markdown structure inside a line:
// the escape itself, a table cell's end, code, emphasis, links, HTML, a
// heading's closing hashes, entities and strikethrough.
const mdSpecial = "\\`|*_[]<>#&~"

// mdText writes s as literal Markdown text. Run ids, task and strategy
// names are chosen by whoever runs braid, and a pipe, a newline or a tag
// in one must read as itself, not split a table or start a heading or HTML.
// Control characters, newlines among them, become spaces.
func mdText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case unicode.IsControl(r):
			b.WriteByte(' ')
		case strings.ContainsRune(mdSpecial, r):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
