#!/usr/bin/env bash
# Stops and removes the local test hosts and what up.sh set up for them: the
# containers, their overlayfs mounts, cgroups and veths, the bridge tsbr0,
# the nspawn tmpfs and the testbed's apt-cacher-ng. Safe to run again, and
# when nothing runs.
#
# Usage: scripts/testbed/down.sh [--purge]
#
# The image, the apt cache, the SSH key and the logs under .testbed/ are kept
# for the next up.sh; --purge deletes .testbed/ as a whole.
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
		if ip link show "vb-$name" >/dev/null 2>&1; then
			ip link delete "vb-$name"
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

	close_ssh_masters
	stop_hosts
	proxy_down
	rm -f "$TESTBED_RUN/apt-cacher-ng.socket"
	nspawn_runtime_down
	bridge_down
	rm -f "$TESTBED_DIR/topology"
	log "testbed is down"

	if ((purge == 1)) && [[ -d $TESTBED_DIR ]]; then
		# Nothing may still be mounted below .testbed/, or rm would
		# delete files of the image through the mount.
		if grep -q " $TESTBED_DIR/" /proc/self/mounts; then
			die "something is still mounted under $TESTBED_DIR; not purging"
		fi
		rm -rf "$TESTBED_DIR"
		log "purged $TESTBED_DIR"
	fi
}

main "$@"
