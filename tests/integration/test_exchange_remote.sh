#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The data exchange over a town's own Orion (issue 8), with the stand-in
# Orion (tests/support/orion_standin.c) as ayagawa's city OS: ayagawa's own
# services pass through as a PEP proxy would (the town's registered
# Fiware-Service and upstream token go out, never the caller's; the
# correlator travels); kanonji reads under an agreement with the query
# narrowed before it leaves and the answer filtered again; connections are
# kept alive; an Orion that is slow, down, answering garbage, too much or
# 500 gives 504/502 in NGSI's shape, audited, and the hub stays up.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/ngsi_lib.sh"

RUN_TIMEOUT=30

UP_TOKEN=upstream-$(_rand)
orion_standin "$UP_TOKEN"

orion() { # orion METHOD PATH [BODY]: straight to the stand-in as ayagawa's own staff would
  local -a b=()
  if [[ -n ${3:-} ]]; then b=(-H 'Content-Type: application/json' --data-binary "$3"); fi
  curl -sS -X "$1" "$ORION$2" -H "Authorization: Bearer $UP_TOKEN" -H 'Fiware-Service: aya' "${b[@]}"
}
# the stand-in's counters, header names in lower case
stats() { curl -sS "$ORION/__stats" | jq -c '.last_headers |= with_entries(.key |= ascii_downcase)'; }
mode() { curl -sS -X POST "$ORION/__control" -H 'Content-Type: application/json' --data-binary "$1" >/dev/null; }

az_setup
printf '%s' "$UP_TOKEN" >"$tmpdir/up.token"
run_renkei tenant add ayagawa --name 綾川町 --parent kagawa --city-os "$ORION" \
  --fiware-service aya --upstream-token-file "$tmpdir/up.token"
check "ayagawa registers its own Orion" test "$RUN_STATUS" = 0
client_add --tenant ayagawa --name aya-app --grant client_credentials --scope "ngsi.read ngsi.write"
aya=("$CID" "$CSECRET")
client_add --tenant kanonji --name kj-app --grant client_credentials --scope "ngsi.read ngsi.write"
kj=("$CID" "$CSECRET")
# 4 s: enough to read past the 16 MiB cap of an oversized answer under ASan
# on a busy machine, short of the slow Orion's 8 s
hub_start RENKEI_UPSTREAM_TIMEOUT_MS=4000
get_token "${aya[@]}"
TOK_AYA=$TOKEN
get_token "${kj[@]}"
TOK_KJ=$TOKEN

orion POST /v2/op/update '{"actionType": "append", "entities": [
  {"id": "AWL1", "type": "WaterLevel", "level": {"value": 2.5, "type": "Number"}, "status": {"value": "normal", "type": "Text"}, "staffNote": {"value": "gate key under mat", "type": "Text"}},
  {"id": "AWL2", "type": "WaterLevel", "level": {"value": 4.1, "type": "Number"}, "status": {"value": "danger", "type": "Text"}, "staffNote": {"value": "x", "type": "Text"}},
  {"id": "ASH1", "type": "Shelter", "capacity": {"value": 80, "type": "Number"}}]}' >/dev/null

