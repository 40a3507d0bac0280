#!/usr/bin/env bash
# Backup and restore drills on the local test hosts of the ha topology, in
# a testbed instance that up.sh booted and provisioned:
#
#   TESTBED_INSTANCE=backup scripts/testbed/up.sh
#   TESTBED_INSTANCE=backup scripts/backup-drills.sh [DRILL...]
#
# DRILL is a number; without one every drill runs, in this order:
#   1. Write N rows, take a full backup, write M more, wipe every node's data
#      and the backup node's local backups, restore from the second
#      location: exactly the rows of the backup on every node, the cluster
#      Synced and serving POSTs.
#   2. A full backup and two incrementals, with writes between them and
#      after the last one. Wipe and restore the chain: every row up to the
#      last incremental must be back, and none written after it.
#   3. Point in time: rows before and after a time T with a quiet gap of
#      over a second on each side; wipe, restore to T: exactly the rows with
#      created_at before T.
#   4. A backup truncated after its verification: the incremental taken on
#      it fails its verification (exit code, metric, journal), `verify`
#      reports it, and restore.yml rejects it while the cluster serves on.
#   5. The backup job under `env -i` (no PATH, no HOME) succeeds.
#   6. One node loses its data while the others run: restore-node.yml
#      rebuilds it from the latest backup and it rejoins by IST.
# Each drill prints the rows expected and found and the restore time. The
# last line counts the drills that passed and failed; the exit code is 1
# when one failed.
#
# The drills wipe the cluster, so they reject the default instance unless
# DRILLS_ON_DEFAULT_TESTBED=yes. Settings: DRILL_ROWS (N, default 200),
# DRILL_MORE_ROWS (M, default 100). Logs go to .testbed/instances/NAME/backup-drills/.
set -euo pipefail

# shellcheck source=scripts/testbed/lib.sh
source "$(dirname "$0")/testbed/lib.sh"
testbed_enter "$@"
cd "$TESTBED_TOP"
export TOPOLOGY=ha
export SUITE_WORK=${SUITE_WORK:-${TESTBED_INSTANCE_DIR:-$TESTBED_DIR}/backup-drills}
# shellcheck source=scripts/suite-lib.sh
source scripts/suite-lib.sh

readonly ROWS_N=${DRILL_ROWS:-200}
readonly ROWS_M=${DRILL_MORE_ROWS:-100}
readonly ALL_DRILLS=(1 2 3 4 5 6)
readonly TOOL=/usr/local/sbin/timestamp-backup
readonly BACKUP_DIR=/var/backups/timestamp
# The second location of these drills: a folder on the backup node that the
# wipes leave alone, like a mounted network share would be.
readonly COPY_DIR=/srv/timestamp-backup-copy
readonly METRICS=/var/lib/prometheus/node-exporter/timestamp_backup.prom

# --- helpers ------------------------------------------------------------------------

elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# galera_nodes: the Galera nodes in inventory order; the backup node is the
# last one (the backup role's default backup_host).
galera_nodes() { inventory_json "$SUITE_INVENTORY" | jq -r '.galera.hosts[]'; }

# write_rows PREFIX COUNT: POST COUNT events through the VIP with the keys
# PREFIX-1 ... and require every one acknowledged.
write_rows() {
	local prefix=$1 count=$2 acked
	"$SUITE_LOADGEN" -target "$(suite_service_url)" -requests "$count" -duration 0 -retries 5 \
		-concurrency 4 -quiet -key-prefix "$prefix" -acks "$SUITE_WORK/$prefix.acks" \
		>"$SUITE_WORK/$prefix.out" 2>&1 ||
		die "load generator $prefix failed: $(tail -n 3 "$SUITE_WORK/$prefix.out")"
	acked=$(wc -l <"$SUITE_WORK/$prefix.acks")
	((acked == count)) || die "$prefix: $acked of $count POSTs acknowledged"
}

# count_rows NODE [CONDITION]: rows of timestamp.events on NODE.
count_rows() {
	galera_sql "$1" "SELECT COUNT(*) FROM timestamp.events${2:+ WHERE $2}"
}

count_prefix() { count_rows "$1" "idempotency_key LIKE '$2-%'"; }

# backup_job TYPE: run one job of the backup node's systemd unit, as its
# timer would; returns the unit's result.
backup_job() {
	host_ssh "$BACKUP_NODE" systemctl start "timestamp-backup@$1.service"
}

# manifests: every manifest on the backup node, as a JSON array.
manifests() { host_ssh "$BACKUP_NODE" "$TOOL" list --json; }

latest_backup() { manifests | jq -c 'sort_by(.id) | last'; }

