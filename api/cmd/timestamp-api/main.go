// Command timestamp-api serves the timestamp API: POST /app stores the UTC
// time of the request in MariaDB and answers 201 once the row is committed.
// Run it with -help for its flags and environment variables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"example.com/timestamp/api"
	"example.com/timestamp/api/httpapi"
	"example.com/timestamp/api/mariadb"
)

func main() {
	// SIGKILL cannot be caught, so only SIGTERM (systemd, HAProxy-driven
	// deploys) and SIGINT (a terminal) start the graceful shutdown.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "timestamp-api:", err)
		os.Exit(2)
	}

	m, err := NewMain(cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "timestamp-api:", err)
		os.Exit(1)
	}
	if err := m.Run(ctx); err != nil {
		m.log.Error("stopped with an error", "error", err)
		os.Exit(1)
	}
}

// Main is the wired program: tests start it on port 0 with their own config.
type Main struct {
	cfg      Config
	log      *slog.Logger
	store    *mariadb.DB
	api      *httpapi.Server
	listener net.Listener
}

// NewMain builds the program and opens its listener, so that Addr is known
// before Run. It does not connect to the database.
func NewMain(cfg Config, logOutput io.Writer) (*Main, error) {
	log := newLogger(cfg, logOutput)
	// The driver prints some connection errors itself; route them into the
	// structured log instead of a bare line on stderr.
	_ = mysql.SetLogger(driverLogger{log.With("component", "mysql-driver")})

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	store, err := mariadb.Open(mariadb.Config{
		Addr:            cfg.DBAddr,
		User:            cfg.DBUser,
		Password:        cfg.DBPassword,
		Name:            cfg.DBName,
		MaxOpenConns:    cfg.DBMaxOpenConns,
		ConnMaxLifetime: cfg.DBConnMaxLifetime,
		ConnMaxIdleTime: cfg.DBConnMaxIdleTime,
		DialTimeout:     cfg.DBDialTimeout,
		IOTimeout:       cfg.DBIOTimeout,
		Node:            cfg.NodeName,
		Retry:           mariadb.RetryPolicy{MaxAttempts: cfg.DBRetryAttempts},
		GroupCommit: mariadb.GroupCommit{
			Enabled: cfg.GroupCommit,
			Window:  cfg.GroupCommitWindow,
			MaxRows: cfg.GroupCommitMaxRows,
			Writers: cfg.GroupCommitWriters,
			Timeout: cfg.WriteTimeout,
		},
		Logger:  log,
		Metrics: mariadb.NewMetrics(reg),
	})
	if err != nil {
		return nil, err
	}
	reg.MustRegister(collectors.NewDBStatsCollector(store.SQL(), cfg.DBName))

	server, err := httpapi.New(httpapi.Config{
		Store:          store,
		Clock:          &api.Clock{},
		Registry:       reg,
		Logger:         log,
		TrustedProxies: cfg.trustedProxies(),
		WriteTimeout:   cfg.WriteTimeout,
		ReadTimeout:    cfg.ReadTimeout,
		ReadyTimeout:   cfg.ReadyTimeout,
	})
	if err != nil {
		store.Close()
		return nil, err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	return &Main{cfg: cfg, log: log, store: store, api: server, listener: ln}, nil
}

// Addr returns the address the API listens on.
func (m *Main) Addr() string { return m.listener.Addr().String() }

// Run serves until ctx is done, then shuts down gracefully: /readyz fails at
// once, the listener stays open for the shutdown delay so that requests the
// load balancer still sends are served, then it closes and in-flight
// requests get the shutdown timeout to finish. Run closes the store.
func (m *Main) Run(ctx context.Context) error {
	defer m.store.Close()
	m.log.Info("starting", "listen", m.Addr(), "db_addr", m.cfg.DBAddr, "db_name", m.cfg.DBName,
		"db_user", m.cfg.DBUser, "node", m.cfg.NodeName, "group_commit", m.cfg.GroupCommit)

	migrateCtx, stopMigrate := context.WithCancel(ctx)
	defer stopMigrate()
	go m.migrateUntilDone(migrateCtx)

	srv := &http.Server{
		Handler:           m.api.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		// Longer than HAProxy keeps an idle server connection, so that
		// HAProxy, not the API, closes idle connections and never sends a
		// request on one that the API is closing.
		IdleTimeout: 90 * time.Second,
		ErrorLog:    slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(m.listener) }()

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	return m.shutdown(srv, served)
}

func (m *Main) shutdown(srv *http.Server, served <-chan error) error {
	m.log.Info("shutdown started: readiness now fails", "delay", m.cfg.ShutdownDelay,
		"timeout", m.cfg.ShutdownTimeout)
	m.api.StartDraining()
	time.Sleep(m.cfg.ShutdownDelay)

	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(ctx)
	if err != nil {
		m.log.Error("in-flight requests did not finish in time; closing their connections",
			"timeout", m.cfg.ShutdownTimeout, "error", err)
		srv.Close()
	}
	if serveErr := <-served; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		m.log.Error("serve failed during shutdown", "error", serveErr)
	}
	m.log.Info("stopped")
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// migrateUntilDone applies the schema, retrying while the database is
// unreachable: the API may start before its database, and /readyz stays
// failing until this succeeds.
func (m *Main) migrateUntilDone(ctx context.Context) {
	delay := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		attemptCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := m.store.Migrate(attemptCtx)
		cancel()
		if err == nil {
			m.log.Info("schema up to date", "attempts", attempt)
			return
		}
		if ctx.Err() != nil {
			return
		}
		m.log.Warn("schema migration failed; retrying", "attempt", attempt, "delay", delay, "error", err)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return
		}
		delay = min(delay*2, 10*time.Second)
	}
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // checked by validate
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h).With("service", "timestamp-api")
}

// driverLogger adapts slog to the MySQL driver's logger interface.
type driverLogger struct{ log *slog.Logger }

func (l driverLogger) Print(v ...any) { l.log.Warn("driver message", "message", fmt.Sprint(v...)) }