# ------------------------------------------------------------------ the town's own services: pass-through
NGSI_TOKEN=$TOK_AYA
ngsi GET '/v2/entities?options=count&type=WaterLevel' -H 'Fiware-Correlator: corr-aya-1' -H 'X-Request-Id: rid-aya-1'
assert_status 200 "ayagawa reads its own Orion through the hub"
assert_ids '["AWL1","AWL2"]' "its entities, as its Orion holds them"
assert_eq 2 "$(header Fiware-Total-Count)" "the Orion's count passes through"
assert_eq corr-aya-1 "$(header Fiware-Correlator)" "the correlator comes back"
last=$(stats)
assert_jq '.last_headers["fiware-service"] == "aya"' "$last" "the town's registered Fiware-Service went out"
assert_jq ".last_headers[\"authorization\"] == \"Bearer $UP_TOKEN\"" "$last" "the town's upstream token went out"
assert_jq '.last_headers["fiware-correlator"] == "corr-aya-1"' "$last" "the correlator travelled to the Orion"
assert_jq '.last_headers["x-request-id"] == "rid-aya-1"' "$last" "and the request id: one id end to end"
http GET /metrics
assert_ge "$(awk '$1 == "renkei_upstream_request_duration_seconds_count{town=\"ayagawa\"}" {print $2}' <<<"$HTTP_BODY")" 1 \
  "/metrics: the request to ayagawa's Orion is in its latency histogram"
assert_match $'(^|\n)renkei_upstream_up\\{town="ayagawa"\\} 1(\n|$)' "$HTTP_BODY" "and ayagawa's Orion is up"
last_s=$(awk '$1 == "renkei_upstream_last_request_timestamp_seconds{town=\"ayagawa\"}" {print $2}' <<<"$HTTP_BODY")
assert_lt "$(($(date +%s) - ${last_s:-0}))" 60 "as of its last request, a moment ago"
assert_no_match "$TOK_AYA" "$last" "the caller's token never reaches the Orion"
ngsi_json POST /v2/entities '{"id": "AR1", "type": "Report", "text": {"value": "hi"}}'
assert_status 201 "a create passes through"
assert_match '^/v2/entities/AR1' "$(header Location)" "with the Orion's Location"
ngsi GET /v2/entities/nope
assert_status 404 "the Orion's 404 passes through"
assert_json '.error == "NotFound"' "in Orion's shape"

# ------------------------------------------------------------------ another town, no agreement
XC=(-H 'Fiware-Service: ayagawa' -H 'Renkei-Purpose: disaster-response')
NGSI_TOKEN=$TOK_KJ
before=$(stats | jq .requests)
ngsi GET '/v2/entities?type=WaterLevel' "${XC[@]}"
assert_status 403 "kanonji without an agreement: denied"
assert_eq "$before" "$(stats | jq .requests)" "a denied request never reaches the Orion"

run_renkei agreement add --provider ayagawa --consumer kanonji --type WaterLevel --attrs level,status \
  --purpose disaster-response --json
AG=$(jq -r .id <<<"$RUN_OUT")
run_renkei agreement approve "$AG"
check "agreement approved" test "$RUN_STATUS" = 0
await_agreement "$TOK_KJ" "$AG"

# ------------------------------------------------------------------ permitted, narrowed and filtered
ngsi GET '/v2/entities?options=count' "${XC[@]}"
assert_status 200 "no type: narrowed before it leaves"
assert_ids '["AWL1","AWL2"]' "only the agreed type"
assert_eq 2 "$(header Fiware-Total-Count)" "the count of the narrowed query"
assert_jq '.last_headers["fiware-service"] == "aya"' "$(stats)" "the provider's Fiware-Service, not the caller's"
assert_jq 'all(.[]; (keys - ["id","type","level","status"]) == [])' "$HTTP_BODY" "only the agreed attributes"
assert_no_match 'gate key' "$HTTP_BODY" "the unagreed attribute never leaves"
ngsi GET '/v2/entities?type=WaterLevel&attrs=staffNote,level&options=values' "${XC[@]}"
assert_jq '. == [[2.5],[4.1]]' "$HTTP_BODY" "values: the agreed attribute only"
ngsi GET '/v2/entities?type=Shelter' "${XC[@]}"
assert_status 403 "an unagreed type: denied"
ngsi GET '/v2/entities?typePattern=.*' "${XC[@]}"
assert_status 403 "a type pattern cannot be narrowed at a remote Orion: denied"
ngsi GET '/v2/entities?type=WaterLevel&q=staffNote==x' "${XC[@]}"
assert_status 403 "a filter on an unagreed attribute: denied"
ngsi GET '/v2/entities/AWL1' "${XC[@]}"
assert_status 403 "one entity without its type: denied (it could be any type)"
ngsi GET '/v2/entities/AWL1?type=WaterLevel&options=keyValues' "${XC[@]}"
assert_status 200 "one entity with its type"
assert_jq '. == {"id":"AWL1","type":"WaterLevel","level":2.5,"status":"normal"}' "$HTTP_BODY" "filtered"
ngsi GET '/v2/entities/AWL1/attrs?type=WaterLevel' "${XC[@]}"
assert_jq 'keys == ["level","status"]' "$HTTP_BODY" "an entity's attributes, filtered"
ngsi GET '/v2/entities/AWL1/attrs/staffNote?type=WaterLevel' "${XC[@]}"
assert_status 403 "an unagreed attribute: denied"
ngsi_json POST '/v2/op/query?options=keyValues' '{"entities": [{"idPattern": ".*", "type": "WaterLevel"}], "attrs": ["staffNote", "level"]}' "${XC[@]}"
assert_status 200 "op/query with a typed selector"
assert_jq 'map(keys) == [["id","level","type"],["id","level","type"]]' "$HTTP_BODY" "op/query filtered"
ngsi_json POST /v2/op/query '{"entities": [{"idPattern": ".*"}]}' "${XC[@]}"
assert_status 403 "op/query with an untyped selector: denied"
ngsi_json PATCH '/v2/entities/AWL1/attrs?type=WaterLevel' '{"level": {"value": 0}}' "${XC[@]}"
assert_status 403 "a write under a read agreement: denied"
ngsi GET '/v2/entities/ASH1/attrs?type=WaterLevel&type=Shelter' "${XC[@]}"
assert_error 400 BadRequest "a repeated type (the hub reads the first, Orion the last): refused"
ngsi_get /v2/entities 'type=WaterLevel' "q=status~=.*|';staffNote==x;status~=.*|'" -- "${XC[@]}"
assert_status 403 "a q that Orion would split differently (';' inside quotes): denied"
ngsi_get /v2/entities 'type=WaterLevel' 'q=status==danger;level==4.1' -- "${XC[@]}"
assert_ids '["AWL2"]' "a q of agreed attributes reaches the Orion"
NGSI_TOKEN=$TOK_AYA
ngsi GET '/v2/entities/%2e%2e/attrs'
assert_error 400 BadRequest "a dot segment is not forwarded"
NGSI_TOKEN=$TOK_KJ

# ------------------------------------------------------------------ kept-alive connections
c0=$(stats | jq .connections)
for _ in $(seq 20); do
  ngsi GET '/v2/entities?type=WaterLevel' "${XC[@]}"
done
assert_status 200 "twenty reads"
c1=$(stats | jq .connections)
assert_lt $((c1 - c0)) 5 "twenty forwarded reads opened at most a few connections ($((c1 - c0)))"

# ------------------------------------------------------------------ a failing Orion
mode '{"mode": "slow", "delay_ms": 8000}'
ngsi GET '/v2/entities?type=WaterLevel' "${XC[@]}"
assert_error 504 GatewayTimeout "a slow Orion"
mode '{"mode": "garbage"}'
ngsi GET '/v2/entities?type=WaterLevel' "${XC[@]}"
assert_error 502 BadGateway "garbage from the Orion"
mode '{"mode": "huge"}'
ngsi GET '/v2/entities?type=WaterLevel' "${XC[@]}"
assert_error 502 BadGateway "an oversized answer"
mode '{"mode": "close"}'
ngsi GET '/v2/entities?type=WaterLevel' "${XC[@]}"
assert_error 502 BadGateway "a connection closed unanswered"
mode '{"mode": "status500"}'
ngsi GET '/v2/entities?type=WaterLevel' "${XC[@]}"
assert_error 502 BadGateway "a 500 from the Orion"
NGSI_TOKEN=$TOK_AYA
ngsi GET '/v2/entities?type=WaterLevel'
assert_error 502 BadGateway "a 500 for the town's own service too"
NGSI_TOKEN=$TOK_KJ
mode '{"mode": "normal"}'
kill "$ORION_PID"
wait "$ORION_PID" 2>/dev/null || true
ngsi GET '/v2/entities?type=WaterLevel' "${XC[@]}"
assert_error 502 BadGateway "an Orion that is down"
http GET /healthz
assert_status 200 "the hub stays up through it all"

run_renkei audit export --format jsonl
transfers=$(jq -c 'select(.kind == "transfer" and .provider == "ayagawa")' <<<"$RUN_OUT")
for s in 200 403 502 504; do
  assert_ne 0 "$(jq -c "select(.outcome.status == $s)" <<<"$transfers" | wc -l)" "transfers answered $s are audited"
done
assert_no_match 'gate key' "$RUN_OUT" "no data in the audit log"

ok "exchange over a town's own Orion"
