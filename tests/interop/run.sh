#!/usr/bin/env bash
# shellcheck disable=SC2119  # lib.sh's migrate and hub_start: no arguments needed
# Interop tests: real third-party OAuth libraries (openid-client, jose; see
# package.json) drive a running hub with node --test (tokens.test.mjs), an
# independent audit-log verifier checks what it serves (audit.test.mjs),
# FIWARE's NGSI client ngsijs uses the hosted context store (ngsi.test.mjs),
# and openid-client as a relying party runs the OpenID Connect code flow,
# signing in and consenting through the hub's pages with fetch
# (oidc.test.mjs).
#
# This script prepares what the tests need, the operator's way: a fresh
# database (tests/integration/lib.sh), hosted tenants kagawa, takamatsu and
# marugame, a client_secret_basic and a client_secret_post client of
# takamatsu, an "admin audit.read" client of kagawa, an ngsijs client of
# takamatsu and one of marugame, an initial access token for dynamic
# registration, two residents of takamatsu, and three code-flow apps: a
# confidential one of takamatsu (redirect host app.takamatsu.example, also
# allowed token exchange for https://api.marugame.example/ngsi, with a
# post-logout redirect URI), a confidential one of marugame (redirect host
# app.marugame.example) and a public one of takamatsu; then it starts the
# hub and runs every tests/interop/*.test.mjs against it, with
#   HUB_URL (also the issuer), CLIENT_ID, CLIENT_SECRET, CLIENT_POST_ID,
#   CLIENT_POST_SECRET, IAT, AUDIT_CLIENT_ID, AUDIT_CLIENT_SECRET (a client
#   of kagawa with scopes "admin audit.read"), NGSI_CLIENT_ID,
#   NGSI_CLIENT_SECRET (takamatsu, "ngsi.read ngsi.write"),
#   NGSI_OTHER_CLIENT_ID, NGSI_OTHER_CLIENT_SECRET (marugame, the same scopes),
#   RESIDENT_LOGIN, RESIDENT_PASSWORD, RESIDENT_NAME, RESIDENT_EMAIL and
#   RESIDENT2_LOGIN, RESIDENT2_PASSWORD, RESIDENT2_NAME (residents of
#   takamatsu), TAKA_APP_ID, TAKA_APP_SECRET, TAKA_APP_NAME, MARU_APP_ID,
#   MARU_APP_SECRET, MARU_APP_NAME, PUBLIC_APP_ID (the code-flow apps; the
#   URIs they were registered with are fixed in oidc.test.mjs too)
# in the environment.  Its status is node's: any failed test fails it.
#
# Needs RENKEI_BIN and RENKEI_SRC (set by ctest), node on PATH and the npm
# packages in tests/interop/node_modules (ops/setup runs npm ci there).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../integration/lib.sh
source "$here/../integration/lib.sh"

# ------------------------------------------------------------ prerequisites

if ! command -v node >/dev/null 2>&1; then
  fail "interop tests need node (Node.js 20 or later) on PATH: run ops/setup"
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
assert_ge "$node_major" 20 "node is version 20 or later (node --test, global fetch)"

if [[ ! -d $here/node_modules/openid-client || ! -d $here/node_modules/jose ||
  ! -d $here/node_modules/ngsijs ]]; then
  fail "$here/node_modules is missing (or lacks openid-client/jose/ngsijs): run ops/setup, which runs npm ci in tests/interop"
fi
if [[ $here/package-lock.json -nt $here/node_modules ]]; then
  fail "$here/node_modules is older than package-lock.json: run ops/setup again (npm ci in tests/interop)"
fi

# ------------------------------------------------------------------- setup

migrate

add_tenant() {
  run_renkei tenant add "$@"
  if [[ $RUN_STATUS != 0 ]]; then
    fail "renkei tenant add $* exited $RUN_STATUS: stdout [$RUN_OUT] stderr [$RUN_ERR]"
  fi
  ok "tenant add $1"
}
add_tenant kagawa --name 香川県 --hosted
add_tenant takamatsu --name 高松市 --parent kagawa --hosted
# Another town with a hosted store (ngsi.test.mjs: tenant isolation).
add_tenant marugame --name 丸亀市 --parent kagawa --hosted

