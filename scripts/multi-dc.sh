#!/usr/bin/env bash
# Multi-datacenter suite on the local test hosts of the multi-dc topology
# (`make up TOPOLOGY=multi-dc` first): sites dc1 and dc2 with two Galera
# nodes each, and dc3 with the arbitrator, joined by a router that adds the
# WAN delays of the inventory's testbed_wan_links.
#
# Usage: scripts/multi-dc.sh [TEST...]   (default: all, in this order)
#   latency      POST /app latency with the sites 0 ms apart, then with
#                delays on the WAN links: each commit costs one group round
#                trip (see group_round_trip)
#   site-loss    every host of dc2 cut off under load: dc1 and the arbitrator
#                keep a quorum and writes continue after the eviction. Then
#                the site returns: its hosts are reconnected, its Galera
#                nodes one after the other, and each rejoins by IST, from a
#                donor in dc2 once one is Synced there. No acknowledged
#                write may be missing.
#   partition    the arbitrator's site dc3 cut off, then dc1 and dc2 cut
#                from each other while both still reach dc3, then with dc2
#                cut from dc3 as well, then every site alone: never two
#                primary components, a site without one returns 503, and
#                the rows converge after healing
#
# Two clients run during the faults: one in front of dc1 that tries the
# VIPs in the order dc1, dc2, and one in front of dc2 that tries dc2 first.
# That is how a client with a list of site VIPs behaves.
#
# Settings: MULTI_DC_RATE (POSTs per second of each client, default 10),
# MULTI_DC_REPORT (the Markdown results, default .testbed/suite/multi-dc.md).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export TOPOLOGY=multi-dc
# shellcheck source=scripts/testbed/lib.sh
source scripts/testbed/lib.sh
testbed_enter "$@"
# shellcheck source=scripts/suite-lib.sh
source scripts/suite-lib.sh

rate=${MULTI_DC_RATE:-10}
report=${MULTI_DC_REPORT:-$SUITE_WORK/multi-dc.md}
# The careful client of the fault suite: the same key, up to 10 retries,
# backoff from 200 ms to 2 s, which rides out a stall of several seconds.
careful=(-retries 10 -backoff 200ms -max-backoff 2s -concurrency 16)
# Seconds a partition lasts: longer than evs.inactive_timeout (15 s), after
# which every member has evicted the peers it cannot reach.
partition_seconds=25

json=""
galera_nodes=()
garbd_hosts=()
load_balancers=()
declare -A site_vip site_nodes site_hosts
site_loss_failed=0
latency_rows=()
fault_rows=()
failures=0

# --- inventory --------------------------------------------------------------

