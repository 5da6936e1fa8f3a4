#!/usr/bin/env bash
# restore.sh BACKUP_FILE [TARGET_DATABASE_URL]: restore a backup.sh dump into a database.
#
# The checksum comes first: a backup whose BACKUP_FILE.sha256 is missing or does not match
# is refused before anything touches the target. The target database must exist (an empty
# one, or the damaged one: tables of the dump are dropped and re-created). The URL may come
# from TC_RESTORE_DATABASE_URL instead of the command line, where `ps` would show its
# password. PostgreSQL dumps (.pgdump) restore with pg_restore in one transaction, owners
# and grants left to the target; MariaDB/MySQL dumps (.sql.gz) with the mariadb client.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
source "$SCRIPT_DIR/lib.sh"

(($# >= 1 && $# <= 2)) || die "usage: restore.sh BACKUP_FILE [TARGET_DATABASE_URL]"
backup=$1
target_url=${2:-${TC_RESTORE_DATABASE_URL:-}}
[[ -n $target_url ]] || die "no target: pass TARGET_DATABASE_URL or set TC_RESTORE_DATABASE_URL"
[[ -f $backup ]] || die "no such backup: $backup"
[[ -f $backup.sha256 ]] || die "refusing $backup: its checksum file $backup.sha256 is missing"

read -r expected _ <"$backup.sha256" || true
actual=$(sha256sum <"$backup")
actual=${actual%% *}
if [[ ! $expected =~ ^[0-9a-f]{64}$ || $actual != "$expected" ]]; then
    die "refusing $backup: sha256 $actual does not match $backup.sha256"
fi
log "checksum verified: $(basename "$backup") (sha256 $actual)"

parse_database_url "$target_url"
case $backup in
    *.pgdump) format=postgresql ;;
    *.sql.gz) format=mysql ;;
    *) die "unknown backup format (expected .pgdump or .sql.gz): $backup" ;;
esac
[[ $format == "$DB_BACKEND" ]] || die "a $format backup cannot go into a $DB_BACKEND database"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "restoring into the $(database_label)"
if [[ $DB_BACKEND == postgresql ]]; then
    require_command pg_restore
    PGPASSWORD=$DB_PASSWORD PGCONNECT_TIMEOUT=10 pg_restore --no-password --exit-on-error \
        --single-transaction --clean --if-exists --no-owner --no-privileges \
        --host="$DB_HOST" --port="$DB_PORT" ${DB_USER:+--username="$DB_USER"} \
        --dbname="$DB_NAME" "$backup"
else
    client=$(command -v mariadb || command -v mysql) \
        || die "required command not found: mariadb or mysql"
    require_command gzip
    write_mysql_options "$work/client.cnf"
    gzip -dc "$backup" | "$client" --defaults-extra-file="$work/client.cnf" \
        --connect-timeout=10 --default-character-set=utf8mb4 --database="$DB_NAME"
fi
log "restored $(basename "$backup") into $DB_NAME"
