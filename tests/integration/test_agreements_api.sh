#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# /admin/v1/agreements with real tokens: a town's tenant.admin proposes as
# the consumer only; the provider's admin approves, suspends, resumes; the
# consumer cannot approve (403) but may withdraw (revoke); illegal
# transitions 409, revoked final, stale If-Match 412; another town gets 404
# for what it is not party to and lists none of it; cursor paging; bad input
# each a 400 in NGSI's error shape; every change an audit entry.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"

RUN_TIMEOUT=20
az_setup # kagawa, takamatsu, kanonji
run_renkei tenant add ayagawa --name 綾川町 --parent kagawa --hosted

client_add --tenant kagawa --name platform-ops --grant client_credentials --scope admin
ADM_ID=$CID ADM_SECRET=$CSECRET
client_add --tenant takamatsu --name takamatsu-admin --grant client_credentials --scope tenant.admin
TA_ID=$CID TA_SECRET=$CSECRET
client_add --tenant kanonji --name kanonji-admin --grant client_credentials --scope tenant.admin
KA_ID=$CID KA_SECRET=$CSECRET
client_add --tenant ayagawa --name ayagawa-admin --grant client_credentials --scope tenant.admin
YA_ID=$CID YA_SECRET=$CSECRET
client_add --tenant kanonji --name kanonji-reader --grant client_credentials --scope ngsi.read
KR_ID=$CID KR_SECRET=$CSECRET

hub_start
get_token "$ADM_ID" "$ADM_SECRET"
ADM=$TOKEN
get_token "$TA_ID" "$TA_SECRET"
TAT=$TOKEN # takamatsu: the provider
get_token "$KA_ID" "$KA_SECRET"
KAT=$TOKEN # kanonji: the consumer
get_token "$YA_ID" "$YA_SECRET"
YAT=$TOKEN # ayagawa: a bystander
get_token "$KR_ID" "$KR_SECRET"
READER=$TOKEN

PROPOSAL='{"provider": "takamatsu", "entity_types": ["Parking"], "attrs": ["availableSpotNumber"],
  "purposes": ["traffic.planning"], "valid_from": "2026-04-01T00:00:00+09:00", "rate_per_minute": 30}'

# ------------------------------------------------------------- propose

admin_send POST /admin/v1/agreements "$READER" "$PROPOSAL"
assert_error 403 Forbidden "a token without admin scope cannot propose"
http POST /admin/v1/agreements -H 'Content-Type: application/json' --data "$PROPOSAL"
assert_status 401 "no token: 401"

admin_send POST /admin/v1/agreements "$KAT" "$PROPOSAL"
assert_status 201 "kanonji's admin proposes (consumer by default: its own town)"
AG=$(jq -er .id <<<"$HTTP_BODY")
assert_json '.consumer == "kanonji" and .provider == "takamatsu" and .state == "proposed" and .actions == ["read"] and .valid_from == "2026-03-31T15:00:00Z" and .version == 1' \
  "the proposal as stored"
assert_match "/admin/v1/agreements/$AG\$" "$(header Location)" "Location names it"
assert_eq 'W/"1"' "$(header ETag)" "ETag is the version"

admin_send POST /admin/v1/agreements "$KAT" '{"provider": "ayagawa", "consumer": "takamatsu", "entity_types": ["T"], "purposes": ["p"]}'
assert_error 403 Forbidden "a town cannot propose with another town as the consumer"
admin_send POST /admin/v1/agreements "$ADM" '{"provider": "ayagawa", "consumer": "takamatsu", "entity_types": ["WeatherObserved"], "purposes": ["disaster.prevention"]}'
assert_status 201 "the platform proposes for any consumer"
AG_AY=$(jq -er .id <<<"$HTTP_BODY")

