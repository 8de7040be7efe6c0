#!/usr/bin/env bash
# Dynamic client registration (RFC 7591) with a per-tenant initial access
# token from `renkei client initial-token`, and its management protocol
# (RFC 7592: read, update, delete with the registration access token).
# Registration makes clients of the token's tenant, never with scope admin,
# and records client.create with actor registration:<tenant>.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"

RUN_TIMEOUT=20
az_setup

client_add --tenant takamatsu --name takamatsu-rs --grant client_credentials --scope ngsi.read
RS_ID=$CID RS_SECRET=$CSECRET

# iat TENANT USES: a new initial access token in IAT.
iat() {
  run_renkei client initial-token --tenant "$1" --uses "$2" --json
  assert_eq 0 "$RUN_STATUS" "client initial-token --tenant $1 --uses $2 (stderr [$RUN_ERR])"
  IAT=$(jq -r .initial_access_token <<<"$RUN_OUT")
}

# register TOKEN JSON: POST /oauth2/register with a bearer token.
register() {
  http POST /oauth2/register -H "Authorization: Bearer $1" -H 'Content-Type: application/json' --data "$2"
}

# reg_unauthorized WHAT: 401 with a Bearer invalid_token challenge.
reg_unauthorized() {
  assert_oauth_error 401 invalid_token "$1"
  assert_match '^Bearer .*error="invalid_token"' "$(header WWW-Authenticate)" "$1: Bearer challenge with error=\"invalid_token\""
}

iat takamatsu 2
T_IAT=$IAT
GOOD='{"client_name": "高松 見守りアプリ", "grant_types": ["client_credentials"], "scope": "ngsi.read"}'

hub_start

# ----------------------------------------------------------- refused

before=$(snapshot_authz)
http POST /oauth2/register -H 'Content-Type: application/json' --data "$GOOD"
reg_unauthorized "registration without a token"
register "wrong-$T_IAT" "$GOOD"
reg_unauthorized "registration with a wrong token"
http POST /oauth2/register -u "$RS_ID:$RS_SECRET" -H 'Content-Type: application/json' --data "$GOOD"
reg_unauthorized "registration with client credentials instead of a token"
get_token "$RS_ID" "$RS_SECRET"
register "$TOKEN" "$GOOD"
reg_unauthorized "registration with an access token instead of an initial access token"
assert_eq "$before" "$(snapshot_authz)" "the refused registrations wrote nothing"
assert_eq 2 "$(sql "SELECT uses_left FROM renkei.initial_access_tokens")" "and used nothing of the initial access token"

# ------------------------------------------------------------ register

register "$T_IAT" "$GOOD"
assert_status 201 "registration with the initial access token"
reg=$HTTP_BODY
assert_match '^application/json' "$(header Content-Type)" "201: application/json"
assert_eq "no-store" "$(header Cache-Control)" "201 with secrets: Cache-Control: no-store"
R_ID=$(jq -r .client_id <<<"$reg")
R_SECRET=$(jq -r .client_secret <<<"$reg")
R_RAT=$(jq -r .registration_access_token <<<"$reg")
R_URI=$(jq -r .registration_client_uri <<<"$reg")
assert_match '^[A-Za-z0-9_-]{8,64}$' "$R_ID" "client_id"
assert_match '^[A-Za-z0-9_-]{43}$' "$R_SECRET" "client_secret of 256 bits"
assert_match '^[A-Za-z0-9_-]{43}$' "$R_RAT" "registration_access_token of 256 bits"
assert_ne "$R_SECRET" "$R_RAT" "the registration access token is not the secret"
assert_eq "$HUB_URL/oauth2/register/$R_ID" "$R_URI" "registration_client_uri"
assert_eq "$R_URI" "$(header Location)" "Location is the registration_client_uri"
assert_jq '.client_name == "高松 見守りアプリ" and .grant_types == ["client_credentials"] and .scope == "ngsi.read"' "$reg" \
  "the response echoes the registered metadata"
assert_jq '.token_endpoint_auth_method == "client_secret_basic" and .client_secret_expires_at == 0' "$reg" \
  "client_secret_basic by default; client_secret_expires_at 0 (never)"
