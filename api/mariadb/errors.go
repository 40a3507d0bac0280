package mariadb

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/go-sql-driver/mysql"
)

// failure says what a failed statement means for the row it tried to write.
type failure int

const (
	// failPermanent: the statement was rejected and retrying cannot help
	// (a syntax or privilege error); nothing was written.
	failPermanent failure = iota
	// failRetry: the server rolled the statement back or never ran it;
	// nothing was written and a retry may succeed.
	failRetry
	// failUnknown: the connection broke or timed out after the statement
	// was sent, so the row may or may not be committed.
	failUnknown
	// failDuplicate: a unique key already holds the value.
	failDuplicate
)

// MariaDB server error numbers, from include/mysqld_error.h and the MariaDB
// error code reference.
const (
	erDupEntry          = 1062 // ER_DUP_ENTRY
	erUnknownComError   = 1047 // ER_UNKNOWN_COM_ERROR: wsrep not ready for application use
	erLockWaitTimeout   = 1205 // ER_LOCK_WAIT_TIMEOUT
	erLockDeadlock      = 1213 // ER_LOCK_DEADLOCK: also Galera's certification failure
	erServerShutdown    = 1053 // ER_SERVER_SHUTDOWN
	erConCount          = 1040 // ER_CON_COUNT_ERROR: too many connections
	erReadOnly          = 1290 // ER_OPTION_PREVENTS_STATEMENT, e.g. read_only
	erConnectionKilled  = 1927 // ER_CONNECTION_KILLED
	erQueryInterrupted  = 1317 // ER_QUERY_INTERRUPTED
	erClientInteraction = 4031 // ER_CLIENT_INTERACTION_TIMEOUT: idle connection closed
	erTooManyUserConns  = 1203 // ER_TOO_MANY_USER_CONNECTIONS
	erHostBlocked       = 1129 // ER_HOST_IS_BLOCKED
	erAccessDenied      = 1045 // ER_ACCESS_DENIED_ERROR
	erBadDB             = 1049 // ER_BAD_DB_ERROR
	// ER_ERROR_DURING_COMMIT. Galera returns it when the node leaves the
	// Primary component while the write-set is being replicated ("Not
	// connected to Primary Component"): the write-set may already have
	// reached the members that keep the quorum and commit there.
	erErrorDuringCommit = 1180
)

// classify decides what err means for a write. Errors from a broken or
// timed-out connection are failUnknown, because the driver cannot tell
// whether the server committed before the connection went away.
func classify(err error) failure {
	if errors.Is(err, errRetryable) {
		return failRetry
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		switch myErr.Number {
		case erDupEntry:
			return failDuplicate
		case erUnknownComError, erLockWaitTimeout, erLockDeadlock, erServerShutdown,
			erConCount, erReadOnly, erTooManyUserConns, erHostBlocked:
			return failRetry
		case erConnectionKilled, erQueryInterrupted, erClientInteraction, erErrorDuringCommit:
			return failUnknown
		case erAccessDenied, erBadDB:
			// The credentials or the database are wrong: retrying the
			// same request cannot help, but readiness reports it as an
			// outage, so the HTTP layer treats it as unavailable.
			return failRetry
		}
		return failPermanent
	}

	// database/sql retries driver.ErrBadConn itself, and the driver returns
	// it only when nothing was sent; if it reaches us nothing was written.
	if errors.Is(err, driver.ErrBadConn) {
		return failRetry
	}
	if isDialError(err) {
		return failRetry
	}
	if errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) {
		return failUnknown
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return failUnknown
	}
	return failPermanent
}

// isDialError reports whether err happened while connecting, before any
// statement could be sent.
func isDialError(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}
