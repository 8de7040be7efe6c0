#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Attacks with bearer tokens on the hub's resource APIs, against the running
# hub: each forged, stolen, stale or misdirected token is refused with 401
# and a Bearer invalid_token challenge at the NGSI API, the admin API and the
# audit API alike, while the genuine token keeps working there. (The code
# flow's attacks are in test_oidc_attacks.sh, the admin API's first ones in
# test_authz_admin_api.sh, client assertions in test_authz_private_key_jwt.sh,
# brute force and floods in test_authz_throttle.sh.)
#
# Where each attack comes from:
#   alg none in four spellings, with and without a signature
#                                   RFC 8725 §2.1, §3.1; RFC 7518 §3.6
#   HS256 keyed with the hub's EC or RSA public key (PEM, DER, JWK forms)
#                                   RFC 8725 §2.1, §3.1 (key confusion)
#   the header's alg against the key's type: RS256 naming the EC key, ES256
#   naming the RSA key; ES384, ES512, PS256, EdDSA over the genuine bytes
#                                   RFC 8725 §3.1 ("each key used with
#                                   exactly one algorithm")
#   keys the token brings along: jwk, jku, x5u (a listener records any
#   fetch: the hub must not fetch), x5c (a self-signed certificate)
#                                   RFC 8725 §3.10 (do not trust what the
#                                   token says about its key); RFC 7515
#                                   §4.1.2-4.1.6; RFC 9700 §4.10
#   kid made to inject: a path, SQL, 2 KB, an unknown id
#                                   RFC 8725 §3.10 ("kid" is untrusted input)
#   crit naming an extension        RFC 7515 §4.1.11 (a well-signed crit
#                                   token: tests/unit/test_core_jose.c)
#   a genuine signature over other claims (another tenant, more scope)
#                                   RFC 8725 §3.2 (validate all)
#   a token of the same keys from a hub with another issuer
#                                   RFC 8725 §3.8 (issuer validation)
#   a token for another audience    RFC 8725 §3.9, RFC 9700 §2.3, §4.10.2,
#                                   RFC 9068 §4, RFC 8707
#   an expired token; a token issued in the future (a hub whose clock is
#   2 h behind or 1 h ahead, through authz_lib's time-shift shim: the same
#   keys and issuer)
#                                   RFC 7519 §4.1.4, §4.1.6; RFC 9068 §4
#   a revoked token; the token of a disabled client
#                                   RFC 7009 §2; RFC 9700 §2.2 (tokens die
#                                   with their grant)
#   the token in the URL or a form body; two Authorization headers (400:
#   RFC 9110 §5.3, not a list); the scheme in lower case (accepted: RFC
#   9110 §11.1)
#                                   RFC 6750 §2.3, §5.3; RFC 9700 §4.3.2
#   scope narrowing: a read token cannot write   RFC 9700 §2.3
#   the password grant              RFC 9700 §2.4 (must not be used)
#   malformed and oversized tokens  robustness: 401, never a 5xx
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/ngsi_lib.sh"

RUN_TIMEOUT=20
ngsi_setup
client_add --tenant takamatsu --name tk-all --grant client_credentials \
  --scope "ngsi.read ngsi.write tenant.admin audit.read" --audience https://api.takamatsu.example
ALL=("$CID" "$CSECRET")
get_token "${ALL[@]}"
GOOD=$TOKEN
NGSI_TOKEN=$TOK_TK
ngsi_json POST /v2/entities '{"id": "WL1", "type": "WaterLevel", "level": {"value": 1.5}}'
assert_status 201 "takamatsu has an entity"

