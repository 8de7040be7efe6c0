#!/usr/bin/env bash
# The admin API with real access tokens: scope admin (a client of the
# top-level tenant) acts on every tenant and client, tenant.admin on its own
# tenant only, other scopes are forbidden; garbage, expired, foreign-audience,
# revoked tokens and tokens of disabled clients or suspended tenants get 401
# with error="invalid_token".  /admin/v1/clients creates (secret once),
# lists, reads, disables and rotates secrets, with the tenant rules.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"

RUN_TIMEOUT=20
az_setup

client_add --tenant kagawa --name platform-ops --grant client_credentials --scope admin
ADM_ID=$CID ADM_SECRET=$CSECRET
client_add --tenant takamatsu --name takamatsu-admin --grant client_credentials --scope "tenant.admin ngsi.read" \
  --default-scope tenant.admin --audience https://api.takamatsu.example.jp/
TA_ID=$CID TA_SECRET=$CSECRET
client_add --tenant takamatsu --name takamatsu-reader --grant client_credentials --scope ngsi.read
TR_ID=$CID TR_SECRET=$CSECRET
client_add --tenant kanonji --name kanonji-admin --grant client_credentials --scope tenant.admin
KA_ID=$CID KA_SECRET=$CSECRET

hub_start

get_token "$ADM_ID" "$ADM_SECRET"
ADM=$TOKEN
get_token "$TA_ID" "$TA_SECRET"
TAT=$TOKEN
get_token "$TR_ID" "$TR_SECRET" --data-urlencode 'scope=ngsi.read'
READER=$TOKEN
get_token "$KA_ID" "$KA_SECRET"
KAT=$TOKEN

# invalid_token WHAT: 401, NGSI error body, Bearer challenge with
# error="invalid_token" (RFC 6750 §3.1).
invalid_token() {
  assert_error 401 Unauthorized "$1"
  local ch
  ch=$(header WWW-Authenticate)
  assert_match '^Bearer ' "$ch" "$1: a Bearer challenge"
  assert_match 'error="invalid_token"' "$ch" "$1: error=\"invalid_token\""
}

# ------------------------------------------------------------ tenants

admin_get /admin/v1/tenants "$ADM"
assert_status 200 "admin: GET /admin/v1/tenants"
assert_json '[.items[].id] == ["kagawa", "kanonji", "takamatsu"] and .next == null' "admin lists every tenant"
admin_send POST /admin/v1/tenants "$ADM" '{"id": "zentsuji", "name": "善通寺市", "parent": "kagawa", "city_os": {"kind": "hosted"}}'
assert_status 201 "admin: POST /admin/v1/tenants creates zentsuji"
assert_json '.id == "zentsuji" and .name == "善通寺市" and .parent == "kagawa"' "the created tenant"
assert_eq "zentsuji|善通寺市|kagawa" "$(sql "SELECT id, name, parent_id FROM renkei.tenants WHERE id = 'zentsuji'")" "zentsuji is in the database"
assert_eq "client:$ADM_ID" "$(sql "SELECT actor FROM renkei.audit_events WHERE kind = 'tenant.create' AND tenant = 'zentsuji'")" \
  "the tenant.create event names the admin client as actor"
admin_get /admin/v1/tenants/kanonji "$ADM"
assert_status 200 "admin reads kanonji"

