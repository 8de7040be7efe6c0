#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# `renkei audit export` (JSON lines and CSV, the whole log or --from/--to,
# with the checkpoint file and the JWKS) and `renkei audit verify-file`,
# which an outside auditor runs with no database: every export verifies;
# the files are what audit/FORMAT.md says (checked here with sha256sum and
# openssl, not with renkei); and each of one byte changed, a line deleted,
# duplicated or swapped, a CSV column that disagrees with its entry, the
# checkpoint's root, size or signature changed, a range hash changed, and a
# JWKS with another key makes verify-file exit 1, naming the entry where
# there is one.  Unusable input exits 2.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/audit_lib.sh"

RUN_TIMEOUT=30
migrate

# Names that CSV must quote or guard: they live in the entry column only.
i=0
for name in "香川県" "Comma, Town" '"Quoted" "Town"' "=HYPERLINK(\"http://x\")" "-2+3" "+81 town" "@SUM(1)" "Back\\slash"; do
  run_renkei tenant add "t$i" --name "$name" --hosted
  assert_eq 0 "$RUN_STATUS" "tenant add t$i [$name] (stderr [$RUN_ERR])"
  i=$((i + 1))
done
client_add --tenant t0 --name ops --grant client_credentials --scope "admin audit.read"
ADM_ID=$CID ADM_SECRET=$CSECRET

# More entries, quickly, through the admin API; until one leaf hash begins
# with "+", which a CSV cell must guard against spreadsheets (FORMAT §6).
hub_start
get_token "$ADM_ID" "$ADM_SECRET"
ADM=$TOKEN
for ((b = 0; b < 16; b++)); do
  statuses=$(create_tenants_api "$ADM" "b$b" 40 | sort | uniq -c | awk '{print $2 "x" $1}')
  assert_eq "201x40" "$statuses" "batch $b: 40 tenants created through the admin API"
  plus=$(sql "SELECT min(seq) FROM renkei.audit_entries WHERE encode(leaf_hash, 'base64') LIKE '+%'")
  [[ -n $plus ]] && break
done
[[ -n $plus ]] || fail "no leaf hash begins with + among $(sql "SELECT count(*) FROM renkei.audit_entries") entries"
hub_stop
# and one after the hub's last checkpoint, so that the export makes one
run_renkei tenant add zlast --name "Last" --hosted
assert_eq 0 "$RUN_STATUS" "tenant add zlast"

N=$(sql "SELECT count(*) FROM renkei.audit_entries")
assert_eq "$((N - 1))" "$(sql "SELECT max(seq) FROM renkei.audit_entries")" "$N entries, seq 0 to $((N - 1))"
LEAVES=()
while IFS= read -r h; do LEAVES+=("$h"); done < <(sql "SELECT translate(encode(leaf_hash, 'base64'), E'\\n', '') FROM renkei.audit_entries ORDER BY seq")
ROOT=$(merkle_root "${LEAVES[@]}")

# verify_file [ARGS...]: renkei audit verify-file ARGS --json with no
# database and no master secret; VF gets the report.
verify_file() {
  run_renkei -u RENKEI_DB -u RENKEI_SECRET_FILE audit verify-file "$@" --json
  VF=$RUN_OUT
}

# ------------------------------------------------------- the whole log, JSONL

ncp=$(sql "SELECT count(*) FROM renkei.audit_checkpoints")
run_renkei audit export --checkpoint "$tmpdir/cp.json" --jwks "$tmpdir/jwks.json"
assert_eq 0 "$RUN_STATUS" "audit export (stderr [$RUN_ERR])"
printf '%s\n' "$RUN_OUT" >"$tmpdir/all.jsonl"
CP=$(cat "$tmpdir/cp.json")
JWKS=$(cat "$tmpdir/jwks.json")
assert_jq "keys == [\"kid\", \"root_hash\", \"signature\", \"time\", \"tree_size\"] and .tree_size == $N" "$CP" \
  "the checkpoint file: tree_size $N, no range"
