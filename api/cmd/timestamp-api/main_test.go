package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"example.com/timestamp/api"
	"example.com/timestamp/api/internal/dbtest"
)

// binary is the timestamp-api built once for the tests that run it as a
// separate process (signals, time zone).
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "timestamp-api-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "timestamp-api")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build timestamp-api: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// appUser creates a user with exactly the grants that the deployment gives
// the API (see scripts/devdb.sh and the galera role), so that the tests
// prove those grants are enough.
func appUser(t *testing.T, tdb *dbtest.DB) (user, password string) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	user = "tsapp_" + hex.EncodeToString(b[:3])
	password = hex.EncodeToString(b[:])
	for _, stmt := range []string{
		fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'", user, password),
		fmt.Sprintf("GRANT SELECT, INSERT, CREATE, ALTER, INDEX ON %s.* TO '%s'@'127.0.0.1'", tdb.Name, user),
	} {
		if _, err := tdb.Admin.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() { tdb.Admin.Exec(fmt.Sprintf("DROP USER '%s'@'127.0.0.1'", user)) })
	return user, password
}

// process is a timestamp-api running as a child process.
type process struct {
	cmd  *exec.Cmd
	addr string
	logs *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs the binary against tdb with the least-privilege user and
// waits until /readyz answers 200.
func start(t *testing.T, tdb *dbtest.DB, extraEnv ...string) *process {
	t.Helper()
	user, password := appUser(t, tdb)
	addr := freeAddr(t)
	cmd := exec.Command(binary)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"TSAPI_LISTEN=" + addr,
		"TSAPI_DB_ADDR=" + tdb.Config.Addr,
		"TSAPI_DB_USER=" + user,
		"TSAPI_DB_PASSWORD=" + password,
		"TSAPI_DB_NAME=" + tdb.Name,
		"TSAPI_NODE_NAME=test-node",
		"TSAPI_SHUTDOWN_DELAY=300ms",
		"TSAPI_SHUTDOWN_TIMEOUT=10s",
		fmt.Sprintf("TSAPI_GROUP_COMMIT=%t", dbtest.GroupCommit()),
	}, extraEnv...)
	p := &process{cmd: cmd, addr: addr, logs: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", binary, err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("timestamp-api log:\n%s", p.logs.String())
		}
	})
	waitStatus(t, p.url("/readyz"), http.StatusOK, 20*time.Second)
	return p
}

func (p *process) url(path string) string { return "http://" + p.addr + path }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitStatus polls url until it answers want.
func waitStatus(t *testing.T, url string, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("GET %s: still %s after %s, want %d", url, last, timeout, want)
}

type postResult struct {
	status int
	event  api.Event
	header http.Header
}

func post(t *testing.T, client *http.Client, url string, key string) (postResult, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		return postResult{}, err
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return postResult{}, err
	}
	defer resp.Body.Close()
	r := postResult{status: resp.StatusCode, header: resp.Header}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return r, err
	}
	if resp.StatusCode == http.StatusCreated {
		if err := json.Unmarshal(body, &r.event); err != nil {
			return r, fmt.Errorf("decode %s: %w", body, err)
		}
	}
	return r, nil
}

func TestFiveHundredConcurrentPosts(t *testing.T) {
	tdb := dbtest.New(t)
	p := start(t, tdb)

	const workers, perWorker = 50, 10
	results := make(chan postResult, workers*perWorker)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWorker {
				r, err := post(t, http.DefaultClient, p.url("/app"), "")
				if err != nil {
					t.Errorf("POST: %v", err)
					return
				}
				results <- r
			}
		}()
	}
	wg.Wait()
	close(results)

	ids := map[int64]bool{}
	stamps := map[time.Time]bool{}
	for r := range results {
		if r.status != http.StatusCreated {
			t.Errorf("status %d, want 201", r.status)
			continue
		}
		ids[r.event.ID] = true
		stamps[r.event.Timestamp.Time] = true
	}
	if len(ids) != workers*perWorker {
		t.Errorf("%d distinct ids, want %d", len(ids), workers*perWorker)
	}
	if len(stamps) != workers*perWorker {
		t.Errorf("%d distinct timestamps, want %d", len(stamps), workers*perWorker)
	}
	if n := tdb.Count(t); n != workers*perWorker {
		t.Errorf("%d rows, want %d", n, workers*perWorker)
	}
	var distinct int
	if err := tdb.Admin.QueryRow("SELECT COUNT(DISTINCT created_at) FROM events").Scan(&distinct); err != nil {
		t.Fatal(err)
	}
	if distinct != workers*perWorker {
		t.Errorf("%d distinct stored timestamps, want %d", distinct, workers*perWorker)
	}
}

func TestIdempotencyKeyStoresOneRow(t *testing.T) {
	tdb := dbtest.New(t)
	p := start(t, tdb)

	first, err := post(t, http.DefaultClient, p.url("/app"), "client-key-1")
	if err != nil {
		t.Fatal(err)
	}
	second, err := post(t, http.DefaultClient, p.url("/app"), "client-key-1")
	if err != nil {
		t.Fatal(err)
	}
	if first.status != http.StatusCreated || second.status != http.StatusCreated {
		t.Fatalf("statuses %d, %d, want 201, 201", first.status, second.status)
	}
	if first.event != second.event {
		t.Errorf("replay returned %+v, want the original %+v", second.event, first.event)
	}
	if second.header.Get("Idempotent-Replayed") != "true" {
		t.Error("replay is not marked Idempotent-Replayed")
	}
	if n := tdb.Count(t); n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
}

