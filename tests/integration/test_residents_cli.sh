#!/usr/bin/env bash
# `renkei resident ...`: add (password from standard input, hashed with
# scrypt at RENKEI_SCRYPT's cost, ln=17 by default), list, show, disable
# (which ends sessions and refresh tokens), enable, passwd, link, unlink;
# bad input exits 2 with one line, a database failure 1; the audit log gets
# resident.* entries without personal data; the password is nowhere in the
# database.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"

RUN_TIMEOUT=30
az_setup

# resident INPUT [NAME=VALUE]... ARGS...: renkei resident ARGS with INPUT
# (printf %b) on standard input; RUN_STATUS, RUN_OUT, RUN_ERR as run_renkei.
resident() {
  local input=$1
  shift
  _renkei_env "$@"
  RUN_STATUS=0
  printf '%b' "$input" | timeout "$RUN_TIMEOUT" env -i "${_env[@]}" "$RENKEI_BIN" resident "${_rest[@]}" \
    >"$tmpdir/run.out" 2>"$tmpdir/run.err" || RUN_STATUS=$?
  RUN_OUT=$(cat "$tmpdir/run.out")
  RUN_ERR=$(cat "$tmpdir/run.err")
}

# refused WHAT: the last command exited 2 with exactly one line on stderr.
refused() {
  assert_eq 2 "$RUN_STATUS" "$1: exit 2 (stdout [$RUN_OUT])"
  assert_eq 1 "$(printf '%s\n' "$RUN_ERR" | grep -c .)" "$1: one line on stderr [$RUN_ERR]"
}

# scrypt_matches PASSWORD STORED: STORED is "$scrypt$ln=L,r=R,p=P$salt$hash"
# and openssl's scrypt of PASSWORD with that salt and those parameters is
# that hash (an implementation other than the hub's).
scrypt_matches() {
  local pw=$1 stored=$2 salt hash got
  local re='^\$scrypt\$ln=([0-9]+),r=([0-9]+),p=([0-9]+)\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$'
  [[ $stored =~ $re ]] || return 1
  local ln=${BASH_REMATCH[1]} r=${BASH_REMATCH[2]} p=${BASH_REMATCH[3]}
  salt=$(printf '%s==' "${BASH_REMATCH[4]}" | base64 -d | _hex)
  hash=$(printf '%s=' "${BASH_REMATCH[5]}" | base64 -d | _hex)
  got=$(openssl kdf -keylen 32 -kdfopt "pass:$pw" -kdfopt "hexsalt:$salt" -kdfopt "n:$((1 << ln))" \
    -kdfopt "r:$r" -kdfopt "p:$p" SCRYPT | tr -d ':\n' | tr 'A-F' 'a-f')
  [[ -n $got && $got == "$hash" ]]
}

stored_hash() {
  sql "SELECT password_hash FROM renkei.residents WHERE login = '$1'"
}

PW='Takamatsu castle 1588'
NAME='高松 花子'
MAIL='Hanako.Takamatsu@Example.JP'

# ------------------------------------------------------------------ add

resident "$PW\n" add --tenant takamatsu --login "$MAIL" --name "$NAME" --password-stdin --json
assert_eq 0 "$RUN_STATUS" "resident add exits 0 [$RUN_ERR]"
assert_jq '.login == "hanako.takamatsu@example.jp" and .tenant == "takamatsu" and .name == "高松 花子"
  and .email == "hanako.takamatsu@example.jp" and .email_verified == false and .state == "active" and .version == 1' \
  "$RUN_OUT" "--json: the resident, login lower-cased, the login as e-mail"
assert_jq 'keys == ["created_at", "email", "email_verified", "login", "name", "state", "tenant", "updated_at", "version"]' \
  "$RUN_OUT" "--json shows no common ID and no hash"
H=$(stored_hash hanako.takamatsu@example.jp)
assert_match '^\$scrypt\$ln=12,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$' "$H" "the stored hash: scrypt at the tests' RENKEI_SCRYPT"
check "the stored hash is scrypt of the password, the newline stripped (openssl agrees)" scrypt_matches "$PW" "$H"
assert_eq 0 "$(db_contains "$PW")" "the password is nowhere in the database"
assert_match '^r_[A-Za-z0-9_-]{22}$' "$(sql "SELECT id FROM renkei.residents WHERE login = 'hanako.takamatsu@example.jp'")" \
  "the common ID: r_ and 128 random bits"