admin_get /admin/v1/tenants "$TAT"
assert_status 200 "tenant.admin takamatsu: GET /admin/v1/tenants"
assert_json '[.items[].id] == ["takamatsu"]' "tenant.admin sees only takamatsu"
admin_get /admin/v1/tenants/takamatsu "$TAT"
assert_status 200 "tenant.admin reads its own tenant"
admin_get /admin/v1/tenants/kanonji "$TAT"
assert_error 403 Forbidden "tenant.admin takamatsu reads kanonji"
admin_send PATCH /admin/v1/tenants/kanonji "$TAT" '{"name": "乗っ取り"}'
assert_error 403 Forbidden "tenant.admin takamatsu renames kanonji"
admin_send POST /admin/v1/tenants "$TAT" '{"id": "kotohira", "name": "琴平町", "parent": "kagawa", "city_os": {"kind": "hosted"}}'
assert_error 403 Forbidden "tenant.admin creates a tenant"
assert_eq "観音寺市|0" "$(sql "SELECT name, (SELECT count(*) FROM renkei.tenants WHERE id = 'kotohira') FROM renkei.tenants WHERE id = 'kanonji'")" \
  "kanonji unchanged, no kotohira"

admin_get /admin/v1/tenants "$READER"
assert_error 403 Forbidden "a token with only ngsi.read"
admin_get /admin/v1/clients "$READER"
assert_error 403 Forbidden "ngsi.read at /admin/v1/clients"
get_token "$TA_ID" "$TA_SECRET" --data-urlencode 'scope=ngsi.read'
admin_get /admin/v1/tenants "$TOKEN"
assert_error 403 Forbidden "a tenant.admin client's token requested with ngsi.read only"

# ---------------------------------------------------------- bad tokens

admin_get /admin/v1/tenants "garbage"
invalid_token "a garbage token"
admin_get /admin/v1/tenants "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.$(jwt_claims "$ADM" | b64url_encode)."
invalid_token "the admin token's claims, unsigned (alg none)"
forged="$(jwt_header "$ADM" | b64url_encode).$(jwt_claims "$TAT" | jq -c '.scope = "admin"' | b64url_encode).$(cut -d. -f3 <<<"$TAT")"
admin_get /admin/v1/tenants "$forged"
invalid_token "a tenant.admin token with scope changed to admin"
# RFC 8725: the header does not choose the algorithm or the key
http GET /oauth2/jwks
rs_jwk=$(jq -c '.keys[] | select(.alg == "RS256")' <<<"$HTTP_BODY")
rs_kid=$(jq -r .kid <<<"$rs_jwk")
printf 'asn1=SEQUENCE:pubkey\n[pubkey]\nn=INTEGER:0x%s\ne=INTEGER:0x%s\n' \
  "$(jq -r .n <<<"$rs_jwk" | b64url_decode | _hex | tr a-f A-F)" "$(jq -r .e <<<"$rs_jwk" | b64url_decode | _hex | tr a-f A-F)" >"$tmpdir/rs.cnf"
openssl asn1parse -genconf "$tmpdir/rs.cnf" -out "$tmpdir/rs.der" >/dev/null
openssl pkey -pubin -inform DER -in "$tmpdir/rs.der" -out "$tmpdir/rs.pem" 2>/dev/null ||
  openssl rsa -RSAPublicKey_in -inform DER -in "$tmpdir/rs.der" -pubout -out "$tmpdir/rs.pem" 2>/dev/null
signing="$(jq -nc --arg kid "$rs_kid" '{typ: "at+jwt", alg: "HS256", kid: $kid}' | b64url_encode).$(jwt_claims "$ADM" | b64url_encode)"
hs=$(printf '%s' "$signing" | openssl dgst -sha256 -mac HMAC -macopt "key:$(cat "$tmpdir/rs.pem")" -binary | b64url_encode)
admin_get /admin/v1/tenants "$signing.$hs"
invalid_token "the admin claims as HS256, keyed with the hub's RSA public key (alg confusion)"
mine=$(ec_jwk "$tmpdir/mine.pem" "$(jwt_header "$ADM" | jq -r .kid)")
admin_get /admin/v1/tenants "$(jws_sign ES256 "$tmpdir/mine.pem" "$(jq -nc --argjson jwk "$mine" '{typ: "at+jwt", alg: "ES256", kid: $jwk.kid, jwk: $jwk}')" "$(jwt_claims "$ADM")")"
invalid_token "the admin claims signed with my own key, the hub's kid and my key in the header (jwk)"
admin_get /admin/v1/tenants "$(jws_sign ES256 "$tmpdir/mine.pem" '{"typ":"at+jwt","alg":"ES256","kid":"unknown-kid-0000000"}' "$(jwt_claims "$ADM")")"
invalid_token "the admin claims signed with my own key under an unknown kid"
admin_get /admin/v1/tenants "$ADM"
assert_status 200 "the real admin token still works (the forgeries were refused for what they are)"
http GET /admin/v1/tenants
assert_error 401 Unauthorized "no token"
assert_match '^Bearer' "$(header WWW-Authenticate)" "no token: a Bearer challenge"
get_token "$TA_ID" "$TA_SECRET" --data-urlencode 'resource=https://api.takamatsu.example.jp/'
admin_get /admin/v1/tenants "$TOKEN"
invalid_token "a token for another audience (https://api.takamatsu.example.jp/)"

