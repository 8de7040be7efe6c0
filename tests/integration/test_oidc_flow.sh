#!/usr/bin/env bash
# The OpenID Connect code flow as a demanding relying party sees it, through
# the hub's real pages with a cookie jar per browser: discovery; sign-in and
# consent; the tokens (RFC 9068 access token, ID token with nonce, auth_time,
# amr, acr, sid and an at_hash checked with openssl; signatures checked
# against the JWKS); pairwise subjects that never reveal the resident's
# common ID; single sign-on; consent per scope, asked again only for a new
# scope or with prompt=consent; prompt=login, max_age, login_hint,
# ui_locales and Accept-Language; the pages' security headers and cookies;
# session fixation; the account page and revoking an app there; disabling a
# resident; RP-initiated logout; sign-in throttling through the page; and
# row-level security of the new tables.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/oidc_lib.sh"

RUN_TIMEOUT=20
az_setup

PW_H='correct horse battery'
PW_J='jiro no himitsu 2'
PW_S='saburo no pass 3'
PW_M='mallory wa warui'
resident_add takamatsu hanako "高松 花子" hanako@example.jp "$PW_H"
RID_H=$RID
resident_add kanonji jiro "観音寺 次郎" jiro@example.jp "$PW_J"
RID_J=$RID
resident_add takamatsu saburo "高松 三郎" saburo@example.jp "$PW_S"
RID_S=$RID
resident_add takamatsu mallory "悪井 真理" mallory@example.jp "$PW_M"
RID_M=$RID

RU_A=https://app.takamatsu.example/cb
RU_A2=https://app.takamatsu.example/cb2
RU_B=https://portal.kanonji.example/cb
BYE_A=https://app.takamatsu.example/bye
client_add --tenant takamatsu --name "まちアプリ" --grant authorization_code,refresh_token \
  --scope "openid profile email offline_access ngsi.read" --redirect-uri "$RU_A" \
  --post-logout-redirect-uri "$BYE_A"
A_ID=$CID A_SECRET=$CSECRET
client_add --tenant takamatsu --name "まちアプリ2" --grant authorization_code --scope "openid profile" \
  --redirect-uri "$RU_A2"
A2_ID=$CID A2_SECRET=$CSECRET
client_add --tenant takamatsu --name "まちアプリRS" --grant authorization_code --scope "openid profile" \
  --redirect-uri https://rs.takamatsu.example/cb --token-alg RS256
R_ID=$CID R_SECRET=$CSECRET
client_add --tenant kanonji --name "観音寺ポータル" --grant authorization_code --scope "openid profile email" \
  --redirect-uri "$RU_B" --public
B_ID=$CID
[[ -z $CSECRET ]] || fail "a public client got a secret"

oidc_hub_start

# ------------------------------------------------------------- discovery

ohttp GET /.well-known/openid-configuration
assert_status 200 "discovery"
assert_json ".authorization_endpoint == \"$HUB_URL/oauth2/authorize\" and .userinfo_endpoint == \"$HUB_URL/oauth2/userinfo\" and .end_session_endpoint == \"$HUB_URL/logout\"" \
  "discovery: authorization, userinfo and end-session endpoints"
assert_json '.response_types_supported == ["code"] and .response_modes_supported == ["query"] and .code_challenge_methods_supported == ["S256"]' \
  "discovery: code, query, S256 only"
assert_json '.subject_types_supported == ["pairwise"] and (.id_token_signing_alg_values_supported | sort) == ["ES256", "RS256"]' \
  "discovery: pairwise subjects, ES256 and RS256 ID tokens"
assert_json '.authorization_response_iss_parameter_supported == true and .request_parameter_supported == false and .request_uri_parameter_supported == false' \
  "discovery: iss in responses, no request objects"
assert_json '(.grant_types_supported | index("authorization_code")) != null and (.grant_types_supported | index("refresh_token")) != null and (.grant_types_supported | index("urn:ietf:params:oauth:grant-type:token-exchange")) != null' \
  "discovery: code, refresh and token-exchange grants"
assert_json '(.token_endpoint_auth_methods_supported | index("none")) != null' "discovery: public clients (auth method none)"
assert_json '[.. | strings | select(test("^(none|HS256|plain)$"; "i") and . != "none")] | length == 0' \
  "discovery: no HS256, no plain"
ohttp GET /oauth2/jwks
JWKS=$HTTP_BODY

# ------------------------------------------- the happy path, page by page

browser hanako
authorize "$A_ID" "$RU_A" "openid profile email offline_access"
assert_status 303 "no session: 303"
assert_match '^/login\?r=[A-Za-z0-9_-]+$' "$LOCATION" "no session: to /login with the sealed request"
assert_no_match 'renkei_sid' "$(set_cookies)" "authorize sets no session cookie"
bhttp GET "$LOCATION"
assert_status 200 "the sign-in page"
page_headers_ok "sign-in page"
assert_match '<html lang="ja">' "$HTTP_BODY" "the sign-in page is in Japanese by default"
assert_match 'サインイン' "$HTTP_BODY" "the sign-in page says サインイン"
assert_match 'まちアプリ' "$HTTP_BODY" "the sign-in page names the app"
assert_match '高松市' "$HTTP_BODY" "the sign-in page names the app's town"
assert_match 'name="password"' "$HTTP_BODY" "the sign-in page has a password field"
csrf_cookie=$(set_cookies | grep -i 'renkei_csrf=' || true)
assert_match 'HttpOnly' "$csrf_cookie" "CSRF cookie: HttpOnly"
assert_match 'SameSite=Lax' "$csrf_cookie" "CSRF cookie: SameSite=Lax"
assert_no_match 'Secure' "$csrf_cookie" "CSRF cookie: no Secure on an http issuer"

