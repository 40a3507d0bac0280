package mariadb_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"example.com/timestamp/api"
	"example.com/timestamp/api/internal/dbtest"
	"example.com/timestamp/api/mariadb"
)

func openStore(t *testing.T, cfg mariadb.Config) *mariadb.DB {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	db, err := mariadb.Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return db
}

func create(t *testing.T, db *mariadb.DB, clock *api.Clock, key string) (api.Event, bool) {
	t.Helper()
	e, replayed, err := db.CreateEvent(context.Background(), api.CreateRequest{
		Timestamp: clock.Next(), IdempotencyKey: key, RequestID: t.Name(),
	})
	if err != nil {
		t.Fatalf("CreateEvent: %v", err)
	}
	return e, replayed
}

func TestMigrateConcurrentlyAndTwice(t *testing.T) {
	tdb := dbtest.New(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := mariadb.Open(tdb.Config)
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			errs <- db.Migrate(context.Background())
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Migrate: %v", err)
		}
	}
	openStore(t, tdb.Config) // a second run on a migrated schema

	var versions int
	if err := tdb.Admin.QueryRow("SELECT COUNT(*) FROM schema_migrations").Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if versions != 1 {
		t.Errorf("schema_migrations has %d rows, want 1", versions)
	}
}

func TestSchemaIsInnoDBWithPrimaryKeys(t *testing.T) {
	tdb := dbtest.New(t)
	openStore(t, tdb.Config)
	rows, err := tdb.Admin.Query(`SELECT t.table_name, t.engine,
		(SELECT COUNT(*) FROM information_schema.table_constraints c
		 WHERE c.table_schema = t.table_schema AND c.table_name = t.table_name
		 AND c.constraint_type = 'PRIMARY KEY')
		FROM information_schema.tables t WHERE t.table_schema = ?`, tdb.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	tables := 0
	for rows.Next() {
		var name, engine string
		var pks int
		if err := rows.Scan(&name, &engine, &pks); err != nil {
			t.Fatal(err)
		}
		tables++
		if engine != "InnoDB" {
			t.Errorf("table %s uses %s, want InnoDB (Galera replicates only InnoDB)", name, engine)
		}
		if pks != 1 {
			t.Errorf("table %s has no primary key", name)
		}
	}
	if tables < 2 {
		t.Errorf("found %d tables, want events and schema_migrations", tables)
	}
}

func TestCreateGetList(t *testing.T) {
	tdb := dbtest.New(t)
	db := openStore(t, tdb.Config)
	clock := &api.Clock{}

	created, replayed := create(t, db, clock, "")
	if replayed {
		t.Error("a new event is marked replayed")
	}
	got, err := db.Event(context.Background(), created.ID)
	if err != nil {
		t.Fatalf("Event: %v", err)
	}
	if !got.Timestamp.Equal(created.Timestamp.Time) {
		t.Errorf("stored timestamp %s, want %s", got.Timestamp, created.Timestamp)
	}
	if got.Timestamp.Location() != time.UTC {
		t.Errorf("read timestamp in %v, want UTC", got.Timestamp.Location())
	}
	if _, err := db.Event(context.Background(), created.ID+1000); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Event(missing) = %v, want ErrNotFound", err)
	}

	second, _ := create(t, db, clock, "")
	list, err := db.Events(context.Background(), 0, 10)
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	if len(list) != 2 || list[0].ID != second.ID || list[1].ID != created.ID {
		t.Errorf("Events = %+v, want ids %d, %d", list, second.ID, created.ID)
	}
	older, err := db.Events(context.Background(), second.ID, 10)
	if err != nil {
		t.Fatalf("Events(before): %v", err)
	}
	if len(older) != 1 || older[0].ID != created.ID {
		t.Errorf("Events(before %d) = %+v, want only %d", second.ID, older, created.ID)
	}
}

func TestConcurrentSameKeyStoresOneRow(t *testing.T) {
	tdb := dbtest.New(t)
	db := openStore(t, tdb.Config)
	clock := &api.Clock{}

	var wg sync.WaitGroup
	ids := make(chan int64, 20)
	var replays atomic.Int32
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, replayed, err := db.CreateEvent(context.Background(), api.CreateRequest{
				Timestamp: clock.Next(), IdempotencyKey: "same-key",
			})
			if err != nil {
				t.Errorf("CreateEvent: %v", err)
				return
			}
			if replayed {
				replays.Add(1)
			}
			ids <- e.ID
		}()
	}
	wg.Wait()
	close(ids)

	first := int64(-1)
	for id := range ids {
		if first == -1 {
			first = id
		}
		if id != first {
			t.Errorf("got ids %d and %d for one key", first, id)
		}
	}
	if n := tdb.Count(t); n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
	if replays.Load() != 19 {
		t.Errorf("%d replays, want 19", replays.Load())
	}
}

