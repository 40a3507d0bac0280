package autoscale

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// pollInterval is the time between two reads of the load balancers while
// waiting for a drain or for a new server to come up.
const pollInterval = 250 * time.Millisecond

func (c *Controller) placementInput(obs observation, layout Layout, sig Signals) PlacementInput {
	return PlacementInput{
		Layout: layout, Hosts: obs.hosts, States: obs.states, Pool: c.cfg.Pool,
		MaxPerHost: c.cfg.MaxPerHost, HostCPU: sig.HostCPU, CPUHigh: c.cfg.Policy.CPUHigh,
	}
}

// scaleUp adds n instances: start each unit, wait for its /readyz, then
// point a free slot at it and enable the slot on every load balancer, and
// wait until every load balancer marks it up. The unit starts before any
// load balancer routes to it, so no request reaches an instance that is
// not ready. A controller stopped in between leaves a running unit without
// a slot, which the next Reconcile adopts.
func (c *Controller) scaleUp(ctx context.Context, n int, obs observation, layout Layout, sig Signals) {
	placements, short := PlanScaleUp(n, c.placementInput(obs, layout, sig))
	if short > 0 {
		c.needHosts(ctx, obs, short, len(layout.FreeSlots))
	} else {
		c.hostsRequested = 0
	}
	if len(placements) == 0 {
		return
	}
	c.log.Info("starting instances", "instances", instanceNames(placements))

	var mu sync.Mutex
	var started []Placement
	var wg sync.WaitGroup
	for _, p := range placements {
		wg.Go(func() {
			if err := c.startReady(ctx, p); err != nil {
				c.log.Error("instance did not start; not adding it", "instance", p.String(), "error", err)
				c.countError("start_instance")
				return
			}
			mu.Lock()
			started = append(started, p)
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(started) == 0 {
		return
	}

	for _, p := range started {
		err := c.forEachLB(ctx, func(ctx context.Context, _ int, lb LoadBalancer) error {
			if err := lb.SetAddr(ctx, p.Slot, p.Address, p.Port); err != nil {
				return err
			}
			return lb.SetState(ctx, p.Slot, AdminReady)
		})
		if err != nil {
			// The next tick's Reconcile completes the registration.
			c.log.Error("registering an instance failed", "instance", p.String(), "slot", p.Slot, "error", err)
			c.countError("register")
		}
	}
	c.waitUp(ctx, started)
	c.changed(ActionUp, len(started))
	c.log.Info("instances added", "instances", instanceNames(started))
}

func (c *Controller) startReady(ctx context.Context, p Placement) error {
	h := Host{Name: p.Host, Address: p.Address}
	if err := c.deps.Agent.Start(ctx, h, p.Port); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.ReadyTimeout)
	defer cancel()
	for {
		err := c.deps.Scraper.Ready(rctx, p.Endpoint())
		if err == nil {
			return nil
		}
		select {
		case <-rctx.Done():
			// Stop it again, so no unit runs outside every slot.
			if stopErr := c.deps.Agent.Stop(ctx, h, p.Port); stopErr != nil {
				c.log.Error("stopping an instance that never became ready failed",
					"instance", p.String(), "error", stopErr)
			}
			return fmt.Errorf("not ready within %s: %w", c.cfg.ReadyTimeout, err)
		case <-time.After(pollInterval):
		}
	}
}

// waitUp polls until every load balancer marks the new slots up, for at
// most ReadyTimeout, so that the next decision counts them.
func (c *Controller) waitUp(ctx context.Context, added []Placement) {
	// The waits use the real clock: they follow HAProxy, not the
	// decision clock that tests replace.
	deadline := time.Now().Add(c.cfg.ReadyTimeout)
	for {
		pending := 0
		err := c.forEachLB(ctx, func(ctx context.Context, _ int, lb LoadBalancer) error {
			b, err := lb.Backend(ctx)
			if err != nil {
				return err
			}
			for _, p := range added {
				if s, ok := findServer(b, p.Slot); !ok || !s.Up {
					pending++
				}
			}
			return nil
		})
		if err == nil && pending == 0 {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.log.Warn("new instances are not up on every load balancer yet",
				"instances", instanceNames(added), "timeout", c.cfg.ReadyTimeout.String(), "error", err)
			return
		}
		sleep(ctx, pollInterval)
	}
}

// needHosts requests more hosts when instances could not be placed, at
// most once per HostRequestCooldown for the same number.
func (c *Controller) needHosts(ctx context.Context, obs observation, short, freeSlots int) {
	want := len(obs.hosts) + (short+c.cfg.MaxPerHost-1)/c.cfg.MaxPerHost
	if m := c.deps.Metrics; m != nil {
		m.hostsRequested.Set(float64(want))
	}
	now := c.now()
	if want == c.hostsRequested && now.Sub(c.lastHostAsk) < c.cfg.HostRequestCooldown {
		return
	}
	c.hostsRequested, c.lastHostAsk = want, now
	c.log.Warn("every host is full; more hosts are needed", "unplaced", short, "hosts", len(obs.hosts),
		"hosts_requested", want, "free_slots", freeSlots, "max_per_host", c.cfg.MaxPerHost)
	if c.deps.HostRequester == nil {
		return
	}
	if err := c.deps.HostRequester.RequestHosts(ctx, want); err != nil {
		c.log.Error("requesting more hosts failed", "hosts_requested", want, "error", err)
		c.countError("request_hosts")
	}
}

// scaleDown removes n members through drainAndStop.
func (c *Controller) scaleDown(ctx context.Context, n int, obs observation, layout Layout, sig Signals) {
	victims := PlanScaleDown(n, c.placementInput(obs, layout, sig))
	if len(victims) == 0 {
		c.log.Info("nothing to remove: only static servers are left", "requested", n)
		return
	}
	c.drainAndStop(ctx, victims)
}

// drainAndStop removes members without failing a request. It drains them
// on every load balancer and waits until no load balancer has a session on
// them, for at most DrainTimeout. Then it stops the units, whose graceful
// shutdown lets any request still open finish, and only then frees the
// slots. A controller stopped in between leaves the slots in drain, and the
// next one carries on from there.
func (c *Controller) drainAndStop(ctx context.Context, members []Member) {
	c.log.Info("draining instances", "instances", instanceNames(members))
	for _, m := range members {
		err := c.forEachLB(ctx, func(ctx context.Context, _ int, lb LoadBalancer) error {
			return lb.SetState(ctx, m.Slot, AdminDrain)
		})
		if err != nil {
			c.log.Error("drain failed; the next tick retries", "instance", m.String(), "error", err)
			c.countError("drain")
			return
		}
	}
	c.waitDrained(ctx, members)

	var mu sync.Mutex
	var stopped []Member
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Go(func() {
			if err := c.deps.Agent.Stop(ctx, Host{Name: m.Host, Address: m.Address}, m.Port); err != nil {
				c.log.Error("stop failed; the slot stays in drain and the next tick retries",
					"instance", m.String(), "error", err)
				c.countError("stop_instance")
				return
			}
			mu.Lock()
			stopped = append(stopped, m)
			mu.Unlock()
		})
	}
	wg.Wait()

	for _, m := range stopped {
		err := c.forEachLB(ctx, func(ctx context.Context, _ int, lb LoadBalancer) error {
			return lb.SetState(ctx, m.Slot, AdminMaint)
		})
		if err != nil {
			c.log.Error("freeing a slot failed; the next tick frees it", "slot", m.Slot, "error", err)
			c.countError("free_slot")
		}
	}
	if len(stopped) > 0 {
		c.changed(ActionDown, len(stopped))
		c.log.Info("instances removed", "instances", instanceNames(stopped))
	}
}

func (c *Controller) waitDrained(ctx context.Context, members []Member) {
	start := time.Now()
	deadline := start.Add(c.cfg.DrainTimeout)
	for {
		busy := 0
		err := c.forEachLB(ctx, func(ctx context.Context, _ int, lb LoadBalancer) error {
			b, err := lb.Backend(ctx)
			if err != nil {
				return err
			}
			for _, m := range members {
				if s, ok := findServer(b, m.Slot); ok && s.Sessions+s.Queued > 0 {
					busy += s.Sessions + s.Queued
				}
			}
			return nil
		})
		if err == nil && busy == 0 {
			c.log.Info("drained", "instances", instanceNames(members), "took", time.Since(start).Round(time.Millisecond).String())
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.log.Warn("drain timed out; stopping anyway, the instances finish open requests on SIGTERM",
				"instances", instanceNames(members), "sessions", busy, "timeout", c.cfg.DrainTimeout.String(), "error", err)
			return
		}
		sleep(ctx, pollInterval)
	}
}

func (c *Controller) changed(a Action, n int) {
	now := c.now()
	c.rec.Changed(now)
	if m := c.deps.Metrics; m != nil {
		dir := "up"
		if a == ActionDown {
			dir = "down"
		}
		m.instances.WithLabelValues(dir).Add(float64(n))
		m.lastChangeTime.Set(float64(now.UnixNano()) / 1e9)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
