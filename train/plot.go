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
