#!/usr/bin/env bash
# Fault suite: every single failure a reviewer would try, each under
# sustained load through the VIP, on the local test hosts of the ha topology
# (`make up` first). After each scenario the suite waits until the cluster
# is whole again, then reads every Galera node directly and checks that
# every acknowledged request is there exactly once and that all nodes hold
# the same rows.
#
# Usage: scripts/faults.sh [SCENARIO...]   (default: all, in order)
#   writer-power-cut  node-isolated  node-wiped  quorum-loss  full-outage
#   api-hosts  lb-power-cut  idle-connections  node-desync
#
# Settings: FAULTS_RATE (POSTs per second, default 30), FAULTS_REPORT (the
# Markdown table is also written here, default .testbed/suite/faults.md).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export TOPOLOGY=ha
# shellcheck source=scripts/testbed/lib.sh
source scripts/testbed/lib.sh
testbed_enter "$@"
# shellcheck source=scripts/suite-lib.sh
source scripts/suite-lib.sh

rate=${FAULTS_RATE:-30}
report=${FAULTS_REPORT:-$SUITE_WORK/faults.md}
# A careful client: the same key, up to 10 retries, backoff from 200 ms to
# 2 s, which rides out a failover of several seconds.
careful=(-retries 10 -backoff 200ms -max-backoff 2s)
# A strict client: no retry at all, so any error the fault causes shows.
strict=(-retries 0)

rows=()
failures=0
galera_nodes=()
load_balancers=()
vip=""

# --- cluster state -------------------------------------------------------

# vip_holders: print the load balancers that hold the VIP, one per line.
# It reads each host's addresses in its network namespace with nsenter,
# not over SSH, so a check takes milliseconds and a dead host counts as
# holding nothing at once instead of after an SSH time-out.
vip_holders() {
	local lb pid
	for lb in "${load_balancers[@]}"; do
		pid=$(host_pid "$lb" 2>/dev/null) || continue
		if nsenter --target "$pid" --net ip -4 -o addr show 2>/dev/null | grep -q "inet $vip/"; then
			echo "$lb"
		fi
	done
}

# haproxy_galera_state LB: print "server status" for each Galera server as
# HAProxy on LB sees it.
haproxy_galera_state() {
	echo 'show stat' | host_ssh "$1" socat stdio /run/haproxy/admin.sock |
		awk -F, '$1 == "galera" && $2 != "FRONTEND" && $2 != "BACKEND" { print $2, $18 }'
}

# galera_writer: print the Galera node that takes writes: the first server
# HAProxy on the VIP holder reports UP (single-writer, in inventory order).
galera_writer() {
	local holder
	holder=$(vip_holders | head -n1)
	[[ -n $holder ]] || die "no load balancer holds the VIP"
	haproxy_galera_state "$holder" | awk '$2 == "UP" { print $1; exit }'
}

# cluster_whole: succeed when every Galera node is Synced in a primary
# component of full size and every HAProxy sees every Galera server UP.
cluster_whole() {
	local node lb size
	for node in "${galera_nodes[@]}"; do
		[[ $(galera_status "$node" wsrep_local_state_comment 2>/dev/null) == Synced ]] || return 1
		size=$(galera_status "$node" wsrep_cluster_size 2>/dev/null) || return 1
		[[ $size == "${#galera_nodes[@]}" ]] || return 1
	done
	for lb in "${load_balancers[@]}"; do
		[[ $(haproxy_galera_state "$lb" | grep -vc ' UP$') == 0 ]] || return 1
	done
	[[ $(vip_holders | wc -l) == 1 ]]
}

