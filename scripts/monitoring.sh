#!/usr/bin/env bash
# Monitoring suite on the local test hosts of the ha topology, which
# `make up` must have booted and provisioned. It queries Prometheus on the
# monitoring host over its HTTP API from this machine, which also proves
# that the firewall lets the control machine in on 9090:
#
#   1. Every target that the inventory implies is scraped and up: node on
#      every host, api, mysqld, haproxy, autoscaler, prometheus and
#      alertmanager, plus the pool instances that the autoscaler lists for
#      service discovery, and no other target.
#   2. The API's and the autoscaler's /metrics pass `promtool check
#      metrics` (Prometheus's naming conventions), run on the monitoring
#      host.
#   3. The autoscaler's minimum is raised by one (a runtime drop-in on the
#      load balancers): the instance that it starts on a pool port is
#      discovered and scraped. Once the minimum is back and the autoscaler
#      removed the instance, the target goes, and TimestampAPIDown never
#      fires for it.
#   4. A full backup's timestamp_backup_last_success_timestamp_seconds
#      reaches Prometheus, and the two backup alerts are inactive.
#   5. No alert fires on the healthy topology.
#   6. MariaDB is stopped on one Galera node: GaleraClusterSizeBelowExpected
#      must fire within its `for` plus one scrape interval and one rule
#      evaluation interval (read from Prometheus), and MariaDBDown for that
#      node, while GaleraNoPrimaryComponent must stay inactive (two of three
#      nodes keep the quorum).
#   7. MariaDB is started again: the node is Synced, the cluster whole,
#      and the cluster-size alert resolves within a scrape and an
#      evaluation interval of that.
#
# The inventory keeps the production scrape and evaluation intervals (15 s),
# so check 5 measures the timing that a deployment has; the `for` of 2
# minutes dominates the run time either way. Each check prints its figures.
# The last line reads "N passed, M failed", and the exit code is 1 when a
# check failed. The run takes about 5 minutes.
#
# Settings: MONITORING_NODE (the Galera node to stop, default the second of
# the inventory, which is neither the writer nor the backup node),
# MONITORING_SLACK (seconds allowed beyond the computed bounds for this
# script's polling and a loaded machine, default 15).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export TOPOLOGY=ha
# shellcheck source=scripts/testbed/lib.sh
source scripts/testbed/lib.sh
testbed_enter "$@"
# shellcheck source=scripts/suite-lib.sh
source scripts/suite-lib.sh

slack=${MONITORING_SLACK:-15}
# Ports of the monitoring and exporters roles' defaults, which the vagrant
# inventory keeps.
prometheus_port=9090
size_alert=GaleraClusterSizeBelowExpected

results=()
passed=0
failed=0
suite_start=$EPOCHSECONDS
stopped_node=
minimum_raised=0

note() { printf '    %s\n' "$*"; }

# record NAME OK SUMMARY: count the check as passed (OK 1) or failed.
record() {
	if (($2)); then
		passed=$((passed + 1))
		results+=("$(printf '%-22s passed  %s' "$1" "$3")")
	else
		failed=$((failed + 1))
		results+=("$(printf '%-22s FAILED  %s' "$1" "$3")")
	fi
	note "$3"
}

