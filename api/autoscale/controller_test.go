package autoscale

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// world is a fake deployment: two load balancers with the backend of
// backend(), two hosts with units, and a request counter that grows with
// the offered load. It records every change in order.
type world struct {
	mu       sync.Mutex
	lbs      []*fakeLB
	units    map[string]map[int]bool // host -> port -> active
	events   []string
	failStop bool
}

type fakeLB struct {
	w       *world
	name    string
	backend Backend
}

func newWorld() *world {
	w := &world{units: map[string]map[int]bool{
		"api1": {8080: true}, "api2": {8080: true},
	}}
	for _, name := range []string{"lb1", "lb2"} {
		w.lbs = append(w.lbs, &fakeLB{w: w, name: name, backend: backend(nil)})
	}
	return w
}

func (w *world) record(format string, args ...any) {
	w.events = append(w.events, fmt.Sprintf(format, args...))
}

// offer spreads rps requests per second of one tick (2 s) over the servers
// that are up, on the first load balancer, and sets sessions on each.
func (w *world) offer(rps float64, sessions int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := &w.lbs[0].backend
	var up []int
	for i, s := range b.Servers {
		if s.Up && s.Admin == AdminReady {
			up = append(up, i)
		}
	}
	for _, i := range up {
		b.Servers[i].Total += uint64(rps * 2 / float64(len(up)))
		b.Servers[i].Sessions = sessions
	}
}

func (l *fakeLB) Name() string { return l.name }

func (l *fakeLB) Backend(context.Context) (Backend, error) {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	b := Backend{Queued: l.backend.Queued, Servers: slices.Clone(l.backend.Servers)}
	// A slot is up when it is not in maintenance and its unit runs.
	for i, s := range b.Servers {
		if _, isSlot := slotIndex(s.Name, "pool"); isSlot {
			b.Servers[i].Up = s.Admin != AdminMaint && l.w.running(s.Endpoint)
		}
	}
	return b, nil
}

func (l *fakeLB) SetAddr(_ context.Context, server, address string, port int) error {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	for i, s := range l.backend.Servers {
		if s.Name == server {
			l.backend.Servers[i].Endpoint = Instance{Address: address, Port: port}.Endpoint()
			l.w.record("%s addr %s %s:%d", l.name, server, address, port)
			return nil
		}
	}
	return errors.New("No such server.")
}

func (l *fakeLB) SetState(_ context.Context, server string, state AdminState) error {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	for i, s := range l.backend.Servers {
		if s.Name == server {
			l.backend.Servers[i].Admin = state
			if state != AdminReady {
				l.backend.Servers[i].Sessions = 0 // the drain finishes at once
			}
			l.w.record("%s state %s %s", l.name, server, state)
			return nil
		}
	}
	return errors.New("No such server.")
}

// running must be called with w.mu held.
func (w *world) running(endpoint string) bool {
	for _, h := range testHosts {
		for port, active := range w.units[h.Name] {
			if active && (Instance{Address: h.Address, Port: port}).Endpoint() == endpoint {
				return true
			}
		}
	}
	return false
}

type fakeAgent struct{ w *world }

func (a fakeAgent) Inspect(_ context.Context, h Host) (HostState, error) {
	a.w.mu.Lock()
	defer a.w.mu.Unlock()
	st := HostState{CPUs: 2, Active: map[int]bool{}}
	for p, on := range a.w.units[h.Name] {
		st.Active[p] = on
	}
	return st, nil
}

func (a fakeAgent) Start(_ context.Context, h Host, port int) error {
	a.w.mu.Lock()
	defer a.w.mu.Unlock()
	a.w.units[h.Name][port] = true
	a.w.record("start %s:%d", h.Name, port)
	return nil
}

func (a fakeAgent) Stop(_ context.Context, h Host, port int) error {
	a.w.mu.Lock()
	defer a.w.mu.Unlock()
	if a.w.failStop {
		return errors.New("ssh: connection refused")
	}
	a.w.units[h.Name][port] = false
	a.w.record("stop %s:%d", h.Name, port)
	return nil
}

type fakeScraper struct{ w *world }

func (s fakeScraper) Scrape(context.Context, string) (InstanceMetrics, error) {
	return InstanceMetrics{}, nil
}

