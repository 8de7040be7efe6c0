#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Master secret rotation (issue 12): `renkei secret rotate` re-seals the
# signing keys, the audit key and a town's upstream credential under a new
# master in one transaction, while two hubs serve:
# - the hub on the same file and a hub on another machine's copy (given the
#   prepared file beside its own) both take the new master without a
#   restart, stay ready, keep verifying tokens signed before, and still
#   reach the town's Orion with its (re-sealed) credential;
# - what derives from the root stays: client secrets still authenticate,
#   the key ids and the audit log are the same, and the log verifies;
# - a node still holding the old file is not ready, says why, and the
#   database refuses any value it seals; given the new file it recovers
#   without a restart;
# - a rotation interrupted between its commit and the file's rename is
#   finished by the next `renkei secret rotate`;
# - a value that does not open stops the rotation with nothing changed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/ngsi_lib.sh"


UP_TOKEN=upstream-$(_rand)
orion_standin "$UP_TOKEN"

SECRET=$tmpdir/secret
mkdir -m 700 "$tmpdir/b"
SECRET_B=$tmpdir/b/secret # node B's machine: its own copy of the file

az_setup
printf '%s' "$UP_TOKEN" >"$tmpdir/up.token"
run_renkei tenant add ayagawa --name 綾川町 --parent kagawa --city-os "$ORION" \
  --fiware-service aya --upstream-token-file "$tmpdir/up.token"
check "ayagawa registers its Orion with a bearer token (sealed)" test "$RUN_STATUS" = 0
client_add --tenant ayagawa --name aya-app --grant client_credentials --scope "ngsi.read ngsi.write"
aya=("$CID" "$CSECRET")
cp -p "$SECRET" "$SECRET_B"

ISSUER=https://renkei.example.test # one hub behind a load balancer
hub_start RENKEI_ISSUER="$ISSUER"
hub2_start RENKEI_ISSUER="$ISSUER" RENKEI_SECRET_FILE="$SECRET_B"
poll 20 curl -sf "$HUB_URL/readyz" -o /dev/null || fail "hub A not ready"
poll 20 curl -sf "$HUB2_URL/readyz" -o /dev/null || fail "hub B not ready"

status_json() { run_renkei "$@" secret status --json; }
status_json
check "secret status: the file and the database agree" test "$RUN_STATUS" = 0
M0=$(jq -r .file.master <<<"$RUN_OUT")
assert_jq ".database.master == \"$M0\" and .database.generation == 0" "$RUN_OUT" \
  "the first hub recorded its master, generation 0"
assert_jq ".sealed.signing_keys == {\"$M0\": 2} and .sealed.audit_keys == {\"$M0\": 1} and .sealed.tenant_upstreams == {\"$M0\": 1}" \
  "$RUN_OUT" "two signing keys, the audit key and the upstream token, each naming that master"