# wait_whole TIMEOUT: poll until cluster_whole, and print the seconds it took.
wait_whole() {
	local timeout=$1 started=$EPOCHREALTIME
	local deadline=$((SECONDS + timeout))
	until cluster_whole; do
		((SECONDS < deadline)) || return 1
		sleep 0.5
	done
	awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

# wait_rows NAME N: poll the writer until it contains N rows of load NAME, so
# a fault strikes while writes are flowing.
wait_rows() {
	local writer count deadline=$((SECONDS + 60))
	while :; do
		# Ask whichever node HAProxy sends writes to now: the fault may
		# have taken the previous one away.
		writer=$(galera_writer 2>/dev/null) || writer=
		count=0
		[[ -z $writer ]] || count=$(load_rows "$writer" "$1")
		((count >= $2)) && return 0
		((SECONDS < deadline)) || die "load $1 wrote fewer than $2 rows in 60 s (last count $count on ${writer:-no writer})"
		sleep 0.2
	done
}

# --- running a scenario --------------------------------------------------

# scenario NAME CLIENT FUNCTION: run FUNCTION under load and record one row
# of the results. CLIENT is careful or strict. FUNCTION injects the fault
# and repairs it; the time to whole is measured from its return.
scenario() {
	local name=$1 client=$2 fn=$3 whole missing=0 duplicates=0 check verdict=pass
	local started=$SECONDS
	log "scenario $name ($client client, $rate POSTs/s)"
	cluster_whole || die "the cluster is not whole before $name; run scripts/testbed/status.sh"
	local -n flags=$client
	load_start "$name" -rate "$rate" -concurrency 16 "${flags[@]}"
	wait_rows "$name" $((rate * 2))

	if ! "$fn" "$name"; then
		verdict=fail
	fi
	whole=$(wait_whole 240) || {
		verdict=fail
		whole=never
	}
	load_stop "$name" | sed 's/^/    /'

	if check=$(check_acks "$name" "${galera_nodes[@]}"); then
		:
	else
		verdict=fail
	fi
	printf '%s\n' "$check"
	missing=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "missing") s += $(i + 1) } END { print s + 0 }' <<<"$check")
	duplicates=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "duplicates") s += $(i + 1) } END { print s + 0 }' <<<"$check")

	local json=$SUITE_WORK/$name.json sent ok s503 other retries gap
	sent=$(jq .sent "$json")
	ok=$(jq .succeeded "$json")
	s503=$(jq '.by_status["503"] // 0' "$json")
	other=$(jq '[.by_status | to_entries[] | select(.key != "201" and .key != "503") | .value] | add // 0' "$json")
	retries=$(jq .retries "$json")
	gap="$(load_seconds "$name" longest_gap) s"
	if [[ $client == strict ]] && (($(load_non_2xx "$name") > 0)); then
		log "$name: $(load_non_2xx "$name") attempts failed, and this scenario allows none"
		verdict=fail
	fi
	[[ $verdict == pass ]] || failures=$((failures + 1))
	rows+=("| $name | $sent | $ok | $s503 | $other | $retries | $missing | $duplicates | $gap | ${whole} s | $verdict |")
	log "$name: $verdict ($((SECONDS - started)) s)"
}

# --- the scenarios -------------------------------------------------------

# 1. The node taking writes loses power, comes back and rejoins by IST.
writer_power_cut() {
	local writer
	writer=$(galera_writer)
	log "power-cutting the writer $writer"
	host_kill "$writer"
	wait_rows "$1" $((rate * 6))
	host_start "$writer"
	host_wait_ssh "$writer" 120 || return 1
	galera_wait_synced "$writer"
	rejoined_by_ist "$writer"
}

# rejoined_by_ist NODE: succeed when NODE's last join was an IST, not an SST.
rejoined_by_ist() {
	local log
	log=$(host_ssh "$1" journalctl -u mariadb --no-pager -b 2>/dev/null || true)
	if grep -q 'IST received' <<<"$log"; then
		log "$1 rejoined by IST"
		return 0
	fi
	if grep -qi 'SST succeeded\|State transfer.*complete' <<<"$log" && ! grep -q 'IST' <<<"$log"; then
		log "$1 rejoined by a full SST, not IST"
		return 1
	fi
	log "$1: no IST line in its log; last wsrep lines:"
	grep -i 'wsrep\|ist' <<<"$log" | tail -n 5 | sed 's/^/    /'
	return 1
}

