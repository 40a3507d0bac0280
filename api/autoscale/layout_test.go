package autoscale

import (
	"fmt"
	"slices"
	"testing"
)

var (
	testHosts = []Host{{"api1", "10.0.0.21"}, {"api2", "10.0.0.22"}}
	testPool  = PortRange{First: 8081, Last: 8084}
)

func static(name, endpoint string) Server {
	return Server{Name: name, Endpoint: endpoint, Admin: AdminReady, Up: true}
}

func slot(n int, endpoint string, admin AdminState) Server {
	return Server{Name: fmt.Sprintf("pool%d", n), Endpoint: endpoint, Admin: admin, Up: admin != AdminMaint}
}

// backend returns the two static servers and four slots; set overrides
// slots by number.
func backend(set map[int]Server) Backend {
	b := Backend{Servers: []Server{
		static("api1-8080", "10.0.0.21:8080"),
		static("api2-8080", "10.0.0.22:8080"),
	}}
	for n := 1; n <= 4; n++ {
		s, ok := set[n]
		if !ok {
			s = slot(n, "127.0.0.1:8081", AdminMaint)
		}
		b.Servers = append(b.Servers, s)
	}
	return b
}

func hostStates(active map[string][]int) map[string]HostState {
	out := map[string]HostState{}
	for _, h := range testHosts {
		st := HostState{CPUs: 2, Active: map[int]bool{8080: true}}
		for _, p := range active[h.Name] {
			st.Active[p] = true
		}
		out[h.Name] = st
	}
	return out
}

func reconcile(backends []Backend, states map[string]HostState) (Layout, []Fix) {
	return Reconcile(ReconcileInput{
		Backends: backends, SlotPrefix: "pool", Pool: testPool, Hosts: testHosts, States: states,
	})
}

func memberSlots(l Layout) map[string]string {
	out := map[string]string{}
	for _, m := range l.Members {
		out[m.Endpoint()] = m.Slot
	}
	return out
}

func TestReconcileConsistent(t *testing.T) {
	b := backend(map[int]Server{1: slot(1, "10.0.0.21:8081", AdminReady)})
	layout, fixes := reconcile([]Backend{b, b}, hostStates(map[string][]int{"api1": {8081}}))
	if len(fixes) != 0 {
		t.Errorf("got fixes %+v for a consistent backend, want none", fixes)
	}
	if got := memberSlots(layout); got["10.0.0.21:8081"] != "pool1" || len(got) != 1 {
		t.Errorf("members = %v, want 10.0.0.21:8081 in pool1 only", got)
	}
	if !slices.Equal(layout.FreeSlots, []string{"pool2", "pool3", "pool4"}) {
		t.Errorf("free slots = %v, want pool2 to pool4", layout.FreeSlots)
	}
	if n := layout.InRotation(); n != 3 {
		t.Errorf("in rotation = %d, want 3", n)
	}
}

// A controller stopped after starting a unit and before registering it
// leaves an orphan: the next one adopts it into the lowest free slot on
// every load balancer.
func TestReconcileAdoptsOrphan(t *testing.T) {
	b := backend(nil)
	layout, fixes := reconcile([]Backend{b, b}, hostStates(map[string][]int{"api2": {8081}}))
	if got := memberSlots(layout)["10.0.0.22:8081"]; got != "pool1" {
		t.Fatalf("orphan 10.0.0.22:8081 in slot %q, want pool1", got)
	}
	want := []Fix{
		{LB: 0, Server: "pool1", SetAddr: true, Address: "10.0.0.22", Port: 8081, SetState: true, State: AdminReady},
		{LB: 1, Server: "pool1", SetAddr: true, Address: "10.0.0.22", Port: 8081, SetState: true, State: AdminReady},
	}
	if !slices.Equal(fixes, want) {
		t.Errorf("fixes = %+v, want %+v", fixes, want)
	}
}

// Registered on the first load balancer only: the second one follows.
func TestReconcileCompletesHalfRegistration(t *testing.T) {
	lb1 := backend(map[int]Server{2: slot(2, "10.0.0.21:8081", AdminReady)})
	lb2 := backend(nil)
	_, fixes := reconcile([]Backend{lb1, lb2}, hostStates(map[string][]int{"api1": {8081}}))
	want := []Fix{{LB: 1, Server: "pool2", SetAddr: true, Address: "10.0.0.21", Port: 8081, SetState: true, State: AdminReady}}
	if !slices.Equal(fixes, want) {
		t.Errorf("fixes = %+v, want %+v", fixes, want)
	}
}

func TestReconcileRemovesDuplicate(t *testing.T) {
	lb1 := backend(map[int]Server{
		1: slot(1, "10.0.0.21:8081", AdminReady),
		3: slot(3, "10.0.0.21:8081", AdminReady),
	})
	lb2 := backend(map[int]Server{3: slot(3, "10.0.0.21:8081", AdminReady)})
	layout, fixes := reconcile([]Backend{lb1, lb2}, hostStates(map[string][]int{"api1": {8081}}))
	if len(layout.Members) != 1 || layout.Members[0].Slot != "pool1" {
		t.Fatalf("members = %+v, want one in pool1", layout.Members)
	}
	want := []Fix{
		{LB: 0, Server: "pool3", SetState: true, State: AdminMaint},
		{LB: 1, Server: "pool1", SetAddr: true, Address: "10.0.0.21", Port: 8081, SetState: true, State: AdminReady},
		{LB: 1, Server: "pool3", SetState: true, State: AdminMaint},
	}
	if !slices.Equal(fixes, want) {
		t.Errorf("fixes = %+v, want %+v", fixes, want)
	}
}