# at_all TOKEN [CURL-ARGS...]: the token at the three APIs; STATUSES gets
# "ngsi admin audit", WWW_AUTH the three challenges (one a line), BODIES
# what they answered
at_all() {
  local tok=$1 path
  shift
  STATUSES= WWW_AUTH= BODIES=
  for path in /v2/entities?type=WaterLevel /admin/v1/clients /audit/v1/entries?limit=5; do
    http GET "$path" -H "Authorization: Bearer $tok" "$@"
    STATUSES+="${STATUSES:+ }$HTTP_STATUS"
    WWW_AUTH+="$(header WWW-Authenticate)"$'\n'
    BODIES+="$HTTP_BODY"$'\n'
  done
}
# refused MSG TOKEN [CURL-ARGS...]: 401 with error="invalid_token" at all three,
# and nothing of takamatsu's in the answers
refused() {
  local msg=$1
  shift
  at_all "$@"
  assert_eq "401 401 401" "$STATUSES" "$msg: 401 at NGSI, admin and audit"
  assert_eq 3 "$(grep -c '^Bearer .*error="invalid_token"' <<<"$WWW_AUTH")" "$msg: a Bearer invalid_token challenge each"
  assert_no_match 'WL1|tk-all|"seq"' "$BODIES" "$msg: no data"
}

at_all "$GOOD"
assert_eq "200 200 200" "$STATUSES" "the genuine token reads at NGSI, admin and audit"
assert_match 'WL1' "$BODIES" "and gets takamatsu's entity"

# the parts of the genuine token and the hub's keys
G_HDR=$(jwt_header "$GOOD")
G_CLAIMS=$(jwt_claims "$GOOD")
G_SIG=$(cut -d. -f3 <<<"$GOOD")
ES_KID=$(jq -r .kid <<<"$G_HDR")
http GET /oauth2/jwks
JWKS=$HTTP_BODY
RS_KID=$(jq -r '.keys[] | select(.alg == "RS256") | .kid' <<<"$JWKS" | head -n 1)
[[ -n $RS_KID && -n $ES_KID ]] || fail "the JWKS lacks an ES256 or an RS256 key: $JWKS"
# a token from header and claims (JSON) and a signature part as given
mk() { printf '%s.%s.%s' "$(printf '%s' "$1" | b64url_encode)" "$(printf '%s' "$2" | b64url_encode)" "$3"; }
# the claims with a jti of their own (no cache of verified tokens can help)
claims() { jq -c --arg n "$RANDOM$RANDOM" '.jti = "forged-\($n)"'"${1:+ | $1}" <<<"$G_CLAIMS"; }

# ------------------------------------------------------ algorithm verification

for alg in none None NONE nOnE; do
  refused "alg $alg, no signature" "$(mk "{\"typ\":\"at+jwt\",\"alg\":\"$alg\",\"kid\":\"$ES_KID\"}" "$(claims)" "")"
done
refused "alg none with the genuine signature" "$(mk '{"typ":"at+jwt","alg":"none"}' "$G_CLAIMS" "$G_SIG")"

# HS256 keyed with the hub's public keys, as PEM, DER and JWK
es_jwk=$(jq -c --arg k "$ES_KID" '.keys[] | select(.kid == $k)' <<<"$JWKS")
x=$(jq -r .x <<<"$es_jwk" | b64url_decode | _hex)
y=$(jq -r .y <<<"$es_jwk" | b64url_decode | _hex)
printf '3059301306072a8648ce3d020106082a8648ce3d03010703420004%s%s' "$x" "$y" | _unhex >"$tmpdir/es.der"
openssl pkey -pubin -inform DER -in "$tmpdir/es.der" -out "$tmpdir/es.pem" 2>/dev/null || fail "cannot make the PEM of the hub's EC key"
rs_jwk=$(jq -c --arg k "$RS_KID" '.keys[] | select(.kid == $k)' <<<"$JWKS")
printf 'asn1=SEQUENCE:pubkey\n[pubkey]\nn=INTEGER:0x%s\ne=INTEGER:0x%s\n' \
  "$(jq -r .n <<<"$rs_jwk" | b64url_decode | _hex | tr a-f A-F)" \
  "$(jq -r .e <<<"$rs_jwk" | b64url_decode | _hex | tr a-f A-F)" >"$tmpdir/rs.cnf"
openssl asn1parse -genconf "$tmpdir/rs.cnf" -out "$tmpdir/rs.der" >/dev/null
openssl rsa -RSAPublicKey_in -inform DER -in "$tmpdir/rs.der" -pubout -out "$tmpdir/rs.pem" 2>/dev/null ||
  fail "cannot make the PEM of the hub's RSA key"
