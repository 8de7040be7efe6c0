#!/usr/bin/env bash
# renkei client add | list | show | rotate-secret | disable | enable |
# initial-token and renkei keys list | rotate, from the operator's command
# line: the secret is printed once, 256 bits, and kept only as a 32-byte HMAC
# (its text is nowhere in the database); every change leaves its pending
# audit event; every bad input exits 2 with one clear line and writes
# nothing at all.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"

RUN_TIMEOUT=20
az_setup

# The database as the last refusal left it (see refused); cleared by every
# command that may change it.
KNOWN_SNAPSHOT=

# ok_run WHAT ARGS...: renkei ARGS exits 0.
ok_run() {
  local what=$1
  shift
  KNOWN_SNAPSHOT=
  run_renkei "$@"
  assert_eq 0 "$RUN_STATUS" "$what: exit 0 (stdout [$RUN_OUT] stderr [$RUN_ERR])"
}

# refused REGEX WHAT ARGS...: renkei ARGS is bad input: exit 2, nothing on
# stdout, one line "renkei: <command>: ..." matching REGEX on stderr, and
# nothing in the database changed.
refused() {
  local re=$1 what=$2
  shift 2
  if [[ -z $KNOWN_SNAPSHOT ]]; then KNOWN_SNAPSHOT=$(snapshot_authz); fi
  local before=$KNOWN_SNAPSHOT
  run_renkei "$@"
  local status=$RUN_STATUS out=$RUN_OUT err=$RUN_ERR
  assert_eq 2 "$status" "$what: exit 2 (stdout [$out] stderr [$err])"
  assert_eq "" "$out" "$what: nothing on stdout"
  assert_match "^renkei: $1: " "$err" "$what: stderr starts 'renkei: $1: '"
  # a usage message may follow its one line; the first line says what is wrong
  assert_match "$re" "$(head -n 1 <<<"$err")" "$what: the first line of stderr says what is wrong"
  KNOWN_SNAPSHOT=$(snapshot_authz)
  assert_eq "$before" "$KNOWN_SNAPSHOT" "$what: nothing written or changed in the database"
}

# events KIND: the pending events of KIND as compact JSON lines, oldest first.
events() {
  sql "SELECT json_build_object('kind', kind, 'tenant', tenant, 'actor', actor, 'detail', detail)
       FROM renkei.audit_events WHERE kind = '$1' ORDER BY seq"
}

SECRET_RE='^[A-Za-z0-9_-]{43}$'

# ------------------------------------------------------------ client add

ok_run "client add (basic, two scopes) --json" client add --tenant takamatsu --name "高松 防災アプリ" \
  --grant client_credentials --scope "ngsi.read ngsi.write" --default-scope ngsi.read --json
out=$RUN_OUT
assert_jq 'keys == ["client_id", "client_secret"]' "$out" "client add --json prints exactly client_id and client_secret"
A_ID=$(jq -r .client_id <<<"$out")
A_SECRET=$(jq -r .client_secret <<<"$out")
assert_match '^[A-Za-z0-9_-]{8,64}$' "$A_ID" "the client_id is an id of 8 to 64 URL-safe characters"
assert_match "$SECRET_RE" "$A_SECRET" "the secret is 43 base64url characters (256 bits)"
assert_eq "32" "$(sql "SELECT length(secret_hmac) FROM renkei.clients WHERE id = '$A_ID'")" \
  "renkei.clients.secret_hmac is 32 bytes"
assert_eq "t" "$(sql "SELECT secret_set_at IS NOT NULL FROM renkei.clients WHERE id = '$A_ID'")" \
  "secret_set_at is set"
assert_ge "$(db_contains "$A_ID")" 2 "the search of the database finds the client id (so it can find a secret)"
assert_eq 0 "$(db_contains "$A_SECRET")" "the secret's text is in no row of any renkei table"
hmac_hex=$(sql "SELECT encode(secret_hmac, 'hex') FROM renkei.clients WHERE id = '$A_ID'")
assert_ne "$(printf '%s' "$A_SECRET" | sha256sum | cut -d' ' -f1)" "$hmac_hex" \
  "the stored value is not a plain SHA-256 of the secret (it is keyed)"
assert_ne "$(printf '%s' "$A_SECRET" | b64url_decode | _hex)" "$hmac_hex" "the stored value is not the secret's bytes"

ok_run "client show --json" client show "$A_ID" --json
shown=$RUN_OUT
assert_jq ".client_id == \"$A_ID\" and .tenant == \"takamatsu\" and .name == \"高松 防災アプリ\"" "$shown" \
  "show: id, tenant, name (Japanese kept)"
assert_jq '.token_endpoint_auth_method == "client_secret_basic" and .grant_types == ["client_credentials"]' "$shown" \
  "show: client_secret_basic by default, grant client_credentials"
