package mariadb

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the store's Prometheus series. A nil *Metrics records nothing.
type Metrics struct {
	insertDuration *prometheus.HistogramVec
	retries        *prometheus.CounterVec
	batchRows      prometheus.Histogram
}

// NewMetrics registers the store's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		insertDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "timestamp_db_insert_duration_seconds",
			Help: "Time of one INSERT into events, commit included, by result (ok, duplicate, error).",
			// Galera commits take one group round trip: sub-millisecond
			// on a LAN, tens of milliseconds across sites.
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "timestamp_db_insert_retries_total",
			Help: "Inserts retried after an error, by whether the failed attempt's outcome was unknown.",
		}, []string{"outcome_unknown"}),
	}
	m.batchRows = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "timestamp_db_batch_rows",
		Help:    "Rows per group-commit batch (one INSERT and one commit).",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	})
	reg.MustRegister(m.insertDuration, m.retries, m.batchRows)
	return m
}

func (m *Metrics) observeInsert(d time.Duration, err error) {
	if m == nil {
		return
	}
	result := "ok"
	switch {
	case err == nil:
	case classify(err) == failDuplicate:
		result = "duplicate"
	default:
		result = "error"
	}
	m.insertDuration.WithLabelValues(result).Observe(d.Seconds())
}

func (m *Metrics) retried(unknown bool) {
	if m == nil {
		return
	}
	label := "false"
	if unknown {
		label = "true"
	}
	m.retries.WithLabelValues(label).Inc()
}

func (m *Metrics) observeBatch(rows int) {
	if m == nil {
		return
	}
	m.batchRows.Observe(float64(rows))
}
