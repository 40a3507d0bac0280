package main

import (
	"fmt"
	"math"
	"strings"
)

// targetLevel is the concurrency at which the targets are stated.
const targetLevel = 64

// Targets of the write path on the three-node cluster.
const (
	targetGroupOverSingle  = 3.0  // group commit / one commit per request, throughput
	targetGroupOverHealthz = 0.5  // group commit / GET /healthz, throughput
	targetP99Millis        = 20.0 // p99 of POST /app with group commit
	targetPeakRSSMiB       = 64.0 // the API's peak RSS during the run
	targetGrowthTolerance  = 0.2  // CPU time per request with the table full, relative to empty
)

// check is one row of the targets table. Met is nil when the run has no
// data for it.
type check struct {
	Name, Measured, Goal string
	Met                  *bool
}

func (c check) verdict() string {
	switch {
	case c.Met == nil:
		return "not measured"
	case *c.Met:
		return "met"
	}
	return "not met"
}

func verdict(ok bool) *bool { return &ok }

// points holds the measurements that the targets compare.
type points struct {
	healthz, dbSingle, dbMulti, single, group, standalone *measurement
	openSingle, openGroup                                 *measurement
	post0, postFull, get0, getFull                        *measurement
	growthRows                                            int
	peakRSS                                               float64
}

func collect(ms []measurement) points {
	at := func(variant string) *measurement { return find(ms, "sweep", variant, targetLevel, 0) }
	p := points{
		healthz: at(variantHealthz), dbSingle: at(variantDBSingle), dbMulti: at(variantDBMulti),
		single: at(variantSingle), group: at(variantGroup), standalone: at(variantStandalone),
		openSingle: find(ms, "open-loop", variantSingle, targetLevel, 0),
		openGroup:  find(ms, "open-loop", variantGroup, targetLevel, 0),
	}
	for _, m := range ms {
		p.peakRSS = math.Max(p.peakRSS, m.PeakRSSMiB)
		if m.Section == "growth" && m.RowsFilled > p.growthRows {
			p.growthRows = m.RowsFilled
		}
	}
	p.post0 = find(ms, "growth", variantGrowthPost, targetLevel, 0)
	p.get0 = find(ms, "growth", variantGrowthGet, targetLevel, 0)
	if p.growthRows > 0 {
		p.postFull = find(ms, "growth", variantGrowthPost, targetLevel, p.growthRows)
		p.getFull = find(ms, "growth", variantGrowthGet, targetLevel, p.growthRows)
	}
	return p
}

// ratio returns a's throughput over b's, or NaN when either is missing.
func ratio(a, b *measurement) float64 {
	if a == nil || b == nil || b.Report.Throughput == 0 {
		return math.NaN()
	}
	return a.Report.Throughput / b.Report.Throughput
}

func p50Ratio(a, b *measurement) float64 {
	if a == nil || b == nil || millis(b.Report.LatencyP50) == 0 {
		return math.NaN()
	}
	return millis(a.Report.LatencyP50) / millis(b.Report.LatencyP50)
}

func times(r float64) string {
	if math.IsNaN(r) {
		return "-"
	}
	return fmt.Sprintf("%.2f×", r)
}

// checks compares the run with each target.
func (p points) checks() []check {
	cs := p.throughputChecks()
	cs = append(cs, p.groupPointChecks()...)

	rss := check{Name: "API peak RSS (VmHWM) over the whole run", Measured: "-",
		Goal: fmt.Sprintf("< %.0f MiB", targetPeakRSSMiB)}
	if p.peakRSS > 0 {
		rss.Measured, rss.Met = fmt.Sprintf("%.1f MiB", p.peakRSS), verdict(p.peakRSS < targetPeakRSSMiB)
	}
	cs = append(cs, rss)

	for _, g := range p.growthPairs() {
		cost := g.cost()
		cs = append(cs, check{
			Name: fmt.Sprintf("cost of %s at c%d: CPU time per request, table of %s rows over empty table",
				g.name, targetLevel, rowsLabel(p.growthRows)),
			Measured: fmt.Sprintf("%s (throughput %s, p50 %s)", times(cost),
				times(ratio(g.full, g.empty)), times(p50Ratio(g.full, g.empty))),
			Goal: fmt.Sprintf("within %.0f%% of 1", targetGrowthTolerance*100),
			Met:  known(cost, math.Abs(cost-1) <= targetGrowthTolerance),
		})
	}
	return cs
}