assert_eq "$ROOT" "$(jq -r .root_hash <<<"$CP")" "its root_hash is the tree hash of the $N leaves"
assert_eq 1 "$(sql "SELECT count(*) FROM renkei.audit_checkpoints WHERE tree_size = $N AND translate(encode(signature, 'base64'), E'\n', '') = '$(jq -r .signature <<<"$CP")'")" \
  "it is the checkpoint the database holds for size $N"
assert_eq "$((ncp + 1))" "$(sql "SELECT count(*) FROM renkei.audit_checkpoints")" \
  "export made a checkpoint (the log had grown since the hub's last)"
assert_jq '.keys | length == 1 and (.[0] | .kty == "EC" and .crv == "P-256" and .alg == "ES256" and .use == "sig" and (.kid | startswith("audit-")))' \
  "$JWKS" "the JWKS file holds the audit key"
check "openssl verifies the checkpoint's signature over the FORMAT §4 message" checkpoint_sig_ok "$CP" "$JWKS"
assert_eq "$N" "$(wc -l <"$tmpdir/all.jsonl")" "$N lines"
assert_eq "$(seq -s ' ' 0 $((N - 1)))" "$(jq -r .seq "$tmpdir/all.jsonl" | paste -sd ' ')" "seq 0 to $((N - 1)) in order"
assert_eq "$(sql "SELECT canonical FROM renkei.audit_entries ORDER BY seq")" \
  "$(jq -c 'del(.leaf_hash)' "$tmpdir/all.jsonl")" "each line without leaf_hash is the entry's canonical text"
assert_eq "$(printf '%s\n' "${LEAVES[@]}")" "$(jq -r .leaf_hash "$tmpdir/all.jsonl")" "each leaf_hash is the stored one"
assert_eq "$N" "$(sql "SELECT count(*) FROM renkei.audit_entries WHERE leaf_hash = sha256('\\x00'::bytea || convert_to(canonical, 'UTF8'))")" \
  "every stored leaf hash is SHA-256(0x00 || canonical)"
for l in 1 4 9 $((plus + 1)) "$N"; do
  c=$(sed -n "${l}p" "$tmpdir/all.jsonl" | jq -c 'del(.leaf_hash)')
  assert_eq "$(sed -n "${l}p" "$tmpdir/all.jsonl" | jq -r .leaf_hash)" "$(hex_b64 "$(leaf_hex "$c")")" \
    "line $l: leaf_hash is base64 SHA-256(0x00 || the line without leaf_hash), computed with sha256sum"
done

verify_file "$tmpdir/all.jsonl" --checkpoint "$tmpdir/cp.json" --jwks "$tmpdir/jwks.json"
assert_eq 0 "$RUN_STATUS" "verify-file on the JSONL export, with RENKEI_DB unset, exits 0 (stderr [$RUN_ERR])"
assert_jq ".ok == true and .entries == $N and .checkpoints == 1 and .tree_size == $N and .first_bad_seq == null and .root_hash == $(jq .root_hash <<<"$CP")" \
  "$VF" "verify-file: ok, $N entries, the checkpoint's root"
run_renkei -u RENKEI_DB -u RENKEI_SECRET_FILE audit verify-file "$tmpdir/all.jsonl" --checkpoint "$tmpdir/cp.json" --jwks "$tmpdir/jwks.json"
assert_eq 0 "$RUN_STATUS" "verify-file (text) exits 0"
assert_match 'intact' "$RUN_OUT" "verify-file (text) says intact"

ncp=$(sql "SELECT count(*) FROM renkei.audit_checkpoints")
run_renkei audit export --checkpoint "$tmpdir/cp-again.json"
assert_eq "$(cat "$tmpdir/all.jsonl")" "$RUN_OUT" "a second export is byte for byte the same"
assert_eq "$CP" "$(cat "$tmpdir/cp-again.json")" "with the same checkpoint"
assert_eq "$ncp" "$(sql "SELECT count(*) FROM renkei.audit_checkpoints")" "and no new checkpoint (the log did not grow)"

# ------------------------------------------------------------------ CSV