assert_jq '.client_id_issued_at | type == "number"' "$reg" "client_id_issued_at"
assert_eq "takamatsu|registration:takamatsu|32|32|active" \
  "$(sql "SELECT tenant_id, created_by, length(secret_hmac), length(registration_hmac), state FROM renkei.clients WHERE id = '$R_ID'")" \
  "the row: takamatsu, created by registration:takamatsu, HMACs of the secret and the registration token"
assert_eq 0 "$(db_contains "$R_SECRET" "$R_RAT" "$T_IAT")" "no secret or token text in the database"
assert_eq "takamatsu|registration:takamatsu" \
  "$(sql "SELECT tenant, actor FROM renkei.audit_events WHERE kind = 'client.create' AND detail->>'client_id' = '$R_ID'")" \
  "a client.create event with actor registration:takamatsu"
assert_eq 1 "$(sql "SELECT uses_left FROM renkei.initial_access_tokens")" "one use of the initial access token left"

get_token "$R_ID" "$R_SECRET"
assert_jq ".sub == \"$R_ID\" and .tenant == \"takamatsu\" and .scope == \"ngsi.read\"" "$(jwt_claims "$TOKEN")" \
  "the registered client gets takamatsu tokens with ngsi.read"
R_TOKEN=$TOKEN

register "$T_IAT" '{"client_name": "poster", "grant_types": ["client_credentials"], "scope": "ngsi.read ngsi.write", "token_endpoint_auth_method": "client_secret_post"}'
assert_status 201 "a second registration (client_secret_post)"
P_ID=$(jq -r .client_id <<<"$HTTP_BODY")
P_SECRET=$(jq -r .client_secret <<<"$HTTP_BODY")
P_RAT=$(jq -r .registration_access_token <<<"$HTTP_BODY")
assert_json '.token_endpoint_auth_method == "client_secret_post" and .scope == "ngsi.read ngsi.write"' "the second client's metadata"
token_post "$P_ID" "$P_SECRET" --data-urlencode 'scope=ngsi.write'
assert_status 200 "the client_secret_post client gets a token"
assert_json '.scope == "ngsi.write"' "with the scope it asked for"
assert_eq 0 "$(sql "SELECT uses_left FROM renkei.initial_access_tokens")" "the initial access token is used up"
before=$(snapshot_authz)
register "$T_IAT" "$GOOD"
reg_unauthorized "a third registration with the used-up token"
assert_eq "$before" "$(snapshot_authz)" "the used-up token created nothing"

# an expired initial access token
iat takamatsu 5
sql "UPDATE renkei.initial_access_tokens SET expires_at = now() - interval '1 second' WHERE uses_left = 5" >/dev/null
before=$(snapshot_authz)
register "$IAT" "$GOOD"
reg_unauthorized "an expired initial access token"
assert_eq "$before" "$(snapshot_authz)" "the expired token created nothing"

# ------------------------------------------------- bad client metadata

