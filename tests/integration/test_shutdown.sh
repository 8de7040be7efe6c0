#!/usr/bin/env bash
# Graceful shutdown: SIGTERM/SIGINT on an idle hub exit 0 promptly; with a
# request in flight the hub stops accepting connections at once, lets the
# request finish (200) and then exits 0; SIGTERM while the first loads wait on
# a silent database stops the hub without serving first.
source "$(dirname "$0")/lib.sh"

migrate

# No speed is asserted here. A hub that wrongly waited for something at
# shutdown would wait out its whole grace period; the grace is set far above
# hub_wait's limit, so such a hub is killed and its exit status is not 0.
GRACE=(RENKEI_SHUTDOWN_GRACE=300)

# Idle hub, each signal.
for sig in TERM INT; do
  hub_start "${GRACE[@]}"
  http GET /healthz
  assert_status 200 "GET /healthz before SIG$sig"
  kill -"$sig" "$HUB_PID"
  rc=0
  hub_wait 30 || rc=$?
  assert_eq 0 "$rc" "idle hub exits 0 on SIG$sig, without waiting out its grace period"
done

# Idle, with a kept-alive client connection open (as a load balancer keeps).
hub_start "${GRACE[@]}"
exec {ka}<>"/dev/tcp/127.0.0.1/$HUB_PORT"
printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' >&"$ka"
IFS= read -r -t 5 status_line <&"$ka" || status_line=
assert_match '^HTTP/1\.1 200' "${status_line%$'\r'}" "kept-alive connection got its response"
kill -TERM "$HUB_PID"
rc=0
hub_wait 30 || rc=$?
exec {ka}>&-
assert_eq 0 "$rc" "an idle kept-alive connection does not hold up shutdown (exit 0 within the wait)"

# A request in flight: /readyz waits on a lock on renkei.schema_migrations.
hub_start
http GET /readyz
assert_status 200 "/readyz before the lock"

psql "$RENKEI_DB" -Xq -v ON_ERROR_STOP=1 >"$tmpdir/lock.out" 2>&1 <<'SQL' &
BEGIN;
LOCK TABLE renkei.schema_migrations IN ACCESS EXCLUSIVE MODE;
SELECT pg_sleep(4);
COMMIT;
SQL
lock_pid=$!

lock_held() {
  [[ $(sql "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
            WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND c.relname = 'schema_migrations' AND l.mode = 'AccessExclusiveLock' AND l.granted") == 1 ]]
}
poll 5 lock_held || fail "the test's psql did not get the lock: $(cat "$tmpdir/lock.out")"

curl -sS --max-time 30 -o "$tmpdir/inflight.body" -w '%{http_code}' "$HUB_URL/readyz" \
  >"$tmpdir/inflight.status" 2>"$tmpdir/inflight.err" &
curl_pid=$!

# Wait until the hub's query is blocked on the lock (at most 2 s), so the
# request is truly in flight when the signal arrives.
hub_waiting() {
  [[ $(sql "SELECT count(*) FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock'
              AND query ILIKE '%schema_migrations%' AND pid <> pg_backend_pid()") -ge 1 ]]
}
if poll 2 hub_waiting; then
  ok "the hub's /readyz query waits on the lock"
else
  fail "no hub query waiting on the lock within 2 s"
fi
sleep 0.3
check "/readyz is in flight while the lock is held" alive "$curl_pid"

kill -TERM "$HUB_PID"

# New connections are refused after SIGTERM while the request is still in
# flight (the lock is still held), trying every 0.1 s.  A listening socket
# left open shows as curl exit 28 (the kernel accepts, nobody answers) or as
# an answer.
refused() {
  local rc=0
  curl -sS --connect-timeout 0.5 --max-time 0.5 -o /dev/null "$HUB_URL/healthz" 2>/dev/null || rc=$?
  last_rc=$rc
  ((rc == 7))
}
last_rc=
got_refused=0
while alive "$lock_pid"; do
  if refused; then got_refused=1; break; fi
  sleep 0.1
done
if ((got_refused)); then
  ok "a new connection after SIGTERM is refused while a request is in flight"
else
  fail "new connections were still not refused when the in-flight request's lock ended (curl exit $last_rc: 0 = served, 28 = accepted but not answered)"
fi

# All of that happened while the lock was still held and /readyz in flight.
# (If the first fails, the test itself ran too slowly for its 4 s lock.)
check "the lock was still held during the refused-connection check" alive "$lock_pid"
check "/readyz still in flight after SIGTERM" alive "$curl_pid"

st=0
wait "$curl_pid" || st=$?
assert_eq 0 "$st" "the in-flight curl completes (curl error: $(cat "$tmpdir/inflight.err"))"
assert_eq 200 "$(cat "$tmpdir/inflight.status")" "the in-flight /readyz completes with 200 after the lock is released"
assert_jq '.status == "ready"' "$(cat "$tmpdir/inflight.body")" "the in-flight /readyz body says ready"

rc=0
hub_wait 20 || rc=$?
assert_eq 0 "$rc" "the hub exits 0 after finishing the in-flight request"
wait "$lock_pid" || fail "the lock-holding psql failed: $(cat "$tmpdir/lock.out")"
ok "the lock-holding transaction committed"

# SIGTERM while the first loads wait on a database that accepts connections
# and never answers: the hub stops (0) without serving first, as soon as the
# connection attempt in progress gives up (libpq's connect timeout, 5 s).
# Before, the start's wait ran out its 10 s and the hub served first;
# hub_wait's 8 s tells the two apart.
node -e '
  const net = require("node:net"), fs = require("node:fs");
  net.createServer(() => {}).listen(0, "127.0.0.1", function () { fs.writeFileSync(process.argv[1], String(this.address().port)); });
' "$tmpdir/mute.port" &
mute=$!
poll 50 test -s "$tmpdir/mute.port" || fail "the mute listener did not start"
_renkei_env RENKEI_LISTEN=127.0.0.1:0 RENKEI_LOG=debug \
  RENKEI_DB="host=127.0.0.1 port=$(cat "$tmpdir/mute.port") dbname=renkei user=renkei"
from=$(($(wc -l <"$HUB_LOG") + 1))
(
  trap - INT QUIT
  exec env -i "${_env[@]}" "$RENKEI_BIN" serve
) </dev/null >>"$tmpdir/hub.out" 2>>"$HUB_LOG" &
HUB_PID=$!
sleep 1
check "the hub waits for its first loads (the database does not answer)" alive "$HUB_PID"
assert_no_match '"listening"' "$(tail -n +"$from" "$HUB_LOG")" "it has not started serving"
kill -TERM "$HUB_PID"
rc=0
hub_wait 8 || rc=$?
assert_eq 0 "$rc" "SIGTERM during the wait for the first loads: the hub exits 0 without waiting it out"
assert_match 'stopped on SIGTERM before serving' "$(tail -n +"$from" "$HUB_LOG")" "and says so"
kill "$mute" 2>/dev/null || true
wait "$mute" 2>/dev/null || true