run_renkei audit export --format csv --checkpoint "$tmpdir/cp-csv.json"
assert_eq 0 "$RUN_STATUS" "audit export --format csv"
printf '%s\n' "$RUN_OUT" >"$tmpdir/all.csv"
assert_eq "$CP" "$(cat "$tmpdir/cp-csv.json")" "the CSV export ends at the same checkpoint"
assert_eq "seq,time,kind,decision,reason,consumer_tenant,consumer_client,provider,agreement,purpose,resident,tenant,actor,leaf_hash,entry" \
  "$(head -n 1 "$tmpdir/all.csv" | tr -d '\r')" "the CSV header"
assert_eq "$((N + 1))" "$(grep -c $'\r$' "$tmpdir/all.csv")" "$((N + 1)) CRLF-terminated lines"
assert_eq "$((N + 1))" "$(wc -l <"$tmpdir/all.csv")" "and no others"
row=$(sed -n "$((plus + 2))p" "$tmpdir/all.csv")
leaf=${LEAVES[plus]}
assert_match "^$plus,.*,\"'${leaf//+/\\+}\",\"\\{" "$row" "entry $plus's leaf hash, which begins with +, is written \"'+...\" (formula guard)"
row=$(sed -n 5p "$tmpdir/all.csv")
assert_match '^3,[^,]+,tenant\.create,,,,,,,,,t3,cli:[^,]+,[^,]+,"\{""actor"":' "$row" "a CSV row: readable columns, then the quoted entry"
assert_match '=HYPERLINK\(\\""http://x\\""\)' "$row" "the entry column keeps the name's quotes and backslashes (doubled quotes)"

# --------------------------------------------------------------- ranges

# range_export FROM TO [FORMAT]: export --from FROM --to TO; checks the
# checkpoint's range against hashes computed here, then verify-file.
range_export() {
  local a=$1 b=$2 fmt=${3:-jsonl} ext=${3:-jsonl}
  local out="$tmpdir/r$a-$b.$ext" cp="$tmpdir/cp-r$a-$b-$ext.json"
  run_renkei audit export --format "$fmt" --from "$a" --to "$b" --checkpoint "$cp"
  assert_eq 0 "$RUN_STATUS" "export --from $a --to $b ($fmt) (stderr [$RUN_ERR])"
  printf '%s\n' "$RUN_OUT" >"$out"
  local want_lines=$((b - a + 1)) last=$b
  if ((b >= N)); then want_lines=$((N - a)) last=$((N - 1)); fi
  if [[ $fmt == csv ]]; then want_lines=$((want_lines + 1)); fi
  assert_eq "$want_lines" "$(wc -l <"$out")" "export --from $a --to $b ($fmt): $want_lines lines"
  if [[ $fmt == jsonl ]]; then
    assert_eq "$(seq -s ' ' "$a" "$last")" "$(jq -r .seq "$out" | paste -sd ' ')" "export --from $a --to $b: entries $a to $last"
  fi
  if ((a == 0 && last == N - 1)); then
    assert_jq "has(\"range\") | not" "$(cat "$cp")" "export --from $a --to $b covers the log: no range"
  else
    assert_jq ".tree_size == $N and .range.first == $a and .range.last == $last" "$(cat "$cp")" \
      "export --from $a --to $b: range $a..$last of $N"
    assert_eq "$(merkle_range "$a" $((last + 1)) "${LEAVES[@]}")" "$(jq -r '.range.hashes[]' "$cp")" \
      "export --from $a --to $b: the range hashes are the roots of the subtrees outside it"
  fi
  verify_file "$out" --checkpoint "$cp" --jwks "$tmpdir/jwks.json"
  assert_eq 0 "$RUN_STATUS" "verify-file on export --from $a --to $b ($fmt) exits 0 (stderr [$RUN_ERR])"
  assert_jq ".ok == true and .entries == $((last - a + 1)) and .tree_size == $N" "$VF" "verify-file: ok, $((last - a + 1)) entries"
}
range_export 5 20
range_export 0 9
range_export 7 7
range_export 3 $((N - 1))
range_export $((N - 6)) $((N + 100))
range_export 0 $((N + 5))
# (a CSV range that leaves out entry $plus: its guarded leaf hash comes last)
if ((plus >= 18)); then CA=2; else CA=$((plus + 1)); fi
CB=$((CA + 15))
range_export "$CA" "$CB" csv
run_renkei audit export --from "$N"
assert_ne 0 "$RUN_STATUS" "export --from $N (the log has $N entries) fails"
assert_eq "" "$RUN_OUT" "and writes no entries"
run_renkei audit export --from 5 --to 3
assert_eq 2 "$RUN_STATUS" "export --from 5 --to 3 is a usage error"
run_renkei audit export --format xml
assert_eq 2 "$RUN_STATUS" "export --format xml is a usage error"