# total_rows MANIFEST_JSON: the row count its verification took.
total_rows() { jq -r '.rows["timestamp.events"]' <<<"$1"; }

# wipe_cluster: stop MariaDB on every Galera node and delete its data
# folder's contents, as a lost disk would.
wipe_cluster() {
	local node
	for node in "${GALERA_NODES[@]}"; do
		host_ssh "$node" systemctl stop mariadb
	done
	for node in "${GALERA_NODES[@]}"; do
		host_ssh "$node" find /var/lib/mysql -mindepth 1 -delete
	done
}

# run_playbook NAME PLAYBOOK ARGS...: run PLAYBOOK, log to NAME.log, and
# print the "... summary:" line it reports. Returns the playbook's result.
run_playbook() {
	local name=$1 playbook=$2 rc=0
	shift 2
	testbed_playbook "$SUITE_INVENTORY" "$playbook" "$@" >"$SUITE_WORK/$name.log" 2>&1 || rc=$?
	grep -o '[a-z]* summary: .*' "$SUITE_WORK/$name.log" | tail -n 1 || true
	return "$rc"
}

# summary_value SUMMARY KEY: the value of KEY=... in a summary line.
summary_value() { grep -o "$2=[^ \"]*" <<<"$1" | head -n 1 | cut -d= -f2-; }

