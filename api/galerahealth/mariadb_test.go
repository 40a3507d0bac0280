package galerahealth

import "testing"

func TestParseStatusSynced(t *testing.T) {
	got, err := parseStatus(map[string]string{
		"wsrep_local_state":         "4",
		"wsrep_local_state_comment": "Synced",
		"wsrep_ready":               "ON",
		"wsrep_cluster_status":      "Primary",
		"wsrep_cluster_size":        "3",
	})
	if err != nil {
		t.Fatalf("parseStatus: %v", err)
	}
	want := Status{LocalState: StateSynced, Comment: "Synced", Ready: true, ClusterStatus: "Primary", ClusterSize: 3}
	if got != want {
		t.Errorf("parseStatus = %+v, want %+v", got, want)
	}
}

func TestParseStatusWithoutWsrep(t *testing.T) {
	got, err := parseStatus(map[string]string{})
	if err != nil {
		t.Fatalf("parseStatus: %v", err)
	}
	if got != (Status{}) {
		t.Errorf("parseStatus(empty) = %+v, want the zero Status", got)
	}
	if got.Problem() == "" {
		t.Error("a server without wsrep counts as healthy, want a problem")
	}
}

func TestParseStatusInvalidNumber(t *testing.T) {
	for _, name := range []string{"wsrep_local_state", "wsrep_cluster_size"} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseStatus(map[string]string{name: "four"}); err == nil {
				t.Errorf("parseStatus(%s=four) returned no error", name)
			}
		})
	}
}
