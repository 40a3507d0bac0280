#!/usr/bin/env bash
# Measures the storage that timestamp.events takes per million events: the
# InnoDB table file, its zstd-compressed size (what a full backup stores for
# it), and the binary log that every Galera node writes for those rows.
# Rewrites the measured section of docs/storage.md.
#
# It runs its own throwaway MariaDB (Debian's mariadbd, binary logs on, the
# InnoDB settings of the galera role) on 127.0.0.1:STORAGE_DB_PORT with its
# data in build/storage/. The table comes from the API's own migration, and
# api/cmd/dbbench writes the rows with the API's INSERT.
#
# Settings: STORAGE_DB_PORT (default DEVDB_PORT, else 3309), STORAGE_ROWS
# (default 1000000), STORAGE_SINGLE_SECONDS (default 20: the run with one
# row per transaction).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
port=${STORAGE_DB_PORT:-${DEVDB_PORT:-3309}}
target_rows=${STORAGE_ROWS:-1000000}
single_seconds=${STORAGE_SINGLE_SECONDS:-20}
dir=$top/build/storage
data=$dir/data
sock=$dir/mysqld.sock
pidfile=$dir/mysqld.pid
page=docs/storage.md
password=storage-measurement

log() { printf 'storage: %s\n' "$*" >&2; }

die() {
	log "$*"
	exit 1
}

sql() { mariadb --no-defaults --socket="$sock" -u root --batch --skip-column-names "$@"; }

start_server() {
	local user_args=()
	[[ $EUID -eq 0 ]] && user_args=(--user=root)
	rm -rf "$dir"
	mkdir -p "$data"
	mariadb-install-db --no-defaults --datadir="$data" "${user_args[@]}" \
		--auth-root-authentication-method=socket --skip-test-db >"$dir/install.log" 2>&1 ||
		die "mariadb-install-db failed; see $dir/install.log"
	# The settings of templates/galera-cluster.cnf.j2 that change how rows
	# and binary logs are stored; wsrep itself adds nothing to either.
	setsid mariadbd --no-defaults --datadir="$data" --socket="$sock" --pid-file="$pidfile" \
		--port="$port" --bind-address=127.0.0.1 --skip-name-resolve "${user_args[@]}" \
		--log-error="$dir/mysqld.err" --default-time-zone=+00:00 \
		--innodb-buffer-pool-size=128M --innodb-log-file-size=128M --innodb-autoinc-lock-mode=2 \
		--innodb-flush-log-at-trx-commit=1 --log-bin="$data/mariadb-bin" --binlog-format=ROW \
		--server-id=1 </dev/null >>"$dir/mysqld.out" 2>&1 &
	local deadline=$((SECONDS + 60))
	until mariadb-admin --no-defaults --socket="$sock" -u root ping >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "mariadbd did not respond within 60 s; see $dir/mysqld.err"
		sleep 0.2
	done
}

stop_server() {
	[[ -s $pidfile ]] || return 0
	local pid
	pid=$(<"$pidfile")
	kill -TERM "$pid" 2>/dev/null || return 0
	# A clean shutdown writes every dirty page, so the files on disk hold
	# every row when they are measured.
	while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
}

create_database() {
	local name=$1
	sql <<SQL
CREATE DATABASE $name;
CREATE USER IF NOT EXISTS 'timestamp'@'127.0.0.1' IDENTIFIED BY '$password';
GRANT SELECT, INSERT, CREATE, ALTER, INDEX ON $name.* TO 'timestamp'@'127.0.0.1';
SQL
	sql "$name" <api/mariadb/migrations/0001_create_events.sql
}

binlog_bytes() {
	sql -e 'FLUSH BINARY LOGS' >/dev/null
	sql -e 'SHOW BINARY LOGS' | awk '{ sum += $2 } END { print sum + 0 }'
}

row_count() { sql -e "SELECT COUNT(*) FROM $1.events"; }

dbbench() {
	"$dir/dbbench" -db-addr "127.0.0.1:$port" -db-user timestamp -db-name "$1" \
		-concurrency 4 -rows "$2" -duration "$3" >/dev/null
}

