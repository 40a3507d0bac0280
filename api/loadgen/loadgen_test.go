package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestRetrySameKeyAfter503(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		key := r.Header.Get("Idempotency-Key")
		seen[key]++
		if seen[key] == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"id":7}`))
	}))
	defer srv.Close()

	res, err := Run(context.Background(), Config{
		Targets: []string{srv.URL}, Requests: 10, Concurrency: 2, Retries: 2,
		BaseBackoff: time.Millisecond, KeyPrefix: "k",
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Succeeded != 10 || res.Failed != 0 {
		t.Errorf("succeeded %d failed %d, want 10 and 0", res.Succeeded, res.Failed)
	}
	if res.Retries != 10 {
		t.Errorf("retries = %d, want 10", res.Retries)
	}
	if len(seen) != 10 {
		t.Errorf("server saw %d keys, want 10: a retry changed its key", len(seen))
	}
	if res.ByStatus["503"] != 10 || res.ByStatus["201"] != 10 {
		t.Errorf("by status = %v", res.ByStatus)
	}
}

func TestFailsOverToNextTarget(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	downURL := down.URL
	down.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"id":1}`))
	}))
	defer up.Close()

	res, err := Run(context.Background(), Config{
		Targets: []string{downURL, up.URL}, Requests: 3, Retries: 1, BaseBackoff: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Succeeded != 3 {
		t.Errorf("succeeded %d, want 3 after failing over", res.Succeeded)
	}
	if got := res.ByTarget[up.URL]; got != 3 {
		t.Errorf("successes on %s: got %d, want 3", up.URL, got)
	}
	if got := res.ByTarget[downURL]; got != 0 {
		t.Errorf("successes on the closed %s: got %d, want 0", downURL, got)
	}
}

func TestClientErrorIsNotRetried(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Config{Targets: []string{srv.URL}, Requests: 2, Retries: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Retries != 0 || res.Failed != 2 {
		t.Errorf("retries %d failed %d, want 0 and 2", res.Retries, res.Failed)
	}
}

func TestRunNeedsAnEnd(t *testing.T) {
	if _, err := Run(context.Background(), Config{Targets: []string{"http://127.0.0.1:1"}}); err == nil {
		t.Error("Run accepted a run with neither duration nor count")
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	if got := percentile(d, 0.99); got != 99 {
		t.Errorf("p99 = %d, want 99", got)
	}
	if got := percentile(d, 0.5); got != 50 {
		t.Errorf("p50 = %d, want 50", got)
	}
}
