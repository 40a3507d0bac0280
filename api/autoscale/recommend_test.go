package autoscale

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func testPolicy() Policy {
	return Policy{
		Min: 2, Max: 8, Tolerance: 0.1,
		TargetRPS: 10, TargetInFlight: 8, TargetP95: 250 * time.Millisecond, CPUHigh: 0.8,
		UpWindow: 4 * time.Second, DownWindow: 60 * time.Second,
		UpCooldown: 15 * time.Second, DownCooldown: 60 * time.Second,
		MaxUpStep: 4,
	}
}

func rps(total float64) Signals {
	return Signals{Window: 10 * time.Second, RPS: total}
}

// settled returns a recommender whose cooldowns have passed at t0.
func settled(p Policy) *Recommender {
	return NewRecommender(p, t0.Add(-time.Hour))
}

func TestDecideProportional(t *testing.T) {
	tests := []struct {
		name    string
		current int
		rps     float64
		want    int
	}{
		{"double load doubles", 2, 40, 4},
		{"rounds up", 2, 25, 3},
		{"within tolerance holds", 2, 21, 2},
		{"just above tolerance", 2, 22.2, 3},
		{"clamped to max", 2, 500, 6}, // step limit: +max(4, 2)
		{"exact target holds", 4, 40, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := settled(testPolicy())
			// The up window needs the recommendation for its whole length.
			r.Decide(t0.Add(-4*time.Second), tt.current, rps(tt.rps))
			d := r.Decide(t0, tt.current, rps(tt.rps))
			if d.Desired != tt.want {
				t.Errorf("desired = %d, want %d (reason %s)", d.Desired, tt.want, d.Reason)
			}
		})
	}
}

func TestDecideTakesLargestProposal(t *testing.T) {
	r := settled(testPolicy())
	sig := Signals{Window: 10 * time.Second, RPS: 20, InFlight: 48} // rps: 2, in-flight: 6
	r.Decide(t0.Add(-4*time.Second), 2, sig)
	d := r.Decide(t0, 2, sig)
	if d.Desired != 6 {
		t.Errorf("desired = %d, want 6", d.Desired)
	}
	if d.Reason != ReasonInFlight {
		t.Errorf("reason = %s, want %s", d.Reason, ReasonInFlight)
	}
}

func TestDecideLatencyProposal(t *testing.T) {
	r := settled(testPolicy())
	sig := Signals{Window: 10 * time.Second, RPS: 20, InFlight: 10, P95: 500 * time.Millisecond, P95Valid: true}
	r.Decide(t0.Add(-4*time.Second), 2, sig)
	d := r.Decide(t0, 2, sig)
	if d.Desired != 4 {
		t.Errorf("desired = %d, want 4 (p95 twice the target)", d.Desired)
	}
	if d.Reason != ReasonP95 {
		t.Errorf("reason = %s, want %s", d.Reason, ReasonP95)
	}
}

func TestDecideIgnoresInvalidLatency(t *testing.T) {
	r := settled(testPolicy())
	sig := Signals{Window: 10 * time.Second, RPS: 20, P95: 5 * time.Second, P95Valid: false}
	d := r.Decide(t0, 2, sig)
	for _, p := range d.Proposals {
		if p.Signal == ReasonP95 {
			t.Fatalf("got a p95 proposal from an invalid p95: %+v", p)
		}
	}
}

func TestDecideUpWindowNeedsSustainedLoad(t *testing.T) {
	r := settled(testPolicy())
	r.Decide(t0.Add(-2*time.Second), 2, rps(20)) // at target
	d := r.Decide(t0, 2, rps(60))                // one high tick
	if d.Action != ActionHold {
		t.Fatalf("action = %s, want hold after one high tick", d.Action)
	}
	if d.Reason != ReasonUpWindow {
		t.Errorf("reason = %s, want %s", d.Reason, ReasonUpWindow)
	}
	d = r.Decide(t0.Add(5*time.Second), 2, rps(60))
	if d.Desired != 6 {
		t.Errorf("desired = %d after 5 s of high load, want 6", d.Desired)
	}
}

func TestDecideUpCooldown(t *testing.T) {
	r := settled(testPolicy())
	r.Changed(t0.Add(-10 * time.Second))
	r.Decide(t0.Add(-5*time.Second), 2, rps(60))
	d := r.Decide(t0, 2, rps(60))
	if d.Action != ActionHold || d.Reason != ReasonUpCooldown {
		t.Fatalf("got %s (%s) 10 s after a change, want hold (%s)", d.Action, d.Reason, ReasonUpCooldown)
	}
	d = r.Decide(t0.Add(5*time.Second), 2, rps(60))
	if d.Action != ActionUp {
		t.Errorf("got %s (%s) 15 s after a change, want %s", d.Action, d.Reason, ActionUp)
	}
}

func TestDecideDownWindowAndCooldown(t *testing.T) {
	r := settled(testPolicy())
	r.Changed(t0)
	// Load falls from 60 rps on 6 instances to 20 rps.
	r.Decide(t0, 6, rps(60))
	var d Decision
	for s := 1; s <= 59; s++ {
		d = r.Decide(t0.Add(time.Duration(s)*time.Second), 6, rps(20))
		if d.Action != ActionHold {
			t.Fatalf("at %d s: got %s (%s), want hold for the 60 s window", s, d.Action, d.Reason)
		}
	}
	d = r.Decide(t0.Add(61*time.Second), 6, rps(20))
	if d.Desired != 2 {
		t.Errorf("desired = %d after the window, want 2 (reason %s)", d.Desired, d.Reason)
	}
}

