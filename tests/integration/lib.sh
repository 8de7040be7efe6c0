# shellcheck shell=bash
# Harness for renkei's integration tests, sourced by each test_*.sh.
#
# Needs RENKEI_BIN (the binary) and RENKEI_SRC (the source tree, for ops/pg
# and sql/).  Database: with RENKEI_TEST_DB (libpq conninfo of a superuser on
# a throwaway cluster, dbname=postgres) each test creates its own database
# there; without it each test starts a private cluster with ops/pg.  Either
# way RENKEI_DB names a fresh, empty database that is dropped at exit.
#
# Set RENKEI_TEST_KEEP=1 to keep the temporary directory (hub log, cluster)
# of a failed test.
#
# What a test gets (details above each function):
#   ok, fail, assert_eq, assert_ne, assert_match, assert_no_match, assert_ge,
#   assert_lt, assert_jq, check, poll           assertions; one summary line
#                                               "N passed, 0 failed" at exit
#   RENKEI_DB, PG_ADMIN, sql, private_cluster, PG_DIR    the database
#   run_renkei, migrate                         the binary, clean environment
#   hub_start, hub_stop, hub_wait, alive, hub_log_objects,
#   HUB_URL, HUB_PORT, HUB_PID, HUB_LOG         a running hub
#   http, http_try, header, raw_http, assert_status, assert_json,
#   assert_error                                HTTP
#   tmpdir                                      scratch, removed at exit

set -euo pipefail
set -E

: "${RENKEI_BIN:?set RENKEI_BIN to the renkei binary}"
: "${RENKEI_SRC:?set RENKEI_SRC to the renkei source tree}"

for _tool in curl jq psql; do
  if ! command -v "$_tool" >/dev/null 2>&1; then
    echo "integration test needs '$_tool' on PATH" >&2
    exit 1
  fi
done
if [[ ! -x $RENKEI_BIN ]]; then
  echo "RENKEI_BIN=$RENKEI_BIN is not an executable file" >&2
  exit 1
fi

