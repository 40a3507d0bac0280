package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"example.com/timestamp/api/autoscale"
)

// targetsTimeout bounds the runtime API reads of one discovery request, so
// that a hung HAProxy socket fails the request instead of holding it.
const targetsTimeout = 5 * time.Second

// targetsHandler serves the pool instances that hold a slot of lb's API
// backend, in the JSON of Prometheus's HTTP service discovery
// (autoscale.ScrapeTargets). It reads lb at each request, so a standby
// controller serves the same list as the active one, which applies every
// change to each load balancer. On an error it responds 503, and
// Prometheus keeps the targets of its last successful refresh.
func targetsHandler(lb autoscale.LoadBalancer, prefix string, hosts func() ([]autoscale.Host, error),
	log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), targetsTimeout)
		defer cancel()
		backend, err := lb.Backend(ctx)
		if err != nil {
			log.Error("service discovery: reading the API backend failed", "load_balancer", lb.Name(), "error", err)
			http.Error(w, "reading HAProxy's API backend failed: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		// Without the host names the labels would change, and Prometheus
		// would see new targets.
		registered, err := hosts()
		if err != nil {
			log.Error("service discovery: reading the hosts file failed", "error", err)
			http.Error(w, "reading the hosts file failed: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(autoscale.ScrapeTargets(backend, prefix, registered)); err != nil {
			log.Warn("service discovery: writing the response failed", "error", err)
		}
	})
}
