// Command benchreport turns the benchmark harness's measurements into
// docs/benchmarks.md and its charts. It reads a JSON Lines file, one
// measurement per line (written by scripts/bench.sh), and a JSON file
// describing the run.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Variants, as scripts/bench.sh names them in the "variant" field.
const (
	variantHealthz    = "healthz"
	variantDBSingle   = "db-single"
	variantDBMulti    = "db-multi"
	variantSingle     = "single"
	variantGroup      = "group"
	variantStandalone = "standalone"
	variantGrowthPost = "growth-post"
	variantGrowthGet  = "growth-get"
)

// measurement is one line of the input: a variant, a load level and the
// load generator's (or dbbench's) report.
type measurement struct {
	Variant     string  `json:"variant"`
	Series      string  `json:"series"`  // label in tables and legends
	Section     string  `json:"section"` // table the row belongs to: sweep, open-loop, growth
	Concurrency int     `json:"concurrency"`
	Rate        int     `json:"rate,omitempty"`        // offered requests per second (open loop)
	Rows        int     `json:"rows,omitempty"`        // rows in the table when the point started
	RowsFilled  int     `json:"rows_filled,omitempty"` // rows the table was filled with (growth)
	Report      report  `json:"report"`
	CPU         cpu     `json:"cpu_cores"`
	PeakRSSMiB  float64 `json:"peak_rss_mib,omitempty"`
}

// report is the part of the load generator's JSON summary (and dbbench's,
// which has the same fields) that the page uses. Latencies are Go
// duration strings.
type report struct {
	Succeeded  int64            `json:"succeeded"`
	ByStatus   map[string]int64 `json:"by_status"`
	Throughput float64          `json:"throughput"`
	LatencyP50 string           `json:"latency_p50"`
	LatencyP90 string           `json:"latency_p90"`
	LatencyP99 string           `json:"latency_p99"`
	LatencyMax string           `json:"latency_max"`
}

// errors counts the attempts that did not succeed: every status that is
// not 2xx, and every failed dbbench statement ("committed" counts the good
// ones).
func (r report) errors() int64 {
	var n int64
	for status, count := range r.ByStatus {
		if !strings.HasPrefix(status, "2") && status != "committed" {
			n += count
		}
	}
	return n
}

// cpu is the average number of cores used during one point.
type cpu struct {
	Machine float64 `json:"machine"` // busy time of the whole machine, other testbeds included
	LB      float64 `json:"lb"`      // this testbed's load balancers
	API     float64 `json:"api"`     // API hosts (dbbench included, which runs on one)
	DB      float64 `json:"db"`      // Galera hosts
	Client  float64 `json:"client"`  // the load generator
	Rest    float64 `json:"rest"`    // everything else: other testbeds, the harness
}

// own returns the cores that this testbed and the load generator used.
func (c cpu) own() float64 { return c.LB + c.API + c.DB + c.Client }

// cpuPerRequest returns the CPU time, in milliseconds, that this testbed and
// the load generator spent per success (per row for dbbench), or NaN
// without successes. It includes the testbed's idle work, such as health
// checks, so it is higher at low rates. Unlike the throughput, it does not
// depend on how much CPU other testbeds took during the point.
func (m measurement) cpuPerRequest() float64 {
	if m.Report.Throughput <= 0 {
		return math.NaN()
	}
	return 1000 * m.CPU.own() / m.Report.Throughput
}

// runInfo is the description of the run that scripts/bench.sh writes.
type runInfo struct {
	Commit     string `json:"commit"`
	Started    string `json:"started"`
	Finished   string `json:"finished"`
	Seconds    int    `json:"seconds"`
	Cores      int    `json:"cores"`
	Memory     string `json:"memory"`
	CPU        string `json:"cpu"`
	Kernel     string `json:"kernel"`
	LoadStart  string `json:"load_start"` // 1, 5 and 15 minute load averages
	LoadEnd    string `json:"load_end"`
	Testbeds   int    `json:"testbeds"` // named testbed instances up on the machine, this one included
	Instance   string `json:"instance"`
	Duration   string `json:"duration"`
	Warmup     string `json:"warmup"`
	Levels     string `json:"levels"`
	Rate       int    `json:"rate"`
	MultiRows  int    `json:"multi_rows"`
	GrowthRows int    `json:"growth_rows"`
	API        string `json:"api"`
	Paused     string `json:"paused"` // units stopped during the run, such as the autoscaler
}

func main() {
	in := flag.String("in", "", "measurements, JSON Lines (`file`)")
	meta := flag.String("meta", "", "run description, JSON (`file`)")
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
	var info runInfo
	if metaPath != "" {
		b, err := os.ReadFile(metaPath)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &info); err != nil {
			return fmt.Errorf("read %s: %w", metaPath, err)
		}
	}
	if err := os.MkdirAll(images, 0o755); err != nil {
		return err
	}
	sweep := filter(ms, "sweep")
	if err := chart(sweep, filepath.Join(images, chartThroughput), "Throughput against concurrency",
		"requests per second (dbbench: rows per second), log scale",
		func(m measurement) float64 { return m.Report.Throughput }); err != nil {
		return err
	}
	if err := chart(sweep, filepath.Join(images, chartP99), "p99 latency against concurrency",
		"p99 latency (ms), log scale", func(m measurement) float64 { return millis(m.Report.LatencyP99) }); err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(out), images)
	if err != nil {
		return err
	}
	return os.WriteFile(out, []byte(markdown(ms, info, filepath.ToSlash(rel))), 0o644)
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
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("%s has no measurements", path)
	}
	return ms, nil
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

// find returns the first measurement of variant in section at concurrency
// c (growth: filled with rows), or nil.
func find(ms []measurement, section, variant string, c, rows int) *measurement {
	for i := range ms {
		m := &ms[i]
		if m.Section == section && m.Variant == variant && m.Concurrency == c && m.RowsFilled == rows {
			return m
		}
	}
	return nil
}

// millis converts a Go duration string to milliseconds, and an invalid
// one to 0.
func millis(s string) float64 {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0
	}
	return float64(d.Microseconds()) / 1000
}
