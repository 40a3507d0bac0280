// Package autoscale runs the elastic API tier. It reads load signals from
// HAProxy and from the timestamp-api instances, and decides how many
// instances should serve the way the Kubernetes Horizontal Pod Autoscaler
// does. It applies the decision through HAProxy's runtime API on every load
// balancer and through systemd on the API hosts.
//
// The types and interfaces of the domain are in this file. The packages
// below it implement them for one technology each: haproxy (the runtime
// API), remote (SSH to the hosts' forced command) and promscrape (an
// instance's /metrics). cmd/autoscaler wires them together.
//
// The controller keeps no state of its own that it cannot rebuild. Each
// tick it reads the servers of every load balancer and the instance units
// of every host, so a restarted controller carries on where the last one
// stopped (see Reconcile).
package autoscale

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Host is an API host that the controller may start instances on.
type Host struct {
	Name    string
	Address string
}

// Instance is one timestamp-api process: timestamp-api@Port.service on Host.
type Instance struct {
	Host    string
	Address string
	Port    int
}

// Endpoint returns the instance's address:port, the form HAProxy reports.
func (i Instance) Endpoint() string {
	return net.JoinHostPort(i.Address, strconv.Itoa(i.Port))
}

func (i Instance) String() string {
	return fmt.Sprintf("%s:%d", i.Host, i.Port)
}

// AdminState is the administrative state of an HAProxy server, as set with
// `set server BACKEND/SERVER state ready|drain|maint`.
type AdminState int

const (
	// AdminReady takes new requests (when its health check passes).
	AdminReady AdminState = iota
	// AdminDrain takes no new requests; open ones finish.
	AdminDrain
	// AdminMaint takes no traffic and runs no health check. A server-template
	// slot in this state is free.
	AdminMaint
)

func (s AdminState) String() string {
	switch s {
	case AdminReady:
		return "ready"
	case AdminDrain:
		return "drain"
	case AdminMaint:
		return "maint"
	}
	return fmt.Sprintf("AdminState(%d)", int(s))
}

// Server is one server of the API backend as one load balancer reports it
// (`show stat`).
type Server struct {
	Name string
	// Endpoint is the server's address:port.
	Endpoint string
	Admin    AdminState
	// Up is true while HAProxy sends it traffic: its check passes (or it
	// has no check) and it is not in maintenance.
	Up bool
	// Sessions is scur: requests in flight on the server.
	Sessions int
	// Queued is qcur: requests waiting for a connection slot of the
	// server (its maxconn).
	Queued int
	// Total is stot: requests sent to the server since HAProxy started.
	Total uint64
}

// Backend is the API backend of one load balancer.
type Backend struct {
	Servers []Server
	// Queued is the backend's own qcur: requests that wait for any server.
	Queued int
}

// LoadBalancer is the runtime API of one HAProxy.
type LoadBalancer interface {
	// Name identifies the load balancer in logs and metrics.
	Name() string
	// Backend returns the servers of the API backend.
	Backend(ctx context.Context) (Backend, error)
	// SetAddr points a server at address:port.
	SetAddr(ctx context.Context, server, address string, port int) error
	// SetState sets a server's administrative state.
	SetState(ctx context.Context, server string, state AdminState) error
}

// HostState is the report of systemd on an API host.
type HostState struct {
	// CPUs is the number of processors the host has.
	CPUs int
	// Active contains the ports whose timestamp-api@PORT unit is active.
	Active map[int]bool
}

// HostAgent starts, stops and lists the timestamp-api units of a host.
type HostAgent interface {
	Inspect(ctx context.Context, h Host) (HostState, error)
	// Start starts timestamp-api@port and returns once systemd did.
	Start(ctx context.Context, h Host, port int) error
	// Stop stops timestamp-api@port gracefully and returns once it exited.
	Stop(ctx context.Context, h Host, port int) error
}

// InstanceMetrics are the figures the controller reads from an instance's
// /metrics.
type InstanceMetrics struct {
	// Latency is the cumulative histogram of POST /app durations.
	Latency Histogram
	// CPUSeconds is process_cpu_seconds_total.
	CPUSeconds float64
}

// Scraper reads instances over HTTP.
type Scraper interface {
	Scrape(ctx context.Context, endpoint string) (InstanceMetrics, error)
	// Ready returns nil once GET /readyz of the instance returns 200.
	Ready(ctx context.Context, endpoint string) error
}

// HostRequester requests more API hosts when every host is full: in
// production from a cloud autoscaling group, here through a command.
type HostRequester interface {
	RequestHosts(ctx context.Context, want int) error
}

// PortRange is the pool of instance ports the controller manages, First to
// Last inclusive. Ports outside it (8080, set by the api role) are static.
type PortRange struct {
	First, Last int
}

// Contains reports whether port is in the range.
func (r PortRange) Contains(port int) bool {
	return port >= r.First && port <= r.Last
}

// Clock returns the current time; tests replace it.
type Clock func() time.Time
