# shellcheck shell=bash
# Helpers for the token service's integration tests (test_authz_*.sh), sourced
# after lib.sh.  Not a test itself (CMakeLists.txt registers test_*.sh only).
#
#   az_setup                     migrate; tenants kagawa (top level) and its
#                                towns takamatsu and kanonji, all hosted
#   client_add ARGS...           renkei client add ARGS --json; sets CID, CSECRET
#   b64url_decode, b64url_encode (stdin to stdout), jwt_header TOKEN,
#   jwt_claims TOKEN             the decoded JSON of a JWT's parts
#   token_basic ID SECRET [CURL ARGS...]   POST /oauth2/token, HTTP Basic,
#                                grant_type=client_credentials plus CURL ARGS
#   token_post ID SECRET [CURL ARGS...]    the same with client_secret_post
#   get_token ID SECRET [CURL ARGS...]     token_basic that must give 200; TOKEN
#   introspect ID SECRET TOKEN, revoke ID SECRET TOKEN
#   assert_oauth_error STATUS ERROR MSG    RFC 6749 §5.2 error reply
#   admin_get PATH TOKEN, admin_send METHOD PATH TOKEN JSON
#   snapshot_authz               digest of every authz table and the events
#   db_contains TEXT...          rows of any renkei table holding any TEXT
#   verify_jwt_signature TOKEN JWKS        openssl verifies the JWS with the JWK
#                                named by its kid (ES256 and RS256)
#   ec_jwk PEM KID, rsa_jwk PEM KID, jws_sign ALG PEM HEADER CLAIMS
#                                client key pairs and JWS for private_key_jwt
#   faketime_lib                 TIMESHIFT_SO: an LD_PRELOAD shim that shifts the
#                                wall clock by RENKEI_TEST_TIME_SHIFT seconds
#   timeshift_env SECONDS        TIMESHIFT_ENV: the NAME=VALUE arguments that
#                                run a hub with its clock shifted
#   hub2_start [NAME=VALUE]..., hub2_stop, HUB2_URL, HUB2_PID, HUB2_LOG
#                                a second hub on the same database
#   on_hub2 CMD...               CMD (http, get_token, ...) against the second hub

for _tool in openssl base64; do
  if ! command -v "$_tool" >/dev/null 2>&1; then
    fail "the authz tests need '$_tool' on PATH"
  fi
done

ACTOR="cli:$(id -un 2>/dev/null || echo "uid$(id -u)")"
FORM=(-H 'Content-Type: application/x-www-form-urlencoded')

# az_setup: migrated database with the demo prefecture's shape.
az_setup() {
  migrate
  local t
  for t in "kagawa 香川県" "takamatsu 高松市 kagawa" "kanonji 観音寺市 kagawa"; do
    # shellcheck disable=SC2086
    set -- $t
    run_renkei tenant add "$1" --name "$2" ${3:+--parent "$3"} --hosted
    if [[ $RUN_STATUS != 0 ]]; then
      fail "tenant add $1 exited $RUN_STATUS: [$RUN_ERR]"
    fi
  done
}

# client_add ARGS...: renkei client add ARGS --json must succeed; CID, CSECRET.
client_add() {
  run_renkei client add "$@" --json
  if [[ $RUN_STATUS != 0 ]]; then
    fail "client add $* exited $RUN_STATUS: stdout [$RUN_OUT] stderr [$RUN_ERR]"
  fi
  CID=$(jq -er '.client_id' <<<"$RUN_OUT") || fail "client add $*: no client_id in [$RUN_OUT]"
  CSECRET=$(jq -r '.client_secret // empty' <<<"$RUN_OUT")
}

# b64url_decode: base64url (no padding) on stdin to bytes on stdout.
b64url_decode() {
  local s
  s=$(tr -d '\n' | tr '_-' '/+')
  case $((${#s} % 4)) in
    2) s+="==" ;;
    3) s+="=" ;;
    1) return 1 ;;
  esac
  printf '%s' "$s" | base64 -d
}

