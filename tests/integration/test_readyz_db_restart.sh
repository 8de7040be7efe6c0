#!/usr/bin/env bash
# /readyz follows the database: 503 while PostgreSQL is down (the hub stays
# alive and /healthz stays 200), 200 again once it is back, no hub restart.
source "$(dirname "$0")/lib.sh"

private_cluster
migrate
hub_start

http GET /readyz
assert_status 200 "/readyz with the database up"

"$RENKEI_SRC/ops/pg" stop "$PG_DIR" --immediate >/dev/null 2>&1 ||
  fail "ops/pg stop $PG_DIR --immediate failed"

not_ready() {
  http GET /readyz
  [[ $HTTP_STATUS == 503 ]]
}
if poll 10 not_ready; then
  ok "/readyz turns 503 when PostgreSQL stops"
else
  fail "/readyz still $HTTP_STATUS 10 s after PostgreSQL stopped: $HTTP_BODY"
fi
assert_error 503 ServiceUnavailable "/readyz with the database down"

# Several more while down: each answers (no hang: curl's own time limit),
# none kills the hub.
for i in 1 2 3; do
  http GET /readyz
  assert_status 503 "/readyz #$i while down"
done
http GET /healthz
assert_status 200 "/healthz stays 200 while the database is down"
check "the hub is still running after PostgreSQL stopped" alive "$HUB_PID"

"$RENKEI_SRC/ops/pg" start "$PG_DIR" >/dev/null 2>"$tmpdir/pg-restart.err" ||
  fail "ops/pg start $PG_DIR failed: $(cat "$tmpdir/pg-restart.err")"

ready() {
  http GET /readyz
  [[ $HTTP_STATUS == 200 ]]
}
if poll 20 ready; then
  ok "/readyz is 200 again after PostgreSQL restarts, without restarting the hub"
else
  fail "/readyz still $HTTP_STATUS 20 s after PostgreSQL restarted: $HTTP_BODY"
fi
assert_json '.status == "ready"' '/readyz says "ready" again'

# Every pooled connection recovers, not just one: a burst of parallel
# requests all succeed.
pids=()
for i in $(seq 1 8); do
  curl -sS --max-time 30 -o /dev/null -w '%{http_code}\n' "$HUB_URL/readyz" >"$tmpdir/burst.$i" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
assert_eq "$(printf '200\n%.0s' 1 2 3 4 5 6 7 8)" "$(cat "$tmpdir"/burst.* | sort)" \
  "8 parallel /readyz after the restart are all 200"

rc=0
hub_stop || rc=$?
assert_eq 0 "$rc" "hub exits 0 on SIGTERM"
