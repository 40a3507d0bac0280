package autoscale

import (
	"context"
	"sync"
	"time"
)

// counters remembers the last value of each cumulative counter, to turn
// them into differences per tick. A counter that went down was reset
// (HAProxy reloaded, an instance restarted): its difference is skipped
// once.
type counters struct {
	totals     map[string]uint64
	histograms map[string]Histogram
	cpu        map[string]float64
}

func (c *counters) total(key string, v uint64) (uint64, bool) {
	if c.totals == nil {
		c.totals = map[string]uint64{}
	}
	last, seen := c.totals[key]
	c.totals[key] = v
	if !seen || v < last {
		return 0, false
	}
	return v - last, true
}

func (c *counters) histogram(key string, h Histogram) (Histogram, bool) {
	if c.histograms == nil {
		c.histograms = map[string]Histogram{}
	}
	last, seen := c.histograms[key]
	c.histograms[key] = h
	if !seen {
		return nil, false
	}
	return h.Sub(last)
}

func (c *counters) cpuSeconds(key string, v float64) (float64, bool) {
	if c.cpu == nil {
		c.cpu = map[string]float64{}
	}
	last, seen := c.cpu[key]
	c.cpu[key] = v
	if !seen || v < last {
		return 0, false
	}
	return v - last, true
}

// sample turns this tick's readings into a Sample, adds it to the window
// and returns the window's signals. The first tick after activation only
// records the counters, so ok is false.
func (c *Controller) sample(ctx context.Context, now time.Time, obs observation, layout Layout) (Signals, bool) {
	s := Sample{Time: now, CPUSeconds: map[string]float64{}}
	if !c.lastSample.IsZero() {
		s.Interval = now.Sub(c.lastSample)
	}

	for i, b := range obs.backends {
		lb := c.deps.LoadBalancers[i].Name()
		s.InFlight += float64(b.Queued)
		for _, srv := range b.Servers {
			s.InFlight += float64(srv.Sessions + srv.Queued)
			if d, ok := c.counters.total(lb+"/"+srv.Name, srv.Total); ok {
				s.Requests += float64(d)
			}
		}
	}

	for endpoint, m := range c.scrapeAll(ctx, layout) {
		if d, ok := c.counters.histogram(endpoint, m.Latency); ok {
			if sum, ok := s.Latency.Add(d); ok {
				s.Latency = sum
			}
		}
		host, ok := hostOf(obs.hosts, endpoint)
		if d, fresh := c.counters.cpuSeconds(endpoint, m.CPUSeconds); ok && fresh {
			s.CPUSeconds[host] += d
		}
	}

	first := c.lastSample.IsZero()
	c.lastSample = now
	if first {
		return Signals{}, false
	}
	c.window.Add(s)
	cpus := map[string]int{}
	for name, st := range obs.states {
		cpus[name] = st.CPUs
	}
	return c.window.Signals(cpus)
}

// scrapeTimeout bounds one /metrics read, so a stuck instance cannot
// delay the tick.
const scrapeTimeout = time.Second

// scrapeAll reads /metrics of every static server and member at once.
// Instances that do not respond are left out.
func (c *Controller) scrapeAll(ctx context.Context, layout Layout) map[string]InstanceMetrics {
	var endpoints []string
	for _, s := range layout.Static {
		endpoints = append(endpoints, s.Endpoint)
	}
	for _, m := range layout.Members {
		endpoints = append(endpoints, m.Endpoint())
	}

	out := map[string]InstanceMetrics{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ep := range endpoints {
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
			defer cancel()
			m, err := c.deps.Scraper.Scrape(sctx, ep)
			if err != nil {
				c.log.Debug("scrape failed", "endpoint", ep, "error", err)
				return
			}
			mu.Lock()
			out[ep] = m
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}