# 2. A node is cut off for longer than the eviction timeouts, then returns.
node_isolated() {
	local writer
	writer=$(galera_writer)
	log "cutting $writer off the network for 25 s (longer than evs.inactive_timeout, 15 s by default)"
	host_link_down "$writer"
	local until=$((SECONDS + 25))
	while ((SECONDS < until)); do
		sleep 1
	done
	host_link_up "$writer"
	galera_wait_synced "$writer"
}

# 3. A node's data is wiped; it rejoins by full SST while load continues,
# and its donor returns to service.
node_wiped() {
	local node
	node=${galera_nodes[-1]}
	log "wiping the data of $node"
	host_ssh "$node" "systemctl stop mariadb && rm -rf /var/lib/mysql/* && systemctl start mariadb" || return 1
	galera_wait_synced "${galera_nodes[@]}"
	local sst
	sst=$(host_ssh "$node" journalctl -u mariadb --no-pager -b | grep -c 'SST\|State transfer' || true)
	((sst > 0)) || {
		log "$node shows no state transfer in its log"
		return 1
	}
	log "$node rejoined by SST; every node Synced"
}

# 4. Two Galera hosts lose power: the survivor has no quorum and accepts
# nothing; the service resumes when they return.
quorum_loss() {
	local survivor=${galera_nodes[0]} a=${galera_nodes[1]} b=${galera_nodes[2]}
	log "power-cutting $a and $b; $survivor alone has no quorum"
	host_kill "$a"
	host_kill "$b"
	local deadline=$((SECONDS + 30)) status
	until status=$(galera_status "$survivor" wsrep_cluster_status 2>/dev/null) && [[ $status == non-Primary ]]; do
		((SECONDS < deadline)) || {
			log "$survivor is still '$status' 30 s after losing two peers"
			return 1
		}
		sleep 0.5
	done
	log "$survivor is non-Primary; checking that it accepts no write"
	if printf 'INSERT INTO timestamp.events (created_at, request_token, node) VALUES (UTC_TIMESTAMP(6), RANDOM_BYTES(16), "fault-suite");\n' |
		host_ssh "$survivor" mariadb 2>/dev/null; then
		log "$survivor accepted a write without quorum"
		return 1
	fi
	local code headers
	headers=$(curl -s -o /dev/null -D - -X POST "$(suite_service_url)/app")
	code=$(awk 'NR == 1 { print $2 }' <<<"$headers")
	[[ $code == 503 ]] || {
		log "POST without quorum returned $code, want 503"
		return 1
	}
	grep -qi '^retry-after: [0-9]' <<<"$headers" || {
		log "the 503 without quorum has no Retry-After header"
		return 1
	}
	host_start "$a"
	host_start "$b"
	host_wait_ssh "$a" 120 && host_wait_ssh "$b" 120 || return 1
	galera_wait_synced "${galera_nodes[@]}" || recover_cluster
}

# 5. Every Galera host loses power; the recovery playbook restarts the
# cluster from the most advanced node.
full_outage() {
	local node
	log "power-cutting every Galera host"
	for node in "${galera_nodes[@]}"; do host_kill "$node"; done
	for node in "${galera_nodes[@]}"; do host_start "$node"; done
	for node in "${galera_nodes[@]}"; do host_wait_ssh "$node" 120 || return 1; done
	local how
	how=$(galera_recover_after_outage "${galera_nodes[@]}") || return 1
	log "the cluster was $how"
}

recover_cluster() {
	log "running ansible/galera-recover.yml"
	testbed_playbook "$SUITE_INVENTORY" ansible/galera-recover.yml >"$SUITE_WORK/recover.log" || {
		tail -n 30 "$SUITE_WORK/recover.log"
		return 1
	}
	galera_wait_synced "${galera_nodes[@]}"
}

