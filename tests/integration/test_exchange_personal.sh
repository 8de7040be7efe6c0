#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Personal data through the exchange (issue 8): kanonji's watch-over app
# (見守り) reads takamatsu's watch-over records of one resident only, with
# that resident's token and their consent to the agreement's scope. The hub
# maps the resident's common ID to takamatsu's local number and keeps the
# query to their own entities whatever the app asks; a service token, a
# token without the consent, a resident takamatsu does not know, an app of
# a town without an agreement are all denied, and every decision is in the
# audit log under the resident's opaque reference (never their common ID),
# which the resident sees in their access history.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/oidc_lib.sh"
source "$(dirname "$0")/ngsi_lib.sh"

RUN_TIMEOUT=30
UP_TOKEN=upstream-$(_rand)
orion_standin "$UP_TOKEN"
printf '%s' "$UP_TOKEN" >"$tmpdir/up.token"

az_setup
run_renkei tenant add ayagawa --name 綾川町 --parent kagawa --hosted
# zentsuji keeps its watch-over records in its own Orion
run_renkei tenant add zentsuji --name 善通寺市 --parent kagawa --city-os "$ORION" \
  --fiware-service zen --upstream-token-file "$tmpdir/up.token"
check "zentsuji registers its own Orion" test "$RUN_STATUS" = 0
curl -sS -X POST "$ORION/v2/op/update" -H "Authorization: Bearer $UP_TOKEN" -H 'Fiware-Service: zen' \
  -H 'Content-Type: application/json' --data-binary '{"actionType": "append", "entities": [
  {"id": "Z1", "type": "WatchOverStatus", "refResident": {"value": "ZT-77", "type": "Text"}, "alert": {"value": false, "type": "Boolean"}},
  {"id": "Z2", "type": "WatchOverStatus", "refResident": {"value": "ZT-88", "type": "Text"}, "alert": {"value": true, "type": "Boolean"}}]}'

PW_H='hanako no pass 1'
PW_S='saburo no pass 2'
PW_J='jiro no pass 3'
resident_add takamatsu hanako "高松 花子" hanako@example.jp "$PW_H"
RID_H=$RID
resident_add takamatsu saburo "高松 三郎" "" "$PW_S"
resident_add kanonji jiro "観音寺 次郎" "" "$PW_J"
renkei_cli resident link hanako --tenant takamatsu --local-id TK-0001
renkei_cli resident link saburo --tenant takamatsu --local-id TK-0002
renkei_cli resident link hanako --tenant zentsuji --local-id ZT-77

RU=https://mimamori.kanonji.example/cb
client_add --tenant kanonji --name "見守りアプリ" --grant authorization_code \
  --scope "openid ngsi.read exchange.mimamori" --redirect-uri "$RU"
APP=$CID APP_SECRET=$CSECRET
RU2=https://kaigo.kanonji.example/cb
client_add --tenant kanonji --name "介護アプリ" --grant authorization_code \
  --scope "openid ngsi.read exchange.mimamori" --redirect-uri "$RU2"
APP2=$CID APP2_SECRET=$CSECRET
RU_AYA=https://app.ayagawa.example/cb
client_add --tenant ayagawa --name "綾川アプリ" --grant authorization_code \
  --scope "openid ngsi.read exchange.mimamori" --redirect-uri "$RU_AYA"
AYA=$CID AYA_SECRET=$CSECRET
client_add --tenant kanonji --name kj-svc --grant client_credentials --scope "ngsi.read"
SVC=("$CID" "$CSECRET")
client_add --tenant takamatsu --name tk-svc --grant client_credentials --scope "ngsi.read ngsi.write"
TK=("$CID" "$CSECRET")

run_renkei agreement add --provider takamatsu --consumer kanonji --type WatchOverStatus \
  --attrs refResident,lastActivity,alert --purpose elderly-watch-over --personal \
  --consent-scope exchange.mimamori --resident-attr refResident --json
check "personal agreement proposed" test "$RUN_STATUS" = 0
AG=$(jq -r .id <<<"$RUN_OUT")
assert_jq '.personal == true and .consent_scope == "exchange.mimamori" and .resident_attr == "refResident"' \
  "$RUN_OUT" "the agreement names the consent scope and the resident attribute"
run_renkei agreement approve "$AG"
run_renkei agreement add --provider takamatsu --consumer kanonji --type Shelter \
  --purpose elderly-watch-over --json
run_renkei agreement approve "$(jq -r .id <<<"$RUN_OUT")"
run_renkei agreement add --provider zentsuji --consumer kanonji --type WatchOverStatus \
  --attrs refResident,alert --purpose elderly-watch-over --personal \
  --consent-scope exchange.mimamori --resident-attr refResident --json
