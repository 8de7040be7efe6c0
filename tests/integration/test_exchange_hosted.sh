#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The data exchange over a hosted store (issue 8): kanonji's app reads
# takamatsu's data through the NGSI-v2 front under a data-sharing agreement.
# Deny by default; permit only for the agreed types, purpose, action, time
# and rate; a query without type is narrowed, never widened; attributes
# outside the agreement never leave (normalized, keyValues, values, one
# attribute, types, op/query) and cannot be probed through q, mq, orderBy or
# a geographic query; every decision, permit or deny, is an audit entry
# whose digest matches the body sent; a failed audit write answers 503 with
# nothing.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/ngsi_lib.sh"

RUN_TIMEOUT=30
ngsi_setup

# ------------------------------------------------------------------ takamatsu's data
NGSI_TOKEN=$TOK_TK
ngsi_json POST /v2/op/update '{"actionType": "append", "entities": [
  {"id": "WL1", "type": "WaterLevel", "level": {"value": 1.2}, "status": {"value": "normal"}, "operatorNote": {"value": "pump 3 broken"}, "location": {"type": "geo:point", "value": "34.34, 134.04"}},
  {"id": "WL2", "type": "WaterLevel", "level": {"value": 3.4}, "status": {"value": "warning"}, "operatorNote": {"value": "call Mr Sato 090-1234"}},
  {"id": "RC1", "type": "RoadCondition", "status": {"value": "closed"}, "operatorNote": {"value": "x"}},
  {"id": "SH1", "type": "Shelter", "status": {"value": "open"}, "capacity": {"value": 120}}
]}'
assert_status 204 "takamatsu loads its entities"

XC=(-H 'Fiware-Service: takamatsu')
P=(-H 'Renkei-Purpose: disaster-response')
NGSI_TOKEN=$TOK_KJ

# ------------------------------------------------------------------ no agreement yet
ngsi GET '/v2/entities?type=WaterLevel' "${XC[@]}" "${P[@]}"
assert_status 403 "no agreement: denied"
assert_match 'agreement' "$HTTP_BODY" "the 403 says an agreement is missing"
assert_no_match 'pump' "$HTTP_BODY" "and holds no data"

run_renkei agreement add --provider takamatsu --consumer kanonji --type WaterLevel,RoadCondition \
  --attrs level,status --purpose disaster-response,evacuation-planning --rate 1000/min --json
check "agreement add" test "$RUN_STATUS" = 0
AG=$(jq -r .id <<<"$RUN_OUT")
assert_match '^ag_' "$AG" "the agreement has an id"
assert_jq '.state == "proposed"' "$RUN_OUT" "a new agreement is proposed"

# the hub learns of the agreement by NOTIFY, a moment after the command's commit
_knows_proposed() {
  ngsi GET '/v2/entities?type=WaterLevel' "${XC[@]}" "${P[@]}"
  [[ $HTTP_STATUS != 403 ]] || [[ $HTTP_BODY =~ approved|proposed ]]
}
poll 10 _knows_proposed || true
assert_status 403 "a proposed agreement permits nothing"
assert_match 'approved|proposed' "$HTTP_BODY" "the 403 says it is not approved"

run_renkei agreement approve "$AG" --json
check "approve" test "$RUN_STATUS" = 0

# ------------------------------------------------------------------ permitted reads
_permitted() {
  ngsi GET '/v2/entities?type=WaterLevel&options=count' "${XC[@]}" "${P[@]}"
  [[ $HTTP_STATUS == 200 ]]
}
poll 10 _permitted || true
assert_status 200 "approved: WaterLevel readable"
assert_ids '["WL1","WL2"]' "both stations"
assert_eq 2 "$(header Fiware-Total-Count)" "count of the permitted query"
assert_jq 'all(.[]; (keys - ["id","type","level","status"]) == [])' "$HTTP_BODY" \
  "only the agreed attributes (no operatorNote, no location)"
assert_no_match 'pump|Sato|34.34' "$HTTP_BODY" "the unagreed values never leave"
permit_body=$HTTP_BODY

ngsi GET '/v2/entities?options=count&limit=1' "${XC[@]}" "${P[@]}"
assert_status 200 "no type: narrowed to the agreed types"
assert_eq 3 "$(header Fiware-Total-Count)" "WL1, WL2, RC1: the Shelter is not counted"
ngsi GET '/v2/entities?limit=10' "${XC[@]}" "${P[@]}"
all_ids=$(ids)
assert_jq 'sort == ["RC1","WL1","WL2"]' "$all_ids" "no type: the agreed types' entities"
ngsi GET '/v2/entities?limit=10&offset=1' "${XC[@]}" "${P[@]}"
assert_ids "$(jq -c '.[1:]' <<<"$all_ids")" "pagination over the narrowed set"

