#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# `renkei audit verify` finds every kind of tampering a database superuser
# can do to the audit log behind the hub's back: an entry's bytes changed, a
# row deleted in the middle or at the end, two rows swapped, a row inserted,
# an entry changed with its leaf hash recomputed (only the signed
# checkpoints catch that), a checkpoint's root or signature altered, and a
# JWKS without the right key.  Each tampering is done on a fresh copy of the
# database (CREATE DATABASE ... TEMPLATE), as the superuser with triggers off
# (session_replication_role = replica).  Without that, the triggers refuse
# UPDATE, DELETE and TRUNCATE even to a superuser, and the service role
# renkei_service has no such privileges at all.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/audit_lib.sh"

RUN_TIMEOUT=30
migrate

# ------------------------------------------------- 40 entries, 3 checkpoints

N=40
names=("高松市" "Town, with comma" '"Quoted" town' "=SUM(A1)" "-1 town" "+town" "@town" "綾川町")
add_tenant() {
  local i=$1 id parent=()
  id=$(printf 't%02d' "$i")
  if ((i % 5 != 0)); then parent=(--parent "t$(printf '%02d' $((i - i % 5)))"); fi
  run_renkei tenant add "$id" --name "${names[i % ${#names[@]}]} $i" --hosted "${parent[@]}"
  [[ $RUN_STATUS == 0 ]] || fail "tenant add $id exited $RUN_STATUS: [$RUN_ERR]"
}
checkpoint_at() {
  run_renkei audit checkpoint --json
  assert_eq 0 "$RUN_STATUS" "audit checkpoint at $1 entries (stderr [$RUN_ERR])"
  assert_jq ".tree_size == $1" "$RUN_OUT" "the checkpoint covers the $1 entries"
}

for ((i = 0; i < N; i++)); do
  add_tenant "$i"
  case $((i + 1)) in
    10 | 25 | 37) checkpoint_at $((i + 1)) ;;
  esac
  if ((i + 1 == 37)); then
    # the auditor's own copy of the keys, taken while checkpoint 37 is the
    # latest (export makes a checkpoint only when the log grew)
    run_renkei audit export --from 0 --to 0 --jwks "$tmpdir/jwks.json"
    assert_eq 0 "$RUN_STATUS" "audit export --jwks (stderr [$RUN_ERR])"
  fi
done
assert_eq "$N|0|$((N - 1))|$N" "$(sql "SELECT count(*), min(seq), max(seq), count(DISTINCT tenant) FROM renkei.audit_entries WHERE kind = 'tenant.create'")" \
  "one tenant.create entry per tenant add, seq 0 to $((N - 1))"
assert_eq "$N" "$(sql "SELECT count(*) FROM renkei.audit_entries")" "and no other entries"
assert_eq "10 25 37" "$(sql "SELECT string_agg(tree_size::text, ' ' ORDER BY tree_size) FROM renkei.audit_checkpoints")" \
  "checkpoints at 10, 25 and 37 (export --jwks made none)"
assert_jq '.keys | length == 1 and (.[0].kid | startswith("audit-")) and .[0].kty == "EC" and .[0].crv == "P-256"' \
  "$(cat "$tmpdir/jwks.json")" "the exported JWKS holds the audit key"

verify_json
assert_eq 0 "$RUN_STATUS" "audit verify --json on the intact log exits 0"
assert_jq ".ok == true and .entries == $N and .checkpoints == 3 and .tree_size == $N and .uncovered == 3 and .first_bad_seq == null and .problem == null" \
  "$VERIFY" "intact: $N entries, 3 checkpoints, 3 uncovered"
INTACT_ROOT=$(jq -r .root_hash <<<"$VERIFY")
leaves=()
while IFS= read -r h; do leaves+=("$h"); done < <(sql "SELECT translate(encode(leaf_hash, 'base64'), E'\\n', '') FROM renkei.audit_entries ORDER BY seq")
assert_eq "$(merkle_root "${leaves[@]}")" "$INTACT_ROOT" "root_hash is the RFC 9162 tree hash of the stored leaves"
assert_eq "$N" "$(sql "SELECT count(*) FROM renkei.audit_entries WHERE leaf_hash = sha256('\\x00'::bytea || convert_to(canonical, 'UTF8'))")" \
  "every stored leaf hash is SHA-256(0x00 || canonical)"