# expired: a token issued by a hub whose clock is an hour behind
ISSUER=$HUB_URL
hub_stop
timeshift_env -3600
hub_start RENKEI_ISSUER="$ISSUER" "${TIMESHIFT_ENV[@]}"
get_token "$ADM_ID" "$ADM_SECRET"
OLD=$TOKEN
now=$(date +%s)
assert_jq ".exp < $now - 60" "$(jwt_claims "$OLD")" "the hour-behind hub issued a token that expired in real time"
hub_stop
timeshift_env 3600
hub_start RENKEI_ISSUER="$ISSUER" "${TIMESHIFT_ENV[@]}"
get_token "$ADM_ID" "$ADM_SECRET"
FUTURE=$TOKEN
assert_jq ".iat > $now + 600" "$(jwt_claims "$FUTURE")" "the hour-ahead hub issued a token from the future"
hub_stop
hub_start RENKEI_ISSUER="$ISSUER"
http GET /.well-known/oauth-authorization-server
assert_json ".issuer == \"$ISSUER\"" "the restarted hub keeps the issuer (RENKEI_ISSUER)"
admin_get /admin/v1/tenants "$OLD"
invalid_token "an expired admin token"
assert_match 'expired' "$(header WWW-Authenticate)" "the challenge says the token expired"
introspect "$ADM_ID" "$ADM_SECRET" "$OLD"
assert_eq '{"active":false}' "$(jq -c . <<<"$HTTP_BODY")" "the expired token introspects {active:false}"
admin_get /admin/v1/tenants "$FUTURE"
invalid_token "an admin token issued an hour in the future (iat)"
admin_get /admin/v1/tenants "$ADM"
assert_status 200 "the admin token from before the restarts still works"

# ------------------------------------------------------------- clients

admin_get /admin/v1/clients "$ADM"
assert_status 200 "admin: GET /admin/v1/clients"
assert_json "[.items[].client_id] | sort == ([\"$ADM_ID\", \"$TA_ID\", \"$TR_ID\", \"$KA_ID\"] | sort)" "admin lists every tenant's clients"
assert_json '[.. | objects | keys[] | select(test("secret|hmac"))] | length == 0' "the list holds no secret"
assert_json '.next == null' "one page"
admin_get '/admin/v1/clients?limit=2' "$ADM"
assert_json '(.items | length) == 2 and (.next | type) == "string"' "limit=2: two items and a cursor"
cursor=$(jq -r .next <<<"$HTTP_BODY")
first=$(jq -c '[.items[].client_id]' <<<"$HTTP_BODY")
admin_get "/admin/v1/clients?limit=2&cursor=$cursor" "$ADM"
assert_json "(.items | length) == 2 and .next == null and ([.items[].client_id] - $first | length) == 2" "the second page: the other two"
admin_get '/admin/v1/clients?tenant=kanonji' "$ADM"
assert_json "[.items[].client_id] == [\"$KA_ID\"]" "admin ?tenant=kanonji: kanonji's client"

