// Command wandelay is the simulated WAN of the local test hosts: it delays
// the IPv4 packets that travel between two sites, in the router namespace
// that scripts/testbed/lib.sh creates. The router's policy routes send a
// packet from one site's bridge to another site's network into the TUN
// device this command owns; it holds the packet for that pair's one-way
// delay and writes it back into the device, where the kernel routes it on
// by its main table.
//
// It stands in for tc netem, which the testbed's kernels may lack
// (CONFIG_NET_SCH_NETEM unset, and containers cannot load modules).
//
//	wandelay -tun wan0 -config .testbed/run/wan.conf
//
// The configuration file has one entry per line; # starts a comment:
//
//	site dc1 192.168.57.0/24
//	link dc1 dc2 20 2
//
// A link sets the round-trip time and jitter in milliseconds between two
// sites. Each direction then adds half the round-trip time, plus or minus
// half the jitter (uniform), so a round trip stays within RTT ± jitter.
// Packets of one direction never overtake each other, as on a real link.
// Pairs without a link, and packets from or to other networks, pass at
// once. SIGHUP rereads the file; SIGINT or SIGTERM ends the command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if err := run(); err != nil {
		slog.Error("wandelay failed", "err", err)
		os.Exit(1)
	}
}

func run() error {
	tunName := flag.String("tun", "wan0", "`name` of the TUN device to create")
	configPath := flag.String("config", "", "configuration `file` of sites and links (required)")
	flag.Parse()
	if *configPath == "" {
		return errors.New("-config is missing: give the file of sites and links")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	dev, err := openTUN(*tunName)
	if err != nil {
		return err
	}
	defer dev.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	line := newDelayLine(dev, cfg, logger)
	logger.Info("wandelay started", "tun", *tunName, "config", *configPath, "sites", len(cfg.sites), "links", len(cfg.links))

	reload := make(chan os.Signal, 1)
	signal.Notify(reload, syscall.SIGHUP)
	go func() {
		for range reload {
			next, err := loadConfig(*configPath)
			if err != nil {
				logger.Error("reload failed; keeping the previous links", "config", *configPath, "err", err)
				continue
			}
			line.setConfig(next)
			logger.Info("configuration reloaded", "sites", len(next.sites), "links", len(next.links))
		}
	}()

	go func() {
		<-ctx.Done()
		// Closing the device ends the blocked read below.
		dev.Close()
	}()
	err = line.forward()
	if ctx.Err() != nil {
		logger.Info("wandelay stopped")
		return nil
	}
	return fmt.Errorf("read from %s: %w", *tunName, err)
}