# run_batched DB: write 128 rows per INSERT, as a full group-commit batch
# (TSAPI_GROUP_COMMIT_MAX_ROWS), until the table contains target_rows.
run_batched() {
	local db=$1
	while (($(row_count "$db") < target_rows)); do
		dbbench "$db" 128 15s
	done
}

# run_keyed DB: the same batches with a 36-character Idempotency-Key in each
# row, written by SQL because dbbench sends no key.
run_keyed() {
	local db=$1 statements=$(((target_rows + 127) / 128)) i
	for ((i = 0; i < statements; i++)); do
		printf "INSERT INTO events (created_at, request_token, idempotency_key, node)
			SELECT UTC_TIMESTAMP(6), RANDOM_BYTES(16), UUID(), 'dbbench' FROM seq_1_to_128;\n"
	done | sql "$db"
}

main() {
	command -v mariadbd >/dev/null || [[ -x /usr/sbin/mariadbd ]] || die "mariadbd is missing: apt-get install mariadb-server"
	command -v zstd >/dev/null || die "zstd is missing: apt-get install zstd"
	export PATH=$PATH:/usr/sbin
	mkdir -p "$dir"
	trap stop_server EXIT
	start_server
	log "MariaDB $(sql -e 'SELECT VERSION()') on 127.0.0.1:$port, data in $data"
	CGO_ENABLED=0 go build -o "$dir/dbbench.new" ./api/cmd/dbbench
	mv "$dir/dbbench.new" "$dir/dbbench"
	export TSAPI_DB_PASSWORD=$password

	declare -A rows binlog
	local db
	for db in batched single keyed; do
		create_database "$db"
	done

	sql -e 'RESET MASTER'
	log "batched: 128 rows per INSERT up to $target_rows rows"
	run_batched batched
	rows[batched]=$(row_count batched)
	binlog[batched]=$(binlog_bytes)

	sql -e 'RESET MASTER'
	log "single: one row per INSERT for $single_seconds s"
	dbbench single 1 "${single_seconds}s"
	rows[single]=$(row_count single)
	binlog[single]=$(binlog_bytes)

	sql -e 'RESET MASTER'
	log "keyed: 128 rows per INSERT with an Idempotency-Key, $target_rows rows"
	run_keyed keyed
	rows[keyed]=$(row_count keyed)
	binlog[keyed]=$(binlog_bytes)

	local version
	version=$(sql -e 'SELECT VERSION()')
	stop_server
	trap - EXIT

	local table
	table=$(
		printf '| run | rows | table file | per million rows | compressed (zstd -3) per million | binary log per million |\n'
		printf '|---|---|---|---|---|---|\n'
		for db in batched keyed single; do
			local file=$data/$db/events.ibd size compressed
			size=$(stat -c %s "$file")
			compressed=$(zstd -3 -q -c "$file" | wc -c)
			awk -v name="$db" -v r="${rows[$db]}" -v s="$size" -v c="$compressed" -v b="${binlog[$db]}" 'BEGIN {
				m = 1048576; k = 1e6 / r
				label["batched"] = "128 rows per INSERT, no key"
				label["keyed"] = "128 rows per INSERT, 36-character key"
				label["single"] = "1 row per INSERT, no key"
				bl = (name == "keyed") ? "not comparable (SQL-generated)" : sprintf("%.1f MiB", b * k / m)
				printf "| %s | %d | %.1f MiB | %.1f MiB | %.1f MiB | %s |\n", label[name], r, s / m, s * k / m, c * k / m, bl
			}'
		done
	)
	local section
	section=$(
		# shellcheck disable=SC2016 # the backquotes are Markdown
		printf 'Measured by `scripts/storage.sh` on %s: MariaDB %s, %s cores, %s.\n\n' \
			"$(date -u +%Y-%m-%d)" "$version" "$(nproc)" "$(uname -r)"
		printf '%s\n' "$table"
	)
	printf '%s\n' "$section"
	awk -v section="$section" '
		/<!-- BEGIN storage.sh measured -->/ { print; print section; skip = 1; next }
		/<!-- END storage.sh measured -->/ { skip = 0 }
		!skip' "$page" >"$page.tmp"
	mv "$page.tmp" "$page"
	log "updated $page"
}

main "$@"