# Debian's psql is a Perl wrapper (pg_wrapper) that picks a client version,
# which costs more than the query in a test's many small ones: call the
# newest installed client directly (the wrapper's choice for a remote
# conninfo) when there is one.
_PSQL=psql
_psql_major=0
for _p in /usr/lib/postgresql/*/bin/psql; do
  _v=${_p#/usr/lib/postgresql/}
  _v=${_v%%[!0-9]*}
  if [[ -x $_p && -n $_v ]] && ((10#$_v > _psql_major)); then
    _PSQL=$_p
    _psql_major=$((10#$_v))
  fi
done
psql() {
  command "$_PSQL" "$@"
}

TEST_NAME=$(basename "$0" .sh)
TEST_NAME=${TEST_NAME#test_}

# ops/pg runs PostgreSQL as the postgres user when we are root, so the
# cluster directory under tmpdir must be reachable by it: /tmp and 0755.
tmpdir=$(mktemp -d "/tmp/renkei-it-$TEST_NAME.XXXXXX")
chmod 755 "$tmpdir"

HUB_PID=
HUB_URL=
HUB_PORT=
HUB_EXIT=
HUB_LOG=$tmpdir/hub.log
: >"$HUB_LOG"

_passes=0
_failed_msg=
_err_line=
_err_cmd=
_pg_dirs=()      # clusters this test started (destroyed at exit)
_drop_dbs=()     # "admin-conninfo<TAB>dbname<TAB>cluster-dir" to drop at exit

# ---------------------------------------------------------------- assertions

_trunc() {
  local s=$1
  if ((${#s} > 600)); then
    printf '%s... (%d chars)' "${s:0:600}" "${#s}"
  else
    printf '%s' "$s"
  fi
}

# ok [MSG]: count a passed check.
ok() {
  _passes=$((_passes + 1))
  if [[ -n ${1:-} ]]; then
    echo "ok $_passes - $1"
  fi
  return 0
}

# fail MSG: report the failure on stderr and end the test with status 1.
fail() {
  _failed_msg="$*"
  echo "FAIL: $(_trunc "$*")" >&2
  exit 1
}

# assert_eq EXPECTED ACTUAL MSG
assert_eq() {
  local expected=$1 actual=$2 msg=${3:-assert_eq}
  if [[ "$expected" == "$actual" ]]; then
    ok "$msg"
  else
    fail "$msg: expected [$(_trunc "$expected")], got [$(_trunc "$actual")]"
  fi
}

# assert_ne UNEXPECTED ACTUAL MSG
assert_ne() {
  local unexpected=$1 actual=$2 msg=${3:-assert_ne}
  if [[ "$unexpected" != "$actual" ]]; then
    ok "$msg"
  else
    fail "$msg: got [$(_trunc "$actual")], which it must not be"
  fi
}

# assert_match REGEX ACTUAL MSG (bash ERE, unanchored unless REGEX anchors)
assert_match() {
  local re=$1 actual=$2 msg=${3:-assert_match}
  if [[ $actual =~ $re ]]; then
    ok "$msg"
  else
    fail "$msg: [$(_trunc "$actual")] does not match /$re/"
  fi
}

# assert_no_match REGEX ACTUAL MSG
assert_no_match() {
  local re=$1 actual=$2 msg=${3:-assert_no_match}
  if [[ $actual =~ $re ]]; then
    fail "$msg: [$(_trunc "$actual")] matches /$re/"
  else
    ok "$msg"
  fi
}

# assert_jq FILTER JSON MSG: jq -e FILTER must succeed (true, non-null).
assert_jq() {
  local filter=$1 json=$2 msg=${3:-assert_jq}
  if jq -e "$filter" >/dev/null 2>&1 <<<"$json"; then
    ok "$msg"
  else
    fail "$msg: jq '$filter' is false for [$(_trunc "$json")]"
  fi
}

# assert_json FILTER MSG: assert_jq on the last HTTP response body.
assert_json() {
  assert_jq "$1" "$HTTP_BODY" "${2:-$1}"
}

# _jq_checks JSON FILTER...: _JQ_OK[i] is 1 when `jq -e FILTER_i` succeeds
# on JSON (no error, and a last output that is neither false nor null), else
# 0; one jq process for all of them (each jq costs tens of milliseconds).
# Should the combined program not run (a filter that does not compile), or
# JSON hold no value at all (jq 1.6 -e then exits 0 whatever the filter),
# each filter gets a jq of its own.
_jq_checks() {
  local json=$1 f out
  # shellcheck disable=SC2016 # a jq program: $__rk_inputs is jq's
  local prog='[inputs] as $__rk_inputs | if ($__rk_inputs | length) == 0 then empty else ' sep=''
  shift
  for f in "$@"; do
    # the newline ends any comment in the filter
    prog+="$sep(try ([\$__rk_inputs[] | ($f
)] | if length > 0 and (last | . != false and . != null) then 1 else 0 end) catch 0)"
    sep=', '
  done
  prog+=' end'
  _JQ_OK=()
  if out=$(jq -nr "$prog" 2>/dev/null <<<"$json") && [[ -n $out ]]; then
    mapfile -t _JQ_OK <<<"$out"
  fi
  if ((${#_JQ_OK[@]} != $#)) && (($# > 0)); then
    _JQ_OK=()
    for f in "$@"; do
      if jq -e "$f" >/dev/null 2>&1 <<<"$json"; then _JQ_OK+=(1); else _JQ_OK+=(0); fi
    done
  fi
}

# assert_jqs JSON FILTER MSG [FILTER MSG]...: assert_jq JSON on each FILTER,
# in order, with one jq process.
assert_jqs() {
  local json=$1 i
  shift
  local -a filters=() msgs=()
  while (($# >= 2)); do
    filters+=("$1")
    msgs+=("$2")
    shift 2
  done
  (($# == 0)) || fail "assert_jqs: a FILTER without its MSG: [$1]"
  _jq_checks "$json" "${filters[@]}"
  for i in "${!filters[@]}"; do
    if [[ ${_JQ_OK[i]} == 1 ]]; then
      ok "${msgs[i]}"
    else
      fail "${msgs[i]}: jq '${filters[i]}' is false for [$(_trunc "$json")]"
    fi
  done
}

# assert_jsons FILTER MSG [FILTER MSG]...: assert_jqs on the last HTTP
# response body.
assert_jsons() {
  assert_jqs "$HTTP_BODY" "$@"
}

# assert_status CODE MSG: the last HTTP response had status CODE.
assert_status() {
  local expected=$1 msg=${2:-status}
  if [[ "$HTTP_STATUS" == "$expected" ]]; then
    ok "$msg"
  else
    fail "$msg: expected HTTP $expected, got $HTTP_STATUS; body [$(_trunc "$HTTP_BODY")]"
  fi
}

# assert_error STATUS NAME MSG: the last response is a non-OAuth error:
# status STATUS, Content-Type exactly application/json, body exactly
# {"error": NAME, "description": non-empty string}.
assert_error() {
  local status=$1 name=$2 msg=${3:-error $1 $2}
  assert_status "$status" "$msg: status"
  _header Content-Type
  assert_eq "application/json" "$HEADER_VALUE" "$msg: Content-Type"
  assert_jsons "type == \"object\" and (keys == [\"description\", \"error\"])" \
    "$msg: body has exactly error and description" \
    ".error == \"$name\"" "$msg: error is $name" \
    '.description | type == "string" and length > 0' \
    "$msg: description is a non-empty string"
}

# assert_ge ACTUAL MIN MSG: ACTUAL is an integer >= MIN.
assert_ge() {
  local actual=$1 min=$2 msg=${3:-assert_ge}
  if [[ $actual =~ ^-?[0-9]+$ ]] && ((actual >= min)); then
    ok "$msg"
  else
    fail "$msg: expected an integer >= $min, got [$(_trunc "$actual")]"
  fi
}

# assert_lt ACTUAL LIMIT MSG: ACTUAL is an integer < LIMIT.
assert_lt() {
  local actual=$1 limit=$2 msg=${3:-assert_lt}
  if [[ $actual =~ ^-?[0-9]+$ ]] && ((actual < limit)); then
    ok "$msg"
  else
    fail "$msg: expected an integer < $limit, got [$(_trunc "$actual")]"
  fi
}

# check MSG CMD...: CMD succeeds.
check() {
  local msg=$1
  shift
  if "$@"; then
    ok "$msg"
  else
    fail "$msg: '$*' failed"
  fi
}

# poll SECONDS CMD...: run CMD every 0.1 s until it succeeds; 1 on timeout.
poll() {
  local secs=$1
  shift
  local deadline=$((SECONDS + secs))
  while true; do
    if "$@"; then
      return 0
    fi
    if ((SECONDS >= deadline)); then
      return 1
    fi
    sleep 0.1
  done
}

# ------------------------------------------------------------------ database

_rand() {
  od -An -N4 -tx1 /dev/urandom | tr -d ' \n'
}

# _conninfo_db CONNINFO DBNAME: CONNINFO addressing database DBNAME.
_conninfo_db() {
  local ci=$1 db=$2
  if [[ $ci == postgres://* || $ci == postgresql://* ]]; then
    if [[ $ci =~ ^([^?]*://[^/?]*)(/[^?]*)?(\?.*)?$ ]]; then
      printf '%s/%s%s' "${BASH_REMATCH[1]}" "$db" "${BASH_REMATCH[3]}"
      return
    fi
  fi
  if [[ $ci =~ (^|[[:space:]])dbname=[^[:space:]]* ]]; then
    # shellcheck disable=SC2001
    sed -E "s/(^|[[:space:]])dbname=[^[:space:]]*/\\1dbname=$db/" <<<"$ci"
  else
    printf '%s dbname=%s' "$ci" "$db"
  fi
}

