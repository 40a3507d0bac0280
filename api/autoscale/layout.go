package autoscale

import (
	"cmp"
	"net"
	"slices"
	"strconv"
	"strings"
)

// Member is a pool instance that holds a server-template slot.
type Member struct {
	Instance
	Slot string
	// Draining is true when a scale-down began on it: it is in drain on
	// at least one load balancer.
	Draining bool
	// Up is true when the first load balancer (the controller's own)
	// sends it traffic.
	Up bool
	// Unverified is true when its host did not respond, so systemd's view
	// of it is unknown. Its slot is kept as it is.
	Unverified bool
}

// Layout is the API backend as Reconcile rebuilt it.
type Layout struct {
	// Static are the servers from the HAProxy configuration (the api
	// role's ports), on the first load balancer. The controller never
	// changes them.
	Static []Server
	// Members hold slots, sorted by slot number.
	Members []Member
	// FreeSlots are unused slot names, lowest number first.
	FreeSlots []string
}

// InRotation returns the number of instances that take traffic on the
// first load balancer: static servers and members that are up and not
// draining.
func (l Layout) InRotation() int {
	n := 0
	for _, s := range l.Static {
		if s.Up && s.Admin == AdminReady {
			n++
		}
	}
	for _, m := range l.Members {
		if m.Up && !m.Draining {
			n++
		}
	}
	return n
}

// Fix is one runtime API change that makes a load balancer match the layout.
type Fix struct {
	// LB is the index of the load balancer.
	LB     int
	Server string
	// SetAddr points the server at Address:Port before any state change.
	SetAddr bool
	Address string
	Port    int
	// SetState sets State.
	SetState bool
	State    AdminState
}

// ReconcileInput is the state that one tick read.
type ReconcileInput struct {
	// Backends are the API backends of the load balancers, the
	// controller's own first.
	Backends   []Backend
	SlotPrefix string
	Pool       PortRange
	Hosts      []Host
	// States are the hosts that responded, by name. A host that is
	// missing did not respond.
	States map[string]HostState
}

// Reconcile rebuilds the layout from the load balancers and systemd, and
// lists the changes that make every load balancer agree with it:
//
//   - A pool instance that runs keeps the lowest slot that any load
//     balancer gives it. Every other load balancer is pointed there too,
//     and a second slot for it is freed. So a slot is never shared, and no
//     instance is in two slots (no duplicate).
//   - A running pool instance that no slot holds (a controller stopped
//     between starting it and registering it) takes the lowest free slot
//     (no orphan).
//   - A slot whose instance does not run, whose host is not registered,
//     whose port is outside the pool or that repeats a static server is
//     freed (set to maint).
//   - A member in drain on one load balancer is drained on all, so a
//     scale-down that was interrupted is carried on.
//
// Slots of a host that did not respond are left as they are.
func Reconcile(in ReconcileInput) (Layout, []Fix) {
	slots := slotNames(in.Backends, in.SlotPrefix)
	static := map[string]bool{}
	var layout Layout
	for i, b := range in.Backends {
		for _, s := range b.Servers {
			if _, isSlot := slotIndex(s.Name, in.SlotPrefix); !isSlot {
				static[s.Endpoint] = true
				if i == 0 {
					layout.Static = append(layout.Static, s)
				}
			}
		}
	}

	claims, known := collectClaims(in, slots, static)
	taken := map[string]bool{}
	var members []Member

	// First the instances that some slot holds, in endpoint order so that
	// every run picks the same slots.
	for _, ep := range sortedKeys(claims) {
		c := claims[ep]
		for _, slot := range c.slots {
			if !taken[slot] {
				taken[slot] = true
				members = append(members, Member{Instance: c.instance, Slot: slot,
					Draining: c.draining, Unverified: c.unverified})
				break
			}
		}
	}
	// Then running instances without a slot: adopt them.
	held := map[string]bool{}
	for _, m := range members {
		held[m.Endpoint()] = true
	}
	for _, ep := range sortedKeys(known) {
		if held[ep] {
			continue
		}
		if slot, ok := firstFree(slots, taken); ok {
			taken[slot] = true
			members = append(members, Member{Instance: known[ep], Slot: slot})
		}
	}

	for _, slot := range slots {
		if !taken[slot] {
			layout.FreeSlots = append(layout.FreeSlots, slot)
		}
	}
	slices.SortFunc(members, func(a, b Member) int {
		return cmp.Compare(slotNumber(a.Slot, in.SlotPrefix), slotNumber(b.Slot, in.SlotPrefix))
	})
	fixes := planFixes(in, members, layout.FreeSlots)
	markUp(in, members)
	layout.Members = members
	return layout, fixes
}

