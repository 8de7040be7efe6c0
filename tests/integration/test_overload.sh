#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Overload and slow clients (issue 11):
#   - 200 connections from another address (127.0.0.2) trickle a request's
#     headers or body a byte every 500 ms (slowloris): the per-address limit
#     holds (RENKEI_MAX_CONN_PER_IP=32: at most 32 stay open), and the hub
#     goes on answering everyone else meanwhile (health, a token, a read);
#   - replies waiting for the audit log are bounded: with the log's head
#     locked, 600 cross-town reads arrive at once; 512 wait, the other 88
#     are refused at once with 503 (counted in /metrics), and the 512 get
#     their data, each with its entry, once the lock goes.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/ngsi_lib.sh"

RUN_TIMEOUT=60
SLOW=("$RENKEI_SRC/tests/support/slow_clients.mjs")
ngsi_setup
client_add --tenant takamatsu --name tk-tokens --grant client_credentials --scope ngsi.read
TK_ID=$CID TK_SECRET=$CSECRET
PORT=$HUB_PORT # the tokens' issuer: the hub comes back on the same port
hub_stop || true
hub_start RENKEI_MAX_CONN_PER_IP=32 RENKEI_LISTEN="127.0.0.1:$PORT"

# ------------------------------------------------------------------ slow clients
node "${SLOW[@]}" slow "$HUB_PORT" 127.0.0.2 200 8 >"$tmpdir/slow.json" &
slow=$!
sleep 3
http GET /healthz
assert_status 200 "/healthz is answered while 200 slow connections trickle"
NGSI_TOKEN=$TOK_TK
ngsi GET '/v2/entities?type=WaterLevel'
assert_status 200 "an NGSI read is answered meanwhile"
http POST /oauth2/token -u "$TK_ID:$TK_SECRET" -d grant_type=client_credentials
assert_status 200 "a token is issued meanwhile"
wait "$slow" || fail "the slow clients' script failed"
out=$(cat "$tmpdir/slow.json")
assert_jq '.open_at_end <= 32' "$out" "at most 32 slow connections from one address stay open: $out"
assert_jq '.open_at_end >= 1' "$out" "the slow connections that fit are kept (no one is cut for being slow): $out"
assert_jq '.opened + .refused == 200' "$out" "every connection was answered by accept or refusal: $out"
http GET /healthz
assert_status 200 "the hub is well after the slow clients"

# ------------------------------------------------------------------ replies waiting, bounded
hub_stop || true
hub_start RENKEI_MAX_CONN_PER_IP=0 RENKEI_LISTEN="127.0.0.1:$PORT"
NGSI_TOKEN=$TOK_TK
ngsi_json POST /v2/op/update '{"actionType": "append", "entities": [
  {"id": "WL1", "type": "WaterLevel", "level": {"value": 1.2}}]}'
assert_status 204 "takamatsu loads an entity"
run_renkei agreement add --provider takamatsu --consumer kanonji --type WaterLevel --attrs level \
  --purpose disaster-response --json
AG=$(jq -r .id <<<"$RUN_OUT")
run_renkei agreement approve "$AG" --json
check "the agreement is approved" test "$RUN_STATUS" = 0

metric() {
  curl -s --max-time 10 "$HUB_URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}
before=$(sql "SELECT count(*) FROM renkei.audit_entries WHERE kind = 'transfer'")
psql "$RENKEI_DB" -XqAt -c "BEGIN; SELECT tree_size FROM renkei.audit_head FOR UPDATE; SELECT pg_sleep(120); COMMIT" \
  >/dev/null 2>&1 &
locker=$!
until [[ $(sql "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND state = 'active' AND pid <> pg_backend_pid()") == 1 ]]; do
  sleep 0.05
done
headers=$(jq -cn --arg t "$TOK_KJ" '{"Authorization": ("Bearer " + $t), "Fiware-Service": "takamatsu", "Renkei-Purpose": "disaster-response"}')
node "${SLOW[@]}" burst "$HUB_PORT" 600 '/v2/entities?type=WaterLevel' "$headers" >"$tmpdir/burst.json" &
burst=$!
settled() { (($(metric renkei_http_replies_waiting) + $(metric renkei_http_replies_refused_total) >= 600)); }
poll 60 settled || fail "600 replies were not all waiting or refused within 60 s"
assert_eq 512 "$(metric renkei_http_replies_waiting)" "512 replies wait for the log, no more"
assert_eq 88 "$(metric renkei_http_replies_refused_total)" "the other 88 were refused"
sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()" >/dev/null
wait "$locker" || true
wait "$burst" || fail "the burst's script failed"
out=$(cat "$tmpdir/burst.json")
assert_jq '.statuses == {"200": 512, "503": 88} and .no_answer == 0' "$out" \
  "the 512 got their data once the log took writes, the 88 a 503: $out"
after=$(sql "SELECT count(*) FROM renkei.audit_entries WHERE kind = 'transfer'")
assert_eq 512 "$((after - before))" "one entry for each of the 512 (none for the refused, which sent nothing)"
assert_eq 0 "$(metric renkei_http_replies_waiting)" "nothing waits any more"
http GET /healthz
assert_status 200 "the hub is well after the burst"
