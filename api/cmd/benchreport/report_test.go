package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func point(variant, section string, c int, throughput float64, p50, p99 string) measurement {
	m := measurement{Variant: variant, Series: variant, Section: section, Concurrency: c,
		CPU: cpu{Machine: 1.9, DB: 0.8, API: 0.6, LB: 0.2, Client: 0.2, Rest: 0.1}, PeakRSSMiB: 30}
	m.Report.Throughput = throughput
	m.Report.LatencyP50, m.Report.LatencyP99 = p50, p99
	m.Report.ByStatus = map[string]int64{"201": int64(throughput)}
	return m
}

func sample() []measurement {
	ms := []measurement{
		point(variantHealthz, "sweep", 64, 4000, "10ms", "30ms"),
		point(variantDBSingle, "sweep", 64, 900, "60ms", "120ms"),
		point(variantDBMulti, "sweep", 64, 9000, "200ms", "400ms"),
		point(variantSingle, "sweep", 64, 500, "120ms", "300ms"),
		point(variantGroup, "sweep", 64, 1000, "60ms", "150ms"),
		point(variantStandalone, "sweep", 64, 1500, "40ms", "90ms"),
	}
	for _, rows := range []int{0, 1_000_000} {
		post := point(variantGrowthPost, "growth", 64, 1000, "60ms", "150ms")
		get := point(variantGrowthGet, "growth", 64, 2000, "30ms", "70ms")
		post.RowsFilled, get.RowsFilled = rows, rows
		ms = append(ms, post, get)
	}
	ms[4].Report.ByStatus["503"] = 2
	return ms
}

func TestChecksVerdicts(t *testing.T) {
	cs := collect(sample()).checks()
	want := []string{"not met", "not met", "not met", "not met", "met", "met", "met"}
	if len(cs) != len(want) {
		t.Fatalf("got %d checks, want %d", len(cs), len(want))
	}
	for i, c := range cs {
		if got := c.verdict(); got != want[i] {
			t.Errorf("check %q: got %s (%s), want %s", c.Name, got, c.Measured, want[i])
		}
	}
	if cs[0].Measured != "2.00×" {
		t.Errorf("group over single: got %s, want 2.00×", cs[0].Measured)
	}
}

func TestChecksMissingPoint(t *testing.T) {
	cs := collect(sample()[1:]).checks()
	if got := cs[1].verdict(); got != "not measured" {
		t.Errorf("ceiling without healthz: got %s, want not measured", got)
	}
}

func TestGapsExplainMisses(t *testing.T) {
	text := strings.Join(collect(sample()).gaps(runInfo{Cores: 2, Testbeds: 3, LoadStart: "2.5 2 1", LoadEnd: "3.1 2 1"}), "\n")
	for _, s := range []string{"2 other testbeds", "Little's law", "short of 3×", "short of 0.5×", "2 failed attempts", "2.5 at the start"} {
		if !strings.Contains(text, s) {
			t.Errorf("gaps lack %q:\n%s", s, text)
		}
	}
	if strings.Contains(text, "Every target was met") {
		t.Errorf("gaps claim every target was met:\n%s", text)
	}
}

func TestRunWritesPageAndCharts(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "bench.jsonl")
	var lines []string
	for _, c := range []int{1, 64} {
		lines = append(lines,
			`{"variant":"healthz","series":"GET /healthz","section":"sweep","concurrency":`+strconv.Itoa(c)+
				`,"report":{"throughput":3000,"latency_p50":"1ms","latency_p99":"5ms","by_status":{"200":30000}},"cpu_cores":{"machine":1.5}}`,
			`{"variant":"group","series":"POST /app, group commit","section":"sweep","concurrency":`+strconv.Itoa(c)+
				`,"report":{"throughput":900,"latency_p50":"20ms","latency_p99":"0s","by_status":{"201":9000}},"cpu_cores":{"machine":1.9}}`)
	}
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "docs", "benchmarks.md")
	if err := run(in, "", out, filepath.Join(dir, "docs", "img")); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"## Targets", "(img/bench-throughput.png)", "| GET /healthz | 64 |"} {
		if !strings.Contains(string(page), s) {
			t.Errorf("page lacks %q", s)
		}
	}
	for _, name := range []string{chartThroughput, chartP99} {
		if st, err := os.Stat(filepath.Join(dir, "docs", "img", name)); err != nil || st.Size() == 0 {
			t.Errorf("chart %s: %v", name, err)
		}
	}
}

func TestGrowthCostIgnoresNeighbours(t *testing.T) {
	ms := sample()
	full := &ms[len(ms)-2] // POST /app with the table full
	// Half the throughput because other testbeds took half of this
	// testbed's cores: the same CPU time per request.
	full.Report.Throughput /= 2
	full.CPU = cpu{Machine: 1.9, DB: 0.4, API: 0.3, LB: 0.1, Client: 0.1, Rest: 1.0}
	p := collect(ms)
	cs := p.checks()
	post := cs[len(cs)-2]
	if got := post.verdict(); got != "met" {
		t.Errorf("cost of POST /app: got %s (%s), want met", got, post.Measured)
	}
	if !strings.Contains(post.Measured, "throughput 0.50×") {
		t.Errorf("cost of POST /app: measured %q lacks the throughput ratio", post.Measured)
	}
	text := strings.Join(p.gaps(runInfo{Cores: 2}), "\n")
	if !strings.Contains(text, "moved with what the other testbeds took") {
		t.Errorf("gaps do not explain the throughput drop:\n%s", text)
	}
}
