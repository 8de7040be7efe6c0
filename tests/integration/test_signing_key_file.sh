#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Signing keys held outside the database (issue 12): RENKEI_SIGNING_KEY_FILE
# names PEM PKCS#8 files of the service user, an EC P-256 key for ES256
# and an RSA key for RS256.
# - Files the hub must not trust are refused at start (serve; other
#   commands do not read them) with one line naming the variable: readable by others, a link, encrypted, not PKCS#8,
#   another curve, a weak RSA key, two keys of one algorithm.
# - Given the files, the hub signs with them: the kid is the RFC 7638
#   thumbprint of each file's public key, the signatures verify with
#   openssl against that key, and the database holds the public half only
#   (private_sealed NULL, held 'file').
#   The database keys it replaced stay published (retiring), so tokens
#   signed before still work; the switch is an audit event.
# - A second node without the file (a rolling change) signs a while with
#   the key it had, then is not ready and says why; with it, it verifies and
#   signs alike.
# - Replacing the file rotates the key: the old file key retires.
# - `renkei keys rotate` leaves keys held in files alone; `renkei secret
#   rotate` has nothing of theirs to re-seal.
# - A row of someone's own key written into the database as if held in a
#   file is trusted by no node (no MAC under the root); with the MAC only
#   the root can make, it would be (the control).
# - The audit checkpoint key in a file (RENKEI_AUDIT_KEY_FILE): active at
#   start, the database's key retired and kept, checkpoints signed by it
#   verify offline, rotate-key leaves it alone, a forged row is refused.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"

RUN_TIMEOUT=30
ISSUER=https://renkei.example.test # the nodes and restarts of one hub
az_setup
client_add --tenant takamatsu --name es --grant client_credentials --scope ngsi.read
ES=("$CID" "$CSECRET")
client_add --tenant takamatsu --name rs --grant client_credentials --scope ngsi.read --token-alg RS256
RS=("$CID" "$CSECRET")

KD=$tmpdir/keys
mkdir -m 700 "$KD"
newkey() { # newkey FILE ARGS...: openssl genpkey ARGS into FILE, 0600
  (umask 077 && openssl genpkey "${@:2}" -out "$1" 2>/dev/null) || fail "openssl genpkey $*"
}
newkey "$KD/es1.pem" -algorithm EC -pkeyopt ec_paramgen_curve:P-256
newkey "$KD/rs1.pem" -algorithm RSA -pkeyopt rsa_keygen_bits:2048

