#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# renkei agreement add/list/show/approve/suspend/resume/revoke: the life
# cycle, illegal transitions (exit 2, nothing changed), revoked is final, bad
# input each with one clear line and exit 2, an audit event per change; and
# in SQL as the service role: row-level security shows a town only its own
# agreements, the trigger refuses a consumer's approval, changed terms and
# deletes.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"

RUN_TIMEOUT=20
az_setup # kagawa, takamatsu, kanonji
run_renkei tenant add ayagawa --name 綾川町 --parent kagawa --hosted
assert_eq 0 "$RUN_STATUS" "tenant add ayagawa"

ag() {
  run_renkei agreement "$@"
}

# ------------------------------------------------------------- add

ag add --provider takamatsu --consumer kanonji --type Parking,BusStop --attrs availableSpotNumber,name \
  --purpose traffic.planning,tourism --from 2026-04-01T00:00:00+09:00 --until 2027-03-31T23:59:59+09:00 \
  --rate 60/min --description '駐車場の空き状況' --json
assert_eq 0 "$RUN_STATUS" "agreement add --json (stderr [$RUN_ERR])"
AG=$(jq -er .id <<<"$RUN_OUT")
assert_match '^ag_[a-z2-7]{24}$' "$AG" "the id is ag_ and 24 base32 characters"
assert_jq '.provider == "takamatsu" and .consumer == "kanonji" and .entity_types == ["Parking", "BusStop"]
  and .attrs == ["availableSpotNumber", "name"] and .actions == ["read"]
  and .purposes == ["traffic.planning", "tourism"] and .personal == false
  and .valid_from == "2026-03-31T15:00:00Z" and .valid_until == "2027-03-31T14:59:59Z"
  and .rate_per_minute == 60 and .state == "proposed" and .version == 1
  and .description == "駐車場の空き状況"' "$RUN_OUT" "add --json prints the agreement in the contract's shape"
assert_jq '(keys - ["id","provider","consumer","entity_types","attrs","actions","purposes","personal","valid_from","valid_until","rate_per_minute","state","description","created_at","updated_at","version"]) == []' \
  "$RUN_OUT" "no members beyond the contract and the documented extras"

ag add --provider kanonji --consumer takamatsu --type Person --purpose welfare.check --actions read,write --personal
assert_eq 0 "$RUN_STATUS" "add a personal agreement without --json (stderr [$RUN_ERR])"
assert_match '^proposed agreement ag_[a-z2-7]{24}: kanonji gives takamatsu' "$RUN_OUT" "plain output names the id"
AG2=$(grep -oE 'ag_[a-z2-7]{24}' <<<"$RUN_OUT" | head -1)
ag show "$AG2" --json
assert_jq '.personal == true and .consent_scope == "exchange.kanonji" and .resident_attr == "refResident" and .actions == ["read", "write"] and .valid_from == null and .rate_per_minute == 0' \
  "$RUN_OUT" "personal: default consent scope and resident attribute; open window; no rate limit"

ag add --provider takamatsu --consumer ayagawa --type WeatherObserved --purpose disaster.prevention --json
AG3=$(jq -er .id <<<"$RUN_OUT")

# ------------------------------------------------------------- bad input

bad_add() {
  local want=$1 msg=$2
  shift 2
  ag add "$@"
  assert_eq 2 "$RUN_STATUS" "$msg: exit 2 (stdout [$RUN_OUT])"
  assert_match "^renkei: agreement: .*$want" "$(head -1 <<<"$RUN_ERR")" "$msg: the first line says why"
}
bad_add 'provider: no tenant nowhere' "unknown provider" --provider nowhere --consumer kanonji --type T --purpose p
bad_add 'consumer: no tenant nowhere' "unknown consumer" --provider takamatsu --consumer nowhere --type T --purpose p
bad_add 'the same town' "same provider and consumer" --provider takamatsu --consumer takamatsu --type T --purpose p
bad_add 'purpose' "bad purpose" --provider takamatsu --consumer kanonji --type T --purpose Traffic
bad_add 'entity_types: item 1: empty' "empty type" --provider takamatsu --consumer kanonji --type '' --purpose p
bad_add 'entity_types: item 2 repeats item 1' "duplicate type" --provider takamatsu --consumer kanonji --type A,A --purpose p
bad_add 'more than 100' "101 attributes" --provider takamatsu --consumer kanonji --type T --purpose p \
  --attrs "$(seq -s, -f 'a%g' 1 101)"