admin_get /admin/v1/clients "$TAT"
assert_status 200 "tenant.admin: GET /admin/v1/clients"
assert_json "[.items[].client_id] | sort == ([\"$TA_ID\", \"$TR_ID\"] | sort)" "tenant.admin lists only takamatsu's clients"
admin_get '/admin/v1/clients?tenant=kanonji' "$TAT"
assert_error 403 Forbidden "tenant.admin takamatsu lists kanonji's clients"
admin_get "/admin/v1/clients/$TR_ID" "$TAT"
assert_status 200 "tenant.admin reads its tenant's client"
assert_json ".client_id == \"$TR_ID\" and .tenant == \"takamatsu\" and (has(\"client_secret\") | not)" "the client, without a secret"
admin_get "/admin/v1/clients/$KA_ID" "$TAT"
assert_match '^40[34]$' "$HTTP_STATUS" "tenant.admin takamatsu reads kanonji's client: 403 or 404"
assert_no_match 'kanonji|tenant.admin|client_secret_basic' "$HTTP_BODY" "and learns nothing of it (tenant, name, scopes, method)"

# create for its own tenant
admin_send POST /admin/v1/clients "$TAT" '{"name": "高松 センサー", "grant_types": ["client_credentials"], "scopes": ["ngsi.read", "ngsi.write"]}'
assert_status 201 "tenant.admin creates a client for its tenant"
created=$HTTP_BODY
NEW_ID=$(jq -r .client_id <<<"$created")
NEW_SECRET=$(jq -r .client_secret <<<"$created")
assert_jq '.tenant == "takamatsu" and .name == "高松 センサー" and .scopes == ["ngsi.read", "ngsi.write"] and .state == "active"' "$created" \
  "the new client: takamatsu, name, scopes, active"
assert_match '^[A-Za-z0-9_-]{43}$' "$NEW_SECRET" "the secret is in the 201 body, 256 bits"
assert_match "/admin/v1/clients/$NEW_ID\$" "$(header Location)" "Location names the new client"
assert_eq "no-store" "$(header Cache-Control)" "the 201 with a secret is not cacheable"
assert_eq "takamatsu|32|client:$TA_ID" "$(sql "SELECT tenant_id, length(secret_hmac), created_by FROM renkei.clients WHERE id = '$NEW_ID'")" \
  "the row: takamatsu, a 32-byte HMAC, created by the tenant admin"
assert_eq 0 "$(db_contains "$NEW_SECRET")" "the secret's text is nowhere in the database"
assert_eq "takamatsu|client:$TA_ID" "$(sql "SELECT tenant, actor FROM renkei.audit_events WHERE kind = 'client.create' AND detail->>'client_id' = '$NEW_ID'")" \
  "a client.create event by client:$TA_ID"
admin_get "/admin/v1/clients/$NEW_ID" "$TAT"
assert_json 'has("client_secret") | not' "reading the client again shows no secret"
get_token "$NEW_ID" "$NEW_SECRET"
assert_json '.scope == "ngsi.read ngsi.write"' "the new client gets tokens with its scopes"