ngsi GET '/v2/entities?type=Shelter' "${XC[@]}" "${P[@]}"
assert_status 403 "an unagreed type: denied"
assert_match 'Shelter' "$HTTP_BODY" "the 403 names the type"
ngsi GET '/v2/entities?type=WaterLevel,Shelter' "${XC[@]}" "${P[@]}"
assert_status 403 "a list with one unagreed type: denied"
ngsi_get /v2/entities 'typePattern=.*' 'idPattern=^SH' -- "${XC[@]}" "${P[@]}"
assert_status 200 "patterns are narrowed"
assert_ids '[]' "the Shelter is out of reach through patterns"
ngsi GET '/v2/entities/SH1' "${XC[@]}" "${P[@]}"
assert_status 404 "the Shelter by id: not found"

ngsi GET '/v2/entities?type=WaterLevel' "${XC[@]}" -H 'Renkei-Purpose: marketing'
assert_status 403 "an unagreed purpose: denied"
ngsi GET '/v2/entities?type=WaterLevel' "${XC[@]}"
assert_status 403 "no purpose: denied"
assert_match 'Renkei-Purpose|purpose' "$HTTP_BODY" "the 403 asks for a purpose"
ngsi GET '/v2/entities?type=WaterLevel' "${XC[@]}" -H 'Renkei-Purpose: Disaster Response!'
assert_status 403 "a malformed purpose: denied"

# attributes smuggled into filters
for f in 'q=operatorNote==x' 'mq=operatorNote.unit==x' 'orderBy=operatorNote' 'orderBy=!operatorNote' \
  'georel=near;maxDistance:1000&geometry=point&coords=34.34,134.04'; do
  ngsi GET "/v2/entities?type=WaterLevel&$f" "${XC[@]}" "${P[@]}"
  assert_status 403 "an unagreed attribute through $f: denied"
done
ngsi_get /v2/entities 'type=WaterLevel' 'q=level>2' -- "${XC[@]}" "${P[@]}"
assert_ids '["WL2"]' "q over an agreed attribute works"
ngsi GET '/v2/entities?type=WaterLevel&attrs=operatorNote,level&options=keyValues' "${XC[@]}" "${P[@]}"
assert_jq '.[0] | keys == ["id","level","type"]' "$HTTP_BODY" "attrs= narrowed to the agreed"
ngsi GET '/v2/entities?type=WaterLevel&attrs=operatorNote,level&options=values' "${XC[@]}" "${P[@]}"
assert_jq '. == [[1.2],[3.4]]' "$HTTP_BODY" "values: only the agreed values"
ngsi GET '/v2/entities?type=WaterLevel&attrs=operatorNote&options=keyValues' "${XC[@]}" "${P[@]}"
assert_jq 'all(.[]; keys == ["id","type"])' "$HTTP_BODY" "asking only for unagreed attributes gives none"

ngsi GET '/v2/entities/WL1?type=WaterLevel' "${XC[@]}" "${P[@]}"
assert_status 200 "one entity"
assert_jq 'keys == ["id","level","status","type"]' "$HTTP_BODY" "one entity, agreed attributes"
ngsi GET '/v2/entities/WL1/attrs' "${XC[@]}" "${P[@]}"
assert_jq 'keys == ["level","status"]' "$HTTP_BODY" "an entity's attributes, agreed ones"
ngsi GET '/v2/entities/WL1/attrs/level' "${XC[@]}" "${P[@]}"
assert_status 200 "one agreed attribute"
ngsi GET '/v2/entities/WL1/attrs/operatorNote' "${XC[@]}" "${P[@]}"
assert_status 403 "one unagreed attribute: denied"
ngsi GET '/v2/entities/WL1/attrs/operatorNote/value' "${XC[@]}" "${P[@]}" -H 'Accept: text/plain'
assert_status 403 "an unagreed value: denied"
ngsi GET '/v2/entities/WL1/attrs/level/value' "${XC[@]}" "${P[@]}" -H 'Accept: text/plain'
assert_eq '1.2' "$HTTP_BODY" "an agreed value"