# 6. One API host loses power; after it is back, the other is stopped
# gracefully, which must cost no request at all.
api_hosts() {
	local api_hosts
	mapfile -t api_hosts < <(suite_hosts api)
	log "power-cutting ${api_hosts[0]}"
	host_kill "${api_hosts[0]}"
	wait_rows "$1" $((rate * 6))
	host_start "${api_hosts[0]}"
	host_wait_ssh "${api_hosts[0]}" 120 || return 1
	wait_for_api "${api_hosts[0]}"

	log "graceful stop of ${api_hosts[1]} under a strict client"
	local graceful=$1-graceful
	load_start "$graceful" -rate "$rate" -concurrency 16 "${strict[@]}"
	wait_rows "$graceful" "$rate"
	host_ssh "${api_hosts[1]}" systemctl stop 'timestamp-api@*' || return 1
	wait_rows "$graceful" $((rate * 4))
	host_ssh "${api_hosts[1]}" systemctl start timestamp-api@8080 || return 1
	wait_for_api "${api_hosts[1]}"
	load_stop "$graceful" | sed 's/^/    /'
	check_acks "$graceful" "${galera_nodes[@]}" || return 1
	local failed
	failed=$(load_non_2xx "$graceful")
	log "graceful stop: $failed failed attempts out of $(jq .attempts "$SUITE_WORK/$graceful.json")"
	((failed == 0))
}

# wait_for_api HOST: poll until HAProxy on every load balancer sees the
# host's API instance UP, which needs /readyz to pass its checks (the
# firewall keeps the API port closed to anything but the load balancers).
wait_for_api() {
	local lb deadline=$((SECONDS + 90))
	for lb in "${load_balancers[@]}"; do
		until echo 'show stat' | host_ssh "$lb" socat stdio /run/haproxy/admin.sock 2>/dev/null |
			awk -F, -v s="$1-8080" '$1 == "api" && $2 == s && $18 == "UP" { found = 1 } END { exit !found }'; do
			((SECONDS < deadline)) || {
				log "HAProxy on $lb does not see $1-8080 UP after 90 s"
				return 1
			}
			sleep 0.5
		done
	done
}

# 7. The load balancer holding the VIP loses power: the VIP moves. No check
# may see two holders; zero is allowed only while the backup takes over.
lb_power_cut() {
	local holder holders count checks=0 zero_since=""
	holder=$(vip_holders)
	log "power-cutting $holder, which holds the VIP"
	host_kill "$holder"
	local cut=$SECONDS deadline=$((SECONDS + 20))
	while ((SECONDS < deadline)); do
		holders=$(vip_holders)
		count=$(grep -c . <<<"$holders" || true)
		checks=$((checks + 1))
		((count <= 1)) || {
			log "split brain: $holders hold the VIP"
			return 1
		}
		if ((count == 0)); then
			((SECONDS - cut <= 10)) || {
				log "no load balancer holds the VIP $((SECONDS - cut)) s after the cut"
				return 1
			}
		fi
		[[ $count == 1 && -z $zero_since ]] && zero_since=$((SECONDS - cut)) && break
		sleep 0.1
	done
	[[ -n $zero_since ]] || return 1
	log "the VIP moved to $holders within $zero_since s ($checks checks, never two holders)"
	host_start "$holder"
	host_wait_ssh "$holder" 120 || return 1
	deadline=$((SECONDS + 30))
	while ((SECONDS < deadline)); do
		count=$(vip_holders | grep -c . || true)
		((count <= 1)) || {
			log "split brain after $holder came back"
			return 1
		}
		sleep 0.2
	done
}

