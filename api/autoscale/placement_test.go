package autoscale

import (
	"slices"
	"testing"
)

func placementInput(active map[string][]int, maxPerHost int) PlacementInput {
	b := backend(nil)
	states := hostStates(active)
	layout, _ := reconcile([]Backend{b}, states)
	return PlacementInput{
		Layout: layout, Hosts: testHosts, States: states, Pool: testPool, MaxPerHost: maxPerHost,
	}
}

func endpoints[T interface{ Endpoint() string }](items []T) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Endpoint()
	}
	return out
}

func TestPlanScaleUpSpreadsOverHosts(t *testing.T) {
	placements, short := PlanScaleUp(3, placementInput(nil, 4))
	want := []string{"10.0.0.21:8081", "10.0.0.22:8081", "10.0.0.21:8082"}
	if got := endpoints(placements); !slices.Equal(got, want) {
		t.Errorf("placements = %v, want %v", got, want)
	}
	if short != 0 {
		t.Errorf("short = %d, want 0", short)
	}
	var slots []string
	for _, p := range placements {
		slots = append(slots, p.Slot)
	}
	if !slices.Equal(slots, []string{"pool1", "pool2", "pool3"}) {
		t.Errorf("slots = %v, want pool1 to pool3", slots)
	}
}

func TestPlanScaleUpSkipsBusyPort(t *testing.T) {
	// A unit runs on 8081 of api1 outside every slot (adopted later).
	in := placementInput(nil, 4)
	in.States["api1"].Active[8081] = true
	placements, _ := PlanScaleUp(1, in)
	if got := endpoints(placements); !slices.Equal(got, []string{"10.0.0.21:8082"}) {
		t.Errorf("placements = %v, want 10.0.0.21:8082", got)
	}
}

func TestPlanScaleUpShortWhenHostsFull(t *testing.T) {
	placements, short := PlanScaleUp(3, placementInput(nil, 2))
	if len(placements) != 2 || short != 1 {
		t.Errorf("got %d placements and %d short, want 2 and 1", len(placements), short)
	}
}

func TestPlanScaleUpAvoidsBusyHost(t *testing.T) {
	in := placementInput(nil, 4)
	in.CPUHigh = 0.8
	in.HostCPU = map[string]float64{"api1": 0.95, "api2": 0.3}
	placements, _ := PlanScaleUp(2, in)
	if got := endpoints(placements); !slices.Equal(got, []string{"10.0.0.22:8081", "10.0.0.22:8082"}) {
		t.Errorf("placements = %v, want both on api2", got)
	}
}

func TestPlanScaleUpSkipsSilentHost(t *testing.T) {
	in := placementInput(nil, 4)
	delete(in.States, "api1")
	placements, _ := PlanScaleUp(1, in)
	if got := endpoints(placements); !slices.Equal(got, []string{"10.0.0.22:8081"}) {
		t.Errorf("placements = %v, want api2 only", got)
	}
}

func TestPlanScaleDownOrder(t *testing.T) {
	b := backend(map[int]Server{
		1: slot(1, "10.0.0.21:8081", AdminReady),
		2: slot(2, "10.0.0.21:8082", AdminReady),
		3: slot(3, "10.0.0.22:8081", AdminReady),
	})
	states := hostStates(map[string][]int{"api1": {8081, 8082}, "api2": {8081}})
	layout, _ := reconcile([]Backend{b}, states)
	in := PlacementInput{Layout: layout, Hosts: testHosts, States: states, Pool: testPool, MaxPerHost: 4}

	victims := PlanScaleDown(2, in)
	// api1 has the most instances. After that pick both hosts have two, so
	// the tie goes to the same port on the first host by name.
	want := []string{"10.0.0.21:8082", "10.0.0.21:8081"}
	if got := endpoints(victims); !slices.Equal(got, want) {
		t.Errorf("victims = %v, want %v", got, want)
	}
}

func TestPlanScaleDownPrefersDownMembers(t *testing.T) {
	down := slot(2, "10.0.0.22:8081", AdminReady)
	down.Up = false
	b := backend(map[int]Server{1: slot(1, "10.0.0.21:8081", AdminReady), 2: down})
	states := hostStates(map[string][]int{"api1": {8081}, "api2": {8081}})
	layout, _ := reconcile([]Backend{b}, states)
	victims := PlanScaleDown(1, PlacementInput{Layout: layout, Hosts: testHosts, States: states, Pool: testPool})
	if got := endpoints(victims); !slices.Equal(got, []string{"10.0.0.22:8081"}) {
		t.Errorf("victims = %v, want the down member 10.0.0.22:8081", got)
	}
}

func TestPlanScaleDownNeverStatic(t *testing.T) {
	victims := PlanScaleDown(2, placementInput(nil, 4))
	if len(victims) != 0 {
		t.Errorf("victims = %v, want none: only static servers", endpoints(victims))
	}
}
