package autoscale

import (
	"math"
	"testing"
	"time"
)

func hist(bounds []float64, counts []float64) Histogram {
	h := make(Histogram, len(bounds))
	for i := range bounds {
		h[i] = Bucket{UpperBound: bounds[i], Count: counts[i]}
	}
	return h
}

var bounds = []float64{0.01, 0.05, 0.1, 0.5, math.Inf(1)}

func TestHistogramQuantile(t *testing.T) {
	tests := []struct {
		name   string
		counts []float64
		q      float64
		want   float64
	}{
		{"all in first bucket", []float64{100, 100, 100, 100, 100}, 0.95, 0.0095},
		{"interpolated in second", []float64{50, 100, 100, 100, 100}, 0.95, 0.01 + 0.04*45/50},
		{"in the +Inf bucket", []float64{0, 0, 0, 90, 100}, 0.95, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := hist(bounds, tt.counts).Quantile(tt.q)
			if math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("Quantile(%g) = %g, want %g", tt.q, got, tt.want)
			}
		})
	}
	if got := hist(bounds, []float64{0, 0, 0, 0, 0}).Quantile(0.95); !math.IsNaN(got) {
		t.Errorf("Quantile of an empty histogram = %g, want NaN", got)
	}
}

func TestHistogramSubDetectsReset(t *testing.T) {
	before := hist(bounds, []float64{10, 20, 30, 40, 50})
	after := hist(bounds, []float64{1, 2, 3, 4, 5})
	if _, ok := after.Sub(before); ok {
		t.Error("Sub of a reset histogram returned ok, want not ok")
	}
	d, ok := before.Sub(after)
	if !ok || d.Total() != 45 {
		t.Errorf("Sub = %v, %v; want a total of 45", d, ok)
	}
}

func TestWindowAverages(t *testing.T) {
	w := Window{Length: 10 * time.Second}
	for s := 1; s <= 10; s++ {
		w.Add(Sample{
			Time: t0.Add(time.Duration(s) * time.Second), Interval: time.Second,
			Requests: 50, InFlight: float64(s % 2 * 4),
			Latency:    hist(bounds, []float64{5, 5, 5, 5, 5}),
			CPUSeconds: map[string]float64{"api1": 0.5},
		})
	}
	sig, ok := w.Signals(map[string]int{"api1": 2})
	if !ok {
		t.Fatal("Signals() not ok with 10 samples")
	}
	if sig.RPS != 50 {
		t.Errorf("RPS = %g, want 50", sig.RPS)
	}
	if sig.InFlight != 2 {
		t.Errorf("InFlight = %g, want 2", sig.InFlight)
	}
	if !sig.P95Valid || sig.P95 != 9500*time.Microsecond {
		t.Errorf("P95 = %s (valid %v), want 9.5ms", sig.P95, sig.P95Valid)
	}
	if got := sig.HostCPU["api1"]; got != 0.25 {
		t.Errorf("HostCPU[api1] = %g, want 0.25", got)
	}
}

func TestWindowDropsOldSamples(t *testing.T) {
	w := Window{Length: 10 * time.Second}
	w.Add(Sample{Time: t0, Interval: time.Second, Requests: 1000})
	w.Add(Sample{Time: t0.Add(11 * time.Second), Interval: time.Second, Requests: 10})
	sig, _ := w.Signals(nil)
	if sig.RPS != 10 {
		t.Errorf("RPS = %g, want 10 once the old sample left the window", sig.RPS)
	}
}

func TestWindowFewRequestsNoP95(t *testing.T) {
	w := Window{Length: 10 * time.Second}
	w.Add(Sample{Time: t0, Interval: time.Second, Latency: hist(bounds, []float64{1, 2, 3, 4, 5})})
	if sig, _ := w.Signals(nil); sig.P95Valid {
		t.Errorf("P95Valid with 5 requests, want false below %d", minLatencySamples)
	}
}
