// Command benchreport turns the benchmark harness's measurements into
// docs/benchmarks.md and its charts. It reads a JSON Lines file, one
// measurement per line, and a JSON file describing the run.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// measurement is one line of the input: a series, a load level and the
// load generator's (or dbbench's) report.
type measurement struct {
	Series      string `json:"series"`
	Section     string `json:"section"` // table the row belongs to: sweep, open-loop, growth
	Concurrency int    `json:"concurrency"`
	Rate        int    `json:"rate,omitempty"`
	Rows        int    `json:"rows,omitempty"` // rows in the table during the run (growth)
	Report      struct {
		Succeeded  int64            `json:"succeeded"`
		ByStatus   map[string]int64 `json:"by_status"`
		Throughput float64          `json:"throughput"`
		LatencyP50 string           `json:"latency_p50"`
		LatencyP90 string           `json:"latency_p90"`
		LatencyP99 string           `json:"latency_p99"`
		LatencyMax string           `json:"latency_max"`
	} `json:"report"`
	PeakRSSMiB float64 `json:"peak_rss_mib,omitempty"`
}

func main() {
	in := flag.String("in", "", "measurements, JSON Lines (`file`)")
	meta := flag.String("meta", "", "run description, a JSON object of strings (`file`)")
	out := flag.String("out", "docs/benchmarks.md", "Markdown `file` to write")
	images := flag.String("images", "docs/img", "`folder` for the PNG charts")
	flag.Parse()
	if err := run(*in, *meta, *out, *images); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(in, metaPath, out, images string) error {
	ms, err := readMeasurements(in)
	if err != nil {
		return err
	}
	meta := map[string]string{}
	if metaPath != "" {
		b, err := os.ReadFile(metaPath)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &meta); err != nil {
			return fmt.Errorf("read %s: %w", metaPath, err)
		}
	}
	if err := os.MkdirAll(images, 0o755); err != nil {
		return err
	}
	sweep := filter(ms, "sweep")
	if err := chart(sweep, filepath.Join(images, "bench-throughput.png"), "Throughput against concurrency",
		"requests or rows per second", func(m measurement) float64 { return m.Report.Throughput }); err != nil {
		return err
	}
	if err := chart(sweep, filepath.Join(images, "bench-p99.png"), "p99 latency against concurrency",
		"p99 latency (ms)", func(m measurement) float64 { return millis(m.Report.LatencyP99) }); err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(out), images)
	if err != nil {
		return err
	}
	return os.WriteFile(out, []byte(markdown(ms, meta, rel)), 0o644)
}

func readMeasurements(path string) ([]measurement, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ms []measurement
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var m measurement
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		ms = append(ms, m)
	}
	return ms, sc.Err()
}

func filter(ms []measurement, section string) []measurement {
	var out []measurement
	for _, m := range ms {
		if m.Section == section {
			out = append(out, m)
		}
	}
	return out
}

func millis(s string) float64 {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0
	}
	return float64(d.Microseconds()) / 1000
}

// seriesOrder keeps the first-seen order of series names.
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

func chart(ms []measurement, path, title, ylabel string, value func(measurement) float64) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "concurrency (log scale)"
	p.Y.Label.Text = ylabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	palette := []color.Color{
		color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255},
		color.RGBA{214, 39, 40, 255}, color.RGBA{148, 103, 189, 255}, color.RGBA{140, 86, 75, 255},
		color.RGBA{227, 119, 194, 255}, color.RGBA{127, 127, 127, 255},
	}
	for i, name := range seriesOrder(ms) {
		var pts plotter.XYs
		for _, m := range ms {
			if m.Series == name && m.Concurrency > 0 {
				pts = append(pts, plotter.XY{X: float64(m.Concurrency), Y: value(m)})
			}
		}
		sort.Slice(pts, func(a, b int) bool { return pts[a].X < pts[b].X })
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		c := palette[i%len(palette)]
		line.Color, points.Color = c, c
		points.Shape = draw.CircleGlyph{}
		p.Add(line, points)
		p.Legend.Add(name, line, points)
	}
	return p.Save(22*vg.Centimeter, 13*vg.Centimeter, path)
}

func markdown(ms []measurement, meta map[string]string, images string) string {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("Written by `make bench` (`scripts/bench.sh`, which runs `api/cmd/loadgen` and `api/cmd/dbbench`, " +
		"then `api/cmd/benchreport`). Every figure below comes from the run described here; " +
		"all variants ran in that one run, so their ratios hold even on a noisy machine.\n\n")
	b.WriteString("| run | value |\n|---|---|\n")
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "| %s | %s |\n", k, meta[k])
	}

	sections := []struct{ id, title string }{
		{"sweep", "Closed loop: throughput and latency by concurrency"},
		{"open-loop", "Open loop at a fixed rate"},
		{"growth", "Cost as the table grows"},
	}
	for _, s := range sections {
		rows := filter(ms, s.id)
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n## %s\n\n", s.title)
		b.WriteString("| series | concurrency | rate | rows in table | throughput (/s) | p50 | p90 | p99 | max | statuses | API peak RSS |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, m := range rows {
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %.0f | %s | %s | %s | %s | %s | %s |\n",
				m.Series, m.Concurrency, orDash(m.Rate), orDash(m.Rows), m.Report.Throughput,
				short(m.Report.LatencyP50), short(m.Report.LatencyP90), short(m.Report.LatencyP99),
				short(m.Report.LatencyMax), statuses(m.Report.ByStatus), rss(m.PeakRSSMiB))
		}
		if s.id == "sweep" {
			fmt.Fprintf(&b, "\n![Throughput against concurrency](%s/bench-throughput.png)\n\n", images)
			fmt.Fprintf(&b, "![p99 latency against concurrency](%s/bench-p99.png)\n", images)
		}
	}
	return b.String()
}

func orDash(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func rss(mib float64) string {
	if mib == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", mib)
}

// short rounds a duration string to three significant figures.
func short(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return s
	}
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

func statuses(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
