package galerahealth

import "testing"

func TestStatusProblem(t *testing.T) {
	synced := Status{LocalState: StateSynced, Ready: true, ClusterStatus: "Primary", ClusterSize: 3}

	tests := []struct {
		name   string
		status Status
		want   string
	}{
		{"synced primary", synced, ""},
		{"primary lower case", Status{LocalState: StateSynced, Ready: true, ClusterStatus: "primary"}, ""},
		{"donor", Status{LocalState: StateDonor, Ready: true, ClusterStatus: "Primary"},
			"node state is Donor/Desynced, not Synced"},
		{"joining", Status{LocalState: StateJoining, Ready: false, ClusterStatus: "Primary"},
			"wsrep_ready is OFF"},
		{"joined", Status{LocalState: StateJoined, Ready: true, ClusterStatus: "Primary"},
			"node state is Joined, not Synced"},
		{"non-primary", Status{LocalState: StateSynced, Ready: false, ClusterStatus: "non-Primary"},
			"node is not in the Primary component"},
		{"disconnected", Status{LocalState: StateUnknown, ClusterStatus: "Disconnected"},
			"node is not in the Primary component"},
		{"not ready", Status{LocalState: StateSynced, Ready: false, ClusterStatus: "Primary"},
			"wsrep_ready is OFF"},
		{"wsrep off", Status{}, "wsrep is not enabled or the provider is not loaded"},
		{"state out of range", Status{LocalState: 7, Ready: true, ClusterStatus: "Primary"},
			"node state is unknown (7), not Synced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.status.Problem(); got != tt.want {
				t.Errorf("Problem() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLocalStateString(t *testing.T) {
	if got := StateSynced.String(); got != "Synced" {
		t.Errorf("StateSynced.String() = %q, want %q", got, "Synced")
	}
	if got := LocalState(0).String(); got != "unknown (0)" {
		t.Errorf("LocalState(0).String() = %q, want %q", got, "unknown (0)")
	}
}
