#!/usr/bin/env bash
# End-to-end suite on the local test hosts of the ha topology, which
# `make up` must have booted and provisioned. Each check prints its figures
# and the suite stops at the first failure.
#
#   1. POST through the VIP returns 201 and the row is on every Galera node.
#   2. A second site.yml run changes nothing.
#   3. The Galera rolling restart runs under a steady trickle of POSTs
#      without one failed request.
#   4. The API rolling deploy, likewise.
#   5. Every Galera host is stopped, one after the other, under load;
#      galera-recover.yml brings the cluster back from the most advanced
#      node with every acknowledged row.
#
# Settings: E2E_RATE (POSTs per second of the trickle, default 20).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export TOPOLOGY=ha
# shellcheck source=scripts/testbed/lib.sh
source scripts/testbed/lib.sh
testbed_enter "$@"
# shellcheck source=scripts/suite-lib.sh
source scripts/suite-lib.sh

rate=${E2E_RATE:-20}
results=()

result() {
	results+=("$(printf '%-28s %s' "$1" "$2")")
	printf '    %s\n' "$2"
}

check_post_replicates() {
	log "1. POST through the VIP, then read the row on every Galera node"
	local url body id node count
	url=$(suite_service_url)
	body=$(curl -fsS -X POST "$url/app") || die "POST $url/app failed"
	id=$(jq -r .id <<<"$body")
	[[ $id =~ ^[0-9]+$ ]] || die "POST $url/app returned $body, not an event"
	for node in $(suite_hosts galera); do
		count=$(galera_sql "$node" "SELECT COUNT(*) FROM timestamp.events WHERE id = $id")
		[[ $count == 1 ]] || die "event $id is on $node $count times, expected once"
	done
	result "post replicates" "event $id is on every Galera node: $body"
}

check_idempotent_converge() {
	log "2. second run of site.yml"
	local out changed
	out=$(testbed_playbook "$SUITE_INVENTORY" ansible/site.yml | tee "$SUITE_WORK/site-second-run.log" | tail -n 30) ||
		die "the second site.yml run failed; see $SUITE_WORK/site-second-run.log"
	changed=$(grep -oE 'changed=[0-9]+' <<<"$out" | awk -F= '{ sum += $2 } END { print sum + 0 }')
	[[ $changed == 0 ]] || {
		grep -B1 -E '^changed:' "$SUITE_WORK/site-second-run.log" | head -20
		die "second site.yml run changed $changed tasks, want 0"
	}
	result "second converge" "changed=0 on every host"
}

# under_trickle NAME PLAYBOOK: run PLAYBOOK while the load generator sends
# $rate POSTs per second, then require that every attempt got a 2xx.
under_trickle() {
	local name=$1 playbook=$2 started non2xx
	load_start "$name" -rate "$rate" -concurrency 8 -retries 0
	started=$SECONDS
	testbed_playbook "$SUITE_INVENTORY" "$playbook" >"$SUITE_WORK/$name.playbook.log" ||
		{
			tail -n 40 "$SUITE_WORK/$name.playbook.log"
			load_stop "$name"
			die "$playbook failed"
		}
	load_stop "$name" >/dev/null
	non2xx=$(load_non_2xx "$name")
	check_acks "$name" $(suite_hosts galera) || die "$name: acknowledged rows missing or diverging"
	result "$name" "$(printf '%s in %d s: %s POSTs acknowledged, %s attempts without 2xx, longest gap %s s' \
		"$playbook" $((SECONDS - started)) "$(load_value "$name" succeeded)" "$non2xx" "$(load_seconds "$name" longest_gap)")"
	((non2xx == 0)) || {
		jq . "$SUITE_WORK/$name.json"
		die "$name: $non2xx requests failed during $playbook"
	}
}

check_recovery() {
	log "5. stop every Galera host, then ansible/galera-recover.yml"
	local node nodes started
	nodes=$(suite_hosts galera)
	load_start recovery -rate "$rate" -concurrency 8 -retries 0
	# Let writes be acknowledged before the outage: poll the first node
	# until it contains some of this run's rows.
	local first deadline=$((SECONDS + 60))
	first=$(head -n1 <<<"$nodes")
	until (($(load_rows "$first" recovery) >= 40)); do
		((SECONDS < deadline)) || die "no write acknowledged within 60 s before the outage"
		sleep 0.2
	done
	# Stopped one after the other, the nodes leave the cluster in turn and
	# the last one holds the newest rows; none of them can then rebuild a
	# primary component by itself, so only the playbook can bring the
	# cluster back, from that last node.
	for node in $nodes; do host_stop "$node"; done
	load_stop recovery >/dev/null

	started=$SECONDS
	for node in $nodes; do host_start "$node"; done
	for node in $nodes; do host_wait_ssh "$node" 120 || die "$node did not come back"; done
	testbed_playbook "$SUITE_INVENTORY" ansible/galera-recover.yml >"$SUITE_WORK/recover.playbook.log" || {
		tail -n 40 "$SUITE_WORK/recover.playbook.log"
		die "galera-recover.yml failed"
	}
	# shellcheck disable=SC2086
	galera_wait_synced $nodes
	suite_wait_ready
	# shellcheck disable=SC2086
	check_acks recovery $nodes || die "recovery lost acknowledged rows"
	local after
	after=$(curl -fsS -o /dev/null -w '%{http_code}' -X POST "$(suite_service_url)/app")
	[[ $after == 201 ]] || die "POST after recovery returned $after, want 201"
	result "full outage recovery" "$(load_value recovery succeeded) acknowledged rows all present on every node; serving again $((SECONDS - started)) s after the hosts were started"
}

main() {
	require_root
	suite_init
	check_post_replicates
	check_idempotent_converge
	log "3. Galera rolling restart under $rate POSTs/s"
	under_trickle rolling-restart ansible/galera-rolling-restart.yml
	log "4. API rolling deploy under $rate POSTs/s"
	under_trickle rolling-deploy ansible/api-rolling-deploy.yml
	check_recovery

	printf '\ne2e results\n'
	printf '  %s\n' "${results[@]}"
	printf '%d passed, 0 failed\n' "${#results[@]}"
}

main "$@"