ngsi_json POST '/v2/op/query?options=keyValues' '{"entities": [{"idPattern": ".*"}], "attrs": ["operatorNote", "status"]}' "${XC[@]}" "${P[@]}"
assert_status 200 "op/query narrowed"
assert_jq '(map(.id) | sort) == ["RC1","WL1","WL2"] and all(.[]; (keys - ["id","type","status"]) == [])' \
  "$HTTP_BODY" "op/query: agreed types and attributes only"
ngsi_json POST /v2/op/query '{"entities": [{"idPattern": ".*", "type": "Shelter"}]}' "${XC[@]}" "${P[@]}"
assert_status 403 "op/query naming an unagreed type: denied"
ngsi_json POST /v2/op/query '{"entities": [{"idPattern": ".*"}], "expression": {"q": "operatorNote~=pump"}}' "${XC[@]}" "${P[@]}"
assert_status 403 "op/query filtering on an unagreed attribute: denied"

ngsi GET /v2/types "${XC[@]}" "${P[@]}"
assert_status 200 "types"
assert_jq '(map(.type) == ["RoadCondition","WaterLevel"]) and all(.[]; (.attrs | keys - ["level","status"]) == [])' \
  "$HTTP_BODY" "types: agreed types with agreed attributes"

# ------------------------------------------------------------------ writes and other routes
ngsi_json POST /v2/entities '{"id": "WL9", "type": "WaterLevel", "level": {"value": 9}}' "${XC[@]}" "${P[@]}"
assert_status 403 "a write under a read agreement: denied"
ngsi_json PATCH '/v2/entities/WL1/attrs?type=WaterLevel' '{"level": {"value": 0}}' "${XC[@]}" "${P[@]}"
assert_status 403 "an update under a read agreement: denied"
ngsi DELETE '/v2/entities/WL1?type=WaterLevel' "${XC[@]}" "${P[@]}"
assert_status 403 "a delete under a read agreement: denied"
ngsi GET /v2/subscriptions "${XC[@]}" "${P[@]}"
assert_status 403 "another town's subscriptions: denied"
NGSI_TOKEN=$TOK_TK
ngsi GET /v2/entities/WL1/attrs/level/value -H 'Accept: text/plain'
assert_eq '1.2' "$HTTP_BODY" "takamatsu's data is unchanged"
NGSI_TOKEN=$TOK_KJ

# a write agreement: reports kanonji may file in takamatsu's store
run_renkei agreement add --provider takamatsu --consumer kanonji --type DamageReport \
  --purpose disaster-response --actions read,write --json
AGW=$(jq -r .id <<<"$RUN_OUT")
run_renkei agreement approve "$AGW"
ngsi_json POST /v2/entities '{"id": "DR1", "type": "DamageReport", "text": {"value": "bridge"}}' "${XC[@]}" "${P[@]}"
assert_status 201 "a write under a write agreement"
ngsi_json PATCH '/v2/entities/DR1/attrs?type=DamageReport' '{"text": {"value": "bridge down"}}' "${XC[@]}" "${P[@]}"
assert_status 204 "an update under a write agreement"
ngsi_json POST /v2/op/update '{"actionType": "append", "entities": [{"id": "DR2", "type": "DamageReport", "text": {"value": "road"}}, {"id": "SH2", "type": "Shelter"}]}' "${XC[@]}" "${P[@]}"
assert_status 403 "a batch with one unagreed type: denied as a whole"
ngsi_json PATCH '/v2/entities/WL1/attrs?type=WaterLevel' '{"level": {"value": 0}}' "${XC[@]}" "${P[@]}" -H "Renkei-Agreement: $AGW"
assert_status 403 "the write agreement does not cover WaterLevel"
NGSI_TOKEN=$TOK_TK
ngsi GET '/v2/entities?type=DamageReport&options=keyValues'
assert_jq '. == [{"id":"DR1","type":"DamageReport","text":"bridge down"}]' "$HTTP_BODY" \
  "the report is in takamatsu's store; the refused batch wrote nothing"
NGSI_TOKEN=$TOK_KJ

# ------------------------------------------------------------------ catalogue
http GET /exchange/v1/catalog -H "Authorization: Bearer $TOK_KJ"
assert_status 200 "catalogue"
assert_jq "[.items[] | select(.agreement == \"$AG\")][0] | .provider == \"takamatsu\" and .entity_types == [\"WaterLevel\",\"RoadCondition\"] and .attrs == [\"level\",\"status\"] and (.purposes | index(\"disaster-response\")) != null and .city_os == \"hosted\"" \
  "$HTTP_BODY" "the catalogue lists the agreement with its terms"