run_renkei agreement approve "$(jq -r .id <<<"$RUN_OUT")"
check "zentsuji's personal agreement approved" test "$RUN_STATUS" = 0
oidc_hub_start

get_token "${TK[@]}"
TOK_TK=$TOKEN
get_token "${SVC[@]}"
TOK_SVC=$TOKEN
http POST /v2/op/update -H "Authorization: Bearer $TOK_TK" -H 'Content-Type: application/json' --data-binary '{"actionType": "append", "entities": [
  {"id": "W1", "type": "WatchOverStatus", "refResident": {"value": "TK-0001"}, "lastActivity": {"value": "2026-11-26T07:10:00Z", "type": "DateTime"}, "alert": {"value": false}, "homeAddress": {"value": "高松市番町1-1"}},
  {"id": "W2", "type": "WatchOverStatus", "refResident": {"value": "TK-0002"}, "lastActivity": {"value": "2026-11-25T21:00:00Z", "type": "DateTime"}, "alert": {"value": true}, "homeAddress": {"value": "高松市番町2-2"}}]}'
assert_status 204 "takamatsu records watch-over status of two residents"

XC=(-H 'Fiware-Service: takamatsu' -H 'Renkei-Purpose: elderly-watch-over')
rget() { http GET "$2" -H "Authorization: Bearer $1" "${XC[@]}" "${@:3}"; }

# ------------------------------------------------------------------ a service token is not enough
rget "$TOK_SVC" '/v2/entities?type=WatchOverStatus'
assert_status 403 "a service token: denied"
assert_match "resident" "$HTTP_BODY" "the 403 asks for a resident's token"

# ------------------------------------------------------------------ hanako consents
browser hanako
flow_to_code "$APP" "$RU" "openid ngsi.read exchange.mimamori" hanako "$PW_H"
redeem_ok "$APP" "$APP_SECRET" "$CODE" "$VERIFIER" "$RU"
AT_H=$AT
rget "$AT_H" '/v2/entities?type=WatchOverStatus&options=count'
assert_status 200 "hanako's token with her consent: permitted"
assert_ids '["W1"]' "only hanako's own record"
assert_eq 1 "$(header Fiware-Total-Count)" "the count is of her records only"
assert_jq '.[0] | (keys - ["id","type","refResident","lastActivity","alert"]) == []' "$HTTP_BODY" \
  "only the agreed attributes (no home address)"
assert_no_match 'TK-0002|番町' "$HTTP_BODY" "nothing of saburo, no address"
rget "$AT_H" '/v2/entities?options=keyValues&type=WatchOverStatus'
assert_ids '["W1"]' "keyValues: still only hanako's"
rget "$AT_H" '/v2/entities?type=Shelter'
assert_status 403 "a resident's token does not read a town's non-personal data"
assert_match 'resident' "$HTTP_BODY" "the 403 says why"
rget "$AT_H" '/v2/entities/W2?type=WatchOverStatus'
assert_status 404 "saburo's record by id: not found"
http GET "/v2/entities?type=WatchOverStatus&q=refResident=='TK-0002'" -H "Authorization: Bearer $AT_H" "${XC[@]}"
assert_ids '[]' "q cannot widen the query to another resident"
http GET '/v2/entities?type=WatchOverStatus' -H "Authorization: Bearer $AT_H" -H 'Fiware-Service: takamatsu' -H 'Renkei-Purpose: marketing'
assert_status 403 "another purpose: denied"
rget "$AT_H" '/v2/entities?type=WatchOverStatus' -H 'Renkei-Purpose: marketing'
assert_error 400 BadRequest "two purposes: refused"
http GET '/v2/entities?type=WatchOverStatus' -H "Authorization: Bearer $AT_H" -H 'Fiware-Service: kanonji'
assert_status 403 "a resident's token does not open a town's own store"

# a town's own Orion: the query leaves with the resident's condition in q
ZX=(-H 'Fiware-Service: zentsuji' -H 'Renkei-Purpose: elderly-watch-over')
http GET '/v2/entities?type=WatchOverStatus&options=keyValues' -H "Authorization: Bearer $AT_H" "${ZX[@]}"
assert_status 200 "zentsuji's own Orion, hanako's consent: permitted"
assert_json '. == [{"id":"Z1","type":"WatchOverStatus","refResident":"ZT-77","alert":false}]' \
  "only hanako's record comes back from the remote Orion"
