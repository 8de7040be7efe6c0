#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# NGSI-v2 subscriptions of the hosted store, as Orion documents them (the
# NGSI-v2 specification's "Subscriptions" and "Notification Messages",
# Orion's implementation notes: payload validations, throttling, oneshot,
# onlyChangedAttrs, lastFailureReason/lastSuccessCode, alterationTypes).
# CRUD: 201 with Location, GET shapes, limit/offset/count, PATCH merging
# top-level members, DELETE, Orion's 400 descriptions and 404, scopes,
# isolation between towns, the per-town bound (413). Notifications, received
# by a small HTTP server run here: body {subscriptionId, data}, headers
# (Fiware-Service, Fiware-ServicePath, Fiware-Correlator "<c>; cbnotif=N",
# Ngsiv2-AttrsFormat), condition attrs, q, service path subtrees,
# keyValues/values, attrs/exceptAttrs, httpCustom (method, headers, qs),
# throttling, oneshot, expiry, entityDelete, counters after successes and
# failures, the metric, and a second hub that learns of a subscription made
# on the first through NOTIFY.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/ngsi_lib.sh"

RUN_TIMEOUT=30
ngsi_setup

# ------------------------------------------------------------ the receiver

RECV=$tmpdir/received.jsonl
: >"$RECV"
cat >"$tmpdir/receiver.py" <<'EOF'
import http.server, json, sys, threading
out, portfile = sys.argv[1], sys.argv[2]
lock = threading.Lock()

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        rec = {"method": self.command, "path": self.path,
               "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
        with lock, open(out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        self.send_response(500 if self.path.startswith("/fail") else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

    def log_message(self, *args):
        pass

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
EOF
python3 "$tmpdir/receiver.py" "$RECV" "$tmpdir/receiver.port" &
poll 10 test -s "$tmpdir/receiver.port" || fail "the receiver did not start"
RPORT=$(cat "$tmpdir/receiver.port")
RURL=http://127.0.0.1:$RPORT

# received PREFIX: the notifications whose path starts with PREFIX (one
# compact JSON object a line, bodies parsed)
received() {
  jq -c --arg p "$1" 'select(.path | startswith($p)) | .body = (.body | (try fromjson catch .))' "$RECV"
}
count() {
  received "$1" | wc -l
}
# wait_for PREFIX N [SECONDS]: until N notifications reached PREFIX (at
# most SECONDS, default 15)
wait_for() {
  local p=$1 n=$2
  _have() { (($(count "$p") >= n)); }
  poll "${3:-15}" _have || fail "expected $n notifications at $p, got $(count "$p"): $(cat "$RECV")"
}
# quiet_for PREFIX N: still exactly N after a while (what must not come)
quiet_for() {
  sleep 1.5
  local n
  n=$(count "$1")
  # on a mismatch, what came: a duplicate (the same body again) tells
  # another story than a notification that should not have been sent
  [[ $n == "$2" ]] || echo "notifications at $1: $(received "$1" | jq -c '{body, corr: .headers["fiware-correlator"]}')" >&2
  assert_eq "$2" "$n" "${3:-no more notifications at $1}"
}

subscribe() {
  ngsi_json POST /v2/subscriptions "$1" "${@:2}"
  assert_status 201 "subscription created: $(_trunc "$1")"
  [[ $(header Location) =~ ^/v2/subscriptions/([0-9a-f]{24})$ ]] ||
    fail "Location [$(header Location)] is not /v2/subscriptions/<24 hex>"
  SUB=${BASH_REMATCH[1]}
}

# ---------------------------------------------------------------- creating

subscribe "{\"description\": \"rooms\", \"subject\": {\"entities\": [{\"idPattern\": \".*\", \"type\": \"Room\"}],
  \"condition\": {\"attrs\": [\"temperature\"]}}, \"notification\": {\"http\": {\"url\": \"$RURL/a\"},
  \"attrs\": [\"temperature\"]}, \"expires\": \"2040-01-01T14:00:00.00Z\", \"throttling\": 0}"
SUB_A=$SUB
assert_eq "" "$HTTP_BODY" "201 has no body"
ngsi GET "/v2/subscriptions/$SUB_A"
assert_status 200 "GET the subscription"
assert_eq "application/json" "$(header Content-Type)" "Content-Type"
assert_json ".id == \"$SUB_A\" and .description == \"rooms\" and .status == \"active\"" "id, description, status active"
assert_json '.subject == {"entities": [{"idPattern": ".*", "type": "Room"}], "condition": {"attrs": ["temperature"]}}' "subject as given"
assert_json ".notification.http == {\"url\": \"$RURL/a\"} and .notification.attrs == [\"temperature\"] and .notification.attrsFormat == \"normalized\"" "notification: url, attrs, attrsFormat normalized by default"
assert_json '.expires == "2040-01-01T14:00:00.000Z" and .throttling == 0' "expires and throttling"
assert_json '.notification | has("timesSent") | not' "no timesSent before the first notification"
assert_json 'keys_unsorted == ["id", "description", "subject", "notification", "expires", "status", "throttling"]' "members in Orion's order"

# ---------------------------------------------------------- Orion's refusals

bad() { # bad BODY DESCRIPTION MSG
  ngsi_json POST /v2/subscriptions "$1"
  assert_error 400 BadRequest "$3"
  assert_json ".description == \"$2\"" "$3: description"
}
OK_NOTIF="\"notification\": {\"http\": {\"url\": \"$RURL/x\"}}"
OK_SUBJ='"subject": {"entities": [{"id": "Room1"}]}'
bad "{$OK_SUBJ, \"notification\": {\"http\": {}}}" "mandatory field /url/ missing in http notification" "missing url"
bad "{$OK_SUBJ, \"notification\": {\"attrs\": []}}" "http notification is missing" "no http"
bad "{$OK_SUBJ, \"notification\": {\"http\": {\"url\": \"$RURL/x\"}, \"attrs\": [\"a\"], \"exceptAttrs\": [\"b\"]}}" \
  "http notification has attrs and exceptAttrs" "attrs and exceptAttrs"
bad "{$OK_SUBJ, \"notification\": {\"http\": {\"url\": \"ftp://example.jp/x\"}}}" "Invalid URL parsing notification url" "an ftp url"
bad "{$OK_SUBJ, $OK_NOTIF, \"expires\": \"someday\"}" "expires has an invalid format" "bad expires"
bad "{$OK_SUBJ, $OK_NOTIF, \"colour\": \"blue\"}" "unrecognized field in subscription: /colour/" "an unknown member"
bad "{$OK_NOTIF}" "no subject for subscription specified" "no subject"
bad "{$OK_SUBJ}" "no notification for subscription specified" "no notification"
bad "{$OK_SUBJ, $OK_NOTIF, \"status\": \"paused\"}" "status is not valid: it has to be either active or inactive" "bad status"
bad "{\"subject\": {\"entities\": [{\"idPattern\": \"(\"}]}, $OK_NOTIF}" "Invalid regex for entity idPattern" "bad idPattern"
long=$(printf 'd%.0s' {1..1025})
bad "{\"description\": \"$long\", $OK_SUBJ, $OK_NOTIF}" "max description length exceeded" "description over 1024"
ngsi_json POST /v2/subscriptions "{\"subject\": {\"entities\": [{\"id\": \"R\"}], \"condition\": {\"expression\": {\"q\": \"name~=(\"}}}, $OK_NOTIF}"
assert_error 400 BadRequest "a q that does not parse"
ngsi_json POST /v2/subscriptions "{\"subject\": {\"entities\": [{\"id\": \"R\"}], \"condition\": {\"expression\": {\"georel\": \"near;maxDistance:1000\", \"geometry\": \"point\"}}}, $OK_NOTIF}"
assert_error 400 BadRequest "a partial geo expression"
ngsi_json POST /v2/subscriptions '[1]'
assert_status 400 "an array body"

ngsi GET /v2/subscriptions/000000000000000000000000
assert_error 404 NotFound "unknown id"
assert_json '.description == "The requested subscription has not been found. Check id"' "Orion's 404 description"
ngsi GET /v2/subscriptions/not-an-id
assert_error 404 NotFound "malformed id"

# ------------------------------------------------------- scopes and towns

NGSI_TOKEN=$TOK_KJ_RO
ngsi_json POST /v2/subscriptions "{$OK_SUBJ, $OK_NOTIF}"
assert_error 403 Forbidden "ngsi.read cannot subscribe"
ngsi GET "/v2/subscriptions/$SUB_A"
assert_status 200 "ngsi.read reads a subscription"
NGSI_TOKEN=$TOK_TK
ngsi GET "/v2/subscriptions/$SUB_A"
assert_error 404 NotFound "another town's subscription does not exist for takamatsu"
ngsi GET /v2/subscriptions
assert_json '. == []' "takamatsu lists none of kanonji's subscriptions"
ngsi DELETE "/v2/subscriptions/$SUB_A"
assert_error 404 NotFound "takamatsu cannot delete kanonji's subscription"
ngsi GET /v2/subscriptions -H 'Fiware-Service: kanonji'
assert_error 403 Forbidden "nor reach it naming kanonji"
NGSI_TOKEN=$TOK_KJ

# ---------------------------------------------------------------- listing

subscribe "{$OK_SUBJ, $OK_NOTIF, \"status\": \"inactive\"}"
SUB_X=$SUB
ngsi GET '/v2/subscriptions?options=count'
assert_status 200 "list"
assert_eq 2 "$(header Fiware-Total-Count)" "Fiware-Total-Count"
assert_json "[.[].id] == [\"$SUB_A\", \"$SUB_X\"]" "creation order"
ngsi GET '/v2/subscriptions?limit=1&offset=1&options=count'
assert_json "[.[].id] == [\"$SUB_X\"]" "limit and offset"
assert_eq 2 "$(header Fiware-Total-Count)" "the count ignores the page"
ngsi GET '/v2/subscriptions?limit=0'
assert_error 400 BadRequest "limit 0"
ngsi GET '/v2/subscriptions?limit=1001'
assert_error 400 BadRequest "limit over 1000"
ngsi GET '/v2/subscriptions?options=keyValues'
assert_error 400 BadRequest "an option lists do not take"

# ------------------------------------------------------------------ PATCH

ngsi_json PATCH "/v2/subscriptions/$SUB_X" '{"description": "patched", "throttling": 7}'
assert_status 204 "PATCH"
ngsi GET "/v2/subscriptions/$SUB_X"
assert_json '.description == "patched" and .throttling == 7 and .status == "inactive"' "PATCH changed what it named"
assert_json ".subject == {\"entities\": [{\"id\": \"Room1\"}], \"condition\": {\"attrs\": []}} and .notification.http.url == \"$RURL/x\"" "and kept the rest"
ngsi_json PATCH "/v2/subscriptions/$SUB_X" '{"expires": "2001-01-01T00:00:00Z", "status": "active"}'
assert_status 204 "PATCH expires into the past"
ngsi GET "/v2/subscriptions/$SUB_X"
assert_json '.status == "expired" and .expires == "2001-01-01T00:00:00.000Z"' "an expired subscription shows status expired"
ngsi_json PATCH "/v2/subscriptions/$SUB_X" '{"expires": ""}'
assert_status 204 "PATCH expires \"\" (permanent)"
ngsi GET "/v2/subscriptions/$SUB_X"
assert_json '(has("expires") | not) and .status == "active"' "permanent again"
ngsi_json PATCH "/v2/subscriptions/$SUB_X" '{}'
assert_error 400 BadRequest "PATCH {}"
ngsi_json PATCH "/v2/subscriptions/$SUB_X" '{"notification": {"http": {"url": "mailto:x"}}}'
assert_error 400 BadRequest "PATCH with a bad notification"
ngsi_json PATCH /v2/subscriptions/000000000000000000000000 '{"description": "x"}'
assert_error 404 NotFound "PATCH of an unknown id"
ngsi DELETE "/v2/subscriptions/$SUB_X"
assert_status 204 "DELETE"
ngsi GET "/v2/subscriptions/$SUB_X"
assert_error 404 NotFound "gone"
ngsi DELETE "/v2/subscriptions/$SUB_X"
assert_error 404 NotFound "DELETE twice"

# ----------------------------------------------------- the per-town bound

sql "INSERT INTO renkei.ngsi_subscriptions (tenant_id, id, service_path, spec, status)
     SELECT 'takamatsu', lpad(to_hex(g), 24, '0'), '/', '{}', 'inactive'
     FROM generate_series(1, 1000) g" >/dev/null
NGSI_TOKEN=$TOK_TK
ngsi_json POST /v2/subscriptions "{$OK_SUBJ, $OK_NOTIF}"
assert_status 413 "the 1001st subscription of a town"
assert_json '.error == "NoResourcesAvailable"' "413 NoResourcesAvailable"
sql "DELETE FROM renkei.ngsi_subscriptions WHERE tenant_id = 'takamatsu'" >/dev/null
ngsi_json POST /v2/subscriptions "{$OK_SUBJ, $OK_NOTIF}"
assert_status 201 "below the bound again"
NGSI_TOKEN=$TOK_KJ

# ---------------------------------------------------------- notifications

CORR=renkei-test-$RANDOM
ngsi_create '{"id": "Room1", "type": "Room", "temperature": {"value": 21, "type": "Number"}, "humidity": {"value": 40}}' \
  -H "Fiware-Correlator: $CORR"
wait_for /a 1
N=$(received /a | head -n 1)
assert_jq ".method == \"POST\" and .path == \"/a\"" "$N" "POST to the subscription's url"
assert_jq ".body == {\"subscriptionId\": \"$SUB_A\", \"data\": [{\"id\": \"Room1\", \"type\": \"Room\", \"temperature\": {\"type\": \"Number\", \"value\": 21, \"metadata\": {}}}]}" "$N" \
  "body: subscriptionId and the entity with the notified attrs only"
assert_jq '.headers["content-type"] == "application/json"' "$N" "Content-Type"
assert_jq '.headers["fiware-service"] == "kanonji" and .headers["fiware-servicepath"] == "/"' "$N" "Fiware-Service and Fiware-ServicePath"
assert_jq ".headers[\"fiware-correlator\"] == \"$CORR; cbnotif=1\"" "$N" "Fiware-Correlator: the request's, with cbnotif=1"
assert_jq '.headers["ngsiv2-attrsformat"] == "normalized"' "$N" "Ngsiv2-AttrsFormat"

ngsi_json PATCH /v2/entities/Room1/attrs '{"humidity": {"value": 45}}'
assert_status 204 "update humidity"
ngsi_json PATCH /v2/entities/Room1/attrs '{"temperature": {"value": 23}}'
assert_status 204 "update temperature"
wait_for /a 2
quiet_for /a 2 "humidity is not in the condition: one notification more, for temperature"
assert_jq '.body.data[0].temperature.value == 23' "$(received /a | tail -n 1)" "the new value"

# the counters reach the database about once a second
_counted() {
  ngsi GET "/v2/subscriptions/$SUB_A"
  jq -e '.notification.timesSent == 2 and .notification.lastSuccessCode == 204' <<<"$HTTP_BODY" >/dev/null
}
poll 10 _counted || fail "counters after two notifications: $HTTP_BODY"
assert_json '.notification.lastNotification and .notification.lastSuccess and (.notification | has("failsCounter") | not)' \
  "timesSent, lastNotification, lastSuccess, lastSuccessCode"

# q, keyValues, exceptAttrs
subscribe "{\"subject\": {\"entities\": [{\"id\": \"Room1\", \"type\": \"Room\"}], \"condition\": {\"expression\": {\"q\": \"temperature>30\"}}},
  \"notification\": {\"http\": {\"url\": \"$RURL/b\"}, \"attrsFormat\": \"keyValues\", \"exceptAttrs\": [\"humidity\"]}}"
SUB_B=$SUB
ngsi_json PATCH /v2/entities/Room1/attrs '{"temperature": {"value": 25}}'
ngsi_json PATCH /v2/entities/Room1/attrs '{"temperature": {"value": 35}}'
wait_for /b 1
quiet_for /b 1 "q temperature>30: only the update to 35"
N=$(received /b | head -n 1)
assert_jq ".body == {\"subscriptionId\": \"$SUB_B\", \"data\": [{\"id\": \"Room1\", \"type\": \"Room\", \"temperature\": 35}]}" "$N" \
  "keyValues without the excepted attribute"
assert_jq '.headers["ngsiv2-attrsformat"] == "keyValues"' "$N" "Ngsiv2-AttrsFormat keyValues"
ngsi DELETE "/v2/subscriptions/$SUB_B"

# service paths: a subscription made under /river/# covers /river and below
subscribe "{\"subject\": {\"entities\": [{\"idPattern\": \"^Gauge\"}]}, \"notification\": {\"http\": {\"url\": \"$RURL/river\"}, \"attrsFormat\": \"values\", \"attrs\": [\"level\"]}}" \
  -H 'Fiware-ServicePath: /river/#'
ngsi_create '{"id": "Gauge1", "type": "WaterLevel", "level": {"value": 1.5}}' -H 'Fiware-ServicePath: /river/north'
ngsi_create '{"id": "Gauge2", "type": "WaterLevel", "level": {"value": 0.5}}' -H 'Fiware-ServicePath: /road'
ngsi_create '{"id": "Gauge3", "type": "WaterLevel", "level": {"value": 2.5}}' -H 'Fiware-ServicePath: /river'
wait_for /river 2
quiet_for /river 2 "nothing from /road"
assert_eq '[[1.5],[2.5]]' "$(received /river | jq -sc '[.[].body.data[0]]')" "values format, from /river/north and /river"
assert_eq '["/river/north","/river"]' "$(received /river | jq -sc '[.[].headers["fiware-servicepath"]]')" "Fiware-ServicePath is the entity's"
ngsi GET /v2/subscriptions -H 'Fiware-ServicePath: /river/#'
assert_json "[.[].id] == [\"$SUB\"]" "listing under /river/# shows the subscription made there"

# httpCustom: method, headers, qs; Fiware-Correlator cannot be overridden
subscribe "{\"subject\": {\"entities\": [{\"id\": \"Car1\"}]}, \"notification\": {\"httpCustom\": {\"url\": \"$RURL/custom\",
  \"method\": \"PUT\", \"headers\": {\"X-Town\": \"kanonji\", \"Fiware-Correlator\": \"mine\"}, \"qs\": {\"k\": \"a b\"}}}}"
ngsi_create '{"id": "Car1", "type": "Car", "speed": {"value": 40}}' -H 'Fiware-Correlator: corr-car'
wait_for /custom 1
N=$(received /custom | head -n 1)
assert_jq '.method == "PUT" and .path == "/custom?k=a%20b"' "$N" "httpCustom method and qs"
assert_jq '.headers["x-town"] == "kanonji" and .headers["fiware-correlator"] == "corr-car; cbnotif=1"' "$N" "httpCustom headers, Fiware-Correlator kept"

# throttling: the second change within the period is dropped
subscribe "{\"subject\": {\"entities\": [{\"id\": \"Car1\"}]}, \"notification\": {\"http\": {\"url\": \"$RURL/throttled\"}}, \"throttling\": 60}"
ngsi_json PATCH /v2/entities/Car1/attrs '{"speed": {"value": 50}}'
wait_for /throttled 1
ngsi_json PATCH /v2/entities/Car1/attrs '{"speed": {"value": 60}}'
quiet_for /throttled 1 "throttling 60: the second change is not notified"

# oneshot: one notification, then inactive
subscribe "{\"subject\": {\"entities\": [{\"id\": \"Car1\"}]}, \"notification\": {\"http\": {\"url\": \"$RURL/oneshot\"}}, \"status\": \"oneshot\"}"
SUB_O=$SUB
ngsi_json PATCH /v2/entities/Car1/attrs '{"speed": {"value": 70}}'
wait_for /oneshot 1
ngsi_json PATCH /v2/entities/Car1/attrs '{"speed": {"value": 80}}'
quiet_for /oneshot 1 "oneshot notifies once"
ngsi GET "/v2/subscriptions/$SUB_O"
assert_json '.status == "inactive"' "a oneshot subscription that fired is inactive"

# an expired subscription is not notified
subscribe "{\"subject\": {\"entities\": [{\"id\": \"Car1\"}]}, \"notification\": {\"http\": {\"url\": \"$RURL/expired\"}}, \"expires\": \"2001-01-01T00:00:00Z\"}"
ngsi_json PATCH /v2/entities/Car1/attrs '{"speed": {"value": 90}}'
quiet_for /expired 0 "an expired subscription is not notified"

# entityDelete
subscribe "{\"subject\": {\"entities\": [{\"id\": \"Car1\"}], \"condition\": {\"alterationTypes\": [\"entityDelete\"]}}, \"notification\": {\"http\": {\"url\": \"$RURL/deleted\"}}}"
ngsi_json PATCH /v2/entities/Car1/attrs '{"speed": {"value": 100}}'
ngsi DELETE /v2/entities/Car1
assert_status 204 "delete Car1"
wait_for /deleted 1
quiet_for /deleted 1 "entityDelete only: not the update"
assert_jq '.body.data[0].id == "Car1" and .body.data[0].type == "Car"' "$(received /deleted | head -n 1)" "the deleted entity"

# failures: retried, then counted
subscribe "{\"subject\": {\"entities\": [{\"id\": \"Bus1\"}]}, \"notification\": {\"http\": {\"url\": \"$RURL/fail\"}}}"
SUB_F=$SUB
subscribe "{\"subject\": {\"entities\": [{\"id\": \"Bus1\"}]}, \"notification\": {\"http\": {\"url\": \"http://127.0.0.1:1/nobody\"}}, \"maxFailsLimit\": 1}"
SUB_DOWN=$SUB
ngsi_create '{"id": "Bus1", "type": "Bus", "seats": {"value": 30}}'
wait_for /fail 2
_failed() {
  ngsi GET "/v2/subscriptions/$SUB_F"
  jq -e '.notification.failsCounter >= 2 and .notification.timesSent == 1' <<<"$HTTP_BODY" >/dev/null
}
poll 15 _failed || fail "counters after a failing receiver: $HTTP_BODY"
assert_json '.notification.lastFailure and (.notification.lastFailureReason | test("500")) and (.notification | has("lastSuccess") | not)' \
  "lastFailure and lastFailureReason after HTTP 500"
_down() {
  ngsi GET "/v2/subscriptions/$SUB_DOWN"
  jq -e '.notification.failsCounter >= 2' <<<"$HTTP_BODY" >/dev/null
}
poll 15 _down || fail "counters after an unreachable receiver: $HTTP_BODY"
assert_json '(.notification.lastFailureReason | length > 0) and .status == "inactive"' \
  "a connection failure has a reason, and failsCounter over maxFailsLimit made it inactive"

http GET /metrics
sent=$(grep -E '^renkei_ngsi_notifications_total\{outcome="sent"\} ' <<<"$HTTP_BODY" | awk '{print $2}')
assert_ge "$sent" 8 "renkei_ngsi_notifications_total{outcome=\"sent\"}"

# --------------------------------------- a second hub learns through NOTIFY

hub2_start RENKEI_ISSUER="$HUB_URL" # so it takes the first hub's tokens
on_hub2 ngsi_create '{"id": "Shelter1", "type": "Shelter", "capacity": {"value": 100}}'
subscribe "{\"subject\": {\"entities\": [{\"type\": \"Shelter\", \"idPattern\": \".*\"}]}, \"notification\": {\"http\": {\"url\": \"$RURL/shelter\"}}}"
sleep 0.5
on_hub2 ngsi_json PATCH /v2/entities/Shelter1/attrs '{"capacity": {"value": 90}}'
on_hub2 assert_status 204 "update on the second hub"
wait_for /shelter 1
assert_jq '.body.data[0].capacity.value == 90' "$(received /shelter | head -n 1)" \
  "the hub that served the write notified, with the subscription made on the other"
hub2_stop

# ------------------------------------ addresses the operator refuses (SSRF)

# A hub told to refuse loopback sends nothing there, and says why; the
# subscriber's URL names the address only after name resolution, so a name
# (localhost) is refused as its address is.
subscribe "{\"subject\": {\"entities\": [{\"id\": \"Tram1\"}]}, \"notification\": {\"http\": {\"url\": \"http://localhost:$RPORT/denied\"}}}"
SUB_DENY=$SUB
hub2_start RENKEI_ISSUER="$HUB_URL" RENKEI_NOTIFY_DENY="10.0.0.0/8, 127.0.0.0/8, ::1"
sleep 0.5
on_hub2 ngsi_create '{"id": "Tram1", "type": "Tram", "line": {"value": "Kotoden"}}'
_denied() {
  ngsi GET "/v2/subscriptions/$SUB_DENY"
  jq -e '(.notification.lastFailureReason // "") | test("RENKEI_NOTIFY_DENY")' <<<"$HTTP_BODY" >/dev/null
}
poll 15 _denied || fail "a refused address is not reported: $HTTP_BODY"
ok "the refused delivery is counted with its reason"
hub2_stop
assert_eq 0 "$(count /denied)" "nothing reached the refused address"

# A proxy in the hub's environment is not a way around the list: the cloud
# metadata address (refused by default) stays out of reach even when
# http_proxy names an allowed address (the receiver, which would log the
# proxied request's absolute URL).
subscribe "{\"subject\": {\"entities\": [{\"id\": \"Tram2\"}]}, \"notification\": {\"http\": {\"url\": \"http://169.254.169.254/latest/meta-data/\"}}}"
SUB_META=$SUB
hub2_start RENKEI_ISSUER="$HUB_URL" http_proxy="http://127.0.0.1:$RPORT" HTTP_PROXY="http://127.0.0.1:$RPORT"
sleep 0.5
on_hub2 ngsi_create '{"id": "Tram2", "type": "Tram"}'
_meta_denied() {
  ngsi GET "/v2/subscriptions/$SUB_META"
  jq -e '(.notification.lastFailureReason // "") | test("RENKEI_NOTIFY_DENY")' <<<"$HTTP_BODY" >/dev/null
}
poll 15 _meta_denied || fail "the metadata address is not refused through a proxy: $HTTP_BODY"
ok "the metadata address is refused, proxy or not"
hub2_stop
assert_eq 0 "$(jq -c 'select(.path | test("169[.]254"))' "$RECV" | wc -l)" \
  "the receiver, named as proxy, saw no request for the metadata address"

# a failing delivery is tried four times in all (retries after 1, 4 and
# 16 s), then counted as failed
wait_for /fail 4 30
quiet_for /fail 4 "no fifth attempt"
http GET /metrics
assert_match 'renkei_ngsi_notifications_total\{outcome="failed"\} [1-9]' "$HTTP_BODY" "failed ones counted"

# the hub stops promptly with subscriptions and a dead receiver about
hub_stop
assert_eq 0 "$HUB_EXIT" "the hub stops cleanly"
