#!/usr/bin/env bash
# Two hub processes on one database (as behind a load balancer, one issuer):
# what one node or the CLI changes reaches the other by LISTEN/NOTIFY within
# a few seconds: a revocation at hub A is refused at hub B, a client disabled
# or re-keyed and a tenant suspended through the CLI are refused at B, a key
# rotation shows in B's JWKS and B's new tokens.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"

RUN_TIMEOUT=20
az_setup

client_add --tenant takamatsu --name app --grant client_credentials --scope ngsi.read
A_ID=$CID A_SECRET=$CSECRET
client_add --tenant takamatsu --name doomed --grant client_credentials --scope ngsi.read
X_ID=$CID X_SECRET=$CSECRET
client_add --tenant takamatsu --name rotated --grant client_credentials --scope ngsi.read
S_ID=$CID S_SECRET=$CSECRET
client_add --tenant kanonji --name kanonji --grant client_credentials --scope ngsi.read
K_ID=$CID K_SECRET=$CSECRET
client_add --tenant kagawa --name ops --grant client_credentials --scope admin
ADM_ID=$CID ADM_SECRET=$CSECRET
client_add --tenant kagawa --name ops2 --grant client_credentials --scope admin
ADM2_ID=$CID ADM2_SECRET=$CSECRET

ISSUER=https://hub.renkei.example
hub_start RENKEI_ISSUER="$ISSUER"
hub2_start RENKEI_ISSUER="$ISSUER"
assert_ne "$HUB_URL" "$HUB2_URL" "two hubs on two ports"

# at_b CMD...: CMD against hub B.
at_b() { on_hub2 "$@"; }

http GET /.well-known/oauth-authorization-server
assert_json ".issuer == \"$ISSUER\"" "hub A: issuer $ISSUER"
at_b http GET /.well-known/oauth-authorization-server
assert_json ".issuer == \"$ISSUER\"" "hub B: issuer $ISSUER"
http GET /oauth2/jwks
jwks_a=$(jq -S . <<<"$HTTP_BODY")
at_b http GET /oauth2/jwks
assert_eq "$jwks_a" "$(jq -S . <<<"$HTTP_BODY")" "both hubs publish the same keys"
assert_jq '[.keys[] | select(.kid | startswith("audit-") | not)] | length == 2' "$jwks_a" \
  "two token-signing keys (one per algorithm), created once"
assert_jq '[.keys[] | select(.kid | startswith("audit-"))] | length == 1' "$jwks_a" \
  "one audit checkpoint key, created once"

# ---------------------------------------- revocation at A, refused at B

get_token "$ADM_ID" "$ADM_SECRET"
T_ADM=$TOKEN
assert_jq ".iss == \"$ISSUER\"" "$(jwt_claims "$T_ADM")" "hub A issues tokens with the shared issuer"
at_b admin_get /admin/v1/tenants "$T_ADM"
assert_status 200 "hub B accepts hub A's admin token (and caches it)"
at_b introspect "$A_ID" "$A_SECRET" "$T_ADM"
assert_json '.active == false' "a takamatsu client cannot see a kagawa token at B either"
get_token "$A_ID" "$A_SECRET"
T_A=$TOKEN
at_b introspect "$A_ID" "$A_SECRET" "$T_A"
assert_json '.active == true' "hub B: A's token is active"

revoke "$ADM_ID" "$ADM_SECRET" "$T_ADM"
assert_status 200 "revoke the admin token at hub A"
revoke "$A_ID" "$A_SECRET" "$T_A"
assert_status 200 "revoke A's token at hub A"
refused_at_b() {
  at_b admin_get /admin/v1/tenants "$1"
  [[ $HTTP_STATUS == 401 ]]
}
check "within 10 s hub B refuses the token revoked at hub A" poll 10 refused_at_b "$T_ADM"
assert_error 401 Unauthorized "hub B: the revoked admin token"
assert_match 'error="invalid_token"' "$(header WWW-Authenticate)" "hub B: error=\"invalid_token\""
at_b introspect "$A_ID" "$A_SECRET" "$T_A"
assert_eq '{"active":false}' "$(jq -c . <<<"$HTTP_BODY")" "hub B: the token revoked at A introspects {active:false}"

# and the other way round
at_b get_token "$ADM2_ID" "$ADM2_SECRET"
T_ADM2=$TOKEN
admin_get /admin/v1/tenants "$T_ADM2"
assert_status 200 "hub A accepts hub B's admin token"
at_b revoke "$ADM2_ID" "$ADM2_SECRET" "$T_ADM2"
assert_status 200 "revoke it at hub B"
refused_at_a() {
  admin_get /admin/v1/tenants "$1"
  [[ $HTTP_STATUS == 401 ]]
}
check "within 10 s hub A refuses the token revoked at hub B" poll 10 refused_at_a "$T_ADM2"

