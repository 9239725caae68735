package train

import (
	"fmt"
	"math"
	"strings"
)

// lossCurve draws the training and validation loss against the step as an
// SVG image: a plain file any browser shows, with axes and labels.
func lossCurve(log []Point) []byte {
	const W, H, left, right, top, bottom = 720.0, 420.0, 70.0, 20.0, 30.0, 50.0
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	lo, hi, maxStep := math.Inf(1), math.Inf(-1), 1
	for _, p := range log {
		for _, v := range []float64{p.Loss, p.ValLoss} {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
		maxStep = max(maxStep, p.Step)
	}
	if math.IsInf(lo, 0) {
		b.WriteString(`<text x="50%" y="50%" text-anchor="middle">no steps logged yet</text></svg>` + "\n")
		return []byte(b.String())
	}
	if hi-lo < 1e-6 {
		hi, lo = hi+0.5, lo-0.5
	}
	pad := (hi - lo) * 0.05
	lo, hi = math.Max(0, lo-pad), hi+pad
	x := func(step int) float64 { return left + (W-left-right)*float64(step)/float64(maxStep) }
	y := func(v float64) float64 { return top + (H-top-bottom)*(hi-v)/(hi-lo) }
	// Axes, grid and ticks.
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`+"\n", left, H-bottom, W-right, H-bottom)
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`+"\n", left, top, left, H-bottom)
	for i := 0; i <= 5; i++ {
		v := lo + (hi-lo)*float64(i)/5
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(v), W-right, y(v))
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" text-anchor="end" dominant-baseline="middle">%.3g</text>`+"\n", left-6, y(v), v)
		s := maxStep * i / 5
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%d</text>`+"\n", x(s), H-bottom+16, s)
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">step</text>`+"\n", (left+W-right)/2, H-12)
	fmt.Fprintf(&b, `<text x="16" y="%g" text-anchor="middle" transform="rotate(-90 16 %g)">loss (nats per learned token)</text>`+"\n", (top+H-bottom)/2, (top+H-bottom)/2)
	// The curves.
	var train, val []string
	for _, p := range log {
		if !math.IsNaN(p.Loss) && !math.IsInf(p.Loss, 0) {
			train = append(train, fmt.Sprintf("%.1f,%.1f", x(p.Step), y(p.Loss)))
		}
		if !math.IsNaN(p.ValLoss) {
			val = append(val, fmt.Sprintf("%.1f,%.1f", x(p.Step), y(p.ValLoss)))
		}
	}
	fmt.Fprintf(&b, `<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="%s"/>`+"\n", strings.Join(train, " "))
	if len(val) > 0 {
		fmt.Fprintf(&b, `<polyline fill="none" stroke="#d62728" stroke-width="2" points="%s"/>`+"\n", strings.Join(val, " "))
		for _, pt := range val {
			xy := strings.Split(pt, ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="#d62728"/>`+"\n", xy[0], xy[1])
		}
	}
	fmt.Fprintf(&b, `<text x="%g" y="18" fill="#1f77b4">training loss</text><text x="%g" y="18" fill="#d62728">validation loss</text>`+"\n", left, left+110)
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// grpoCurves draws a GRPO run's curves against the step, in three panels:
// reward and accuracy, tokens per rollout (total and critical path), and
// children per parallel rollout; a mixed run's accuracy also by mode, and
// its parallel rollouts' tokens and critical path apart.
func grpoCurves(log []GRPOPoint, mixed, claims bool) []byte {
	const W, panelH = 720.0, 240.0
	panels := 3.0
	if claims {
		panels++
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="12">`+"\n", W, panels*panelH, W, panels*panelH)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	pick := func(f func(GRPOPoint) float64) []float64 {
		v := make([]float64, len(log))
		for i, p := range log {
			v[i] = f(p)
		}
		return v
	}
	steps := make([]int, len(log))
	for i, p := range log {
		steps[i] = p.Step
	}
	names := []string{"reward", "correct"}
	series := [][]float64{pick(func(p GRPOPoint) float64 { return p.Reward }), pick(func(p GRPOPoint) float64 { return p.Accuracy })}
	if mixed {
		names = append(names, "serial correct", "parallel correct")
		series = append(series, pick(func(p GRPOPoint) float64 { return p.SerialAccuracy }), pick(func(p GRPOPoint) float64 { return p.ParallelAccuracy }))
	}
	curvePanel(&b, 0, W, panelH, "reward and accuracy per rollout", "mean over the step's rollouts", steps, names, series)
	names = []string{"total", "critical path"}
	series = [][]float64{pick(func(p GRPOPoint) float64 { return p.Tokens }), pick(func(p GRPOPoint) float64 { return p.Critical })}
	if mixed {
		// Steps logged before the parallel rollouts' own means were kept
		// have none: they are left out of those curves, not drawn at 0.
		orNaN := func(v float64) float64 {
			if v == 0 {
				return math.NaN()
			}
			return v
		}
		names = append(names, "parallel total", "parallel critical")
		series = append(series, pick(func(p GRPOPoint) float64 { return orNaN(p.ParallelTokens) }),
			pick(func(p GRPOPoint) float64 { return orNaN(p.ParallelCritical) }))
	}
	curvePanel(&b, panelH, W, panelH, "tokens per rollout", "tokens", steps, names, series)
	curvePanel(&b, 2*panelH, W, panelH, "children per parallel rollout", "child threads", steps,
		[]string{"children"}, [][]float64{pick(func(p GRPOPoint) float64 { return p.Children })})
	if claims {
		curvePanel(&b, 3*panelH, W, panelH, "claims of no answer", "share of rollouts", steps,
			[]string{"false", "false, paid", "true", "flagged"}, [][]float64{
				pick(func(p GRPOPoint) float64 { return p.FalseClaims }), pick(func(p GRPOPoint) float64 { return p.Hacks }),
				pick(func(p GRPOPoint) float64 { return p.TrueClaims }), pick(func(p GRPOPoint) float64 { return p.Flagged })})
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// curvePanel draws named series against the step in a panel at y offset
// top.
func curvePanel(b *strings.Builder, top, W, H float64, title, yLabel string, steps []int, names []string, series [][]float64) {
	const left, right, pad, bottom = 70.0, 20.0, 30.0, 40.0
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"}
	fmt.Fprintf(b, `<text x="%g" y="%g" font-weight="bold">%s</text>`+"\n", left, top+18, title)
	// The legend runs right-aligned along the title's line, one name per
	// 100 pixels.
	legend := W - right - 100*float64(len(names))
	// The axis starts at 0 unless a value is below (a reward less a
	// token cost).
	lo, hi, maxStep := 0.0, math.Inf(-1), 1
	for _, s := range series {
		for _, v := range s {
			if !math.IsNaN(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	for _, s := range steps {
		maxStep = max(maxStep, s)
	}
	if math.IsInf(hi, 0) || hi <= lo {
		hi = lo + 1
	}
	hi *= 1.05
	x := func(step int) float64 { return left + (W-left-right)*float64(step)/float64(maxStep) }
	y := func(v float64) float64 { return top + pad + (H-pad-bottom)*(hi-v)/(hi-lo) }
	fmt.Fprintf(b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/><line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`+"\n",
		left, top+H-bottom, W-right, top+H-bottom, left, top+pad, left, top+H-bottom)
	for i := 0; i <= 4; i++ {
		v := lo + (hi-lo)*float64(i)/4
		fmt.Fprintf(b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#ddd"/><text x="%g" y="%.1f" text-anchor="end" dominant-baseline="middle">%.3g</text>`+"\n",
			left, y(v), W-right, y(v), left-6, y(v), v)
		s := maxStep * i / 4
		fmt.Fprintf(b, `<text x="%.1f" y="%g" text-anchor="middle">%d</text>`+"\n", x(s), top+H-bottom+16, s)
	}
	fmt.Fprintf(b, `<text x="%g" y="%g" text-anchor="middle">step</text>`+"\n", (left+W-right)/2, top+H-6)
	fmt.Fprintf(b, `<text x="16" y="%g" text-anchor="middle" transform="rotate(-90 16 %g)">%s</text>`+"\n", top+H/2, top+H/2, yLabel)
	for si, s := range series {
		var pts []string
		for i, v := range s {
			if !math.IsNaN(v) { // a value not measured at that step
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(steps[i]), y(v)))
			}
		}
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", colors[si%len(colors)], strings.Join(pts, " "))
		fmt.Fprintf(b, `<text x="%g" y="%g" fill="%s">%s</text>`+"\n", legend+float64(si)*100, top+18, colors[si%len(colors)], names[si])
	}
}
