package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// point is one row of the timeline. NaN marks a missing value.
type point struct {
	t, offered, measured, instances, desired, p95ms float64
}

var columns = []string{"t_seconds", "offered_rps", "measured_rps", "instances", "desired", "p95_ms"}

// readTimeline parses the CSV; columns are found by header name.
func readTimeline(r io.Reader) ([]point, error) {
	cr := csv.NewReader(r)
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("read the header: %w", err)
	}
	idx := map[string]int{}
	for i, name := range header {
		idx[name] = i
	}
	for _, c := range columns {
		if _, ok := idx[c]; !ok {
			return nil, fmt.Errorf("header has no column %s (columns: %v)", c, columns)
		}
	}
	var points []point
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		v := make([]float64, len(columns))
		for i, c := range columns {
			if v[i], err = parseField(rec[idx[c]]); err != nil {
				return nil, fmt.Errorf("line %d, %s: %w", line, c, err)
			}
		}
		points = append(points, point{v[0], v[1], v[2], v[3], v[4], v[5]})
	}
	if len(points) < 2 {
		return nil, fmt.Errorf("%d rows; a chart needs at least 2", len(points))
	}
	return points, nil
}

func parseField(s string) (float64, error) {
	if s == "" {
		return math.NaN(), nil
	}
	return strconv.ParseFloat(s, 64)
}

var (
	blue   = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	orange = color.RGBA{R: 255, G: 127, B: 14, A: 255}
	green  = color.RGBA{R: 44, G: 160, B: 44, A: 255}
	gray   = color.RGBA{R: 120, G: 120, B: 120, A: 255}
)

// render draws the three panels and writes them as PNG.
func render(w io.Writer, points []point, title string) error {
	load := panel(title, "requests/s")
	if err := addLine(load, points, func(p point) float64 { return p.offered }, "offered (load generator)", gray, true, false); err != nil {
		return err
	}
	if err := addLine(load, points, func(p point) float64 { return p.measured }, "measured (HAProxy, 10 s window)", blue, false, false); err != nil {
		return err
	}

	inst := panel("", "instances")
	if err := addLine(inst, points, func(p point) float64 { return p.desired }, "desired", orange, true, true); err != nil {
		return err
	}
	if err := addLine(inst, points, func(p point) float64 { return p.instances }, "in rotation", green, false, true); err != nil {
		return err
	}
	inst.Y.Min = 0
	inst.Y.Max = math.Max(maxOf(points, func(p point) float64 { return p.instances }),
		maxOf(points, func(p point) float64 { return p.desired })) + 0.5

	lat := panel("", "p95 POST /app (ms)")
	if err := addLine(lat, points, func(p point) float64 { return p.p95ms }, "p95 (instances' histograms, 10 s window)", blue, false, false); err != nil {
		return err
	}
	lat.Y.Min = 0
	lat.X.Label.Text = "time since start (s)"

	plots := [][]*plot.Plot{{load}, {inst}, {lat}}
	for _, row := range plots {
		row[0].X.Min, row[0].X.Max = points[0].t, points[len(points)-1].t
	}
	img := vgimg.NewWith(vgimg.UseWH(24*vg.Centimeter, 20*vg.Centimeter), vgimg.UseDPI(110))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 3, Cols: 1, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
	canvases := plot.Align(plots, tiles, dc)
	for i, row := range plots {
		row[0].Draw(canvases[i][0])
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

func panel(title, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = yLabel
	p.Add(plotter.NewGrid())
	// Top right: the runs begin at a low load and end there, so that
	// corner is free in the load panel.
	p.Legend.Top = true
	return p
}

// maxOf returns the largest value of a column, ignoring NaN.
func maxOf(points []point, value func(point) float64) float64 {
	m := 0.0
	for _, p := range points {
		if v := value(p); !math.IsNaN(v) {
			m = math.Max(m, v)
		}
	}
	return m
}

// addLine adds one series; NaN values split it into segments.
func addLine(p *plot.Plot, points []point, value func(point) float64, name string, c color.Color, dashed, step bool) error {
	var segments []plotter.XYs
	var cur plotter.XYs
	for _, pt := range points {
		v := value(pt)
		if math.IsNaN(v) {
			if len(cur) > 0 {
				segments = append(segments, cur)
				cur = nil
			}
			continue
		}
		cur = append(cur, plotter.XY{X: pt.t, Y: v})
	}
	if len(cur) > 0 {
		segments = append(segments, cur)
	}
	for i, seg := range segments {
		l, err := plotter.NewLine(seg)
		if err != nil {
			return fmt.Errorf("series %s: %w", name, err)
		}
		l.Color = c
		l.Width = vg.Points(1.5)
		if dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		if step {
			l.StepStyle = plotter.PostStep
		}
		p.Add(l)
		if i == 0 {
			p.Legend.Add(name, l)
		}
	}
	return nil
}
