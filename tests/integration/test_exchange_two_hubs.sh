#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Two hub processes on one database (issue 8: "a revoked or suspended
# agreement stops permitting within one second on every process"): an
# agreement approved through hub A's admin API permits at hub B; suspended
# at A, B denies within a second; resumed, B permits again; revoked at A, B
# denies within a second. Then, with readers at both hubs, a new agreement
# is revoked through A: no read sent a second after the revocation gets data
# at either hub, and every read answered with data has its entry. Both hubs
# write one gap-free audit log of the decisions, which verifies.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"

RUN_TIMEOUT=20
az_setup
client_add --tenant kanonji --name kj-app --grant client_credentials --scope "ngsi.read tenant.admin"
KJ=("$CID" "$CSECRET")
client_add --tenant takamatsu --name tk-admin --grant client_credentials --scope "ngsi.read ngsi.write tenant.admin"
TK=("$CID" "$CSECRET")
ISSUER=https://hub.renkei.example # one issuer behind a load balancer
hub_start RENKEI_ISSUER="$ISSUER"
hub2_start RENKEI_ISSUER="$ISSUER"
assert_ne "$HUB_URL" "$HUB2_URL" "two hubs on two ports"

get_token "${KJ[@]}"
T_KJ=$TOKEN
get_token "${TK[@]}"
T_TK=$TOKEN
http POST /v2/entities -H "Authorization: Bearer $T_TK" -H 'Content-Type: application/json' \
  --data-binary '{"id": "WL1", "type": "WaterLevel", "level": {"value": 1.5}}'
assert_status 201 "takamatsu has a water level"

XC=(-H "Authorization: Bearer $T_KJ" -H 'Fiware-Service: takamatsu' -H 'Renkei-Purpose: disaster-response')
read_at_b() { on_hub2 http GET '/v2/entities?type=WaterLevel' "${XC[@]}"; }
# b_within CODE: hub B answers CODE within one second of the change at hub A
b_within() {
  local i
  for i in $(seq 10); do
    read_at_b
    [[ $HTTP_STATUS == "$1" ]] && return 0
    sleep 0.1
  done
  return 0
}

read_at_b
assert_status 403 "hub B: no agreement yet"
# kanonji proposes at hub A, takamatsu approves at hub A
admin_send POST /admin/v1/agreements "$T_KJ" \
  '{"provider": "takamatsu", "consumer": "kanonji", "entity_types": ["WaterLevel"], "purposes": ["disaster-response"]}'
assert_status 201 "kanonji proposes through hub A"
AG=$(jq -r .id <<<"$HTTP_BODY")
admin_send PATCH "/admin/v1/agreements/$AG" "$T_TK" '{"state": "active"}'
assert_status 200 "takamatsu approves through hub A"
b_within 200
assert_status 200 "hub B permits within a second"
admin_send PATCH "/admin/v1/agreements/$AG" "$T_TK" '{"state": "suspended"}'
assert_status 200 "takamatsu suspends through hub A"
b_within 403
assert_status 403 "hub B denies within a second of the suspension"
admin_send PATCH "/admin/v1/agreements/$AG" "$T_TK" '{"state": "active"}'
b_within 200
assert_status 200 "hub B permits again within a second of the resumption"
admin_send PATCH "/admin/v1/agreements/$AG" "$T_KJ" '{"state": "revoked"}'
assert_status 200 "kanonji withdraws (revokes) through hub A"
b_within 403
assert_status 403 "hub B denies within a second of the revocation"
assert_match 'revoked' "$HTTP_BODY" "and says the agreement is revoked"
http GET '/v2/entities?type=WaterLevel' "${XC[@]}"
assert_status 403 "hub A denies too"

# ---- under load (issue 11): readers at both hubs while the agreement is
# revoked through one; every read answered with data has its entry, and no
# read sent a second after the revocation returned got data, at either hub
admin_send POST /admin/v1/agreements "$T_KJ" \
  '{"provider": "takamatsu", "consumer": "kanonji", "entity_types": ["WaterLevel"], "purposes": ["disaster-response"]}'
