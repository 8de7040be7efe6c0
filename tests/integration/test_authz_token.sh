#!/usr/bin/env bash
# The token service over HTTP, on the happy paths: discovery and JWKS, the
# client_credentials grant with client_secret_basic and client_secret_post,
# RFC 9068 access tokens (ES256 by default, RS256 per client; their
# signatures checked with openssl against the JWKS), scope intersection and
# defaults, RFC 8707 resource, introspection (RFC 7662) across tenants, and
# revocation (RFC 7009) refused by the hub's own APIs afterwards.  No secret
# or token ever reaches the hub's log.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"

RUN_TIMEOUT=20
az_setup

client_add --tenant takamatsu --name app --grant client_credentials --scope "ngsi.read ngsi.write tenant.admin" \
  --default-scope ngsi.read --audience https://api.takamatsu.example.jp/
A_ID=$CID A_SECRET=$CSECRET
client_add --tenant takamatsu --name poster --grant client_credentials --scope ngsi.read --auth-method client_secret_post
B_ID=$CID B_SECRET=$CSECRET
client_add --tenant takamatsu --name legacy --grant client_credentials --scope ngsi.read --token-alg RS256 --token-ttl 120
R_ID=$CID R_SECRET=$CSECRET
client_add --tenant takamatsu --name neighbour --grant client_credentials --scope ngsi.read
C_ID=$CID C_SECRET=$CSECRET
client_add --tenant kanonji --name kanonji-app --grant client_credentials --scope ngsi.read
K_ID=$CID K_SECRET=$CSECRET
client_add --tenant kanonji --name kanonji-rs --grant client_credentials --scope "ngsi.read introspect" --default-scope ngsi.read
KI_ID=$CID KI_SECRET=$CSECRET
client_add --tenant kagawa --name ops --grant client_credentials --scope admin
ADM_ID=$CID ADM_SECRET=$CSECRET

hub_start

# ------------------------------------------------------ discovery, JWKS

for doc in /.well-known/oauth-authorization-server /.well-known/openid-configuration; do
  http GET "$doc"
  assert_status 200 "GET $doc"
  assert_json ".issuer == \"$HUB_URL\"" "$doc: issuer is the hub's URL"
  assert_json ".token_endpoint == \"$HUB_URL/oauth2/token\" and .jwks_uri == \"$HUB_URL/oauth2/jwks\"" \
    "$doc: token and JWKS endpoints"
  assert_json ".introspection_endpoint == \"$HUB_URL/oauth2/introspect\" and .revocation_endpoint == \"$HUB_URL/oauth2/revoke\" and .registration_endpoint == \"$HUB_URL/oauth2/register\"" \
    "$doc: introspection, revocation and registration endpoints"
  assert_json '(.grant_types_supported | sort) == ["authorization_code", "client_credentials", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"]' \
    "$doc: client_credentials, authorization_code, refresh_token, token exchange (no implicit, no password)"
  assert_json '(.token_endpoint_auth_methods_supported | sort) == ["client_secret_basic", "client_secret_post", "none", "private_key_jwt"]' \
    "$doc: the three client authentication methods, and none for public clients"
  assert_json '.response_types_supported == ["code"] and .code_challenge_methods_supported == ["S256"] and .authorization_response_iss_parameter_supported == true' \
    "$doc: code flow only, PKCE S256 only, iss in authorization responses"
  assert_json '(.scopes_supported | index("admin")) != null and (.scopes_supported | index("ngsi.read")) != null' \
    "$doc: scopes_supported lists admin and ngsi.read"
  assert_json '[to_entries[] | select(.key | endswith("alg_values_supported")) | .value[] | select(test("none|HS"; "i"))] | length == 0' \
    "$doc: no alg none, no HS256 in any *_alg_values_supported"
done

http GET /oauth2/jwks
assert_status 200 "GET /oauth2/jwks"
assert_match '^application/(jwk-set\+)?json' "$(header Content-Type)" "JWKS Content-Type"
assert_match 'max-age=[1-9]' "$(header Cache-Control)" "JWKS is cacheable"
JWKS=$HTTP_BODY
assert_jq '[.keys[] | select(.kid | startswith("audit-") | not)] | length == 2' "$JWKS" "JWKS: two token-signing keys (ES256 and RS256)"
assert_jq '[.keys[] | select(.kid | startswith("audit-"))] | length == 1 and .[0].alg == "ES256"' "$JWKS" \
  "JWKS: and the audit log's checkpoint key (ES256)"
