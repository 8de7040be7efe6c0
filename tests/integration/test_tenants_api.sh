#!/usr/bin/env bash
# The admin API /admin/v1/tenants[/{id}] before the token service exists:
# every route is there (OpenAPI, 405 with Allow for other methods) and
# refuses every request with 401 and a Bearer challenge, before it looks at
# the body, whatever credentials come along, and changes nothing.  Also the
# demo data (ops/demo): the Kagawa prefecture and three hosted towns, loaded
# once however often it runs.
source "$(dirname "$0")/lib.sh"

RUN_TIMEOUT=20
migrate

list_json() {
  run_renkei tenant list --json
  assert_eq 0 "$RUN_STATUS" "tenant list --json (stderr [$RUN_ERR])"
  LIST=$RUN_OUT
}

# ---------------------------------------------------------------- ops/demo

# run_demo: ops/demo with nothing but RENKEI_BIN and RENKEI_DB, from a
# directory of its own (the default secret file ./var/secret goes there).
mkdir -m 700 "$tmpdir/demo"
run_demo() {
  DEMO_STATUS=0
  (cd "$tmpdir/demo" && env -i PATH="$PATH" HOME="${HOME:-/tmp}" LANG=C.UTF-8 \
    RENKEI_BIN="$RENKEI_BIN" RENKEI_DB="$RENKEI_DB" \
    timeout 60 "$RENKEI_SRC/ops/demo") >"$tmpdir/demo.out" 2>"$tmpdir/demo.err" || DEMO_STATUS=$?
}

run_demo
assert_eq 0 "$DEMO_STATUS" "ops/demo exits 0 (stdout [$(cat "$tmpdir/demo.out")] stderr [$(cat "$tmpdir/demo.err")])"
list_json
assert_jq 'map(.id) == ["ayagawa", "kagawa", "kanonji", "takamatsu"]' "$LIST" \
  "ops/demo loads exactly kagawa, takamatsu, kanonji and ayagawa"
assert_jq '.[] | select(.id == "kagawa") | .name == "香川県" and .parent == null and .state == "active" and .city_os == {"kind": "hosted"}' \
  "$LIST" "kagawa is 香川県, the top of the tree, active, hosted"
