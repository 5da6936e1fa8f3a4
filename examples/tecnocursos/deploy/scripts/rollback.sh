#!/usr/bin/env bash
# rollback.sh: go back to the release `previous` names, one instance at a time.
#
# The same procedure as deploy.sh's, without its migrations (the database keeps the newer
# schema, which the previous release must tolerate: expand first, contract later): nginx -t,
# then app1 and app2 each drained, restarted on the previous release, ready, smoke-tested
# and undrained, then the worker. Should a gate fail, the instances already moved return
# to the current release and the script exits 1 with the links unchanged; on success
# `current` and `previous` swap, so running it again goes forward again.
#
# Environment: TC_RUNTIME and TC_DEPLOY_ROOT, and those of lib.sh. Takes the deploy lock.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
source "$SCRIPT_DIR/lib.sh"

(($# == 0)) || die "usage: rollback.sh (it goes back to the release 'previous' names)"
require_env TC_RUNTIME TC_DEPLOY_ROOT
require_command curl
TC_DEPLOY_ROOT=$(cd "$TC_DEPLOY_ROOT" && pwd)
export TC_DEPLOY_ROOT

acquire_lock
current=$(release_of current)
previous=$(release_of previous)
[[ -n $current ]] || die "$TC_DEPLOY_ROOT/current does not exist: nothing is deployed"
[[ -n $previous ]] || die "$TC_DEPLOY_ROOT/previous does not exist: no release to go back to"
[[ -f $previous/release.env ]] || die "the previous release $previous has no release.env"
from=$(basename "$current") to=$(basename "$previous")

log "rolling back from $from to $to"
notify rollback started "rolling back from $from to $to" "$to"
log "preflight: nginx -t"
if ! rt nginx-test; then
    log "rollback to $to failed: nginx -t failed; nothing was restarted"
    notify rollback failed "nginx -t failed; nothing was restarted" "$to"
    exit 1
fi

roll_or_fail rollback "$previous" "$current"

set_link previous "$current"
set_link current "$previous"
log "switch: current -> releases/$to, previous -> releases/$from"
notify rollback succeeded "rolled back from $from to $to" "$to"
log "rolled back to $to"