assert_jq '.keys[] | select(.alg == "ES256" and (.kid | startswith("audit-") | not)) | .kty == "EC" and .crv == "P-256" and (.x | length) == 43 and (.y | length) == 43 and .use == "sig" and (.kid | length) > 0' \
  "$JWKS" "JWKS: the ES256 key is a P-256 JWK with x, y, kid, use sig"
assert_jq '.keys[] | select(.alg == "RS256") | .kty == "RSA" and (.n | length) >= 342 and .e == "AQAB" and .use == "sig"' \
  "$JWKS" "JWKS: the RS256 key is an RSA JWK of at least 2048 bits"
assert_jq '[.keys[] | keys[] | select(. == "d" or . == "p" or . == "q" or . == "dp" or . == "dq" or . == "qi")] | length == 0' \
  "$JWKS" "JWKS: no private members"

# ------------------------------------------ client_credentials, basic

t0=$(date +%s)
token_basic "$A_ID" "$A_SECRET"
t1=$(date +%s)
assert_status 200 "client_credentials with client_secret_basic"
assert_match '^application/json' "$(header Content-Type)" "token response: application/json"
assert_eq "no-store" "$(header Cache-Control)" "token response: Cache-Control: no-store"
assert_eq "no-cache" "$(header Pragma)" "token response: Pragma: no-cache"
assert_json 'keys == ["access_token", "expires_in", "scope", "token_type"]' "token response: access_token, expires_in, scope, token_type"
assert_json '.token_type == "Bearer" and .expires_in == 600' "token response: Bearer, 600 s"
assert_json '.scope == "ngsi.read"' "no scope requested: the default scope ngsi.read"
TA=$(jq -r .access_token <<<"$HTTP_BODY")
assert_match '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' "$TA" "the access token is a compact JWS"
hdr=$(jwt_header "$TA")
cl=$(jwt_claims "$TA")
assert_jq '.typ == "at+jwt" and .alg == "ES256"' "$hdr" "JWT header: typ at+jwt, alg ES256"
assert_jq 'keys == ["alg", "kid", "typ"]' "$hdr" "JWT header: only alg, kid, typ (no jku, jwk, x5u)"
kid=$(jq -r .kid <<<"$hdr")
assert_jq "[.keys[] | select(.kid == \"$kid\" and .alg == \"ES256\")] | length == 1" "$JWKS" "the token's kid names the ES256 key of the JWKS"
check "the ES256 signature verifies with that JWK (openssl)" verify_jwt_signature "$TA" "$JWKS"
assert_jq ".iss == \"$HUB_URL\" and .sub == \"$A_ID\" and .client_id == \"$A_ID\" and .aud == \"$HUB_URL\"" "$cl" \
  "claims: iss the hub, sub and client_id the client, aud the hub"
assert_jq '.scope == "ngsi.read" and .tenant == "takamatsu"' "$cl" "claims: scope and tenant"
assert_jq '.exp - .iat == 600' "$cl" "claims: exp = iat + 600"
assert_jq ".iat >= $t0 - 2 and .iat <= $t1 + 2" "$cl" "claims: iat is the time of issue"
assert_jq '.jti | type == "string" and length >= 16' "$cl" "claims: a jti of at least 16 characters"
jti_a=$(jq -r .jti <<<"$cl")
get_token "$A_ID" "$A_SECRET"
assert_ne "$jti_a" "$(jwt_claims "$TOKEN" | jq -r .jti)" "every token has its own jti"
assert_ne "$TA" "$TOKEN" "two requests, two tokens"

# a tampered token does not verify (the check above can fail)
tampered="${TA%.*}.$(printf 'x%.0s' {1..86})"
if verify_jwt_signature "$tampered" "$JWKS"; then fail "a tampered signature verified"; else ok "a tampered signature does not verify"; fi

# ------------------------------------------------------------- scopes

