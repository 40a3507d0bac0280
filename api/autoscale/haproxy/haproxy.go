// Package haproxy drives HAProxy's runtime API (the stats socket at admin
// level) for the autoscaler: it reads the servers of a backend and points,
// enables, drains and disables server-template slots, without a reload.
// Commands and formats are those of HAProxy 2.6 (Debian 12), described in
// its management guide, section "Unix Socket commands".
package haproxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"example.com/timestamp/api/autoscale"
)

// Transport sends one runtime API command and returns its whole output.
type Transport interface {
	Do(ctx context.Context, command string) (string, error)
}

// Socket is a Transport over HAProxy's Unix socket, one connection per
// command, because the socket's non-interactive mode responds once and
// closes.
type Socket struct {
	Path string
	// Timeout bounds one command when ctx has no earlier deadline;
	// default 5s.
	Timeout time.Duration
}

// Do sends command and reads the output until HAProxy closes.
func (s Socket) Do(ctx context.Context, command string) (string, error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", s.Path)
	if err != nil {
		return "", fmt.Errorf("connect to the runtime API: %w", err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if _, err := io.WriteString(conn, command+"\n"); err != nil {
		return "", fmt.Errorf("send %q: %w", command, err)
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		return "", fmt.Errorf("read the output of %q: %w", command, err)
	}
	return string(out), nil
}

// Runtime is one load balancer's API backend, seen through its runtime API.
type Runtime struct {
	name      string
	backend   string
	transport Transport
}

var _ autoscale.LoadBalancer = (*Runtime)(nil)

// New returns the backend named backend of the HAProxy behind transport;
// name labels it in logs.
func New(name, backend string, transport Transport) *Runtime {
	return &Runtime{name: name, backend: backend, transport: transport}
}

// Name returns the name given to New.
func (r *Runtime) Name() string { return r.name }

// Backend reads the backend's servers with `show servers state` (address,
// port, administrative and operational state) and `show stat` (sessions,
// queue, total), and joins them by server name.
func (r *Runtime) Backend(ctx context.Context) (autoscale.Backend, error) {
	stateOut, err := r.transport.Do(ctx, "show servers state "+r.backend)
	if err != nil {
		return autoscale.Backend{}, err
	}
	states, err := ParseServersState(stateOut, r.backend)
	if err != nil {
		return autoscale.Backend{}, err
	}
	statOut, err := r.transport.Do(ctx, "show stat")
	if err != nil {
		return autoscale.Backend{}, err
	}
	stats, err := ParseStat(statOut, r.backend)
	if err != nil {
		return autoscale.Backend{}, err
	}

	b := autoscale.Backend{Queued: stats.BackendQueued}
	for _, st := range states {
		srv := autoscale.Server{
			Name:     st.Name,
			Endpoint: net.JoinHostPort(st.Address, fmt.Sprint(st.Port)),
			Admin:    st.Admin(),
			Up:       st.Up(),
		}
		if c, ok := stats.Servers[st.Name]; ok {
			srv.Sessions, srv.Queued, srv.Total = c.Sessions, c.Queued, c.Total
		}
		b.Servers = append(b.Servers, srv)
	}
	return b, nil
}

// SetAddr runs `set server BACKEND/SERVER addr ADDRESS port PORT`. The
// health check follows the new address (the servers set no check addr).
func (r *Runtime) SetAddr(ctx context.Context, server, address string, port int) error {
	cmd := fmt.Sprintf("set server %s/%s addr %s port %d", r.backend, server, address, port)
	out, err := r.transport.Do(ctx, cmd)
	if err != nil {
		return err
	}
	// HAProxy 2.6 reports success as "IP changed from ... port changed
	// from ..." or "no need to change the addr ..."; anything else is an
	// error message.
	text := strings.TrimSpace(out)
	if text != "" && !strings.Contains(text, "changed from") && !strings.HasPrefix(text, "no need to change") {
		return fmt.Errorf("%s: %s", cmd, text)
	}
	return nil
}

// SetState runs `set server BACKEND/SERVER state ready|drain|maint`, which
// prints nothing on success.
func (r *Runtime) SetState(ctx context.Context, server string, state autoscale.AdminState) error {
	cmd := fmt.Sprintf("set server %s/%s state %s", r.backend, server, state)
	out, err := r.transport.Do(ctx, cmd)
	if err != nil {
		return err
	}
	if text := strings.TrimSpace(out); text != "" {
		return fmt.Errorf("%s: %s", cmd, text)
	}
	return nil
}
