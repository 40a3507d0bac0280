#!/usr/bin/env bash
# Boots the local test hosts of one topology and provisions them with the
# same Ansible playbook that Vagrant runs (ansible/site.yml).
#
# Usage: scripts/testbed/up.sh [TOPOLOGY]
#
# TOPOLOGY (argument, else the TOPOLOGY variable, default ha) names the
# inventory ansible/inventories/vagrant/TOPOLOGY.yml, which lists the hosts
# and their addresses. Hosts outside 192.168.56.0/24 (multi-dc) sit on one
# bridge per site behind a router namespace, with the inventory's
# testbed_wan_links as the delays between sites (lib.sh). Hosts that exist keep their state; hosts of another
# topology are removed. scripts/testbed/down.sh stops and removes them all.
#
# Settings (environment):
#   TESTBED_INSTANCE        name of an isolated instance (unset: the default
#                           one); see lib.sh
#   TESTBED_PLAYBOOK        playbook to run (default ansible/site.yml); the
#                           step is skipped while the file does not exist
#   TESTBED_INVENTORY_DIR   folder of the inventories (default
#                           ansible/inventories/vagrant)
#   TESTBED_READY_TIMEOUT   seconds to wait for /readyz (default 120; 0 skips
#                           the check)
set -euo pipefail

# shellcheck source=scripts/testbed/lib.sh
source "$(dirname "$0")/lib.sh"

# Debian packages this machine needs: package name, then a command it ships.
readonly HOST_PACKAGES=(
	"mmdebstrap mmdebstrap"
	"systemd-container systemd-nspawn"
	"apt-cacher-ng apt-cacher-ng"
	"ansible ansible-playbook"
	"jq jq"
	"openssh-client ssh"
	"curl curl"
	"iproute2 ip"
	"nftables nft"
	"socat socat"
)

readonly SSH_TIMEOUT=120

