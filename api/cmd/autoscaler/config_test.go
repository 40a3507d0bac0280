package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Controller.Policy
	if p.Min != 2 || p.Max != 8 || p.Tolerance != 0.1 {
		t.Errorf("min, max, tolerance = %d, %d, %g; want 2, 8, 0.1", p.Min, p.Max, p.Tolerance)
	}
	if p.UpCooldown >= p.DownCooldown {
		t.Errorf("scale-up cooldown %s not shorter than scale-down cooldown %s", p.UpCooldown, p.DownCooldown)
	}
	if err := p.Validate(); err != nil {
		t.Errorf("the default policy is invalid: %v", err)
	}
}

func TestParseConfigEnvAndFlags(t *testing.T) {
	vars := map[string]string{
		"TSAUTOSCALER_TARGET_RPS":        "15",
		"TSAUTOSCALER_SCALE_DOWN_WINDOW": "2m",
		"TSAUTOSCALER_PEERS":             "192.168.56.12, 192.168.56.13",
		"TSAUTOSCALER_MAX":               "6",
	}
	cfg, err := parseConfig([]string{"-max", "5"}, env(vars), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Controller.Policy.TargetRPS; got != 15 {
		t.Errorf("target rps = %g, want 15 from the environment", got)
	}
	if got := cfg.Controller.Policy.DownWindow; got != 2*time.Minute {
		t.Errorf("scale-down window = %s, want 2m", got)
	}
	if got := cfg.Controller.Policy.Max; got != 5 {
		t.Errorf("max = %d, want 5: the flag wins over the variable", got)
	}
	if len(cfg.Peers) != 2 || cfg.Peers[1] != "192.168.56.13" {
		t.Errorf("peers = %q, want the two addresses", cfg.Peers)
	}
}

func TestParseConfigRejects(t *testing.T) {
	tests := []struct {
		name string
		vars map[string]string
		args []string
		want string
	}{
		{"invalid env value", map[string]string{"TSAUTOSCALER_MIN": "two"}, nil, "TSAUTOSCALER_MIN"},
		{"vip not an address", nil, []string{"-vip", "lb"}, "-vip"},
		{"peer not an address", nil, []string{"-peers", "lb2"}, "-peers"},
		{"log format", nil, []string{"-log-format", "xml"}, "-log-format"},
		{"stray argument", nil, []string{"run"}, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, env(tt.vars), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestReadHosts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	content := "# API hosts\napi1 192.168.56.21\n\napi2 192.168.56.22 # second\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	hosts, err := readHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 2 || hosts[1].Name != "api2" || hosts[1].Address != "192.168.56.22" {
		t.Errorf("hosts = %+v, want api1 and api2", hosts)
	}
}

func TestReadHostsRejectsBadLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(path, []byte("api1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readHosts(path); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Errorf("err = %v, want one naming line 1", err)
	}
}
