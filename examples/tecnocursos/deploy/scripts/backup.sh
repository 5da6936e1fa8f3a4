#!/usr/bin/env bash
# backup.sh: a consistent dump of the database TC_DATABASE__URL names, with its checksum.
#
#   TC_DATABASE__URL=postgresql+asyncpg://user:pass@host/db TC_BACKUP_DIR=/backups backup.sh
#
# PostgreSQL: pg_dump's custom format (-Fc: compressed, restored with pg_restore), a
# snapshot of one transaction. MariaDB/MySQL: mariadb-dump (or mysqldump)
# --single-transaction --routines, gzip-compressed: consistent for InnoDB tables without
# locking them. Each backup is <database>-<UTC time>.<pgdump|sql.gz> plus a .sha256 file
# (`sha256sum --check` format) that restore.sh verifies first. Only the newest
# TC_BACKUP_KEEP (default 7) backups of the database are kept. TC_DATABASE__PASSWORD (or
# the file tc_database__password in TC_SECRETS_DIR, default /run/secrets, where the app
# reads its secret files), when set, replaces the URL's password, as in the settings. The
# password reaches the dump tool through PGPASSWORD or a private option file, never its
# command line, and is never printed. Prints the backup's path on standard output.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
source "$SCRIPT_DIR/lib.sh"

require_env TC_DATABASE__URL
backup_dir=${TC_BACKUP_DIR:-${TC_DEPLOY_ROOT:+$TC_DEPLOY_ROOT/backups}}
[[ -n $backup_dir ]] || die "set TC_BACKUP_DIR (or TC_DEPLOY_ROOT: its backups/ directory)"
keep=${TC_BACKUP_KEEP:-7}
[[ $keep =~ ^[1-9][0-9]*$ ]] || die "TC_BACKUP_KEEP must be a positive integer, not '$keep'"

parse_database_url "$TC_DATABASE__URL"
# As in the settings, database.password wins over the URL's: the URL in plain
# configuration, the password in the environment or a secrets file.
if [[ -n ${TC_DATABASE__PASSWORD:-} ]]; then
    DB_PASSWORD=$TC_DATABASE__PASSWORD
elif [[ -r ${TC_SECRETS_DIR:-/run/secrets}/tc_database__password ]]; then
    DB_PASSWORD=$(<"${TC_SECRETS_DIR:-/run/secrets}/tc_database__password")
fi
# Backups hold password hashes and personal data: readable by their owner only.
umask 077
mkdir -p "$backup_dir"
stamp=$(date -u +%Y%m%dT%H%M%S%NZ)
if [[ $DB_BACKEND == postgresql ]]; then extension=pgdump; else extension=sql.gz; fi
name="$DB_NAME-$stamp.$extension"
target="$backup_dir/$name"
partial="$backup_dir/.$name.partial"
work=$(mktemp -d)
cleanup() {
    rm -rf "$work"
    rm -f "$partial"
}
trap cleanup EXIT

log "backing up the $(database_label)"
if [[ $DB_BACKEND == postgresql ]]; then
    require_command pg_dump
    PGPASSWORD=$DB_PASSWORD PGCONNECT_TIMEOUT=10 pg_dump --format=custom --no-password \
        --host="$DB_HOST" --port="$DB_PORT" ${DB_USER:+--username="$DB_USER"} \
        --file="$partial" --dbname="$DB_NAME"
else
    dump=$(command -v mariadb-dump || command -v mysqldump) \
        || die "required command not found: mariadb-dump or mysqldump"
    require_command gzip
    write_mysql_options "$work/client.cnf"
    # --no-tablespaces: dumping tablespaces needs the PROCESS privilege, which an
    # application's database user rarely has (and InnoDB tables do not need).
    "$dump" --defaults-extra-file="$work/client.cnf" --single-transaction --routines \
        --triggers --no-tablespaces --default-character-set=utf8mb4 --hex-blob \
        "$DB_NAME" | gzip -6 >"$partial"
fi

checksum=$(sha256sum <"$partial")
checksum=${checksum%% *}
mv -f "$partial" "$target"
printf '%s  %s\n' "$checksum" "$name" >"$target.sha256.partial"
mv -f "$target.sha256.partial" "$target.sha256"
log "backup written: $target ($(wc -c <"$target") bytes, sha256 $checksum)"

# Retention: the names sort by time (fixed-width UTC stamps), oldest first.
shopt -s nullglob
export LC_ALL=C
backups=("$backup_dir/$DB_NAME"-[0-9]*Z."$extension")
if ((${#backups[@]} > keep)); then
    for old in "${backups[@]:0:${#backups[@]}-keep}"; do
        rm -f "$old" "$old.sha256"
        log "retention: removed $(basename "$old") (keeping the newest $keep)"
    done
fi
printf '%s\n' "$target"
