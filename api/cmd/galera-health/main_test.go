package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	want := Config{
		Listen:          ":9200",
		ClientConfig:    "/etc/galera-health/client.cnf",
		MaintenanceFile: "/var/lib/galera-health/maintenance",
		QueryTimeout:    2 * time.Second,
		ShutdownTimeout: 5 * time.Second,
		LogFormat:       "json",
	}
	if cfg != want {
		t.Errorf("parseConfig = %+v, want %+v", cfg, want)
	}
}

func TestParseConfigEnvAndFlags(t *testing.T) {
	env := map[string]string{
		"GALERA_HEALTH_LISTEN":        "127.0.0.1:9201",
		"GALERA_HEALTH_QUERY_TIMEOUT": "500ms",
	}
	cfg, err := parseConfig([]string{"-listen", "127.0.0.1:9300"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	if cfg.Listen != "127.0.0.1:9300" {
		t.Errorf("Listen = %q, want the flag's 127.0.0.1:9300", cfg.Listen)
	}
	if cfg.QueryTimeout != 500*time.Millisecond {
		t.Errorf("QueryTimeout = %s, want the environment's 500ms", cfg.QueryTimeout)
	}
}

func TestParseConfigInvalid(t *testing.T) {
	tests := map[string][]string{
		"zero timeout":   {"-query-timeout", "0s"},
		"bad duration":   {"-shutdown-timeout", "soon"},
		"bad log format": {"-log-format", "xml"},
		"extra argument": {"serve"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := parseConfig(args, func(string) string { return "" }, io.Discard); err == nil {
				t.Errorf("parseConfig(%q) returned no error", args)
			}
		})
	}
}

// TestMainServesUnreachable runs the whole program against a socket where no
// server listens: it must start, respond with 503 and stop on cancel.
func TestMainServesUnreachable(t *testing.T) {
	dir := t.TempDir()
	clientConfig := filepath.Join(dir, "client.cnf")
	content := "[client]\nuser=galera_health\npassword=x\nsocket=" + filepath.Join(dir, "none.sock") + "\n"
	if err := os.WriteFile(clientConfig, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}

	m, err := NewMain(Config{
		Listen:          "127.0.0.1:0",
		ClientConfig:    clientConfig,
		MaintenanceFile: filepath.Join(dir, "maintenance"),
		QueryTimeout:    time.Second,
		ShutdownTimeout: time.Second,
		LogFormat:       "text",
	}, io.Discard)
	if err != nil {
		t.Fatalf("NewMain: %v", err)
	}
	defer m.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()

	res, err := http.Get("http://" + m.Addr() + "/")
	if err != nil {
		t.Fatalf("GET /: %v", err)
	}
	var body struct {
		Healthy bool   `json:"healthy"`
		Reason  string `json:"reason"`
	}
	err = json.NewDecoder(res.Body).Decode(&body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("decode body: %v", err)
	}
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want 503", res.StatusCode)
	}
	if body.Healthy {
		t.Error("healthy = true with no server, want false")
	}

	res, err = http.Get("http://" + m.Addr() + "/other")
	if err != nil {
		t.Fatalf("GET /other: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /other: status = %d, want 404", res.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of cancel")
	}
}

func TestNewMainMissingClientConfig(t *testing.T) {
	_, err := NewMain(Config{
		Listen:       "127.0.0.1:0",
		ClientConfig: filepath.Join(t.TempDir(), "missing.cnf"),
		QueryTimeout: time.Second,
		LogFormat:    "json",
	}, io.Discard)
	if err == nil {
		t.Fatal("NewMain with a missing client config returned no error")
	}
}
