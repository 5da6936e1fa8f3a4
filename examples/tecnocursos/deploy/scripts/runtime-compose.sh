#!/usr/bin/env bash
# runtime-compose.sh: the runtime contract of deploy.sh and rollback.sh for the compose
# deployment (compose.yaml beside this directory), on one Docker host:
#
#   export TC_RUNTIME="$PWD/deploy/scripts/runtime-compose.sh" TC_DEPLOY_ROOT=/srv/tecnocursos
#   export TC_HTTP_HOST=127.0.0.1   # the apps' allowed hosts include it, not container IPs
#   deploy/scripts/deploy.sh /path/to/release-2026-11-30 r42
#
# A release directory's release.env holds the compose variables of that release (TC_IMAGE:
# the image tag; TC_RELEASE: the version the apps report; TC_PUBLIC_HOST); the services'
# settings are compose.yaml's. Commands:
#   start SERVICE RELEASE   recreate SERVICE from RELEASE's image and variables, no deps
#   stop SERVICE / kill SERVICE
#   url SERVICE             http://<container address>:8000 (the worker's metrics: :9191;
#                           reachable from a Linux host, not from Docker Desktop's VM)
#   drain / undrain SERVICE mark SERVICE "down" in nginx's rendered upstream.conf (or not),
#                           `nginx -t`, `nginx -s reload`, then wait TC_COMPOSE_RELOAD_WAIT
#                           seconds (default 3) for the old workers to finish their requests
#   exec RELEASE CMD...     CMD in a one-off app container of RELEASE (backup.sh: in the
#                           `backup` service, the database's image with mariadb-dump), with
#                           this scripts directory and TC_BACKUP_DIR mounted at the same paths
#   migrate RELEASE         alembic upgrade head in a one-off container of RELEASE
#   nginx-test              nginx -t in the running nginx container
#   up / down               the whole deployment, from $TC_DEPLOY_ROOT/current
#
# Not runnable on the machine that proves the kit (no Docker engine there): that proof runs
# deploy.sh against deploy/local.py, the same contract for local processes. A limit to
# know: a drained state lives in the nginx container and an nginx restart forgets it (the
# templates render both instances up).
set -euo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT_DIR="$DEPLOY_DIR/scripts"
UPSTREAM=/etc/nginx/conf.d/upstream.conf

compose() {
    docker compose --project-directory "$DEPLOY_DIR" --file "$DEPLOY_DIR/compose.yaml" "$@"
}

# compose_for RELEASE ARGS...: compose with RELEASE's variables (image tag, version).
compose_for() {
    local release=$1
    shift
    [[ -f $release/release.env ]] || {
        echo "runtime-compose: $release has no release.env" >&2
        exit 2
    }
    compose --env-file "$release/release.env" "$@"
}

app_service() {
    case $1 in
        app1 | app2) ;;
        *)
            echo "runtime-compose: not an app instance: $1" >&2
            exit 2
            ;;
    esac
}

# set_upstream SERVICE STATE: STATE is "down" or "" on SERVICE's server line.
set_upstream() {
    local service=$1 state=$2
    app_service "$service"
    # The line is "server app1:8000 max_fails=3 fail_timeout=10s[ down];" (upstream.conf
    # template): drop any " down", then add it back when draining.
    # shellcheck disable=SC2016 # $1..$3 belong to the container's shell
    compose exec -T nginx sh -c '
        set -e
        sed -i -E "s/^( *server $1:[0-9]+ [^;]*) down;/\1;/" "$2"
        if [ "$3" = down ]; then
            sed -i -E "s/^( *server $1:[0-9]+ [^;]*);/\1 down;/" "$2"
        fi
        nginx -t -q
        nginx -s reload
    ' sh "$service" "$UPSTREAM" "$state"
    sleep "${TC_COMPOSE_RELOAD_WAIT:-3}"
}

(($# >= 1)) || {
    echo "usage: runtime-compose.sh COMMAND [ARGS...]" >&2
    exit 2
}
command=$1
shift
case $command in
    start)
        compose_for "$2" up --detach --no-deps --force-recreate "$1"
        ;;
    stop)
        compose stop "$1"
        ;;
    kill)
        compose kill --signal KILL "$1"
        ;;
    url)
        port=8000
        [[ $1 != worker ]] || port=9191
        [[ $1 == worker ]] || app_service "$1"
        container=$(compose ps --quiet "$1")
        [[ -n $container ]] || {
            echo "runtime-compose: $1 is not running" >&2
            exit 1
        }
        address=$(docker inspect --format \
            '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$container")
        printf 'http://%s:%s\n' "${address%% *}" "$port"
        ;;
    drain)
        set_upstream "$1" down
        ;;
    undrain)
        set_upstream "$1" ""
        ;;
    exec)
        release=$1
        shift
        backups=${TC_BACKUP_DIR:-${TC_DEPLOY_ROOT:-/tmp}/backups}
        mkdir -p "$backups"
        # backup.sh needs mariadb-dump: the `backup` service's image has it, the app's not.
        service=app1
        if [[ $(basename "$1") == backup.sh ]]; then
            service=backup
        fi
        compose_for "$release" run --rm --no-deps -T \
            --volume "$SCRIPT_DIR:$SCRIPT_DIR:ro" --volume "$backups:$backups" \
            --env TC_BACKUP_DIR="$backups" "$service" "$@"
        ;;
    migrate)
        compose_for "$1" run --rm --no-deps -T migrate
        ;;
    nginx-test)
        compose exec -T nginx nginx -t
        ;;
    up)
        compose_for "$TC_DEPLOY_ROOT/current" up --detach --wait
        ;;
    down)
        compose down
        ;;
    *)
        echo "runtime-compose: unknown command: $command" >&2
        exit 2
        ;;
esac
