#!/usr/bin/env bash
# Attacks on the OpenID Connect code flow: each gets the error it calls for
# and leaves nothing issued (the database is checked: no code, refresh token,
# consent, session or exchange that was not there before, or nothing usable).
#
# Where each attack comes from:
#   code replay (also two redemptions at once); the replay revokes what the
#   code gave           RFC 6749 §4.1.2, RFC 9700 §4.5 (code injection) and
#                       §2.1.1
#   a confidential client's code without its secret   RFC 6749 §4.1.3
#   code of another client          RFC 6749 §4.1.3, RFC 9700 §4.5
#   expired code                    RFC 6749 §4.1.2 (short-lived codes)
#   PKCE: wrong, missing, short and plain verifiers; plain or missing
#   code_challenge_method           RFC 7636 §4.1, §4.2, §4.6; RFC 9700
#                                   §2.1.1, §4.8 (PKCE downgrade)
#   redirect URI variations, unknown client, no open redirect
#                       RFC 9700 §2.1, §4.1 (4.1.3 exact matching), §4.11.2;
#                       RFC 6749 §4.1.2.1; loopback ports: RFC 8252 §7.3
#   missing state (PKCE protects)   RFC 9700 §2.1.1, §4.7.1; empty parameters
#   are omitted ones    RFC 6749 §3.1; state is VSCHAR  RFC 6749 Appendix A.5
#   response_type token / id_token  RFC 9700 §2.1.2 (no implicit grant)
#   iss in every authorization response     RFC 9700 §4.4 (mix-up), RFC 9207
#   refresh token replay, refresh token of another client
#                       RFC 9700 §2.2.2, §4.14.2; RFC 6749 §6, §10.4
#   token of another audience at userinfo   RFC 9700 §2.3, RFC 8725 §3.9,
#                       RFC 9068 §4
#   ID token as an access token     RFC 8725 §3.11 (explicit typing),
#                       RFC 9068 §2.1, §4
#   an access token in the URL      RFC 6750 §2.3, §5.3; RFC 9700 §4.3.2
#   alg none; HS256 keyed with the hub's public key
#                       RFC 8725 §2.1, §3.1 (algorithm verification)
#   CSRF on the consent, sign-in, revoke and sign-out forms; consent form
#   tampering (scopes never asked)  RFC 6749 §10.12, RFC 9700 §4.7
#   RP-initiated logout: another session's ID token, unregistered
#   post_logout_redirect_uri        OpenID Connect RP-Initiated Logout 1.0 §2,
#                       §3; RFC 9700 §4.11.2 (no open redirector)
#   markup reflected into the pages (login_hint, login, parameter names)
#                       RFC 6749 §10.14 (code injection into the pages)
#   prompt=login / max_age=0 skipped by going to the consent page
#                       OIDC Core §3.1.2.1
#   consent withdrawn between the code and its redemption
#                       RFC 6749 §4.1.2, RFC 7009 §2 (what a grant gave dies
#                       with it)
#   oversized and malformed parameters, repeated parameters, an altered
#   sealed request      RFC 6749 §3.1, §3.1.2 (and robustness)
#   prompt=none without a session   OIDC Core §3.1.2.6 (login_required)
#   token exchange: subject token of another client, a client's own token as
#   subject, unlisted resource, widened scope
#                       RFC 8693 §2.1, §2.2.2, §5; RFC 9700 §2.3
#   request and request_uri         OIDC Core §6, §3.1.2.6 (RFC 9101)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/oidc_lib.sh"

RUN_TIMEOUT=20
az_setup

PW='correct horse battery'
resident_add takamatsu hanako "高松 花子" hanako@example.jp "$PW"
RID_H=$RID
resident_add takamatsu ichiro "高松 一郎" ichiro@example.jp "$PW"
RID_I=$RID

RU=https://app.takamatsu.example/cb
BYE=https://app.takamatsu.example/bye
RU2=https://other.takamatsu.example/cb
RUN=http://127.0.0.1:5000/cb
RUX=https://svc.takamatsu.example/cb
API_X=https://api.x.example
API_K=https://api.kanonji.example
client_add --tenant takamatsu --name "まちアプリ" --grant authorization_code,refresh_token \
  --scope "openid profile email offline_access ngsi.read" --redirect-uri "$RU" --audience "$API_X" \
  --post-logout-redirect-uri "$BYE"
A_ID=$CID A_SECRET=$CSECRET
client_add --tenant takamatsu --name "別アプリ" --grant authorization_code,refresh_token \
  --scope "openid profile email offline_access ngsi.read" --redirect-uri "$RU2"
B_ID=$CID B_SECRET=$CSECRET
client_add --tenant takamatsu --name "ネイティブ" --grant authorization_code --scope "openid profile" \
  --redirect-uri "$RUN" --public
N_ID=$CID
client_add --tenant kanonji --name "別のネイティブ" --grant authorization_code --scope "openid" \
  --redirect-uri http://127.0.0.1:6000/cb --public
N2_ID=$CID
client_add --tenant takamatsu --name "連携サービス" \
  --grant "authorization_code,client_credentials,urn:ietf:params:oauth:grant-type:token-exchange" \
  --scope "openid profile ngsi.read" --redirect-uri "$RUX" --audience "$API_K"
X_ID=$CID X_SECRET=$CSECRET

oidc_hub_start
ohttp GET /oauth2/jwks
JWKS=$HTTP_BODY

# issued: ISSUED = what could carry authority (codes, refresh tokens,
# grants, consents, sessions, exchanges), as counts.
issued() {
  dbq "SELECT concat_ws(' ', (SELECT count(*) FROM renkei.auth_codes), (SELECT count(*) FROM renkei.refresh_tokens),
    (SELECT count(*) FROM renkei.grants), (SELECT count(*) FROM renkei.consents),
    (SELECT count(*) FROM renkei.sessions), (SELECT count(*) FROM renkei.audit_entries WHERE kind = 'token.exchange'));"
  ISSUED=$DBQ
}

# code_used CODE: t when the code (found by its hash) is marked used.
code_used() {
  dbq "SELECT used_at IS NOT NULL FROM renkei.auth_codes WHERE code_hash = sha256(convert_to('$1', 'UTF8'));"
  printf '%s' "$DBQ"
}

# signed-in browser with consent to A and B
browser hanako
flow_to_code "$A_ID" "$RU" "openid profile email offline_access" hanako "$PW"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU"
flow_to_code "$B_ID" "$RU2" "openid profile offline_access" hanako "$PW"
redeem_ok "$B_ID" "$B_SECRET" "$CODE" "$VERIFIER" "$RU2"

