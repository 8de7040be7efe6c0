#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Several nodes (issue 12): two hub processes on one database behind nginx
# (ops/nginx/renkei.conf with its second upstream server enabled). Two
# clients read takamatsu's data from kanonji through nginx, each request
# with its own X-Request-Id, while one hub is killed with SIGKILL and later
# started again. Afterwards:
#   - every read was answered with data: nginx sent what the dead node did
#     not answer to the other (a GET may be retried; a POST never is);
#   - both nodes served reads;
#   - every read answered has its audit entry, with the digest of the very
#     body received; seq has no gap; the log verifies.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/ngsi_lib.sh"
source "$(dirname "$0")/proxy_lib.sh"

RUN_TIMEOUT=30
TLS_PORT=$(free_port)
HTTP_PORT=$(free_port)
PUBLIC=https://127.0.0.1:$TLS_PORT
NODE=(RENKEI_ISSUER="$PUBLIC" RENKEI_TRUSTED_PROXIES=127.0.0.1 RENKEI_MAX_CONN_PER_IP=0)
ngsi_setup
# ngsi_setup's hub has its own issuer: the nodes share the public one
hub_stop
hub_start "${NODE[@]}"
hub2_start "${NODE[@]}"
client_add --tenant kanonji --name kj-nodes --grant client_credentials --scope ngsi.read
KJ=("$CID" "$CSECRET")
client_add --tenant takamatsu --name tk-nodes --grant client_credentials --scope "ngsi.read ngsi.write"
get_token "$CID" "$CSECRET"
NGSI_TOKEN=$TOKEN
water_levels_shared
get_token "${KJ[@]}"
TOK_READ=$TOKEN
await_agreement "$TOK_READ" "$WATER_AGREEMENT"
on_hub2 await_agreement "$TOK_READ" "$WATER_AGREEMENT"

# ---- nginx, both nodes upstream
nginx_start "$TLS_PORT" "$HTTP_PORT" "$HUB_PORT" "$HUB2_PORT"
grep -q "server 127.0.0.1:$HUB2_PORT" "$NGINX_CONF" || fail "the second upstream server was not enabled"

# reader NAME: reads through nginx until $tmpdir/stop exists; a line per
# request in NAME.log: "id status digest"
reader() {
  local name=$1 i=0 id code
  while [[ ! -e $tmpdir/stop ]]; do
    i=$((i + 1))
    id="$name-$i"
    code=$(curl -s --cacert "$tmpdir/cert.pem" -o "$tmpdir/$name.body" -w '%{http_code}' --max-time 20 \
      -H "X-Request-Id: $id" -H "Authorization: Bearer $TOK_READ" -H 'Fiware-Service: takamatsu' \
      -H 'Renkei-Purpose: disaster-response' "$PUBLIC/v2/entities?type=WaterLevel" || true)
    echo "$id $code $(openssl dgst -sha256 -binary "$tmpdir/$name.body" | base64 -w0)" >>"$tmpdir/$name.log"
  done
}
: >"$tmpdir/r1.log"
: >"$tmpdir/r2.log"
reader r1 &
r1=$!
reader r2 &
r2=$!
answered() { (($(cat "$tmpdir"/r1.log "$tmpdir"/r2.log | awk '$2 == 200' | wc -l) >= $1)); }
poll 100 answered 20 || fail "no reads answered through nginx"
served_by_b=$(grep -c '"route":"/v2/entities"' "$HUB2_LOG" || true)
kill -KILL "$HUB2_PID"
wait "$HUB2_PID" 2>/dev/null || true
HUB2_PID=
ok "node B killed with SIGKILL mid-load (it had served $served_by_b reads)"
n=$(cat "$tmpdir"/r1.log "$tmpdir"/r2.log | wc -l)
poll 100 answered $((n + 20)) || fail "reads stopped after the kill"
b_port=$HUB2_PORT
hub2_start "${NODE[@]}" RENKEI_LISTEN="127.0.0.1:$b_port"
ok "node B back on its port"
b_from=$(wc -l <"$HUB2_LOG")
n=$(cat "$tmpdir"/r1.log "$tmpdir"/r2.log | wc -l)
poll 100 answered $((n + 20)) || fail "reads stopped after the restart"
# nginx leaves a failed node alone for 5 s (fail_timeout), then tries it
b_serves() { tail -n +"$((b_from + 1))" "$HUB2_LOG" | grep -q '"route":"/v2/entities"'; }
poll 150 b_serves || fail "the restarted node B got no reads"
ok "the restarted node B serves again"
touch "$tmpdir/stop"
wait "$r1" "$r2" || true
nginx_stop

cat "$tmpdir"/r1.log "$tmpdir"/r2.log >"$tmpdir/all.log"
total=$(wc -l <"$tmpdir/all.log")
assert_eq "" "$(awk '$2 != 200 {print $1 ":" $2}' "$tmpdir/all.log" | tr '\n' ' ')" \
  "all $total reads through nginx were answered with data, across the kill and the restart"
assert_ge "$served_by_b" 1 "node B served reads before it was killed"
assert_ge "$(grep -c '"route":"/v2/entities"' "$HUB_LOG")" 1 "node A served reads"
awk '{ print $1 "\t" $3 }' "$tmpdir/all.log" >"$tmpdir/answered.tsv"
missing=$(reads_without_entries "$tmpdir/answered.tsv")
assert_eq "" "$missing" "every read answered has its entry, with the digest of what was sent"
assert_eq "t" "$(sql "SELECT min(seq) = 0 AND max(seq) = count(*) - 1 FROM renkei.audit_entries")" \
  "seq runs from 0 without a gap ($(sql "SELECT count(*) FROM renkei.audit_entries") entries for $total reads)"
hub2_stop
hub_stop
run_renkei audit verify --json
assert_eq 0 "$RUN_STATUS" "renkei audit verify exits 0 [$RUN_ERR]"
assert_jq '.ok == true' "$RUN_OUT" "the log of both nodes verifies"
