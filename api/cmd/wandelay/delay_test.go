package main

import (
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

const sample = `
# two full sites and an arbitrator site
site dc1 192.168.57.0/24
site dc2 192.168.58.0/24
site dc3 192.168.59.0/24
link dc1 dc2 20 2
link dc1 dc3 40 0
`

func TestParseConfig(t *testing.T) {
	cfg, err := parseConfig(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.sites) != 3 {
		t.Errorf("sites: got %d, want 3", len(cfg.sites))
	}
	got := cfg.links[[2]string{"dc2", "dc1"}]
	want := link{oneWay: 10 * time.Millisecond, jitter: 2 * time.Millisecond}
	if got != want {
		t.Errorf("link dc2 to dc1: got %+v, want %+v (the pair applies both ways)", got, want)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for name, text := range map[string]string{
		"unknown keyword":       "route dc1 dc2\n",
		"bad network":           "site dc1 192.168.57.0/33\n",
		"IPv6 network":          "site dc1 fd00::/64\n",
		"negative round trip":   "site dc1 10.0.0.0/24\nsite dc2 10.0.1.0/24\nlink dc1 dc2 -1 0\n",
		"jitter over the round": "site dc1 10.0.0.0/24\nsite dc2 10.0.1.0/24\nlink dc1 dc2 10 11\n",
		"undeclared site":       "site dc1 10.0.0.0/24\nlink dc1 dc9 10 0\n",
	} {
		if _, err := parseConfig(strings.NewReader(text)); err == nil {
			t.Errorf("%s: got no error for %q", name, text)
		}
	}
}

func TestDelayFor(t *testing.T) {
	cfg, err := parseConfig(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		src, dst string
		want     time.Duration
		ok       bool
	}{
		{"192.168.57.31", "192.168.58.31", 10 * time.Millisecond, true},
		{"192.168.59.41", "192.168.57.31", 20 * time.Millisecond, true},
		{"192.168.57.31", "192.168.57.32", 0, false}, // inside one site
		{"192.168.58.31", "192.168.59.41", 0, false}, // no link line
		{"192.168.56.1", "192.168.57.10", 0, false},  // the machine's bridge
	} {
		l, _, ok := cfg.delayFor(netip.MustParseAddr(tc.src), netip.MustParseAddr(tc.dst))
		if ok != tc.ok || l.oneWay != tc.want {
			t.Errorf("%s to %s: got %v (link %v), want %v (link %v)", tc.src, tc.dst, l.oneWay, ok, tc.want, tc.ok)
		}
	}
}

// fakeDevice records the packets written to it and when.
type fakeDevice struct {
	mu      sync.Mutex
	written [][]byte
	at      []time.Time
}

func (f *fakeDevice) Read([]byte) (int, error) { return 0, io.EOF }

func (f *fakeDevice) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.written = append(f.written, append([]byte(nil), p...))
	f.at = append(f.at, time.Now())
	return len(p), nil
}

func (f *fakeDevice) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.written)
}

// ipv4 builds a minimal IPv4 header from src to dst whose last byte is seq.
func ipv4(src, dst string, seq byte) []byte {
	p := make([]byte, 21)
	p[0] = 0x45
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	p[20] = seq
	return p
}

func TestDelayLineKeepsOrderAndDelay(t *testing.T) {
	cfg, err := parseConfig(strings.NewReader("site a 10.0.0.0/24\nsite b 10.0.1.0/24\nlink a b 40 20\n"))
	if err != nil {
		t.Fatal(err)
	}
	dev := &fakeDevice{}
	line := newDelayLine(dev, cfg, slog.New(slog.DiscardHandler))
	start := time.Now()
	const n = 50
	for i := range n {
		line.handle(ipv4("10.0.0.5", "10.0.1.5", byte(i)), time.Now())
	}
	line.handle(ipv4("10.0.0.5", "10.0.0.6", 99), time.Now()) // same site: at once

	deadline := time.Now().Add(5 * time.Second)
	for dev.count() < n+1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := dev.count(); got != n+1 {
		t.Fatalf("packets written: got %d, want %d", got, n+1)
	}
	if seq := dev.written[0][20]; seq != 99 {
		t.Errorf("first packet out: got %d, want the undelayed packet 99", seq)
	}
	for i := 1; i <= n; i++ {
		if seq := dev.written[i][20]; int(seq) != i-1 {
			t.Fatalf("packet %d out of order: got sequence %d, want %d", i, seq, i-1)
		}
	}
	// One way is 20 ms with ±10 ms of jitter: none may leave before 10 ms.
	if early := dev.at[1].Sub(start); early < 10*time.Millisecond {
		t.Errorf("first delayed packet left after %v, want at least 10ms", early)
	}
}
