// Package mariadb implements api.Store on MariaDB, alone or as a Galera
// cluster node behind HAProxy.
package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"example.com/timestamp/api"
)

// Config is how the store reaches the database. The zero value of a field
// means its default, filled in by withDefaults.
type Config struct {
	Addr     string // host:port; default "127.0.0.1:3306"
	User     string // default "timestamp"
	Password string
	Name     string // database name; default "timestamp"

	// MaxOpenConns caps the pool; default 32.
	MaxOpenConns int
	// ConnMaxLifetime closes a connection this long after it opened; it
	// must stay below HAProxy's idle timeouts and MariaDB's wait_timeout so
	// that neither closes a connection the pool still trusts. Default 60s.
	ConnMaxLifetime time.Duration
	// ConnMaxIdleTime closes a connection idle for this long; default 30s.
	ConnMaxIdleTime time.Duration
	// DialTimeout bounds opening one TCP connection; default 2s.
	DialTimeout time.Duration
	// IOTimeout bounds one read or write on a connection; default 10s.
	IOTimeout time.Duration

	// Node is stored in every event this process creates.
	Node string

	Retry RetryPolicy

	// GroupCommit, when enabled, writes concurrent requests together.
	GroupCommit GroupCommit

	// Logger receives retries and errors; default slog.Default().
	Logger *slog.Logger
	// Metrics, when non-nil, receives insert latencies and retry counts.
	Metrics *Metrics
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:3306"
	}
	if c.User == "" {
		c.User = "timestamp"
	}
	if c.Name == "" {
		c.Name = "timestamp"
	}
	if c.MaxOpenConns <= 0 {
		c.MaxOpenConns = 32
	}
	if c.ConnMaxLifetime <= 0 {
		c.ConnMaxLifetime = 60 * time.Second
	}
	if c.ConnMaxIdleTime <= 0 {
		c.ConnMaxIdleTime = 30 * time.Second
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 2 * time.Second
	}
	if c.IOTimeout <= 0 {
		c.IOTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Retry = c.Retry.withDefaults()
	c.GroupCommit = c.GroupCommit.withDefaults()
	return c
}

// DSN returns the driver's data source name for c. It contains the
// password, so it must never be logged.
func (c Config) DSN() string {
	c = c.withDefaults()
	mc := mysql.NewConfig()
	mc.Net = "tcp"
	mc.Addr = c.Addr
	mc.User = c.User
	mc.Passwd = c.Password
	mc.DBName = c.Name
	mc.Timeout = c.DialTimeout
	mc.ReadTimeout = c.IOTimeout
	mc.WriteTimeout = c.IOTimeout
	mc.ParseTime = true
	mc.Loc = time.UTC
	// Interpolating arguments on the client saves the prepare and close
	// round trips of a server-side statement, a third of the latency of a
	// single-row insert. It is safe with the utf8mb4 connection charset.
	mc.InterpolateParams = true
	// The session zone is pinned so that DATETIME values never pass
	// through the server's or the machine's local time.
	mc.Params = map[string]string{"time_zone": "'+00:00'"}
	return mc.FormatDSN()
}

// DB is an api.Store on MariaDB.
type DB struct {
	db       *sql.DB
	cfg      Config
	log      *slog.Logger
	metrics  *Metrics
	migrated atomic.Bool
	// batcher is nil unless group commit is enabled.
	batcher *batcher
}

var _ api.Store = (*DB)(nil)

// Open prepares a connection pool. It does not connect: the database may be
// down when the API starts, and Ready reports that until Migrate succeeds.
func Open(cfg Config) (*DB, error) {
	cfg = cfg.withDefaults()
	db, err := sql.Open("mysql", cfg.DSN())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", cfg.Addr, err)
	}
	db.SetMaxOpenConns(cfg.MaxOpenConns)
	db.SetMaxIdleConns(cfg.MaxOpenConns)
	db.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	db.SetConnMaxIdleTime(cfg.ConnMaxIdleTime)
	store := &DB{
		db:      db,
		cfg:     cfg,
		log:     cfg.Logger.With("component", "mariadb"),
		metrics: cfg.Metrics,
	}
	if cfg.GroupCommit.Enabled {
		store.batcher = newBatcher(store, cfg.GroupCommit)
	}
	return store, nil
}

// SQL returns the underlying pool, for pool metrics.
func (db *DB) SQL() *sql.DB { return db.db }

// Close writes the batches still queued, then closes the pool. No
// CreateEvent may start once Close has begun.
func (db *DB) Close() error {
	if db.batcher != nil {
		db.batcher.close()
	}
	return db.db.Close()
}

