#!/usr/bin/env bash
# Error replies: 404, 405 (with Allow), 413 before the body is read (and the
# RENKEI_MAX_BODY cap), 414, 431; every one {"error","description"} with
# Content-Type: application/json exactly; the hub keeps serving afterwards.
source "$(dirname "$0")/lib.sh"

migrate
hub_start

still_serving() {
  http GET /healthz
  assert_status 200 "hub still serves /healthz after $1"
}

# 404 for unknown paths, whatever the method.
http GET /no/such/thing
assert_error 404 NotFound "GET /no/such/thing"
http POST /no/such/thing -H 'Content-Type: application/json' --data '{}'
assert_error 404 NotFound "POST /no/such/thing"
http GET /healthzz
assert_error 404 NotFound "GET /healthzz (no prefix matching)"
http GET /
assert_error 404 NotFound "GET /"

# 405 for known paths with a wrong method, with Allow.
for req in "DELETE /healthz" "PUT /readyz" "POST /metrics" "PATCH /openapi.json"; do
  read -r method path <<<"$req"
  http "$method" "$path"
  assert_error 405 MethodNotAllowed "$req"
  allow=$(header Allow)
  assert_match '(^|[ ,])GET([ ,]|$)' "$allow" "$req: Allow lists GET"
  assert_no_match "(^|[ ,])$method([ ,]|$)" "$allow" "$req: Allow does not list $method"
done
http POST /healthz -H 'Content-Type: application/json' --data '{"a":1}'
assert_error 405 MethodNotAllowed "POST /healthz with a small body"

# 413 on the declared length alone: only the headers are sent, the reply
# must come without the body.
big_headers() {
  printf 'POST /healthz HTTP/1.1\\r\\nHost: 127.0.0.1:%s\\r\\nContent-Type: application/json\\r\\nContent-Length: %s\\r\\n\\r\\n' \
    "$HUB_PORT" "$1"
}
raw_http "$(big_headers 2000000)" 5
assert_match '^HTTP/1\.[01] 413( |$)' "$RAW_STATUS_LINE" "declared Content-Length 2000000: 413 before the body is sent"
assert_error 413 RequestEntityTooLarge "declared Content-Length 2000000"
still_serving "a 413"

http POST /healthz -H 'Content-Length: 2000000' --data 'x'
assert_error 413 RequestEntityTooLarge "curl POST /healthz with Content-Length: 2000000"

# The default cap is 1 MiB: one byte more is refused at once, exactly 1 MiB
# is not refused for its size.
raw_http "$(big_headers 1048577)" 5
assert_eq 413 "$HTTP_STATUS" "declared Content-Length 1048577 (1 MiB + 1): 413"
raw_http "$(big_headers 1048576)" 2
assert_ne 413 "$HTTP_STATUS" "declared Content-Length 1048576 (1 MiB) is not refused as too large"
still_serving "the 1 MiB checks"

rc=0
hub_stop || rc=$?
assert_eq 0 "$rc" "hub exits 0 on SIGTERM"

# RENKEI_MAX_BODY moves the cap.
hub_start RENKEI_MAX_BODY=4096
raw_http "$(big_headers 4097)" 5
assert_error 413 RequestEntityTooLarge "RENKEI_MAX_BODY=4096, declared Content-Length 4097"
body=$(head -c 4096 /dev/zero | tr '\0' a)
http POST /healthz -H 'Content-Type: text/plain' --data-binary "$body"
assert_error 405 MethodNotAllowed "RENKEI_MAX_BODY=4096, a 4096-byte body is not too large"
http POST /healthz -H 'Content-Type: text/plain' --data-binary "${body}b"
assert_error 413 RequestEntityTooLarge "RENKEI_MAX_BODY=4096, a 4097-byte body"
still_serving "RENKEI_MAX_BODY checks"

# 414 for an enormous URL (100 KiB).
long=$(head -c 102400 /dev/zero | tr '\0' a)
http GET "/$long"
assert_status 414 "GET of a 100 KiB URL"
assert_eq "application/json" "$(header Content-Type)" "414: Content-Type"
assert_json 'type == "object" and keys == ["description", "error"]' "414: body is {error, description}"
still_serving "a 414"

# 431 for a 100 KiB header.
http GET /healthz -H "X-Big: $long"
assert_match '^(431|413)$' "$HTTP_STATUS" "GET with a 100 KiB header: 431 (body [$(_trunc "$HTTP_BODY")])"
assert_eq "application/json" "$(header Content-Type)" "$HTTP_STATUS for a big header: Content-Type"
assert_json 'type == "object" and keys == ["description", "error"]' "$HTTP_STATUS for a big header: body is {error, description}"
still_serving "a 431"

# Many medium headers adding up to more than the limit.
hdrs=()
for i in $(seq 1 200); do hdrs+=(-H "X-Pad-$i: ${long:0:600}"); done
http GET /healthz "${hdrs[@]}"
assert_match '^(431|413)$' "$HTTP_STATUS" "GET with 200 headers of 600 bytes: 431"
still_serving "many headers"

rc=0
hub_stop || rc=$?
assert_eq 0 "$rc" "hub exits 0 on SIGTERM"