# wait_synced_all: poll until every Galera node is Synced in a component of
# full size.
wait_synced_all() {
	local size
	galera_wait_synced "${GALERA_NODES[@]}"
	size=$(galera_status "${GALERA_NODES[0]}" wsrep_cluster_size)
	((size == ${#GALERA_NODES[@]})) || die "cluster size is $size, want ${#GALERA_NODES[@]}"
}

# check_post: poll until a POST through the VIP succeeds (HAProxy marks a
# restored node up after its rise checks), for at most 60 s. It adds a row.
check_post() {
	local deadline=$((SECONDS + 60))
	until curl -fsS --max-time 5 -X POST "$(suite_service_url)/app" >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "POST $(suite_service_url)/app still fails after 60 s"
		sleep 1
	done
}

# expect_rows NODE CONDITION WANT LABEL: require the count of CONDITION.
expect_rows() {
	local found
	found=$(count_rows "$1" "$2")
	[[ $found == "$3" ]] || die "$1: $4: found $found rows, want $3"
}

# record NUMBER NAME RESULT DETAIL: print and keep one drill's outcome.
record() {
	printf '%s %-14s %s  %s\n' "$1" "$2" "$3" "$4" >>"$SUITE_WORK/results"
	printf '    %s: %s\n' "$3" "$4"
}

# --- drills -------------------------------------------------------------------------

drill_1() {
	local a="${RUN}d1a" b="${RUN}d1b" backup id rows node summary found=()
	log "1. full backup, then wipe every node and the local backups, restore from $COPY_DIR"
	write_rows "$a" "$ROWS_N"
	backup_job full
	backup=$(latest_backup)
	id=$(jq -r .id <<<"$backup")
	[[ $(jq -r '.type + " " + .status' <<<"$backup") == "full verified" ]] ||
		die "backup $id is $(jq -r '.type + " " + .status' <<<"$backup"), want a verified full one"
	rows=$(total_rows "$backup")
	[[ $rows == "$(count_rows "${GALERA_NODES[0]}")" ]] ||
		die "backup $id counted $rows rows, but the cluster contains $(count_rows "${GALERA_NODES[0]}")"
	host_ssh "$BACKUP_NODE" test -f "$COPY_DIR/chains/$id/$id/manifest.json" ||
		die "backup $id was not copied to $COPY_DIR"
	write_rows "$b" "$ROWS_M"

	wipe_cluster
	host_ssh "$BACKUP_NODE" find "$BACKUP_DIR/chains" -mindepth 1 -delete
	summary=$(run_playbook drill-1-restore ansible/restore.yml -e "restore_source_dir=$COPY_DIR") ||
		die "restore.yml failed; see $SUITE_WORK/drill-1-restore.log"
	wait_synced_all
	for node in "${GALERA_NODES[@]}"; do
		expect_rows "$node" "idempotency_key LIKE '$a-%'" "$ROWS_N" "rows written before the backup"
		expect_rows "$node" "idempotency_key LIKE '$b-%'" 0 "rows written after the backup"
		found+=("$node=$(count_rows "$node")")
		[[ ${found[-1]} == "$node=$rows" ]] || die "$node contains ${found[-1]#*=} rows, but the backup $rows"
	done
	check_post
	record 1 "full" PASS "backup $id: rows expected $rows ($ROWS_N new, 0 of $ROWS_M later), found ${found[*]} (later rows 0); restore $(summary_value "$summary" restore_seconds) s, service down $(summary_value "$summary" down_seconds) s"
}

drill_2() {
	local a="${RUN}d2a" b="${RUN}d2b" c="${RUN}d2c" full inc1 inc2 rows node summary found=()
	log "2. full backup and two incrementals, then wipe and restore the chain"
	backup_job full
	full=$(latest_backup)
	write_rows "$a" "$ROWS_M"
	backup_job incremental
	inc1=$(latest_backup)
	write_rows "$b" "$ROWS_M"
	backup_job incremental
	inc2=$(latest_backup)
	write_rows "$c" "$ROWS_M"
	[[ $(jq -r '.type + " " + .parent' <<<"$inc1") == "incremental $(jq -r .id <<<"$full")" ]] ||
		die "the first incremental is $(jq -c '{id, type, parent}' <<<"$inc1"), want one on $(jq -r .id <<<"$full")"
	[[ $(jq -r '.type + " " + .parent + " " + .status' <<<"$inc2") == "incremental $(jq -r .id <<<"$inc1") verified" ]] ||
		die "the second incremental is $(jq -c '{id, type, parent, status}' <<<"$inc2"), want a verified one on $(jq -r .id <<<"$inc1")"
	rows=$(total_rows "$inc2")

	wipe_cluster
	summary=$(run_playbook drill-2-restore ansible/restore.yml) ||
		die "restore.yml failed; see $SUITE_WORK/drill-2-restore.log"
	[[ $(summary_value "$summary" backup) == "$(jq -r .id <<<"$inc2")" ]] ||
		die "restore.yml restored $(summary_value "$summary" backup), want the last incremental $(jq -r .id <<<"$inc2")"
	wait_synced_all
	for node in "${GALERA_NODES[@]}"; do
		expect_rows "$node" "idempotency_key LIKE '$a-%'" "$ROWS_M" "rows before the first incremental"
		expect_rows "$node" "idempotency_key LIKE '$b-%'" "$ROWS_M" "rows before the second incremental"
		expect_rows "$node" "idempotency_key LIKE '$c-%'" 0 "rows after the second incremental"
		found+=("$node=$(count_rows "$node")")
		[[ ${found[-1]} == "$node=$rows" ]] || die "$node contains ${found[-1]#*=} rows, but the last incremental $rows"
	done
	check_post
	record 2 "incremental" PASS "chain $(jq -r .id <<<"$full") + 2 incrementals: rows expected $rows ($ROWS_M + $ROWS_M new, 0 of $ROWS_M later), found ${found[*]}; restore $(summary_value "$summary" restore_seconds) s, service down $(summary_value "$summary" down_seconds) s"
}

drill_3() {
	local a="${RUN}d3a" b="${RUN}d3b" t t_text before after node summary found=()
	log "3. point in time: rows on both sides of T, then wipe and restore to T"
	backup_job full
	write_rows "$a" "$ROWS_N"
	# T is a whole second at least one second after the last acknowledged
	# write, and the next writes start 1.5 s after T. So no row's API time or
	# commit time is near T (docs/backup-restore.md, "Point in time").
	t=$(awk -v now="$EPOCHREALTIME" 'BEGIN { printf "%d", int(now) + 2 }')
	t_text=$(date -u -d "@$t" '+%Y-%m-%d %H:%M:%S')
	sleep "$(awk -v t="$t" -v now="$EPOCHREALTIME" 'BEGIN { printf "%.3f", t + 1.5 - now }')"
	write_rows "$b" "$ROWS_M"
	before=$(count_rows "${GALERA_NODES[0]}" "created_at < '$t_text'")
	after=$(count_rows "${GALERA_NODES[0]}" "created_at >= '$t_text'")
	((after >= ROWS_M)) || die "only $after rows after $t_text, want at least $ROWS_M"
	backup_job binlog

	wipe_cluster
	summary=$(run_playbook drill-3-restore ansible/restore.yml -e "restore_to='$t_text'") ||
		die "restore.yml failed; see $SUITE_WORK/drill-3-restore.log"
	wait_synced_all
	for node in "${GALERA_NODES[@]}"; do
		expect_rows "$node" "idempotency_key LIKE '$a-%'" "$ROWS_N" "rows written before T"
		expect_rows "$node" "idempotency_key LIKE '$b-%'" 0 "rows written after T"
		expect_rows "$node" "created_at < '$t_text'" "$before" "rows with created_at before T"
		expect_rows "$node" "created_at >= '$t_text'" 0 "rows with created_at at or after T"
		found+=("$node=$(count_rows "$node" "created_at < '$t_text'")/$(count_rows "$node" "created_at >= '$t_text'")")
	done
	check_post
	record 3 "point-in-time" PASS "T=$t_text: rows before T expected $before ($ROWS_N new), after T expected 0 of $after; found before/after ${found[*]}; restore $(summary_value "$summary" restore_seconds) s, service down $(summary_value "$summary" down_seconds) s"
}

drill_4() {
	local backup id stream rows_before rows_after started summary out
	log "4. a truncated backup fails verification and restore.yml rejects it"
	backup_job full
	backup=$(latest_backup)
	id=$(jq -r .id <<<"$backup")
	stream="$BACKUP_DIR/chains/$id/$id/backup.mbstream.zst"
	host_ssh "$BACKUP_NODE" "truncate --size=\$((\$(stat -c %s $stream) / 2)) $stream"

	if backup_job incremental 2>/dev/null; then
		die "the incremental job on the truncated backup $id succeeded"
	fi
	host_ssh "$BACKUP_NODE" grep -qxF "'timestamp_backup_last_run_success{type=\"incremental\"} 0'" "$METRICS" ||
		die "$METRICS does not show the failed incremental job"
	host_ssh "$BACKUP_NODE" journalctl --unit timestamp-backup@incremental.service --since -5min --no-pager |
		grep -q "corrupt or truncated" || die "the journal does not say why the incremental job failed"
	host_ssh "$BACKUP_NODE" systemctl reset-failed timestamp-backup@incremental.service
	[[ $(manifests | jq -r --arg id "$id" '.[] | select(.id == $id) | .status') == failed ]] ||
		die "backup $id is not marked failed"
	if out=$(host_ssh "$BACKUP_NODE" "$TOOL" verify "$id" 2>&1); then
		die "timestamp-backup verify $id succeeded on a truncated file"
	fi
	grep -q "corrupt or truncated" <<<"$out" || die "verify $id did not say why it failed: $out"

	rows_before=$(count_rows "${GALERA_NODES[0]}")
	started=$EPOCHREALTIME
	if summary=$(run_playbook drill-4-restore ansible/restore.yml -e "restore_backup=$id" -e restore_stop_cluster=true); then
		die "restore.yml restored the truncated backup $id"
	fi
	grep -q "No restore: .*status failed" "$SUITE_WORK/drill-4-restore.log" ||
		die "restore.yml did not give the reason; see $SUITE_WORK/drill-4-restore.log"
	wait_synced_all
	check_post
	rows_after=$(count_rows "${GALERA_NODES[0]}")
	((rows_after == rows_before + 1)) || die "rows changed from $rows_before to $rows_after (1 POST) around the rejected restore"
	record 4 "corrupt" PASS "backup $id truncated to half: incremental job failed (metric 0), verify failed, restore.yml rejected it in $(elapsed "$started") s; rows expected $rows_before + 1 POST, found $rows_after, cluster Synced"
}

drill_5() {
	local out backup started
	log "5. the backup jobs under env -i"
	started=$EPOCHREALTIME
	out=$(host_ssh "$BACKUP_NODE" env -i "$TOOL" full 2>&1) || die "env -i $TOOL full failed: $(tail -n 5 <<<"$out")"
	backup=$(latest_backup)
	[[ $(jq -r '.type + " " + .status' <<<"$backup") == "full verified" ]] ||
		die "the env -i backup is $(jq -c '{id, type, status}' <<<"$backup")"
	[[ $(total_rows "$backup") == "$(count_rows "${GALERA_NODES[0]}")" ]] ||
		die "the env -i backup counted $(total_rows "$backup") rows, but the cluster contains $(count_rows "${GALERA_NODES[0]}")"
	host_ssh "$BACKUP_NODE" grep -qxF "'timestamp_backup_last_run_success{type=\"full\"} 1'" "$METRICS" ||
		die "$METRICS does not show the successful full backup"
	out=$(host_ssh "$BACKUP_NODE" env -i "$TOOL" binlog 2>&1) || die "env -i $TOOL binlog failed: $(tail -n 5 <<<"$out")"
	record 5 "env -i" PASS "full backup $(jq -r .id <<<"$backup") and binlog copy under env -i in $(elapsed "$started") s: rows expected $(count_rows "${GALERA_NODES[0]}"), counted $(total_rows "$backup")"
}

drill_6() {
	local a="${RUN}d6a" b="${RUN}d6b" victim=${GALERA_NODES[1]} summary want found
	log "6. $victim loses its data while the others run; restore-node.yml rebuilds it"
	write_rows "$a" "$ROWS_N"
	backup_job full
	write_rows "$b" "$ROWS_M"
	host_ssh "$victim" systemctl stop mariadb
	host_ssh "$victim" find /var/lib/mysql -mindepth 1 -delete
	summary=$(run_playbook drill-6-restore ansible/restore-node.yml -e "restore_node=$victim") ||
		die "restore-node.yml failed; see $SUITE_WORK/drill-6-restore.log"
	wait_synced_all
	want=$(count_rows "${GALERA_NODES[0]}")
	expect_rows "$victim" "idempotency_key LIKE '$a-%'" "$ROWS_N" "rows written before the backup"
	expect_rows "$victim" "idempotency_key LIKE '$b-%'" "$ROWS_M" "rows written after the backup"
	found=$(count_rows "$victim")
	[[ $found == "$want" ]] || die "$victim contains $found rows, but ${GALERA_NODES[0]} $want"
	[[ $(summary_value "$summary" transfer) == IST ]] ||
		die "$victim caught up by $(summary_value "$summary" transfer), want IST; see $SUITE_WORK/drill-6-restore.log"
	check_post
	record 6 "node rebuild" PASS "$victim from backup $(summary_value "$summary" backup) + IST: rows expected $want ($ROWS_M after the backup), found $found; rebuild $(summary_value "$summary" rebuild_seconds) s, join $(summary_value "$summary" join_seconds) s"
}

# --- main ---------------------------------------------------------------------------

# setup: build the load generator, give the backup role its second
# location, and require a healthy cluster.
setup() {
	suite_init
	mapfile -t GALERA_NODES < <(galera_nodes)
	BACKUP_NODE=${GALERA_NODES[-1]}
	RUN=$(date -u +r%H%M%S)
	: >"$SUITE_WORK/results"
	log "applying the backup role with backup_copy_target=$COPY_DIR on $BACKUP_NODE"
	host_ssh "$BACKUP_NODE" install -d -m 0700 "$COPY_DIR"
	testbed_playbook "$SUITE_INVENTORY" ansible/site.yml --limit galera -e "backup_copy_target=$COPY_DIR" \
		>"$SUITE_WORK/setup.log" 2>&1 || die "site.yml failed; see $SUITE_WORK/setup.log"
	wait_synced_all
	check_post
}

# repair_cluster: after a failed drill, bring every node back for the next
# one: drop the maintenance files a stopped restore left, then let site.yml
# start and join the stopped nodes (galera-recover.yml first when no node
# runs a Primary component).
repair_cluster() {
	local node log="$SUITE_WORK/repair.log"
	warn "repairing the cluster for the next drill; see $log"
	for node in "${GALERA_NODES[@]}"; do
		host_ssh "$node" rm -f /var/lib/galera-health/maintenance || true
	done
	if ! testbed_playbook "$SUITE_INVENTORY" ansible/site.yml --limit galera -e "backup_copy_target=$COPY_DIR" >"$log" 2>&1; then
		testbed_playbook "$SUITE_INVENTORY" ansible/galera-recover.yml >>"$log" 2>&1 || true
		testbed_playbook "$SUITE_INVENTORY" ansible/site.yml --limit galera -e "backup_copy_target=$COPY_DIR" >>"$log" 2>&1 ||
			warn "the repair failed; the next drills will likely fail too"
	fi
}

main() {
	local drills=("$@") drill rc passed=0 failed=0
	require_root
	[[ -n ${TESTBED_INSTANCE:-} || ${DRILLS_ON_DEFAULT_TESTBED:-} == yes ]] ||
		die "the drills wipe the cluster: run them in an instance (TESTBED_INSTANCE=NAME), or set DRILLS_ON_DEFAULT_TESTBED=yes"
	((${#drills[@]} > 0)) || drills=("${ALL_DRILLS[@]}")
	for drill in "${drills[@]}"; do
		[[ " ${ALL_DRILLS[*]} " == *" $drill "* ]] || die "unknown drill '$drill'; the drills are ${ALL_DRILLS[*]}"
	done
	setup

	for drill in "${drills[@]}"; do
		local started=$EPOCHREALTIME
		# A subshell per drill: die ends the drill, not the suite. set -e
		# must be on inside it, which an `if ( ... )` would switch off.
		set +e
		(
			set -e
			"drill_$drill"
		)
		rc=$?
		set -e
		if ((rc == 0)); then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
			record "$drill" "drill $drill" FAIL "after $(elapsed "$started") s; see the ERROR above and $SUITE_WORK"
			repair_cluster
		fi
	done

	log "results"
	cat "$SUITE_WORK/results"
	printf '%d passed, %d failed\n' "$passed" "$failed"
	((failed == 0))
}

main "$@"