// Ready returns nil when the schema is migrated, the database answers and,
// where wsrep_on is set, the node takes writes: it is in the Primary
// component with wsrep_ready ON. It wraps api.ErrUnavailable or
// api.ErrNodeNotReady otherwise.
//
// The node need not be Synced, because a Donor/Desynced node (wsrep_desync,
// a backup, a state transfer it donates) still commits, and HAProxy's
// galera-health check moves writes off it within seconds. Every API
// instance reaches the same writer, so requiring Synced here would take all
// of them out of HAProxy at once and turn a desync into 503s.
func (db *DB) Ready(ctx context.Context) error {
	if !db.migrated.Load() {
		return fmt.Errorf("%w: schema not migrated yet", api.ErrUnavailable)
	}
	var wsrepOn bool
	if err := db.db.QueryRowContext(ctx, "SELECT @@wsrep_on").Scan(&wsrepOn); err != nil {
		return fmt.Errorf("%w: %w", api.ErrUnavailable, err)
	}
	if !wsrepOn {
		return nil
	}
	status, err := db.wsrepStatus(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", api.ErrUnavailable, err)
	}
	return status.check()
}

func (db *DB) wsrepStatus(ctx context.Context) (wsrepStatus, error) {
	rows, err := db.db.QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN "+
		"('wsrep_local_state_comment', 'wsrep_ready', 'wsrep_cluster_status')")
	if err != nil {
		return wsrepStatus{}, fmt.Errorf("read wsrep status: %w", err)
	}
	defer rows.Close()

	values := map[string]string{}
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return wsrepStatus{}, fmt.Errorf("read wsrep status: %w", err)
		}
		values[name] = value
	}
	if err := rows.Err(); err != nil {
		return wsrepStatus{}, fmt.Errorf("read wsrep status: %w", err)
	}
	return wsrepStatus{
		stateComment: values["wsrep_local_state_comment"],
		ready:        values["wsrep_ready"],
		clusterState: values["wsrep_cluster_status"],
	}, nil
}

// wsrepStatus is the part of SHOW GLOBAL STATUS that decides readiness. The
// state comment (Synced, Donor/Desynced, ...) only goes into the error.
type wsrepStatus struct {
	stateComment, ready, clusterState string
}

func (s wsrepStatus) check() error {
	switch {
	case s.clusterState != "Primary":
		return fmt.Errorf("%w: wsrep_cluster_status is %q, want Primary (node state %s)",
			api.ErrNodeNotReady, s.clusterState, s.stateComment)
	case s.ready != "ON":
		return fmt.Errorf("%w: wsrep_ready is %q, want ON (node state %s)",
			api.ErrNodeNotReady, s.ready, s.stateComment)
	}
	return nil
}

// Event returns the event with the given id.
func (db *DB) Event(ctx context.Context, id int64) (api.Event, error) {
	var e api.Event
	err := db.db.QueryRowContext(ctx,
		"SELECT id, created_at, node FROM events WHERE id = ?", id,
	).Scan(&e.ID, &e.Timestamp.Time, &e.Node)
	if errors.Is(err, sql.ErrNoRows) {
		return api.Event{}, fmt.Errorf("event %d: %w", id, api.ErrNotFound)
	}
	if err != nil {
		return api.Event{}, classifyReadError(err)
	}
	return e, nil
}

// Events returns at most limit events with an id below before, newest first.
func (db *DB) Events(ctx context.Context, before int64, limit int) ([]api.Event, error) {
	query := "SELECT id, created_at, node FROM events ORDER BY id DESC LIMIT ?"
	args := []any{limit}
	if before > 0 {
		query = "SELECT id, created_at, node FROM events WHERE id < ? ORDER BY id DESC LIMIT ?"
		args = []any{before, limit}
	}
	rows, err := db.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, classifyReadError(err)
	}
	defer rows.Close()

	events := make([]api.Event, 0, limit)
	for rows.Next() {
		var e api.Event
		if err := rows.Scan(&e.ID, &e.Timestamp.Time, &e.Node); err != nil {
			return nil, classifyReadError(err)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, classifyReadError(err)
	}
	return events, nil
}

// classifyReadError wraps api.ErrUnavailable around errors that mean the
// database cannot serve right now, so that reads answer 503 rather than 500.
func classifyReadError(err error) error {
	if classify(err) == failPermanent {
		return fmt.Errorf("query events: %w", err)
	}
	return fmt.Errorf("%w: %w", api.ErrUnavailable, err)
}
