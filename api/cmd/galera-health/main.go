// Command galera-health serves the health of the local MariaDB Galera node
// over HTTP for HAProxy: 200 while the node is Synced, ready and in the
// Primary component, else 503 with a one-line JSON reason. Run it with -help
// for its flags and environment variables.
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
	"strings"
	"syscall"
	"time"

	"example.com/timestamp/api/galerahealth"
)

func main() {
	// SIGKILL cannot be caught, so only SIGTERM (systemd) and SIGINT start
	// the graceful shutdown.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "galera-health:", err)
		os.Exit(2)
	}

	m, err := NewMain(cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "galera-health:", err)
		os.Exit(1)
	}
	defer m.Close()

	if err := m.Run(ctx); err != nil {
		m.log.Error("stopped with an error", "error", err)
		os.Exit(1)
	}
}

// Config holds the program's settings. Each has a flag and an environment
// variable GALERA_HEALTH_<NAME>, with the flag taking precedence.
type Config struct {
	Listen          string        // listen address, default ":9200"
	ClientConfig    string        // MariaDB option file with the [client] login
	MaintenanceFile string        // respond with 503 while this file exists
	QueryTimeout    time.Duration // default 2s
	ShutdownTimeout time.Duration // default 5s
	LogFormat       string        // json or text, default json
}

const envPrefix = "GALERA_HEALTH_"

func parseConfig(args []string, getenv func(string) string, output io.Writer) (Config, error) {
	env := func(name, fallback string) string {
		if v := getenv(envPrefix + name); v != "" {
			return v
		}
		return fallback
	}
	var cfg Config
	fs := flag.NewFlagSet("galera-health", flag.ContinueOnError)
	fs.SetOutput(output)

	fs.StringVar(&cfg.Listen, "listen", env("LISTEN", ":9200"), "HTTP listen `address`")
	fs.StringVar(&cfg.ClientConfig, "client-config", env("CLIENT_CONFIG", "/etc/galera-health/client.cnf"),
		"MariaDB option `file` whose [client] group holds user, password and socket or host")
	fs.StringVar(&cfg.MaintenanceFile, "maintenance-file",
		env("MAINTENANCE_FILE", "/var/lib/galera-health/maintenance"),
		"respond with 503 while this `file` exists; empty disables the check")
	queryTimeout := fs.String("query-timeout", env("QUERY_TIMEOUT", "2s"),
		"maximum `duration` of the status query before the node counts as unreachable")
	shutdownTimeout := fs.String("shutdown-timeout", env("SHUTDOWN_TIMEOUT", "5s"),
		"maximum `duration` to finish open requests on SIGTERM")
	fs.StringVar(&cfg.LogFormat, "log-format", env("LOG_FORMAT", "json"), "log `format`: json or text")

	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q: all settings are flags", fs.Arg(0))
	}

	var err error
	if cfg.QueryTimeout, err = parsePositiveDuration("query-timeout", *queryTimeout); err != nil {
		return Config{}, err
	}
	if cfg.ShutdownTimeout, err = parsePositiveDuration("shutdown-timeout", *shutdownTimeout); err != nil {
		return Config{}, err
	}
	if cfg.LogFormat != "json" && cfg.LogFormat != "text" {
		return Config{}, fmt.Errorf("invalid log-format %q: want json or text", cfg.LogFormat)
	}
	return cfg, nil
}

func parsePositiveDuration(name, value string) (time.Duration, error) {
	d, err := time.ParseDuration(value)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("invalid %s %q: want a positive Go duration such as 2s", name, value)
	}
	return d, nil
}

// Main is the wired program: tests run it on port 0 with their own config.
type Main struct {
	cfg      Config
	log      *slog.Logger
	db       *galerahealth.DB
	handler  *galerahealth.Handler
	listener net.Listener
}

// NewMain reads the client config and opens the listener, so that Addr is
// known before Run. It does not connect to MariaDB: the first check does.
func NewMain(cfg Config, logOutput io.Writer) (*Main, error) {
	log := newLogger(cfg.LogFormat, logOutput)

	client, err := galerahealth.LoadClientConfig(cfg.ClientConfig)
	if err != nil {
		return nil, err
	}
	db, err := galerahealth.OpenDB(client, cfg.QueryTimeout)
	if err != nil {
		return nil, err
	}

	handler := galerahealth.NewHandler(galerahealth.HandlerConfig{
		Source:          db,
		MaintenanceFile: cfg.MaintenanceFile,
		QueryTimeout:    cfg.QueryTimeout,
		Logger:          log.With("component", "check"),
	})

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	return &Main{cfg: cfg, log: log, db: db, handler: handler, listener: ln}, nil
}

// Addr returns the address the listener is bound to.
func (m *Main) Addr() string {
	return m.listener.Addr().String()
}

// Run serves until ctx ends, then stops accepting connections and waits up
// to ShutdownTimeout for open requests.
func (m *Main) Run(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.Handle("/{$}", m.handler)

	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 2 * time.Second,
		WriteTimeout:      m.cfg.QueryTimeout + 3*time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
	}

	m.log.Info("starting", "listen", m.Addr(), "client_config", m.cfg.ClientConfig,
		"maintenance_file", m.cfg.MaintenanceFile, "query_timeout", m.cfg.QueryTimeout)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(m.listener) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	m.log.Info("shutdown started", "timeout", m.cfg.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), m.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	m.log.Info("stopped")
	return nil
}

// Close releases the database pool. The listener is closed by Run.
func (m *Main) Close() error {
	return m.db.Close()
}

func newLogger(format string, output io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if strings.EqualFold(format, "text") {
		return slog.New(slog.NewTextHandler(output, opts))
	}
	return slog.New(slog.NewJSONHandler(output, opts))
}
