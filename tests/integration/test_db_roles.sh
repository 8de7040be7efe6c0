#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The database roles of a production set-up (issue 12), on a cluster of the
# test's own where nothing of renkei exists yet, with three login roles and
# no superuser anywhere but the set-up:
# - mig, CREATEROLE and owner of the database: `renkei migrate` creates
#   renkei_owner and renkei_service and the schema;
# - hub, granted renkei_service only: serves (no superuser warning), runs
#   the CLI, rotates the master secret; cannot migrate, become the owner,
#   change or delete the audit log, turn row-level security off, or read a
#   table's rows without a tenant;
# - bak, BYPASSRLS with pg_read_all_data only: ops/backup dumps every row
#   through it (and archives the audit log through hub); it writes nothing,
#   and the backup restores and verifies.
# A hub whose login role lacks renkei_service is not ready and says why.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"

RUN_TIMEOUT=60
private_cluster
ADMIN_DB=$RENKEI_DB
psql "$ADMIN_DB" -XqAt -v ON_ERROR_STOP=1 <<SQL >/dev/null || fail "set-up of the roles failed"
CREATE ROLE mig LOGIN CREATEROLE;
CREATE ROLE hub LOGIN;
ALTER DATABASE "$TEST_DB_NAME" OWNER TO mig;
CREATE EXTENSION IF NOT EXISTS postgis;
SQL
as() { # as ROLE: RENKEI_DB as that login role
  printf '%s user=%s' "$ADMIN_DB" "$1"
}
MIG_DB=$(as mig)
HUB_DB=$(as hub)
psql_as() { # psql_as ROLE SQL: run SQL as ROLE; output and errors in PSQL_OUT
  PSQL_OUT=$(psql "$(as "$1")" -XqAt -v ON_ERROR_STOP=1 -c "$2" 2>&1) && return 0
  return 1
}
refused_as() { # refused_as ROLE SQL PATTERN MSG
  if psql_as "$1" "$2"; then
    fail "$4: [$2] as $1 was allowed: $PSQL_OUT"
  fi
  assert_match "$3" "$PSQL_OUT" "$4"
}

# ------------------------------------------------------------------ migrations
run_renkei RENKEI_DB="$HUB_DB" migrate
assert_eq 1 "$RUN_STATUS" "the hub's role cannot migrate"
assert_match "permission denied" "$RUN_ERR" "PostgreSQL's reason is shown"
run_renkei RENKEI_DB="$MIG_DB" migrate
check "the migration role (CREATEROLE, owns the database) migrates" test "$RUN_STATUS" = 0
assert_eq "renkei_owner" "$(sql "SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'renkei'")" \
  "the schema belongs to renkei_owner"
assert_eq "" "$(sql "SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolname IN ('renkei_owner', 'renkei_service') AND rolcanlogin")" \
  "neither renkei role can log in"

# ------------------------------------------------------------------ a hub without renkei_service
hub_start RENKEI_DB="$HUB_DB"
poll 15 grep -q 'renkei_service' "$HUB_LOG" || fail "the hub did not say what is missing"
http GET /readyz
assert_status 503 "a login role without renkei_service: not ready"
assert_match "renkei_service" "$HTTP_BODY" "/readyz names the role"
sql "GRANT renkei_service TO hub" >/dev/null
poll 40 curl -sf "$HUB_URL/readyz" -o /dev/null || fail "the hub did not become ready after the grant"
ok "granted renkei_service, it becomes ready without a restart"
hub_stop
assert_eq "" "$(grep -c 'logs in as a superuser' "$HUB_LOG" | grep -v '^0$' || true)" "and gives no superuser warning"

# ------------------------------------------------------------------ the hub's role at work
HUBENV=(RENKEI_DB="$HUB_DB")
for t in "kagawa 香川県" "takamatsu 高松市 kagawa"; do
  # shellcheck disable=SC2086
  set -- $t
  run_renkei "${HUBENV[@]}" tenant add "$1" --name "$2" ${3:+--parent "$3"} --hosted
  check "tenant add $1 as the hub's role" test "$RUN_STATUS" = 0
done
run_renkei "${HUBENV[@]}" client add --tenant takamatsu --name app --grant client_credentials \
  --scope "ngsi.read ngsi.write" --json
