#!/usr/bin/env bash
# Benchmarks of the HA path, on the local test hosts of the ha topology
# (`make up` first): HAProxy on the VIP, two API hosts, three Galera nodes.
# Every variant runs in this one run, so their ratios hold on a noisy
# machine. Results: docs/benchmarks.md and its charts in docs/img/.
#
#   1. GET /healthz through the VIP: the ceiling without a database
#   2. dbbench on api1: the same INSERT through HAProxy's database frontend,
#      one row per transaction, and BENCH_MULTI_ROWS rows per INSERT
#   3. POST /app, one INSERT and commit per request (group commit off)
#   4. POST /app with group commit
#   5. POST /app with group commit on one standalone MariaDB (on the last
#      Galera host, port 3307, wsrep off): the cost of synchronous
#      replication
#   then an open-loop run at BENCH_RATE, and POST /app and GET /app?limit=100
#   with the table empty and holding BENCH_GROWTH_ROWS rows.
#
# Settings: BENCH_DURATION per point (default 10s), BENCH_LEVELS (default
# "1 8 32 64 128 256"), BENCH_RATE (default 500), BENCH_MULTI_ROWS (default
# 32), BENCH_GROWTH_ROWS (default 1000000).
#
# NOTE: this harness has not completed a run on the test hosts yet, so
# docs/benchmarks.md does not exist; expect to fix it on its first run.
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
read -r -a levels <<<"${BENCH_LEVELS:-1 8 32 64 128 256}"
rate=${BENCH_RATE:-500}
multi_rows=${BENCH_MULTI_ROWS:-32}
growth_rows=${BENCH_GROWTH_ROWS:-1000000}
results=$SUITE_WORK/bench.jsonl
api_hosts=()
galera_nodes=()

# measure SERIES SECTION CONCURRENCY LOADGEN-FLAGS...: one loadgen point
# through the VIP, appended to the results.
measure() {
	local series=$1 section=$2 concurrency=$3
	shift 3
	printf '    %-44s c=%-4s ' "$series" "$concurrency" >&2
	local report
	report=$("$SUITE_LOADGEN" -target "$(suite_service_url)" -concurrency "$concurrency" \
		-duration "$duration" -retries 0 -quiet -report /dev/stdout "$@" | sed -n '/^{/,/^}/p')
	jq -r '"\(.throughput | floor)/s p99 \(.latency_p99) \(.by_status | tostring)"' <<<"$report" >&2
	jq -c --arg s "$series" --arg sec "$section" --argjson c "$concurrency" \
		--argjson rss "$(peak_rss)" \
		'{series: $s, section: $sec, concurrency: $c, report: ., peak_rss_mib: $rss}' \
		<<<"$report" >>"$results"
}

# peak_rss: print the largest peak RSS (VmHWM, MiB) of the API processes.
peak_rss() {
	local host max=0 kib
	for host in "${api_hosts[@]}"; do
		kib=$(host_ssh "$host" "grep -h VmHWM /proc/\$(pgrep -d' ' -x timestamp-api | cut -d' ' -f1)/status" 2>/dev/null |
			awk '{ print $2 }') || kib=0
		((${kib:-0} > max)) && max=$kib
	done
	awk -v k="$max" 'BEGIN { printf "%.1f", k / 1024 }'
}

# api_override [VAR=VALUE...]: restart every API instance with these
# variables over its environment file (none: back to the file alone), and
# wait until HAProxy can use them again.
api_override() {
	local host
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
	for host in "${api_hosts[@]}"; do
		local deadline=$((SECONDS + 60))
		until curl -fsS -o /dev/null "http://$(host_address "$host"):8080/readyz" 2>/dev/null; do
			((SECONDS < deadline)) || die "the API on $host is not ready after the restart"
			sleep 0.2
		done
	done
	suite_wait_ready
}

sweep_api() {
	local series=$1 level
	for level in "${levels[@]}"; do
		measure "$series" sweep "$level" -key-prefix ""
	done
}

sweep_db() {
	local rows=$1 level report
	for level in "${levels[@]}"; do
		printf '    %-44s c=%-4s ' "database/sql, $rows rows per INSERT" "$level" >&2
		report=$(host_ssh "${api_hosts[0]}" "set -a && . /etc/timestamp-api/env && TSAPI_DB_PASSWORD=\$(cat /etc/timestamp-api/db-password) /usr/local/bin/dbbench -concurrency $level -rows $rows -duration $duration")
		jq -r '"\(.throughput | floor) rows/s p99 \(.latency_p99)"' <<<"$report" >&2
		jq -c --arg s "database/sql, $rows rows per INSERT (rows/s)" --argjson c "$level" \
			'{series: $s, section: "sweep", concurrency: $c, report: .}' <<<"$report" >>"$results"
	done
}