# _pg_start DIR: start (or restart) a throwaway cluster in DIR with ops/pg;
# prints its superuser conninfo.
_pg_start() {
  local dir=$1 out
  if [[ ! -x $RENKEI_SRC/ops/pg ]]; then
    fail "$RENKEI_SRC/ops/pg is missing: cannot start PostgreSQL"
  fi
  if ! out=$("$RENKEI_SRC/ops/pg" start "$dir" 2>"$tmpdir/pg-start.err"); then
    cat "$tmpdir/pg-start.err" >&2
    fail "ops/pg start $dir failed"
  fi
  out=$(grep -v '^[[:space:]]*$' <<<"$out" | tail -n 1)
  if [[ -z $out ]]; then
    cat "$tmpdir/pg-start.err" >&2
    fail "ops/pg start $dir printed no conninfo"
  fi
  printf '%s\n' "$out"
}

# _new_db ADMIN_CONNINFO CLUSTER_DIR: create t_<test>_<random> and point
# RENKEI_DB at it.  CLUSTER_DIR is empty for the shared cluster.
_new_db() {
  local admin=$1 dir=$2 name
  name="t_${TEST_NAME}_$(_rand)"
  if ! psql "$admin" -XqAt -v ON_ERROR_STOP=1 \
    -c "CREATE DATABASE \"$name\"" >/dev/null 2>"$tmpdir/createdb.err"; then
    cat "$tmpdir/createdb.err" >&2
    fail "cannot create database $name with [$admin]"
  fi
  _drop_dbs+=("$admin"$'\t'"$name"$'\t'"$dir")
  PG_ADMIN=$admin
  RENKEI_DB=$(_conninfo_db "$admin" "$name")
  TEST_DB_NAME=$name
  export RENKEI_DB PG_ADMIN TEST_DB_NAME
}

