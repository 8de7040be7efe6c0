#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Tenant isolation over every route (issue 11): kanonji attacks takamatsu.
# takamatsu holds an entity, a subscription, a client, a resident, an
# agreement with marugame and audit entries of that agreement, each carrying
# a marker in fields no request names. kanonji has an agreement with
# takamatsu too, for another type (Parking): an agreement exists, it just
# does not cover what is asked. tests/support/isolation_matrix.mjs then sends
# every operation of /openapi.json with kanonji's tokens (NGSI; tenant.admin
# with audit.read and NGSI; none), each mix of Fiware-Service,
# Fiware-ServicePath and Renkei-Purpose naming takamatsu, takamatsu's ids in
# the path (and kanonji where a second tenant is named), with and without a
# query and a body aimed at takamatsu's objects. Then:
#   - no answer carries the marker, none is a 5xx (and the same reads with
#     takamatsu's own tokens do carry it: the oracle can fail);
#   - takamatsu's rows (its entities, subscriptions, clients, residents and
#     their links, agreements, grants, revocations, the tenant itself) are
#     exactly as before;
#   - takamatsu's token still works, kanonji is still denied the WaterLevel
#     data, and the audit log has no permit of takamatsu's data to kanonji.
# Row-level security under the same requests: test_tenants_rls.sh.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/ngsi_lib.sh"
source "$(dirname "$0")/oidc_lib.sh"

RUN_TIMEOUT=30
MARKER="Victim$RANDOM$RANDOM" # letters and digits: fit for an id, a type, a name
ngsi_setup
run_renkei tenant add marugame --name 丸亀市 --parent kagawa --hosted
assert_eq 0 "$RUN_STATUS" "tenant add marugame [$RUN_ERR]"

# ---------------------------------------------------------- takamatsu's things
client_add --tenant takamatsu --name tk-admin --grant client_credentials \
  --scope "tenant.admin audit.read ngsi.read ngsi.write"
