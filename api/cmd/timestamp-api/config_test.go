package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, envFrom(nil), io.Discard)
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	if cfg.Listen != ":8080" || cfg.DBAddr != "127.0.0.1:3306" || cfg.DBMaxOpenConns != 32 {
		t.Errorf("defaults = %+v", cfg)
	}
	if cfg.DBConnMaxLifetime != 60*time.Second || cfg.ShutdownDelay != 3*time.Second {
		t.Errorf("duration defaults = %s, %s", cfg.DBConnMaxLifetime, cfg.ShutdownDelay)
	}
	if cfg.NodeName == "" {
		t.Error("node name is not defaulted to the host name")
	}
}

func TestConfigFlagBeatsEnvironment(t *testing.T) {
	env := envFrom(map[string]string{"TSAPI_DB_ADDR": "db.env:3306", "TSAPI_WRITE_TIMEOUT": "7s"})
	cfg, err := parseConfig([]string{"-db-addr", "db.flag:3306"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DBAddr != "db.flag:3306" {
		t.Errorf("DBAddr = %q, want the flag's value", cfg.DBAddr)
	}
	if cfg.WriteTimeout != 7*time.Second {
		t.Errorf("WriteTimeout = %s, want the variable's 7s", cfg.WriteTimeout)
	}
}

func TestConfigPasswordFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig(nil, envFrom(map[string]string{"TSAPI_DB_PASSWORD_FILE": file}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DBPassword != "s3cret" {
		t.Errorf("password = %q, want it without the newline", cfg.DBPassword)
	}
}

func TestConfigRejectsBadValues(t *testing.T) {
	cases := map[string]map[string]string{
		"malformed duration": {"TSAPI_WRITE_TIMEOUT": "5"},
		"malformed integer":  {"TSAPI_DB_MAX_OPEN_CONNS": "many"},
		"zero pool":          {"TSAPI_DB_MAX_OPEN_CONNS": "0"},
		"negative delay":     {"TSAPI_SHUTDOWN_DELAY": "-1s"},
		"log format":         {"TSAPI_LOG_FORMAT": "xml"},
		"log level":          {"TSAPI_LOG_LEVEL": "loud"},
		"missing password":   {"TSAPI_DB_PASSWORD_FILE": "/nonexistent/pw"},
	}
	for name, env := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := parseConfig(nil, envFrom(env), io.Discard)
			if err == nil {
				t.Fatal("parseConfig accepted it")
			}
			for k := range env {
				flagName := "-" + strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, "TSAPI_")), "_", "-")
				if !strings.Contains(err.Error(), k) && !strings.Contains(err.Error(), flagName) &&
					!strings.Contains(err.Error(), "password") {
					t.Errorf("error %q names neither %s nor %s", err, k, flagName)
				}
			}
		})
	}
}

func TestTrustedProxiesSplit(t *testing.T) {
	cfg := Config{TrustedProxies: " 192.168.56.11, 192.168.56.12 ,,"}
	got := cfg.trustedProxies()
	if len(got) != 2 || got[0] != "192.168.56.11" || got[1] != "192.168.56.12" {
		t.Errorf("trustedProxies() = %q", got)
	}
}
