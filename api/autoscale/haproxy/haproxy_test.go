package haproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"example.com/timestamp/api/autoscale"
)

func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The fixture is HAProxy 2.6.12's output for two static servers and three
// slots of a server-template with "disabled": pool1 after `state ready`
// (flags 0x04, CMAINT stays set), pool2 in drain (0x0c), pool3 as
// configured (0x05).
func TestParseServersState(t *testing.T) {
	states, err := ParseServersState(readFixture(t, "servers-state.txt"), "api")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]ServerState{}
	for _, s := range states {
		byName[s.Name] = s
	}
	tests := []struct {
		name     string
		endpoint string
		admin    autoscale.AdminState
		up       bool
	}{
		{"api1-8080", "192.168.56.21:8080", autoscale.AdminReady, true},
		{"pool1", "192.168.56.21:8081", autoscale.AdminReady, true},
		{"pool2", "192.168.56.22:8081", autoscale.AdminDrain, true},
		{"pool3", "127.0.0.1:8081", autoscale.AdminMaint, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := byName[tt.name]
			if !ok {
				t.Fatalf("server %s missing from %v", tt.name, states)
			}
			if got := net.JoinHostPort(s.Address, fmt.Sprint(s.Port)); got != tt.endpoint {
				t.Errorf("endpoint = %s, want %s", got, tt.endpoint)
			}
			if s.Admin() != tt.admin {
				t.Errorf("admin = %s (flags %#x), want %s", s.Admin(), s.AdminFlags, tt.admin)
			}
			if s.Up() != tt.up {
				t.Errorf("up = %v, want %v", s.Up(), tt.up)
			}
		})
	}
}

func TestParseServersStateRejects(t *testing.T) {
	if _, err := ParseServersState("Unknown command.\n", "api"); err == nil {
		t.Error("ParseServersState of an error message returned nil, want an error")
	}
	if _, err := ParseServersState(readFixture(t, "servers-state.txt"), "nope"); err == nil ||
		!strings.Contains(err.Error(), "no server") {
		t.Errorf("err = %v for an unknown backend, want one saying it has no server", err)
	}
}

func TestParseStat(t *testing.T) {
	st, err := ParseStat(readFixture(t, "stat.csv"), "api")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Servers["pool1"]; got.Sessions != 3 || got.Queued != 1 || got.Total != 120 {
		t.Errorf("pool1 = %+v, want scur 3, qcur 1, stot 120", got)
	}
	if st.BackendQueued != 2 {
		t.Errorf("backend qcur = %d, want 2", st.BackendQueued)
	}
	if _, ok := st.Servers["galera-db1"]; ok {
		t.Error("a server of another backend was returned")
	}
}

// runtimeServer serves a fake runtime API on a Unix socket. It responds to
// the two show commands with the fixtures and records every command; the
// returned function lists the commands received so far.
func runtimeServer(t *testing.T) (string, func() []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	state, stat := readFixture(t, "servers-state.txt"), readFixture(t, "stat.csv")
	var mu sync.Mutex
	var got []string
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 512)
			n, _ := conn.Read(buf)
			cmd := strings.TrimSpace(string(buf[:n]))
			// Recorded before the response is written, so a client that has
			// read its response finds its command in the list.
			mu.Lock()
			got = append(got, cmd)
			mu.Unlock()
			switch {
			case cmd == "show servers state api":
				fmt.Fprint(conn, state)
			case cmd == "show stat":
				fmt.Fprint(conn, stat)
			case strings.Contains(cmd, "addr"):
				fmt.Fprint(conn, "IP changed from '127.0.0.1' to '192.168.56.22', port changed from '8081' to '8082' by 'stats socket command'\n")
			case strings.HasSuffix(cmd, "pool99 state ready"):
				fmt.Fprint(conn, "No such server.\n\n")
			}
			conn.Close()
		}
	}()
	return path, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

func TestRuntimeBackend(t *testing.T) {
	path, _ := runtimeServer(t)
	r := New("lb1", "api", Socket{Path: path})
	b, err := r.Backend(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b.Queued != 2 {
		t.Errorf("backend queue = %d, want 2", b.Queued)
	}
	var pool1 autoscale.Server
	for _, s := range b.Servers {
		if s.Name == "pool1" {
			pool1 = s
		}
	}
	want := autoscale.Server{Name: "pool1", Endpoint: "192.168.56.21:8081", Admin: autoscale.AdminReady,
		Up: true, Sessions: 3, Queued: 1, Total: 120}
	if pool1 != want {
		t.Errorf("pool1 = %+v, want %+v", pool1, want)
	}
}

func TestRuntimeSetCommands(t *testing.T) {
	path, got := runtimeServer(t)
	r := New("lb1", "api", Socket{Path: path})
	ctx := context.Background()
	if err := r.SetAddr(ctx, "pool3", "192.168.56.22", 8082); err != nil {
		t.Errorf("SetAddr = %v, want nil for HAProxy's change message", err)
	}
	if err := r.SetState(ctx, "pool3", autoscale.AdminDrain); err != nil {
		t.Errorf("SetState = %v, want nil", err)
	}
	err := r.SetState(ctx, "pool99", autoscale.AdminReady)
	if err == nil || !strings.Contains(err.Error(), "No such server") {
		t.Errorf("SetState of a missing server = %v, want HAProxy's message", err)
	}
	want := []string{
		"set server api/pool3 addr 192.168.56.22 port 8082",
		"set server api/pool3 state drain",
		"set server api/pool99 state ready",
	}
	if cmds := got(); !slices.Equal(cmds, want) {
		t.Errorf("commands = %q, want %q", cmds, want)
	}
}

func TestSocketMissing(t *testing.T) {
	_, err := Socket{Path: filepath.Join(t.TempDir(), "none.sock")}.Do(context.Background(), "show stat")
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("err = %v, want a wrapped *net.OpError", err)
	}
}
