package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"example.com/timestamp/api"
)

// Problem is an error response body as defined by RFC 9457.
type Problem struct {
	Type     string `json:"type" example:"about:blank"`
	Title    string `json:"title" example:"Service Unavailable"`
	Status   int    `json:"status" example:"503"`
	Detail   string `json:"detail,omitempty" example:"The database is unavailable; retry after the Retry-After delay."`
	Instance string `json:"instance,omitempty" example:"/app"`
	// RequestID matches the X-Request-ID response header and the logs.
	RequestID string `json:"request_id,omitempty" example:"5f0c6a1e2b7d4c3a"`
}

const problemContentType = "application/problem+json"

// retryAfterSeconds is sent with every 503: long enough for HAProxy to move
// traffic to a healthy node (its checks run every second or two), short
// enough that a client does not wait out a failover that is already over.
const retryAfterSeconds = 2

// writeProblem ends the request with an RFC 9457 body.
func writeProblem(c *gin.Context, status int, detail string) {
	if status == http.StatusServiceUnavailable {
		c.Header("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	body := Problem{
		Type:      "about:blank",
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    detail,
		Instance:  c.Request.URL.Path,
		RequestID: c.GetString(requestIDKey),
	}
	c.Abort()
	c.Render(status, problemRender{body})
}

// writeStoreError maps an error from the store to a problem. Known failures
// get their own status; only an unexpected error is a 500, and it is logged
// in full while the client sees no internal detail.
func writeStoreError(c *gin.Context, log *slog.Logger, err error) {
	status, detail := classifyStoreError(err, c.Request.Method == http.MethodPost)
	if status == http.StatusInternalServerError {
		log.Error("request failed", "request_id", c.GetString(requestIDKey),
			"route", c.FullPath(), "error", err)
	} else if status == http.StatusServiceUnavailable {
		log.Warn("database unavailable", "request_id", c.GetString(requestIDKey),
			"route", c.FullPath(), "error", err)
	}
	writeProblem(c, status, detail)
}

// classifyStoreError returns the status and detail for err; isWrite
// selects the detail of a failed POST, whose outcome a retry settles.
func classifyStoreError(err error, isWrite bool) (status int, detail string) {
	switch {
	case errors.Is(err, api.ErrNotFound):
		return http.StatusNotFound, "No event has this id."
	case errors.Is(err, api.ErrNodeNotReady):
		return http.StatusServiceUnavailable,
			"The database node takes no writes (it is outside the Primary component or not ready), so the request was not served and nothing was stored. Retry after the Retry-After delay."
	case errors.Is(err, api.ErrUnavailable) && isWrite:
		return http.StatusServiceUnavailable,
			"The database is unavailable, so the event was not confirmed. Retry after the Retry-After delay with the same Idempotency-Key: if a commit cut off by the outage was stored after all, the retry returns that event instead of storing a second one."
	case errors.Is(err, api.ErrUnavailable):
		return http.StatusServiceUnavailable,
			"The database is unavailable, so the events could not be read. Retry after the Retry-After delay."
	}
	return http.StatusInternalServerError, "The server failed unexpectedly; the error is logged under this request id."
}

// problemRender writes JSON with the problem media type, which gin's JSON
// renderer would overwrite with application/json.
type problemRender struct{ p Problem }

func (r problemRender) Render(w http.ResponseWriter) error {
	r.WriteContentType(w)
	return jsonRender(w, r.p)
}

func (r problemRender) WriteContentType(w http.ResponseWriter) {
	w.Header().Set("Content-Type", problemContentType)
}
