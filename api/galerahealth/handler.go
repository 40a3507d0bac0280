package galerahealth

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
)

// DefaultQueryTimeout is the time a status query may take before the node
// counts as unreachable. HAProxy's check timeout must be longer.
const DefaultQueryTimeout = 2 * time.Second

// Handler responds to HAProxy's health checks: 200 while the node is healthy,
// 503 otherwise, each with a one-line JSON body.
type Handler struct {
	source          StatusSource
	maintenanceFile string
	queryTimeout    time.Duration
	log             *slog.Logger

	mu         sync.Mutex
	lastReason *string // nil until the first check; "" after a healthy one
}

// HandlerConfig holds the settings of a Handler.
type HandlerConfig struct {
	Source StatusSource // required

	// MaintenanceFile is a path that an operator creates to take the node
	// out of HAProxy while MariaDB keeps running. Empty disables the check.
	MaintenanceFile string

	QueryTimeout time.Duration // default DefaultQueryTimeout
	Logger       *slog.Logger  // default slog.Default()
}

// NewHandler returns a Handler for cfg. It panics when cfg.Source is nil,
// because that is a wiring bug.
func NewHandler(cfg HandlerConfig) *Handler {
	if cfg.Source == nil {
		panic("galerahealth: HandlerConfig.Source is nil")
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = DefaultQueryTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Handler{
		source:          cfg.Source,
		maintenanceFile: cfg.MaintenanceFile,
		queryTimeout:    cfg.QueryTimeout,
		log:             cfg.Logger,
	}
}

// response is the JSON body of every reply.
type response struct {
	Healthy       bool   `json:"healthy"`
	Reason        string `json:"reason,omitempty"`
	State         string `json:"state,omitempty"`
	ClusterStatus string `json:"cluster_status,omitempty"`
	ClusterSize   int    `json:"cluster_size,omitempty"`

	err error // cause of an unreachable server, logged but never sent
}

// ServeHTTP serves GET, HEAD and OPTIONS (HAProxy's default check method).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}

	resp := h.check(r.Context())
	h.logTransition(resp)

	code := http.StatusOK
	if !resp.Healthy {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		// json.Encoder ends the object with a newline: one line per response.
		_ = json.NewEncoder(w).Encode(resp)
	}
}

// check evaluates the maintenance file first, so an operator can take a
// node out even while MariaDB hangs.
func (h *Handler) check(ctx context.Context) response {
	if h.maintenanceFile != "" {
		_, err := os.Stat(h.maintenanceFile)
		if err == nil {
			return response{Reason: reasonMaintenance + ": " + h.maintenanceFile}
		}
		if !errors.Is(err, fs.ErrNotExist) {
			// A file we cannot stat may exist: fail safe, out of rotation.
			h.log.Error("cannot check the maintenance file", "path", h.maintenanceFile, "error", err)
			return response{Reason: "cannot check maintenance file " + h.maintenanceFile}
		}
	}

	ctx, cancel := context.WithTimeout(ctx, h.queryTimeout)
	defer cancel()
	status, err := h.source.Status(ctx)
	if err != nil {
		return response{Reason: reasonUnreachable, State: "unreachable", err: err}
	}

	resp := response{
		State:         status.LocalState.String(),
		ClusterStatus: status.ClusterStatus,
		ClusterSize:   status.ClusterSize,
	}
	if problem := status.Problem(); problem != "" {
		resp.Reason = problem
		return resp
	}
	resp.Healthy = true
	return resp
}

// logTransition logs a change of health or of the reason only. HAProxy
// checks every node every few seconds from each load balancer, so logging
// every response would repeat the same line thousands of times an hour.
func (h *Handler) logTransition(resp response) {
	h.mu.Lock()
	changed := h.lastReason == nil || *h.lastReason != resp.Reason
	reason := resp.Reason
	h.lastReason = &reason
	h.mu.Unlock()

	if !changed {
		return
	}
	if resp.Healthy {
		h.log.Info("node is healthy", "state", resp.State, "cluster_status", resp.ClusterStatus,
			"cluster_size", resp.ClusterSize)
		return
	}
	attrs := []any{"reason", resp.Reason, "state", resp.State, "cluster_status", resp.ClusterStatus}
	if resp.err != nil {
		attrs = append(attrs, "error", resp.err)
	}
	h.log.Warn("node is unhealthy", attrs...)
}