hs256() { # hs256 KID HEXKEY → a token
  local signing
  signing="$(printf '{"typ":"at+jwt","alg":"HS256","kid":"%s"}' "$1" | b64url_encode).$(claims | b64url_encode)"
  printf '%s.%s' "$signing" "$(printf '%s' "$signing" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$2" -binary | b64url_encode)"
}
refused "HS256 keyed with the EC key's PEM" "$(hs256 "$ES_KID" "$(_hex <"$tmpdir/es.pem")")"
refused "HS256 keyed with the EC key's DER" "$(hs256 "$ES_KID" "$(_hex <"$tmpdir/es.der")")"
refused "HS256 keyed with the EC key's JWK" "$(hs256 "$ES_KID" "$(printf '%s' "$es_jwk" | _hex)")"
refused "HS256 keyed with the RSA key's PEM" "$(hs256 "$RS_KID" "$(_hex <"$tmpdir/rs.pem")")"

# the header's alg against the key's type, signed with keys of mine
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmpdir/my-rs.pem" 2>/dev/null
MY_EC=$(ec_jwk "$tmpdir/my-ec.pem" mine-1)
refused "RS256 under the EC key's kid (signed with my RSA key)" \
  "$(jws_sign RS256 "$tmpdir/my-rs.pem" "{\"typ\":\"at+jwt\",\"alg\":\"RS256\",\"kid\":\"$ES_KID\"}" "$(claims)")"
refused "ES256 under the RSA key's kid (signed with my EC key)" \
  "$(jws_sign ES256 "$tmpdir/my-ec.pem" "{\"typ\":\"at+jwt\",\"alg\":\"ES256\",\"kid\":\"$RS_KID\"}" "$(claims)")"
for alg in ES384 ES512 PS256 EdDSA RS256 HS256 'ES256 ' es256; do
  refused "the genuine bytes under alg \"$alg\"" \
    "$(mk "$(jq -c --arg a "$alg" '.alg = $a' <<<"$G_HDR")" "$G_CLAIMS" "$G_SIG")"
done

# ------------------------------------------------ keys the token brings along

# a listener for jku and x5u: any request the hub makes lands in fetched.log
node -e '
  const http = require("node:http"), fs = require("node:fs");
  const jwks = JSON.stringify({ keys: [JSON.parse(process.argv[1])] });
  http.createServer((q, r) => {
    fs.appendFileSync(process.argv[2], q.method + " " + q.url + "\n");
    r.setHeader("Content-Type", "application/json");
    r.end(jwks);
  }).listen(0, "127.0.0.1", function () { fs.writeFileSync(process.argv[3], String(this.address().port)); });
' "$MY_EC" "$tmpdir/fetched.log" "$tmpdir/listener.port" &
LISTENER=$!
: >"$tmpdir/fetched.log"
poll 50 test -s "$tmpdir/listener.port" || fail "the jku listener did not start"
LURL=http://127.0.0.1:$(cat "$tmpdir/listener.port")
mine() { # mine HEADER-MEMBERS-JSON → my EC key's signature over the claims
  jws_sign ES256 "$tmpdir/my-ec.pem" "$(jq -c '{typ: "at+jwt", alg: "ES256"} + .' <<<"$1")" "$(claims)"
}
refused "my key in the header (jwk), under the hub's kid" "$(mine "{\"kid\":\"$ES_KID\",\"jwk\":$MY_EC}")"
refused "my key in the header (jwk), under its own kid" "$(mine "{\"kid\":\"mine-1\",\"jwk\":$MY_EC}")"
refused "jku pointing at my JWKS" "$(mine "{\"kid\":\"mine-1\",\"jku\":\"$LURL/jwks.json\"}")"
refused "jku pointing at my JWKS, under the hub's kid" "$(mine "{\"kid\":\"$ES_KID\",\"jku\":\"$LURL/jwks.json\"}")"
refused "x5u pointing at my certificate" "$(mine "{\"kid\":\"mine-1\",\"x5u\":\"$LURL/cert.pem\"}")"
openssl req -x509 -new -key "$tmpdir/my-ec.pem" -subj "/CN=127.0.0.1" -days 1 -outform DER \
  -out "$tmpdir/my.crt" 2>/dev/null || fail "openssl cannot make a certificate"