// TestTimeZoneIsUTC runs the API in Tokyo's zone (UTC+9, no daylight
// saving): the stored and returned times must still be UTC.
func TestTimeZoneIsUTC(t *testing.T) {
	if _, err := os.Stat("/usr/share/zoneinfo/Asia/Tokyo"); err != nil {
		t.Fatalf("tzdata is missing (install the tzdata package): %v", err)
	}
	tdb := dbtest.New(t)
	p := start(t, tdb, "TZ=Asia/Tokyo")

	before := time.Now().UTC()
	r, err := post(t, http.DefaultClient, p.url("/app"), "")
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().UTC()
	if r.status != http.StatusCreated {
		t.Fatalf("status %d, want 201", r.status)
	}
	ts := r.event.Timestamp.Time
	if ts.Before(before.Add(-time.Second)) || ts.After(after.Add(time.Second)) {
		t.Errorf("returned %s, want between %s and %s", ts, before, after)
	}

	var stored string
	if err := tdb.Admin.QueryRow("SELECT CAST(created_at AS CHAR) FROM events WHERE id = ?",
		r.event.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if want := ts.Format("2006-01-02 15:04:05.000000"); stored != want {
		t.Errorf("stored %s, want the UTC wall time %s", stored, want)
	}
}

func TestReadinessFollowsDatabase(t *testing.T) {
	tdb := dbtest.New(t)
	p := start(t, tdb, "TSAPI_DB_RETRY_ATTEMPTS=2", "TSAPI_WRITE_TIMEOUT=2s")
	if r, err := post(t, http.DefaultClient, p.url("/app"), ""); err != nil || r.status != http.StatusCreated {
		t.Fatalf("POST before the outage: %+v, %v", r, err)
	}

	startDB := dbtest.StopServer(t)
	waitStatus(t, p.url("/readyz"), http.StatusServiceUnavailable, 20*time.Second)

	r, err := post(t, http.DefaultClient, p.url("/app"), "during-outage")
	if err != nil {
		t.Fatalf("POST during the outage: %v", err)
	}
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("POST during the outage: status %d, want 503", r.status)
	}
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}

	startDB()
	waitStatus(t, p.url("/readyz"), http.StatusOK, 30*time.Second)
	if n := tdb.Count(t); n != 1 {
		t.Errorf("%d rows after the outage, want 1: the failed POST added a row", n)
	}
	if r, err := post(t, http.DefaultClient, p.url("/app"), ""); err != nil || r.status != http.StatusCreated {
		t.Errorf("POST after the outage: %+v, %v", r, err)
	}
	select {
	case err := <-p.done:
		t.Fatalf("the API exited during the outage: %v", err)
	default:
	}
}

// TestGracefulShutdownUnderLoad sends SIGTERM while clients post as fast as
// they can. Every 2xx must match a row and every row a 2xx; no response may
// be 5xx; the process must exit within its delay plus timeout.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	tdb := dbtest.New(t)
	p := start(t, tdb)

	var created, serverErrors, otherStatus atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{}}
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := post(t, client, p.url("/app"), "")
				switch {
				case err != nil:
					// The listener is closed: connections are refused,
					// which is a request never accepted, not a lost one.
					time.Sleep(5 * time.Millisecond)
				case r.status == http.StatusCreated:
					created.Add(1)
				case r.status >= 500:
					serverErrors.Add(1)
				default:
					otherStatus.Add(1)
				}
			}
		}()
	}

	waitFor(t, func() bool { return created.Load() > 200 }, 20*time.Second, "load to start")
	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, p.url("/readyz"), http.StatusServiceUnavailable, 2*time.Second)

	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v, want status 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the API did not exit within 15 s of SIGTERM")
	}
	exited := time.Since(signalled)
	close(stop)
	wg.Wait()

	if serverErrors.Load() != 0 {
		t.Errorf("%d responses were 5xx", serverErrors.Load())
	}
	if otherStatus.Load() != 0 {
		t.Errorf("%d responses were neither 201 nor 5xx", otherStatus.Load())
	}
	if rows := int64(tdb.Count(t)); rows != created.Load() {
		t.Errorf("%d rows but %d responses 201", rows, created.Load())
	}
	if !strings.Contains(p.logs.String(), `"msg":"stopped"`) {
		t.Error(`log has no "stopped" line`)
	}
	t.Logf("%d requests acknowledged; exit %s after SIGTERM", created.Load(), exited.Round(time.Millisecond))
}

func TestHelpListsSettings(t *testing.T) {
	out, err := exec.Command(binary, "-help").CombinedOutput()
	if err != nil {
		t.Fatalf("-help: %v", err)
	}
	for _, want := range []string{"-db-addr", "TSAPI_", "-trusted-proxies", "-shutdown-delay", "duration"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("-help output lacks %q", want)
		}
	}
}

func TestStartupLogHasNoSecret(t *testing.T) {
	tdb := dbtest.New(t)
	p := start(t, tdb)
	if _, err := post(t, http.DefaultClient, p.url("/app"), ""); err != nil {
		t.Fatal(err)
	}
	password := ""
	for _, kv := range p.cmd.Env {
		if v, ok := strings.CutPrefix(kv, "TSAPI_DB_PASSWORD="); ok {
			password = v
		}
	}
	if password == "" {
		t.Fatal("test setup passed no password")
	}
	sc := bufio.NewScanner(strings.NewReader(p.logs.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), password) {
			t.Fatalf("log line contains the password: %s", sc.Text())
		}
	}
}

func waitFor(t *testing.T, cond func() bool, timeout time.Duration, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