# ------------------------------------------------------------ code replay

flow_to_code "$A_ID" "$RU" "openid profile offline_access" hanako "$PW"
assert_eq 00 "$SAW_CONSENT$SAW_LOGIN" "signed in and consented: straight to the code"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU"
AT1=$AT RT1=$RT
userinfo "$AT1"
assert_status 200 "the first redemption's access token works"
issued
before=$ISSUED
redeem "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU"
expect_oauth_error 400 invalid_grant "code replay"
assert_eq "" "$AT" "code replay: no access token"
issued
assert_eq "$before" "$ISSUED" "code replay: nothing new issued"
userinfo "$AT1"
assert_status 401 "code replay: the first access token is now refused at userinfo"
refresh "$A_ID" "$A_SECRET" "$RT1"
expect_oauth_error 400 invalid_grant "code replay: the first refresh token is refused"
redeem "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU"
expect_oauth_error 400 invalid_grant "code replay, third time"

# two redemptions at once: one wins, the other is a replay (which revokes
# what the winner got)
flow_to_code "$A_ID" "$RU" "openid profile offline_access" hanako "$PW"
racers=()
for i in 1 2; do
  curl -sS --max-time 30 -o "$tmpdir/race.$i" -w '%{http_code}' "${FORM[@]}" -u "$A_ID:$A_SECRET" \
    --data grant_type=authorization_code --data-urlencode "code=$CODE" --data-urlencode "code_verifier=$VERIFIER" \
    --data-urlencode "redirect_uri=$RU" "$HUB_URL/oauth2/token" >"$tmpdir/race.$i.status" &
  racers+=($!)
done
wait "${racers[@]}"
assert_eq "200 400" "$(sort <<<"$(cat "$tmpdir/race.1.status"; echo; cat "$tmpdir/race.2.status")" | tr '\n' ' ' | sed 's/^ *//; s/ *$//')" \
  "a raced double redemption: exactly one 200"
winner=$(jq -r '.access_token // empty' "$tmpdir/race.1" "$tmpdir/race.2")
userinfo "$winner"
assert_status 401 "a raced double redemption: the winner's token is revoked too"

# -------------------------------------------- code of another client

flow_to_code "$A_ID" "$RU" "openid profile" hanako "$PW"
issued
before=$ISSUED
redeem "$B_ID" "$B_SECRET" "$CODE" "$VERIFIER" "$RU"
expect_oauth_error 400 invalid_grant "A's code redeemed by B (A's redirect URI)"
redeem "$B_ID" "$B_SECRET" "$CODE" "$VERIFIER" "$RU2"
expect_oauth_error 400 invalid_grant "A's code redeemed by B (B's redirect URI)"
redeem "$N_ID" "" "$CODE" "$VERIFIER" "$RU"
expect_oauth_error 400 invalid_grant "A's code redeemed by a public client"
redeem "$A_ID" "" "$CODE" "$VERIFIER" "$RU"
expect_oauth_error 401 invalid_client "A's code with A's client_id but without A's secret"
redeem "$A_ID" "wrong-$A_SECRET" "$CODE" "$VERIFIER" "$RU"
expect_oauth_error 401 invalid_client "A's code with a wrong secret"
issued
assert_eq "$before" "$ISSUED" "another client's code: nothing issued"
assert_eq "f" "$(code_used "$CODE")" "another client's code: the code is not marked used"

# ------------------------------------------------------------ expired code

flow_to_code "$A_ID" "$RU" "openid profile" hanako "$PW"
dbq "UPDATE renkei.auth_codes SET expires_at = now() - interval '1 s' WHERE code_hash = sha256(convert_to('$CODE', 'UTF8'))"
issued
before=$ISSUED
redeem "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU"
expect_oauth_error 400 invalid_grant "an expired code"
issued
assert_eq "$before" "$ISSUED" "expired code: nothing issued"

# ------------------------------------------------------------------ PKCE

flow_to_code "$A_ID" "$RU" "openid profile offline_access" hanako "$PW"
GOOD_V=$VERIFIER GOOD_C=$CHALLENGE
issued
before=$ISSUED
pkce_new
redeem "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU"
expect_oauth_error 400 invalid_grant "PKCE: another verifier"
redeem "$A_ID" "$A_SECRET" "$CODE" "" "$RU"
expect_oauth_error 400 invalid_grant "PKCE: an empty verifier"
_client_auth "$A_ID" "$A_SECRET"
ohttp POST /oauth2/token "${FORM[@]}" "${CLIENT_AUTH[@]}" --data grant_type=authorization_code \
  --data-urlencode "code=$CODE" --data-urlencode "redirect_uri=$RU"
assert_match '^400$' "$HTTP_STATUS" "PKCE: no verifier at all: 400"
assert_json '.error == "invalid_grant" or .error == "invalid_request"' "PKCE: no verifier: invalid_grant or invalid_request"
redeem "$A_ID" "$A_SECRET" "$CODE" "${GOOD_V:0:42}" "$RU"
expect_oauth_error 400 invalid_grant "PKCE: the verifier cut to 42 characters"
redeem "$A_ID" "$A_SECRET" "$CODE" "$GOOD_C" "$RU"
expect_oauth_error 400 invalid_grant "PKCE: plain (the verifier is the challenge)"
redeem "$A_ID" "$A_SECRET" "$CODE" "$GOOD_V" "$RU/"
expect_oauth_error 400 invalid_grant "a redirect_uri that differs from the request's"
issued
assert_eq "$before" "$ISSUED" "PKCE failures: nothing issued"
assert_eq "f" "$(code_used "$CODE")" "PKCE failures: the code is not spent"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$GOOD_V" "$RU"

issued
before=$ISSUED
authorize "$A_ID" "$RU" "openid" code_challenge_method=plain code_challenge="$VERIFIER"
expect_redirect_error "$RU" invalid_request "code_challenge_method=plain"
authorize "$A_ID" "$RU" "openid" -code_challenge_method
expect_redirect_error "$RU" invalid_request "no code_challenge_method (plain by default)"
authorize "$A_ID" "$RU" "openid" -code_challenge -code_challenge_method
expect_redirect_error "$RU" invalid_request "no code_challenge at all"
authorize "$A_ID" "$RU" "openid" code_challenge=short
expect_redirect_error "$RU" invalid_request "a code_challenge that is no SHA-256"
authorize "$A_ID" "$RU" "openid" code_challenge_method=s256
expect_redirect_error "$RU" invalid_request "code_challenge_method s256 (case matters)"
issued
assert_eq "$before" "$ISSUED" "refused PKCE requests: nothing issued"

