// Command autoscaler scales the timestamp-api instances behind HAProxy with
// the load. It runs on every load balancer and acts only on the one that
// has the VIP. It adds and removes instances through HAProxy's runtime API,
// on every load balancer, and through systemd on the API hosts, over SSH.
// Run it with -help for its flags; docs/elasticity.md describes the design.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"example.com/timestamp/api/autoscale"
	"example.com/timestamp/api/autoscale/haproxy"
	"example.com/timestamp/api/autoscale/promscrape"
	"example.com/timestamp/api/autoscale/remote"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "autoscaler:", err)
		os.Exit(2)
	}
	m, err := NewMain(cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "autoscaler:", err)
		os.Exit(1)
	}
	if err := m.Run(ctx); err != nil {
		m.log.Error("stopped with an error", "error", err)
		os.Exit(1)
	}
}

// Main is the wired program.
type Main struct {
	cfg        Config
	log        *slog.Logger
	controller *autoscale.Controller
	listener   net.Listener
	server     *http.Server
}

// NewMain wires the controller and opens the listener of /metrics and of
// /targets, the pool instances for Prometheus's service discovery.
func NewMain(cfg Config, logOutput io.Writer) (*Main, error) {
	log, err := newLogger(cfg, logOutput)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ssh := remote.SSH{ConfigFile: cfg.SSHConfig}
	lbs := []autoscale.LoadBalancer{
		haproxy.New("local", cfg.Backend, haproxy.Socket{Path: cfg.HAProxySocket}),
	}
	for _, peer := range cfg.Peers {
		lbs = append(lbs, haproxy.New(peer, cfg.Backend, remote.HAProxy{SSH: ssh, Address: peer}))
	}
	deps := autoscale.Deps{
		LoadBalancers: lbs,
		Agent:         remote.Agent{SSH: ssh},
		Scraper: &promscrape.Client{
			HTTP:   &http.Client{Timeout: 2 * time.Second},
			Method: cfg.Method, Route: cfg.Route,
		},
		Hosts:   func() ([]autoscale.Host, error) { return readHosts(cfg.HostsFile) },
		Metrics: autoscale.NewMetrics(reg),
		Logger:  log,
	}
	if cfg.VIP != "" {
		vip := net.ParseIP(cfg.VIP)
		peerChecks := make(map[string]peerCheck, len(cfg.Peers))
		for _, peer := range cfg.Peers {
			peerChecks[peer] = func(ctx context.Context) (bool, error) { return ssh.HasAddress(ctx, peer, vip) }
		}
		deps.Active = func(ctx context.Context) (bool, error) {
			return soleHolder(ctx, vip, func() (bool, error) { return holdsAddress(vip) }, peerChecks)
		}
	}
	if cfg.HostRequest != "" {
		deps.HostRequester = commandRequester{command: cfg.HostRequest}
	}
	controller, err := autoscale.New(cfg.Controller, deps)
	if err != nil {
		return nil, err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /targets", targetsHandler(lbs[0], cfg.Controller.SlotPrefix, deps.Hosts, log))
	return &Main{
		cfg:        cfg,
		log:        log,
		controller: controller,
		listener:   ln,
		server:     &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
	}, nil
}

// Addr returns the address of the metrics listener.
func (m *Main) Addr() net.Addr { return m.listener.Addr() }

// Run serves /metrics and /targets and runs the controller until ctx is
// done.
func (m *Main) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		if err := m.server.Serve(m.listener); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve metrics: %w", err)
		}
		close(errc)
	}()
	m.log.Info("serving metrics", "address", m.listener.Addr().String())

	runErr := m.controller.Run(ctx)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.server.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("stop the metrics server: %w", err)
	}
	return errors.Join(runErr, <-errc)
}

// readHosts reads the hosts file: "NAME ADDRESS" per line, # comments.
func readHosts(path string) ([]autoscale.Host, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hosts []autoscale.Host
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 || net.ParseIP(fields[1]) == nil {
			return nil, fmt.Errorf("%s:%d: expected 'NAME ADDRESS', got %q", path, n, sc.Text())
		}
		hosts = append(hosts, autoscale.Host{Name: fields[0], Address: fields[1]})
	}
	return hosts, sc.Err()
}

// peerCheck reports whether another load balancer has the VIP.
type peerCheck func(context.Context) (bool, error)

// soleHolder reports whether this host holds the VIP and no peer does.
// With keepalived in split brain both load balancers hold it, and two
// controllers would act on the same slots and units at once. So neither
// acts until one holds the VIP again, and the returned error names the
// peer. A peer that does not respond is an error too: the controller could
// not act anyway, because every change goes to every load balancer.
func soleHolder(ctx context.Context, vip net.IP, local func() (bool, error),
	peers map[string]peerCheck) (bool, error) {
	hasVIP, err := local()
	if err != nil || !hasVIP {
		return false, err
	}
	for name, check := range peers {
		peerHasVIP, err := check(ctx)
		if err != nil {
			return false, fmt.Errorf("check the VIP %v on %s: %w", vip, name, err)
		}
		if peerHasVIP {
			return false, fmt.Errorf("the VIP %v is on this host and on %s (split brain); "+
				"not acting until one load balancer holds it", vip, name)
		}
	}
	return true, nil
}

// holdsAddress reports whether one of this host's interfaces has ip.
func holdsAddress(ip net.IP) (bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false, fmt.Errorf("list interface addresses: %w", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true, nil
		}
	}
	return false, nil
}

// commandRequester runs a shell command to ask for more hosts.
type commandRequester struct {
	command string
}

func (r commandRequester) RequestHosts(ctx context.Context, want int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", r.command)
	cmd.Env = append(os.Environ(), "HOSTS_REQUESTED="+strconv.Itoa(want))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("host request command: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func newLogger(cfg Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("-log-level %q is invalid: use debug, info, warn or error", cfg.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}
