package autoscale

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Policy sets how the number of instances follows the load. The fields are
// documented with their flags in cmd/autoscaler, which also gives each
// default and the reason for it.
type Policy struct {
	// Min and Max bound the number of instances in rotation.
	Min, Max int
	// Tolerance is the band around each target in which the count stays
	// as it is: a ratio of observed to target within 1 ± Tolerance
	// proposes no change (Kubernetes HPA: 0.1).
	Tolerance float64

	// Targets per instance. A zero target turns its signal off.
	TargetInFlight float64
	TargetRPS      float64
	// TargetP95 is for the whole tier, not per instance. It proposes
	// instances only while the in-flight requests per instance are at least
	// half of TargetInFlight (when that is set), because a high latency on
	// idle instances comes from the database or the network.
	TargetP95 time.Duration
	// CPUHigh is the share of a host's processors (0 to 1) above which no
	// scale-down happens while the mean of the hosts is above it, and the
	// host gets no new instance. CPU is a secondary signal: it never adds
	// instances by itself.
	CPUHigh float64

	// UpWindow: a scale-up takes the lowest recommendation of this window,
	// so a single noisy tick does not add instances. DownWindow: a
	// scale-down takes the highest one of this window, so the count only
	// falls once the load stayed low for that long.
	UpWindow, DownWindow time.Duration
	// UpCooldown and DownCooldown are the minimum times from the last
	// change (either way) to the next scale-up or scale-down.
	UpCooldown, DownCooldown time.Duration
	// MaxUpStep bounds one scale-up: at most max(MaxUpStep, current)
	// instances are added at once (Kubernetes HPA: 4 pods or 100%).
	MaxUpStep int
}

// Validate returns an error that names the first invalid field.
func (p Policy) Validate() error {
	switch {
	case p.Min < 1:
		return fmt.Errorf("minimum instances %d is invalid: it must be at least 1", p.Min)
	case p.Max < p.Min:
		return fmt.Errorf("maximum instances %d is below the minimum %d", p.Max, p.Min)
	case p.Tolerance < 0 || p.Tolerance >= 1:
		return fmt.Errorf("tolerance %g is invalid: use 0 to below 1", p.Tolerance)
	case p.TargetInFlight < 0 || p.TargetRPS < 0 || p.TargetP95 < 0:
		return errors.New("a target is negative; use a positive value, or 0 to turn the signal off")
	case p.TargetInFlight == 0 && p.TargetRPS == 0 && p.TargetP95 == 0:
		return errors.New("every target is 0: set at least one of in-flight, request rate or p95")
	case p.CPUHigh < 0 || p.CPUHigh > 1:
		return fmt.Errorf("CPU threshold %g is invalid: use a share of the processors, 0 to 1 (0 turns it off)", p.CPUHigh)
	case p.UpCooldown > p.DownCooldown:
		return fmt.Errorf("scale-up cooldown %s is longer than the scale-down cooldown %s; "+
			"adding capacity must be the faster reaction", p.UpCooldown, p.DownCooldown)
	case p.MaxUpStep < 1:
		return fmt.Errorf("maximum scale-up step %d is invalid: it must be at least 1", p.MaxUpStep)
	}
	return nil
}

// Action is the change a decision makes.
type Action string

const (
	ActionHold Action = "hold"
	ActionUp   Action = "scale_up"
	ActionDown Action = "scale_down"
)

// Reason is the cause of a decision's outcome. The values are fixed, so
// they can label a metric.
type Reason string

const (
	ReasonInFlight      Reason = "inflight"     // in-flight requests drove the count
	ReasonRPS           Reason = "request_rate" // the request rate drove it
	ReasonP95           Reason = "p95_latency"  // the p95 latency drove it
	ReasonTolerance     Reason = "within_tolerance"
	ReasonNoSignal      Reason = "no_signal"
	ReasonAtMin         Reason = "at_minimum" // the signals ask for fewer than Min
	ReasonAtMax         Reason = "at_maximum" // the signals ask for more than Max
	ReasonBelowMin      Reason = "below_minimum"
	ReasonAboveMax      Reason = "above_maximum"
	ReasonUpWindow      Reason = "up_stabilization"   // waiting for the load to stay high
	ReasonDownWindow    Reason = "down_stabilization" // waiting for the load to stay low
	ReasonUpCooldown    Reason = "up_cooldown"
	ReasonDownCooldown  Reason = "down_cooldown"
	ReasonCPUHigh       Reason = "cpu_high" // scale-down held while the hosts are busy
	ReasonNotActive     Reason = "standby"  // another load balancer holds the VIP
	ReasonObserveFailed Reason = "observe_failed"
)

