// Package loadgen sends POST /app (or any request) at a fixed rate or
// concurrency, the way a careful client would: every logical request has
// its own Idempotency-Key, and a failed attempt is retried with the same key,
// a bounded number of times, with backoff. It records every key that was
// acknowledged, so a checker can later prove that none was lost.
package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config sets what to send and how.
type Config struct {
	// Targets are base URLs such as http://192.168.56.10, tried in order:
	// an attempt that cannot connect or gets 503 moves to the next target.
	Targets []string
	// Method and Path of each request; default POST /app.
	Method string
	Path   string

	// Concurrency is the number of workers; default 1.
	Concurrency int
	// Rate, when positive, caps the whole run at this many logical
	// requests per second (open loop); zero sends as fast as the workers
	// can (closed loop).
	Rate float64
	// Duration ends the run; Requests, when positive, ends it after that
	// many logical requests. At least one of them must be set.
	Duration time.Duration
	Requests int

	// Retries is how many times one logical request is retried after a
	// failed attempt; default 0. BaseBackoff doubles per retry, with
	// jitter, up to MaxBackoff.
	Retries     int
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// Timeout bounds one attempt; default 10s.
	Timeout time.Duration

	// KeyPrefix starts every Idempotency-Key; keys are KeyPrefix-N. An
	// empty prefix sends no key.
	KeyPrefix string

	// Progress, when set, receives a line every ProgressEvery (default 1s).
	Progress      io.Writer
	ProgressEvery time.Duration
}

// Ack is one acknowledged request.
type Ack struct {
	Key string `json:"key"`
	ID  int64  `json:"id"`
}

// Result summarises a run.
type Result struct {
	Sent        int64            `json:"sent"`     // logical requests started
	Attempts    int64            `json:"attempts"` // HTTP attempts, retries included
	Succeeded   int64            `json:"succeeded"`
	Failed      int64            `json:"failed"`  // logical requests that never succeeded
	Retries     int64            `json:"retries"` // attempts after the first
	ByStatus    map[string]int64 `json:"by_status"`
	ByTarget    map[string]int64 `json:"by_target"` // successes per target URL
	Elapsed     Duration         `json:"elapsed"`
	LongestGap  Duration         `json:"longest_gap"` // longest stretch with no success
	Throughput  float64          `json:"throughput"`  // successes per second
	LatencyP50  Duration         `json:"latency_p50"`
	LatencyP90  Duration         `json:"latency_p90"`
	LatencyP99  Duration         `json:"latency_p99"`
	LatencyMax  Duration         `json:"latency_max"`
	Acks        []Ack            `json:"-"`
	FailedKeys  []string         `json:"-"`
	FirstErrors []string         `json:"first_errors,omitempty"`
}

// Duration marshals as a Go duration string.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d Duration) String() string { return time.Duration(d).String() }

func (c Config) withDefaults() (Config, error) {
	if len(c.Targets) == 0 {
		return c, errors.New("loadgen: no target URL")
	}
	if c.Duration <= 0 && c.Requests <= 0 {
		return c, errors.New("loadgen: set a duration or a request count, so the run ends by itself")
	}
	if c.Method == "" {
		c.Method = http.MethodPost
	}
	if c.Path == "" {
		c.Path = "/app"
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.BaseBackoff <= 0 {
		c.BaseBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 2 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = time.Second
	}
	return c, nil
}

type run struct {
	cfg      Config
	client   *http.Client
	start    time.Time
	seq      atomic.Int64
	sent     atomic.Int64
	attempts atomic.Int64
	okCount  atomic.Int64
	failed   atomic.Int64
	retries  atomic.Int64

	mu         sync.Mutex
	byStatus   map[string]int64
	byTarget   map[string]int64
	latencies  []time.Duration
	acks       []Ack
	failedKeys []string
	errs       []string
	lastOK     time.Time
	longestGap time.Duration
}

// Run sends requests until the duration or count is reached or ctx ends.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConnsPerHost: cfg.Concurrency,
		IdleConnTimeout:     30 * time.Second,
	}
	defer transport.CloseIdleConnections()
	r := &run{
		cfg:      cfg,
		client:   &http.Client{Transport: transport, Timeout: cfg.Timeout},
		byStatus: map[string]int64{},
		byTarget: map[string]int64{},
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}

	r.start = time.Now()
	r.lastOK = r.start
	tickets := r.pace(ctx)
	done := make(chan struct{})
	go r.progress(done)

	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range tickets {
				r.logical(ctx)
			}
		}()
	}
	wg.Wait()
	close(done)
	return r.result(), nil
}

