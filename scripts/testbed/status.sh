#!/usr/bin/env bash
# Prints the state of the local test hosts: each host (running or not, pid
# of its init, address, memory of its cgroup), then, on the hosts that run,
# each Galera node's state, HAProxy's view of its servers, and which load
# balancer holds the VIP of each site; with sites, their delays and
# partitions too.
#
# Usage: scripts/testbed/status.sh
#
# TESTBED_INSTANCE selects the instance (unset: the default one).
#
# Exits 1 when a VIP is held by no load balancer or by more than one while
# load balancers run, else 0.
set -euo pipefail

# shellcheck source=scripts/testbed/lib.sh
source "$(dirname "$0")/lib.sh"

section() { printf '%s\n' "$*"; }

mebibytes() { awk -v b="$1" 'BEGIN { printf "%.0fMiB", b / 1048576 }'; }

# host_memory NAME: print the memory charged to the host's cgroup (page
# cache included) and the resident set size of its processes, in MiB.
host_memory() {
	local path usage rss
	if ! path=$(host_cgroup "$1" memory) || [[ ! -d $path ]]; then
		printf -- '- -'
		return 0
	fi
	usage=$(cat "$path/memory.usage_in_bytes")
	rss=$(awk '$1 == "total_rss" { print $2 }' "$path/memory.stat")
	printf '%s %s' "$(mebibytes "$usage")" "$(mebibytes "${rss:-0}")"
}

print_hosts() {
	local inventory_hosts=$1 name address pid format='%-12s %-11s %-8s %-14s %-13s %s\n'
	# shellcheck disable=SC2059 # the format is the constant above
	printf "$format" HOST STATE 'INIT PID' ADDRESS 'CGROUP MEMORY' RSS
	for name in $( (hosts_created; cut -d' ' -f1 <<<"$inventory_hosts") | sort -u); do
		if [[ ! -f $(host_dir "$name")/address ]]; then
			address=$(awk -v n="$name" '$1 == n { print $2 }' <<<"$inventory_hosts")
			# shellcheck disable=SC2059
			printf "$format" "$name" 'not created' - "$address" - -
			continue
		fi
		if pid=$(host_pid "$name"); then
			# shellcheck disable=SC2059,SC2046 # host_memory prints two words
			printf "$format" "$name" running "$pid" "$(host_address "$name")" $(host_memory "$name")
		else
			# shellcheck disable=SC2059
			printf "$format" "$name" stopped - "$(host_address "$name")" - -
		fi
	done
}

# running_in_group JSON GROUP: print the hosts of GROUP that run.
running_in_group() {
	local name
	for name in $(jq -r --arg g "$2" '.[$g].hosts // [] | .[]' <<<"$1"); do
		host_pid "$name" >/dev/null && printf '%s\n' "$name"
	done
	return 0
}

print_galera() {
	local json=$1 name output
	section "Galera"
	for name in $(running_in_group "$json" galera); do
		if ! host_ssh "$name" command -v mariadb >/dev/null 2>&1; then
			printf '    %-10s MariaDB is not installed (or SSH fails)\n' "$name"
			continue
		fi
		if output=$(host_ssh "$name" "mariadb -N -B -e \"SHOW GLOBAL STATUS WHERE Variable_name IN
			('wsrep_local_state_comment', 'wsrep_cluster_size', 'wsrep_cluster_status')\"" 2>&1); then
			printf '    %-10s %s\n' "$name" "$(tr '\t\n' '= ' <<<"$output")"
		else
			printf '    %-10s no answer from mariadb: %s\n' "$name" "$(tail -1 <<<"$output")"
		fi
	done
}

# haproxy_stat NAME: print HAProxy's "show stat" CSV from the load balancer,
# through the admin socket that haproxy.cfg declares (stats socket ...).
# Exits 3 with a message when HAProxy, the socket or socat is missing.
haproxy_stat() {
	# shellcheck disable=SC2016 # the script runs on the load balancer
	host_ssh "$1" 'if [ ! -f /etc/haproxy/haproxy.cfg ]; then echo "HAProxy is not installed"; exit 3; fi
		socket=$(awk "\$1 == \"stats\" && \$2 == \"socket\" { print \$3; exit }" /etc/haproxy/haproxy.cfg 2>/dev/null)
		if [ -z "$socket" ]; then echo "no stats socket in /etc/haproxy/haproxy.cfg"; exit 3; fi
		if ! command -v socat >/dev/null; then echo "socat is not installed, so the stats socket cannot be read"; exit 3; fi
		if [ ! -S "$socket" ]; then echo "socket $socket not found (is haproxy running?)"; exit 3; fi
		echo "show stat" | socat stdio "$socket"'
}

