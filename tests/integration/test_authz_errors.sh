#!/usr/bin/env bash
# Bad requests at the token endpoint (and introspection, revocation), each
# with the RFC 6749 §5.2 error code and status it calls for: malformed or
# non-form bodies, repeated, empty, oversized and unknown parameters, unknown
# grants, wrong, missing, ambiguous or mismatched client authentication,
# disabled clients and clients of a suspended tenant.
#
# The hub counts failed client authentications per client (10) and per
# address (30) in a minute; this test stays well below both (the throttle
# has its own test, test_authz_throttle.sh).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"

RUN_TIMEOUT=20
az_setup

client_add --tenant takamatsu --name basic --grant client_credentials --scope "ngsi.read ngsi.write" --default-scope ngsi.read
A_ID=$CID A_SECRET=$CSECRET
client_add --tenant takamatsu --name poster --grant client_credentials --scope ngsi.read --auth-method client_secret_post
B_ID=$CID B_SECRET=$CSECRET
client_add --tenant kanonji --name kanonji --grant client_credentials --scope ngsi.read
K_ID=$CID K_SECRET=$CSECRET
client_add --tenant takamatsu --name to-disable --grant client_credentials --scope ngsi.read
D_ID=$CID D_SECRET=$CSECRET

hub_start

get_token "$A_ID" "$A_SECRET"
GOOD_TOKEN=$TOKEN

# basic_challenge WHAT: the 401 carries a Basic challenge (RFC 6749 §5.2:
# the client tried the Authorization header).
basic_challenge() {
  assert_match '^Basic( |$)' "$(header WWW-Authenticate)" "$1: WWW-Authenticate: Basic"
}

# ---------------------------------------------------------- the body

http POST /oauth2/token -u "$A_ID:$A_SECRET" -H 'Content-Type: application/json' --data '{"grant_type": "client_credentials"}'
assert_oauth_error 400 invalid_request "a JSON body"
http POST /oauth2/token -u "$A_ID:$A_SECRET" -H 'Content-Type: text/plain' --data 'grant_type=client_credentials'
assert_oauth_error 400 invalid_request "Content-Type text/plain"
http POST /oauth2/token -u "$A_ID:$A_SECRET" -H 'Content-Type:' --data 'grant_type=client_credentials'
assert_oauth_error 400 invalid_request "no Content-Type"
http POST /oauth2/token -u "$A_ID:$A_SECRET" -F 'grant_type=client_credentials'
assert_oauth_error 400 invalid_request "multipart/form-data"
http POST /oauth2/token -u "$A_ID:$A_SECRET" -H 'Content-Type: application/x-www-form-urlencodedX' --data 'grant_type=client_credentials'
assert_oauth_error 400 invalid_request "a content type that only starts like a form"
http POST /oauth2/token -u "$A_ID:$A_SECRET" "${FORM[@]}" --data 'grant_type=client_credentials&grant_type=client_credentials'
assert_oauth_error 400 invalid_request "grant_type twice"
assert_json '.error_description | test("grant_type")' "grant_type twice: the description names the parameter"
token_basic "$A_ID" "$A_SECRET" --data 'scope=ngsi.read&scope=ngsi.write'
assert_oauth_error 400 invalid_request "scope twice"
token_post "$B_ID" "$B_SECRET" --data-urlencode "client_id=$B_ID"
assert_oauth_error 400 invalid_request "client_id twice"
token_basic "$A_ID" "$A_SECRET" --data 'scope=ngsi.read&Scope=ngsi.write'
assert_status 200 "parameter names are case-sensitive: Scope is another (unknown) parameter"
http POST /oauth2/token -u "$A_ID:$A_SECRET" "${FORM[@]}" --data 'scope=ngsi.read'
assert_oauth_error 400 invalid_request "no grant_type"
assert_json '.error_description | test("grant_type")' "no grant_type: the description names it"
http POST /oauth2/token -u "$A_ID:$A_SECRET" "${FORM[@]}" --data ''
assert_oauth_error 400 invalid_request "an empty body"
http POST /oauth2/token -u "$A_ID:$A_SECRET" "${FORM[@]}" --data 'grant_type=password&username=a&password=b'
assert_oauth_error 400 unsupported_grant_type "grant_type password"
http POST /oauth2/token -u "$A_ID:$A_SECRET" "${FORM[@]}" --data 'grant_type=password&username=a&password=b'
assert_oauth_error 400 unsupported_grant_type "grant_type password (never offered: RFC 9700 §2.4)"
http POST /oauth2/token -u "$A_ID:$A_SECRET" "${FORM[@]}" --data 'grant_type=authorization_code&code=x'
assert_oauth_error 400 unauthorized_client "grant_type authorization_code by a client without that grant"
http POST /oauth2/token -u "$A_ID:$A_SECRET" "${FORM[@]}" --data 'grant_type=Client_Credentials'
assert_oauth_error 400 unsupported_grant_type "grant_type in another case"
http POST /oauth2/token -u "$A_ID:$A_SECRET" "${FORM[@]}" --data 'grant_type=client_credentials&scope=%zz'
assert_oauth_error 400 invalid_request "a malformed percent-escape"
http POST /oauth2/token -u "$A_ID:$A_SECRET" "${FORM[@]}" --data 'grant_type=client_credentials&scope=ngsi.read%00admin'
assert_oauth_error 400 invalid_request "an encoded NUL"
http POST /oauth2/token -u "$A_ID:$A_SECRET" "${FORM[@]}" --data 'grant_type=client_credentials&=x'
assert_oauth_error 400 invalid_request "a parameter without a name"
token_basic "$A_ID" "$A_SECRET" --data 'scope=ngsi.read%20%22admin%22'
assert_oauth_error 400 invalid_scope "a scope with a quote character (RFC 6749 §3.3)"