token_basic "$A_ID" "$A_SECRET" --data-urlencode "scope=ngsi.write admin frobnicate"
assert_status 200 "requested scope partly allowed"
assert_json '.scope == "ngsi.write"' "the granted scope is the intersection (ngsi.write)"
assert_eq "ngsi.write" "$(jwt_claims "$(jq -r .access_token <<<"$HTTP_BODY")" | jq -r .scope)" \
  "the token's scope claim is the granted scope"
token_basic "$A_ID" "$A_SECRET" --data-urlencode "scope=ngsi.read ngsi.write"
assert_json '.scope == "ngsi.read ngsi.write"' "two allowed scopes: both granted"
token_basic "$A_ID" "$A_SECRET" --data-urlencode "scope=ngsi.write ngsi.write ngsi.read"
assert_json '.scope == "ngsi.write ngsi.read"' "a repeated scope is granted once"
token_basic "$A_ID" "$A_SECRET" --data-urlencode "scope=admin"
assert_oauth_error 400 invalid_scope "only a scope the client is not allowed"
token_basic "$A_ID" "$A_SECRET" --data-urlencode "scope=frobnicate audit.read"
assert_oauth_error 400 invalid_scope "unknown and not-allowed scopes"
token_basic "$C_ID" "$C_SECRET" --data-urlencode "scope=tenant.admin"
assert_oauth_error 400 invalid_scope "tenant.admin for a client that lacks it"

# ------------------------------------------------------- client_secret_post

token_post "$B_ID" "$B_SECRET"
assert_status 200 "client_credentials with client_secret_post"
assert_json '.token_type == "Bearer" and .scope == "ngsi.read"' "post: Bearer, default scope"
assert_jq ".sub == \"$B_ID\" and .tenant == \"takamatsu\"" "$(jq -r .access_token <<<"$HTTP_BODY" | cut -d. -f2 | b64url_decode)" \
  "post: the token names the post client"
http POST /oauth2/token -H 'Content-Type: application/x-www-form-urlencoded; charset=UTF-8' \
  --data "grant_type=client_credentials&client_id=$B_ID&client_secret=$B_SECRET"
assert_status 200 "Content-Type with charset=UTF-8 is a form too"

# ---------------------------------------------------------- resource

token_basic "$A_ID" "$A_SECRET" --data-urlencode "resource=https://api.takamatsu.example.jp/"
assert_status 200 "resource = one of the client's audiences"
TAUD=$(jq -r .access_token <<<"$HTTP_BODY")
assert_jq '.aud == "https://api.takamatsu.example.jp/"' "$(jwt_claims "$TAUD")" "aud is the requested resource"
token_basic "$A_ID" "$A_SECRET" --data-urlencode "resource=$HUB_URL"
assert_status 200 "resource = the issuer"
assert_jq ".aud == \"$HUB_URL\"" "$(jq -r .access_token <<<"$HTTP_BODY" | cut -d. -f2 | b64url_decode)" "aud is the hub"
token_basic "$A_ID" "$A_SECRET" --data-urlencode "resource=https://api.kanonji.example.jp/"
assert_oauth_error 400 invalid_target "resource the client may not address"
token_basic "$C_ID" "$C_SECRET" --data-urlencode "resource=https://api.takamatsu.example.jp/"
assert_oauth_error 400 invalid_target "another client's audience"
token_basic "$A_ID" "$A_SECRET" --data-urlencode "resource=not a uri"
assert_oauth_error 400 invalid_target "resource that is not an absolute URI"
token_basic "$A_ID" "$A_SECRET" --data-urlencode "resource=https://api.takamatsu.example.jp/#frag"
assert_oauth_error 400 invalid_target "resource with a fragment (RFC 8707 §2)"

# ---------------------------------------------------- RS256 and a TTL

get_token "$R_ID" "$R_SECRET"
assert_json '.expires_in == 120' "the 120 s client: expires_in 120"
TR=$TOKEN
hdr=$(jwt_header "$TR")
assert_jq '.typ == "at+jwt" and .alg == "RS256"' "$hdr" "RS256 client: header alg RS256, typ at+jwt"
kid=$(jq -r .kid <<<"$hdr")
assert_jq "[.keys[] | select(.kid == \"$kid\" and .alg == \"RS256\")] | length == 1" "$JWKS" "RS256 kid is in the JWKS"
check "the RS256 signature verifies with that JWK (openssl)" verify_jwt_signature "$TR" "$JWKS"
assert_jq '.exp - .iat == 120' "$(jwt_claims "$TR")" "claims: exp = iat + 120"

