#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Two hub processes on one database, eight clients at once (four per hub)
# each creating 25 tenants through POST /admin/v1/tenants: the log takes all
# 200 tenant.create entries with seq 0..n-1 and no gap or duplicate, the
# Merkle nodes and head agree with the entries, `renkei audit verify`
# passes, both hubs' checkpointers signed checkpoints (told apart by each
# hub's application_name, recorded by a trigger this test adds), and either
# hub's proofs verify for entries the other appended.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/audit_lib.sh"

RUN_TIMEOUT=30
LOOPS_PER_HUB=4
PER_LOOP=25
migrate
run_renkei tenant add pref --name 香川県 --hosted
assert_eq 0 "$RUN_STATUS" "tenant add pref (stderr [$RUN_ERR])"
client_add --tenant pref --name ops --grant client_credentials --scope "admin audit.read"
OPS=("$CID" "$CSECRET")

# Which process inserted each checkpoint: its connection's application_name.
sql "CREATE SCHEMA itest;
     CREATE TABLE itest.cp_origin (tree_size bigint, app text);
     CREATE FUNCTION itest.cp_origin() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
         SET search_path = pg_catalog AS \$\$
     BEGIN
         INSERT INTO itest.cp_origin VALUES (NEW.tree_size, current_setting('application_name'));
         RETURN NULL;
     END \$\$;
     CREATE TRIGGER itest_cp_origin AFTER INSERT ON renkei.audit_checkpoints
         FOR EACH ROW EXECUTE FUNCTION itest.cp_origin();" >/dev/null