# ------------------------------------------------- redirect URI variations

issued
before=$ISSUED
for bad in "$RU/extra" "$RU?x=1" "$RU#frag" "https://APP.TAKAMATSU.EXAMPLE/cb" "HTTPS://app.takamatsu.example/cb" \
  "https://app.takamatsu.example@evil.example/cb" "$RU/" "https://app.takamatsu.example:8443/cb" \
  "http://app.takamatsu.example/cb" "https://evil.example/cb" "https://app.takamatsu.example.evil.example/cb" \
  "https://evil.example/cb?x=$RU" "//evil.example/cb" "/cb" "https:/app.takamatsu.example/cb" "$RU%00" \
  "https://app.takamatsu.example/cb/../cb" "https://app.takamatsu.example/%63b" "https://app.takamatsu.example/CB" \
  " $RU" "$RU " "https://app.takamatsu.example:443/cb" "https://app.takamatsu.example./cb"; do
  authorize "$A_ID" "$bad" "openid"
  expect_error_page 400 "redirect_uri [$bad]"
  assert_no_match 'evil\.example' "$HTTP_HEADERS" "redirect_uri [$bad]: nothing points at evil.example"
done
authorize "$A_ID" "https://app.takamatsu.example/cb" "openid" +redirect_uri=https://evil.example/cb
expect_error_page 400 "redirect_uri twice"
authorize "$A_ID" "" "openid" -redirect_uri
expect_error_page 400 "no redirect_uri"
authorize "c_nosuchclientnosuchclient" "$RU" "openid"
expect_error_page 400 "an unknown client_id"
authorize "" "$RU" "openid" -client_id
expect_error_page 400 "no client_id"
authorize "$N_ID" "$RU" "openid"
expect_error_page 400 "another client's redirect URI"
authorize "$N_ID" "http://localhost:5000/cb" "openid"
expect_error_page 400 "loopback by name (localhost) is not the registered IP literal"
authorize "$N_ID" "http://127.0.0.1:61234/other" "openid"
expect_error_page 400 "loopback with another path"
authorize "$N_ID" "https://127.0.0.1:5000/cb" "openid"
expect_error_page 400 "loopback with https instead of the registered http"
# found by tests/fuzz/fuzz_redirect_uri: only the port may differ, compared
# as strings (RFC 9700 §2.1), so not the scheme's case either
authorize "$N_ID" "HTTP://127.0.0.1:61234/cb" "openid"
expect_error_page 400 "loopback with the scheme in capitals"
issued
assert_eq "$before" "$ISSUED" "refused redirect URIs: nothing issued"
# a native app's loopback redirect URI may change its port (RFC 8252 §7.3)
flow_to_code "$N_ID" "http://127.0.0.1:61234/cb" "openid profile" hanako "$PW"
redeem_ok "$N_ID" "" "$CODE" "$VERIFIER" "http://127.0.0.1:61234/cb"
N_SUB=$(jwt_json "$IDT" 2 | jq -r .sub)
flow_to_code "$N2_ID" "http://127.0.0.1:6000/cb" "openid" hanako "$PW"
redeem_ok "$N2_ID" "" "$CODE" "$VERIFIER" "http://127.0.0.1:6000/cb"
assert_ne "$N_SUB" "$(jwt_json "$IDT" 2 | jq -r .sub)" \
  "two native apps on the loopback host are not one sector (no correlation through 127.0.0.1)"
flow_to_code "$N_ID" "http://127.0.0.1:61235/cb" "openid profile" hanako "$PW"
redeem "$N_ID" "" "$CODE" "$VERIFIER" "http://127.0.0.1:61234/cb"
expect_oauth_error 400 invalid_grant "loopback: the token request must repeat the port of the authorization request"

# ------------------------------------------ state, response_type, request

authorize "$A_ID" "$RU" "openid profile" -state
expect_code "$RU" "no state"
assert_no_match '[?&]state=' "$LOCATION" "no state: none comes back"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU"

issued
before=$ISSUED
for rt in token id_token "code id_token" "code token" "id_token token" CODE none; do
  authorize "$A_ID" "$RU" "openid" "response_type=$rt"
  expect_redirect_error "$RU" unsupported_response_type "response_type=$rt"
  assert_eq "$STATE" "$(qparam "$LOCATION" state)" "response_type=$rt: the state comes back"
  assert_no_match '#|access_token|id_token=' "$LOCATION" "response_type=$rt: no token in the redirect"
done
authorize "$A_ID" "$RU" "openid" -response_type
expect_redirect_error "$RU" invalid_request "no response_type"
authorize "$A_ID" "$RU" "openid" "state=状態"
expect_redirect_error "$RU" invalid_request "a state outside VSCHAR (RFC 6749 Appendix A.5)"
authorize "$A_ID" "$RU" "openid" response_mode=fragment
expect_redirect_error "$RU" invalid_request "response_mode=fragment"
authorize "$A_ID" "$RU" "openid" response_mode=form_post
expect_redirect_error "$RU" invalid_request "response_mode=form_post"
authorize "$A_ID" "$RU" "openid" "request=eyJhbGciOiJub25lIn0.eyJyZWRpcmVjdF91cmkiOiJodHRwczovL2V2aWwuZXhhbXBsZS9jYiJ9."
expect_redirect_error "$RU" request_not_supported "a request object"
authorize "$A_ID" "$RU" "openid" "request_uri=https://evil.example/request.jwt"
expect_redirect_error "$RU" request_uri_not_supported "a request_uri"
authorize "$A_ID" "$RU" "openid" "request_uri=urn:ietf:params:oauth:request_uri:abc"
expect_redirect_error "$RU" request_uri_not_supported "a PAR-style request_uri"
authorize "$A_ID" "$RU" "openid admin"
expect_redirect_error "$RU" invalid_scope "a scope the client may not have (admin)"
authorize "$A_ID" "$RU" "openid audit.read"
expect_redirect_error "$RU" invalid_scope "a resident scope the client was not given"
authorize "$A_ID" "$RU" "openid" "resource=https://api.other.example"
expect_redirect_error "$RU" invalid_target "a resource the client may not address"
authorize "$A_ID" "$RU" "openid" "prompt=none login"
expect_redirect_error "$RU" invalid_request "prompt none with login"
authorize "$A_ID" "$RU" "openid" "max_age=-1"
expect_redirect_error "$RU" invalid_request "a negative max_age"
issued
assert_eq "$before" "$ISSUED" "refused authorization requests: nothing issued"

