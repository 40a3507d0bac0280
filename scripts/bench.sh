#!/usr/bin/env bash
# Benchmarks of the HA path, on the local test hosts of the ha topology
# (`make up` first): HAProxy on the VIP, two API hosts, three Galera nodes.
# Every variant runs in this one run, so their ratios hold on a noisy
# machine. Results: docs/benchmarks.md and its charts in docs/img/, written
# by api/cmd/benchreport.
#
#   1. GET /healthz through the VIP: the ceiling without a database
#   2. dbbench on api1: the same INSERT through HAProxy's database frontend,
#      one row per transaction, and BENCH_MULTI_ROWS rows per INSERT
#   3. POST /app, one INSERT and commit per request (group commit off),
#      then an open-loop run at BENCH_RATE
#   4. POST /app with group commit, then the same open-loop run
#   5. POST /app with group commit on one standalone MariaDB (on the last
#      Galera host, port 3307, wsrep off): the cost of synchronous
#      replication
#   then POST /app and GET /app?limit=100 at concurrency 64 with the table
#   emptied and filled with BENCH_GROWTH_ROWS rows.
#
# Settings: BENCH_DURATION per point (default 10s), BENCH_WARMUP before each
# series (default 2s, not recorded), BENCH_LEVELS (default
# "1 8 32 64 128 256"), BENCH_RATE (default 500), BENCH_MULTI_ROWS (default
# 32), BENCH_GROWTH_ROWS (default 1000000), BENCH_PROGRESS_EVERY (default
# 5s). The autoscaler (so that exactly one API instance serves on each API
# host) and the backup timers are stopped during the run and started again
# at the end.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export TOPOLOGY=ha
# shellcheck source=scripts/testbed/lib.sh
source scripts/testbed/lib.sh
testbed_enter "$@"
# shellcheck source=scripts/suite-lib.sh
source scripts/suite-lib.sh

duration=${BENCH_DURATION:-10s}
warmup=${BENCH_WARMUP:-2s}
read -r -a levels <<<"${BENCH_LEVELS:-1 8 32 64 128 256}"
rate=${BENCH_RATE:-500}
multi_rows=${BENCH_MULTI_ROWS:-32}
growth_rows=${BENCH_GROWTH_ROWS:-1000000}
progress_every=${BENCH_PROGRESS_EVERY:-5s}
results=$SUITE_WORK/bench.jsonl
point_report=$SUITE_WORK/bench-point.json
clock_ticks=$(getconf CLK_TCK)
lb_hosts=()
api_hosts=()
galera_nodes=()
# "HOST UNIT" pairs that the run stopped and starts again at the end.
paused_units=()
# Set while the API instances run with variables over their env file.
api_overridden=0
# Series labels by variant; api/cmd/benchreport finds the variants by
# these ids.
declare -A labels=(
	[healthz]="GET /healthz (no database)"
	[db-single]="database/sql, 1 row per INSERT (rows/s)"
	[db-multi]="database/sql, $multi_rows rows per INSERT (rows/s)"
	[single]="POST /app, one commit per request"
	[group]="POST /app, group commit"
	[standalone]="POST /app, group commit, standalone MariaDB"
	[growth-post]="POST /app"
	[growth-get]="GET /app?limit=100"
)