load_inventory() {
	local site lb
	json=$(inventory_json "$SUITE_INVENTORY")
	mapfile -t galera_nodes < <(jq -r '.galera.hosts // [] | .[]' <<<"$json")
	mapfile -t garbd_hosts < <(jq -r '.garbd.hosts // [] | .[]' <<<"$json")
	mapfile -t load_balancers < <(jq -r '.loadbalancers.hosts // [] | .[]' <<<"$json")
	for site in dc1 dc2 dc3; do
		site_hosts[$site]=$(jq -r --arg s "$site" '._meta.hostvars | to_entries[]
			| select(.value.datacenter == $s) | .key' <<<"$json" | sort | tr '\n' ' ')
		site_nodes[$site]=$(printf '%s\n' "${galera_nodes[@]}" |
			grep -Fx -f <(tr ' ' '\n' <<<"${site_hosts[$site]}") | tr '\n' ' ' || true)
	done
	for lb in "${load_balancers[@]}"; do
		site=$(hostvar "$lb" datacenter)
		site_vip[$site]=$(hostvar "$lb" keepalived_vip)
	done
	[[ -n ${site_vip[dc1]:-} && -n ${site_vip[dc2]:-} && -n ${site_hosts[dc3]} ]] ||
		die "$SUITE_INVENTORY is not the multi-dc layout: sites dc1 and dc2 with a VIP each, and dc3"
}

hostvar() { jq -r --arg h "$1" --arg v "$2" '._meta.hostvars[$h][$v] // empty' <<<"$json"; }

site_of() { hostvar "$1" datacenter; }

members_total() { echo $((${#galera_nodes[@]} + ${#garbd_hosts[@]})); }

# --- cluster state ------------------------------------------------------------

# node_wsrep NODE: print "cluster_status cluster_size local_state members"
# of a Galera node, members being wsrep_incoming_addresses. It enters the
# host with nsenter, so it also reads a node that is cut off.
node_wsrep() {
	host_exec "$1" mariadb -N -B -e "SHOW GLOBAL STATUS WHERE Variable_name IN
		('wsrep_cluster_status', 'wsrep_cluster_size', 'wsrep_local_state_comment',
		'wsrep_incoming_addresses')" 2>/dev/null |
		awk -F'\t' '{ v[$1] = $2 } END {
			printf "%s %s %s %s\n", v["wsrep_cluster_status"], v["wsrep_cluster_size"],
				v["wsrep_local_state_comment"], (v["wsrep_incoming_addresses"] == "" ? "-" : v["wsrep_incoming_addresses"])
		}'
}

# vip_holders SITE: print the load balancers of SITE that hold its VIP.
vip_holders() {
	local lb pid
	for lb in "${load_balancers[@]}"; do
		[[ $(site_of "$lb") == "$1" ]] || continue
		pid=$(host_pid "$lb" 2>/dev/null) || continue
		if nsenter --target "$pid" --net ip -4 -o addr show 2>/dev/null | grep -q "inet ${site_vip[$1]}/"; then
			echo "$lb"
		fi
	done
}

# haproxy_galera_down LB: print the Galera servers that HAProxy on LB does
# not see UP.
haproxy_galera_down() {
	echo 'show stat' | host_ssh "$1" socat stdio /run/haproxy/admin.sock |
		awk -F, '$1 == "galera" && $2 != "FRONTEND" && $2 != "BACKEND" && $18 != "UP" { print $2 }'
}

# cluster_whole: succeed when every Galera node is Synced in a primary
# component of every member (arbitrator included), every HAProxy reports
# every Galera server UP, and each full site's VIP has exactly one holder.
cluster_whole() {
	local node lb site status size state _
	for node in "${galera_nodes[@]}"; do
		read -r status size state _ < <(node_wsrep "$node") || return 1
		[[ $status == Primary && $size == "$(members_total)" && $state == Synced ]] || return 1
	done
	for lb in "${load_balancers[@]}"; do
		[[ -z $(haproxy_galera_down "$lb" 2>/dev/null || echo unreachable) ]] || return 1
	done
	for site in dc1 dc2; do
		[[ $(vip_holders "$site" | wc -l) == 1 ]] || return 1
	done
}

# wait_whole TIMEOUT: poll until cluster_whole, and print the seconds it took.
wait_whole() {
	local started=$EPOCHREALTIME deadline=$((SECONDS + $1))
	until cluster_whole; do
		((SECONDS < deadline)) || return 1
		sleep 0.5
	done
	awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

# no_split_brain: succeed unless two Galera nodes are Primary in components
# that do not know each other: node A Primary whose members lack B, and B
# Primary whose members lack A. A view change that one node installs a
# moment before the other still passes, because one of the two lists the
# other. Prints the offending pair.
no_split_brain() {
	local node status _ members address
	local -A primary_members=() node_address=()
	for node in "${galera_nodes[@]}"; do
		node_address[$node]="$(hostvar "$node" private_ip):3306"
		read -r status _ _ members < <(node_wsrep "$node") || continue
		[[ $status == Primary ]] && primary_members[$node]=$members
	done
	local a b
	for a in "${!primary_members[@]}"; do
		for b in "${!primary_members[@]}"; do
			[[ $a < "$b" ]] || continue
			address=${node_address[$b]}
			[[ ,${primary_members[$a]}, == *",$address,"* ]] && continue
			address=${node_address[$a]}
			[[ ,${primary_members[$b]}, == *",$address,"* ]] && continue
			printf '%s (members %s) and %s (members %s) are both Primary\n' \
				"$a" "${primary_members[$a]}" "$b" "${primary_members[$b]}"
			return 1
		done
	done
}

# site_primary SITE: print how many of SITE's Galera nodes are Primary,
# and the largest component size that one of them reports (0 for none).
site_primary() {
	local node count=0 largest=0 status size _
	for node in ${site_nodes[$1]}; do
		read -r status size _ < <(node_wsrep "$node") || continue
		if [[ $status == Primary ]]; then
			count=$((count + 1))
			((size > largest)) && largest=$size
		fi
	done
	echo "$count $largest"
}

# wait_rows NAME N NODE: poll NODE until it contains N rows of load NAME.
wait_rows() {
	local count deadline=$((SECONDS + 90))
	while :; do
		count=$(load_rows "$3" "$1")
		((count >= $2)) && return 0
		((SECONDS < deadline)) || die "load $1 wrote fewer than $2 rows on $3 in 90 s (last count $count)"
		sleep 0.2
	done
}

# --- clients and probes -------------------------------------------------------

# clients_start NAME: start the two clients NAME-dc1 (VIPs dc1, dc2) and
# NAME-dc2 (VIPs dc2, dc1), then wait until both have written.
clients_start() {
	load_start "$1-dc1" -target "http://${site_vip[dc1]},http://${site_vip[dc2]}" -rate "$rate" "${careful[@]}"
	load_start "$1-dc2" -target "http://${site_vip[dc2]},http://${site_vip[dc1]}" -rate "$rate" "${careful[@]}"
	wait_rows "$1-dc1" $((rate * 2)) "${galera_nodes[0]}"
	wait_rows "$1-dc2" $((rate * 2)) "${galera_nodes[0]}"
}

# clients_stop NAME: stop both clients and print their summaries.
clients_stop() {
	load_stop "$1-dc1" | sed 's/^/    dc1 client: /'
	load_stop "$1-dc2" | sed 's/^/    dc2 client: /'
}

# probe_start NAME: start a list of probe acknowledgements, checked like a
# client's by check_acks NAME.
probe_start() {
	rm -f "$SUITE_WORK/$1".{acks,prefix}
	echo "$1-$(date +%s%N)" >"$SUITE_WORK/$1.prefix"
	: >"$SUITE_WORK/$1.acks"
	probe_count=0
	probe_code=
}

# probe NAME SITE: send one POST to SITE's VIP alone, without retry, and
# set probe_code to its status. A 503 without Retry-After becomes
# 503-no-retry-after, and no response at all "none". An acknowledged probe
# goes to the list of NAME. It sets a variable instead of printing,
# because a command substitution would run it in a subshell, which would
# lose the count that makes each key new.
probe() {
	local key headers body
	probe_count=$((probe_count + 1))
	key="$(load_prefix "$1")-$2-$probe_count"
	headers=$(mktemp)
	body=$(curl -s -m 6 -D "$headers" -H "Idempotency-Key: $key" -X POST "http://${site_vip[$2]}/app") || body=
	probe_code=$(awk 'NR == 1 { print $2 }' "$headers")
	if [[ $probe_code == 201 ]]; then
		printf '%s %s\n' "$key" "$(jq -r .id <<<"$body")" >>"$SUITE_WORK/$1.acks"
	elif [[ $probe_code == 503 ]] && ! grep -qi '^retry-after:' "$headers"; then
		probe_code=503-no-retry-after
	fi
	rm -f "$headers"
	probe_code=${probe_code:-none}
}

# check_all NAME...: run check_acks for each load or probe list NAME on
# every Galera node. The last line it prints is the totals of missing and
# duplicate keys, "MISSING DUPLICATES", and it fails on any.
check_all() {
	local name out missing=0 duplicates=0 status=0
	for name in "$@"; do
		if ! out=$(check_acks "$name" "${galera_nodes[@]}"); then
			status=1
		fi
		printf '%s\n' "$out" | sed "s/^/    $name: /"
		missing=$((missing + $(awk '{ for (i = 1; i <= NF; i++) if ($i == "missing") s += $(i + 1) } END { print s + 0 }' <<<"$out")))
		duplicates=$((duplicates + $(awk '{ for (i = 1; i <= NF; i++) if ($i == "duplicates") s += $(i + 1) } END { print s + 0 }' <<<"$out")))
	done
	echo "$missing $duplicates"
	return "$status"
}

# client_figures NAME: print "sent 201 503 other retries gap" summed over
# the two clients of NAME, the gap being the longer of the two.
client_figures() {
	local gap
	gap=$(printf '%s\n' "$(load_seconds "$1-dc1" longest_gap)" "$(load_seconds "$1-dc2" longest_gap)" | sort -n | tail -n1)
	jq -rs --arg gap "$gap s" '
		[(map(.sent) | add), (map(.succeeded) | add),
		 (map(.by_status["503"] // 0) | add),
		 (map([.by_status | to_entries[] | select(.key != "201" and .key != "503") | .value] | add // 0) | add),
		 (map(.retries) | add), $gap] | @tsv' \
		"$SUITE_WORK/$1-dc1.json" "$SUITE_WORK/$1-dc2.json"
}

# fault_row NAME WHAT VERDICT MISSING DUPLICATES WHOLE [LOAD]: add a
# results row with the figures of the clients of LOAD (default NAME), or
# none when LOAD is "-".
fault_row() {
	local sent=- ok=- s503=- other=- retries=- gap=-
	if [[ ${7:-$1} != - ]]; then
		IFS=$'\t' read -r sent ok s503 other retries gap < <(client_figures "${7:-$1}")
	fi
	fault_rows+=("| $1 | $2 | $sent | $ok | $s503 | $other | $retries | $4 | $5 | $gap | $6 | $3 |")
	[[ $3 == pass ]] || failures=$((failures + 1))
	log "$1: $3"
}

# --- 1. commit latency against the WAN's round-trip time ----------------------

# latency_point LABEL SITE: POST /app through SITE's VIP, one request at a
# time, and print "p50 p90 p99" in milliseconds.
latency_point() {
	local name="latency-$RANDOM"
	echo "$name-$(date +%s%N)" >"$SUITE_WORK/$name.prefix"
	"$SUITE_LOADGEN" -target "http://${site_vip[$2]}" -concurrency 1 -requests 20 -duration 0 \
		-retries 0 -key-prefix "$(load_prefix "$name")-warm" -quiet >/dev/null
	"$SUITE_LOADGEN" -target "http://${site_vip[$2]}" -concurrency 1 -requests 150 -duration 0 \
		-retries 0 -key-prefix "$(load_prefix "$name")" -report "$SUITE_WORK/$name.json" -quiet >/dev/null
	(($(load_non_2xx "$name") == 0)) || die "latency point '$1': $(load_non_2xx "$name") requests failed"
	jq -r '[.latency_p50, .latency_p90, .latency_p99] | map(
		if test("ms$") then rtrimstr("ms") | tonumber
		elif test("µs$") then rtrimstr("µs") | tonumber / 1000
		else rtrimstr("s") | tonumber * 1000 end | . * 10 | round / 10) | @tsv' "$SUITE_WORK/$name.json"
}

# set_wan DC1_DC2 DC1_DC3 DC2_DC3 [JITTER...]: set the three round-trip
# times in milliseconds (and jitters, default 0).
set_wan() {
	wan_set_link dc1 dc2 "$1" "${4:-0}"
	wan_set_link dc1 dc3 "$2" "${5:-0}"
	wan_set_link dc2 dc3 "$3" "${6:-0}"
}

# restore_wan: set every link back to the inventory's testbed_wan_links.
restore_wan() {
	local a b rtt jitter
	while read -r a b rtt jitter; do
		[[ -n $a ]] && wan_set_link "$a" "$b" "$rtt" "$jitter"
	done < <(inventory_wan_links <<<"$json")
}

# group_round_trip SITE DC1_DC2 DC1_DC3 DC2_DC3: print the commit latency
# that the WAN adds for a writer in SITE, in milliseconds. Galera delivers a
# write-set once it is safe: every member has it, and the writer has heard
# from every member that it has heard from all the others. The last such
# message comes from a member J right after J received the write-set's
# latest companion, sent by a member K, so the writer waits for the longest
# path writer -> K -> J -> writer, in one-way delays (half the round
# trips). With three sites A (the writer's), B and C that is max(AB, AC,
# (AB + AC + BC) / 2) in round trips: half the triangle's perimeter
# whenever the links obey the triangle inequality.
group_round_trip() {
	local ab ac bc
	case $1 in
	dc1) ab=$2 ac=$3 bc=$4 ;;
	dc2) ab=$2 ac=$4 bc=$3 ;;
	*) die "group_round_trip: no writer site $1" ;;
	esac
	awk -v ab="$ab" -v ac="$ac" -v bc="$bc" 'BEGIN {
		m = ab; if (ac > m) m = ac; p = (ab + ac + bc) / 2; if (p > m) m = p; print m }'
}

test_latency() {
	local baseline p50 p90 p99 site d12 d13 d23 expected added low high verdict=pass
	log "1. commit latency of POST /app against the WAN's round-trip time"
	cluster_whole || die "the cluster is not whole before the latency test; run scripts/testbed/status.sh"
	set_wan 0 0 0
	read -r baseline p90 p99 < <(latency_point "no delay" dc1)
	[[ -n $baseline ]] || die "the latency baseline failed; see the messages above"
	latency_rows+=("| dc1 | 0 | 0 | 0 | 0 | $baseline | $p90 | $p99 | - | baseline |")
	# Each line: the client's site and the round trips dc1-dc2, dc1-dc3,
	# dc2-dc3, without jitter. The rows with one link set show which links
	# a commit waits for; 0/0/40 and 20/20/40 tell the group round trip
	# apart from a round trip to the farthest member (20 and 40 ms against
	# 0 and 20). The last two are the inventory's WAN.
	while read -r site d12 d13 d23; do
		set_wan "$d12" "$d13" "$d23"
		read -r p50 p90 p99 < <(latency_point "$site $d12 $d13 $d23" "$site")
		[[ -n $p50 ]] || die "the latency point $site $d12 $d13 $d23 failed; see the messages above"
		expected=$(group_round_trip "$site" "$d12" "$d13" "$d23")
		added=$(awk -v a="$p50" -v b="$baseline" 'BEGIN { printf "%.1f", a - b }')
		# Within 15% of one group round trip, give or take 2 ms of the
		# machine's noise: the delay line's timers, and 13 hosts on 2
		# cores. Two group round trips would fall outside, and so would the
		# farthest member's round trip alone wherever the two differ.
		low=$(awk -v e="$expected" 'BEGIN { print e * 0.85 - 2 }')
		high=$(awk -v e="$expected" 'BEGIN { print e * 1.15 + 2 }')
		local ok=yes
		awk -v x="$added" -v l="$low" -v h="$high" 'BEGIN { exit !(x >= l && x <= h) }' || ok=no
		[[ $ok == yes ]] || verdict=fail
		latency_rows+=("| $site | $d12 | $d13 | $d23 | $expected | $p50 | $p90 | $p99 | $added | $ok |")
		log "client $site, round trips $d12/$d13/$d23 ms: p50 $p50 ms, $added ms over the baseline, one group round trip is $expected ms ($ok)"
	done <<-EOF
		dc1 20 0 0
		dc1 0 40 40
		dc1 40 20 20
		dc1 0 0 40
		dc1 20 20 40
		dc1 20 40 40
		dc2 20 40 40
	EOF
	restore_wan
	[[ $verdict == pass ]] || failures=$((failures + 1))
	log "latency: $verdict"
}

# --- 2. site loss, and 4. the site's return ------------------------------------

# test_site_loss: cut dc2 off, check that dc1 and dc3 go on, bring dc2
# back (test_site_return), then check every acknowledged write.
test_site_loss() {
	local site=dc2 survivor=dc1 host node cut deadline evicted=- status size _ code before
	log "2. loss of site $site: every host of it cut off, under load"
	cluster_whole || die "the cluster is not whole before the site loss; run scripts/testbed/status.sh"
	site_loss_failed=0
	clients_start site-loss
	cut=$SECONDS
	for host in ${site_hosts[$site]}; do host_link_down "$host"; done

	# The survivors evict the lost nodes once evs.suspect_timeout passes.
	deadline=$((SECONDS + 60))
	until read -r status size _ < <(node_wsrep "${galera_nodes[0]}") &&
		[[ $status == Primary && $size == $(($(members_total) - $(wc -w <<<"${site_nodes[$site]}"))) ]]; do
		if ((SECONDS >= deadline)); then
			log "$survivor did not form a primary component without $site within 60 s (status $status, size $size)"
			site_loss_failed=1
			break
		fi
		sleep 0.5
	done
	if ((site_loss_failed == 0)); then
		evicted=$((SECONDS - cut))
		log "$survivor and the arbitrator form the primary component, $evicted s after the cut"
	fi

	# Each cut-off node is alone: non-Primary, and it takes no write.
	for node in ${site_nodes[$site]}; do
		deadline=$((SECONDS + 60))
		until read -r status _ < <(node_wsrep "$node") && [[ $status == non-Primary ]]; do
			if ((SECONDS >= deadline)); then
				log "$node is still '$status' 60 s after the cut"
				site_loss_failed=1
				break
			fi
			sleep 0.5
		done
		if host_exec "$node" mariadb -e "INSERT INTO timestamp.events (created_at, request_token, node)
			VALUES (UTC_TIMESTAMP(6), RANDOM_BYTES(16), 'multi-dc-suite')" 2>/dev/null; then
			log "$node accepted a write without quorum"
			site_loss_failed=1
		fi
	done

	# Writes go on in the surviving site, the lost site's clients included.
	before=$(load_rows "${galera_nodes[0]}" site-loss-dc2)
	wait_rows site-loss-dc2 $((before + rate * 5)) "${galera_nodes[0]}"
	code=$(probe_once "${site_vip[$survivor]}")
	if [[ $code != 201 ]]; then
		log "POST to $survivor's VIP returned $code during the loss of $site"
		site_loss_failed=1
	fi
	log "writes continue in $survivor; $site's clients moved to ${site_vip[$survivor]}"

	local whole check totals verdict=pass
	test_site_return "$site" || true
	((site_loss_failed == 0)) || verdict=fail
	whole=$(wait_whole 240) || {
		verdict=fail
		whole=never
	}
	clients_stop site-loss
	if ! check=$(check_all site-loss-dc1 site-loss-dc2); then
		verdict=fail
	fi
	printf '%s\n' "$check" | sed '$d'
	totals=$(tail -n1 <<<"$check")
	fault_row site-loss "every host of $site cut off; dc1 and dc3 formed the primary component after $evicted s; $site's clients failed over to dc1" \
		"$verdict" "${totals% *}" "${totals#* }" "$whole s"
	fault_row site-return "$site_return_what" "$site_return_verdict" - - "$site_return_seconds s to rejoin" -
}

# probe_once VIP: one POST without a key; print its status.
probe_once() {
	curl -s -m 6 -o /dev/null -w '%{http_code}' -X POST "http://$1/app" || true
}

# joined_by NODE SINCE: print "METHOD DONOR" of NODE's last state transfer
# since the epoch second SINCE: METHOD is IST or SST, DONOR the node that
# Galera selected. Reads the node's journal.
joined_by() {
	local log line donor method=SST
	log=$(host_ssh "$1" journalctl -u mariadb --no-pager -o cat --since "@$2" 2>/dev/null) || return 1
	line=$(grep "($1) requested state transfer" <<<"$log" | tail -n1)
	[[ -n $line ]] || return 1
	donor=$(sed -n 's/.*Selected [0-9.]* (\([^)]*\)).* as donor.*/\1/p' <<<"$line")
	grep -q 'IST received' <<<"$log" && method=IST
	echo "$method ${donor:-unknown}"
}

# test_site_return SITE: reconnect SITE's hosts, its Galera nodes last and
# one at a time. Each must rejoin by IST; every node after the first must
# take it from a donor in SITE. Sets site_return_what, _verdict and
# _seconds for the results row, and fails on a miss.
test_site_return() {
	local site=$1 host node since transfer method donor donor_site first="" verdict=pass started=$SECONDS
	log "4. site $site returns: its nodes rejoin one after the other"
	for host in ${site_hosts[$site]}; do
		[[ " ${site_nodes[$site]} " == *" $host "* ]] || host_link_up "$host"
	done
	local notes=()
	for node in ${site_nodes[$site]}; do
		since=$(date +%s)
		host_link_up "$node"
		galera_wait_synced "$node"
		if ! transfer=$(joined_by "$node" "$since"); then
			log "$node: no state transfer request in its log since its link came back"
			notes+=("$node: no state transfer found")
			verdict=fail
			continue
		fi
		read -r method donor <<<"$transfer"
		donor_site=$(site_of "$donor")
		log "$node rejoined by $method from $donor ($donor_site)"
		notes+=("$node by $method from $donor ($donor_site)")
		[[ $method == IST ]] || verdict=fail
		# The first node back has no Synced peer in its site; every later
		# one has, and must take its state from there.
		if [[ -n $first && $donor_site != "$site" ]]; then
			log "$node took its state from $donor in $donor_site although $first in $site was Synced"
			verdict=fail
		fi
		first=$node
	done
	site_return_what="$site reconnected, its Galera nodes one at a time: $(printf '%s, ' "${notes[@]}" | sed 's/, $//')"
	site_return_verdict=$verdict
	site_return_seconds=$((SECONDS - started))
	[[ $verdict == pass ]]
}

# --- 3. partitions between the sites --------------------------------------------

# test_partition NAME WHAT LINKS...: cut each LINK ("dc1-dc2") for
# $partition_seconds under load. Every second it checks that no two primary
# components exist and probes each full site's VIP. A site whose Galera
# nodes are all non-Primary at the end must return only 503 with
# Retry-After to the last probes, and a site that returns 201 must have a
# Primary node. After healing, every acknowledged write must be on every
# node exactly once.
test_partition() {
	local name=$1 what=$2 link verdict=pass deadline split site code whole check totals
	shift 2
	log "3. partition $name: $what"
	cluster_whole || die "the cluster is not whole before partition $name; run scripts/testbed/status.sh"
	clients_start "$name"
	probe_start "$name-probe"
	for link in "$@"; do wan_partition "${link%-*}" "${link#*-}"; done

	local -A last_codes=() primary=()
	deadline=$((SECONDS + partition_seconds))
	while ((SECONDS < deadline)); do
		if ! split=$(no_split_brain); then
			log "SPLIT BRAIN during $name: $split"
			verdict=fail
		fi
		for site in dc1 dc2; do
			probe "$name-probe" "$site"
			# Only the probes of the last 8 s count: before that the
			# members were still evicting each other.
			((deadline - SECONDS <= 8)) && last_codes[$site]+="$probe_code "
		done
		sleep 1
	done
	local summary=() size summary_text
	for site in dc1 dc2; do
		read -r "primary[$site]" size < <(site_primary "$site")
		if ((primary[$site] > 0)); then
			summary+=("$site: ${primary[$site]} of $(wc -w <<<"${site_nodes[$site]}") nodes Primary in a component of $size members, probes ${last_codes[$site]% }")
		else
			summary+=("$site: no node Primary, probes ${last_codes[$site]% }")
		fi
		if ((primary[$site] == 0)); then
			for code in ${last_codes[$site]}; do
				[[ $code == 503 ]] && continue
				log "$site has no Primary node but answered ${last_codes[$site]}; want only 503 with Retry-After"
				verdict=fail
				break
			done
		fi
		if ((primary[$site] > 0)) && [[ " ${last_codes[$site]} " != *" 201 "* ]]; then
			log "$site has a Primary node but accepted no probe: ${last_codes[$site]}"
			verdict=fail
		fi
	done
	summary_text=$(printf '%s; ' "${summary[@]}" | sed 's/; $//')
	log "$name at the end of the partition: $summary_text"

	wan_heal
	whole=$(wait_whole 240) || {
		verdict=fail
		whole=never
	}
	clients_stop "$name"
	if ! check=$(check_all "$name-dc1" "$name-dc2" "$name-probe"); then
		verdict=fail
	fi
	printf '%s\n' "$check" | sed '$d'
	totals=$(tail -n1 <<<"$check")
	fault_row "$name" "$what; $summary_text" "$verdict" "${totals% *}" "${totals#* }" "$whole s"
}

test_partitions() {
	test_partition arbitrator-lost "dc3 cut from dc1 and dc2" dc1-dc3 dc2-dc3
	test_partition partition-arbitrated "dc1 and dc2 cut from each other, both reach dc3" dc1-dc2
	test_partition partition-dc2-alone "dc2 cut from dc1 and from dc3" dc1-dc2 dc2-dc3
	test_partition partition-no-quorum "every site cut from the others" dc1-dc2 dc1-dc3 dc2-dc3
}

# --- report -------------------------------------------------------------------

print_report() {
	{
		if ((${#latency_rows[@]})); then
			printf '### Commit latency\n\n'
			printf 'Round trips in ms between the sites; latencies of POST /app in ms, one request at a time, 150 requests per row.\n\n'
			printf '| client at | dc1-dc2 | dc1-dc3 | dc2-dc3 | one group round trip | p50 | p90 | p99 | p50 over baseline | within 15%% |\n'
			printf '|---|---|---|---|---|---|---|---|---|---|\n'
			printf '%s\n' "${latency_rows[@]}"
			printf '\n'
		fi
		if ((${#fault_rows[@]})); then
			printf '### Faults\n\n'
			printf '| test | fault and what each site did | sent | 201 | 503 | other | client retries | acknowledged but missing | duplicates | longest gap without a success | time to whole | result |\n'
			printf '|---|---|---|---|---|---|---|---|---|---|---|---|\n'
			printf '%s\n' "${fault_rows[@]}"
		fi
	} | tee "$report"
}

main() {
	require_root
	suite_init
	load_inventory
	wan_exists || die "no router namespace $TESTBED_WAN_NETNS: boot the multi-dc topology with 'make up TOPOLOGY=multi-dc'"
	local all=(latency site-loss partition) chosen=("$@") name
	((${#chosen[@]})) || chosen=("${all[@]}")
	for name in "${chosen[@]}"; do
		case $name in
		latency) test_latency ;;
		site-loss) test_site_loss ;;
		partition) test_partitions ;;
		*) die "unknown test $name; see the usage at the top of $0" ;;
		esac
	done
	print_report
	log "the multi-dc suite took $SECONDS s"
	local total=$((${#fault_rows[@]} + (${#latency_rows[@]} > 0 ? 1 : 0)))
	printf '%d passed, %d failed\n' $((total - failures)) "$failures"
	((failures == 0))
}

main "$@"
