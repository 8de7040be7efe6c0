# shellcheck shell=bash
# shellcheck disable=SC2034 # tokens set for the tests that source this file
# Helpers for the NGSI-v2 tests (test_ngsi_*.sh), sourced after lib.sh and
# authz_lib.sh.  The expectations in those tests come from Orion's documented
# behaviour (the NGSI-v2 specification and the Orion manual), not from the
# hub's code.
#
#   ngsi_setup                  the demo prefecture (kagawa; towns takamatsu
#                               and kanonji, all hosted), NGSI clients and
#                               their tokens, a running hub:
#                                 TOK_KJ     kanonji, ngsi.read ngsi.write
#                                 TOK_KJ_RO  kanonji, ngsi.read
#                                 TOK_KJ_WO  kanonji, ngsi.write
#                                 TOK_TK     takamatsu, ngsi.read ngsi.write
#                               NGSI_TOKEN (the token ngsi sends) = TOK_KJ
#   ngsi METHOD PATH [CURL ARGS...]
#                               http with "Authorization: Bearer $NGSI_TOKEN"
#   ngsi_json METHOD PATH BODY [CURL ARGS...]
#                               ngsi with BODY as application/json
#   ngsi_get PATH [NAME=VALUE]... [-- CURL ARGS...]
#                               GET PATH with each NAME=VALUE URL-encoded into
#                               the query string
#   ngsi_create BODY [CURL ARGS...]
#                               POST /v2/entities that must answer 201
#   ids                         the ids of the entities in the last body, as
#                               a compact JSON array
#   assert_ids EXPECTED MSG     ids == EXPECTED (a compact JSON array)
#   await_agreement TOKEN ID    until the hub's catalogue lists agreement ID
#   orion_standin TOKEN         the stand-in for a town's Orion
#                               (tests/support/orion_standin.c) on a free
#                               port, answering only TOKEN: ORION (its URL),
#                               ORION_PORT, ORION_PID; stopped at the end
#
# RENKEI_TEST_CONTINUE=1 turns a failed assertion into a report that does not
# stop the test (the test still fails at its end, through ngsi_finish): handy
# to list every departure from Orion in one run.  Later checks may then fail
# only because an earlier one did.

NGSI_TOKEN=
_ngsi_soft_failures=0

if [[ ${RENKEI_TEST_CONTINUE:-} == 1 ]]; then
  fail() {
    _ngsi_soft_failures=$((_ngsi_soft_failures + 1))
    echo "FAIL (continuing): $(_trunc "$*")" >&2
    return 0
  }
fi

# ngsi_finish: ends a test that ran with RENKEI_TEST_CONTINUE=1 with status 1
# when any assertion failed.
ngsi_finish() {
  if ((_ngsi_soft_failures > 0)); then
    _failed_msg="$_ngsi_soft_failures failed assertions"
    echo "FAIL: $_ngsi_soft_failures assertions failed (RENKEI_TEST_CONTINUE=1)" >&2
    exit 1
  fi
}

ngsi_setup() {
  az_setup
  client_add --tenant kanonji --name kj-ngsi --grant client_credentials --scope "ngsi.read ngsi.write"
  local kj=("$CID" "$CSECRET")
  client_add --tenant kanonji --name kj-reader --grant client_credentials --scope "ngsi.read"
  local kj_ro=("$CID" "$CSECRET")
  client_add --tenant kanonji --name kj-writer --grant client_credentials --scope "ngsi.write"
  local kj_wo=("$CID" "$CSECRET")
  client_add --tenant takamatsu --name tk-ngsi --grant client_credentials --scope "ngsi.read ngsi.write"
  local tk=("$CID" "$CSECRET")
  hub_start
  get_token "${kj[@]}"
  TOK_KJ=$TOKEN
  get_token "${kj_ro[@]}"
  TOK_KJ_RO=$TOKEN
  get_token "${kj_wo[@]}"
  TOK_KJ_WO=$TOKEN
  get_token "${tk[@]}"
  TOK_TK=$TOKEN
  NGSI_TOKEN=$TOK_KJ
}

