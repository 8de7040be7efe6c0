#!/usr/bin/env bash
# renkei migrate: applies every sql/NNNN_*.sql once, records it, is a no-op
# the second time, reports --status, refuses a changed migration; an older
# binary keeps serving a database a newer one migrated ahead (additively).
source "$(dirname "$0")/lib.sh"

shopt -s nullglob
files=("$RENKEI_SRC"/sql/[0-9][0-9][0-9][0-9]_*.sql)
shopt -u nullglob
assert_ge "${#files[@]}" 1 "$RENKEI_SRC/sql holds NNNN_*.sql migrations"
# The expected [{version, name}] from the file names, e.g. 0001_core.sql ->
# {1, "core"}.  A recorded name may carry the number and .sql or not.
norm='map({version, name: (.name | sub("^[0-9]+_"; "") | sub("\\.sql$"; ""))}) | sort_by(.version)'
expected=$(for f in "${files[@]}"; do
  b=$(basename "$f" .sql)
  printf '{"version": %d, "name": "%s"}\n' "$((10#${b%%_*}))" "${b#*_}"
done | jq -cs 'sort_by(.version)')
count=$(jq length <<<"$expected")

# Before anything: every migration is pending.
run_renkei migrate --status --json
assert_eq 0 "$RUN_STATUS" "migrate --status --json on an empty database exits 0 (stderr: $RUN_ERR)"
assert_jq 'type == "array"' "$RUN_OUT" "--status --json prints an array"
assert_jq "length == $count and all(.[]; .state == \"pending\")" "$RUN_OUT" \
  "all $count migrations are pending before migrate"
assert_jq 'all(.[]; keys == ["checksum", "name", "state", "version"])' "$RUN_OUT" \
  "status entries have version, name, checksum, state"
assert_eq "$expected" "$(jq -c "$norm" <<<"$RUN_OUT")" \
  "status lists the migrations of sql/ by version and name"
pending_status=$RUN_OUT

# First run applies everything.
migrate
first_out=$RUN_OUT$RUN_ERR
rows=$(sql "SELECT json_agg(json_build_object('version', version, 'name', name) ORDER BY version) FROM renkei.schema_migrations")
assert_eq "$expected" "$(jq -c "$norm" <<<"$rows")" "schema_migrations records every migration by version and name"
assert_eq 0 "$(sql "SELECT count(*) FROM renkei.schema_migrations WHERE checksum !~ '^[0-9a-f]{64}\$' OR applied_at IS NULL")" \
  "every recorded migration has a 64-hex checksum and applied_at"
for f in "${files[@]}"; do
  b=$(basename "$f" .sql)
  assert_match "${b#*_}" "$first_out" "first migrate reports applying ${b}"
done

run_renkei migrate --status --json
assert_eq 0 "$RUN_STATUS" "migrate --status --json exits 0"
assert_jq "length == $count and all(.[]; .state == \"applied\")" "$RUN_OUT" \
  "all migrations are applied after migrate"
assert_eq "$(sql "SELECT json_agg(json_build_object('version', version, 'checksum', checksum) ORDER BY version) FROM renkei.schema_migrations" | jq -c .)" \
  "$(jq -c 'map({version, checksum}) | sort_by(.version)' <<<"$RUN_OUT")" \
  "status shows the recorded checksums"
assert_eq "$(jq -c 'map({version, checksum}) | sort_by(.version)' <<<"$pending_status")" \
  "$(jq -c 'map({version, checksum}) | sort_by(.version)' <<<"$RUN_OUT")" \
  "pending status showed the binary's checksums, the ones then recorded"

# Plain --status is for people: it names every migration.
run_renkei migrate --status
assert_eq 0 "$RUN_STATUS" "migrate --status exits 0"
for f in "${files[@]}"; do
  b=$(basename "$f" .sql)
  assert_match "${b#*_}" "$RUN_OUT" "migrate --status lists ${b}"
done

# Roles and ownership.
assert_eq "renkei_owner|f
renkei_service|f" "$(sql "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN ('renkei_owner', 'renkei_service') ORDER BY 1")" \
  "roles renkei_owner and renkei_service exist, NOLOGIN"
assert_eq renkei_owner "$(sql "SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'renkei'")" \
  "schema renkei is owned by renkei_owner"

# Second run: nothing changes and the output says so.
before_rows=$(sql "SELECT version, name, checksum, applied_at FROM renkei.schema_migrations ORDER BY version")
# pg_dump >= 15.14 brackets its output in \restrict KEY with a random key.
schema_dump() {
  pg_dump --schema-only "$RENKEI_DB" | grep -v '^\\\(un\)\?restrict '
}
schema_dump >"$tmpdir/schema-1.sql"
migrate
second_out=$RUN_OUT$RUN_ERR
schema_dump >"$tmpdir/schema-2.sql"
assert_eq "$before_rows" \
  "$(sql "SELECT version, name, checksum, applied_at FROM renkei.schema_migrations ORDER BY version")" \
  "second migrate leaves schema_migrations (and applied_at) untouched"