# --------------------------------------------------------------- tampering

# bad FILE CP JWKS WHAT [FIRST_BAD [PROBLEM_REGEX]]: verify-file exits 1,
# not ok; with FIRST_BAD, first_bad_seq is it and the problem matches
# PROBLEM_REGEX (default: it names entry FIRST_BAD).
bad() {
  local file=$1 cp=$2 jwks=$3 what=$4 first=${5:-} re=${6:-}
  verify_file "$file" --checkpoint "$cp" --jwks "$jwks"
  assert_eq 1 "$RUN_STATUS" "$what: verify-file exits 1 (stderr [$RUN_ERR])"
  assert_jq '.ok == false and (.problem | type == "string" and length > 0)' "$VF" "$what: not ok, with a problem"
  if [[ -n $first ]]; then
    assert_jq ".first_bad_seq == $first" "$VF" "$what: first_bad_seq is $first"
    assert_match "${re:-entr(y|ies) $first([^0-9]|\$)}" "$(jq -r .problem <<<"$VF")" "$what: the problem names ${re:+its line and }entry $first"
  fi
}
A="$tmpdir/all.jsonl"
J="$tmpdir/jwks.json"
K="$tmpdir/cp.json"
t="$tmpdir/t.jsonl"

# one_byte FILE LINE MEMBER OFFSET: FILE with the byte at OFFSET of the
# string member MEMBER on line LINE changed (0 <-> 1, anything else to 0).
one_byte() {
  awk -v n="$2" -v m="\"$3\":\"" -v o="$4" 'NR == n {
      i = index($0, m) + length(m) + o; c = substr($0, i, 1); d = (c == "0") ? "1" : "0"
      $0 = substr($0, 1, i - 1) d substr($0, i + 1)
    } { print }' "$1"
}
one_byte "$A" 13 kind 3 >"$t"
assert_eq "1 $(wc -c <"$A")" "$(cmp -l "$A" "$t" | wc -l) $(wc -c <"$t")" "line 13 with one byte of its kind changed"
bad "$t" "$K" "$J" "JSONL: one byte of entry 12's kind changed" 12
one_byte "$A" 9 time 25 >"$t"
assert_eq "1 $(wc -c <"$A")" "$(cmp -l "$A" "$t" | wc -l) $(wc -c <"$t")" "line 9 with the last digit of its time changed"
bad "$t" "$K" "$J" "JSONL: one byte of entry 8's time changed" 8
sed '4s/"leaf_hash":"./"leaf_hash":"!/' "$A" >"$t"
bad "$t" "$K" "$J" "JSONL: the first byte of entry 3's leaf_hash changed" 3
sed '21d' "$A" >"$t"
bad "$t" "$K" "$J" "JSONL: line 21 (entry 20) deleted" 20
sed '$d' "$A" >"$t"
bad "$t" "$K" "$J" "JSONL: the last line (entry $((N - 1))) deleted" $((N - 1))
sed '11p' "$A" >"$t"
bad "$t" "$K" "$J" "JSONL: line 11 (entry 10) duplicated" 11
awk -v a=7 -v b=15 '{ l[NR] = $0 } END { t = l[a]; l[a] = l[b]; l[b] = t; for (i = 1; i <= NR; i++) print l[i] }' "$A" >"$t"
assert_eq "14 6" "$(sed -n '7p;15p' "$t" | jq -r .seq | paste -sd ' ')" "lines 7 and 15 swapped"
bad "$t" "$K" "$J" "JSONL: lines 7 and 15 (entries 6 and 14) swapped" 6
# an entry changed and its leaf_hash recomputed to match: only the tree
# under the signed root can tell
c=$(sed -n 6p "$A" | jq -c 'del(.leaf_hash) | .actor = "cli:mallory"')
awk -v l="$(jq -c --arg h "$(hex_b64 "$(leaf_hex "$c")")" '. + {leaf_hash: $h}' <<<"$c")" 'NR == 6 { print l; next } { print }' "$A" >"$t"
assert_eq "cli:mallory" "$(sed -n 6p "$t" | jq -r .actor)" "entry 5 rewritten with a matching leaf_hash"
bad "$t" "$K" "$J" "JSONL: entry 5 changed, leaf_hash recomputed"