get_token "$CID" "$CSECRET"
TK_ADMIN=$TOKEN
client_add --tenant takamatsu --name "tk-app $MARKER" --grant client_credentials --scope ngsi.read
VICTIM_CLIENT=$CID
get_token "$CID" "$CSECRET"
TK_APP_TOKEN=$TOKEN
resident_add takamatsu hanako-v "高松 花子 $MARKER" "$MARKER@example.jp" 'correct horse battery staple'
NGSI_TOKEN=$TOK_TK
ngsi_json POST /v2/op/update "{\"actionType\": \"append\", \"entities\": [
  {\"id\": \"wl-victim\", \"type\": \"WaterLevel\", \"level\": {\"value\": 1.5},
   \"secret\": {\"type\": \"Text\", \"value\": \"$MARKER\"}},
  {\"id\": \"pk-1\", \"type\": \"Parking\", \"free\": {\"value\": 3}},
  {\"id\": \"$MARKER-hidden\", \"type\": \"Hidden$MARKER\", \"n\": {\"value\": 1}}]}"
assert_status 204 "takamatsu's entities (one whose id and type carry the marker, named by no request)"
ngsi_json POST /v2/subscriptions "{\"description\": \"$MARKER\", \"subject\": {\"entities\": [{\"idPattern\": \"wl-.*\"}]},
  \"notification\": {\"http\": {\"url\": \"http://127.0.0.1:9/$MARKER\"}}}"
assert_status 201 "takamatsu's subscription"
VICTIM_SUB=$(header Location | sed 's|.*/||')
run_renkei agreement add --provider takamatsu --consumer marugame --type WaterLevel --purpose disaster-response \
  --description "$MARKER" --json
VICTIM_AG=$(jq -r .id <<<"$RUN_OUT")
run_renkei agreement approve "$VICTIM_AG"
assert_eq 0 "$RUN_STATUS" "takamatsu gives marugame its water levels [$RUN_ERR]"
run_renkei agreement add --provider takamatsu --consumer kanonji --type Parking --purpose tourism --json
PK_AG=$(jq -r .id <<<"$RUN_OUT")
run_renkei agreement approve "$PK_AG"
assert_eq 0 "$RUN_STATUS" "takamatsu gives kanonji its parking (not its water levels) [$RUN_ERR]"
client_add --tenant marugame --name mg --grant client_credentials --scope ngsi.read
get_token "$CID" "$CSECRET"
http GET /v2/entities?type=WaterLevel -H "Authorization: Bearer $TOKEN" -H 'Fiware-Service: takamatsu' \
  -H 'Renkei-Purpose: disaster-response' -H "X-Request-Id: $MARKER-read"
assert_status 200 "marugame reads under its agreement (an audit entry with the marker as request id)"

# ----------------------------------------------------------- kanonji's tokens
client_add --tenant kanonji --name kj-admin --grant client_credentials \
  --scope "tenant.admin audit.read ngsi.read ngsi.write"
KJ_ADMIN_CLIENT=("$CID" "$CSECRET")
get_token "$CID" "$CSECRET"
KJ_ADMIN=$TOKEN
http GET /v2/entities?type=Parking -H "Authorization: Bearer $TOK_KJ" -H 'Fiware-Service: takamatsu' \
  -H 'Renkei-Purpose: tourism'
assert_status 200 "kanonji reads takamatsu's parking under its agreement"
http GET /v2/entities?type=WaterLevel -H "Authorization: Bearer $TOK_KJ" -H 'Fiware-Service: takamatsu' \
  -H 'Renkei-Purpose: tourism'
assert_status 403 "but not its water levels"

# introspection by another town's client says nothing of takamatsu's token
introspect "${KJ_ADMIN_CLIENT[@]}" "$TK_APP_TOKEN"
assert_status 200 "kanonji introspects takamatsu's token"
assert_json '. == {"active": false}' "and learns only that it is not active for it (RFC 7662 §2.2)"

# a listener for the notifications of subscriptions made during the matrix
node -e '
  const http = require("node:http"), fs = require("node:fs");
  http.createServer((q, r) => {
    let b = "";
    q.on("data", (d) => (b += d));
    q.on("end", () => { fs.appendFileSync(process.argv[1], q.url + " " + b + "\n"); r.end(); });
  }).listen(0, "127.0.0.1", function () { fs.writeFileSync(process.argv[2], String(this.address().port)); });
' "$tmpdir/notified.log" "$tmpdir/listener.port" &
LISTENER=$!
: >"$tmpdir/notified.log"
poll 50 test -s "$tmpdir/listener.port" || fail "the notification listener did not start"

# takamatsu's rows, as one digest per table
snapshot() {
  sql "SELECT md5(string_agg(t || ':' || r, E'\n' ORDER BY t, r)) FROM (
      SELECT 'entities' t, (tenant_id, service_path, id, type, attrs)::text r FROM renkei.ngsi_entities WHERE tenant_id = 'takamatsu'
      UNION ALL SELECT 'subscriptions', (id, service_path, spec)::text FROM renkei.ngsi_subscriptions WHERE tenant_id = 'takamatsu'
      UNION ALL SELECT 'clients', (c.id, c.name, c.state, c.secret_hmac, c.scopes, c.grant_types, c.redirect_uris, c.audiences)::text
        FROM renkei.clients c WHERE tenant_id = 'takamatsu'
      UNION ALL SELECT 'residents', (id, tenant_id, login, name, email, state, password_hash)::text FROM renkei.residents
        WHERE tenant_id = 'takamatsu' OR login = 'hanako-v'
      UNION ALL SELECT 'links', (resident_id, tenant_id, local_id)::text FROM renkei.resident_links
        WHERE tenant_id = 'takamatsu' OR resident_id IN (SELECT id FROM renkei.residents WHERE login = 'hanako-v')
      UNION ALL SELECT 'agreements', (id, provider, consumer, entity_types, attrs, purposes, state, description, version)::text
        FROM renkei.agreements WHERE (provider = 'takamatsu' OR consumer = 'takamatsu') AND created_at < '$SNAP_TIME'
      UNION ALL SELECT 'grants', (id, client_id, revoked_at)::text FROM renkei.grants WHERE tenant_id = 'takamatsu'
      UNION ALL SELECT 'revoked', (jti, client_id)::text FROM renkei.revoked_tokens WHERE tenant_id = 'takamatsu'
      UNION ALL SELECT 'tenant', (id, name, parent_id, state, city_os, version)::text FROM renkei.tenants
        WHERE id = 'takamatsu' OR parent_id = 'takamatsu'
      UNION ALL SELECT 'upstream', (tenant_id, url, fiware_service)::text FROM renkei.tenant_upstreams WHERE tenant_id = 'takamatsu'
      UNION ALL SELECT 'staff', (resident_id, role)::text FROM renkei.staff_roles
        WHERE resident_id IN (SELECT id FROM renkei.residents WHERE tenant_id = 'takamatsu')) x"
}
SNAP_TIME=$(sql "SELECT now()")
before=$(snapshot)
[[ $before =~ ^[0-9a-f]{32}$ ]] || fail "no snapshot of takamatsu's rows: [$before]"
# permits of takamatsu's data to kanonji under anything but the parking agreement
stray_permits() {
  sql "SELECT count(*) FROM renkei.audit_entries WHERE provider = 'takamatsu' AND consumer_tenant = 'kanonji'
    AND decision = 'permit' AND agreement IS DISTINCT FROM '$PK_AG'"
}
assert_eq 1 "$(sql "SELECT count(*) FROM renkei.audit_entries WHERE provider = 'takamatsu' AND consumer_tenant = 'kanonji'
    AND decision = 'permit' AND agreement = '$PK_AG'")" "the parking read is in the log under its agreement"

# ------------------------------------------------------------------ the matrix
out=$(HUB=$HUB_URL MARKER=$MARKER \
  IDS=$(jq -nc --arg e wl-victim --arg s "$VICTIM_SUB" --arg c "$VICTIM_CLIENT" --arg l hanako-v --arg a "$VICTIM_AG" \
    '{entity: $e, subscription: $s, client: $c, login: $l, agreement: $a}') \
  ATTACKERS=$(jq -nc --arg n "$TOK_KJ" --arg a "$KJ_ADMIN" '{kj_ngsi: $n, kj_admin: $a, none: ""}') \
  VICTIM=$(jq -nc --arg n "$TOK_TK" --arg a "$TK_ADMIN" '{ngsi: $n, admin: $a}') \
  VICTIM_TOKEN_FOR_INTROSPECTION=$TK_APP_TOKEN NOTIFY_URL="http://127.0.0.1:$(cat "$tmpdir/listener.port")/notify" \
  ATTACKER_CLIENT=$(jq -nc --arg i "${KJ_ADMIN_CLIENT[0]}" --arg s "${KJ_ADMIN_CLIENT[1]}" '[$i, $s]') \
  timeout 240 node "$RENKEI_SRC/tests/support/isolation_matrix.mjs") || fail "the matrix did not run: $out"
assert_jq '.control | to_entries | all(.value)' "$out" \
  "control: takamatsu's own tokens see the marker in its entity, subscription, client, resident, agreement and audit entries"
assert_ge "$(jq .operations <<<"$out")" 80 "every operation of /openapi.json ($(jq .operations <<<"$out"))"
assert_ge "$(jq .requests <<<"$out")" 1500 "requests sent ($(jq -c '.requests, .statuses' <<<"$out" | tr '\n' ' '))"
assert_jq '.violation_count == 0' "$out" "no answer carried takamatsu's data, none was a 5xx: $(jq -c .violations <<<"$out")"

# ------------------------------------------------------------------- after
assert_eq "$before" "$(snapshot)" "takamatsu's rows are exactly as they were"
at() { http GET "$1" -H "Authorization: Bearer $2" "${@:3}"; }
at /v2/entities/wl-victim "$TOK_TK"
assert_status 200 "takamatsu still reads its entity"
assert_jq ".secret.value == \"$MARKER\"" "$HTTP_BODY" "unchanged"
at /v2/entities?type=WaterLevel "$TK_APP_TOKEN"
assert_status 200 "the token kanonji tried to revoke still works"
at /v2/entities?type=WaterLevel "$TOK_KJ" -H 'Fiware-Service: takamatsu' -H 'Renkei-Purpose: disaster-response'
assert_status 403 "kanonji is still denied takamatsu's water levels"
assert_eq 0 "$(stray_permits)" "every permit of takamatsu's data to kanonji in the log is under the parking agreement"
assert_eq 0 "$(sql "SELECT count(*) FROM renkei.agreements WHERE provider = 'takamatsu' AND consumer = 'kanonji' AND state = 'active' AND 'WaterLevel' = ANY(entity_types)")" \
  "no agreement for the water levels became active"
# takamatsu's data changes: the subscriptions the matrix made (kanonji's own,
# where any was accepted) must not hear of it
made=$(sql "SELECT count(*) FROM renkei.ngsi_subscriptions WHERE created_at >= '$SNAP_TIME'")
assert_eq 0 "$(sql "SELECT count(*) FROM renkei.ngsi_subscriptions WHERE created_at >= '$SNAP_TIME' AND tenant_id <> 'kanonji'")" \
  "the subscriptions made during the matrix ($made) are kanonji's own"
NGSI_TOKEN=$TOK_TK
ngsi_json PATCH /v2/entities/wl-victim/attrs '{"level": {"value": 2.5}}'
assert_status 204 "takamatsu updates its entity"
ngsi_json PATCH "/v2/entities/$MARKER-hidden/attrs" '{"n": {"value": 2}}'
assert_status 204 "and the hidden one"
NGSI_TOKEN=$TOK_KJ
ngsi_json POST /v2/op/update '{"actionType": "append", "entities": [{"id": "kj-1", "type": "WaterLevel", "level": {"value": 1}}]}'
assert_status 204 "kanonji changes one of its own (its subscriptions fire for this)"
poll 50 grep -q kj-1 "$tmpdir/notified.log" || [[ $made == 0 ]] || fail "kanonji's own subscriptions never fired: the listener check would prove nothing"
assert_no_match "$MARKER|wl-victim" "$(cat "$tmpdir/notified.log")" "no notification carried takamatsu's data"
kill "$LISTENER" 2>/dev/null || true
wait "$LISTENER" 2>/dev/null || true
check "the hub is alive" alive "$HUB_PID"
ok "nothing of takamatsu's crossed to kanonji over $(jq .requests <<<"$out") requests"