if diff -u "$tmpdir/schema-1.sql" "$tmpdir/schema-2.sql" >"$tmpdir/schema.diff"; then
  ok "second migrate leaves the schema unchanged (pg_dump --schema-only)"
else
  fail "second migrate changed the schema: $(cat "$tmpdir/schema.diff")"
fi
assert_match '([Nn]othing|[Nn]o (pending|new) migrations|[Uu]p to date|[Uu]p-to-date|0 applied|[Aa]lready)' \
  "$second_out" "second migrate says nothing was applied"

run_renkei migrate --json
assert_eq 0 "$RUN_STATUS" "migrate --json exits 0 (stderr: $RUN_ERR)"
assert_jq '.' "$RUN_OUT" "migrate --json prints JSON"

# A migration whose recorded checksum differs from the binary's is refused.
name1=$(jq -r '.[] | select(.version == 1) | .name' <<<"$expected")
assert_ne "" "$name1" "there is a migration with version 1"
sql "UPDATE renkei.schema_migrations SET checksum = repeat('0', 64) WHERE version = 1" >/dev/null
run_renkei migrate
assert_eq 1 "$RUN_STATUS" "migrate with a changed migration exits 1 (stdout [$RUN_OUT] stderr [$RUN_ERR])"
assert_match "(0001|$name1)" "$RUN_ERR" "migrate names the changed migration on stderr"
after_rows=$(sql "SELECT version, name, checksum, applied_at FROM renkei.schema_migrations WHERE version <> 1 ORDER BY version")
assert_eq "$(grep -v '^1|' <<<"$before_rows" || true)" "$after_rows" \
  "refused migrate leaves the other rows as they were"
assert_eq "$(printf '%064d' 0)" "$(sql "SELECT checksum FROM renkei.schema_migrations WHERE version = 1")" \
  "refused migrate does not overwrite the recorded checksum"

run_renkei migrate --status --json
# It still reports; exiting 1 to flag the divergence is fine.
assert_match '^[01]$' "$RUN_STATUS" "migrate --status --json still reports with a changed migration (stderr: $RUN_ERR)"
assert_jq '.[] | select(.version == 1) | .state == "changed"' "$RUN_OUT" "version 1 is 'changed'"
assert_jq "[.[] | select(.version != 1) | .state] | all(. == \"applied\")" "$RUN_OUT" \
  "the other migrations stay 'applied'"

# The hub refuses to call itself ready on a changed migration.
hub_start
http GET /readyz
assert_error 503 ServiceUnavailable "/readyz with a changed migration"
http GET /healthz
assert_status 200 "/healthz is still 200 (the process is alive)"
hub_stop

# ---- a rolling upgrade: a newer binary migrates ahead while this older
# one serves. The newer migration only adds (a nullable column, a table), as
# README "Upgrades" asks, so the older binary keeps serving: ready, reading
# and writing; it refuses to migrate what it does not know.
sql "UPDATE renkei.schema_migrations SET checksum = '$(grep '^1|' <<<"$before_rows" | cut -d'|' -f3)' WHERE version = 1" >/dev/null
hub_start
http GET /readyz
assert_status 200 "ready again with the checksum restored"
run_renkei tenant add kotohira --name 琴平町 --hosted
assert_eq 0 "$RUN_STATUS" "a tenant before the upgrade [$RUN_ERR]"
sql "BEGIN;
  SET LOCAL ROLE renkei_owner;
  ALTER TABLE renkei.tenants ADD COLUMN motto text;
  CREATE TABLE renkei.future_things (id text PRIMARY KEY);
  RESET ROLE;
  INSERT INTO renkei.schema_migrations (version, name, checksum) VALUES (9001, 'future', repeat('f', 64));
  COMMIT" >/dev/null
http GET /readyz
assert_status 200 "the older binary stays ready with a newer, additive migration applied"
assert_match 'migrations newer than this binary' "$(cat "$HUB_LOG")" "and logs that the database is ahead of it"
run_renkei tenant add zentsuji --name 善通寺市 --hosted
assert_eq 0 "$RUN_STATUS" "it writes (a row of a table that gained a column) [$RUN_ERR]"
run_renkei tenant list --json
assert_jq 'map(.id) | index("zentsuji") and index("kotohira")' "$RUN_OUT" "and reads"
run_renkei migrate --status --json
assert_eq 1 "$RUN_STATUS" "migrate --status flags the migration it does not know"
assert_jq '.[] | select(.version == 9001) | .state == "unknown"' "$RUN_OUT" "9001 is unknown to this binary"
run_renkei migrate
assert_eq 1 "$RUN_STATUS" "and the older binary refuses to migrate a newer database [$RUN_OUT]"
# an unknown migration older than this binary's newest is not an upgrade:
# not ready
sql "INSERT INTO renkei.schema_migrations (version, name, checksum) VALUES (0, 'stray', repeat('0', 64))" >/dev/null
http GET /readyz
assert_error 503 ServiceUnavailable "an unknown migration below this binary's newest: not ready"
hub_stop
