#!/usr/bin/env bash
# GET /metrics: Prometheus text format with request counters, a latency
# histogram per route, the database pool gauges, and the modules' figures
# (tokens by grant, decisions by reason, the audit appender's histograms,
# the checkpoint's age) that ops/prometheus/renkei-alerts.yml uses.
source "$(dirname "$0")/lib.sh"

migrate
hub_start
http GET /readyz
assert_status 200 "/readyz (the pool has been used)"

# metric_value NAME_WITH_LABELS: the value of that exact series in $METRICS
# (0 when absent).
metric_value() {
  awk -v series="$1" '$1 == series { v = $2 } END { print (v == "" ? 0 : v) }' <<<"$METRICS"
}
scrape() {
  http GET /metrics
  assert_status 200 "GET /metrics"
  METRICS=$HTTP_BODY
}

scrape
assert_eq "text/plain; version=0.0.4; charset=utf-8" "$(header Content-Type)" "/metrics Content-Type"
healthz_series='renkei_http_requests_total{route="/healthz",method="GET",status="200"}'
before=$(metric_value "$healthz_series")

for i in 1 2 3; do
  http GET /healthz
  assert_status 200 "GET /healthz #$i"
done
http GET /no/such/route-4711
assert_status 404 "GET of an unmatched path"

scrape
after=$(metric_value "$healthz_series")
assert_match '^[0-9]+$' "$after" "$healthz_series has an integer value"
assert_ge "$((after - before))" 3 "healthz counter rose by >= 3 ($before -> $after)"

unmatched=$(metric_value 'renkei_http_requests_total{route="unmatched",method="GET",status="404"}')
assert_ge "$unmatched" 1 "unmatched paths count under renkei_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}"
assert_no_match 'route-4711' "$METRICS" "the raw unmatched path does not become a label"

# Types are declared, so Prometheus reads the histogram as one.
assert_match $'(^|\n)# TYPE renkei_http_requests_total counter(\n|$)' "$METRICS" \
  "renkei_http_requests_total is declared a counter"
assert_match $'(^|\n)# TYPE renkei_http_request_duration_seconds histogram(\n|$)' "$METRICS" \
  "renkei_http_request_duration_seconds is declared a histogram"

# The /healthz latency histogram: buckets ascending and cumulative, ending
# in +Inf == _count, plus _sum.
buckets=$(grep -E '^renkei_http_request_duration_seconds_bucket\{route="/healthz",le="[^"]+"\} [0-9]+$' \
  <<<"$METRICS" || true)
nb=$(grep -c . <<<"$buckets" || true)
assert_ge "$nb" 2 "renkei_http_request_duration_seconds_bucket{route=\"/healthz\",le=...} has several buckets"
inf=$(metric_value 'renkei_http_request_duration_seconds_bucket{route="/healthz",le="+Inf"}')
count=$(metric_value 'renkei_http_request_duration_seconds_count{route="/healthz"}')
sum=$(awk '$1 == "renkei_http_request_duration_seconds_sum{route=\"/healthz\"}" { print $2 }' <<<"$METRICS")
assert_match '^[0-9]+$' "$count" "_count{route=\"/healthz\"} is an integer"
assert_ge "$count" 3 "_count{route=\"/healthz\"} is >= 3"
assert_eq "$count" "$inf" "the +Inf bucket equals _count"
assert_match '^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$' "$sum" "_sum{route=\"/healthz\"} is a number"
if awk '
  { match($0, /le="[^"]+"/); le = substr($0, RSTART + 4, RLENGTH - 5); v = $2
    lev = (le == "+Inf") ? 1e308 : le + 0
    if (NR > 1 && (lev <= prev_le || v < prev_v)) exit 1
    prev_le = lev; prev_v = v }' <<<"$buckets"; then
  ok "buckets have ascending bounds and cumulative counts"
else
  fail "buckets are not ascending/cumulative: $buckets"
fi
last_le=$(tail -n 1 <<<"$buckets" | sed -E 's/.*le="([^"]+)".*/\1/')
assert_eq "+Inf" "$last_le" "the last bucket is +Inf"

# Pool gauges.
for g in renkei_db_pool_size renkei_db_pool_in_use renkei_db_pool_waiting; do
  assert_match $'(^|\n)'"$g"'(\{[^}]*\})? [0-9]+(\.[0-9]+)?'$'(\n|$)' "$METRICS" "gauge $g is present with a value"
  assert_match $'(^|\n)# TYPE '"$g"$' gauge(\n|$)' "$METRICS" "$g is declared a gauge"
