#!/usr/bin/env bash
# Checks the monitoring the Ansible roles deploy, on this machine only:
#   - renders the monitoring role's files with its own tasks and a fixed
#     inventory (ansible/roles/monitoring/tests/), which validates them with
#     promtool check rules, promtool check config and amtool check-config
#     as a deployment does, then runs those checks again on the result;
#   - runs the promtool unit tests of every alert, and checks that each
#     alert has a `for`, a severity, a summary, a runbook, and a test where
#     it fires and one where it stays quiet;
#   - checks the example Alertmanager receivers and the switch of the clock
#     sync alert;
#   - runs the exporters role's VIP metric script against this machine's
#     addresses;
#   - checks the Grafana dashboard, parses each of its queries, and checks
#     the Grafana provisioning files that the role writes.
# Nothing is started and no other host is contacted.
#
# Usage: scripts/test-monitoring.sh
#
# Needs ansible-playbook and Debian's prometheus and prometheus-alertmanager
# (promtool, amtool). As root it installs the two packages when they are
# missing, without starting their services.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
role="$top/ansible/roles/monitoring"
tests="$role/tests"
vip_script="$top/ansible/roles/exporters/files/timestamp-vip-metric"

step() { printf '\n==> %s\n' "$*"; }

die() {
	printf 'test-monitoring: %s\n' "$*" >&2
	exit 1
}

# install_promtool installs Debian's prometheus and prometheus-alertmanager
# when promtool or amtool is missing. policy-rc.d keeps the packages from
# starting Prometheus and Alertmanager on this machine.
install_promtool() {
	if command -v promtool >/dev/null && command -v amtool >/dev/null; then
		return 0
	fi
	[[ $EUID -eq 0 ]] || die "promtool or amtool is missing; run: sudo apt-get install -y prometheus prometheus-alertmanager"
	step "installing prometheus and prometheus-alertmanager from the distribution's packages"
	local policy=/usr/sbin/policy-rc.d created=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		created=1
	fi
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		prometheus prometheus-alertmanager
	((created)) && rm -f "$policy"
	return 0
}

# yaml_python prints a Python interpreter that has PyYAML: Debian's, which
# Ansible uses, when the first python3 on PATH lacks it.
yaml_python() {
	local candidate
	for candidate in python3 /usr/bin/python3; do
		if "$candidate" -c 'import yaml' 2>/dev/null; then
			echo "$candidate"
			return 0
		fi
	done
	die "no python3 with the yaml module; install python3-yaml"
}

# render DIR [ANSIBLE_ARGS...] renders the monitoring role's files into DIR.
render() {
	local dir=$1
	shift
	mkdir -p "$dir"
	if ! ANSIBLE_ROLES_PATH="$top/ansible/roles" ANSIBLE_RETRY_FILES_ENABLED=false \
		ansible-playbook -i "$tests/inventory.yml" "$tests/render.yml" \
		-e "monitoring_test_output_dir=$dir" "$@" >"$dir.log" 2>&1; then
		cat "$dir.log" >&2
		die "rendering the monitoring role failed (log above)"
	fi
}

# expect_vip_metric VIP WANT checks the script's output for an address
# that an interface of this machine has (WANT 1) or that none has (WANT 0).
expect_vip_metric() {
	local vip=$1 want=$2 out="$work/vip-$1.prom"
	"$vip_script" "$vip" "$out"
	promtool check metrics <"$out" || die "invalid exposition format in $out"
	grep -qx "timestamp_vip_held{vip=\"$vip\"} $want" "$out" ||
		die "VIP $vip: got $(grep -v '^#' "$out"), want timestamp_vip_held{vip=\"$vip\"} $want"
	echo "VIP $vip: timestamp_vip_held $want"
}