jq -c '.root_hash = "'"${LEAVES[0]}"'"' "$K" >"$tmpdir/k.json"
bad "$A" "$tmpdir/k.json" "$J" "checkpoint file: root_hash changed"
jq -c ".tree_size = $((N - 1))" "$K" >"$tmpdir/k.json"
bad "$A" "$tmpdir/k.json" "$J" "checkpoint file: tree_size changed"
sig=$(jq -r .signature "$K" | base64 -d | _hex)
sig="${sig:0:100}$(printf '%x' $(((16#${sig:100:1} + 1) % 16)))${sig:101}"
jq -c --arg s "$(hex_b64 "$sig")" '.signature = $s' "$K" >"$tmpdir/k.json"
assert_ne "$(jq -r .signature "$K")" "$(jq -r .signature "$tmpdir/k.json")" "a signature with one hex digit changed"
bad "$A" "$tmpdir/k.json" "$J" "checkpoint file: signature changed"
jq -c '.time |= .[0:25] + (if .[25:26] == "0" then "1" else "0" end) + "Z"' "$K" >"$tmpdir/k.json"
assert_ne "$(jq -r .time "$K")" "$(jq -r .time "$tmpdir/k.json")" "a checkpoint time one microsecond digit off"
bad "$A" "$tmpdir/k.json" "$J" "checkpoint file: time changed"
kid=$(jq -r .kid "$K")
ec_jwk "$tmpdir/other.pem" "audit-anotherauditkeyofsomeoneelse00" | jq -c '{keys: [.]}' >"$tmpdir/other.json"
bad "$A" "$K" "$tmpdir/other.json" "a JWKS with another key (another kid)"
ec_jwk "$tmpdir/other.pem" "$kid" | jq -c '{keys: [.]}' >"$tmpdir/other.json"
bad "$A" "$K" "$tmpdir/other.json" "a JWKS with another key under the audit kid"

R="$tmpdir/r5-20.jsonl"
RK="$tmpdir/cp-r5-20-jsonl.json"
jq -c '.range.hashes[0] = "'"${LEAVES[1]}"'"' "$RK" >"$tmpdir/k.json"
bad "$R" "$tmpdir/k.json" "$J" "range export: a range hash changed"
jq -c '.range.hashes |= .[1:]' "$RK" >"$tmpdir/k.json"
bad "$R" "$tmpdir/k.json" "$J" "range export: a range hash left out"
sed '1d' "$R" >"$t"
bad "$t" "$RK" "$J" "range export: its first line (entry 5) deleted" 5
bad "$A" "$RK" "$J" "the whole log checked against the checkpoint of range 5..20"

# CSV: on the range export (entries CA..CB; entry e on line e - CA + 2),
# which leaves out the entry whose leaf hash is guarded
C="$tmpdir/r$CA-$CB.csv"
CK="$tmpdir/cp-r$CA-$CB-csv.json"
e=$((CA + 5)) line=$((5 + 2))
kind=$(sed -n "${line}p" "$C" | cut -d, -f3)
[[ $kind == tenant.update ]] && other=tenant.create || other=tenant.update
awk -F, -v OFS=, -v n="$line" -v k="$other" 'NR == n { $3 = k } { print }' "$C" >"$tmpdir/t.csv"
changed=$(diff "$C" "$tmpdir/t.csv" | grep '^>' || true)
assert_eq "$other" "$(cut -d, -f3 <<<"$changed")" "CSV: line $line says kind $other"
assert_match "\"\"kind\"\":\"\"${kind//./\\.}\"\"" "$changed" "CSV: and its entry column still says $kind"
bad "$tmpdir/t.csv" "$CK" "$J" "CSV: entry $e's kind column changed" "$e" "^line $line: column kind "