assert_jq '.scopes == ["ngsi.read", "ngsi.write"] and .default_scopes == ["ngsi.read"]' "$shown" \
  "show: scopes and default scopes"
assert_jq '.token_alg == "ES256" and .token_ttl == 600 and .state == "active" and .audiences == []' "$shown" \
  "show: ES256, 600 s (10 minutes) by default, active, no audiences"
assert_jq '[paths | .[] | strings | ascii_downcase | select(test("secret|hmac|sealed"))] | length == 0' "$shown" \
  "show: no secret or hmac member"
assert_no_match "$A_SECRET" "$shown" "show does not print the secret"

ev=$(events client.create)
assert_eq 1 "$(wc -l <<<"$ev")" "one client.create event"
assert_jq ".tenant == \"takamatsu\" and .actor == \"$ACTOR\" and .detail.client_id == \"$A_ID\"" "$ev" \
  "client.create: tenant takamatsu, actor $ACTOR, detail.client_id"
assert_no_match "$A_SECRET" "$ev" "client.create does not carry the secret"

ok_run "client add (post, RS256, 120 s, two audiences)" client add --tenant takamatsu --name poster \
  --grant client_credentials --scope ngsi.read --auth-method client_secret_post --token-alg RS256 \
  --token-ttl 120 --audience https://api.takamatsu.example.jp/ --audience http://127.0.0.1:9/x --json
B_ID=$(jq -r .client_id <<<"$RUN_OUT")
B_SECRET=$(jq -r .client_secret <<<"$RUN_OUT")
assert_match "$SECRET_RE" "$B_SECRET" "client_secret_post clients get a secret too"
assert_ne "$A_SECRET" "$B_SECRET" "two clients, two secrets"
ok_run "client show B" client show "$B_ID" --json
assert_jq '.token_endpoint_auth_method == "client_secret_post" and .token_alg == "RS256" and .token_ttl == 120' \
  "$RUN_OUT" "show B: client_secret_post, RS256, 120 s"
assert_jq '.audiences == ["https://api.takamatsu.example.jp/", "http://127.0.0.1:9/x"]' "$RUN_OUT" "show B: both audiences"
assert_jq '.default_scopes == ["ngsi.read"]' "$RUN_OUT" "show B: without --default-scope the defaults are the scopes"

ok_run "client add admin for kagawa (top level)" client add --tenant kagawa --name ops --grant client_credentials \
  --scope "admin tenant.admin" --json
K_ID=$(jq -r .client_id <<<"$RUN_OUT")
ok_run "client add plain output" client add --tenant kanonji --name 観音寺 --grant client_credentials --scope ngsi.read
N_ID=$(sed -n 's/^client_id: *//p' <<<"$RUN_OUT")
N_SECRET=$(sed -n 's/^client_secret: *//p' <<<"$RUN_OUT")
assert_match '^[A-Za-z0-9_-]{8,64}$' "$N_ID" "plain client add prints client_id:"
assert_match "$SECRET_RE" "$N_SECRET" "plain client add prints client_secret:"

# ------------------------------------------------------------ client list

ok_run "client list --json" client list --json
list=$RUN_OUT
assert_jq "map(.client_id) | sort == ([\"$A_ID\", \"$B_ID\", \"$K_ID\", \"$N_ID\"] | sort)" "$list" "list: the four clients"
assert_jq '[.. | objects | keys[] | select(test("secret|hmac"))] | length == 0' "$list" "list: no secret anywhere"
ok_run "client list --tenant takamatsu --json" client list --tenant takamatsu --json
assert_jq "map(.client_id) | sort == ([\"$A_ID\", \"$B_ID\"] | sort)" "$RUN_OUT" "list --tenant takamatsu: its two"
assert_jq 'all(.[]; .tenant == "takamatsu")' "$RUN_OUT" "list --tenant takamatsu: only takamatsu's"
ok_run "client list (table)" client list
assert_match "$A_ID" "$RUN_OUT" "the table lists A"
assert_match "$N_ID" "$RUN_OUT" "the table lists the kanonji client"
for s in "$A_SECRET" "$B_SECRET" "$N_SECRET"; do
  assert_no_match "$s" "$RUN_OUT" "the table prints no secret"
done

# ------------------------------------------------------------- bad input

