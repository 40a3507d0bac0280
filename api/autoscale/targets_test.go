package autoscale

import (
	"encoding/json"
	"testing"
)

func TestScrapeTargets(t *testing.T) {
	b := backend(map[int]Server{
		1: slot(1, "10.0.0.21:8081", AdminReady),
		2: slot(2, "10.0.0.22:8082", AdminDrain),
		// Down but ready: a crashed instance stays a target, so that its
		// failed scrapes show.
		3: {Name: "pool3", Endpoint: "10.0.0.9:8083", Admin: AdminReady, Up: false},
	})
	got, err := json.Marshal(ScrapeTargets(b, "pool", testHosts))
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"targets":["10.0.0.21:8081"],"labels":{"host":"api1","instance":"api1:8081"}},` +
		`{"targets":["10.0.0.22:8082"],"labels":{"host":"api2","instance":"api2:8082"}},` +
		`{"targets":["10.0.0.9:8083"],"labels":{"host":"10.0.0.9","instance":"10.0.0.9:8083"}}]`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestScrapeTargetsNoInstance(t *testing.T) {
	got, err := json.Marshal(ScrapeTargets(backend(nil), "pool", testHosts))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "[]" {
		t.Errorf("got %s, want [] for a backend whose slots are all free", got)
	}
}