# every column the rotation re-seals (core/app.c's catalogue, as status lists
# it) is guarded by the trigger that refuses values of another master, on
# that very column
guarded=$(sql "SELECT string_agg(c.relname || '.' || convert_from(substring(t.tgargs FOR length(t.tgargs) - 1), 'UTF8'), ' ' ORDER BY c.relname)
                 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname = 'sealed_current'")
assert_eq "audit_keys.private_sealed signing_keys.private_sealed tenant_upstreams.secret" "$guarded" \
  "each sealed column has its sealed_current trigger"
assert_jq '.sealed | keys == ["audit_keys", "signing_keys", "tenant_upstreams"]' "$RUN_OUT" "and those are the columns rotated"

get_token "${aya[@]}"
T_BEFORE=$TOKEN
http GET /oauth2/jwks
KIDS_BEFORE=$(jq -c '[.keys[].kid] | sort' <<<"$HTTP_BODY")
read_orion() { # read_orion HUB_URL TOKEN: ayagawa's own read through that hub
  local saved=$HUB_URL
  HUB_URL=$1
  NGSI_TOKEN=$2
  ngsi GET '/v2/entities?limit=1'
  HUB_URL=$saved
}
read_orion "$HUB_URL" "$T_BEFORE"
assert_status 200 "before: ayagawa's Orion answers through hub A"
cp -p "$SECRET" "$tmpdir/secret.orig"

# ------------------------------------------------------------------ prepared rotation, two nodes
run_renkei secret rotate --prepare
check "rotate --prepare" test "$RUN_STATUS" = 0
assert_match "prepared master secret [0-9a-f]{16} in $SECRET.new" "$RUN_OUT" "it names the file to copy"
M1=$(grep -oE '[0-9a-f]{16}' <<<"$RUN_OUT" | head -1)
assert_eq 600 "$(stat -c %a "$SECRET.new")" "the prepared file is 0600"
assert_eq "$(sha256sum <"$tmpdir/secret.orig")" "$(sha256sum <"$SECRET")" "prepare leaves the file in use alone"
status_json
assert_jq ".database.generation == 0 and .prepared == \"$SECRET.new\"" "$RUN_OUT" "prepare does not touch the database"
cp -p "$SECRET.new" "$SECRET_B.new" # the operator copies it to node B

run_renkei secret rotate
check "secret rotate" test "$RUN_STATUS" = 0
assert_match "rotated the master secret: generation 1, master $M1 \\(was $M0\\)" "$RUN_OUT" "it reports the new master"
assert_match "re-sealed 2 value\\(s\\) of signing_keys" "$RUN_OUT" "the signing keys re-sealed"
assert_match "re-sealed 1 value\\(s\\) of tenant_upstreams" "$RUN_OUT" "the upstream token re-sealed"
assert_eq "renkei-secret 2" "$(head -1 "$SECRET")" "the file now names master and root"
check "the prepared file was moved into place" test ! -e "$SECRET.new"
assert_eq 600 "$(stat -c %a "$SECRET")" "still 0600"

poll 10 grep -q "master secret $M1 taken from" "$HUB_LOG" || fail "hub A did not take the new master"
ok "hub A took the new master from its file"
poll 10 grep -q "master secret $M1 taken from $SECRET_B.new, now moved" "$HUB2_LOG" ||
  fail "hub B did not take the prepared file: $(tail -5 "$HUB2_LOG")"
ok "hub B took it from the prepared file beside its own, and moved it into place"
check "hub B's file is the new one" cmp -s "$SECRET" "$SECRET_B"
http GET /readyz
assert_status 200 "hub A stays ready"
on_hub2 http GET /readyz
assert_status 200 "hub B stays ready"

status_json
assert_jq ".database.master == \"$M1\" and .database.generation == 1 and .agree" "$RUN_OUT" "the database records the new master"
assert_jq ".sealed.signing_keys == {\"$M1\": 2} and .sealed.audit_keys == {\"$M1\": 1} and .sealed.tenant_upstreams == {\"$M1\": 1}" \
  "$RUN_OUT" "every sealed value names the new master"

# what was sealed is still used, what derives from the root did not change
for h in "$HUB_URL" "$HUB2_URL"; do
  read_orion "$h" "$T_BEFORE"
  assert_status 200 "a token signed before the rotation still works at $h, and the re-sealed upstream token still opens"
done
assert_jq ".last_headers.authorization == \"Bearer $UP_TOKEN\" or .last_headers.Authorization == \"Bearer $UP_TOKEN\"" \
  "$(curl -sS "$ORION/__stats")" "the Orion got the same credential"
get_token "${aya[@]}"
check "the client secret (HMAC under a root key) still authenticates" test -n "$TOKEN"
on_hub2 get_token "${aya[@]}"
read_orion "$HUB_URL" "$TOKEN"
assert_status 200 "a token signed by hub B after the rotation works at hub A"
http GET /oauth2/jwks
assert_eq "$KIDS_BEFORE" "$(jq -c '[.keys[].kid] | sort' <<<"$HTTP_BODY")" "the same signing keys are published"
entries=$(sql "SELECT count(*) FROM renkei.audit_entries WHERE kind = 'secret.rotate'")
assert_eq 1 "$entries" "the rotation is an audit event"
ev=$(sql "SELECT canonical FROM renkei.audit_entries WHERE kind = 'secret.rotate'")
assert_jq ".detail.generation == 1 and .detail.master == \"$M1\" and .detail.previous == \"$M0\" and .actor == \"cli:$(id -un)\"" \
  "$ev" "naming the generation, both masters and who ran it"

# ------------------------------------------------------------------ a node left on the old file
hub2_stop
mkdir -m 700 "$tmpdir/c"
cp -p "$tmpdir/secret.orig" "$tmpdir/c/secret"
hub2_start RENKEI_ISSUER="$ISSUER" RENKEI_SECRET_FILE="$tmpdir/c/secret"
poll 15 grep -q "sealed under master secret $M1, and RENKEI_SECRET_FILE ($tmpdir/c/secret) holds $M0" "$HUB2_LOG" ||
  fail "the old node did not say why: $(tail -5 "$HUB2_LOG")"
ok "a node with the old file names both masters and what to do"
on_hub2 http GET /readyz
assert_status 503 "and is not ready"
assert_match "sealed under master secret $M1.*holds $M0" "$HTTP_BODY" "/readyz names both masters"
assert_eq 0 "$(grep -c 'cannot be opened\|does not open\|statement failed' "$HUB2_LOG" || true)" \
  "meanwhile it opens and seals nothing: the loads that would wait for the master secret"
run_renkei RENKEI_SECRET_FILE="$tmpdir/c/secret" secret status
assert_eq 1 "$RUN_STATUS" "secret status with the old file: exit 1"
assert_match "disagree" "$RUN_OUT" "it says they disagree"
run_renkei RENKEI_SECRET_FILE="$tmpdir/c/secret" keys rotate
check "the old file cannot rotate the signing keys" test "$RUN_STATUS" != 0
assert_match "another master secret than $M1" "$RUN_ERR" "the database refused the key it sealed"
printf 'other-%s' "$(_rand)" >"$tmpdir/up2.token"
run_renkei RENKEI_SECRET_FILE="$tmpdir/c/secret" tenant add tadotsu --name 多度津町 --parent kagawa \
  --city-os "$ORION" --upstream-token-file "$tmpdir/up2.token"
check "nor register an upstream credential" test "$RUN_STATUS" != 0
assert_eq 0 "$(sql "SELECT count(*) FROM renkei.tenants WHERE id = 'tadotsu'")" "nothing of it was stored"
sql "UPDATE renkei.tenant_upstreams SET secret = '\\x01'::bytea || substring(secret FROM 10) WHERE tenant_id = 'ayagawa'" \
  >/dev/null 2>"$tmpdir/sql.err" || true
assert_match "another master secret" "$(cat "$tmpdir/sql.err")" "a value of the first form is refused after a rotation, even by hand"
cp -p "$SECRET" "$tmpdir/c/secret"
poll 40 curl -sf "$HUB2_URL/readyz" -o /dev/null || fail "the old node did not recover with the new file"
ok "given the new file, it is ready without a restart"
on_hub2 read_orion "$HUB2_URL" "$T_BEFORE"
assert_status 200 "and serves"

# ------------------------------------------------------------------ interrupted between commit and rename
cp -p "$SECRET" "$tmpdir/secret.m1"
run_renkei secret rotate
check "a second rotation" test "$RUN_STATUS" = 0
M2=$(sed -n 's/.*master \([0-9a-f]\{16\}\) (was.*/\1/p' <<<"$RUN_OUT")
assert_match '^[0-9a-f]{16}$' "$M2" "generation 2 has its master"
# node B, running, was not given this one: not ready at once, naming both
poll 10 grep -q "sealed under master secret $M2, and RENKEI_SECRET_FILE ($tmpdir/c/secret) holds $M1" "$HUB2_LOG" ||
  fail "the running node left on the old file did not notice: $(tail -3 "$HUB2_LOG")"
on_hub2 http GET /readyz
assert_status 503 "a running node left on the old master is not ready"
assert_match "sealed under master secret $M2.*holds $M1" "$HTTP_BODY" "and /readyz names both masters"
cp -p "$SECRET" "$tmpdir/c/secret"
poll 40 curl -sf "$HUB2_URL/readyz" -o /dev/null || fail "node B did not recover"
ok "given the new file, it is ready again without a restart"
# as if it had died after the commit: the old file in place, the new beside it
mv "$SECRET" "$SECRET.new"
cp -p "$tmpdir/secret.m1" "$SECRET"
run_renkei secret rotate
check "rotate again after the interruption" test "$RUN_STATUS" = 0
assert_match "finished an interrupted rotation: master secret $M2" "$RUN_OUT" "it finishes the rename and nothing else"
status_json
assert_jq ".database.generation == 2 and .agree and (has(\"prepared\") | not)" "$RUN_OUT" "no third generation, file and database agree"
poll 10 grep -q "master secret $M2 taken from" "$HUB_LOG" || fail "hub A did not follow generation 2"
poll 40 curl -sf "$HUB2_URL/readyz" -o /dev/null || true
hub2_stop

# ------------------------------------------------------------------ a value that does not open
saved=$(sql "SELECT encode(secret, 'hex') FROM renkei.tenant_upstreams WHERE tenant_id = 'ayagawa'")
# the right master named, the ciphertext damaged
sql "UPDATE renkei.tenant_upstreams SET secret = substring(secret FOR 30) || '\\x00'::bytea || substring(secret FROM 32) WHERE tenant_id = 'ayagawa'" >/dev/null
run_renkei secret rotate
check "a rotation over a damaged value fails" test "$RUN_STATUS" = 1
assert_match "tenant_upstreams.secret of ayagawa does not open under master secret $M2: nothing was changed" \
  "$RUN_ERR" "it names the value"
status_json
assert_jq ".database.generation == 2 and .database.master == \"$M2\" and .sealed.signing_keys == {\"$M2\": 2}" "$RUN_OUT" \
  "nothing was re-sealed"
check "the new file is kept for the next attempt" test -e "$SECRET.new"
kept=$(sha256sum <"$SECRET.new")
sql "UPDATE renkei.tenant_upstreams SET secret = decode('$saved', 'hex') WHERE tenant_id = 'ayagawa'" >/dev/null
run_renkei secret rotate
check "once repaired, the rotation goes through" test "$RUN_STATUS" = 0
assert_match "generation 3" "$RUN_OUT" "generation 3"
assert_eq "$kept" "$(sha256sum <"$SECRET")" "with the file kept from the failed attempt"
read_orion "$HUB_URL" "$T_BEFORE"
assert_status 200 "hub A still serves after three rotations"

run_renkei audit verify
check "the audit log verifies" test "$RUN_STATUS" = 0

# ------------------------------------------------------------------ usage
run_renkei secret
assert_eq 2 "$RUN_STATUS" "secret without a verb: usage"
run_renkei secret rotate --json
assert_eq 2 "$RUN_STATUS" "an unknown flag: usage"
run_renkei RENKEI_SECRET_FILE="$tmpdir/nowhere/secret" secret rotate
assert_eq 1 "$RUN_STATUS" "no secret file: a rotation never creates the first"
check "and none was created" test ! -e "$tmpdir/nowhere"

hub_stop

# ------------------------------------------------------------------ the first record
# a node with another installation's secret must not claim a database that
# has no record yet (as after the upgrade that brings it)
sql "DELETE FROM renkei.secret_state" >/dev/null
mkdir -m 700 "$tmpdir/w"
hub_start RENKEI_SECRET_FILE="$tmpdir/w/secret"
poll 15 grep -q "does not open under RENKEI_SECRET_FILE's master secret .*: this is not this database's secret file" "$HUB_LOG" ||
  fail "the wrong secret did not say why"
ok "a node with the wrong secret file says so"
http GET /readyz
assert_status 503 "and is not ready"
assert_eq 0 "$(sql "SELECT count(*) FROM renkei.secret_state")" "it recorded nothing"
hub_stop
hub_start
poll 20 curl -sf "$HUB_URL/readyz" -o /dev/null || fail "the right secret did not make the hub ready"
status_json
assert_jq ".database.generation == 0 and .agree" "$RUN_OUT" "the right one records its master again"
hub_stop
ok "master secret rotation"
