# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154 # variables set for the tests, and set by lib.sh
# Helpers for the audit log's integration tests (test_audit_*.sh), sourced
# after lib.sh and authz_lib.sh.  Not a test itself (only test_*.sh are).
# Everything here follows audit/FORMAT.md, independently of renkei's code:
#
#   b64_hex B64, hex_b64 HEX          standard base64 <-> lower-case hex
#   b64_lines_hex                     the same for hashes on stdin, one a line
#   leaf_hex TEXT                     SHA-256(0x00 || TEXT) in hex (FORMAT §2)
#   node_hex LEFT RIGHT               SHA-256(0x01 || LEFT || RIGHT), hex in and out
#   merkle_root B64...                RFC 9162 MTH of the leaf hashes (FORMAT §3)
#   merkle_roots "SIZE..." B64...     the same for the first SIZE leaves, each SIZE
#   merkle_range A B B64...           FORMAT §6 range hashes of entries [A, B)
#   create_tenants_api TOKEN PREFIX COUNT   POST /admin/v1/tenants COUNT times
#   inclusion_ok INDEX SIZE LEAF ROOT PATH...       RFC 9162 §2.1.3.2 (hex)
#   consistency_ok FIRST SECOND ROOT1 ROOT2 PATH... RFC 9162 §2.1.4.2 (hex)
#   checkpoint_sig_ok CHECKPOINT_JSON JWKS_JSON     openssl verifies the ES256
#                                     signature over the FORMAT §4 message
#   db_copy                           COPY_DB: conninfo of a new database
#                                     copied from RENKEI_DB (dropped at exit)
#   db_drop CONNINFO                  drop such a copy now
#   verify_json [NAME=VALUE]... [ARGS...]  `renkei audit verify --json ARGS`;
#                                     VERIFY (its JSON), RUN_STATUS

for _tool in sha256sum base64 openssl; do
  if ! command -v "$_tool" >/dev/null 2>&1; then
    fail "the audit tests need '$_tool' on PATH"
  fi
done

b64_hex() {
  printf '%s' "$1" | base64 -d | _hex
}

hex_b64() {
  printf '%s' "$1" | _unhex | base64 -w0
}

