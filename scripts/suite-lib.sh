# shellcheck shell=bash
# Functions shared by the suites that run on the local test hosts (e2e,
# faults, backup drills): load in the background, reading every Galera node
# directly, and checking that no acknowledged write is missing. Source it
# after scripts/testbed/lib.sh.

SUITE_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUITE_WORK=${SUITE_WORK:-$TESTBED_INSTANCE_DIR/suite}
SUITE_LOADGEN=$SUITE_WORK/loadgen
SUITE_INVENTORY=${SUITE_INVENTORY:-$SUITE_TOP/ansible/inventories/vagrant/${TOPOLOGY:-ha}.yml}

# suite_init: build the load generator for this machine and make the work
# folder.
suite_init() {
	mkdir -p "$SUITE_WORK"
	SUITE_SERVICE_URL=$(suite_service_url)
	(cd "$SUITE_TOP" && go build -o "$SUITE_LOADGEN" ./api/cmd/loadgen)
}

# suite_service_url: print the base URL that clients use (the VIP).
# ansible-inventory takes about a second, so the URL is kept.
suite_service_url() {
	if [[ -z ${SUITE_SERVICE_URL:-} ]]; then
		SUITE_SERVICE_URL="http://$(inventory_json "$SUITE_INVENTORY" | inventory_service_address)"
	fi
	printf '%s\n' "$SUITE_SERVICE_URL"
}

# suite_hosts GROUP: print the names of the inventory's hosts in GROUP.
suite_hosts() {
	inventory_json "$SUITE_INVENTORY" | jq -r --arg g "$1" '.[$g].hosts // [] | .[]' | sort
}

# load_start NAME ARGS...: start the load generator in the background with
# its acknowledged keys in $SUITE_WORK/NAME.acks and its report in
# NAME.json. ARGS are loadgen flags (for example -rate 20). Its keys start
# with a prefix new to this run (load_prefix NAME prints it), so rows left
# by an earlier run on the same hosts never count.
load_start() {
	local name=$1
	shift
	rm -f "$SUITE_WORK/$name".{acks,json,out,pid,prefix}
	echo "$name-$(date +%s%N)" >"$SUITE_WORK/$name.prefix"
	"$SUITE_LOADGEN" -target "$(suite_service_url)" -duration 30m -quiet \
		-key-prefix "$(load_prefix "$name")" -acks "$SUITE_WORK/$name.acks" -report "$SUITE_WORK/$name.json" \
		"$@" >"$SUITE_WORK/$name.out" 2>&1 &
	echo $! >"$SUITE_WORK/$name.pid"
}

load_prefix() { cat "$SUITE_WORK/$1.prefix"; }

# load_stop NAME: end the load generator's run (requests already started
# finish) and print its summary.
load_stop() {
	local pid
	pid=$(<"$SUITE_WORK/$1.pid")
	kill -TERM "$pid" 2>/dev/null || true
	# Poll rather than wait: a caller in a pipeline runs in a subshell, for
	# which the load generator is not a child. Its retries are bounded, so
	# it exits within a minute.
	local deadline=$((SECONDS + 120))
	while kill -0 "$pid" 2>/dev/null; do
		((SECONDS < deadline)) || die "load generator $1 (pid $pid) did not exit within 120 s of SIGTERM"
		sleep 0.1
	done
	cat "$SUITE_WORK/$1.out"
}

# load_value NAME FIELD: print a field of the load generator's JSON report.
load_value() { jq -r ".$2" "$SUITE_WORK/$1.json"; }

# load_seconds NAME FIELD: print a duration field of the load generator's
# report (a Go duration such as 1m2.5s, 812ms or 950µs) in seconds, with one
# decimal.
load_seconds() {
	jq -r ".$2" "$SUITE_WORK/$1.json" | awk '{
		d = $0; s = 0
		if (match(d, /^[0-9.]+h/)) { s += substr(d, 1, RLENGTH - 1) * 3600; d = substr(d, RLENGTH + 1) }
		if (match(d, /^[0-9.]+m[^s]/)) { s += substr(d, 1, RLENGTH - 2) * 60; d = substr(d, RLENGTH) }
		if (d ~ /ms$/) s += d / 1000
		else if (d ~ /(µs|us)$/) s += d / 1000000
		else if (d ~ /ns$/) s += d / 1000000000
		else if (d ~ /s$/) s += d + 0
		printf "%.1f\n", s
	}'
}

# load_non_2xx NAME: print the number of attempts that got no 2xx.
load_non_2xx() {
	jq '[.by_status | to_entries[] | select(.key | test("^2") | not) | .value] | add // 0' \
		"$SUITE_WORK/$1.json"
}

# galera_sql NODE SQL: run SQL on a Galera node as its root user (unix
# socket), with wsrep_sync_wait so that the read sees every write set the
# node has received.
galera_sql() {
	printf 'SET SESSION wsrep_sync_wait = 1;\n%s;\n' "$2" | host_ssh "$1" mariadb -N -B
}

