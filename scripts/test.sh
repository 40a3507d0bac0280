#!/usr/bin/env bash
# The project's test command. `make test` runs every stage; a stage name
# runs only that stage.
#
# Usage: scripts/test.sh [all|go|fuzz|lint|hosts]
#   go     go vet, gofmt, the OpenAPI spec check, unit tests, and the
#          integration tests on the development MariaDB (started here when
#          it is not running, stopped again afterwards)
#   fuzz   the request fuzz target for FUZZTIME (default 100000x: executions)
#   lint   ansible-lint, ansible-playbook --syntax-check, the production
#          inventory's layout against multi-dc (scripts/check-inventories.py),
#          vagrant validate, and the design document's diagrams and PDF
#          (scripts/docs.sh check)
#   hosts  boot the local test hosts of the ha topology once (needs root),
#          run its suites on them (HOST_SUITES, default all, in order), stop
#          the hosts; then the same for the multi-dc topology and its suite
#          (MULTI_DC_SUITES, default multi-dc; empty skips the topology)
#
# Under CI=true nothing is skipped: a missing database or tool fails.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
# A count, not a duration: with a duration, Go 1.26's fuzzing coordinator
# can fail the target with a bare "context deadline exceeded" when a worker
# is still busy at the deadline on a loaded machine (Go issue 75804, fixed
# in Go 1.27). 100000 executions took 22 s on an idle 2-core machine.
fuzztime=${FUZZTIME:-100000x}

step() { printf '\n==> %s\n' "$*"; }

die() {
	printf 'test: %s\n' "$*" >&2
	exit 1
}

go_checks() {
	step "go vet"
	go vet ./...

	step "gofmt"
	local unformatted
	unformatted=$(gofmt -l api)
	[[ -z $unformatted ]] || die "files need gofmt: $unformatted"

	step "OpenAPI spec is up to date (swag init leaves no diff)"
	local spec
	spec=$(mktemp -d)
	go run github.com/swaggo/swag/cmd/swag@v1.16.6 init --quiet \
		--dir api/httpapi,api --generalInfo server.go --parseInternal \
		--output "$spec/docs" --outputTypes go,json,yaml
	if ! diff -r "$spec/docs" api/docs; then
		rm -rf "$spec"
		die "api/docs is stale: run 'make swagger' and commit the result"
	fi
	rm -rf "$spec"
}

go_tests() {
	local started=0
	if ! scripts/devdb.sh status 2>/dev/null; then
		scripts/devdb.sh start
		started=1
	fi
	eval "$(scripts/devdb.sh env)"

	# -p 1: one integration test stops the shared server to check readiness,
	# so packages must not run their database tests at the same time. The
	# store and the binary are tested with each write path.
	local status=0 mode
	for mode in true false; do
		step "go test (unit and integration on MariaDB at $TSAPI_DB_ADDR, group commit $mode)"
		TSAPI_GROUP_COMMIT=$mode go test -count=1 -p 1 -race ./... || status=$?
	done
	((started)) && scripts/devdb.sh stop
	return "$status"
}

fuzz() {
	step "fuzz the request path, headers and body ($fuzztime)"
	go test -run '^$' -fuzz FuzzRequest -fuzztime "$fuzztime" ./api/httpapi/
}

lint() {
	if [[ ! -f ansible/site.yml ]]; then
		[[ ${CI:-} == true ]] && die "ansible/site.yml is missing"
		step "lint skipped: no ansible/site.yml yet"
		return 0
	fi
	step "ansible-playbook --syntax-check"
	local playbook
	for playbook in ansible/*.yml; do
		ansible-playbook --syntax-check -i ansible/inventories/vagrant/ha.yml "$playbook"
	done

	step "ansible-lint (production profile)"
	ansible-lint --profile production ansible/

	step "monitoring: promtool and amtool checks, alert rule unit tests"
	scripts/test-monitoring.sh

	step "the example production inventory has the layout of the multi-dc test hosts"
	python3 scripts/check-inventories.py

	step "vagrant validate (ha, poc and multi-dc)"
	TOPOLOGY=ha vagrant validate --ignore-provider
	TOPOLOGY=poc vagrant validate --ignore-provider
	TOPOLOGY=multi-dc vagrant validate --ignore-provider

	step "design document: the diagrams match the inventories, docs/design.pdf is current"
	if command -v dot >/dev/null && command -v pdfinfo >/dev/null; then
		scripts/docs.sh check
	elif [[ ${CI:-} == true ]]; then
		die "graphviz or poppler-utils is missing; .ci/run installs them"
	else
		step "skipped: graphviz or poppler-utils is missing (apt-get install graphviz poppler-utils)"
	fi
}

# The suites that run on the local test hosts, in order, per topology. Each
# script ends with an "N passed, N failed" line and exits non-zero on any
# failure.
# shellcheck disable=SC2206 # the variables are space-separated lists
ha_suites=(${HOST_SUITES:-e2e monitoring elastic faults backup-drills})
# shellcheck disable=SC2206
multi_dc_suites=(${MULTI_DC_SUITES-multi-dc})

# on_topology TOPOLOGY SUITE...: boot and provision TOPOLOGY's test hosts,
# run each SUITE on them until one fails, and stop the hosts.
on_topology() {
	local topology=$1 suite status=0
	shift
	step "boot and provision the $topology test hosts"
	TOPOLOGY=$topology scripts/testbed/up.sh
	for suite in "$@"; do
		step "suite $suite on the local test hosts of $topology"
		if ! "scripts/$suite.sh"; then
			status=1
			break
		fi
	done
	step "stop the $topology test hosts"
	scripts/testbed/down.sh
	return "$status"
}

hosts() {
	[[ $EUID -eq 0 ]] || die "the suites on the local test hosts boot containers and need root"
	local suite
	for suite in "${ha_suites[@]}" "${multi_dc_suites[@]}"; do
		[[ -x scripts/$suite.sh ]] || die "suite scripts/$suite.sh is missing"
	done
	# The drills wipe every node; on the hosts that this stage boots for
	# itself that is what they are for.
	export DRILLS_ON_DEFAULT_TESTBED=yes
	if ((${#ha_suites[@]})); then
		on_topology ha "${ha_suites[@]}" || return 1
	fi
	if ((${#multi_dc_suites[@]})); then
		on_topology multi-dc "${multi_dc_suites[@]}" || return 1
	fi
}

case ${1:-all} in
all)
	go_checks
	go_tests
	fuzz
	lint
	hosts
	;;
go)
	go_checks
	go_tests
	;;
fuzz) fuzz ;;
lint) lint ;;
hosts) hosts ;;
*)
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
