// Package httpapi serves the timestamp API over HTTP with Gin.
//
//	@title						Timestamp API
//	@version					1.0
//	@description				Records the UTC time of each POST /app in MariaDB and answers 201 once the row is committed.
//	@description				Errors are RFC 9457 problem documents (application/problem+json).
//	@BasePath					/
//	@schemes					http
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	swaggerfiles "github.com/swaggo/files"
	ginswagger "github.com/swaggo/gin-swagger"

	"example.com/timestamp/api"
	_ "example.com/timestamp/api/docs" // registers the generated OpenAPI spec
)

// Config configures a Server. Store, Clock and Registry are required.
type Config struct {
	Store api.Store
	Clock *api.Clock

	// Registry receives the HTTP metrics and serves /metrics.
	Registry *prometheus.Registry

	// Logger receives one line per request and every error; default
	// slog.Default().
	Logger *slog.Logger

	// TrustedProxies lists the addresses or CIDRs (the load balancers)
	// whose X-Forwarded-For header is believed. Empty trusts none.
	TrustedProxies []string

	// WriteTimeout bounds one POST /app, retries included; default 5s.
	WriteTimeout time.Duration
	// ReadTimeout bounds one database read of a GET; default 5s.
	ReadTimeout time.Duration
	// ReadyTimeout bounds the database check of /readyz; default 1s.
	ReadyTimeout time.Duration
}

// MaxBodyBytes is the largest request body accepted. POST /app needs none;
// the limit keeps a client from making the server read an unbounded body.
const MaxBodyBytes = 1024

// Server is the HTTP API. Its handler is safe for concurrent use.
type Server struct {
	cfg      Config
	log      *slog.Logger
	engine   *gin.Engine
	metrics  *httpMetrics
	draining atomic.Bool
	// ready is the result of the last /readyz check, so that only changes
	// are logged and a failing check polled every second floods nothing.
	ready atomic.Bool
}

// New builds the router. It fails on an invalid trusted proxy.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Clock == nil || cfg.Registry == nil {
		return nil, errors.New("httpapi: Store, Clock and Registry are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 5 * time.Second
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = time.Second
	}

	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "http"),
		metrics: newHTTPMetrics(cfg.Registry),
	}
	engine, err := s.router()
	if err != nil {
		return nil, err
	}
	s.engine = engine
	return s, nil
}

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler { return s.engine }

// StartDraining makes /readyz fail and asks clients to close their
// connections, so that load balancers stop sending new requests while the
// requests already accepted still complete. It cannot be undone.
func (s *Server) StartDraining() { s.draining.Store(true) }

func (s *Server) router() (*gin.Engine, error) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	// POST /app/ must be served as POST /app, not redirected: some clients
	// replay a redirected POST as a GET.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	if err := r.SetTrustedProxies(s.cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("trusted proxies %v: %w", s.cfg.TrustedProxies, err)
	}

	r.Use(s.recoverPanic, s.requestID, s.observe, s.limitBody, s.closeWhileDraining)
	r.NoRoute(func(c *gin.Context) {
		writeProblem(c, http.StatusNotFound,
			"No route matches this path. The API serves /app, /app/{id}, /healthz, /readyz, /metrics and /swagger/index.html.")
	})
	r.NoMethod(func(c *gin.Context) {
		writeProblem(c, http.StatusMethodNotAllowed,
			"This method is not allowed on this path; the Allow header lists the methods that are.")
	})

	for _, path := range []string{"/app", "/app/"} {
		r.POST(path, s.createEvent)
		r.GET(path, s.listEvents)
	}
	r.GET("/app/:id", s.getEvent)
	r.GET("/healthz", s.healthz)
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})))
	r.GET("/swagger/*any", ginswagger.WrapHandler(swaggerfiles.Handler))
	return r, nil
}

func jsonRender(w http.ResponseWriter, v any) error {
	return json.NewEncoder(w).Encode(v)
}
