package report

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// The charts are SVG written here, inline in the page: the report needs no
// script library, no network and no fonts beyond the browser's own. Every
// chart has a title, named axes with units, and a legend; every drawn
// datum carries class "mark", which the page's self-check counts.

const (
	chartW, chartH = 680, 380
	padL, padR     = 72, 170 // the right margin holds the legend
	padT, padB     = 36, 56
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

func color(i int) string { return palette[i%len(palette)] }

// axis maps data values to pixels, linearly or by log2.
type axis struct {
	lo, hi float64
	log    bool
	px0    float64 // pixel of lo
	px1    float64 // pixel of hi
}

func (a axis) v(x float64) float64 {
	if a.log {
		x, a.lo, a.hi = math.Log2(max(x, 1e-9)), math.Log2(a.lo), math.Log2(a.hi)
	}
	if a.hi == a.lo {
		return (a.px0 + a.px1) / 2
	}
	return a.px0 + (x-a.lo)/(a.hi-a.lo)*(a.px1-a.px0)
}

// ticks are round values across the axis: powers of two on a log axis,
// 1-2-5 steps otherwise.
func (a axis) ticks() []float64 {
	var out []float64
	if a.log {
		for t := math.Pow(2, math.Floor(math.Log2(a.lo))); t <= a.hi*1.0001; t *= 2 {
			if t >= a.lo*0.9999 {
				out = append(out, t)
			}
		}
		for len(out) > 8 { // thin to every other power
			var thin []float64
			for i := 0; i < len(out); i += 2 {
				thin = append(thin, out[i])
			}
			out = thin
		}
		return out
	}
	span := a.hi - a.lo
	if span <= 0 {
		return []float64{a.lo}
	}
	step := math.Pow(10, math.Floor(math.Log10(span/5)))
	for _, m := range []float64{1, 2, 5, 10} {
		if span/(step*m) <= 6 {
			step *= m
			break
		}
	}
	for t := math.Ceil(a.lo/step) * step; t <= a.hi+step*1e-9; t += step {
		out = append(out, t)
	}
	return out
}

// span returns a padded [lo, hi] for values, from zero when zero is set.
func span(vals []float64, zero, log bool) (float64, float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) || (log && v <= 0) {
			continue
		}
		lo, hi = min(lo, v), max(hi, v)
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0, 1
	}
	if log {
		return math.Pow(2, math.Floor(math.Log2(lo))), math.Pow(2, math.Ceil(math.Log2(hi)+1e-9))
	}
	if zero {
		lo = min(lo, 0)
	}
	if hi == lo {
		hi = lo + 1
	}
	return lo, hi + (hi-lo)*0.05
}

// frame is one chart being drawn.
type frame struct {
	b    strings.Builder
	x, y axis
}

func newFrame(title, xLabel, yLabel string, x, y axis) *frame {
	f := &frame{x: x, y: y}
	f.x.px0, f.x.px1 = padL, chartW-padR
	f.y.px0, f.y.px1 = chartH-padB, padT
	fmt.Fprintf(&f.b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`,
		chartW, chartH, chartW, chartH, esc(title))
	fmt.Fprintf(&f.b, `<text x="%d" y="22" class="title">%s</text>`, padL, esc(title))
	fmt.Fprintf(&f.b, `<text x="%g" y="%d" class="label" text-anchor="middle">%s</text>`, float64(padL+chartW-padR)/2, chartH-14, esc(xLabel))
	fmt.Fprintf(&f.b, `<text transform="translate(18 %g) rotate(-90)" class="label" text-anchor="middle">%s</text>`, float64(padT+chartH-padB)/2, esc(yLabel))
	fmt.Fprintf(&f.b, `<rect x="%d" y="%d" width="%d" height="%d" class="plot"/>`, padL, padT, chartW-padL-padR, chartH-padT-padB)
	return f
}

// axes draws the gridlines and tick labels; xNames, when set, labels
// category positions instead.
func (f *frame) axes(xNames []string) {
	for _, t := range f.y.ticks() {
		py := f.y.v(t)
		fmt.Fprintf(&f.b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="grid"/>`, padL, chartW-padR, py, py)
		fmt.Fprintf(&f.b, `<text x="%d" y="%.1f" class="tick" text-anchor="end">%s</text>`, padL-6, py+4, num(t))
	}
	if xNames != nil {
		for i, n := range xNames {
			fmt.Fprintf(&f.b, `<text x="%.1f" y="%d" class="tick" text-anchor="middle">%s</text>`, f.x.v(float64(i)), chartH-padB+16, esc(n))
		}
		return
	}
	for _, t := range f.x.ticks() {
		px := f.x.v(t)
		fmt.Fprintf(&f.b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" class="grid"/>`, px, px, padT, chartH-padB)
		fmt.Fprintf(&f.b, `<text x="%.1f" y="%d" class="tick" text-anchor="middle">%s</text>`, px, chartH-padB+16, num(t))
	}
}

func (f *frame) legend(names []string) {
	for i, n := range names {
		y := padT + 8 + i*18
		fmt.Fprintf(&f.b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d" class="tick">%s</text>`,
			chartW-padR+14, y, color(i), chartW-padR+32, y+10, esc(n))
	}
}

func (f *frame) svg() string { return f.b.String() + `</svg>` }

// point is a datum with an optional interval on y.
type point struct {
	X, Y     float64
	YLo, YHi float64 // NaN for none
}

// series is a named list of points, drawn as markers (with error bars)
// and, when lines is set, joined.
type series struct {
	Name   string
	Points []point
}

