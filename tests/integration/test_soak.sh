#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# A short soak (issue 11): ops/bench/soak, as an operator runs it for an
# hour, for 20 s at 40 requests a second against this tree's binary (its own
# cluster and hub): every request of the mix (tokens, own and cross-town
# reads, denials, writes, audit pages and proofs) gets the answer it should,
# none is left unstarted, and the log it wrote verifies.
source "$(dirname "$0")/lib.sh"

RUN_TIMEOUT=120
out=$(RENKEI_BIN=$RENKEI_BIN timeout 240 "$RENKEI_SRC/ops/bench/soak" --time 20 --rate 40 --every 5 2>&1) ||
  fail "ops/bench/soak failed: $(tail -n 20 <<<"$out")"
summary=$(grep '^{' <<<"$out" | tail -n 1)
assert_jq '.errors == 0 and .skipped == 0' "$summary" "no request got an unexpected answer, none was left unstarted"
assert_jq '.requests >= 600 and (.per_kind | to_entries | all(.value > 0))' "$summary" \
  "every kind of request was made ($(jq -c .per_kind <<<"$summary"))"
assert_ge "$(grep -cE $'^[0-9]+\t' <<<"$out")" 4 "a line every 5 s"
assert_match '# audit verify: ok' "$out" "the log the soak wrote verifies"