before=$(snapshot_authz)
admin_send POST /admin/v1/clients "$TAT" '{"tenant": "kanonji", "name": "x", "grant_types": ["client_credentials"], "scopes": ["ngsi.read"]}'
assert_error 403 Forbidden "tenant.admin creates a client for another tenant"
admin_send POST /admin/v1/clients "$TAT" '{"name": "x", "grant_types": ["client_credentials"], "scopes": ["admin"]}'
assert_error 403 Forbidden "tenant.admin creates a client with scope admin (only the platform gives it)"
admin_send POST /admin/v1/clients "$TAT" '{"name": "x", "grant_types": ["client_credentials"], "scopes": ["frob"]}'
assert_error 400 BadRequest "an unknown scope"
admin_send POST /admin/v1/clients "$TAT" '{"name": "x", "grant_types": ["password"]}'
assert_error 400 BadRequest "an unsupported grant"
admin_send POST /admin/v1/clients "$TAT" '{"name": "x", "client_secret": "chosen-by-me"}'
assert_error 400 BadRequest "a client-chosen secret is not a member"
admin_send POST /admin/v1/clients "$ADM" '{"tenant": "nosuch", "name": "x", "grant_types": ["client_credentials"]}'
assert_error 400 BadRequest "admin creates a client for a tenant that does not exist"
admin_send POST /admin/v1/clients "$READER" '{"name": "x", "grant_types": ["client_credentials"]}'
assert_error 403 Forbidden "ngsi.read creates a client"
assert_eq "$before" "$(snapshot_authz)" "the refused creations wrote nothing"

admin_send POST /admin/v1/clients "$ADM" '{"tenant": "kanonji", "name": "観音寺 from the platform", "grant_types": ["client_credentials"], "scopes": ["ngsi.read"]}'
assert_status 201 "admin creates a client for kanonji"
assert_json '.tenant == "kanonji"' "it belongs to kanonji"
KN_ID=$(jq -r .client_id <<<"$HTTP_BODY")

# disable / enable
admin_send PATCH "/admin/v1/clients/$NEW_ID" "$TAT" '{"state": "disabled"}'
assert_status 200 "tenant.admin disables its client"
assert_json ".client_id == \"$NEW_ID\" and .state == \"disabled\"" "the reply shows it disabled"
assert_eq disabled "$(sql "SELECT state FROM renkei.clients WHERE id = '$NEW_ID'")" "the row is disabled"
assert_eq "client:$TA_ID" "$(sql "SELECT actor FROM renkei.audit_events WHERE kind = 'client.disable' AND detail->>'client_id' = '$NEW_ID'")" \
  "a client.disable event by the tenant admin"
token_refused() {
  token_basic "$1" "$2"
  [[ $HTTP_STATUS == 401 ]]
}
token_works() {
  token_basic "$1" "$2"
  [[ $HTTP_STATUS == 200 ]]
}
check "within 10 s the disabled client gets no token" poll 10 token_refused "$NEW_ID" "$NEW_SECRET"
assert_oauth_error 401 invalid_client "the disabled client"
admin_send PATCH "/admin/v1/clients/$NEW_ID" "$TAT" '{"state": "active"}'
assert_status 200 "tenant.admin enables it again"
check "within 10 s it gets tokens again" poll 10 token_works "$NEW_ID" "$NEW_SECRET"
admin_send PATCH "/admin/v1/clients/$NEW_ID" "$TAT" '{"state": "gone"}'
assert_error 400 BadRequest "PATCH with a bad state"
admin_send PATCH "/admin/v1/clients/$NEW_ID" "$TAT" '{"state": "disabled", "name": "x"}'
assert_error 400 BadRequest "PATCH with another member"
before=$(sql "SELECT state, version FROM renkei.clients WHERE id = '$KN_ID'")
admin_send PATCH "/admin/v1/clients/$KN_ID" "$TAT" '{"state": "disabled"}'
assert_match '^40[34]$' "$HTTP_STATUS" "tenant.admin takamatsu disables kanonji's client: 403 or 404"
assert_eq "$before" "$(sql "SELECT state, version FROM renkei.clients WHERE id = '$KN_ID'")" "kanonji's client unchanged"

