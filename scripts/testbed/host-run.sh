#!/usr/bin/env bash
# Launcher of one test host; host_start in lib.sh runs it in the background.
#
# Usage: scripts/testbed/host-run.sh NAME
#
# It boots the host with systemd-nspawn in the host's own cgroups, and boots
# it again each time nspawn exits with 133 (the container rebooted). Any
# other exit code ends the launcher. The launcher itself stays outside those
# cgroups, so killing everything in them (host_kill_cgroup) leaves it to
# log the exit and clean up.
set -euo pipefail

# shellcheck source=scripts/testbed/lib.sh
source "$(dirname "$0")/lib.sh"

# Capabilities beyond nspawn's default set. CAP_NET_ADMIN lets keepalived add
# and remove the VIP and lets nft load rules into the host's own network
# namespace (nspawn grants it with a private network anyway; it is listed so
# the need is visible). keepalived's VRRP sockets need CAP_NET_RAW, which is
# in the default set. CAP_SYS_TIME is left out on purpose: the clock is the
# machine's, shared by every host, so chrony cannot set it from a host.
readonly NSPAWN_CAPABILITIES=CAP_NET_ADMIN

# Exit code of systemd-nspawn when the container asked for a reboot.
readonly NSPAWN_EXIT_REBOOT=133

boot_host() {
	local name=$1 dir=$2 bridge net_exec
	# nspawn runs in the network namespace of the host's bridge, where it
	# creates the veth vb-NAME and attaches it to that bridge: tsbr0 in the
	# instance's namespace (tb-INSTANCE for a named instance), or a site
	# bridge in the router namespace.
	bridge=$(host_bridge "$name")
	net_exec=("${TESTBED_NET_EXEC[@]}")
	[[ $bridge == "$TESTBED_BRIDGE" ]] || net_exec=("${TESTBED_WAN_EXEC[@]}")
	# --resolv-conf=off and --timezone=off keep the host's /etc as
	# host_create wrote it, instead of copying this machine's DNS servers
	# and time zone into it.
	# --console=read-only sends the console to this launcher's log, and
	# SYSTEMD_COLORS=0 keeps systemd's colour codes out of it.
	(
		echo "$BASHPID" >"$dir/nspawn.pid"
		host_cgroups_assign "$name" "$BASHPID"
		exec "${net_exec[@]}" systemd-nspawn --boot --register=no --keep-unit \
			--machine="$name" --directory="$dir/root" \
			--network-bridge="$bridge" --capability="$NSPAWN_CAPABILITIES" \
			--resolv-conf=off --timezone=off --link-journal=no --console=read-only \
			--setenv=SYSTEMD_COLORS=0
	)
}

main() {
	local name=${1:?usage: host-run.sh NAME} dir rc
	dir=$(host_dir "$name")
	[[ -f $dir/address ]] || die "host $name does not exist"

	echo "$$" >"$dir/launcher.pid"

	while :; do
		printf '%s testbed: booting %s\n' "$(date -u +%FT%TZ)" "$name"
		rc=0
		boot_host "$name" "$dir" || rc=$?
		printf '%s testbed: %s exited with code %s\n' "$(date -u +%FT%TZ)" "$name" "$rc"
		[[ $rc -eq $NSPAWN_EXIT_REBOOT ]] || break
	done
	rm -f "$dir/nspawn.pid" "$dir/launcher.pid"
}

main "$@"
