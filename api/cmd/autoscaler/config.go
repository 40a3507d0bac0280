package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"example.com/timestamp/api/autoscale"
)

// envPrefix starts the environment variable of every flag:
// -target-rps is TSAUTOSCALER_TARGET_RPS.
const envPrefix = "TSAUTOSCALER_"

// Config is the whole configuration of the binary.
type Config struct {
	Controller autoscale.Config

	Listen        string
	VIP           string
	HAProxySocket string
	Peers         []string
	Backend       string
	HostsFile     string
	SSHConfig     string
	Method, Route string
	HostRequest   string
	LogFormat     string
	LogLevel      string
}

// parseConfig reads the flags from args, each defaulting to its
// environment variable from getenv, then to the default shown in -help.
// The defaults and their reasons are in the help texts; docs/elasticity.md
// explains them at length.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var cfg Config
	c := &cfg.Controller
	p := &c.Policy
	var peers string
	fs := flag.NewFlagSet("autoscaler", flag.ContinueOnError)
	fs.SetOutput(stderr)

	// --- where things are
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:9106", "`address` of the /metrics and /targets (Prometheus service discovery) endpoints, host:port")
	fs.StringVar(&cfg.VIP, "vip", "", "act only while this host holds the VIP `address` (keepalived) and no peer holds it too, so at "+
		"most one controller of the load balancers acts; empty acts always (a single load balancer)")
	fs.StringVar(&cfg.HAProxySocket, "haproxy-socket", "/run/haproxy/admin.sock",
		"`path` of this load balancer's runtime API socket (admin level)")
	fs.StringVar(&peers, "peers", "", "comma-separated `addresses` of the other load balancers; each change is "+
		"applied to them too, through SSH and their forced command")
	fs.StringVar(&cfg.Backend, "backend", "api", "HAProxy `backend` of the API")
	fs.StringVar(&c.SlotPrefix, "slot-prefix", "pool", "`prefix` of the backend's server-template slots (pool1, pool2, ...)")
	fs.StringVar(&cfg.HostsFile, "hosts-file", "/etc/timestamp-autoscaler/hosts",
		"`file` of the API hosts, one 'NAME ADDRESS' per line; read every tick")
	fs.StringVar(&cfg.SSHConfig, "ssh-config", "/etc/timestamp-autoscaler/ssh_config",
		"ssh client configuration `file` (user, key, known_hosts, connection sharing)")
	fs.IntVar(&c.Pool.First, "port-first", 8081, "first `port` of the instance pool; 8080 stays the api role's static instance")
	fs.IntVar(&c.Pool.Last, "port-last", 8088, "last `port` of the instance pool; the API hosts' firewall opens first to last")
	fs.StringVar(&cfg.Method, "latency-method", "POST", "HTTP `method` whose latency is a signal")
	fs.StringVar(&cfg.Route, "latency-route", "/app", "route `template` whose latency is a signal")
	fs.StringVar(&cfg.HostRequest, "host-request-command", "", "`command` run (by /bin/sh, with HOSTS_REQUESTED set) "+
		"when every host is full, for example a call to the cloud's autoscaling group; empty only logs and "+
		"exports timestamp_autoscaler_hosts_requested")

	// --- bounds
	fs.IntVar(&p.Min, "min", 2, "minimum `instances` in rotation: one per API host, so losing a host leaves one")
	fs.IntVar(&p.Max, "max", 8, "maximum `instances` in rotation; a bound on cost and on the database's connections "+
		"(each instance opens up to TSAPI_DB_MAX_OPEN_CONNS, 32)")
	fs.IntVar(&c.MaxPerHost, "max-per-host", 4, "maximum `instances` per host, the static one included: about two per "+
		"processor of a 2-vCPU host, as an instance is mostly waiting on the database")

	// --- signals and targets
	fs.Float64Var(&p.TargetInFlight, "target-inflight", 8, "target requests in flight or queued per instance (`count`, "+
		"HAProxy scur+qcur); a quarter of the per-server maxconn of 32, so queueing starts only at 4 times the target")
	fs.Float64Var(&p.TargetRPS, "target-rps", 300, "target requests per second per instance (`rate`); about a quarter of "+
		"the 1,160 POST/s one instance served on the test hosts (8 clients, p99 20 ms), so the load can grow fourfold "+
		"in the 20 to 30 s a scale-up takes")
	fs.DurationVar(&p.TargetP95, "target-p95", 250*time.Millisecond, "target p95 latency of the latency route (`duration`); "+
		"well above the usual 5 to 30 ms, so only real saturation drives it, and it counts only while the instances have "+
		"at least half of -target-inflight in flight (a slow database behind idle instances is not helped by more); 0 turns it off")
	fs.Float64Var(&p.CPUHigh, "cpu-high", 0.8, "share of a host's processors (`fraction`) used by its API processes above "+
		"which the host gets no new instance and no scale-down happens while the mean is above it; 0 turns it off")
	fs.Float64Var(&p.Tolerance, "tolerance", 0.1, "no change while observed/target is within 1 ± this (`fraction`); "+
		"the Kubernetes HPA default")
	fs.DurationVar(&c.SignalWindow, "window", 10*time.Second, "signals are averaged over this `duration`: 5 ticks, "+
		"enough requests for a p95")

	// --- timing
	fs.DurationVar(&c.Interval, "interval", 2*time.Second, "time between ticks (`duration`)")
	fs.DurationVar(&p.UpWindow, "scale-up-window", 4*time.Second, "a scale-up takes the lowest recommendation of this "+
		"`duration` (2 ticks), so one noisy tick adds nothing")
	fs.DurationVar(&p.DownWindow, "scale-down-window", 60*time.Second, "a scale-down takes the highest recommendation of "+
		"this `duration`, so capacity goes only after the load stayed low for it")
	fs.DurationVar(&p.UpCooldown, "scale-up-cooldown", 15*time.Second, "minimum `duration` from the last change to a "+
		"scale-up: the new instances' load must show in the window (10s) before adding more")
	fs.DurationVar(&p.DownCooldown, "scale-down-cooldown", 60*time.Second, "minimum `duration` from the last change to a "+
		"scale-down; longer than the scale-up cooldown, since removing capacity too early costs errors and adding too "+
		"early costs only money")
	fs.IntVar(&p.MaxUpStep, "max-scale-up-step", 4, "one scale-up adds at most max(this, current) `instances`; the "+
		"Kubernetes HPA default is 4 pods or 100%")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 30*time.Second, "longest wait for a drained server to have no "+
		"session (`duration`); above HAProxy's timeout server (10s), so only a stuck request hits it")
	fs.DurationVar(&c.ReadyTimeout, "ready-timeout", 30*time.Second, "longest wait for a started instance's /readyz, "+
		"then for the load balancers to mark it up (`duration`)")
	fs.DurationVar(&c.HostRequestCooldown, "host-request-cooldown", 5*time.Minute, "minimum `duration` between two "+
		"requests for the same number of hosts; provisioning a host takes minutes")

	fs.StringVar(&cfg.LogFormat, "log-format", "json", "log `format`: json or text")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "log `level`: debug (also every unchanged hold), info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: autoscaler [flags]\n\n"+
			"Scales the timestamp-api instances behind HAProxy with the load.\n"+
			"Every flag can also be set by the environment variable %s<FLAG>, upper case with _ for -\n"+
			"(for example -target-rps is %sTARGET_RPS); a flag wins over its variable.\n\nFlags:\n",
			envPrefix, envPrefix)
		fs.PrintDefaults()
	}

	if err := applyEnv(fs, getenv); err != nil {
		return Config{}, err
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q; see -help", fs.Arg(0))
	}
	cfg.Peers = splitList(peers)
	return cfg, cfg.validate()
}

// applyEnv sets each flag from its environment variable, before the
// command line is parsed, so a flag on the command line wins.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q is invalid: %w", name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

func (c Config) validate() error {
	if c.VIP != "" && net.ParseIP(c.VIP) == nil {
		return fmt.Errorf("-vip %q is not an IP address", c.VIP)
	}
	for _, p := range c.Peers {
		if net.ParseIP(p) == nil {
			return fmt.Errorf("-peers: %q is not an IP address", p)
		}
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		return fmt.Errorf("-log-format %q is invalid: use json or text", c.LogFormat)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