# add_client_of TENANT SCOPES VAR_PREFIX NAME [ARGS...]: renkei client add
# for TENANT with the client_credentials grant and SCOPES; sets
# ${VAR_PREFIX}_ID and ${VAR_PREFIX}_SECRET from its --json output.
add_client_of() {
  local tenant=$1 scopes=$2 prefix=$3 name=$4 id secret
  shift 4
  run_renkei client add --tenant "$tenant" --name "$name" --grant client_credentials \
    --scope "$scopes" "$@" --json
  if [[ $RUN_STATUS != 0 ]]; then
    fail "renkei client add --name $name $* exited $RUN_STATUS: stdout [$RUN_OUT] stderr [$RUN_ERR]"
  fi
  id=$(jq -er '.client_id | strings | select(length > 0)' <<<"$RUN_OUT") ||
    fail "client add --name $name: no client_id in [$RUN_OUT]"
  secret=$(jq -er '.client_secret | strings | select(length > 0)' <<<"$RUN_OUT") ||
    fail "client add --name $name: no client_secret in its --json output"
  printf -v "${prefix}_ID" '%s' "$id"
  printf -v "${prefix}_SECRET" '%s' "$secret"
  ok "client add $name ($id)"
}
# add_client VAR_PREFIX NAME [ARGS...]: a client of takamatsu with scopes
# "ngsi.read ngsi.write".
add_client() {
  add_client_of takamatsu "ngsi.read ngsi.write" "$@"
}
add_client CLIENT "interop basic"
add_client CLIENT_POST "interop post" --auth-method client_secret_post
assert_ne "$CLIENT_ID" "$CLIENT_POST_ID" "the two clients have different ids"
# The platform's auditor (audit.test.mjs): creates tenants and reads the log.
add_client_of kagawa "admin audit.read" AUDIT_CLIENT "interop auditor"
# ngsijs's clients (ngsi.test.mjs): one of takamatsu, whose hosted store the
# test fills, and one of marugame, which must see none of it.
add_client NGSI_CLIENT "interop ngsijs"
add_client_of marugame "ngsi.read ngsi.write" NGSI_OTHER_CLIENT "interop ngsijs marugame"

# A data-sharing agreement (ngsi.test.mjs, the exchange): marugame may read
# takamatsu's water levels (the waterLevel attribute only) for flood-watch.
run_renkei agreement add --provider takamatsu --consumer marugame --type WaterLevelObserved \
  --attrs waterLevel --purpose flood-watch --json
if [[ $RUN_STATUS != 0 ]]; then
  fail "renkei agreement add exited $RUN_STATUS: stdout [$RUN_OUT] stderr [$RUN_ERR]"
fi
run_renkei agreement approve "$(jq -r .id <<<"$RUN_OUT")"
assert_eq 0 "$RUN_STATUS" "agreement takamatsu -> marugame approved"

run_renkei client initial-token --tenant takamatsu --uses 5 --json
if [[ $RUN_STATUS != 0 ]]; then
  fail "renkei client initial-token exited $RUN_STATUS: stdout [$RUN_OUT] stderr [$RUN_ERR]"
fi
IAT=$(jq -er '.initial_access_token | strings | select(length > 0)' <<<"$RUN_OUT") ||
  fail "client initial-token: no initial_access_token in its --json output"
ok "client initial-token --tenant takamatsu --uses 5"

# Residents and their apps (oidc.test.mjs).  lib.sh gives renkei (the CLI
# and the hub) cheap scrypt parameters (RENKEI_SCRYPT) for their passwords.

# add_resident LOGIN PASSWORD NAME [ARGS...]: renkei resident add in
# takamatsu, the password on standard input (run_renkei's is /dev/null).
add_resident() {
  local login=$1 password=$2 name=$3 st=0
  shift 3
  _renkei_env resident add --tenant takamatsu \
    --login "$login" --name "$name" --password-stdin "$@" --json
  printf '%s\n' "$password" |
    timeout "$RUN_TIMEOUT" env -i "${_env[@]}" "$RENKEI_BIN" "${_rest[@]}" \
      >"$tmpdir/run.out" 2>"$tmpdir/run.err" || st=$?
  if [[ $st != 0 ]]; then
    fail "renkei resident add --login $login exited $st: stdout [$(cat "$tmpdir/run.out")] stderr [$(cat "$tmpdir/run.err")]"
  fi
  ok "resident add $login"
}
RESIDENT_LOGIN=hanako@example.jp
RESIDENT_PASSWORD=$(_rand)$(_rand)
RESIDENT_NAME="讃岐 花子"
RESIDENT_EMAIL=hanako@example.jp
add_resident "$RESIDENT_LOGIN" "$RESIDENT_PASSWORD" "$RESIDENT_NAME" --email "$RESIDENT_EMAIL"
RESIDENT2_LOGIN=taro
RESIDENT2_PASSWORD=$(_rand)$(_rand)
RESIDENT2_NAME="屋島 太郎"
add_resident "$RESIDENT2_LOGIN" "$RESIDENT2_PASSWORD" "$RESIDENT2_NAME"