# standalone_up: start a MariaDB without wsrep on the last Galera host, port
# 3307, with the same InnoDB durability as the cluster nodes, reachable from
# the API hosts.
standalone_up() {
	local node=${galera_nodes[-1]} host
	log "standalone MariaDB on $node:3307"
	host_ssh "$node" "mkdir -p /var/lib/mysql-bench && chown mysql: /var/lib/mysql-bench &&
		( [ -d /var/lib/mysql-bench/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql-bench >/dev/null ) &&
		systemd-run --unit=mariadb-bench --property=User=mysql /usr/sbin/mariadbd --no-defaults \
			--datadir=/var/lib/mysql-bench --socket=/run/mysqld/bench.sock --port=3307 \
			--bind-address=$(host_address "$node") --innodb-buffer-pool-size=128M \
			--innodb-flush-log-at-trx-commit=1 --sync-binlog=0 --skip-name-resolve &&
		nft insert rule inet filter input tcp dport 3307 accept comment bench"
	local deadline=$((SECONDS + 60))
	until host_ssh "$node" mariadb-admin --socket=/run/mysqld/bench.sock ping >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "the standalone MariaDB did not start"
		sleep 0.5
	done
	local password
	password=$(host_ssh "${api_hosts[0]}" cat /etc/timestamp-api/db-password)
	printf "CREATE DATABASE IF NOT EXISTS timestamp;
		CREATE USER IF NOT EXISTS 'timestamp'@'%%' IDENTIFIED BY '%s';
		GRANT SELECT, INSERT, CREATE, ALTER, INDEX ON timestamp.* TO 'timestamp'@'%%';\n" "$password" |
		host_ssh "$node" mariadb --socket=/run/mysqld/bench.sock
}

standalone_down() {
	local node=${galera_nodes[-1]}
	host_ssh "$node" "systemctl stop mariadb-bench; rm -rf /var/lib/mysql-bench;
		nft -a list chain inet filter input | awk '/comment \"bench\"/ { print \$NF }' |
		xargs -r -n1 nft delete rule inet filter input handle" || true
}

# fill_table N: make timestamp.events hold N rows, inserted on the writer
# in chunks of 100000 so that no write set is huge.
fill_table() {
	local writer=${galera_nodes[0]} n=$1 done_rows=0 chunk
	printf 'TRUNCATE TABLE timestamp.events;\n' | host_ssh "$writer" mariadb
	while ((done_rows < n)); do
		chunk=$((n - done_rows < 100000 ? n - done_rows : 100000))
		printf "INSERT INTO timestamp.events (created_at, request_token, node)
			SELECT UTC_TIMESTAMP(6), RANDOM_BYTES(16), 'bench-fill' FROM seq_1_to_%d;\n" "$chunk" |
			host_ssh "$writer" mariadb
		done_rows=$((done_rows + chunk))
	done
}

growth() {
	local n series
	for n in 0 "$growth_rows"; do
		log "table holding $n rows"
		fill_table "$n"
		galera_wait_synced "${galera_nodes[@]}"
		for series in "POST /app" "GET /app?limit=100"; do
			local path=/app method=POST
			[[ $series == GET* ]] && path='/app?limit=100' method=GET
			printf '    %-44s rows=%-8s ' "$series" "$n" >&2
			local report
			report=$("$SUITE_LOADGEN" -target "$(suite_service_url)" -concurrency 64 -duration "$duration" \
				-retries 0 -quiet -key-prefix "" -method "$method" -path "$path" -report /dev/stdout | sed -n '/^{/,/^}/p')
			jq -r '"\(.throughput | floor)/s p99 \(.latency_p99)"' <<<"$report" >&2
			jq -c --arg s "$series" --argjson rows "$n" \
				'{series: $s, section: "growth", concurrency: 64, rows: $rows, report: .}' <<<"$report" >>"$results"
		done
	done
}

main() {
	require_root
	suite_init
	mapfile -t api_hosts < <(suite_hosts api)
	mapfile -t galera_nodes < <(suite_hosts galera)
	rm -f "$results"
	(cd "$top" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -o "$SUITE_WORK/dbbench" ./api/cmd/dbbench)
	host_ssh "${api_hosts[0]}" "cat > /usr/local/bin/dbbench && chmod 755 /usr/local/bin/dbbench" <"$SUITE_WORK/dbbench"
	trap 'standalone_down; api_override' EXIT

	log "1. GET /healthz through the VIP"
	for level in "${levels[@]}"; do
		measure "GET /healthz (no database)" sweep "$level" -method GET -path /healthz -key-prefix ""
	done
	log "2. the database's own limit, from ${api_hosts[0]} through HAProxy"
	sweep_db 1
	sweep_db "$multi_rows"
	log "3. POST /app, one commit per request"
	api_override TSAPI_GROUP_COMMIT=false
	sweep_api "POST /app, one commit per request"
	log "4. POST /app with group commit"
	api_override TSAPI_GROUP_COMMIT=true
	sweep_api "POST /app, group commit"
	measure "POST /app, group commit" open-loop 64 -rate "$rate" -key-prefix ""
	log "5. POST /app with group commit on a standalone MariaDB"
	standalone_up
	api_override TSAPI_GROUP_COMMIT=true "TSAPI_DB_ADDR=$(host_address "${galera_nodes[-1]}"):3307"
	sweep_api "POST /app, group commit, standalone MariaDB"
	standalone_down
	api_override
	log "growth: POST and GET with 0 and $growth_rows rows"
	growth
	fill_table 0

	local meta=$SUITE_WORK/bench-meta.json
	jq -n --arg commit "$(git -C "$top" rev-parse --short HEAD)$(git -C "$top" diff --quiet || echo '+changes')" \
		--arg date "$(date -u +%Y-%m-%dT%H:%MZ)" \
		--arg machine "$(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB, $(uname -r)" \
		--arg topology "ha on local test hosts: 2 HAProxy + keepalived, 2 API, 3 Galera (all containers on this machine)" \
		--arg settings "duration $duration per point, levels ${levels[*]}, open loop $rate/s at c=64, $multi_rows rows per multi-row INSERT, growth $growth_rows rows" \
		--arg load "api/cmd/loadgen on the machine itself, through the VIP, no client retries" \
		'{commit: $commit, date: $date, machine: $machine, topology: $topology, settings: $settings, load: $load}' >"$meta"
	(cd "$top" && go run ./api/cmd/benchreport -in "$results" -meta "$meta" -out docs/benchmarks.md -images docs/img)
	log "wrote docs/benchmarks.md"
}

main "$@"
