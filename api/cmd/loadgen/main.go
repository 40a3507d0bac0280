// Command loadgen sends POST /app through the VIP at a fixed rate or
// concurrency, retrying each request like a careful client (same
// Idempotency-Key, bounded, with backoff), and reports what happened.
// SIGINT or SIGTERM ends the run early; requests already started finish.
//
// Example:
//
//	loadgen -target http://192.168.56.10 -rate 20 -duration 60s -retries 5 -acks acks.txt
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"example.com/timestamp/api/loadgen"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		cfg     loadgen.Config
		targets string
		acks    string
		report  string
		quiet   bool
	)
	flag.StringVar(&targets, "target", "http://127.0.0.1:8080",
		"comma-separated base `URLs`, tried in order when one cannot serve (connection failure or 503)")
	flag.StringVar(&cfg.Method, "method", "POST", "HTTP `method`")
	flag.StringVar(&cfg.Path, "path", "/app", "request `path`")
	flag.IntVar(&cfg.Concurrency, "concurrency", 4, "number of concurrent workers (`count`)")
	flag.Float64Var(&cfg.Rate, "rate", 0, "logical requests per second for the whole run (`rate`); 0 sends as fast as the workers can")
	flag.DurationVar(&cfg.Duration, "duration", 10*time.Second, "length of the run (`duration`); 0 with -requests runs until the count is reached")
	flag.IntVar(&cfg.Requests, "requests", 0, "stop after this many logical requests (`count`); 0 means no limit")
	flag.IntVar(&cfg.Retries, "retries", 5, "retries of one logical request after a failed attempt (`count`)")
	flag.DurationVar(&cfg.BaseBackoff, "backoff", 100*time.Millisecond, "wait before the first retry, doubled each time with jitter (`duration`)")
	flag.DurationVar(&cfg.MaxBackoff, "max-backoff", 2*time.Second, "longest wait between retries (`duration`)")
	flag.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "timeout of one attempt (`duration`)")
	flag.StringVar(&cfg.KeyPrefix, "key-prefix", fmt.Sprintf("lg%d", time.Now().UnixNano()),
		"prefix of every Idempotency-Key (`prefix`); empty sends no key")
	flag.StringVar(&acks, "acks", "", "write each acknowledged request as 'key id' lines to this `file`")
	flag.StringVar(&report, "report", "", "write the summary as JSON to this `file`")
	flag.BoolVar(&quiet, "quiet", false, "print no progress lines")
	flag.DurationVar(&cfg.ProgressEvery, "progress-every", time.Second,
		"interval between progress lines on stderr (`duration`)")
	flag.Parse()

	for _, t := range strings.Split(targets, ",") {
		if t = strings.TrimRight(strings.TrimSpace(t), "/"); t != "" {
			cfg.Targets = append(cfg.Targets, t)
		}
	}
	if !quiet {
		cfg.Progress = os.Stderr
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}

	printSummary(res)
	if acks != "" {
		if err := writeAcks(acks, res.Acks); err != nil {
			return err
		}
	}
	if report != "" {
		b, err := json.MarshalIndent(withUsage(res), "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(report, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}

func printSummary(res loadgen.Result) {
	statuses := make([]string, 0, len(res.ByStatus))
	for s, n := range res.ByStatus {
		statuses = append(statuses, fmt.Sprintf("%s=%d", s, n))
	}
	sort.Strings(statuses)
	fmt.Printf("sent %d, succeeded %d, failed %d, attempts %d, client retries %d\n",
		res.Sent, res.Succeeded, res.Failed, res.Attempts, res.Retries)
	fmt.Printf("statuses %s\n", strings.Join(statuses, " "))
	fmt.Printf("elapsed %s, throughput %.1f/s, longest stretch without a success %s\n",
		res.Elapsed, res.Throughput, res.LongestGap)
	fmt.Printf("latency p50 %s p90 %s p99 %s max %s\n",
		res.LatencyP50, res.LatencyP90, res.LatencyP99, res.LatencyMax)
	for _, e := range res.FirstErrors {
		fmt.Printf("error: %s\n", e)
	}
}

// report is the JSON summary: the run's result and the CPU time that this
// process used, so a benchmark can tell how much of the machine the client
// itself took.
type report struct {
	loadgen.Result
	ClientCPUSeconds float64 `json:"client_cpu_seconds"`
}

func withUsage(res loadgen.Result) report {
	r := report{Result: res}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		r.ClientCPUSeconds = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	return r
}

func writeAcks(path string, acks []loadgen.Ack) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write acks: %w", err)
	}
	w := bufio.NewWriter(f)
	for _, a := range acks {
		fmt.Fprintf(w, "%s %d\n", a.Key, a.ID)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write acks: %w", err)
	}
	return f.Close()
}