run_renkei audit verify
assert_eq 0 "$RUN_STATUS" "audit verify (text) exits 0"
assert_match "intact: $N entries, 3 checkpoints verified" "$RUN_OUT" "audit verify (text) says intact"
assert_match "3 newest entries are not covered" "$RUN_OUT" "audit verify (text) mentions the 3 uncovered entries"

db_copy
verify_json RENKEI_DB="$COPY_DB"
assert_jq '.ok == true' "$VERIFY" "an untouched copy of the database verifies (the copies are faithful)"
db_drop "$COPY_NAME"

# ------------------------------------------------------------- tampering

# tamper WHAT SQL CHECK_SQL: on a fresh copy, with triggers off, run SQL;
# CHECK_SQL (on the copy) must then print t (the tampering took effect).
# Then audit verify --json on the copy (VERIFY) must exit 1 with ok false.
tamper() {
  local what=$1 stmt=$2 check_sql=$3
  db_copy
  psql "$COPY_DB" -XqAt -v ON_ERROR_STOP=1 -c "SET session_replication_role = replica" -c "$stmt" \
    >/dev/null 2>"$tmpdir/tamper.err" || fail "$what: the tampering SQL failed: $(cat "$tmpdir/tamper.err")"
  assert_eq t "$(psql "$COPY_DB" -XqAt -v ON_ERROR_STOP=1 -c "$check_sql")" "$what: the tampering took effect"
  verify_json RENKEI_DB="$COPY_DB"
  assert_eq 1 "$RUN_STATUS" "$what: audit verify exits 1 (stderr [$RUN_ERR])"
  assert_jq '.ok == false and (.problem | type == "string" and length > 0)' "$VERIFY" "$what: not ok, with a problem"
}
E=renkei.audit_entries
EVIL="replace(canonical, '\"actor\":\"cli:', '\"actor\":\"evil:')"
LEAF="sha256('\\x00'::bytea || convert_to(canonical, 'UTF8'))"

tamper "(a) entry 5's bytes changed" \
  "UPDATE $E SET canonical = $EVIL WHERE seq = 5" \
  "SELECT canonical LIKE '%\"actor\":\"evil:%' FROM $E WHERE seq = 5"
assert_jq '.first_bad_seq == 5' "$VERIFY" "(a) first_bad_seq is 5"
assert_match 'entry 5([^0-9]|$)' "$(jq -r .problem <<<"$VERIFY")" "(a) the problem names entry 5"
run_renkei RENKEI_DB="$COPY_DB" audit verify
assert_eq 1 "$RUN_STATUS" "(a) audit verify (text) exits 1"
assert_match 'TAMPERED' "$RUN_OUT" "(a) audit verify (text) says TAMPERED"
assert_match 'first bad entry: 5' "$RUN_OUT" "(a) audit verify (text) names entry 5"
db_drop "$COPY_NAME"

tamper "(b) middle row 20 deleted" \
  "DELETE FROM $E WHERE seq = 20" \
  "SELECT count(*) = $((N - 1)) AND NOT bool_or(seq = 20) FROM $E"
assert_jq '.first_bad_seq == 20' "$VERIFY" "(b) first_bad_seq is 20"
db_drop "$COPY_NAME"

tamper "(c) last row $((N - 1)) deleted" \
  "DELETE FROM $E WHERE seq = $((N - 1))" \
  "SELECT count(*) = $((N - 1)) AND max(seq) = $((N - 2)) FROM $E"
assert_jq ".first_bad_seq == $((N - 1))" "$VERIFY" "(c) first_bad_seq is $((N - 1))"
db_drop "$COPY_NAME"

tamper "(c2) last covered row 36 deleted along with the 3 after it" \
  "DELETE FROM $E WHERE seq >= 36" \
  "SELECT count(*) = 36 FROM $E"
assert_jq '.first_bad_seq == 36' "$VERIFY" "(c2) first_bad_seq is 36"
db_drop "$COPY_NAME"

tamper "(d) rows 12 and 30 swapped" \
  "UPDATE $E SET seq = seq + 1000000 WHERE seq IN (12, 30);
   UPDATE $E SET seq = CASE seq WHEN 1000012 THEN 30 ELSE 12 END WHERE seq >= 1000000" \
  "SELECT canonical LIKE '%\"seq\":30,%' FROM $E WHERE seq = 12"
assert_jq '.first_bad_seq == 12' "$VERIFY" "(d) first_bad_seq is 12 (the lower one)"
db_drop "$COPY_NAME"

