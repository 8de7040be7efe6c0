#!/usr/bin/env bash
# Signing key rotation while the hub runs: `renkei keys rotate` adds new
# active keys (ES256 and RS256); the JWKS then lists the new and the old
# (retiring) keys; tokens signed before still verify everywhere; new tokens
# carry the new kid.  Once a retiring key's time is over it leaves the JWKS
# and tokens signed with it stop working.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"

RUN_TIMEOUT=20
az_setup

client_add --tenant takamatsu --name es --grant client_credentials --scope ngsi.read
A_ID=$CID A_SECRET=$CSECRET
client_add --tenant takamatsu --name rs --grant client_credentials --scope ngsi.read --token-alg RS256
R_ID=$CID R_SECRET=$CSECRET
client_add --tenant kagawa --name ops --grant client_credentials --scope admin
ADM_ID=$CID ADM_SECRET=$CSECRET

hub_start

# active_kid ALG: the kid of the active key of ALG in the database.
active_kid() {
  sql "SELECT kid FROM renkei.signing_keys WHERE state = 'active' AND alg = '$1'"
}

# The token-signing keys of the JWKS (the audit log's checkpoint keys,
# kid audit-..., are published there too and checked by the audit tests).
jwks_kids() {
  http GET /oauth2/jwks
  jq -c '[.keys[].kid | select(startswith("audit-") | not)] | sort' <<<"$HTTP_BODY"
}

# jwks_has N: the JWKS lists N token-signing keys.
jwks_has() {
  http GET /oauth2/jwks
  [[ $(jq '[.keys[] | select(.kid | startswith("audit-") | not)] | length' <<<"$HTTP_BODY") == "$1" ]]
}

# new_kid ID SECRET KID: a fresh token of the client is signed with KID.
new_kid() {
  token_basic "$1" "$2"
  [[ $HTTP_STATUS == 200 ]] && [[ $(jwt_header "$(jq -r .access_token <<<"$HTTP_BODY")" | jq -r .kid) == "$3" ]]
}

ES1=$(active_kid ES256)
RS1=$(active_kid RS256)
assert_match '^[A-Za-z0-9_-]{16,}$' "$ES1" "an active ES256 key once the hub runs"
assert_eq "$(jq -nc --arg a "$ES1" --arg b "$RS1" '[$a, $b] | sort')" "$(jwks_kids)" "the JWKS lists the two active keys"
get_token "$A_ID" "$A_SECRET"
T_ES=$TOKEN
get_token "$R_ID" "$R_SECRET"
T_RS=$TOKEN
get_token "$ADM_ID" "$ADM_SECRET"
T_ADM=$TOKEN
# tokens of the first keys that the hub will see only after those keys retire
# (the hub caches tokens it has verified until they expire)
get_token "$A_ID" "$A_SECRET"
T_ES_LATE=$TOKEN
get_token "$ADM_ID" "$ADM_SECRET"
T_ADM_LATE=$TOKEN
assert_eq "$ES1" "$(jwt_header "$T_ES" | jq -r .kid)" "ES256 tokens carry the ES256 kid"
assert_eq "$RS1" "$(jwt_header "$T_RS" | jq -r .kid)" "RS256 tokens carry the RS256 kid"

# ------------------------------------------------------------ rotate

run_renkei keys rotate --json
assert_eq 0 "$RUN_STATUS" "keys rotate while the hub runs (stderr [$RUN_ERR])"
ES2=$(active_kid ES256)
RS2=$(active_kid RS256)
assert_ne "$ES1" "$ES2" "a new active ES256 key"
assert_ne "$RS1" "$RS2" "a new active RS256 key"
assert_eq "retiring|retiring" "$(sql "SELECT string_agg(state, '|') FROM renkei.signing_keys WHERE kid IN ('$ES1', '$RS1')")" \
  "the old keys are retiring"

check "within 10 s the JWKS lists four keys" poll 10 jwks_has 4
JWKS=$HTTP_BODY
assert_eq "$(jq -nc --arg a "$ES1" --arg b "$RS1" --arg c "$ES2" --arg d "$RS2" '[$a, $b, $c, $d] | sort')" \
  "$(jq -c '[.keys[].kid | select(startswith("audit-") | not)] | sort' <<<"$JWKS")" "the JWKS: the new keys and the retiring ones"
