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

RUN_TIMEOUT=30
command -v nginx >/dev/null || fail "nginx is missing: run ops/setup"
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 20000))
    ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
  fail "no free port"
}
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
ngsi_json POST /v2/op/update '{"actionType": "append", "entities": [
  {"id": "WL1", "type": "WaterLevel", "level": {"value": 1.2}},
  {"id": "WL2", "type": "WaterLevel", "level": {"value": 3.4}}]}'
assert_status 204 "takamatsu's entities"
run_renkei agreement add --provider takamatsu --consumer kanonji --type WaterLevel --purpose disaster-response --json
run_renkei agreement approve "$(jq -r .id <<<"$RUN_OUT")"
assert_eq 0 "$RUN_STATUS" "kanonji may read them [$RUN_ERR]"
get_token "${KJ[@]}"
TOK_READ=$TOKEN

# ---- nginx, both nodes upstream
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$tmpdir/key.pem" -out "$tmpdir/cert.pem" 2>/dev/null ||
  fail "openssl cannot make a certificate"
mkdir -p "$tmpdir/nginx"
sed -e "s|server 127.0.0.1:8080|server 127.0.0.1:$HUB_PORT|" \
  -e "s|# server 127.0.0.1:8081|server 127.0.0.1:$HUB2_PORT|" \
  -e "s|listen 80;|listen 127.0.0.1:$HTTP_PORT;|" -e "s|listen 443 ssl http2;|listen 127.0.0.1:$TLS_PORT ssl http2;|" \
  -e '/listen \[::\]/d' \
  -e "s|/etc/ssl/renkei/fullchain.pem|$tmpdir/cert.pem|" -e "s|/etc/ssl/renkei/privkey.pem|$tmpdir/key.pem|" \
  "$RENKEI_SRC/ops/nginx/renkei.conf" >"$tmpdir/nginx/renkei.conf"
grep -q "server 127.0.0.1:$HUB2_PORT" "$tmpdir/nginx/renkei.conf" || fail "the second upstream server was not enabled"
cat >"$tmpdir/nginx/nginx.conf" <<CONF
daemon off;
pid $tmpdir/nginx/nginx.pid;
error_log $tmpdir/nginx/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $tmpdir/nginx/body;
  proxy_temp_path $tmpdir/nginx/proxy;
  fastcgi_temp_path $tmpdir/nginx/fastcgi;
  uwsgi_temp_path $tmpdir/nginx/uwsgi;
  scgi_temp_path $tmpdir/nginx/scgi;
  include $tmpdir/nginx/renkei.conf;
}
CONF
nginx -p "$tmpdir/nginx" -c "$tmpdir/nginx/nginx.conf" -e "$tmpdir/nginx/error.log" &
NGINX=$!
poll 50 curl -s -o /dev/null --cacert "$tmpdir/cert.pem" "$PUBLIC/healthz" || fail "nginx does not answer: $(cat "$tmpdir/nginx/error.log")"

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
kill "$NGINX" 2>/dev/null || true
wait "$NGINX" 2>/dev/null || true

cat "$tmpdir"/r1.log "$tmpdir"/r2.log >"$tmpdir/all.log"
total=$(wc -l <"$tmpdir/all.log")
assert_eq "" "$(awk '$2 != 200 {print $1 ":" $2}' "$tmpdir/all.log" | tr '\n' ' ')" \
  "all $total reads through nginx were answered with data, across the kill and the restart"
assert_ge "$served_by_b" 1 "node B served reads before it was killed"
assert_ge "$(grep -c '"route":"/v2/entities"' "$HUB_LOG")" 1 "node A served reads"
awk '{ print $1 "\t" $3 }' "$tmpdir/all.log" >"$tmpdir/answered.tsv"
missing=$(psql "$RENKEI_DB" -XqAt -v ON_ERROR_STOP=1 <<SQL
CREATE TEMP TABLE answered (id text, sha256 text);
\copy answered FROM '$tmpdir/answered.tsv'
SELECT coalesce(string_agg(a.id, ' '), '') FROM answered a
 WHERE NOT EXISTS (SELECT 1 FROM renkei.audit_entries e
                    WHERE e.kind = 'transfer'
                      AND (e.canonical::jsonb -> 'request' ->> 'id') = a.id
                      AND (e.canonical::jsonb -> 'outcome' ->> 'sha256') = a.sha256);
SQL
)
assert_eq "" "$missing" "every read answered has its entry, with the digest of what was sent"
assert_eq "t" "$(sql "SELECT min(seq) = 0 AND max(seq) = count(*) - 1 FROM renkei.audit_entries")" \
  "seq runs from 0 without a gap ($(sql "SELECT count(*) FROM renkei.audit_entries") entries for $total reads)"
hub2_stop
hub_stop
run_renkei audit verify --json
assert_eq 0 "$RUN_STATUS" "renkei audit verify exits 0 [$RUN_ERR]"
assert_jq '.ok == true' "$RUN_OUT" "the log of both nodes verifies"