http GET /exchange/v1/catalog -H "Authorization: Bearer $TOK_TK"
assert_jq '.items == []' "$HTTP_BODY" "takamatsu consumes nothing"

# ------------------------------------------------------------------ state changes reach the hub within a second
# until_status CODE: the read answers CODE within one second (the change is
# made by another process, the CLI, and reaches the hub by NOTIFY)
until_status() {
  local i
  for i in $(seq 10); do
    ngsi GET '/v2/entities?type=WaterLevel' "${XC[@]}" "${P[@]}"
    [[ $HTTP_STATUS == "$1" ]] && return 0
    sleep 0.1
  done
  return 0
}
run_renkei agreement suspend "$AG"
until_status 403
assert_status 403 "a suspended agreement: denied within a second"
assert_match 'suspended' "$HTTP_BODY" "the 403 says suspended"
run_renkei agreement resume "$AG"
until_status 200
assert_status 200 "resumed: permitted again within a second"
run_renkei tenant suspend takamatsu
until_status 403
assert_status 403 "a suspended provider town: denied"
run_renkei tenant resume takamatsu
until_status 200
run_renkei tenant suspend kanonji
until_status 401
assert_status 401 "a suspended consumer town: its token reads nothing"
run_renkei tenant resume kanonji
until_status 200
assert_status 200 "both towns active again"

# outside the time window
run_renkei agreement add --provider takamatsu --consumer kanonji --type RoadCondition \
  --purpose archive-study --from 2020-04-01T00:00:00Z --until 2021-04-01T00:00:00+09:00 --json
AGX=$(jq -r .id <<<"$RUN_OUT")
run_renkei agreement approve "$AGX"
ngsi GET '/v2/entities?type=RoadCondition' "${XC[@]}" -H 'Renkei-Purpose: archive-study'
assert_status 403 "an expired agreement: denied"
assert_match 'expired|until' "$HTTP_BODY" "the 403 says it expired"
run_renkei agreement add --provider takamatsu --consumer kanonji --type RoadCondition \
  --purpose future-study --from 2099-01-01T00:00:00Z --json
AGF=$(jq -r .id <<<"$RUN_OUT")
run_renkei agreement approve "$AGF"
ngsi GET '/v2/entities?type=RoadCondition' "${XC[@]}" -H 'Renkei-Purpose: future-study'
assert_status 403 "an agreement not yet valid: denied"
run_renkei agreement revoke "$AGX"
ngsi GET '/v2/entities?type=RoadCondition' "${XC[@]}" -H 'Renkei-Purpose: archive-study' -H "Renkei-Agreement: $AGX"
assert_status 403 "a revoked agreement named: denied"

# bad headers
ngsi GET '/v2/entities?type=WaterLevel' -H 'Fiware-Service: nosuchtown' "${P[@]}"
assert_status 403 "an unknown town: denied like any town without an agreement"
ngsi GET '/v2/entities?type=WaterLevel' -H 'Fiware-Service: takamatsu,kanonji' "${P[@]}"
assert_error 400 BadRequest "two towns in Fiware-Service"
ngsi GET '/v2/entities?type=WaterLevel' -H 'Fiware-Service: takamatsu' -H 'Fiware-Service: kanonji' "${P[@]}"
assert_error 400 BadRequest "Fiware-Service twice"
ngsi GET '/v2/entities?type=WaterLevel' "${XC[@]}" "${P[@]}" -H 'Renkei-Purpose: marketing'
assert_error 400 BadRequest "Renkei-Purpose twice"
ngsi GET '/v2/entities?type=WaterLevel' "${XC[@]}" -H $'Renkei-Purpose: disaster-response\x01'
assert_status 403 "a purpose with a control character: denied"
ngsi GET '/v2/entities?type=WaterLevel' "${XC[@]}" "${P[@]}" -H 'Fiware-ServicePath: no-slash'
assert_error 400 BadRequest "a bad service path in a cross-town request (audited as bad_request)"
ngsi GET '/v2/entities?type=WaterLevel' "${XC[@]}" "${P[@]}" -H 'Renkei-Agreement: ../../etc'
assert_status 403 "a malformed agreement id: denied"
ngsi GET '/v2/entities?type=WaterLevel&metadata=operatorNote&options=keyValues' "${XC[@]}" "${P[@]}"
assert_jq 'all(.[]; has("operatorNote") | not)' "$HTTP_BODY" "metadata= does not bring an attribute back"

