#!/usr/bin/env bash
# Shared helpers of the deploy scripts: logging, notifications, readiness and smoke checks,
# the runtime contract and the release bookkeeping. Sourced, never run.
#
# Settings (environment):
#   TC_RUNTIME              command prefix of the runtime contract (word-split)
#   TC_DEPLOY_ROOT          releases/, current, previous, backups/ and the lock live here
#   TC_DEPLOY_WEBHOOK_URL   optional: each notification is POSTed there as JSON
#   TC_NOTIFY_TIMEOUT       seconds a notification may take (default 5)
#   TC_READY_TIMEOUT        seconds an instance has to answer 200 on /health/ready (default 60)
#   TC_SMOKE_CHECKS         "STATUS PATH" pairs checked on each instance
#                           (default: "200 /health/live 200 /health/ready 401 /projects")
#   TC_HTTP_TIMEOUT         seconds one readiness or smoke request may take (default 5)
#   TC_HTTP_HOST            Host header of those requests, for a runtime whose instance URLs
#                           are addresses the app does not allow (compose: 127.0.0.1)
set -euo pipefail

TC_SCRIPT_NAME=${TC_SCRIPT_NAME:-$(basename "$0" .sh)}

# One line per step on standard error (standard output stays free for values that callers
# capture), with a UTC timestamp.
log() {
    printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$TC_SCRIPT_NAME" "$*" >&2
}

die() {
    log "error: $*"
    exit 1
}

require_env() {
    local name
    for name in "$@"; do
        [[ -n ${!name:-} ]] || die "$name is not set"
    done
}

require_command() {
    local name
    for name in "$@"; do
        command -v "$name" >/dev/null 2>&1 || die "required command not found: $name"
    done
}

# json_string TEXT: TEXT as a JSON string literal (quotes, backslashes, control characters).
json_string() {
    local value=$1 out="" char code i
    for ((i = 0; i < ${#value}; i++)); do
        char=${value:i:1}
        case $char in
            '"') out+='\"' ;;
            "\\") out+="\\\\" ;;
            $'\n') out+='\n' ;;
            $'\r') out+='\r' ;;
            $'\t') out+='\t' ;;
            *)
                printf -v code '%d' "'$char"
                if ((code < 32)); then
                    printf -v char '\\u%04x' "$code"
                fi
                out+=$char
                ;;
        esac
    done
    printf '"%s"' "$out"
}