# ----------------------------------------------------------- introspection

introspect "$A_ID" "$A_SECRET" "$TA"
assert_status 200 "introspect own token"
assert_eq "no-store" "$(header Cache-Control)" "introspection response is not cacheable"
assert_json '.active == true' "own token: active"
assert_json '(keys | sort) == ["active", "aud", "client_id", "exp", "iat", "iss", "jti", "scope", "sub", "tenant", "token_type"]' \
  "introspection members: active, scope, client_id, sub, aud, iss, jti, exp, iat, token_type, tenant"
exp_a=$(jwt_claims "$TA" | jq .exp)
assert_json ".scope == \"ngsi.read\" and .client_id == \"$A_ID\" and .sub == \"$A_ID\" and .aud == \"$HUB_URL\" and .iss == \"$HUB_URL\" and .jti == \"$jti_a\" and .exp == $exp_a and .tenant == \"takamatsu\"" \
  "introspection values match the token's claims"
assert_json '.token_type == "Bearer" and (.iat | type) == "number"' "introspection: token_type Bearer, iat"
introspect "$C_ID" "$C_SECRET" "$TA"
assert_json ".active == true and .client_id == \"$A_ID\"" "another client of the same tenant: active"
http POST /oauth2/introspect "${FORM[@]}" --data-urlencode "client_id=$B_ID" --data-urlencode "client_secret=$B_SECRET" \
  --data-urlencode "token=$TA" --data 'token_type_hint=access_token'
assert_json '.active == true' "introspection with client_secret_post and a token_type_hint"
introspect "$K_ID" "$K_SECRET" "$TA"
assert_status 200 "a client of another tenant: 200"
assert_eq '{"active":false}' "$(jq -c . <<<"$HTTP_BODY")" "a client of another tenant learns only {active:false}"
introspect "$KI_ID" "$KI_SECRET" "$TA"
assert_json ".active == true and .tenant == \"takamatsu\"" "a resource server with scope introspect sees any tenant's token"
introspect "$A_ID" "$A_SECRET" "$TAUD"
assert_json '.active == true and .aud == "https://api.takamatsu.example.jp/"' "a token for another audience introspects with that aud"
introspect "$A_ID" "$A_SECRET" "$TR"
assert_json '.active == true and .client_id == "'"$R_ID"'"' "the RS256 token introspects active"
for garbage in "garbage" "a.b.c" "${TA%.*}.AAAA" "$tampered" "$(jwt_header "$TA" | b64url_encode).$(jwt_claims "$TA" | jq -c '.scope = "admin"' | b64url_encode).$(cut -d. -f3 <<<"$TA")"; do
  introspect "$A_ID" "$A_SECRET" "$garbage"
  assert_status 200 "introspect garbage (${garbage:0:20}...): 200"
  assert_eq '{"active":false}' "$(jq -c . <<<"$HTTP_BODY")" "garbage (${garbage:0:20}...): exactly {active:false}"
done
unsigned="$(printf '{"typ":"at+jwt","alg":"none"}' | b64url_encode).$(jwt_claims "$TA" | b64url_encode)."
introspect "$A_ID" "$A_SECRET" "$unsigned"
assert_eq '{"active":false}' "$(jq -c . <<<"$HTTP_BODY")" "alg none with the same claims: {active:false}"
http POST /oauth2/introspect "${FORM[@]}" --data-urlencode "token=$TA"
assert_oauth_error 401 invalid_client "introspection without client authentication"
introspect "$A_ID" "wrong-$A_SECRET" "$TA"
assert_oauth_error 401 invalid_client "introspection with a wrong secret"
http POST /oauth2/introspect "${FORM[@]}" -u "$A_ID:$A_SECRET"
assert_oauth_error 400 invalid_request "introspection without token"

# --------------------------------------------------------------- revocation

get_token "$ADM_ID" "$ADM_SECRET"
TADM=$TOKEN
admin_get /admin/v1/tenants "$TADM"
assert_status 200 "the admin token works at GET /admin/v1/tenants before revocation"

