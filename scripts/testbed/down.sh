#!/usr/bin/env bash
# Stops and removes the local test hosts of one instance (TESTBED_INSTANCE,
# unset for the default one) and what up.sh set up for them. That is the
# containers, their overlayfs mounts, cgroups and veths, the bridge tsbr0, the
# router namespace of a topology with sites (with its bridges and routes),
# plus the apt forwarder and the network namespace tb-NAME of a named
# instance. The shared nspawn tmpfs and apt-cacher-ng stop with the last
# instance that is up.
# Safe to run again, and when nothing runs.
#
# Usage: scripts/testbed/down.sh [--purge]
#
# The image, the apt cache, the SSH key and the logs are kept for the next
# up.sh. --purge deletes the named instance's .testbed/instances/NAME/, or,
# for the default instance, .testbed/ as a whole (refused while a named
# instance is up).
set -euo pipefail

# shellcheck source=scripts/testbed/lib.sh
source "$(dirname "$0")/lib.sh"

# Seconds a host gets to power off cleanly before its processes are killed.
readonly STOP_TIMEOUT=20

# close_ssh_masters: end the SSH connections that Ansible keeps open
# (ControlPersist) to the hosts.
close_ssh_masters() {
	local socket
	for socket in "$TESTBED_RUN"/ansible-cp/*; do
		[[ -S $socket ]] || continue
		ssh -o ControlPath="$socket" -O exit testbed-host >/dev/null 2>&1 || true
		rm -f "$socket"
	done
}

# stop_hosts: stop every host in parallel, then remove each one.
# The veths live in the instance's network namespace; when a named
# instance's namespace is gone, so are they.
stop_hosts() {
	local dir name pids=()
	for dir in "$TESTBED_HOSTS"/*/; do
		[[ -d $dir ]] || continue
		name=$(basename "$dir")
		if host_nspawn_pid "$name" >/dev/null; then
			log "stopping $name"
			host_stop "$name" "$STOP_TIMEOUT" &
			pids+=($!)
		fi
	done
	for name in "${pids[@]}"; do
		wait "$name" || true
	done

	for dir in "$TESTBED_HOSTS"/*/; do
		[[ -d $dir ]] || continue
		name=$(basename "$dir")
		# nspawn deletes the veth pair with the host's network namespace.
		# One left over means nspawn was killed before it could.
		if host_net_exists "$name" && host_net "$name" ip link show "vb-$name" >/dev/null 2>&1; then
			host_net "$name" ip link delete "vb-$name"
		fi
		host_destroy "$name"
		log "removed $name"
	done
}

main() {
	local purge=0
	case ${1:-} in
	"") ;;
	--purge) purge=1 ;;
	*) die "unknown option: $1 (usage: down.sh [--purge])" ;;
	esac
	require_root
	require_machine_netns

	close_ssh_masters
	stop_hosts
	wan_down
	forwarder_down
	proxy_down
	nspawn_runtime_down
	if [[ -z $TESTBED_NETNS ]] || netns_exists; then
		bridge_down
	else
		# The bridge went with the network namespace.
		rm -f "$TESTBED_RUN/bridge.created"
	fi
	netns_down
	rm -f "$TESTBED_TOPOLOGY_FILE"
	log "testbed${TESTBED_INSTANCE:+ instance $TESTBED_INSTANCE} is down"

	if ((purge == 1)); then
		purge_state
	fi
}

# purge_state: delete the instance's folder, .testbed/ for the default one.
purge_state() {
	local users
	[[ -d $TESTBED_INSTANCE_DIR ]] || return 0
	if [[ -z $TESTBED_INSTANCE ]]; then
		users=$(shared_users_other | paste -sd ' ' -)
		[[ -z $users ]] ||
			die "named instances are up and use the image under $TESTBED_DIR: $users; not purging (stop each with TESTBED_INSTANCE=NAME scripts/testbed/down.sh)"
	fi
	# Nothing may still be mounted below the folder, or rm would delete
	# files of the image through the mount.
	if grep -q " $TESTBED_INSTANCE_DIR/" /proc/self/mounts; then
		die "something is still mounted under $TESTBED_INSTANCE_DIR; not purging"
	fi
	rm -rf "$TESTBED_INSTANCE_DIR"
	log "purged $TESTBED_INSTANCE_DIR"
}

main "$@"