for town in takamatsu:高松市 kanonji:観音寺市 ayagawa:綾川町; do
  id=${town%%:*} name=${town#*:}
  assert_jq ".[] | select(.id == \"$id\") | .name == \"$name\" and .parent == \"kagawa\" and .state == \"active\" and .city_os == {\"kind\": \"hosted\"}" \
    "$LIST" "$id is $name under kagawa, active, hosted"
done
assert_eq "ayagawa|tenant.create
kagawa|tenant.create
kanonji|tenant.create
takamatsu|tenant.create" "$(sql "SELECT tenant, kind FROM renkei.audit_events WHERE kind LIKE 'tenant.%' ORDER BY tenant")" \
  "ops/demo wrote one tenant.create event per tenant"
assert_eq "ayagawa|agreement.propose
ayagawa|resident.create
ayagawa|staff.grant
kagawa|resident.create
kagawa|resident.create
kagawa|staff.grant
kagawa|staff.grant
kanonji|client.create
kanonji|resident.create
kanonji|resident.create
kanonji|staff.grant
takamatsu|agreement.approve
takamatsu|agreement.approve
takamatsu|agreement.approve
takamatsu|agreement.propose
takamatsu|agreement.propose
takamatsu|agreement.propose
takamatsu|client.create
takamatsu|resident.create
takamatsu|resident.create
takamatsu|resident.link
takamatsu|staff.grant" "$(sql "SELECT tenant, kind FROM renkei.audit_events WHERE kind NOT LIKE 'tenant.%' ORDER BY tenant, kind")" \
  "and its demo residents (hanako of takamatsu, linked to her number there; taro of kanonji), the demo app of takamatsu, kanonji's watch-over app, three agreements of takamatsu's data proposed and approved, kanonji's proposal to ayagawa, and the consoles' staff with their roles (kagawa's auditor and operator, each town's administrator)"
assert_eq 0 "$(sql "SELECT count(*) FROM renkei.tenant_upstreams")" "the demo towns have no upstream (all hosted)"

demo_list=$LIST
demo_rows=$(sql "SELECT id, name, parent_id, state, city_os, created_at, updated_at, version FROM renkei.tenants ORDER BY id")
demo_events=$(sql "SELECT count(*), max(seq) FROM renkei.audit_events")
run_demo
assert_eq 0 "$DEMO_STATUS" "ops/demo a second time exits 0 (stderr [$(cat "$tmpdir/demo.err")])"
list_json
assert_eq "$demo_list" "$LIST" "a second ops/demo: tenant list --json unchanged"
assert_eq "$demo_rows" "$(sql "SELECT id, name, parent_id, state, city_os, created_at, updated_at, version FROM renkei.tenants ORDER BY id")" \
  "a second ops/demo: the same rows, versions and times"
assert_eq "$demo_events" "$(sql "SELECT count(*), max(seq) FROM renkei.audit_events")" \
  "a second ops/demo: no new pending events"

# ------------------------------------------------------------ the admin API

# A remote town with a token, so that there is something worth hiding.
TOKEN="rk-api-token-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$TOKEN" >"$tmpdir/token"
run_renkei tenant add marugame --name 丸亀市 --parent kagawa --city-os https://orion.marugame.example.jp/ \
  --upstream-token-file "$tmpdir/token"
assert_eq 0 "$RUN_STATUS" "tenant add marugame (stderr [$RUN_ERR])"

# Everything the API could change, to compare at the end.
registry() {
  sql "SELECT (SELECT string_agg(t::text, '|' ORDER BY t.id) FROM renkei.tenants t)
       || ' // ' || (SELECT string_agg(u::text, '|' ORDER BY u.tenant_id) FROM renkei.tenant_upstreams u)
       || ' // ' || (SELECT count(*) || ',' || max(seq) FROM renkei.audit_events)"
}
before=$(registry)

hub_start

# unauthorized WHAT: the last response is a 401 for a request without a
# valid token of the hub (RFC 6750 §3: with error="invalid_token" when a
# token was presented).
unauthorized() {
  assert_error 401 Unauthorized "$1"
  assert_match '^Bearer realm="renkei"($|, error="invalid_token")' "$(header WWW-Authenticate)" "$1: WWW-Authenticate: Bearer realm=\"renkei\""
  assert_no_match "$TOKEN|orion\.marugame|丸亀|高松|kagawa" "$HTTP_BODY" "$1: the body tells nothing about tenants"
}

GOOD_CREATE='{"id": "zentsuji", "name": "善通寺市", "parent": "kagawa", "city_os": {"kind": "hosted"}}'
GOOD_PATCH='{"name": "乗っ取り", "state": "suspended", "parent": null}'
declare -a creds=(
  "no Authorization"
  "Authorization: Bearer anything"
  "Authorization: Bearer eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzY29wZSI6ImFkbWluIiwidGVuYW50IjoidGFrYW1hdHN1In0."
  "Authorization: Basic YWRtaW46YWRtaW4="
  "Authorization: Bearer"
  "Authorization: bearer $TOKEN"
)
for cred in "${creds[@]}"; do
  h=()
  if [[ $cred != "no Authorization" ]]; then h=(-H "$cred"); fi
  what="(${cred:0:40})"
  http GET /admin/v1/tenants "${h[@]}"
  unauthorized "GET /admin/v1/tenants $what"
  http GET '/admin/v1/tenants?limit=2&cursor=kagawa' "${h[@]}"
  unauthorized "GET /admin/v1/tenants?limit=2&cursor=kagawa $what"
  http GET /admin/v1/tenants/takamatsu "${h[@]}"
  unauthorized "GET /admin/v1/tenants/takamatsu $what"
  http GET /admin/v1/tenants/marugame "${h[@]}"
  unauthorized "GET /admin/v1/tenants/marugame $what"
  http POST /admin/v1/tenants "${h[@]}" -H 'Content-Type: application/json' --data "$GOOD_CREATE"
  unauthorized "POST /admin/v1/tenants (a valid body) $what"
  http PATCH /admin/v1/tenants/takamatsu "${h[@]}" -H 'Content-Type: application/json' -H 'If-Match: W/"1"' \
    --data "$GOOD_PATCH"
  unauthorized "PATCH /admin/v1/tenants/takamatsu (a valid body) $what"
done

# Authorization comes first: what is wrong with the rest of the request is
# never looked at (no 400, 404, 413 of parsing, 415).
http POST /admin/v1/tenants -H 'Authorization: Bearer anything' -H 'Content-Type: application/json' --data '{"id": "x", "name":'
unauthorized "POST with a malformed JSON body"
http POST /admin/v1/tenants -H 'Content-Type: application/json' --data '{"id": "x", "name":'
unauthorized "POST with a malformed JSON body and no credentials"
http POST /admin/v1/tenants -H 'Content-Type: application/json' --data '{"id": "x", "id": "y"}'
unauthorized "POST with a duplicate member"
http POST /admin/v1/tenants -H 'Content-Type: application/json' --data "$(printf '[%.0s' {1..200})$(printf ']%.0s' {1..200})"
unauthorized "POST with a deeply nested body"
http POST /admin/v1/tenants -H 'Content-Type: text/plain' --data 'hello'
unauthorized "POST with Content-Type text/plain"
http POST /admin/v1/tenants -H 'Content-Type: application/json'
unauthorized "POST with an empty body"
http POST /admin/v1/tenants -H 'Content-Type: application/json' --data '{"id": "BAD ID", "name": "", "frob": 1}'
unauthorized "POST with an invalid tenant"
http PATCH /admin/v1/tenants/takamatsu -H 'Authorization: Bearer anything' -H 'Content-Type: application/json' --data 'not json'
unauthorized "PATCH with a malformed body"
http PATCH /admin/v1/tenants/takamatsu -H 'Content-Type: application/json' -H 'If-Match: garbage' --data '{"state": "gone"}'
unauthorized "PATCH with a bad If-Match and a bad state"
http GET '/admin/v1/tenants?limit=abc&cursor=%2A'
unauthorized "GET /admin/v1/tenants with a bad limit and cursor"
http GET /admin/v1/tenants/nosuch
unauthorized "GET /admin/v1/tenants/nosuch"
nosuch_body=$HTTP_BODY
http GET /admin/v1/tenants/Not-An-Id
unauthorized "GET /admin/v1/tenants/Not-An-Id"
http GET /admin/v1/tenants/takamatsu
assert_eq "$nosuch_body" "$HTTP_BODY" "the 401 for an existing tenant is the one for a missing tenant (no oracle)"
http PATCH /admin/v1/tenants/nosuch -H 'Content-Type: application/json' --data '{"name": "x"}'
unauthorized "PATCH /admin/v1/tenants/nosuch"

# Over a plain connection too (no curl niceties): the status line is 401.
body='{"id": "kotohira", "name": "琴平町", "city_os": {"kind": "hosted"}}'
raw_http "POST /admin/v1/tenants HTTP/1.1\r\nHost: 127.0.0.1:$HUB_PORT\r\nAuthorization: Bearer anything\r\nContent-Type: application/json\r\nContent-Length: $(printf '%s' "$body" | wc -c)\r\nConnection: close\r\n\r\n$body"
assert_match '^HTTP/1\.[01] 401( |$)' "$RAW_STATUS_LINE" "raw POST /admin/v1/tenants: 401"
assert_error 401 Unauthorized "raw POST /admin/v1/tenants"

# Other methods: 405 with Allow.
http DELETE /admin/v1/tenants/takamatsu -H 'Authorization: Bearer anything'
assert_error 405 MethodNotAllowed "DELETE /admin/v1/tenants/takamatsu"
allow=$(header Allow)
for m in GET PATCH; do
  assert_match "(^|[ ,])$m([ ,]|$)" "$allow" "DELETE /admin/v1/tenants/{id}: Allow lists $m"
done
for m in DELETE POST PUT; do
  assert_no_match "(^|[ ,])$m([ ,]|$)" "$allow" "DELETE /admin/v1/tenants/{id}: Allow does not list $m"
done
http DELETE /admin/v1/tenants/x
assert_error 405 MethodNotAllowed "DELETE /admin/v1/tenants/x (a tenant that does not exist)"
http PUT /admin/v1/tenants/takamatsu -H 'Content-Type: application/json' --data '{}'
assert_error 405 MethodNotAllowed "PUT /admin/v1/tenants/takamatsu"
http DELETE /admin/v1/tenants
assert_error 405 MethodNotAllowed "DELETE /admin/v1/tenants"
allow=$(header Allow)
for m in GET POST; do
  assert_match "(^|[ ,])$m([ ,]|$)" "$allow" "DELETE /admin/v1/tenants: Allow lists $m"
done
for m in DELETE PATCH PUT; do
  assert_no_match "(^|[ ,])$m([ ,]|$)" "$allow" "DELETE /admin/v1/tenants: Allow does not list $m"
done
http PATCH /admin/v1/tenants -H 'Content-Type: application/json' --data '{}'
assert_error 405 MethodNotAllowed "PATCH /admin/v1/tenants"

# Nothing changed: no tenant, no upstream, no event, no version.
assert_eq "$before" "$(registry)" "the refused requests changed nothing in the registry"
list_json
assert_jq 'map(.id) == ["ayagawa", "kagawa", "kanonji", "marugame", "takamatsu"] and all(.[]; .state == "active" and .version == 1)' \
  "$LIST" "tenant list --json: the same tenants, all active at version 1"
assert_eq 0 "$(sql "SELECT count(*) FROM renkei.tenants WHERE id IN ('zentsuji', 'kotohira', 'x', 'y')")" \
  "no tenant was created over HTTP"

# The routes are in the OpenAPI document.
http GET /openapi.json
assert_status 200 "GET /openapi.json"
assert_json '.paths["/admin/v1/tenants"] | has("get") and has("post")' \
  "/openapi.json: GET and POST /admin/v1/tenants"
assert_json '.paths["/admin/v1/tenants/{id}"] | has("get") and has("patch")' \
  "/openapi.json: GET and PATCH /admin/v1/tenants/{id}"
assert_json '(.paths["/admin/v1/tenants"] | keys - ["parameters"] | sort) == ["get", "post"]' \
  "/openapi.json: nothing else on /admin/v1/tenants"
assert_json '(.paths["/admin/v1/tenants/{id}"] | keys - ["parameters"] | sort) == ["get", "patch"]' \
  "/openapi.json: nothing else on /admin/v1/tenants/{id}"
assert_json '[.paths["/admin/v1/tenants/{id}"][] | .parameters // [] | .[] | select(.name == "id" and .in == "path" and .required == true)] | length == 2' \
  "/openapi.json: both operations on /admin/v1/tenants/{id} declare the path parameter id"
assert_json '[.paths["/admin/v1/tenants", "/admin/v1/tenants/{id}"][] | .operationId] | length == 4 and (unique | length) == 4' \
  "/openapi.json: four operations with distinct operationIds"

http GET /healthz
assert_status 200 "the hub still serves /healthz"
rc=0
hub_stop || rc=$?
assert_eq 0 "$rc" "the hub stops cleanly"
assert_no_match "$TOKEN" "$(cat "$HUB_LOG")" "the hub log holds no upstream token"
