#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The database over TLS (issue 12): PostgreSQL with a certificate from a CA
# of the test's, TCP connections without TLS refused by pg_hba.conf. The hub
# with `sslmode=verify-full sslrootcert=CA` in RENKEI_DB migrates, serves and
# holds only TLS connections (pg_stat_ssl); a hub trusting another CA does
# not connect: /readyz is 503, and the log says why.
source "$(dirname "$0")/lib.sh"

RUN_TIMEOUT=30
private_cluster
dbname=$TEST_DB_NAME
port=$(cat "$PG_DIR/port")
data=$PG_DIR/data

# a CA, the server's certificate for 127.0.0.1, and another CA
mkca() { # mkca NAME: NAME.key, NAME.crt
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=$1" \
    -keyout "$tmpdir/$1.key" -out "$tmpdir/$1.crt" 2>/dev/null || fail "openssl: CA $1"
}
mkca test-ca
mkca other-ca
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
  -keyout "$tmpdir/server.key" -out "$tmpdir/server.csr" 2>/dev/null || fail "openssl: the server's key"
printf 'subjectAltName=IP:127.0.0.1\n' >"$tmpdir/san.ext"
openssl x509 -req -in "$tmpdir/server.csr" -CA "$tmpdir/test-ca.crt" -CAkey "$tmpdir/test-ca.key" \
  -CAcreateserial -days 1 -extfile "$tmpdir/san.ext" -out "$tmpdir/server.crt" 2>/dev/null ||
  fail "openssl: the server's certificate"
install -o postgres -g postgres -m 0600 "$tmpdir/server.key" "$data/server.key"
install -o postgres -g postgres -m 0644 "$tmpdir/server.crt" "$data/server.crt"
cat >>"$data/postgresql.conf" <<CONF

# test_db_tls
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_min_protocol_version = 'TLSv1.2'
CONF
# TCP from loopback: TLS or nothing (first match wins); the socket stays
{
  printf 'hostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 reject\n'
  cat "$data/pg_hba.conf"
} >"$tmpdir/pg_hba.conf"
install -o postgres -g postgres -m 0600 "$tmpdir/pg_hba.conf" "$data/pg_hba.conf"
"$RENKEI_SRC/ops/pg" restart "$PG_DIR" >/dev/null 2>"$tmpdir/restart.err" || fail "restart: $(cat "$tmpdir/restart.err")"

TCP="host=127.0.0.1 port=$port dbname=$dbname user=postgres"
if psql "$TCP sslmode=disable" -XqAtc 'SELECT 1' >/dev/null 2>"$tmpdir/plain.err"; then
  fail "a TCP connection without TLS was let in"
fi
assert_match 'reject|no encryption' "$(cat "$tmpdir/plain.err")" "TCP without TLS is refused"

RENKEI_DB="$TCP sslmode=verify-full sslrootcert=$tmpdir/test-ca.crt"
run_renkei migrate
assert_eq 0 "$RUN_STATUS" "renkei migrate over TLS, the server's name and certificate verified [$RUN_ERR]"
hub_start
http GET /readyz
assert_status 200 "the hub is ready over TLS"
stats=$(sql "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl),
  min(s.version) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name LIKE 'renkei%'")
IFS='|' read -r with_tls without_tls version <<<"$stats"
assert_ge "$with_tls" 1 "the hub's connections use TLS ($with_tls, $version)"
assert_eq 0 "$without_tls" "none without"
assert_match '^TLSv1\.[23]$' "$version" "TLS 1.2 or later"
hub_stop

RENKEI_DB="$TCP sslmode=verify-full sslrootcert=$tmpdir/other-ca.crt"
hub_start
http GET /readyz
assert_status 503 "a hub that trusts another CA is not ready"
hub_stop
assert_match 'certificate verify failed' "$(cat "$HUB_LOG")" "its log says the certificate is the trouble"