func (s fakeScraper) Ready(_ context.Context, endpoint string) error {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if !s.w.running(endpoint) {
		return errors.New("connection refused")
	}
	return nil
}

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func newTestController(t *testing.T, w *world, clock *fakeClock, reg *prometheus.Registry) *Controller {
	t.Helper()
	lbs := make([]LoadBalancer, len(w.lbs))
	for i, l := range w.lbs {
		lbs[i] = l
	}
	p := testPolicy()
	p.TargetInFlight, p.TargetP95 = 0, 0
	c, err := New(Config{
		Policy: p, Pool: testPool, SlotPrefix: "pool", MaxPerHost: 3,
		Interval: 2 * time.Second, SignalWindow: 10 * time.Second,
		DrainTimeout: time.Second, ReadyTimeout: time.Second, HostRequestCooldown: time.Minute,
	}, Deps{
		LoadBalancers: lbs, Agent: fakeAgent{w}, Scraper: fakeScraper{w},
		Hosts:   func() ([]Host, error) { return testHosts, nil },
		Metrics: NewMetrics(reg), Clock: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// run ticks the controller every 2 s of fake time for d, offering rps.
func run(c *Controller, w *world, clock *fakeClock, d time.Duration, rps float64) {
	for end := clock.now.Add(d); clock.now.Before(end); clock.now = clock.now.Add(2 * time.Second) {
		w.offer(rps, 1)
		c.Tick(context.Background())
	}
}

func (w *world) slotTable(lb int) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, s := range w.lbs[lb].backend.Servers {
		if s.Admin != AdminMaint {
			out = append(out, s.Name+"="+s.Endpoint+"/"+s.Admin.String())
		}
	}
	return out
}

func TestControllerScalesUpAndDown(t *testing.T) {
	w, clock, reg := newWorld(), &fakeClock{now: t0}, prometheus.NewRegistry()
	c := newTestController(t, w, clock, reg)

	run(c, w, clock, 40*time.Second, 60) // 3 times the target on 2 instances
	if got := metricValue(t, reg, "timestamp_autoscaler_instances_current"); got < 5 {
		t.Fatalf("instances_current = %g after 40 s at 60 rps, want at least 5", got)
	}
	if !slices.Equal(w.slotTable(0), w.slotTable(1)) {
		t.Errorf("load balancers differ:\n%v\n%v", w.slotTable(0), w.slotTable(1))
	}

	run(c, w, clock, 3*time.Minute, 5)
	if got := metricValue(t, reg, "timestamp_autoscaler_instances_current"); got != 2 {
		t.Errorf("instances_current = %g after 3 min at 5 rps, want the minimum 2", got)
	}
	if tables := w.slotTable(0); len(tables) != 2 {
		t.Errorf("servers not in maintenance = %v, want only the 2 static ones", tables)
	}
}

// Every removed instance is drained on both load balancers before its unit
// stops, and its slot is freed only after.
func TestControllerDrainsBeforeStop(t *testing.T) {
	w, clock, reg := newWorld(), &fakeClock{now: t0}, prometheus.NewRegistry()
	c := newTestController(t, w, clock, reg)
	run(c, w, clock, 40*time.Second, 60)
	rampDown := len(w.events)
	run(c, w, clock, 3*time.Minute, 5)

	stops := 0
	for i, ev := range w.events[rampDown:] {
		hostPort, ok := strings.CutPrefix(ev, "stop ")
		if !ok {
			continue
		}
		stops++
		at := rampDown + i
		slot := lastSlotOf(t, w.events[:at], hostPort)
		for _, lb := range []string{"lb1", "lb2"} {
			drain := slices.Index(w.events[rampDown:], lb+" state "+slot+" drain") + rampDown
			maint := slices.Index(w.events[at:], lb+" state "+slot+" maint")
			if drain < rampDown || drain > at {
				t.Errorf("%s: %s not drained on %s before the stop; events %v", hostPort, slot, lb, w.events)
			}
			if maint < 0 {
				t.Errorf("%s: %s not freed on %s after the stop; events %v", hostPort, slot, lb, w.events)
			}
		}
	}
	if stops == 0 {
		t.Fatalf("no instance stopped; events %v", w.events)
	}
}

// lastSlotOf returns the slot that the last "addr" event before the end of
// events pointed at host:port ("api1:8081").
func lastSlotOf(t *testing.T, events []string, hostPort string) string {
	t.Helper()
	host, port, _ := strings.Cut(hostPort, ":")
	address := map[string]string{"api1": "10.0.0.21", "api2": "10.0.0.22"}[host]
	for i := len(events) - 1; i >= 0; i-- {
		f := strings.Fields(events[i])
		if len(f) == 4 && f[1] == "addr" && f[3] == address+":"+port {
			return f[2]
		}
	}
	t.Fatalf("no slot was pointed at %s", hostPort)
	return ""
}

// A controller killed after starting units but before registering them:
// the next one adopts them, once, on both load balancers.
func TestControllerRestartAdoptsOrphans(t *testing.T) {
	w, clock, reg := newWorld(), &fakeClock{now: t0}, prometheus.NewRegistry()
	w.units["api1"][8081] = true
	w.units["api2"][8081] = true
	_ = w.lbs[0].SetAddr(context.Background(), "pool3", "10.0.0.21", 8081) // half a registration
	_ = w.lbs[0].SetState(context.Background(), "pool3", AdminReady)

	c := newTestController(t, w, clock, reg)
	c.Tick(context.Background())

	want := []string{
		"api1-8080=10.0.0.21:8080/ready", "api2-8080=10.0.0.22:8080/ready",
		"pool1=10.0.0.22:8081/ready", "pool3=10.0.0.21:8081/ready",
	}
	for lb := range w.lbs {
		if got := w.slotTable(lb); !slices.Equal(got, want) {
			t.Errorf("lb%d servers = %v, want %v", lb+1, got, want)
		}
	}
	if got := metricValue(t, reg, "timestamp_autoscaler_reconcile_fixes_total"); got != 3 {
		t.Errorf("reconcile fixes = %g, want 3 (pool3 on lb2, pool1 on both)", got)
	}
}

// A stop that fails leaves the slot in drain; a later tick carries on.
func TestControllerRetriesFailedStop(t *testing.T) {
	w, clock, reg := newWorld(), &fakeClock{now: t0}, prometheus.NewRegistry()
	c := newTestController(t, w, clock, reg)
	run(c, w, clock, 40*time.Second, 60)
	w.failStop = true
	run(c, w, clock, 2*time.Minute, 5)
	if got := metricValue(t, reg, "timestamp_autoscaler_errors_total", "operation", "stop_instance"); got == 0 {
		t.Fatal("no stop error counted while stops fail")
	}
	var draining []string
	for _, entry := range w.slotTable(0) {
		if strings.HasSuffix(entry, "/drain") {
			draining = append(draining, entry)
		}
	}
	if len(draining) == 0 {
		t.Fatalf("no slot in drain while stops fail: %v", w.slotTable(0))
	}

	w.failStop = false
	run(c, w, clock, 4*time.Second, 5)
	for lb := range w.lbs {
		for _, entry := range w.slotTable(lb) {
			if strings.HasSuffix(entry, "/drain") {
				t.Errorf("lb%d: %s still in drain after the stop worked again", lb+1, entry)
			}
		}
	}
}

func TestControllerStandbyDoesNothing(t *testing.T) {
	w, clock, reg := newWorld(), &fakeClock{now: t0}, prometheus.NewRegistry()
	c := newTestController(t, w, clock, reg)
	c.deps.Active = func(context.Context) (bool, error) { return false, nil }
	run(c, w, clock, 40*time.Second, 60)
	if len(w.events) != 0 {
		t.Errorf("events on standby = %v, want none", w.events)
	}
	if got := metricValue(t, reg, "timestamp_autoscaler_active"); got != 0 {
		t.Errorf("active = %g on standby, want 0", got)
	}
}

func TestControllerAsksForHosts(t *testing.T) {
	w, clock, reg := newWorld(), &fakeClock{now: t0}, prometheus.NewRegistry()
	c := newTestController(t, w, clock, reg) // 3 per host: 6 instances at most
	run(c, w, clock, 2*time.Minute, 200)
	if got := metricValue(t, reg, "timestamp_autoscaler_instances_current"); got != 6 {
		t.Errorf("instances_current = %g, want 6 (two hosts of 3)", got)
	}
	if got := metricValue(t, reg, "timestamp_autoscaler_hosts_requested"); got != 3 {
		t.Errorf("hosts_requested = %g, want 3", got)
	}
}

// metricValue returns the value of a gauge or counter in reg, the series
// with the given label name and value pairs; 0 when there is none.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !found {
					continue series
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// A controller killed after draining on one load balancer: the next one
// drains on the other, stops the unit and frees the slot on both.
func TestControllerRestartCarriesOnDrain(t *testing.T) {
	w, clock, reg := newWorld(), &fakeClock{now: t0}, prometheus.NewRegistry()
	w.units["api1"][8081] = true
	for _, lb := range w.lbs {
		_ = lb.SetAddr(context.Background(), "pool1", "10.0.0.21", 8081)
		_ = lb.SetState(context.Background(), "pool1", AdminReady)
	}
	_ = w.lbs[0].SetState(context.Background(), "pool1", AdminDrain)
	w.events = nil

	c := newTestController(t, w, clock, reg)
	c.Tick(context.Background())

	stop := slices.Index(w.events, "stop api1:8081")
	if stop < 0 {
		t.Fatalf("api1:8081 not stopped; events %v", w.events)
	}
	for _, lb := range []string{"lb1", "lb2"} {
		if i := slices.Index(w.events, lb+" state pool1 drain"); i < 0 || i > stop {
			t.Errorf("%s: pool1 not drained before the stop; events %v", lb, w.events)
		}
		if i := slices.Index(w.events, lb+" state pool1 maint"); i < stop {
			t.Errorf("%s: pool1 not freed after the stop; events %v", lb, w.events)
		}
	}
}
