package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"example.com/timestamp/api/autoscale"
)

// fakeBackend is a load balancer whose API backend is fixed.
type fakeBackend struct {
	backend autoscale.Backend
	err     error
}

func (f fakeBackend) Name() string { return "fake" }

func (f fakeBackend) Backend(context.Context) (autoscale.Backend, error) { return f.backend, f.err }

func (f fakeBackend) SetAddr(context.Context, string, string, int) error { return nil }

func (f fakeBackend) SetState(context.Context, string, autoscale.AdminState) error { return nil }

func getTargets(t *testing.T, lb autoscale.LoadBalancer, hosts func() ([]autoscale.Host, error)) *http.Response {
	t.Helper()
	srv := httptest.NewServer(targetsHandler(lb, "pool", hosts, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestTargetsListsPoolInstances(t *testing.T) {
	lb := fakeBackend{backend: autoscale.Backend{Servers: []autoscale.Server{
		{Name: "api1-8080", Endpoint: "10.0.0.21:8080", Admin: autoscale.AdminReady, Up: true},
		{Name: "pool1", Endpoint: "10.0.0.21:8081", Admin: autoscale.AdminReady, Up: true},
		{Name: "pool2", Endpoint: "127.0.0.1:8081", Admin: autoscale.AdminMaint},
	}}}
	hosts := func() ([]autoscale.Host, error) { return []autoscale.Host{{Name: "api1", Address: "10.0.0.21"}}, nil }

	resp := getTargets(t, lb, hosts)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q, want application/json (Prometheus rejects others)", got)
	}
	want := `[{"targets":["10.0.0.21:8081"],"labels":{"host":"api1","instance":"api1:8081"}}]`
	if got := strings.TrimSpace(string(body)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestTargetsFailures(t *testing.T) {
	noHosts := func() ([]autoscale.Host, error) { return nil, nil }
	for _, tc := range []struct {
		name  string
		lb    autoscale.LoadBalancer
		hosts func() ([]autoscale.Host, error)
	}{
		{"runtime API fails", fakeBackend{err: errors.New("connection refused")}, noHosts},
		{"hosts file fails", fakeBackend{}, func() ([]autoscale.Host, error) { return nil, errors.New("no such file") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := getTargets(t, tc.lb, tc.hosts)
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503, so that Prometheus keeps its last targets", resp.StatusCode)
			}
		})
	}
}