type claim struct {
	instance   Instance
	slots      []string // lowest number first
	draining   bool
	unverified bool
}

// collectClaims returns, for each endpoint that a slot may keep, the slots
// that hold it, and the pool instances that run according to systemd.
func collectClaims(in ReconcileInput, slots []string, static map[string]bool) (map[string]*claim, map[string]Instance) {
	hostByAddr := map[string]Host{}
	for _, h := range in.Hosts {
		hostByAddr[h.Address] = h
	}
	running := map[string]Instance{}
	for _, h := range in.Hosts {
		st, ok := in.States[h.Name]
		if !ok {
			continue
		}
		for port, active := range st.Active {
			if active && in.Pool.Contains(port) {
				inst := Instance{Host: h.Name, Address: h.Address, Port: port}
				running[inst.Endpoint()] = inst
			}
		}
	}

	claims := map[string]*claim{}
	for _, slot := range slots {
		for _, b := range in.Backends {
			s, ok := findServer(b, slot)
			if !ok || s.Admin == AdminMaint || static[s.Endpoint] {
				continue
			}
			inst, unverified, keep := slotInstance(s.Endpoint, hostByAddr, running, in)
			if !keep {
				continue
			}
			c := claims[s.Endpoint]
			if c == nil {
				c = &claim{instance: inst, unverified: unverified}
				claims[s.Endpoint] = c
			}
			if !slices.Contains(c.slots, slot) {
				c.slots = append(c.slots, slot)
			}
			c.draining = c.draining || s.Admin == AdminDrain
		}
	}
	return claims, running
}

// slotInstance resolves a slot's endpoint. keep is false when the slot
// must be freed.
func slotInstance(endpoint string, hostByAddr map[string]Host, running map[string]Instance,
	in ReconcileInput) (inst Instance, unverified, keep bool) {
	if r, ok := running[endpoint]; ok {
		return r, false, true
	}
	addr, portText, err := net.SplitHostPort(endpoint)
	if err != nil {
		return Instance{}, false, false
	}
	port, err := strconv.Atoi(portText)
	h, registered := hostByAddr[addr]
	if err != nil || !registered || !in.Pool.Contains(port) {
		return Instance{}, false, false
	}
	if _, answered := in.States[h.Name]; answered {
		return Instance{}, false, false // the host responded, so the unit does not run
	}
	return Instance{Host: h.Name, Address: addr, Port: port}, true, true
}

func planFixes(in ReconcileInput, members []Member, free []string) []Fix {
	var fixes []Fix
	for i, b := range in.Backends {
		for _, m := range members {
			s, ok := findServer(b, m.Slot)
			if !ok {
				continue
			}
			want := AdminReady
			if m.Draining {
				want = AdminDrain
			}
			fix := Fix{LB: i, Server: m.Slot}
			if s.Endpoint != m.Endpoint() {
				fix.SetAddr, fix.Address, fix.Port = true, m.Address, m.Port
			}
			if s.Admin != want {
				fix.SetState, fix.State = true, want
			}
			if fix.SetAddr || fix.SetState {
				fixes = append(fixes, fix)
			}
		}
		for _, slot := range free {
			if s, ok := findServer(b, slot); ok && s.Admin != AdminMaint {
				fixes = append(fixes, Fix{LB: i, Server: slot, SetState: true, State: AdminMaint})
			}
		}
	}
	return fixes
}

func markUp(in ReconcileInput, members []Member) {
	if len(in.Backends) == 0 {
		return
	}
	for i := range members {
		s, ok := findServer(in.Backends[0], members[i].Slot)
		members[i].Up = ok && s.Up && s.Endpoint == members[i].Endpoint()
	}
}

// slotNames returns the slot names of every backend, lowest number first.
func slotNames(backends []Backend, prefix string) []string {
	seen := map[string]bool{}
	var names []string
	for _, b := range backends {
		for _, s := range b.Servers {
			if _, ok := slotIndex(s.Name, prefix); ok && !seen[s.Name] {
				seen[s.Name] = true
				names = append(names, s.Name)
			}
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Compare(slotNumber(a, prefix), slotNumber(b, prefix))
	})
	return names
}

// slotIndex parses a server-template name: PREFIX followed by a number.
func slotIndex(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || rest == "" {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n > 0
}

func slotNumber(name, prefix string) int {
	n, _ := slotIndex(name, prefix)
	return n
}

func findServer(b Backend, name string) (Server, bool) {
	for _, s := range b.Servers {
		if s.Name == name {
			return s, true
		}
	}
	return Server{}, false
}

func firstFree(slots []string, taken map[string]bool) (string, bool) {
	for _, s := range slots {
		if !taken[s] {
			return s, true
		}
	}
	return "", false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