func TestDecideDownCooldownAfterScaleUp(t *testing.T) {
	p := testPolicy()
	p.DownWindow = 0
	r := settled(p)
	r.Changed(t0)
	d := r.Decide(t0.Add(30*time.Second), 6, rps(20))
	if d.Reason != ReasonDownCooldown {
		t.Errorf("reason = %s 30 s after a change, want %s", d.Reason, ReasonDownCooldown)
	}
}

func TestDecideCPUHoldsScaleDown(t *testing.T) {
	p := testPolicy()
	p.DownWindow = 0
	r := settled(p)
	sig := rps(20)
	sig.HostCPU = map[string]float64{"api1": 0.9, "api2": 0.85}
	d := r.Decide(t0, 4, sig)
	if d.Action != ActionHold || d.Reason != ReasonCPUHigh {
		t.Errorf("got %s (%s), want hold (%s)", d.Action, d.Reason, ReasonCPUHigh)
	}
}

func TestDecideBoundsWinOverCooldown(t *testing.T) {
	r := NewRecommender(testPolicy(), t0) // just restarted: cooldowns running
	d := r.Decide(t0.Add(time.Second), 1, rps(0))
	if d.Desired != 2 || d.Reason != ReasonBelowMin {
		t.Errorf("got desired %d (%s), want 2 (%s)", d.Desired, d.Reason, ReasonBelowMin)
	}
	d = r.Decide(t0.Add(2*time.Second), 9, rps(90))
	if d.Desired != 8 || d.Reason != ReasonAboveMax {
		t.Errorf("got desired %d (%s), want 8 (%s)", d.Desired, d.Reason, ReasonAboveMax)
	}
}

func TestDecideNeverAboveMax(t *testing.T) {
	r := settled(testPolicy())
	current := 2
	for s := 0; s < 300; s += 2 {
		now := t0.Add(time.Duration(s) * time.Second)
		d := r.Decide(now, current, rps(10000))
		if d.Desired > 8 {
			t.Fatalf("at %d s: desired %d above the maximum 8", s, d.Desired)
		}
		if d.Desired != current {
			r.Changed(now)
			current = d.Desired
		}
	}
	if current != 8 {
		t.Errorf("ended at %d instances, want the maximum 8", current)
	}
}

// A load that swings around a threshold changes the count at most once
// per cooldown, thanks to the tolerance and the windows.
func TestDecideFlappingLoad(t *testing.T) {
	r := settled(testPolicy())
	current := 2
	var changes []time.Time
	for s := 0; s < 600; s += 2 {
		now := t0.Add(time.Duration(s) * time.Second)
		load := 18.0 // 0.9 of the target on two instances
		if (s/10)%2 == 1 {
			load = 24 // 1.2
		}
		d := r.Decide(now, current, rps(load))
		if d.Desired != current {
			r.Changed(now)
			changes = append(changes, now)
			current = d.Desired
		}
	}
	if len(changes) > 1 {
		t.Errorf("%d changes under a load swinging across the threshold, want at most 1: %v", len(changes), changes)
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Policy)
		want   string
	}{
		{"min zero", func(p *Policy) { p.Min = 0 }, "minimum"},
		{"max below min", func(p *Policy) { p.Max = 1 }, "maximum"},
		{"no target", func(p *Policy) { p.TargetRPS, p.TargetInFlight, p.TargetP95 = 0, 0, 0 }, "every target"},
		{"up cooldown longer", func(p *Policy) { p.UpCooldown = 2 * time.Minute }, "cooldown"},
		{"cpu above one", func(p *Policy) { p.CPUHigh = 2 }, "CPU"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPolicy()
			tt.change(&p)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if err := testPolicy().Validate(); err != nil {
		t.Errorf("Validate() of the test policy = %v, want nil", err)
	}
}

func TestDecideReasonAtBounds(t *testing.T) {
	r := settled(testPolicy())
	if d := r.Decide(t0, 2, rps(0)); d.Action != ActionHold || d.Reason != ReasonAtMin {
		t.Errorf("idle at the minimum: got %s (%s), want hold (%s)", d.Action, d.Reason, ReasonAtMin)
	}
	if d := r.Decide(t0, 8, rps(1000)); d.Action != ActionHold || d.Reason != ReasonAtMax {
		t.Errorf("overloaded at the maximum: got %s (%s), want hold (%s)", d.Action, d.Reason, ReasonAtMax)
	}
}

// A slow database behind idle instances: the p95 is high but few requests
// are in flight, so more instances would not help and none are proposed.
func TestDecideLatencyNeedsBusyInstances(t *testing.T) {
	r := settled(testPolicy())
	sig := Signals{Window: 10 * time.Second, RPS: 10, InFlight: 1, P95: 500 * time.Millisecond, P95Valid: true}
	r.Decide(t0.Add(-4*time.Second), 2, sig)
	d := r.Decide(t0, 2, sig)
	if d.Action != ActionHold {
		t.Errorf("got %s (%s) with 0.5 requests in flight per instance, want hold", d.Action, d.Reason)
	}
	for _, p := range d.Proposals {
		if p.Signal == ReasonP95 {
			t.Errorf("got a p95 proposal %+v on idle instances, want none", p)
		}
	}
}