refused 'frobnicate' "unknown scope" client add --tenant takamatsu --name x --grant client_credentials --scope "ngsi.read frobnicate"
refused 'admin' "scope admin for a town (not top level)" client add --tenant takamatsu --name x --grant client_credentials --scope admin
refused 'nosuch' "unknown tenant" client add --tenant nosuch --name x --grant client_credentials --scope ngsi.read
refused 'authorization_code' "unsupported grant" client add --tenant takamatsu --name x --grant authorization_code
refused 'password' "one unsupported grant among two" client add --tenant takamatsu --name x --grant client_credentials,password
refused 'token-ttl|60' "ttl below 60 s" client add --tenant takamatsu --name x --grant client_credentials --token-ttl 59
refused 'token-ttl|86400' "ttl above a day" client add --tenant takamatsu --name x --grant client_credentials --token-ttl 86401
refused 'token-ttl' "ttl not a number" client add --tenant takamatsu --name x --grant client_credentials --token-ttl 10m
refused 'token-alg|ES256' "token alg HS256" client add --tenant takamatsu --name x --grant client_credentials --token-alg HS256
refused 'token-alg|ES256' "token alg none" client add --tenant takamatsu --name x --grant client_credentials --token-alg none
refused 'auth-method' "unknown auth method" client add --tenant takamatsu --name x --grant client_credentials --auth-method client_secret_jwt
refused 'default' "default scope not among the scopes" client add --tenant takamatsu --name x --grant client_credentials --scope ngsi.read --default-scope ngsi.write
refused 'https' "audience over plain http to a remote host" client add --tenant takamatsu --name x --grant client_credentials --audience http://api.example.jp/
refused 'public|authenticate' "public client for client_credentials" client add --tenant takamatsu --name x --grant client_credentials --public
refused 'jwks' "jwks file missing" client add --tenant takamatsu --name x --grant client_credentials --jwks-file "$tmpdir/nosuch.json"
refused 'required|tenant' "no --tenant" client add --name x --grant client_credentials
refused 'required|name' "no --name" client add --tenant takamatsu --grant client_credentials
refused 'required|grant' "no --grant" client add --tenant takamatsu --name x
refused 'name' "empty name" client add --tenant takamatsu --name "" --grant client_credentials
refused 'unknown option|--frob' "unknown option" client add --tenant takamatsu --name x --grant client_credentials --frob
refused 'nosuch' "show of an unknown client" client show nosuchclient
refused 'nosuch' "rotate-secret of an unknown client" client rotate-secret nosuchclient
refused 'nosuch' "disable of an unknown client" client disable nosuchclient
refused 'nosuch' "enable of an unknown client" client enable nosuchclient
refused 'nosuch' "initial-token for an unknown tenant" client initial-token --tenant nosuch
refused 'uses' "initial-token --uses 0" client initial-token --tenant takamatsu --uses 0
refused 'ttl' "initial-token --ttl 10" client initial-token --tenant takamatsu --ttl 10
refused 'tenant' "initial-token without --tenant" client initial-token
refused 'client' "unknown client command" client frobnicate
refused 'keys' "unknown keys command" keys frobnicate
assert_eq 0 "$(sql "SELECT count(*) FROM renkei.clients WHERE name = 'x'")" "no client named x exists"

# ----------------------------------------------------------- rotate-secret

old_hmac=$(sql "SELECT encode(secret_hmac, 'hex') FROM renkei.clients WHERE id = '$A_ID'")
ok_run "client rotate-secret --json" client rotate-secret "$A_ID" --json
assert_jq "keys == [\"client_id\", \"client_secret\"] and .client_id == \"$A_ID\"" "$RUN_OUT" \
  "rotate-secret --json: client_id and client_secret"
A_NEW=$(jq -r .client_secret <<<"$RUN_OUT")
assert_match "$SECRET_RE" "$A_NEW" "the new secret is 256 bits of base64url"
assert_ne "$A_SECRET" "$A_NEW" "the new secret differs from the old"
new_hmac=$(sql "SELECT encode(secret_hmac, 'hex') FROM renkei.clients WHERE id = '$A_ID'")
assert_ne "$old_hmac" "$new_hmac" "the stored HMAC changed"
assert_eq 64 "${#new_hmac}" "the new HMAC is 32 bytes"
assert_eq 0 "$(db_contains "$A_NEW")" "the new secret's text is in no row"
ev=$(events client.rotate_secret)
assert_eq 1 "$(wc -l <<<"$ev")" "one client.rotate_secret event"
assert_jq ".tenant == \"takamatsu\" and .actor == \"$ACTOR\" and .detail.client_id == \"$A_ID\"" "$ev" \
  "client.rotate_secret: tenant, actor, client_id"
assert_no_match "$A_NEW" "$ev" "the event does not carry the secret"

# ------------------------------------------------------- disable / enable

ok_run "client disable" client disable "$B_ID"
ok_run "client show B after disable" client show "$B_ID" --json
assert_jq '.state == "disabled"' "$RUN_OUT" "B is disabled"
assert_eq disabled "$(sql "SELECT state FROM renkei.clients WHERE id = '$B_ID'")" "the row says disabled"
ev=$(events client.disable)
assert_eq 1 "$(wc -l <<<"$ev")" "one client.disable event"
assert_jq ".tenant == \"takamatsu\" and .actor == \"$ACTOR\" and .detail.client_id == \"$B_ID\"" "$ev" \
  "client.disable: tenant, actor, client_id"
