package mariadb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"

	"example.com/timestamp/api"
)

// GroupCommit configures group commit: concurrent CreateEvent calls are
// written together, in one multi-row INSERT and one commit, so that many
// requests share the cost of one synchronous Galera replication round.
type GroupCommit struct {
	// Enabled turns group commit on; off, every request has its own
	// INSERT and commit.
	Enabled bool
	// Window is how long a writer waits for more rows after the first one
	// of a batch; zero takes only the rows already queued. Default 0.
	Window time.Duration
	// MaxRows caps one batch; default 128.
	MaxRows int
	// Writers is the number of batches in flight at once; default 4.
	Writers int
	// Timeout bounds one batch, retries included; default 5s.
	Timeout time.Duration
}

func (g GroupCommit) withDefaults() GroupCommit {
	if g.MaxRows <= 0 {
		g.MaxRows = 128
	}
	if g.Writers <= 0 {
		g.Writers = 4
	}
	if g.Timeout <= 0 {
		g.Timeout = 5 * time.Second
	}
	return g
}

// pending is one request waiting for its batch.
type pending struct {
	req    api.CreateRequest
	token  requestToken
	result chan batchResult
}

type batchResult struct {
	event    api.Event
	replayed bool
	err      error
}

// batcher runs the writers of group commit.
type batcher struct {
	db    *DB
	cfg   GroupCommit
	queue chan *pending
	wg    sync.WaitGroup
}

func newBatcher(db *DB, cfg GroupCommit) *batcher {
	b := &batcher{db: db, cfg: cfg, queue: make(chan *pending, cfg.MaxRows*cfg.Writers)}
	for range cfg.Writers {
		b.wg.Add(1)
		go b.writer()
	}
	return b
}

// close stops the writers after they have written every queued request.
// No call to submit may start after close.
func (b *batcher) close() {
	close(b.queue)
	b.wg.Wait()
}

// submit queues req and waits for the commit of its batch. It does not
// give up when ctx ends: once queued, a request's row may be written, so
// its caller must learn the outcome, which the batch's own timeout bounds.
func (b *batcher) submit(ctx context.Context, req api.CreateRequest) (api.Event, bool, error) {
	p := &pending{req: req, token: newRequestToken(), result: make(chan batchResult, 1)}
	select {
	case b.queue <- p:
	case <-ctx.Done():
		return api.Event{}, false, fmt.Errorf("%w: queue for group commit is full: %w", api.ErrUnavailable, ctx.Err())
	}
	r := <-p.result
	return r.event, r.replayed, r.err
}

func (b *batcher) writer() {
	defer b.wg.Done()
	for first := range b.queue {
		batch := b.collect(first)
		b.db.metrics.observeBatch(len(batch))
		b.write(batch)
	}
}

// collect gathers up to MaxRows requests: first, every request already
// queued, and those that arrive within Window.
func (b *batcher) collect(first *pending) []*pending {
	batch := []*pending{first}
	var deadline <-chan time.Time
	if b.cfg.Window > 0 {
		timer := time.NewTimer(b.cfg.Window)
		defer timer.Stop()
		deadline = timer.C
	}
	for len(batch) < b.cfg.MaxRows {
		select {
		case p, ok := <-b.queue:
			if !ok {
				return batch
			}
			batch = append(batch, p)
			continue
		default:
		}
		if deadline == nil {
			return batch
		}
		select {
		case p, ok := <-b.queue:
			if !ok {
				return batch
			}
			batch = append(batch, p)
		case <-deadline:
			return batch
		}
	}
	return batch
}

// write commits one batch and sends each of its requests its result. Requests that
// share an Idempotency-Key are written once: the first one inserts, the
// others get its event as a replay.
func (b *batcher) write(batch []*pending) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
	defer cancel()

	leaders := make([]*pending, 0, len(batch))
	followers := map[*pending][]*pending{}
	byKey := map[string]*pending{}
	for _, p := range batch {
		key := p.req.IdempotencyKey
		if leader, ok := byKey[key]; ok && key != "" {
			followers[leader] = append(followers[leader], p)
			continue
		}
		if key != "" {
			byKey[key] = p
		}
		leaders = append(leaders, p)
	}

	results := b.db.insertBatch(ctx, leaders)
	for i, p := range leaders {
		p.result <- results[i]
		for _, f := range followers[p] {
			r := results[i]
			if r.err == nil {
				r.replayed = true
			}
			f.result <- r
		}
	}
}