# session fixation, 1: a value planted before sign-in is not taken over
PLANTED=$(openssl rand 32 | b64url_encode)
jar_set renkei_sid "$PLANTED"
T0=$(date +%s)
login_post hanako "$PW_H"
T1=$(date +%s)
assert_status 303 "sign-in: 303"
assert_match '^/consent\?r=[A-Za-z0-9_-]+$' "$LOCATION" "sign-in: on to the consent page"
CONSENT_LOC=$LOCATION
sid_cookie=$(set_cookies | grep -i 'renkei_sid=' || true)
assert_match '^Set-Cookie: renkei_sid=[A-Za-z0-9_-]{43};' "$sid_cookie" "sign-in sets renkei_sid (no __Host- on http)"
assert_match 'HttpOnly' "$sid_cookie" "session cookie: HttpOnly"
assert_match 'SameSite=Lax' "$sid_cookie" "session cookie: SameSite=Lax"
assert_match 'Path=/' "$sid_cookie" "session cookie: Path=/"
assert_no_match 'Secure' "$sid_cookie" "session cookie: no Secure on an http issuer"
assert_no_match 'Max-Age|Expires' "$sid_cookie" "session cookie: a session cookie (no Max-Age)"
SID_H=$(jar_get renkei_sid)
assert_ne "$PLANTED" "$SID_H" "session fixation: a new session value after sign-in"
browser planted
jar_set renkei_sid "$PLANTED"
bhttp GET /account
assert_status 303 "session fixation: the planted value is no session"
assert_eq "/login" "$LOCATION" "session fixation: the planted value leads to /login"
browser hanako

bhttp GET "$CONSENT_LOC"
assert_status 200 "the consent page"
page_headers_ok "consent page"
assert_match '<html lang="ja">' "$HTTP_BODY" "the consent page is in Japanese"
assert_match 'まちアプリ' "$HTTP_BODY" "the consent page names the app"
assert_eq "openid profile email offline_access" "$(form_scopes | tr '\n' ' ' | sed 's/ $//')" \
  "the consent page offers each requested scope"
assert_match '<input type="hidden" name="scope" value="openid">' "$HTTP_BODY" "openid cannot be unticked"
assert_match 'name="decision" value="allow"' "$HTTP_BODY" "an allow button"
assert_match 'name="decision" value="deny"' "$HTTP_BODY" "a deny button"
consent_post allow
expect_code "$RU_A" "consent given"
assert_eq "$STATE" "$RSTATE" "the state comes back"
assert_eq "no-store" "$(hdr Cache-Control)" "the redirect with the code is not cached"
assert_eq "no-referrer" "$(hdr Referrer-Policy)" "the redirect with the code sends no Referer"
assert_eq "$HUB_URL" "$RISS" "iss is the issuer (RFC 9207)"
assert_match '^[A-Za-z0-9_-]{43}$' "$CODE" "the code is 43 base64url characters"
GRANT_A=$(dbval "SELECT id FROM renkei.grants WHERE resident_id = '$RID_H' AND client_id = '$A_ID' AND revoked_at IS NULL")
assert_match '^g_' "$GRANT_A" "the consent is a grant in the database"
assert_eq "email offline_access openid profile" "$(dbval "SELECT string_agg(scope, ' ' ORDER BY scope) FROM renkei.consents WHERE grant_id = '$GRANT_A'")" \
  "the grant holds the four scopes"
assert_eq "1" "$(dbval "SELECT count(*) FROM renkei.auth_codes WHERE client_id = '$A_ID' AND used_at IS NULL AND expires_at <= now() + interval '60 s'")" \
  "one unused code, 60 s at most"

# ------------------------------------------------------------- the tokens

redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU_A"
assert_eq "no-store" "$(hdr Cache-Control)" "token response: no-store"
assert_json '.token_type == "Bearer" and .scope == "openid profile email offline_access" and (.expires_in | type) == "number"' \
  "token response: Bearer, the consented scope, expires_in"
assert_json '(.refresh_token | type) == "string" and (.id_token | type) == "string"' "token response: refresh and ID tokens"
AT_A=$AT IDT_A=$IDT RT_A=$RT
hdr=$(jwt_json "$AT_A" 1)
cl=$(jwt_json "$AT_A" 2)
assert_jq '.typ == "at+jwt" and .alg == "ES256" and (keys == ["alg", "kid", "typ"])' "$hdr" "access token header: typ at+jwt, ES256"
check "access token: the signature verifies with the JWKS (openssl)" verify_jwt_signature "$AT_A" "$JWKS"
assert_jq ".iss == \"$HUB_URL\" and .aud == \"$HUB_URL\" and .client_id == \"$A_ID\" and .tenant == \"takamatsu\" and .scope == \"openid profile email offline_access\"" \
  "$cl" "access token: iss, aud, client_id, tenant, scope"