func TestReadyWithoutWsrep(t *testing.T) {
	tdb := dbtest.New(t)
	db, err := mariadb.Open(tdb.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Ready(context.Background()); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("Ready before Migrate = %v, want ErrUnavailable", err)
	}
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := db.Ready(context.Background()); err != nil {
		t.Errorf("Ready = %v, want nil on a standalone server", err)
	}
}

func TestUnreachableIsUnavailable(t *testing.T) {
	tdb := dbtest.New(t)
	cfg := tdb.Config
	cfg.Addr = closedPort(t)
	cfg.Retry = mariadb.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}
	db, err := mariadb.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, _, err = db.CreateEvent(context.Background(), api.CreateRequest{Timestamp: time.Now()})
	if !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("CreateEvent on a closed port = %v, want ErrUnavailable", err)
	}
}

// TestAmbiguousCommitStoresOneRow cuts the connection after the server has
// executed and committed an INSERT but before the client reads the reply.
// The store cannot know the outcome; its retry must find the committed row
// instead of inserting a second one.
func TestAmbiguousCommitStoresOneRow(t *testing.T) {
	tdb := dbtest.New(t)
	openStore(t, tdb.Config) // migrate directly, not through the proxy

	proxy := newCutProxy(t, tdb.Config.Addr)
	cfg := tdb.Config
	cfg.Addr = proxy.addr
	db := openStore(t, cfg)

	proxy.cutNextInsert.Store(true)
	e, replayed, err := db.CreateEvent(context.Background(), api.CreateRequest{Timestamp: time.Now().UTC()})
	if err != nil {
		t.Fatalf("CreateEvent after a cut commit: %v", err)
	}
	if replayed {
		t.Error("own row reported as an idempotency replay")
	}
	if proxy.cuts.Load() != 1 {
		t.Fatalf("proxy cut %d inserts, want 1: the test did not inject the failure", proxy.cuts.Load())
	}
	if n := tdb.Count(t); n != 1 {
		t.Errorf("%d rows after one request, want 1", n)
	}
	if got, err := db.Event(context.Background(), e.ID); err != nil || got.ID != e.ID {
		t.Errorf("Event(%d) = %+v, %v", e.ID, got, err)
	}
}

func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// cutProxy relays MySQL connections to a server. When cutNextInsert is set,
// it passes the next INSERT INTO events to the server, waits for the
// server's reply, and closes both sides instead of relaying it.
type cutProxy struct {
	addr          string
	target        string
	cutNextInsert atomic.Bool
	cuts          atomic.Int32
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{addr: ln.Addr().String(), target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.relay(c)
		}
	}()
	return p
}

func (p *cutProxy) relay(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()

	// The driver waits for each reply before it sends the next command, so
	// when the insert arrives no earlier reply is still in flight, and the
	// first reply read after cutting is the insert's own.
	var cutting atomic.Bool
	replied := make(chan struct{})
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 && cutting.Load() {
				close(replied)
				return
			}
			if n > 0 {
				if _, err := client.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()

	// Client to server, one MySQL packet at a time: 3 bytes of length, a
	// sequence byte, then the payload; COM_QUERY is payload byte 0x03.
	header := make([]byte, 4)
	for {
		if _, err := io.ReadFull(client, header); err != nil {
			return
		}
		size := int(header[0]) | int(header[1])<<8 | int(header[2])<<16
		payload := make([]byte, size)
		if _, err := io.ReadFull(client, payload); err != nil {
			return
		}
		packet := append(append([]byte(nil), header...), payload...)
		// Both write paths: INSERT INTO events (one row) and INSERT
		// IGNORE INTO events (group commit).
		query := strings.ToUpper(string(payload[1:]))
		isInsert := size > 1 && payload[0] == 0x03 && strings.HasPrefix(query, "INSERT") &&
			strings.Contains(query, "INTO EVENTS")
		if isInsert && p.cutNextInsert.CompareAndSwap(true, false) {
			cutting.Store(true)
			if _, err := server.Write(packet); err != nil {
				return
			}
			select {
			case <-replied: // the server has committed and answered
				p.cuts.Add(1)
			case <-time.After(10 * time.Second):
			}
			return // closes both sides: the client never sees the reply
		}
		if _, err := server.Write(packet); err != nil {
			return
		}
	}
}