# water_levels_shared [KANONJI_TOKEN]: takamatsu holds two WaterLevel
# entities (WL1, WL2), written with $NGSI_TOKEN (a takamatsu token), and an
# approved agreement (WATER_AGREEMENT) gives kanonji read access to them for
# disaster-response; with a kanonji token, until the hub knows it.
water_levels_shared() {
  ngsi_json POST /v2/op/update '{"actionType": "append", "entities": [
    {"id": "WL1", "type": "WaterLevel", "level": {"value": 1.2}},
    {"id": "WL2", "type": "WaterLevel", "level": {"value": 3.4}}]}'
  assert_status 204 "takamatsu's water levels"
  run_renkei agreement add --provider takamatsu --consumer kanonji --type WaterLevel \
    --purpose disaster-response --json
  local ag
  ag=$(jq -r .id <<<"$RUN_OUT")
  run_renkei agreement approve "$ag"
  assert_eq 0 "$RUN_STATUS" "kanonji may read them under an agreement [$RUN_ERR]"
  WATER_AGREEMENT=$ag
  [[ -z ${1:-} ]] || await_agreement "$1" "$ag"
}

# await_agreement TOKEN ID: until the hub's catalogue for TOKEN's town lists
# agreement ID (the hub learns of a change made by the CLI by NOTIFY, a
# moment after its commit)
await_agreement() {
  _listed() {
    http GET /exchange/v1/catalog -H "Authorization: Bearer $1"
    jq -e --arg id "$2" 'any(.items[]; .agreement == $id)' <<<"$HTTP_BODY" >/dev/null 2>&1
  }
  poll 10 _listed "$1" "$2" || fail "the hub does not list agreement $2: $HTTP_BODY"
}

ngsi() {
  local method=$1 path=$2
  shift 2
  http "$method" "$path" -H "Authorization: Bearer $NGSI_TOKEN" "$@"
}

ngsi_json() {
  local method=$1 path=$2 body=$3
  shift 3
  ngsi "$method" "$path" -H 'Content-Type: application/json' --data-binary "$body" "$@"
}

ngsi_get() {
  local path=$1
  shift
  local -a enc=()
  while (($#)) && [[ $1 != -- ]]; do
    enc+=(--data-urlencode "$1")
    shift
  done
  [[ ${1:-} == -- ]] && shift
  ngsi GET "$path" -G "${enc[@]}" "$@"
}

ngsi_create() {
  local body=$1 what
  shift
  ngsi_json POST /v2/entities "$body" "$@"
  # the message names the entity: {"id":ID,"type":TYPE}, which jq (a process
  # per create) is needed for only when the body's id and type are not plain
  if [[ $body =~ ^\{[[:space:]]*\"id\":\ ?\"([A-Za-z0-9_.:-]*)\",\ ?\"type\":\ ?\"([A-Za-z0-9_.:-]*)\"[,}] ]]; then
    what="{\"id\":\"${BASH_REMATCH[1]}\",\"type\":\"${BASH_REMATCH[2]}\"}"
  else
    what=$(jq -c '{id, type}' <<<"$body" 2>/dev/null || echo "$body")
  fi
  assert_status 201 "create $what"
}

ids() {
  jq -c '[.[].id]' <<<"$HTTP_BODY"
}

assert_ids() {
  local got
  got=$(jq -c '[.[].id]' <<<"$HTTP_BODY" 2>/dev/null || echo "not an array: $HTTP_BODY")
  assert_eq "$1" "$got" "$2"
}

orion_standin() {
  [[ -x ${ORION_STANDIN:-} ]] || fail "ORION_STANDIN must name the built orion-standin"
  "$ORION_STANDIN" --port 0 --token "$1" >"$tmpdir/orion.out" 2>"$tmpdir/orion.err" &
  ORION_PID=$!
  poll 10 grep -q '^port ' "$tmpdir/orion.out" || fail "the stand-in did not start: $(cat "$tmpdir/orion.err")"
  ORION_PORT=$(awk '/^port /{print $2}' "$tmpdir/orion.out")
  ORION=http://127.0.0.1:$ORION_PORT
}