assert_jq ".grant == \"$GRANT_A\"" "$cl" "access token: the grant it lives by"
assert_jq '.exp > .iat and (.jti | length) >= 16' "$cl" "access token: exp, iat, jti"
SUB_A=$(jq -r .sub <<<"$cl")
assert_match '^[A-Za-z0-9_-]{43}$' "$SUB_A" "access token: sub is an opaque pairwise identifier"
assert_ne "$RID_H" "$SUB_A" "access token: sub is not the common ID"
assert_no_match "$RID_H|hanako|example.jp" "$cl" "access token: neither the common ID nor the login nor the e-mail"

hdr=$(jwt_json "$IDT_A" 1)
idc=$(jwt_json "$IDT_A" 2)
assert_jq '.typ == "JWT" and .alg == "ES256"' "$hdr" "ID token header: typ JWT, ES256"
check "ID token: the signature verifies with the JWKS (openssl)" verify_jwt_signature "$IDT_A" "$JWKS"
assert_jq ".iss == \"$HUB_URL\" and .aud == \"$A_ID\" and .azp == \"$A_ID\" and .sub == \"$SUB_A\"" "$idc" \
  "ID token: iss, aud and azp the client, sub as in the access token"
assert_jq ".nonce == \"$NONCE\"" "$idc" "ID token: the nonce of the request"
assert_jq ".auth_time >= $T0 - 1 and .auth_time <= $T1 + 1" "$idc" "ID token: auth_time is the time of sign-in"
assert_jq '.amr == ["pwd"] and .acr == "1"' "$idc" "ID token: amr [pwd], acr 1"
SID_DB=$(dbval "SELECT sid FROM renkei.sessions WHERE resident_id = '$RID_H' AND ended_at IS NULL ORDER BY created_at DESC LIMIT 1")
assert_jq ".sid == \"$SID_DB\"" "$idc" "ID token: sid is the hub session's"
assert_jq ".at_hash == \"$(at_hash "$AT_A")\"" "$idc" "ID token: at_hash = left half of SHA-256 of the access token (openssl)"
assert_jq '.exp > .iat and .iat >= .auth_time' "$idc" "ID token: exp, iat"
assert_no_match "$RID_H|hanako|example.jp" "$idc" "ID token: neither the common ID nor the login nor the e-mail"

userinfo "$AT_A"
assert_status 200 "userinfo"
assert_json ".sub == \"$SUB_A\" and .name == \"高松 花子\" and .preferred_username == \"hanako\" and .email == \"hanako@example.jp\" and .email_verified == false" \
  "userinfo: sub, name, preferred_username, email, email_verified"
ohttp POST /oauth2/userinfo "${FORM[@]}" --data-urlencode "access_token=$AT_A"
assert_status 200 "userinfo by POST with the token in the form"
assert_json ".sub == \"$SUB_A\"" "userinfo by POST: the same sub"
ohttp GET /account/v1/access-log -H "Authorization: Bearer $AT_A"
assert_status 403 "the resident's access log knows the token, but it lacks scope account.read"

AUTH_TIME=$(jq .auth_time <<<"$idc")
refresh "$A_ID" "$A_SECRET" "$RT_A"
assert_status 200 "refresh"
assert_ne "$RT_A" "$RT" "refresh rotates the refresh token"
assert_json '.scope == "openid profile email offline_access"' "refresh: the same scope"
assert_jq ".sub == \"$SUB_A\" and .sid == \"$SID_DB\" and .aud == \"$A_ID\" and .iss == \"$HUB_URL\" and .auth_time == $AUTH_TIME and (has(\"nonce\") | not) and .at_hash == \"$(at_hash "$AT")\"" \
  "$(jwt_json "$IDT" 2)" "refreshed ID token: same iss, sub, aud, sid, auth_time; no nonce; its own at_hash (OIDC Core 12.2)"
refresh "$A_ID" "$A_SECRET" "$RT" --data-urlencode "scope=openid profile"
assert_json '.scope == "openid profile"' "refresh may narrow the scope"
assert_jq '.scope == "openid profile"' "$(jwt_json "$AT" 2)" "the narrowed access token"
userinfo "$AT"
assert_json '(has("email") | not) and .name == "高松 花子"' "the narrowed token gets no email at userinfo"
refresh "$A_ID" "$A_SECRET" "$RT"
assert_json '.scope == "openid profile email offline_access"' "the next refresh has the original scope again (RFC 6749 §6)"
RT_A=$RT AT_A=$AT