# Six closed-loop sweeps, two open-loop points and four growth points.
points_total=$((6 * ${#levels[@]} + 2 + 4))
points_done=0
bench_start=$SECONDS
# Set when the first point starts; the estimate of the time left counts
# from there, without the setup.
points_start=

indent() { sed -u 's/^/      /'; }

minutes() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# point_begin LABEL: print the progress line of the next measurement, with
# an estimate of the time left from the average time per point so far.
point_begin() {
	local spent=$((SECONDS - bench_start)) left=""
	: "${points_start:=$SECONDS}"
	if ((points_done > 0)); then
		left=", about $(minutes $(((SECONDS - points_start) * (points_total - points_done) / points_done))) left"
	fi
	points_done=$((points_done + 1))
	printf '  [%d/%d, %s%s] %s\n' "$points_done" "$points_total" "$(minutes "$spent")" "$left" "$1" >&2
}

# --- measurements -------------------------------------------------------------

# cpu_snapshot: print the wall clock and four CPU times, all in seconds: the
# machine's (busy time in /proc/stat, so other testbeds count too), and
# this instance's load balancers, API hosts and Galera hosts (the usage_usec
# of their cgroups).
cpu_snapshot() {
	local busy
	busy=$(awk -v hz="$clock_ticks" '$1 == "cpu" { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat)
	printf '%s %s %s %s %s\n' "$(date +%s.%N)" "$busy" \
		"$(hosts_cpu "${lb_hosts[@]}")" "$(hosts_cpu "${api_hosts[@]}")" "$(hosts_cpu "${galera_nodes[@]}")"
}

# hosts_cpu HOST...: print the CPU seconds that the hosts' cgroups used.
hosts_cpu() {
	local host path usec=0 one
	for host in "$@"; do
		path=$(host_cgroup "$host" unified) || die "no cgroup for host $host in $(host_dir "$host")/cgroups"
		one=$(awk '$1 == "usage_usec" { print $2 }' "$path/cpu.stat")
		usec=$((usec + one))
	done
	awk -v u="$usec" 'BEGIN { printf "%.3f", u / 1e6 }'
}

# cpu_usage BEFORE AFTER CLIENT-SECONDS: print, as JSON, the cores used on
# average between two snapshots: by the machine, by each role, by the load
# generator, and by the rest (other testbeds, the harness itself).
cpu_usage() {
	jq -nc --argjson b "[${1// /,}]" --argjson a "[${2// /,}]" --argjson client "$3" '
		def r2: . * 100 | round / 100;
		($a[0] - $b[0]) as $wall
		| {machine: (($a[1] - $b[1]) / $wall | r2), lb: (($a[2] - $b[2]) / $wall | r2),
			api: (($a[3] - $b[3]) / $wall | r2), db: (($a[4] - $b[4]) / $wall | r2),
			client: ($client / $wall | r2)}
		| .rest = ([.machine - .lb - .api - .db - .client, 0] | max | r2)'
}

# peak_rss: print the largest peak RSS (VmHWM, MiB) of the API processes
# since their last start.
peak_rss() {
	local host kib max=0
	for host in "${api_hosts[@]}"; do
		# shellcheck disable=SC2016 # $p expands on the host
		kib=$(host_ssh "$host" 'for p in $(pgrep -x timestamp-api); do grep VmHWM /proc/$p/status; done' |
			awk '$2 > m { m = $2 } END { print m + 0 }')
		((kib > max)) && max=$kib
	done
	awk -v k="$max" 'BEGIN { printf "%.1f", k / 1024 }'
}

# record VARIANT SECTION CONCURRENCY EXTRA-JSON BEFORE AFTER: append the
# report in $point_report to the results, with the CPU use between the
# snapshots BEFORE and AFTER and the API's peak RSS. EXTRA-JSON is merged
# into the record (for example {"rate": 500}).
record() {
	local variant=$1 section=$2 concurrency=$3 extra=$4 before=$5 after=$6 cpu
	cpu=$(cpu_usage "$before" "$after" "$(jq '.client_cpu_seconds // 0' "$point_report")")
	jq -r --argjson cpu "$cpu" '"      => \(.throughput | floor)/s  p50 \(.latency_p50)  p99 \(.latency_p99)  " +
		"max \(.latency_max)  statuses \(.by_status | tostring)  cores used \($cpu.machine)"' "$point_report" >&2
	jq -c --arg v "$variant" --arg s "${labels[$variant]}" --arg sec "$section" --argjson c "$concurrency" \
		--argjson extra "$extra" --argjson cpu "$cpu" --argjson rss "$(peak_rss)" \
		'{variant: $v, series: $s, section: $sec, concurrency: $c, report: ., cpu_cores: $cpu, peak_rss_mib: $rss} + $extra' \
		"$point_report" >>"$results"
}

# measure VARIANT SECTION CONCURRENCY EXTRA-JSON LOADGEN-FLAGS...: one load
# generator run through the VIP, without Idempotency-Key and without client
# retries, recorded with record.
measure() {
	local variant=$1 section=$2 concurrency=$3 extra=$4 before after
	shift 4
	point_begin "${labels[$variant]}, concurrency $concurrency$([[ $extra == '{}' ]] || echo " $extra")"
	rm -f "$point_report"
	before=$(cpu_snapshot)
	"$SUITE_LOADGEN" -target "$(suite_service_url)" -concurrency "$concurrency" -duration "$duration" \
		-retries 0 -key-prefix "" -progress-every "$progress_every" -report "$point_report" "$@" \
		2>&1 >/dev/null | indent >&2
	after=$(cpu_snapshot)
	record "$variant" "$section" "$concurrency" "$extra" "$before" "$after"
}

# warm_up LOADGEN-FLAGS...: a short unrecorded run at concurrency 8, so
# that the first point of a series does not pay for new connections.
warm_up() {
	"$SUITE_LOADGEN" -target "$(suite_service_url)" -concurrency 8 -duration "$warmup" \
		-retries 0 -key-prefix "" -quiet "$@" >/dev/null
}

sweep_api() {
	local variant=$1 level
	warm_up
	for level in "${levels[@]}"; do
		measure "$variant" sweep "$level" '{}'
	done
}

# sweep_db VARIANT ROWS: dbbench on the first API host at each level, ROWS
# rows per INSERT. Its CPU time counts under the API hosts.
sweep_db() {
	local variant=$1 rows=$2 level before after
	for level in "${levels[@]}"; do
		point_begin "${labels[$variant]}, concurrency $level"
		rm -f "$point_report"
		before=$(cpu_snapshot)
		host_ssh "${api_hosts[0]}" "set -a && . /etc/timestamp-api/env && exec /usr/local/bin/dbbench \
			-db-password-file /etc/timestamp-api/db-password -concurrency $level -rows $rows \
			-duration $duration -progress-every $progress_every" 2>&1 >"$point_report" | indent >&2
		after=$(cpu_snapshot)
		record "$variant" sweep "$level" '{}' "$before" "$after"
	done
}

# --- background units and the API instances ------------------------------------

# unit_pause HOST UNIT: stop UNIT on HOST if it is active, and remember it
# for units_resume.
unit_pause() {
	if host_ssh "$1" systemctl is-active --quiet "$2"; then
		host_ssh "$1" systemctl stop "$2"
		paused_units+=("$1 $2")
	fi
}

units_resume() {
	local pair
	for pair in "${paused_units[@]}"; do
		host_ssh "${pair% *}" systemctl start "${pair#* }" || warn "could not start ${pair#* } on ${pair% *} again"
	done
	paused_units=()
}

# background_pause: stop what would change the load during the run. The
# autoscaler on the load balancers stops, so that the number of API
# instances stays fixed, and so do the backup timers on the Galera hosts
# (the binary log copy runs every 5 minutes). Then check that each API host
# runs exactly one instance.
background_pause() {
	local host units unit
	for host in "${lb_hosts[@]}"; do
		unit_pause "$host" timestamp-autoscaler.service
	done
	for host in "${galera_nodes[@]}"; do
		for unit in timestamp-backup-binlog.timer timestamp-backup-incremental.timer timestamp-backup-full.timer; do
			unit_pause "$host" "$unit"
		done
	done
	for host in "${api_hosts[@]}"; do
		units=$(host_ssh "$host" "systemctl list-units --state=active --plain --no-legend 'timestamp-api@*'" |
			awk '{ print $1 }')
		[[ $(wc -w <<<"$units") -eq 1 ]] ||
			die "$host runs these API instances: ${units:-none}; the benchmark needs exactly one per host. Wait until the autoscaler has scaled down to its minimum, then run it again."
	done
}

# haproxy_api_up LB: print how many static API servers (not the
# autoscaler's pool slots) HAProxy on LB marks UP. Fields of "show stat":
# 1 proxy, 2 server, 18 status.
haproxy_api_up() {
	host_ssh "$1" "echo 'show stat' | socat stdio /run/haproxy/admin.sock" |
		awk -F, '$1 == "api" && $2 != "BACKEND" && $2 != "FRONTEND" && $2 !~ /^pool/ && $18 ~ /^UP/ { n++ } END { print n + 0 }'
}

# api_override [VAR=VALUE...]: restart every API instance with these
# variables over its environment file (none: back to the file alone), and
# wait until both load balancers use every instance again.
api_override() {
	local host lb deadline up
	for host in "${api_hosts[@]}"; do
		if (($#)); then
			printf '%s\n' "$@" | host_ssh "$host" "cat > /etc/timestamp-api/bench.env && chmod 600 /etc/timestamp-api/bench.env &&
				mkdir -p /run/systemd/system/timestamp-api@.service.d &&
				printf '[Service]\nEnvironmentFile=/etc/timestamp-api/bench.env\n' >/run/systemd/system/timestamp-api@.service.d/bench.conf"
		else
			host_ssh "$host" "rm -f /run/systemd/system/timestamp-api@.service.d/bench.conf /etc/timestamp-api/bench.env"
		fi
		host_ssh "$host" "systemctl daemon-reload && systemctl restart 'timestamp-api@*'"
	done
	api_overridden=$#
	for host in "${api_hosts[@]}"; do
		deadline=$((SECONDS + 60))
		# From the host itself: its firewall lets only the load balancers in.
		until host_ssh "$host" curl -fsS -o /dev/null --max-time 2 "http://$(host_address "$host"):8080/readyz" 2>/dev/null; do
			((SECONDS < deadline)) || die "the API on $host is not ready 60 s after its restart"
			sleep 0.2
		done
	done
	for lb in "${lb_hosts[@]}"; do
		deadline=$((SECONDS + 60))
		until up=$(haproxy_api_up "$lb") && ((up == ${#api_hosts[@]})); do
			((SECONDS < deadline)) || die "HAProxy on $lb marks ${up:-no} of ${#api_hosts[@]} API servers UP, 60 s after their restart"
			sleep 0.5
		done
	done
}

# --- the standalone MariaDB -----------------------------------------------------

# standalone_up: start a MariaDB without wsrep on the last Galera host, port
# 3307, with the cluster nodes' InnoDB and binary log settings (durable
# commit: innodb_flush_log_at_trx_commit=1, sync_binlog=0 as on the nodes),
# reachable from the API hosts.
standalone_up() {
	local node=${galera_nodes[-1]} password deadline
	log "standalone MariaDB on $node:3307"
	host_ssh "$node" "mkdir -p /var/lib/mysql-bench && chown mysql: /var/lib/mysql-bench &&
		( [ -d /var/lib/mysql-bench/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql-bench >/tmp/bench-install-db.log 2>&1 ||
			{ cat /tmp/bench-install-db.log >&2; exit 1; } ) &&
		systemd-run --unit=mariadb-bench --property=User=mysql /usr/sbin/mariadbd --no-defaults \
			--datadir=/var/lib/mysql-bench --socket=/run/mysqld/bench.sock --port=3307 \
			--bind-address=$(host_address "$node") --skip-name-resolve \
			--innodb-buffer-pool-size=256M --innodb-log-file-size=128M --innodb-autoinc-lock-mode=2 \
			--innodb-flush-log-at-trx-commit=1 --log-bin=/var/lib/mysql-bench/mariadb-bin \
			--binlog-format=ROW --server-id=99 --sync-binlog=0 >/dev/null &&
		nft insert rule inet filter input tcp dport 3307 accept comment bench"
	deadline=$((SECONDS + 60))
	until host_ssh "$node" mariadb-admin --socket=/run/mysqld/bench.sock ping >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "the standalone MariaDB on $node did not start within 60 s"
		sleep 0.5
	done
	password=$(host_ssh "${api_hosts[0]}" cat /etc/timestamp-api/db-password)
	printf "CREATE DATABASE IF NOT EXISTS timestamp;
		CREATE USER IF NOT EXISTS 'timestamp'@'%%' IDENTIFIED BY '%s';
		GRANT SELECT, INSERT, CREATE, ALTER, INDEX ON timestamp.* TO 'timestamp'@'%%';\n" "$password" |
		host_ssh "$node" mariadb --socket=/run/mysqld/bench.sock
}

standalone_down() {
	local node=${galera_nodes[-1]}
	host_ssh "$node" "systemctl stop mariadb-bench 2>/dev/null; systemctl reset-failed mariadb-bench 2>/dev/null;
		rm -rf /var/lib/mysql-bench;
		nft -a list chain inet filter input | awk '/comment \"bench\"/ { print \$NF }' |
			xargs -r -n1 nft delete rule inet filter input handle" || true
}

# --- growth -------------------------------------------------------------------

# fill_table N: make timestamp.events hold N rows, inserted on the writer
# in chunks of 100000 so that no write set is huge, then wait until every
# node has applied them.
fill_table() {
	local writer=${galera_nodes[0]} n=$1 done_rows=0 chunk node
	printf 'TRUNCATE TABLE timestamp.events;\n' | host_ssh "$writer" mariadb
	while ((done_rows < n)); do
		chunk=$((n - done_rows < 100000 ? n - done_rows : 100000))
		printf "INSERT INTO timestamp.events (created_at, request_token, node)
			SELECT UTC_TIMESTAMP(6), RANDOM_BYTES(16), 'bench-fill' FROM seq_1_to_%d;\n" "$chunk" |
			host_ssh "$writer" mariadb timestamp
		done_rows=$((done_rows + chunk))
	done
	galera_wait_synced "${galera_nodes[@]}"
	for node in "${galera_nodes[@]}"; do
		galera_sql "$node" "SELECT COUNT(*) FROM timestamp.events" >/dev/null
	done
}

growth() {
	local n rows
	for n in 0 "$growth_rows"; do
		log "growth: table filled with $n rows"
		# Before the fill, so that the warm-up's rows are gone again.
		warm_up
		fill_table "$n"
		rows=$(galera_sql "${galera_nodes[0]}" "SELECT COUNT(*) FROM timestamp.events")
		measure growth-post growth 64 "{\"rows\": $rows, \"rows_filled\": $n}"
		rows=$(galera_sql "${galera_nodes[0]}" "SELECT COUNT(*) FROM timestamp.events")
		measure growth-get growth 64 "{\"rows\": $rows, \"rows_filled\": $n}" -method GET -path '/app?limit=100'
	done
}

# --- the run ------------------------------------------------------------------

# api_defaults: print the API's settings that shape the write path, as
# the env file and the binary's defaults (from -help) set them.
api_defaults() {
	host_ssh "${api_hosts[0]}" '/usr/local/bin/timestamp-api -help 2>&1; grep -h "^TSAPI_" /etc/timestamp-api/env' |
		awk '
			/^  -/ { flag = substr($1, 2) }
			/\(default / && flag != "" { match($0, /\(default [^)]*\)/); d[flag] = substr($0, RSTART + 9, RLENGTH - 10) }
			/^TSAPI_/ { split($0, kv, "="); f = tolower(substr(kv[1], 7)); gsub("_", "-", f); d[f] = kv[2] }
			END {
				printf "group commit %s (window %s, max rows %s, writers %s), %s database connections per instance",
					(d["group-commit"] == "" ? "true" : d["group-commit"]), d["group-commit-window"] == "" ? "0s" : d["group-commit-window"],
					d["group-commit-max-rows"], d["group-commit-writers"], d["db-max-open-conns"]
			}'
}

# paused_list: print the units that the run stopped, by host.
paused_list() {
	local pair
	if ((${#paused_units[@]} == 0)); then
		echo "none"
		return
	fi
	for pair in "${paused_units[@]}"; do
		printf '%s on %s\n' "${pair#* }" "${pair% *}"
	done | paste -sd, | sed 's/,/, /g'
}

# write_meta FILE STARTED LOAD-AT-START: describe the run as JSON for
# benchreport.
write_meta() {
	local commit
	commit=$(git -C "$top" rev-parse --short HEAD)
	[[ -z $(git -C "$top" status --porcelain -- api scripts ansible Makefile go.mod go.sum) ]] ||
		commit+=" with uncommitted changes"
	jq -n --arg commit "$commit" --arg started "$2" --arg finished "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		--argjson seconds "$((SECONDS - bench_start))" \
		--argjson cores "$(nproc)" \
		--arg memory "$(free -m | awk '/^Mem:/ { printf "%.1f GiB", $2 / 1024 }')" \
		--arg cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
		--arg kernel "$(uname -r)" \
		--arg load_start "$3" --arg load_end "$(cut -d' ' -f1-3 /proc/loadavg)" \
		--argjson testbeds "$(ip netns list 2>/dev/null | grep -c '^tb-' || true)" \
		--arg instance "${TESTBED_INSTANCE:-default}" \
		--arg duration "$duration" --arg warmup "$warmup" --arg levels "${levels[*]}" \
		--argjson rate "$rate" --argjson multi_rows "$multi_rows" --argjson growth_rows "$growth_rows" \
		--arg api "$(api_defaults)" \
		--arg paused "$(paused_list)" \
		'{commit: $commit, started: $started, finished: $finished, seconds: $seconds, cores: $cores,
			memory: $memory, cpu: $cpu, kernel: $kernel, load_start: $load_start, load_end: $load_end,
			testbeds: $testbeds, instance: $instance, duration: $duration, warmup: $warmup,
			levels: $levels, rate: $rate, multi_rows: $multi_rows, growth_rows: $growth_rows,
			api: $api, paused: $paused}' >"$1"
}

# cleanup: undo what the run changed, also after a failure. The restart
# runs in a subshell, so that its die cannot skip the paused units.
cleanup() {
	standalone_down
	if ((api_overridden)); then
		(api_override) || warn "the API instances may still run with the benchmark's variables; run TESTBED_INSTANCE=${TESTBED_INSTANCE:-} scripts/bench.sh again or restart them"
	fi
	units_resume
}

main() {
	require_root
	local started load_start level
	started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	load_start=$(cut -d' ' -f1-3 /proc/loadavg)
	log "benchmark started $started, load average $load_start, $(nproc) cores, about $points_total points of $duration"
	suite_init
	mapfile -t lb_hosts < <(suite_hosts loadbalancers)
	mapfile -t api_hosts < <(suite_hosts api)
	mapfile -t galera_nodes < <(suite_hosts galera)
	rm -f "$results"
	(cd "$top" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -o "$SUITE_WORK/dbbench" ./api/cmd/dbbench)
	host_ssh "${api_hosts[0]}" "cat > /usr/local/bin/dbbench && chmod 755 /usr/local/bin/dbbench" <"$SUITE_WORK/dbbench"
	trap cleanup EXIT

	background_pause
	standalone_down
	# A restart also resets the API's peak RSS, so it covers this run only.
	api_override

	log "1. GET /healthz through the VIP"
	warm_up -method GET -path /healthz
	for level in "${levels[@]}"; do
		measure healthz sweep "$level" '{}' -method GET -path /healthz
	done
	log "2. the database's own limit, from ${api_hosts[0]} through HAProxy"
	sweep_db db-single 1
	sweep_db db-multi "$multi_rows"
	log "3. POST /app, one commit per request"
	api_override TSAPI_GROUP_COMMIT=false
	sweep_api single
	measure single open-loop 64 "{\"rate\": $rate}" -rate "$rate"
	log "4. POST /app with group commit"
	api_override TSAPI_GROUP_COMMIT=true
	sweep_api group
	measure group open-loop 64 "{\"rate\": $rate}" -rate "$rate"
	log "5. POST /app with group commit on a standalone MariaDB"
	standalone_up
	api_override TSAPI_GROUP_COMMIT=true "TSAPI_DB_ADDR=$(host_address "${galera_nodes[-1]}"):3307"
	sweep_api standalone
	api_override
	standalone_down
	growth
	fill_table 0

	local meta=$SUITE_WORK/bench-meta.json
	write_meta "$meta" "$started" "$load_start"
	(cd "$top" && go run ./api/cmd/benchreport -in "$results" -meta "$meta" -out docs/benchmarks.md -images docs/img)
	log "wrote docs/benchmarks.md in $(minutes $((SECONDS - bench_start))), load average now $(cut -d' ' -f1-3 /proc/loadavg)"
}

main "$@"
