#!/usr/bin/env bash
# Brute-force throttling of client authentication: after 10 failures of one
# client within a minute its next attempt, even with the right secret, gets
# 429 with Retry-After, at every endpoint that authenticates clients, while
# other clients go on; after 30 failures from one address every client from
# that address gets 429, and other addresses go on.
# A flood of valid token requests (RENKEI_TOKEN_RATE) is answered with 429
# beyond the client's bucket while other clients go on, and the hub's memory
# stays flat over repeated floods.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"

RUN_TIMEOUT=20
az_setup

client_add --tenant takamatsu --name victim --grant client_credentials --scope ngsi.read
A_ID=$CID A_SECRET=$CSECRET
client_add --tenant takamatsu --name bystander --grant client_credentials --scope ngsi.read
B_ID=$CID B_SECRET=$CSECRET
client_add --tenant kanonji --name poster --grant client_credentials --scope ngsi.read --auth-method client_secret_post
P_ID=$CID P_SECRET=$CSECRET

# too_many WHAT: the last reply is the throttle's: 429, Retry-After of 1 to
# 60 s, an OAuth error body.
too_many() {
  assert_status 429 "$1: 429"
  assert_match '^[0-9]+$' "$(header Retry-After)" "$1: Retry-After is a number of seconds"
  assert_ge "$(header Retry-After)" 1 "$1: Retry-After >= 1"
  assert_lt "$(header Retry-After)" 61 "$1: Retry-After <= 60 (the window is a minute)"
  assert_json 'keys == ["error", "error_description"] and (.error | type) == "string"' "$1: an OAuth error body"
  assert_no_match 'access_token' "$HTTP_BODY" "$1: no token"
}

# ------------------------------------------------------------ per client

hub_start
get_token "$A_ID" "$A_SECRET"
TA=$TOKEN
for i in $(seq 1 10); do
  token_basic "$A_ID" "wrong-secret-$i"
  assert_oauth_error 401 invalid_client "failure $i of 10: still 401"
done
token_basic "$A_ID" "$A_SECRET"
too_many "the 11th attempt, with the right secret"
token_basic "$A_ID" "wrong-again"
too_many "a wrong secret while throttled (429, not 401: nothing to learn)"
introspect "$A_ID" "$A_SECRET" "$TA"
too_many "introspection by the throttled client"
revoke "$A_ID" "$A_SECRET" "$TA"
too_many "revocation by the throttled client"
get_token "$B_ID" "$B_SECRET"
ok "another client of the same tenant from the same address still gets tokens"
introspect "$B_ID" "$B_SECRET" "$TA"
assert_json '.active == true' "the throttled client's token was not revoked and stays active"
token_post "$P_ID" "$P_SECRET"
assert_status 200 "a client_secret_post client still gets tokens"
assert_eq 0 "$(sql "SELECT count(*) FROM renkei.revoked_tokens")" "nothing was revoked"

# ----------------------------------------------------------- per address

hub_stop
hub_start
get_token "$A_ID" "$A_SECRET"
ok "a restarted hub starts with clean counters"
for i in $(seq 1 30); do
  token_basic "c_unknown_client_$i" "x"
  if [[ $HTTP_STATUS != 401 ]]; then
    fail "failure $i of 30 from this address (each for another unknown client): expected 401, got $HTTP_STATUS [$HTTP_BODY]"
  fi
done
ok "30 failures from one address, each for another unknown client, all 401"
token_basic "$B_ID" "$B_SECRET"
too_many "a good client from the address with 30 failures"
token_post "$P_ID" "$P_SECRET"
too_many "a good client_secret_post client from that address"
http_try POST /oauth2/token --interface 127.0.0.2 "${FORM[@]}" -u "$B_ID:$B_SECRET" --data 'grant_type=client_credentials' ||
  fail "cannot send from 127.0.0.2: $HTTP_CURL_ERROR"
assert_status 200 "the same client from another address (127.0.0.2) gets tokens"

# ------------------------------------------------- a flood of valid requests

hub_stop
# 2 tokens a second per client: a bucket of 10
hub_start RENKEI_TOKEN_RATE=2
get_token "$B_ID" "$B_SECRET"
TB=$TOKEN
FORM_A=$(printf '{"Authorization": "Basic %s", "Content-Type": "application/x-www-form-urlencoded"}' \
  "$(printf '%s:%s' "$A_ID" "$A_SECRET" | base64 -w0)")
# flood: 100 token requests of client A at once, on 100 connections; sets
# FLOOD (the JSON summary), GOT (200s), SLOWED (429s), FLOOD_SECS
flood() {
  local t0=$EPOCHREALTIME
  FLOOD=$(node "$RENKEI_SRC/tests/support/slow_clients.mjs" burst "$HUB_PORT" 100 /oauth2/token \
    "$FORM_A" 'grant_type=client_credentials&scope=ngsi.read') || fail "the flood did not run"
  FLOOD_SECS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')
  GOT=$(jq '.statuses["200"] // 0' <<<"$FLOOD")
  SLOWED=$(jq '.statuses["429"] // 0' <<<"$FLOOD")
}
flood
assert_jq '(.statuses | keys - ["200", "429"]) == [] and .no_answer == 0' "$FLOOD" \
  "100 token requests at once: each answered, with 200 or 429 alone"
assert_ge "$GOT" 10 "the bucket's 10 tokens were given ($GOT)"
# the bucket refills at 2/s for as long as the flood took, at most
assert_lt "$GOT" "$(awk -v s="$FLOOD_SECS" 'BEGIN { print 10 + int(2 * s) + 2 }')" \
  "no more than the bucket and its refill over ${FLOOD_SECS}s ($GOT)"
assert_eq 100 "$((GOT + SLOWED))" "the rest got 429 ($SLOWED)"
sample=$(jq -r '.samples["429"]' <<<"$FLOOD")
assert_match $'Retry-After: [1-9][0-9]*\r' "$sample" "a 429 says when to retry"
assert_match '"error": *"temporarily_unavailable"' "$sample" "with an OAuth error body"
assert_no_match 'access_token' "$sample" "and no token"
get_token "$B_ID" "$B_SECRET"
ok "another client from the same address gets its token meanwhile"
introspect "$B_ID" "$B_SECRET" "$TB"
assert_json '.active == true' "tokens issued before the flood stay good"

# memory: the flood again and again (the sanitizers' allocator keeps what is
# freed in quarantine: none for this hub, so that freed memory is reused as
# in a plain build; leaks themselves are LSan's, at the hub's exit)
hub_stop
hub_start RENKEI_TOKEN_RATE=2 ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$HUB_PID/status"; }
flood
rss_first=$(rss)
for round in $(seq 2 11); do
  flood
  [[ $((GOT + SLOWED)) == 100 ]] || fail "flood round $round: $FLOOD"
done
rss_last=$(rss)
assert_lt "$((rss_last - rss_first))" 2048 \
  "ten more floods of 100: the hub's memory stays flat ($rss_first kB, then $rss_last kB: under 2 kB a request)"
