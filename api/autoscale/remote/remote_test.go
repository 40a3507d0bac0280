package remote

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseInstances(t *testing.T) {
	st, err := ParseInstances("cpus 2\nunit 8080 active\nunit 8081 inactive\nunit 8082 failed\nunit 8083 activating\n")
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUs != 2 {
		t.Errorf("CPUs = %d, want 2", st.CPUs)
	}
	want := map[int]bool{8080: true, 8081: false, 8082: false, 8083: true}
	for port, active := range want {
		if st.Active[port] != active {
			t.Errorf("Active[%d] = %v, want %v", port, st.Active[port], active)
		}
	}
}

func TestParseInstancesRejects(t *testing.T) {
	tests := []struct {
		name, out, want string
	}{
		{"no cpus line", "unit 8080 active\n", "no processor count"},
		{"bad port", "cpus 2\nunit x active\n", "invalid port"},
		{"stray line", "cpus 2\nhello\n", "unexpected line"},
		{"zero cpus", "cpus 0\n", "invalid processor count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseInstances(tt.out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// fakeSSH writes a script that replaces ssh in a test. It prints its last
// argument (the request) and runs body.
func fakeSSH(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ssh")
	script := "#!/bin/sh\nfor a; do last=$a; done\n" + body + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSSHRunReturnsOutput(t *testing.T) {
	s := SSH{Binary: fakeSSH(t, `echo "ran: $last"`), ConfigFile: "/dev/null"}
	out, err := s.Run(context.Background(), "192.168.56.21", "instances")
	if err != nil {
		t.Fatal(err)
	}
	if out != "ran: instances\n" {
		t.Errorf("output = %q, want %q", out, "ran: instances\n")
	}
}

func TestSSHRunReportsStderr(t *testing.T) {
	s := SSH{Binary: fakeSSH(t, `echo "port 8080 is not in the pool" >&2; exit 2`)}
	_, err := s.Run(context.Background(), "192.168.56.21", "stop 8080")
	if err == nil || !strings.Contains(err.Error(), "not in the pool") {
		t.Errorf("err = %v, want one with the command's standard error", err)
	}
}

// A background process that keeps standard error open, as ssh's shared
// connection does, must not hold Run until it exits.
func TestSSHRunDoesNotWaitForBackgroundMaster(t *testing.T) {
	s := SSH{Binary: fakeSSH(t, `sleep 5 & echo done`)}
	start := time.Now()
	out, err := s.Run(context.Background(), "192.168.56.21", "instances")
	if err != nil {
		t.Fatal(err)
	}
	if out != "done\n" {
		t.Errorf("output = %q, want %q", out, "done\n")
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("Run took %s, want it to return soon after ssh exited", elapsed)
	}
}

func TestHasAddress(t *testing.T) {
	// The fake prints yes only for the request that names the VIP.
	s := SSH{Binary: fakeSSH(t, `if [ "$last" = "has-address 192.168.56.10" ]; then echo yes; else echo no; fi`)}
	ctx := context.Background()

	hasVIP, err := s.HasAddress(ctx, "192.168.56.12", net.ParseIP("192.168.56.10"))
	if err != nil {
		t.Errorf("HasAddress(VIP) err = %v, want nil", err)
	}
	if !hasVIP {
		t.Error("HasAddress(VIP) = false, want true")
	}

	hasOther, err := s.HasAddress(ctx, "192.168.56.12", net.ParseIP("192.168.56.99"))
	if err != nil {
		t.Errorf("HasAddress(other) err = %v, want nil", err)
	}
	if hasOther {
		t.Error("HasAddress(other) = true, want false")
	}

	if _, err := s.HasAddress(ctx, "192.168.56.12", net.ParseIP("fd00::10")); err == nil {
		t.Error("HasAddress(IPv6) succeeded; the forced command takes IPv4 only")
	}
}

func TestParseHasAddressRejectsOtherOutput(t *testing.T) {
	for _, out := range []string{"", "maybe\n", "yes\nno\n"} {
		if _, err := ParseHasAddress(out); err == nil {
			t.Errorf("ParseHasAddress(%q) succeeded, want an error", out)
		}
	}
}