print_haproxy() {
	local json=$1 name output
	section "HAProxy (pxname/svname: status, last check)"
	for name in $(running_in_group "$json" loadbalancers); do
		if ! output=$(haproxy_stat "$name" 2>&1); then
			printf '    %-10s no HAProxy stats: %s\n' "$name" "$(tail -1 <<<"$output")"
			continue
		fi
		printf '    %s\n' "$name"
		awk -F, 'NR == 1 {
				sub(/^# /, "")
				for (i = 1; i <= NF; i++) column[$i] = i
				next
			}
			$(column["svname"]) != "FRONTEND" && NF > 1 {
				printf "        %-28s %-8s %s\n", $(column["pxname"]) "/" $(column["svname"]),
					$(column["status"]), $(column["check_status"])
			}' <<<"$output"
	done
}

# link_note NAME: print a note when the host's veth is down.
link_note() {
	local link
	link=$(host_net "$1" ip -o link show "vb-$1" 2>/dev/null) || link=
	[[ $link == *"state UP"* ]] || printf ' (its link vb-%s is down)' "$1"
}

# print_vip JSON: print which load balancers hold each keepalived_vip (one
# per site); return 1 unless exactly one holds each. It reads the addresses
# in each host's network namespace with nsenter, not over SSH, so it also
# sees a host that is cut off (host_link_down) and still holds the VIP.
print_vip() {
	local json=$1 vip name pid holders running addresses rc=0
	running=$(running_in_group "$json" loadbalancers)
	[[ -n $running ]] || return 0

	for vip in $(inventory_service_addresses <<<"$json"); do
		section "VIP $vip"
		holders=()
		for name in $running; do
			[[ $(jq -r --arg h "$name" '._meta.hostvars[$h].keepalived_vip // empty' <<<"$json") == "$vip" ]] || continue
			pid=$(host_pid "$name") || continue
			addresses=$(nsenter --target "$pid" --net ip -4 -o addr show)
			if grep -q "inet $vip/" <<<"$addresses"; then
				holders+=("$name$(link_note "$name")")
			fi
		done
		case ${#holders[@]} in
		1)
			printf '    held by %s\n' "${holders[0]}"
			;;
		0)
			printf '    !!! NO load balancer holds the VIP %s: the service is down there !!!\n' "$vip"
			rc=1
			;;
		*)
			printf '    !!! SPLIT BRAIN: the VIP %s is held by %s !!!\n' "$vip" "$(printf '%s, ' "${holders[@]}" | sed 's/, $//')"
			rc=1
			;;
		esac
	done
	return "$rc"
}

# print_wan: print the sites, their delays and partitions, when the
# topology has a router namespace.
print_wan() {
	local site network a b rtt jitter
	wan_exists || return 0
	section "sites (router namespace $TESTBED_WAN_NETNS)"
	while read -r site network; do
		printf '    %-6s %s/%s on %s\n' "$site" "$network" "$TESTBED_PREFIX_LEN" "$(address_bridge "$network")"
	done < <(wan_sites)
	while read -r a b rtt jitter; do
		[[ -n $a ]] && printf '    %s-%s round trip %s ms, jitter %s ms\n' "$a" "$b" "$rtt" "$jitter"
	done < <(wan_links)
	for a in $(wan_partitions 2>/dev/null); do
		printf '    !!! partitioned: %s !!!\n' "$a"
	done
}

main() {
	local topology inventory json="{}" inventory_hosts="" rc=0
	require_root

	if [[ -n $TESTBED_INSTANCE ]]; then
		if netns_exists; then
			section "instance $TESTBED_INSTANCE: network namespace $TESTBED_NETNS, state in $TESTBED_INSTANCE_DIR"
		else
			section "instance $TESTBED_INSTANCE: no network namespace $TESTBED_NETNS (the instance is down)"
		fi
	fi
	if read -r topology inventory <"$TESTBED_TOPOLOGY_FILE" 2>/dev/null && [[ -f $inventory ]]; then
		section "topology $topology ($inventory)"
		json=$(inventory_json "$inventory")
		inventory_hosts=$(inventory_hosts "$inventory" <<<"$json")
	else
		section "no topology is up (scripts/testbed/up.sh starts one)"
	fi

	if proxy_pid >/dev/null; then
		section "apt proxy: $TESTBED_PROXY_URL (pid $(proxy_pid))"
	else
		section "apt proxy: not running"
	fi
	if [[ -n $TESTBED_INSTANCE ]]; then
		if forwarder_pid >/dev/null; then
			section "apt forwarder: $TESTBED_PROXY_URL in $TESTBED_NETNS to $TESTBED_PROXY_SOCKET (pid $(forwarder_pid))"
		else
			section "apt forwarder: not running"
		fi
	fi
	print_hosts "$inventory_hosts"
	print_wan

	[[ $json != "{}" ]] || return 0
	print_galera "$json"
	print_haproxy "$json"
	print_vip "$json" || rc=1
	return "$rc"
}

main "$@"