refused "x5c carrying my self-signed certificate" \
  "$(mine "{\"kid\":\"$ES_KID\",\"x5c\":[\"$(base64 -w0 <"$tmpdir/my.crt")\"]}")"
assert_eq "" "$(cat "$tmpdir/fetched.log")" "the hub fetched nothing from jku or x5u"
kill "$LISTENER" 2>/dev/null || true
wait "$LISTENER" 2>/dev/null || true

refused "kid naming a file" "$(mine '{"kid":"../../../../../dev/null"}')"
refused "kid carrying SQL" "$(mine "{\"kid\":\"x' OR '1'='1\"}")"
refused "a 2 KB kid" "$(mine "{\"kid\":\"$(head -c 2048 /dev/zero | tr '\0' k)\"}")"
refused "an unknown kid" "$(mine '{"kid":"k_unknown00000000000"}')"
# (these two fail on the signature as well: a well-signed token with crit
# is the unit test's, tests/unit/test_core_jose.c)
refused "crit naming an extension" "$(mine "{\"kid\":\"$ES_KID\",\"crit\":[\"exp\"]}")"
refused "crit with b64 false (RFC 7797)" "$(mine "{\"kid\":\"$ES_KID\",\"crit\":[\"b64\"],\"b64\":false}")"

# ------------------------------------------------------------- the claims

refused "the genuine signature over kanonji's tenant" "$(mk "$G_HDR" "$(jq -c '.tenant = "kanonji"' <<<"$G_CLAIMS")" "$G_SIG")"
refused "the genuine signature over a wider scope" "$(mk "$G_HDR" "$(jq -c '.scope += " admin"' <<<"$G_CLAIMS")" "$G_SIG")"
refused "the genuine signature over a later exp" "$(mk "$G_HDR" "$(jq -c '.exp += 86400' <<<"$G_CLAIMS")" "$G_SIG")"

# hubs on the same database, so with the same signing keys: one with another
# issuer, then this hub's issuer with its clock 2 h behind, then 1 h ahead
hub2_start RENKEI_ISSUER=https://other-hub.example
on_hub2 get_token "${ALL[@]}"
FOREIGN=$TOKEN
assert_eq "$ES_KID" "$(jwt_header "$FOREIGN" | jq -r .kid)" "the other issuer's hub signs with the same key"
refused "a token of the same keys with another issuer" "$FOREIGN"
hub2_stop
shifted_token() { # shifted_token SECONDS → TOKEN from a hub whose clock is SECONDS off
  timeshift_env "$1"
  hub2_start RENKEI_ISSUER="$HUB_URL" "${TIMESHIFT_ENV[@]}"
  on_hub2 get_token "${ALL[@]}"
  hub2_stop
}
shifted_token -7200
STALE=$TOKEN
assert_lt "$(jwt_claims "$STALE" | jq '.exp')" "$(($(date +%s) - 3600))" "the hub 2 h behind issued a token that expired long ago"
refused "an expired token (this hub's issuer and key)" "$STALE"
shifted_token 3600
EARLY=$TOKEN
assert_lt "$(($(date +%s) + 1800))" "$(jwt_claims "$EARLY" | jq '.iat')" "the hub 1 h ahead issued a token of the future"
refused "a token issued an hour from now" "$EARLY"

get_token "${ALL[@]}" --data-urlencode 'resource=https://api.takamatsu.example'
assert_eq '"https://api.takamatsu.example"' "$(jwt_claims "$TOKEN" | jq -c .aud)" "a token for the town's own API"
refused "a token for another audience (the town's API)" "$TOKEN"

# -------------------------------------------------- revoked, disabled client