# introspection and revocation of the resident's tokens
introspect "$A_ID" "$A_SECRET" "$RT_A"
seen_log
assert_json ".active == true and .token_type == \"refresh_token\" and .client_id == \"$A_ID\"" "introspect: the refresh token is active"
introspect "$A2_ID" "$A2_SECRET" "$RT_A"
seen_log
assert_eq '{"active":false}' "$(jq -c . <<<"$HTTP_BODY")" "introspect: another client learns nothing of the refresh token"
# a throw-away family: its refresh token revoked, its access token dies with it
authorize "$A_ID" "$RU_A" "openid profile"
expect_code "$RU_A" "a second family"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU_A"
revoke "$A_ID" "$A_SECRET" "$RT"
assert_status 200 "revoke a refresh token"
refresh "$A_ID" "$A_SECRET" "$RT"
expect_oauth_error 400 invalid_grant "a revoked refresh token"
userinfo "$AT"
assert_status 401 "revoking the refresh token revokes the access token issued with it"
userinfo "$AT_A"
assert_status 200 "another family lives on"
authorize "$A_ID" "$RU_A" "openid profile"
expect_code "$RU_A" "a third family"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU_A"
revoke "$A_ID" "$A_SECRET" "$AT"
assert_status 200 "revoke an access token"
userinfo "$AT"
assert_status 401 "a revoked access token is refused at userinfo"

# without openid: no ID token, and userinfo says insufficient_scope
flow_to_code "$A_ID" "$RU_A" "profile ngsi.read" hanako "$PW_H"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU_A"
assert_json '(has("id_token") | not) and .scope == "profile ngsi.read"' "no openid: no ID token"
userinfo "$AT"
assert_status 403 "no openid: userinfo 403"
assert_match 'insufficient_scope' "$(hdr WWW-Authenticate)" "no openid: insufficient_scope"

# the authorization request as a form POST
ohttp POST /oauth2/authorize -b "$JAR" -c "$JAR" "${FORM[@]}" --data "$(authz_query response_type=code "client_id=$A_ID" \
  "redirect_uri=$RU_A" scope=openid state=posted "code_challenge=$CHALLENGE" code_challenge_method=S256 && printf '%s' "$AUTHZ_QUERY")"
_hdr Location
LOCATION=$HDR
expect_code "$RU_A" "POST /oauth2/authorize"
assert_eq posted "$RSTATE" "POST /oauth2/authorize: the state"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU_A"

# ---------------------------------------- single sign-on and pairwise subjects

flow_to_code "$A2_ID" "$RU_A2" "openid profile" hanako "$PW_H"
assert_eq 0 "$SAW_LOGIN" "SSO: a second app of the town needs no sign-in"
assert_eq 1 "$SAW_CONSENT" "SSO: but its own consent"
redeem_ok "$A2_ID" "$A2_SECRET" "$CODE" "$VERIFIER" "$RU_A2"
assert_eq "$SUB_A" "$(jwt_json "$AT" 2 | jq -r .sub)" "pairwise: the same redirect host, the same sub"
assert_jq ".sid == \"$SID_DB\"" "$(jwt_json "$IDT" 2)" "SSO: the ID token names the same session"

# an RS256 client, and a state with characters that need encoding (any
# VSCHAR, RFC 6749 Appendix A.5)
flow_to_code "$R_ID" https://rs.takamatsu.example/cb "openid profile" hanako "$PW_H" 'state=a b&c=d?e#f+g/h%i"j~'
assert_eq 'a b&c=d?e#f+g/h%i"j~' "$RSTATE" "a state with reserved characters comes back intact"
redeem_ok "$R_ID" "$R_SECRET" "$CODE" "$VERIFIER" https://rs.takamatsu.example/cb
assert_jq '.alg == "RS256" and .typ == "JWT"' "$(jwt_json "$IDT" 1)" "RS256 client: the ID token is RS256"
assert_jq '.alg == "RS256" and .typ == "at+jwt"' "$(jwt_json "$AT" 1)" "RS256 client: the access token is RS256"
check "RS256 ID token: the signature verifies with the JWKS (openssl)" verify_jwt_signature "$IDT" "$JWKS"
check "RS256 access token: the signature verifies with the JWKS (openssl)" verify_jwt_signature "$AT" "$JWKS"
assert_jq ".at_hash == \"$(at_hash "$AT")\" and .nonce == \"$NONCE\" and .aud == \"$R_ID\"" "$(jwt_json "$IDT" 2)" \
  "RS256 ID token: at_hash (SHA-256), nonce, aud"
assert_ne "$SUB_A" "$(jwt_json "$IDT" 2 | jq -r .sub)" "pairwise: the RS256 client's host, another sub"

# consent per scope: untick email for the kanonji portal (a public client)
authorize "$B_ID" "$RU_B" "openid profile email"
assert_match '^/consent\?' "$LOCATION" "SSO: another town's app, straight to consent"
bhttp GET "$LOCATION"
assert_match '観音寺ポータル' "$HTTP_BODY" "the consent page names the portal"
assert_match '観音寺市' "$HTTP_BODY" "the consent page names the portal's town"
consent_post allow openid profile
expect_code "$RU_B" "consent without email"
V_B=$VERIFIER
redeem_ok "$B_ID" "" "$CODE" "$V_B" "$RU_B"
assert_json '.scope == "openid profile" and (has("refresh_token") | not)' "public client: scope without email, no refresh token"
AT_B=$AT
SUB_B=$(jwt_json "$AT_B" 2 | jq -r .sub)
assert_ne "$SUB_A" "$SUB_B" "pairwise: another redirect host, another sub"
assert_jq '.scope == "openid profile"' "$(jwt_json "$AT_B" 2)" "access token scope lacks email"
assert_jq "has(\"email\") | not" "$(jwt_json "$IDT" 2)" "ID token has no email"
assert_jq ".sub == \"$SUB_B\"" "$(jwt_json "$IDT" 2)" "ID token: the portal's sub"
userinfo "$AT_B"
assert_status 200 "userinfo for the portal"
assert_json "(has(\"email\") | not) and .name == \"高松 花子\" and .sub == \"$SUB_B\"" "userinfo: no email, the name"
ohttp GET /account/v1/access-log -H "Authorization: Bearer $AT_B"
assert_status 403 "the access log needs scope account.read"
GRANT_B=$(dbval "SELECT id FROM renkei.grants WHERE resident_id = '$RID_H' AND client_id = '$B_ID' AND revoked_at IS NULL")
assert_eq "openid profile" "$(dbval "SELECT string_agg(scope, ' ' ORDER BY scope) FROM renkei.consents WHERE grant_id = '$GRANT_B'")" \
  "the portal's grant holds openid and profile only"