browser nobody
authorize "$A_ID" "$RU" "openid" prompt=none
expect_redirect_error "$RU" login_required "prompt=none without a session"
browser hanako
authorize "$N_ID" "$RU" "openid" prompt=none
expect_error_page 400 "prompt=none with a wrong redirect URI: still a page"
issued
before=$ISSUED
client_add --tenant takamatsu --name "未同意アプリ" --grant authorization_code --scope "openid" --redirect-uri https://new.takamatsu.example/cb
NEW_ID=$CID
authorize "$NEW_ID" https://new.takamatsu.example/cb "openid" prompt=none
expect_redirect_error https://new.takamatsu.example/cb consent_required "prompt=none without consent"
issued
assert_eq "$before" "$ISSUED" "prompt=none refusals: nothing issued"

# prompt=login and max_age=0 cannot be skipped by taking the sealed request
# from the sign-in URL straight to the consent page (OIDC Core 3.1.2.1)
browser hanako
for ask in prompt=login max_age=0; do
  authorize "$A_ID" "$RU" "openid profile" "$ask"
  assert_match '^/login\?r=' "$LOCATION" "$ask: the sign-in page"
  skip_r=${LOCATION#/login?r=}
  issued
before=$ISSUED
  bhttp GET "/consent?r=$skip_r"
  if [[ $HTTP_STATUS == 200 ]]; then consent_post allow; fi
  assert_status 303 "$ask, skipping the sign-in: 303"
  assert_match '^/login\?r=' "$LOCATION" "$ask, skipping the sign-in: back to the sign-in page, no code"
  issued
assert_eq "$before" "$ISSUED" "$ask, skipping the sign-in: nothing issued"
done

# --------------------------------------------------------- refresh tokens

flow_to_code "$A_ID" "$RU" "openid profile offline_access" hanako "$PW"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU"
R1=$RT
issued
before=$ISSUED
refresh "$B_ID" "$B_SECRET" "$R1"
expect_oauth_error 400 invalid_grant "A's refresh token presented by B"
refresh "$N_ID" "" "$R1"
assert_status 400 "A's refresh token presented by a public client without the grant"
issued
assert_eq "$before" "$ISSUED" "another client's refresh token: nothing issued"
refresh "$A_ID" "$A_SECRET" "$R1"
assert_status 200 "A's refresh token still works for A"
R2=$RT A2=$AT
refresh "$A_ID" "$A_SECRET" "$R1"
expect_oauth_error 400 invalid_grant "refresh token replay (the rotated one)"
assert_eq "" "$AT" "refresh replay: no token"
refresh "$A_ID" "$A_SECRET" "$R2"
expect_oauth_error 400 invalid_grant "refresh replay: the whole family is revoked (the newest too)"
userinfo "$A2"
assert_status 401 "refresh replay: the access token issued with the family is refused"
family=$(dbval "SELECT family_id FROM renkei.refresh_tokens WHERE token_hash = sha256(convert_to('$R2', 'UTF8'))")
assert_eq "0" "$(dbval "SELECT count(*) FROM renkei.refresh_tokens WHERE family_id = '$family' AND revoked_at IS NULL")" \
  "refresh replay: every token of the family is revoked in the database"
refresh "$A_ID" "$A_SECRET" "not-a-refresh-token"
expect_oauth_error 400 invalid_grant "a made-up refresh token"
refresh "$A_ID" "$A_SECRET" "$R2" --data-urlencode "scope=openid profile email admin"
expect_oauth_error 400 invalid_grant "revoked refresh token with a widened scope"

flow_to_code "$A_ID" "$RU" "openid profile offline_access" hanako "$PW"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU"
issued
before=$ISSUED
refresh "$A_ID" "$A_SECRET" "$RT" --data-urlencode "scope=openid profile email"
expect_oauth_error 400 invalid_scope "refresh with a scope wider than granted"
issued
assert_eq "$before" "$ISSUED" "refresh with a wider scope: nothing issued"

# ------------------------------------------------ tokens at the wrong place

flow_to_code "$A_ID" "$RU" "openid profile" hanako "$PW" "resource=$API_X"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU"
assert_jq ".aud == \"$API_X\"" "$(jwt_json "$AT" 2)" "resource: the token's audience is the API"
userinfo "$AT"
assert_status 401 "a token for another audience at userinfo: 401"
assert_match 'invalid_token' "$(hdr WWW-Authenticate)" "another audience: WWW-Authenticate invalid_token"
ohttp GET /account/v1/access-log -H "Authorization: Bearer $AT"
assert_status 401 "a token for another audience at the hub's API: 401"

flow_to_code "$A_ID" "$RU" "openid profile" hanako "$PW"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU"
GOOD_AT=$AT GOOD_IDT=$IDT
ohttp GET "/oauth2/userinfo?access_token=$GOOD_AT"
assert_status 401 "userinfo: an access token in the URL is not taken (RFC 6750 §2.3, RFC 9700 §4.3)"
userinfo "$GOOD_IDT"
assert_status 401 "an ID token as a bearer access token at userinfo: 401"
ohttp GET /account/v1/access-log -H "Authorization: Bearer $GOOD_IDT"
assert_status 401 "an ID token at the hub's API: 401"

# forged tokens from the good one's claims (a new jti: no cache can help)
claims=$(jwt_json "$GOOD_AT" 2 | jq -c '.jti = "forged-\(.jti)"')
kid=$(jwt_json "$GOOD_AT" 1 | jq -r .kid)
cpart=$(printf '%s' "$claims" | b64url_encode)
for alg in none None NONE nOnE; do
  hpart=$(printf '{"typ":"at+jwt","alg":"%s","kid":"%s"}' "$alg" "$kid" | b64url_encode)
  userinfo "$hpart.$cpart."
  assert_status 401 "alg $alg without a signature: 401"
  userinfo "$hpart.$cpart.$(cut -d. -f3 <<<"$GOOD_AT")"
  assert_status 401 "alg $alg with the good token's signature: 401"
done
# HS256 keyed with the public key in every form an attacker might try
jwk=$(jq -c --arg kid "$kid" '.keys[] | select(.kid == $kid)' <<<"$JWKS")
x=$(jq -r .x <<<"$jwk" | b64url_decode | _hex)
y=$(jq -r .y <<<"$jwk" | b64url_decode | _hex)
printf '3059301306072a8648ce3d020106082a8648ce3d03010703420004%s%s' "$x" "$y" | _unhex >"$tmpdir/pub.der"
openssl pkey -pubin -inform DER -in "$tmpdir/pub.der" -out "$tmpdir/pub.pem" 2>/dev/null || fail "cannot make the PEM of the hub's key"
rsa_kid=$(jq -r '.keys[] | select(.alg == "RS256") | .kid' <<<"$JWKS")
declare -A hmac_keys=(
  [pem]=$(_hex <"$tmpdir/pub.pem")
  [pem-no-newline]=$(printf '%s' "$(cat "$tmpdir/pub.pem")" | _hex)
  [der]=$(_hex <"$tmpdir/pub.der")
  [jwk]=$(printf '%s' "$jwk" | _hex)
  [xy]="04$x$y"
  [x]=$x
)
for form in "${!hmac_keys[@]}"; do
  for k in "$kid" "$rsa_kid"; do
    hpart=$(printf '{"typ":"at+jwt","alg":"HS256","kid":"%s"}' "$k" | b64url_encode)
    sig=$(printf '%s' "$hpart.$cpart" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:${hmac_keys[$form]}" -binary | b64url_encode)
    userinfo "$hpart.$cpart.$sig"
    assert_status 401 "HS256 keyed with the public key ($form, kid ${k:0:8}): 401"
  done
done
# a good signature over other claims; an ES256 token with a changed payload
userinfo "$(cut -d. -f1 <<<"$GOOD_AT").$cpart.$(cut -d. -f3 <<<"$GOOD_AT")"
assert_status 401 "the good signature over changed claims: 401"
hpart=$(printf '{"typ":"at+jwt","alg":"ES256","kid":"%s","jwk":%s}' "$kid" "$jwk" | b64url_encode)
userinfo "$hpart.$cpart.$(cut -d. -f3 <<<"$GOOD_AT")"
assert_status 401 "an embedded jwk header does not help: 401"
userinfo "$GOOD_AT"
assert_status 200 "the good token itself still works"

# -------------------------------------------------------------- CSRF

# consent: a browser whose sign-in is done and whose consent page is open
browser ichiro
authorize "$A_ID" "$RU" "openid profile"
bhttp GET "$LOCATION"
login_post ichiro "$PW"
assert_match '^/consent\?' "$LOCATION" "ichiro signed in: consent next"
bhttp GET "$LOCATION"
I_CSRF=$(form_value csrf) I_R=$(form_value r)
I_PAGE=$HTTP_BODY
issued
before=$ISSUED
bhttp POST /consent "${FORM[@]}" --data-urlencode "r=$I_R" --data decision=allow --data scope=openid --data scope=profile
expect_error_page 403 "consent without csrf"
bhttp POST /consent "${FORM[@]}" --data-urlencode "r=$I_R" --data-urlencode "csrf=" --data decision=allow --data scope=openid
expect_error_page 403 "consent with an empty csrf"
browser other
bhttp GET /login
O_CSRF=$(form_value csrf)
browser ichiro
bhttp POST /consent "${FORM[@]}" --data-urlencode "r=$I_R" --data-urlencode "csrf=$O_CSRF" --data decision=allow --data scope=openid
expect_error_page 403 "consent with the csrf of another browser's cookie"
bhttp POST /consent "${FORM[@]}" -H 'Origin: https://evil.example' --data-urlencode "r=$I_R" --data-urlencode "csrf=$I_CSRF" \
  --data decision=allow --data scope=openid
expect_error_page 403 "consent posted from https://evil.example"
bhttp POST /consent "${FORM[@]}" -H 'Sec-Fetch-Site: cross-site' --data-urlencode "r=$I_R" --data-urlencode "csrf=$I_CSRF" \
  --data decision=allow --data scope=openid
expect_error_page 403 "consent posted cross-site (Sec-Fetch-Site)"
bhttp POST /consent "${FORM[@]}" -H "Origin: ${HUB_URL}.evil.example" --data-urlencode "r=$I_R" --data-urlencode "csrf=$I_CSRF" \
  --data decision=allow --data scope=openid
expect_error_page 403 "consent posted from an origin that only starts like the hub's"
issued
assert_eq "$before" "$ISSUED" "consent CSRF: nothing issued"
assert_eq "0" "$(dbval "SELECT count(*) FROM renkei.grants WHERE resident_id = '$RID_I'")" "consent CSRF: no consent row"
# the genuine form still works (the refusals spent nothing)
HTTP_BODY=$I_PAGE
consent_post allow openid profile email ngsi.read admin
expect_code "$RU" "the genuine consent"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU"
assert_json '.scope == "openid profile"' "scopes ticked on the form but never asked are not granted"
assert_eq "openid profile" "$(dbval "SELECT string_agg(c.scope, ' ' ORDER BY c.scope) FROM renkei.consents c JOIN renkei.grants g ON g.id = c.grant_id WHERE g.resident_id = '$RID_I'")" \
  "the consent holds only what was asked"

# sign-in
browser signin
authorize "$A_ID" "$RU" "openid"
bhttp GET "$LOCATION"
S_CSRF=$(form_value csrf) S_R=$(form_value r)
issued
before=$ISSUED
bhttp POST /login "${FORM[@]}" --data-urlencode "r=$S_R" --data-urlencode "login=hanako" --data-urlencode "password=$PW"
expect_error_page 403 "sign-in without csrf"
bhttp POST /login "${FORM[@]}" --data-urlencode "r=$S_R" --data-urlencode "csrf=$O_CSRF" --data-urlencode "login=hanako" \
  --data-urlencode "password=$PW"
expect_error_page 403 "sign-in with another browser's csrf"
bhttp POST /login "${FORM[@]}" -H 'Origin: https://evil.example' --data-urlencode "r=$S_R" --data-urlencode "csrf=$S_CSRF" \
  --data-urlencode "login=hanako" --data-urlencode "password=$PW"
expect_error_page 403 "sign-in posted from https://evil.example"
bhttp POST /login "${FORM[@]}" --data-urlencode "csrf=$S_CSRF" --data-urlencode "login=hanako" --data-urlencode "password=$PW" \
  -H 'Sec-Fetch-Site: cross-site'
expect_error_page 403 "sign-in (no request) posted cross-site"
assert_eq "" "$(jar_get renkei_sid)" "sign-in CSRF: no session cookie"
issued
assert_eq "$before" "$ISSUED" "sign-in CSRF: no session, nothing issued"

# revoke on the account page
browser hanako
bhttp GET /account
H_CSRF=$(form_value csrf)
GRANT_A=$(dbval "SELECT id FROM renkei.grants WHERE resident_id = '$RID_H' AND client_id = '$A_ID' AND revoked_at IS NULL")
bhttp POST /account/revoke "${FORM[@]}" --data-urlencode "grant_id=$GRANT_A"
expect_error_page 403 "revoke without csrf"
bhttp POST /account/revoke "${FORM[@]}" --data-urlencode "grant_id=$GRANT_A" --data-urlencode "csrf=$O_CSRF"
expect_error_page 403 "revoke with another browser's csrf"
bhttp POST /account/revoke "${FORM[@]}" -H 'Origin: https://evil.example' --data-urlencode "grant_id=$GRANT_A" \
  --data-urlencode "csrf=$H_CSRF"
expect_error_page 403 "revoke posted from https://evil.example"
assert_eq "" "$(dbval "SELECT revoked_at FROM renkei.grants WHERE id = '$GRANT_A'")" "revoke CSRF: the grant stands"
userinfo "$GOOD_AT"
assert_status 200 "revoke CSRF: the app's token still works"
browser ichiro
bhttp GET /account
bhttp POST /account/revoke "${FORM[@]}" --data-urlencode "grant_id=$GRANT_A" --data-urlencode "csrf=$(form_value csrf)"
assert_status 404 "ichiro revoking hanako's grant: 404"
assert_eq "" "$(dbval "SELECT revoked_at FROM renkei.grants WHERE id = '$GRANT_A'")" "another resident's revoke: the grant stands"

# sign-out: a cross-site POST cannot end the session
browser hanako
bhttp POST /logout "${FORM[@]}" -H 'Origin: https://evil.example' --data-urlencode "csrf=$H_CSRF" --data decision=logout
assert_ne 303 "$HTTP_STATUS" "logout posted from evil.example: no redirect"
bhttp GET /account
assert_status 200 "logout CSRF: still signed in"
# an ID token of another session (ichiro's browser) cannot sign hanako out unasked
browser ichiro
authorize "$A_ID" "$RU" "openid"
expect_code "$RU" "ichiro's session"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU"
I_IDT=$IDT
browser hanako
bhttp GET "/logout?id_token_hint=$I_IDT&post_logout_redirect_uri=$(urlenc "$BYE")&state=x"
assert_status 200 "logout with another session's ID token: a confirmation page, no redirect"
assert_eq "" "$LOCATION" "logout with another session's ID token: no Location"
bhttp GET /account
assert_status 200 "logout with another session's ID token: still signed in"
bhttp GET "/logout?post_logout_redirect_uri=$(urlenc https://evil.example/)"
expect_error_page 400 "logout to an unregistered URI, no client named"
bhttp GET "/logout?client_id=$A_ID&post_logout_redirect_uri=$(urlenc https://evil.example/)"
expect_error_page 400 "logout to an unregistered URI of a named client"
bhttp GET "/logout?client_id=$A_ID&post_logout_redirect_uri=$(urlenc "$BYE/x")"
expect_error_page 400 "logout to the registered URI with an extra path"
bhttp GET "/logout?id_token_hint=$I_IDT&post_logout_redirect_uri=$(urlenc "$RU")"
expect_error_page 400 "logout to the client's redirect URI (not registered for logout, RP-Initiated Logout §3)"
bhttp GET "/logout?id_token_hint=$I_IDT&post_logout_redirect_uri=$(urlenc "$RU2")"
expect_error_page 400 "logout to another client's URI than the hint's audience"
bhttp GET "/logout?id_token_hint=$I_IDT&client_id=$B_ID"
expect_error_page 400 "logout: client_id differs from the hint's audience"
bhttp GET "/logout?id_token_hint=$GOOD_AT"
expect_error_page 400 "logout: an access token is no id_token_hint"
bhttp GET /account
bhttp POST /logout "${FORM[@]}" --data-urlencode "csrf=$(form_value csrf)" --data-urlencode "client_id=$A_ID" \
  --data-urlencode "post_logout_redirect_uri=https://evil.example/" --data decision=logout
expect_error_page 400 "the sign-out form with an unregistered URI"
bhttp POST /logout "${FORM[@]}" --data-urlencode "csrf=$H_CSRF" --data-urlencode "post_logout_redirect_uri=$BYE" --data decision=logout
expect_error_page 400 "the sign-out form with a URI but no client"
bhttp GET /account
assert_status 200 "refused logouts: still signed in"

# ------------------------------------------------ reflected markup

browser xss
authorize "$A_ID" "$RU" "openid" 'login_hint="><script>alert(1)</script>' 'ui_locales="><b>'
bhttp GET "$LOCATION"
assert_status 200 "a login_hint with markup: the sign-in page"
assert_no_match '<script|"><' "$HTTP_BODY" "a login_hint with markup is escaped"
assert_match 'value="&quot;&gt;&lt;script&gt;' "$HTTP_BODY" "the login_hint is shown escaped"
login_post '"><img src=x onerror=alert(1)>' 'wrong password'
assert_status 401 "a login with markup: 401"
assert_no_match '<img' "$HTTP_BODY" "a login with markup is escaped on the page again"
bhttp GET '/oauth2/authorize?%3Cscript%3Ex=1&%3Cscript%3Ex=2'
expect_error_page 400 "a repeated parameter named with markup"
assert_no_match '<script' "$HTTP_BODY" "the parameter's name is escaped on the error page"

# ------------------------------------- oversized and malformed parameters

browser hanako
issued
before=$ISSUED
long_state=$(printf 'S%.0s' {1..5000})
authorize "$A_ID" "$RU" "openid" "state=$long_state"
expect_redirect_error "$RU" invalid_request "a state of 5000 bytes"
assert_lt "${#LOCATION}" 3000 "a state of 5000 bytes is not echoed"
authorize "$A_ID" "$RU" "openid" "state=$(printf 'S%.0s' {1..2048})" "nonce=$(printf 'N%.0s' {1..512})" \
  "login_hint=$(printf 'h%.0s' {1..200})@example.jp" "ui_locales=$(printf 'ja %.0s' {1..33})"
expect_code "$RU" "state of 2048 bytes, nonce of 512, a long login_hint (the limits)"
assert_eq 2048 "${#RSTATE}" "a state of 2048 bytes comes back whole"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU"
assert_jq '.nonce | length == 512' "$(jwt_json "$IDT" 2)" "a nonce of 512 bytes is in the ID token"
browser limits
authorize "$A_ID" "$RU" "openid" "state=$(printf 'S%.0s' {1..2048})" "nonce=$(printf 'N%.0s' {1..512})" \
  "login_hint=$(printf 'h%.0s' {1..200})@example.jp" "ui_locales=$(printf 'ja %.0s' {1..33})"
bhttp GET "$LOCATION"
assert_status 200 "the limits: the sign-in page opens the sealed request"
browser hanako
issued
before=$ISSUED
long_scope="openid $(printf 'profile%.0s ' {1..280})"
authorize "$A_ID" "$RU" "${long_scope% }"
assert_status 303 "a scope of 2000 bytes: 303"
assert_match "[?&]error=invalid_(scope|request)&" "$LOCATION" "a scope of 2000 bytes: invalid_scope (or invalid_request)"
authorize "$A_ID" "$RU" "openid" "nonce=$(printf 'N%.0s' {1..5000})"
expect_redirect_error "$RU" invalid_request "a nonce of 5000 bytes"
authorize "$A_ID" "$RU" "openid" +scope=profile
expect_error_page 400 "scope repeated"
authorize "$A_ID" "$RU" "openid" +state=again
expect_error_page 400 "state repeated"
authorize "$A_ID" "$RU" "openid" +code_challenge=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
expect_error_page 400 "code_challenge repeated"
bhttp GET "/oauth2/authorize?$AUTHZ_QUERY&client_id=$B_ID"
expect_error_page 400 "client_id repeated (two clients)"
issued
assert_eq "$before" "$ISSUED" "oversized and repeated parameters: nothing issued"

# bad percent-encoding (the query of a good request, spoiled)
pkce_new
authz_query response_type=code "client_id=$A_ID" "redirect_uri=$RU" scope=openid state=s1 \
  "code_challenge=$CHALLENGE" code_challenge_method=S256
bhttp GET "/oauth2/authorize?${AUTHZ_QUERY/redirect_uri=/redirect_uri=%zz}"
expect_error_page 400 "a malformed escape in redirect_uri"
bhttp GET "/oauth2/authorize?${AUTHZ_QUERY/client_id=/client_id=%}"
expect_error_page 400 "a lone % in client_id"
bhttp GET "/oauth2/authorize?${AUTHZ_QUERY/client_id=/client_id=%00}"
expect_error_page 400 "an encoded NUL in client_id"
ohttp POST /oauth2/authorize "${FORM[@]}" --data "$AUTHZ_QUERY&state=%zz"
assert_status 400 "POST authorize with a malformed escape: 400"
assert_eq "" "$(hdr Location)" "POST authorize with a malformed escape: no redirect"

# sign-in form: malformed, oversized
browser big
authorize "$A_ID" "$RU" "openid"
bhttp GET "$LOCATION"
B_CSRF=$(form_value csrf) B_R=$(form_value r)
bhttp POST /login "${FORM[@]}" --data "csrf=$B_CSRF&r=$B_R&login=hanako%zz&password=x"
expect_error_page 400 "sign-in form with a malformed escape"
bhttp POST /login "${FORM[@]}" --data "csrf=$B_CSRF&r=$B_R&login=hanako&password=pw%00d"
expect_error_page 400 "sign-in form with an encoded NUL"
bhttp POST /login "${FORM[@]}" --data-urlencode "csrf=$B_CSRF" --data-urlencode "r=$B_R" \
  --data-urlencode "login=$(printf 'a%.0s' {1..10000})" --data-urlencode "password=$PW"
assert_match '^40[01]$' "$HTTP_STATUS" "a login of 10000 bytes: 400 or 401"
assert_eq "" "$(jar_get renkei_sid)" "a login of 10000 bytes: no session"
big=$tmpdir/big.form
{ printf 'csrf=%s&r=%s&login=hanako&password=' "$B_CSRF" "$B_R"; printf 'x%.0s' {1..102400}; } >"$big"
bhttp POST /login "${FORM[@]}" --data-binary "@$big"
assert_status 413 "a 100 KB sign-in form: 413"
bhttp POST /consent "${FORM[@]}" --data-binary "@$big"
assert_status 413 "a 100 KB consent form: 413"
ohttp POST /oauth2/authorize "${FORM[@]}" --data-binary "@$big"
assert_status 413 "a 100 KB authorization request: 413"
bhttp POST /account/revoke "${FORM[@]}" --data-binary "@$big"
assert_status 413 "a 100 KB revoke form: 413"
assert_eq "" "$(jar_get renkei_sid)" "oversized forms: no session"

# the sealed request, altered
c=${B_R:40:1}
if [[ $c == A ]]; then d=B; else d=A; fi
ALTERED=${B_R:0:40}$d${B_R:41}
bhttp GET "/login?r=$ALTERED"
expect_error_page 400 "GET /login with a sealed request altered by one character"
bhttp POST /login "${FORM[@]}" --data-urlencode "csrf=$B_CSRF" --data-urlencode "r=$ALTERED" \
  --data-urlencode "login=hanako" --data-urlencode "password=$PW"
expect_error_page 400 "POST /login with an altered sealed request"
assert_eq "" "$(jar_get renkei_sid)" "an altered sealed request: no session"
bhttp GET "/login?r=${B_R:0:100}"
expect_error_page 400 "a truncated sealed request"
bhttp GET "/consent?r=$(printf 'A%.0s' {1..7000})"
expect_error_page 400 "a 7000-character sealed request"
bhttp POST /login "${FORM[@]}" --data-urlencode "csrf=$B_CSRF" --data-urlencode "r=$B_R" --data-urlencode "r=$B_R" \
  --data-urlencode "login=hanako" --data-urlencode "password=$PW"
expect_error_page 400 "r repeated"
browser hanako
bhttp GET "/consent?r=$ALTERED"
expect_error_page 400 "GET /consent with an altered sealed request"
issued
assert_eq "$before" "$ISSUED" "malformed and altered requests: nothing issued"
# a sealed request is bound to nothing the attacker can change: the
# authorization request inside it is the client's, whoever presents it
bhttp GET "/login?r=$B_R"
assert_status 200 "the genuine sealed request still opens the sign-in page"

# ------------------------------------------------------- token exchange

browser hanako
flow_to_code "$X_ID" "$RUX" "openid profile ngsi.read" hanako "$PW"
redeem_ok "$X_ID" "$X_SECRET" "$CODE" "$VERIFIER" "$RUX"
X_AT=$AT
exchange() {
  ohttp POST /oauth2/token "${FORM[@]}" -u "$X_ID:$X_SECRET" \
    --data-urlencode "grant_type=urn:ietf:params:oauth:grant-type:token-exchange" \
    --data-urlencode "subject_token_type=urn:ietf:params:oauth:token-type:access_token" "$@"
}
exchange --data-urlencode "subject_token=$X_AT" --data-urlencode "resource=$API_K" --data-urlencode "scope=ngsi.read"
assert_status 200 "a genuine exchange works (the set-up is right)"
EX_AT=$(jq -r .access_token <<<"$HTTP_BODY")
assert_jq ".aud == \"$API_K\" and .act.sub == \"$X_ID\" and .scope == \"ngsi.read\"" "$(jwt_json "$EX_AT" 2)" \
  "the exchanged token: aud the resource, act the service"
assert_ne "$(jwt_json "$X_AT" 2 | jq -r .sub)" "$(jwt_json "$EX_AT" 2 | jq -r .sub)" \
  "the exchanged token's sub is pairwise for the resource"
userinfo "$EX_AT"
assert_status 401 "an exchanged token (another audience) at userinfo: 401"
issued
before=$ISSUED
exchange --data-urlencode "subject_token=$GOOD_AT" --data-urlencode "resource=$API_K"
expect_oauth_error 400 invalid_grant "exchange: the subject token of another client"
get_token "$X_ID" "$X_SECRET" --data-urlencode "scope=ngsi.read"
userinfo "$TOKEN"
assert_status 401 "a client's own (non-resident) token at userinfo: 401"
exchange --data-urlencode "subject_token=$TOKEN" --data-urlencode "resource=$API_K"
expect_oauth_error 400 invalid_grant "exchange: the service's own (non-resident) token as subject"
exchange --data-urlencode "subject_token=$X_AT" --data-urlencode "resource=https://api.evil.example"
expect_oauth_error 400 invalid_target "exchange: a resource not among the service's audiences"
exchange --data-urlencode "subject_token=$X_AT" --data-urlencode "resource=$API_X"
expect_oauth_error 400 invalid_target "exchange: another client's audience"
exchange --data-urlencode "subject_token=$X_AT"
expect_oauth_error 400 invalid_target "exchange: no resource"
exchange --data-urlencode "subject_token=$X_AT" --data-urlencode "resource=$API_K" --data-urlencode "scope=ngsi.read ngsi.write"
expect_oauth_error 400 invalid_scope "exchange: a scope wider than the subject token's"
exchange --data-urlencode "subject_token=$X_AT" --data-urlencode "resource=$API_K" --data-urlencode "scope=admin"
expect_oauth_error 400 invalid_scope "exchange: admin scope"
exchange --data-urlencode "subject_token=$GOOD_IDT" --data-urlencode "resource=$API_K"
expect_oauth_error 400 invalid_grant "exchange: an ID token as subject"
# RFC 9700 §4.14: an exchanged token exchanged again would renew a
# resident's access forever without their app
exchange --data-urlencode "subject_token=$EX_AT" --data-urlencode "resource=$API_K"
expect_oauth_error 400 invalid_grant "exchange: an exchanged token as subject (no chains)"
exchange --data-urlencode "subject_token=$X_AT" --data-urlencode "resource=$API_K" \
  --data-urlencode "actor_token=$TOKEN" --data-urlencode "actor_token_type=urn:ietf:params:oauth:token-type:access_token"
expect_oauth_error 400 invalid_request "exchange: an actor token"
exchange --data-urlencode "subject_token=$X_AT" --data-urlencode "resource=$API_K" \
  --data-urlencode "requested_token_type=urn:ietf:params:oauth:token-type:refresh_token"
expect_oauth_error 400 invalid_request "exchange: asking for a refresh token"
ohttp POST /oauth2/token "${FORM[@]}" -u "$A_ID:$A_SECRET" \
  --data-urlencode "grant_type=urn:ietf:params:oauth:grant-type:token-exchange" \
  --data-urlencode "subject_token_type=urn:ietf:params:oauth:token-type:access_token" \
  --data-urlencode "subject_token=$GOOD_AT" --data-urlencode "resource=$API_X"
expect_oauth_error 400 unauthorized_client "exchange by a client without the grant"
issued
assert_eq "$before" "$ISSUED" "refused exchanges: no token.exchange entry, nothing issued"

# ---------------------------------- consent withdrawn before redemption

browser hanako
flow_to_code "$A_ID" "$RU" "openid profile offline_access" hanako "$PW"
LATE_CODE=$CODE LATE_V=$VERIFIER
bhttp GET /account
bhttp POST /account/revoke "${FORM[@]}" --data-urlencode "csrf=$(form_value csrf)" --data-urlencode "grant_id=$GRANT_A"
assert_status 303 "hanako revokes the app"
issued
before=$ISSUED
redeem "$A_ID" "$A_SECRET" "$LATE_CODE" "$LATE_V" "$RU"
expect_oauth_error 400 invalid_grant "a code whose consent was withdrawn before redemption"
issued
assert_eq "$before" "$ISSUED" "withdrawn consent: nothing issued"
userinfo "$GOOD_AT"
assert_status 401 "withdrawn consent: the app's earlier token is refused"

# ---------------------------------------------------- empty parameters

# RFC 6749 §3.1: "Parameters sent without a value MUST be treated as if they
# were omitted from the request."
browser hanako
issued
before=$ISSUED
authorize "$A_ID" "$RU" "openid" "response_type="
expect_redirect_error "$RU" invalid_request "an empty response_type is a missing one" # hub bug
issued
assert_eq "$before" "$ISSUED" "an empty response_type: nothing issued"
flow_to_code "$A_ID" "$RU" "openid" hanako "$PW" "state="
assert_no_match '[?&]state=' "$LOCATION" "an empty state is not echoed (it was not sent)" # hub bug

# ------------------------------------------------------------- the end

assert_unseen "no common ID in any answer or token" "$RID_H" "$RID_I"
