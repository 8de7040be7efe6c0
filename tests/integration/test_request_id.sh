#!/usr/bin/env bash
# X-Request-Id: generated when absent or invalid, echoed when valid, on every
# response; the access log line carries it with method, route, status and
# duration.
source "$(dirname "$0")/lib.sh"

migrate
hub_start

generated='^[0-9a-f]{32}$'

http GET /healthz
id1=$(header X-Request-Id)
assert_match "$generated" "$id1" "a request without X-Request-Id gets a generated id"
http GET /healthz
id2=$(header X-Request-Id)
assert_match "$generated" "$id2" "second generated id"
assert_ne "$id1" "$id2" "two requests get different ids"

# Valid ids come back unchanged: every allowed character, 1 and 128 chars.
for id in "abc-123.X:y_Z" "a" "$(head -c 128 /dev/zero | tr '\0' 'Z')" "0123456789abcdef0123456789abcdef" \
  "trace:01.02-03_04"; do
  http GET /healthz -H "X-Request-Id: $id"
  assert_eq "$id" "$(header X-Request-Id)" "valid X-Request-Id [$(_trunc "$id")] is echoed"
done

# Invalid ids are replaced by a generated one.
long129=$(head -c 129 /dev/zero | tr '\0' 'Z')
long200=$(head -c 200 /dev/zero | tr '\0' 'Z')
for id in "has space" "$long129" "$long200" "semi;colon" 'quote"d' "slash/ed" "ü-nicode" "a,b"; do
  http GET /healthz -H "X-Request-Id: $id"
  got=$(header X-Request-Id)
  assert_match "$generated" "$got" "invalid X-Request-Id [$(_trunc "$id")] is replaced by a generated id"
done
http GET /healthz -H 'X-Request-Id;'
assert_match "$generated" "$(header X-Request-Id)" "an empty X-Request-Id is replaced by a generated id"

# Error responses carry it too, generated or echoed.
http GET /no/such/path
assert_status 404 "GET /no/such/path"
assert_match "$generated" "$(header X-Request-Id)" "a 404 carries a generated X-Request-Id"
http DELETE /healthz -H 'X-Request-Id: err-405.check'
assert_status 405 "DELETE /healthz"
assert_eq "err-405.check" "$(header X-Request-Id)" "a 405 echoes X-Request-Id"
raw_http 'POST /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: err-413\r\nContent-Length: 2000000\r\n\r\n' 5
assert_status 413 "POST /healthz declaring 2000000 bytes"
assert_eq "err-413" "$(header X-Request-Id)" "a 413 echoes X-Request-Id"
http GET /readyz -H 'X-Request-Id: ready-1'
assert_eq "ready-1" "$(header X-Request-Id)" "/readyz echoes X-Request-Id"
http GET /metrics -H 'X-Request-Id: metrics-1'
assert_eq "metrics-1" "$(header X-Request-Id)" "/metrics echoes X-Request-Id"

# The access log: one "request" line per request with its id.
http GET /healthz -H 'X-Request-Id: log-check-1'
assert_status 200 "GET /healthz for the access log"
http GET /no/such/path -H 'X-Request-Id: log-check-2'
assert_status 404 "GET /no/such/path for the access log"

logged() {
  [[ -n $(hub_log_objects ".msg == \"request\" and .request_id == \"$1\"") ]]
}
poll 5 logged log-check-2 || fail "no access log line with request_id log-check-2 in 5 s"
line=$(hub_log_objects '.msg == "request" and .request_id == "log-check-1"')
assert_eq 1 "$(grep -c . <<<"$line")" "exactly one access log line for request log-check-1"
assert_jq '.method == "GET" and .route == "/healthz" and .status == 200' "$line" \
  "access log line has method GET, route /healthz, status 200"
assert_jq '.duration_ms | type == "number" and . >= 0' "$line" "access log line has a numeric duration_ms"
line=$(hub_log_objects '.msg == "request" and .request_id == "log-check-2"')
assert_jq '.method == "GET" and .status == 404 and (.route | type == "string")' "$line" \
  "access log line for the 404 has method, status 404 and a route"
line=$(hub_log_objects ".msg == \"request\" and .request_id == \"$id1\"")
assert_jq '.route == "/healthz" and .status == 200' "$line" "the generated id is the one logged"

# An invalid id never reaches the log.
assert_eq "" "$(hub_log_objects '.msg == "request" and (.request_id | tostring | test(" "))')" \
  "no access log line carries the invalid id with a space"

# The whole log is one JSON object per line.
bad=$(jq -R 'select((try fromjson catch null) | type != "object")' <"$HUB_LOG" | awk 'NR <= 5')
assert_eq "" "$bad" "every hub log line is a JSON object"

rc=0
hub_stop || rc=$?
assert_eq 0 "$rc" "hub exits 0 on SIGTERM"