authorize "$B_ID" "$RU_B" "openid profile"
expect_code "$RU_B" "the consented scopes again: no consent page"
authorize "$B_ID" "$RU_B" "openid profile email"
assert_match '^/consent\?' "$LOCATION" "a new scope (email): the consent page again"
bhttp GET "$LOCATION"
assert_match 'value="email"' "$HTTP_BODY" "the consent page asks for email"
consent_post allow
expect_code "$RU_B" "email allowed now"
redeem_ok "$B_ID" "" "$CODE" "$VERIFIER" "$RU_B"
assert_json '.scope == "openid profile email"' "now the scope has email"
userinfo "$AT"
assert_json '.email == "hanako@example.jp"' "and userinfo the e-mail"
AT_B_EMAIL=$AT
authorize "$B_ID" "$RU_B" "openid profile email" prompt=consent
assert_match '^/consent\?' "$LOCATION" "prompt=consent: the consent page although consented"
bhttp GET "$LOCATION"
consent_post allow openid profile
expect_code "$RU_B" "email withdrawn at the consent page"
assert_eq "openid profile" "$(dbval "SELECT string_agg(scope, ' ' ORDER BY scope) FROM renkei.consents WHERE grant_id = '$GRANT_B'")" \
  "unticking email takes it out of the consent"
userinfo "$AT_B_EMAIL"
if [[ $HTTP_STATUS == 200 ]]; then
  assert_json 'has("email") | not' "the token from before the withdrawal gets no e-mail any more"
else
  assert_status 401 "the token from before the withdrawal is refused"
fi
authorize "$B_ID" "$RU_B" "openid profile" prompt=consent
bhttp GET "$LOCATION"
consent_post deny
expect_redirect_error "$RU_B" access_denied "deny at the consent page"
assert_eq "$STATE" "$(qparam "$LOCATION" state)" "deny: the state comes back"

# ------------------------------------------- prompt, max_age, login_hint

authorize "$A_ID" "$RU_A" "openid profile" prompt=login
assert_match '^/login\?' "$LOCATION" "prompt=login: the sign-in form although signed in"
bhttp GET "$LOCATION"
old_value=$(jar_get renkei_sid)
login_post hanako "$PW_H"
expect_code "$RU_A" "prompt=login, signed in again (consented: no consent page)"
PL_CODE=$CODE PL_V=$VERIFIER
# OIDC Core 3.1.2.1 (errata set 2): "max_age=0 is equivalent to prompt=login",
# even right after a sign-in (the same second)
authorize "$A_ID" "$RU_A" "openid profile" max_age=0
assert_status 303 "max_age=0: 303"
assert_match '^/login\?' "$LOCATION" "max_age=0 right after a sign-in: the sign-in form (OIDC Core 3.1.2.1)"
assert_ne "$old_value" "$(jar_get renkei_sid)" "signing in again gives a new session value"
redeem_ok "$A_ID" "$A_SECRET" "$PL_CODE" "$PL_V" "$RU_A"
SID2=$(jwt_json "$IDT" 2 | jq -r .sid)
assert_ne "$SID_DB" "$SID2" "prompt=login: the ID token names the new session"
sleep 1.1
authorize "$A_ID" "$RU_A" "openid profile" max_age=0
assert_match '^/login\?' "$LOCATION" "max_age=0 a second later: the sign-in form"
authorize "$A_ID" "$RU_A" "openid profile" max_age=3600
expect_code "$RU_A" "max_age=3600: no sign-in"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU_A"
assert_jq '(.auth_time | type) == "number"' "$(jwt_json "$IDT" 2)" "max_age: the ID token has auth_time"

browser hint
authorize "$A_ID" "$RU_A" "openid" login_hint=hanako
bhttp GET "$LOCATION"
assert_match 'name="login" value="hanako"' "$HTTP_BODY" "login_hint prefills the login field"

# ------------------------------------------------------------- languages