func (p points) throughputChecks() []check {
	single, ceiling := ratio(p.group, p.single), ratio(p.group, p.healthz)
	return []check{{
		Name:     fmt.Sprintf("POST /app throughput, group commit over one commit per request, c%d", targetLevel),
		Measured: times(single), Goal: fmt.Sprintf("≥ %.0f×", targetGroupOverSingle),
		Met: known(single, single >= targetGroupOverSingle),
	}, {
		Name:     fmt.Sprintf("POST /app throughput with group commit over the GET /healthz ceiling, c%d", targetLevel),
		Measured: times(ceiling), Goal: fmt.Sprintf("≥ %.1f×", targetGroupOverHealthz),
		Met: known(ceiling, ceiling >= targetGroupOverHealthz),
	}}
}

// groupPointChecks checks the p99 and the errors of group commit at the
// target level.
func (p points) groupPointChecks() []check {
	latency := check{Name: fmt.Sprintf("p99 of POST /app with group commit, c%d", targetLevel),
		Measured: "-", Goal: fmt.Sprintf("< %.0f ms", targetP99Millis)}
	failed := check{Name: fmt.Sprintf("failed attempts of POST /app with group commit, c%d", targetLevel),
		Measured: "-", Goal: "0"}
	if p.group != nil {
		ms := millis(p.group.Report.LatencyP99)
		latency.Measured, latency.Met = fmt.Sprintf("%.1f ms", ms), verdict(ms < targetP99Millis)
		n := p.group.Report.errors()
		failed.Measured, failed.Met = fmt.Sprint(n), verdict(n == 0)
	}
	return []check{latency, failed}
}

// growthPair is one request measured with the table empty and full.
type growthPair struct {
	name        string
	empty, full *measurement
}

func (p points) growthPairs() []growthPair {
	return []growthPair{{"POST /app", p.post0, p.postFull}, {"GET /app?limit=100", p.get0, p.getFull}}
}

// cost returns the CPU time per request with the table full over that with
// the table empty, or NaN when a point is missing.
func (g growthPair) cost() float64 {
	return cpuRatio(g.full, g.empty)
}

// cpuRatio returns a's CPU time per request over b's, or NaN when either
// is missing.
func cpuRatio(a, b *measurement) float64 {
	if a == nil || b == nil {
		return math.NaN()
	}
	return a.cpuPerRequest() / b.cpuPerRequest()
}

// known returns nil when value is NaN (a point is missing), else the
// verdict ok.
func known(value float64, ok bool) *bool {
	if math.IsNaN(value) {
		return nil
	}
	return verdict(ok)
}

// rowsLabel prints 1000000 as "1 M" and 10000 as "10 k".
func rowsLabel(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%d M", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%d k", n/1000)
	}
	return fmt.Sprint(n)
}

// otherRatios are figures without a target that explain the targets.
func (p points) otherRatios(multiRows int) [][2]string {
	rows := [][2]string{
		{"standalone MariaDB over the three-node cluster, POST /app with group commit (the cost of synchronous replication)",
			times(ratio(p.standalone, p.group))},
		{fmt.Sprintf("database/sql, %d rows per INSERT over 1 row per INSERT, rows/s (what batching gives the database itself)", multiRows),
			times(ratio(p.dbMulti, p.dbSingle))},
		{"POST /app, one commit per request, over database/sql with 1 row per INSERT (the share left after HTTP, HAProxy and the API)",
			times(ratio(p.single, p.dbSingle))},
		{fmt.Sprintf("POST /app with group commit over database/sql with %d rows per INSERT", multiRows),
			times(ratio(p.group, p.dbMulti))},
		{"CPU time per request, one commit per request over group commit (the throughput ratio to expect while the CPU is the limit, an estimate)",
			times(cpuRatio(p.single, p.group))},
		{"CPU time per request, GET /healthz over POST /app with group commit (the same estimate for the ceiling ratio)",
			times(cpuRatio(p.healthz, p.group))},
	}
	for i := range rows {
		rows[i][0] = fmt.Sprintf("%s, c%d", rows[i][0], targetLevel)
	}
	return rows
}

