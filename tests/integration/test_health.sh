#!/usr/bin/env bash
# /healthz, /readyz (before and after migrate), /openapi.json, and the
# "listening" log line.
source "$(dirname "$0")/lib.sh"

# The hub starts on an unmigrated database: alive but not ready.
hub_start
assert_jq ".port == $HUB_PORT and (.address | type == \"string\" and test(\":$HUB_PORT\$\"))" \
  "$HUB_LISTENING" "the listening line carries port and address (127.0.0.1:port)"
assert_jq ".issuer == \"http://127.0.0.1:$HUB_PORT\"" "$HUB_LISTENING" \
  "the default issuer is http:// + the address actually bound"

http GET /healthz
assert_status 200 "GET /healthz"
assert_json '. == {"status": "ok"}' '/healthz body is {"status":"ok"}'
assert_match '^application/json' "$(header Content-Type)" "/healthz is JSON"

http GET /readyz
assert_error 503 ServiceUnavailable "/readyz before migrate"
# The signing keys cannot load without their tables either; the reason given
# is the database's, which is what the operator can act on.
assert_json '.description | startswith("not ready: ") and contains("run renkei migrate")' \
  "/readyz before migrate points to renkei migrate: $HTTP_BODY"

http GET /openapi.json
assert_status 200 "GET /openapi.json"
assert_match '^application/json' "$(header Content-Type)" "/openapi.json is JSON"
assert_json '.openapi == "3.1.0"' 'openapi is "3.1.0"'
for p in /healthz /readyz /metrics /openapi.json; do
  assert_json ".paths[\"$p\"].get | type == \"object\"" "openapi documents GET $p"
done
assert_json '.info.title | type == "string" and length > 0' "openapi has info.title"
assert_json '.info.version | type == "string" and length > 0' "openapi has info.version"

# After migrate (the hub keeps running) /readyz becomes 200.
migrate
ready() {
  http GET /readyz
  [[ $HTTP_STATUS == 200 ]]
}
if poll 10 ready; then
  ok "/readyz is 200 after migrate, without restarting the hub"
else
  fail "/readyz still $HTTP_STATUS 10 s after migrate: $HTTP_BODY"
fi
assert_json '.status == "ready"' '/readyz body has "status":"ready"'
assert_match '^application/json' "$(header Content-Type)" "/readyz is JSON"

# HEAD works wherever the Allow header of a 405 says it does.
http DELETE /healthz
allow=$(header Allow)
if [[ $allow =~ HEAD ]]; then
  http HEAD /healthz
  assert_status 200 "HEAD /healthz (Allow: $allow)"
  # Whatever follows the headers of a HEAD reply would be taken for the
  # next response on the connection: there must be nothing.
  exec {fd}<>"/dev/tcp/127.0.0.1/$HUB_PORT"
  printf 'HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&"$fd"
  reply=$(timeout 5 cat <&"$fd" | od -An -c | tr -s ' \n' ' ' || true)
  exec {fd}>&-
  assert_match '^ H T T P / 1 \. 1 2 0 0 ' "$reply" "raw HEAD /healthz answers 200"
  assert_match '\\r \\n \\r \\n $' "$reply" "HEAD /healthz reply ends with the headers (no body)"
fi

# Query strings do not change the route.
http GET '/healthz?probe=1'
assert_status 200 "GET /healthz?probe=1"

# Several requests on one kept-alive connection.
out=$(curl -sS --max-time 30 -w '%{http_code} %{num_connects}\n' \
  -o /dev/null "$HUB_URL/healthz" -o /dev/null "$HUB_URL/readyz" -o /dev/null "$HUB_URL/healthz")
assert_eq $'200 1\n200 0\n200 0' "$out" "three requests on one kept-alive connection"

rc=0
hub_stop || rc=$?
assert_eq 0 "$rc" "hub exits 0 on SIGTERM"
