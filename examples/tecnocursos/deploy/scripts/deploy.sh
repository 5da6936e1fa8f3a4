#!/usr/bin/env bash
# deploy.sh RELEASE_DIR [NAME]: zero-downtime deploy of a release, one instance at a time.
#
# RELEASE_DIR holds release.env (the release's TC_* settings); NAME defaults to its
# directory name. The sequence, each step a gate:
#   1. install   copy RELEASE_DIR to $TC_DEPLOY_ROOT/releases/NAME (releases are immutable:
#                the same name with other contents is refused)
#   2. preflight nginx -t; the settings deploy check, the database and Redis reachable, all
#                in the new release's environment; free disk space
#   3. backup    backup.sh of the release's database, before any migration
#   4. migrate   alembic upgrade head, once
#   5. app1, then app2: drain it from nginx, stop it, start it on the new release, wait
#                for /health/ready, smoke-test it directly, put it back into nginx
#   6. worker    stop, start on the new release, its metrics server answers
#   7. switch    previous -> the old release, current -> the new one
# The first release (no `current` yet) stops after step 4: `current` points at it and
# `$TC_RUNTIME up` starts the services.
# A failed gate after step 4 rolls every instance already moved back to the old release
# (drained, restarted, ready, smoke-tested, undrained, like the way forward), then the
# script notifies and exits 1 with `current` unchanged. Migrations must therefore keep
# the old release working (expand first, contract in a later release); the backup is the
# way back from a migration that breaks it.
#
# Environment: TC_RUNTIME (the runtime contract's command prefix) and TC_DEPLOY_ROOT
# (required); TC_PYTHON (python of the release's environment, default python),
# TC_MIN_FREE_MB (default 1024), TC_BACKUP_DIR (default $TC_DEPLOY_ROOT/backups),
# TC_SETTINGS_CLASS, and those of lib.sh (readiness, smoke tests, webhook). A lock on
# $TC_DEPLOY_ROOT/.deploy.lock keeps two deploys (or a deploy and a rollback) apart; a
# deploy that stopped half-way is finished or undone by running it (or rollback.sh) again.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
source "$SCRIPT_DIR/lib.sh"

(($# >= 1 && $# <= 2)) || die "usage: deploy.sh RELEASE_DIR [NAME]"
require_env TC_RUNTIME TC_DEPLOY_ROOT
require_command curl
source_dir=$(cd "$1" 2>/dev/null && pwd) || die "no such release directory: $1"
name=${2:-$(basename "$source_dir")}
[[ $name =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "invalid release name: '$name'"
[[ -f $source_dir/release.env ]] || die "$source_dir has no release.env"
TC_DEPLOY_ROOT=$(mkdir -p "$TC_DEPLOY_ROOT" && cd "$TC_DEPLOY_ROOT" && pwd)
export TC_DEPLOY_ROOT
export TC_BACKUP_DIR=${TC_BACKUP_DIR:-$TC_DEPLOY_ROOT/backups}
python=${TC_PYTHON:-python}
settings_class=${TC_SETTINGS_CLASS:-tecnocursos.core.settings:TecnoCursosSettings}
release="$TC_DEPLOY_ROOT/releases/$name"

acquire_lock
old=$(release_of current)
old_name=none
[[ -z $old ]] || old_name=$(basename "$old")

# fail REASON: stop before any instance moved; `current` is never switched on this path.
fail() {
    log "deploy of $name failed: $1; nothing was restarted, current is $old_name"
    notify deploy failed "$name: $1" "$name"
    exit 1
}
# Before any instance moves, a signal just stops the deploy.
trap 'fail "interrupted by a signal"' INT TERM

log "deploying $name (current: $old_name)"
notify deploy started "deploying $name" "$name"

# install: releases/NAME from RELEASE_DIR, atomically; an existing NAME must be identical.
if [[ $source_dir != "$release" ]]; then
    mkdir -p "$TC_DEPLOY_ROOT/releases"
    if [[ -e $release ]]; then
        diff -r -q "$source_dir" "$release" >/dev/null \
            || fail "release $name already exists with other contents: deploy it under a new name"
        log "install: releases/$name already holds this release"
    else
        staging="$TC_DEPLOY_ROOT/releases/.$name.$$"
        rm -rf "$staging"
        cp -a "$source_dir" "$staging" || fail "could not copy the release"
        mv -T "$staging" "$release" || fail "could not install the release"
        log "install: copied to releases/$name"
    fi
fi

# preflight
if [[ -n $old ]]; then
    log "preflight: nginx -t"
    rt nginx-test || fail "nginx -t failed"
else
    # The first release: nothing runs yet, `$TC_RUNTIME up` starts nginx (and checks it).
    log "preflight: first release, nginx is not running yet (nginx -t skipped)"
fi
log "preflight: settings deploy check of $name"
rt exec "$release" "$python" -m fastapi_enterprise.cli check --settings "$settings_class" >&2 \
    || fail "the settings deploy check failed"
log "preflight: database and Redis of $name"
rt exec "$release" "$python" "$SCRIPT_DIR/check_services.py" >&2 \
    || fail "the database or Redis is unreachable"
min_free_kb=$((${TC_MIN_FREE_MB:-1024} * 1024))
mkdir -p "$TC_BACKUP_DIR"
for directory in "$TC_DEPLOY_ROOT" "$TC_BACKUP_DIR"; do
    free_kb=$(df -Pk "$directory" | awk 'NR == 2 { print $4 }')
    ((free_kb >= min_free_kb)) \
        || fail "only $((free_kb / 1024)) MiB free on $directory (TC_MIN_FREE_MB=${TC_MIN_FREE_MB:-1024})"
done
log "preflight: disk space ok"

# backup, migrations
log "backup: database of $name"
rt exec "$release" "$SCRIPT_DIR/backup.sh" >/dev/null || fail "the backup failed"
log "migrate: alembic upgrade head with $name's settings"
rt migrate "$release" || fail "the migrations failed (restore the backup if they left damage)"

if [[ -z $old ]]; then
    set_link current "$release"
    log "first release: current -> releases/$name; start the services with: $TC_RUNTIME up"
    notify deploy succeeded "installed $name (first release)" "$name"
    exit 0
fi

# One instance at a time; a failed gate or a signal puts back what moved, then exits 1.
roll_or_fail deploy "$release" "$old"

# switch
if [[ $old != "$release" ]]; then
    set_link previous "$old"
    set_link current "$release"
    log "switch: current -> releases/$name, previous -> releases/$old_name"
else
    log "switch: $name was already current (instances restarted on it)"
fi
notify deploy succeeded "deployed $name" "$name"
log "deployed $name"
