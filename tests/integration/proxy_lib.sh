# shellcheck shell=bash
# shellcheck disable=SC2154 # tmpdir, RENKEI_SRC: set by lib.sh
# nginx in front of hubs, with ops/nginx/renkei.conf as shipped, for the
# tests of the set-up an operator runs (test_nginx_tls.sh, test_two_nodes.sh).
# Sourced after lib.sh. Not a test itself.
#
#   free_port                  a TCP port nothing listens on
#   nginx_start TLS HTTP A [B] a self-signed certificate for 127.0.0.1
#                              ($tmpdir/cert.pem), and nginx with the shipped
#                              site on ports TLS and HTTP in front of the hubs
#                              on ports A (and B: its second upstream line);
#                              only the listen lines (IPv6 ones dropped), the
#                              upstream, certificate, key and names change.
#                              NGINX_PID, NGINX_CONF (the site as run);
#                              stopped when the test ends
#   nginx_stop

free_port() {
  # below the kernel's ephemeral range (where outgoing connections and the
  # hubs' port 0 land), which a port picked now could be taken from later
  local p low=32768
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  ((low > 12000)) || low=32768
  for _ in $(seq 50); do
    p=$((10000 + RANDOM % (low - 10000)))
    ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
  fail "no free port"
}

NGINX_PID=
nginx_start() {
  local tls=$1 plain=$2 a=$3 b=${4:-}
  command -v nginx >/dev/null || fail "nginx is missing: run ops/setup"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$tmpdir/key.pem" -out "$tmpdir/cert.pem" 2>/dev/null ||
    fail "openssl cannot make a certificate"
  mkdir -p "$tmpdir/nginx"
  NGINX_CONF=$tmpdir/nginx/renkei.conf
  local -a second=()
  [[ -n $b ]] && second=(-e "s|# server 127.0.0.1:8081|server 127.0.0.1:$b|")
  sed -e "s|server 127.0.0.1:8080|server 127.0.0.1:$a|" "${second[@]}" \
    -e "s|listen 80;|listen 127.0.0.1:$plain;|" -e "s|listen 443 ssl http2;|listen 127.0.0.1:$tls ssl http2;|" \
    -e '/listen \[::\]/d' \
    -e "s|/etc/ssl/renkei/fullchain.pem|$tmpdir/cert.pem|" -e "s|/etc/ssl/renkei/privkey.pem|$tmpdir/key.pem|" \
    -e 's|server_name id.pref.example.jp;|server_name 127.0.0.1;|' \
    "$RENKEI_SRC/ops/nginx/renkei.conf" >"$NGINX_CONF"
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
  include $NGINX_CONF;
}
CONF
  nginx -t -p "$tmpdir/nginx" -c "$tmpdir/nginx/nginx.conf" >"$tmpdir/nginx/t.out" 2>&1 ||
    fail "nginx -t refuses the configuration: $(cat "$tmpdir/nginx/t.out")"
  nginx -p "$tmpdir/nginx" -c "$tmpdir/nginx/nginx.conf" -e "$tmpdir/nginx/error.log" &
  NGINX_PID=$!
  poll 50 curl -s -o /dev/null --cacert "$tmpdir/cert.pem" "https://127.0.0.1:$tls/healthz" ||
    fail "nginx does not answer: $(cat "$tmpdir/nginx/error.log")"
}

nginx_stop() {
  [[ -n $NGINX_PID ]] || return 0
  kill "$NGINX_PID" 2>/dev/null || true
  wait "$NGINX_PID" 2>/dev/null || true
  NGINX_PID=
}