SHIFT="UPDATE $E SET seq = seq + 1000000 WHERE seq >= 15;
   UPDATE $E SET seq = seq - 1000000 + 1 WHERE seq >= 1000000;"
tamper "(e) a forged entry inserted at 15 (its own seq 15, a correct leaf hash), later rows shifted up" \
  "$SHIFT
   INSERT INTO $E (seq, time, kind, tenant, canonical, leaf_hash)
     SELECT 15, time, kind, tenant, c, sha256('\\x00'::bytea || convert_to(c, 'UTF8'))
       FROM (SELECT time, kind, tenant, $EVIL AS c FROM $E WHERE seq = 16) x" \
  "SELECT count(*) = $((N + 1)) AND bool_and(leaf_hash = $LEAF) FROM $E"
assert_jq '.first_bad_seq == 15' "$VERIFY" "(e) first_bad_seq is 15, the inserted position"
db_drop "$COPY_NAME"

tamper "(e2) entry 15 duplicated (later rows shifted up)" \
  "$SHIFT
   INSERT INTO $E (seq, time, kind, tenant, canonical, leaf_hash)
     SELECT 15, time, kind, tenant, canonical, leaf_hash FROM $E WHERE seq = 16" \
  "SELECT count(*) = $((N + 1)) FROM $E"
assert_jq '.first_bad_seq == 15' "$VERIFY" "(e2) first_bad_seq is 15"
db_drop "$COPY_NAME"

tamper "(f) entry 17 changed and its leaf hash recomputed" \
  "UPDATE $E SET canonical = $EVIL WHERE seq = 17;
   UPDATE $E SET leaf_hash = $LEAF WHERE seq = 17" \
  "SELECT bool_and(leaf_hash = $LEAF) AND bool_or(canonical LIKE '%\"actor\":\"evil:%') FROM $E"
assert_jq '.first_bad_seq | type == "number" and . >= 10 and . <= 17' "$VERIFY" \
  "(f) first_bad_seq lies after the last good checkpoint (10) and at or before 17"
problem=$(jq -r .problem <<<"$VERIFY")
assert_match 'checkpoint|signed' "$problem" "(f) the problem is about a checkpoint"
assert_match '(^|[^0-9])25([^0-9]|$)' "$problem" "(f) the problem names the checkpoint at size 25"
db_drop "$COPY_NAME"

tamper "(f2) uncovered entry 38 changed and its leaf hash recomputed" \
  "UPDATE $E SET canonical = $EVIL WHERE seq = 38;
   UPDATE $E SET leaf_hash = $LEAF WHERE seq = 38" \
  "SELECT bool_and(leaf_hash = $LEAF) AND bool_or(canonical LIKE '%\"actor\":\"evil:%') FROM $E"
assert_jq '.first_bad_seq | type == "number" and . <= 38' "$VERIFY" "(f2) first_bad_seq is at or before 38"
db_drop "$COPY_NAME"

C=renkei.audit_checkpoints
tamper "(g) checkpoint 25's root_hash altered" \
  "UPDATE $C SET root_hash = sha256('forged'::bytea) WHERE tree_size = 25" \
  "SELECT root_hash = sha256('forged'::bytea) FROM $C WHERE tree_size = 25"
assert_match '(^|[^0-9])25([^0-9]|$)' "$(jq -r .problem <<<"$VERIFY")" "(g) the problem names the checkpoint at size 25"
db_drop "$COPY_NAME"

tamper "(g2) checkpoint 10's signature altered (one bit)" \
  "UPDATE $C SET signature = set_byte(signature, 40, get_byte(signature, 40) # 1) WHERE tree_size = 10" \
  "SELECT count(*) = 3 FROM $C"
assert_match '(^|[^0-9])10([^0-9]|$)' "$(jq -r .problem <<<"$VERIFY")" "(g2) the problem names the checkpoint at size 10"
db_drop "$COPY_NAME"

tamper "(g3) checkpoint 37 re-labelled with an unknown kid" \
  "UPDATE $C SET kid = 'audit-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' WHERE tree_size = 37" \
  "SELECT kid = 'audit-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' FROM $C WHERE tree_size = 37"
db_drop "$COPY_NAME"

# ------------------------------------------------- the auditor's own JWKS