b64url_encode() {
  base64 -w0 | tr '/+' '_-' | tr -d '='
}

jwt_header() {
  cut -d. -f1 <<<"$1" | b64url_decode
}

jwt_claims() {
  cut -d. -f2 <<<"$1" | b64url_decode
}

# token_basic ID SECRET [CURL ARGS...]: client_credentials with HTTP Basic.
token_basic() {
  local id=$1 secret=$2
  shift 2
  http POST /oauth2/token "${FORM[@]}" -u "$id:$secret" --data 'grant_type=client_credentials' "$@"
}

# token_post ID SECRET [CURL ARGS...]: client_credentials, client_secret_post.
token_post() {
  local id=$1 secret=$2
  shift 2
  http POST /oauth2/token "${FORM[@]}" --data 'grant_type=client_credentials' \
    --data-urlencode "client_id=$id" --data-urlencode "client_secret=$secret" "$@"
}

# get_token ID SECRET [CURL ARGS...]: token_basic that must answer 200; TOKEN.
get_token() {
  token_basic "$@"
  assert_status 200 "token for $1"
  TOKEN=$(jq -er '.access_token' <<<"$HTTP_BODY") || fail "no access_token in [$HTTP_BODY]"
}

introspect() {
  http POST /oauth2/introspect "${FORM[@]}" -u "$1:$2" --data-urlencode "token=$3"
}

revoke() {
  http POST /oauth2/revoke "${FORM[@]}" -u "$1:$2" --data-urlencode "token=$3"
}

# assert_oauth_error STATUS ERROR MSG: the last reply is an RFC 6749 §5.2
# error: STATUS, application/json, exactly {error, error_description} with a
# non-empty description, not cacheable.
assert_oauth_error() {
  local status=$1 name=$2 msg=$3
  assert_status "$status" "$msg: status $status"
  _header Content-Type
  assert_match '^application/json(;.*)?$' "$HEADER_VALUE" "$msg: Content-Type application/json"
  # RFC 6749 §5.2 lets error_description hold %x20-21 / %x23-5B / %x5D-7E only
  assert_jsons "keys == [\"error\", \"error_description\"]" "$msg: body has error and error_description" \
    ".error == \"$name\"" "$msg: error is $name" \
    '.error_description | type == "string" and length > 0' "$msg: error_description is not empty" \
    '.error_description | test("^[ !#-\\[\\]-~]+$")' \
    "$msg: error_description uses only the characters RFC 6749 allows"
  _header Cache-Control
  assert_eq "no-store" "$HEADER_VALUE" "$msg: Cache-Control: no-store"
}

admin_get() {
  http GET "$1" -H "Authorization: Bearer $2"
}

admin_send() {
  http "$1" "$2" -H "Authorization: Bearer $3" -H 'Content-Type: application/json' --data "$4"
}

# snapshot_authz: counts and digests of clients, initial access tokens,
# revoked tokens, signing keys and pending events.
snapshot_authz() {
  sql "SELECT concat_ws(' ',
    (SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t.id)), '-') FROM renkei.clients t),
    (SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t.token_hmac)), '-') FROM renkei.initial_access_tokens t),
    (SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t.jti)), '-') FROM renkei.revoked_tokens t),
    (SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t.kid)), '-') FROM renkei.signing_keys t),
    (SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t.seq)), '-') FROM renkei.audit_events t),
    (SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t.id)), '-') FROM renkei.tenants t))"
}

# db_contains TEXT...: the number of rows of the tables of schema renkei
# whose text form holds any TEXT, as text or as the hex of its bytes.
db_contains() {
  local arr
  arr=$(printf '%s\n' "$@" | jq -Rsc 'split("\n") | map(select(length > 0))')
  psql "$RENKEI_DB" -XqAt -v ON_ERROR_STOP=1 -v needles="$arr" <<'SQL'
SELECT coalesce(sum((xpath('/row/c/text()', query_to_xml(format(
         'SELECT count(*) AS c FROM renkei.%I x, jsonb_array_elements_text(%L::jsonb) n
           WHERE strpos(x::text, n) > 0 OR strpos(x::text, encode(convert_to(n, ''UTF8''), ''hex'')) > 0',
         tablename, :'needles'), false, true, '')))[1]::text::int), 0)
  FROM pg_tables WHERE schemaname = 'renkei';
SQL
}

