#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# A streaming replica (issue 12): a hot standby of the hub's cluster
# (ops/pg standby: pg_basebackup, WAL streamed) follows while the hub
# serves; it refuses writes; then the primary dies (immediate stop), the
# standby is promoted (ops/pg promote), and a hub on it is ready, issues
# tokens to the same clients with the same keys, serves the same data under
# the same agreement, goes on appending to the same audit log, and the log
# verifies there.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/ngsi_lib.sh"

RUN_TIMEOUT=60
private_cluster
ngsi_setup
client_add --tenant kanonji --name kj-replica --grant client_credentials --scope ngsi.read
KR=("$CID" "$CSECRET")
NGSI_TOKEN=$TOK_TK
water_levels_shared "$TOK_KJ"

# the standby, made while the hub serves
STANDBY=$tmpdir/pg-standby
_pg_dirs+=("$STANDBY") # destroyed when the test ends
ADMIN_S=$("$RENKEI_SRC/ops/pg" standby "$STANDBY" "$PG_DIR" 2>"$tmpdir/standby.err") ||
  fail "ops/pg standby: $(cat "$tmpdir/standby.err")"
ok "a hot standby of the hub's cluster"
dbname=$(sed -n 's/.*dbname=\([^ ]*\).*/\1/p' <<<"$RENKEI_DB")
STANDBY_DB="$ADMIN_S dbname=$dbname"
on_standby() { psql "$STANDBY_DB" -XqAt -v ON_ERROR_STOP=1 -c "$1"; }
assert_eq t "$(on_standby 'SELECT pg_is_in_recovery()')" "it is in recovery (a standby)"

XC=(-H "Authorization: Bearer $TOK_KJ" -H 'Fiware-Service: takamatsu' -H 'Renkei-Purpose: disaster-response')
for i in 1 2 3; do
  http GET '/v2/entities?type=WaterLevel' "${XC[@]}"
  assert_status 200 "cross-town read $i at the primary"
done
BODY_BEFORE=$HTTP_BODY
http GET /oauth2/jwks
KID=$(jq -r '.keys[0].kid' <<<"$HTTP_BODY")
hub_stop
entries=$(sql "SELECT count(*) FROM renkei.audit_entries")
lsn=$(sql "SELECT pg_current_wal_lsn()")
caught_up() { [[ $(on_standby "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn") == t ]]; }
poll 100 caught_up || fail "the standby did not replay up to $lsn"
assert_eq "$entries" "$(on_standby "SELECT count(*) FROM renkei.audit_entries")" "the standby holds every audit entry"
if on_standby "INSERT INTO renkei.tenants (id, name) VALUES ('x', 'x')" 2>"$tmpdir/ro.err"; then
  fail "the standby took a write"
fi
assert_match 'read-only transaction' "$(cat "$tmpdir/ro.err")" "the standby refuses writes"

# the primary dies; the standby is promoted
"$RENKEI_SRC/ops/pg" stop "$PG_DIR" --immediate >/dev/null 2>&1 || fail "the primary did not stop"
"$RENKEI_SRC/ops/pg" promote "$STANDBY" 2>"$tmpdir/promote.err" || fail "ops/pg promote: $(cat "$tmpdir/promote.err")"
assert_eq f "$(on_standby 'SELECT pg_is_in_recovery()')" "the promoted standby is a primary"

RENKEI_DB=$STANDBY_DB
hub_start
http GET /readyz
assert_status 200 "a hub on the promoted standby is ready"
http GET /oauth2/jwks
assert_jq "any(.keys[]; .kid == \"$KID\")" "$HTTP_BODY" "with the same signing key"
get_token "${KR[@]}"
XC=(-H "Authorization: Bearer $TOKEN" -H 'Fiware-Service: takamatsu' -H 'Renkei-Purpose: disaster-response')
http GET '/v2/entities?type=WaterLevel' "${XC[@]}"
assert_status 200 "kanonji reads under the same agreement"
assert_eq "$BODY_BEFORE" "$HTTP_BODY" "the same data"
hub_stop
assert_eq "t" "$(sql "SELECT count(*) = $entries + 1 AND min(seq) = 0 AND max(seq) = count(*) - 1 FROM renkei.audit_entries")" \
  "the log goes on where the primary left it, without a gap"
run_renkei audit verify --json
assert_eq 0 "$RUN_STATUS" "renkei audit verify on the promoted standby [$RUN_ERR]"
assert_jq '.ok == true' "$RUN_OUT" "the log verifies there"
