package autoscale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"time"
)

// Config sets the controller. cmd/autoscaler documents each field with its
// flag and default.
type Config struct {
	Policy Policy
	// Pool contains the ports of the instances the controller starts.
	Pool PortRange
	// SlotPrefix names the server-template slots: PREFIX1, PREFIX2, ...
	SlotPrefix string
	// MaxPerHost bounds the instances of one host, static ones included.
	MaxPerHost int
	// Interval is the time between ticks.
	Interval time.Duration
	// SignalWindow is the time the signals are averaged over.
	SignalWindow time.Duration
	// DrainTimeout bounds the wait for a drained server to have no
	// session on every load balancer. The instance is stopped after it
	// anyway, and its own graceful shutdown lets open requests finish.
	DrainTimeout time.Duration
	// ReadyTimeout bounds the wait for a started instance's /readyz, and
	// then for every load balancer to mark it up.
	ReadyTimeout time.Duration
	// HostRequestCooldown is the minimum time between two requests for
	// more hosts, because a host takes minutes to provision.
	HostRequestCooldown time.Duration
}

// Deps are the controller's connections to the world.
type Deps struct {
	// LoadBalancers receive every change; the first one is the
	// controller's own, whose view counts the instances in rotation.
	LoadBalancers []LoadBalancer
	Agent         HostAgent
	Scraper       Scraper
	// Hosts returns the registered API hosts; it is called every tick, so
	// a host added by api-scale-hosts.yml is used without a restart.
	Hosts func() ([]Host, error)
	// Active reports whether this controller may act: its host holds the
	// VIP, and no other load balancer does. An error means it may not.
	// Nil means always.
	Active func(ctx context.Context) (bool, error)
	// HostRequester, when not nil, is asked for more hosts.
	HostRequester HostRequester
	Metrics       *Metrics
	Logger        *slog.Logger
	// Clock defaults to time.Now.
	Clock Clock
}

// Controller is the autoscaling loop. Create it with New and call Run, or
// Tick from tests.
type Controller struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	now  Clock

	rec      *Recommender
	window   Window
	counters counters

	active         bool
	roleKnown      bool
	lastSample     time.Time
	last           Decision
	lastHostAsk    time.Time
	haveDecision   bool
	hostsRequested int
	registeredLen  int
	// silent contains the hosts whose last inspection failed.
	silent map[string]bool
}