# notify EVENT STATUS MESSAGE [RELEASE]: POST a JSON notification to TC_DEPLOY_WEBHOOK_URL.
# Optional and harmless: without the URL it does nothing, and a slow or failing webhook
# costs at most TC_NOTIFY_TIMEOUT seconds and one log line, never the deploy. The URL goes
# to curl through its standard input, not its arguments, and is never logged: it often
# carries a token.
notify() {
    local event=$1 status=$2 message=$3 release=${4:-} url=${TC_DEPLOY_WEBHOOK_URL:-} body rc=0
    [[ -n $url ]] || return 0
    if ! command -v curl >/dev/null 2>&1; then
        log "notification skipped: curl not found"
        return 0
    fi
    body=$(printf '{"event":%s,"status":%s,"message":%s,"release":%s,"host":%s,"time":%s}' \
        "$(json_string "$event")" "$(json_string "$status")" "$(json_string "$message")" \
        "$(json_string "$release")" "$(json_string "$(hostname)")" \
        "$(json_string "$(date -u +%Y-%m-%dT%H:%M:%SZ)")")
    local escaped=${url//\\/\\\\}
    escaped=${escaped//\"/\\\"}
    printf 'url = "%s"\n' "$escaped" | curl --config - --silent --show-error --fail \
        --output /dev/null --max-time "${TC_NOTIFY_TIMEOUT:-5}" --connect-timeout 3 \
        --header 'Content-Type: application/json' --data-binary "$body" 2>/dev/null || rc=$?
    if ((rc == 0)); then
        log "notified the webhook: $event $status"
    else
        log "warning: the webhook notification failed (curl exit $rc); the deploy goes on"
    fi
    return 0
}

# percent_decode TEXT: the URL-decoded TEXT (%40 -> @).
percent_decode() {
    local text=${1//\\/\\\\}
    printf '%b' "${text//%/\\x}"
}

# parse_database_url URL: set DB_BACKEND (postgresql | mysql), DB_USER, DB_PASSWORD,
# DB_HOST, DB_PORT and DB_NAME from a SQLAlchemy URL (driver suffix and query ignored,
# userinfo and database percent-decoded). Nothing is printed: the password stays in
# DB_PASSWORD for PGPASSWORD or an option file.
# shellcheck disable=SC2034 # the DB_* values are the result, read by the caller
parse_database_url() {
    local url=$1 scheme rest authority path userinfo hostport
    [[ $url =~ ^([A-Za-z][A-Za-z0-9]*)(\+[A-Za-z0-9_]+)?://(.*)$ ]] \
        || die "the database URL has no scheme://"
    scheme=${BASH_REMATCH[1],,} rest=${BASH_REMATCH[3]}
    case $scheme in
        postgresql | postgres) DB_BACKEND=postgresql ;;
        mysql | mariadb) DB_BACKEND=mysql ;;
        sqlite) die "SQLite is a file: back it up with sqlite3's .backup, not this script" ;;
        *) die "unsupported database backend: $scheme" ;;
    esac
    rest=${rest%%\?*}
    rest=${rest%%#*}
    authority=${rest%%/*}
    path=""
    [[ $rest == */* ]] && path=${rest#*/}
    userinfo="" hostport=$authority
    if [[ $authority == *@* ]]; then
        userinfo=${authority%@*} hostport=${authority##*@}
    fi
    DB_USER="" DB_PASSWORD=""
    if [[ -n $userinfo ]]; then
        DB_USER=$(percent_decode "${userinfo%%:*}")
        [[ $userinfo == *:* ]] && DB_PASSWORD=$(percent_decode "${userinfo#*:}")
    fi
    if [[ $hostport =~ ^\[([^]]+)\](:([0-9]+))?$ ]]; then
        DB_HOST=${BASH_REMATCH[1]} DB_PORT=${BASH_REMATCH[3]}
    elif [[ $hostport =~ ^([^:]*)(:([0-9]+))?$ ]]; then
        DB_HOST=${BASH_REMATCH[1]} DB_PORT=${BASH_REMATCH[3]}
    else
        die "the database URL's host is malformed"
    fi
    DB_NAME=$(percent_decode "$path")
    [[ -n $DB_NAME ]] || die "the database URL names no database"
    if [[ -z $DB_PORT ]]; then
        if [[ $DB_BACKEND == postgresql ]]; then DB_PORT=5432; else DB_PORT=3306; fi
    fi
    [[ -n $DB_HOST ]] || DB_HOST=localhost
}

# database_label: how logs name the parsed database (never with its password).
database_label() {
    printf '%s database %s on %s:%s as %s\n' "$DB_BACKEND" "$DB_NAME" "$DB_HOST" "$DB_PORT" \
        "${DB_USER:-(default user)}"
}

# mysql_option_value TEXT: TEXT quoted for a MariaDB/MySQL option file.
mysql_option_value() {
    local text=${1//\\/\\\\}
    text=${text//\"/\\\"}
    printf '"%s"' "$text"
}

# write_mysql_options FILE: the [client] options (user, password, host, port) of the
# parsed URL, in a file only its owner may read, for --defaults-extra-file: the
# password never appears in a command line.
write_mysql_options() {
    local file=$1
    (
        umask 077
        {
            printf '[client]\n'
            [[ -z $DB_USER ]] || printf 'user=%s\n' "$(mysql_option_value "$DB_USER")"
            [[ -z $DB_PASSWORD ]] || printf 'password=%s\n' "$(mysql_option_value "$DB_PASSWORD")"
            printf 'host=%s\n' "$(mysql_option_value "$DB_HOST")"
            printf 'port=%s\n' "$DB_PORT"
            printf 'protocol=TCP\n'
        } >"$file"
    )
}

# http_status URL: print the HTTP status of a GET (000 when there was no answer).
http_status() {
    local status
    status=$(curl --silent --output /dev/null --write-out '%{http_code}' \
        --max-time "${TC_HTTP_TIMEOUT:-5}" ${TC_HTTP_HOST:+--header "Host: $TC_HTTP_HOST"} \
        "$1" 2>/dev/null) || true
    printf '%s\n' "${status:-000}"
}

# wait_ready BASE_URL: poll BASE_URL/health/ready until it answers 200, for at most
# TC_READY_TIMEOUT seconds.
wait_ready() {
    local base=$1 timeout=${TC_READY_TIMEOUT:-60} status=000 deadline
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        status=$(http_status "$base/health/ready")
        if [[ $status == 200 ]]; then
            log "ready: $base/health/ready answered 200"
            return 0
        fi
        sleep 0.5
    done
    log "not ready after ${timeout}s: $base/health/ready last answered $status"
    return 1
}

# smoke_test BASE_URL: each TC_SMOKE_CHECKS pair "STATUS PATH" must answer that status.
smoke_test() {
    local base=$1 checks expected path status failed=0 i
    read -r -a checks <<<"${TC_SMOKE_CHECKS:-200 /health/live 200 /health/ready 401 /projects}"
    if ((${#checks[@]} % 2 != 0)); then
        log "TC_SMOKE_CHECKS must be STATUS PATH pairs"
        return 1
    fi
    for ((i = 0; i < ${#checks[@]}; i += 2)); do
        expected=${checks[i]} path=${checks[i + 1]}
        status=$(http_status "$base$path")
        if [[ $status != "$expected" ]]; then
            log "smoke test failed: GET $base$path answered $status, expected $expected"
            failed=1
        fi
    done
    if ((failed == 0)); then
        log "smoke tests passed on $base ($((${#checks[@]} / 2)) requests)"
    fi
    return "$failed"
}

# rt ARGS...: one call of the runtime contract. File descriptor 9 holds the deploy lock:
# closed here, or the services the runtime spawns would inherit it and keep the lock
# after this script has exited.
rt() {
    local runtime
    read -r -a runtime <<<"$TC_RUNTIME"
    "${runtime[@]}" "$@" 9>&-
}

# acquire_lock: one deploy or rollback at a time on TC_DEPLOY_ROOT.
acquire_lock() {
    require_command flock
    mkdir -p "$TC_DEPLOY_ROOT"
    exec 9>>"$TC_DEPLOY_ROOT/.deploy.lock"
    if ! flock --nonblock 9; then
        die "another deploy or rollback holds $TC_DEPLOY_ROOT/.deploy.lock"
    fi
}

# release_of LINK: print the release directory LINK (current or previous) names, if any.
release_of() {
    local link="$TC_DEPLOY_ROOT/$1" target
    [[ -L $link ]] || return 0
    target=$(readlink "$link")
    case $target in
        /*) printf '%s\n' "$target" ;;
        *) printf '%s\n' "$TC_DEPLOY_ROOT/$target" ;;
    esac
}

# set_link LINK RELEASE_DIR: point LINK at RELEASE_DIR atomically (rename over the link).
set_link() {
    local link="$TC_DEPLOY_ROOT/$1" target=$2
    case $target in
        "$TC_DEPLOY_ROOT"/*) target=${target#"$TC_DEPLOY_ROOT"/} ;;
    esac
    ln -sfn "$target" "$link.new"
    mv -T "$link.new" "$link"
}

# roll_instance SERVICE RELEASE_DIR: move one app instance onto RELEASE_DIR while nginx
# sends its traffic to the other: drain, stop, start, wait until ready, smoke-test,
# undrain. Returns non-zero at the first failed gate, with the instance still drained.
roll_instance() {
    local service=$1 release=$2 url
    log "$service: draining"
    rt drain "$service" || { log "$service: drain failed"; return 1; }
    log "$service: stopping"
    rt stop "$service" || { log "$service: stop failed"; return 1; }
    log "$service: starting on $(basename "$release")"
    rt start "$service" "$release" || { log "$service: start failed"; return 1; }
    url=$(rt url "$service") || { log "$service: no URL from the runtime"; return 1; }
    wait_ready "$url" || return 1
    smoke_test "$url" || return 1
    log "$service: undraining"
    rt undrain "$service" || { log "$service: undrain failed"; return 1; }
    log "$service: serving $(basename "$release")"
}

# roll_worker RELEASE_DIR: restart the video worker on RELEASE_DIR (its jobs are leased:
# a graceful stop hands an unfinished render back to the queue). When the runtime has a
# URL for it, the worker's metrics server must then answer within TC_READY_TIMEOUT, with
# any status (its allow-list may refuse this host): the process started and runs.
roll_worker() {
    local release=$1 url deadline
    log "worker: stopping"
    rt stop worker || { log "worker: stop failed"; return 1; }
    log "worker: starting on $(basename "$release")"
    rt start worker "$release" || { log "worker: start failed"; return 1; }
    if ! url=$(rt url worker 2>/dev/null) || [[ -z $url ]]; then
        log "worker: started (the runtime gives no URL to check it)"
        return 0
    fi
    deadline=$((SECONDS + ${TC_READY_TIMEOUT:-60}))
    while [[ $(http_status "$url/metrics") == 000 ]]; do
        if ((SECONDS >= deadline)); then
            log "worker: $url/metrics did not answer within ${TC_READY_TIMEOUT:-60}s"
            return 1
        fi
        sleep 0.5
    done
    log "worker: running, its metrics server answers on $url"
}

# Set by the INT/TERM trap of deploy.sh and rollback.sh: roll_all treats it as a failed
# gate, so an interrupted deploy still puts every instance back before it exits.
TC_INTERRUPTED=0
# The first failed gate of the last roll_all, for the caller's message.
ROLL_FAILURE=""

# peer_of SERVICE: the other app instance.
peer_of() {
    if [[ $1 == app1 ]]; then echo app2; else echo app1; fi
}

# roll_or_fail ACTION TARGET FALLBACK: roll_all TARGET FALLBACK with SIGINT/SIGTERM turned
# into a failed gate (roll_all puts back what it moved before the script exits). When it
# fails: one log line and an ACTION (deploy | rollback) "failed" notification saying where
# the instances are, then exit 1; `current` was not touched.
roll_or_fail() {
    local action=$1 target=$2 fallback=$3 status=0 outcome
    trap 'TC_INTERRUPTED=1' INT TERM
    roll_all "$target" "$fallback" || status=$?
    trap - INT TERM
    ((status != 0)) || return 0
    case $status in
        1) outcome="rolled back to $(basename "$fallback")" ;;
        3) outcome="nothing was restarted" ;;
        *) outcome="ROLLBACK INCOMPLETE, see the log" ;;
    esac
    log "$action to $(basename "$target") failed: $ROLL_FAILURE; $outcome;" \
        "current is still $(basename "$fallback")"
    notify "$action" failed "$(basename "$target"): $ROLL_FAILURE; $outcome" "$(basename "$target")"
    exit 1
}

# roll_all TARGET FALLBACK: move app1, app2, then the worker onto release TARGET. At the
# first failed gate, every service already moved (the failing one included) goes back to
# release FALLBACK the same way. Returns 0 when all run TARGET, 1 when all are back on
# FALLBACK, 2 when even that failed for one of them (it stays out of nginx; see the log),
# 3 when the first gate failed before anything moved.
roll_all() {
    local target=$1 fallback=$2 service peer url moved=() worker_moved=0 failed=""
    for service in app1 app2; do
        peer=$(peer_of "$service")
        # Draining an instance while its peer is not serving would leave nginx none.
        url=$(rt url "$peer") || url=""
        if [[ -z $url || $(http_status "$url/health/ready") != 200 ]]; then
            failed="$peer is not ready, so $service cannot leave nginx"
            break
        fi
        ((TC_INTERRUPTED == 0)) || { failed="interrupted"; break; }
        moved+=("$service")
        if ! roll_instance "$service" "$target"; then
            failed="$service did not come up on $(basename "$target")"
            break
        fi
    done
    if [[ -z $failed ]] && ((TC_INTERRUPTED == 0)); then
        worker_moved=1
        roll_worker "$target" || failed="the worker did not start on $(basename "$target")"
    fi
    ((TC_INTERRUPTED == 0)) || failed=${failed:-interrupted}
    if [[ -z $failed ]]; then
        return 0
    fi
    log "failed gate: $failed"
    # shellcheck disable=SC2034 # read by the caller
    ROLL_FAILURE=$failed
    if ((${#moved[@]} == 0 && worker_moved == 0)); then
        return 3
    fi
    if [[ -z $fallback || $fallback == "$target" ]]; then
        log "CRITICAL: no other release to go back to; ${moved[*]} left as they are"
        return 2
    fi
    local status=1
    for service in "${moved[@]}"; do
        log "rollback: $service back to $(basename "$fallback")"
        if ! roll_instance "$service" "$fallback"; then
            log "CRITICAL: $service could not be restored on $(basename "$fallback"); it stays out of nginx"
            status=2
        fi
    done
    if ((worker_moved)); then
        log "rollback: worker back to $(basename "$fallback")"
        roll_worker "$fallback" || { log "CRITICAL: the worker could not be restarted"; status=2; }
    fi
    return "$status"
}