# secret rotation
admin_send POST "/admin/v1/clients/$NEW_ID/secret" "$TAT" ''
assert_status 200 "tenant.admin rotates its client's secret"
assert_json "keys == [\"client_id\", \"client_secret\"] and .client_id == \"$NEW_ID\"" "the reply: client_id and the new secret"
ROT_SECRET=$(jq -r .client_secret <<<"$HTTP_BODY")
assert_match '^[A-Za-z0-9_-]{43}$' "$ROT_SECRET" "the new secret has 256 bits"
assert_ne "$NEW_SECRET" "$ROT_SECRET" "a different secret"
assert_eq "no-store" "$(header Cache-Control)" "the reply with the secret is not cacheable"
check "within 10 s the old secret no longer works" poll 10 token_refused "$NEW_ID" "$NEW_SECRET"
get_token "$NEW_ID" "$ROT_SECRET"
ok "the new secret works"
assert_eq "client:$TA_ID" "$(sql "SELECT actor FROM renkei.audit_events WHERE kind = 'client.rotate_secret' AND detail->>'client_id' = '$NEW_ID'")" \
  "a client.rotate_secret event by the tenant admin"
before=$(sql "SELECT encode(secret_hmac, 'hex') FROM renkei.clients WHERE id = '$KN_ID'")
admin_send POST "/admin/v1/clients/$KN_ID/secret" "$TAT" ''
assert_match '^40[34]$' "$HTTP_STATUS" "tenant.admin takamatsu rotates kanonji's client's secret: 403 or 404"
assert_no_match 'client_secret' "$HTTP_BODY" "and gets no secret"
assert_eq "$before" "$(sql "SELECT encode(secret_hmac, 'hex') FROM renkei.clients WHERE id = '$KN_ID'")" "kanonji's secret unchanged"
admin_send POST "/admin/v1/clients/$KN_ID/secret" "$ADM" ''
assert_status 200 "admin rotates kanonji's client's secret"

# ---------------------------------------- the caller's own state counts

run_renkei tenant suspend kanonji
assert_eq 0 "$RUN_STATUS" "tenant suspend kanonji"
refused_401() {
  admin_get /admin/v1/tenants "$1"
  [[ $HTTP_STATUS == 401 ]]
}
check "within 10 s a token of the suspended tenant's admin is refused" poll 10 refused_401 "$KAT"
invalid_token "a tenant.admin token of a suspended tenant"
run_renkei tenant resume kanonji
assert_eq 0 "$RUN_STATUS" "tenant resume kanonji"

run_renkei client disable "$TA_ID"
assert_eq 0 "$RUN_STATUS" "client disable takamatsu-admin"
check "within 10 s a token of the disabled admin client is refused" poll 10 refused_401 "$TAT"
invalid_token "a tenant.admin token of a disabled client"

revoke "$ADM_ID" "$ADM_SECRET" "$ADM"
assert_status 200 "the admin revokes its own token"
admin_get /admin/v1/clients "$ADM"
invalid_token "GET /admin/v1/clients with the revoked admin token"

# ---------------------------------------------- the platform's own clients

# A top-level town's administrator (kagawa's) is still not the platform: it
# neither gives scope admin nor holds the keys of a client that has it.
client_add --tenant kagawa --name kagawa-admin --grant client_credentials --scope tenant.admin
get_token "$CID" "$CSECRET"
KGT=$TOKEN
admin_send POST /admin/v1/clients "$KGT" '{"name": "x", "grant_types": ["client_credentials"], "scopes": ["admin"]}'
assert_error 403 Forbidden "kagawa's tenant.admin creates a client with scope admin"
http POST "/admin/v1/clients/$ADM_ID/secret" -H "Authorization: Bearer $KGT"
assert_error 403 Forbidden "nor rotates the secret of the platform's admin client"
admin_send PATCH "/admin/v1/clients/$ADM_ID" "$KGT" '{"state": "disabled"}'
assert_error 403 Forbidden "nor disables it"
assert_eq active "$(sql "SELECT state FROM renkei.clients WHERE id = '$ADM_ID'")" "the platform's client is untouched"
admin_send POST /admin/v1/clients "$KGT" '{"name": "kagawa reader", "grant_types": ["client_credentials"], "scopes": ["ngsi.read"]}'
assert_status 201 "kagawa's tenant.admin still makes its own town's clients"