bad_add 'valid_until must be after valid_from' "until before from" --provider takamatsu --consumer kanonji \
  --type T --purpose p --from 2026-04-01T00:00:00Z --until 2026-03-01T00:00:00Z
bad_add '--from: not an RFC 3339 time' "a date without a time" --provider takamatsu --consumer kanonji \
  --type T --purpose p --from 2026-04-01
bad_add '--rate' "bad rate" --provider takamatsu --consumer kanonji --type T --purpose p --rate 10/hour
bad_add '--rate' "negative rate" --provider takamatsu --consumer kanonji --type T --purpose p --rate -1
bad_add 'actions' "unknown action" --provider takamatsu --consumer kanonji --type T --purpose p --actions read,delete
bad_add 'with --personal' "consent scope without --personal" --provider takamatsu --consumer kanonji \
  --type T --purpose p --consent-scope s
bad_add 'required' "no purpose" --provider takamatsu --consumer kanonji --type T
bad_add 'unknown option' "unknown option" --provider takamatsu --consumer kanonji --type T --purpose p --color red
assert_eq 3 "$(sql "SELECT count(*) FROM renkei.agreements")" "none of the bad proposals was stored"

# ------------------------------------------------------------- list, show

ag list --json
assert_eq 0 "$RUN_STATUS" "list --json"
assert_jq "map(.id) == ([\"$AG\", \"$AG2\", \"$AG3\"] | sort)" "$RUN_OUT" "list: all three, in id order"
ag list --provider takamatsu --json
assert_jq "map(.id) == ([\"$AG\", \"$AG3\"] | sort)" "$RUN_OUT" "list --provider takamatsu"
ag list --consumer takamatsu --state proposed --json
assert_jq "map(.id) == [\"$AG2\"]" "$RUN_OUT" "list --consumer takamatsu --state proposed"
ag list --state sleeping
assert_eq 2 "$RUN_STATUS" "list --state sleeping: exit 2"
ag list
assert_match "$AG +takamatsu +kanonji +proposed +Parking,BusStop" "$RUN_OUT" "plain list shows the row"
ag show "$AG"
assert_match 'purposes: +traffic.planning, tourism' "$RUN_OUT" "show: the purposes"
ag show ag_aaaaaaaaaaaaaaaaaaaaaaaa
assert_eq 2 "$RUN_STATUS" "show of an unknown id: exit 2"
assert_match 'no agreement' "$RUN_ERR" "show of an unknown id: says so"
ag show not-an-id
assert_eq 2 "$RUN_STATUS" "show of a malformed id: exit 2"

# ------------------------------------------------------------- life cycle

state_of() { sql "SELECT state || ' ' || version FROM renkei.agreements WHERE id = '$1'"; }
events_of() { sql "SELECT string_agg(kind || ':' || tenant || ':' || (detail->>'state'), ' ' ORDER BY seq) FROM renkei.audit_events WHERE detail->>'id' = '$1'"; }

ag resume "$AG"
assert_eq 2 "$RUN_STATUS" "resume of a proposed agreement: exit 2"
ag suspend "$AG"
assert_eq 2 "$RUN_STATUS" "suspend of a proposed agreement: exit 2"
assert_match 'proposed: it cannot become suspended' "$RUN_ERR" "suspend of a proposed agreement: says why"
assert_eq "proposed 1" "$(state_of "$AG")" "still proposed, version 1"

ag approve "$AG" --json
assert_eq 0 "$RUN_STATUS" "approve (stderr [$RUN_ERR])"
assert_jq '.state == "active" and .version == 2' "$RUN_OUT" "approve --json: active, version 2"
ag approve "$AG"
assert_eq 2 "$RUN_STATUS" "approve twice: exit 2"
ag suspend "$AG"
assert_eq 0 "$RUN_STATUS" "suspend"
assert_match "^suspended agreement $AG" "$RUN_OUT" "suspend says so"
ag approve "$AG"
assert_eq 2 "$RUN_STATUS" "approve of a suspended agreement: exit 2 (resume it)"
ag resume "$AG" --json
assert_jq '.state == "active" and .version == 4' "$RUN_OUT" "resume: active again, version 4"
ag revoke "$AG"
assert_eq 0 "$RUN_STATUS" "revoke"
for verb in approve suspend resume revoke; do
  ag "$verb" "$AG"
  assert_eq 2 "$RUN_STATUS" "$verb after revoke: exit 2"
done
assert_match 'revoked is final' "$RUN_ERR" "revoke again: revoked is final"
assert_eq "revoked 5" "$(state_of "$AG")" "revoked, version 5"
assert_eq "agreement.propose:takamatsu:proposed agreement.approve:takamatsu:active agreement.suspend:takamatsu:suspended agreement.resume:takamatsu:active agreement.revoke:takamatsu:revoked" \
  "$(events_of "$AG")" "one audit event per change, each under the provider"