// pace hands out one ticket per logical request: at the configured rate,
// or as fast as workers take them.
func (r *run) pace(ctx context.Context) <-chan struct{} {
	tickets := make(chan struct{})
	go func() {
		defer close(tickets)
		var interval time.Duration
		if r.cfg.Rate > 0 {
			interval = time.Duration(float64(time.Second) / r.cfg.Rate)
		}
		next := time.Now()
		for n := 0; r.cfg.Requests <= 0 || n < r.cfg.Requests; n++ {
			if interval > 0 {
				if wait := time.Until(next); wait > 0 {
					select {
					case <-time.After(wait):
					case <-ctx.Done():
						return
					}
				}
				next = next.Add(interval)
			}
			select {
			case tickets <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return tickets
}

// logical sends one logical request with its retries. Once started, it
// finishes its retries even when the run's time is up, so that every key
// ends acknowledged or failed, never unknown.
func (r *run) logical(ctx context.Context) {
	n := r.seq.Add(1)
	r.sent.Add(1)
	key := ""
	if r.cfg.KeyPrefix != "" {
		key = r.cfg.KeyPrefix + "-" + strconv.FormatInt(n, 10)
	}
	target := 0
	for attempt := 0; attempt <= r.cfg.Retries; attempt++ {
		if attempt > 0 {
			r.retries.Add(1)
			time.Sleep(r.backoff(attempt))
		}
		status, id, latency, err := r.attempt(r.cfg.Targets[target], key)
		r.record(status, latency, err)
		if err == nil && status >= 200 && status < 300 {
			r.ack(key, id, r.cfg.Targets[target])
			return
		}
		// A connection failure or 503 means that this site cannot serve now:
		// the next attempt goes to the next target, as a client with a
		// list of site VIPs would do.
		if err != nil || status == http.StatusServiceUnavailable {
			target = (target + 1) % len(r.cfg.Targets)
		}
		if status >= 400 && status < 500 && status != http.StatusTooManyRequests {
			break // the request itself is wrong; repeating it cannot help
		}
	}
	r.failed.Add(1)
	r.mu.Lock()
	r.failedKeys = append(r.failedKeys, key)
	r.mu.Unlock()
}

func (r *run) backoff(attempt int) time.Duration {
	d := r.cfg.BaseBackoff << (attempt - 1)
	if d <= 0 || d > r.cfg.MaxBackoff {
		d = r.cfg.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

func (r *run) attempt(base, key string) (status int, id int64, latency time.Duration, err error) {
	r.attempts.Add(1)
	req, err := http.NewRequest(r.cfg.Method, base+r.cfg.Path, nil)
	if err != nil {
		return 0, 0, 0, err
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	start := time.Now()
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, 0, time.Since(start), err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	latency = time.Since(start)
	if err != nil {
		return resp.StatusCode, 0, latency, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode == http.StatusCreated {
		var event struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(body, &event); err != nil {
			return resp.StatusCode, 0, latency, fmt.Errorf("decode 201 body %q: %w", body, err)
		}
		id = event.ID
	}
	return resp.StatusCode, id, latency, nil
}

func (r *run) record(status int, latency time.Duration, err error) {
	label := strconv.Itoa(status)
	if err != nil {
		label = "error"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byStatus[label]++
	if err != nil && len(r.errs) < 5 {
		r.errs = append(r.errs, err.Error())
	}
	if err == nil && status >= 200 && status < 300 {
		r.latencies = append(r.latencies, latency)
	}
}

func (r *run) ack(key string, id int64, target string) {
	r.okCount.Add(1)
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byTarget[target]++
	if gap := now.Sub(r.lastOK); gap > r.longestGap {
		r.longestGap = gap
	}
	r.lastOK = now
	r.acks = append(r.acks, Ack{Key: key, ID: id})
}

func (r *run) progress(done <-chan struct{}) {
	if r.cfg.Progress == nil {
		return
	}
	t := time.NewTicker(r.cfg.ProgressEvery)
	defer t.Stop()
	last := int64(0)
	for {
		select {
		case <-done:
			return
		case <-t.C:
			ok := r.okCount.Load()
			fmt.Fprintf(r.cfg.Progress, "loadgen: %5.0fs sent %d ok %d (%.0f/s) failed %d retries %d\n",
				time.Since(r.start).Seconds(), r.sent.Load(), ok,
				float64(ok-last)/r.cfg.ProgressEvery.Seconds(), r.failed.Load(), r.retries.Load())
			last = ok
		}
	}
}

func (r *run) result() Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	elapsed := time.Since(r.start)
	// The stretch since the last success counts too: a run that ends in
	// an outage must show it.
	if r.okCount.Load() > 0 {
		if gap := time.Since(r.lastOK); gap > r.longestGap {
			r.longestGap = gap
		}
	}
	sort.Slice(r.latencies, func(i, j int) bool { return r.latencies[i] < r.latencies[j] })
	res := Result{
		Sent:        r.sent.Load(),
		Attempts:    r.attempts.Load(),
		Succeeded:   r.okCount.Load(),
		Failed:      r.failed.Load(),
		Retries:     r.retries.Load(),
		ByStatus:    r.byStatus,
		ByTarget:    r.byTarget,
		Elapsed:     Duration(elapsed),
		LongestGap:  Duration(r.longestGap),
		Throughput:  float64(r.okCount.Load()) / elapsed.Seconds(),
		LatencyP50:  Duration(percentile(r.latencies, 0.50)),
		LatencyP90:  Duration(percentile(r.latencies, 0.90)),
		LatencyP99:  Duration(percentile(r.latencies, 0.99)),
		Acks:        r.acks,
		FailedKeys:  r.failedKeys,
		FirstErrors: r.errs,
	}
	if n := len(r.latencies); n > 0 {
		res.LatencyMax = Duration(r.latencies[n-1])
	}
	return res
}

// percentile returns the q-quantile of sorted by the nearest-rank method.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q*float64(len(sorted))+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}