// gaps explains, from the measurements, each target that the run missed.
func (p points) gaps(info runInfo) []string {
	out := []string{machineParagraph(info)}
	if p.group != nil {
		out = append(out, fmt.Sprintf("At concurrency %d with group commit the machine was busy on %.2f of its %d cores on average: %s.",
			targetLevel, p.group.CPU.Machine, info.Cores, cpuParts(p.group.CPU)))
	}
	context := len(out)
	if r := ratio(p.group, p.single); !math.IsNaN(r) && r < targetGroupOverSingle {
		out = append(out, p.singleGap(r, info))
	}
	if r := ratio(p.group, p.healthz); !math.IsNaN(r) && r < targetGroupOverHealthz {
		out = append(out, p.ceilingGap(r, info))
	}
	if p.group != nil && millis(p.group.Report.LatencyP99) >= targetP99Millis {
		out = append(out, p.latencyGap())
	}
	if p.group != nil && p.group.Report.errors() > 0 {
		out = append(out, fmt.Sprintf("POST /app with group commit had %d failed attempts at concurrency %d (statuses: %s); the load generator does not retry, so each is an error a client would see.",
			p.group.Report.errors(), targetLevel, statuses(p.group.Report.ByStatus)))
	}
	if p.peakRSS >= targetPeakRSSMiB {
		out = append(out, fmt.Sprintf("The API's peak RSS reached %.1f MiB, above the %.0f MiB target.", p.peakRSS, targetPeakRSSMiB))
	}
	for _, g := range p.growthPairs() {
		if gap := p.growthGap(g); gap != "" {
			out = append(out, gap)
		}
	}
	if len(out) == context {
		out = append(out, "Every target was met in this run.")
	}
	return out
}

// growthGap explains a growth pair whose cost or throughput moved by more
// than the tolerance, or returns "".
func (p points) growthGap(g growthPair) string {
	cost, t := g.cost(), ratio(g.full, g.empty)
	if math.IsNaN(cost+t) || (math.Abs(cost-1) <= targetGrowthTolerance && math.Abs(t-1) <= targetGrowthTolerance) {
		return ""
	}
	text := fmt.Sprintf("%s with %s rows ran at %s the throughput of the empty table, and this testbed spent %s the CPU time per request "+
		"(%.2f ms against %.2f ms). Everything else on the machine took %.2f cores during the point with the table full and %.2f with it empty. ",
		g.name, rowsLabel(p.growthRows), times(t), times(cost), g.full.cpuPerRequest(), g.empty.cpuPerRequest(),
		g.full.CPU.Rest, g.empty.CPU.Rest)
	if math.Abs(cost-1) <= targetGrowthTolerance {
		return text + "So the throughput moved with what the other testbeds took, while the cost of a request stayed within the tolerance."
	}
	return text + "Each figure is one run, so repeat the run before reading this as a cost that grows with the data."
}

func machineParagraph(info runInfo) string {
	others := "no other testbed was up"
	switch n := info.Testbeds - 1; {
	case n == 1:
		others = "1 other testbed was up"
	case n > 1:
		others = fmt.Sprintf("%d other testbeds were up", n)
	}
	return fmt.Sprintf("Every process of this benchmark runs on the same %d cores: the load generator, HAProxy on the load balancer that holds the VIP, "+
		"both APIs and all three Galera nodes. During the run %s on the machine, and the 1-minute load average was %s at the start and %s at the end. "+
		"So the figures below show how the path shares %d cores, not what each part would do on its own machine.",
		info.Cores, others, field(info.LoadStart, 0), field(info.LoadEnd, 0), info.Cores)
}