# with_app NAME: RENKEI_DB with application_name=NAME.
with_app() {
  if [[ $RENKEI_DB == postgres://* || $RENKEI_DB == postgresql://* ]]; then
    if [[ $RENKEI_DB == *\?* ]]; then printf '%s&application_name=%s' "$RENKEI_DB" "$1"; else printf '%s?application_name=%s' "$RENKEI_DB" "$1"; fi
  else
    printf '%s application_name=%s' "$RENKEI_DB" "$1"
  fi
}

hub_start RENKEI_DB="$(with_app hub_a)"
hub2_start RENKEI_DB="$(with_app hub_b)"
assert_ne "$HUB_URL" "$HUB2_URL" "two hubs on two ports"
get_token "${OPS[@]}"
TOK_A=$TOKEN
on_hub2 get_token "${OPS[@]}"
TOK_B=$TOKEN

# wait until the hubs have signed what the CLI wrote, so that every later
# checkpoint comes from the load
cp_covers() {
  [[ $(sql "SELECT coalesce(max(tree_size), 0) = (SELECT count(*) FROM renkei.audit_entries) FROM renkei.audit_checkpoints") == t ]]
}
check "within 5 s the hubs sign the CLI's entries" poll 5 cp_covers
BEFORE=$(sql "SELECT count(*) FROM renkei.audit_entries")

# ---------------------------------------------------- 8 writers, 2 hubs

# writer URL TOKEN PREFIX OUT: PER_LOOP tenants PREFIX_0... (a pause between
# them keeps the load going for a few of the hubs' one-second ticks).
writer() {
  local i
  for ((i = 0; i < PER_LOOP; i++)); do
    curl -sS -o /dev/null -w '%{http_code}\n' --max-time 30 -H "Authorization: Bearer $2" \
      -H 'Content-Type: application/json' \
      --data "{\"id\": \"$3_$i\", \"name\": \"$3 $i\", \"city_os\": {\"kind\": \"hosted\"}}" \
      "$1/admin/v1/tenants" >>"$4" 2>&1 || echo "curl failed" >>"$4"
    sleep 0.1
  done
}
pids=()
for ((k = 1; k <= LOOPS_PER_HUB; k++)); do
  writer "$HUB_URL" "$TOK_A" "ha_$k" "$tmpdir/writer_a_$k" &
  pids+=($!)
  writer "$HUB2_URL" "$TOK_B" "hb_$k" "$tmpdir/writer_b_$k" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
TOTAL_NEW=$((2 * LOOPS_PER_HUB * PER_LOOP))
assert_eq "${TOTAL_NEW}x201" "$(cat "$tmpdir"/writer_* | sort | uniq -c | awk '{print $1 "x" $2}' | paste -sd ' ')" \
  "all $TOTAL_NEW creations answered 201"
check "both hubs are still running" alive "$HUB_PID"
check "hub B too" alive "$HUB2_PID"

# ------------------------------------------------------------- the log

N=$(sql "SELECT count(*) FROM renkei.audit_entries")
assert_eq "$((BEFORE + TOTAL_NEW))" "$N" "$TOTAL_NEW more entries, no more"
assert_eq "$N|0|$((N - 1))|$N" "$(sql "SELECT count(*), min(seq), max(seq), count(DISTINCT seq) FROM renkei.audit_entries")" \
  "seq 0..$((N - 1)): count = max + 1, no gaps, no duplicates"
assert_eq "$TOTAL_NEW|$TOTAL_NEW" "$(sql "SELECT count(*), count(DISTINCT tenant) FROM renkei.audit_entries
                                          WHERE kind = 'tenant.create' AND (tenant LIKE 'ha\\_%' OR tenant LIKE 'hb\\_%')")" \
  "one tenant.create entry for each of the $TOTAL_NEW tenants"
assert_eq "$N" "$(sql "SELECT count(*) FROM renkei.audit_entries WHERE canonical LIKE '%\"seq\":' || seq || ',%'")" \
  "every entry's own seq is the one it is stored under"
assert_eq "$N" "$(sql "SELECT count(*) FROM renkei.audit_entries WHERE leaf_hash = sha256('\\x00'::bytea || convert_to(canonical, 'UTF8'))")" \
  "every leaf hash is SHA-256(0x00 || canonical)"
assert_eq "$N" "$(sql "SELECT tree_size FROM renkei.audit_head")" "the head says $N entries"
# every complete subtree has its node, and each is SHA-256(0x01 || left || right)
want_nodes=0
for ((l = 1; (1 << l) <= N; l++)); do want_nodes=$((want_nodes + N / (1 << l))); done
assert_eq "$want_nodes" "$(sql "SELECT count(*) FROM renkei.audit_nodes")" "$want_nodes Merkle nodes, one per complete subtree"
assert_eq 0 "$(sql "
  WITH t(level, idx, hash) AS (
      SELECT 0, seq, leaf_hash FROM renkei.audit_entries
    UNION ALL
      SELECT n.level::int, n.idx, n.hash FROM renkei.audit_nodes n)
  SELECT count(*) FROM renkei.audit_nodes n
    LEFT JOIN t l ON l.level = n.level - 1 AND l.idx = 2 * n.idx
    LEFT JOIN t r ON r.level = n.level - 1 AND r.idx = 2 * n.idx + 1
   WHERE l.hash IS NULL OR r.hash IS NULL OR n.hash <> sha256('\\x01'::bytea || l.hash || r.hash)")" \
  "every node is the hash of its two children"

check "within 5 s a checkpoint covers all $N entries" poll 5 cp_covers
origins=$(sql "SELECT string_agg(app || ':' || n, ' ' ORDER BY app) FROM (SELECT app, count(*) AS n FROM itest.cp_origin
                WHERE tree_size > $BEFORE GROUP BY app) x")
assert_match '(^| )hub_a:[1-9][0-9]*( |$)' "$origins" "hub A's checkpointer signed checkpoints during the load ($origins)"
assert_match '(^| )hub_b:[1-9][0-9]*( |$)' "$origins" "hub B's checkpointer signed checkpoints during the load ($origins)"
assert_eq "$(sql "SELECT count(*) FROM renkei.audit_checkpoints")" "$(sql "SELECT count(*) FROM itest.cp_origin")" \
  "every checkpoint was recorded (by the trigger)"

verify_json
assert_eq 0 "$RUN_STATUS" "audit verify exits 0 (stderr [$RUN_ERR])"
assert_jq ".ok == true and .entries == $N and .tree_size == $N and .uncovered == 0 and .checkpoints == $(sql "SELECT count(*) FROM renkei.audit_checkpoints")" \
  "$VERIFY" "audit verify: ok, $N entries, every checkpoint checked, none uncovered"
mapfile -t leaves < <(sql "SELECT translate(encode(leaf_hash, 'base64'), E'\\n', '') FROM renkei.audit_entries ORDER BY seq")
assert_eq "$(merkle_root "${leaves[@]}")" "$(jq -r .root_hash <<<"$VERIFY")" "the root is the tree hash of all $N leaves"

# ----------------------------------- either hub proves the other's entries

get() { http GET "$1" -H "Authorization: Bearer $2"; }
get /audit/v1/checkpoints/latest "$TOK_A"
latest_a=$HTTP_BODY
on_hub2 get /audit/v1/checkpoints/latest "$TOK_B"
assert_eq "$latest_a" "$HTTP_BODY" "both hubs show the same latest checkpoint"
assert_jq ".tree_size == $N and .root_hash == $(jq .root_hash <<<"$VERIFY")" "$latest_a" "latest covers all $N, with that root"
http GET /oauth2/jwks
check "its signature verifies with the audit key in /oauth2/jwks" checkpoint_sig_ok "$latest_a" "$HTTP_BODY"
root=$(b64_hex "$(jq -r .root_hash <<<"$latest_a")")
for who in ha_1_0 hb_4_$((PER_LOOP - 1)); do
  s=$(sql "SELECT seq FROM renkei.audit_entries WHERE kind = 'tenant.create' AND tenant = '$who'")
  for hub in A B; do
    if [[ $hub == A ]]; then get "/audit/v1/proofs/inclusion?seq=$s&tree_size=$N" "$TOK_A"; else on_hub2 get "/audit/v1/proofs/inclusion?seq=$s&tree_size=$N" "$TOK_B"; fi
    assert_status 200 "hub $hub: inclusion proof of $who's entry ($s)"
    mapfile -t p < <(jq -r '.hashes[]' <<<"$HTTP_BODY" | b64_lines_hex)
    check "hub $hub: the proof of $who's entry verifies against the latest root" \
      inclusion_ok "$s" "$N" "$(b64_hex "${leaves[s]}")" "$root" "${p[@]}"
  done
done
# all of it through the API: JSON pages of 100 by default, the streams whole
on_hub2 get /audit/v1/entries "$TOK_B"
assert_jq '(.items | length) == 100 and .next == "99" and .items[0].seq == 0' "$HTTP_BODY" \
  "hub B, JSON without limit: the first 100 entries, next \"99\""
on_hub2 get "/audit/v1/entries?format=jsonl" "$TOK_B"
assert_status 200 "hub B, format=jsonl"
assert_eq "$(seq -s ' ' 0 $((N - 1)))" "$(printf '%s\n' "$HTTP_BODY" | jq -r .seq | paste -sd ' ')" \
  "hub B, format=jsonl without limit: all $N entries, in order"
get "/audit/v1/entries?format=csv" "$TOK_A"
assert_status 200 "hub A, format=csv"
assert_eq "$((N + 1))" "$(printf '%s\n' "$HTTP_BODY" | grep -c $'\r$')" "hub A, format=csv without limit: a header and $N rows"
hub2_stop
assert_eq "" "$(hub_log_objects '.level == "error"')" "hub A logged no error"
assert_eq "" "$(jq -cnR 'inputs | try fromjson | select(type == "object" and .level == "error")' <"$HUB2_LOG")" \
  "hub B logged no error"
