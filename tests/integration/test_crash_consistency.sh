#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Crash consistency of the audit log (issue 11). Two clients read takamatsu's
# data from kanonji under an agreement, each request with an id of its own
# (X-Request-Id), while the hub is killed with SIGKILL at random moments and
# started again, and while PostgreSQL is stopped with -m immediate and
# started again. Afterwards:
#   - every read the clients saw answered with data has its transfer entry,
#     found by the request's id and the digest of the very body received:
#     no data left the hub without its record;
#   - the log's seq runs from 0 without a gap;
#   - `renkei audit verify` passes (the Merkle tree and the checkpoints);
#   - no entry was written twice for one request.
# RENKEI_CRASH_CYCLES sets the number of kills (default 8; PostgreSQL goes
# down on every fourth).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/ngsi_lib.sh"

RUN_TIMEOUT=60
CYCLES=${RENKEI_CRASH_CYCLES:-8}
private_cluster
ngsi_setup
PORT=$HUB_PORT

NGSI_TOKEN=$TOK_TK
ngsi_json POST /v2/op/update '{"actionType": "append", "entities": [
  {"id": "WL1", "type": "WaterLevel", "level": {"value": 1.2}, "status": {"value": "normal"}},
  {"id": "WL2", "type": "WaterLevel", "level": {"value": 3.4}, "status": {"value": "warning"}}
]}'
assert_status 204 "takamatsu loads its entities"
run_renkei agreement add --provider takamatsu --consumer kanonji --type WaterLevel \
  --attrs level,status --purpose disaster-response --json
AG=$(jq -r .id <<<"$RUN_OUT")
run_renkei agreement approve "$AG" --json
check "the agreement is approved" test "$RUN_STATUS" = 0

# client NAME: reads until $tmpdir/stop exists; one line per request in
# $tmpdir/NAME.log: "id status digest" (digest: base64 of the body's SHA-256,
# as the audit entry writes it).
client() {
  local name=$1 i=0 id code sum
  while [[ ! -e $tmpdir/stop ]]; do
    i=$((i + 1))
    id="$name-$i"
    code=$(curl -s -o "$tmpdir/$name.body" -w '%{http_code}' --max-time 20 \
      -H "X-Request-Id: $id" -H "Authorization: Bearer $TOK_KJ" \
      -H 'Fiware-Service: takamatsu' -H 'Renkei-Purpose: disaster-response' \
      "http://127.0.0.1:$PORT/v2/entities?type=WaterLevel" 2>/dev/null || true)
    sum=$(openssl dgst -sha256 -binary "$tmpdir/$name.body" 2>/dev/null | base64 -w0)
    echo "$id $code $sum" >>"$tmpdir/$name.log"
  done
}
: >"$tmpdir/c1.log"
: >"$tmpdir/c2.log"
client c1 &
c1=$!
client c2 &
c2=$!

ok_before() { awk '$2 == 200' "$tmpdir"/c1.log "$tmpdir"/c2.log | wc -l; }
served_since() { (($(ok_before) > $1)); }

kills=0 pg_stops=0
for ((cycle = 1; cycle <= CYCLES; cycle++)); do
  # let some reads through first, then kill at a random moment
  before=$(ok_before)
  poll 30 served_since "$before" || fail "cycle $cycle: no read answered within 30 s"
  sleep "0.$((RANDOM % 9 + 1))"
  if ((cycle % 4 == 0)); then
    "$RENKEI_SRC/ops/pg" stop "$PG_DIR" --immediate >/dev/null 2>&1 ||
      fail "ops/pg stop --immediate failed"
    pg_stops=$((pg_stops + 1))
    sleep "0.$((RANDOM % 9 + 1))"
    "$RENKEI_SRC/ops/pg" start "$PG_DIR" >/dev/null 2>"$tmpdir/pg.err" ||
      fail "ops/pg start failed: $(cat "$tmpdir/pg.err")"
    sleep "0.$((RANDOM % 5 + 1))"
  fi
  kill -KILL "$HUB_PID"
  hub_wait 10 || true
  kills=$((kills + 1))
  hub_start RENKEI_LISTEN="127.0.0.1:$PORT"
done
before=$(ok_before)
poll 30 served_since "$before" || fail "no read answered after the last restart"
touch "$tmpdir/stop"
wait "$c1" "$c2" || true
ok "$kills kills of the hub and $pg_stops immediate stops of PostgreSQL, reads going on"

cat "$tmpdir"/c1.log "$tmpdir"/c2.log >"$tmpdir/all.log"
answered=$(awk '$2 == 200' "$tmpdir/all.log" | wc -l)
refused=$(awk '$2 != 200' "$tmpdir/all.log" | wc -l)
assert_ge "$answered" "$((CYCLES + 1))" "reads answered with data ($answered; $refused refused or cut)"

# The answered reads against the log, in one query.
awk '$2 == 200 { print $1 "\t" $3 }' "$tmpdir/all.log" >"$tmpdir/answered.tsv"
missing=$(reads_without_entries "$tmpdir/answered.tsv")
assert_eq "" "$missing" "every read answered with data has its entry, with the digest of what was sent"
twice=$(sql "SELECT count(*) FROM (SELECT canonical::jsonb -> 'request' ->> 'id' AS id
  FROM renkei.audit_entries WHERE kind = 'transfer' AND canonical::jsonb -> 'request' ->> 'id' LIKE 'c_-%'
  GROUP BY 1 HAVING count(*) > 1) d")
assert_eq 0 "$twice" "no request has two entries"
assert_eq "t" "$(sql "SELECT min(seq) = 0 AND max(seq) = count(*) - 1 FROM renkei.audit_entries")" \
  "seq runs from 0 without a gap ($(sql "SELECT count(*) FROM renkei.audit_entries") entries)"

hub_stop || true
run_renkei audit verify --json
assert_eq 0 "$RUN_STATUS" "renkei audit verify exits 0 [$RUN_ERR]"
assert_jq '.ok == true' "$RUN_OUT" "the log verifies after the crashes"
