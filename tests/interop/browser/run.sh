#!/usr/bin/env bash
# shellcheck disable=SC2119  # lib.sh's migrate and hub_start: no arguments needed
# Browser tests: playwright-core drives Debian's chromium (headless) through
# the consoles and the resident pages as people use them (*.test.mjs here).
#
# The data is the demo prefecture, loaded the operator's way: ops/demo
# (kagawa and three towns, agreements, the resident hanako, the watch-over
# app, the consoles' staff, a proposal of kanonji to ayagawa), the hub
# started, ops/demo-sensors (each town's sensor data) and one round of
# ops/demo-traffic (cross-town reads, permitted and denied, in the audit
# log). Then the tests run with, in the environment:
#   HUB_URL, SCREENSHOT_DIR (where each test saves its screenshots: not
#   committed, for a person to look at), CHROMIUM (the browser),
#   STAFF_PASSWORD (every demo staff account's: auditor@kagawa.example,
#   operator@kagawa.example, admin@{takamatsu,kanonji,ayagawa}.example),
#   RESIDENT_LOGIN, RESIDENT_PASSWORD (hanako, linked to takamatsu's TK-000123),
#   MIMAMORI_APP_ID, MIMAMORI_REDIRECT (kanonji's public watch-over app),
#   KANONJI_CLIENT_ID, KANONJI_CLIENT_SECRET (a kanonji service, ngsi.read),
#   PROPOSED_AGREEMENT (kanonji -> ayagawa RoadSegment, disaster-response,
#   proposed), RENKEI_DB_SUPER (a superuser's conninfo of the hub's
#   database: the tamper test changes an entry behind the hub's back),
#   PSQL (the psql to use).
# Its status is node's: any failed test fails it.
#
# Needs RENKEI_BIN and RENKEI_SRC (set by ctest), node, the npm packages of
# tests/interop (ops/setup) and chromium (ops/setup installs it).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../integration/lib.sh
source "$here/../../integration/lib.sh"

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [[ ! -x $CHROMIUM ]]; then
  fail "browser tests need Debian's chromium at $CHROMIUM: run ops/setup"
fi
if [[ ! -d $here/../node_modules/playwright-core ]]; then
  fail "$here/../node_modules lacks playwright-core: run ops/setup (npm ci in tests/interop)"
fi
SCREENSHOT_DIR=${SCREENSHOT_DIR:-$PWD/screenshots}
mkdir -p "$SCREENSHOT_DIR"

migrate

# with_env CMD...: CMD with the environment renkei gets in these tests
with_env() {
  _renkei_env
  env -i "${_env[@]}" RENKEI_BIN="$RENKEI_BIN" "$@"
}
step() {
  local what=$1 st=0
  shift
  with_env "$@" >"$tmpdir/step.out" 2>"$tmpdir/step.err" || st=$?
  if [[ $st != 0 ]]; then
    fail "$what exited $st: stdout [$(cat "$tmpdir/step.out")] stderr [$(cat "$tmpdir/step.err")]"
  fi
  ok "$what"
}
step "ops/demo" bash "$RENKEI_SRC/ops/demo" "$RENKEI_BIN"

run_renkei client add --tenant kanonji --name "browser test service" --grant client_credentials \
  --scope "ngsi.read" --json
assert_eq 0 "$RUN_STATUS" "client add (kanonji's service)"
KANONJI_CLIENT_ID=$(jq -r .client_id <<<"$RUN_OUT")
KANONJI_CLIENT_SECRET=$(jq -r .client_secret <<<"$RUN_OUT")

run_renkei client list --tenant kanonji --json
MIMAMORI_APP_ID=$(jq -er '.[] | select(.name == "見守りアプリ") | .client_id' <<<"$RUN_OUT") ||
  fail "ops/demo made no watch-over app: [$RUN_OUT]"

run_renkei agreement list --provider ayagawa --consumer kanonji --json
PROPOSED_AGREEMENT=$(jq -er '.[] | select(.state == "proposed") | .id' <<<"$RUN_OUT") ||
  fail "ops/demo left no proposal of kanonji to ayagawa: [$RUN_OUT]"

hub_start
ok "hub listening at $HUB_URL"
step "ops/demo-sensors" bash "$RENKEI_SRC/ops/demo-sensors" "$HUB_URL" "$RENKEI_BIN"
step "ops/demo-traffic (one round)" bash "$RENKEI_SRC/ops/demo-traffic" "$HUB_URL" 1 "$RENKEI_BIN"

shopt -s nullglob
test_files=("$here"/*.test.mjs)
shopt -u nullglob
if ((${#test_files[@]} == 0)); then
  fail "no $here/*.test.mjs files to run"
fi

node_status=0
(
  cd "$here"
  exec env HUB_URL="$HUB_URL" SCREENSHOT_DIR="$SCREENSHOT_DIR" CHROMIUM="$CHROMIUM" \
    STAFF_PASSWORD=demo-password RESIDENT_LOGIN=hanako@example.jp RESIDENT_PASSWORD=demo-password \
    MIMAMORI_APP_ID="$MIMAMORI_APP_ID" MIMAMORI_REDIRECT=http://127.0.0.1:8766/callback \
    KANONJI_CLIENT_ID="$KANONJI_CLIENT_ID" KANONJI_CLIENT_SECRET="$KANONJI_CLIENT_SECRET" \
    PROPOSED_AGREEMENT="$PROPOSED_AGREEMENT" RENKEI_DB_SUPER="$RENKEI_DB" PSQL="$_PSQL" \
    HOME="${HOME:-/tmp}" PATH="$PATH" NO_COLOR=1 \
    timeout 330 node --test --test-concurrency=1 --test-reporter=tap "${test_files[@]}"
) </dev/null || node_status=$?

if ((node_status == 124)); then
  fail "node --test did not finish within 330 s"
fi
if ((node_status != 0)); then
  fail "node --test ${test_files[*]##*/} exited $node_status (see the failed tests above)"
fi
ok "node --test ${test_files[*]##*/}: every test passed"
ok "screenshots in $SCREENSHOT_DIR"

if ! alive "$HUB_PID"; then
  fail "the hub exited during the browser tests"
fi
ok "the hub is still running after the tests"