# private_cluster: make sure this test runs on a cluster of its own, which it
# may stop and start ($PG_DIR, with "$RENKEI_SRC/ops/pg" stop|start "$PG_DIR").
# RENKEI_DB then names a fresh database on that cluster.
private_cluster() {
  if [[ -n ${PG_DIR:-} ]]; then
    return 0
  fi
  local ci
  PG_DIR=$tmpdir/pg
  _pg_dirs+=("$PG_DIR")
  ci=$(_pg_start "$PG_DIR")
  _new_db "$ci" "$PG_DIR"
}

# sql QUERY: run QUERY on RENKEI_DB (as the superuser), unaligned output.
sql() {
  psql "$RENKEI_DB" -XqAt -v ON_ERROR_STOP=1 -c "$1"
}

# reads_without_entries TSV: of the reads answered 200 in TSV (lines
# "REQUEST-ID<TAB>BASE64 SHA-256 of the body received"), the ids of those
# with no transfer entry of that request id, status 200 and that digest in
# RENKEI_DB's audit log, space-separated (none: empty). One psql for all.
reads_without_entries() {
  psql "$RENKEI_DB" -XqAt -v ON_ERROR_STOP=1 <<SQL
CREATE TEMP TABLE answered (id text, sha256 text);
\copy answered FROM '$1'
SELECT coalesce(string_agg(a.id, ' '), '') FROM answered a
 WHERE NOT EXISTS (SELECT 1 FROM renkei.audit_entries e
                    WHERE e.kind = 'transfer'
                      AND (e.canonical::jsonb -> 'request' ->> 'id') = a.id
                      AND (e.canonical::jsonb -> 'outcome' ->> 'status') = '200'
                      AND (e.canonical::jsonb -> 'outcome' ->> 'sha256') = a.sha256);
SQL
}

# ------------------------------------------------------------- running renkei

