package galerahealth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSource returns a fixed Status or error, or blocks until the context
// ends when block is set.
type fakeSource struct {
	status Status
	err    error
	block  bool
}

func (f *fakeSource) Status(ctx context.Context) (Status, error) {
	if f.block {
		<-ctx.Done()
		return Status{}, ctx.Err()
	}
	return f.status, f.err
}

var syncedStatus = Status{LocalState: StateSynced, Comment: "Synced", Ready: true, ClusterStatus: "Primary", ClusterSize: 3}

func newTestServer(t *testing.T, cfg HandlerConfig) *httptest.Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv := httptest.NewServer(NewHandler(cfg))
	t.Cleanup(srv.Close)
	return srv
}

// get sends a request and returns the status code and the decoded body.
func get(t *testing.T, srv *httptest.Server, method string) (int, response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+"/", nil)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s /: %v", method, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	var body response
	if method != http.MethodHead && res.StatusCode != http.StatusMethodNotAllowed {
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("body %q is not JSON: %v", raw, err)
		}
	}
	return res.StatusCode, body, string(raw)
}

func TestHandlerStates(t *testing.T) {
	tests := []struct {
		name       string
		source     *fakeSource
		wantCode   int
		wantReason string
	}{
		{"synced", &fakeSource{status: syncedStatus}, http.StatusOK, ""},
		{"donor", &fakeSource{status: Status{LocalState: StateDonor, Ready: true, ClusterStatus: "Primary"}},
			http.StatusServiceUnavailable, "node state is Donor/Desynced, not Synced"},
		{"joining", &fakeSource{status: Status{LocalState: StateJoining, ClusterStatus: "Primary"}},
			http.StatusServiceUnavailable, "wsrep_ready is OFF"},
		{"joined", &fakeSource{status: Status{LocalState: StateJoined, Ready: true, ClusterStatus: "Primary"}},
			http.StatusServiceUnavailable, "node state is Joined, not Synced"},
		{"non-primary", &fakeSource{status: Status{LocalState: StateSynced, ClusterStatus: "non-Primary"}},
			http.StatusServiceUnavailable, "node is not in the Primary component"},
		{"unreachable", &fakeSource{err: errors.New("dial unix /run/mysqld/mysqld.sock: connect: no such file")},
			http.StatusServiceUnavailable, reasonUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, HandlerConfig{Source: tt.source})
			code, body, raw := get(t, srv, http.MethodGet)
			if code != tt.wantCode {
				t.Errorf("status = %d, want %d", code, tt.wantCode)
			}
			if body.Reason != tt.wantReason {
				t.Errorf("reason = %q, want %q", body.Reason, tt.wantReason)
			}
			if body.Healthy != (tt.wantCode == http.StatusOK) {
				t.Errorf("healthy = %v with status %d", body.Healthy, code)
			}
			if strings.Count(raw, "\n") != 1 || !strings.HasSuffix(raw, "\n") {
				t.Errorf("body %q is not exactly one line", raw)
			}
		})
	}
}

func TestHandlerHidesErrorDetail(t *testing.T) {
	srv := newTestServer(t, HandlerConfig{Source: &fakeSource{err: errors.New("Access denied for user 'x'")}})
	_, _, raw := get(t, srv, http.MethodGet)
	if strings.Contains(raw, "Access denied") {
		t.Errorf("body %q contains the driver's error, want only the reason", raw)
	}
}

func TestHandlerMaintenanceFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "maintenance")
	srv := newTestServer(t, HandlerConfig{Source: &fakeSource{status: syncedStatus}, MaintenanceFile: path})

	if code, _, _ := get(t, srv, http.MethodGet); code != http.StatusOK {
		t.Fatalf("without the file: status = %d, want 200", code)
	}

	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, body, _ := get(t, srv, http.MethodGet)
	if code != http.StatusServiceUnavailable {
		t.Errorf("with the file: status = %d, want 503", code)
	}
	if want := reasonMaintenance + ": " + path; body.Reason != want {
		t.Errorf("with the file: reason = %q, want %q", body.Reason, want)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := get(t, srv, http.MethodGet); code != http.StatusOK {
		t.Errorf("after removing the file: status = %d, want 200", code)
	}
}

func TestHandlerMaintenanceBeforeQuery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "maintenance")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A hung server must not delay the maintenance response.
	srv := newTestServer(t, HandlerConfig{
		Source:          &fakeSource{block: true},
		MaintenanceFile: path,
		QueryTimeout:    time.Hour,
	})
	code, _, _ := get(t, srv, http.MethodGet)
	if code != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want 503", code)
	}
}

func TestHandlerQueryTimeout(t *testing.T) {
	srv := newTestServer(t, HandlerConfig{Source: &fakeSource{block: true}, QueryTimeout: 50 * time.Millisecond})

	start := time.Now()
	code, body, _ := get(t, srv, http.MethodGet)
	elapsed := time.Since(start)

	if code != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want 503", code)
	}
	if body.Reason != reasonUnreachable {
		t.Errorf("reason = %q, want %q", body.Reason, reasonUnreachable)
	}
	if elapsed > 2*time.Second {
		t.Errorf("answer took %s, want about the 50ms query timeout", elapsed)
	}
}

func TestHandlerMethods(t *testing.T) {
	srv := newTestServer(t, HandlerConfig{Source: &fakeSource{status: syncedStatus}})
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodOptions} {
		if code, _, _ := get(t, srv, method); code != http.StatusOK {
			t.Errorf("%s: status = %d, want 200", method, code)
		}
	}
	if code, _, _ := get(t, srv, http.MethodPost); code != http.StatusMethodNotAllowed {
		t.Errorf("POST: status = %d, want 405", code)
	}
}

func TestHandlerHeadHasNoBody(t *testing.T) {
	srv := newTestServer(t, HandlerConfig{Source: &fakeSource{status: syncedStatus}})
	_, _, raw := get(t, srv, http.MethodHead)
	if raw != "" {
		t.Errorf("HEAD body = %q, want empty", raw)
	}
}

// lockedBuffer collects log output from concurrent handler goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestHandlerLogsTransitionsOnly(t *testing.T) {
	var logs lockedBuffer
	source := &fakeSource{status: syncedStatus}
	srv := newTestServer(t, HandlerConfig{
		Source: source,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})

	for range 3 {
		get(t, srv, http.MethodGet)
	}
	source.status = Status{LocalState: StateDonor, Ready: true, ClusterStatus: "Primary"}
	for range 3 {
		get(t, srv, http.MethodGet)
	}

	out := logs.String()
	if got := strings.Count(out, "node is healthy"); got != 1 {
		t.Errorf("logged %d healthy lines, want 1:\n%s", got, out)
	}
	if got := strings.Count(out, "node is unhealthy"); got != 1 {
		t.Errorf("logged %d unhealthy lines, want 1:\n%s", got, out)
	}
}

func TestHandlerLogsUnreachableError(t *testing.T) {
	var logs lockedBuffer
	srv := newTestServer(t, HandlerConfig{
		Source: &fakeSource{err: errors.New("connection refused")},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	get(t, srv, http.MethodGet)
	if !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("log %q lacks the query error", logs.String())
	}
}
