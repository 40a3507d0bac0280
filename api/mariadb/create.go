package mariadb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"time"

	"example.com/timestamp/api"
)

// RetryPolicy bounds the retries of one write.
type RetryPolicy struct {
	// MaxAttempts counts the first try; default 4.
	MaxAttempts int
	// BaseDelay is the wait before the first retry, doubled each time
	// with full jitter; default 25ms.
	BaseDelay time.Duration
	// MaxDelay caps one wait; default 400ms.
	MaxDelay time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 4
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 25 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 400 * time.Millisecond
	}
	return p
}

// delay returns the wait before retry number n (1 for the first retry).
func (p RetryPolicy) delay(n int) time.Duration {
	d := p.BaseDelay << (n - 1)
	if d <= 0 || d > p.MaxDelay {
		d = p.MaxDelay
	}
	return d/2 + mathrand.N(d/2+1)
}

// requestToken is the random per-request value stored with each row; see
// CreateEvent.
type requestToken [16]byte

func newRequestToken() requestToken {
	var t requestToken
	// crypto/rand.Read never returns an error on Linux (Go 1.24 and later
	// crash the program instead of returning one).
	_, _ = rand.Read(t[:])
	return t
}

// resolveTimeout bounds the last look-up after a write whose outcome is
// unknown, when the request's own deadline has already passed.
const resolveTimeout = 2 * time.Second

// CreateEvent inserts one event and returns it once committed.
//
// Every call draws a fresh request token, stored in a unique column. When a
// write fails in a way that leaves its outcome unknown (the connection broke
// during the commit, a timeout), the retry first looks the token up and
// returns the row it finds; and if the look-up misses a row that commits
// later, the unique key rejects the second insert. So retries made here can
// never create a second row for one request. A request with an
// Idempotency-Key that already has a row returns that row with replayed set.
//
// With group commit enabled, the request joins a batch instead, under the
// same rules (see insertBatch).
func (db *DB) CreateEvent(ctx context.Context, req api.CreateRequest) (api.Event, bool, error) {
	if db.batcher != nil {
		return db.batcher.submit(ctx, req)
	}
	token := newRequestToken()
	policy := db.cfg.Retry
	unknown := false
	var lastErr error

	for attempt := 1; attempt <= policy.MaxAttempts; attempt++ {
		if attempt > 1 {
			wait := policy.delay(attempt - 1)
			db.log.Warn("retrying insert", "request_id", req.RequestID, "attempt", attempt,
				"delay", wait, "outcome_unknown", unknown, "error", lastErr)
			db.metrics.retried(unknown)
			if err := sleep(ctx, wait); err != nil {
				break
			}
		}

		if unknown {
			event, found, err := db.eventByToken(ctx, token)
			if err != nil {
				lastErr = err
				continue
			}
			if found {
				db.log.Info("insert had committed before its error", "request_id", req.RequestID,
					"id", event.ID)
				return event, false, nil
			}
		}

		event, replayed, err := db.insertOnce(ctx, req, token)
		if err == nil {
			return event, replayed, nil
		}
		lastErr = err
		switch classify(err) {
		case failPermanent:
			return api.Event{}, false, fmt.Errorf("insert event: %w", err)
		case failUnknown:
			unknown = true
		}
		if ctx.Err() != nil {
			break
		}
	}

	if unknown {
		return db.resolveUnknown(ctx, req, token, lastErr)
	}
	return api.Event{}, false, fmt.Errorf("%w: insert failed after retries: %w", api.ErrUnavailable, lastErr)
}

