#!/usr/bin/env bash
# Elasticity suite on the local test hosts of the ha topology, which
# `make up` must have booted and provisioned. It installs the autoscaler
# (ansible/autoscaler.yml) with the test targets below, then runs:
#
#   1. A load ramp: from the minimum to at least 3 instances within the
#      scale-up bound, back to the minimum after the scale-down window.
#   2. A sudden spike: up to the maximum and never past it. The existing
#      hosts fill up, so the test boots api3 (host_add) and runs
#      api-scale-hosts.yml when the controller requests a host.
#   3. A load swinging around a threshold: at most one change per cooldown.
#   4. HAProxy reloaded on the VIP holder and restarted on the other load
#      balancer while the controller is stopped: the pool slots stay as
#      they were (server-state file), and no request fails.
#   5. The controller SIGKILLed during a scale-up and during a scale-down:
#      restarted by systemd, it converges with no orphan or duplicate.
#   6. The VIP added by hand on the standby load balancer (a keepalived
#      split brain): neither controller acts until it is removed.
#
# Every load generator runs with -retries 0, and each check also requires
# that every attempt got a 2xx and that every acknowledged row is on every
# Galera node. The ramp's timeline goes to docs/img/elastic-ramp.png and
# to the measured section of docs/elasticity.md. The last line reads
# "N passed, M failed".
#
# Settings: ELASTIC_TARGET_RPS (requests per second per instance, default
# 15), ELASTIC_DOCS (1 writes docs/, default 1). The run takes about 20
# minutes, most of it the scale-down windows.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export TOPOLOGY=ha
# shellcheck source=scripts/testbed/lib.sh
source scripts/testbed/lib.sh
testbed_enter "$@"
# shellcheck source=scripts/suite-lib.sh
source scripts/suite-lib.sh

# --- settings ---------------------------------------------------------------

# A target far below one instance's capacity, so that a ramp within the
# shared machine's budget (at most about 100 requests per second) crosses
# several thresholds. The production default is 300 (autoscaler role).
target_rps=${ELASTIC_TARGET_RPS:-15}
write_docs=${ELASTIC_DOCS:-1}
min_instances=2
max_instances=6
# Two per host: the two hosts of ha.yml hold 4 instances, so the spike
# needs the third host.
max_per_host=2
# Defaults of the autoscaler role, repeated for the bounds of the checks.
signal_window=10
scale_up_window=4
scale_up_cooldown=15
scale_down_window=60
scale_down_cooldown=60
# Time from the load crossing a threshold to the new instance in
# rotation: the signal window fills, the up window passes, the unit
# starts and HAProxy's check rises (2 x 1 s), with 20 s to spare.
scale_up_bound=$((signal_window + scale_up_window + 20))
# From the load falling to the minimum: the signal window empties and the
# down window passes. A ramp down usually leaves a middle recommendation
# in the window, so the count falls in two steps, a down cooldown apart.
# The drains and stops take seconds; 30 s to spare.
scale_down_bound=$((signal_window + scale_down_window + scale_down_cooldown + 30))

new_host=api3
new_host_address=192.168.56.23
scale_inventory=$top/ansible/inventories/vagrant/ha-scale.yml
vip=192.168.56.10
metrics_port=9106
api_hosts=(api1 api2)

results=()
passed=0
failed=0
offered=0
generators=()
suite_start=$EPOCHSECONDS

# --- helpers ----------------------------------------------------------------

note() { printf '    %s\n' "$*"; }

# problem MESSAGE: record a failed condition of the current check.
problem() {
	printf '    FAILED: %s\n' "$*"
	check_ok=0
}

# el_ssh HOST COMMAND: host_ssh through one shared connection per host, as
# the sampler and the polls run many short commands.
el_ssh() {
	local name=$1 options
	shift
	mapfile -t options < <(testbed_ssh_options)
	ssh "${options[@]}" -o ControlMaster=auto -o "ControlPath=$SUITE_WORK/cm-%C" -o ControlPersist=600 \
		"root@$(host_address "$name")" -- "$@"
}

close_ssh() {
	local socket
	for socket in "$SUITE_WORK"/cm-*; do
		[[ -S $socket ]] && ssh -o ControlPath="$socket" -O exit testbed-host >/dev/null 2>&1
		rm -f "$socket"
	done
	return 0
}