assert_status 201 "kanonji proposes again"
AG2=$(jq -r .id <<<"$HTTP_BODY")
on_hub2 admin_send PATCH "/admin/v1/agreements/$AG2" "$T_TK" '{"state": "active"}'
assert_status 200 "takamatsu approves through hub B"
b_within 200
assert_status 200 "hub B permits under the new agreement"
# reader NAME URL: reads until $tmpdir/stop exists; a line per request in
# NAME.log: "start-time id status digest"
reader() {
  local name=$1 url=$2 i=0 t id code
  while [[ ! -e $tmpdir/stop ]]; do
    i=$((i + 1))
    id="$name-$i"
    t=$EPOCHREALTIME
    code=$(curl -s -o "$tmpdir/$name.body" -w '%{http_code}' --max-time 10 -H "X-Request-Id: $id" \
      "${XC[@]}" "$url/v2/entities?type=WaterLevel" || true)
    echo "$t $id $code $(openssl dgst -sha256 -binary "$tmpdir/$name.body" | base64 -w0)" >>"$tmpdir/$name.log"
  done
}
rm -f "$tmpdir/stop"
: >"$tmpdir/ra.log"
: >"$tmpdir/rb.log"
reader ra "$HUB_URL" &
ra=$!
reader rb "$HUB2_URL" &
rb=$!
answered() { (($(awk '$3 == 200' "$tmpdir/ra.log" | wc -l) >= 5 && $(awk '$3 == 200' "$tmpdir/rb.log" | wc -l) >= 5)); }
poll 100 answered || fail "the readers got no data"
admin_send PATCH "/admin/v1/agreements/$AG2" "$T_KJ" '{"state": "revoked"}'
assert_status 200 "kanonji revokes through hub A while both hubs serve reads"
revoked_at=$EPOCHREALTIME
denied_after() { (($(awk -v t="$revoked_at" '$1 > t + 1 && $3 == 403' "$tmpdir/rb.log" | wc -l) >= 3)); }
poll 100 denied_after || fail "hub B's readers got no 403 after the revocation"
touch "$tmpdir/stop"
wait "$ra" "$rb" || true
cat "$tmpdir/ra.log" "$tmpdir/rb.log" >"$tmpdir/reads.log"
late=$(awk -v t="$revoked_at" '$1 > t + 1 && $3 == 200 {print $2}' "$tmpdir/reads.log" | tr '\n' ' ')
assert_eq "" "$late" "no read sent more than a second after the revocation got data, at either hub"
assert_eq "" "$(awk '$3 != 200 && $3 != 403 {print $2 ":" $3}' "$tmpdir/reads.log" | tr '\n' ' ')" \
  "every read was answered, with 200 or 403"
awk '$3 == 200 { print $2 "\t" $4 }' "$tmpdir/reads.log" >"$tmpdir/answered.tsv"
missing=$(reads_without_entries "$tmpdir/answered.tsv")
assert_eq "" "$missing" "every read answered with data at either hub has its entry, with the digest of what was sent"
ok "$(wc -l <"$tmpdir/reads.log") reads at two hubs ($(awk '$3 == 200' "$tmpdir/reads.log" | wc -l) answered with data) around the revocation"

run_renkei audit export --format jsonl
seqs=$(jq -s 'map(.seq)' <<<"$RUN_OUT")
assert_jq '. == [range(0; length)]' "$seqs" "one gap-free log from both hubs"
assert_ge "$(jq -c 'select(.kind == "transfer")' <<<"$RUN_OUT" | wc -l)" 6 "every decision at either hub is an entry"
run_renkei audit verify
check "the log verifies" test "$RUN_STATUS" = 0

ok "agreement changes reach every hub within a second"