# the default cost, without RENKEI_SCRYPT: OWASP's ln=17,r=8,p=1
resident "$PW\r\n" -u RENKEI_SCRYPT add --tenant kanonji --login 0875-23-3300 --name "観音寺 一郎" --password-stdin
assert_eq 0 "$RUN_STATUS" "resident add without RENKEI_SCRYPT [$RUN_ERR]"
assert_match 'added resident 0875-23-3300' "$RUN_OUT" "the plain output names the login"
H17=$(stored_hash 0875-23-3300)
assert_match '^\$scrypt\$ln=17,r=8,p=1\$' "$H17" "without RENKEI_SCRYPT a new hash uses ln=17,r=8,p=1"
check "CR LF is stripped too" scrypt_matches "$PW" "$H17"
assert_eq "" "$(sql "SELECT email FROM renkei.residents WHERE login = '0875-23-3300'")" "a phone login is no e-mail address"

resident "$PW\n" RENKEI_SCRYPT=ln=11,r=8,p=1 add --tenant kanonji --login weak --password-stdin
assert_eq 1 "$RUN_STATUS" "RENKEI_SCRYPT ln=11: exit 1"
assert_match '^renkei: RENKEI_SCRYPT: ' "$RUN_ERR" "the one line names RENKEI_SCRYPT"
assert_eq 1 "$(printf '%s\n' "$RUN_ERR" | grep -c .)" "one line"
for bad in "ln=17,r=8" "ln=22,r=8,p=1" "ln=17,r=8,p=0" "17,8,1"; do
  resident "$PW\n" RENKEI_SCRYPT="$bad" list
  assert_eq 1 "$RUN_STATUS" "RENKEI_SCRYPT=$bad stops the command"
  assert_match '^renkei: RENKEI_SCRYPT: .*must be ln=L,r=R,p=P' "$RUN_ERR" "RENKEI_SCRYPT=$bad: why"
done
assert_eq 0 "$(sql "SELECT count(*) FROM renkei.residents WHERE login = 'weak'")" "nothing added under a bad configuration"

# ----------------------------------------------------------- refusals

resident "$PW\n" add --tenant takamatsu --login HANAKO.takamatsu@example.jp --password-stdin
refused "a login taken (in another case)"
assert_match 'taken' "$RUN_ERR" "it says the login is taken"
for login in ab "hanako takamatsu" "a@b" "@example.jp" "+12345" "山田" "taro!" "$(printf 'x%.0s' {1..65})"; do
  resident "$PW\n" add --tenant takamatsu --login "$login" --password-stdin
  refused "login [$login]"
done
resident "\n" add --tenant takamatsu --login empty.pw --password-stdin
refused "an empty password"
resident "" add --tenant takamatsu --login no.pw --password-stdin
refused "no password at all"
resident "short\n" add --tenant takamatsu --login short.pw --password-stdin
refused "a password of 5 bytes"
resident "$(printf 'p%.0s' {1..1025})\n" add --tenant takamatsu --login long.pw --password-stdin
refused "a password of 1025 bytes"
resident "$PW\n" add --tenant takamatsu --login no.stdin
refused "without --password-stdin"
resident "$PW\n" add --tenant takamatsu --login x.y --password "$PW"
refused "a password on the command line is no option"
resident "$PW\n" add --tenant nowhere --login nowhere.town --password-stdin
refused "a tenant that does not exist"
resident "$PW\n" add --tenant takamatsu --login bad.mail --email not-an-address --password-stdin
refused "a bad --email"
resident "$PW\n" add --tenant takamatsu --login bad.name --name "$(printf 'n%.0s' {1..201})" --password-stdin
refused "a name of 201 characters"
assert_eq 2 "$(sql "SELECT count(*) FROM renkei.residents")" "none of them was added"
resident "" frobnicate
refused "an unknown subcommand"
resident "" show
refused "show without a login"
resident "" show nobody@example.jp
refused "show of a resident that does not exist"

# ------------------------------------------------------ list and show