e=$((CA + 8)) line=$((8 + 2))
[[ $(sed -n "${line}p" "$C" | cut -d, -f12) == t0 ]] && other=t1 || other=t0
awk -F, -v OFS=, -v n="$line" -v t="$other" 'NR == n { $12 = t } { print }' "$C" >"$tmpdir/t.csv"
assert_eq "1" "$(diff "$C" "$tmpdir/t.csv" | grep -c '^>')" "CSV: line $line's tenant column changed to $other"
bad "$tmpdir/t.csv" "$CK" "$J" "CSV: entry $e's tenant column changed" "$e" "^line $line: column tenant "

e=$((CA + 2)) line=$((2 + 2))
sed "${line}d" "$C" >"$tmpdir/t.csv"
bad "$tmpdir/t.csv" "$CK" "$J" "CSV: line $line (entry $e) deleted" "$e" "expected entry $e([^0-9]|\$)"

# (the first entry from CA + 4 on with a name)
for ((k = 4; k < 15; k++)); do grep -qF '""name"":""' <(sed -n "$((k + 2))p" "$C") && break; done
e=$((CA + k)) line=$((k + 2))
awk -v n="$line" -v m='""name"":""' 'NR == n { i = index($0, m) + length(m); c = substr($0, i, 1)
    $0 = substr($0, 1, i - 1) (c == "Z" ? "Y" : "Z") substr($0, i + 1) } { print }' "$C" >"$tmpdir/t.csv"
assert_eq "1 $(wc -c <"$C")" "$(cmp -l "$C" "$tmpdir/t.csv" | wc -l) $(wc -c <"$tmpdir/t.csv")" \
  "CSV: one byte of entry $e's entry column (its name) changed"
bad "$tmpdir/t.csv" "$CK" "$J" "CSV: one byte of entry $e's entry column changed" "$e"
assert_match 'leaf_hash|altered' "$(jq -r .problem <<<"$VF")" "CSV: the problem is the leaf hash"

# ----------------------------------------------------------- unusable input

echo 'not json' >"$tmpdir/junk"
verify_file "$A" --checkpoint "$tmpdir/junk" --jwks "$J"
assert_eq 2 "$RUN_STATUS" "a checkpoint file that is not JSON: exit 2"
verify_file "$A" --checkpoint "$K" --jwks "$tmpdir/junk"
assert_eq 2 "$RUN_STATUS" "a JWKS file that is not JSON: exit 2"
jq -c 'del(.signature)' "$K" >"$tmpdir/k.json"
verify_file "$A" --checkpoint "$tmpdir/k.json" --jwks "$J"
assert_eq 2 "$RUN_STATUS" "a checkpoint without a signature: exit 2"
jq -c '.range = {first: 9, last: 3, hashes: []}' "$K" >"$tmpdir/k.json"
verify_file "$A" --checkpoint "$tmpdir/k.json" --jwks "$J"
assert_eq 2 "$RUN_STATUS" "a checkpoint whose range has first > last: exit 2"
run_renkei -u RENKEI_DB audit verify-file "$A" --checkpoint "$K"
assert_eq 2 "$RUN_STATUS" "verify-file without --jwks: usage, exit 2"

# ------------------------------------------ the formula-guarded leaf hash

verify_file "$tmpdir/all.csv" --checkpoint "$K" --jwks "$J"
assert_eq 0 "$RUN_STATUS" "verify-file on the whole CSV export (entry $plus's leaf hash is written '+...) exits 0: stdout [$RUN_OUT]"
assert_jq ".ok == true and .entries == $N" "$VF" "verify-file on the CSV: ok, $N entries"
range_export "$plus" "$plus" csv

verify_file "$tmpdir/no-such-export.jsonl" --checkpoint "$K" --jwks "$J"
assert_eq 2 "$RUN_STATUS" "an export file that does not exist: exit 2 (unusable input, not \"tampered\")"