// insertBatch writes rows with one INSERT IGNORE ... RETURNING per attempt
// and returns one result per row, in order.
//
// IGNORE skips a row whose token or Idempotency-Key already exists instead
// of failing the whole batch, and RETURNING names the rows that were
// inserted, so no id is computed from LAST_INSERT_ID (Galera interleaves
// auto-increment values, so a batch's ids need not be consecutive). A
// skipped row is then found by its token (an earlier attempt of this batch
// committed it) or by its key (a replay). The tokens stay the same across
// attempts, so retries never store a row twice.
func (db *DB) insertBatch(ctx context.Context, rows []*pending) []batchResult {
	results := make([]batchResult, len(rows))
	open := make([]int, len(rows)) // indexes of rows without a result yet
	for i := range rows {
		open[i] = i
	}
	policy := db.cfg.Retry
	var lastErr error
	unknown := false

	for attempt := 1; attempt <= policy.MaxAttempts && len(open) > 0; attempt++ {
		if attempt > 1 {
			wait := policy.delay(attempt - 1)
			db.log.Warn("retrying batch insert", "rows", len(open), "attempt", attempt,
				"delay", wait, "outcome_unknown", unknown, "error", lastErr)
			db.metrics.retried(unknown)
			if sleep(ctx, wait) != nil {
				break
			}
		}
		inserted, err := db.insertRows(ctx, rows, open)
		if err != nil {
			lastErr = err
			switch classify(err) {
			case failPermanent:
				return failAll(results, open, fmt.Errorf("insert events: %w", err))
			case failUnknown:
				unknown = true
			}
			continue
		}
		open, err = db.resolveSkipped(ctx, rows, open, inserted, results)
		if err != nil {
			lastErr = err
		}
	}
	if unknown && len(open) > 0 {
		// The batch's deadline may be spent; make a last look-up with a
		// deadline of its own before reporting that the rows failed.
		resolveCtx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
		open, _ = db.resolveSkipped(resolveCtx, rows, open, nil, results)
		cancel()
	}
	if len(open) > 0 {
		return failAll(results, open,
			fmt.Errorf("%w: batch insert failed after retries: %w", api.ErrUnavailable, lastErr))
	}
	return results
}

// insertRows inserts rows[i] for i in open and returns the ids of the
// inserted rows by token.
func (db *DB) insertRows(ctx context.Context, rows []*pending, open []int) (map[requestToken]int64, error) {
	var q strings.Builder
	q.WriteString("INSERT IGNORE INTO events (created_at, request_token, idempotency_key, node) VALUES ")
	args := make([]any, 0, 4*len(open))
	for n, i := range open {
		if n > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?)")
		p := rows[i]
		var key sql.NullString
		if p.req.IdempotencyKey != "" {
			key = sql.NullString{String: p.req.IdempotencyKey, Valid: true}
		}
		args = append(args, p.req.Timestamp, p.token[:], key, db.cfg.Node)
	}
	q.WriteString(" RETURNING id, request_token")

	start := time.Now()
	result, err := db.db.QueryContext(ctx, q.String(), args...)
	if err != nil {
		db.metrics.observeInsert(time.Since(start), err)
		return nil, err
	}
	defer result.Close()
	inserted := make(map[requestToken]int64, len(open))
	for result.Next() {
		var id int64
		var raw []byte
		if err := result.Scan(&id, &raw); err != nil {
			return nil, err
		}
		var token requestToken
		copy(token[:], raw)
		inserted[token] = id
	}
	err = result.Err()
	db.metrics.observeInsert(time.Since(start), err)
	return inserted, err
}

// resolveSkipped fills results for the rows that were inserted or that
// already exist, and returns the indexes still without a result.
func (db *DB) resolveSkipped(ctx context.Context, rows []*pending, open []int,
	inserted map[requestToken]int64, results []batchResult) ([]int, error) {
	var still []int
	var lastErr error
	for _, i := range open {
		p := rows[i]
		if id, ok := inserted[p.token]; ok {
			results[i] = batchResult{event: api.Event{ID: id, Timestamp: api.Timestamp{Time: p.req.Timestamp}, Node: db.cfg.Node}}
			continue
		}
		event, found, err := db.eventByToken(ctx, p.token)
		if err == nil && found {
			results[i] = batchResult{event: event}
			continue
		}
		if err == nil && p.req.IdempotencyKey != "" {
			event, found, err = db.eventByKey(ctx, p.req.IdempotencyKey)
			if err == nil && found {
				results[i] = batchResult{event: event, replayed: true}
				continue
			}
		}
		if err == nil {
			// Possible only while a row holding the key is being rolled
			// back; the next attempt inserts it.
			err = fmt.Errorf("%w: row %d neither inserted nor found", errRetryable, i)
		}
		lastErr = err
		still = append(still, i)
	}
	return still, lastErr
}

func failAll(results []batchResult, open []int, err error) []batchResult {
	for _, i := range open {
		results[i] = batchResult{err: err}
	}
	return results
}
