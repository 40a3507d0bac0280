// Package api holds the domain of the timestamp service: the event that a
// POST /app records, the store that keeps events, and the errors that the
// HTTP layer maps to status codes. Technology lives in subpackages: mariadb
// implements Store, httpapi serves it.
package api

import (
	"context"
	"errors"
	"time"
)

// TimeLayout is the wire format of event timestamps: RFC 3339 in UTC with
// exactly six fractional digits, so clients can compare strings.
const TimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// Event is one recorded POST /app.
type Event struct {
	ID        int64     `json:"id" example:"42"`
	Timestamp Timestamp `json:"timestamp" swaggertype:"string" example:"2026-12-04T10:15:00.123456Z"`
	// Node is the API node that stored the event.
	Node string `json:"node" example:"api1"`
}

// Timestamp is a UTC instant with microsecond precision.
type Timestamp struct{ time.Time }

// MarshalJSON formats t in TimeLayout, always in UTC.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	return []byte(`"` + t.UTC().Format(TimeLayout) + `"`), nil
}

// UnmarshalJSON parses an RFC 3339 timestamp.
func (t *Timestamp) UnmarshalJSON(data []byte) error {
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return errors.New("invalid timestamp: expected a JSON string")
	}
	parsed, err := time.Parse(time.RFC3339Nano, string(data[1:len(data)-1]))
	if err != nil {
		return err
	}
	t.Time = parsed.UTC()
	return nil
}

// CreateRequest describes one POST /app.
type CreateRequest struct {
	// Timestamp is the moment the request arrived, in UTC.
	Timestamp time.Time
	// IdempotencyKey is the client's key, or "" when the request has none.
	IdempotencyKey string
	// RequestID identifies the request in logs.
	RequestID string
}

// Store keeps events. Implementations must be safe for concurrent use.
type Store interface {
	// CreateEvent stores one event and returns it once it is committed.
	// replayed is true when an event with the same idempotency key already
	// existed: that event is returned and nothing new is stored.
	CreateEvent(ctx context.Context, req CreateRequest) (event Event, replayed bool, err error)

	// Event returns the event with the given id, or ErrNotFound.
	Event(ctx context.Context, id int64) (Event, error)

	// Events returns at most limit events with an id below before, newest
	// first. before <= 0 means no upper bound.
	Events(ctx context.Context, before int64, limit int) ([]Event, error)

	// Ready returns nil when the store can take writes right now.
	Ready(ctx context.Context) error
}

// Errors that the HTTP layer maps to status codes. Stores wrap them with
// detail, so callers test with errors.Is.
var (
	// ErrNotFound means that no event has the requested id.
	ErrNotFound = errors.New("event not found")

	// ErrUnavailable means that the database cannot be reached or cannot
	// take writes; the request added nothing and may be retried.
	ErrUnavailable = errors.New("database unavailable")

	// ErrNodeNotReady means that the Galera node behind the store takes no
	// writes: it is outside the Primary component or wsrep_ready is OFF.
	ErrNodeNotReady = errors.New("database node not ready for writes")
)