// Proposal is the instance count that one signal alone requests.
type Proposal struct {
	Signal Reason
	// Value and Target are per instance for in-flight and request rate,
	// seconds of the tier's p95 for latency.
	Value, Target float64
	// Ratio is Value / Target.
	Ratio float64
	// Instances is ceil(current × Ratio), or current within tolerance.
	Instances int
}

// Decision is the outcome of one tick, with its inputs.
type Decision struct {
	Time    time.Time
	Current int
	// Recommended is the largest proposal, clamped to Min..Max, before
	// the windows, cooldowns and step limit.
	Recommended int
	Desired     int
	Action      Action
	Reason      Reason
	Proposals   []Proposal
	Signals     Signals
}

type recommendation struct {
	at        time.Time
	instances int
}

// Recommender turns signals into decisions. It remembers its recent
// recommendations (for the stabilization windows) and the time of the last
// change (for the cooldowns). It is not safe for concurrent use.
type Recommender struct {
	policy     Policy
	history    []recommendation
	lastChange time.Time
}

// NewRecommender returns a recommender that counts its cooldowns from
// start, as if a change had just happened. So a restarted controller
// waits a cooldown before it acts on signals it has only begun to see.
func NewRecommender(p Policy, start time.Time) *Recommender {
	return &Recommender{policy: p, lastChange: start}
}

// Reset drops the recommendations and restarts the cooldowns at now.
func (r *Recommender) Reset(now time.Time) {
	r.history = nil
	r.lastChange = now
}

// Changed records that the number of instances changed at now.
func (r *Recommender) Changed(now time.Time) { r.lastChange = now }

// Decide returns the decision for current instances in rotation and the
// signals of the window.
func (r *Recommender) Decide(now time.Time, current int, sig Signals) Decision {
	p := r.policy
	d := Decision{Time: now, Current: current, Signals: sig, Action: ActionHold}
	d.Proposals = r.proposals(current, sig)

	raw := current
	d.Reason = ReasonNoSignal
	for i, prop := range d.Proposals {
		if i == 0 || prop.Instances > raw {
			raw, d.Reason = prop.Instances, prop.Signal
		}
	}
	d.Recommended = clamp(raw, p.Min, p.Max)
	if len(d.Proposals) > 0 && d.Recommended == current {
		switch {
		case raw < current:
			d.Reason = ReasonAtMin
		case raw > current:
			d.Reason = ReasonAtMax
		default:
			d.Reason = ReasonTolerance
		}
	}
	r.remember(now, d.Recommended)

	// The bounds win over every window and cooldown.
	switch {
	case current < p.Min:
		d.Desired, d.Reason = p.Min, ReasonBelowMin
	case current > p.Max:
		d.Desired, d.Reason = p.Max, ReasonAboveMax
	default:
		d.Desired, d.Reason = r.stabilize(now, current, d.Recommended, d.Reason, sig)
	}

	switch {
	case d.Desired > current:
		d.Action = ActionUp
	case d.Desired < current:
		d.Action = ActionDown
	}
	return d
}

// stabilize applies the windows, the cooldowns, the CPU hold and the step
// limit to a recommendation.
func (r *Recommender) stabilize(now time.Time, current, recommended int, reason Reason, sig Signals) (int, Reason) {
	p := r.policy
	sinceChange := now.Sub(r.lastChange)
	switch {
	case recommended > current:
		desired := max(current, r.lowestSince(now.Add(-p.UpWindow)))
		if desired == current {
			return current, ReasonUpWindow
		}
		if sinceChange < p.UpCooldown {
			return current, ReasonUpCooldown
		}
		return min(desired, current+max(p.MaxUpStep, current)), reason

	case recommended < current:
		desired := min(current, r.highestSince(now.Add(-p.DownWindow)))
		if desired == current {
			return current, ReasonDownWindow
		}
		if sinceChange < p.DownCooldown {
			return current, ReasonDownCooldown
		}
		if cpu, ok := sig.MeanHostCPU(); ok && p.CPUHigh > 0 && cpu > p.CPUHigh {
			return current, ReasonCPUHigh
		}
		return desired, reason
	}
	return current, reason
}

