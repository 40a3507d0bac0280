package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gin-gonic/gin"

	"example.com/timestamp/api"
)

// Limits of GET /app.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// maxIdempotencyKeyLen is the widest Idempotency-Key accepted, the width of
// its database column.
const maxIdempotencyKeyLen = 255

// EventList is one page of GET /app.
type EventList struct {
	Events []api.Event `json:"events"`
	// Next is the URL of the next, older page; absent on the last page.
	Next string `json:"next,omitempty" example:"/app?before=42&limit=100"`
}

// createEvent stores the time of the request.
//
//	@Summary		Record an event
//	@Description	Stores the server's UTC time, with microseconds, and answers 201 only after the row is committed.
//	@Description	No body is needed. A repeat with the same Idempotency-Key returns the original event (201, Idempotent-Replayed: true) and stores nothing.
//	@Tags			events
//	@Produce		json,application/problem+json
//	@Param			Idempotency-Key	header		string	false	"1 to 255 printable ASCII characters"	minlength(1)	maxlength(255)
//	@Success		201				{object}	api.Event
//	@Header			201				{string}	Location			"/app/{id}"
//	@Header			201				{string}	Idempotent-Replayed	"true when the event already existed"
//	@Failure		400				{object}	Problem	"invalid Idempotency-Key"
//	@Failure		413				{object}	Problem	"body over 1 KiB"
//	@Failure		503				{object}	Problem	"database unavailable or its node takes no writes; retry with the same Idempotency-Key"
//	@Header			503				{integer}	Retry-After	"seconds to wait before the retry"
//	@Router			/app [post]
func (s *Server) createEvent(c *gin.Context) {
	keys := c.Request.Header.Values("Idempotency-Key")
	if len(keys) > 1 {
		writeProblem(c, http.StatusBadRequest, "Send at most one Idempotency-Key header.")
		return
	}
	key := ""
	if len(keys) == 1 {
		key = keys[0]
		if !validToken(key, maxIdempotencyKeyLen) {
			writeProblem(c, http.StatusBadRequest,
				"The Idempotency-Key header must be 1 to 255 printable ASCII characters (0x20 to 0x7E).")
			return
		}
	}

	req := api.CreateRequest{
		Timestamp:      s.cfg.Clock.Next(),
		IdempotencyKey: key,
		RequestID:      c.GetString(requestIDKey),
	}
	// The write must not stop when the client goes away: an insert cut off
	// halfway leaves its outcome unknown, which is worse than finishing it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), s.cfg.WriteTimeout)
	defer cancel()

	event, replayed, err := s.cfg.Store.CreateEvent(ctx, req)
	if err != nil {
		writeStoreError(c, s.log, err)
		return
	}
	c.Header("Location", "/app/"+strconv.FormatInt(event.ID, 10))
	if replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	c.PureJSON(http.StatusCreated, event)
}

// getEvent returns one event.
//
//	@Summary	Get an event
//	@Tags		events
//	@Produce	json,application/problem+json
//	@Param		id	path		int	true	"event id"
//	@Success	200	{object}	api.Event
//	@Failure	400	{object}	Problem	"id is not a positive integer"
//	@Failure	404	{object}	Problem	"no event has this id"
//	@Failure	503	{object}	Problem	"database unavailable"
//	@Header		503	{integer}	Retry-After	"seconds to wait before the retry"
//	@Router		/app/{id} [get]
func (s *Server) getEvent(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		writeProblem(c, http.StatusBadRequest, "The event id must be a positive integer, as in /app/42.")
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.ReadTimeout)
	defer cancel()

	event, err := s.cfg.Store.Event(ctx, id)
	if err != nil {
		writeStoreError(c, s.log, err)
		return
	}
	c.PureJSON(http.StatusOK, event)
}

// listEvents returns events newest first, one page at a time.
//
//	@Summary		List events
//	@Description	Newest first. Follow "next" for the following page; it is absent on the last page.
//	@Tags			events
//	@Produce		json,application/problem+json
//	@Param			limit	query		int	false	"page size, 1 to 1000"	default(100)	minimum(1)	maximum(1000)
//	@Param			before	query		int	false	"only events with an id below this one"	minimum(1)
//	@Success		200		{object}	EventList
//	@Failure		400		{object}	Problem	"invalid limit or before"
//	@Failure		503		{object}	Problem	"database unavailable"
//	@Header			503		{integer}	Retry-After	"seconds to wait before the retry"
//	@Router			/app [get]
func (s *Server) listEvents(c *gin.Context) {
	limit := DefaultListLimit
	if raw, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > MaxListLimit {
			writeProblem(c, http.StatusBadRequest, "limit must be an integer from 1 to 1000.")
			return
		}
		limit = n
	}
	var before int64
	if raw, ok := c.GetQuery("before"); ok {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 1 {
			writeProblem(c, http.StatusBadRequest, "before must be a positive integer: the id from the previous page's next link.")
			return
		}
		before = n
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.ReadTimeout)
	defer cancel()

	events, err := s.cfg.Store.Events(ctx, before, limit)
	if err != nil {
		writeStoreError(c, s.log, err)
		return
	}
	page := EventList{Events: events}
	if len(events) == limit {
		q := url.Values{}
		q.Set("before", strconv.FormatInt(events[len(events)-1].ID, 10))
		q.Set("limit", strconv.Itoa(limit))
		page.Next = "/app?" + q.Encode()
	}
	c.PureJSON(http.StatusOK, page)
}

// Status is the body of /healthz and of a successful /readyz.
type Status struct {
	Status string `json:"status" example:"ok"`
}

// healthz reports that the process is alive.
//
//	@Summary		Liveness
//	@Description	200 while the process serves HTTP; it does not touch the database.
//	@Tags			health
//	@Produce		json
//	@Success		200	{object}	Status
//	@Router			/healthz [get]
func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, Status{Status: "ok"})
}

// readyz reports whether this instance should receive traffic.
//
//	@Summary		Readiness
//	@Description	200 when the database responds within the ready timeout and, where wsrep_on is set, the node takes writes (Primary component, wsrep_ready ON; a Donor/Desynced node counts, because HAProxy moves writes off it). 503 otherwise, and from the start of a graceful shutdown.
//	@Tags			health
//	@Produce		json
//	@Success		200	{object}	Status
//	@Failure		503	{object}	Problem
//	@Router			/readyz [get]
func (s *Server) readyz(c *gin.Context) {
	if s.draining.Load() {
		writeProblem(c, http.StatusServiceUnavailable, "The instance is shutting down; send requests to another one.")
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.ReadyTimeout)
	defer cancel()

	if err := s.cfg.Store.Ready(ctx); err != nil {
		// The cause goes to the body, not only to the log, so that an
		// operator who curls /readyz sees at once why it fails.
		if s.ready.Swap(false) {
			s.log.Warn("instance not ready", "error", err)
		}
		writeProblem(c, http.StatusServiceUnavailable, "Not ready: "+err.Error())
		return
	}
	if !s.ready.Swap(true) {
		s.log.Info("instance ready")
	}
	c.JSON(http.StatusOK, Status{Status: "ready"})
}
