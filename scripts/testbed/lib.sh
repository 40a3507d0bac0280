# shellcheck shell=bash
# Shared functions of the local test hosts: Debian 12 containers booted with
# systemd-nspawn on the bridge tsbr0 (192.168.56.1/24), one overlayfs per host
# over a cached image. A topology with several sites (multi-dc) puts each
# site's hosts on a bridge of their own in a router namespace, with a
# simulated WAN between the sites (see "sites and the simulated WAN" below). up.sh, down.sh, status.sh and the test suites (fault
# injection, backup drills) source this file:
#
#   source scripts/testbed/lib.sh
#   testbed_enter "$@"    # suites only: run in the instance's network
#   host_kill db2; host_start db2; host_wait_ssh db2
#
# TESTBED_INSTANCE=NAME selects an isolated testbed instance, so several
# people can run the same topology at the same addresses at once. A named
# instance keeps its state in .testbed/instances/NAME/, and its bridge, veths
# and hosts live in the network namespace tb-NAME. Unset, it is the default
# instance: state in .testbed/ and the bridge in the machine's own network
# namespace. All instances share the image, the SSH key and the apt proxy
# with its cache.
#
# The functions named host_*, testbed_playbook and testbed_enter are the
# stable interface for those suites. Everything else may change. Sourcing
# sets no shell options and starts nothing; it fails when TESTBED_INSTANCE
# is invalid. All functions need root.

TESTBED_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TESTBED_SCRIPTS="$TESTBED_TOP/scripts/testbed"

TESTBED_INSTANCE=${TESTBED_INSTANCE:-}
if [[ -n $TESTBED_INSTANCE && ! $TESTBED_INSTANCE =~ ^[a-z0-9][a-z0-9-]{0,11}$ ]]; then
	printf 'ERROR: TESTBED_INSTANCE=%s is invalid: use 1 to 12 of a-z, 0-9 and -, starting with a letter or digit (its network namespace is tb-NAME)\n' \
		"$TESTBED_INSTANCE" >&2
	return 1
fi

# Shared by every instance: the image, the apt cache, the apt-cacher-ng that
# serves it (its pid file, socket and logs below run/ and log/), the SSH key.
TESTBED_DIR="$TESTBED_TOP/.testbed"
TESTBED_IMAGE="$TESTBED_DIR/image/rootfs"
TESTBED_SSH_KEY="$TESTBED_DIR/ssh/id_ed25519"
TESTBED_SHARED_RUN="$TESTBED_DIR/run"
TESTBED_SHARED_LOGS="$TESTBED_DIR/log"

# Per instance. TESTBED_NET_EXEC is the command prefix that runs a command in
# the instance's network namespace (empty for the default instance), and
# TESTBED_LABEL names its cgroups and overlay mounts.
if [[ -n $TESTBED_INSTANCE ]]; then
	TESTBED_INSTANCE_DIR="$TESTBED_DIR/instances/$TESTBED_INSTANCE"
	TESTBED_NETNS="tb-$TESTBED_INSTANCE"
	TESTBED_NET_EXEC=(nsenter "--net=/run/netns/$TESTBED_NETNS" --)
	TESTBED_LABEL="testbed-$TESTBED_INSTANCE"
else
	TESTBED_INSTANCE_DIR="$TESTBED_DIR"
	TESTBED_NETNS=
	TESTBED_NET_EXEC=()
	TESTBED_LABEL=testbed
fi
TESTBED_HOSTS="$TESTBED_INSTANCE_DIR/hosts"
TESTBED_RUN="$TESTBED_INSTANCE_DIR/run"
TESTBED_LOGS="$TESTBED_INSTANCE_DIR/log"
TESTBED_KNOWN_HOSTS="$TESTBED_INSTANCE_DIR/ssh/known_hosts"
# shellcheck disable=SC2034 # read by up.sh, down.sh and status.sh
TESTBED_TOPOLOGY_FILE="$TESTBED_INSTANCE_DIR/topology"

TESTBED_BRIDGE=tsbr0
TESTBED_BRIDGE_ADDR=192.168.56.1
TESTBED_PREFIX_LEN=24
TESTBED_SUBNET_PREFIX=192.168.56.
# Every test host has an address in 192.168.56.0/21: on tsbr0 in
# 192.168.56.0/24, or on a site bridge in one of 192.168.57.0/24 to
# 192.168.63.0/24. In each /24, .1 is the bridge (tsbr0) or the router's
# gateway (a site), and 192.168.56.2 is the router's uplink on tsbr0.
TESTBED_RANGE=192.168.56.0/21
# The router namespace of the sites: tbwan, or tbwan-NAME in a named
# instance. Its name does not start with tb-, so shared_users_other never
# takes it for an instance.
TESTBED_WAN_NETNS=tbwan${TESTBED_INSTANCE:+-$TESTBED_INSTANCE}
TESTBED_WAN_EXEC=(nsenter "--net=/run/netns/$TESTBED_WAN_NETNS" --)
TESTBED_WAN_UPLINK=tbwan0
TESTBED_WAN_UPLINK_ADDR=192.168.56.2
TESTBED_PROXY_PORT=3142
TESTBED_PROXY_URL="http://$TESTBED_BRIDGE_ADDR:$TESTBED_PROXY_PORT"
TESTBED_PROXY_SOCKET="$TESTBED_SHARED_RUN/apt-cacher-ng.socket"

# apt-cacher-ng's inetd bridge (Debian package apt-cacher-ng 3.7.4): it
# connects to the daemon's socket and relays its standard input and output.
TESTBED_IN_ACNG=/usr/lib/apt-cacher-ng/in.acng

# The cgroup v1 hierarchies each host gets its own cgroup in: name=systemd
# and memory, plus the cgroup v2 ("unified") one. nspawn runs the container's
# systemd inside the launcher's cgroup (--keep-unit), so two hosts in one
# cgroup would manage each other's processes.
TESTBED_CGROUP_HIERARCHIES=(systemd memory unified)

# --- messages and timing ----------------------------------------------------

log() { printf '==> %s\n' "$*" >&2; }

warn() { printf 'WARNING: %s\n' "$*" >&2; }

die() {
	printf 'ERROR: %s\n' "$*" >&2
	exit 1
}

# phase_start NAME MESSAGE: print MESSAGE and start timing the phase NAME.
# phase_end prints the time it took and adds it to TESTBED_TIMINGS;
# phase_abort adds the time of a phase that failed.
phase_start() {
	_phase_name=$1
	_phase_t0=$EPOCHREALTIME
	log "$2"
}