# thumbprint FILE: the RFC 7638 thumbprint of FILE's public key, computed
# here from openssl's output, not by the hub
hexof() { od -An -v -tx1 | tr -d ' \n'; }
unhex() { local h=$1 out=; while [[ -n $h ]]; do out+="\\x${h:0:2}"; h=${h:2}; done; printf '%b' "$out"; }
thumbprint() {
  local der jwk
  der=$(openssl pkey -in "$1" -pubout -outform DER 2>/dev/null | hexof)
  if openssl pkey -in "$1" -noout -text 2>/dev/null | grep -q 'prime256v1\|P-256'; then
    # the last 64 bytes of the SubjectPublicKeyInfo: X || Y
    local xy=${der: -128}
    jwk=$(printf '{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}' \
      "$(unhex "${xy:0:64}" | b64url_encode)" "$(unhex "${xy:64:64}" | b64url_encode)")
  else
    local n e
    n=$(openssl rsa -in "$1" -noout -modulus 2>/dev/null | cut -d= -f2 | tr 'A-F' 'a-f')
    e=$(openssl rsa -in "$1" -noout -text 2>/dev/null | sed -n 's/.*publicExponent: [0-9]* (0x\([0-9a-f]*\)).*/\1/p')
    ((${#e} % 2)) && e=0$e
    jwk=$(printf '{"e":"%s","kty":"RSA","n":"%s"}' "$(unhex "$e" | b64url_encode)" "$(unhex "$n" | b64url_encode)")
  fi
  printf '%s' "$jwk" | openssl dgst -sha256 -binary | b64url_encode
}
ES1_KID=$(thumbprint "$KD/es1.pem")
RS1_KID=$(thumbprint "$KD/rs1.pem")

# verify_with FILE TOKEN: TOKEN's signature checks out with FILE's public key
verify_with() {
  local h p s sig
  IFS=. read -r h p s <<<"$2"
  openssl pkey -in "$1" -pubout -out "$tmpdir/pub.pem" 2>/dev/null
  sig=$(printf '%s' "$s" | b64url_decode | hexof)
  if [[ $(jwt_header "$2" | jq -r .alg) == ES256 ]]; then
    # JWS carries r || s; openssl wants DER: SEQUENCE of two INTEGERs
    local r=${sig:0:64} t=${sig:64:64} body
    derint() {
      local v=$1
      while [[ ${v:0:2} == 00 && ${#v} -gt 2 ]]; do v=${v:2}; done
      if ((0x${v:0:1} >= 8)); then v=00$v; fi
      printf '02%02x%s' $((${#v} / 2)) "$v"
    }
    body=$(derint "$r")$(derint "$t")
    sig=$(printf '30%02x%s' $((${#body} / 2)) "$body")
  fi
  unhex "$sig" >"$tmpdir/sig.bin"
  printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -verify "$tmpdir/pub.pem" -signature "$tmpdir/sig.bin" >/dev/null 2>&1
}

# ------------------------------------------------------------------ files refused
refused() { # refused PATTERN MSG FILE[,FILE]: serve stops at its configuration
  RUN_TIMEOUT=10 run_renkei RENKEI_LISTEN=127.0.0.1:0 RENKEI_SIGNING_KEY_FILE="$3" serve
  assert_eq 1 "$RUN_STATUS" "$2: refused"
  assert_match "RENKEI_SIGNING_KEY_FILE: .*$1" "$RUN_ERR" "$2: the reason names the variable"
}
cp -p "$KD/es1.pem" "$KD/open.pem" && chmod 640 "$KD/open.pem"
refused 'chmod 600' "a file the group may read" "$KD/open.pem"
ln -s "$KD/es1.pem" "$KD/link.pem"
refused 'cannot open' "a symbolic link" "$KD/link.pem"
(umask 077 && openssl pkcs8 -topk8 -in "$KD/es1.pem" -passout pass:x -out "$KD/enc.pem" 2>/dev/null)
refused 'encrypted key is refused' "an encrypted key" "$KD/enc.pem"
(umask 077 && openssl ec -in "$KD/es1.pem" -out "$KD/trad.pem" 2>/dev/null)
refused 'not PKCS#8' "a key in the traditional SEC1 form" "$KD/trad.pem"
newkey "$KD/p384.pem" -algorithm EC -pkeyopt ec_paramgen_curve:P-384
refused 'another curve' "a P-384 key" "$KD/p384.pem"
newkey "$KD/rs1024.pem" -algorithm RSA -pkeyopt rsa_keygen_bits:1024
refused 'fewer than 2048 bits' "a 1024-bit RSA key" "$KD/rs1024.pem"
newkey "$KD/ed.pem" -algorithm ED25519
refused 'another type' "an Ed25519 key" "$KD/ed.pem"
newkey "$KD/es2.pem" -algorithm EC -pkeyopt ec_paramgen_curve:P-256
refused 'second ES256 key' "two ES256 keys" "$KD/es1.pem,$KD/es2.pem"
refused 'more than 2 files' "three files" "$KD/es1.pem,$KD/rs1.pem,$KD/es2.pem"
run_renkei RENKEI_SIGNING_KEY_FILE="$KD/open.pem" migrate
assert_eq 0 "$RUN_STATUS" "a command other than serve does not read the key files (a migration as another user)"
chmod 777 "$KD"
refused 'group or others may write' "a directory others may write" "$KD/es1.pem"
chmod 700 "$KD"

# ------------------------------------------------------------------ database keys first, then files
hub_start RENKEI_ISSUER="$ISSUER"
get_token "${ES[@]}"
T_DB_ES=$TOKEN
DB_ES=$(jwt_header "$T_DB_ES" | jq -r .kid)
hub_stop

FILES="$KD/es1.pem, $KD/rs1.pem"
hub_start RENKEI_ISSUER="$ISSUER" RENKEI_SIGNING_KEY_FILE="$FILES"
http GET /readyz
assert_status 200 "the hub with key files is ready"
get_token "${ES[@]}"
T_ES=$TOKEN
assert_eq "$ES1_KID" "$(jwt_header "$T_ES" | jq -r .kid)" "ES256 tokens carry the file key's RFC 7638 thumbprint"
check "and their signature verifies with the file's public key (openssl)" verify_with "$KD/es1.pem" "$T_ES"
if verify_with "$KD/es2.pem" "$T_ES"; then fail "the check also passes with another key"; fi
ok "and not with another key (the check can fail)"
get_token "${RS[@]}"
T_RS=$TOKEN
assert_eq "$RS1_KID" "$(jwt_header "$T_RS" | jq -r .kid)" "RS256 tokens too"
check "RS256 signature verifies with the file's key" verify_with "$KD/rs1.pem" "$T_RS"
rows=$(sql "SELECT kid || ' ' || held || ' ' || (private_sealed IS NULL) || ' ' || state FROM renkei.signing_keys WHERE held = 'file' ORDER BY alg")
assert_eq "$ES1_KID file true active"$'\n'"$RS1_KID file true active" "$rows" "the database holds only their public halves"
http GET /oauth2/jwks
assert_jq "([.keys[].kid] | index(\"$ES1_KID\") and index(\"$RS1_KID\") and index(\"$DB_ES\")) != null" "$HTTP_BODY" \
  "the JWKS publishes the file keys and the database key they replaced"
assert_eq retiring "$(sql "SELECT state FROM renkei.signing_keys WHERE kid = '$DB_ES'")" "which is retiring"
NGSI_AUTH() { http GET '/v2/entities?limit=1' -H "Authorization: Bearer $1" -H 'Fiware-Service: takamatsu'; }
NGSI_AUTH "$T_DB_ES"
assert_status 200 "a token signed before by the database key still works"
NGSI_AUTH "$T_ES"
assert_status 200 "a token of the file key works"
ev=$(sql "SELECT canonical FROM renkei.audit_entries WHERE kind = 'key.rotate' AND canonical::jsonb -> 'detail' ->> 'held' = 'file'" | head -1)
assert_jq ".detail.created == [\"$ES1_KID\"] and .detail.retiring == [\"$DB_ES\"] and .actor == \"hub:signing-key-file\"" "$ev" \
  "the switch to the file key is an audit event"

# ------------------------------------------------------------------ a second node
# without the file (a node not yet restarted in a rolling change): it signs
# a while with the database key the switch replaced, then is not ready
hub2_start RENKEI_ISSUER="$ISSUER"
poll 10 grep -q "the active ES256 key is held in a file of another node: set RENKEI_SIGNING_KEY_FILE here too; until [0-9T:Z-]* it still signs" "$HUB2_LOG" ||
  fail "the node without the file did not say why: $(tail -3 "$HUB2_LOG")"
ok "a node without the key file says why, and until when it still signs with the key it had"
poll 20 curl -sf "$HUB2_URL/readyz" -o /dev/null || fail "the node without the file is not ready in its grace"
on_hub2 get_token "${ES[@]}"
assert_eq "$DB_ES" "$(jwt_header "$TOKEN" | jq -r .kid)" "meanwhile it signs with the replaced database key"
NGSI_AUTH "$TOKEN"
assert_status 200 "which the node with the file accepts"
sql "UPDATE renkei.signing_keys SET retiring_at = now() - interval '10 minutes', retire_after = now() + interval '20 minutes' WHERE kid = '$DB_ES'" >/dev/null
poll 10 bash -c "curl -s '$HUB2_URL/readyz' | grep -q 'held in a file of another node'" ||
  fail "the node without the file did not go not ready after its grace"
ok "after its grace it is not ready, and says why"
hub2_stop
hub2_start RENKEI_ISSUER="$ISSUER" RENKEI_SIGNING_KEY_FILE="$FILES"
poll 20 curl -sf "$HUB2_URL/readyz" -o /dev/null || fail "the node with the file is not ready"
on_hub2 NGSI_AUTH "$T_ES"
assert_status 200 "with the file it verifies the first node's tokens"
on_hub2 get_token "${ES[@]}"
assert_eq "$ES1_KID" "$(jwt_header "$TOKEN" | jq -r .kid)" "and signs with the same key"
hub2_stop

# ------------------------------------------------------------------ keys rotate, secret rotate
run_renkei keys rotate
assert_eq 1 "$RUN_STATUS" "keys rotate with every key in files: nothing to rotate"
assert_match "every active key is held in RENKEI_SIGNING_KEY_FILE" "$RUN_ERR" "it says so"
run_renkei secret rotate
check "secret rotate" test "$RUN_STATUS" = 0
assert_match "re-sealed 2 value\\(s\\) of signing_keys" "$RUN_OUT" "re-seals the two retiring database keys only"
assert_eq 2 "$(sql "SELECT count(*) FROM renkei.signing_keys WHERE held = 'file' AND private_sealed IS NULL")" \
  "the file keys have still nothing in the database"

# ------------------------------------------------------------------ replacing the file
hub_stop
FILES2="$KD/es2.pem,$KD/rs1.pem"
ES2_KID=$(thumbprint "$KD/es2.pem")
hub_start RENKEI_ISSUER="$ISSUER" RENKEI_SIGNING_KEY_FILE="$FILES2"
get_token "${ES[@]}"
assert_eq "$ES2_KID" "$(jwt_header "$TOKEN" | jq -r .kid)" "a new file: its key signs"
assert_eq retiring "$(sql "SELECT state FROM renkei.signing_keys WHERE kid = '$ES1_KID'")" "the old file key retires"
NGSI_AUTH "$T_ES"
assert_status 200 "and its tokens still work"
assert_eq "$RS1_KID" "$(sql "SELECT kid FROM renkei.signing_keys WHERE state = 'active' AND alg = 'RS256'")" \
  "the RS256 file, unchanged, stays active"
# a node given the replaced file (as in a rolling replacement, before its
# restart): its key is only retiring, so it goes on signing with it for a
# while only tokens that expire while the key is published, then it is not
# ready and signs nothing with it
hub2_start RENKEI_ISSUER="$ISSUER" RENKEI_SIGNING_KEY_FILE="$FILES"
poll 10 grep -q "the ES256 key of RENKEI_SIGNING_KEY_FILE ($KD/es1.pem, kid $ES1_KID) was replaced by another node's key file.*until [0-9T:Z-]* it still signs" "$HUB2_LOG" ||
  fail "the node with the replaced file did not say so: $(tail -3 "$HUB2_LOG")"
ok "a node given a replaced file names the file, the key and until when it still signs"
poll 20 curl -sf "$HUB2_URL/readyz" -o /dev/null || fail "the node with the replaced file is not ready in its grace"
ok "meanwhile it is ready"
on_hub2 get_token "${ES[@]}"
assert_eq "$ES1_KID" "$(jwt_header "$TOKEN" | jq -r .kid)" "and signs with the replaced key"
exp=$(jwt_claims "$TOKEN" | jq .exp)
ra=$(sql "SELECT extract(epoch FROM retire_after)::bigint FROM renkei.signing_keys WHERE kid = '$ES1_KID'")
assert_lt "$exp" "$((ra - 29))" "a token that expires before the key leaves the JWKS"
NGSI_AUTH "$TOKEN"
assert_status 200 "which the node with the new file accepts"
# the grace over: as if the switch were ten minutes ago (the key published twenty more,
# so what stops it is the grace, not the token's end)
sql "UPDATE renkei.signing_keys SET retiring_at = now() - interval '10 minutes', retire_after = now() + interval '20 minutes' WHERE kid = '$ES1_KID'" >/dev/null
poll 10 bash -c "curl -s '$HUB2_URL/readyz' | grep -q 'was replaced by another node'" ||
  fail "the node did not go not ready after its grace"
ok "after its grace it is not ready, and says why"
on_hub2 token_basic "${ES[@]}"
assert_oauth_error 503 temporarily_unavailable "it issues no token that would outlive the key's publication"
on_hub2 NGSI_AUTH "$T_ES"
assert_status 200 "it still verifies tokens of the keys it holds"
hub2_stop

# ------------------------------------------------------------------ a key written into the database
# someone who can write the table (an injection as the service role) adds a
# row of their own RSA key as if a node held it in a file: no node trusts
# it, since its MAC is keyed by the master secret's root
newkey "$KD/evil.pem" -algorithm RSA -pkeyopt rsa_keygen_bits:2048
EVIL_KID=$(thumbprint "$KD/evil.pem")
n=$(openssl rsa -in "$KD/evil.pem" -noout -modulus 2>/dev/null | cut -d= -f2)
EVIL_JWK=$(printf '{"kty":"RSA","e":"AQAB","n":"%s"}' "$(unhex "$n" | b64url_encode)")
forge() { # forge MAC_SQL: add the row, then a token of its key with a real token's claims
  psql "$RENKEI_DB" -XqAt -v ON_ERROR_STOP=1 >/dev/null <<SQL
BEGIN;
SET LOCAL ROLE renkei_service;
SELECT set_config('renkei.tenant', '*', true);
INSERT INTO renkei.signing_keys (kid, alg, public_jwk, private_sealed, state, held, public_mac,
                                 retiring_at, retire_after)
VALUES ('$EVIL_KID', 'RS256', '$EVIL_JWK', NULL, 'retiring', 'file', $1, now(), now() + interval '1 hour');
COMMIT;
SQL
  local h p
  h=$(printf '{"alg":"RS256","kid":"%s","typ":"at+jwt"}' "$EVIL_KID" | b64url_encode)
  p=$(jwt_claims "$T_RS" | jq -c '.scope = "ngsi.read ngsi.write"' | tr -d '\n' | b64url_encode)
  FORGED=$h.$p.$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -sign "$KD/evil.pem" -binary | b64url_encode)
}
forge "'\\x$(printf '%064d' 0)'::bytea"
poll 10 grep -q "signing key $EVIL_KID held in a file is not trusted: its MAC does not verify" "$HUB_LOG" ||
  fail "the hub did not refuse the row: $(tail -3 "$HUB_LOG")"
ok "a row without the hub's MAC is not trusted (and the log says so)"
NGSI_AUTH "$FORGED"
assert_status 401 "a token signed with that key is refused"
http GET /oauth2/jwks
assert_jq "[.keys[].kid] | index(\"$EVIL_KID\") == null" "$HTTP_BODY" "and the key is not published"
check "(the forged token's signature itself is valid for that key)" verify_with "$KD/evil.pem" "$FORGED"
# control: the same row with the MAC a hub would write (computed here from
# the secret file's root, which the attacker lacks) is trusted, and then the
# forged token passes: the MAC is what stopped it
if [[ $(head -n 1 "$tmpdir/secret") == "renkei-secret 2" ]]; then
  root_hex=$(sed -n 's/^root=//p' "$tmpdir/secret" | b64url_decode | hexof)
else
  root_hex=$(hexof <"$tmpdir/secret")
fi
mac_key=$(openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt "hexkey:$root_hex" -kdfopt salt:renkei \
  -kdfopt info:renkei.authz.file-key.v1 HKDF | tr -d ':' | tr 'A-F' 'a-f')
mac=$(printf '%s\nRS256' "$EVIL_KID" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$mac_key" -binary | hexof)
sql "DELETE FROM renkei.signing_keys WHERE kid = '$EVIL_KID'" >/dev/null
forge "'\\x$mac'::bytea"
jwks_lists() { http GET /oauth2/jwks && jq -e "[.keys[].kid] | index(\"$1\") != null" <<<"$HTTP_BODY" >/dev/null; }
poll 10 jwks_lists "$EVIL_KID" || fail "the control row with a right MAC was not taken"
NGSI_AUTH "$FORGED"
assert_status 200 "control: with the MAC only the root can make, the row is trusted"
sql "UPDATE renkei.signing_keys SET state = 'retired', retire_after = now() WHERE kid = '$EVIL_KID'" >/dev/null
poll 10 bash -c "! curl -s '$HUB_URL/oauth2/jwks' | grep -q '$EVIL_KID'" || fail "the control key stayed published"

# ------------------------------------------------------------------ the audit checkpoint key in a file
hub_stop
newkey "$KD/audit.pem" -algorithm EC -pkeyopt ec_paramgen_curve:P-256
AUDIT_KID=audit-$(thumbprint "$KD/audit.pem")
DB_AUDIT=$(sql "SELECT kid FROM renkei.audit_keys WHERE state = 'active'")
RUN_TIMEOUT=10 run_renkei RENKEI_LISTEN=127.0.0.1:0 RENKEI_AUDIT_KEY_FILE="$KD/rs1.pem" serve
assert_eq 1 "$RUN_STATUS" "an RSA key as the audit key: refused"
assert_match "RENKEI_AUDIT_KEY_FILE: .*holds an RSA key" "$RUN_ERR" "naming the variable"
hub_start RENKEI_ISSUER="$ISSUER" RENKEI_SIGNING_KEY_FILE="$FILES2" RENKEI_AUDIT_KEY_FILE="$KD/audit.pem"
rows=$(sql "SELECT kid || ' ' || held || ' ' || (private_sealed IS NULL) || ' ' || state FROM renkei.audit_keys ORDER BY created_at")
assert_match "$AUDIT_KID file true active" "$rows" "the file's key is the active checkpoint key, its private half in no row"
assert_eq retired "$(sql "SELECT state FROM renkei.audit_keys WHERE kid = '$DB_AUDIT'")" "the database's key retired (kept, published)"
http GET /oauth2/jwks
assert_jq "[.keys[].kid] | index(\"$AUDIT_KID\") and index(\"$DB_AUDIT\")" "$HTTP_BODY" "the JWKS publishes both"
AUD=(RENKEI_AUDIT_KEY_FILE="$KD/audit.pem")
run_renkei "${AUD[@]}" audit export --checkpoint "$tmpdir/cp.json" --jwks "$tmpdir/ajwks.json"
assert_eq 0 "$RUN_STATUS" "audit export with a checkpoint signed now (the command reads the file) [$RUN_ERR]"
printf '%s\n' "$RUN_OUT" >"$tmpdir/all.jsonl"
assert_eq "$AUDIT_KID" "$(jq -r .kid "$tmpdir/cp.json")" "the checkpoint is signed by the file's key"
run_renkei -u RENKEI_DB -u RENKEI_SECRET_FILE audit verify-file "$tmpdir/all.jsonl" --checkpoint "$tmpdir/cp.json" \
  --jwks "$tmpdir/ajwks.json" --json
assert_eq 0 "$RUN_STATUS" "and it verifies offline with the exported JWKS [$RUN_ERR]"
run_renkei "${AUD[@]}" audit rotate-key
assert_eq 1 "$RUN_STATUS" "audit rotate-key leaves a key held in a file alone"
assert_match "held in RENKEI_AUDIT_KEY_FILE" "$RUN_ERR" "and says how to rotate it"
ev=$(sql "SELECT canonical FROM renkei.audit_entries WHERE kind = 'audit.key_rotate' AND canonical::jsonb -> 'detail' ->> 'held' = 'file'")
assert_jq ".detail.created == \"$AUDIT_KID\" and .detail.retired == [\"$DB_AUDIT\"]" "$ev" "the switch is an audit event"
# a row of someone's own key, as if held in a file, without the MAC
newkey "$KD/evil-audit.pem" -algorithm EC -pkeyopt ec_paramgen_curve:P-256
EA_KID=audit-$(thumbprint "$KD/evil-audit.pem")
der=$(openssl pkey -in "$KD/evil-audit.pem" -pubout -outform DER 2>/dev/null | hexof)
xy=${der: -128}
EA_JWK=$(printf '{"kty":"EC","crv":"P-256","x":"%s","y":"%s"}' "$(unhex "${xy:0:64}" | b64url_encode)" "$(unhex "${xy:64:64}" | b64url_encode)")
psql "$RENKEI_DB" -XqAt -v ON_ERROR_STOP=1 >/dev/null <<SQL
BEGIN;
SET LOCAL ROLE renkei_service;
SELECT set_config('renkei.tenant', '*', true);
INSERT INTO renkei.audit_keys (kid, public_jwk, private_sealed, state, held, public_mac)
VALUES ('$EA_KID', '$EA_JWK', NULL, 'retired', 'file', '\\x$(printf '%064d' 0)'::bytea);
COMMIT;
SQL
poll 10 grep -q "audit key $EA_KID held in a file is not trusted: its MAC does not verify" "$HUB_LOG" ||
  fail "the audit key row without a MAC was not refused"
ok "an audit key row without the hub's MAC is not trusted"
http GET /oauth2/jwks
assert_jq "[.keys[].kid] | index(\"$EA_KID\") == null" "$HTTP_BODY" "nor published"

run_renkei audit verify
check "the audit log verifies" test "$RUN_STATUS" = 0
hub_stop
ok "signing keys held in files"