check_vip_script() {
	step "VIP metric script (exporters role)"
	expect_vip_metric 127.0.0.1 1
	# 192.0.2.1 (TEST-NET-1) is never assigned to a host.
	expect_vip_metric 192.0.2.1 0

	local status=0
	"$vip_script" '10.0.0.1;rm' "$work/bad.prom" 2>/dev/null || status=$?
	[[ $status -eq 2 && ! -e $work/bad.prom ]] ||
		die "an invalid VIP: got exit status $status, want 2 and no file"

	# When `ip` fails, the script keeps the previous file.
	local fake="$work/fake-bin" out="$work/vip-127.0.0.1.prom" before
	mkdir -p "$fake"
	printf '#!/bin/sh\nexit 1\n' >"$fake/ip"
	chmod 755 "$fake/ip"
	before=$(cat "$out")
	status=0
	PATH="$fake:$PATH" "$vip_script" 127.0.0.1 "$out" 2>/dev/null || status=$?
	[[ $status -eq 1 ]] || die "a failing ip: got exit status $status, want 1"
	[[ $(cat "$out") == "$before" ]] || die "a failing ip changed $out"
	echo "invalid VIP rejected; failing ip leaves the file unchanged"
}

install_promtool
command -v ansible-playbook >/dev/null || die "ansible-playbook is missing; run: apt-get install -y ansible"
python=$(yaml_python)
promtool --version | head -n 1
amtool --version 2>&1 | head -n 1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step "render the monitoring role (validated by promtool and amtool as in a deployment)"
render "$work/default"
prometheus_dir="$work/default/prometheus"
rules="$prometheus_dir/rules/timestamp-alerts.yml"

step "promtool check config (the rendered prometheus.yml)"
promtool check config "$prometheus_dir/prometheus.yml"

step "promtool check rules (the rendered alert rules)"
promtool check rules --lint=all --lint-fatal "$rules"

step "amtool check-config (the rendered alertmanager.yml)"
amtool check-config "$prometheus_dir/alertmanager.yml"

step "every alert has for, severity, summary, runbook, a firing and a quiet test"
"$python" "$tests/check_alerts.py" "$rules" "$tests"/promtool/*_test.yml

step "promtool test rules"
mkdir -p "$prometheus_dir/tests"
cp "$tests"/promtool/*_test.yml "$prometheus_dir/tests/"
(cd "$prometheus_dir/tests" && promtool test rules ./*_test.yml)

step "render with the example receivers and without the clock sync alert"
render "$work/example" -e "@$tests/receiver_example.yml" -e monitoring_clock_sync_alert_enabled=false
amtool check-config "$work/example/prometheus/alertmanager.yml"
grep -q 'receiver: pager' "$work/example/prometheus/alertmanager.yml" ||
	die "the example route to the pager receiver is missing from alertmanager.yml"
if grep -q 'alert: HostClockNotSynchronised' "$work/example/prometheus/rules/timestamp-alerts.yml"; then
	die "HostClockNotSynchronised is rendered although monitoring_clock_sync_alert_enabled is false"
fi
echo "example receivers valid; HostClockNotSynchronised left out"

check_vip_script

step "Grafana dashboard (files/grafana/timestamp.json) and provisioning files"
"$python" "$tests/check_dashboard.py" "$role/files/grafana/timestamp.json" "$work/dashboard-rules.yml"
promtool check rules "$work/dashboard-rules.yml"
grafana="$work/default/grafana"
cmp "$role/files/grafana/timestamp.json" "$grafana/dashboards/timestamp.json" ||
	die "the provisioned dashboard differs from files/grafana/timestamp.json"
for file in "$grafana"/provisioning/datasources/timestamp-prometheus.yml "$grafana"/provisioning/dashboards/timestamp.yml; do
	"$python" -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' "$file" || die "invalid YAML in $file"
done
grep -q 'url: http://192.0.2.41:9090$' "$grafana/provisioning/datasources/timestamp-prometheus.yml" ||
	die "the Grafana data source does not point at mon1's Prometheus (192.0.2.41:9090)"
echo "provisioning files valid"

step "monitoring checks passed"
