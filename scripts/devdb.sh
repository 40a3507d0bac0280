#!/usr/bin/env bash
# Runs one local MariaDB for development and the integration tests, with its
# data in .devdb/ of the checkout, bound to 127.0.0.1 only.
#
# Usage: scripts/devdb.sh start|stop|status|env|client|clean
#   start   install mariadb-server when missing, initialise, start, create
#           the database and users (idempotent)
#   stop    stop the server started here (by its pid file)
#   status  exit 0 when the server answers
#   env     print the variables the API and the tests read, as shell exports
#   client  open a mariadb shell as the admin user
#   clean   stop, then delete .devdb/
#
# Settings: DEVDB_PORT (default 3307, so a system MariaDB on 3306 is left
# alone). A running server keeps the port it was started with: the other
# commands read it from .devdb/port, so they need no DEVDB_PORT.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
dir="$top/.devdb"
port=${DEVDB_PORT:-3307}
data="$dir/data"
sock="$dir/mysqld.sock"
pidfile="$dir/mysqld.pid"
app_user=timestamp
app_db=timestamp
admin_user=devadmin

log() { printf 'devdb: %s\n' "$*" >&2; }

die() {
	log "$*"
	exit 1
}

# install_server installs Debian's MariaDB packages when mariadbd is missing.
# policy-rc.d keeps the package from starting a system-wide server that
# nobody asked for; the server this script runs has its own data and port.
install_server() {
	if command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd ]]; then
		return 0
	fi
	[[ $EUID -eq 0 ]] || die "mariadb-server is not installed; run: sudo apt-get install -y mariadb-server mariadb-client"
	log "installing mariadb-server from the distribution's packages"
	local policy=/usr/sbin/policy-rc.d created=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		created=1
	fi
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		mariadb-server mariadb-client
	((created)) && rm -f "$policy"
	return 0
}

server_pid() {
	[[ -s $pidfile ]] || return 1
	local pid
	pid=$(<"$pidfile")
	kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

admin() { mariadb --no-defaults --socket="$sock" -u root "$@"; }

ping_server() { mariadb-admin --no-defaults --socket="$sock" -u root ping >/dev/null 2>&1; }

secret() {
	local file="$dir/$1"
	if [[ ! -s $file ]]; then
		(umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$file")
	fi
	cat "$file"
}

init_datadir() {
	[[ -d $data/mysql ]] && return 0
	log "initialising $data"
	mkdir -p "$data"
	local user_args=()
	[[ $EUID -eq 0 ]] && user_args=(--user=root)
	mariadb-install-db --no-defaults --datadir="$data" "${user_args[@]}" \
		--auth-root-authentication-method=socket --skip-test-db >"$dir/install.log" 2>&1 ||
		die "mariadb-install-db failed; see $dir/install.log"
}

start_server() {
	if server_pid >/dev/null; then
		log "already running (pid $(server_pid)) on 127.0.0.1:$port"
		return 0
	fi
	local user_args=()
	[[ $EUID -eq 0 ]] && user_args=(--user=root)
	log "starting mariadbd on 127.0.0.1:$port"
	printf '%s\n' "$port" >"$dir/port"
	# --default-time-zone keeps NOW() in UTC too, although the API never
	# relies on it: it sends UTC values and sets its session zone itself.
	setsid mariadbd --no-defaults --datadir="$data" --socket="$sock" \
		--pid-file="$pidfile" --port="$port" --bind-address=127.0.0.1 \
		--log-error="$dir/mysqld.err" --innodb-buffer-pool-size=128M \
		--default-time-zone=+00:00 --skip-name-resolve "${user_args[@]}" \
		</dev/null >>"$dir/mysqld.out" 2>&1 &

	local deadline=$((SECONDS + 60))
	until ping_server; do
		if ((SECONDS > deadline)); then
			die "mariadbd did not answer within 60 s; see $dir/mysqld.err"
		fi
		sleep 0.2
	done
}

create_users() {
	local app_pw admin_pw
	app_pw=$(secret app-password)
	admin_pw=$(secret admin-password)
	# The API's user gets only what it needs: it reads, inserts, and creates
	# and migrates its own tables. The admin user is for tests and humans.
	admin <<SQL
CREATE DATABASE IF NOT EXISTS $app_db;
CREATE USER IF NOT EXISTS '$app_user'@'127.0.0.1' IDENTIFIED BY '$app_pw';
ALTER USER '$app_user'@'127.0.0.1' IDENTIFIED BY '$app_pw';
GRANT SELECT, INSERT, CREATE, ALTER, INDEX ON $app_db.* TO '$app_user'@'127.0.0.1';
CREATE USER IF NOT EXISTS '$admin_user'@'127.0.0.1' IDENTIFIED BY '$admin_pw';
ALTER USER '$admin_user'@'127.0.0.1' IDENTIFIED BY '$admin_pw';
GRANT ALL ON *.* TO '$admin_user'@'127.0.0.1' WITH GRANT OPTION;
SQL
}

stop_server() {
	local pid
	if ! pid=$(server_pid); then
		log "not running"
		return 0
	fi
	log "stopping mariadbd (pid $pid)"
	kill -TERM "$pid"
	local deadline=$((SECONDS + 60))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS > deadline)); then
			log "mariadbd did not stop within 60 s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		sleep 0.2
	done
}

print_env() {
	cat <<EOF
export TSAPI_DB_ADDR=127.0.0.1:$port
export TSAPI_DB_USER=$app_user
export TSAPI_DB_NAME=$app_db
export TSAPI_DB_PASSWORD_FILE=$dir/app-password
export TSAPI_TEST_ADMIN_USER=$admin_user
export TSAPI_TEST_ADMIN_PASSWORD_FILE=$dir/admin-password
export TSAPI_TEST_DEVDB=$top/scripts/devdb.sh
export DEVDB_PORT=$port
EOF
}

# use_running_port: when the server of this checkout runs, take the port
# it was started with, and reject a DEVDB_PORT that names another one.
use_running_port() {
	local running
	server_pid >/dev/null || return 0
	running=$(cat "$dir/port" 2>/dev/null) || return 0
	if [[ -n ${DEVDB_PORT:-} && $DEVDB_PORT != "$running" ]]; then
		die "the server in $dir runs on port $running, not DEVDB_PORT=$DEVDB_PORT; stop it first (scripts/devdb.sh stop)"
	fi
	port=$running
}

main() {
	local cmd=${1:-}
	mkdir -p "$dir"
	use_running_port
	case $cmd in
	start)
		install_server
		init_datadir
		start_server
		create_users
		log "ready on 127.0.0.1:$port (data in $data)"
		;;
	stop) stop_server ;;
	status)
		if server_pid >/dev/null && ping_server; then
			log "running (pid $(server_pid)) on 127.0.0.1:$port"
		else
			log "not running"
			exit 1
		fi
		;;
	env) print_env ;;
	client) mariadb --no-defaults -h 127.0.0.1 -P "$port" -u "$admin_user" \
		-p"$(secret admin-password)" "$app_db" ;;
	clean)
		stop_server
		rm -rf "$dir"
		log "removed $dir"
		;;
	*)
		sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
		exit 2
		;;
	esac
}

main "$@"
