package main

import (
	"image/color"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Chart files, in the images folder.
const (
	chartThroughput = "bench-throughput.png"
	chartP99        = "bench-p99.png"
)

var palette = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255},
	color.RGBA{214, 39, 40, 255}, color.RGBA{148, 103, 189, 255}, color.RGBA{140, 86, 75, 255},
	color.RGBA{227, 119, 194, 255}, color.RGBA{127, 127, 127, 255},
}

// seriesOrder returns the series names in the order they first appear.
func seriesOrder(ms []measurement) []string {
	var names []string
	seen := map[string]bool{}
	for _, m := range ms {
		if !seen[m.Series] {
			seen[m.Series] = true
			names = append(names, m.Series)
		}
	}
	return names
}

// chart draws value against concurrency, one line per series, both axes
// on a log scale because the variants differ by orders of magnitude.
// Points whose value is not positive (no success at all) are left out,
// since a log scale cannot show them.
func chart(ms []measurement, path, title, ylabel string, value func(measurement) float64) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "concurrency (log scale)"
	p.Y.Label.Text = ylabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = levelTicks(ms)
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())

	for i, name := range seriesOrder(ms) {
		var pts plotter.XYs
		for _, m := range ms {
			if v := value(m); m.Series == name && m.Concurrency > 0 && v > 0 {
				pts = append(pts, plotter.XY{X: float64(m.Concurrency), Y: v})
			}
		}
		if len(pts) == 0 {
			continue
		}
		sort.Slice(pts, func(a, b int) bool { return pts[a].X < pts[b].X })
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		c := palette[i%len(palette)]
		line.Color, points.Color = c, c
		line.Width = vg.Points(1.5)
		points.Shape = draw.CircleGlyph{}
		p.Add(line, points)
		p.Legend.Add(name, line, points)
	}

	// Room above the data for the legend: a factor of 10 is a third of
	// the height when the data span two decades.
	p.Y.Max *= 10
	return p.Save(24*vg.Centimeter, 15*vg.Centimeter, path)
}

// levelTicks labels the x axis at the measured concurrency levels.
func levelTicks(ms []measurement) plot.ConstantTicks {
	seen := map[int]bool{}
	var ticks plot.ConstantTicks
	for _, m := range ms {
		if m.Concurrency > 0 && !seen[m.Concurrency] {
			seen[m.Concurrency] = true
			ticks = append(ticks, plot.Tick{Value: float64(m.Concurrency), Label: strconv.Itoa(m.Concurrency)})
		}
	}
	sort.Slice(ticks, func(a, b int) bool { return ticks[a].Value < ticks[b].Value })
	return ticks
}