// xyChart draws series on x and y axes: markers with error bars, joined by
// lines when lines is set.
func xyChart(title, xLabel, yLabel string, logX, yFromZero, lines bool, ss []series) string {
	var xs, ys []float64
	for _, s := range ss {
		for _, p := range s.Points {
			xs = append(xs, p.X)
			ys = append(ys, p.Y)
			if !math.IsNaN(p.YLo) {
				ys = append(ys, p.YLo, p.YHi)
			}
		}
	}
	xlo, xhi := span(xs, !logX, logX)
	ylo, yhi := span(ys, yFromZero, false)
	f := newFrame(title, xLabel, yLabel, axis{lo: xlo, hi: xhi, log: logX}, axis{lo: ylo, hi: yhi})
	f.axes(nil)
	var names []string
	for i, s := range ss {
		names = append(names, s.Name)
		if lines && len(s.Points) > 1 {
			var pts []string
			for _, p := range s.Points {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", f.x.v(p.X), f.y.v(p.Y)))
			}
			fmt.Fprintf(&f.b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2" class="mark"/>`, strings.Join(pts, " "), color(i))
		}
		for _, p := range s.Points {
			px, py := f.x.v(p.X), f.y.v(p.Y)
			if !math.IsNaN(p.YLo) {
				lo, hi := f.y.v(p.YLo), f.y.v(p.YHi)
				fmt.Fprintf(&f.b, `<path d="M%.1f %.1fV%.1fM%.1f %.1fh10M%.1f %.1fh10" stroke="%s" stroke-width="1.5" class="mark"/>`,
					px, lo, hi, px-5, lo, px-5, hi, color(i))
			}
			fmt.Fprintf(&f.b, `<circle cx="%.1f" cy="%.1f" r="5" fill="%s" class="mark"><title>%s: %s, %s</title></circle>`,
				px, py, color(i), esc(s.Name), num(p.X), num(p.Y))
		}
	}
	f.legend(names)
	return f.svg()
}

// box is a distribution drawn as a box plot: whiskers at the 5th and 95th
// percentiles, the box from the 25th to the 75th, a line at the median.
type box struct {
	Name                   string
	P5, P25, P50, P75, P95 float64
}

func boxChart(title, yLabel string, boxes []box) string {
	var ys []float64
	var names []string
	for _, b := range boxes {
		ys = append(ys, b.P5, b.P95)
		names = append(names, b.Name)
	}
	ylo, yhi := span(ys, true, false)
	n := float64(max(len(boxes), 1))
	f := newFrame(title, "strategy", yLabel, axis{lo: -0.5, hi: n - 0.5}, axis{lo: ylo, hi: yhi})
	f.axes(nil2(names))
	for i, b := range boxes {
		x := f.x.v(float64(i))
		w := min(60, (chartW-padL-padR)/n*0.5)
		fmt.Fprintf(&f.b, `<path d="M%.1f %.1fV%.1fM%.1f %.1fV%.1f" stroke="%s" stroke-width="1.5" class="mark"/>`,
			x, f.y.v(b.P5), f.y.v(b.P25), x, f.y.v(b.P75), f.y.v(b.P95), color(i))
		top, bottom := f.y.v(b.P75), f.y.v(b.P25)
		fmt.Fprintf(&f.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="0.35" stroke="%s" class="mark"><title>%s: median %s, middle half %s–%s</title></rect>`,
			x-w/2, top, w, max(bottom-top, 1), color(i), color(i), esc(b.Name), num(b.P50), num(b.P25), num(b.P75))
		fmt.Fprintf(&f.b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#000" stroke-width="2" class="mark"/>`,
			x-w/2, x+w/2, f.y.v(b.P50), f.y.v(b.P50))
	}
	f.legend(names)
	return f.svg()
}

// bar is one bar with an optional interval.
type bar struct {
	V, Lo, Hi float64 // Lo, Hi NaN for none
}

// barChart draws groups of bars: for each category, one bar per series.
func barChart(title, yLabel string, categories, seriesNames []string, values [][]bar, yMax float64) string {
	ys := []float64{0, yMax}
	for _, row := range values {
		for _, v := range row {
			ys = append(ys, v.V)
			if !math.IsNaN(v.Hi) {
				ys = append(ys, v.Hi)
			}
		}
	}
	ylo, yhi := span(ys, true, false)
	n := float64(max(len(categories), 1))
	f := newFrame(title, "strategy", yLabel, axis{lo: -0.5, hi: n - 0.5}, axis{lo: ylo, hi: yhi})
	f.axes(nil2(categories))
	group := (chartW - padL - padR) / n * 0.7
	for c, row := range values {
		w := group / float64(max(len(row), 1))
		for s, v := range row {
			x := f.x.v(float64(c)) - group/2 + float64(s)*w
			top := f.y.v(v.V)
			fmt.Fprintf(&f.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" class="mark"><title>%s, %s: %s</title></rect>`,
				x, top, w*0.9, max(f.y.v(0)-top, 1), color(s), esc(categories[c]), esc(seriesNames[s]), num(v.V))
			if !math.IsNaN(v.Lo) {
				cx := x + w*0.45
				fmt.Fprintf(&f.b, `<path d="M%.1f %.1fV%.1f" stroke="#000" stroke-width="1.5" class="mark"/>`, cx, f.y.v(v.Lo), f.y.v(v.Hi))
			}
		}
	}
	f.legend(seriesNames)
	return f.svg()
}

// nil2 keeps an empty category list from meaning "numeric axis".
func nil2(names []string) []string {
	if names == nil {
		return []string{}
	}
	return names
}

// num writes a tick or datum compactly: 0.25, 12, 4.1k, 2.3M.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	case a >= 100:
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	default:
		return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
	}
}

func esc(s string) string { return html.EscapeString(s) }