# RFC 6749 §3.2: unknown parameters are ignored
token_basic "$A_ID" "$A_SECRET" --data 'foo=bar&audience=x&nonce=1'
assert_status 200 "unknown parameters are ignored"

# sizes: a parameter of 8 KiB passes, one byte more does not; 64 KiB bodies
head -c 8192 /dev/zero | tr '\0' a >"$tmpdir/p8k"
token_basic "$A_ID" "$A_SECRET" --data "pad=$(cat "$tmpdir/p8k")"
assert_status 200 "an unknown parameter of exactly 8 KiB is ignored"
token_basic "$A_ID" "$A_SECRET" --data "pad=$(cat "$tmpdir/p8k")a"
assert_oauth_error 400 invalid_request "a parameter of 8 KiB + 1"
assert_json '.error_description | test("long|large|size")' "8 KiB + 1: the description says it is too long"
token_basic "$A_ID" "$A_SECRET" --data "scope=ngsi.read$(head -c 9000 /dev/zero | tr '\0' ' ')ngsi.write"
assert_status 400 "a scope of 9 KiB is refused"
assert_json '.error == "invalid_request" or .error == "invalid_scope"' "a scope of 9 KiB: invalid_request or invalid_scope"
{
  printf 'grant_type=client_credentials'
  for i in $(seq 1 40); do printf '&p%d=1' "$i"; done
} >"$tmpdir/many"
http POST /oauth2/token -u "$A_ID:$A_SECRET" "${FORM[@]}" --data-binary "@$tmpdir/many"
assert_oauth_error 400 invalid_request "41 parameters"
{
  printf 'grant_type=client_credentials'
  for i in $(seq 1 9); do printf '&p%d=' "$i"; head -c 8000 /dev/zero | tr '\0' b; done
} >"$tmpdir/big"
http POST /oauth2/token -u "$A_ID:$A_SECRET" "${FORM[@]}" --data-binary "@$tmpdir/big"
assert_status 413 "a form body over 64 KiB: 413"
assert_no_match "$A_ID|$A_SECRET" "$HTTP_BODY" "the 413 echoes nothing of the request"
http POST /oauth2/introspect -u "$A_ID:$A_SECRET" "${FORM[@]}" --data-binary "@$tmpdir/big"
assert_status 413 "an introspection body over 64 KiB: 413"

http GET /oauth2/token
assert_status 405 "GET /oauth2/token: 405"
assert_match 'POST' "$(header Allow)" "405 names POST in Allow"
http GET "/oauth2/token?grant_type=client_credentials" -u "$A_ID:$A_SECRET"
assert_status 405 "credentials in a GET query are not a token request"

# ------------------------------------------------- client authentication