browser lang
authorize "$A_ID" "$RU_A" "openid" ui_locales="en ja"
bhttp GET "$LOCATION"
assert_match '<html lang="en">' "$HTTP_BODY" "ui_locales=en: the sign-in page in English"
assert_match 'Sign in' "$HTTP_BODY" "ui_locales=en: it says Sign in"
authorize "$A_ID" "$RU_A" "openid"
login_loc=$LOCATION
bhttp GET "$login_loc" -H 'Accept-Language: en-GB,en;q=0.8'
assert_match '<html lang="en">' "$HTTP_BODY" "Accept-Language: en: the sign-in page in English"
assert_match 'Password' "$HTTP_BODY" "Accept-Language: en: it says Password"
bhttp GET "$login_loc" -H 'Accept-Language: ja;q=0.1, en;q=0.9'
assert_match '<html lang="en">' "$HTTP_BODY" "Accept-Language: q-values count (en 0.9 over ja 0.1)"
bhttp GET "$login_loc" -H 'Accept-Language: fr, de;q=0.5'
assert_match '<html lang="ja">' "$HTTP_BODY" "an unsupported language: Japanese"
bhttp GET /oauth2/authorize?client_id=nobody -H 'Accept-Language: en'
expect_error_page 400 "unknown client (English)"
page_headers_ok "error page"
assert_match '<html lang="en">' "$HTTP_BODY" "the error page in English"

# ---------------------------------------------- session fixation, 2

# mallory signs in and plants her (valid) session in hanako's browser; when
# hanako signs in (prompt=login), mallory's value is ended, not upgraded
browser mallory
bhttp GET /login
page_headers_ok "sign-in page without a request"
login_post mallory "$PW_M"
assert_status 303 "sign-in without a request: 303"
assert_eq "/account" "$LOCATION" "sign-in without a request: to /account"
MAL_SID=$(jar_get renkei_sid)
bhttp GET /account
assert_status 200 "mallory's account page"
assert_match '悪井 真理' "$HTTP_BODY" "mallory's account page names her"
browser victim
jar_set renkei_sid "$MAL_SID"
authorize "$A_ID" "$RU_A" "openid profile" prompt=login
bhttp GET "$LOCATION"
login_post hanako "$PW_H"
expect_code "$RU_A" "hanako signs in over a planted session"
assert_ne "$MAL_SID" "$(jar_get renkei_sid)" "the planted value is replaced"
bhttp GET /account
assert_match '高松 花子' "$HTTP_BODY" "the victim's browser is hanako's"
browser mallory
bhttp GET /account
assert_status 303 "session fixation: the planted value no longer works"
assert_eq "/login" "$LOCATION" "session fixation: mallory is sent to /login"

# ----------------------------------------------- the account page, revoke

browser hanako
flow_to_code "$A_ID" "$RU_A" "openid profile email offline_access" hanako "$PW_H"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU_A"
AT_A=$AT RT_A=$RT
bhttp GET /account
assert_status 200 "the account page"
page_headers_ok "account page"
assert_match '高松 花子' "$HTTP_BODY" "the account page names the resident"
assert_match 'まちアプリ' "$HTTP_BODY" "the account page lists the app"
assert_match '観音寺ポータル' "$HTTP_BODY" "the account page lists the portal"
assert_match 'お名前' "$HTTP_BODY" "the account page lists the scope titles (profile)"
assert_match 'メールアドレス' "$HTTP_BODY" "the account page lists the scope titles (email)"
assert_match "name=\"grant_id\" value=\"$GRANT_A\"" "$HTTP_BODY" "a revoke form for the app"
assert_match 'action="/account/revoke"' "$HTTP_BODY" "the revoke form posts to /account/revoke"
assert_match 'action="/logout"' "$HTTP_BODY" "a sign-out form"
CSRF_H=$(form_value csrf)
ohttp GET /account/v1/access-log -H "Authorization: Bearer $AT_A"
assert_status 403 "access log before revoking: a valid token (without account.read)"
bhttp POST /account/revoke "${FORM[@]}" --data-urlencode "csrf=$CSRF_H" --data-urlencode "grant_id=g_nosuchgrantnosuchgrant"
assert_status 404 "revoking an unknown grant: 404"
bhttp POST /account/revoke "${FORM[@]}" --data-urlencode "csrf=$CSRF_H" --data-urlencode "grant_id=$GRANT_A"
assert_status 303 "revoke: 303"
assert_eq "/account?notice=revoked" "$LOCATION" "revoke: back to the account page with a notice"
assert_ne "" "$(dbval "SELECT revoked_at FROM renkei.grants WHERE id = '$GRANT_A'")" "the grant is revoked in the database"
userinfo "$AT_A"
assert_status 401 "after revoking: the access token is refused at userinfo"
assert_match 'invalid_token' "$(hdr WWW-Authenticate)" "userinfo: WWW-Authenticate invalid_token"
ohttp GET /account/v1/access-log -H "Authorization: Bearer $AT_A"
assert_status 401 "after revoking: the access token is refused at /account/v1/access-log"
refresh "$A_ID" "$A_SECRET" "$RT_A"
expect_oauth_error 400 invalid_grant "after revoking: the refresh token is refused"
bhttp GET "/account?notice=revoked"
assert_no_match "name=\"grant_id\" value=\"$GRANT_A\"" "$HTTP_BODY" "the app is gone from the account page"
assert_match '観音寺ポータル' "$HTTP_BODY" "the portal stays"
assert_match '取り消しました' "$HTTP_BODY" "the account page says the permission was withdrawn"
flow_to_code "$A_ID" "$RU_A" "openid profile" hanako "$PW_H"
assert_eq 1 "$SAW_CONSENT" "after revoking, the app must ask for consent again"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU_A"
assert_ne "$GRANT_A" "$(jwt_json "$AT" 2 | jq -r .grant)" "the new consent is a new grant"
userinfo "$AT_A"
assert_status 401 "a new consent does not bring the old token back"