get_token "${ALL[@]}"
REV=$TOKEN
at_all "$REV"
assert_eq "200 200 200" "$STATUSES" "a second token works"
revoke "${ALL[@]}" "$REV"
assert_status 200 "revoked"
refused "a revoked token" "$REV"
client_add --tenant takamatsu --name tk-gone --grant client_credentials --scope "ngsi.read tenant.admin audit.read"
GONE=("$CID" "$CSECRET")
get_token "${GONE[@]}"
GONE_TOK=$TOKEN
at_all "$GONE_TOK"
assert_eq "200 200 200" "$STATUSES" "another client's token works"
run_renkei client disable "${GONE[0]}"
assert_eq 0 "$RUN_STATUS" "client disable [$RUN_ERR]"
poll 30 bash -c "[[ \$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $GONE_TOK' '$HUB_URL/v2/entities') == 401 ]]" ||
  fail "the disabled client's token still reads"
refused "the token of a disabled client" "$GONE_TOK"

# ------------------------------------------------ where the token travels

http GET "/v2/entities?type=WaterLevel&access_token=$GOOD"
assert_status 401 "the token in the query string is not taken"
http POST /v2/op/query -H 'Content-Type: application/x-www-form-urlencoded' --data-urlencode "access_token=$GOOD"
assert_status 401 "the token in a form body is not taken"
http GET /v2/entities -H "Authorization: Bearer $GOOD" -H "Authorization: Bearer $GOOD"
assert_status 400 "two Authorization headers are refused (the hub and a proxy could read different ones)"
http GET /v2/entities -H "Authorization: Bearer $GOOD" -H "Authorization: Bearer $REV"
assert_status 400 "two different tokens are refused as well"
http GET /v2/entities?type=WaterLevel -H "Authorization: bearer $GOOD"
assert_status 200 "the scheme is case-insensitive (RFC 9110 §11.1)"
http GET /v2/entities?type=WaterLevel -H "Authorization: Basic $(printf '%s:%s' "${ALL[@]}" | base64 -w0)"
assert_status 401 "client credentials are not a bearer token"

# ------------------------------------------------ scope, grants, malformed

get_token "${ALL[@]}" --data-urlencode 'scope=ngsi.read'
NGSI_TOKEN=$TOKEN
ngsi_json POST /v2/entities '{"id": "WL2", "type": "WaterLevel"}'
assert_status 403 "a read-only token cannot write"
assert_match '^Bearer realm="renkei", error="insufficient_scope", scope="ngsi.write"$' "$(header WWW-Authenticate)" \
  "and is told insufficient_scope, naming the scope it lacks (RFC 6750 §3.1)"
http GET /admin/v1/clients -H "Authorization: Bearer $TOKEN"
assert_status 403 "nor administer"
http POST /oauth2/token "${FORM[@]}" -u "${ALL[0]}:${ALL[1]}" --data 'grant_type=password&username=x&password=y'
assert_oauth_error 400 unsupported_grant_type "the password grant does not exist (RFC 9700 §2.4)"

refused "two parts" "$(cut -d. -f1-2 <<<"$GOOD")"
refused "four parts" "$GOOD.$G_SIG"
refused "not base64url" "$(mk "$G_HDR" "$G_CLAIMS" '!!!!')"
refused "claims that are an array" "$(printf '%s.%s.%s' "$(printf '%s' "$G_HDR" | b64url_encode)" "$(printf '[1]' | b64url_encode)" "$G_SIG")"
# (refused for its signature too: that the parser refuses duplicate names is
# test_core_jose's)
refused "duplicate claim names" "$(printf '%s.%s.%s' "$(printf '%s' "$G_HDR" | b64url_encode)" \
  "$(jq -c . <<<"$G_CLAIMS" | sed 's/^{/{"tenant":"kanonji",/' | b64url_encode)" "$G_SIG")"
http GET /v2/entities -H "Authorization: Bearer $(head -c 20000 /dev/zero | tr '\0' a).$G_SIG.$G_SIG"
assert_ge "$HTTP_STATUS" 400 "a 20 KB token is refused ($HTTP_STATUS)"
assert_lt "$HTTP_STATUS" 500 "a 20 KB token: not a server error"

# ------------------------------------------------------------- the end

at_all "$GOOD"
assert_eq "200 200 200" "$STATUSES" "the genuine token still works everywhere"
check "the hub is alive" alive "$HUB_PID"
assert_no_match "$(cut -d. -f3 <<<"$GOOD")" "$(cat "$HUB_LOG")" "no token's signature in the hub's log"
ok "bearer-token attacks at the resource APIs"
