package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

func markdown(ms []measurement, info runInfo, images string) string {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("Written by `make bench` (`scripts/bench.sh`, which runs `api/cmd/loadgen` and `api/cmd/dbbench` on the local " +
		"test hosts of the `ha` topology, then `api/cmd/benchreport`). Every figure below comes from the one run described here. " +
		"All variants ran in that run, one after the other, so their ratios hold better than figures from separate runs on a noisy machine. " +
		"Each point is one run with no repetition, so there is no error bar.\n\n")
	writeRun(&b, info)

	p := collect(ms)
	b.WriteString("\n## Targets\n\n")
	b.WriteString("| target | measured | goal | verdict |\n|---|---|---|---|\n")
	for _, c := range p.checks() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", c.Name, c.Measured, c.Goal, c.verdict())
	}
	b.WriteString("\n| other ratio | measured |\n|---|---|\n")
	for _, r := range p.otherRatios(info.MultiRows) {
		fmt.Fprintf(&b, "| %s | %s |\n", r[0], r[1])
	}
	b.WriteString("\n## What stands in the way\n\n")
	for _, para := range p.gaps(info) {
		b.WriteString(para + "\n\n")
	}

	b.WriteString("## Closed loop: throughput and latency by concurrency\n\n")
	b.WriteString("Throughput counts successes per second. dbbench's rows count rows per second, and their latencies are " +
		"those of one INSERT statement with its commit. Cores: the machine's busy cores on average during the point, " +
		"other testbeds included. CPU/request: the CPU time that this testbed's hosts and the load generator spent per " +
		"success (per row for dbbench). It does not depend on what the other testbeds took. It includes the " +
		"testbed's idle work (health checks, Galera's background threads), so it is higher at low rates.\n\n")
	writeTable(&b, filter(ms, "sweep"), false)
	fmt.Fprintf(&b, "\n![Throughput against concurrency](%s/%s)\n\n", images, chartThroughput)
	fmt.Fprintf(&b, "![p99 latency against concurrency](%s/%s)\n", images, chartP99)

	fmt.Fprintf(&b, "\n## Where the CPU went at concurrency %d\n\n", targetLevel)
	b.WriteString("Cores used on average during the point, from the cgroups of this testbed's hosts and the load generator's " +
		"own CPU time. \"rest\" is the machine's remaining busy time (other testbeds, the harness, SSH).\n\n")
	b.WriteString("| series | machine | Galera hosts | API hosts | load balancers | load generator | rest | CPU/request |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, m := range filter(ms, "sweep") {
		if m.Concurrency == targetLevel {
			c := m.CPU
			fmt.Fprintf(&b, "| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s |\n",
				m.Series, c.Machine, c.DB, c.API, c.LB, c.Client, c.Rest, cpuMillis(m.cpuPerRequest()))
		}
	}

	if rows := filter(ms, "open-loop"); len(rows) > 0 {
		b.WriteString("\n## Open loop at a fixed rate\n\n")
		b.WriteString("The load generator starts requests at the offered rate with at most the given number in flight; " +
			"a throughput below the rate means the path could not keep up.\n\n")
		writeTable(&b, rows, false)
	}
	if rows := filter(ms, "growth"); len(rows) > 0 {
		b.WriteString("\n## Cost as the table grows\n\n")
		b.WriteString("The table is emptied, or filled with generated rows, before each pair of points. POST /app runs first, " +
			"so the GET after it also reads the rows that POST added; \"rows\" is the count when the point started. " +
			"The API runs with its default settings here.\n\n")
		writeTable(&b, rows, true)
	}
	writeNotes(&b)
	return b.String()
}

func writeRun(b *strings.Builder, info runInfo) {
	rows := [][2]string{
		{"commit", info.Commit},
		{"started, finished (UTC)", fmt.Sprintf("%s, %s: %s in all", info.Started, info.Finished,
			(time.Duration(info.Seconds) * time.Second).String())},
		{"machine", fmt.Sprintf("%d cores (%s), %s memory, Linux %s", info.Cores, info.CPU, info.Memory, info.Kernel)},
		{"load average (1, 5, 15 min)", fmt.Sprintf("%s at the start, %s at the end", info.LoadStart, info.LoadEnd)},
		{"testbeds up on the machine", fmt.Sprintf("%d named instances, this one (%s) included", info.Testbeds, info.Instance)},
		{"hosts", "`ha` topology as systemd-nspawn containers on this machine: lb1 and lb2 (HAProxy and keepalived; the VIP holder " +
			"takes the traffic), api1 and api2 (one timestamp-api each), db1 to db3 (Galera; HAProxy sends every write to db1)"},
		{"API", info.API},
		{"stopped during the run", info.Paused},
		{"load", "`api/cmd/loadgen` on the machine, through the VIP, without Idempotency-Key and without client retries"},
		{"settings", fmt.Sprintf("%s per point after a %s warm-up per series; concurrency %s; open loop at %d requests/s; "+
			"%d rows per multi-row INSERT; growth to %s rows", info.Duration, info.Warmup, info.Levels, info.Rate,
			info.MultiRows, rowsLabel(info.GrowthRows))},
	}
	b.WriteString("| run | |\n|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| %s | %s |\n", r[0], r[1])
	}
}

func writeTable(b *strings.Builder, rows []measurement, growth bool) {
	extra, dash := "concurrency", "|---"
	if growth {
		extra = "rows"
	}
	fmt.Fprintf(b, "| series | %s | rate | throughput (/s) | p50 | p90 | p99 | max | statuses | cores | CPU/request | API peak RSS |\n", extra)
	b.WriteString(strings.Repeat(dash, 12) + "|\n")
	for _, m := range rows {
		first := fmt.Sprint(m.Concurrency)
		if growth {
			first = fmt.Sprint(m.Rows)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %.2f | %s | %s |\n",
			m.Series, first, orDash(m.Rate), m.Report.Throughput,
			short(m.Report.LatencyP50), short(m.Report.LatencyP90), short(m.Report.LatencyP99),
			short(m.Report.LatencyMax), statuses(m.Report.ByStatus), m.CPU.Machine,
			cpuMillis(m.cpuPerRequest()), rss(m.PeakRSSMiB))
	}
}

func writeNotes(b *strings.Builder) {
	b.WriteString("\n## How the variants differ\n\n")
	for _, n := range []string{
		"dbbench runs on api1 and connects through HAProxy's database frontend on the VIP, the same path as the API, " +
			"so its rows show the database's own limit without HTTP. Its CPU time counts under the API hosts.",
		"The standalone MariaDB runs on db3 beside its Galera node, on port 3307 with wsrep off and the nodes' InnoDB and " +
			"binary log settings. The APIs connect to it directly, not through HAProxy, so that variant skips one TCP hop.",
		"HAProxy lets each API server take at most 32 requests at once (haproxy_api_server_maxconn), so above concurrency 64 " +
			"requests wait in HAProxy's queue and the extra latency is queueing.",
		"The API's peak RSS is VmHWM of the timestamp-api processes, read after each point. The API restarts with each " +
			"variant, so the figure covers the variant so far.",
	} {
		b.WriteString("- " + n + "\n")
	}
}

func cpuMillis(ms float64) string {
	if math.IsNaN(ms) {
		return "-"
	}
	return fmt.Sprintf("%.2f ms", ms)
}

func orDash(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func rss(mib float64) string {
	if mib == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", mib)
}

// short rounds a duration string to about three significant figures.
func short(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return s
	}
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

func statuses(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