// resolveUnknown makes a last look-up for a request whose every attempt
// failed and at least one of them may have committed. The look-up uses its
// own deadline because the request's may be spent.
func (db *DB) resolveUnknown(ctx context.Context, req api.CreateRequest, token requestToken, cause error) (api.Event, bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resolveTimeout)
	defer cancel()

	event, found, err := db.eventByToken(ctx, token)
	if err == nil && found {
		db.log.Info("insert had committed before its error", "request_id", req.RequestID, "id", event.ID)
		return event, false, nil
	}
	if err != nil {
		// NOTE: the row may still exist: the client gets 503 and must
		// retry with its Idempotency-Key to learn the outcome.
		db.log.Error("outcome of insert unknown", "request_id", req.RequestID, "error", err, "cause", cause)
	}
	return api.Event{}, false, fmt.Errorf("%w: insert failed after retries: %w", api.ErrUnavailable, cause)
}

// insertOnce runs one INSERT. On a duplicate key it returns the row that
// holds the key: the caller's own row when its token is taken (an earlier
// attempt committed), or the original row of the Idempotency-Key.
func (db *DB) insertOnce(ctx context.Context, req api.CreateRequest, token requestToken) (api.Event, bool, error) {
	var key sql.NullString
	if req.IdempotencyKey != "" {
		key = sql.NullString{String: req.IdempotencyKey, Valid: true}
	}

	start := time.Now()
	res, err := db.db.ExecContext(ctx,
		"INSERT INTO events (created_at, request_token, idempotency_key, node) VALUES (?, ?, ?, ?)",
		req.Timestamp, token[:], key, db.cfg.Node)
	db.metrics.observeInsert(time.Since(start), err)

	if err != nil {
		if classify(err) == failDuplicate {
			return db.eventForDuplicate(ctx, req, token, err)
		}
		return api.Event{}, false, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return api.Event{}, false, fmt.Errorf("read inserted id: %w", err)
	}
	return api.Event{ID: id, Timestamp: api.Timestamp{Time: req.Timestamp}, Node: db.cfg.Node}, false, nil
}

func (db *DB) eventForDuplicate(ctx context.Context, req api.CreateRequest, token requestToken, dupErr error) (api.Event, bool, error) {
	event, found, err := db.eventByToken(ctx, token)
	if err != nil {
		return api.Event{}, false, err
	}
	if found {
		return event, false, nil
	}
	if req.IdempotencyKey == "" {
		return api.Event{}, false, fmt.Errorf("insert event: unexpected duplicate: %w", dupErr)
	}
	event, found, err = db.eventByKey(ctx, req.IdempotencyKey)
	if err != nil {
		return api.Event{}, false, err
	}
	if !found {
		// The row holding the key was seen by the unique index but not by
		// the look-up, which can only happen while it is being rolled back:
		// retrying is safe.
		return api.Event{}, false, fmt.Errorf("%w: idempotency key row vanished", errRetryable)
	}
	return event, true, nil
}

// errRetryable marks a condition of ours that a retry resolves.
var errRetryable = errors.New("transient conflict")

// eventByToken and eventByKey read with wsrep_sync_wait=1, so that on a
// Galera node other than the one that took the first attempt they wait
// until every write set already replicated is applied: a committed row is
// always seen. Without wsrep the setting has no effect.
func (db *DB) eventByToken(ctx context.Context, token requestToken) (api.Event, bool, error) {
	return db.eventWhere(ctx, "request_token = ?", token[:])
}

func (db *DB) eventByKey(ctx context.Context, key string) (api.Event, bool, error) {
	return db.eventWhere(ctx, "idempotency_key = ?", key)
}

func (db *DB) eventWhere(ctx context.Context, where string, arg any) (api.Event, bool, error) {
	var e api.Event
	err := db.db.QueryRowContext(ctx,
		"SET STATEMENT wsrep_sync_wait = 1 FOR SELECT id, created_at, node FROM events WHERE "+where,
		arg).Scan(&e.ID, &e.Timestamp.Time, &e.Node)
	if errors.Is(err, sql.ErrNoRows) {
		return api.Event{}, false, nil
	}
	if err != nil {
		return api.Event{}, false, fmt.Errorf("look up event: %w", err)
	}
	return e, true, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
