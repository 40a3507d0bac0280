#!/usr/bin/env bash
# Builds the read-only Debian 12 (bookworm) image that every test host boots
# from, into .testbed/image/rootfs, with mmdebstrap through the testbed's apt
# proxy. The image has only what a host needs to boot and be provisioned
# (systemd, SSH, Python for Ansible): the Ansible roles install their own
# packages, so the tests exercise the real install path.
#
# Usage: scripts/testbed/image.sh [--force]
#
# It rebuilds only when this script changed since the last build (a hash of
# it, package list included, is kept in .testbed/image/stamp), or with
# --force. It refuses to rebuild while a host still has the image mounted.
set -euo pipefail

# shellcheck source=scripts/testbed/lib.sh
source "$(dirname "$0")/lib.sh"

# Packages on top of mmdebstrap's "apt" variant (Essential packages and apt).
# procps and netbase have Priority important, so every Debian install, a
# Vagrant box included, has them: sysctl(8), ps(1), /etc/services.
readonly IMAGE_PACKAGES=(
	systemd systemd-sysv dbus
	openssh-server python3 sudo
	iproute2 ca-certificates
	procps netbase
)

readonly IMAGE_SUITE=bookworm

# The same archives as this machine's /etc/apt/sources.list.d/debian.sources,
# fetched through apt-cacher-ng. The image keeps these lines and the proxy
# setting (mmdebstrap writes --aptopt to /etc/apt/apt.conf.d/99mmdebstrap),
# so apt on every host uses the proxy too.
readonly IMAGE_SOURCES=(
	"deb http://deb.debian.org/debian bookworm main"
	"deb http://deb.debian.org/debian bookworm-updates main"
	"deb http://deb.debian.org/debian-security bookworm-security main"
)

image_stamp() {
	sha256sum "$TESTBED_SCRIPTS/image.sh" | cut -d' ' -f1
}

image_is_current() {
	[[ -d $TESTBED_IMAGE && -f $TESTBED_DIR/image/stamp &&
		$(cat "$TESTBED_DIR/image/stamp") == "$(image_stamp)" ]]
}

check_no_host_mounted() {
	local name
	for name in $(hosts_created); do
		if mountpoint -q "$(host_dir "$name")/root"; then
			die "host $name still uses the image; run scripts/testbed/down.sh before rebuilding it"
		fi
	done
}

# customize_image DIR: make the root filesystem neutral, so each host gets
# its own identity from host_create: no machine-id, no SSH host keys.
customize_image() {
	local root=$1
	: >"$root/etc/machine-id"
	rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
	systemctl --root="$root" enable systemd-networkd.service >/dev/null 2>&1
}

build_image() {
	local tmp="$TESTBED_DIR/image/rootfs.new" include
	include=$(
		IFS=,
		printf '%s' "${IMAGE_PACKAGES[*]}"
	)
	rm -rf "$tmp"
	mkdir -p "$TESTBED_DIR/image"

	# --skip=cleanup/apt/lists keeps the package lists, as a Vagrant box
	# has them, so a role's apt task works with or without update_cache.
	mmdebstrap --mode=root --variant=apt --include="$include" \
		--aptopt="Acquire::http::Proxy \"$TESTBED_PROXY_URL\";" \
		--skip=cleanup/apt/lists \
		"$IMAGE_SUITE" "$tmp" "${IMAGE_SOURCES[@]}" \
		>"$TESTBED_LOGS/image.log" 2>&1 ||
		die "mmdebstrap failed; see $TESTBED_LOGS/image.log"
	customize_image "$tmp"

	rm -rf "$TESTBED_IMAGE"
	mv "$tmp" "$TESTBED_IMAGE"
	image_stamp >"$TESTBED_DIR/image/stamp"
}

main() {
	local force=0
	case ${1:-} in
	"") ;;
	--force) force=1 ;;
	*) die "unknown option: $1 (usage: image.sh [--force])" ;;
	esac
	require_root

	if ((force == 0)) && image_is_current; then
		log "image is current: $TESTBED_IMAGE"
		return 0
	fi
	check_no_host_mounted

	mkdir -p "$TESTBED_LOGS"
	bridge_up
	proxy_up
	phase_start image "building the image with mmdebstrap (log: $TESTBED_LOGS/image.log)"
	build_image
	phase_end
	log "image ready: $TESTBED_IMAGE ($(du -sh "$TESTBED_IMAGE" | cut -f1))"
}

main "$@"