# 8. No traffic for longer than every idle timeout, then a burst: only 2xx.
idle_connections() {
	local name=$1 idle=130 ext
	load_stop "$name" >/dev/null
	check_acks "$name" "${galera_nodes[@]}" || return 1
	for ext in acks json out prefix; do
		mv "$SUITE_WORK/$name.$ext" "$SUITE_WORK/$name-before.$ext"
	done
	log "idle for $idle s (HAProxy's database idle timeout is 120 s, the API's connection lifetime 60 s)"
	local until=$((SECONDS + idle))
	while ((SECONDS < until)); do
		sleep 5
	done
	log "burst of 300 POSTs"
	echo "$name-burst-$(date +%s%N)" >"$SUITE_WORK/$name-burst.prefix"
	"$SUITE_LOADGEN" -target "$(suite_service_url)" -requests 300 -concurrency 32 -duration 0 \
		-retries 0 -key-prefix "$(load_prefix "$name-burst")" -acks "$SUITE_WORK/$name-burst.acks" \
		-report "$SUITE_WORK/$name-burst.json" -quiet | sed 's/^/    /'
	check_acks "$name-burst" "${galera_nodes[@]}" || return 1
	(($(load_non_2xx "$name-burst") == 0))
	load_start "$name" -rate "$rate" -concurrency 16 "${strict[@]}"
}

# 9. An operator desyncs the writer, then puts it in maintenance: HAProxy
# moves writes away without an error reaching a client, and back after.
node_desync() {
	local writer other
	writer=$(galera_writer)
	log "SET GLOBAL wsrep_desync = ON on $writer"
	printf 'SET GLOBAL wsrep_desync = ON;\n' | host_ssh "$writer" mariadb || return 1
	wait_writer_not "$writer" || return 1
	other=$(galera_writer)
	log "writes moved to $other"
	wait_rows "$1" $((rate * 6))
	printf 'SET GLOBAL wsrep_desync = OFF;\n' | host_ssh "$writer" mariadb || return 1
	wait_writer_is "$writer" || return 1

	log "maintenance file on $writer"
	host_ssh "$writer" touch /var/lib/galera-health/maintenance || return 1
	wait_writer_not "$writer" || return 1
	wait_rows "$1" $((rate * 12))
	host_ssh "$writer" rm -f /var/lib/galera-health/maintenance || return 1
	wait_writer_is "$writer"
}

wait_writer_not() {
	local deadline=$((SECONDS + 30))
	until [[ $(galera_writer) != "$1" ]]; do
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

wait_writer_is() {
	local deadline=$((SECONDS + 30))
	until [[ $(galera_writer) == "$1" ]]; do
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

main() {
	require_root
	suite_init
	mapfile -t galera_nodes < <(suite_hosts galera)
	mapfile -t load_balancers < <(suite_hosts loadbalancers)
	vip=$(inventory_json "$SUITE_INVENTORY" | inventory_service_address)
	local all=(writer-power-cut node-isolated node-wiped quorum-loss full-outage
		api-hosts lb-power-cut idle-connections node-desync)
	local chosen=("$@")
	((${#chosen[@]})) || chosen=("${all[@]}")

	local name
	for name in "${chosen[@]}"; do
		case $name in
		writer-power-cut) scenario "$name" careful writer_power_cut ;;
		node-isolated) scenario "$name" careful node_isolated ;;
		node-wiped) scenario "$name" careful node_wiped ;;
		quorum-loss) scenario "$name" careful quorum_loss ;;
		full-outage) scenario "$name" careful full_outage ;;
		api-hosts) scenario "$name" careful api_hosts ;;
		lb-power-cut) scenario "$name" careful lb_power_cut ;;
		idle-connections) scenario "$name" strict idle_connections ;;
		node-desync) scenario "$name" strict node_desync ;;
		*) die "unknown scenario $name; see the usage at the top of $0" ;;
		esac
	done

	{
		printf '| scenario | sent | 201 | 503 | other | client retries | acknowledged but missing | duplicates | longest gap without a success | time to whole | result |\n'
		printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
		printf '%s\n' "${rows[@]}"
	} | tee "$report"
	log "the fault suite took $SECONDS s"
	printf '%d passed, %d failed\n' $((${#rows[@]} - failures)) "$failures"
	((failures == 0))
}

main "$@"