token_basic "$A_ID" "wrong-$A_SECRET"
assert_oauth_error 401 invalid_client "a wrong secret (basic)"
basic_challenge "a wrong secret (basic)"
wrong_desc=$(jq -r .error_description <<<"$HTTP_BODY")
token_basic "c_nosuchclient0000000000" "$A_SECRET"
assert_oauth_error 401 invalid_client "an unknown client (basic)"
basic_challenge "an unknown client"
assert_eq "$wrong_desc" "$(jq -r .error_description <<<"$HTTP_BODY")" \
  "an unknown client and a wrong secret are told apart by nothing"
token_post "$B_ID" "${B_SECRET:0:42}"
assert_oauth_error 401 invalid_client "a secret one character short (post)"
token_post "c_nosuchclient0000000000" "x"
assert_oauth_error 401 invalid_client "an unknown client (post)"
http POST /oauth2/token "${FORM[@]}" --data 'grant_type=client_credentials'
assert_oauth_error 401 invalid_client "no client authentication at all"
http POST /oauth2/token "${FORM[@]}" --data 'grant_type=client_credentials' -H "Authorization: Bearer $GOOD_TOKEN"
assert_oauth_error 401 invalid_client "a bearer token instead of client credentials"
basic_challenge "a bearer token"
http POST /oauth2/token "${FORM[@]}" --data 'grant_type=client_credentials' -H 'Authorization: Basic !!!notbase64'
assert_oauth_error 401 invalid_client "Basic with malformed base64"
http POST /oauth2/token "${FORM[@]}" --data 'grant_type=client_credentials' \
  -H "Authorization: Basic $(printf '%s' "$A_ID$A_SECRET" | base64 -w0)"
assert_oauth_error 401 invalid_client "Basic without a colon"
http POST /oauth2/token "${FORM[@]}" --data 'grant_type=client_credentials' -u "$A_ID:$A_SECRET" \
  --data-urlencode "client_secret=$A_SECRET"
assert_oauth_error 400 invalid_request "Basic and client_secret in the body at once"
http POST /oauth2/token "${FORM[@]}" --data 'grant_type=client_credentials' -u "$A_ID:$A_SECRET" \
  --data-urlencode "client_id=$B_ID"
assert_oauth_error 400 invalid_request "Basic for one client, client_id of another in the body"
http POST /oauth2/token "${FORM[@]}" --data 'grant_type=client_credentials' -u "$A_ID:$A_SECRET" \
  --data-urlencode "client_id=$A_ID"
assert_status 200 "Basic with the same client_id in the body (not a second method)"
http POST /oauth2/token "${FORM[@]}" --data 'grant_type=client_credentials' -u "$A_ID:$A_SECRET" \
  --data 'client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=a.b.c'
assert_oauth_error 400 invalid_request "Basic and a client assertion at once"
http POST /oauth2/token "${FORM[@]}" --data 'grant_type=client_credentials&client_assertion=a.b.c' \
  --data-urlencode "client_id=$A_ID"
assert_oauth_error 400 invalid_request "a client assertion without client_assertion_type"
# RFC 6749 §2.3.1: id and secret are form-urlencoded inside Basic
enc_id=$(printf '%s' "$A_ID" | od -An -v -tx1 | tr -d ' \n' | sed 's/../%&/g')
http POST /oauth2/token "${FORM[@]}" --data 'grant_type=client_credentials' \
  -H "Authorization: Basic $(printf '%s:%s' "$enc_id" "$A_SECRET" | base64 -w0)"
assert_status 200 "Basic with a percent-encoded client_id (RFC 6749 §2.3.1)"

token_basic "$B_ID" "$B_SECRET"
assert_oauth_error 401 invalid_client "a client_secret_post client using Basic"
basic_challenge "a post client using Basic"
token_post "$A_ID" "$A_SECRET"
assert_oauth_error 401 invalid_client "a client_secret_basic client using the body"
http POST /oauth2/token "${FORM[@]}" --data 'grant_type=client_credentials' --data-urlencode "client_id=$A_ID"
assert_oauth_error 401 invalid_client "client_id alone, no secret"
token_basic "$A_ID" "$A_SECRET"
assert_status 200 "the basic client still gets tokens"
token_post "$B_ID" "$B_SECRET"
assert_status 200 "the post client still gets tokens"