audit=$(dbval "SELECT kind || ' ' || canonical FROM renkei.audit_entries WHERE kind IN ('consent.grant', 'consent.revoke') ORDER BY seq")
assert_match 'consent\.grant' "$audit" "audit: consent.grant entries"
assert_match "consent\\.revoke .*$GRANT_A" "$audit" "audit: consent.revoke of the grant"
assert_no_match "hanako|高松 花子|example\\.jp|$RID_H" "$audit" "audit: no login, name, e-mail or common ID"
assert_eq "0" "$(dbval "SELECT count(*) FROM renkei.audit_entries WHERE resident = '$RID_H'")" "audit: the resident is an opaque reference"

# ---------------------------------------------------- disabling a resident

browser jiro
flow_to_code "$A_ID" "$RU_A" "openid profile offline_access" jiro "$PW_J"
assert_eq 1 "$SAW_LOGIN" "jiro signs in"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU_A"
AT_J=$AT RT_J=$RT
userinfo "$AT_J"
assert_status 200 "jiro's token works"
GRANT_J=$(dbval "SELECT id FROM renkei.grants WHERE resident_id = '$RID_J' AND revoked_at IS NULL")
browser hanako
bhttp POST /account/revoke "${FORM[@]}" --data-urlencode "csrf=$CSRF_H" --data-urlencode "grant_id=$GRANT_J"
assert_status 404 "hanako revoking jiro's grant: 404"
assert_eq "" "$(dbval "SELECT revoked_at FROM renkei.grants WHERE id = '$GRANT_J'")" "jiro's grant stands"
browser jiro
renkei_cli resident disable jiro
userinfo_refused() { userinfo "$1"; [[ $HTTP_STATUS == 401 ]]; }
check "disabled: the access token is refused at userinfo" poll 10 userinfo_refused "$AT_J"
refresh "$A_ID" "$A_SECRET" "$RT_J"
expect_oauth_error 400 invalid_grant "disabled: the refresh token is refused"
bhttp GET /account
assert_status 303 "disabled: the session is over"
assert_eq "/login" "$LOCATION" "disabled: to /login"
authorize "$A_ID" "$RU_A" "openid"
assert_match '^/login\?' "$LOCATION" "disabled: authorize asks for a sign-in"
bhttp GET "$LOCATION"
login_post jiro "$PW_J"
assert_status 403 "disabled: signing in gives 403"
page_headers_ok "disabled sign-in page"
assert_no_match 'renkei_sid=[A-Za-z0-9_-]' "$(set_cookies)" "disabled: no session cookie"

# ------------------------------------------------------------- logout

browser logout
flow_to_code "$A_ID" "$RU_A" "openid" hanako "$PW_H"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU_A"
IDT_L=$IDT
SID_L=$(jwt_json "$IDT_L" 2 | jq -r .sid)
bhttp GET "/logout?post_logout_redirect_uri=$(urlenc https://evil.example/bye)&id_token_hint=$IDT_L&state=s1"
expect_error_page 400 "logout to an unregistered URI"
assert_eq "" "$(dbval "SELECT ended_at FROM renkei.sessions WHERE sid = '$SID_L'")" "the session lives on"
bhttp GET "/logout?post_logout_redirect_uri=$(urlenc "$BYE_A")&id_token_hint=$IDT_L&state=bye-state"
assert_status 303 "logout with id_token_hint: 303"
assert_eq "$BYE_A?state=bye-state" "$LOCATION" "logout: to the registered URI with the state"
assert_match 'renkei_sid=;.*Max-Age=0' "$(set_cookies)" "logout clears the session cookie"
assert_ne "" "$(dbval "SELECT ended_at FROM renkei.sessions WHERE sid = '$SID_L'")" "logout ends the session in the database"
authorize "$A_ID" "$RU_A" "openid"
assert_match '^/login\?' "$LOCATION" "after logout: sign in again"

browser logout2
flow_to_code "$A_ID" "$RU_A" "openid" hanako "$PW_H"
SID_L2=$(jar_get renkei_sid)
bhttp GET /logout
assert_status 200 "logout without a hint: a confirmation page"
page_headers_ok "logout confirmation page"
assert_match 'action="/logout"' "$HTTP_BODY" "the confirmation page posts to /logout"
assert_match 'name="decision" value="logout"' "$HTTP_BODY" "the confirmation page has a sign-out button"
bhttp GET /account
assert_status 200 "still signed in after the confirmation page"
bhttp GET /logout
bhttp POST /logout "${FORM[@]}" --data-urlencode "csrf=$(form_value csrf)" --data decision=logout
assert_status 200 "logout confirmed: the signed-out page"
page_headers_ok "signed-out page"
bhttp GET /account
assert_status 303 "after the confirmed logout: no session"
browser replay
jar_set renkei_sid "$SID_L2"
bhttp GET /account
assert_status 303 "the ended session value does not work any more"

# -------------------------------------------- throttling through the page

