package autoscale

import (
	"math"
	"sort"
	"time"
)

// Bucket is one cumulative bucket of a Prometheus histogram: Count
// observations were at most UpperBound (+Inf for the last one).
type Bucket struct {
	UpperBound float64
	Count      float64
}

// Histogram is a cumulative Prometheus histogram, buckets sorted by bound.
type Histogram []Bucket

// Sub returns h minus an earlier snapshot of the same histogram, bucket by
// bucket. ok is false when the buckets differ or a count went down (the
// instance restarted), because the difference then means nothing.
func (h Histogram) Sub(earlier Histogram) (Histogram, bool) {
	if len(h) != len(earlier) {
		return nil, false
	}
	out := make(Histogram, len(h))
	for i, b := range h {
		if b.UpperBound != earlier[i].UpperBound || b.Count < earlier[i].Count {
			return nil, false
		}
		out[i] = Bucket{UpperBound: b.UpperBound, Count: b.Count - earlier[i].Count}
	}
	return out, true
}

// Add returns the bucket-wise sum of h and other. A nil h takes other's
// buckets; buckets that differ make ok false.
func (h Histogram) Add(other Histogram) (Histogram, bool) {
	if h == nil {
		return append(Histogram(nil), other...), true
	}
	if len(h) != len(other) {
		return h, false
	}
	out := make(Histogram, len(h))
	for i, b := range h {
		if b.UpperBound != other[i].UpperBound {
			return h, false
		}
		out[i] = Bucket{UpperBound: b.UpperBound, Count: b.Count + other[i].Count}
	}
	return out, true
}

// Total returns the number of observations (the +Inf bucket).
func (h Histogram) Total() float64 {
	if len(h) == 0 {
		return 0
	}
	return h[len(h)-1].Count
}

// Quantile estimates the q-quantile (0 < q < 1) by linear interpolation
// inside the bucket that contains it, as Prometheus' histogram_quantile
// does: the first bucket starts at 0, and a quantile in the +Inf bucket is
// the highest finite bound. It returns NaN for an empty histogram.
func (h Histogram) Quantile(q float64) float64 {
	total := h.Total()
	if total == 0 || q <= 0 || q >= 1 {
		return math.NaN()
	}
	rank := q * total
	i := sort.Search(len(h), func(i int) bool { return h[i].Count >= rank })
	if i == len(h)-1 && math.IsInf(h[i].UpperBound, 1) {
		if i == 0 {
			return math.NaN()
		}
		return h[i-1].UpperBound
	}
	lower, below := 0.0, 0.0
	if i > 0 {
		lower, below = h[i-1].UpperBound, h[i-1].Count
	}
	inBucket := h[i].Count - below
	if inBucket == 0 {
		return h[i].UpperBound
	}
	return lower + (h[i].UpperBound-lower)*(rank-below)/inBucket
}

// Sample is the observation of one tick, as differences since the previous tick.
type Sample struct {
	Time time.Time
	// Interval is the time since the previous sample.
	Interval time.Duration
	// Requests sent to the API servers in the interval, all load balancers.
	Requests float64
	// InFlight is scur plus qcur of every API server and the backend queue,
	// all load balancers, at the end of the interval.
	InFlight float64
	// Latency contains the POST /app durations observed in the interval,
	// every instance.
	Latency Histogram
	// CPUSeconds is the CPU time the API processes of each host used in the
	// interval, by host name.
	CPUSeconds map[string]float64
}

// Signals are the inputs of one decision, averaged over the signal window.
type Signals struct {
	// Window is the time the samples cover.
	Window time.Duration
	// RPS is the request rate of the whole tier (requests per second).
	RPS float64
	// InFlight is the mean number of requests in flight or queued.
	InFlight float64
	// P95 is the 95th percentile of POST /app latency; P95Valid is false
	// when too few requests were seen for it to mean anything.
	P95      time.Duration
	P95Valid bool
	// HostCPU is the share of each host's processors (0 to 1) that its API
	// processes used, by host name.
	HostCPU map[string]float64
}

// MeanHostCPU returns the mean of HostCPU, and false when it is empty.
func (s Signals) MeanHostCPU() (float64, bool) {
	if len(s.HostCPU) == 0 {
		return 0, false
	}
	sum := 0.0
	for _, v := range s.HostCPU {
		sum += v
	}
	return sum / float64(len(s.HostCPU)), true
}

// minLatencySamples is the number of requests below which a p95 is not
// computed: with fewer, one slow request moves it across buckets.
const minLatencySamples = 20

// Window keeps the samples of the last Length and averages them.
type Window struct {
	Length  time.Duration
	samples []Sample
}

// Add appends a sample and drops those older than the window.
func (w *Window) Add(s Sample) {
	w.samples = append(w.samples, s)
	cutoff := s.Time.Add(-w.Length)
	i := 0
	for i < len(w.samples) && !w.samples[i].Time.After(cutoff) {
		i++
	}
	w.samples = w.samples[i:]
}

// Reset drops every sample, so that signals seen before a pause (the host
// lost the VIP) are not mixed with new ones.
func (w *Window) Reset() { w.samples = nil }

// Signals averages the samples in the window. ok is false while the
// window holds no sample.
func (w *Window) Signals(cpus map[string]int) (Signals, bool) {
	if len(w.samples) == 0 {
		return Signals{}, false
	}
	var (
		elapsed  time.Duration
		requests float64
		inFlight float64
		latency  Histogram
		cpu      = map[string]float64{}
	)
	for _, s := range w.samples {
		elapsed += s.Interval
		requests += s.Requests
		inFlight += s.InFlight
		if sum, ok := latency.Add(s.Latency); ok {
			latency = sum
		}
		for host, sec := range s.CPUSeconds {
			cpu[host] += sec
		}
	}
	sig := Signals{Window: elapsed, InFlight: inFlight / float64(len(w.samples))}
	if elapsed <= 0 {
		return sig, false
	}
	sig.RPS = requests / elapsed.Seconds()
	if latency.Total() >= minLatencySamples {
		sig.P95 = time.Duration(latency.Quantile(0.95) * float64(time.Second))
		sig.P95Valid = true
	}
	sig.HostCPU = map[string]float64{}
	for host, sec := range cpu {
		if n := cpus[host]; n > 0 {
			sig.HostCPU[host] = sec / elapsed.Seconds() / float64(n)
		}
	}
	return sig, true
}
