// Package promscrape reads the figures the autoscaler needs from a
// timestamp-api instance: its /metrics in the Prometheus text format
// (version 0.0.4) and its /readyz.
package promscrape

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"example.com/timestamp/api/autoscale"
)

// Names of the series read, as the API exports them (api/httpapi/metrics.go
// and client_golang's process collector).
const (
	latencyBuckets = "timestamp_http_request_duration_seconds_bucket"
	cpuSeconds     = "process_cpu_seconds_total"
)

// Client scrapes instances over HTTP.
type Client struct {
	HTTP *http.Client
	// Method and Route select the latency histogram: POST and /app.
	Method, Route string
}

var _ autoscale.Scraper = (*Client)(nil)

// Scrape reads http://ENDPOINT/metrics.
func (c *Client) Scrape(ctx context.Context, endpoint string) (autoscale.InstanceMetrics, error) {
	body, err := c.get(ctx, "http://"+endpoint+"/metrics")
	if err != nil {
		return autoscale.InstanceMetrics{}, err
	}
	defer body.Close()
	return Parse(body, c.Method, c.Route)
}

// Ready returns nil when http://ENDPOINT/readyz returns 200.
func (c *Client) Ready(ctx context.Context, endpoint string) error {
	body, err := c.get(ctx, "http://"+endpoint+"/readyz")
	if err != nil {
		return err
	}
	return body.Close()
}

func (c *Client) get(ctx context.Context, url string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return resp.Body, nil
}

// Parse reads the latency buckets of method and route and the process CPU
// time from a text exposition. A missing histogram (no request served
// yet) gives an empty one.
func Parse(r io.Reader, method, route string) (autoscale.InstanceMetrics, error) {
	var m autoscale.InstanceMetrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, value, err := parseSample(line)
		if err != nil {
			return m, err
		}
		switch {
		case name == cpuSeconds:
			m.CPUSeconds = value
		case name == latencyBuckets && labels["method"] == method && labels["route"] == route:
			le, err := parseBound(labels["le"])
			if err != nil {
				return m, fmt.Errorf("%s: %w", line, err)
			}
			m.Latency = append(m.Latency, autoscale.Bucket{UpperBound: le, Count: value})
		}
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("read metrics: %w", err)
	}
	slices.SortFunc(m.Latency, func(a, b autoscale.Bucket) int {
		switch {
		case a.UpperBound < b.UpperBound:
			return -1
		case a.UpperBound > b.UpperBound:
			return 1
		}
		return 0
	})
	return m, nil
}

func parseBound(s string) (float64, error) {
	if s == "+Inf" {
		return math.Inf(1), nil
	}
	return strconv.ParseFloat(s, 64)
}

// parseSample splits `name{a="x",b="y"} value [timestamp]`.
func parseSample(line string) (string, map[string]string, float64, error) {
	var labels map[string]string
	name, rest := line, ""
	if i := strings.IndexAny(line, "{ "); i >= 0 {
		name, rest = line[:i], line[i:]
	}
	if strings.HasPrefix(rest, "{") {
		var err error
		labels, rest, err = parseLabels(rest[1:])
		if err != nil {
			return "", nil, 0, fmt.Errorf("metrics line %q: %w", line, err)
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return "", nil, 0, fmt.Errorf("metrics line %q has no value", line)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return "", nil, 0, fmt.Errorf("metrics line %q: invalid value: %w", line, err)
	}
	return name, labels, v, nil
}

// parseLabels reads `a="x",b="y"}` and returns what follows the brace.
// Label values may contain the escapes \\, \" and \n.
func parseLabels(s string) (map[string]string, string, error) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, " ,")
		if strings.HasPrefix(s, "}") {
			return labels, s[1:], nil
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 || len(s) < eq+2 || s[eq+1] != '"' {
			return nil, "", fmt.Errorf("invalid label at %q", s)
		}
		key := strings.TrimSpace(s[:eq])
		var val strings.Builder
		i := eq + 2
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(s[i])
				}
				continue
			}
			val.WriteByte(s[i])
		}
		if i >= len(s) {
			return nil, "", fmt.Errorf("unterminated label value of %s", key)
		}
		labels[key] = val.String()
		s = s[i+1:]
	}
}