# bad input: each a 400 with a description that says what is wrong
bad() {
  local want=$1 body=$2 msg=$3
  admin_send POST /admin/v1/agreements "$ADM" "$body"
  assert_error 400 BadRequest "$msg"
  assert_json ".description | test(\"$want\")" "$msg: the description says why"
}
base='"entity_types": ["Parking"], "purposes": ["p"]'
bad 'no tenant nowhere' "{\"provider\": \"nowhere\", \"consumer\": \"kanonji\", $base}" "unknown provider"
bad 'no tenant nowhere' "{\"provider\": \"takamatsu\", \"consumer\": \"nowhere\", $base}" "unknown consumer"
bad 'consumer is required' "{\"provider\": \"takamatsu\", $base}" "the platform names the consumer"
bad 'same town' "{\"provider\": \"kanonji\", \"consumer\": \"kanonji\", $base}" "same provider and consumer"
bad 'purpose' '{"provider": "takamatsu", "consumer": "kanonji", "entity_types": ["Parking"], "purposes": ["Bad Purpose"]}' "bad purpose"
bad 'entity_types must name at least one' '{"provider": "takamatsu", "consumer": "kanonji", "entity_types": [], "purposes": ["p"]}' "empty types"
bad 'entity_types must name at least one' '{"provider": "takamatsu", "consumer": "kanonji", "purposes": ["p"]}' "missing types"
bad 'forbidden characters' '{"provider": "takamatsu", "consumer": "kanonji", "entity_types": ["a/b"], "purposes": ["p"]}' "a type that is no NGSI name"
bad 'more than 100' "{\"provider\": \"takamatsu\", \"consumer\": \"kanonji\", \"entity_types\": $(seq -f 't%g' 1 101 | jq -Rsc 'split("\n")[:-1]'), \"purposes\": [\"p\"]}" "101 types"
bad 'repeats' '{"provider": "takamatsu", "consumer": "kanonji", "entity_types": ["A"], "purposes": ["p", "p"]}' "a duplicate purpose"
bad 'valid_until must be after valid_from' "{\"provider\": \"takamatsu\", \"consumer\": \"kanonji\", $base, \"valid_from\": \"2026-04-01T00:00:00Z\", \"valid_until\": \"2026-04-01T00:00:00Z\"}" "until not after from"
bad 'RFC 3339' "{\"provider\": \"takamatsu\", \"consumer\": \"kanonji\", $base, \"valid_until\": \"tomorrow\"}" "a time that is not one"
bad 'rate_per_minute' "{\"provider\": \"takamatsu\", \"consumer\": \"kanonji\", $base, \"rate_per_minute\": -5}" "negative rate"
bad 'rate_per_minute' "{\"provider\": \"takamatsu\", \"consumer\": \"kanonji\", $base, \"rate_per_minute\": 1.5}" "fractional rate"
bad 'actions' "{\"provider\": \"takamatsu\", \"consumer\": \"kanonji\", $base, \"actions\": [\"delete\"]}" "unknown action"
bad 'personal' "{\"provider\": \"takamatsu\", \"consumer\": \"kanonji\", $base, \"resident_attr\": \"x\"}" "resident_attr without personal"
admin_send POST /admin/v1/agreements "$ADM" "{\"provider\": \"takamatsu\", \"consumer\": \"kanonji\", $base, \"state\": \"active\"}"
assert_error 400 BadRequest "an unknown member (state) is refused"
assert_eq 2 "$(sql "SELECT count(*) FROM renkei.agreements")" "no bad proposal was stored"

# ------------------------------------------------------------- visibility

admin_get "/admin/v1/agreements/$AG" "$YAT"
assert_error 404 NotFound "ayagawa cannot see takamatsu-kanonji's agreement"
admin_send PATCH "/admin/v1/agreements/$AG" "$YAT" '{"state": "revoked"}'
assert_error 404 NotFound "nor change it"
admin_get /admin/v1/agreements "$YAT"
assert_json ".items | map(.id) == [\"$AG_AY\"]" "ayagawa lists only its own (as provider)"
admin_get "/admin/v1/agreements/$AG" "$TAT"
assert_status 200 "the provider sees it"
admin_get "/admin/v1/agreements/$AG" "$KAT"
assert_status 200 "the consumer sees it"
admin_get /admin/v1/agreements/ag_zzzzzzzzzzzzzzzzzzzzzzzz "$ADM"
assert_error 404 NotFound "an unknown id: 404"
admin_get /admin/v1/agreements/nonsense "$ADM"
assert_error 404 NotFound "a malformed id: 404"

# ------------------------------------------------------------- life cycle

admin_send PATCH "/admin/v1/agreements/$AG" "$KAT" '{"state": "active"}'
assert_error 403 Forbidden "the consumer cannot approve its own proposal"
admin_send PATCH "/admin/v1/agreements/$AG" "$TAT" '{"state": "suspended"}'
assert_error 409 Conflict "a proposal cannot be suspended"
admin_send PATCH "/admin/v1/agreements/$AG" "$TAT" '{"state": "proposed"}'
assert_error 400 BadRequest "state proposed is not a change one can ask for"
admin_send PATCH "/admin/v1/agreements/$AG" "$TAT" '{"state": "active", "purposes": ["x"]}'
assert_error 400 BadRequest "the terms are not patchable"
http PATCH "/admin/v1/agreements/$AG" -H "Authorization: Bearer $TAT" -H 'Content-Type: application/json' \
  -H 'If-Match: W/"7"' --data '{"state": "active"}'
assert_error 412 PreconditionFailed "a stale If-Match: 412"
http PATCH "/admin/v1/agreements/$AG" -H "Authorization: Bearer $TAT" -H 'Content-Type: application/json' \
  -H 'If-Match: W/"1"' --data '{"state": "active"}'
