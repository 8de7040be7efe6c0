#!/usr/bin/env bash
# shellcheck disable=SC2119  # lib.sh's migrate and hub_start: no arguments needed
# Interop tests: real third-party OAuth libraries (openid-client, jose; see
# package.json) drive a running hub with node --test (tokens.test.mjs), an
# independent audit-log verifier checks what it serves (audit.test.mjs), and
# FIWARE's NGSI client ngsijs uses the hosted context store (ngsi.test.mjs).
#
# This script prepares what the tests need, the operator's way: a fresh
# database (tests/integration/lib.sh), hosted tenants kagawa, takamatsu and
# marugame, a client_secret_basic and a client_secret_post client of
# takamatsu, an "admin audit.read" client of kagawa, an ngsijs client of
# takamatsu and one of marugame, and an initial access token for dynamic
# registration; then it starts the hub and runs every
# tests/interop/*.test.mjs against it, with
#   HUB_URL (also the issuer), CLIENT_ID, CLIENT_SECRET, CLIENT_POST_ID,
#   CLIENT_POST_SECRET, IAT, AUDIT_CLIENT_ID, AUDIT_CLIENT_SECRET (a client
#   of kagawa with scopes "admin audit.read"), NGSI_CLIENT_ID,
#   NGSI_CLIENT_SECRET (takamatsu, "ngsi.read ngsi.write"),
#   NGSI_OTHER_CLIENT_ID, NGSI_OTHER_CLIENT_SECRET (marugame, the same scopes)
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

run_renkei client initial-token --tenant takamatsu --uses 5 --json
if [[ $RUN_STATUS != 0 ]]; then
  fail "renkei client initial-token exited $RUN_STATUS: stdout [$RUN_OUT] stderr [$RUN_ERR]"
fi
IAT=$(jq -er '.initial_access_token | strings | select(length > 0)' <<<"$RUN_OUT") ||
  fail "client initial-token: no initial_access_token in its --json output"
ok "client initial-token --tenant takamatsu --uses 5"

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
