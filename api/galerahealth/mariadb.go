package galerahealth

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// statusQuery reads the wsrep status variables that Status needs. SHOW
// STATUS needs no privilege, so the health user can have USAGE only.
const statusQuery = "SHOW GLOBAL STATUS WHERE Variable_name IN " +
	"('wsrep_local_state', 'wsrep_local_state_comment', 'wsrep_ready', " +
	"'wsrep_cluster_status', 'wsrep_cluster_size')"

// DB is a StatusSource that queries the local MariaDB server.
type DB struct {
	db *sql.DB
}

var _ StatusSource = (*DB)(nil)

// OpenDB returns a DB that connects with the client settings in cfg. It does
// not connect yet: the first Status call does, so the endpoint starts (and
// responds with 503) while MariaDB is still down.
func OpenDB(cfg ClientConfig, dialTimeout time.Duration) (*DB, error) {
	dsn := mysql.NewConfig()
	dsn.User = cfg.User
	dsn.Passwd = cfg.Password
	dsn.Net, dsn.Addr = cfg.Network()
	dsn.Timeout = dialTimeout
	dsn.ReadTimeout = dialTimeout
	dsn.WriteTimeout = dialTimeout

	connector, err := mysql.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("build mariadb connector: %w", err)
	}
	db := sql.OpenDB(connector)

	// HAProxy checks every few seconds from each load balancer, so one or
	// two connections are enough. Recycling them keeps a restarted server
	// from leaving a dead connection in the pool for long.
	db.SetMaxOpenConns(2)
	db.SetMaxIdleConns(2)
	db.SetConnMaxLifetime(time.Minute)
	return &DB{db: db}, nil
}

// Status queries the wsrep status variables. It returns an error when the
// server cannot be reached, rejects the login or ctx ends first.
func (d *DB) Status(ctx context.Context) (Status, error) {
	rows, err := d.db.QueryContext(ctx, statusQuery)
	if err != nil {
		return Status{}, fmt.Errorf("query wsrep status: %w", err)
	}
	defer rows.Close()

	values := make(map[string]string)
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return Status{}, fmt.Errorf("scan wsrep status: %w", err)
		}
		values[strings.ToLower(name)] = value
	}
	if err := rows.Err(); err != nil {
		return Status{}, fmt.Errorf("read wsrep status: %w", err)
	}
	return parseStatus(values)
}

// Close closes the connection pool.
func (d *DB) Close() error {
	return d.db.Close()
}

// parseStatus converts the rows of statusQuery, keyed by lower-case variable
// name, into a Status. Missing variables keep their zero value, which is how
// a server without wsrep reports itself.
func parseStatus(values map[string]string) (Status, error) {
	var s Status
	if v, ok := values["wsrep_local_state"]; ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return Status{}, fmt.Errorf("parse wsrep_local_state %q: %w", v, err)
		}
		s.LocalState = LocalState(n)
	}
	if v, ok := values["wsrep_cluster_size"]; ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return Status{}, fmt.Errorf("parse wsrep_cluster_size %q: %w", v, err)
		}
		s.ClusterSize = n
	}
	s.Comment = values["wsrep_local_state_comment"]
	s.Ready = strings.EqualFold(values["wsrep_ready"], "ON")
	s.ClusterStatus = values["wsrep_cluster_status"]
	return s, nil
}
