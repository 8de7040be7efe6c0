#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# ops/nginx/renkei.conf in front of the hub (issue 12): Debian's nginx runs
# it on loopback with a self-signed certificate (only the ports, the
# upstream's port, the certificate's paths and the server name changed), and
#   - a token request and an NGSI request go through it over TLS with
#     HTTP/2, under HSTS; plain HTTP redirects to HTTPS;
#   - the request id travels end to end (the client's, or nginx's own);
#   - the hub takes the client's address from X-Forwarded-For only because
#     nginx's address is in RENKEI_TRUSTED_PROXIES: through nginx each client
#     keeps its own address (a forged X-Forwarded-For does not get through
#     nginx), directly an untrusted peer cannot forge one, and the
#     per-address throttle of failed client authentications hits the client
#     behind the proxy, not everyone behind it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/proxy_lib.sh"

RUN_TIMEOUT=20
az_setup
client_add --tenant takamatsu --name tk --grant client_credentials --scope "ngsi.read ngsi.write"
TK=("$CID" "$CSECRET")

TLS_PORT=$(free_port)
HTTP_PORT=$(free_port)
PUBLIC=https://127.0.0.1:$TLS_PORT
hub_start RENKEI_ISSUER="$PUBLIC" RENKEI_TRUSTED_PROXIES=127.0.0.1 RENKEI_MAX_CONN_PER_IP=0

# ---- nginx with the shipped configuration
nginx_start "$TLS_PORT" "$HTTP_PORT" "$HUB_PORT"
assert_eq 9 "$(diff "$RENKEI_SRC/ops/nginx/renkei.conf" "$NGINX_CONF" | grep -c '^<')" \
  "only the listen lines (IPv6 ones dropped), the upstream, the certificate, the key and the two names changed"
ok "nginx -t accepts ops/nginx/renkei.conf, and nginx serves it"