http GET '/v2/entities/Z2?type=WatchOverStatus' -H "Authorization: Bearer $AT_H" "${ZX[@]}"
assert_status 403 "one entity by id at a remote Orion cannot be kept to the resident: denied"
http PATCH '/v2/entities/Z2/attrs?type=WatchOverStatus' -H "Authorization: Bearer $AT_H" "${ZX[@]}" \
  -H 'Content-Type: application/json' --data-binary '{"alert": {"value": false}}'
assert_status 403 "a write through a personal agreement at a remote Orion: denied"

# ------------------------------------------------------------------ without the consent scope
browser hanako2
authorize "$APP2" "$RU2" "openid ngsi.read exchange.mimamori"
bhttp GET "$LOCATION"
login_post hanako "$PW_H"
bhttp GET "$LOCATION"
consent_post allow openid ngsi.read
expect_code "$RU2" "consent without exchange.mimamori"
redeem_ok "$APP2" "$APP2_SECRET" "$CODE" "$VERIFIER" "$RU2"
assert_json '.scope == "openid ngsi.read"' "the token carries only what she ticked"
rget "$AT" '/v2/entities?type=WatchOverStatus'
assert_status 403 "no consent: no data"
assert_match 'consent' "$HTTP_BODY" "the 403 names the missing consent"

# ------------------------------------------------------------------ a resident takamatsu does not know
browser jiro
flow_to_code "$APP" "$RU" "openid ngsi.read exchange.mimamori" jiro "$PW_J"
redeem_ok "$APP" "$APP_SECRET" "$CODE" "$VERIFIER" "$RU"
rget "$AT" '/v2/entities?type=WatchOverStatus'
assert_status 403 "a resident with no record in takamatsu: denied"

# ------------------------------------------------------------------ an app of a town without this agreement
browser hanako3
flow_to_code "$AYA" "$RU_AYA" "openid ngsi.read exchange.mimamori" hanako "$PW_H"
redeem_ok "$AYA" "$AYA_SECRET" "$CODE" "$VERIFIER" "$RU_AYA"
rget "$AT" '/v2/entities?type=WatchOverStatus'
assert_status 403 "ayagawa's app, hanako's consent, no agreement: denied"

# ------------------------------------------------------------------ the audit trail and the resident's view
run_renkei audit export --format jsonl
transfers=$(jq -c 'select(.kind == "transfer")' <<<"$RUN_OUT")
assert_no_match "$RID_H" "$RUN_OUT" "the common ID is never in the log"
assert_no_match 'TK-000|番町' "$RUN_OUT" "nor the local numbers or data"
ref=$(jq -r 'select(.decision == "permit") | .resident' <<<"$transfers" | sort -u)
assert_eq 1 "$(wc -l <<<"$ref")" "hanako's permits carry one resident reference"
assert_match '^[A-Za-z0-9_-]{43}$' "$ref" "an opaque reference"
for r in resident_token_required service_token_required no_consent resident_not_linked no_agreement purpose_not_agreed; do
  assert_ne 0 "$(jq -c --arg r "$r" 'select(.reason == $r)' <<<"$transfers" | wc -l)" "a denial for $r is audited"
done
assert_ne 0 "$(jq -c --arg r "$ref" 'select(.reason == "no_consent" and .resident == $r)' <<<"$transfers" | wc -l)" \
  "the denial without consent names the resident's reference"

http GET /account/v1/access-log -H "Authorization: Bearer $AT_H"
if [[ $HTTP_STATUS == 403 ]]; then
  # the watch-over token has no account.read: the resident's own app asks
  client_add --tenant takamatsu --name "記録アプリ" --grant authorization_code --scope "openid account.read" \
    --redirect-uri https://log.takamatsu.example/cb
  browser hanako4
  flow_to_code "$CID" https://log.takamatsu.example/cb "openid account.read" hanako "$PW_H"
  redeem_ok "$CID" "$CSECRET" "$CODE" "$VERIFIER" https://log.takamatsu.example/cb
  http GET /account/v1/access-log -H "Authorization: Bearer $AT"
fi
assert_status 200 "hanako's access history"
assert_json '[.items[] | select(.provider == "takamatsu" and .town == "kanonji" and .purpose == "elderly-watch-over" and .decision == "permit")] | length >= 3' \
  "hanako sees kanonji's reads of takamatsu's records about her"

# ------------------------------------------------------------------ disabled: the token dies
rget "$AT_H" '/v2/entities?type=WatchOverStatus'
assert_status 200 "hanako's watch-over token still reads her record"
renkei_cli resident disable hanako
rget "$AT_H" '/v2/entities?type=WatchOverStatus'
assert_status 401 "a disabled resident's token reads nothing"

ok "personal data under consent"
