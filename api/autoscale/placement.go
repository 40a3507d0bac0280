package autoscale

import (
	"cmp"
	"net"
	"slices"
)

// Placement is a new instance and the slot it will take.
type Placement struct {
	Instance
	Slot string
}

// PlacementInput is the state that placing and removing instances read.
type PlacementInput struct {
	Layout Layout
	Hosts  []Host
	States map[string]HostState
	Pool   PortRange
	// MaxPerHost bounds the instances of one host, static ones included.
	MaxPerHost int
	// HostCPU and CPUHigh: a host whose API processes use more than
	// CPUHigh of its processors gets no new instance (0 turns this off).
	HostCPU map[string]float64
	CPUHigh float64
}

// PlanScaleUp places n new instances, one at a time on the host with the
// fewest instances (then the lowest CPU, then the name), each on the
// host's lowest free pool port and in the lowest free slot. Short is how
// many could not be placed: every host is full, busy or silent, or no slot
// is free.
func PlanScaleUp(n int, in PlacementInput) (placements []Placement, short int) {
	count := instancesByHost(in)
	used := map[string]bool{}
	for _, m := range in.Layout.Members {
		used[m.Endpoint()] = true
	}
	free := slices.Clone(in.Layout.FreeSlots)

	for range n {
		h, port, ok := nextHost(in, count, used)
		if !ok || len(free) == 0 {
			short++
			continue
		}
		inst := Instance{Host: h.Name, Address: h.Address, Port: port}
		placements = append(placements, Placement{Instance: inst, Slot: free[0]})
		free = free[1:]
		used[inst.Endpoint()] = true
		count[h.Name]++
	}
	return placements, short
}

func nextHost(in PlacementInput, count map[string]int, used map[string]bool) (Host, int, bool) {
	var candidates []Host
	for _, h := range in.Hosts {
		if _, answered := in.States[h.Name]; !answered || count[h.Name] >= in.MaxPerHost {
			continue
		}
		if in.CPUHigh > 0 && in.HostCPU[h.Name] > in.CPUHigh {
			continue
		}
		if _, ok := freePort(h, in, used); ok {
			candidates = append(candidates, h)
		}
	}
	if len(candidates) == 0 {
		return Host{}, 0, false
	}
	best := slices.MinFunc(candidates, func(a, b Host) int {
		return cmp.Or(
			cmp.Compare(count[a.Name], count[b.Name]),
			cmp.Compare(in.HostCPU[a.Name], in.HostCPU[b.Name]),
			cmp.Compare(a.Name, b.Name))
	})
	port, _ := freePort(best, in, used)
	return best, port, true
}

// freePort returns the host's lowest pool port that no unit runs on and no
// slot holds.
func freePort(h Host, in PlacementInput, used map[string]bool) (int, bool) {
	active := in.States[h.Name].Active
	for port := in.Pool.First; port <= in.Pool.Last; port++ {
		inst := Instance{Host: h.Name, Address: h.Address, Port: port}
		if !active[port] && !used[inst.Endpoint()] {
			return port, true
		}
	}
	return 0, false
}

// PlanScaleDown picks n members to remove: first those that take no
// traffic (their check fails), then from the host with the most
// instances, the highest port first. Static servers, draining members and
// members of hosts that did not respond are never picked.
func PlanScaleDown(n int, in PlacementInput) []Member {
	count := instancesByHost(in)
	var candidates []Member
	for _, m := range in.Layout.Members {
		if !m.Draining && !m.Unverified {
			candidates = append(candidates, m)
		}
	}
	var out []Member
	for range min(n, len(candidates)) {
		// Re-sort after each pick, because a pick lowers its host's count.
		slices.SortFunc(candidates, func(a, b Member) int {
			return cmp.Or(
				compareBool(!a.Up, !b.Up),
				-cmp.Compare(count[a.Host], count[b.Host]),
				-cmp.Compare(a.Port, b.Port),
				cmp.Compare(a.Host, b.Host))
		})
		out = append(out, candidates[0])
		count[candidates[0].Host]--
		candidates = candidates[1:]
	}
	return out
}

// compareBool orders true before false.
func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}

// instancesByHost counts the static servers and members of each host.
func instancesByHost(in PlacementInput) map[string]int {
	byAddr := map[string]string{}
	for _, h := range in.Hosts {
		byAddr[h.Address] = h.Name
	}
	count := map[string]int{}
	for _, s := range in.Layout.Static {
		if addr, _, err := net.SplitHostPort(s.Endpoint); err == nil && byAddr[addr] != "" {
			count[byAddr[addr]]++
		}
	}
	for _, m := range in.Layout.Members {
		count[m.Host]++
	}
	return count
}
