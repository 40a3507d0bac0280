package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeRuntime serves `show servers state api` and `show stat` for one
// static server on a Unix socket.
func fakeRuntime(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	state := "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight " +
		"srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state " +
		"srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord\n" +
		"3 api 1 api1-8080 127.0.0.1 2 0 1 1 10 6 3 4 6 0 0 0 - 8080 -\n" +
		"3 api 2 pool1 127.0.0.1 0 5 1 1 10 1 0 0 14 0 0 0 - 8081 -\n"
	stat := "# pxname,svname,qcur,scur,stot,status\napi,api1-8080,0,0,0,UP\napi,pool1,0,0,0,MAINT\napi,BACKEND,0,0,0,UP\n"
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 256)
			n, _ := conn.Read(buf)
			switch strings.TrimSpace(string(buf[:n])) {
			case "show servers state api":
				io.WriteString(conn, state)
			case "show stat":
				io.WriteString(conn, stat)
			}
			conn.Close()
		}
	}()
	return path
}

func TestMainServesMetricsAndTargets(t *testing.T) {
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig([]string{
		"-listen", "127.0.0.1:0", "-haproxy-socket", fakeRuntime(t), "-hosts-file", hosts,
		"-min", "1", "-interval", "50ms", "-window", "100ms",
	}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMain(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()

	url := fmt.Sprintf("http://%s/metrics", m.Addr())
	var body string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if body = string(b); strings.Contains(body, "timestamp_autoscaler_instances_current 1") {
			break
		}
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/targets", m.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	targets, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after cancel", err)
	}
	// The fake's only slot is free.
	if got := strings.TrimSpace(string(targets)); resp.StatusCode != http.StatusOK || got != "[]" {
		t.Errorf("GET /targets = %d %s, want 200 []", resp.StatusCode, got)
	}
	for _, want := range []string{
		"timestamp_autoscaler_instances_current 1",
		"timestamp_autoscaler_active 1",
		`timestamp_autoscaler_target{signal="rps"} 300`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestSoleHolder(t *testing.T) {
	vip := net.ParseIP("192.168.56.10")
	yes := func() (bool, error) { return true, nil }
	no := func() (bool, error) { return false, nil }
	peer := func(hasVIP bool, err error) map[string]peerCheck {
		return map[string]peerCheck{"lb2": func(context.Context) (bool, error) { return hasVIP, err }}
	}
	tests := []struct {
		name    string
		local   func() (bool, error)
		peers   map[string]peerCheck
		want    bool
		wantErr string
	}{
		{"holder, peer without", yes, peer(false, nil), true, ""},
		{"holder, no peers", yes, nil, true, ""},
		{"standby", no, peer(true, nil), false, ""},
		{"split brain", yes, peer(true, nil), false, "split brain"},
		{"peer silent", yes, peer(false, fmt.Errorf("timeout")), false, "on lb2"},
		{"local check fails", func() (bool, error) { return false, fmt.Errorf("no interfaces") },
			peer(false, nil), false, "no interfaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := soleHolder(context.Background(), vip, tt.local, tt.peers)
			if got != tt.want {
				t.Errorf("active = %v, want %v", got, tt.want)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("err = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
