#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Tenant isolation of the hosted NGSI-v2 store (issue 6: "a token of town A
# never sees town B's entities through this API, whatever the headers
# say"): a kanonji token naming Fiware-Service: takamatsu is refused (403)
# on every NGSI route and changes nothing; without the header it addresses
# kanonji only, so the same ids in both towns are different entities; and
# underneath, row-level security on renkei.ngsi_entities and
# renkei.ngsi_subscriptions keeps a session in kanonji's context (as the hub
# runs: role renkei_service, renkei.tenant = kanonji) from reading or
# writing takamatsu's rows.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/ngsi_lib.sh"

RUN_TIMEOUT=30
ngsi_setup

SUB='{"description": "s", "subject": {"entities": [{"idPattern": ".*"}]}, "notification": {"http": {"url": "http://127.0.0.1:9/notify"}}}'

# ------------------------------------------------------------------ data in both towns

NGSI_TOKEN=$TOK_TK
ngsi_create '{"id": "Shared", "type": "Shelter", "capacity": {"value": 100}, "name": {"value": "takamatsu"}}'
ngsi_create '{"id": "TkOnly", "type": "Shelter", "capacity": {"value": 5}}'
ngsi_create '{"id": "TkRiver", "type": "River", "level": {"value": 1.5}}'
ngsi_json POST /v2/subscriptions "$SUB"
assert_status 201 "takamatsu creates a subscription"
TK_SUB=$(header Location)
TK_SUB=${TK_SUB##*/}
assert_match '^[0-9a-f]{24}$' "$TK_SUB" "the subscription id (from Location)"

NGSI_TOKEN=$TOK_KJ
ngsi_create '{"id": "Shared", "type": "Shelter", "capacity": {"value": 40}, "name": {"value": "kanonji"}}'
ngsi_create '{"id": "KjOnly", "type": "Shelter", "capacity": {"value": 7}}'
ngsi_json POST /v2/subscriptions "$SUB"
assert_status 201 "kanonji creates a subscription"
KJ_SUB=$(header Location)
KJ_SUB=${KJ_SUB##*/}

# The state of takamatsu's store, as takamatsu sees it, and in the table.
tk_view() {
  local saved=$NGSI_TOKEN
  NGSI_TOKEN=$TOK_TK
  ngsi GET '/v2/entities?limit=1000&attrs=*,dateModified&options=keyValues'
  local e=$HTTP_BODY
  ngsi GET /v2/subscriptions
  NGSI_TOKEN=$saved
  printf '%s\n%s\n' "$e" "$(jq -c 'map(del(.notification.timesSent, .notification.lastNotification, .notification.lastFailure, .notification.lastFailureReason, .notification.lastSuccess, .notification.lastSuccessCode, .status))' <<<"$HTTP_BODY")"
}
tk_rows() {
  sql "SELECT coalesce(md5(string_agg(e::text, '|' ORDER BY e.seq)), '-') FROM renkei.ngsi_entities e WHERE tenant_id = 'takamatsu'"
  sql "SELECT count(*) || ':' || coalesce(md5(string_agg(s.id || s.spec::text || s.status, '|' ORDER BY s.id)), '-') FROM renkei.ngsi_subscriptions s WHERE tenant_id = 'takamatsu'"
}
before_view=$(tk_view)
before_rows=$(tk_rows)
assert_jq 'length == 3' "$(head -1 <<<"$before_view")" "takamatsu sees its three entities"

# ------------------------------------------------------------------ every route, Fiware-Service: takamatsu

TK=(-H 'Fiware-Service: takamatsu')
refused() { # MSG: the last reply is 403 Forbidden
  assert_error 403 Forbidden "kanonji's token with Fiware-Service: takamatsu: $1"
  assert_no_match 'takamatsu"|capacity|TkOnly|TkRiver|Shelter|River' "$HTTP_BODY" "$1: the reply shows nothing of takamatsu's data"
}
ngsi GET /v2/entities "${TK[@]}"
refused "GET /v2/entities"
ngsi GET '/v2/entities?type=Shelter&options=count' "${TK[@]}"
refused "GET /v2/entities?type=Shelter&options=count"
assert_eq "" "$(header Fiware-Total-Count)" "no Fiware-Total-Count leaks the number of takamatsu's entities"
ngsi_json POST /v2/entities '{"id": "Intruder", "type": "Shelter"}' "${TK[@]}"
refused "POST /v2/entities"
ngsi_json POST '/v2/entities?options=upsert' '{"id": "Shared", "type": "Shelter", "capacity": {"value": 0}}' "${TK[@]}"
refused "POST /v2/entities?options=upsert"
ngsi GET /v2/entities/TkOnly "${TK[@]}"
refused "GET /v2/entities/TkOnly"
ngsi GET /v2/entities/NoSuch "${TK[@]}"
refused "GET /v2/entities/NoSuch (no telling which ids exist)"
ngsi DELETE /v2/entities/TkOnly "${TK[@]}"
refused "DELETE /v2/entities/TkOnly"
ngsi GET /v2/entities/TkOnly/attrs "${TK[@]}"
refused "GET .../attrs"
ngsi_json POST /v2/entities/TkOnly/attrs '{"x": {"value": 1}}' "${TK[@]}"
refused "POST .../attrs"
ngsi_json PATCH /v2/entities/TkOnly/attrs '{"capacity": {"value": 0}}' "${TK[@]}"
refused "PATCH .../attrs"
ngsi_json PUT /v2/entities/TkOnly/attrs '{"capacity": {"value": 0}}' "${TK[@]}"
refused "PUT .../attrs"
ngsi GET /v2/entities/TkOnly/attrs/capacity "${TK[@]}"
refused "GET .../attrs/capacity"
ngsi_json PUT /v2/entities/TkOnly/attrs/capacity '{"value": 0}' "${TK[@]}"
refused "PUT .../attrs/capacity"
ngsi DELETE /v2/entities/TkOnly/attrs/capacity "${TK[@]}"
refused "DELETE .../attrs/capacity"
ngsi GET /v2/entities/TkOnly/attrs/capacity/value -H 'Accept: text/plain' "${TK[@]}"
refused "GET .../attrs/capacity/value"
ngsi PUT /v2/entities/TkOnly/attrs/capacity/value -H 'Content-Type: text/plain' --data-binary 0 "${TK[@]}"
refused "PUT .../attrs/capacity/value"
ngsi GET /v2/types "${TK[@]}"
refused "GET /v2/types"
ngsi GET /v2/types/River "${TK[@]}"
refused "GET /v2/types/River"
for action in append appendStrict update replace delete; do
  ngsi_json POST /v2/op/update "{\"actionType\": \"$action\", \"entities\": [{\"id\": \"TkOnly\", \"type\": \"Shelter\", \"capacity\": {\"value\": 0}}]}" "${TK[@]}"
  refused "POST /v2/op/update ($action)"
done
ngsi_json POST /v2/op/update '{"actionType": "delete", "entities": [{"id": "TkOnly", "type": "Shelter"}]}' "${TK[@]}"
refused "POST /v2/op/update (delete an entity)"
ngsi_json POST /v2/op/query '{"entities": [{"idPattern": ".*"}]}' "${TK[@]}"
refused "POST /v2/op/query"
ngsi GET /v2/subscriptions "${TK[@]}"
refused "GET /v2/subscriptions"
ngsi_json POST /v2/subscriptions "$SUB" "${TK[@]}"
refused "POST /v2/subscriptions"
ngsi GET "/v2/subscriptions/$TK_SUB" "${TK[@]}"
refused "GET /v2/subscriptions/{takamatsu's id}"
ngsi_json PATCH "/v2/subscriptions/$TK_SUB" '{"status": "inactive"}' "${TK[@]}"
refused "PATCH /v2/subscriptions/{takamatsu's id}"
ngsi DELETE "/v2/subscriptions/$TK_SUB" "${TK[@]}"
refused "DELETE /v2/subscriptions/{takamatsu's id}"

# The header's other spellings are the same tenant.
ngsi GET /v2/entities -H 'Fiware-Service: TAKAMATSU'
refused "GET /v2/entities (Fiware-Service: TAKAMATSU)"
ngsi GET /v2/entities -H 'fiware-service: Takamatsu' -H 'Fiware-ServicePath: /#'
refused "GET /v2/entities (fiware-service: Takamatsu)"
# A token of takamatsu naming kanonji is refused the same way.
NGSI_TOKEN=$TOK_TK
ngsi GET /v2/entities -H 'Fiware-Service: kanonji'
assert_error 403 Forbidden "takamatsu's token with Fiware-Service: kanonji"
ngsi_json POST /v2/op/update '{"actionType": "append", "entities": [{"id": "KjOnly", "type": "Shelter", "capacity": {"value": 0}}]}' -H 'Fiware-Service: kanonji'
assert_error 403 Forbidden "takamatsu's token with Fiware-Service: kanonji: op/update"
NGSI_TOKEN=$TOK_KJ

assert_eq "$before_view" "$(tk_view)" "takamatsu's entities and subscriptions are as they were (as takamatsu sees them)"
assert_eq "$before_rows" "$(tk_rows)" "takamatsu's rows are unchanged"
assert_eq 0 "$(sql "SELECT count(*) FROM renkei.ngsi_entities WHERE id = 'Intruder'")" "no Intruder entity anywhere"

# ------------------------------------------------------------------ without the header: kanonji's own store

ngsi GET '/v2/entities?options=keyValues&attrs=capacity,name'
assert_status 200 "kanonji lists its entities"
assert_json '. == [{"id": "Shared", "type": "Shelter", "capacity": 40, "name": "kanonji"}, {"id": "KjOnly", "type": "Shelter", "capacity": 7}]' \
  "kanonji sees its two entities only"
ngsi GET '/v2/entities?options=count&limit=1'
assert_eq 2 "$(header Fiware-Total-Count)" "kanonji's count is 2"
ngsi GET '/v2/entities/Shared?options=keyValues'
assert_json '.capacity == 40 and .name == "kanonji"' "kanonji's Shared is kanonji's"
ngsi GET /v2/entities/TkOnly
assert_error 404 NotFound "kanonji does not find takamatsu's TkOnly"
ngsi_json PATCH /v2/entities/TkOnly/attrs '{"capacity": {"value": 0}}'
assert_error 404 NotFound "kanonji cannot PATCH takamatsu's TkOnly by id"
ngsi DELETE /v2/entities/TkRiver
assert_error 404 NotFound "kanonji cannot DELETE takamatsu's TkRiver by id"
ngsi_json POST /v2/op/update '{"actionType": "update", "entities": [{"id": "TkOnly", "type": "Shelter", "capacity": {"value": 0}}]}'
assert_error 404 NotFound "kanonji's op/update of takamatsu's TkOnly finds no entity"
ngsi_json PATCH /v2/entities/Shared/attrs '{"capacity": {"value": 41}}'
assert_status 204 "kanonji updates its own Shared"
ngsi_json POST /v2/op/query '{"entities": [{"idPattern": ".*"}]}'
assert_ids '["Shared","KjOnly"]' "kanonji's op/query sees its entities only"
ngsi GET '/v2/types?options=values'
assert_json '. == ["Shelter"]' "kanonji's types: Shelter only (River is takamatsu's)"
ngsi GET /v2/types/River
assert_error 404 NotFound "kanonji has no type River"
ngsi GET /v2/types/Shelter
assert_json '.count == 2' "kanonji counts 2 shelters"
ngsi GET /v2/subscriptions
assert_json "[.[].id] == [\"$KJ_SUB\"]" "kanonji lists its own subscription only"
ngsi GET "/v2/subscriptions/$TK_SUB"
assert_error 404 NotFound "kanonji does not find takamatsu's subscription by id"
ngsi_json PATCH "/v2/subscriptions/$TK_SUB" '{"status": "inactive"}'
assert_error 404 NotFound "kanonji cannot PATCH takamatsu's subscription by id"
ngsi DELETE "/v2/subscriptions/$TK_SUB"
assert_error 404 NotFound "kanonji cannot DELETE takamatsu's subscription by id"
NGSI_TOKEN=$TOK_TK
ngsi GET '/v2/entities/Shared?options=keyValues'
assert_json '.capacity == 100 and .name == "takamatsu"' "kanonji's update left takamatsu's Shared alone"
NGSI_TOKEN=$TOK_KJ
assert_eq "$before_rows" "$(tk_rows)" "takamatsu's rows are still unchanged"

# ------------------------------------------------------------------ row-level security in PostgreSQL

# svc CONTEXT SCRIPT: psql SCRIPT as the hub runs (SET ROLE renkei_service)
# with renkei.tenant set to CONTEXT ("-": not set); SVC_STATUS, SVC_OUT, SVC_ERR.
svc() {
  local ctx=$1 script=$2 setctx=
  if [[ $ctx != - ]]; then
    setctx="SELECT set_config('renkei.tenant', :'ctx', false) AS _ctx \\gset"
  fi
  SVC_STATUS=0
  printf '%s\n' '\set VERBOSITY verbose' 'SET ROLE renkei_service;' "$setctx" "$script" |
    psql "$RENKEI_DB" -XqAt -v ON_ERROR_STOP=1 -v ctx="$ctx" \
      >"$tmpdir/svc.out" 2>"$tmpdir/svc.err" || SVC_STATUS=$?
  SVC_OUT=$(cat "$tmpdir/svc.out")
  SVC_ERR=$(cat "$tmpdir/svc.err")
}
svc_eq() { # CONTEXT EXPECTED SCRIPT MSG
  svc "$1" "$3"
  assert_eq 0 "$SVC_STATUS" "$4: succeeds (stderr [$SVC_ERR])"
  assert_eq "$2" "$SVC_OUT" "$4"
}
svc_refused() { # CONTEXT REGEX SCRIPT MSG
  svc "$1" "$3"
  assert_ne 0 "$SVC_STATUS" "$4: refused (stdout [$SVC_OUT])"
  assert_match "$2" "$SVC_ERR" "$4: the error"
}
changed() { printf 'WITH x AS (%s RETURNING 1) SELECT count(*) FROM x;' "$1"; }
RLS_ERR='ERROR: +42501: new row violates row-level security policy'

assert_eq "kanonji|2
takamatsu|3" "$(sql "SELECT tenant_id, count(*) FROM renkei.ngsi_entities GROUP BY 1 ORDER BY 1")" \
  "the superuser sees both towns' entities (the rows the policy must hide)"
assert_eq "kanonji|1
takamatsu|1" "$(sql "SELECT tenant_id, count(*) FROM renkei.ngsi_subscriptions GROUP BY 1 ORDER BY 1")" \
  "the superuser sees both towns' subscriptions"

svc_eq kanonji "renkei_service|kanonji" "SELECT current_user, renkei.current_tenant();" \
  "the session runs as renkei_service in kanonji's context"
svc_eq kanonji 2 "SELECT count(*) FROM renkei.ngsi_entities;" "kanonji's context counts 2 entities (its own)"
svc_eq kanonji "kanonji|KjOnly
kanonji|Shared" "SELECT tenant_id, id FROM renkei.ngsi_entities ORDER BY id;" "kanonji's context reads only kanonji's rows"
svc_eq kanonji 0 "SELECT count(*) FROM renkei.ngsi_entities WHERE tenant_id = 'takamatsu' OR id IN ('TkOnly', 'TkRiver');" \
  "kanonji's context asking for takamatsu's rows by tenant or id gets 0"
svc_eq kanonji 1 "SELECT count(*) FROM renkei.ngsi_subscriptions;" "kanonji's context counts 1 subscription"
svc_eq kanonji 0 "SELECT count(*) FROM renkei.ngsi_subscriptions WHERE tenant_id = 'takamatsu' OR id = '$TK_SUB';" \
  "kanonji's context does not see takamatsu's subscription"
svc_eq takamatsu 3 "SELECT count(*) FROM renkei.ngsi_entities;" "takamatsu's context counts its 3 entities"

svc_refused kanonji "$RLS_ERR.*ngsi_entities" \
  "INSERT INTO renkei.ngsi_entities (tenant_id, service_path, id, type, attrs) VALUES ('takamatsu', '/', 'Planted', 'Shelter', '{}');" \
  "kanonji's context inserting a takamatsu entity"
svc_eq kanonji "" \
  "BEGIN; INSERT INTO renkei.ngsi_entities (tenant_id, service_path, id, type, attrs) VALUES ('kanonji', '/', 'Planted', 'Shelter', '{}'); ROLLBACK;" \
  "the same INSERT as a kanonji row is allowed (so the refusal above is the policy's)"
svc_eq kanonji 0 "$(changed "UPDATE renkei.ngsi_entities SET attrs = '{}' WHERE tenant_id = 'takamatsu'")" \
  "kanonji's context updating takamatsu's entities changes 0 rows"
svc_eq kanonji 0 "$(changed "DELETE FROM renkei.ngsi_entities WHERE tenant_id = 'takamatsu'")" \
  "kanonji's context deleting takamatsu's entities deletes 0 rows"
svc_refused kanonji "$RLS_ERR.*ngsi_entities" \
  "UPDATE renkei.ngsi_entities SET tenant_id = 'takamatsu' WHERE id = 'KjOnly';" \
  "kanonji's context moving its own entity to takamatsu"
svc_refused kanonji "$RLS_ERR.*ngsi_subscriptions" \
  "INSERT INTO renkei.ngsi_subscriptions (tenant_id, id, service_path, spec, status) VALUES ('takamatsu', 'aaaaaaaaaaaaaaaaaaaaaaaa', '/', '{}', 'active');" \
  "kanonji's context inserting a takamatsu subscription"
svc_eq kanonji "" \
  "BEGIN; INSERT INTO renkei.ngsi_subscriptions (tenant_id, id, service_path, spec, status) VALUES ('kanonji', 'aaaaaaaaaaaaaaaaaaaaaaaa', '/', '{}', 'active'); ROLLBACK;" \
  "the same INSERT as a kanonji subscription is allowed"
svc_eq kanonji 0 "$(changed "UPDATE renkei.ngsi_subscriptions SET status = 'inactive' WHERE tenant_id = 'takamatsu'")" \
  "kanonji's context updating takamatsu's subscription changes 0 rows"
svc_eq kanonji 0 "$(changed "DELETE FROM renkei.ngsi_subscriptions WHERE tenant_id = 'takamatsu'")" \
  "kanonji's context deleting takamatsu's subscription deletes 0 rows"
svc_refused kanonji "$RLS_ERR.*ngsi_subscriptions" \
  "UPDATE renkei.ngsi_subscriptions SET tenant_id = 'takamatsu' WHERE id = '$KJ_SUB';" \
  "kanonji's context moving its subscription to takamatsu"
svc_eq - "0|0" "SELECT (SELECT count(*) FROM renkei.ngsi_entities), (SELECT count(*) FROM renkei.ngsi_subscriptions);" \
  "without a tenant context: no entity and no subscription"
svc_refused - "$RLS_ERR.*ngsi_entities" \
  "INSERT INTO renkei.ngsi_entities (tenant_id, service_path, id, type, attrs) VALUES ('kanonji', '/', 'Planted', 'Shelter', '{}');" \
  "without a tenant context, inserting an entity"
svc_eq "kanonji' OR '1'='1" 0 "SELECT count(*) FROM renkei.ngsi_entities;" "a context that is not a tenant id sees nothing"
for t in ngsi_entities ngsi_subscriptions; do
  assert_eq "t|t" "$(sql "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'renkei.$t'::regclass")" \
    "renkei.$t has row-level security enabled and forced"
done
assert_eq "$before_rows" "$(tk_rows)" "takamatsu's rows are unchanged after the SQL attempts"

ngsi_finish