assert_jq '[.keys[] | select(.kid | startswith("audit-") | not) | select(has("kty") and has("kid") and .use == "sig" and (.alg == "ES256" or .alg == "RS256"))] | length == 4' \
  "$JWKS" "every listed key is a signing JWK with its alg"

check "within 10 s new ES256 tokens carry the new kid" poll 10 new_kid "$A_ID" "$A_SECRET" "$ES2"
T_ES2=$(jq -r .access_token <<<"$HTTP_BODY")
check "the new ES256 token verifies with the new JWKS (openssl)" verify_jwt_signature "$T_ES2" "$JWKS"
check "within 10 s new RS256 tokens carry the new kid" poll 10 new_kid "$R_ID" "$R_SECRET" "$RS2"
T_RS2=$(jq -r .access_token <<<"$HTTP_BODY")
check "the new RS256 token verifies with the new JWKS (openssl)" verify_jwt_signature "$T_RS2" "$JWKS"
check "the token signed before rotation verifies with the JWKS after it (openssl)" verify_jwt_signature "$T_ES" "$JWKS"

introspect "$A_ID" "$A_SECRET" "$T_ES"
assert_json '.active == true' "the ES256 token from before the rotation introspects active"
introspect "$R_ID" "$R_SECRET" "$T_RS"
assert_json '.active == true' "the RS256 token from before the rotation introspects active"
introspect "$A_ID" "$A_SECRET" "$T_ES2"
assert_json '.active == true' "the new token introspects active"
admin_get /admin/v1/tenants "$T_ADM"
assert_status 200 "the admin token from before the rotation still works at the admin API"

# a second rotation: both earlier generations stay published while they retire
run_renkei keys rotate
assert_eq 0 "$RUN_STATUS" "a second keys rotate"
ES3=$(active_kid ES256)
check "within 10 s the JWKS lists six keys" poll 10 jwks_has 6
check "within 10 s new ES256 tokens carry the third kid" poll 10 new_kid "$A_ID" "$A_SECRET" "$ES3"
introspect "$A_ID" "$A_SECRET" "$T_ES"
assert_json '.active == true' "the first-generation token is still active"
assert_eq 2 "$(sql "SELECT count(*) FROM renkei.audit_events WHERE kind = 'key.rotate' AND actor = '$ACTOR' AND tenant IS NULL")" \
  "two key.rotate events by $ACTOR about the platform"
assert_eq "$ES2" "$(sql "SELECT detail->'retiring'->>0 FROM renkei.audit_events WHERE kind = 'key.rotate' ORDER BY seq DESC LIMIT 1")" \
  "the second key.rotate event names the retiring ES256 key first"

# ------------------------------------------------------------ retire

# The first generation's time is over (as if its retire_after had passed).
sql "UPDATE renkei.signing_keys SET retire_after = now() - interval '1 second' WHERE kid IN ('$ES1', '$RS1')" >/dev/null
check "within 10 s the JWKS drops the first generation" poll 10 jwks_has 4
assert_jq "[.keys[].kid] | (index(\"$ES1\") == null and index(\"$RS1\") == null and index(\"$ES2\") != null)" "$HTTP_BODY" \
  "the first-generation kids are gone, the second's remain"
introspect "$A_ID" "$A_SECRET" "$T_ES_LATE"
assert_eq '{"active":false}' "$(jq -c . <<<"$HTTP_BODY")" "a token of a retired key introspects {active:false}"
admin_get /admin/v1/tenants "$T_ADM_LATE"
assert_error 401 Unauthorized "an admin token of a retired key at the admin API"
assert_match 'error="invalid_token"' "$(header WWW-Authenticate)" "the retired key's token: error=\"invalid_token\""
introspect "$A_ID" "$A_SECRET" "$T_ES2"
assert_json '.active == true' "a token of a retiring (not yet retired) key is still active"
run_renkei keys list --json
assert_eq 0 "$RUN_STATUS" "keys list --json"
assert_jq "[.[] | select(.kid == \"$ES1\" or .kid == \"$RS1\") | .state] == [\"retired\", \"retired\"]" "$RUN_OUT" \
  "keys list shows the first generation retired"
assert_jq '[.[] | select(.state == "active")] | length == 2' "$RUN_OUT" "still two active keys"
