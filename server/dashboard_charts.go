package server

import (
	"fmt"
	"html/template"
	"math"
	"strings"
)

// The dashboard's charts are SVG drawn here, on the server: no JavaScript
// library and nothing fetched from elsewhere.

// palette colours the stages and series, in order.
var palette = []string{"#4e79a7", "#f28e2b", "#59a14f", "#76b7b2", "#edc948", "#e15759", "#b07aa1", "#9c755f", "#bab0ac", "#ff9da7"}

func colour(i int) string { return palette[i%len(palette)] }

// series is one named line or bar stack layer; nil values are gaps.
type series struct {
	Name   string
	Values []*float64
}

const (
	chartW, chartH         = 640.0, 220.0
	padL, padR, padT, padB = 48.0, 12.0, 12.0, 40.0
	plotW, plotH           = chartW - padL - padR, chartH - padT - padB
)

func esc(s string) string { return template.HTMLEscapeString(s) }

// niceMax rounds v up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// axes draws the y grid from lo to hi and the x labels.
func axes(b *strings.Builder, labels []string, lo, hi float64, unit string) {
	for i := 0; i <= 4; i++ {
		v := lo + (hi-lo)*float64(i)/4
		y := padT + plotH - plotH*float64(i)/4
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" class="grid"/>`, padL, y, chartW-padR, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" class="ylab">%s%s</text>`, padL-6, y+4, trimFloat(v), unit)
	}
	step := 1
	if len(labels) > 12 {
		step = (len(labels) + 11) / 12
	}
	for i, l := range labels {
		if i%step != 0 {
			continue
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" class="xlab">%s</text>`, xCenter(i, len(labels)), chartH-padB+16, esc(l))
	}
}

func xCenter(i, n int) float64 { return padL + plotW*(float64(i)+0.5)/float64(n) }

func trimFloat(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func legend(b *strings.Builder, ss []series) {
	b.WriteString(`<div class="legend">`)
	for i, s := range ss {
		fmt.Fprintf(b, `<span><i style="background:%s"></i>%s</span>`, colour(i), esc(s.Name))
	}
	b.WriteString(`</div>`)
}

// lineChart draws one line per series over the labels; the y axis spans
// 0 (or the lowest value, if negative) to the highest.
func lineChart(title string, labels []string, ss []series, unit string) template.HTML {
	lo, hi := 0.0, 0.0
	for _, s := range ss {
		for _, v := range s.Values {
			if v != nil {
				lo, hi = math.Min(lo, *v), math.Max(hi, *v)
			}
		}
	}
	hi = niceMax(hi)
	if lo < 0 {
		lo = -niceMax(-lo)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<figure class="chart"><figcaption>%s</figcaption><svg viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`,
		esc(title), chartW, chartH, esc(title))
	axes(&b, labels, lo, hi, unit)
	y := func(v float64) float64 { return padT + plotH - plotH*(v-lo)/(hi-lo) }
	for i, s := range ss {
		var pts []string
		flush := func() {
			if len(pts) > 0 {
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, colour(i), strings.Join(pts, " "))
			}
			pts = nil
		}
		for j, v := range s.Values {
			if v == nil {
				flush()
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xCenter(j, len(labels)), y(*v)))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s %s: %s%s</title></circle>`,
				xCenter(j, len(labels)), y(*v), colour(i), esc(s.Name), esc(labels[j]), trimFloat(*v), unit)
		}
		flush()
	}
	b.WriteString(`</svg>`)
	legend(&b, ss)
	b.WriteString(`</figure>`)
	return template.HTML(b.String()) //nolint:gosec // every text in it is escaped
}

// stackedBars draws one bar per label with the series stacked.
func stackedBars(title string, labels []string, ss []series) template.HTML {
	hi := 0.0
	for j := range labels {
		sum := 0.0
		for _, s := range ss {
			if v := s.Values[j]; v != nil {
				sum += *v
			}
		}
		hi = math.Max(hi, sum)
	}
	hi = niceMax(hi)
	var b strings.Builder
	fmt.Fprintf(&b, `<figure class="chart"><figcaption>%s</figcaption><svg viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`,
		esc(title), chartW, chartH, esc(title))
	axes(&b, labels, 0, hi, "")
	bw := plotW / float64(len(labels)) * 0.7
	for j := range labels {
		base := 0.0
		for i, s := range ss {
			v := s.Values[j]
			if v == nil || *v == 0 {
				continue
			}
			h := plotH * *v / hi
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`,
				xCenter(j, len(labels))-bw/2, padT+plotH-base-h, bw, h, colour(i), esc(labels[j]), esc(s.Name), trimFloat(*v))
			base += h
		}
	}
	b.WriteString(`</svg>`)
	legend(&b, ss)
	b.WriteString(`</figure>`)
	return template.HTML(b.String()) //nolint:gosec // every text in it is escaped
}

// funnelBar is the width, in percent of the largest stage, of a stage's bar.
func funnelBar(n, largest int64) float64 {
	if largest == 0 {
		return 0
	}
	return 100 * float64(n) / float64(largest)
}