# seconds_since T0: print the seconds from EPOCHREALTIME T0 to now.
seconds_since() {
	awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

# --- Prometheus's HTTP API -----------------------------------------------------

# prom_get PATH [CURL ARGS...]: print the JSON of a GET on Prometheus's API.
prom_get() {
	local path=$1
	shift
	curl -fsS --max-time 5 -G "$prom_url$path" "$@"
}

# prom_query EXPR: print the value of the first sample of an instant query,
# or nothing when it returns no sample.
prom_query() {
	prom_get /api/v1/query --data-urlencode "query=$1" | jq -r '.data.result[0].value[1] // empty'
}

# alert_state NAME [LABEL VALUE]: print the state of the alert NAME
# (pending or firing), or inactive. LABEL and VALUE pick one instance.
alert_state() {
	prom_get /api/v1/alerts | jq -r --arg name "$1" --arg key "${2:-}" --arg want "${3:-}" '
		[.data.alerts[] | select(.labels.alertname == $name)
		 | select($key == "" or .labels[$key] == $want) | .state]
		| if index("firing") != null then "firing" elif length > 0 then "pending" else "inactive" end'
}

# alert_json NAME: print the JSON of the first active instance of NAME.
alert_json() {
	prom_get /api/v1/alerts | jq -c --arg name "$1" 'first(.data.alerts[] | select(.labels.alertname == $name)) // empty'
}

# firing_alerts: print "ALERTNAME labels" for every firing alert.
firing_alerts() {
	prom_get /api/v1/alerts | jq -r '.data.alerts[] | select(.state == "firing")
		| "\(.labels.alertname) \(.labels | del(.alertname, .severity) | tostring)"'
}

# rule_for NAME: print the `for` of the alerting rule NAME, in seconds.
rule_for() {
	prom_get /api/v1/rules | jq -r --arg name "$1" \
		'first(.data.groups[].rules[] | select(.type == "alerting" and .name == $name) | .duration) // empty'
}

# rule_interval NAME: print the evaluation interval of the group that
# contains the rule NAME, in seconds.
rule_interval() {
	prom_get /api/v1/rules | jq -r --arg name "$1" \
		'first(.data.groups[] | select(any(.rules[]; .name == $name)) | .interval) // empty'
}

# scrape_interval JOB: print the scrape interval of JOB's first target, in
# seconds ("15s" in the API).
scrape_interval() {
	prom_get /api/v1/targets --data-urlencode state=active | jq -r --arg job "$1" '
		first(.data.activeTargets[] | select(.labels.job == $job) | .scrapeInterval) // empty
		| if test("^[0-9]+s$") then rtrimstr("s") elif test("^[0-9]+m$") then (rtrimstr("m") | tonumber * 60) else error("unexpected interval " + .) end'
}

# --- 1. targets ------------------------------------------------------------------

# expected_targets: print "JOB INSTANCE" for every target that the monitoring
# role derives from the inventory, with the roles' default ports.
expected_targets() {
	inventory_json "$SUITE_INVENTORY" | jq -r '
		._meta.hostvars as $vars
		| def members($group): (.[$group].hosts // [])[];
		($vars | keys[] | "node \(.):9100"),
		(members("monitoring") | "prometheus \(.):9090", "alertmanager \(.):9093"),
		(members("api") as $host | ($vars[$host].api_ports // [8080])[] | "api \($host):\(.)"),
		(members("galera") | "mysqld \(.):9104"),
		(members("loadbalancers") | "haproxy \(.):8404", "autoscaler \(.):9106")' | sort
}

# pool_targets: print "api INSTANCE" for each instance on the autoscaler's
# pool ports that a controller lists for Prometheus's service discovery.
# The monitoring host reads the lists, because only it may reach port 9106.
pool_targets() {
	local lb list all=""
	for lb in $(suite_hosts loadbalancers); do
		if ! list=$(host_ssh "$monitoring_host" curl -fsS --max-time 5 "http://$(host_address "$lb"):9106/targets"); then
			warn "GET /targets of the autoscaler on $lb failed"
			return 1
		fi
		all+=$(jq -r '.[] | "api \(.labels.instance)"' <<<"$list")$'\n'
	done
	sed '/^$/d' <<<"$all" | sort -u
}

# active_targets: print "JOB INSTANCE HEALTH LAST_ERROR" for every target.
active_targets() {
	prom_get /api/v1/targets --data-urlencode state=active |
		jq -r '.data.activeTargets[] | "\(.labels.job) \(.labels.instance) \(.health) \(.lastError)"' | sort
}

check_targets() {
	log "1. every target of the inventory is scraped and up"
	local expected pool actual missing extra down deadline=$((SECONDS + 90)) started=$EPOCHREALTIME
	if ! pool=$(pool_targets); then
		record targets 0 "the autoscaler's service discovery failed"
		return 0
	fi
	expected=$( (expected_targets && printf '%s\n' "$pool") | sed '/^$/d' | sort)
	# A target is "unknown" until its first scrape, so a freshly provisioned
	# Prometheus needs up to one scrape interval.
	while :; do
		actual=$(active_targets) || actual=
		missing=$(comm -23 <(printf '%s\n' "$expected") <(cut -d' ' -f1,2 <<<"$actual" | sort))
		extra=$(comm -13 <(printf '%s\n' "$expected") <(cut -d' ' -f1,2 <<<"$actual" | sort))
		down=$(awk '$3 != "up"' <<<"$actual")
		[[ -z $missing && -z $extra && -z $down && -n $actual ]] && break
		((SECONDS < deadline)) || break
		sleep 1
	done
	printf '%s\n' "$actual" | awk '{ printf "      %-12s %-16s %s\n", $1, $2, $3 }'
	[[ -z $missing ]] || note "missing targets: $(paste -sd ' ' <<<"$missing")"
	[[ -z $extra ]] || note "unexpected targets: $(paste -sd ' ' <<<"$extra")"
	[[ -z $down ]] || note "not up: $(paste -sd ';' <<<"$down")"
	local ok=0
	[[ -n $actual && -z $missing && -z $extra && -z $down ]] && ok=1
	record targets "$ok" "$(wc -l <<<"$expected") targets expected, $(grep -c ' up ' <<<"$actual" || true) up, after $(seconds_since "$started") s"
}

# --- 2. metric names ------------------------------------------------------------------

check_metric_names() {
	log "2. promtool check metrics on the API's and the autoscaler's /metrics"
	local api lb endpoint out ok=1 checked=()
	api=$(suite_hosts api | head -n 1)
	lb=$(suite_hosts loadbalancers | head -n 1)
	for endpoint in "$(host_address "$api"):8080" "$(host_address "$lb"):9106"; do
		# promtool comes with Prometheus on the monitoring host, which the
		# firewalls let in on both ports. It exits non-zero and prints one
		# line per problem.
		if out=$(host_ssh "$monitoring_host" "curl -fsS --max-time 5 http://$endpoint/metrics | promtool check metrics" 2>&1); then
			checked+=("$endpoint")
		else
			ok=0
			note "$endpoint: ${out:-curl or promtool failed}"
		fi
	done
	record metric-names "$ok" "promtool check metrics passed for: ${checked[*]:-none}"
}

# --- 3. pool instance ---------------------------------------------------------------------

# target_health JOB INSTANCE: print the health of the target (up, down or
# unknown), or nothing when Prometheus has no such target.
target_health() {
	prom_get /api/v1/targets --data-urlencode state=active | jq -r --arg job "$1" --arg instance "$2" \
		'first(.data.activeTargets[] | select(.labels.job == $job and .labels.instance == $instance) | .health) // empty'
}

# autoscaler_minimum N: restart the autoscaler on every load balancer
# with its minimum raised to N through a runtime drop-in, which is gone at
# the next boot. N "default" removes the drop-in again.
autoscaler_minimum() {
	local lb dropin=/run/systemd/system/timestamp-autoscaler.service.d/monitoring-suite.conf
	local env=/run/timestamp-autoscaler-monitoring-suite.env command
	if [[ $1 == default ]]; then
		command="rm -f $dropin $env"
	else
		# A second EnvironmentFile is read after the role's, so it wins.
		command="mkdir -p ${dropin%/*} && echo TSAUTOSCALER_MIN=$1 >$env &&
			printf '[Service]\nEnvironmentFile=$env\n' >$dropin"
	fi
	for lb in $(suite_hosts loadbalancers); do
		host_ssh "$lb" "$command && systemctl daemon-reload && systemctl restart timestamp-autoscaler" ||
			warn "changing the autoscaler's minimum on $lb failed"
	done
	if [[ $1 == default ]]; then
		minimum_raised=0
	else
		minimum_raised=1
	fi
}

check_pool_instance() {
	log "3. an instance that the autoscaler adds is scraped, and dropped without an alert when it goes"
	local current before after instance="" t0 found_after="" gone_after="" health="" state
	local firing=0 pending_since="" pending_max=0 deadline
	current=$(prom_query 'max(timestamp_autoscaler_instances_current and on (instance) timestamp_autoscaler_active == 1)')
	if [[ ! $current =~ ^[0-9]+$ ]] || ! before=$(pool_targets); then
		record pool-instance 0 "the active autoscaler's instance count (${current:-none}) or its /targets is unavailable"
		return 0
	fi

	# One instance above the current count makes the controller start one
	# on a pool port, as a rising load would.
	t0=$EPOCHREALTIME
	autoscaler_minimum $((current + 1))
	deadline=$((SECONDS + 90))
	while ((SECONDS < deadline)); do
		after=$(pool_targets) || after=$before
		instance=$(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after") | head -n 1 | cut -d' ' -f2)
		[[ -n $instance ]] && break
		sleep 1
	done
	if [[ -z $instance ]]; then
		autoscaler_minimum default
		record pool-instance 0 "the autoscaler listed no new instance within 90 s of a minimum of $((current + 1))"
		return 0
	fi
	note "the autoscaler lists $instance after $(seconds_since "$t0") s"

	deadline=$((SECONDS + 60))
	until health=$(target_health api "$instance") && [[ $health == up ]]; do
		((SECONDS < deadline)) || break
		sleep 1
	done
	[[ $health == up ]] && found_after=$(seconds_since "$t0")
	note "Prometheus scrapes it as job api after ${found_after:-never} s"

	# Back to the role's minimum: the controller removes the instance after
	# its scale-down window (60 s by default).
	t0=$EPOCHREALTIME
	autoscaler_minimum default
	deadline=$((SECONDS + 240))
	while ((SECONDS < deadline)); do
		health=$(target_health api "$instance") || health=unreachable
		state=$(alert_state TimestampAPIDown instance "$instance") || state=unreachable
		case $state in
		firing) firing=1 ;;
		pending) [[ -n $pending_since ]] || pending_since=$EPOCHREALTIME ;;
		inactive)
			if [[ -n $pending_since ]]; then
				pending_max=$(awk -v a="$pending_max" -v b="$(seconds_since "$pending_since")" 'BEGIN { print (b > a ? b : a) }')
				pending_since=
			fi
			;;
		esac
		if [[ -z $health && $state == inactive ]]; then
			gone_after=$(seconds_since "$t0")
			break
		fi
		sleep 1
	done
	local ok=1
	[[ -n $found_after && -n $gone_after && $firing == 0 ]] || ok=0
	record pool-instance "$ok" "$(printf '%s scraped %s s after the minimum rose; target gone %s s after it fell; TimestampAPIDown %s (pending %s s at most)' \
		"$instance" "${found_after:-never}" "${gone_after:-never}" "$( ((firing)) && echo fired || echo 'never fired')" "$pending_max")"
}

# --- 4. backup metric ---------------------------------------------------------------------

check_backup_metric() {
	log "4. a full backup's metric reaches Prometheus"
	local node started=$EPOCHSECONDS t0=$EPOCHREALTIME value="" deadline ok=1 too_old missing
	node=$(suite_hosts galera | tail -n 1)
	if ! host_ssh "$node" systemctl start timestamp-backup@full.service; then
		record backup-metric 0 "timestamp-backup@full on $node failed; see journalctl -u timestamp-backup@full on $node"
		return 0
	fi
	note "full backup on $node took $(seconds_since "$t0") s"
	# The job rewrites the textfile at its end, and node_exporter serves it
	# at the next scrape.
	deadline=$((SECONDS + 60))
	until value=$(prom_query "max(timestamp_backup_last_success_timestamp_seconds{type=\"full\",host=\"$node\"})") &&
		[[ -n $value ]] && awk -v v="$value" -v s="$started" 'BEGIN { exit !(v >= s) }'; do
		((SECONDS < deadline)) || break
		sleep 1
	done
	if [[ -z $value ]] || ! awk -v v="$value" -v s="$started" 'BEGIN { exit !(v >= s) }'; then
		ok=0
		note "timestamp_backup_last_success_timestamp_seconds{type=\"full\"} of $node is '${value:-absent}', want at least $started"
	fi
	# The backup desynced the node; let it rejoin before the other checks.
	galera_wait_synced "$node"
	# On fresh hosts the metric was missing until now, so
	# TimestampBackupMetricMissing is pending. Prometheus drops it at the
	# first rule evaluation after the scrape that brought the metric: within
	# one evaluation interval (15 s), given 30 s of slack here.
	deadline=$((SECONDS + 45))
	while too_old=$(alert_state TimestampBackupTooOld) && missing=$(alert_state TimestampBackupMetricMissing) &&
		[[ $too_old != inactive || $missing != inactive ]]; do
		((SECONDS < deadline)) || break
		sleep 1
	done
	[[ $too_old == inactive && $missing == inactive ]] || ok=0
	record backup-metric "$ok" "$(printf 'metric %s in Prometheus %s s after the backup began; TimestampBackupTooOld %s, TimestampBackupMetricMissing %s' \
		"${value:-absent}" "$(seconds_since "$t0")" "$too_old" "$missing")"
}

# --- 5. quiet when healthy ---------------------------------------------------------------------

check_quiet() {
	log "5. no alert fires on the healthy topology"
	local firing deadline=$((SECONDS + 120)) started=$EPOCHREALTIME
	# Alerts left by an earlier suite's faults resolve within a scrape and
	# an evaluation once the hosts are healthy.
	while firing=$(firing_alerts) && [[ -n $firing ]]; do
		((SECONDS < deadline)) || break
		sleep 2
	done
	if [[ -n $firing ]]; then
		printf '      %s\n' "$firing"
		record quiet 0 "alerts still firing after $(seconds_since "$started") s"
	else
		record quiet 1 "no alert firing (waited $(seconds_since "$started") s)"
	fi
}

# --- 6. and 7. a Galera node stopped, then started ------------------------------------------------

# galera_wait_whole: poll until every Galera node of the inventory reports
# a cluster of all of them (galera_wait_synced checks the state only).
galera_wait_whole() {
	local nodes want node size deadline=$((SECONDS + 60))
	nodes=$(suite_hosts galera)
	want=$(wc -l <<<"$nodes")
	for node in $nodes; do
		until size=$(galera_status "$node" wsrep_cluster_size 2>/dev/null) && [[ $size == "$want" ]]; do
			((SECONDS < deadline)) || die "$node reports wsrep_cluster_size ${size:-unknown}, want $want"
			sleep 0.5
		done
	done
}

# restore: undo what a check that failed midway left behind.
restore() {
	((minimum_raised == 0)) || autoscaler_minimum default
	restore_node
}

restore_node() {
	[[ -n $stopped_node ]] || return 0
	host_ssh "$stopped_node" systemctl start mariadb || warn "starting MariaDB on $stopped_node failed"
	stopped_node=
}

check_cluster_size_alert() {
	log "6. MariaDB stopped on $node: $size_alert fires within its for window"
	local for_seconds eval_seconds scrape_seconds bound t0 state pending_after="" firing_after="" summary
	for_seconds=$(rule_for "$size_alert")
	eval_seconds=$(rule_interval "$size_alert")
	scrape_seconds=$(scrape_interval mysqld)
	if [[ -z $for_seconds || -z $eval_seconds || -z $scrape_seconds ]]; then
		record cluster-size-fires 0 "Prometheus does not report the rule $size_alert or the mysqld job"
		return 1
	fi
	# The remaining nodes report the smaller cluster at the next scrape,
	# the next evaluation makes the alert pending, and it fires at the
	# first evaluation after its for.
	bound=$(awk -v f="$for_seconds" -v e="$eval_seconds" -v s="$scrape_seconds" -v x="$slack" 'BEGIN { print f + e + s + x }')
	note "bound: for ${for_seconds} s + evaluation ${eval_seconds} s + scrape ${scrape_seconds} s + slack ${slack} s = ${bound} s"

	state=$(alert_state "$size_alert")
	if [[ $state != inactive ]]; then
		record cluster-size-fires 0 "$size_alert is already $state before the node stops"
		return 1
	fi

	t0=$EPOCHREALTIME
	stopped_node=$node
	host_ssh "$node" systemctl stop mariadb
	note "MariaDB on $node stopped in $(seconds_since "$t0") s"
	while :; do
		state=$(alert_state "$size_alert") || state=unknown
		if [[ $state == pending && -z $pending_after ]]; then
			pending_after=$(seconds_since "$t0")
			note "pending after $pending_after s"
		fi
		if [[ $state == firing ]]; then
			firing_after=$(seconds_since "$t0")
			break
		fi
		awk -v t="$(seconds_since "$t0")" -v b="$bound" 'BEGIN { exit !(t > b + 30) }' && break
		sleep 1
	done

	local ok=1 down no_primary want_summary
	summary=$(alert_json "$size_alert" | jq -r '.annotations.summary // empty')
	down=$(alert_state MariaDBDown host "$node")
	no_primary=$(alert_state GaleraNoPrimaryComponent)
	# Firing before its for has passed would mean that the window is not
	# the one of the rule.
	if [[ -z $firing_after ]] ||
		! awk -v t="$firing_after" -v f="$for_seconds" -v b="$bound" 'BEGIN { exit !(t >= f && t <= b) }'; then
		ok=0
	fi
	[[ $down == firing && $no_primary == inactive ]] || ok=0
	want_summary="The largest Galera component has $(($(suite_hosts galera | wc -l) - 1)) members"
	if [[ $summary != "$want_summary"* ]]; then
		ok=0
		note "summary: got '${summary:-none}', want it to begin with '$want_summary'"
	else
		note "summary: $summary"
	fi
	record cluster-size-fires "$ok" "$(printf '%s firing %s s after the stop (pending after %s s; want %s to %s s); MariaDBDown{host="%s"} %s; GaleraNoPrimaryComponent %s' \
		"$size_alert" "${firing_after:-never within $((${bound%.*} + 30))}" "${pending_after:-never}" "$for_seconds" "$bound" "$node" "$down" "$no_primary")"
}

check_cluster_size_resolves() {
	log "7. MariaDB started on $node: the cluster is whole and the alert resolves"
	local t0=$EPOCHREALTIME synced_after bound state deadline resolved_after="" ok=0
	restore_node
	# shellcheck disable=SC2046 # one node name per word
	galera_wait_synced $(suite_hosts galera)
	galera_wait_whole
	synced_after=$(seconds_since "$t0")
	note "$node Synced and the cluster at full size after $synced_after s"
	bound=$(awk -v e="$(rule_interval "$size_alert")" -v s="$(scrape_interval mysqld)" -v x="$slack" 'BEGIN { print e + s + x }')
	deadline=$(awk -v a="$synced_after" -v b="$bound" 'BEGIN { printf "%d", a + b + 30 }')
	while :; do
		state=$(alert_state "$size_alert") || state=unknown
		if [[ $state == inactive ]]; then
			resolved_after=$(seconds_since "$t0")
			break
		fi
		awk -v t="$(seconds_since "$t0")" -v d="$deadline" 'BEGIN { exit !(t > d) }' && break
		sleep 1
	done
	if [[ -n $resolved_after ]] &&
		awk -v r="$resolved_after" -v s="$synced_after" -v b="$bound" 'BEGIN { exit !(r - s <= b) }'; then
		ok=1
	fi
	record cluster-size-resolves "$ok" "$(printf '%s resolved %s s after the start, %s s after Synced (bound %s s)' \
		"$size_alert" "${resolved_after:-never}" \
		"$(awk -v r="${resolved_after:-}" -v s="$synced_after" 'BEGIN { if (r == "") print "-"; else printf "%.1f", r - s }')" "$bound")"
}

main() {
	require_root
	mkdir -p "$SUITE_WORK"
	trap restore EXIT
	monitoring_host=$(suite_hosts monitoring | head -n 1)
	[[ -n $monitoring_host ]] || die "$SUITE_INVENTORY has no host in the group monitoring"
	prom_url="http://$(host_address "$monitoring_host"):$prometheus_port"
	node=${MONITORING_NODE:-$(suite_hosts galera | sed -n 2p)}
	[[ -n $node ]] || die "$SUITE_INVENTORY has fewer than two Galera nodes"
	log "Prometheus at $prom_url; the Galera node to stop is $node"
	# shellcheck disable=SC2046 # one node name per word
	galera_wait_synced $(suite_hosts galera)

	check_targets
	check_metric_names
	check_pool_instance
	check_backup_metric
	check_quiet
	if check_cluster_size_alert; then
		check_cluster_size_resolves
	else
		restore_node
		# shellcheck disable=SC2046 # one node name per word
		galera_wait_synced $(suite_hosts galera)
	fi

	printf '\nmonitoring results (%d s)\n' $((EPOCHSECONDS - suite_start))
	printf '  %s\n' "${results[@]}"
	printf '%d passed, %d failed\n' "$passed" "$failed"
	((failed == 0))
}

main "$@"