# introspection and revocation: the same rules for the body and the client
http POST /oauth2/introspect -u "$A_ID:$A_SECRET" -H 'Content-Type: application/json' --data "{\"token\": \"$GOOD_TOKEN\"}"
assert_oauth_error 400 invalid_request "introspection with a JSON body"
http POST /oauth2/introspect -u "$A_ID:$A_SECRET" "${FORM[@]}" --data "token=$GOOD_TOKEN&token=$GOOD_TOKEN"
assert_oauth_error 400 invalid_request "introspection with token twice"
introspect "$B_ID" "$B_SECRET" "$GOOD_TOKEN"
assert_oauth_error 401 invalid_client "introspection by a post client using Basic"
http POST /oauth2/revoke -u "$A_ID:$A_SECRET" -H 'Content-Type: text/plain' --data "token=$GOOD_TOKEN"
assert_oauth_error 400 invalid_request "revocation with a text/plain body"
http POST /oauth2/revoke "${FORM[@]}" -u "$A_ID:wrong" --data-urlencode "token=$GOOD_TOKEN"
assert_oauth_error 401 invalid_client "revocation with a wrong secret"
basic_challenge "revocation with a wrong secret"
http GET /oauth2/introspect
assert_status 405 "GET /oauth2/introspect: 405"
introspect "$A_ID" "$A_SECRET" "$GOOD_TOKEN"
assert_json '.active == true' "none of that revoked the token"

# ------------------------------------------------------ disabled client

get_token "$D_ID" "$D_SECRET"
TD=$TOKEN
run_renkei client disable "$D_ID"
assert_eq 0 "$RUN_STATUS" "client disable (stderr [$RUN_ERR])"
token_refused() {
  token_basic "$1" "$2"
  [[ $HTTP_STATUS == 401 ]]
}
check "within 10 s the hub refuses the disabled client" poll 10 token_refused "$D_ID" "$D_SECRET"
assert_oauth_error 401 invalid_client "a disabled client"
assert_json '.error_description | test("disabled")' "the description says the client is disabled"
introspect "$A_ID" "$A_SECRET" "$TD"
assert_eq '{"active":false}' "$(jq -c . <<<"$HTTP_BODY")" "the disabled client's token introspects {active:false}"
run_renkei client enable "$D_ID"
assert_eq 0 "$RUN_STATUS" "client enable"
token_works() {
  token_basic "$1" "$2"
  [[ $HTTP_STATUS == 200 ]]
}
check "within 10 s the enabled client gets tokens again" poll 10 token_works "$D_ID" "$D_SECRET"

# ------------------------------------------------------- suspended tenant

get_token "$K_ID" "$K_SECRET"
TK=$TOKEN
run_renkei tenant suspend kanonji
assert_eq 0 "$RUN_STATUS" "tenant suspend kanonji (stderr [$RUN_ERR])"
check "within 10 s a client of the suspended tenant is refused" poll 10 token_refused "$K_ID" "$K_SECRET"
assert_oauth_error 401 invalid_client "a client of a suspended tenant"
assert_json '.error_description | test("tenant is suspended")' "the description says: tenant is suspended"
introspect "$A_ID" "$A_SECRET" "$TK"
assert_eq '{"active":false}' "$(jq -c . <<<"$HTTP_BODY")" "a token of the suspended tenant introspects {active:false}"
token_basic "$A_ID" "$A_SECRET"
assert_status 200 "takamatsu's client is not affected"
run_renkei tenant resume kanonji
assert_eq 0 "$RUN_STATUS" "tenant resume kanonji"
check "within 10 s after resume the client gets tokens again" poll 10 token_works "$K_ID" "$K_SECRET"
get_token "$K_ID" "$K_SECRET"
introspect "$K_ID" "$K_SECRET" "$TK"
assert_json '.active == true' "the token issued before the suspension is active again after resume"

# ------------------------------------------- parameters without a value

# RFC 6749 §3.2: "Parameters sent without a value MUST be treated as if they
# were omitted from the request."
token_basic "$A_ID" "$A_SECRET" --data 'scope='
assert_status 200 "scope= (no value) is as if omitted (RFC 6749 §3.2)"
assert_json '.scope == "ngsi.read"' "scope= gets the default scope"
token_basic "$A_ID" "$A_SECRET" --data 'resource='
assert_status 200 "resource= (no value) is as if omitted (RFC 6749 §3.2)"
assert_jq ".aud == \"$HUB_URL\"" "$(jwt_claims "$(jq -r .access_token <<<"$HTTP_BODY")")" "resource= gets the hub as audience"
http POST /oauth2/token -u "$A_ID:$A_SECRET" "${FORM[@]}" --data 'grant_type='
assert_oauth_error 400 invalid_request "grant_type= (no value) is a missing grant_type"