install_host_packages() {
	local entry missing=()
	for entry in "${HOST_PACKAGES[@]}"; do
		command -v "${entry#* }" >/dev/null || missing+=("${entry% *}")
	done
	if ((${#missing[@]} == 0)); then
		log "host packages: all present"
		return 0
	fi
	log "installing host packages: ${missing[*]}"
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

build_api() {
	if [[ ! -f $TESTBED_TOP/Makefile ]] || ! make -C "$TESTBED_TOP" -n build >/dev/null 2>&1; then
		log "skipping the API build: the Makefile has no 'build' target yet"
		return 0
	fi
	make -C "$TESTBED_TOP" build
}

# image_current: return 0 when the image exists and was built from the
# current image.sh. The test is image.sh's own: its stamp is the SHA-256 of
# image.sh.
image_current() {
	[[ -d $TESTBED_IMAGE && -f $TESTBED_DIR/image/stamp &&
		$(cat "$TESTBED_DIR/image/stamp") == "$(sha256sum "$TESTBED_SCRIPTS/image.sh" | cut -d' ' -f1)" ]]
}

# ensure_image: build the shared image with image.sh unless it is current.
# image.sh replaces the image in place and checks only the default
# instance's hosts, so a named instance never builds it, and the default
# instance does not while hosts of a named instance run on it.
ensure_image() {
	local others
	if image_current; then
		log "image is current: $TESTBED_IMAGE"
		return 0
	fi
	[[ -z $TESTBED_INSTANCE ]] ||
		die "the shared image $TESTBED_IMAGE is missing or older than image.sh, and a named instance does not build it; run scripts/testbed/image.sh without TESTBED_INSTANCE once no instance runs hosts"
	others=$(awk -v lower="lowerdir=$TESTBED_IMAGE" 'index($4 ",", lower ",") { print $2 }' /proc/self/mounts |
		grep -v "^$TESTBED_HOSTS/" | tr '\n' ' ') || true
	[[ -z $others ]] ||
		die "the image is older than image.sh, but hosts of named instances run on it ($others); stop them with TESTBED_INSTANCE=NAME scripts/testbed/down.sh first"
	"$TESTBED_SCRIPTS/image.sh"
}

# remove_other_hosts TOPOLOGY WANTED: destroy every host when the running
# topology is another one, because a host of the same name there carries
# that topology's state (a single-node Galera cluster in poc, for one).
# Otherwise destroy the hosts that are not in WANTED (a list of names) or
# were made from an older image.
remove_other_hosts() {
	local topology=$1 wanted=" $2 " name previous=
	read -r previous _ 2>/dev/null <"$TESTBED_TOPOLOGY_FILE" || true
	for name in $(hosts_created); do
		if [[ -n $previous && $previous != "$topology" ]]; then
			log "removing host $name: it belongs to the topology $previous"
			host_destroy "$name"
		elif [[ $wanted != *" $name "* ]]; then
			log "removing host $name: it is not in this topology"
			host_destroy "$name"
		elif ! cmp -s "$(host_dir "$name")/image.stamp" "$TESTBED_DIR/image/stamp"; then
			log "removing host $name: it was made from an older image"
			host_destroy "$name"
		fi
	done
}

# create_and_start_hosts HOSTS: HOSTS are "NAME ADDRESS" lines.
create_and_start_hosts() {
	local hosts=$1 name address
	while read -r name address; do
		if [[ ! -f $(host_dir "$name")/address ]]; then
			host_create "$name" "$address" "$hosts"
			log "created $name ($address)"
		elif [[ $(host_address "$name") != "$address" ]]; then
			die "host $name exists with address $(host_address "$name"), but the inventory sets $address; run scripts/testbed/down.sh first"
		fi
	done <<<"$hosts"

	while read -r name address; do
		host_start "$name"
		log "booting $name (init pid $(host_pid "$name"))"
	done <<<"$hosts"
}

# wait_for_ssh NAMES: poll every host in parallel until it accepts SSH.
wait_for_ssh() {
	local name failed=0 pids=()
	for name in $1; do
		(
			host_wait_ssh "$name" "$SSH_TIMEOUT" || exit 1
			log "$name accepts SSH after $(phase_seconds) s"
		) &
		pids+=($!)
	done
	for name in "${pids[@]}"; do
		wait "$name" || failed=1
	done
	((failed == 0)) || die "a host did not accept SSH within $SSH_TIMEOUT s; see $TESTBED_LOGS/NAME.log and status.sh"
}

# wait_for_ready ADDRESS: poll http://ADDRESS/readyz until it responds 2xx.
wait_for_ready() {
	local url="http://$1/readyz" timeout=${TESTBED_READY_TIMEOUT:-120} deadline
	deadline=$((SECONDS + timeout))
	until testbed_net curl -fsS --max-time 2 -o /dev/null "$url" 2>/dev/null; do
		((SECONDS < deadline)) || die "$url timed out: no 2xx response within $timeout s; run scripts/testbed/status.sh"
		sleep 0.5
	done
}

# warm_apt_proxy HOST: run apt-get update on HOST alone, so that the
# proxy's cache contains fresh index files (FreshIndexMaxAge, lib.sh)
# before the playbook updates every host at once.
warm_apt_proxy() {
	host_ssh "$1" timeout 300 apt-get update -q >"$TESTBED_LOGS/apt-warm.log" 2>&1 ||
		die "apt-get update on $1 through the proxy failed; see $TESTBED_LOGS/apt-warm.log and $TESTBED_SHARED_LOGS/apt-cacher-ng/"
}

print_timings() {
	local line
	phase_abort
	log "timings:"
	for line in "${TESTBED_TIMINGS[@]}"; do
		printf '    %s\n' "$line" >&2
	done
}

# raise_inotify_limits: every host's systemd takes inotify instances from
# the machine's shared per-user limit, and Debian's default of 128 runs out
# at a few dozen hosts ("Failed to allocate manager object: Too many open
# files"), for example with several testbed instances up. Only raises.
raise_inotify_limits() {
	local name want current
	for name in max_user_instances:4096 max_user_watches:1048576; do
		want=${name#*:}
		name=${name%%:*}
		current=$(<"/proc/sys/fs/inotify/$name")
		((current >= want)) || echo "$want" >"/proc/sys/fs/inotify/$name"
	done
}

# wan_configure INVENTORY_JSON SITES: set up the router namespace of the
# sites (none: remove it), and give each pair of sites the round-trip time
# and jitter of the inventory's testbed_wan_links. A pair it does not list
# gets no delay.
wan_configure() {
	local json=$1 sites=$2 a b rtt jitter
	if [[ -z $sites ]]; then
		wan_down
		return 0
	fi
	wan_up "$sites"
	while read -r a b rtt jitter; do
		[[ -n $a ]] || continue
		wan_set_link "$a" "$b" "$rtt" "$jitter"
		log "WAN $a-$b: round trip $rtt ms, jitter $jitter ms"
	done < <(inventory_wan_links <<<"$json")
}

main() {
	local topology=${1:-${TOPOLOGY:-ha}} inventory inventory_json hosts names sites
	local playbook=${TESTBED_PLAYBOOK:-$TESTBED_TOP/ansible/site.yml} service_address service_addresses
	TESTBED_TIMINGS=()
	require_root
	require_machine_netns
	trap 'print_timings' EXIT

	phase_start packages "checking the packages of this machine"
	install_host_packages
	phase_end

	inventory=$(inventory_file "$topology")
	inventory_json=$(inventory_json "$inventory") || die "ansible-inventory failed on $inventory"
	inventory_check_connection_vars "$inventory" <<<"$inventory_json"
	hosts=$(inventory_hosts "$inventory" <<<"$inventory_json")
	[[ -n $hosts ]] || die "$inventory lists no hosts"
	sites=$(inventory_sites "$inventory" <<<"$inventory_json")
	names=$(cut -d' ' -f1 <<<"$hosts" | tr '\n' ' ')
	log "topology $topology: $names${TESTBED_INSTANCE:+ (instance $TESTBED_INSTANCE, network namespace $TESTBED_NETNS)}"

	phase_start build "building the API"
	build_api
	phase_end

	phase_start image "checking the image"
	ensure_image
	phase_end

	phase_start network "setting up $TESTBED_BRIDGE ($TESTBED_BRIDGE_ADDR) and the apt proxy ($TESTBED_PROXY_URL)${TESTBED_NETNS:+ in the network namespace $TESTBED_NETNS}"
	testbed_network_up
	nspawn_runtime_up
	ssh_key_ensure
	raise_inotify_limits
	phase_end

	phase_start boot "booting the hosts"
	remove_other_hosts "$topology" "$names"
	wan_configure "$inventory_json" "$sites"
	create_and_start_hosts "$hosts"
	printf '%s %s\n' "$topology" "$inventory" >"$TESTBED_TOPOLOGY_FILE"
	phase_end

	phase_start ssh "waiting for SSH on every host"
	wait_for_ssh "$names"
	phase_end

	if [[ ! -f $playbook ]]; then
		log "skipping provisioning: $playbook does not exist yet"
		log "the hosts run unprovisioned; run commands on them with: source scripts/testbed/lib.sh; host_ssh NAME COMMAND"
		return 0
	fi

	phase_start warm "refreshing the apt proxy's index files from one host"
	warm_apt_proxy "${names%% *}"
	phase_end

	phase_start ansible "running ansible-playbook -i $inventory $playbook"
	testbed_playbook "$inventory" "$playbook" ||
		die "the playbook failed; the hosts keep running (scripts/testbed/status.sh, down.sh)"
	phase_end

	if [[ ${TESTBED_READY_TIMEOUT:-} == 0 ]]; then
		log "skipping the /readyz check: TESTBED_READY_TIMEOUT=0"
		return 0
	fi
	service_addresses=$(inventory_service_addresses <<<"$inventory_json")
	[[ -n $service_addresses ]] || service_addresses=$(inventory_service_address <<<"$inventory_json")
	[[ -n $service_addresses ]] ||
		die "$inventory sets no keepalived_vip and has no host in group loadbalancers"
	phase_start ready "waiting for /readyz on $(tr '\n' ' ' <<<"$service_addresses")"
	for service_address in $service_addresses; do
		wait_for_ready "$service_address"
	done
	phase_end

	log "the service is up; try:"
	for service_address in $service_addresses; do
		if [[ -n $TESTBED_NETNS ]]; then
			printf '    ip netns exec %s curl -X POST http://%s/app\n' "$TESTBED_NETNS" "$service_address"
		else
			printf '    curl -X POST http://%s/app\n' "$service_address"
		fi
	done
}

main "$@"
