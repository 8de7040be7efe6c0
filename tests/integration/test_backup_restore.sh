#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# ops/backup and ops/restore (issue 12): a hub with towns, clients, entities,
# an agreement and cross-town reads in its audit log is backed up; the
# archive of the audit log verifies offline with nothing but the files; the
# backup restores into a new cluster, where the audit log verifies (with the
# archive's checkpoint) and a hub on the restored database serves the same
# data, signs with the same keys and goes on appending to the same log.
# A damaged backup is refused before anything is restored.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/ngsi_lib.sh"

RUN_TIMEOUT=60
ngsi_setup
NGSI_TOKEN=$TOK_TK
water_levels_shared "$TOK_KJ"
XC=(-H "Authorization: Bearer $TOK_KJ" -H 'Fiware-Service: takamatsu' -H 'Renkei-Purpose: disaster-response')
for i in 1 2 3; do
  http GET '/v2/entities?type=WaterLevel' "${XC[@]}"
  assert_status 200 "cross-town read $i"
done
client_add --tenant kanonji --name kj-backup --grant client_credentials --scope ngsi.read
KB=("$CID" "$CSECRET")
http GET /oauth2/jwks
KID=$(jq -r '.keys[0].kid' <<<"$HTTP_BODY")
http GET '/v2/entities?type=WaterLevel' "${XC[@]}"
BODY_BEFORE=$HTTP_BODY
hub_stop
entries=$(sql "SELECT count(*) FROM renkei.audit_entries")

# ---- backup
export RENKEI_SECRET_FILE=$tmpdir/secret
RENKEI_BIN=$RENKEI_BIN "$RENKEI_SRC/ops/backup" --secret "$tmpdir/secret" "$tmpdir/backup" >"$tmpdir/backup.out" 2>&1 ||
  fail "ops/backup failed: $(cat "$tmpdir/backup.out")"
ok "ops/backup: $(tail -n 1 "$tmpdir/backup.out")"
for f in renkei.dump audit.jsonl audit-checkpoint.json audit-jwks.json secret SHA256SUMS; do
  check "the backup has $f" test -s "$tmpdir/backup/$f"
done
assert_eq 700 "$(stat -c %a "$tmpdir/backup")" "the backup directory is the owner's alone"
assert_eq 600 "$(stat -c %a "$tmpdir/backup/secret")" "and the secret in it too"
(cd "$tmpdir/backup" && sha256sum --quiet -c SHA256SUMS) || fail "SHA256SUMS does not match"
ok "SHA256SUMS matches"
assert_ge "$(wc -l <"$tmpdir/backup/audit.jsonl")" "$entries" "the archive holds every entry ($entries)"
"$RENKEI_SRC/ops/backup" "$tmpdir/backup" >"$tmpdir/again.out" 2>&1 && fail "a second backup wrote over the first"
assert_match 'is not empty' "$(cat "$tmpdir/again.out")" "ops/backup writes over nothing"

# the archive, years later: no database, no secret
run_renkei -u RENKEI_DB -u RENKEI_SECRET_FILE audit verify-file "$tmpdir/backup/audit.jsonl" \
  --checkpoint "$tmpdir/backup/audit-checkpoint.json" --jwks "$tmpdir/backup/audit-jwks.json" --json
assert_eq 0 "$RUN_STATUS" "the archive verifies offline [$RUN_ERR]"
assert_jq '.ok == true' "$RUN_OUT" "renkei audit verify-file: ok"

# ---- restore into a new cluster
PG2=$tmpdir/pg2
_pg_dirs+=("$PG2") # destroyed when the test ends
ADMIN2=$(_pg_start "$PG2")
cp -a "$tmpdir/backup" "$tmpdir/damaged"
printf 'x' >>"$tmpdir/damaged/audit.jsonl"
"$RENKEI_SRC/ops/restore" --admin "$ADMIN2" --dbname renkei "$tmpdir/damaged" >"$tmpdir/restore.out" 2>&1 &&
  fail "a damaged backup was restored"
assert_match 'SHA256SUMS' "$(cat "$tmpdir/restore.out")" "a damaged backup is refused: $(tail -n 1 "$tmpdir/restore.out")"
RENKEI_BIN=$RENKEI_BIN RENKEI_SECRET_FILE=$tmpdir/secret \
  "$RENKEI_SRC/ops/restore" --admin "$ADMIN2" --dbname renkei "$tmpdir/backup" >"$tmpdir/restore.out" 2>&1 ||
  fail "ops/restore failed: $(cat "$tmpdir/restore.out")"
assert_match 'the audit log verifies on renkei' "$(cat "$tmpdir/restore.out")" "ops/restore verified the log on the new cluster"
RENKEI_BIN=$RENKEI_BIN "$RENKEI_SRC/ops/restore" --admin "$ADMIN2" --dbname renkei "$tmpdir/backup" >"$tmpdir/again.out" 2>&1 &&
  fail "ops/restore wrote over an existing database"
assert_match 'database renkei exists' "$(cat "$tmpdir/again.out")" "ops/restore does not write over a database"

# a hub on the restored database: the same data, keys and log
RENKEI_DB="$ADMIN2 dbname=renkei"
hub_start
http GET /readyz
assert_status 200 "the restored hub is ready"
http GET /oauth2/jwks
assert_jq "any(.keys[]; .kid == \"$KID\")" "$HTTP_BODY" "it publishes the same signing key"
get_token "${KB[@]}"
ok "a client made before the backup gets a token from the restored hub (its secret checks under the same master secret)"
XC=(-H "Authorization: Bearer $TOKEN" -H 'Fiware-Service: takamatsu' -H 'Renkei-Purpose: disaster-response')
http GET '/v2/entities?type=WaterLevel' "${XC[@]}"
assert_status 200 "kanonji reads takamatsu's data under the restored agreement"
assert_eq "$BODY_BEFORE" "$HTTP_BODY" "the same data as before the backup"
hub_stop
assert_ge "$(sql "SELECT count(*) FROM renkei.audit_entries")" "$((entries + 1))" "the restored log goes on (the read's entry follows)"
run_renkei audit verify --checkpoint "$tmpdir/backup/audit-checkpoint.json" --json
assert_eq 0 "$RUN_STATUS" "renkei audit verify on the restored database, holding the archive's checkpoint [$RUN_ERR]"
assert_jq '.ok == true' "$RUN_OUT" "it verifies"