# rate limit
run_renkei agreement add --provider takamatsu --consumer kanonji --type RoadCondition \
  --purpose road-maintenance --rate 2/min --json
AGR=$(jq -r .id <<<"$RUN_OUT")
run_renkei agreement approve "$AGR"
R=(-H 'Renkei-Purpose: road-maintenance')
ngsi GET '/v2/entities?type=RoadCondition' "${XC[@]}" "${R[@]}"
assert_status 200 "rate: first"
ngsi GET '/v2/entities?type=RoadCondition' "${XC[@]}" "${R[@]}"
assert_status 200 "rate: second"
ngsi GET '/v2/entities?type=RoadCondition' "${XC[@]}" "${R[@]}"
if [[ $HTTP_STATUS == 200 ]]; then # the minute turned between the requests
  ngsi GET '/v2/entities?type=RoadCondition' "${XC[@]}" "${R[@]}"
  ngsi GET '/v2/entities?type=RoadCondition' "${XC[@]}" "${R[@]}"
fi
assert_status 429 "rate: over the agreed 2 per minute"
assert_ne '' "$(header Retry-After)" "429 says when to retry"

# ------------------------------------------------------------------ the audit trail
run_renkei audit export --format jsonl
check "audit export" test "$RUN_STATUS" = 0
transfers=$(jq -c 'select(.kind == "transfer")' <<<"$RUN_OUT")
assert_ge "$(wc -l <<<"$transfers")" 40 "every cross-town request left a transfer entry"
first=$(head -1 <<<"$transfers")
assert_jq '.decision == "deny" and .reason == "no_agreement" and .consumer.tenant == "kanonji" and .provider == "takamatsu" and .purpose == "disaster-response"' \
  "$first" "the first denial, with its reason and parties"
want=$(printf '%s' "$permit_body" | openssl dgst -sha256 -binary | base64 -w0)
assert_ge "$(jq -c --arg h "$want" 'select(.outcome.sha256 == $h and .decision == "permit")' <<<"$transfers" | wc -l)" 1 \
  "a permitted response's digest is in its entry"
permit=$(jq -c --arg h "$want" 'select(.outcome.sha256 == $h)' <<<"$transfers" | head -1)
assert_jq ".agreement == \"$AG\" and .outcome.entities == 2 and .outcome.status == 200 and .outcome.bytes > 0" \
  "$permit" "the permit names the agreement and counts the entities"
for r in purpose_missing purpose_not_agreed type_not_agreed attr_not_agreed action_not_agreed \
  agreement_suspended town_suspended rate_limited agreement_not_approved expired not_yet_valid \
  agreement_revoked no_agreement bad_request; do
  assert_ne 0 "$(jq -c --arg r "$r" 'select(.reason == $r)' <<<"$transfers" | wc -l)" "a denial for $r is audited"
done
assert_no_match 'pump 3|Sato' "$RUN_OUT" "no data in the audit log, only digests"
run_renkei audit verify
check "the log verifies" test "$RUN_STATUS" = 0

# lock_audit_head SECONDS: another session holds the log's head row for
# SECONDS (its pid in $locker), so no entry can commit meanwhile; returns
# once the lock is held. appender_waits: returns once the hub's appender
# is waiting for that lock.
lock_audit_head() {
  psql "$RENKEI_DB" -XqAt -c "BEGIN; SELECT tree_size FROM renkei.audit_head FOR UPDATE; SELECT pg_sleep($1); COMMIT" \
    >/dev/null &
  locker=$!
  until [[ $(sql "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep($1)%' AND state = 'active' AND pid <> pg_backend_pid()") == 1 ]]; do
    sleep 0.05
  done
}
appender_waits() {
  until [[ $(sql "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%audit_head%'") -ge 1 ]]; do
    sleep 0.05
  done
}
# replies_waiting N: true once /metrics counts at least N replies held for
# their audit entries.
replies_waiting() {
  local n
  n=$(curl -s --max-time 5 "$HUB_URL/metrics" | awk '$1 == "renkei_http_replies_waiting" { print $2 }')
  [[ -n $n ]] && ((n >= $1))
}