func TestReconcileFreesStaleSlots(t *testing.T) {
	tests := []struct {
		name     string
		endpoint string
	}{
		{"unit stopped", "10.0.0.21:8082"},
		{"host not registered", "10.0.0.99:8081"},
		{"port outside the pool", "10.0.0.21:9000"},
		{"repeats a static server", "10.0.0.21:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := backend(map[int]Server{1: slot(1, tt.endpoint, AdminReady)})
			layout, fixes := reconcile([]Backend{b}, hostStates(nil))
			if len(layout.Members) != 0 {
				t.Errorf("members = %+v, want none", layout.Members)
			}
			want := []Fix{{LB: 0, Server: "pool1", SetState: true, State: AdminMaint}}
			if !slices.Equal(fixes, want) {
				t.Errorf("fixes = %+v, want %+v", fixes, want)
			}
		})
	}
}

// A scale-down stopped after draining on one load balancer is carried on:
// the member is marked draining and drained on the other one too.
func TestReconcileCarriesOnDrain(t *testing.T) {
	lb1 := backend(map[int]Server{1: slot(1, "10.0.0.21:8081", AdminDrain)})
	lb2 := backend(map[int]Server{1: slot(1, "10.0.0.21:8081", AdminReady)})
	layout, fixes := reconcile([]Backend{lb1, lb2}, hostStates(map[string][]int{"api1": {8081}}))
	if len(layout.Members) != 1 || !layout.Members[0].Draining {
		t.Fatalf("members = %+v, want one draining", layout.Members)
	}
	want := []Fix{{LB: 1, Server: "pool1", SetState: true, State: AdminDrain}}
	if !slices.Equal(fixes, want) {
		t.Errorf("fixes = %+v, want %+v", fixes, want)
	}
}

// Stopped but not yet freed: the slot is freed.
func TestReconcileFreesDrainedStoppedSlot(t *testing.T) {
	b := backend(map[int]Server{1: slot(1, "10.0.0.21:8081", AdminDrain)})
	layout, fixes := reconcile([]Backend{b, b}, hostStates(nil))
	if len(layout.Members) != 0 {
		t.Errorf("members = %+v, want none", layout.Members)
	}
	if len(fixes) != 2 {
		t.Errorf("fixes = %+v, want pool1 to maint on both", fixes)
	}
}

func TestReconcileKeepsSlotOfSilentHost(t *testing.T) {
	b := backend(map[int]Server{1: slot(1, "10.0.0.22:8081", AdminReady)})
	states := hostStates(nil)
	delete(states, "api2")
	layout, fixes := reconcile([]Backend{b, b}, states)
	if len(fixes) != 0 {
		t.Errorf("fixes = %+v, want none while api2 is silent", fixes)
	}
	if len(layout.Members) != 1 || !layout.Members[0].Unverified {
		t.Errorf("members = %+v, want one unverified", layout.Members)
	}
}

// Two load balancers that disagree on what a slot holds: each instance
// gets its own slot, and both load balancers end up alike.
func TestReconcileSlotConflict(t *testing.T) {
	lb1 := backend(map[int]Server{1: slot(1, "10.0.0.21:8081", AdminReady)})
	lb2 := backend(map[int]Server{1: slot(1, "10.0.0.22:8081", AdminReady)})
	layout, fixes := reconcile([]Backend{lb1, lb2}, hostStates(map[string][]int{"api1": {8081}, "api2": {8081}}))
	got := memberSlots(layout)
	if got["10.0.0.21:8081"] != "pool1" || got["10.0.0.22:8081"] != "pool2" {
		t.Fatalf("members = %v, want api1 in pool1 and api2 in pool2", got)
	}
	after := applyFixes([]Backend{lb1, lb2}, fixes)
	if !slices.Equal(after[0].Servers, after[1].Servers) {
		t.Errorf("after the fixes the load balancers differ:\n%+v\n%+v", after[0].Servers, after[1].Servers)
	}
}

// applyFixes returns the backends as they are after the fixes.
func applyFixes(backends []Backend, fixes []Fix) []Backend {
	out := make([]Backend, len(backends))
	for i, b := range backends {
		out[i] = Backend{Servers: slices.Clone(b.Servers), Queued: b.Queued}
	}
	for _, f := range fixes {
		for j, s := range out[f.LB].Servers {
			if s.Name != f.Server {
				continue
			}
			if f.SetAddr {
				s.Endpoint = Instance{Address: f.Address, Port: f.Port}.Endpoint()
			}
			if f.SetState {
				s.Admin = f.State
				s.Up = f.State != AdminMaint
			}
			out[f.LB].Servers[j] = s
		}
	}
	return out
}
