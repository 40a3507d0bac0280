package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// config is the parsed configuration file: the sites' networks and the
// delays between pairs of sites.
type config struct {
	sites []site
	links map[[2]string]link // both orders of each pair
}

type site struct {
	name    string
	network netip.Prefix
}

// link is one direction's delay: every packet waits oneWay, plus a uniform
// offset within ±jitter/2.
type link struct {
	oneWay time.Duration
	jitter time.Duration
}

// parseConfig reads the "site NAME NETWORK" and "link SITE SITE RTT_MS
// JITTER_MS" lines of r.
func parseConfig(r io.Reader) (config, error) {
	cfg := config{links: map[[2]string]link{}}
	names := map[string]bool{}
	scanner := bufio.NewScanner(r)
	for n := 1; scanner.Scan(); n++ {
		text, _, _ := strings.Cut(scanner.Text(), "#")
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		switch {
		case fields[0] == "site" && len(fields) == 3:
			network, err := netip.ParsePrefix(fields[2])
			if err != nil || !network.Addr().Is4() {
				return config{}, fmt.Errorf("line %d: invalid IPv4 network %q; write it as 192.168.57.0/24", n, fields[2])
			}
			cfg.sites = append(cfg.sites, site{name: fields[1], network: network.Masked()})
			names[fields[1]] = true
		case fields[0] == "link" && len(fields) == 5:
			rtt, err1 := strconv.ParseFloat(fields[3], 64)
			jitter, err2 := strconv.ParseFloat(fields[4], 64)
			if err1 != nil || err2 != nil || rtt < 0 || jitter < 0 || jitter > rtt {
				return config{}, fmt.Errorf("line %d: invalid round-trip time %q or jitter %q; give milliseconds, jitter no larger than the round trip", n, fields[3], fields[4])
			}
			one := link{oneWay: millis(rtt / 2), jitter: millis(jitter)}
			cfg.links[[2]string{fields[1], fields[2]}] = one
			cfg.links[[2]string{fields[2], fields[1]}] = one
		default:
			return config{}, fmt.Errorf("line %d: %q is neither 'site NAME NETWORK' nor 'link SITE SITE RTT_MS JITTER_MS'", n, strings.TrimSpace(text))
		}
	}
	if err := scanner.Err(); err != nil {
		return config{}, err
	}
	for pair := range cfg.links {
		if !names[pair[0]] {
			return config{}, fmt.Errorf("link names site %q, which no site line declares", pair[0])
		}
	}
	return cfg, nil
}

func loadConfig(path string) (config, error) {
	f, err := os.Open(path)
	if err != nil {
		return config{}, err
	}
	defer f.Close()
	cfg, err := parseConfig(f)
	if err != nil {
		return config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

func millis(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

// siteOf returns the name of the site whose network holds addr, or "".
func (c config) siteOf(addr netip.Addr) string {
	for _, s := range c.sites {
		if s.network.Contains(addr) {
			return s.name
		}
	}
	return ""
}

// delayFor returns the delay of a packet from src to dst and whether the
// pair has a link.
func (c config) delayFor(src, dst netip.Addr) (link, [2]string, bool) {
	pair := [2]string{c.siteOf(src), c.siteOf(dst)}
	if pair[0] == "" || pair[1] == "" || pair[0] == pair[1] {
		return link{}, pair, false
	}
	l, ok := c.links[pair]
	return l, pair, ok
}

// sample returns one packet's delay: oneWay plus a uniform offset in
// [-jitter/2, +jitter/2], never below zero.
func (l link) sample() time.Duration {
	d := l.oneWay
	if l.jitter > 0 {
		d += time.Duration(rand.Int64N(int64(l.jitter)+1)) - l.jitter/2
	}
	return max(d, 0)
}

// delayLine holds packets per direction of each pair of sites and writes
// them back to the device when their time comes.
type delayLine struct {
	dev    io.ReadWriter
	cfg    atomic.Pointer[config]
	logger *slog.Logger

	mu    sync.Mutex
	lanes map[[2]string]chan packet

	dropped atomic.Int64
}

type packet struct {
	data    []byte
	release time.Time
}

// laneCapacity bounds the packets held per direction; a full lane drops,
// as a router's queue would.
const laneCapacity = 20000

func newDelayLine(dev io.ReadWriter, cfg config, logger *slog.Logger) *delayLine {
	d := &delayLine{dev: dev, logger: logger, lanes: map[[2]string]chan packet{}}
	d.cfg.Store(&cfg)
	return d
}

func (d *delayLine) setConfig(cfg config) { d.cfg.Store(&cfg) }

// forward reads packets until the device fails or is closed.
func (d *delayLine) forward() error {
	buf := make([]byte, 65535)
	for {
		n, err := d.dev.Read(buf)
		if err != nil {
			return err
		}
		d.handle(append([]byte(nil), buf[:n]...), time.Now())
	}
}

// handle schedules one packet read at now.
func (d *delayLine) handle(data []byte, now time.Time) {
	src, dst, ok := ipv4Addresses(data)
	if !ok {
		d.write(data) // not IPv4: nothing to delay
		return
	}
	l, pair, ok := d.cfg.Load().delayFor(src, dst)
	if !ok || (l.oneWay == 0 && l.jitter == 0) {
		d.write(data)
		return
	}
	select {
	case d.lane(pair) <- packet{data: data, release: now.Add(l.sample())}:
	default:
		if d.dropped.Add(1)%1000 == 1 {
			d.logger.Warn("lane full, packets dropped", "from", pair[0], "to", pair[1], "dropped_total", d.dropped.Load())
		}
	}
}

// lane returns the queue of one direction, starting its writer on first use.
func (d *delayLine) lane(pair [2]string) chan packet {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch, ok := d.lanes[pair]
	if !ok {
		ch = make(chan packet, laneCapacity)
		d.lanes[pair] = ch
		go d.drain(ch)
	}
	return ch
}

// drain writes each packet of a lane at its release time, in arrival
// order: a packet whose sampled release is earlier than its predecessor's
// waits for it, so jitter never reorders a direction.
func (d *delayLine) drain(ch chan packet) {
	for p := range ch {
		if wait := time.Until(p.release); wait > 0 {
			time.Sleep(wait)
		}
		d.write(p.data)
	}
}

func (d *delayLine) write(data []byte) {
	if _, err := d.dev.Write(data); err != nil {
		d.logger.Warn("write to the TUN device failed", "err", err, "bytes", len(data))
	}
}

// ipv4Addresses returns the source and destination of an IPv4 packet.
func ipv4Addresses(data []byte) (src, dst netip.Addr, ok bool) {
	if len(data) < 20 || data[0]>>4 != 4 {
		return netip.Addr{}, netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte(data[12:16])), netip.AddrFrom4([4]byte(data[16:20])), true
}