resident "$PW\n" add --tenant takamatsu --login taro_t --password-stdin
assert_eq 0 "$RUN_STATUS" "a plain login name [$RUN_ERR]"
resident "" list
assert_eq 0 "$RUN_STATUS" "list"
assert_match 'hanako\.takamatsu@example\.jp +takamatsu +active +高松 花子' "$RUN_OUT" "list shows hanako"
assert_match '0875-23-3300 +kanonji' "$RUN_OUT" "and the kanonji resident"
resident "" list --tenant takamatsu --json
assert_jq '[.[].login] == ["hanako.takamatsu@example.jp", "taro_t"]' "$RUN_OUT" "list --tenant takamatsu --json, in login order"
assert_jq '[.[] | keys[] | select(. == "id" or test("hash"))] == []' "$RUN_OUT" "no common ID or hash in the list"
resident "" show Hanako.Takamatsu@example.jp --json
assert_jq '.login == "hanako.takamatsu@example.jp" and .links == []' "$RUN_OUT" "show (any case) --json, no links yet"

# ------------------------------------------------------ link / unlink

resident "" link hanako.takamatsu@example.jp --tenant takamatsu --local-id TK-000123
assert_eq 0 "$RUN_STATUS" "link to takamatsu's number [$RUN_ERR]"
resident "" link hanako.takamatsu@example.jp --tenant kanonji --local-id KJ-77
assert_eq 0 "$RUN_STATUS" "link to kanonji's number too"
resident "" show hanako.takamatsu@example.jp --json
assert_jq '[.links[] | [.tenant, .local_id]] == [["kanonji", "KJ-77"], ["takamatsu", "TK-000123"]]' "$RUN_OUT" "show lists both links"
resident "" link hanako.takamatsu@example.jp --tenant takamatsu --local-id TK-000124
assert_eq 0 "$RUN_STATUS" "a new number replaces the old one"
assert_eq "TK-000124" "$(sql "SELECT local_id FROM renkei.resident_links l JOIN renkei.residents r ON r.id = l.resident_id WHERE r.login = 'hanako.takamatsu@example.jp' AND l.tenant_id = 'takamatsu'")" \
  "one link per town, the new number"
resident "" link taro_t --tenant takamatsu --local-id TK-000124
refused "another resident with the same number of the same town"
assert_match 'linked to another resident' "$RUN_ERR" "it says why"
resident "" link taro_t --tenant nowhere --local-id X1
refused "a link to a town that does not exist"
resident "" link taro_t --tenant takamatsu --local-id "TK 1"
refused "a local number with a space"
resident "" link taro_t --tenant takamatsu
refused "link without --local-id"
resident "" unlink hanako.takamatsu@example.jp --tenant kanonji
assert_eq 0 "$RUN_STATUS" "unlink from kanonji"
resident "" unlink hanako.takamatsu@example.jp --tenant kanonji
refused "unlink again"
resident "" show hanako.takamatsu@example.jp --json
assert_jq '[.links[].tenant] == ["takamatsu"]' "$RUN_OUT" "the kanonji link is gone"

# ------------------------------------------------ disable and sessions

sql "INSERT INTO renkei.clients (id, tenant_id, name, auth_method, grant_types, scopes, default_scopes, created_by)
       VALUES ('c_resident_app', 'takamatsu', 'app', 'none', '{authorization_code}', '{}', '{}', 'test');
     INSERT INTO renkei.grants (id, resident_id, client_id, tenant_id)
       SELECT 'g_' || substr(md5(login), 1, 20), id, 'c_resident_app', 'takamatsu' FROM renkei.residents;
     INSERT INTO renkei.sessions (id_hash, sid, resident_id, auth_time, expires_at)
       SELECT sha256(convert_to(login, 'UTF8')), 's_' || substr(md5(login), 1, 20), id, now(), now() + interval '1 hour'
         FROM renkei.residents;
     INSERT INTO renkei.refresh_tokens (token_hash, family_id, grant_id, client_id, resident_id, scope, auth_time, expires_at)
       SELECT sha256(convert_to('rt' || login, 'UTF8')), 'f_' || login, 'g_' || substr(md5(login), 1, 20),
              'c_resident_app', id, 'openid', now(), now() + interval '1 day' FROM renkei.residents" >/dev/null