# someone else's revocation changes nothing (200 all the same: RFC 7009 §2.2)
revoke "$C_ID" "$C_SECRET" "$TA"
assert_status 200 "another client of the tenant revokes A's token: 200"
revoke "$K_ID" "$K_SECRET" "$TA"
assert_status 200 "a client of another tenant revokes A's token: 200"
introspect "$A_ID" "$A_SECRET" "$TA"
assert_json '.active == true' "A's token is still active: only its own client revokes it"
revoke "$K_ID" "$K_SECRET" "$TADM"
admin_get /admin/v1/tenants "$TADM"
assert_status 200 "the admin token still works after a stranger's revocation"
assert_eq 0 "$(sql "SELECT count(*) FROM renkei.revoked_tokens")" "nothing revoked yet"

revoke "$A_ID" "$A_SECRET" "$TA"
assert_status 200 "revoke own token: 200"
assert_eq "" "$HTTP_BODY" "revocation answers with an empty body"
assert_eq "$jti_a|$A_ID|takamatsu|$exp_a" "$(sql "SELECT jti, client_id, tenant_id, extract(epoch FROM expires_at)::bigint FROM renkei.revoked_tokens")" \
  "renkei.revoked_tokens: the jti, client, tenant and expiry"
introspect "$A_ID" "$A_SECRET" "$TA"
assert_eq '{"active":false}' "$(jq -c . <<<"$HTTP_BODY")" "the revoked token introspects {active:false}"
introspect "$KI_ID" "$KI_SECRET" "$TA"
assert_eq '{"active":false}' "$(jq -c . <<<"$HTTP_BODY")" "also for a resource server with scope introspect"
revoke "$A_ID" "$A_SECRET" "$TA"
assert_status 200 "revoking it again: 200"
http POST /oauth2/revoke "${FORM[@]}" -u "$A_ID:$A_SECRET" --data-urlencode "token=garbage" --data 'token_type_hint=refresh_token'
assert_status 200 "revoking an unknown token (with a hint): 200"
assert_eq 1 "$(sql "SELECT count(*) FROM renkei.revoked_tokens")" "still one revoked token"
introspect "$A_ID" "$A_SECRET" "$TAUD"
assert_json '.active == true' "A's other tokens stay active"

revoke "$ADM_ID" "$ADM_SECRET" "$TADM"
assert_status 200 "the admin client revokes its token"
admin_get /admin/v1/tenants "$TADM"
assert_error 401 Unauthorized "GET /admin/v1/tenants with the revoked token"
assert_match 'error="invalid_token"' "$(header WWW-Authenticate)" "the 401 for the revoked token carries error=\"invalid_token\""
assert_match '^Bearer ' "$(header WWW-Authenticate)" "the challenge is Bearer"
get_token "$ADM_ID" "$ADM_SECRET"
admin_get /admin/v1/tenants "$TOKEN"
assert_status 200 "a fresh admin token works"
assert_json '[.items[].id] == ["kagawa", "kanonji", "takamatsu"]' "and lists the three tenants"

http POST /oauth2/revoke "${FORM[@]}" --data-urlencode "token=$TOKEN"
assert_oauth_error 401 invalid_client "revocation without client authentication"
http POST /oauth2/revoke "${FORM[@]}" -u "$ADM_ID:$ADM_SECRET"
assert_oauth_error 400 invalid_request "revocation without token"
admin_get /admin/v1/tenants "$TOKEN"
assert_status 200 "the refused revocations revoked nothing"

# ------------------------------------------------------------ the log

secrets=("$A_SECRET" "$B_SECRET" "$R_SECRET" "$C_SECRET" "$K_SECRET" "$KI_SECRET" "$ADM_SECRET")
for s in "${secrets[@]}"; do
  if grep -qF -- "$s" "$HUB_LOG" "$tmpdir/hub.out"; then fail "a client secret (${s:0:6}...) is in the hub's log"; fi
done
ok "no client secret in the hub's log"
for t in "$TA" "$TR" "$TADM" "$TAUD"; do
  if grep -qF -- "$(cut -d. -f3 <<<"$t")" "$HUB_LOG" "$tmpdir/hub.out"; then fail "an access token is in the hub's log"; fi
done
ok "no access token in the hub's log"
assert_ge "$(hub_log_objects '.msg == "request"' | wc -l)" 20 "the hub did log the requests (the search ran on a real log)"
