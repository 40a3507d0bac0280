package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzRequest sends arbitrary methods, paths, headers and bodies. Whatever
// arrives, the API must not panic, must not answer 5xx (the store is
// healthy), and must store a row only when it answers 201 without replaying an
// earlier event.
func FuzzRequest(f *testing.F) {
	f.Add("POST", "/app", "Idempotency-Key", "k1", []byte(""))
	f.Add("POST", "/app/", "Content-Type", "application/json", []byte(`{"a":1}`))
	f.Add("GET", "/app?limit=10&before=3", "X-Request-ID", "abc", []byte(nil))
	f.Add("GET", "/app/%2e%2e", "X-Forwarded-For", "1.2.3.4", []byte(nil))
	f.Add("DELETE", "/app//1", "Idempotency-Key", "", bytes.Repeat([]byte("x"), 2000))
	f.Add("POST", "/swagger/../app", "Idempotency-Key", "\x00", []byte("\xff"))

	store := &fakeStore{}
	s := newTestServer(f, store)

	f.Fuzz(func(t *testing.T, method, target, headerName, headerValue string, body []byte) {
		req, err := http.NewRequest(method, "http://api.test"+target, bytes.NewReader(body))
		if err != nil || req.URL.Path == "" {
			t.Skip("net/http rejects this request line before any handler")
		}
		req.RequestURI = req.URL.RequestURI()
		if headerName != "" {
			req.Header[headerName] = []string{headerValue}
		}
		before := store.count()
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)

		if rec.Code >= 500 {
			t.Fatalf("%s %q: code %d, want below 500; body %s", method, target, rec.Code, rec.Body)
		}
		added := store.count() - before
		replayed := rec.Header().Get("Idempotent-Replayed") == "true"
		if rec.Code == http.StatusCreated && !replayed && added != 1 {
			t.Fatalf("%s %q: 201 with %d new rows, want 1", method, target, added)
		}
		if rec.Code == http.StatusCreated && replayed && added != 0 {
			t.Fatalf("%s %q: replayed 201 added %d rows, want 0", method, target, added)
		}
		if rec.Code != http.StatusCreated && added != 0 {
			t.Fatalf("%s %q: code %d added %d rows, want 0", method, target, rec.Code, added)
		}
	})
}