done
size=$(awk '$1 ~ /^renkei_db_pool_size(\{.*\})?$/ && !done { print $2; done = 1 }' <<<"$METRICS")
assert_ge "$size" 1 "renkei_db_pool_size is >= 1"

# The modules' figures: a token (tokens by grant), a cross-town read
# without an agreement (a decision by reason, an audit entry: the appender's
# histograms), the checkpointer's gauges.
for t in "takamatsu 高松市" "kanonji 観音寺市"; do
  # shellcheck disable=SC2086
  set -- $t
  run_renkei tenant add "$1" --name "$2" --hosted
  assert_eq 0 "$RUN_STATUS" "tenant add $1 [$RUN_ERR]"
done
run_renkei client add --tenant kanonji --name kj --grant client_credentials --scope ngsi.read --json
KJ_ID=$(jq -r .client_id <<<"$RUN_OUT")
KJ_SECRET=$(jq -r .client_secret <<<"$RUN_OUT")
scrape
issued_before=$(metric_value 'renkei_oauth_tokens_issued_total{grant="client_credentials"}')
denied_before=$(metric_value 'renkei_exchange_decisions_total{decision="deny",reason="no_agreement"}')
batches_before=$(metric_value 'renkei_audit_batch_entries_count')
http POST /oauth2/token -u "$KJ_ID:$KJ_SECRET" -d grant_type=client_credentials
assert_status 200 "a token"
TOK=$(jq -r .access_token <<<"$HTTP_BODY")
http GET '/v2/entities?type=WaterLevel' -H "Authorization: Bearer $TOK" -H 'Fiware-Service: takamatsu' \
  -H 'Renkei-Purpose: disaster-response'
assert_status 403 "a cross-town read without an agreement"
scrape
assert_eq "$((issued_before + 1))" "$(metric_value 'renkei_oauth_tokens_issued_total{grant="client_credentials"}')" \
  "renkei_oauth_tokens_issued_total counts the client_credentials token"
# every grant has its series (a missing one would read as 0 above), and the
# others did not move
for g in authorization_code refresh_token urn:ietf:params:oauth:grant-type:token-exchange; do
  assert_match $'(^|\n)renkei_oauth_tokens_issued_total\\{grant="'"$g"$'"\\} 0(\n|$)' "$METRICS" \
    "renkei_oauth_tokens_issued_total has grant $g, at 0"
done
assert_eq "$((denied_before + 1))" "$(metric_value 'renkei_exchange_decisions_total{decision="deny",reason="no_agreement"}')" \
  "renkei_exchange_decisions_total counts the denial by its reason"
assert_ge "$(metric_value 'renkei_audit_batch_entries_count')" "$((batches_before + 1))" "the appender's batch histogram counts its commit"
assert_ge "$(metric_value 'renkei_audit_append_wait_seconds_count')" 1 "and the entry's wait"
assert_eq "$(metric_value 'renkei_audit_append_wait_seconds_count')" "$(metric_value 'renkei_audit_append_wait_seconds_bucket{le="+Inf"}')" \
  "the wait histogram's +Inf bucket holds every observation"
checkpointed() {
  scrape >/dev/null
  (($(metric_value renkei_audit_checkpoint_age_seconds) >= 0)) && (($(metric_value renkei_audit_entries_uncheckpointed) == 0))
}
poll 100 checkpointed || fail "no checkpoint over the denial's entry: $(grep checkpoint <<<"$METRICS")"
ok "the checkpointer's gauges: a checkpoint $(metric_value renkei_audit_checkpoint_age_seconds) s old covers every entry"

# every renkei_* series the example alerting rules use is one the hub
# exports (renkei_upstream_*: once a town's own Orion was asked, which
# test_exchange_remote checks)
for name in $(grep -oE 'renkei_[a-z_]+' "$RENKEI_SRC/ops/prometheus/renkei-alerts.yml" | sort -u); do
  [[ $name == renkei_upstream_* ]] && continue
  assert_match $'(^|\n)'"$name"'(_bucket)?[{ ]' "$METRICS" "ops/prometheus/renkei-alerts.yml: $name is exported"
done

# Every sample line is well formed: name{labels} value.
bad=$(grep -vE '^(#.*|[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (-?[0-9.]+([eE][-+]?[0-9]+)?|\+Inf|-Inf|NaN))$' \
  <<<"$METRICS" || true)
assert_eq "" "$bad" "every /metrics line is a comment or a well-formed sample"

rc=0
hub_stop || rc=$?
assert_eq 0 "$rc" "hub exits 0 on SIGTERM"