assert_eq "$ACTOR" "$(sql "SELECT DISTINCT actor FROM renkei.audit_events WHERE detail->>'id' = '$AG'")" \
  "the events name the operator"
assert_jq '.entity_types == ["Parking", "BusStop"] and .purposes == ["traffic.planning", "tourism"] and .rate_per_minute == 60' \
  "$(sql "SELECT detail FROM renkei.audit_events WHERE kind = 'agreement.propose' AND detail->>'id' = '$AG'")" \
  "the propose event holds the terms"

# revoke straight from proposed (withdrawn) is legal
ag revoke "$AG3"
assert_eq 0 "$RUN_STATUS" "revoke a proposal"

# ------------------------------------------------------------- SQL: RLS and the trigger

# as_town TOWN SQL: SQL as the service role in TOWN's context.
as_town() {
  psql "$RENKEI_DB" -XqAt -v ON_ERROR_STOP=1 2>&1 <<SQL || true
BEGIN;
SET LOCAL ROLE renkei_service;
SELECT set_config('renkei.tenant', '$1', true) \\g /dev/null
$2;
COMMIT;
SQL
}
assert_eq "$AG2" "$(as_town takamatsu "SELECT string_agg(id, ',') FROM renkei.agreements WHERE provider = 'kanonji'")" \
  "RLS: takamatsu (consumer) sees the agreement kanonji gives it"
assert_eq "$AG" "$(as_town kanonji "SELECT string_agg(id, ',' ORDER BY id) FROM renkei.agreements WHERE provider = 'takamatsu'")" \
  "RLS: kanonji sees takamatsu's agreement with it, not takamatsu's with ayagawa"
assert_eq "0" "$(as_town kagawa "SELECT count(*) FROM renkei.agreements")" \
  "RLS: kagawa, party to none, sees none"
assert_eq "0" "$(as_town ayagawa "SELECT count(*) FROM renkei.agreements WHERE id IN ('$AG', '$AG2')")" \
  "RLS: ayagawa cannot see the others' agreements by id"
assert_eq "3" "$(as_town '*' "SELECT count(*) FROM renkei.agreements")" "the platform sees all"
assert_match 'only the provider' "$(as_town takamatsu "UPDATE renkei.agreements SET state = 'active' WHERE id = '$AG2'")" \
  "the trigger refuses the consumer's approval"
as_town ayagawa "UPDATE renkei.agreements SET state = 'active' WHERE id = '$AG2'" >/dev/null
assert_eq "proposed 1" "$(state_of "$AG2")" "another town cannot even reach the row"
assert_match 'row-level security' "$(as_town kanonji "INSERT INTO renkei.agreements (id, provider, consumer, entity_types, actions, purposes, created_by) VALUES ('ag_bbbbbbbbbbbbbbbbbbbbbbbb', 'kanonji', 'takamatsu', '{T}', '{read}', '{p}', 'x')")" \
  "a town cannot propose as another town's consumer"
assert_match 'cannot go from revoked' "$(as_town '*' "UPDATE renkei.agreements SET state = 'active' WHERE id = '$AG'")" \
  "the trigger keeps revoked final, even for the platform"
as_town kanonji "UPDATE renkei.agreements SET state = 'active' WHERE id = '$AG2'" >/dev/null
assert_eq "active 2" "$(state_of "$AG2")" "the provider approves in SQL"
assert_match 'terms of agreement .* are fixed' "$(as_town kanonji "UPDATE renkei.agreements SET purposes = '{other}' WHERE id = '$AG2'")" \
  "the terms of an active agreement do not change"
assert_match 'permission denied for table agreements' "$(as_town '*' "DELETE FROM renkei.agreements WHERE id = '$AG'")" \
  "the service may not delete an agreement: the history stays"
assert_match 'append-only: DELETE refused' "$(psql "$RENKEI_DB" -XqAt -c "DELETE FROM renkei.agreements WHERE id = '$AG'" 2>&1 || true)" \
  "and the trigger refuses even the owner's delete"
assert_match 'starts as proposed' "$(as_town '*' "INSERT INTO renkei.agreements (id, provider, consumer, entity_types, actions, purposes, created_by, state) VALUES ('ag_cccccccccccccccccccccccc', 'kanonji', 'takamatsu', '{T}', '{read}', '{p}', 'x', 'active')")" \
  "an agreement cannot be born active"