iat kanonji 20
K_IAT=$IAT
before=$(sql "SELECT count(*) FROM renkei.clients")
register "$K_IAT" '{"client_name": "x", "grant_types": ["client_credentials"], "scope": "admin"}'
assert_oauth_error 400 invalid_client_metadata "scope admin through registration"
register "$K_IAT" '{"client_name": "x", "grant_types": ["client_credentials"], "scope": "ngsi.read frobnicate"}'
assert_oauth_error 400 invalid_client_metadata "an unknown scope"
register "$K_IAT" '{"client_name": "x", "grant_types": ["password"], "scope": "ngsi.read"}'
assert_oauth_error 400 invalid_client_metadata "an unsupported grant type"
register "$K_IAT" '{"client_name": "x", "grant_types": ["authorization_code"], "scope": "openid"}'
assert_oauth_error 400 invalid_redirect_uri "the code flow without a redirect URI"
register "$K_IAT" '{"grant_types": ["client_credentials"], "scope": "ngsi.read"}'
assert_oauth_error 400 invalid_client_metadata "no client_name"
register "$K_IAT" '{"client_name": 7, "grant_types": ["client_credentials"]}'
assert_oauth_error 400 invalid_client_metadata "client_name not a string"
register "$K_IAT" '{"client_name": "x", "grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}'
assert_oauth_error 400 invalid_client_metadata "a public client for client_credentials"
register "$K_IAT" '{"client_name": "x", "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_jwt"}'
assert_oauth_error 400 invalid_client_metadata "an unsupported auth method"
register "$K_IAT" '{"client_name": "x", "grant_types": ["client_credentials"], "jwks_uri": "https://app.example.jp/jwks"}'
assert_oauth_error 400 invalid_client_metadata "jwks_uri"
register "$K_IAT" '["client_name"]'
assert_oauth_error 400 invalid_client_metadata "a JSON array instead of an object"
assert_eq "$before" "$(sql "SELECT count(*) FROM renkei.clients")" "no client was created by bad metadata"
register "$K_IAT" '{"client_name": "観音寺 app", "grant_types": ["client_credentials"], "scope": "ngsi.read"}'
assert_status 201 "a kanonji registration"
assert_json '.client_id | type == "string"' "it has a client_id"
K_REG_ID=$(jq -r .client_id <<<"$HTTP_BODY")
assert_eq "kanonji|registration:kanonji" "$(sql "SELECT tenant_id, created_by FROM renkei.clients WHERE id = '$K_REG_ID'")" \
  "the kanonji token registers kanonji clients"

# -------------------------------------------------------- RFC 7592 read

path=/oauth2/register/$R_ID
http GET "$path" -H "Authorization: Bearer $R_RAT"
assert_status 200 "GET the registration with its registration access token"
assert_json ".client_id == \"$R_ID\" and .client_name == \"高松 見守りアプリ\" and .scope == \"ngsi.read\" and .grant_types == [\"client_credentials\"]" \
  "the read shows the registered metadata"
assert_json ".registration_client_uri == \"$R_URI\"" "and the registration_client_uri"
http GET "$path"
reg_unauthorized "GET the registration without a token"
http GET "$path" -H "Authorization: Bearer $T_IAT"
reg_unauthorized "GET the registration with the initial access token"
http GET "$path" -H "Authorization: Bearer $R_SECRET"
reg_unauthorized "GET the registration with the client secret"
http GET "$path" -H "Authorization: Bearer $R_TOKEN"
reg_unauthorized "GET the registration with an access token"
http GET "$path" -H "Authorization: Bearer $P_RAT"
reg_unauthorized "GET the registration with another client's registration token"
http GET "/oauth2/register/$P_ID" -H "Authorization: Bearer $R_RAT"
reg_unauthorized "GET another client's registration with this token"
http GET "/oauth2/register/$RS_ID" -H "Authorization: Bearer $R_RAT"
reg_unauthorized "GET a CLI-made client through registration"
http GET /oauth2/register/c_nosuch0000000000 -H "Authorization: Bearer $R_RAT"
reg_unauthorized "GET an unknown client"

# ------------------------------------------------------- RFC 7592 update