# load_rows NODE NAME: print how many rows of load NAME the Galera node
# NODE contains, or 0 when the node does not return a count.
load_rows() {
	local count
	count=$(galera_sql "$1" "SELECT COUNT(*) FROM timestamp.events
		WHERE idempotency_key LIKE '$(load_prefix "$2")-%'" 2>/dev/null) || count=0
	[[ $count =~ ^[0-9]+$ ]] || count=0
	echo "$count"
}

# galera_status NODE VARIABLE: print one wsrep status value of a node.
galera_status() {
	printf "SHOW GLOBAL STATUS LIKE '%s';\n" "$2" | host_ssh "$1" mariadb -N -B | cut -f2
}

# galera_wait_synced NODE...: poll until each node reports Synced in a
# primary component of full size.
galera_wait_synced() {
	local node deadline=$((SECONDS + ${GALERA_SYNC_TIMEOUT:-180})) state
	for node in "$@"; do
		until state=$(galera_status "$node" wsrep_local_state_comment 2>/dev/null) &&
			[[ $state == Synced ]]; do
			((SECONDS < deadline)) || die "$node is not Synced after ${GALERA_SYNC_TIMEOUT:-180} s (state: ${state:-unreachable})"
			sleep 0.5
		done
	done
}

# check_acks NAME NODE...: prove that every key the load generator NAME
# got a 2xx for is on every NODE exactly once, and that all NODEs hold the
# same rows. Prints one line per node and returns non-zero on any loss,
# duplicate or divergence.
check_acks() {
	local name=$1 node failed=0 reference=""
	shift
	local acked="$SUITE_WORK/$name.acked"
	[[ -f $SUITE_WORK/$name.acks ]] || {
		printf '    no list of acknowledged keys for %s: the load generator did not finish\n' "$name"
		return 1
	}
	cut -d' ' -f1 "$SUITE_WORK/$name.acks" | sort >"$acked"
	for node in "$@"; do
		local rows="$SUITE_WORK/$name.$node.rows" keys="$SUITE_WORK/$name.$node.keys"
		galera_sql "$node" "SELECT id, created_at, idempotency_key FROM timestamp.events
			WHERE idempotency_key LIKE '$(load_prefix "$name")-%' ORDER BY id" >"$rows"
		cut -f3 "$rows" | sort >"$keys"
		local missing duplicates
		missing=$(comm -23 "$acked" <(sort -u "$keys") | wc -l)
		duplicates=$(uniq -d "$keys" | wc -l)
		printf '    %-5s rows %6d  acknowledged %6d  missing %d  duplicates %d\n' \
			"$node" "$(wc -l <"$keys")" "$(wc -l <"$acked")" "$missing" "$duplicates"
		((missing == 0 && duplicates == 0)) || failed=1
		if [[ -z $reference ]]; then
			reference=$rows
		elif ! cmp -s "$reference" "$rows"; then
			printf '    %s differs from %s\n' "$node" "${reference##*.rows}"
			diff "$reference" "$rows" | head -5
			failed=1
		fi
	done
	return "$failed"
}

# suite_wait_ready [TIMEOUT]: poll the service's /readyz through the VIP
# until it returns 2xx, for at most TIMEOUT seconds (default 120).
suite_wait_ready() {
	local url deadline=$((SECONDS + ${1:-120}))
	url="$(suite_service_url)/readyz"
	until curl -fsS --max-time 2 -o /dev/null "$url" 2>/dev/null; do
		((SECONDS < deadline)) || die "$url did not answer 2xx within ${1:-120} s"
		sleep 0.5
	done
}

# galera_recover_after_outage NODE...: bring the cluster back after every
# node lost power, and print how it came back. Galera's pc.recovery restores
# the last primary component by itself once every member is back with its
# saved view (gvwstate.dat, which only a clean shutdown removes). As soon as
# any node reports a Primary component, that restore has happened and the
# function waits for every node to be Synced. Only when no node is Primary
# within GALERA_AUTO_RECOVERY seconds (default 60) does it run
# ansible/galera-recover.yml, which refuses to run beside a Primary
# component.
galera_recover_after_outage() {
	local node started=$SECONDS deadline=$((SECONDS + ${GALERA_AUTO_RECOVERY:-60})) status
	while ((SECONDS < deadline)); do
		for node in "$@"; do
			status=$(galera_status "$node" wsrep_cluster_status 2>/dev/null) || continue
			if [[ $status == Primary ]]; then
				galera_wait_synced "$@"
				echo "restored by Galera's pc.recovery ($node Primary after $((SECONDS - started)) s)"
				return 0
			fi
		done
		sleep 1
	done
	testbed_playbook "$SUITE_INVENTORY" "$SUITE_TOP/ansible/galera-recover.yml" >"$SUITE_WORK/recover.log" || {
		tail -n 30 "$SUITE_WORK/recover.log" >&2
		return 1
	}
	galera_wait_synced "$@"
	echo "recovered by ansible/galera-recover.yml (no Primary component after ${GALERA_AUTO_RECOVERY:-60} s)"
}
