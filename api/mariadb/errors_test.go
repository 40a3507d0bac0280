package mariadb

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"example.com/timestamp/api"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want failure
	}{
		{"certification failure 1213", &mysql.MySQLError{Number: 1213}, failRetry},
		{"node not ready 1047", &mysql.MySQLError{Number: 1047}, failRetry},
		{"lock wait timeout 1205", &mysql.MySQLError{Number: 1205}, failRetry},
		{"read only 1290", &mysql.MySQLError{Number: 1290}, failRetry},
		{"access denied 1045", &mysql.MySQLError{Number: 1045}, failRetry},
		{"duplicate 1062", fmt.Errorf("wrapped: %w", &mysql.MySQLError{Number: 1062}), failDuplicate},
		{"syntax 1064", &mysql.MySQLError{Number: 1064}, failPermanent},
		{"connection killed 1927", &mysql.MySQLError{Number: 1927}, failUnknown},
		{"primary lost during commit 1180", &mysql.MySQLError{Number: 1180}, failUnknown},
		{"invalid connection", mysql.ErrInvalidConn, failUnknown},
		{"unexpected EOF", io.ErrUnexpectedEOF, failUnknown},
		{"deadline", context.DeadlineExceeded, failUnknown},
		{"reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, failUnknown},
		{"bad conn", driver.ErrBadConn, failRetry},
		{"dial refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, failRetry},
		{"own transient", errRetryable, failRetry},
		{"other", errors.New("boom"), failPermanent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.err); got != tc.want {
				t.Errorf("classify(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

func TestWsrepStatusCheck(t *testing.T) {
	cases := []struct {
		name   string
		status wsrepStatus
		ok     bool
	}{
		{"synced", wsrepStatus{"Synced", "ON", "Primary"}, true},
		// A desynced or joined node in the Primary component commits
		// writes; HAProxy's galera-health check moves writes off it.
		{"donor", wsrepStatus{"Donor/Desynced", "ON", "Primary"}, true},
		{"joined", wsrepStatus{"Joined", "ON", "Primary"}, true},
		{"joining", wsrepStatus{"Joining", "OFF", "Primary"}, false},
		{"non-primary", wsrepStatus{"Synced", "ON", "non-Primary"}, false},
		{"disconnected", wsrepStatus{"Initialized", "OFF", "Disconnected"}, false},
		{"not ready", wsrepStatus{"Synced", "OFF", "Primary"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.status.check()
			if tc.ok && err != nil {
				t.Fatalf("check() = %v, want nil", err)
			}
			if !tc.ok && !errors.Is(err, api.ErrNodeNotReady) {
				t.Fatalf("check() = %v, want ErrNodeNotReady", err)
			}
		})
	}
}

func TestRetryDelayBounded(t *testing.T) {
	p := RetryPolicy{BaseDelay: 10 * time.Millisecond, MaxDelay: 80 * time.Millisecond}.withDefaults()
	for n := 1; n <= 70; n++ {
		d := p.delay(n)
		if d < 0 || d > p.MaxDelay {
			t.Fatalf("delay(%d) = %s, want within [0, %s]", n, d, p.MaxDelay)
		}
	}
}

func TestDSNPinsUTC(t *testing.T) {
	cfg, err := mysql.ParseDSN(Config{Password: "secret"}.DSN())
	if err != nil {
		t.Fatalf("ParseDSN: %v", err)
	}
	if cfg.Loc != time.UTC {
		t.Errorf("Loc = %v, want UTC", cfg.Loc)
	}
	if got := cfg.Params["time_zone"]; got != "'+00:00'" {
		t.Errorf("time_zone = %q, want '+00:00'", got)
	}
	if !cfg.ParseTime {
		t.Error("ParseTime is off")
	}
}
