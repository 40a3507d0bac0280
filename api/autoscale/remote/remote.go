// Package remote reaches the hosts through SSH and the forced command that
// the autoscaler role installs (timestamp-autoscaler-remote). The key the
// controller uses can run nothing else: the command reads the request from
// SSH_ORIGINAL_COMMAND and accepts only these verbs:
//
//	instances            "cpus N", then "unit PORT ACTIVE-STATE" per timestamp-api@PORT unit
//	start PORT, stop PORT  systemctl start or stop timestamp-api@PORT, PORT in the pool
//	haproxy COMMAND      one runtime API command from a short allow-list (load balancers only)
//	has-address ADDRESS  "yes" if one of the host's interfaces has the IPv4 ADDRESS, else "no"
package remote

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"example.com/timestamp/api/autoscale"
	"example.com/timestamp/api/autoscale/haproxy"
)

// SSH runs the forced command on a host with the ssh client.
type SSH struct {
	// Binary is the ssh client; default "ssh".
	Binary string
	// ConfigFile is passed as -F: user, key, known_hosts and connection
	// sharing are set there, not here.
	ConfigFile string
	// Timeout bounds one command when ctx has no earlier deadline;
	// default 40s, longer than a graceful stop of the API (systemd's
	// TimeoutStopSec of 30s).
	Timeout time.Duration
}

// Run runs request on the host at address and returns its standard
// output. A non-zero exit returns an error with the standard error.
func (s SSH) Run(ctx context.Context, address, request string) (string, error) {
	binary, timeout := s.Binary, s.Timeout
	if binary == "" {
		binary = "ssh"
	}
	if timeout <= 0 {
		timeout = 40 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	args := []string{}
	if s.ConfigFile != "" {
		args = append(args, "-F", s.ConfigFile)
	}
	args = append(args, address, request)
	cmd := exec.CommandContext(ctx, binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The first command to a host also starts the shared connection
	// (ControlPersist), whose background process keeps ssh's standard
	// error open. Without a WaitDelay, Run would wait for that process to
	// exit. With it, Run returns once ssh itself exited and its output was
	// read, and reports exec.ErrWaitDelay, which is no failure here.
	cmd.WaitDelay = waitDelay
	if err := cmd.Run(); err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = "no error output"
		}
		return "", fmt.Errorf("ssh %s %q: %w: %s", address, request, err, msg)
	}
	return stdout.String(), nil
}

// waitDelay bounds the wait for ssh's pipes after ssh exited.
const waitDelay = 500 * time.Millisecond

// Agent manages the timestamp-api units of the hosts.
type Agent struct {
	SSH SSH
}

var _ autoscale.HostAgent = Agent{}

// Inspect lists the host's timestamp-api units and its processor count.
func (a Agent) Inspect(ctx context.Context, h autoscale.Host) (autoscale.HostState, error) {
	out, err := a.SSH.Run(ctx, h.Address, "instances")
	if err != nil {
		return autoscale.HostState{}, err
	}
	return ParseInstances(out)
}

// Start starts timestamp-api@port on the host.
func (a Agent) Start(ctx context.Context, h autoscale.Host, port int) error {
	_, err := a.SSH.Run(ctx, h.Address, fmt.Sprintf("start %d", port))
	return err
}

// Stop stops timestamp-api@port on the host; systemctl returns once the
// process exited.
func (a Agent) Stop(ctx context.Context, h autoscale.Host, port int) error {
	_, err := a.SSH.Run(ctx, h.Address, fmt.Sprintf("stop %d", port))
	return err
}

// ParseInstances parses the output of the verb instances.
func ParseInstances(out string) (autoscale.HostState, error) {
	st := autoscale.HostState{Active: map[int]bool{}}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "cpus":
			n, err := strconv.Atoi(f[1])
			if err != nil || n < 1 {
				return st, fmt.Errorf("instances: invalid processor count %q", f[1])
			}
			st.CPUs = n
		case len(f) == 3 && f[0] == "unit":
			port, err := strconv.Atoi(f[1])
			if err != nil {
				return st, fmt.Errorf("instances: invalid port %q", f[1])
			}
			// "activating" counts too: the unit runs, and HAProxy's check
			// keeps it out of rotation until it is ready.
			st.Active[port] = f[2] == "active" || f[2] == "activating" || f[2] == "reloading"
		case len(f) == 0:
		default:
			return st, fmt.Errorf("instances: unexpected line %q", sc.Text())
		}
	}
	if st.CPUs == 0 {
		return st, errors.New("instances: no processor count in the output; is the forced command installed?")
	}
	return st, nil
}

// HAProxy is a runtime API transport to another load balancer, through
// its forced command.
type HAProxy struct {
	SSH     SSH
	Address string
}

var _ haproxy.Transport = HAProxy{}

// Do runs one runtime API command on the load balancer.
func (h HAProxy) Do(ctx context.Context, command string) (string, error) {
	return h.SSH.Run(ctx, h.Address, "haproxy "+command)
}

// HasAddress reports whether the host at address has ip on one of its
// interfaces, as the VIP that keepalived moves.
func (s SSH) HasAddress(ctx context.Context, address string, ip net.IP) (bool, error) {
	if ip.To4() == nil {
		return false, fmt.Errorf("has-address: %v is not an IPv4 address", ip)
	}
	out, err := s.Run(ctx, address, "has-address "+ip.String())
	if err != nil {
		return false, err
	}
	return ParseHasAddress(out)
}

// ParseHasAddress parses the output of the verb has-address.
func ParseHasAddress(out string) (bool, error) {
	switch strings.TrimSpace(out) {
	case "yes":
		return true, nil
	case "no":
		return false, nil
	}
	return false, fmt.Errorf("has-address: unexpected output %q; is the forced command current?", out)
}