put() {
  http PUT "$path" -H "Authorization: Bearer $1" -H 'Content-Type: application/json' --data "$2"
}
before=$(sql "SELECT name, scopes, version FROM renkei.clients WHERE id = '$R_ID'")
put "$R_RAT" '{"client_name": "renamed", "grant_types": ["client_credentials"], "scope": "ngsi.read ngsi.write"}'
assert_oauth_error 400 invalid_client_metadata "PUT without client_id (RFC 7592 §2.2)"
put "$R_RAT" "{\"client_id\": \"$P_ID\", \"client_name\": \"renamed\", \"grant_types\": [\"client_credentials\"]}"
assert_oauth_error 400 invalid_client_metadata "PUT with another client_id"
put "$R_RAT" "{\"client_id\": \"$R_ID\", \"client_name\": \"renamed\", \"grant_types\": [\"client_credentials\"], \"scope\": \"admin\"}"
assert_oauth_error 400 invalid_client_metadata "PUT asking for scope admin"
put "$R_RAT" "{\"client_id\": \"$R_ID\", \"client_name\": \"renamed\", \"grant_types\": [\"client_credentials\"], \"token_endpoint_auth_method\": \"client_secret_post\"}"
assert_oauth_error 400 invalid_client_metadata "PUT changing the auth method"
put "$R_RAT" "{\"client_id\": \"$R_ID\", \"client_secret\": \"not-the-secret\", \"client_name\": \"renamed\", \"grant_types\": [\"client_credentials\"]}"
assert_oauth_error 400 invalid_client_metadata "PUT with a wrong client_secret"
put "$P_RAT" "{\"client_id\": \"$R_ID\", \"client_name\": \"hijack\", \"grant_types\": [\"client_credentials\"]}"
reg_unauthorized "PUT with another client's registration token"
assert_eq "$before" "$(sql "SELECT name, scopes, version FROM renkei.clients WHERE id = '$R_ID'")" "the refused updates changed nothing"
put "$R_RAT" "{\"client_id\": \"$R_ID\", \"client_secret\": \"$R_SECRET\", \"client_name\": \"renamed\", \"grant_types\": [\"client_credentials\"], \"scope\": \"ngsi.read ngsi.write\"}"
assert_status 200 "PUT with client_id, the current secret and new metadata"
assert_json ".client_id == \"$R_ID\" and .client_name == \"renamed\" and .scope == \"ngsi.read ngsi.write\"" "the reply shows the new metadata"
assert_eq "renamed|{ngsi.read,ngsi.write}" "$(sql "SELECT name, scopes FROM renkei.clients WHERE id = '$R_ID'")" "the row is updated"
write_ok() {
  token_basic "$R_ID" "$R_SECRET" --data-urlencode 'scope=ngsi.write'
  [[ $HTTP_STATUS == 200 ]]
}
check "within 10 s the client gets ngsi.write, which it did not have before" poll 10 write_ok
http GET "$path" -H "Authorization: Bearer $R_RAT"
assert_json '.client_name == "renamed"' "a read after the update shows it"

# ------------------------------------------------------- RFC 7592 delete

http DELETE "$path" -H "Authorization: Bearer $P_RAT"
reg_unauthorized "DELETE with another client's registration token"
assert_eq active "$(sql "SELECT state FROM renkei.clients WHERE id = '$R_ID'")" "still active"
get_token "$R_ID" "$R_SECRET"
R_TOKEN=$TOKEN
http DELETE "$path" -H "Authorization: Bearer $R_RAT"
assert_status 204 "DELETE with the registration access token: 204"
assert_eq "" "$HTTP_BODY" "204: no body"
assert_eq disabled "$(sql "SELECT state FROM renkei.clients WHERE id = '$R_ID'")" "the client is disabled"
assert_eq "takamatsu|registration:$R_ID" \
  "$(sql "SELECT tenant, actor FROM renkei.audit_events WHERE kind = 'client.disable' AND detail->>'client_id' = '$R_ID'")" \
  "a client.disable event by the registration"
token_refused() {
  token_basic "$R_ID" "$R_SECRET"
  [[ $HTTP_STATUS == 401 ]]
}
check "within 10 s the deleted client gets no token" poll 10 token_refused
assert_oauth_error 401 invalid_client "the deleted client"
introspect "$RS_ID" "$RS_SECRET" "$R_TOKEN"
assert_eq '{"active":false}' "$(jq -c . <<<"$HTTP_BODY")" "a token issued before the deletion is no longer active"
http GET "$path" -H "Authorization: Bearer $R_RAT"
reg_unauthorized "GET after DELETE (RFC 7592 §2.3: 401)"
http DELETE "$path" -H "Authorization: Bearer $R_RAT"
reg_unauthorized "DELETE again"
token_post "$P_ID" "$P_SECRET"
assert_status 200 "the other registered client is not affected"

# --------------------------------------- malformed bodies, OAuth-style

# /oauth2/register is an OAuth endpoint: its errors are RFC 7591 §3.2.2
# {"error", "error_description"} (ARCHITECTURE.md: "OAuth endpoints use RFC
# 6749 {"error", "error_description"}"), also for a body that is not JSON.
iat kanonji 5
http POST /oauth2/register -H "Authorization: Bearer $IAT" -H 'Content-Type: application/json' --data '{"client_name":'
assert_oauth_error 400 invalid_client_metadata "registration with malformed JSON"
