package promscrape

import (
	"math"
	"strings"
	"testing"
)

const exposition = `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.34
# TYPE timestamp_http_request_duration_seconds histogram
timestamp_http_request_duration_seconds_bucket{method="GET",route="/readyz",le="0.001"} 99
timestamp_http_request_duration_seconds_bucket{method="POST",route="/app",le="0.01"} 5
timestamp_http_request_duration_seconds_bucket{method="POST",route="/app",le="+Inf"} 10
timestamp_http_request_duration_seconds_bucket{method="POST",route="/app",le="0.005"} 2
timestamp_http_request_duration_seconds_sum{method="POST",route="/app"} 0.4
timestamp_http_request_duration_seconds_count{method="POST",route="/app"} 10
weird_label{path="a\"b,c}",x="y"} 1
`

func TestParse(t *testing.T) {
	m, err := Parse(strings.NewReader(exposition), "POST", "/app")
	if err != nil {
		t.Fatal(err)
	}
	if m.CPUSeconds != 12.34 {
		t.Errorf("CPUSeconds = %g, want 12.34", m.CPUSeconds)
	}
	if len(m.Latency) != 3 {
		t.Fatalf("got %d buckets, want 3 of POST /app: %+v", len(m.Latency), m.Latency)
	}
	if m.Latency[0].UpperBound != 0.005 || m.Latency[0].Count != 2 {
		t.Errorf("first bucket = %+v, want le=0.005 count 2 (sorted by bound)", m.Latency[0])
	}
	if !math.IsInf(m.Latency[2].UpperBound, 1) || m.Latency.Total() != 10 {
		t.Errorf("last bucket = %+v, want +Inf with 10", m.Latency[2])
	}
}

func TestParseLabelEscapes(t *testing.T) {
	labels, rest, err := parseLabels(`path="a\"b,c}",x="y\\z"} 1`)
	if err != nil {
		t.Fatal(err)
	}
	if labels["path"] != `a"b,c}` || labels["x"] != `y\z` {
		t.Errorf("labels = %q, want path a\"b,c} and x y\\z", labels)
	}
	if strings.TrimSpace(rest) != "1" {
		t.Errorf("rest = %q, want the value 1", rest)
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	if _, err := Parse(strings.NewReader("metric{a=\"b\" 1\n"), "POST", "/app"); err == nil {
		t.Error("Parse of an unterminated label set returned nil, want an error")
	}
}
