#!/usr/bin/env bash
# The command line: help, version, unknown commands and flags.
source "$(dirname "$0")/lib.sh"

# A command that should stop at once but serves instead must not eat the
# whole ctest timeout.
RUN_TIMEOUT=15

# help: usage on stdout, exit 0, works without any configuration.
run_renkei -u RENKEI_DB help
assert_eq 0 "$RUN_STATUS" "help exits 0 (stderr: $RUN_ERR)"
assert_match '[Uu]sage' "$RUN_OUT" "help prints usage on stdout"
for cmd in help version migrate serve; do
  assert_match "(^|[^a-z])$cmd([^a-z]|$)" "$RUN_OUT" "help lists '$cmd'"
done
assert_eq "" "$RUN_ERR" "help writes nothing on stderr"

# version: one line on stdout with the version.
run_renkei -u RENKEI_DB version
assert_eq 0 "$RUN_STATUS" "version exits 0 (stderr: $RUN_ERR)"
assert_match '[0-9]+\.[0-9]+\.[0-9]+' "$RUN_OUT" "version prints a version number"
assert_eq 1 "$(wc -l <<<"$RUN_OUT")" "version prints one line"
plain_version=$RUN_OUT

run_renkei -u RENKEI_DB version --json
assert_eq 0 "$RUN_STATUS" "version --json exits 0 (stderr: $RUN_ERR)"
assert_jq '.version | type == "string" and length > 0' "$RUN_OUT" \
  "version --json prints {\"version\": string}"
json_version=$(jq -r .version <<<"$RUN_OUT")
assert_match "$(printf '%s' "$json_version" | sed 's/[].[^$*+?(){}|\\]/\\&/g')" \
  "$plain_version" "plain and --json versions agree"

# Unknown command: usage on stderr, nothing on stdout, exit 2.
run_renkei frobnicate
assert_eq 2 "$RUN_STATUS" "unknown command exits 2"
assert_match '[Uu]sage' "$RUN_ERR" "unknown command prints usage on stderr"
assert_eq "" "$RUN_OUT" "unknown command prints nothing on stdout"

# Unknown flags, for each command; no database is touched before the check
# (RENKEI_DB points nowhere, so a connection attempt would show as exit 1).
for args in "version --frobnicate" "help --frobnicate" "migrate --frobnicate" \
  "serve --frobnicate" "migrate --status --frobnicate"; do
  # shellcheck disable=SC2086
  run_renkei RENKEI_DB="host=/nonexistent port=1 dbname=none connect_timeout=1" $args
  assert_eq 2 "$RUN_STATUS" "renkei $args exits 2 (stderr: $RUN_ERR)"
  assert_match '[Uu]sage' "$RUN_ERR" "renkei $args prints usage on stderr"
done

# serve with an unknown flag must not start listening.
run_renkei RENKEI_LISTEN=127.0.0.1:0 serve --frobnicate
assert_eq 2 "$RUN_STATUS" "serve --frobnicate exits 2 at once"