# add_app VAR_PREFIX TENANT NAME ARGS...: renkei client add for a code-flow
# app; sets ${VAR_PREFIX}_ID, and ${VAR_PREFIX}_SECRET when it has one.
add_app() {
  local prefix=$1 tenant=$2 name=$3 id
  shift 3
  run_renkei client add --tenant "$tenant" --name "$name" "$@" --json
  if [[ $RUN_STATUS != 0 ]]; then
    fail "renkei client add --name $name $* exited $RUN_STATUS: stdout [$RUN_OUT] stderr [$RUN_ERR]"
  fi
  id=$(jq -er '.client_id | strings | select(length > 0)' <<<"$RUN_OUT") ||
    fail "client add --name $name: no client_id in [$RUN_OUT]"
  printf -v "${prefix}_ID" '%s' "$id"
  printf -v "${prefix}_SECRET" '%s' "$(jq -r '.client_secret // empty' <<<"$RUN_OUT")"
  ok "client add $name ($id)"
}
TAKA_APP_NAME="高松くらしアプリ"
add_app TAKA_APP takamatsu "$TAKA_APP_NAME" \
  --grant authorization_code,refresh_token,urn:ietf:params:oauth:grant-type:token-exchange \
  --scope "openid profile email ngsi.read ngsi.write" \
  --redirect-uri https://app.takamatsu.example/cb \
  --post-logout-redirect-uri https://app.takamatsu.example/bye \
  --audience https://api.marugame.example/ngsi
MARU_APP_NAME="丸亀まちアプリ"
add_app MARU_APP marugame "$MARU_APP_NAME" --grant authorization_code,refresh_token \
  --scope "openid profile email" --redirect-uri https://app.marugame.example/cb
add_app PUBLIC_APP takamatsu "高松スマホアプリ" --public --grant authorization_code,refresh_token \
  --scope "openid profile" --redirect-uri https://app.takamatsu.example/native-cb
if [[ -z $TAKA_APP_SECRET || -z $MARU_APP_SECRET ]]; then
  fail "client add: the confidential apps have no client_secret in their --json output"
fi
if [[ -n $PUBLIC_APP_SECRET ]]; then
  fail "client add --public printed a client_secret"
fi

hub_start
ok "hub listening at $HUB_URL"

# ------------------------------------------------------------------- tests

shopt -s nullglob
test_files=("$here"/*.test.mjs)
shopt -u nullglob
if ((${#test_files[@]} == 0)); then
  fail "no $here/*.test.mjs files to run"
fi

# Plain output (TAP) is easiest to read in a ctest log; the run is bounded so
# that a hung request fails this test with the hub log rather than at the
# ctest timeout.
node_status=0
(
  cd "$here"
  exec env HUB_URL="$HUB_URL" CLIENT_ID="$CLIENT_ID" CLIENT_SECRET="$CLIENT_SECRET" \
    CLIENT_POST_ID="$CLIENT_POST_ID" CLIENT_POST_SECRET="$CLIENT_POST_SECRET" IAT="$IAT" \
    AUDIT_CLIENT_ID="$AUDIT_CLIENT_ID" AUDIT_CLIENT_SECRET="$AUDIT_CLIENT_SECRET" \
    NGSI_CLIENT_ID="$NGSI_CLIENT_ID" NGSI_CLIENT_SECRET="$NGSI_CLIENT_SECRET" \
    NGSI_OTHER_CLIENT_ID="$NGSI_OTHER_CLIENT_ID" NGSI_OTHER_CLIENT_SECRET="$NGSI_OTHER_CLIENT_SECRET" \
    RESIDENT_LOGIN="$RESIDENT_LOGIN" RESIDENT_PASSWORD="$RESIDENT_PASSWORD" \
    RESIDENT_NAME="$RESIDENT_NAME" RESIDENT_EMAIL="$RESIDENT_EMAIL" \
    RESIDENT2_LOGIN="$RESIDENT2_LOGIN" RESIDENT2_PASSWORD="$RESIDENT2_PASSWORD" \
    RESIDENT2_NAME="$RESIDENT2_NAME" \
    TAKA_APP_ID="$TAKA_APP_ID" TAKA_APP_SECRET="$TAKA_APP_SECRET" TAKA_APP_NAME="$TAKA_APP_NAME" \
    MARU_APP_ID="$MARU_APP_ID" MARU_APP_SECRET="$MARU_APP_SECRET" MARU_APP_NAME="$MARU_APP_NAME" \
    PUBLIC_APP_ID="$PUBLIC_APP_ID" \
    NO_COLOR=1 timeout 150 node --test --test-reporter=tap "${test_files[@]}"
) </dev/null || node_status=$?

if ((node_status == 124)); then
  fail "node --test did not finish within 150 s"
fi
if ((node_status != 0)); then
  fail "node --test ${test_files[*]##*/} exited $node_status (see the failed tests above)"
fi
ok "node --test ${test_files[*]##*/}: every test passed"

if ! alive "$HUB_PID"; then
  fail "the hub exited during the interop tests"
fi
ok "the hub is still running after the tests"