assert_status 200 "the provider approves (If-Match W/\"1\")"
assert_json '.state == "active" and .version == 2' "active, version 2"
admin_send PATCH "/admin/v1/agreements/$AG" "$TAT" '{"state": "active"}'
assert_error 409 Conflict "approve twice: 409"
admin_send PATCH "/admin/v1/agreements/$AG" "$KAT" '{"state": "suspended"}'
assert_error 403 Forbidden "the consumer cannot suspend"
admin_send PATCH "/admin/v1/agreements/$AG" "$TAT" '{"state": "suspended", "version": 2}'
assert_status 200 "the provider suspends (body version)"
admin_send PATCH "/admin/v1/agreements/$AG" "$KAT" '{"state": "active"}'
assert_error 403 Forbidden "the consumer cannot resume"
admin_send PATCH "/admin/v1/agreements/$AG" "$TAT" '{"state": "active"}'
assert_status 200 "the provider resumes"
admin_send PATCH "/admin/v1/agreements/$AG" "$KAT" '{"state": "revoked"}'
assert_status 200 "the consumer withdraws (revokes)"
assert_json '.state == "revoked" and .version == 5' "revoked, version 5"
for st in active suspended revoked; do
  admin_send PATCH "/admin/v1/agreements/$AG" "$ADM" "{\"state\": \"$st\"}"
  assert_error 409 Conflict "revoked is final: $st refused even for the platform"
done
admin_send PATCH "/admin/v1/agreements/$AG_AY" "$ADM" '{"state": "active"}'
assert_status 200 "the platform approves any agreement"

# under the provider, except what the consumer did itself (a town writes
# audit entries only under its own id); each names both towns
assert_eq "agreement.propose:kanonji:client:$KA_ID agreement.approve:takamatsu:client:$TA_ID agreement.suspend:takamatsu:client:$TA_ID agreement.resume:takamatsu:client:$TA_ID agreement.revoke:kanonji:client:$KA_ID" \
  "$(sql "SELECT string_agg(kind || ':' || tenant || ':' || actor, ' ' ORDER BY seq) FROM renkei.audit_events WHERE detail->>'id' = '$AG'")" \
  "one audit event per change, naming who did it"
assert_eq "5 takamatsu kanonji" "$(sql "SELECT count(*) || ' ' || min(provider) || ' ' || min(consumer_tenant) FROM renkei.audit_entries WHERE agreement = '$AG'")" \
  "each entry names the agreement, the provider and the consumer"
# what each town may read of the log (row-level security of audit_entries)
seen_by() {
  psql "$RENKEI_DB" -XqAt -v ON_ERROR_STOP=1 <<SQL
BEGIN;
SET LOCAL ROLE renkei_service;
SELECT set_config('renkei.tenant', '$1', true) \\g /dev/null
SELECT count(*) FROM renkei.audit_entries WHERE agreement = '$AG';
COMMIT;
SQL
}
assert_eq 5 "$(seen_by takamatsu)" "the provider town sees all five entries"
assert_eq 5 "$(seen_by kanonji)" "so does the consumer town"
assert_eq 0 "$(seen_by ayagawa)" "a bystander town sees none of them"
run_renkei audit export
assert_eq 0 "$RUN_STATUS" "renkei audit export (stderr [$RUN_ERR])"
assert_eq 7 "$(jq -c 'select(.kind | startswith("agreement."))' <<<"$RUN_OUT" | wc -l)" \
  "renkei audit export holds the seven agreement events"
assert_jq 'map(select(.kind == "agreement.approve")) | length == 1 and (.[0] | .provider == "takamatsu" and .consumer.tenant == "kanonji" and .detail.from == "proposed" and .detail.state == "active")' \
  "$(jq -sc "map(select(.agreement == \"$AG\"))" <<<"$RUN_OUT")" "an exported approve entry names the towns and the transition"

# ------------------------------------------------------------- list and paging

for t in A B C; do
  admin_send POST /admin/v1/agreements "$KAT" "{\"provider\": \"takamatsu\", \"entity_types\": [\"$t\"], \"purposes\": [\"p\"]}"
  assert_status 201 "proposal $t"
done
admin_get '/admin/v1/agreements?consumer=kanonji&limit=2' "$KAT"
assert_status 200 "page 1"
assert_json '(.items | length) == 2 and (.next | type) == "string"' "page 1: two and a cursor"
p1=$(jq -c '[.items[].id]' <<<"$HTTP_BODY")
next=$(jq -r .next <<<"$HTTP_BODY")
admin_get "/admin/v1/agreements?consumer=kanonji&limit=2&cursor=$next" "$KAT"
assert_json '(.items | length) == 2 and .next == null' "page 2: the rest, no cursor"
all=$(jq -c --argjson p1 "$p1" '$p1 + [.items[].id]' <<<"$HTTP_BODY")
assert_jq '. == sort and length == 4 and (unique | length) == 4' "$all" "the pages hold all four once, in id order"
admin_get '/admin/v1/agreements?state=revoked' "$TAT"
assert_json ".items | map(.id) == [\"$AG\"]" "filter by state"
admin_get '/admin/v1/agreements?provider=ayagawa' "$KAT"
assert_json '.items == [] and .next == null' "kanonji lists nothing of ayagawa's"
admin_get '/admin/v1/agreements?state=asleep' "$ADM"
assert_error 400 BadRequest "a bad state filter"
admin_get '/admin/v1/agreements?cursor=x%27' "$ADM"
assert_error 400 BadRequest "a bad cursor"
admin_get '/admin/v1/agreements?limit=0' "$ADM"
assert_error 400 BadRequest "limit 0"
