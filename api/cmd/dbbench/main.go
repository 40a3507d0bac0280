// Command dbbench measures the database's own write limit: it issues the
// same INSERT INTO events that the API issues, directly with database/sql,
// at a fixed concurrency, one row per transaction or several rows per
// INSERT. The benchmark harness runs it on an API host, so that it takes the
// API's network path (HAProxy's database frontend) without the HTTP layer.
// It prints one JSON object in the load generator's report format.
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dbbench:", err)
		os.Exit(1)
	}
}

type report struct {
	Variant     string         `json:"variant"`
	Concurrency int            `json:"concurrency"`
	RowsPerStmt int            `json:"rows_per_statement"`
	Succeeded   int64          `json:"succeeded"` // rows committed
	ByStatus    map[string]int `json:"by_status"`
	Elapsed     string         `json:"elapsed"`
	Throughput  float64        `json:"throughput"` // rows per second
	LatencyP50  string         `json:"latency_p50"`
	LatencyP90  string         `json:"latency_p90"`
	LatencyP99  string         `json:"latency_p99"`
	LatencyMax  string         `json:"latency_max"`
}

func run() error {
	var (
		addr, user, name, passwordFile string
		concurrency, rows              int
		duration, progressEvery        time.Duration
	)
	flag.StringVar(&addr, "db-addr", envOr("TSAPI_DB_ADDR", "127.0.0.1:3306"), "MariaDB `address`")
	flag.StringVar(&user, "db-user", envOr("TSAPI_DB_USER", "timestamp"), "MariaDB `user`")
	flag.StringVar(&name, "db-name", envOr("TSAPI_DB_NAME", "timestamp"), "`database`")
	flag.StringVar(&passwordFile, "db-password-file", os.Getenv("TSAPI_DB_PASSWORD_FILE"),
		"`file` with the password; else $TSAPI_DB_PASSWORD")
	flag.IntVar(&concurrency, "concurrency", 8, "concurrent connections (`count`)")
	flag.IntVar(&rows, "rows", 1, "rows per INSERT, each INSERT its own transaction (`count`)")
	flag.DurationVar(&duration, "duration", 10*time.Second, "length of the run (`duration`)")
	flag.DurationVar(&progressEvery, "progress-every", time.Second,
		"interval between progress lines on stderr (`duration`); 0 prints none")
	flag.Parse()

	password := os.Getenv("TSAPI_DB_PASSWORD")
	if passwordFile != "" {
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return err
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	mc := mysql.NewConfig()
	mc.Net, mc.Addr, mc.User, mc.Passwd, mc.DBName = "tcp", addr, user, password, name
	mc.ParseTime, mc.Loc, mc.InterpolateParams = true, time.UTC, true
	mc.Params = map[string]string{"time_zone": "'+00:00'"}
	db, err := sql.Open("mysql", mc.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(concurrency)
	db.SetMaxIdleConns(concurrency)

	query := "INSERT INTO events (created_at, request_token, idempotency_key, node) VALUES " +
		strings.TrimSuffix(strings.Repeat("(?, ?, NULL, 'dbbench'), ", rows), ", ")

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var committed atomic.Int64
	var mu sync.Mutex
	var latencies []time.Duration
	errs := map[string]int{}
	start := time.Now()
	stopProgress := progress(progressEvery, start, &committed)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := make([]any, 0, 2*rows)
			for ctx.Err() == nil {
				args = args[:0]
				for range rows {
					token := make([]byte, 16)
					_, _ = rand.Read(token)
					args = append(args, time.Now().UTC(), token)
				}
				t := time.Now()
				_, err := db.ExecContext(context.Background(), query, args...)
				d := time.Since(t)
				mu.Lock()
				if err != nil {
					errs[errorLabel(err)]++
				} else {
					committed.Add(int64(rows))
					latencies = append(latencies, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()

	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	errs["committed"] = len(latencies) // statements; benchreport counts every other label as an error
	r := report{
		Variant:     fmt.Sprintf("database/sql, %d rows per INSERT", rows),
		Concurrency: concurrency,
		RowsPerStmt: rows,
		Succeeded:   committed.Load(),
		ByStatus:    errs,
		Elapsed:     elapsed.String(),
		Throughput:  float64(committed.Load()) / elapsed.Seconds(),
		LatencyP50:  quantile(latencies, 0.50).String(),
		LatencyP90:  quantile(latencies, 0.90).String(),
		LatencyP99:  quantile(latencies, 0.99).String(),
		LatencyMax:  quantile(latencies, 1).String(),
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// progress prints the rows committed so far every interval until the
// returned function is called.
func progress(interval time.Duration, start time.Time, committed *atomic.Int64) (stop func()) {
	if interval <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		last := int64(0)
		for {
			select {
			case <-done:
				return
			case <-t.C:
				n := committed.Load()
				fmt.Fprintf(os.Stderr, "dbbench: %5.0fs rows %d (%.0f/s)\n",
					time.Since(start).Seconds(), n, float64(n-last)/interval.Seconds())
				last = n
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// errorLabel names a failed INSERT the way the report counts it: the
// MariaDB error number when the server sent one, else "error".
func errorLabel(err error) string {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return fmt.Sprintf("mariadb-%d", me.Number)
	}
	return "error"
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