phase_seconds() {
	awk -v a="$_phase_t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

phase_end() {
	local seconds
	seconds=$(phase_seconds)
	printf '    done in %s s\n' "$seconds" >&2
	TESTBED_TIMINGS+=("$(printf '%-14s %6s s' "$_phase_name" "$seconds")")
	_phase_name=
}

phase_abort() {
	[[ -n ${_phase_name:-} ]] || return 0
	TESTBED_TIMINGS+=("$(printf '%-14s %6s s (failed)' "$_phase_name" "$(phase_seconds)")")
	_phase_name=
}

require_root() {
	[[ $EUID -eq 0 ]] || die "the testbed needs root (bridge, mounts, containers); run it as root"
}

# require_machine_netns: die when this process runs in an instance's network
# namespace. up.sh and down.sh start and stop the shared apt proxy, which must
# reach the Debian mirror through the machine's network, and up.sh installs
# packages.
require_machine_netns() {
	local netns
	netns=$(ip netns identify 2>/dev/null | grep -m1 '^tb-') || return 0
	die "this runs inside the network namespace $netns; run it from the machine's own network namespace (TESTBED_INSTANCE selects the instance)"
}

# --- inventory --------------------------------------------------------------

# inventory_file TOPOLOGY: print the path of the topology's inventory.
# TESTBED_INVENTORY_DIR overrides the folder (default ansible/inventories/vagrant).
inventory_file() {
	local file="${TESTBED_INVENTORY_DIR:-$TESTBED_TOP/ansible/inventories/vagrant}/$1.yml"
	[[ -f $file ]] || die "inventory not found: $file (TOPOLOGY=$1; expected ha, poc or multi-dc)"
	printf '%s\n' "$file"
}

# inventory_json FILE: print ansible-inventory's JSON of FILE, group_vars of
# the inventory folder and of ansible/ (the playbook folder) included.
inventory_json() {
	local playbook_dir=()
	[[ -d $TESTBED_TOP/ansible ]] && playbook_dir=(--playbook-dir "$TESTBED_TOP/ansible")
	ansible-inventory -i "$1" "${playbook_dir[@]}" --list
}

# inventory_hosts FILE < JSON: print "NAME ADDRESS" for each host in JSON
# (inventory_json of FILE), sorted by name, after checking that the host fits
# the testbed.
inventory_hosts() {
	local name address private_ip
	while read -r name address private_ip; do
		[[ $name =~ ^[a-z][a-z0-9-]{0,11}$ ]] ||
			die "$1: host name '$name' is invalid here: use 1 to 12 of a-z, 0-9, '-' (the host-side veth is vb-NAME, at most 15 characters)"
		address_valid "$address" ||
			die "$1: host $name has ansible_host '$address', expected one in $TESTBED_RANGE whose last number is 3 to 254 (.1 and .2 belong to the bridge and the router)"
		[[ $private_ip == "$address" ]] ||
			die "$1: host $name has private_ip '$private_ip' but ansible_host '$address'; both must be the same address"
		printf '%s %s\n' "$name" "$address"
	done < <(jq -r '._meta.hostvars | to_entries[]
		| "\(.key) \(.value.ansible_host // "-") \(.value.private_ip // "-")"' | sort)
}

# address_valid ADDRESS: return 0 when ADDRESS can be a test host's: in
# 192.168.56.0/21, last number 3 to 254.
address_valid() {
	[[ $1 =~ ^192\.168\.(5[6-9]|6[0-3])\.([0-9]{1,3})$ ]] &&
		((BASH_REMATCH[2] >= 3 && BASH_REMATCH[2] <= 254))
}

# address_bridge ADDRESS: print the bridge of a host with ADDRESS: tsbr0 for
# 192.168.56.0/24, else tsbrN for the site network 192.168.N.0/24.
address_bridge() {
	local octet
	octet=$(cut -d. -f3 <<<"$1")
	if ((octet == 56)); then
		printf '%s\n' "$TESTBED_BRIDGE"
	else
		printf 'tsbr%s\n' "$octet"
	fi
}

# inventory_sites FILE < JSON: print "SITE NETWORK" (such as "dc1
# 192.168.57.0") for each datacenter whose hosts are outside 192.168.56.0/24,
# sorted by site. All hosts of such a site must share one /24, and no two
# sites may share one, because the router finds a packet's site by its
# network.
inventory_sites() {
	local pairs site network other
	pairs=$(jq -r '._meta.hostvars | to_entries[]
		| "\(.value.datacenter // "-") \(.value.ansible_host // "-")"' |
		awk '{ split($2, a, "."); if (a[3] != 56) print $1, a[1] "." a[2] "." a[3] ".0" }' | sort -u)
	[[ -n $pairs ]] || return 0
	while read -r site network; do
		[[ $site =~ ^[a-z0-9]{1,10}$ ]] ||
			die "$1: datacenter '$site' is invalid for a site of the test hosts: use 1 to 10 of a-z and 0-9"
		other=$(awk -v s="$site" -v n="$network" '($1 == s) != ($2 == n)' <<<"$pairs")
		[[ -z $other ]] ||
			die "$1: site $site and network $network are not one to one ($(tr '\n' ' ' <<<"$other")); give each datacenter its own /24"
	done <<<"$pairs"
	printf '%s\n' "$pairs"
}

# inventory_wan_links < JSON: print "SITE SITE RTT_MS JITTER_MS" for each
# entry of the inventory's testbed_wan_links.
inventory_wan_links() {
	jq -r '._meta.hostvars | [.[] | .testbed_wan_links // empty] | first // []
		| .[] | "\(.between[0]) \(.between[1]) \(.rtt_ms) \(.jitter_ms // 0)"'
}

# inventory_service_addresses < JSON: print every keepalived_vip of the
# inventory, one per line, sorted; none when it sets none.
inventory_service_addresses() {
	jq -r '._meta.hostvars | [.[] | .keepalived_vip // empty] | unique | .[]'
}

# inventory_service_address < JSON: print the address where the service
# listens: keepalived_vip when the inventory sets it, else the ansible_host
# of the first host in the group loadbalancers.
inventory_service_address() {
	jq -r '._meta.hostvars as $vars
		| ([$vars[] | .keepalived_vip // empty] | first)
		// ((.loadbalancers.hosts // []) | sort | first | $vars[.].ansible_host)
		// empty'
}

# inventory_check_connection_vars FILE < JSON: fail when the inventory sets the SSH
# user or key, because inventory variables override the testbed's settings
# in the environment and would make Ansible log in as the Vagrant user.
inventory_check_connection_vars() {
	local found
	found=$(jq -r '._meta.hostvars | to_entries[] | .key as $host | .value | keys[]
		| select(test("^ansible_(ssh_)?(user|private_key_file)$")) | "\($host): \(.)"')
	[[ -z $found ]] ||
		die "$1 sets connection variables that belong to Vagrant, not the inventory: $found"
}

# --- instance network namespace ---------------------------------------------

# testbed_net COMMAND...: run COMMAND in the instance's network namespace, or
# as it is for the default instance. nsenter switches the network namespace
# only. `ip netns exec` would also give COMMAND a private mount namespace with
# a fresh /sys, which hides /sys/fs/cgroup (nspawn then fails with "Failed to
# determine whether the unified cgroups hierarchy is used") and keeps the
# hosts' overlay mounts from every other script.
testbed_net() {
	"${TESTBED_NET_EXEC[@]}" "$@"
}

# netns_exists: return 0 when the named instance's network namespace exists.
netns_exists() {
	[[ -n $TESTBED_NETNS && -e /run/netns/$TESTBED_NETNS ]]
}

# netns_up: create the named instance's network namespace tb-NAME unless it
# exists, with its loopback up. No-op for the default instance.
netns_up() {
	[[ -n $TESTBED_NETNS ]] || return 0
	netns_exists || ip netns add "$TESTBED_NETNS"
	ip -n "$TESTBED_NETNS" link set lo up
}

# netns_down: delete the named instance's network namespace. A process still
# inside keeps it alive without a name, so that is reported.
netns_down() {
	local pids
	netns_exists || return 0
	pids=$(ip netns pids "$TESTBED_NETNS" 2>/dev/null | tr '\n' ' ')
	[[ -z $pids ]] || warn "processes still run in $TESTBED_NETNS: $pids; the namespace lives on until they exit"
	ip netns delete "$TESTBED_NETNS"
}

# testbed_entered: return 0 when this process runs in the named instance's
# network namespace.
testbed_entered() {
	netns_exists &&
		[[ $(stat -L -c %i /proc/self/ns/net) == "$(stat -L -c %i "/run/netns/$TESTBED_NETNS")" ]]
}

# testbed_enter [ARGUMENTS...]
#   Makes the calling script run in the instance's network namespace, so
#   that its own curl, ssh or load generator reaches the hosts. For a named
#   instance it re-executes the script ($0) there with ARGUMENTS (nsenter
#   --net, then bash); for the default instance, or once inside, it returns
#   0 at once. Call it right after sourcing this file, before anything that
#   must not run twice. Dies when the namespace does not exist (up.sh
#   creates it). The host_* functions work from either namespace.
testbed_enter() {
	[[ -n $TESTBED_NETNS ]] || return 0
	testbed_entered && return 0
	netns_exists ||
		die "instance $TESTBED_INSTANCE is not up: network namespace $TESTBED_NETNS not found; run TESTBED_INSTANCE=$TESTBED_INSTANCE scripts/testbed/up.sh"
	[[ -f $0 ]] ||
		die "testbed_enter cannot re-execute $0 from $PWD; run the script by an absolute path"
	export TESTBED_INSTANCE
	exec "${TESTBED_NET_EXEC[@]}" "$BASH" "$0" "$@"
}

# --- host network: bridge and apt forwarder ---------------------------------

# bridge_up: create tsbr0 with 192.168.56.1/24 unless it exists, in the
# instance's network namespace. IPv6 stays off on it, so the machine sends
# nothing but IPv4 to the test hosts.
bridge_up() {
	mkdir -p "$TESTBED_RUN"
	if ! testbed_net ip link show "$TESTBED_BRIDGE" >/dev/null 2>&1; then
		testbed_net ip link add "$TESTBED_BRIDGE" type bridge
		touch "$TESTBED_RUN/bridge.created"
	fi
	testbed_net sysctl -q -w "net.ipv6.conf.$TESTBED_BRIDGE.disable_ipv6=1"
	if ! testbed_net ip -4 -o addr show dev "$TESTBED_BRIDGE" | grep -qw "$TESTBED_BRIDGE_ADDR/$TESTBED_PREFIX_LEN"; then
		testbed_net ip addr add "$TESTBED_BRIDGE_ADDR/$TESTBED_PREFIX_LEN" dev "$TESTBED_BRIDGE"
	fi
	testbed_net ip link set "$TESTBED_BRIDGE" up
}

# bridge_down: delete tsbr0 if bridge_up created it.
bridge_down() {
	[[ -e $TESTBED_RUN/bridge.created ]] || return 0
	if testbed_net ip link show "$TESTBED_BRIDGE" >/dev/null 2>&1; then
		testbed_net ip link delete "$TESTBED_BRIDGE"
	fi
	rm -f "$TESTBED_RUN/bridge.created"
}

# pidfile_pid FILE COMMAND: print the pid in FILE when a process of that
# pid runs COMMAND (its /proc comm), so that a stale file whose pid was
# reused by another program counts as not running. Returns 1 otherwise.
pidfile_pid() {
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] || return 1
	printf '%s\n' "$pid"
}

# forwarder_pid: print the pid of the named instance's apt forwarder, if it
# runs.
forwarder_pid() {
	pidfile_pid "$TESTBED_RUN/apt-forwarder.pid" socat
}

# forwarder_up: for a named instance, start the apt forwarder unless it runs.
# Nothing in the instance's network namespace can reach the machine's. So
# socat listens there on 192.168.56.1:3142, where the image's apt
# configuration expects the proxy. For each connection it runs in.acng, which
# relays it to the shared apt-cacher-ng through the daemon's socket. Call
# bridge_up and proxy_up first. No-op for the default instance.
forwarder_up() {
	local i
	[[ -n $TESTBED_NETNS ]] || return 0
	forwarder_pid >/dev/null && return 0
	[[ -x $TESTBED_IN_ACNG ]] ||
		die "$TESTBED_IN_ACNG not found: a named instance reaches the apt proxy through it (Debian package apt-cacher-ng 3.7)"
	# socat splits its EXEC address at spaces and commas.
	[[ $TESTBED_PROXY_SOCKET =~ ^[A-Za-z0-9/._-]+$ ]] ||
		die "the path $TESTBED_PROXY_SOCKET contains characters socat cannot pass; use a checkout path of letters, digits, /, ., _ and - only"

	mkdir -p "$TESTBED_RUN" "$TESTBED_LOGS"
	# setsid makes socat the leader of a process group, so forwarder_down
	# also stops the children it forks for open connections.
	setsid "${TESTBED_NET_EXEC[@]}" socat -lf "$TESTBED_LOGS/apt-forwarder.log" \
		"TCP-LISTEN:$TESTBED_PROXY_PORT,bind=$TESTBED_BRIDGE_ADDR,fork,reuseaddr" \
		"EXEC:$TESTBED_IN_ACNG $TESTBED_PROXY_SOCKET" </dev/null >/dev/null 2>&1 &
	echo "$!" >"$TESTBED_RUN/apt-forwarder.pid"

	for ((i = 0; i < 50; i++)); do
		if forwarder_pid >/dev/null &&
			testbed_net curl -fsS -o /dev/null --max-time 2 "$TESTBED_PROXY_URL/acng-report.html" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	die "the apt forwarder timed out: no response on $TESTBED_PROXY_URL in $TESTBED_NETNS within 5 s; see $TESTBED_LOGS/apt-forwarder.log"
}

# forwarder_down: stop the apt forwarder and its children (by its pid file).
forwarder_down() {
	local pid i
	pid=$(forwarder_pid) || {
		rm -f "$TESTBED_RUN/apt-forwarder.pid"
		return 0
	}
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		[[ -d /proc/$pid ]] || break
		sleep 0.1
	done
	[[ ! -d /proc/$pid ]] || kill -KILL -- "-$pid" 2>/dev/null || true
	rm -f "$TESTBED_RUN/apt-forwarder.pid"
}

# testbed_network_up: set up the instance's network: its namespace (named
# instances), the bridge, the shared apt proxy and the forwarder to it.
testbed_network_up() {
	netns_up
	bridge_up
	proxy_up
	forwarder_up
}

# --- sites and the simulated WAN --------------------------------------------
#
# A topology whose hosts sit in several /24s of 192.168.56.0/21, one per
# datacenter (multi-dc), gets a router namespace (tbwan, or tbwan-NAME). It
# holds one bridge per site, tsbrN with 192.168.N.1/24, which the site's
# hosts attach to, and an uplink veth to tsbr0 with 192.168.56.2. The
# instance's namespace (the machine's, for the default instance) routes each
# site network through 192.168.56.2, so curl, ssh and Ansible reach every
# host as on tsbr0, and the hosts reach the apt proxy on 192.168.56.1.
#
# Traffic between two sites crosses the router, which delays it. The
# kernels of this machine kind have no tc netem (CONFIG_NET_SCH_NETEM is
# unset, and no module can be loaded), so the delay is a user-space delay
# line instead: policy routes send every packet from one site's bridge to
# another site's network into the TUN device wan0, and api/cmd/wandelay
# holds it for the pair's one-way delay, then writes it back into wan0,
# from where the main table routes it to its site. Traffic inside a site is
# bridged and never delayed, and neither is traffic from the instance's
# namespace (clients, Ansible). A partition is an nftables rule in the
# router that drops the traffic between two sites.
#
# State in $TESTBED_RUN: wan-sites ("SITE NETWORK" lines, written by
# wan_up), wan-links ("SITE SITE RTT_MS JITTER_MS"), wan.conf (wandelay's
# configuration, made from both) and wandelay.pid.

TESTBED_WAN_TUN=wan0
# Routing table of the packets that go to another site through wan0.
TESTBED_WAN_TABLE=100

# wan_net COMMAND...: run COMMAND in the router namespace.
wan_net() {
	"${TESTBED_WAN_EXEC[@]}" "$@"
}

# wan_exists: return 0 when the router namespace exists.
wan_exists() {
	[[ -e /run/netns/$TESTBED_WAN_NETNS ]]
}

# wan_sites: print the "SITE NETWORK" lines of the running router.
wan_sites() {
	cat "$TESTBED_RUN/wan-sites" 2>/dev/null
}

# wan_site_network SITE: print the network of SITE (such as 192.168.57.0).
wan_site_network() {
	local network
	network=$(awk -v s="$1" '$1 == s { print $2 }' "$TESTBED_RUN/wan-sites" 2>/dev/null)
	[[ -n $network ]] || die "site $1 is not one of the testbed's sites: $(wan_sites | cut -d' ' -f1 | tr '\n' ' ')"
	printf '%s\n' "$network"
}

# wandelay_pid: print the pid of the running wandelay.
wandelay_pid() {
	pidfile_pid "$TESTBED_RUN/wandelay.pid" wandelay
}

# wan_up SITES: create the router namespace for SITES ("SITE NETWORK" lines,
# as inventory_sites prints them) unless it exists with the same sites: the
# site bridges, the uplink to tsbr0, the routes of the instance's namespace,
# the delay line without delays, and an empty partition table. Call
# bridge_up first. Needs Go, to build wandelay. Dies when the instance's
# namespace already routes a site network elsewhere.
wan_up() {
	local sites=$1 site network other bridge route i
	if wan_exists; then
		[[ $(wan_sites) == "$sites" ]] && wandelay_pid >/dev/null && return 0
		wan_down
	fi
	while read -r site network; do
		route=$(testbed_net ip -4 route show "$network/24")
		[[ -z $route || $route == *"via $TESTBED_WAN_UPLINK_ADDR "* ]] ||
			die "the network $network/24 of site $site is already routed here ($route); the testbed cannot use it"
	done <<<"$sites"
	mkdir -p "$TESTBED_DIR/bin" "$TESTBED_RUN" "$TESTBED_LOGS"
	(cd "$TESTBED_TOP" && go build -o "$TESTBED_DIR/bin/wandelay" ./api/cmd/wandelay) ||
		die "building api/cmd/wandelay failed; the simulated WAN needs it (and Go)"

	ip netns add "$TESTBED_WAN_NETNS"
	printf '%s\n' "$sites" >"$TESTBED_RUN/wan-sites"
	: >"$TESTBED_RUN/wan-links"
	wan_net ip link set lo up
	# Forwarding on; reverse-path filtering off, because packets come back
	# out of wan0 with the source address of another interface's network.
	for i in net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
		net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; do
		wan_net sysctl -q -w "$i"
	done

	testbed_net ip link add "$TESTBED_WAN_UPLINK" type veth peer name uplink netns "$TESTBED_WAN_NETNS"
	testbed_net ip link set "$TESTBED_WAN_UPLINK" master "$TESTBED_BRIDGE" up
	wan_net ip addr add "$TESTBED_WAN_UPLINK_ADDR/$TESTBED_PREFIX_LEN" dev uplink
	wan_net ip link set uplink up
	while read -r site network; do
		bridge=$(address_bridge "$network")
		wan_net ip link add "$bridge" type bridge
		wan_net ip addr add "${network%.0}.1/$TESTBED_PREFIX_LEN" dev "$bridge"
		wan_net ip link set "$bridge" up
		testbed_net ip route replace "$network/$TESTBED_PREFIX_LEN" via "$TESTBED_WAN_UPLINK_ADDR" dev "$TESTBED_BRIDGE"
	done <<<"$sites"

	wandelay_start
	wan_net ip route add default dev "$TESTBED_WAN_TUN" table "$TESTBED_WAN_TABLE"
	while read -r site network; do
		bridge=$(address_bridge "$network")
		while read -r other _; do
			[[ $other == "$site" ]] && continue
			wan_net ip rule add iif "$bridge" to "$(wan_site_network "$other")/$TESTBED_PREFIX_LEN" \
				lookup "$TESTBED_WAN_TABLE" priority 100
		done <<<"$sites"
	done <<<"$sites"

	wan_net nft -f - <<-'EOF'
		table inet testbed_wan {
			chain forward {
				type filter hook forward priority filter; policy accept;
			}
		}
	EOF
}

# wandelay_start: write wandelay's configuration and start it in the router
# namespace, then wait for its TUN device and bring it up.
wandelay_start() {
	local i
	wan_config_write
	setsid "${TESTBED_WAN_EXEC[@]}" "$TESTBED_DIR/bin/wandelay" -tun "$TESTBED_WAN_TUN" \
		-config "$TESTBED_RUN/wan.conf" </dev/null >>"$TESTBED_LOGS/wandelay.log" 2>&1 &
	echo "$!" >"$TESTBED_RUN/wandelay.pid"
	for ((i = 0; i < 50; i++)); do
		if wan_net ip link show "$TESTBED_WAN_TUN" >/dev/null 2>&1; then
			wan_net ip link set "$TESTBED_WAN_TUN" up
			return 0
		fi
		sleep 0.1
	done
	die "wandelay did not create $TESTBED_WAN_TUN within 5 s; see $TESTBED_LOGS/wandelay.log"
}

# wan_config_write: write wandelay's configuration from wan-sites and
# wan-links.
wan_config_write() {
	local site network a b rtt jitter
	{
		printf '# Written by scripts/testbed/lib.sh (wan_config_write); edits are lost.\n'
		while read -r site network; do
			printf 'site %s %s/%s\n' "$site" "$network" "$TESTBED_PREFIX_LEN"
		done < <(wan_sites)
		while read -r a b rtt jitter; do
			[[ -n $a ]] && printf 'link %s %s %s %s\n' "$a" "$b" "$rtt" "$jitter"
		done < <(wan_links)
	} >"$TESTBED_RUN/wan.conf.new"
	mv "$TESTBED_RUN/wan.conf.new" "$TESTBED_RUN/wan.conf"
}

# wan_down: stop wandelay, delete the router namespace (its bridges and
# veths go with it, the uplink's peer on tsbr0 too) and the routes to the
# sites.
wan_down() {
	local site network pid i
	if pid=$(wandelay_pid); then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			[[ -d /proc/$pid ]] || break
			sleep 0.1
		done
		[[ ! -d /proc/$pid ]] || kill -KILL "$pid" 2>/dev/null || true
	fi
	while read -r site network; do
		[[ -n $network ]] || continue
		testbed_net ip route del "$network/$TESTBED_PREFIX_LEN" via "$TESTBED_WAN_UPLINK_ADDR" 2>/dev/null || true
	done < <(wan_sites)
	if wan_exists; then
		ip netns delete "$TESTBED_WAN_NETNS"
	fi
	if testbed_net ip link show "$TESTBED_WAN_UPLINK" >/dev/null 2>&1; then
		testbed_net ip link delete "$TESTBED_WAN_UPLINK"
	fi
	rm -f "$TESTBED_RUN"/wan-sites "$TESTBED_RUN"/wan-links "$TESTBED_RUN"/wan.conf "$TESTBED_RUN"/wandelay.pid
}

# wan_set_link SITE SITE RTT_MS [JITTER_MS]
#   Sets the simulated round-trip time between two sites, in milliseconds:
#   each direction adds half of RTT_MS, plus or minus half of JITTER_MS
#   (default 0), and keeps its packets in order. 0 and 0 remove the delay.
#   Takes effect at once (wandelay rereads its configuration on SIGHUP).
wan_set_link() {
	local a=$1 b=$2 rtt=$3 jitter=${4:-0} pid
	[[ $rtt =~ ^[0-9]+(\.[0-9]+)?$ && $jitter =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
		die "wan_set_link: invalid round-trip time '$rtt' or jitter '$jitter'; give milliseconds, such as 20 and 2"
	[[ $a != "$b" ]] || die "wan_set_link: $a and $b are one site; traffic inside a site has no delay"
	wan_site_network "$a" >/dev/null
	wan_site_network "$b" >/dev/null
	pid=$(wandelay_pid) || die "wandelay is not running; run scripts/testbed/up.sh"
	{
		grep -v -e "^$a $b " -e "^$b $a " "$TESTBED_RUN/wan-links" 2>/dev/null || true
		printf '%s %s %s %s\n' "$a" "$b" "$rtt" "$jitter"
	} >"$TESTBED_RUN/wan-links.new"
	mv "$TESTBED_RUN/wan-links.new" "$TESTBED_RUN/wan-links"
	wan_config_write
	kill -HUP "$pid"
}

# wan_links: print "SITE SITE RTT_MS JITTER_MS" for every link that
# wan_set_link set.
wan_links() {
	cat "$TESTBED_RUN/wan-links" 2>/dev/null || true
}

# wan_partition SITE SITE: drop every packet between the two sites in the
# router, both ways. Connections between them time out; each site still
# reaches the others and the instance's namespace.
wan_partition() {
	local a b
	a=$(wan_site_network "$1")
	b=$(wan_site_network "$2")
	wan_net nft add rule inet testbed_wan forward ip saddr "$a/$TESTBED_PREFIX_LEN" ip daddr "$b/$TESTBED_PREFIX_LEN" drop comment "\"$1-$2\""
	wan_net nft add rule inet testbed_wan forward ip saddr "$b/$TESTBED_PREFIX_LEN" ip daddr "$a/$TESTBED_PREFIX_LEN" drop comment "\"$2-$1\""
}

# wan_heal: remove every partition.
wan_heal() {
	wan_net nft flush chain inet testbed_wan forward
}

# wan_partitions: print the rules of the partitions in place.
wan_partitions() {
	wan_net nft list chain inet testbed_wan forward | grep -o 'comment "[^"]*"' | cut -d'"' -f2
}

# --- shared by all instances: apt proxy and nspawn tmpfs --------------------

# shared_lock, shared_unlock: serialize the instances' changes to what they
# share, so that two up.sh runs do not both start apt-cacher-ng. A process
# started while the lock is held must close TESTBED_LOCK_FD, or it keeps the
# lock after the caller unlocks.
shared_lock() {
	mkdir -p "$TESTBED_SHARED_RUN"
	exec {TESTBED_LOCK_FD}>>"$TESTBED_SHARED_RUN/shared.lock"
	flock "$TESTBED_LOCK_FD"
}

shared_unlock() {
	exec {TESTBED_LOCK_FD}>&-
}

# shared_users_other: print the other instances that are up, which still use
# the apt proxy and the nspawn tmpfs: "default" while tsbr0 exists in the
# machine's network namespace (call this from there), and each named
# instance whose network namespace exists.
shared_users_other() {
	local netns name
	if [[ -n $TESTBED_NETNS ]] && ip link show "$TESTBED_BRIDGE" >/dev/null 2>&1; then
		printf 'default\n'
	fi
	while read -r netns _; do
		[[ $netns == tb-* && $netns != "$TESTBED_NETNS" ]] || continue
		name=${netns#tb-}
		[[ -d $TESTBED_DIR/instances/$name ]] && printf '%s\n' "$name"
	done < <(ip netns list 2>/dev/null)
	return 0
}

# proxy_pid: print the pid of the shared apt-cacher-ng, if it runs.
proxy_pid() {
	pidfile_pid "$TESTBED_SHARED_RUN/apt-cacher-ng.pid" apt-cacher-ng
}

# proxy_config_write: write the configuration of the shared apt-cacher-ng.
# It listens on the default instance's bridge address and on a socket for
# the named instances, and fetches Debian's archives from deb.debian.org
# alone: the stock configuration would fall back to security.debian.org and
# other mirrors, which the testbed must not contact.
proxy_config_write() {
	local conf="$TESTBED_DIR/apt-cacher-ng"
	mkdir -p "$conf" "$TESTBED_DIR/apt-cache" "$TESTBED_SHARED_LOGS/apt-cacher-ng" "$TESTBED_SHARED_RUN"
	cat >"$conf/acng.conf" <<-EOF
		# Written by scripts/testbed/lib.sh (proxy_config_write); edits are lost.
		CacheDir: $TESTBED_DIR/apt-cache
		LogDir: $TESTBED_SHARED_LOGS/apt-cacher-ng
		SupportDir: /usr/lib/apt-cacher-ng
		BindAddress: $TESTBED_BRIDGE_ADDR
		Port: $TESTBED_PROXY_PORT
		PidFile: $TESTBED_SHARED_RUN/apt-cacher-ng.pid
		SocketPath: $TESTBED_PROXY_SOCKET
		Remap-debrep: file:deb_mirror*.gz /debian ; http://deb.debian.org/debian
		Remap-secdeb: security.debian.org deb.debian.org/debian-security ; http://deb.debian.org/debian-security
		ReportPage: acng-report.html
		ExThreshold: 4
		# Index files stay fresh for 5 minutes after a download (default 27
		# s), so the burst of apt-get updates from every host that up.sh
		# starts right after its warm-up is served from the cache. When
		# many of them fetched one InRelease at once, apt-cacher-ng 3.7.4
		# failed to rename it ("Failure to move file ... File exists") and
		# left one host's apt-get update hanging.
		FreshIndexMaxAge: 300
		# Serve only the remapped Debian archives above: without this, the
		# proxy would fetch any http URL a test host asks for.
		ForceManaged: 1
	EOF
}

# proxy_up: start the shared apt-cacher-ng unless it runs, in the machine's
# network namespace. It serves 192.168.56.1:3142 there for the default
# instance, and its socket for the named ones. It can bind 192.168.56.1 only
# while the default instance's bridge has that address: when a named
# instance started it without, and the default instance needs it, it is
# restarted. That breaks the downloads running at that moment, which apt on
# the hosts retries up to Acquire::Retries times. The default instance calls
# bridge_up first.
proxy_up() {
	shared_lock
	proxy_start
	shared_unlock
}

# proxy_start: proxy_up without the lock.
proxy_start() {
	local pid i
	if pid=$(proxy_pid); then
		[[ -n $TESTBED_NETNS ]] && return 0
		curl -fsS -o /dev/null --max-time 2 "$TESTBED_PROXY_URL/acng-report.html" 2>/dev/null && return 0
		log "restarting apt-cacher-ng (pid $pid): no response on $TESTBED_PROXY_URL, as when a named instance started it while $TESTBED_BRIDGE_ADDR did not exist"
		proxy_stop
	fi

	proxy_config_write
	# The daemon must not inherit the lock (see shared_lock).
	(
		exec {TESTBED_LOCK_FD}>&-
		exec apt-cacher-ng -c "$TESTBED_DIR/apt-cacher-ng" ForeGround=0
	) || die "apt-cacher-ng failed to start; see $TESTBED_SHARED_LOGS/apt-cacher-ng/apt-cacher.err"
	for ((i = 0; i < 50; i++)); do
		if proxy_pid >/dev/null; then
			if [[ -n $TESTBED_NETNS ]]; then
				[[ -S $TESTBED_PROXY_SOCKET ]] && return 0
			elif curl -fsS -o /dev/null "$TESTBED_PROXY_URL/acng-report.html"; then
				return 0
			fi
		fi
		sleep 0.1
	done
	die "apt-cacher-ng timed out: no response on $TESTBED_PROXY_URL or $TESTBED_PROXY_SOCKET within 5 s; see $TESTBED_SHARED_LOGS/apt-cacher-ng/"
}

# proxy_down: stop the shared apt-cacher-ng unless another instance is up.
proxy_down() {
	local users
	shared_lock
	users=$(shared_users_other | paste -sd " " -)
	if [[ -n $users ]]; then
		log "the apt proxy keeps running for the instances that are up: $users"
	else
		proxy_stop
	fi
	shared_unlock
}

# proxy_stop: stop the shared apt-cacher-ng (by its pid file) and remove its
# socket.
proxy_stop() {
	local pid i
	if pid=$(proxy_pid); then
		kill -TERM "$pid"
		for ((i = 0; i < 50; i++)); do
			[[ -d /proc/$pid ]] || break
			sleep 0.1
		done
		[[ ! -d /proc/$pid ]] || kill -KILL "$pid"
	fi
	rm -f "$TESTBED_SHARED_RUN/apt-cacher-ng.pid" "$TESTBED_PROXY_SOCKET"
}

# nspawn_runtime_up: mount a tmpfs on /run/systemd/nspawn, shared by all
# instances. On this kind of machine /run is a disk file system, and nspawn
# refuses to clean up files under /run/systemd/nspawn unless that is a tmpfs.
nspawn_runtime_up() {
	shared_lock
	if [[ ! -d /run/systemd/nspawn ]]; then
		mkdir -p /run/systemd/nspawn
		touch "$TESTBED_SHARED_RUN/nspawn-dir.created"
	fi
	if [[ $(stat -f -c %T /run/systemd/nspawn) != tmpfs ]]; then
		mount -t tmpfs -o mode=0755 testbed-nspawn /run/systemd/nspawn
		touch "$TESTBED_SHARED_RUN/nspawn-tmpfs.mounted"
	fi
	shared_unlock
}

# nspawn_runtime_down: undo nspawn_runtime_up unless another instance is up:
# unmount the tmpfs and remove the folder if an instance mounted or created
# them.
nspawn_runtime_down() {
	shared_lock
	if [[ -n $(shared_users_other) ]]; then
		shared_unlock
		return 0
	fi
	if [[ -e $TESTBED_SHARED_RUN/nspawn-tmpfs.mounted ]]; then
		if mountpoint -q /run/systemd/nspawn; then
			umount /run/systemd/nspawn
		fi
		rm -f "$TESTBED_SHARED_RUN/nspawn-tmpfs.mounted"
	fi
	if [[ -e $TESTBED_SHARED_RUN/nspawn-dir.created ]]; then
		rmdir /run/systemd/nspawn 2>/dev/null || warn "/run/systemd/nspawn is not empty; it stays"
		rm -f "$TESTBED_SHARED_RUN/nspawn-dir.created"
	fi
	shared_unlock
}

# --- SSH --------------------------------------------------------------------

# ssh_key_ensure: generate the testbed's SSH key for root on every host.
ssh_key_ensure() {
	mkdir -p "$(dirname "$TESTBED_SSH_KEY")"
	chmod 700 "$(dirname "$TESTBED_SSH_KEY")"
	[[ -f $TESTBED_SSH_KEY ]] && return 0
	ssh-keygen -q -t ed25519 -N '' -C "testbed@$(hostname)" -f "$TESTBED_SSH_KEY"
}

# known_hosts_write: rebuild the testbed's known_hosts from the host keys
# that host_create generated, one line per host with its name and address.
known_hosts_write() {
	local dir name
	mkdir -p "$(dirname "$TESTBED_KNOWN_HOSTS")"
	: >"$TESTBED_KNOWN_HOSTS.new"
	for dir in "$TESTBED_HOSTS"/*/; do
		[[ -f $dir/ssh_host_ed25519_key.pub ]] || continue
		name=$(basename "$dir")
		printf '%s,%s %s\n' "$name" "$(host_address "$name")" \
			"$(cut -d' ' -f1,2 "$dir/ssh_host_ed25519_key.pub")" >>"$TESTBED_KNOWN_HOSTS.new"
	done
	mv "$TESTBED_KNOWN_HOSTS.new" "$TESTBED_KNOWN_HOSTS"
}

# testbed_ssh_options: print, one per line, the ssh options for the hosts.
testbed_ssh_options() {
	printf '%s\n' -o BatchMode=yes -o ConnectTimeout=3 -o LogLevel=ERROR \
		-o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$TESTBED_KNOWN_HOSTS" \
		-o IdentitiesOnly=yes -i "$TESTBED_SSH_KEY"
}

# --- hosts: state on disk ---------------------------------------------------
#
# .testbed/hosts/NAME/ (.testbed/instances/INSTANCE/hosts/NAME/ in a named
# instance) contains the host's address, image.stamp (the image it was made
# from), upper/ and work/ (overlayfs), root/ (the mount point that nspawn
# boots), the public SSH host key, cgroups (its cgroup paths), launcher.pid
# and nspawn.pid. Its console log is NAME.log in the instance's log/.

host_dir() { printf '%s\n' "$TESTBED_HOSTS/$1"; }

# host_bridge NAME: print the bridge the host's veth is on (file bridge in
# its folder; tsbr0 for a host made before that file existed).
host_bridge() {
	cat "$TESTBED_HOSTS/$1/bridge" 2>/dev/null || printf '%s\n' "$TESTBED_BRIDGE"
}

# host_net_exists NAME: return 0 when the network namespace of the host's
# bridge exists (a named instance's or the router's can be gone already).
host_net_exists() {
	if [[ $(host_bridge "$1") == "$TESTBED_BRIDGE" ]]; then
		[[ -z $TESTBED_NETNS ]] || netns_exists
	else
		wan_exists
	fi
}

# host_net NAME COMMAND...: run COMMAND in the network namespace where the
# host's veth vb-NAME and bridge are: the instance's for tsbr0, the router
# namespace for a site bridge.
host_net() {
	local name=$1
	shift
	if [[ $(host_bridge "$name") == "$TESTBED_BRIDGE" ]]; then
		testbed_net "$@"
	else
		wan_net "$@"
	fi
}

# hosts_created: print the names of the hosts that host_create made.
hosts_created() {
	local dir
	for dir in "$TESTBED_HOSTS"/*/; do
		[[ -f $dir/address ]] && basename "$dir"
	done
	return 0
}

# host_address NAME: print the host's private address.
host_address() {
	cat "$TESTBED_HOSTS/$1/address" 2>/dev/null ||
		die "host $1 does not exist; create it with scripts/testbed/up.sh"
}

# host_mount NAME: mount the host's overlayfs (the image below, its upper
# directory above) on .testbed/hosts/NAME/root unless it is mounted.
host_mount() {
	local dir
	dir=$(host_dir "$1")
	mkdir -p "$dir/upper" "$dir/work" "$dir/root"
	mountpoint -q "$dir/root" && return 0
	mount -t overlay "$TESTBED_LABEL-$1" \
		-o "lowerdir=$TESTBED_IMAGE,upperdir=$dir/upper,workdir=$dir/work" "$dir/root"
}

# host_umount NAME: unmount the host's overlayfs if it is mounted.
host_umount() {
	local dir
	dir=$(host_dir "$1")
	if mountpoint -q "$dir/root"; then
		umount "$dir/root"
	fi
}

# host_create NAME ADDRESS HOSTS: make a new host from the image: its
# overlayfs, machine-id, SSH host key, root's authorized_keys, a static
# address on host0, and /etc/hosts with every host in HOSTS ("NAME ADDRESS"
# lines, as inventory_hosts prints them).
host_create() {
	local name=$1 address=$2 hosts=$3 dir root
	dir=$(host_dir "$name")
	root="$dir/root"
	mkdir -p "$dir"
	printf '%s\n' "$address" >"$dir/address"
	address_bridge "$address" >"$dir/bridge"
	cp "$TESTBED_DIR/image/stamp" "$dir/image.stamp"
	host_mount "$name"
	mkdir -p "$TESTBED_LOGS"
	: >"$TESTBED_LOGS/$name.log"

	printf '%s\n' "$name" >"$root/etc/hostname"
	systemd-id128 new >"$root/etc/machine-id"
	host_write_network "$root" "$address"
	host_write_hosts "$root" "$hosts"
	host_write_ssh "$dir" "$root" "$name"
	known_hosts_write
}

host_write_network() {
	local root=$1 address=$2 file
	file="$root/etc/systemd/network/10-testbed-host0.network"
	if [[ $(address_bridge "$address") == "$TESTBED_BRIDGE" ]]; then
		cat >"$file" <<-EOF
			# Test host address on the bridge tsbr0. No gateway and no DNS server,
			# so the host reaches nothing beyond ${TESTBED_SUBNET_PREFIX}0/$TESTBED_PREFIX_LEN.
			[Match]
			Name=host0

			[Network]
			Address=$address/$TESTBED_PREFIX_LEN
			LinkLocalAddressing=no
			IPv6AcceptRA=no
		EOF
	else
		cat >"$file" <<-EOF
			# Test host address on its site's bridge. The site's router (.1) leads to
			# the other sites and to tsbr0 (the apt proxy), all in $TESTBED_RANGE. No
			# default route and no DNS server, so the host reaches nothing else.
			[Match]
			Name=host0

			[Network]
			Address=$address/$TESTBED_PREFIX_LEN
			LinkLocalAddressing=no
			IPv6AcceptRA=no

			[Route]
			Destination=$TESTBED_RANGE
			Gateway=${address%.*}.1
		EOF
	fi
	printf '# No DNS on the test hosts: names are in /etc/hosts.\n' >"$root/etc/resolv.conf"
}

host_write_hosts() {
	local root=$1 hosts=$2
	{
		printf '127.0.0.1\tlocalhost\n'
		printf '::1\t\tlocalhost ip6-localhost ip6-loopback\n'
		printf '%s\n' "$hosts" | awk 'NF == 2 { printf "%s\t%s\n", $2, $1 }'
	} >"$root/etc/hosts"
}

host_write_ssh() {
	local dir=$1 root=$2 name=$3
	rm -f "$root"/etc/ssh/ssh_host_*
	ssh-keygen -q -t ed25519 -N '' -C "root@$name" -f "$root/etc/ssh/ssh_host_ed25519_key"
	cp "$root/etc/ssh/ssh_host_ed25519_key.pub" "$dir/ssh_host_ed25519_key.pub"

	# The image has no RSA or ECDSA host keys, and sshd would log an error
	# for each missing default key at every start.
	printf 'HostKey /etc/ssh/ssh_host_ed25519_key\n' >"$root/etc/ssh/sshd_config.d/10-testbed.conf"

	install -d -m 700 "$root/root/.ssh"
	install -m 600 "$TESTBED_SSH_KEY.pub" "$root/root/.ssh/authorized_keys"
}

# host_destroy NAME: stop the host, then delete its state and cgroups.
host_destroy() {
	local dir
	dir=$(host_dir "$1")
	[[ -d $dir ]] || return 0
	host_stop "$1"
	host_umount "$1"
	host_cgroups_remove "$1"
	rm -rf "$dir"
	known_hosts_write
}

# --- hosts: cgroups ---------------------------------------------------------

# host_cgroups_assign NAME PID: move PID into a cgroup of its own for the host
# in each hierarchy, below the cgroup the caller runs in, and record the
# paths in the host's folder (file cgroups). The folder is testbed/NAME, or
# testbed-INSTANCE/NAME in a named instance, as hosts of two instances can
# have the same name.
host_cgroups_assign() {
	local name=$1 pid=$2 hierarchy controller current path
	: >"$(host_dir "$name")/cgroups"
	for hierarchy in "${TESTBED_CGROUP_HIERARCHIES[@]}"; do
		case $hierarchy in
		systemd) controller=name=systemd ;;
		unified) controller= ;;
		*) controller=$hierarchy ;;
		esac
		current=$(awk -F: -v c="$controller" '$2 == c { print $3 }' "/proc/$pid/cgroup")
		path="/sys/fs/cgroup/$hierarchy${current%/}/$TESTBED_LABEL/$name"
		mkdir -p "$path"
		echo "$pid" >"$path/cgroup.procs"
		printf '%s\n' "$path" >>"$(host_dir "$name")/cgroups"
	done
}

# host_cgroup NAME HIERARCHY: print the host's cgroup folder in HIERARCHY.
host_cgroup() {
	grep -m1 "^/sys/fs/cgroup/$2/" "$(host_dir "$1")/cgroups" 2>/dev/null
}

# host_cgroup_pids NAME: print every pid in the host's cgroups.
host_cgroup_pids() {
	local path
	path=$(host_cgroup "$1" systemd) || return 0
	find "$path" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -un
}

# host_cgroups_remove NAME: remove the host's cgroup folders, deepest first,
# and their parent folder (testbed or testbed-INSTANCE) once no other host
# uses it.
host_cgroups_remove() {
	local path
	while read -r path; do
		[[ -d $path ]] || continue
		find "$path" -depth -type d -exec rmdir {} + 2>/dev/null ||
			warn "cgroup $path still has processes; it stays"
		rmdir "$(dirname "$path")" 2>/dev/null || true
	done <"$(host_dir "$1")/cgroups" 2>/dev/null
	return 0
}

# --- hosts: the interface for test suites -----------------------------------

# host_nspawn_pid NAME
#   Prints the pid of the host's systemd-nspawn process and returns 0, or
#   returns 1 when the host does not run.
host_nspawn_pid() {
	pidfile_pid "$(host_dir "$1")/nspawn.pid" systemd-nspawn
}

# host_pid NAME
#   Prints the host pid of the container's init (systemd, PID 1 inside the
#   host) and returns 0, or returns 1 when the host does not run or its init
#   has not started yet.
host_pid() {
	local nspawn child
	nspawn=$(host_nspawn_pid "$1") || return 1
	# shellcheck disable=SC2013 # the file is a space-separated list of pids
	for child in $(cat /proc/"$nspawn"/task/*/children 2>/dev/null); do
		# The init runs in a new pid namespace. nspawn's other, short-lived
		# child stays in nspawn's namespace.
		if [[ $(readlink "/proc/$child/ns/pid") != "$(readlink "/proc/$nspawn/ns/pid")" ]]; then
			printf '%s\n' "$child"
			return 0
		fi
	done
	return 1
}

# host_ssh NAME COMMAND...
#   Runs COMMAND on the host as root over SSH with the testbed key and
#   known_hosts, and returns its exit code (255 when SSH itself fails).
#   Like ssh, it joins the words of COMMAND with spaces into one shell
#   command line, so quote pipes and redirections meant for the host.
host_ssh() {
	local name=$1 address options
	shift
	address=$(host_address "$name") || return 255
	mapfile -t options < <(testbed_ssh_options)
	testbed_net ssh "${options[@]}" "root@$address" -- "$@"
}

# host_exec NAME COMMAND...
#   Runs COMMAND inside the running host with nsenter, in every namespace
#   of its init, as root with a plain PATH, and returns its exit code.
#   Unlike host_ssh it needs no network, so it also reaches a host that is
#   cut off (host_link_down) or partitioned. Arguments are passed as they
#   are, without a shell on the host.
host_exec() {
	local name=$1 pid
	shift
	pid=$(host_pid "$name") || {
		printf 'host_exec: host %s does not run\n' "$name" >&2
		return 255
	}
	nsenter --target "$pid" --all -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"
}

# host_wait_ssh NAME [TIMEOUT]
#   Polls until the host accepts an SSH login, for at most TIMEOUT seconds
#   (default 60). Returns 0 when it does, 1 on time-out.
host_wait_ssh() {
	local name=$1 timeout=${2:-60} deadline
	deadline=$((SECONDS + timeout))
	until host_ssh "$name" true 2>/dev/null; do
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

# host_start NAME
#   Boots the created host in the background (no-op when it runs) and
#   returns once its init has started. It does not wait for SSH: call
#   host_wait_ssh for that. Needs the bridge that up.sh sets up, and mounts
#   the nspawn tmpfs itself. The console goes to NAME.log in the instance's
#   log folder (.testbed/log/ for the default instance).
#   The launcher boots the host again when it reboots (nspawn exit code
#   133), but not after host_stop or host_kill.
host_start() {
	local name=$1 i
	host_nspawn_pid "$name" >/dev/null && return 0
	[[ -f $(host_dir "$name")/address ]] || die "host $name does not exist; create it with scripts/testbed/up.sh"
	host_net "$name" ip link show "$(host_bridge "$name")" >/dev/null 2>&1 ||
		die "bridge $(host_bridge "$name") of host $name is missing; run scripts/testbed/up.sh"

	nspawn_runtime_up
	host_mount "$name"
	mkdir -p "$TESTBED_LOGS"
	rm -f "$(host_dir "$name")/nspawn.pid"
	setsid "$TESTBED_SCRIPTS/host-run.sh" "$name" </dev/null >>"$TESTBED_LOGS/$name.log" 2>&1 &

	for ((i = 0; i < 100; i++)); do
		host_pid "$name" >/dev/null && return 0
		sleep 0.1
	done
	die "host $name did not start within 10 s; see $TESTBED_LOGS/$name.log"
}

# host_stop NAME [TIMEOUT]
#   Shuts the host down cleanly: SIGTERM to its nspawn process, which makes
#   the container's systemd power off. After TIMEOUT seconds (default 30)
#   it SIGKILLs every process left in the host's cgroups. Returns once the
#   host and its launcher have exited. No-op when the host does not run.
host_stop() {
	local name=$1 timeout=${2:-30} nspawn
	if nspawn=$(host_nspawn_pid "$name"); then
		kill -TERM "$nspawn" 2>/dev/null || true
		if ! host_wait_exit "$name" "$timeout"; then
			warn "host $name did not stop within $timeout s; killing its processes"
			host_kill_cgroup "$name"
		fi
	fi
	host_wait_launcher "$name"
}

# host_kill NAME
#   Cuts the host's power: SIGKILL to the container's init, so every
#   process of the host dies at once, with no shutdown and no chance to
#   flush its own buffers. Returns once nspawn has exited. No-op when the
#   host does not run.
#   NOTE: data already passed to write(2) but not yet fsynced survives,
#   because the page cache belongs to the machine's kernel, not the host.
#   A real power cut loses it, so this does not test fsync discipline.
host_kill() {
	local name=$1 init
	if init=$(host_pid "$name"); then
		kill -KILL "$init" 2>/dev/null || true
		host_wait_exit "$name" 10 || host_kill_cgroup "$name"
	fi
	host_wait_launcher "$name"
}

# host_link_down NAME
#   Cuts the host off the network: sets its host-side veth vb-NAME down
#   (in the namespace of its bridge). The host keeps running, and its
#   host0 loses carrier (keepalived then enters FAULT and releases the VIP).
host_link_down() {
	host_net "$1" ip link set "vb-$1" down
}

# host_link_up NAME
#   Reconnects the host: sets vb-NAME up again (it stays on the bridge).
host_link_up() {
	host_net "$1" ip link set "vb-$1" up
}

# host_add NAME ADDRESS [TIMEOUT]
#   Adds a host to the running instance, for a suite that grows the
#   topology (scripts/elastic.sh adds an API host). It checks NAME and
#   ADDRESS as up.sh checks the inventory's hosts, creates the host from
#   the image with an /etc/hosts of every host of the instance, boots it
#   and waits up to TIMEOUT seconds (default 60) for SSH. The hosts that
#   already run keep their /etc/hosts, so reach the new one by address.
#   Returns 0 at once when the host runs with that address already, and 1
#   when the address is another host's or SSH timed out. down.sh removes
#   it with the others, and the next up.sh removes it unless the
#   topology's inventory lists it.
host_add() {
	local name=$1 address=$2 timeout=${3:-60} other hosts=""
	[[ $name =~ ^[a-z][a-z0-9-]{0,11}$ ]] ||
		die "host name '$name' is invalid here: use 1 to 12 of a-z, 0-9, '-' (the host-side veth is vb-NAME)"
	address_valid "$address" ||
		die "address '$address' of $name is invalid: expected one in $TESTBED_RANGE whose last number is 3 to 254"
	for other in $(hosts_created); do
		if [[ $other != "$name" && $(host_address "$other") == "$address" ]]; then
			warn "address $address is host $other's; $name not added"
			return 1
		fi
		hosts+="$other $(host_address "$other")"$'\n'
	done
	if [[ ! -f $(host_dir "$name")/address ]]; then
		host_create "$name" "$address" "$hosts$name $address"
	elif [[ $(host_address "$name") != "$address" ]]; then
		warn "host $name exists with address $(host_address "$name"), not $address"
		return 1
	fi
	host_start "$name"
	host_wait_ssh "$name" "$timeout"
}

# testbed_playbook INVENTORY PLAYBOOK [ANSIBLE-PLAYBOOK OPTIONS...]
#   Runs ansible-playbook on the test hosts as root with the testbed key
#   and known_hosts, in the instance's network namespace, and returns its
#   exit code. The settings go through
#   ANSIBLE_* variables, as Vagrant passes its own user and key on the
#   command line, so one inventory serves both (inventory variables such
#   as ansible_user would override them).
testbed_playbook() {
	local inventory=$1 playbook=$2 ssh_args
	shift 2
	ssh_args="-o UserKnownHostsFile=$TESTBED_KNOWN_HOSTS -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
	mkdir -p "$TESTBED_RUN/ansible-cp"

	ANSIBLE_REMOTE_USER=root \
		ANSIBLE_PRIVATE_KEY_FILE="$TESTBED_SSH_KEY" \
		ANSIBLE_HOST_KEY_CHECKING=True \
		ANSIBLE_SSH_COMMON_ARGS="$ssh_args" \
		ANSIBLE_SSH_CONTROL_PATH_DIR="$TESTBED_RUN/ansible-cp" \
		ANSIBLE_PIPELINING=True \
		ANSIBLE_PYTHON_INTERPRETER=auto_silent \
		"${TESTBED_NET_EXEC[@]}" ansible-playbook -i "$inventory" "$@" "$playbook"
}

# --- hosts: helpers of the interface ----------------------------------------

# host_wait_exit NAME TIMEOUT: poll until the host's nspawn has exited;
# return 1 after TIMEOUT seconds.
host_wait_exit() {
	local name=$1 deadline
	deadline=$((SECONDS + $2))
	while host_nspawn_pid "$name" >/dev/null; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

# host_kill_cgroup NAME: SIGKILL every process in the host's cgroups (nspawn
# and the whole container), then wait for nspawn to exit.
# cgroup.kill (Linux 5.14 and later) does it at once, so no process can fork
# in between; older kernels get one kill(2) per pid.
host_kill_cgroup() {
	local name=$1 path pid
	path=$(host_cgroup "$name" unified) || path=
	if [[ -n $path && -e $path/cgroup.kill ]]; then
		echo 1 >"$path/cgroup.kill"
	else
		for pid in $(host_cgroup_pids "$name"); do
			kill -KILL "$pid" 2>/dev/null || true
		done
	fi
	host_wait_exit "$name" 10 || warn "host $name: nspawn still runs after SIGKILL"
}

# host_wait_launcher NAME: wait up to 5 s for the host's launcher loop to
# exit after nspawn did, so that a following host_start does not start a
# second launcher while the first still cleans up. Warns after 5 s.
host_wait_launcher() {
	local pid i
	pid=$(cat "$(host_dir "$1")/launcher.pid" 2>/dev/null) || return 0
	for ((i = 0; i < 50; i++)); do
		[[ -d /proc/$pid ]] || return 0
		sleep 0.1
	done
	warn "launcher $pid of host $1 still runs"
}
