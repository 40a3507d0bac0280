package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"example.com/timestamp/api"
)

// fakeStore keeps events in memory. err, when set, fails every call.
type fakeStore struct {
	mu     sync.Mutex
	events []api.Event
	keys   map[string]int64
	err    error
}

func (f *fakeStore) CreateEvent(_ context.Context, req api.CreateRequest) (api.Event, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return api.Event{}, false, f.err
	}
	if id, ok := f.keys[req.IdempotencyKey]; ok && req.IdempotencyKey != "" {
		return f.events[id-1], true, nil
	}
	e := api.Event{ID: int64(len(f.events) + 1), Timestamp: api.Timestamp{Time: req.Timestamp}, Node: "fake"}
	f.events = append(f.events, e)
	if req.IdempotencyKey != "" {
		if f.keys == nil {
			f.keys = map[string]int64{}
		}
		f.keys[req.IdempotencyKey] = e.ID
	}
	return e, false, nil
}

func (f *fakeStore) Event(_ context.Context, id int64) (api.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return api.Event{}, f.err
	}
	if id < 1 || id > int64(len(f.events)) {
		return api.Event{}, api.ErrNotFound
	}
	return f.events[id-1], nil
}

func (f *fakeStore) Events(_ context.Context, before int64, limit int) ([]api.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []api.Event
	for i := len(f.events) - 1; i >= 0 && len(out) < limit; i-- {
		if before <= 0 || f.events[i].ID < before {
			out = append(out, f.events[i])
		}
	}
	return out, nil
}

func (f *fakeStore) Ready(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *fakeStore) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.events)
}