live() {
  sql "SELECT (SELECT count(*) FROM renkei.sessions s JOIN renkei.residents r ON r.id = s.resident_id
                WHERE r.login = '$1' AND s.ended_at IS NULL) || ' ' ||
              (SELECT count(*) FROM renkei.refresh_tokens t JOIN renkei.residents r ON r.id = t.resident_id
                WHERE r.login = '$1' AND t.revoked_at IS NULL)"
}
assert_eq "1 1" "$(live taro_t)" "taro has a live session and refresh token"
resident "" disable taro_t --json
assert_eq 0 "$RUN_STATUS" "disable [$RUN_ERR]"
assert_jq '.state == "disabled" and .login == "taro_t"' "$RUN_OUT" "disable --json shows the disabled resident"
assert_eq "0 0" "$(live taro_t)" "disabling ended taro's session and revoked his refresh token"
assert_eq "1 1" "$(live hanako.takamatsu@example.jp)" "hanako's stay"
resident "" disable taro_t
assert_eq 0 "$RUN_STATUS" "disable again is fine"
resident "" enable taro_t
assert_eq 0 "$RUN_STATUS" "enable"
assert_match 'enabled resident taro_t' "$RUN_OUT" "enable says so"
assert_eq active "$(sql "SELECT state FROM renkei.residents WHERE login = 'taro_t'")" "taro is active again"

# ------------------------------------------------------------- passwd

OLD=$(stored_hash taro_t)
resident "short\n" passwd taro_t --password-stdin
refused "passwd with a short password"
assert_eq "$OLD" "$(stored_hash taro_t)" "the hash is unchanged"
resident "Yashima 1185 dan-no-ura\n" passwd taro_t --password-stdin
assert_eq 0 "$RUN_STATUS" "passwd [$RUN_ERR]"
NEW=$(stored_hash taro_t)
assert_ne "$OLD" "$NEW" "a new hash"
check "the new hash is of the new password" scrypt_matches "Yashima 1185 dan-no-ura" "$NEW"
resident "Yashima 1185 dan-no-ura\n" passwd nobody@example.jp --password-stdin
refused "passwd of nobody"

# -------------------------------------------------------------- audit

assert_eq "resident.create:takamatsu resident.create:kanonji resident.create:takamatsu resident.link:takamatsu resident.link:kanonji resident.link:takamatsu resident.unlink:kanonji resident.disable:takamatsu resident.enable:takamatsu resident.update:takamatsu" \
  "$(sql "SELECT string_agg(kind || ':' || tenant, ' ' ORDER BY seq) FROM renkei.audit_events WHERE kind LIKE 'resident.%'")" \
  "one audit entry per change (a repeated disable records nothing), about the resident's town or the linked town"
assert_eq "$ACTOR" "$(sql "SELECT DISTINCT actor FROM renkei.audit_events WHERE kind LIKE 'resident.%'")" "all by the operator"
assert_eq '{"changed": ["password"]}' "$(sql "SELECT detail FROM renkei.audit_events WHERE kind = 'resident.update'")" \
  "resident.update names the fields, not their values"
canon=$(sql "SELECT string_agg(canonical, E'\n' ORDER BY seq) FROM renkei.audit_entries WHERE kind LIKE 'resident.%'")
for personal in hanako takamatsu@example taro_t 0875-23-3300 "花子" "一郎" TK-000 KJ-77 "$PW" scrypt; do
  assert_no_match "$personal" "$canon" "the audit entries hold no [$personal]"
done
for id in $(sql "SELECT id FROM renkei.residents"); do
  assert_no_match "$id" "$canon" "the audit entries hold no common ID"
done
assert_eq 1 "$(sql "SELECT count(DISTINCT canonical::jsonb->>'resident') FROM renkei.audit_entries WHERE kind LIKE 'resident.%' AND tenant = 'kanonji' AND kind <> 'resident.create'")" \
  "hanako's link and unlink name her by one opaque reference"
assert_match '^[A-Za-z0-9_-]{43}$' "$(sql "SELECT canonical::jsonb->>'resident' FROM renkei.audit_entries WHERE kind = 'resident.create' LIMIT 1")" \
  "the reference is 43 characters of base64url"
assert_eq 0 "$(db_contains "$PW" "Yashima 1185 dan-no-ura")" "no password is anywhere in the database"

run_renkei audit verify
assert_eq 0 "$RUN_STATUS" "the audit log verifies [$RUN_ERR]"

# ----------------------------------------------------- database down

resident "" RENKEI_DB="host=127.0.0.1 port=1 dbname=none connect_timeout=2" list
assert_eq 1 "$RUN_STATUS" "list with the database unreachable: exit 1"
resident "$PW\n" RENKEI_DB="host=127.0.0.1 port=1 dbname=none connect_timeout=2" add --tenant takamatsu --login down.db --password-stdin
assert_eq 1 "$RUN_STATUS" "add with the database unreachable: exit 1"
