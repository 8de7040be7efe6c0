#!/usr/bin/env bash
# private_key_jwt client authentication (RFC 7523 §2.2, OIDC Core §9): a
# client registered with public keys (`client add --jwks-file`) signs a
# client assertion (ES256 or RS256, openssl here); the hub checks the
# signature with the client's keys, iss = sub = client_id, aud, exp, and
# refuses a replayed jti.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"

RUN_TIMEOUT=20
az_setup

ec=$(ec_jwk "$tmpdir/ec.pem" ec-1)
rs=$(rsa_jwk "$tmpdir/rs.pem" rs-1)
ec_jwk "$tmpdir/other.pem" ec-1 >/dev/null # a key the client never registered
jq -n --argjson a "$ec" --argjson b "$rs" '{keys: [$a, $b]}' >"$tmpdir/jwks.json"

run_renkei client add --tenant takamatsu --name signer --grant client_credentials --scope ngsi.read \
  --jwks-file "$tmpdir/jwks.json" --json
assert_eq 0 "$RUN_STATUS" "client add --jwks-file (stderr [$RUN_ERR])"
assert_jq 'keys == ["client_id"]' "$RUN_OUT" "a private_key_jwt client gets no secret"
J_ID=$(jq -r .client_id <<<"$RUN_OUT")
assert_eq "private_key_jwt|t|t" "$(sql "SELECT auth_method, secret_hmac IS NULL, jwks IS NOT NULL FROM renkei.clients WHERE id = '$J_ID'")" \
  "the row: private_key_jwt, no secret HMAC, the JWKS"
run_renkei client show "$J_ID" --json
assert_jq ".token_endpoint_auth_method == \"private_key_jwt\" and (.jwks.keys | length) == 2" "$RUN_OUT" "show: private_key_jwt with two keys"
run_renkei client rotate-secret "$J_ID"
assert_eq 2 "$RUN_STATUS" "rotate-secret of a private_key_jwt client is refused (exit 2)"

# a JWKS holding a private key is refused
jq -n --argjson a "$ec" '{keys: [($a + {d: "AAAA"})]}' >"$tmpdir/private.json"
before=$(snapshot_authz)
run_renkei client add --tenant takamatsu --name leaky --grant client_credentials --jwks-file "$tmpdir/private.json"
assert_eq 2 "$RUN_STATUS" "client add with a private JWK: exit 2"
assert_match 'private' "$RUN_ERR" "the message says the key is private"
printf '{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}' >"$tmpdir/oct.json"
run_renkei client add --tenant takamatsu --name symmetric --grant client_credentials --jwks-file "$tmpdir/oct.json"
assert_eq 2 "$RUN_STATUS" "client add with a symmetric JWK: exit 2"
assert_eq "$before" "$(snapshot_authz)" "the refused client adds wrote nothing"

client_add --tenant takamatsu --name observer --grant client_credentials --scope ngsi.read
O_ID=$CID O_SECRET=$CSECRET

hub_start
AUD=$HUB_URL/oauth2/token
TYPE=urn:ietf:params:oauth:client-assertion-type:jwt-bearer

# claims [JQ UPDATE]: assertion claims for J, adjusted by a jq update.
claims() {
  local now
  now=$(date +%s)
  jq -nc --arg id "$J_ID" --arg aud "$AUD" --argjson now "$now" --arg jti "jti-$(_rand)$(_rand)" \
    "{iss: \$id, sub: \$id, aud: \$aud, iat: \$now, exp: (\$now + 60), jti: \$jti} | ${1:-.}"
}

# with_assertion ASSERTION [CURL ARGS...]: client_credentials with it.
with_assertion() {
  local a=$1
  shift
  http POST /oauth2/token "${FORM[@]}" --data 'grant_type=client_credentials' \
    --data-urlencode "client_assertion_type=$TYPE" --data-urlencode "client_assertion=$a" "$@"
}

ES_HDR='{"alg":"ES256","kid":"ec-1","typ":"JWT"}'
a1=$(jws_sign ES256 "$tmpdir/ec.pem" "$ES_HDR" "$(claims)")
with_assertion "$a1" --data-urlencode "client_id=$J_ID"
assert_status 200 "an ES256 client assertion (with client_id)"
assert_jq ".sub == \"$J_ID\" and .tenant == \"takamatsu\" and .scope == \"ngsi.read\"" "$(jwt_claims "$(jq -r .access_token <<<"$HTTP_BODY")")" \
  "the token is the client's"
with_assertion "$a1" --data-urlencode "client_id=$J_ID"
assert_oauth_error 401 invalid_client "the same assertion again (jti replay)"
assert_json '.error_description | test("jti|replay|used")' "the description says it was used before"
assert_eq 1 "$(sql "SELECT count(*) FROM renkei.client_assertion_jtis WHERE client_id = '$J_ID'")" "the jti is remembered"