verify_json --jwks "$tmpdir/jwks.json"
assert_eq 0 "$RUN_STATUS" "audit verify --jwks (the right keys) exits 0"
assert_jq '.ok == true and .checkpoints == 3' "$VERIFY" "audit verify --jwks: ok, 3 checkpoints"
kid=$(jq -r '.keys[0].kid' "$tmpdir/jwks.json")
ec_jwk "$tmpdir/other.pem" "audit-someoneelsesauditkey00000000000" | jq -c '{keys: [.]}' >"$tmpdir/other-jwks.json"
verify_json --jwks "$tmpdir/other-jwks.json"
assert_eq 1 "$RUN_STATUS" "audit verify --jwks without the audit key exits 1"
assert_jq '.ok == false and .checkpoints >= 1' "$VERIFY" "audit verify --jwks without the audit key: not ok"
assert_match "$kid" "$(jq -r .problem <<<"$VERIFY")" "the problem names the missing key"
ec_jwk "$tmpdir/impostor.pem" "$kid" | jq -c '{keys: [.]}' >"$tmpdir/impostor-jwks.json"
verify_json --jwks "$tmpdir/impostor-jwks.json"
assert_eq 1 "$RUN_STATUS" "audit verify --jwks with another key under the audit kid exits 1"
assert_jq '.ok == false' "$VERIFY" "another key under the audit kid: not ok"
echo '{"keys": []}' >"$tmpdir/empty-jwks.json"
verify_json --jwks "$tmpdir/empty-jwks.json"
assert_eq 1 "$RUN_STATUS" "audit verify --jwks with an empty JWKS exits 1"
echo 'not json' >"$tmpdir/bad-jwks.json"
run_renkei audit verify --json --jwks "$tmpdir/bad-jwks.json"
assert_eq 2 "$RUN_STATUS" "audit verify --jwks with a file that is not JSON exits 2"

# ----------------------------------------------- what the database refuses

digest() {
  sql "SELECT (SELECT count(*) || md5(string_agg(e::text, '|' ORDER BY seq)) FROM renkei.audit_entries e)
       || (SELECT count(*) || md5(string_agg(n::text, '|' ORDER BY level, idx)) FROM renkei.audit_nodes n)
       || (SELECT count(*) || md5(string_agg(c::text, '|' ORDER BY tree_size)) FROM renkei.audit_checkpoints c)
       || (SELECT md5(h::text) FROM renkei.audit_head h)"
}
before=$(digest)

# refused SQL WHO MSG_REGEX: psql must fail with an error matching MSG_REGEX.
refused() {
  local stmt=$1 who=$2 re=$3 st=0 err
  err=$(psql "$RENKEI_DB" -XqAt -v ON_ERROR_STOP=1 -c "$stmt" 2>&1 >/dev/null) || st=$?
  assert_ne 0 "$st" "$who: [$stmt] is refused"
  assert_match "$re" "$err" "$who: [$stmt] fails with /$re/"
}
AS_SERVICE="SET ROLE renkei_service;"
for t in audit_entries audit_nodes audit_checkpoints; do
  case $t in
    audit_entries) where="seq = 1" set="kind = 'x'" ;;
    audit_nodes) where="level = 1 AND idx = 0" set="hash = sha256('x'::bytea)" ;;
    audit_checkpoints) where="tree_size = 10" set="time = 'x'" ;;
  esac
  refused "$AS_SERVICE UPDATE renkei.$t SET $set WHERE $where" "renkei_service" 'permission denied'
  refused "$AS_SERVICE DELETE FROM renkei.$t WHERE $where" "renkei_service" 'permission denied'
  refused "$AS_SERVICE TRUNCATE renkei.$t" "renkei_service" 'permission denied'
  refused "UPDATE renkei.$t SET $set WHERE $where" "superuser, triggers on" 'append-only: UPDATE refused'
  refused "DELETE FROM renkei.$t WHERE $where" "superuser, triggers on" 'append-only: DELETE refused'
  refused "TRUNCATE renkei.$t" "superuser, triggers on" 'append-only: TRUNCATE refused'
done
refused "$AS_SERVICE SET session_replication_role = replica" "renkei_service" 'permission denied'
refused "UPDATE renkei.audit_head SET tree_size = 0" "superuser, triggers on" 'only grows'
refused "DELETE FROM renkei.audit_head" "superuser, triggers on" 'refused'
assert_eq "$before" "$(digest)" "entries, nodes, checkpoints and head are unchanged after all that"
verify_json
assert_jq ".ok == true and .entries == $N and .root_hash == \"$INTACT_ROOT\"" "$VERIFY" \
  "the original database still verifies, with the same root"