browser saburo
authorize "$A_ID" "$RU_A" "openid"
bhttp GET "$LOCATION"
for i in 1 2 3 4 5; do
  login_post saburo "wrong password $i"
  assert_status 401 "wrong password $i: 401"
  assert_match 'name="password"' "$HTTP_BODY" "wrong password $i: the form again"
done
login_post saburo "$PW_S"
assert_status 429 "after 5 wrong passwords even the right one: 429"
ra=$(hdr Retry-After)
assert_match '^[0-9]+$' "$ra" "429: Retry-After in seconds"
assert_ge "$ra" 60 "429: Retry-After at least a minute"
assert_lt "$ra" 901 "429: Retry-After at most 15 minutes"
page_headers_ok "throttled page"
assert_eq "" "$(jar_get renkei_sid)" "throttled: no session"
login_post saburo "wrong again"
assert_status 429 "throttled: a wrong password is 429 too"
login_post SABURO "$PW_S"
assert_status 429 "throttled: the login in capitals is the same login"
browser hanako2
flow_to_code "$A_ID" "$RU_A" "openid" hanako "$PW_H"
assert_eq 1 "$SAW_LOGIN" "another login from the same address signs in"

# ------------------------------------------------- row-level security

for t in sessions auth_codes refresh_tokens signin_failures; do
  assert_ge "$(dbval "SELECT count(*) FROM renkei.$t")" 1 "superuser: $t has rows"
  assert_eq "0" "$(svc_sql takamatsu "SELECT count(*) FROM renkei.$t")" "RLS: takamatsu sees no $t rows"
done
all_tk=$(dbval "SELECT count(*) FROM renkei.grants g WHERE g.tenant_id = 'takamatsu'")
assert_ge "$all_tk" 1 "takamatsu's clients have grants"
assert_eq "$all_tk" "$(svc_sql takamatsu "SELECT count(*) FROM renkei.grants")" "RLS: takamatsu sees its clients' grants"
assert_eq "0" "$(svc_sql takamatsu "SELECT count(*) FROM renkei.grants WHERE client_id = '$B_ID'")" \
  "RLS: takamatsu does not see the kanonji portal's grant"
assert_eq "$(dbval "SELECT count(*) FROM renkei.grants WHERE tenant_id = 'kanonji'")" \
  "$(svc_sql kanonji "SELECT count(*) FROM renkei.grants")" "RLS: kanonji sees its own clients' grants"
assert_eq "0" "$(svc_sql takamatsu "SELECT count(*) FROM renkei.consents c JOIN renkei.grants g ON g.id = c.grant_id WHERE g.tenant_id <> 'takamatsu'")" \
  "RLS: no consent of another town's client"
assert_eq "0" "$(svc_sql takamatsu "SELECT count(*) FROM renkei.residents WHERE tenant_id <> 'takamatsu'")" \
  "RLS: takamatsu sees only its own residents"
if svc_sql takamatsu "INSERT INTO renkei.grants (id, resident_id, client_id, tenant_id) VALUES ('g_forgedforgedforged1', '$RID_H', '$A_ID', 'takamatsu')" >/dev/null 2>&1; then
  fail "RLS: a town inserted a grant"
fi
ok "RLS: a town cannot insert a grant"

# ------------------------------------- the common ID never leaves the hub

assert_ge "$(wc -l <"$SEEN")" 500 "(the answers were recorded)"
assert_unseen "no common ID in any page, token or API answer" "$RID_H" "$RID_J" "$RID_S" "$RID_M"

# ------------------------------------------------- re-enabling a resident

# what the disable killed stays dead when the account comes back
renkei_cli resident enable jiro
browser jiro
refresh "$A_ID" "$A_SECRET" "$RT_J"
expect_oauth_error 400 invalid_grant "re-enabled: the old refresh token stays dead"
bhttp GET /account
assert_status 303 "re-enabled: the old session stays over"
flow_to_code "$A_ID" "$RU_A" "openid profile" jiro "$PW_J"
assert_eq 1 "$SAW_LOGIN" "re-enabled: jiro signs in again"
redeem_ok "$A_ID" "$A_SECRET" "$CODE" "$VERIFIER" "$RU_A"
userinfo_works() { userinfo "$1"; [[ $HTTP_STATUS == 200 ]]; }
check "re-enabled: a new token works (the hub knows the account is back)" poll 10 userinfo_works "$AT"
userinfo "$AT_J"
assert_status 401 "re-enabled: the access token from before the disable stays dead" # hub bug

# ------------------------------------- the access log, for an app allowed to

# (last: account.read is a scope residents may grant, but the hub must also
# let a client be given it)
LOG_RU=https://log.takamatsu.example/cb
client_add --tenant takamatsu --name "記録アプリ" --grant authorization_code --scope "openid account.read" --redirect-uri "$LOG_RU" # hub bug
L_ID=$CID L_SECRET=$CSECRET
browser hanako
flow_to_code "$L_ID" "$LOG_RU" "openid account.read" hanako "$PW_H"
redeem_ok "$L_ID" "$L_SECRET" "$CODE" "$VERIFIER" "$LOG_RU"
ohttp GET /account/v1/access-log -H "Authorization: Bearer $AT"
assert_status 200 "the access log with account.read"
assert_json '(.items | type) == "array" and has("next")' "the access log: items and next"
assert_unseen "no common ID in the access log" "$RID_H"