check "client add as the hub's role" test "$RUN_STATUS" = 0
CID=$(jq -r .client_id <<<"$RUN_OUT")
CSECRET=$(jq -r .client_secret <<<"$RUN_OUT")
hub_start RENKEI_DB="$HUB_DB"
get_token "$CID" "$CSECRET"
NG=(-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json')
http POST /v2/entities "${NG[@]}" --data-binary '{"id": "R1", "type": "Room", "t": {"value": 21}}'
assert_status 201 "an NGSI write as the hub's role"
http GET /v2/entities/R1 -H "Authorization: Bearer $TOKEN"
assert_status 200 "and read"
run_renkei "${HUBENV[@]}" secret rotate
assert_eq 0 "$RUN_STATUS" "the hub's role rotates the master secret [$RUN_ERR]"
run_renkei "${HUBENV[@]}" audit checkpoint
check "and signs a checkpoint" test "$RUN_STATUS" = 0
hub_stop

refused_as hub "SELECT 1 FROM renkei.tenants LIMIT 0; SET ROLE renkei_owner" "permission denied to set role" \
  "the hub's role cannot become the owner"
refused_as hub "CREATE TABLE renkei.x (a int)" "permission denied" "nor create tables"
refused_as hub "ALTER TABLE renkei.tenants DISABLE ROW LEVEL SECURITY" "must be owner" "nor turn row-level security off"
refused_as hub "SET ROLE renkei_service; DELETE FROM renkei.audit_entries" "permission denied|refused|append" \
  "nor delete audit entries, even as renkei_service"
refused_as hub "SET ROLE renkei_service; UPDATE renkei.audit_entries SET kind = 'x'" "permission denied|refused|append" \
  "nor change them"
psql_as hub "SET ROLE renkei_service; SELECT count(*) FROM renkei.clients" || fail "a read as renkei_service: $PSQL_OUT"
assert_eq 0 "$PSQL_OUT" "without a tenant, row-level security shows no client"
assert_ge "$(sql "SELECT count(*) FROM renkei.clients")" 1 "(there is one)"

# ------------------------------------------------------------------ backups as their own role
sql "CREATE ROLE bak LOGIN BYPASSRLS IN ROLE pg_read_all_data" >/dev/null
BAK_DB=$(as bak)
RENKEI_DB=$HUB_DB RENKEI_BACKUP_DB=$BAK_DB RENKEI_SECRET_FILE=$tmpdir/secret RENKEI_BIN=$RENKEI_BIN \
  "$RENKEI_SRC/ops/backup" --secret "$tmpdir/secret" "$tmpdir/backup" >"$tmpdir/backup.out" 2>&1 ||
  fail "ops/backup as bak failed: $(cat "$tmpdir/backup.out")"
ok "ops/backup as the backup role: $(tail -n 1 "$tmpdir/backup.out")"
refused_as bak "INSERT INTO renkei.tenants (id, name, city_os) VALUES ('x', 'x', 'hosted')" "permission denied" \
  "the backup role writes no table"
refused_as bak "SET ROLE renkei_service" "permission denied" "nor can it act as the service"
refused_as bak "DELETE FROM renkei.audit_entries" "permission denied" "nor deletes"
RDB=r_$(_rand)
RENKEI_DB= "$RENKEI_SRC/ops/restore" --admin "$ADMIN_DB" --dbname "$RDB" "$tmpdir/backup" >"$tmpdir/restore.out" 2>&1 ||
  fail "ops/restore failed: $(cat "$tmpdir/restore.out")"
ok "the backup restores, and its audit log verifies there: $(tail -n 1 "$tmpdir/restore.out")"
n_src=$(sql "SELECT count(*) FROM renkei.clients")
assert_eq "$n_src" "$(psql "$(_conninfo_db "$ADMIN_DB" "$RDB")" -XqAt -c 'SELECT count(*) FROM renkei.clients')" \
  "every client was dumped (row-level security did not hide any)"

# a failed backup leaves nothing behind
RENKEI_DB=$HUB_DB RENKEI_SECRET_FILE=$tmpdir/secret RENKEI_BIN=$RENKEI_BIN \
  "$RENKEI_SRC/ops/backup" "$tmpdir/backup2" >"$tmpdir/backup2.out" 2>&1 && fail "a backup as the hub's role (no BYPASSRLS) succeeded"
check "a backup that fails (the hub's role: row-level security) leaves no directory" test ! -e "$tmpdir/backup2"
assert_match "nothing is left" "$(cat "$tmpdir/backup2.out")" "and says so"
ok "database roles"