# _bytes HEX: the bytes (bash's printf writes \x00 as a NUL byte).
_bytes() {
  local h=$1 fmt='' i
  for ((i = 0; i < ${#h}; i += 2)); do fmt+="\\x${h:i:2}"; done
  # shellcheck disable=SC2059
  printf "$fmt"
}

# b64_lines_hex: base64 hashes on stdin, one a line, as hex, one a line.
b64_lines_hex() {
  local h
  h=$(while IFS= read -r h; do printf '%s' "$h" | base64 -d; done | _hex)
  if [[ -n $h ]]; then fold -w 64 <<<"$h"; fi
}

leaf_hex() {
  local out
  out=$({ printf '\0'; printf '%s' "$1"; } | sha256sum)
  printf '%s\n' "${out%% *}"
}

node_hex() {
  local out
  out=$(_bytes "01$1$2" | sha256sum)
  printf '%s\n' "${out%% *}"
}

# inclusion_ok INDEX SIZE LEAF_HEX ROOT_HEX PATH_HEX...
inclusion_ok() {
  local fn=$1 sn=$(($2 - 1)) r=$3 root=$4
  (($1 >= 0 && $1 < $2)) || return 1
  shift 4
  local p
  for p in "$@"; do
    ((sn == 0)) && return 1
    if ((fn & 1)) || ((fn == sn)); then
      r=$(node_hex "$p" "$r")
      while ! ((fn & 1)) && ((fn != 0)); do
        fn=$((fn >> 1))
        sn=$((sn >> 1))
      done
    else
      r=$(node_hex "$r" "$p")
    fi
    fn=$((fn >> 1))
    sn=$((sn >> 1))
  done
  ((sn == 0)) && [[ $r == "$root" ]]
}

# consistency_ok FIRST SECOND ROOT1_HEX ROOT2_HEX PATH_HEX...
consistency_ok() {
  local first=$1 second=$2 r1=$3 r2=$4
  shift 4
  local -a path=("$@")
  if ((first == second)); then
    ((${#path[@]} == 0)) && [[ $r1 == "$r2" ]]
    return
  fi
  ((first < second && first > 0)) || return 1
  ((${#path[@]} > 0)) || return 1
  if (((first & (first - 1)) == 0)); then path=("$r1" "${path[@]}"); fi
  local fn=$((first - 1)) sn=$((second - 1))
  while ((fn & 1)); do
    fn=$((fn >> 1))
    sn=$((sn >> 1))
  done
  local fr=${path[0]} sr=${path[0]} c i
  for ((i = 1; i < ${#path[@]}; i++)); do
    c=${path[i]}
    ((sn == 0)) && return 1
    if ((fn & 1)) || ((fn == sn)); then
      fr=$(node_hex "$c" "$fr")
      sr=$(node_hex "$c" "$sr")
      while ! ((fn & 1)) && ((fn != 0)); do
        fn=$((fn >> 1))
        sn=$((sn >> 1))
      done
    else
      sr=$(node_hex "$sr" "$c")
    fi
    fn=$((fn >> 1))
    sn=$((sn >> 1))
  done
  [[ $fr == "$r1" && $sr == "$r2" ]] && ((sn == 0))
}

# checkpoint_sig_ok CHECKPOINT_JSON JWKS_JSON: the JWK of JWKS named by the
# checkpoint's kid (EC P-256) verifies its signature over
# "renkei audit checkpoint v1\n<size>\n<root>\n<time>\n<kid>\n".
checkpoint_sig_ok() {
  local cp=$1 jwks=$2 dir x y raw r s seq pem
  dir=$(mktemp -d "$tmpdir/cpsig.XXXXXX")
  jq -j '"renkei audit checkpoint v1\n\(.tree_size)\n\(.root_hash)\n\(.time)\n\(.kid)\n"' <<<"$cp" >"$dir/msg"
  # the x and y of the EC P-256 key named by the checkpoint's kid
  { read -r x && read -r y; } < <(jq -r --argjson cp "$cp" \
    '.keys[] | select(.kid == $cp.kid and .kty == "EC" and .crv == "P-256") | .x, .y' <<<"$jwks") || return 1
  pem="$tmpdir/ec-$x-$y.pem" # one PEM per public key
  if [[ ! -s $pem ]]; then
    x=$(printf '%s' "$x" | b64url_decode | _hex)
    y=$(printf '%s' "$y" | b64url_decode | _hex)
    ((${#x} == 64 && ${#y} == 64)) || return 1
    printf '3059301306072a8648ce3d020106082a8648ce3d03010703420004%s%s' "$x" "$y" | _unhex >"$dir/pub.der"
    openssl pkey -pubin -inform DER -in "$dir/pub.der" -out "$pem" 2>/dev/null || return 1
  fi
  raw=$(jq -r .signature <<<"$cp" | base64 -d 2>/dev/null | _hex)
  ((${#raw} == 128)) || return 1
  r=$(_der_int "${raw:0:64}")
  s=$(_der_int "${raw:64:64}")
  seq="$r$s"
  printf '30%s%s' "$(_der_len $((${#seq} / 2)))" "$seq" | _unhex >"$dir/sig.der"
  openssl dgst -sha256 -verify "$pem" -signature "$dir/sig.der" "$dir/msg" >/dev/null 2>&1
}

# db_copy: COPY_DB names a new database on RENKEI_DB's cluster, a copy of
# RENKEI_DB (which must have no connections: no hub running).
_copies=0
db_copy() {
  _copies=$((_copies + 1))
  local name="${TEST_DB_NAME}_c$_copies"
  if ! psql "$PG_ADMIN" -XqAt -v ON_ERROR_STOP=1 \
    -c "CREATE DATABASE \"$name\" TEMPLATE \"$TEST_DB_NAME\"" >/dev/null 2>"$tmpdir/copy.err"; then
    fail "cannot copy $TEST_DB_NAME to $name: $(cat "$tmpdir/copy.err")"
  fi
  # lib.sh drops it at exit (unless it goes with a private cluster)
  _drop_dbs+=("$PG_ADMIN"$'\t'"$name"$'\t'"${PG_DIR:-}")
  COPY_DB=$(_conninfo_db "$PG_ADMIN" "$name")
  COPY_NAME=$name
}

# db_drop NAME: drop a copy made by db_copy.
db_drop() {
  psql "$PG_ADMIN" -XqAt -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null 2>&1 || true
}

# verify_json [NAME=VALUE]... [ARGS...]: renkei audit verify --json ARGS (in
# run_renkei's environment, adjusted by NAME=VALUE); VERIFY gets its stdout,
# which must be a JSON object with the documented members.
verify_json() {
  local -a envs=()
  while (($#)) && [[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; do
    envs+=("$1")
    shift
  done
  run_renkei "${envs[@]}" audit verify --json "$@"
  VERIFY=$RUN_OUT
  if ! jq -e 'type == "object" and (keys == ["checkpoints", "entries", "first_bad_last", "first_bad_seq", "ok", "problem", "root_hash", "tree_size", "uncovered"])' \
    >/dev/null 2>&1 <<<"$VERIFY"; then
    fail "audit verify --json $* (exit $RUN_STATUS) printed no report object: stdout [$RUN_OUT] stderr [$RUN_ERR]"
  fi
}

# merkle_root B64...: the RFC 9162 tree hash (base64) of the leaves (leaf
# hashes in base64), computed by PostgreSQL's sha256() from FORMAT §3 alone.
# merkle_roots "SIZE..." B64...: merkle_root of the first SIZE leaves, for
# each SIZE (space-separated), one a line.
# merkle_range A B B64...: the FORMAT §6 range hashes (base64, one a line,
# in the order MTH's recursion meets them) of entries [A, B) in the tree of
# the leaves given.
merkle_root() {
  _merkle "SELECT translate(encode(pg_temp.mth(l, 0, cardinality(l)), 'base64'), E'\n', '') FROM leaves" "$@"
}
merkle_roots() {
  local sizes=$1
  shift
  _merkle "SELECT translate(encode(pg_temp.mth(l, 0, s), 'base64'), E'\n', '')
             FROM leaves, unnest('{${sizes// /,}}'::int[]) WITH ORDINALITY AS x(s, i) ORDER BY i" "$@"
}
merkle_range() {
  local a=$1 b=$2
  shift 2
  _merkle "SELECT translate(encode(h, 'base64'), E'\n', '')
             FROM leaves, pg_temp.rh(l, 0, cardinality(l), $a, $b) WITH ORDINALITY AS r(h, i) ORDER BY i" "$@"
}
_merkle() {
  local q=$1 arr
  shift
  arr=$(printf '%s\n' "$@" | jq -Rsc 'split("\n") | map(select(length > 0))')
  { cat <<'SQL'
CREATE FUNCTION pg_temp.mth(l bytea[], lo int, hi int) RETURNS bytea LANGUAGE plpgsql AS $f$
DECLARE
    n int := hi - lo;
    k int := 1;
BEGIN
    IF n = 0 THEN RETURN sha256(''::bytea); END IF;
    IF n = 1 THEN RETURN l[lo + 1]; END IF;
    WHILE k * 2 < n LOOP k := k * 2; END LOOP;
    RETURN sha256('\x01'::bytea || pg_temp.mth(l, lo, lo + k) || pg_temp.mth(l, lo + k, hi));
END
$f$;
CREATE FUNCTION pg_temp.rh(l bytea[], lo int, hi int, a int, b int) RETURNS SETOF bytea
    LANGUAGE plpgsql AS $f$
DECLARE
    k int := 1;
BEGIN
    IF hi <= a OR lo >= b THEN RETURN NEXT pg_temp.mth(l, lo, hi); RETURN; END IF;
    IF lo >= a AND hi <= b THEN RETURN; END IF;
    WHILE k * 2 < hi - lo LOOP k := k * 2; END LOOP;
    RETURN QUERY SELECT h FROM pg_temp.rh(l, lo, lo + k, a, b) WITH ORDINALITY AS r(h, i) ORDER BY i;
    RETURN QUERY SELECT h FROM pg_temp.rh(l, lo + k, hi, a, b) WITH ORDINALITY AS r(h, i) ORDER BY i;
END
$f$;
CREATE TEMP TABLE leaves AS
    SELECT ARRAY(SELECT decode(x, 'base64') FROM jsonb_array_elements_text(:'leaves'::jsonb)
                         WITH ORDINALITY AS t(x, i) ORDER BY i) AS l;
SQL
    printf '%s;\n' "$q"
  } | psql "$RENKEI_DB" -XqAt -v ON_ERROR_STOP=1 -v leaves="$arr"
}

# create_tenants_api TOKEN PREFIX COUNT: COUNT POST /admin/v1/tenants
# (hosted tenants PREFIX_0 ...) on one connection; prints each status.
create_tenants_api() {
  local token=$1 prefix=$2 count=$3 f i
  f=$(mktemp "$tmpdir/batch.XXXXXX")
  for ((i = 0; i < count; i++)); do
    if ((i)); then echo 'next' >>"$f"; fi
    cat >>"$f" <<CFG
url = "$HUB_URL/admin/v1/tenants"
request = "POST"
header = "Authorization: Bearer $token"
header = "Content-Type: application/json"
data = "{\"id\": \"${prefix}_$i\", \"name\": \"${prefix} $i\", \"city_os\": {\"kind\": \"hosted\"}}"
output = "/dev/null"
write-out = "%{http_code}\\n"
CFG
  done
  curl -sS --max-time 60 -K "$f"
}