# ---------------------------------------------- a client disabled by CLI

at_b get_token "$X_ID" "$X_SECRET"
T_X=$TOKEN
at_b introspect "$A_ID" "$A_SECRET" "$T_X"
assert_json '.active == true' "hub B knows the client and its token"
run_renkei client disable "$X_ID"
assert_eq 0 "$RUN_STATUS" "client disable (CLI)"
token_refused_at_b() {
  at_b token_basic "$1" "$2"
  [[ $HTTP_STATUS == 401 ]]
}
check "within 10 s hub B refuses the client disabled by the CLI" poll 10 token_refused_at_b "$X_ID" "$X_SECRET"
assert_oauth_error 401 invalid_client "hub B: the disabled client"
at_b introspect "$A_ID" "$A_SECRET" "$T_X"
assert_eq '{"active":false}' "$(jq -c . <<<"$HTTP_BODY")" "hub B: the disabled client's token is inactive"
token_basic "$X_ID" "$X_SECRET"
assert_oauth_error 401 invalid_client "hub A refuses it as well"

# ------------------------------------------- a secret rotated by CLI

at_b get_token "$S_ID" "$S_SECRET"
run_renkei client rotate-secret "$S_ID" --json
assert_eq 0 "$RUN_STATUS" "client rotate-secret (CLI)"
S_NEW=$(jq -r .client_secret <<<"$RUN_OUT")
check "within 10 s hub B refuses the old secret" poll 10 token_refused_at_b "$S_ID" "$S_SECRET"
at_b get_token "$S_ID" "$S_NEW"
ok "hub B accepts the new secret"

# ------------------------------------------ a tenant suspended by CLI

at_b get_token "$K_ID" "$K_SECRET"
T_K=$TOKEN
run_renkei tenant suspend kanonji
assert_eq 0 "$RUN_STATUS" "tenant suspend kanonji (CLI)"
check "within 10 s hub B refuses the suspended tenant's client" poll 10 token_refused_at_b "$K_ID" "$K_SECRET"
assert_json '.error_description | test("tenant is suspended")' "hub B: tenant is suspended"
at_b introspect "$A_ID" "$A_SECRET" "$T_K"
assert_eq '{"active":false}' "$(jq -c . <<<"$HTTP_BODY")" "hub B: a token of the suspended tenant is inactive"
run_renkei tenant resume kanonji
assert_eq 0 "$RUN_STATUS" "tenant resume kanonji"
token_works_at_b() {
  at_b token_basic "$1" "$2"
  [[ $HTTP_STATUS == 200 ]]
}
check "within 10 s hub B serves the resumed tenant's client again" poll 10 token_works_at_b "$K_ID" "$K_SECRET"

# ------------------------------------------------ a key rotation by CLI

get_token "$A_ID" "$A_SECRET"
T_OLD=$TOKEN
old_kid=$(jwt_header "$T_OLD" | jq -r .kid)
run_renkei keys rotate
assert_eq 0 "$RUN_STATUS" "keys rotate (CLI) while both hubs run"
new_kid=$(sql "SELECT kid FROM renkei.signing_keys WHERE state = 'active' AND alg = 'ES256'")
assert_ne "$old_kid" "$new_kid" "a new ES256 key"
jwks_b_has() {
  at_b http GET /oauth2/jwks
  [[ $(jq --arg k "$new_kid" '[.keys[].kid] | index($k) != null' <<<"$HTTP_BODY") == true ]]
}
check "within 10 s hub B's JWKS lists the new key" poll 10 jwks_b_has
assert_jq "[.keys[].kid | select(startswith(\"audit-\") | not)] | index(\"$old_kid\") != null and length == 4" "$HTTP_BODY" "hub B's JWKS keeps the retiring key (four keys)"
kid_at_b() {
  at_b token_basic "$A_ID" "$A_SECRET"
  [[ $HTTP_STATUS == 200 && $(jwt_header "$(jq -r .access_token <<<"$HTTP_BODY")" | jq -r .kid) == "$new_kid" ]]
}
check "within 10 s hub B signs new tokens with the new key" poll 10 kid_at_b
T_NEW=$(jq -r .access_token <<<"$HTTP_BODY")
at_b introspect "$A_ID" "$A_SECRET" "$T_OLD"
assert_json '.active == true' "hub B: a token hub A signed before the rotation is active"
introspect "$A_ID" "$A_SECRET" "$T_NEW"
assert_json '.active == true' "hub A: hub B's token with the new key is active"

hub2_stop
