package haproxy

import (
	"encoding/csv"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"example.com/timestamp/api/autoscale"
)

// Administrative state flags of `show servers state` (srv_admin_state),
// from HAProxy's include/haproxy/server-t.h (enum srv_admin). The
// configuration's "disabled" sets 0x04 (CMAINT) together with 0x01; 0x04
// alone does not mean maintenance, so HAProxy's own mask 0x23 leaves it
// out, and so does Admin.
const (
	adminForcedMaint    = 0x01 // set server ... state maint, or "disabled"
	adminInheritedMaint = 0x02 // tracks a server in maintenance
	adminDrainMask      = 0x18 // forced or inherited drain
	adminResolveMaint   = 0x20 // address resolution failed
)

// Operational states of `show servers state` (srv_op_state), from enum
// srv_state in the same header.
const (
	opStopped  = 0 // down
	opStarting = 1 // up, slow start
	opRunning  = 2 // up
)

// ServerState is one line of `show servers state BACKEND`.
type ServerState struct {
	Name       string
	Address    string
	Port       int
	OpState    int
	AdminFlags int
}

// Admin maps the flags to the state the autoscaler sets. A server that
// the configuration disables ("disabled", as server-template slots start)
// is in maintenance until `state ready` clears it.
func (s ServerState) Admin() autoscale.AdminState {
	switch {
	case s.AdminFlags&(adminForcedMaint|adminInheritedMaint|adminResolveMaint) != 0:
		return autoscale.AdminMaint
	case s.AdminFlags&adminDrainMask != 0:
		return autoscale.AdminDrain
	}
	return autoscale.AdminReady
}

// Up reports whether the server passes its check and is not in
// maintenance.
func (s ServerState) Up() bool {
	return s.Admin() != autoscale.AdminMaint && (s.OpState == opRunning || s.OpState == opStarting)
}

// ParseServersState parses the output of `show servers state BACKEND`: a
// format version line ("1"), a "# be_id be_name ..." header, and one line
// of space-separated fields per server. Lines of other backends are
// skipped.
func ParseServersState(out, backend string) ([]ServerState, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || strings.TrimSpace(lines[0]) != "1" {
		return nil, fmt.Errorf("show servers state: unexpected output %q; expected format version 1 (HAProxy 1.6 to 3.x)",
			firstLine(out))
	}
	header := strings.Fields(strings.TrimPrefix(lines[1], "#"))
	col := map[string]int{}
	for i, name := range header {
		col[name] = i
	}
	for _, name := range []string{"be_name", "srv_name", "srv_addr", "srv_op_state", "srv_admin_state", "srv_port"} {
		if _, ok := col[name]; !ok {
			return nil, fmt.Errorf("show servers state: header has no column %s", name)
		}
	}

	var servers []ServerState
	for _, line := range lines[2:] {
		f := strings.Fields(line)
		if len(f) < len(header) || f[col["be_name"]] != backend {
			continue
		}
		st := ServerState{Name: f[col["srv_name"]], Address: f[col["srv_addr"]]}
		var err error
		if st.Port, err = strconv.Atoi(f[col["srv_port"]]); err != nil {
			return nil, fmt.Errorf("show servers state: server %s: invalid port %q", st.Name, f[col["srv_port"]])
		}
		if st.OpState, err = strconv.Atoi(f[col["srv_op_state"]]); err != nil {
			return nil, fmt.Errorf("show servers state: server %s: invalid srv_op_state %q", st.Name, f[col["srv_op_state"]])
		}
		if st.AdminFlags, err = strconv.Atoi(f[col["srv_admin_state"]]); err != nil {
			return nil, fmt.Errorf("show servers state: server %s: invalid srv_admin_state %q", st.Name, f[col["srv_admin_state"]])
		}
		servers = append(servers, st)
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("show servers state: backend %s has no server; check the backend name", backend)
	}
	return servers, nil
}

// Counters are the `show stat` figures of one server.
type Counters struct {
	Sessions int    // scur
	Queued   int    // qcur
	Total    uint64 // stot
}

// Stat is the `show stat` part of one backend.
type Stat struct {
	Servers       map[string]Counters
	BackendQueued int
}

// ParseStat parses the CSV of `show stat`, whose first line is the
// header "# pxname,svname,...", and returns the rows of backend.
func ParseStat(out, backend string) (Stat, error) {
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(strings.TrimSpace(out), "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return Stat{}, fmt.Errorf("show stat: %w", err)
	}
	if len(rows) == 0 {
		return Stat{}, errors.New("show stat: empty output")
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	last := 0
	for _, name := range []string{"pxname", "svname", "qcur", "scur", "stot"} {
		i, ok := col[name]
		if !ok {
			return Stat{}, fmt.Errorf("show stat: header has no column %s", name)
		}
		last = max(last, i)
	}

	st := Stat{Servers: map[string]Counters{}}
	found := false
	for _, row := range rows[1:] {
		if len(row) <= last || row[col["pxname"]] != backend {
			continue
		}
		found = true
		c := Counters{
			Sessions: atoi(row[col["scur"]]),
			Queued:   atoi(row[col["qcur"]]),
			Total:    uint64(atoi(row[col["stot"]])),
		}
		switch name := row[col["svname"]]; name {
		case "BACKEND":
			st.BackendQueued = c.Queued
		case "FRONTEND":
		default:
			st.Servers[name] = c
		}
	}
	if !found {
		return Stat{}, fmt.Errorf("show stat: no backend %s", backend)
	}
	return st, nil
}

// atoi reads a counter; HAProxy leaves a field empty where it does not
// apply, which counts as 0.
func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
