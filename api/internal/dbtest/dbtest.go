// Package dbtest gives integration tests a fresh database on the real
// MariaDB that scripts/devdb.sh runs. Tests call New; without that server
// they are skipped, except under CI=true, where a missing server fails them.
package dbtest

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"example.com/timestamp/api/mariadb"
)

// DB is one test's database: Config reaches it with the admin user, Admin
// is an open pool for checks.
type DB struct {
	Config mariadb.Config
	Admin  *sql.DB
	Name   string
}

// env reads the variables that `scripts/devdb.sh env` prints.
func env(t testing.TB) (addr, user, password string) {
	t.Helper()
	addr = os.Getenv("TSAPI_DB_ADDR")
	user = os.Getenv("TSAPI_TEST_ADMIN_USER")
	file := os.Getenv("TSAPI_TEST_ADMIN_PASSWORD_FILE")
	if addr == "" || user == "" || file == "" {
		missing(t, "TSAPI_DB_ADDR, TSAPI_TEST_ADMIN_USER and TSAPI_TEST_ADMIN_PASSWORD_FILE are unset; "+
			"run: scripts/devdb.sh start && eval \"$(scripts/devdb.sh env)\"")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read admin password: %v", err)
	}
	return addr, user, strings.TrimSpace(string(b))
}

func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("integration database required under CI: %s", why)
	}
	t.Skipf("no integration database: %s", why)
}

// GroupCommit reports whether the tests run with group commit, as
// TSAPI_GROUP_COMMIT=true asks; the test command runs them both ways.
func GroupCommit() bool { return os.Getenv("TSAPI_GROUP_COMMIT") == "true" }

// New creates an empty database for t, dropped when t ends.
func New(t testing.TB) *DB {
	t.Helper()
	addr, user, password := env(t)

	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := "tstest_" + hex.EncodeToString(suffix[:])

	root := adminPool(t, addr, user, password, "")
	defer root.Close()
	if _, err := root.Exec("CREATE DATABASE " + name); err != nil {
		missing(t, fmt.Sprintf("create database on %s: %v", addr, err))
	}

	admin := adminPool(t, addr, user, password, name)
	t.Cleanup(func() {
		admin.Close()
		drop := adminPool(t, addr, user, password, "")
		defer drop.Close()
		if _, err := drop.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	return &DB{
		Name:  name,
		Admin: admin,
		Config: mariadb.Config{
			Addr: addr, User: user, Password: password, Name: name,
			Node: "test",
			Retry: mariadb.RetryPolicy{
				BaseDelay: 5 * time.Millisecond,
				MaxDelay:  50 * time.Millisecond,
			},
			GroupCommit: mariadb.GroupCommit{Enabled: GroupCommit()},
		},
	}
}

func adminPool(t testing.TB, addr, user, password, name string) *sql.DB {
	t.Helper()
	mc := mysql.NewConfig()
	mc.Net, mc.Addr, mc.User, mc.Passwd, mc.DBName = "tcp", addr, user, password, name
	mc.ParseTime, mc.Loc = true, time.UTC
	mc.Timeout = 2 * time.Second
	mc.Params = map[string]string{"time_zone": "'+00:00'"}
	db, err := sql.Open("mysql", mc.FormatDSN())
	if err != nil {
		t.Fatalf("open admin pool: %v", err)
	}
	return db
}

// Count returns the number of rows in events.
func (d *DB) Count(t testing.TB) int {
	t.Helper()
	var n int
	if err := d.Admin.QueryRow("SELECT COUNT(*) FROM events").Scan(&n); err != nil {
		t.Fatalf("count events: %v", err)
	}
	return n
}

// StopServer stops the shared development MariaDB and registers its
// restart, so a test can watch the API while the database is down. Tests
// that call it must not run in parallel with other database tests.
func StopServer(t testing.TB) (start func()) {
	t.Helper()
	script := os.Getenv("TSAPI_TEST_DEVDB")
	if script == "" {
		missing(t, "TSAPI_TEST_DEVDB is unset; it names scripts/devdb.sh")
	}
	run := func(cmd string) {
		out, err := exec.Command(script, cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", script, cmd, err, out)
		}
	}
	run("stop")
	started := false
	start = func() {
		if !started {
			started = true
			run("start")
		}
	}
	t.Cleanup(start)
	return start
}
