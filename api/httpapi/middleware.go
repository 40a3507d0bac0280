package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

const requestIDKey = "request_id"

// requestID takes the caller's X-Request-ID when it is short printable
// ASCII (HAProxy or a client may set one), or makes a new one, and echoes it.
func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if !validToken(id, 64) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Set(requestIDKey, id)
	c.Header("X-Request-ID", id)
	c.Next()
}

// validToken reports whether s is 1 to max printable ASCII characters.
func validToken(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// observe records metrics and writes one log line per request. The route
// label is the matched template, so that arbitrary URLs cannot create
// series.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	elapsed := time.Since(start)

	route := c.FullPath()
	if route == "" {
		route = unmatchedRoute
	}
	status := c.Writer.Status()
	s.metrics.observe(c.Request.Method, route, status, elapsed)

	level := slogLevelFor(status)
	s.log.Log(c.Request.Context(), level, "request",
		"request_id", c.GetString(requestIDKey),
		"method", c.Request.Method,
		"route", route,
		"path", c.Request.URL.Path,
		"status", status,
		"latency_ms", float64(elapsed.Microseconds())/1000,
		"client", c.ClientIP(),
		"bytes", c.Writer.Size())
}

// limitBody rejects a body over MaxBodyBytes with 413 before any handler
// runs, whether the length is declared or the body is chunked.
func (s *Server) limitBody(c *gin.Context) {
	if c.Request.ContentLength > MaxBodyBytes {
		writeProblem(c, http.StatusRequestEntityTooLarge,
			"The request body is larger than "+strconv.Itoa(MaxBodyBytes)+" bytes; POST /app needs no body.")
		return
	}
	if c.Request.Body == nil || c.Request.Body == http.NoBody {
		c.Next()
		return
	}
	body := http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes)
	_, err := io.Copy(io.Discard, body)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeProblem(c, http.StatusRequestEntityTooLarge,
			"The request body is larger than "+strconv.Itoa(MaxBodyBytes)+" bytes; POST /app needs no body.")
		return
	case err != nil:
		writeProblem(c, http.StatusBadRequest, "The request body could not be read: "+err.Error())
		return
	}
	c.Request.Body = http.NoBody
	c.Next()
}

// closeWhileDraining asks the client to close its connection once shutdown
// has begun, so that keep-alive clients reconnect through the load balancer
// to another instance instead of reusing a connection that will close.
func (s *Server) closeWhileDraining(c *gin.Context) {
	if s.draining.Load() {
		c.Header("Connection", "close")
	}
	c.Next()
}

// recoverPanic turns a panic into a logged 500, so one bad request cannot
// take the process down. http.ErrAbortHandler is re-raised, as net/http
// expects.
func (s *Server) recoverPanic(c *gin.Context) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if v == http.ErrAbortHandler {
			panic(v)
		}
		s.log.Error("handler panicked", "request_id", c.GetString(requestIDKey),
			"route", c.FullPath(), "panic", v)
		if !c.Writer.Written() {
			writeProblem(c, http.StatusInternalServerError,
				"The server failed unexpectedly; the error is logged under this request id.")
		}
	}()
	c.Next()
}