# tls CURL-ARGS...: curl over TLS to nginx (the certificate trusted), into
# HTTP_STATUS, HTTP_BODY, TLS_HEADERS, HTTP_VERSION
tls() {
  local out
  out=$(curl -s --cacert "$tmpdir/cert.pem" -D "$tmpdir/tls.h" -o "$tmpdir/tls.b" \
    -w '%{http_code} %{http_version}' "$@") || true
  HTTP_STATUS=${out%% *}
  HTTP_VERSION=${out##* }
  HTTP_BODY=$(cat "$tmpdir/tls.b")
  TLS_HEADERS=$(tr -d '\r' <"$tmpdir/tls.h")
}

# ---- a token and an NGSI request over TLS and HTTP/2
tls --http2 -u "${TK[0]}:${TK[1]}" -d grant_type=client_credentials "$PUBLIC/oauth2/token"
assert_status 200 "a token through nginx over TLS"
assert_eq 2 "$HTTP_VERSION" "over HTTP/2"
assert_match 'strict-transport-security: max-age=63072000; includeSubDomains' "$TLS_HEADERS" "with HSTS"
TOK=$(jq -r .access_token <<<"$HTTP_BODY")
assert_eq "$PUBLIC" "$(jwt_claims "$TOK" | jq -r .iss)" "issued by the public https:// issuer"
tls --http2 -H "Authorization: Bearer $TOK" -H 'Content-Type: application/json' \
  --data-binary '{"id": "WL1", "type": "WaterLevel", "level": {"value": 1.5}}' "$PUBLIC/v2/entities"
assert_status 201 "an NGSI write through nginx"
tls --http2 -H "Authorization: Bearer $TOK" -H 'X-Request-Id: nginx-e2e-1' "$PUBLIC/v2/entities?type=WaterLevel"
assert_status 200 "an NGSI read through nginx"
assert_jq '.[0].id == "WL1" and .[0].level.value == 1.5' "$HTTP_BODY" "with the entity"
assert_match 'x-request-id: nginx-e2e-1' "$TLS_HEADERS" "the client's request id comes back"
poll 30 grep -q '"request_id":"nginx-e2e-1"' "$HUB_LOG" || fail "the hub did not log the client's request id"
ok "and is the one the hub logged"
tls --http2 "$PUBLIC/healthz"
rid=$(sed -n 's/^x-request-id: //p' <<<"$TLS_HEADERS")
assert_match '^[0-9a-f]{32}$' "$rid" "without one, nginx makes one"
poll 30 grep -q "\"request_id\":\"$rid\"" "$HUB_LOG" || fail "the hub did not log nginx's request id $rid"
ok "which the hub logged as its own"
tls --tls-max 1.2 "$PUBLIC/healthz"
assert_status 200 "TLS 1.2 is accepted"
tls --tlsv1.3 "$PUBLIC/healthz"
assert_status 200 "TLS 1.3 is accepted"
http_code=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:$HTTP_PORT/oauth2/jwks")
assert_eq "301 https://127.0.0.1/oauth2/jwks" "$http_code" "plain HTTP redirects to HTTPS"

# ---- the client's address
# client_in_log REQUEST-ID: the "client" the hub logged for that request
client_in_log() {
  poll 30 grep -q "\"request_id\":\"$1\"" "$HUB_LOG" || fail "no log line for $1"
  grep "\"request_id\":\"$1\"" "$HUB_LOG" | tail -n 1 | jq -r .client
}
tls --interface 127.0.0.2 -H 'X-Request-Id: addr-1' "$PUBLIC/healthz"
assert_eq 127.0.0.2 "$(client_in_log addr-1)" "through nginx the hub sees the client's address"
tls --interface 127.0.0.3 -H 'X-Request-Id: addr-2' -H 'X-Forwarded-For: 6.6.6.6' "$PUBLIC/healthz"
assert_eq 127.0.0.3 "$(client_in_log addr-2)" "a forged X-Forwarded-For does not get through nginx"
curl -s -o /dev/null --interface 127.0.0.4 -H 'X-Request-Id: addr-3' -H 'X-Forwarded-For: 6.6.6.6' "$HUB_URL/healthz"
assert_eq 127.0.0.4 "$(client_in_log addr-3)" "directly, an untrusted peer's X-Forwarded-For is ignored"
curl -s -o /dev/null -H 'X-Request-Id: addr-4' -H 'X-Forwarded-For: 6.6.6.6, 10.1.1.1, 127.0.0.1' "$HUB_URL/healthz"
assert_eq 10.1.1.1 "$(client_in_log addr-4)" "from a trusted proxy: the nearest untrusted hop, not what lies left of it"
curl -s -o /dev/null -H 'X-Request-Id: addr-5' -H 'X-Forwarded-For: 6.6.6.6, not-an-address' "$HUB_URL/healthz"
assert_eq 127.0.0.1 "$(client_in_log addr-5)" "a hop that is not an address stops at the proxy"
# a proxy that appends a header line of its own after the client's many
forged=()
for i in $(seq 1 9); do forged+=(-H "X-Forwarded-For: 6.6.6.$i"); done
curl -s -o /dev/null -H 'X-Request-Id: addr-6' "${forged[@]}" -H 'X-Forwarded-For: 203.0.113.5' "$HUB_URL/healthz"
assert_eq 203.0.113.5 "$(client_in_log addr-6)" "nine forged header lines before the proxy's do not push its line out"
curl -s -o /dev/null -H 'X-Request-Id: addr-7' -H 'X-Forwarded-For: 2001:DB8:0:0::1' "$HUB_URL/healthz"
assert_eq 2001:db8::1 "$(client_in_log addr-7)" "an address is written in its canonical form (one client, one throttle key)"
curl -s -o /dev/null -H 'X-Request-Id: addr-8' -H 'X-Forwarded-For: 198.51.100.7:50123' "$HUB_URL/healthz"
assert_eq 198.51.100.7 "$(client_in_log addr-8)" "an IPv4 hop with a port (as some proxies write it)"
curl -s -o /dev/null -H 'X-Request-Id: addr-9' -H 'X-Forwarded-For: [2001:DB8::7]:443' "$HUB_URL/healthz"
assert_eq 2001:db8::7 "$(client_in_log addr-9)" "a bracketed IPv6 hop with a port"
curl -s -o /dev/null -H 'X-Request-Id: addr-10' -H 'X-Forwarded-For: 6.6.6.6, 198.51.100.7:http' "$HUB_URL/healthz"
assert_eq 127.0.0.1 "$(client_in_log addr-10)" "a port that is not a number: not an address, the walk stops at the proxy"

# ---- the per-address throttle lands on the client behind the proxy
for i in $(seq 1 30); do
  tls --interface 127.0.0.2 -u "c_unknown_$i:x" -d grant_type=client_credentials "$PUBLIC/oauth2/token"
  [[ $HTTP_STATUS == 401 ]] || fail "failure $i of 30 from 127.0.0.2 through nginx: $HTTP_STATUS [$HTTP_BODY]"
done
ok "30 failed client authentications from 127.0.0.2 through nginx"
tls --interface 127.0.0.2 -u "${TK[0]}:${TK[1]}" -d grant_type=client_credentials "$PUBLIC/oauth2/token"
assert_status 429 "that client is throttled"
tls --interface 127.0.0.3 -u "${TK[0]}:${TK[1]}" -d grant_type=client_credentials "$PUBLIC/oauth2/token"
assert_status 200 "another client behind the same proxy is not"

nginx_stop
ok "the hub behind nginx"