# _renkei_env [-u NAME | NAME=VALUE]...: fill _env with a clean environment
# for the binary (RENKEI_DB, RENKEI_SECRET_FILE and a cheap RENKEI_SCRYPT
# set, nothing else from RENKEI_*), adjusted by the arguments; _rest gets
# the remaining arguments.
_renkei_env() {
  local -A vars=()
  local -a order=()
  local name
  _set_var() {
    if [[ -z ${vars[$1]+x} ]]; then order+=("$1"); fi
    vars[$1]=$2
  }
  _set_var PATH "$PATH"
  _set_var HOME "${HOME:-/tmp}"
  _set_var LANG C.UTF-8
  for name in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS MSAN_OPTIONS TSAN_OPTIONS \
    ASAN_SYMBOLIZER_PATH LLVM_SYMBOLIZER_PATH; do
    if [[ -n ${!name+x} ]]; then _set_var "$name" "${!name}"; fi
  done
  _set_var RENKEI_DB "$RENKEI_DB"
  _set_var RENKEI_SECRET_FILE "$tmpdir/secret"
  # residents' password hashes at the lowest cost RENKEI_SCRYPT allows (the
  # default, ln=17, takes about a second a hash); -u RENKEI_SCRYPT for that
  _set_var RENKEI_SCRYPT "ln=12,r=8,p=1"
  _rest=()
  while (($#)); do
    if [[ $1 == -u && $# -ge 2 ]]; then
      unset "vars[$2]"
      shift 2
    elif [[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; then
      _set_var "${1%%=*}" "${1#*=}"
      shift
    else
      break
    fi
  done
  _rest=("$@")
  _env=()
  for name in "${order[@]}"; do
    if [[ -n ${vars[$name]+x} ]]; then _env+=("$name=${vars[$name]}"); fi
  done
}

# run_renkei [-u NAME | NAME=VALUE]... ARGS...: run "$RENKEI_BIN" ARGS in a
# clean environment (see _renkei_env), at most $RUN_TIMEOUT s (default 60;
# then RUN_STATUS is 124).  Sets RUN_STATUS, RUN_OUT, RUN_ERR; never fails
# by itself.
RUN_TIMEOUT=60
run_renkei() {
  _renkei_env "$@"
  RUN_STATUS=0
  timeout "$RUN_TIMEOUT" env -i "${_env[@]}" "$RENKEI_BIN" "${_rest[@]}" \
    >"$tmpdir/run.out" 2>"$tmpdir/run.err" </dev/null || RUN_STATUS=$?
  RUN_OUT=$(<"$tmpdir/run.out")
  RUN_ERR=$(<"$tmpdir/run.err")
}

# migrate [ARGS...]: "$RENKEI_BIN" migrate ARGS with RENKEI_DB; fails the test
# unless it exits 0.
migrate() {
  run_renkei migrate "$@"
  if [[ $RUN_STATUS != 0 ]]; then
    fail "renkei migrate $* exited $RUN_STATUS: stdout [$RUN_OUT] stderr [$RUN_ERR]"
  fi
}

# hub_start [-u NAME | NAME=VALUE]...: run "$RENKEI_BIN" serve in the
# background on a free port and wait until it listens.  Sets HUB_PID,
# HUB_PORT, HUB_URL and HUB_LISTENING (the "listening" log object).
hub_start() {
  if [[ -n $HUB_PID ]]; then
    fail "hub_start: a hub (pid $HUB_PID) is already running"
  fi
  _renkei_env RENKEI_LISTEN=127.0.0.1:0 RENKEI_LOG=debug "$@"
  if ((${#_rest[@]})); then
    fail "hub_start: unexpected arguments ${_rest[*]}"
  fi
  local from port i
  from=$(($(wc -l <"$HUB_LOG") + 1))
  # Asynchronous commands of a non-interactive shell ignore SIGINT and
  # SIGQUIT; restore the defaults so the hub sees them as it would anywhere.
  (
    trap - INT QUIT
    exec env -i "${_env[@]}" "$RENKEI_BIN" serve
  ) </dev/null >>"$tmpdir/hub.out" 2>>"$HUB_LOG" &
  HUB_PID=$!
  HUB_EXIT=
  for ((i = 0; i < 300; i++)); do
    HUB_LISTENING=$(tail -n +"$from" "$HUB_LOG" |
      jq -cnR '[inputs | try fromjson | select(type == "object" and .msg == "listening")] | .[0] // empty' 2>/dev/null || true)
    if [[ -n $HUB_LISTENING ]]; then
      port=$(jq -r '.port' <<<"$HUB_LISTENING")
      if [[ ! $port =~ ^[1-9][0-9]*$ ]]; then
        fail "hub logged listening without an integer port: $HUB_LISTENING"
      fi
      HUB_PORT=$port
      HUB_URL=http://127.0.0.1:$port
      export HUB_URL HUB_PORT HUB_PID
      return 0
    fi
    if ! kill -0 "$HUB_PID" 2>/dev/null || _is_zombie "$HUB_PID"; then
      local st=0
      wait "$HUB_PID" || st=$?
      HUB_PID=
      _print_hub_log
      fail "hub exited with status $st before listening"
    fi
    sleep 0.1
  done
  _print_hub_log
  fail "hub did not log \"listening\" within 30 s"
}

# alive PID: PID is a running (not exited, not zombie) process.
alive() {
  kill -0 "$1" 2>/dev/null && ! _is_zombie "$1"
}

_is_zombie() {
  # the third field of /proc/PID/stat (read here: no process per call)
  local -a stat=()
  { read -r -a stat <"/proc/$1/stat"; } 2>/dev/null || true
  [[ ${stat[2]:-} == Z || -z ${stat[2]:-} ]]
}

# hub_wait [SECONDS]: wait (default 30 s, then SIGKILL) for the hub to exit;
# sets HUB_EXIT and returns it.
hub_wait() {
  local secs=${1:-30} st=0 n
  if [[ -z $HUB_PID ]]; then
    fail "hub_wait: no hub running"
  fi
  for ((n = 0; n < secs * 10; n++)); do
    alive "$HUB_PID" || break
    sleep 0.1
  done
  if alive "$HUB_PID"; then
    echo "hub did not exit within $secs s: SIGKILL" >>"$HUB_LOG"
    kill -KILL "$HUB_PID" 2>/dev/null || true
  fi
  wait "$HUB_PID" || st=$?
  HUB_PID=
  HUB_EXIT=$st
  export HUB_EXIT
  return "$st"
}

# hub_stop: SIGTERM the hub, wait for it; returns its exit status (HUB_EXIT).
hub_stop() {
  if [[ -z $HUB_PID ]]; then
    fail "hub_stop: no hub running"
  fi
  kill -TERM "$HUB_PID"
  hub_wait 30
}

# hub_log_objects JQ_CONDITION: the hub log's JSON objects (compact, one a
# line) for which JQ_CONDITION is true.
hub_log_objects() {
  jq -cnR "inputs | try fromjson | select(type == \"object\") | select($1)" \
    <"$HUB_LOG"
}

_print_hub_log() {
  if [[ -s $HUB_LOG ]]; then
    echo "----- hub log ($HUB_LOG, last 300 lines) -----" >&2
    tail -n 300 "$HUB_LOG" >&2
    echo "----- end of hub log -----" >&2
  fi
}

# ---------------------------------------------------------------------- HTTP

# http_try METHOD PATH [CURL ARGS...]: request $HUB_URL$PATH.  Sets
# HTTP_STATUS (000 when there was no response), HTTP_BODY, HTTP_HEADERS (the
# last header block, CRs removed; also in $HTTP_HEADERS_FILE) and returns
# curl's exit status.
http_try() {
  local method=$1 path=$2
  shift 2
  local -a how=(-X "$method")
  # curl --head writes the headers to -o; there is no body to keep anyway.
  if [[ $method == HEAD ]]; then how=(--head); fi
  HTTP_HEADERS_FILE=$tmpdir/http.headers
  HTTP_BODY_FILE=$tmpdir/http.body
  : >"$HTTP_HEADERS_FILE"
  : >"$HTTP_BODY_FILE"
  local rc=0
  HTTP_STATUS=$(curl -sS --max-time 30 "${how[@]}" -D "$HTTP_HEADERS_FILE" \
    -o "$HTTP_BODY_FILE" -w '%{http_code}' "$@" "$HUB_URL$path" \
    2>"$tmpdir/http.err") || rc=$?
  if [[ $method == HEAD ]]; then : >"$HTTP_BODY_FILE"; fi
  # $(<FILE) and the loops below run in this shell: no process per request
  # beyond curl (a test makes hundreds of requests).
  HTTP_BODY=$(<"$HTTP_BODY_FILE")
  _last_header_block <"$HTTP_HEADERS_FILE"
  HTTP_CURL_ERROR=$(<"$tmpdir/http.err")
  if ((rc != 0)) && [[ -z $HTTP_STATUS ]]; then HTTP_STATUS=000; fi
  return "$rc"
}

# http METHOD PATH [CURL ARGS...]: http_try that fails the test when no
# response arrives.
http() {
  local rc=0
  http_try "$@" || rc=$?
  if ((rc != 0)); then
    fail "curl $1 $(_trunc "$2") failed (exit $rc): $HTTP_CURL_ERROR"
  fi
}

# _last_header_block: HTTP_HEADERS gets the last header block of the curl
# -D file on stdin (from its last line starting "HTTP/"), every CR removed,
# trailing newlines dropped.
_last_header_block() {
  local line block=
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line//$'\r'/}
    if [[ $line == HTTP/* ]]; then block=; fi
    block+=$line$'\n'
  done
  while [[ $block == *$'\n' ]]; do block=${block%$'\n'}; done
  HTTP_HEADERS=$block
}

# header NAME: value of header NAME in the last response (empty if absent;
# the last one when repeated; blanks and tabs around it removed).
# _header NAME: the same into HEADER_VALUE (no subshell).
header() {
  _header "$1"
  printf '%s' "$HEADER_VALUE"
}

_header() {
  local name=${1,,} line v value=
  while IFS= read -r line; do
    [[ $line == *:* ]] || continue
    v=${line%%:*}
    if [[ ${v,,} == "$name" ]]; then
      v=${line#*:}
      while [[ $v == [$' \t']* ]]; do v=${v:1}; done
      while [[ $v == *[$' \t'] ]]; do v=${v%?}; done
      value=$v
    fi
  done <<<"$HTTP_HEADERS"
  HEADER_VALUE=$value
}

# raw_http REQUEST [TIMEOUT]: send REQUEST on a new TCP connection to the hub
# (printf %b: write CR LF as \r\n, since $(...) would eat a real trailing
# newline) and read the reply (each read waits at most TIMEOUT s, default 5).
# Sets RAW_STATUS_LINE, RAW_HEADERS, RAW_BODY (empty when nothing arrived)
# and, like http, HTTP_STATUS (000 when nothing arrived), HTTP_HEADERS and
# HTTP_BODY, so that assert_status, assert_error and header apply.
raw_http() {
  local request=$1 t=${2:-5} fd line len
  RAW_STATUS_LINE=
  RAW_HEADERS=
  RAW_BODY=
  if ! exec {fd}<>"/dev/tcp/127.0.0.1/$HUB_PORT"; then
    fail "raw_http: cannot connect to 127.0.0.1:$HUB_PORT"
  fi
  printf '%b' "$request" >&"$fd" || true
  if IFS= read -r -t "$t" line <&"$fd"; then
    RAW_STATUS_LINE=${line%$'\r'}
    while IFS= read -r -t "$t" line <&"$fd"; do
      line=${line%$'\r'}
      [[ -z $line ]] && break
      RAW_HEADERS+=$line$'\n'
    done
    len=$(awk -F': *' 'tolower($1) == "content-length" { print $2 }' <<<"$RAW_HEADERS")
    if [[ $len =~ ^[0-9]+$ ]] && ((len > 0)); then
      LC_ALL=C IFS= read -r -d '' -N "$len" -t "$t" RAW_BODY <&"$fd" || true
    fi
  fi
  exec {fd}>&-
  HTTP_STATUS=000
  if [[ $RAW_STATUS_LINE =~ ^HTTP/[0-9.]+\ ([0-9]{3}) ]]; then
    HTTP_STATUS=${BASH_REMATCH[1]}
  fi
  HTTP_HEADERS=$RAW_HEADERS
  HTTP_BODY=$RAW_BODY
}

# ---------------------------------------------------------------- at the end

_on_exit() {
  local rc=$?
  set +e
  trap - ERR
  local j
  # Background helpers of the test (curl, psql) first, then the hub.
  for j in $(jobs -p); do
    if [[ $j != "$HUB_PID" ]]; then kill "$j" 2>/dev/null; fi
  done
  if [[ -n $HUB_PID ]]; then
    kill -TERM "$HUB_PID" 2>/dev/null
    for ((j = 0; j < 50; j++)); do
      _is_zombie "$HUB_PID" && break
      sleep 0.1
    done
    kill -KILL "$HUB_PID" 2>/dev/null
    wait "$HUB_PID" 2>/dev/null
  fi
  wait 2>/dev/null
  if ((rc != 0)); then
    if [[ -z $_failed_msg ]]; then
      echo "FAIL: unexpected exit status $rc${_err_line:+ at line $_err_line}${_err_cmd:+: $_err_cmd}" >&2
    fi
    _print_hub_log
  fi
  local entry admin db dir d
  for entry in "${_drop_dbs[@]}"; do
    IFS=$'\t' read -r admin db dir <<<"$entry"
    # A database on a cluster of our own goes with the cluster.
    [[ -n $dir ]] && continue
    psql "$admin" -XqAt -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 ||
      echo "warning: could not drop database $db" >&2
  done
  for d in "${_pg_dirs[@]}"; do
    "$RENKEI_SRC/ops/pg" destroy "$d" >/dev/null 2>&1 ||
      echo "warning: ops/pg destroy $d failed" >&2
  done
  if ((rc != 0)) && [[ ${RENKEI_TEST_KEEP:-} == 1 ]]; then
    echo "kept $tmpdir" >&2
  else
    rm -rf "$tmpdir"
  fi
  if ((rc == 0)); then
    echo "$_passes passed, 0 failed"
  else
    echo "$_passes passed, 1 failed"
  fi
  exit "$rc"
}

trap '_err_line=$LINENO; _err_cmd=$BASH_COMMAND' ERR
trap _on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------- this test's database

# A cluster started here is a throwaway: no fsync (see ops/pg).
export RENKEI_PG_NOSYNC=${RENKEI_PG_NOSYNC:-1}

PG_DIR=
if [[ -n ${RENKEI_TEST_DB:-} ]]; then
  _new_db "$RENKEI_TEST_DB" ""
else
  private_cluster
fi