// proposals computes each enabled signal's proposal, the HPA way:
// ceil(current × observed / target), unless the ratio is within tolerance.
func (r *Recommender) proposals(current int, sig Signals) []Proposal {
	p := r.policy
	if sig.Window <= 0 {
		return nil
	}
	// The request rate comes first, so it names the reason when proposals
	// tie (an idle tier proposes 0 on every signal).
	var out []Proposal
	if p.TargetRPS > 0 {
		out = append(out, r.perInstance(ReasonRPS, sig.RPS, p.TargetRPS, current))
	}
	if p.TargetInFlight > 0 {
		out = append(out, r.perInstance(ReasonInFlight, sig.InFlight, p.TargetInFlight, current))
	}
	if p.TargetP95 > 0 && sig.P95Valid && current > 0 && r.busy(current, sig) {
		prop := Proposal{Signal: ReasonP95, Value: sig.P95.Seconds(), Target: p.TargetP95.Seconds()}
		prop.Ratio = prop.Value / prop.Target
		prop.Instances = r.scaled(current, prop.Ratio)
		out = append(out, prop)
	}
	return out
}

// latencyBusyShare is the share of TargetInFlight per instance from which
// the p95 may propose instances. Below it the instances are mostly idle, so
// a high latency comes from elsewhere (the database, the network), and more
// instances would not lower it.
const latencyBusyShare = 0.5

// busy reports whether the instances have enough requests in flight for
// the latency to count; without an in-flight target it always does.
func (r *Recommender) busy(current int, sig Signals) bool {
	if r.policy.TargetInFlight == 0 {
		return true
	}
	return sig.InFlight/float64(current) >= latencyBusyShare*r.policy.TargetInFlight
}

// perInstance builds the proposal of a signal whose target is per instance
// from the tier's total. With no instance in rotation the proposal is the
// total over the target, and Value and Ratio are those of one instance.
func (r *Recommender) perInstance(signal Reason, total, target float64, current int) Proposal {
	prop := Proposal{Signal: signal, Target: target}
	if current == 0 {
		prop.Value, prop.Ratio = total, total/target
		prop.Instances = ceil(total / target)
		return prop
	}
	prop.Value = total / float64(current)
	prop.Ratio = prop.Value / target
	prop.Instances = r.scaled(current, prop.Ratio)
	return prop
}

func (r *Recommender) scaled(current int, ratio float64) int {
	if math.Abs(ratio-1) <= r.policy.Tolerance {
		return current
	}
	return ceil(float64(current) * ratio)
}

func (r *Recommender) remember(now time.Time, instances int) {
	r.history = append(r.history, recommendation{at: now, instances: instances})
	keep := max(r.policy.UpWindow, r.policy.DownWindow)
	i := 0
	for i < len(r.history)-1 && now.Sub(r.history[i].at) > keep {
		i++
	}
	r.history = r.history[i:]
}

func (r *Recommender) lowestSince(t time.Time) int {
	lowest := math.MaxInt
	for _, h := range r.history {
		if !h.at.Before(t) {
			lowest = min(lowest, h.instances)
		}
	}
	return lowest
}

func (r *Recommender) highestSince(t time.Time) int {
	highest := 0
	for _, h := range r.history {
		if !h.at.Before(t) {
			highest = max(highest, h.instances)
		}
	}
	return highest
}

// ceil rounds up, ignoring the float error of a product that should be an
// integer (3 × 0.1 / 0.1 must give 3, not 4).
func ceil(x float64) int {
	return int(math.Ceil(x - 1e-9))
}

func clamp(n, lo, hi int) int {
	return max(lo, min(n, hi))
}
