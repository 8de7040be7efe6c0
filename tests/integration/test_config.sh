#!/usr/bin/env bash
# Configuration errors stop the process at start with one line on stderr
# naming the variable (exit 1); the master secret file is created 0600 when
# missing and refused when readable by others or too short.
source "$(dirname "$0")/lib.sh"

# A command that should stop at once but serves instead must not eat the
# whole ctest timeout.
RUN_TIMEOUT=15

# expect_config_error VAR COMMAND [-u NAME | NAME=VALUE]...
expect_config_error() {
  local var=$1 cmd=$2
  shift 2
  run_renkei "$@" "$cmd"
  local what="$cmd with $*"
  assert_eq 1 "$RUN_STATUS" "$what: exit status (stdout [$RUN_OUT] stderr [$RUN_ERR])"
  assert_eq 1 "$(printf '%s\n' "$RUN_ERR" | grep -c .)" "$what: exactly one line on stderr [$RUN_ERR]"
  assert_match "$var" "$RUN_ERR" "$what: the line names $var"
}

# A valid secret, so that each case below has exactly one thing wrong.
head -c 48 /dev/urandom >"$tmpdir/secret"
chmod 600 "$tmpdir/secret"

for cmd in serve migrate; do
  expect_config_error RENKEI_DB "$cmd" -u RENKEI_DB RENKEI_LISTEN=127.0.0.1:0
done

for bad in abc 0 -3 4x; do
  expect_config_error RENKEI_THREADS serve RENKEI_THREADS="$bad" RENKEI_LISTEN=127.0.0.1:0
done
expect_config_error RENKEI_LOG serve RENKEI_LOG=loud RENKEI_LISTEN=127.0.0.1:0
expect_config_error RENKEI_LOG migrate RENKEI_LOG=loud
for bad in nonsense 127.0.0.1:99999 127.0.0.1:; do
  expect_config_error RENKEI_LISTEN serve RENKEI_LISTEN="$bad"
done
expect_config_error RENKEI_MAX_BODY serve RENKEI_MAX_BODY=lots RENKEI_LISTEN=127.0.0.1:0

# The secret file: group or world permission bits are refused ...
chmod 644 "$tmpdir/secret"
expect_config_error RENKEI_SECRET_FILE serve RENKEI_LISTEN=127.0.0.1:0
expect_config_error RENKEI_SECRET_FILE migrate
chmod 640 "$tmpdir/secret"
expect_config_error RENKEI_SECRET_FILE serve RENKEI_LISTEN=127.0.0.1:0
chmod 604 "$tmpdir/secret"
expect_config_error RENKEI_SECRET_FILE migrate

# ... and so is one shorter than 32 bytes.
head -c 31 /dev/urandom >"$tmpdir/short-secret"
chmod 600 "$tmpdir/short-secret"
expect_config_error RENKEI_SECRET_FILE serve RENKEI_SECRET_FILE="$tmpdir/short-secret" \
  RENKEI_LISTEN=127.0.0.1:0
expect_config_error RENKEI_SECRET_FILE migrate RENKEI_SECRET_FILE="$tmpdir/short-secret"
assert_eq 31 "$(stat -c %s "$tmpdir/short-secret")" "a refused short secret is left as it was"

# A missing secret file is created, 0600, with at least 32 bytes: by migrate ...
run_renkei RENKEI_SECRET_FILE="$tmpdir/new-by-migrate" migrate
assert_eq 0 "$RUN_STATUS" "migrate with a missing secret file exits 0 (stderr: $RUN_ERR)"
assert_eq 600 "$(stat -c %a "$tmpdir/new-by-migrate")" "migrate creates the secret with mode 0600"
size=$(stat -c %s "$tmpdir/new-by-migrate")
assert_ge "$size" 32 "secret created by migrate holds >= 32 bytes"

# ... and by serve, which then runs.
rm -f "$tmpdir/secret"
hub_start
assert_eq 600 "$(stat -c %a "$tmpdir/secret")" "serve creates the secret with mode 0600"
size=$(stat -c %s "$tmpdir/secret")
assert_ge "$size" 32 "secret created by serve holds >= 32 bytes"
first=$(od -An -tx1 "$tmpdir/secret" | tr -d ' \n')
rc=0
hub_stop || rc=$?
assert_eq 0 "$rc" "hub exits 0 on SIGTERM"

# An existing secret is kept as it is across restarts.
hub_start
assert_eq "$first" "$(od -An -tx1 "$tmpdir/secret" | tr -d ' \n')" "serve keeps an existing secret"
rc=0
hub_stop || rc=$?
assert_eq 0 "$rc" "hub exits 0 on SIGTERM"

# Two generated secrets differ (they are random, not a constant).
run_renkei RENKEI_SECRET_FILE="$tmpdir/new-by-migrate-2" migrate
assert_eq 0 "$RUN_STATUS" "second migrate with a missing secret file exits 0"
assert_ne "$(od -An -tx1 "$tmpdir/new-by-migrate" | tr -d ' \n')" \
  "$(od -An -tx1 "$tmpdir/new-by-migrate-2" | tr -d ' \n')" "generated secrets differ"