# ------------------------------------------------------------------ replies wait for their audit entry, not a thread
# The log's head is locked by another session for 3 s, so no entry can
# commit. Cross-town reads then wait, suspended, without holding the hub's
# worker threads (one per core): the hub keeps serving in-town reads and
# health checks meanwhile. Half the waiting clients give up early (their
# connections close while the entry is pending); the rest get their data
# once the lock goes, and every request is in the log.
before=$(sql "SELECT count(*) FROM renkei.audit_entries WHERE kind = 'transfer'")
lock_audit_head 3
waiters=()
for i in $(seq 16); do
  limit=20
  ((i % 2)) && limit=1
  curl -s -o "$tmpdir/wait.$i" -w '%{http_code}' --max-time "$limit" -H "Authorization: Bearer $TOK_KJ" \
    "${XC[@]}" "${P[@]}" "$HUB_URL/v2/entities?type=WaterLevel" >"$tmpdir/wait.$i.code" 2>/dev/null &
  waiters+=($!)
done
appender_waits
check "/metrics counts the replies waiting for the log" replies_waiting 1
NGSI_TOKEN=$TOK_TK
ngsi GET '/v2/entities?type=WaterLevel'
NGSI_TOKEN=$TOK_KJ
assert_status 200 "an in-town read is served while 16 cross-town replies wait for the log"
http GET /healthz
assert_status 200 "so is the health check"
check "and the log was still locked then" kill -0 "$locker"
wait "$locker"
for p in "${waiters[@]}"; do wait "$p" || true; done
served=0
for i in $(seq 2 2 16); do
  [[ $(cat "$tmpdir/wait.$i.code") == 200 ]] && grep -q WL1 "$tmpdir/wait.$i" && served=$((served + 1))
done
assert_eq 8 "$served" "the patient clients got their data once the entries committed"
after=$(sql "SELECT count(*) FROM renkei.audit_entries WHERE kind = 'transfer'")
assert_eq 16 "$((after - before))" "every request, answered or abandoned, is in the log"
none_waiting() { ! replies_waiting 1; }
check "and none is counted as waiting any more" poll 5 none_waiting
http GET /healthz
assert_status 200 "the hub is well after clients left mid-wait"

# ------------------------------------------------------------------ audit down: 503 and nothing else
sql "REVOKE INSERT ON renkei.audit_entries FROM renkei_service"
ngsi GET '/v2/entities?type=WaterLevel&options=count' "${XC[@]}" "${P[@]}"
assert_status 503 "the transfer cannot be recorded: 503"
assert_no_match 'WL1|level' "$HTTP_BODY" "and no data"
assert_eq '' "$(header Fiware-Total-Count)" "not even a count"
sql "GRANT INSERT ON renkei.audit_entries TO renkei_service"
ngsi GET '/v2/entities?type=WaterLevel' "${XC[@]}" "${P[@]}"
assert_status 200 "recorded again once the log takes writes"

# ------------------------------------------------------------------ stopping with replies waiting on the log
# SIGTERM while cross-town replies wait for their entries, with no grace
# period: the hub cancels the stuck commit, refuses those replies (503)
# before its HTTP daemon stops (libmicrohttpd aborts if a connection is
# still suspended), and exits 0.
client_add --tenant kanonji --name kj-stop --grant client_credentials --scope "ngsi.read"
stop_client=("$CID" "$CSECRET")
hub_stop || true
hub_start RENKEI_SHUTDOWN_GRACE=0
get_token "${stop_client[@]}"
TOK_STOP=$TOKEN
lock_audit_head 5
waiters=()
for i in 1 2 3 4; do
  curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $TOK_STOP" \
    "${XC[@]}" "${P[@]}" "$HUB_URL/v2/entities?type=WaterLevel" >"$tmpdir/stop.$i.code" 2>/dev/null &
  waiters+=($!)
done
# all four held (a request still on its way when the hub stops listening
# would be refused a connection: not what this tests)
poll 4 replies_waiting 4 || fail "the 4 replies were not all waiting within 4 s"
appender_waits
kill -TERM "$HUB_PID"
hub_wait 30 || true
check "the hub stops cleanly with replies waiting on the log" test "$HUB_EXIT" = 0
wait "$locker" || true
for p in "${waiters[@]}"; do wait "$p" || true; done
for i in 1 2 3 4; do
  assert_match '^(200|503)$' "$(cat "$tmpdir/stop.$i.code")" "a waiting reply is let out or refused, not cut ($i)"
done
assert_no_match 'PANIC|suspended connections' "$(cat "$HUB_LOG")" "libmicrohttpd did not abort"

ok "exchange over the hosted store"
