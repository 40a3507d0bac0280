package autoscale

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the controller's own Prometheus metrics, all named
// timestamp_autoscaler_*.
type Metrics struct {
	active           prometheus.Gauge
	current          prometheus.Gauge
	desired          prometheus.Gauge
	recommended      prometheus.Gauge
	members          *prometheus.GaugeVec
	signal           *prometheus.GaugeVec
	target           *prometheus.GaugeVec
	lastDecision     *prometheus.GaugeVec
	lastDecisionTime prometheus.Gauge
	lastChangeTime   prometheus.Gauge
	decisions        *prometheus.CounterVec
	instances        *prometheus.CounterVec
	fixes            prometheus.Counter
	errors           *prometheus.CounterVec
	hostsRegistered  prometheus.Gauge
	hostsRequested   prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: "timestamp_autoscaler_" + name, Help: help})
	}
	m := &Metrics{
		active:      gauge("active", "1 while this controller acts (its host holds the VIP), 0 on standby."),
		current:     gauge("instances_current", "API instances in rotation: up and not draining, static ones included."),
		desired:     gauge("instances_desired", "API instances the last decision asked for."),
		recommended: gauge("instances_recommended", "Largest proposal of the signals, before windows and cooldowns."),
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "timestamp_autoscaler_pool_instances",
			Help: "Pool instances that hold a slot, by state (up, down, draining).",
		}, []string{"state"}),
		signal: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "timestamp_autoscaler_signal",
			Help: "Observed value of each signal over the window: rps and inflight per instance, " +
				"rps_total for the tier, p95_seconds for the tier, cpu as the mean share of the hosts' processors.",
		}, []string{"signal"}),
		target: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "timestamp_autoscaler_target",
			Help: "Configured target of each signal, in the unit of timestamp_autoscaler_signal.",
		}, []string{"signal"}),
		lastDecision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "timestamp_autoscaler_last_decision",
			Help: "1 for the action and reason of the last decision; the series of older decisions are removed.",
		}, []string{"action", "reason"}),
		lastDecisionTime: gauge("last_decision_timestamp_seconds", "Unix time of the last decision."),
		lastChangeTime:   gauge("last_change_timestamp_seconds", "Unix time of the last scale-up or scale-down."),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "timestamp_autoscaler_decisions_total",
			Help: "Decisions, by action and reason.",
		}, []string{"action", "reason"}),
		instances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "timestamp_autoscaler_instances_changed_total",
			Help: "Instances added (direction up) or removed (down).",
		}, []string{"direction"}),
		fixes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "timestamp_autoscaler_reconcile_fixes_total",
			Help: "Runtime API changes made to bring the load balancers back to one layout.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "timestamp_autoscaler_errors_total",
			Help: "Failed operations, by operation.",
		}, []string{"operation"}),
		hostsRegistered: gauge("hosts_registered", "API hosts in the hosts file."),
		hostsRequested:  gauge("hosts_requested", "API hosts the controller needs; above hosts_registered when every host is full."),
	}
	reg.MustRegister(m.active, m.current, m.desired, m.recommended, m.members, m.signal, m.target,
		m.lastDecision, m.lastDecisionTime, m.lastChangeTime, m.decisions, m.instances, m.fixes,
		m.errors, m.hostsRegistered, m.hostsRequested)
	return m
}

func (m *Metrics) setTargets(p Policy) {
	m.target.WithLabelValues("rps").Set(p.TargetRPS)
	m.target.WithLabelValues("inflight").Set(p.TargetInFlight)
	m.target.WithLabelValues("p95_seconds").Set(p.TargetP95.Seconds())
	m.target.WithLabelValues("cpu").Set(p.CPUHigh)
}

func (m *Metrics) recordDecision(d Decision) {
	m.current.Set(float64(d.Current))
	m.desired.Set(float64(d.Desired))
	m.recommended.Set(float64(d.Recommended))
	m.lastDecision.Reset()
	m.lastDecision.WithLabelValues(string(d.Action), string(d.Reason)).Set(1)
	m.lastDecisionTime.Set(float64(d.Time.UnixNano()) / 1e9)
	m.decisions.WithLabelValues(string(d.Action), string(d.Reason)).Inc()
	if d.Signals.Window <= 0 {
		return
	}
	n := float64(max(d.Current, 1))
	m.signal.WithLabelValues("rps").Set(d.Signals.RPS / n)
	m.signal.WithLabelValues("rps_total").Set(d.Signals.RPS)
	m.signal.WithLabelValues("inflight").Set(d.Signals.InFlight / n)
	if d.Signals.P95Valid {
		m.signal.WithLabelValues("p95_seconds").Set(d.Signals.P95.Seconds())
	}
	if cpu, ok := d.Signals.MeanHostCPU(); ok {
		m.signal.WithLabelValues("cpu").Set(cpu)
	}
}

func (m *Metrics) recordLayout(l Layout) {
	var up, down, draining float64
	for _, mb := range l.Members {
		switch {
		case mb.Draining:
			draining++
		case mb.Up:
			up++
		default:
			down++
		}
	}
	m.members.WithLabelValues("up").Set(up)
	m.members.WithLabelValues("down").Set(down)
	m.members.WithLabelValues("draining").Set(draining)
}