func (p points) singleGap(r float64, info runInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Group commit gave %s the throughput of one commit per request at concurrency %d, short of %.0f×. ",
		times(r), targetLevel, targetGroupOverSingle)
	busy := p.single.CPU.Machine
	if busy >= 0.85*float64(info.Cores) {
		fmt.Fprintf(&b, "The one-commit-per-request run already kept %.2f of the %d cores busy (%s), so there was little idle CPU for fewer commits to turn into more requests. ",
			busy, info.Cores, cpuParts(p.single.CPU))
	} else {
		fmt.Fprintf(&b, "The one-commit-per-request run kept %.2f of the %d cores busy (%s). ", busy, info.Cores, cpuParts(p.single.CPU))
	}
	b.WriteString("Group commit saves what each commit costs: a redo log flush to disk (innodb_flush_log_at_trx_commit=1), a binary log write, " +
		"and one Galera replication round to the other two nodes. " +
		"Each request still needs its HTTP work in the load generator, HAProxy and the API, and its row is still inserted on the writer and applied on the two other nodes. ")
	if m := ratio(p.dbMulti, p.dbSingle); !math.IsNaN(m) {
		fmt.Fprintf(&b, "The database alone shows how much batching can give here: through the same HAProxy path, many rows per INSERT committed %s the rows per second of one row per INSERT at concurrency %d. ",
			times(m), targetLevel)
	}
	fmt.Fprintf(&b, "Per request, this testbed spent %.2f ms of CPU time with one commit per request and %.2f ms with group commit (%s), "+
		"while everything else on the machine took %.2f and %.2f cores during the two points. "+
		"While the CPU is the limit, the CPU time ratio estimates the throughput gain on these cores without the other testbeds' noise.",
		p.single.cpuPerRequest(), p.group.cpuPerRequest(), times(cpuRatio(p.single, p.group)), p.single.CPU.Rest, p.group.CPU.Rest)
	return b.String()
}

func (p points) ceilingGap(r float64, info runInfo) string {
	return fmt.Sprintf("POST /app with group commit reached %s of the GET /healthz ceiling at concurrency %d, short of %.1f×. "+
		"GET /healthz costs the load generator, HAProxy and the API's HTTP stack but no database work, and it kept %.2f of the %d cores busy (%s). "+
		"A POST needs the same HTTP work plus the database's, and the Galera hosts used %.2f cores at concurrency %d with group commit. "+
		"Both share the same %d cores, so on this machine the database's work comes out of the HTTP path's share instead of running beside it. "+
		"Per request, GET /healthz cost this testbed and the load generator %.2f ms of CPU time and POST /app with group commit %.2f ms. "+
		"As long as both are limited by the same cores, the ratio of their throughputs stays near %s, however quiet the machine is (an estimate from the CPU times).",
		times(r), targetLevel, targetGroupOverHealthz, p.healthz.CPU.Machine, info.Cores, cpuParts(p.healthz.CPU),
		p.group.CPU.DB, targetLevel, info.Cores,
		p.healthz.cpuPerRequest(), p.group.cpuPerRequest(), times(cpuRatio(p.healthz, p.group)))
}

func (p points) latencyGap() string {
	t := p.group.Report.Throughput
	var b strings.Builder
	fmt.Fprintf(&b, "The p99 of POST /app with group commit at concurrency %d was %s, above %.0f ms. "+
		"A closed loop keeps %d requests in flight, so the mean latency is %d divided by the throughput (Little's law): "+
		"%.0f requests/s give %.1f ms on average. A p99 under %.0f ms therefore needs more than %.0f requests/s, %.1f× what this run reached. ",
		targetLevel, short(p.group.Report.LatencyP99), targetP99Millis, targetLevel, targetLevel,
		t, 1000*float64(targetLevel)/t, targetP99Millis, 1000*float64(targetLevel)/targetP99Millis,
		1000*float64(targetLevel)/targetP99Millis/t)
	if p.openGroup != nil && p.openSingle != nil {
		fmt.Fprintf(&b, "Below saturation, in the open loop at %d requests/s, group commit had p50 %s and p99 %s, "+
			"against %s and %s with one commit per request.",
			p.openGroup.Rate, short(p.openGroup.Report.LatencyP50), short(p.openGroup.Report.LatencyP99),
			short(p.openSingle.Report.LatencyP50), short(p.openSingle.Report.LatencyP99))
		if millis(p.openGroup.Report.LatencyP50) > millis(p.openSingle.Report.LatencyP50) {
			b.WriteString(" So in this run group commit did not lower the latency at that rate.")
		}
	}
	return b.String()
}

// cpuParts lists the cores each part used.
func cpuParts(c cpu) string {
	return fmt.Sprintf("Galera hosts %.2f, API hosts %.2f, load balancers %.2f, load generator %.2f, everything else %.2f",
		c.DB, c.API, c.LB, c.Client, c.Rest)
}

// field returns the i-th space-separated field of s, or s.
func field(s string, i int) string {
	f := strings.Fields(s)
	if i < len(f) {
		return f[i]
	}
	return s
}