with_assertion "$(jws_sign ES256 "$tmpdir/ec.pem" "$ES_HDR" "$(claims)")"
assert_status 200 "an assertion without client_id (sub names the client)"
with_assertion "$(jws_sign RS256 "$tmpdir/rs.pem" '{"alg":"RS256","kid":"rs-1"}' "$(claims)")"
assert_status 200 "an RS256 assertion with the client's RSA key"
with_assertion "$(jws_sign ES256 "$tmpdir/ec.pem" '{"alg":"ES256"}' "$(claims)")"
assert_status 200 "an assertion without kid (the client's keys are tried)"
with_assertion "$(jws_sign ES256 "$tmpdir/ec.pem" "$ES_HDR" "$(claims ".aud = \"$HUB_URL\"")")"
assert_status 200 "aud = the issuer is accepted too (RFC 7523 §3)"
a2=$(jws_sign ES256 "$tmpdir/ec.pem" "$ES_HDR" "$(claims)")
http POST /oauth2/introspect "${FORM[@]}" --data-urlencode "client_assertion_type=$TYPE" --data-urlencode "client_assertion=$a2" \
  --data-urlencode "token=$(jq -r .access_token <<<"$HTTP_BODY")"
assert_json '.active == true' "introspection authenticated by a client assertion"

# refused assertions: 401 invalid_client
bad() {
  local what=$1 assertion=$2
  with_assertion "$assertion"
  assert_oauth_error 401 invalid_client "$what"
}
bad "signed with another key (same kid)" "$(jws_sign ES256 "$tmpdir/other.pem" "$ES_HDR" "$(claims)")"
bad "aud of another server" "$(jws_sign ES256 "$tmpdir/ec.pem" "$ES_HDR" "$(claims '.aud = "https://other.example/token"')")"
bad "no aud" "$(jws_sign ES256 "$tmpdir/ec.pem" "$ES_HDR" "$(claims 'del(.aud)')")"
bad "expired" "$(jws_sign ES256 "$tmpdir/ec.pem" "$ES_HDR" "$(claims '.exp = .iat - 120')")"
bad "no exp" "$(jws_sign ES256 "$tmpdir/ec.pem" "$ES_HDR" "$(claims 'del(.exp)')")"
bad "exp an hour away" "$(jws_sign ES256 "$tmpdir/ec.pem" "$ES_HDR" "$(claims '.exp = .iat + 3600')")"
bad "no jti" "$(jws_sign ES256 "$tmpdir/ec.pem" "$ES_HDR" "$(claims 'del(.jti)')")"
# ten failures of one client in a minute throttle it (test_authz_throttle.sh):
# a fresh hub process starts with clean counters
hub_stop
hub_start
AUD=$HUB_URL/oauth2/token
with_assertion "$(jws_sign ES256 "$tmpdir/ec.pem" "$ES_HDR" "$(claims)")"
assert_status 200 "the restarted hub accepts a good assertion"
bad "iss another client" "$(jws_sign ES256 "$tmpdir/ec.pem" "$ES_HDR" "$(claims ".iss = \"$O_ID\"")")"
bad "sub another client" "$(jws_sign ES256 "$tmpdir/ec.pem" "$ES_HDR" "$(claims ".sub = \"$O_ID\"")")"
bad "header alg RS256 over an ES256 signature" "$(jws_sign ES256 "$tmpdir/ec.pem" '{"alg":"RS256","kid":"ec-1"}' "$(claims)")"
bad "header alg HS256" "$(jws_sign ES256 "$tmpdir/ec.pem" '{"alg":"HS256","kid":"ec-1"}' "$(claims)")"
unsigned="$(printf '{"alg":"none"}' | b64url_encode).$(claims | b64url_encode)."
bad "alg none, no signature" "$unsigned"
bad "not a JWT" "not-a-jwt"
with_assertion "$(jws_sign ES256 "$tmpdir/ec.pem" "$ES_HDR" "$(claims)")" --data-urlencode "client_id=$O_ID"
assert_status 401 "client_id of another client than the assertion's"
assert_json '.error == "invalid_client" or .error == "invalid_request"' "client_id of another client: invalid_client or invalid_request"
http POST /oauth2/token "${FORM[@]}" --data 'grant_type=client_credentials' --data-urlencode "client_id=$J_ID" \
  --data-urlencode "client_secret=anything"
assert_oauth_error 401 invalid_client "a private_key_jwt client presenting a secret"
http POST /oauth2/token "${FORM[@]}" --data 'grant_type=client_credentials' --data-urlencode "client_assertion_type=$TYPE" \
  --data-urlencode "client_assertion=$(jws_sign ES256 "$tmpdir/ec.pem" "$ES_HDR" "$(claims)")" -u "$O_ID:$O_SECRET"
assert_oauth_error 400 invalid_request "an assertion and HTTP Basic at once"
with_assertion "$(jws_sign ES256 "$tmpdir/ec.pem" "$ES_HDR" "$(claims '.iss = "c_nosuch00000000" | .sub = "c_nosuch00000000"')")"
assert_oauth_error 401 invalid_client "an assertion of an unknown client"