func newTestServer(t testing.TB, store api.Store) *Server {
	t.Helper()
	s, err := New(Config{
		Store:    store,
		Clock:    &api.Clock{},
		Registry: prometheus.NewRegistry(),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func do(t testing.TB, s *Server, method, target string, body io.Reader, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, body)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

func decodeProblem(t *testing.T, rec *httptest.ResponseRecorder) Problem {
	t.Helper()
	if got := rec.Header().Get("Content-Type"); got != problemContentType {
		t.Fatalf("Content-Type = %q, want %q", got, problemContentType)
	}
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("decode problem %q: %v", rec.Body.String(), err)
	}
	if p.Status != rec.Code {
		t.Errorf("problem status = %d, want the response code %d", p.Status, rec.Code)
	}
	if p.Detail == "" {
		t.Error("problem has no detail")
	}
	return p
}

func TestCreateEventReturns201(t *testing.T) {
	for _, path := range []string{"/app", "/app/"} {
		t.Run(path, func(t *testing.T) {
			store := &fakeStore{}
			rec := do(t, newTestServer(t, store), http.MethodPost, path, nil, nil)

			if rec.Code != http.StatusCreated {
				t.Fatalf("code = %d, want 201; body %s", rec.Code, rec.Body)
			}
			if got := rec.Header().Get("Location"); got != "/app/1" {
				t.Errorf("Location = %q, want /app/1", got)
			}
			var body struct {
				ID        int64  `json:"id"`
				Timestamp string `json:"timestamp"`
				Node      string `json:"node"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("decode: %v", err)
			}
			ts, err := time.Parse(api.TimeLayout, body.Timestamp)
			if err != nil {
				t.Fatalf("timestamp %q is not RFC 3339 with microseconds: %v", body.Timestamp, err)
			}
			if !strings.HasSuffix(body.Timestamp, "Z") || len(body.Timestamp) != len("2006-01-02T15:04:05.000000Z") {
				t.Errorf("timestamp = %q, want six fractional digits and Z", body.Timestamp)
			}
			if d := time.Since(ts); d < 0 || d > time.Minute {
				t.Errorf("timestamp %s is %s away from now", ts, d)
			}
			if store.count() != 1 {
				t.Errorf("stored %d events, want 1", store.count())
			}
		})
	}
}

func TestCreateEventReplaysIdempotencyKey(t *testing.T) {
	store := &fakeStore{}
	s := newTestServer(t, store)
	hdr := map[string]string{"Idempotency-Key": "order-7"}

	first := do(t, s, http.MethodPost, "/app", nil, hdr)
	second := do(t, s, http.MethodPost, "/app", nil, hdr)

	if first.Code != http.StatusCreated || second.Code != http.StatusCreated {
		t.Fatalf("codes = %d, %d, want 201, 201", first.Code, second.Code)
	}
	if first.Body.String() != second.Body.String() {
		t.Errorf("replay body = %s, want the original %s", second.Body, first.Body)
	}
	if got := second.Header().Get("Idempotent-Replayed"); got != "true" {
		t.Errorf("Idempotent-Replayed = %q, want true", got)
	}
	if first.Header().Get("Idempotent-Replayed") != "" {
		t.Error("first response is marked as a replay")
	}
	if store.count() != 1 {
		t.Errorf("stored %d events, want 1", store.count())
	}
}

func TestCreateEventRejectsBadIdempotencyKey(t *testing.T) {
	cases := map[string]string{
		"empty":     "",
		"too long":  strings.Repeat("k", 256),
		"non-ascii": "clé",
		"control":   "a\x01b",
	}
	for name, key := range cases {
		t.Run(name, func(t *testing.T) {
			store := &fakeStore{}
			s := newTestServer(t, store)
			req := httptest.NewRequest(http.MethodPost, "/app", nil)
			req.Header["Idempotency-Key"] = []string{key}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)

			if rec.Code != http.StatusBadRequest {
				t.Fatalf("code = %d, want 400", rec.Code)
			}
			decodeProblem(t, rec)
			if store.count() != 0 {
				t.Errorf("stored %d events, want 0", store.count())
			}
		})
	}
}

func TestCreateEventAcceptsLongestKey(t *testing.T) {
	store := &fakeStore{}
	rec := do(t, newTestServer(t, store), http.MethodPost, "/app", nil,
		map[string]string{"Idempotency-Key": strings.Repeat("~", 255)})
	if rec.Code != http.StatusCreated {
		t.Fatalf("code = %d, want 201", rec.Code)
	}
}

func TestCreateEventRejectsTwoKeys(t *testing.T) {
	store := &fakeStore{}
	req := httptest.NewRequest(http.MethodPost, "/app", nil)
	req.Header["Idempotency-Key"] = []string{"a", "b"}
	rec := httptest.NewRecorder()
	newTestServer(t, store).Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("code = %d, want 400", rec.Code)
	}
}

func TestBodyLimit(t *testing.T) {
	cases := []struct {
		name    string
		size    int
		chunked bool
		want    int
	}{
		{"1 KiB", 1024, false, http.StatusCreated},
		{"1 KiB plus one", 1025, false, http.StatusRequestEntityTooLarge},
		{"chunked over 1 KiB", 4096, true, http.StatusRequestEntityTooLarge},
		{"chunked under 1 KiB", 100, true, http.StatusCreated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := &fakeStore{}
			req := httptest.NewRequest(http.MethodPost, "/app", strings.NewReader(strings.Repeat("x", tc.size)))
			if tc.chunked {
				req.ContentLength = -1
			}
			rec := httptest.NewRecorder()
			newTestServer(t, store).Handler().ServeHTTP(rec, req)

			if rec.Code != tc.want {
				t.Fatalf("code = %d, want %d", rec.Code, tc.want)
			}
			wantRows := 0
			if tc.want == http.StatusCreated {
				wantRows = 1
			}
			if store.count() != wantRows {
				t.Errorf("stored %d events, want %d", store.count(), wantRows)
			}
		})
	}
}

func TestErrorStatuses(t *testing.T) {
	cases := []struct {
		method, target string
		want           int
	}{
		{http.MethodGet, "/nothing", http.StatusNotFound},
		{http.MethodPost, "/app/1", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/app", http.StatusMethodNotAllowed},
		{http.MethodPut, "/healthz", http.StatusMethodNotAllowed},
		{http.MethodGet, "/app/0", http.StatusBadRequest},
		{http.MethodGet, "/app/abc", http.StatusBadRequest},
		{http.MethodGet, "/app/99999999999999999999", http.StatusBadRequest},
		{http.MethodGet, "/app/5", http.StatusNotFound},
		{http.MethodGet, "/app?limit=0", http.StatusBadRequest},
		{http.MethodGet, "/app?limit=1001", http.StatusBadRequest},
		{http.MethodGet, "/app?limit=x", http.StatusBadRequest},
		{http.MethodGet, "/app?before=-1", http.StatusBadRequest},
		{http.MethodGet, "/app?before=", http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			store := &fakeStore{}
			rec := do(t, newTestServer(t, store), tc.method, tc.target, nil, nil)
			if rec.Code != tc.want {
				t.Fatalf("code = %d, want %d; body %s", rec.Code, tc.want, rec.Body)
			}
			decodeProblem(t, rec)
			if tc.want == http.StatusMethodNotAllowed && rec.Header().Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
			if store.count() != 0 {
				t.Errorf("stored %d events, want 0", store.count())
			}
		})
	}
}

func TestMethodNotAllowedListsMethods(t *testing.T) {
	rec := do(t, newTestServer(t, &fakeStore{}), http.MethodDelete, "/app", nil, nil)
	allow := rec.Header().Get("Allow")
	for _, m := range []string{"GET", "POST"} {
		if !strings.Contains(allow, m) {
			t.Errorf("Allow = %q, want it to contain %s", allow, m)
		}
	}
}

func TestStoreErrorsMapToStatus(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		want       int
		retryAfter bool
	}{
		{"unavailable", fmt.Errorf("%w: dial refused", api.ErrUnavailable), http.StatusServiceUnavailable, true},
		{"node not ready", fmt.Errorf("%w: non-Primary", api.ErrNodeNotReady), http.StatusServiceUnavailable, true},
		{"unexpected", errors.New("syntax error"), http.StatusInternalServerError, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := &fakeStore{err: tc.err}
			rec := do(t, newTestServer(t, store), http.MethodPost, "/app", nil, nil)
			if rec.Code != tc.want {
				t.Fatalf("code = %d, want %d", rec.Code, tc.want)
			}
			p := decodeProblem(t, rec)
			if got := rec.Header().Get("Retry-After") != ""; got != tc.retryAfter {
				t.Errorf("Retry-After present = %v, want %v", got, tc.retryAfter)
			}
			if strings.Contains(p.Detail, "syntax error") {
				t.Errorf("detail %q leaks the internal error", p.Detail)
			}
		})
	}
}

func TestUnavailableDetailByMethod(t *testing.T) {
	store := &fakeStore{err: fmt.Errorf("%w: dial refused", api.ErrUnavailable)}
	s := newTestServer(t, store)

	post := decodeProblem(t, do(t, s, http.MethodPost, "/app", nil, nil))
	if !strings.Contains(post.Detail, "Idempotency-Key") {
		t.Errorf("POST detail %q does not tell the client to retry with the same Idempotency-Key", post.Detail)
	}
	get := decodeProblem(t, do(t, s, http.MethodGet, "/app?limit=5", nil, nil))
	if strings.Contains(get.Detail, "Idempotency-Key") {
		t.Errorf("GET detail %q speaks of a write", get.Detail)
	}
	if !strings.Contains(get.Detail, "could not be read") {
		t.Errorf("GET detail %q does not say the read failed", get.Detail)
	}
}

func TestReadyz(t *testing.T) {
	store := &fakeStore{}
	s := newTestServer(t, store)
	if rec := do(t, s, http.MethodGet, "/readyz", nil, nil); rec.Code != http.StatusOK {
		t.Fatalf("ready store: code = %d, want 200", rec.Code)
	}

	store.err = fmt.Errorf("%w: wsrep_cluster_status is \"non-Primary\", want Primary", api.ErrNodeNotReady)
	rec := do(t, s, http.MethodGet, "/readyz", nil, nil)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("non-Primary store: code = %d, want 503", rec.Code)
	}
	if p := decodeProblem(t, rec); !strings.Contains(p.Detail, "non-Primary") {
		t.Errorf("detail = %q, want the cause", p.Detail)
	}
	if rec.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}

func TestDrainingFailsReadyzOnly(t *testing.T) {
	s := newTestServer(t, &fakeStore{})
	s.StartDraining()

	if rec := do(t, s, http.MethodGet, "/readyz", nil, nil); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("readyz while draining: code = %d, want 503", rec.Code)
	}
	if rec := do(t, s, http.MethodGet, "/healthz", nil, nil); rec.Code != http.StatusOK {
		t.Errorf("healthz while draining: code = %d, want 200", rec.Code)
	}
	rec := do(t, s, http.MethodPost, "/app", nil, nil)
	if rec.Code != http.StatusCreated {
		t.Errorf("POST while draining: code = %d, want 201", rec.Code)
	}
	if got := rec.Header().Get("Connection"); got != "close" {
		t.Errorf("Connection = %q while draining, want close", got)
	}
}

func TestListEventsPages(t *testing.T) {
	store := &fakeStore{}
	s := newTestServer(t, store)
	for range 5 {
		do(t, s, http.MethodPost, "/app", nil, nil)
	}

	var ids []int64
	next := "/app?limit=2"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		rec := do(t, s, http.MethodGet, next, nil, nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: code = %d", next, rec.Code)
		}
		var page EventList
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
			t.Fatalf("decode: %v", err)
		}
		for _, e := range page.Events {
			ids = append(ids, e.ID)
		}
		next = page.Next
	}
	want := []int64{5, 4, 3, 2, 1}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("ids = %v, want %v", ids, want)
	}
}

func TestMetricsUseRouteTemplates(t *testing.T) {
	s := newTestServer(t, &fakeStore{})
	do(t, s, http.MethodGet, "/app/1", nil, nil)
	do(t, s, http.MethodGet, "/random/abc", nil, nil)
	do(t, s, http.MethodGet, "/random/def", nil, nil)
	do(t, s, "BREW", "/app", nil, nil)

	body := do(t, s, http.MethodGet, "/metrics", nil, nil).Body.String()
	for _, want := range []string{
		`timestamp_http_requests_total{code="404",method="GET",route="/app/:id"} 1`,
		`timestamp_http_requests_total{code="404",method="GET",route="unmatched"} 2`,
		`method="OTHER"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, "/random/") {
		t.Error("an unmatched path became a label value")
	}
}

func TestSwaggerServed(t *testing.T) {
	s := newTestServer(t, &fakeStore{})
	if rec := do(t, s, http.MethodGet, "/swagger/index.html", nil, nil); rec.Code != http.StatusOK {
		t.Errorf("swagger UI: code = %d, want 200", rec.Code)
	}
	rec := do(t, s, http.MethodGet, "/swagger/doc.json", nil, nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("spec: code = %d, want 200", rec.Code)
	}
	if !strings.Contains(rec.Body.String(), `"/app"`) {
		t.Error("spec does not describe /app")
	}
}

func TestTrustedProxies(t *testing.T) {
	_, err := New(Config{Store: &fakeStore{}, Clock: &api.Clock{}, Registry: prometheus.NewRegistry(),
		TrustedProxies: []string{"not-an-address"}})
	if err == nil {
		t.Fatal("New accepted an invalid trusted proxy")
	}
}
