#!/usr/bin/env bash
# Development mode: the API on one local MariaDB, both run from the checkout.
#
# Usage: scripts/dev.sh start|stop|clean
# Settings: DEV_LISTEN (default 127.0.0.1:8080), DEVDB_PORT (default 3307).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
dir="$top/.devdb"
listen=${DEV_LISTEN:-127.0.0.1:8080}
pidfile="$dir/api.pid"
logfile="$dir/api.log"

log() { printf 'dev: %s\n' "$*" >&2; }

api_pid() {
	[[ -s $pidfile ]] || return 1
	local pid
	pid=$(<"$pidfile")
	kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

start() {
	"$top/scripts/devdb.sh" start
	if api_pid >/dev/null; then
		log "API already running (pid $(api_pid)) on http://$listen"
		return 0
	fi
	log "building the API"
	(cd "$top" && go build -o "$dir/timestamp-api" ./api/cmd/timestamp-api)

	# The environment comes from devdb.sh; the shutdown delay is for load
	# balancers, and here there is none to wait for.
	eval "$("$top/scripts/devdb.sh" env)"
	TSAPI_LISTEN=$listen TSAPI_LOG_FORMAT=text TSAPI_SHUTDOWN_DELAY=0s \
		setsid "$dir/timestamp-api" </dev/null >>"$logfile" 2>&1 &
	echo $! >"$pidfile"

	local deadline=$((SECONDS + 30))
	until curl -fsS "http://$listen/readyz" >/dev/null 2>&1; do
		if ! api_pid >/dev/null; then
			tail -n 20 "$logfile" >&2
			log "the API exited; its log is $logfile"
			exit 1
		fi
		if ((SECONDS > deadline)); then
			log "the API was not ready within 30 s; its log is $logfile"
			exit 1
		fi
		sleep 0.2
	done
	log "API ready on http://$listen (pid $(api_pid), log $logfile)"
	cat <<TEXT

Try it:
  curl -i -X POST http://$listen/app
  curl 'http://$listen/app?limit=5'
Swagger UI: http://$listen/swagger/index.html
Stop with: make dev-stop
TEXT
}

stop_api() {
	local pid
	if ! pid=$(api_pid); then
		log "API not running"
		return 0
	fi
	log "stopping the API (pid $pid)"
	kill -TERM "$pid"
	local deadline=$((SECONDS + 30))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS > deadline)); then
			log "the API did not stop within 30 s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		sleep 0.1
	done
	rm -f "$pidfile"
}

case ${1:-} in
start) start ;;
stop)
	stop_api
	"$top/scripts/devdb.sh" stop
	;;
clean)
	stop_api
	"$top/scripts/devdb.sh" clean
	;;
*)
	sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