# _der_len N: a DER length.
_der_len() {
  local n=$1
  if ((n < 128)); then
    printf '%02x' "$n"
  elif ((n < 256)); then
    printf '81%02x' "$n"
  else
    printf '82%04x' "$n"
  fi
}

# _der_int HEX: a DER INTEGER of the unsigned big-endian HEX.
_der_int() {
  local h=$1
  while [[ ${#h} -gt 2 && ${h:0:2} == 00 ]]; do h=${h:2}; done
  if [[ $h =~ ^[89a-f] ]]; then h="00$h"; fi
  printf '02%s%s' "$(_der_len $((${#h} / 2)))" "$h"
}

_hex() {
  od -An -v -tx1 | tr -d ' \n'
}

_unhex() {
  local h
  h=$(cat)
  printf '%s' "$h" | sed 's/../\\x&/g' | xargs -0 printf '%b'
}

# verify_jwt_signature TOKEN JWKS: the JWK of JWKS named by TOKEN's kid
# verifies TOKEN's signature under the header's alg (ES256 or RS256), with
# openssl.  Returns 1 when it does not.
verify_jwt_signature() {
  local token=$1 jwks=$2 kid alg jwk dir
  dir=$(mktemp -d "$tmpdir/jws.XXXXXX")
  kid=$(jwt_header "$token" | jq -r '.kid')
  alg=$(jwt_header "$token" | jq -r '.alg')
  jwk=$(jq -c --arg kid "$kid" '.keys[] | select(.kid == $kid)' <<<"$jwks")
  [[ -n $jwk ]] || return 1
  printf '%s' "${token%.*}" >"$dir/signed"
  cut -d. -f3 <<<"$token" | b64url_decode >"$dir/sig.raw" || return 1
  case $alg in
    ES256)
      [[ $(jq -r '.kty + " " + .crv' <<<"$jwk") == "EC P-256" ]] || return 1
      local x y r s seq
      x=$(jq -r .x <<<"$jwk" | b64url_decode | _hex)
      y=$(jq -r .y <<<"$jwk" | b64url_decode | _hex)
      ((${#x} == 64 && ${#y} == 64)) || return 1
      printf '3059301306072a8648ce3d020106082a8648ce3d03010703420004%s%s' "$x" "$y" | _unhex >"$dir/pub.der"
      local raw
      raw=$(_hex <"$dir/sig.raw")
      ((${#raw} == 128)) || return 1
      r=$(_der_int "${raw:0:64}")
      s=$(_der_int "${raw:64:64}")
      seq="$r$s"
      printf '30%s%s' "$(_der_len $((${#seq} / 2)))" "$seq" | _unhex >"$dir/sig.der"
      openssl pkey -pubin -inform DER -in "$dir/pub.der" -out "$dir/pub.pem" 2>/dev/null || return 1
      ;;
    RS256)
      [[ $(jq -r .kty <<<"$jwk") == RSA ]] || return 1
      local n e
      n=$(jq -r .n <<<"$jwk" | b64url_decode | _hex)
      e=$(jq -r .e <<<"$jwk" | b64url_decode | _hex)
      printf 'asn1=SEQUENCE:pubkey\n[pubkey]\nn=INTEGER:0x%s\ne=INTEGER:0x%s\n' "${n^^}" "${e^^}" >"$dir/rsa.cnf"
      openssl asn1parse -genconf "$dir/rsa.cnf" -out "$dir/rsa.der" >/dev/null 2>&1 || return 1
      openssl pkey -pubin -inform DER -in "$dir/rsa.der" -out "$dir/pub.pem" 2>/dev/null ||
        openssl rsa -RSAPublicKey_in -inform DER -in "$dir/rsa.der" -pubout -out "$dir/pub.pem" 2>/dev/null ||
        return 1
      cp "$dir/sig.raw" "$dir/sig.der"
      ;;
    *) return 1 ;;
  esac
  openssl dgst -sha256 -verify "$dir/pub.pem" -signature "$dir/sig.der" "$dir/signed" >/dev/null 2>&1
}

# ec_jwk PEM_OUT KID: a new P-256 key pair; the private key (PEM) in PEM_OUT,
# its public JWK (with kid, alg ES256) on stdout.
ec_jwk() {
  local pem=$1 kid=$2 hex
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pem" 2>/dev/null ||
    fail "openssl cannot make a P-256 key"
  hex=$(openssl pkey -in "$pem" -pubout -outform DER 2>/dev/null | _hex)
  hex=${hex: -128}
  jq -nc --arg kid "$kid" --arg x "$(printf '%s' "${hex:0:64}" | _unhex | b64url_encode)" \
    --arg y "$(printf '%s' "${hex:64:64}" | _unhex | b64url_encode)" \
    '{kty: "EC", crv: "P-256", x: $x, y: $y, kid: $kid, alg: "ES256", use: "sig"}'
}

# rsa_jwk PEM_OUT KID: a new 2048-bit RSA key pair, like ec_jwk.
rsa_jwk() {
  local pem=$1 kid=$2 n
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pem" 2>/dev/null ||
    fail "openssl cannot make an RSA key"
  n=$(openssl rsa -in "$pem" -noout -modulus 2>/dev/null | sed 's/^Modulus=//')
  jq -nc --arg kid "$kid" --arg n "$(printf '%s' "${n,,}" | _unhex | b64url_encode)" \
    '{kty: "RSA", n: $n, e: "AQAB", kid: $kid, alg: "RS256", use: "sig"}'
}

# jws_sign ALG PEM HEADER_JSON CLAIMS_JSON: a compact JWS signed by openssl
# (ALG ES256 or RS256; the header is taken as given).
jws_sign() {
  local alg=$1 pem=$2 signing der raw r s rl sl
  signing="$(printf '%s' "$3" | b64url_encode).$(printf '%s' "$4" | b64url_encode)"
  der=$(printf '%s' "$signing" | openssl dgst -sha256 -sign "$pem" 2>/dev/null | _hex)
  if [[ $alg == ES256 ]]; then
    # SEQUENCE { INTEGER r, INTEGER s } to r || s, 32 bytes each
    local off=4
    [[ ${der:2:2} == 81 ]] && off=6
    rl=$((16#${der:off+2:2}))
    r=${der:off+4:rl*2}
    off=$((off + 4 + rl * 2))
    sl=$((16#${der:off+2:2}))
    s=${der:off+4:sl*2}
    # (a leading 00 goes; a short integer is padded below; ${x: -64} of a
    # shorter string would be empty, about one signature in 128)
    ((${#r} > 64)) && r=${r: -64}
    ((${#s} > 64)) && s=${s: -64}
    r=$(printf '%64s' "$r" | tr ' ' 0)
    s=$(printf '%64s' "$s" | tr ' ' 0)
    raw="$r$s"
  else
    raw=$der
  fi
  printf '%s.%s' "$signing" "$(printf '%s' "$raw" | _unhex | b64url_encode)"
}

# faketime_lib: TIMESHIFT_SO, a shared object that, preloaded, adds
# RENKEI_TEST_TIME_SHIFT seconds to the wall clock (time, gettimeofday,
# clock_gettime(CLOCK_REALTIME)); monotonic clocks are left alone.
faketime_lib() {
  local so=$tmpdir/timeshift.so
  if [[ ! -f $so ]]; then
    local cc=${CC:-cc}
    command -v "$cc" >/dev/null 2>&1 || fail "faketime_lib needs a C compiler ($cc)"
    cat >"$tmpdir/timeshift.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long shift(void)
{
    const char *s = getenv("RENKEI_TEST_TIME_SHIFT");
    return s ? strtol(s, NULL, 10) : 0;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    static int (*real)(clockid_t, struct timespec *);
    if (!real)
        real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int r = real(id, ts);
    if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
        ts->tv_sec += shift();
    return r;
}

time_t time(time_t *out)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out)
        *out = ts.tv_sec;
    return ts.tv_sec;
}

int gettimeofday(struct timeval *tv, void *tz)
{
    (void)tz;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}
EOF
    "$cc" -shared -fPIC -O1 -o "$so" "$tmpdir/timeshift.c" -ldl 2>"$tmpdir/timeshift.err" ||
      fail "cannot build the time-shift shim: $(cat "$tmpdir/timeshift.err")"
  fi
  TIMESHIFT_SO=$so
}

# timeshift_env SECONDS: NAME=VALUE arguments for hub_start / hub2_start /
# run_renkei that run the binary with its wall clock SECONDS ahead (negative:
# behind).  Keeps any ASAN_OPTIONS and lets ASan accept the preloaded shim.
timeshift_env() {
  faketime_lib
  TIMESHIFT_ENV=("LD_PRELOAD=$TIMESHIFT_SO" "RENKEI_TEST_TIME_SHIFT=$1"
    "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
}

# ------------------------------------------------------------- a second hub

HUB2_PID=
HUB2_URL=
HUB2_PORT=
HUB2_LOG=$tmpdir/hub2.log
: >"$HUB2_LOG"

# hub2_start [-u NAME | NAME=VALUE]...: a second "$RENKEI_BIN" serve on the
# same database and secret file, on its own free port (HUB2_URL, HUB2_PID).
hub2_start() {
  [[ -z $HUB2_PID ]] || fail "hub2_start: already running ($HUB2_PID)"
  _renkei_env RENKEI_LISTEN=127.0.0.1:0 RENKEI_LOG=debug "$@"
  # a second start reads only its own lines of the log
  local from
  from=$(($(wc -l <"$HUB2_LOG") + 1))
  (
    trap - INT QUIT
    exec env -i "${_env[@]}" "$RENKEI_BIN" serve
  ) </dev/null >>"$tmpdir/hub2.out" 2>>"$HUB2_LOG" &
  HUB2_PID=$!
  local i line
  for ((i = 0; i < 300; i++)); do
    line=$(tail -n +"$from" "$HUB2_LOG" |
      jq -cnR '[inputs | try fromjson | select(type == "object" and .msg == "listening")] | .[0] // empty' \
        2>/dev/null || true)
    if [[ -n $line ]]; then
      HUB2_PORT=$(jq -r '.port' <<<"$line")
      HUB2_URL=http://127.0.0.1:$HUB2_PORT
      return 0
    fi
    if ! alive "$HUB2_PID"; then
      wait "$HUB2_PID" || true
      HUB2_PID=
      tail -n 50 "$HUB2_LOG" >&2
      fail "the second hub exited before listening"
    fi
    sleep 0.1
  done
  fail "the second hub did not log \"listening\" within 30 s"
}

hub2_stop() {
  [[ -n $HUB2_PID ]] || return 0
  kill -TERM "$HUB2_PID" 2>/dev/null || true
  local i
  for ((i = 0; i < 100; i++)); do
    alive "$HUB2_PID" || break
    sleep 0.1
  done
  kill -KILL "$HUB2_PID" 2>/dev/null || true
  wait "$HUB2_PID" 2>/dev/null || true
  HUB2_PID=
}

# on_hub2 CMD...: run CMD with HUB_URL pointing at the second hub.
on_hub2() {
  local saved=$HUB_URL rc=0
  HUB_URL=$HUB2_URL
  "$@" || rc=$?
  HUB_URL=$saved
  return "$rc"
}
