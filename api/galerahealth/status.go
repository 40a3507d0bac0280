// Package galerahealth reports over HTTP whether a MariaDB Galera node may
// take client traffic. HAProxy polls it (option httpchk on port 9200) and
// sends connections only to nodes that respond with 200.
//
// A node is healthy only while it is Synced (wsrep_local_state 4), wsrep_ready
// is ON and its component is Primary. Every other state, an unreachable
// server and an operator's maintenance file make it respond with 503 and
// a reason.
package galerahealth

import (
	"context"
	"fmt"
	"strings"
)

// LocalState is a node's position in the Galera state machine, the value of
// the status variable wsrep_local_state. The numbers are defined by Galera
// (galeracluster.com, "Node State Changes" and "Galera Status Variables").
type LocalState int

// Galera node states. A node in any state but StateSynced may lag behind the
// cluster or be blocked by a state transfer, so it must not take clients.
const (
	StateUnknown LocalState = 0 // no value, for example wsrep is off
	StateJoining LocalState = 1 // requesting or receiving a state transfer
	StateDonor   LocalState = 2 // Donor/Desynced: serving a state transfer or desynced by an operator
	StateJoined  LocalState = 3 // state received, catching up on the write-sets queued meanwhile
	StateSynced  LocalState = 4 // applies write-sets in order with the cluster
)

// String returns the state's name as Galera's wsrep_local_state_comment
// spells it.
func (s LocalState) String() string {
	switch s {
	case StateJoining:
		return "Joining"
	case StateDonor:
		return "Donor/Desynced"
	case StateJoined:
		return "Joined"
	case StateSynced:
		return "Synced"
	default:
		return fmt.Sprintf("unknown (%d)", int(s))
	}
}

// ClusterPrimary is the value of wsrep_cluster_status for a node in the
// Primary component, the only one that accepts writes. Other values are
// non-Primary (a partition without quorum) and Disconnected.
const ClusterPrimary = "Primary"

// Status holds the wsrep status variables that decide a node's health.
type Status struct {
	LocalState    LocalState // wsrep_local_state
	Comment       string     // wsrep_local_state_comment, as reported by the server
	Ready         bool       // wsrep_ready: ON when the node accepts queries
	ClusterStatus string     // wsrep_cluster_status: Primary, non-Primary or Disconnected
	ClusterSize   int        // wsrep_cluster_size: number of nodes in this node's component
}

// StatusSource reads a node's current Status. Implementations must return
// promptly once ctx is done.
type StatusSource interface {
	Status(ctx context.Context) (Status, error)
}

// Unhealthy reasons. Each is one line of plain text that goes into the 503
// response, so an operator sees at once why HAProxy took the node out.
const (
	reasonMaintenance  = "maintenance file exists"
	reasonUnreachable  = "mariadb did not respond to the status query"
	reasonWsrepOff     = "wsrep is not enabled or the provider is not loaded"
	reasonNotPrimary   = "node is not in the Primary component"
	reasonNotReady     = "wsrep_ready is OFF"
	reasonNotSyncedFmt = "node state is %s, not Synced"
)

// Problem returns why a node with this status must not take clients, or ""
// when it is healthy. The checks run from the most to the least severe, so
// a non-Primary node that is also not ready reports the partition.
func (s Status) Problem() string {
	if s.LocalState == StateUnknown && s.ClusterStatus == "" {
		return reasonWsrepOff
	}
	if !strings.EqualFold(s.ClusterStatus, ClusterPrimary) {
		return reasonNotPrimary
	}
	if !s.Ready {
		return reasonNotReady
	}
	if s.LocalState != StateSynced {
		return fmt.Sprintf(reasonNotSyncedFmt, s.LocalState)
	}
	return ""
}