ok_run "client enable" client enable "$B_ID" --json
assert_jq ".client_id == \"$B_ID\" and .state == \"active\"" "$RUN_OUT" "enable --json says active"
assert_eq active "$(sql "SELECT state FROM renkei.clients WHERE id = '$B_ID'")" "the row says active again"
assert_eq 1 "$(events client.enable | wc -l)" "one client.enable event"

# ---------------------------------------------------------- initial-token

ok_run "client initial-token --json" client initial-token --tenant kanonji --uses 3 --ttl 3600 --json
iat=$RUN_OUT
assert_jq '.tenant == "kanonji" and .uses == 3 and .expires_in == 3600' "$iat" "initial-token --json: tenant, uses, expires_in"
IAT=$(jq -r .initial_access_token <<<"$iat")
assert_match "$SECRET_RE" "$IAT" "the initial access token has 256 bits"
assert_eq "kanonji|3|32|t" "$(sql "SELECT tenant_id, uses_left, length(token_hmac),
    expires_at BETWEEN now() + interval '3500 s' AND now() + interval '3700 s' FROM renkei.initial_access_tokens")" \
  "renkei.initial_access_tokens: kanonji, 3 uses, a 32-byte HMAC, expires in an hour"
assert_eq 0 "$(db_contains "$IAT")" "the initial access token's text is in no row"
ev=$(events client.initial_token)
assert_eq 1 "$(wc -l <<<"$ev")" "one client.initial_token event"
assert_jq ".tenant == \"kanonji\" and .actor == \"$ACTOR\"" "$ev" "client.initial_token: tenant kanonji, actor"
assert_no_match "$IAT" "$ev" "the event does not carry the token"

# ------------------------------------------------------------------ keys

assert_eq 0 "$(sql "SELECT count(*) FROM renkei.signing_keys")" "no signing key before the first use"
ok_run "keys list --json" keys list --json
keys=$RUN_OUT
assert_jq 'length == 2 and (map(.alg) | sort) == ["ES256", "RS256"] and all(.[]; .state == "active" and .retire_after == null)' \
  "$keys" "keys list: one active ES256 and one active RS256 key"
assert_jq 'all(.[]; .kid | test("^[A-Za-z0-9_-]{43}$"))' "$keys" "kids are RFC 7638 thumbprints (43 base64url chars)"
assert_eq "0" "$(sql "SELECT count(*) FROM renkei.signing_keys WHERE position(convert_to('PRIVATE', 'UTF8') in private_sealed) > 0")" \
  "no private key is stored as plain PEM"
assert_eq "0" "$(sql "SELECT count(*) FROM renkei.signing_keys WHERE public_jwk ? 'd' OR public_jwk ? 'p'")" \
  "the stored public JWKs hold no private member"
old_kids=$(jq -c 'map(.kid) | sort' <<<"$keys")

ok_run "keys rotate --json" keys rotate --json
rot=$RUN_OUT
assert_jq 'length == 4' "$rot" "after rotation keys lists four keys"
assert_jq '[.[] | select(.state == "active")] | length == 2 and (map(.alg) | sort) == ["ES256", "RS256"]' "$rot" \
  "two active keys, one per algorithm"
assert_jq "[.[] | select(.state == \"retiring\") | .kid] | sort == $old_kids" "$rot" "the old keys are retiring"
assert_jq '[.[] | select(.state == "retiring") | .retire_after | type == "string"] | all' "$rot" "retiring keys have a retire_after"
assert_jq "[.[] | select(.state == \"active\") | .kid] - $old_kids | length == 2" "$rot" "the active kids are new"
assert_eq "t" "$(sql "SELECT bool_and(retire_after > now() + interval '600 s') FROM renkei.signing_keys WHERE state = 'retiring'")" \
  "retiring keys stay published past the longest token lifetime"
ev=$(events key.rotate)
assert_eq 1 "$(wc -l <<<"$ev")" "one key.rotate event"
assert_jq ".actor == \"$ACTOR\" and .tenant == null" "$ev" "key.rotate: actor, about the platform"
assert_jq "(.detail.retiring | sort) == $old_kids and (.detail.created | length) == 2" "$ev" \
  "key.rotate names the retiring and the created kids"
ok_run "keys list (table)" keys list
assert_eq 5 "$(wc -l <<<"$RUN_OUT")" "the table: a header and four keys"
assert_match 'retiring' "$RUN_OUT" "the table shows retiring keys"

# ------------------------------------------------------ nothing leaked

assert_eq 0 "$(db_contains "$A_SECRET" "$A_NEW" "$B_SECRET" "$N_SECRET" "$IAT")" \
  "no secret or initial access token, as text or as bytes, anywhere in the database"