// New checks the configuration and returns a controller that is not
// running yet.
func New(cfg Config, deps Deps) (*Controller, error) {
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	switch {
	case len(deps.LoadBalancers) == 0:
		return nil, errors.New("no load balancer configured")
	case cfg.Pool.First <= 0 || cfg.Pool.Last < cfg.Pool.First:
		return nil, fmt.Errorf("port pool %d-%d is invalid", cfg.Pool.First, cfg.Pool.Last)
	case cfg.SlotPrefix == "":
		return nil, errors.New("slot prefix is empty; use the server-template prefix of the HAProxy configuration")
	case cfg.MaxPerHost < 1:
		return nil, fmt.Errorf("maximum instances per host %d is invalid: it must be at least 1", cfg.MaxPerHost)
	case cfg.Interval <= 0 || cfg.SignalWindow < cfg.Interval:
		return nil, fmt.Errorf("signal window %s must be at least the interval %s", cfg.SignalWindow, cfg.Interval)
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Controller{
		cfg:      cfg,
		deps:     deps,
		log:      deps.Logger.With("component", "autoscaler"),
		now:      deps.Clock,
		window:   Window{Length: cfg.SignalWindow},
		counters: counters{},
	}
	c.rec = NewRecommender(cfg.Policy, c.now())
	if deps.Metrics != nil {
		deps.Metrics.setTargets(cfg.Policy)
	}
	return c, nil
}

// Run ticks every Interval until ctx is done, then returns nil. An action
// in progress when ctx ends is cut short; the next controller's Reconcile
// completes or undoes it.
func (c *Controller) Run(ctx context.Context) error {
	c.log.Info("controller started", "interval", c.cfg.Interval.String(), "min", c.cfg.Policy.Min,
		"max", c.cfg.Policy.Max, "load_balancers", len(c.deps.LoadBalancers))
	ticker := time.NewTicker(c.cfg.Interval)
	defer ticker.Stop()
	for {
		c.Tick(ctx)
		select {
		case <-ctx.Done():
			c.log.Info("controller stopped")
			return nil
		case <-ticker.C:
		}
	}
}

// observation is the state of the load balancers and hosts that one tick read.
type observation struct {
	backends []Backend
	hosts    []Host
	states   map[string]HostState
}

// Tick runs one round: observe, reconcile, decide and act.
func (c *Controller) Tick(ctx context.Context) {
	now := c.now()
	if !c.checkActive(ctx, now) {
		return
	}

	obs, err := c.observe(ctx)
	if err != nil {
		c.log.Error("observe failed; holding", "error", err)
		c.countError("observe")
		c.recordDecision(Decision{Time: now, Action: ActionHold, Reason: ReasonObserveFailed})
		return
	}
	layout := c.reconcile(ctx, obs)

	if draining := drainingMembers(layout); len(draining) > 0 {
		c.log.Info("carrying on an interrupted scale-down", "instances", instanceNames(draining))
		c.drainAndStop(ctx, draining)
		return
	}

	sig, ok := c.sample(ctx, now, obs, layout)
	if !ok {
		return
	}
	d := c.rec.Decide(now, layout.InRotation(), sig)
	c.recordDecision(d)
	if d.Recommended <= d.Current {
		c.hostsRequested = 0 // the demand fits again: withdraw a host request
	}
	switch d.Action {
	case ActionUp:
		c.scaleUp(ctx, d.Desired-d.Current, obs, layout, sig)
	case ActionDown:
		c.scaleDown(ctx, d.Current-d.Desired, obs, layout, sig)
	}
}

// checkActive returns whether this controller may act now, and resets its
// memory when it becomes active, so a controller that takes over from
// another (or restarts) begins with a fresh window and cooldown.
func (c *Controller) checkActive(ctx context.Context, now time.Time) bool {
	active := true
	if c.deps.Active != nil {
		var err error
		active, err = c.deps.Active(ctx)
		if err != nil {
			c.log.Error("VIP check failed; not acting", "error", err)
			c.countError("vip_check")
			active = false
		}
	}
	if active != c.active || !c.roleKnown {
		c.log.Info("role changed", "active", active)
		c.active, c.roleKnown = active, true
		c.rec.Reset(now)
		c.window.Reset()
		c.counters = counters{}
		c.lastSample = time.Time{}
	}
	if m := c.deps.Metrics; m != nil {
		m.active.Set(boolFloat(active))
	}
	if !active {
		c.recordDecision(Decision{Time: now, Action: ActionHold, Reason: ReasonNotActive})
	}
	return active
}

func (c *Controller) observe(ctx context.Context) (observation, error) {
	var obs observation
	hosts, err := c.deps.Hosts()
	if err != nil {
		return obs, fmt.Errorf("read hosts: %w", err)
	}
	obs.hosts = hosts
	if m := c.deps.Metrics; m != nil {
		m.hostsRegistered.Set(float64(len(hosts)))
		m.hostsRequested.Set(float64(max(len(hosts), c.hostsRequested)))
	}
	if len(hosts) != c.registeredLen {
		c.log.Info("registered hosts changed", "hosts", len(hosts), "before", c.registeredLen)
		c.registeredLen = len(hosts)
	}

	// Every load balancer must respond, because acting on a partial view
	// could free a slot that an unseen load balancer still routes to.
	obs.backends = make([]Backend, len(c.deps.LoadBalancers))
	err = c.forEachLB(ctx, func(ctx context.Context, i int, lb LoadBalancer) error {
		b, err := lb.Backend(ctx)
		obs.backends[i] = b
		return err
	})
	if err != nil {
		return obs, err
	}

	obs.states = map[string]HostState{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Go(func() {
			st, err := c.deps.Agent.Inspect(ctx, h)
			mu.Lock()
			defer mu.Unlock()
			c.noteHost(h, err)
			if err == nil {
				obs.states[h.Name] = st
			}
		})
	}
	wg.Wait()
	return obs, nil
}

// noteHost logs a host that stops or starts responding once per change,
// and counts every failed inspection. It must be called with the lock of
// observe held.
func (c *Controller) noteHost(h Host, err error) {
	if c.silent == nil {
		c.silent = map[string]bool{}
	}
	switch {
	case err != nil && !c.silent[h.Name]:
		c.log.Warn("host did not respond; its slots stay as they are until it does",
			"host", h.Name, "error", err)
	case err != nil:
		c.log.Debug("host still silent", "host", h.Name, "error", err)
	case c.silent[h.Name]:
		c.log.Info("host responds again", "host", h.Name)
	}
	if err != nil {
		c.countError("inspect_host")
	}
	c.silent[h.Name] = err != nil
}

// reconcile applies the fixes that make the load balancers agree.
func (c *Controller) reconcile(ctx context.Context, obs observation) Layout {
	layout, fixes := Reconcile(ReconcileInput{
		Backends: obs.backends, SlotPrefix: c.cfg.SlotPrefix, Pool: c.cfg.Pool,
		Hosts: obs.hosts, States: obs.states,
	})
	for _, f := range fixes {
		lb := c.deps.LoadBalancers[f.LB]
		c.log.Info("reconcile fix", "load_balancer", lb.Name(), "server", f.Server,
			"set_addr", f.SetAddr, "address", f.Address, "port", f.Port, "set_state", f.SetState, "state", f.State)
		if err := applyFix(ctx, lb, f); err != nil {
			c.log.Error("reconcile fix failed", "load_balancer", lb.Name(), "server", f.Server, "error", err)
			c.countError("reconcile")
		}
		if m := c.deps.Metrics; m != nil {
			m.fixes.Inc()
		}
	}
	if m := c.deps.Metrics; m != nil {
		m.recordLayout(layout)
	}
	return layout
}

func applyFix(ctx context.Context, lb LoadBalancer, f Fix) error {
	if f.SetAddr {
		if err := lb.SetAddr(ctx, f.Server, f.Address, f.Port); err != nil {
			return err
		}
	}
	if f.SetState {
		return lb.SetState(ctx, f.Server, f.State)
	}
	return nil
}

// recordDecision logs a decision and exports it. A decision that repeats
// the previous one (a hold for the same reason, or a scale-up that cannot
// be placed yet) is logged at debug level only, so the log shows each
// change once instead of a line per tick.
func (c *Controller) recordDecision(d Decision) {
	if m := c.deps.Metrics; m != nil {
		m.recordDecision(d)
	}
	level := slog.LevelInfo
	if c.haveDecision && d.Action == c.last.Action && d.Reason == c.last.Reason &&
		d.Current == c.last.Current && d.Desired == c.last.Desired {
		level = slog.LevelDebug
	}
	c.last, c.haveDecision = d, true
	if d.Reason == ReasonNotActive {
		return
	}
	attrs := []any{"action", d.Action, "reason", d.Reason, "current", d.Current,
		"recommended", d.Recommended, "desired", d.Desired}
	if d.Signals.Window > 0 {
		attrs = append(attrs, "window", d.Signals.Window.Round(time.Millisecond).String(),
			"rps", round(d.Signals.RPS), "inflight", round(d.Signals.InFlight))
		if d.Signals.P95Valid {
			attrs = append(attrs, "p95", d.Signals.P95.Round(100*time.Microsecond).String())
		}
		if cpu, ok := d.Signals.MeanHostCPU(); ok {
			attrs = append(attrs, "cpu", round(cpu))
		}
	}
	proposals := make([]any, 0, len(d.Proposals))
	for _, p := range d.Proposals {
		proposals = append(proposals, slog.Group(string(p.Signal), "value", round(p.Value),
			"target", p.Target, "ratio", round(p.Ratio), "instances", p.Instances))
	}
	if len(proposals) > 0 {
		attrs = append(attrs, slog.Group("proposals", proposals...))
	}
	c.log.Log(context.Background(), level, "decision", attrs...)
}

func (c *Controller) countError(op string) {
	if m := c.deps.Metrics; m != nil {
		m.errors.WithLabelValues(op).Inc()
	}
}

// forEachLB runs fn on every load balancer at once and joins the errors.
func (c *Controller) forEachLB(ctx context.Context, fn func(context.Context, int, LoadBalancer) error) error {
	errs := make([]error, len(c.deps.LoadBalancers))
	var wg sync.WaitGroup
	for i, lb := range c.deps.LoadBalancers {
		wg.Go(func() {
			if err := fn(ctx, i, lb); err != nil {
				errs[i] = fmt.Errorf("load balancer %s: %w", lb.Name(), err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func drainingMembers(l Layout) []Member {
	var out []Member
	for _, m := range l.Members {
		if m.Draining && !m.Unverified {
			out = append(out, m)
		}
	}
	return out
}

func instanceNames[T interface{ String() string }](items []T) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.String()
	}
	return out
}

func hostOf(hosts []Host, endpoint string) (string, bool) {
	addr, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		return "", false
	}
	for _, h := range hosts {
		if h.Address == addr {
			return h.Name, true
		}
	}
	return "", false
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// round keeps three decimals, enough for a log line.
func round(x float64) float64 {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return x
	}
	return math.Round(x*1000) / 1000
}