# active_lb: print the load balancer that has the VIP (exactly one).
active_lb() {
	local lb holders=()
	for lb in $(suite_hosts loadbalancers); do
		if el_ssh "$lb" "ip -o -4 addr show" 2>/dev/null | grep -qw "$vip"; then
			holders+=("$lb")
		fi
	done
	((${#holders[@]} == 1)) || {
		warn "VIP $vip is held by ${#holders[@]} load balancers: ${holders[*]}"
		return 1
	}
	printf '%s\n' "${holders[0]}"
}

# controller_metrics LB: print the autoscaler's timestamp_autoscaler_* lines.
controller_metrics() {
	el_ssh "$1" "curl -fsS --max-time 2 http://$(host_address "$1"):$metrics_port/metrics" 2>/dev/null |
		grep '^timestamp_autoscaler_' || true
}

# metric NAME < METRICS: print the value of one series (name with labels).
metric() { awk -v n="$1" '$1 == n { print $2; exit }'; }

# current_instances LB: instances in rotation as the controller counts them.
current_instances() { controller_metrics "$1" | metric timestamp_autoscaler_instances_current; }

# wait_instances COUNT TIMEOUT: poll until the controller reports COUNT
# instances in rotation; prints the seconds it took.
wait_instances() {
	local want=$1 timeout=$2 start=$SECONDS lb n
	while ((SECONDS - start < timeout)); do
		if lb=$(active_lb) && n=$(current_instances "$lb") && [[ ${n%.*} == "$want" ]]; then
			printf '%s\n' $((SECONDS - start))
			return 0
		fi
		sleep 2
	done
	return 1
}

# gen_start NAME RATE: start a load generator of RATE POSTs per second.
gen_start() {
	load_start "$1" -rate "$2" -concurrency 8 -retries 0
	generators+=("$1")
	offered=$((offered + $2))
	printf '%s\n' "$offered" >"$SUITE_WORK/offered"
	printf '%s %s\n' "$1" "$2" >>"$SUITE_WORK/generator-rates"
}

# gen_stop NAME: stop a load generator and check that every attempt got a
# 2xx.
gen_stop() {
	local name=$1 rate non2xx failures
	load_stop "$name" >/dev/null
	rate=$(awk -v n="$name" '$1 == n { print $2 }' "$SUITE_WORK/generator-rates" | tail -n1)
	offered=$((offered - rate))
	printf '%s\n' "$offered" >"$SUITE_WORK/offered"
	non2xx=$(load_non_2xx "$name")
	failures=$(load_value "$name" failed)
	total_requests=$((total_requests + $(load_value "$name" attempts)))
	total_non2xx=$((total_non2xx + non2xx))
	if ((non2xx != 0 || failures != 0)); then
		problem "$name: $non2xx attempts without 2xx, $failures failed requests: $(jq -c '.by_status, .first_errors' "$SUITE_WORK/$name.json" | tr '\n' ' ')"
	fi
}

# gens_stop_all: stop every generator still running.
gens_stop_all() {
	local name
	for name in "${generators[@]}"; do
		[[ -f $SUITE_WORK/$name.pid && -d /proc/$(<"$SUITE_WORK/$name.pid") ]] && gen_stop "$name"
	done
	generators=()
}

# check_rows NAMES...: every acknowledged key of the generators is on every
# Galera node once.
check_rows() {
	local name
	for name in "$@"; do
		# shellcheck disable=SC2046 # one argument per node
		check_acks "$name" $(suite_hosts galera) >"$SUITE_WORK/$name.rows.txt" ||
			problem "$name: acknowledged rows missing or duplicated: $(cat "$SUITE_WORK/$name.rows.txt")"
	done
}

# sampler_start FILE: append a timeline row every 2 s to FILE (CSV).
sampler_start() {
	local file=$1
	printf 't_seconds,offered_rps,measured_rps,instances,desired,p95_ms,hosts_requested,hosts_registered,haproxy_up\n' >"$file"
	(
		local start=$EPOCHREALTIME lb m t up
		while :; do
			t=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
			if lb=$(active_lb 2>/dev/null) && m=$(controller_metrics "$lb") && [[ -n $m ]]; then
				up=$(el_ssh "$lb" "echo 'show stat' | socat stdio unix-connect:/run/haproxy/admin.sock" 2>/dev/null |
					awk -F, '$1 == "api" && $2 != "BACKEND" && $18 ~ /^UP/ { n++ } END { print n + 0 }')
				printf '%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$t" "$(cat "$SUITE_WORK/offered")" \
					"$(metric 'timestamp_autoscaler_signal{signal="rps_total"}' <<<"$m")" \
					"$(metric timestamp_autoscaler_instances_current <<<"$m")" \
					"$(metric timestamp_autoscaler_instances_desired <<<"$m")" \
					"$(metric 'timestamp_autoscaler_signal{signal="p95_seconds"}' <<<"$m" | awk 'NF { printf "%.1f", $1 * 1000 }')" \
					"$(metric timestamp_autoscaler_hosts_requested <<<"$m")" \
					"$(metric timestamp_autoscaler_hosts_registered <<<"$m")" "$up" >>"$file"
			fi
			sleep 2
		done
	) &
	sampler_pid=$!
}

sampler_stop() {
	[[ -n ${sampler_pid:-} ]] || return 0
	kill "$sampler_pid" 2>/dev/null || true
	wait "$sampler_pid" 2>/dev/null || true
	sampler_pid=
}

# column FILE NAME: print one column of a timeline CSV.
column() {
	awk -F, -v n="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == n) c = i; next } { print $c }' "$1"
}

# first_time FILE COLUMN MIN [AFTER]: print the first t_seconds at or
# after AFTER where COLUMN is at least MIN.
first_time() {
	awk -F, -v n="$2" -v min="$3" -v after="${4:-0}" '
		NR == 1 { for (i = 1; i <= NF; i++) if ($i == n) c = i; next }
		$1 >= after && $c != "" && $c + 0 >= min { print $1; exit }' "$1"
}

# journal_since LB EPOCH: print the controller's log lines (JSON) since EPOCH.
journal_since() {
	el_ssh "$1" "journalctl -u timestamp-autoscaler.service --since=@$2 -o cat --no-pager" 2>/dev/null |
		grep '^{' || true
}

# change_times LB EPOCH: print the Unix times of the instance changes
# ("instances added" and "instances removed") since EPOCH, with the change.
change_times() {
	journal_since "$1" "$2" | jq -r 'select(.msg == "instances added" or .msg == "instances removed")
		| "\(.time[0:19] + "Z" | fromdateiso8601) \(.msg)"'
}

# slot_rows: read `show servers state api` and print "slot address:port
# ready|drain" for each pool slot that is not in maintenance, sorted. Admin
# flags 0x01, 0x02 and 0x20 are maintenance, 0x08 and 0x10 drain
# (api/autoscale/haproxy/parse.go).
slot_rows() {
	awk 'function bit(v, b) { return int(v / b) % 2 }
		NR > 2 && NF > 18 && $4 ~ /^pool[0-9]+$/ && !bit($7, 1) && !bit($7, 2) && !bit($7, 32) {
			print $4, $5 ":" $19, (bit($7, 8) || bit($7, 16) ? "drain" : "ready") }' |
		sort
}

# slot_table LB: slot_rows of LB's HAProxy.
slot_table() {
	el_ssh "$1" "echo 'show servers state api' | socat stdio unix-connect:/run/haproxy/admin.sock" | slot_rows
}

# layout_problems: print each broken invariant of the backend, nothing
# when all are kept. The invariants: both load balancers have the same
# slots, each slot in use points at an active pool unit, each active pool
# unit is in exactly one slot, and no slot repeats a static server.
layout_problems() {
	local lb host tables=() units="" slots static
	for lb in $(suite_hosts loadbalancers); do
		tables+=("$(slot_table "$lb")")
	done
	[[ ${tables[0]} == "${tables[1]}" ]] ||
		printf 'the load balancers differ:\n%s\n---\n%s\n' "${tables[0]}" "${tables[1]}"
	for host in "${api_hosts[@]}"; do
		units+=$(el_ssh "$host" "systemctl list-units --plain --no-legend --state=active 'timestamp-api@*'" |
			awk -v a="$(host_address "$host")" '{ p = $1; sub(/^timestamp-api@/, "", p); sub(/\.service$/, "", p)
				if (p >= 8081 && p <= 8088) print a ":" p }')$'\n'
	done
	units=$(grep . <<<"$units" | sort || true)
	slots=$(awk '{ print $2 }' <<<"${tables[0]}" | grep . | sort || true)
	[[ -z $(uniq -d <<<"$slots") ]] || printf 'duplicate slots: %s\n' "$(uniq -d <<<"$slots" | tr '\n' ' ')"
	[[ $units == "$(sort -u <<<"$slots" | grep . || true)" ]] ||
		printf 'pool units and slots differ: units [%s] slots [%s]\n' "$(tr '\n' ' ' <<<"$units")" "$(tr '\n' ' ' <<<"$slots")"
	static=$(el_ssh lb1 "echo 'show servers state api' | socat stdio unix-connect:/run/haproxy/admin.sock" |
		awk 'NR > 2 && NF > 18 && $4 !~ /^pool/ { print $5 ":" $19 }')
	for host in $slots; do
		grep -qx "$host" <<<"$static" && printf 'slot repeats the static server %s\n' "$host"
	done
	return 0
}

# poll_steady TIMEOUT INTERVAL COMMAND...: run COMMAND every INTERVAL
# seconds until it succeeds 3 times in a row, for at most TIMEOUT seconds.
# Prints the seconds it took; fails on the timeout.
poll_steady() {
	local timeout=$1 interval=$2 start=$SECONDS good=0
	shift 2
	while ((SECONDS - start < timeout)); do
		if "$@"; then
			good=$((good + 1))
			((good >= 3)) && {
				printf '%s\n' $((SECONDS - start))
				return 0
			}
		else
			good=0
		fi
		sleep "$interval"
	done
	return 1
}

# converged COUNT: whether COUNT instances are in rotation and the layout
# keeps its invariants; sets converged_state for the caller's message.
converged() {
	local lb n="" issues
	issues=$(layout_problems)
	lb=$(active_lb) && n=$(current_instances "$lb")
	converged_state=${issues:-instances ${n:-unknown}, want $1}
	[[ ${n%.*} == "$1" && -z $issues ]]
}

# wait_converged COUNT TIMEOUT: poll until COUNT instances are in rotation
# and the layout keeps its invariants on 3 polls in a row. Prints the
# seconds it took.
wait_converged() {
	poll_steady "$2" 2 converged "$1" || {
		printf 'not converged: %s\n' "${converged_state:-}" >&2
		return 1
	}
}

# settle: bring the tier back to the minimum before a check.
settle() {
	local took
	if ! took=$(wait_instances "$min_instances" $((scale_down_bound + scale_down_cooldown))); then
		warn "the tier did not return to $min_instances instances"
		return 1
	fi
	note "at the minimum of $min_instances instances (waited $took s)"
}

# record NAME SUMMARY: count the check as passed or failed.
record() {
	if ((check_ok)); then
		passed=$((passed + 1))
		results+=("$(printf '%-22s passed  %s' "$1" "$2")")
	else
		failed=$((failed + 1))
		results+=("$(printf '%-22s FAILED  %s' "$1" "$2")")
	fi
}

# --- installation -------------------------------------------------------------

install_autoscaler() {
	log "installing the autoscaler (ansible/autoscaler.yml) with the test targets"
	# A previous run's extra host goes, so that the spike needs it again.
	if [[ -f $(host_dir "$new_host")/address ]]; then
		note "removing $new_host, left by a previous run"
		host_destroy "$new_host"
	fi
	mkdir -p "$top/build/linux-amd64"
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -o "$top/build/linux-amd64/autoscaler" ./api/cmd/autoscaler
	go build -o "$SUITE_WORK/elasticchart" ./api/cmd/elasticchart
	cat >"$SUITE_WORK/autoscaler-vars.yml" <<-EOF
		autoscaler_min: $min_instances
		autoscaler_max: $max_instances
		autoscaler_max_per_host: $max_per_host
		autoscaler_target_rps: $target_rps
	EOF
	testbed_playbook "$SUITE_INVENTORY" ansible/autoscaler.yml -e "@$SUITE_WORK/autoscaler-vars.yml" \
		>"$SUITE_WORK/autoscaler-install.log" || {
		tail -n 30 "$SUITE_WORK/autoscaler-install.log"
		die "ansible/autoscaler.yml failed; see $SUITE_WORK/autoscaler-install.log"
	}
	local lb
	lb=$(active_lb) || die "no single VIP holder"
	note "controller active on $lb"
}

# --- 1. ramp ------------------------------------------------------------------

check_ramp() {
	log "1. load ramp: ${target_rps} requests/s per instance is the target"
	check_ok=1
	local csv=$SUITE_WORK/ramp.csv step t_cross t_three t_drop t_min peak epoch
	settle || problem "not at the minimum before the ramp"
	epoch=$EPOCHSECONDS
	ramp_epoch=$epoch
	sampler_start "$csv"

	gen_start ramp-0 10
	sleep 20
	# +10 requests/s every 10 s, to 60. Three instances are due once the
	# load exceeds 2 x target x 1.1 (the tolerance).
	for step in 1 2 3 4 5; do
		gen_start "ramp-$step" 10
		sleep 10
	done
	sleep 40
	t_drop=$((EPOCHSECONDS - epoch))
	for step in 5 4 3 2 1; do
		gen_stop "ramp-$step"
		sleep 5
	done
	if ! wait_instances "$min_instances" "$scale_down_bound" >/dev/null; then
		problem "not back at $min_instances instances within $scale_down_bound s of the drop"
	fi
	sleep 4
	gen_stop ramp-0
	sampler_stop
	generators=()

	local threshold
	threshold=$(awk -v t="$target_rps" -v n="$min_instances" 'BEGIN { printf "%d", n * t * 1.1 + 1 }')
	t_cross=$(first_time "$csv" offered_rps "$threshold")
	t_three=$(first_time "$csv" instances 3)
	t_min=$(awk -F, -v after="$t_drop" -v min="$min_instances" 'NR > 1 && $1 >= after && $4 != "" && $4 + 0 <= min { print $1; exit }' "$csv")
	peak=$(column "$csv" instances | sort -n | tail -n1)
	note "offered load crossed $threshold requests/s at ${t_cross:-?} s; 3 instances at ${t_three:-never} s; peak $peak"
	note "load dropped from $t_drop s; back at $min_instances instances at ${t_min:-never} s"
	if [[ -z $t_three ]]; then
		problem "never reached 3 instances"
	elif [[ -z $t_cross ]] || awk -v a="$t_three" -v b="$t_cross" 'BEGIN { exit !(a < b) }'; then
		problem "3 instances at $t_three s, before the load crossed the threshold (${t_cross:-never}); see the decisions in the controller's log"
	elif awk -v a="$t_three" -v b="$t_cross" -v bound="$scale_up_bound" 'BEGIN { exit !(a - b > bound) }'; then
		problem "3 instances took $(awk -v a="$t_three" -v b="$t_cross" 'BEGIN { print a - b }') s after the threshold, bound $scale_up_bound s"
	fi
	if [[ -z $t_min ]] || awk -v a="$t_min" -v b="$t_drop" -v bound="$scale_down_bound" 'BEGIN { exit !(a - b > bound) }'; then
		problem "the minimum came back after ${t_min:-never} s (drop at $t_drop s), bound $scale_down_bound s"
	fi
	check_rows ramp-0 ramp-1 ramp-2 ramp-3 ramp-4 ramp-5

	ramp_summary=$(printf 'up %s s after the threshold, down %s s after the drop, peak %s instances' \
		"$(awk -v a="${t_three:-0}" -v b="${t_cross:-0}" 'BEGIN { print a - b }')" \
		"$(awk -v a="${t_min:-0}" -v b="$t_drop" 'BEGIN { print a - b }')" "$peak")
	ramp_numbers=("$threshold" "${t_cross:-}" "${t_three:-}" "$t_drop" "${t_min:-}" "$peak")
	local attempts=0 step_name
	for step_name in ramp-0 ramp-1 ramp-2 ramp-3 ramp-4 ramp-5; do
		attempts=$((attempts + $(load_value "$step_name" attempts)))
	done
	record "1 ramp" "$ramp_summary; $attempts POST attempts, every one 2xx"
}

# --- 2. spike -----------------------------------------------------------------

check_spike() {
	log "2. sudden spike to 100 requests/s; the maximum is $max_instances"
	check_ok=1
	local csv=$SUITE_WORK/spike.csv epoch lb m t_ask="" t_host t_max max_seen took
	settle || problem "not at the minimum before the spike"
	lb=$(active_lb) && m=$(controller_metrics "$lb")
	if [[ $(metric timestamp_autoscaler_hosts_requested <<<"$m") != "$(metric timestamp_autoscaler_hosts_registered <<<"$m")" ]]; then
		problem "a host request is pending before the spike: $(grep hosts_ <<<"$m" | tr '\n' ' ')"
	fi
	epoch=$EPOCHSECONDS
	sampler_start "$csv"
	gen_start spike 100

	# The two hosts take 2 x 2 instances. The controller then requests a
	# host (hosts_requested above hosts_registered), and the test adds it.
	local deadline=$((SECONDS + 90))
	while ((SECONDS < deadline)); do
		if lb=$(active_lb) && m=$(controller_metrics "$lb") &&
			(($(metric timestamp_autoscaler_hosts_requested <<<"$m" | cut -d. -f1) > $(metric timestamp_autoscaler_hosts_registered <<<"$m" | cut -d. -f1))); then
			t_ask=$((EPOCHSECONDS - epoch))
			break
		fi
		sleep 2
	done
	if [[ -z $t_ask ]]; then
		problem "the controller did not ask for a host within 90 s"
	else
		note "the controller asked for a host at $t_ask s; booting $new_host"
		host_add "$new_host" "$new_host_address" || problem "host_add $new_host failed"
		testbed_playbook "$SUITE_INVENTORY" ansible/api-scale-hosts.yml -i "$scale_inventory" \
			-e "api_scale_hosts=$new_host" -e "@$SUITE_WORK/autoscaler-vars.yml" >"$SUITE_WORK/api-scale-hosts.log" || {
			tail -n 30 "$SUITE_WORK/api-scale-hosts.log"
			problem "api-scale-hosts.yml failed; see $SUITE_WORK/api-scale-hosts.log"
		}
		t_host=$((EPOCHSECONDS - epoch))
		api_hosts+=("$new_host")
		note "$new_host provisioned and registered at $t_host s"
	fi
	if took=$(wait_instances "$max_instances" 90); then
		t_max=$((EPOCHSECONDS - epoch))
		note "at the maximum of $max_instances at $t_max s"
	else
		problem "did not reach $max_instances instances"
	fi
	sleep 20
	gen_stop spike
	sampler_stop
	generators=()

	max_seen=$( (column "$csv" instances; column "$csv" desired; column "$csv" haproxy_up) | grep . | sort -n | tail -n1)
	note "highest instances, desired or HAProxy servers up seen: $max_seen"
	((${max_seen%.*} <= max_instances)) || problem "went past the maximum: $max_seen > $max_instances"
	check_rows spike
	record "2 spike" "$(printf 'host asked at %s s, registered at %s s, %s instances at %s s, never above %s (highest seen %s)' \
		"${t_ask:-?}" "${t_host:-?}" "$max_instances" "${t_max:-?}" "$max_instances" "$max_seen")"
}

# --- 3. flapping ----------------------------------------------------------------

check_flapping() {
	local base low high
	# Around the threshold of the third instance: 2 x target x 1.1.
	high=$(awk -v t="$target_rps" 'BEGIN { printf "%d", 2 * t * 1.25 }')
	low=$(awk -v t="$target_rps" 'BEGIN { printf "%d", 2 * t * 0.9 }')
	base=$low
	log "3. load swinging between $low and $high requests/s every 10 s for 2 minutes"
	check_ok=1
	local lb epoch i changes prev=0 when what count=0
	settle || problem "not at the minimum before the swings"
	lb=$(active_lb)
	epoch=$EPOCHSECONDS
	gen_start flap-base "$base"
	for i in 1 2 3 4 5 6; do
		gen_start "flap-$i" $((high - low))
		sleep 10
		gen_stop "flap-$i"
		sleep 10
	done
	gen_stop flap-base
	generators=()

	changes=$(change_times "$lb" "$epoch")
	while read -r when what; do
		[[ -n $when ]] || continue
		count=$((count + 1))
		note "change at $((when - epoch)) s: $what"
		if ((prev > 0 && when - prev < scale_up_cooldown)); then
			problem "two changes $((when - prev)) s apart, less than the scale-up cooldown of $scale_up_cooldown s"
		fi
		if [[ $what == *removed* ]] && ((prev > 0 && when - prev < scale_down_cooldown)); then
			problem "a scale-down $((when - prev)) s after the previous change, less than the scale-down cooldown"
		fi
		prev=$when
	done <<<"$changes"
	((count <= 120 / scale_up_cooldown)) || problem "$count changes in 120 s"
	check_rows flap-base flap-1 flap-2 flap-3 flap-4 flap-5 flap-6
	record "3 flapping" "$count change(s) in 120 s of swings, none closer than a cooldown"
}

# --- 4. HAProxy reloaded -------------------------------------------------------

# worker_view LB: `show info`, `show servers state api` and `show stat` of
# LB's HAProxy, over one connection, so that all three come from the same
# worker: during a reload the old worker may still accept on the socket for
# a moment. HAProxy separates the outputs with an empty line.
worker_view() {
	el_ssh "$1" "echo 'show info; show servers state api; show stat' | socat stdio unix-connect:/run/haproxy/admin.sock"
}

# view_part N: print the Nth output of a worker_view.
view_part() { awk -v n="$1" 'BEGIN { RS = "" } NR == n { print }'; }

# view_pid: read a worker_view and print the worker's process ID.
view_pid() { view_part 1 | awk -F': ' '$1 == "Pid" { print $2 }'; }

# view_api_up: read a worker_view and print how many servers of the API
# backend are UP.
view_api_up() {
	view_part 3 | awk -F, '$1 == "api" && $2 != "BACKEND" && $18 ~ /^UP/ { n++ } END { print n + 0 }'
}

# controllers_start: start the controller on every load balancer, after
# check 4 stopped them.
controllers_start() {
	local lb
	for lb in $(suite_hosts loadbalancers); do
		el_ssh "$lb" "systemctl start timestamp-autoscaler.service" || return 1
	done
	controllers_stopped=0
}

# check_reload: the slots that the autoscaler filled survive a reload of
# HAProxy on the VIP holder and a restart of the other load balancer, with
# no request failing. The controller is stopped meanwhile, so only the
# server-state file (haproxy role) can bring the slots back.
check_reload() {
	local want=4
	log "4. HAProxy reloaded on the VIP holder and restarted on the other load balancer, controller stopped"
	check_ok=1
	local lb active="" other="" took before="" after pid="" new_pid up deadline lbs view
	settle || problem "not at the minimum before the reload"
	gen_start reload-load 60
	if took=$(wait_converged "$want" 120); then
		note "$want instances in rotation $took s after the load began"
	else
		problem "the load did not bring $want instances"
	fi
	read -ra lbs <<<"$(suite_hosts loadbalancers | tr '\n' ' ')"
	controllers_stopped=1
	for lb in "${lbs[@]}"; do
		el_ssh "$lb" "systemctl stop timestamp-autoscaler.service" || problem "could not stop the controller on $lb"
	done
	active=$(active_lb) || problem "no single VIP holder"
	for lb in "${lbs[@]}"; do
		[[ $lb == "${active:-}" ]] || other=$lb
	done
	before=$(slot_table "${active:-${lbs[0]}}") || problem "could not read the slots before the reload"
	note "slots before: $(tr '\n' ' ' <<<"$before")"
	[[ $(grep -c . <<<"$before") == $((want - min_instances)) ]] ||
		problem "expected $((want - min_instances)) pool slots in use before the reload"

	for lb in "${active:-}" "${other:-}"; do
		[[ -n $lb ]] || continue
		pid=$(worker_view "$lb" | view_pid) || problem "could not read $lb's HAProxy worker"
		if [[ $lb == "$active" ]]; then
			el_ssh "$lb" "systemctl reload haproxy.service" || problem "reload of HAProxy on $lb failed"
		else
			el_ssh "$lb" "systemctl restart haproxy.service" || problem "restart of HAProxy on $lb failed"
		fi
		# The reload returns once the master has the signal, the restart
		# once the new process is ready. Until the deadline, a runtime API
		# that does not respond yet is polled again.
		deadline=$((SECONDS + 20))
		new_pid=""
		while ((SECONDS < deadline)); do
			view=$(worker_view "$lb" 2>/dev/null) || view=""
			new_pid=$(view_pid <<<"$view")
			[[ -n $new_pid && $new_pid != "$pid" ]] && break
			sleep 0.2
		done
		if [[ -z $new_pid || $new_pid == "$pid" ]]; then
			problem "no new HAProxy worker on $lb within 20 s"
			continue
		fi
		after=$(view_part 2 <<<"$view" | slot_rows)
		up=$(view_api_up <<<"$view")
		note "$lb: worker $pid replaced by $new_pid; slots after: $(tr '\n' ' ' <<<"$after"); $up API servers UP"
		[[ $after == "$before" ]] || problem "$lb lost its slots: before [$before], after [$after]"
		((up == want)) || problem "$lb has $up API servers UP right after, want $want"
	done

	controllers_start || problem "could not start the controllers again"
	if took=$(wait_converged "$want" 60); then
		note "controller back, layout unchanged at $want instances ($took s)"
	else
		problem "no consistent layout after the controller came back"
	fi
	gen_stop reload-load
	generators=()
	check_rows reload-load
	record "4 haproxy reload" "$(printf 'reload of %s and restart of %s kept %s pool slots with the controller stopped; %s POST attempts, every one 2xx' \
		"$active" "${other:-?}" "$((want - min_instances))" "$(load_value reload-load attempts)")"
}

# --- 5. controller killed -----------------------------------------------------

# kill_on LB MESSAGE EPOCH: wait (up to 150 s) for the controller to log
# MESSAGE after EPOCH, then SIGKILL it at once. Prints the seconds it
# waited. The wait follows the journal on the load balancer itself, so the
# kill lands within milliseconds of the line, inside the step it begins.
kill_on() {
	local lb=$1 message=$2 epoch=$3 start=$SECONDS
	el_ssh "$lb" "grep -m1 -qF '\"msg\":\"$message\"' < <(timeout 150 journalctl -u timestamp-autoscaler.service \
		--since=@$epoch -f -o cat 2>/dev/null) && systemctl kill --signal=SIGKILL timestamp-autoscaler.service" ||
		return 1
	printf '%s\n' $((SECONDS - start))
}

check_kill() {
	log "5. SIGKILL the controller during a scale-up, then during a scale-down"
	check_ok=1
	local lb epoch waited took issues restarts up_took="?" down_took="?"
	settle || problem "not at the minimum before the kills"
	lb=$(active_lb)
	epoch=$EPOCHSECONDS

	gen_start kill-load 60
	if waited=$(kill_on "$lb" "starting instances" "$epoch"); then
		sleep 0.5
		issues=$(layout_problems)
		note "killed $waited s into the load, while starting instances; right after: ${issues:-no orphan yet}"
		if took=$(wait_converged 4 120); then
			up_took=$took
			note "converged to 4 instances $took s after the kill"
		else
			problem "no convergence after the kill during the scale-up"
		fi
	else
		problem "no scale-up began within 120 s"
	fi
	gen_stop kill-load

	gen_start kill-trickle 5
	epoch=$EPOCHSECONDS
	if waited=$(kill_on "$lb" "draining instances" "$epoch"); then
		sleep 0.5
		issues=$(layout_problems)
		note "killed $waited s after the load fell, while draining; right after: ${issues:-consistent}"
		if took=$(wait_converged "$min_instances" $((scale_down_bound + scale_down_cooldown))); then
			down_took=$took
			note "converged to $min_instances instances $took s after the kill"
		else
			problem "no convergence after the kill during the scale-down"
		fi
	else
		problem "no scale-down began within 120 s"
	fi
	gen_stop kill-trickle
	generators=()

	restarts=$(el_ssh "$lb" "systemctl show -p NRestarts --value timestamp-autoscaler.service")
	note "systemd restarted the controller $restarts time(s) so far"
	check_rows kill-load kill-trickle
	record "5 controller killed" "$(printf 'killed mid scale-up: 4 instances %s s later; mid scale-down: %s instances %s s later; no orphan or duplicate' \
		"$up_took" "$min_instances" "$down_took")"
}

# --- 6. VIP on both load balancers -----------------------------------------------

# controller_active LB: print timestamp_autoscaler_active of LB's controller
# (1 acting, 0 not), nothing if it does not respond.
controller_active() { controller_metrics "$1" | metric timestamp_autoscaler_active | cut -d. -f1; }

# acting_is WANT: whether the load balancers whose controller acts are
# exactly WANT (one name, or "" for none); sets acting for the caller's
# message. A controller that does not respond counts as acting.
acting_is() {
	local lb
	acting=""
	for lb in "${lbs_all[@]}"; do
		[[ $(controller_active "$lb") == 0 ]] || acting+="${acting:+ }$lb"
	done
	[[ $acting == "$1" ]]
}

# wait_acting WANT TIMEOUT: poll until acting_is WANT holds on 3 polls in
# a row. Prints the seconds it took.
wait_acting() {
	poll_steady "$2" 1 acting_is "$1" || {
		printf 'acting: [%s], want [%s]\n' "${acting:-}" "$1" >&2
		return 1
	}
}

# split_vip_add LB: give LB the VIP as well, on lo, as keepalived gives it to
# both load balancers in a split brain. LB must send no ARP reply for it, or
# the API hosts and the test host could learn LB's MAC for the VIP and lose
# the VIP holder for seconds after the address is gone. So its uplink gets
# arp_ignore 1: replies only for the uplink's own addresses.
split_vip_add() {
	split_vip_host=$1
	el_ssh "$1" "set -e; dev=\$(ip -o route get $vip | awk '{ for (i = 1; i < NF; i++) if (\$i == \"dev\") { print \$(i + 1); exit } }')
		[ -n \"\$dev\" ]
		cp /proc/sys/net/ipv4/conf/\$dev/arp_ignore /run/elastic-arp-ignore
		echo \$dev >/run/elastic-arp-dev
		echo 1 >/proc/sys/net/ipv4/conf/\$dev/arp_ignore
		ip addr add $vip/32 dev lo"
}

# split_vip_del: undo split_vip_add.
split_vip_del() {
	[[ -n ${split_vip_host:-} ]] || return 0
	el_ssh "$split_vip_host" "set -e; ip addr del $vip/32 dev lo
		cat /run/elastic-arp-ignore >/proc/sys/net/ipv4/conf/\$(cat /run/elastic-arp-dev)/arp_ignore
		rm -f /run/elastic-arp-dev /run/elastic-arp-ignore" || return 1
	split_vip_host=
}

# check_split_vip: the test gives the standby the VIP too, as a keepalived
# split brain would. Then neither controller may act. Once the standby's
# copy is gone, the holder must act again.
check_split_vip() {
	log "6. the VIP on both load balancers: neither controller may act"
	check_ok=1
	local active standby lb took stop_took="?" back_took="?"
	read -ra lbs_all <<<"$(suite_hosts loadbalancers | tr '\n' ' ')"
	active=$(active_lb) || problem "no single VIP holder before the check"
	for lb in "${lbs_all[@]}"; do
		[[ $lb == "${active:-}" ]] || standby=$lb
	done
	if [[ -z ${active:-} || -z ${standby:-} ]]; then
		record "6 vip on both" "not run: no single VIP holder"
		return
	fi

	if ! wait_acting "$active" 20 >/dev/null; then
		problem "before the check, $active's controller is not the only one acting"
	fi

	split_vip_add "$standby" || problem "could not add $vip on $standby"
	if took=$(wait_acting "" 20); then
		stop_took=$took
		note "both controllers stopped acting $took s after $vip was added on $standby"
	else
		problem "a controller kept acting with $vip on both load balancers"
	fi
	if ! journal_since "$active" $((EPOCHSECONDS - 30)) | grep -q 'split brain'; then
		problem "$active's controller did not log the split brain"
	fi

	split_vip_del || problem "could not remove $vip from $standby"
	if took=$(wait_acting "$active" 20); then
		back_took=$took
		note "$active's controller acts again $took s after $vip left $standby"
	else
		problem "$active's controller did not resume within 20 s"
	fi
	record "6 vip on both" "$(printf 'VIP added on %s: both controllers stopped acting within %s s; removed: %s acted again within %s s' \
		"$standby" "$stop_took" "$active" "$back_took")"
}

# --- docs -----------------------------------------------------------------------

# write_docs: the chart of the ramp and the measured section of
# docs/elasticity.md (between its BEGIN and END markers).
write_docs() {
	((write_docs)) || return 0
	local lb events section
	mkdir -p docs/img
	"$SUITE_WORK/elasticchart" -in "$SUITE_WORK/ramp.csv" -out docs/img/elastic-ramp.png \
		-title "Load ramp, target $target_rps requests/s per instance (scripts/elastic.sh)" ||
		warn "the chart failed"
	lb=$(active_lb) || return 0
	events=$(journal_since "$lb" "$ramp_epoch" | jq -r --argjson e "$ramp_epoch" '
		select(.msg == "decision" and .action != "hold" or .msg == "instances added" or .msg == "instances removed" or .msg == "drained")
		| ((.time[0:19] + "Z" | fromdateiso8601) - $e) as $t
		| if .msg == "decision" then
			"| \($t) s | decision \(.action): \(.current) to \(.desired) | \(.reason); \(.rps) requests/s, \(.inflight) in flight, p95 \(.p95 // "n/a") |"
		  else "| \($t) s | \(.msg) | \((.instances // []) | join(", ")) \(.took // "") |" end' |
		awk -F'|' -v end="$((ramp_end - ramp_epoch))" '{ t = $2; sub(/ s.*/, "", t); if (t + 0 <= end) print }')
	section=$(
		# shellcheck disable=SC2016 # backquotes for Markdown
		printf 'Measured by `scripts/elastic.sh` on %s (target %s requests/s per\n' "$(date -u +%Y-%m-%d)" "$target_rps"
		printf 'instance, minimum %s, maximum %s, %s per host), on the 2 cores of the\n' "$min_instances" "$max_instances" "$max_per_host"
		printf 'development machine, shared with other test hosts.\n\n'
		printf '| step | value |\n|---|---|\n'
		printf '| offered load crossed the 3-instance threshold (%s requests/s) | %s s |\n' "${ramp_numbers[0]}" "${ramp_numbers[1]}"
		printf '| 3 instances in rotation | %s s |\n' "${ramp_numbers[2]}"
		printf '| load dropped (generators stopped over 25 s) | %s s |\n' "${ramp_numbers[3]}"
		printf '| back at the minimum | %s s |\n' "${ramp_numbers[4]}"
		printf '| peak instances | %s |\n' "${ramp_numbers[5]}"
		printf '| POST attempts without 2xx, whole suite | %s of %s |\n\n' "$total_non2xx" "$total_requests"
		printf 'Controller log of the ramp (time since the ramp began):\n\n'
		printf '| time | event | inputs |\n|---|---|---|\n'
		printf '%s\n' "$events"
		printf '\nResults of the run:\n\n```\n'
		printf '%s\n' "${results[@]}"
		printf '```\n'
	)
	awk -v section="$section" '
		/<!-- BEGIN elastic.sh measured -->/ { print; print section; skip = 1; next }
		/<!-- END elastic.sh measured -->/ { skip = 0 }
		!skip { print }' docs/elasticity.md >"$SUITE_WORK/elasticity.md" &&
		cp "$SUITE_WORK/elasticity.md" docs/elasticity.md
}

cleanup() {
	split_vip_del || warn "could not remove $vip from ${split_vip_host:-}"
	if ((${controllers_stopped:-0})); then
		controllers_start || warn "could not start the controllers again; start timestamp-autoscaler on the load balancers"
	fi
	sampler_stop
	gens_stop_all >/dev/null 2>&1 || true
	close_ssh
}

main() {
	require_root
	suite_init
	trap cleanup EXIT
	printf '0\n' >"$SUITE_WORK/offered"
	: >"$SUITE_WORK/generator-rates"
	total_requests=0
	total_non2xx=0
	install_autoscaler

	check_ramp
	ramp_end=$EPOCHSECONDS
	check_spike
	check_flapping
	check_reload
	check_kill
	check_split_vip
	write_docs

	printf '\nelastic results (%d s, %s POST attempts, %s without 2xx)\n' \
		$((EPOCHSECONDS - suite_start)) "$total_requests" "$total_non2xx"
	printf '  %s\n' "${results[@]}"
	printf '%d passed, %d failed\n' "$passed" "$failed"
	((failed == 0))
}

main "$@"
