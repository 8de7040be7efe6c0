# shellcheck shell=bash
# shellcheck disable=SC2034  # CODE, AT, SAW_LOGIN...: for the tests that source this
# Helpers for the OpenID Connect tests (test_oidc_*.sh), sourced after lib.sh
# and authz_lib.sh.  Not a test itself (CMakeLists.txt registers test_*.sh
# only).  A "browser" is a curl cookie jar; the code flow runs through the
# hub's real pages: /oauth2/authorize -> /login (form: hidden csrf and r) ->
# /consent (form) -> the client's redirect URI with the code.
#
#   OIDC_ENV                     NAME=VALUE for the binary: cheap scrypt
#   oidc_hub_start [NAME=VALUE]...       hub_start with OIDC_ENV
#   resident_add TENANT LOGIN NAME EMAIL PASSWORD
#                                renkei resident add (password on stdin);
#                                RID = the resident's common ID (from the DB)
#   renkei_cli ARGS...           run_renkei with OIDC_ENV, must exit 0
#   browser NAME                 later requests use cookie jar NAME (new: empty)
#   jar_get NAME, jar_set NAME VALUE, jar_del NAME   a cookie of the browser
#   ohttp METHOD PATH [CURL ARGS...]      like lib.sh's http (HTTP_STATUS,
#                                HTTP_HEADERS, HTTP_BODY), with fewer processes,
#                                and the answer goes to SEEN
#   bhttp METHOD PATH|URL [CURL ARGS...]  ohttp with the browser's jar, never
#                                following redirects; LOCATION = Location
#   hdr NAME                     header NAME of the last response (like
#                                header, without a process)
#   set_cookies                  the Set-Cookie lines of the last response
#   jwt_json TOKEN 1|2           the decoded header (1) or claims (2)
#   urlenc S, urldec S, qparam URL NAME  URL encoding and query parameters
#   pkce_new                     VERIFIER (43 chars) and CHALLENGE (S256)
#   authorize CLIENT_ID REDIRECT_URI SCOPE [NAME=VALUE | +NAME=VALUE | -NAME]...
#                                GET /oauth2/authorize in the browser with
#                                response_type=code, a new PKCE pair, STATE and
#                                NONCE (random); NAME=VALUE replaces or adds,
#                                +NAME=VALUE adds once more, -NAME drops
#   form_value NAME              value of input NAME in the last page
#   form_scopes                  the scope values of the last (consent) page
#   login_post LOGIN PASSWORD [CURL ARGS...]  POST the sign-in form of the page
#   consent_post DECISION [SCOPE...]  POST the consent form of the page; no
#                                SCOPE: every scope the page offers
#   flow_to_code CLIENT_ID REDIRECT_URI SCOPE LOGIN PASSWORD [AUTHORIZE ARGS...]
#                                the whole front channel; CODE, and SAW_LOGIN,
#                                SAW_CONSENT (0/1) for the pages met on the way
#   expect_code REDIRECT_URI MSG the last response is 303 to REDIRECT_URI with
#                                a code: CODE, RSTATE, RISS
#   expect_redirect_error REDIRECT_URI ERROR MSG  303 to REDIRECT_URI with
#                                error=ERROR (and iss, and state if sent)
#   expect_error_page STATUS MSG an HTML error page, no Location
#   redeem CLIENT_ID SECRET CODE VERIFIER REDIRECT_URI [CURL ARGS...]
#                                authorization_code grant (SECRET empty: a public
#                                client, client_id in the form); on 200 AT, IDT, RT
#   redeem_ok ...                redeem that must give 200
#   refresh CLIENT_ID SECRET RT [CURL ARGS...]   refresh_token grant
#   userinfo TOKEN               GET /oauth2/userinfo with the bearer token
#   at_hash TOKEN                OIDC at_hash of TOKEN (SHA-256, left half)
#   seen_log                     append the last response to SEEN (all answers)
#   assert_unseen MSG TEXT...    no TEXT in SEEN, nor in the decoded parts of
#                                any JWT in SEEN
#   expect_oauth_error STATUS ERROR MSG   assert_oauth_error in one jq
#   page_headers_ok MSG          the security headers every hub page carries
#   svc_sql TENANT QUERY         QUERY as renkei_service with renkei.tenant
#   dbq QUERY, dbval QUERY       DBQ = QUERY's output (superuser), from one
#                                long-lived psql; dbval prints it

# shellcheck disable=SC2054  # one NAME=VALUE, its commas are the value's
OIDC_ENV=(RENKEI_SCRYPT=ln=12,r=8,p=1)
SEEN=$tmpdir/seen.log
: >"$SEEN"
JAR=

oidc_hub_start() {
  hub_start "${OIDC_ENV[@]}" "$@"
  dbq "SELECT 1" # the long-lived psql starts here, in the test's own shell
}

renkei_cli() {
  run_renkei "${OIDC_ENV[@]}" "$@"
  if [[ $RUN_STATUS != 0 ]]; then
    fail "renkei $* exited $RUN_STATUS: stdout [$RUN_OUT] stderr [$RUN_ERR]"
  fi
}

resident_add() {
  local tenant=$1 login=$2 name=$3 email=$4 pw=$5 st=0
  _renkei_env "${OIDC_ENV[@]}" resident add --tenant "$tenant" --login "$login" --name "$name" \
    ${email:+--email "$email"} --password-stdin --json
  printf '%s\n' "$pw" | timeout "$RUN_TIMEOUT" env -i "${_env[@]}" "$RENKEI_BIN" "${_rest[@]}" \
    >"$tmpdir/run.out" 2>"$tmpdir/run.err" || st=$?
  if ((st != 0)); then
    fail "resident add $login exited $st: $(cat "$tmpdir/run.err")"
  fi
  RID=$(sql "SELECT id FROM renkei.residents WHERE login = '$login'")
  [[ $RID == r_* ]] || fail "resident $login has no common ID in the database"
}

# dbq QUERY: DBQ = the output of QUERY from one psql that lives as long as
# the test (a process per query costs more than the query); dbval QUERY
# prints it.
dbq() {
  if [[ -z ${DBQ_CO_PID:-} ]]; then
    coproc DBQ_CO { exec psql "$RENKEI_DB" -XqAt 2>&1; }
  fi
  local q=$1
  [[ $q == *\; ]] || q+=";"
  printf '%s\n\\echo __dbq_end__\n' "$q" >&"${DBQ_CO[1]}"
  DBQ=
  local line n=0
  while IFS= read -r -t 60 line <&"${DBQ_CO[0]}"; do
    if [[ $line == __dbq_end__ ]]; then return 0; fi
    if ((n++)); then DBQ+=$'\n'; fi
    DBQ+=$line
  done
  fail "dbq: no answer to [$1]"
}

dbval() {
  dbq "$1"
  printf '%s' "$DBQ"
}

svc_sql() {
  printf '%s\n' 'SET ROLE renkei_service;' "SELECT set_config('renkei.tenant', '$1', false) \\gset" "$2" |
    psql "$RENKEI_DB" -XqAt -v ON_ERROR_STOP=1
}

# ------------------------------------------------------------- browsers

browser() {
  JAR=$tmpdir/jar.$1
  [[ -f $JAR ]] || : >"$JAR"
}

jar_get() {
  awk -F'\t' -v n="$1" 'NF >= 7 && $6 == n { v = $7 } END { printf "%s", v }' "$JAR"
}

jar_del() {
  awk -F'\t' -v n="$1" '!(NF >= 7 && $6 == n)' "$JAR" >"$JAR.new"
  mv "$JAR.new" "$JAR"
}

jar_set() {
  jar_del "$1"
  printf '#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t0\t%s\t%s\n' "$1" "$2" >>"$JAR"
}

seen_log() {
  printf '%s\n%s\n%s\n' "$HTTP_STATUS" "$HTTP_HEADERS" "$HTTP_BODY" >>"$SEEN"
}

# (the tests make hundreds of requests, in parallel with others on busy
# machines: these helpers start as few processes as they can)
ohttp() {
  local method=$1 where=$2 rc=0 line
  shift 2
  HTTP_HEADERS_FILE=$tmpdir/http.headers
  HTTP_BODY_FILE=$tmpdir/http.body
  curl -sS --max-time 30 -X "$method" -D "$HTTP_HEADERS_FILE" -o "$HTTP_BODY_FILE" \
    -w '%{http_code}' "$@" "$HUB_URL$where" >"$tmpdir/http.status" 2>"$tmpdir/http.err" || rc=$?
  if ((rc != 0)); then
    fail "curl $method ${where:0:200} failed (exit $rc): $(<"$tmpdir/http.err")"
  fi
  IFS= read -r HTTP_STATUS <"$tmpdir/http.status" || true
  HTTP_BODY=
  IFS= read -r -d '' HTTP_BODY <"$HTTP_BODY_FILE" || true
  HTTP_BODY=${HTTP_BODY%$'\n'}
  HTTP_HEADERS=
  while IFS= read -r line; do
    line=${line%$'\r'}
    if [[ $line == HTTP/* ]]; then HTTP_HEADERS=; fi
    HTTP_HEADERS+=$line$'\n'
  done <"$HTTP_HEADERS_FILE"
  HTTP_HEADERS=${HTTP_HEADERS%$'\n'}
  seen_log
}

bhttp() {
  local method=$1 where=$2
  shift 2
  if [[ $where == "$HUB_URL"* ]]; then where=${where#"$HUB_URL"}; fi
  ohttp "$method" "$where" -b "$JAR" -c "$JAR" "$@"
  _hdr Location
  LOCATION=$HDR
}

# _hdr NAME: HDR = header NAME of the last response.
_hdr() {
  local line k n=${1,,}
  HDR=
  while IFS= read -r line; do
    k=${line%%:*}
    if [[ $line == *:* && ${k,,} == "$n" ]]; then
      HDR=${line#*:}
      HDR=${HDR#"${HDR%%[! $'\t']*}"}
      HDR=${HDR%"${HDR##*[! $'\t']}"}
    fi
  done <<<"$HTTP_HEADERS"
}

hdr() {
  _hdr "$1"
  printf '%s' "$HDR"
}

set_cookies() {
  local line
  while IFS= read -r line; do
    if [[ ${line,,} == set-cookie:* ]]; then printf '%s\n' "$line"; fi
  done <<<"$HTTP_HEADERS"
}

# _b64url S: base64 to base64url without padding.
_b64url() {
  local s=${1//+/-}
  s=${s//\//_}
  printf '%s' "${s%%=*}"
}

jwt_json() {
  local IFS=. p
  local -a parts
  read -r -a parts <<<"$1"
  p=${parts[$2 - 1]:-}
  p=${p//-/+}
  p=${p//_//}
  case $((${#p} % 4)) in
    2) p+="==" ;;
    3) p+="=" ;;
  esac
  printf '%s' "$p" | base64 -d 2>/dev/null
}

# _urlenc S: URLENC = S percent-encoded (all but the unreserved characters).
_urlenc() {
  URLENC=$1
  if [[ $URLENC =~ ^[A-Za-z0-9._~-]*$ ]]; then return; fi
  local LC_ALL=C s=$1 c i
  URLENC=
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9._~-]) URLENC+=$c ;;
      *)
        printf -v c '%%%02X' "'$c"
        URLENC+=$c
        ;;
    esac
  done
}

urlenc() {
  _urlenc "$1"
  printf '%s' "$URLENC"
}

urldec() {
  local s=${1//+/ }
  printf '%b' "${s//%/\\x}"
}

# _qparam URL NAME: QPARAM = the decoded value of NAME in URL's query
# (empty and status 1 when absent).
_qparam() {
  local q=$1 p s
  QPARAM=
  [[ $q == *\?* ]] || return 1
  q=${q#*\?}
  q=${q%%#*}
  local IFS='&'
  for p in $q; do
    if [[ ${p%%=*} == "$2" ]]; then
      s=${p#*=}
      s=${s//+/ }
      printf -v QPARAM '%b' "${s//%/\\x}"
      return 0
    fi
  done
  return 1
}

qparam() {
  _qparam "$1" "$2" || return 1
  printf '%s' "$QPARAM"
}

_B64URL_ALPHABET=ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_

pkce_new() {
  local i
  VERIFIER=
  for ((i = 0; i < 43; i++)); do VERIFIER+=${_B64URL_ALPHABET:SRANDOM % 64:1}; done
  CHALLENGE=$(printf '%s' "$VERIFIER" | openssl dgst -sha256 -binary | base64 -w0)
  CHALLENGE=${CHALLENGE//+/-}
  CHALLENGE=${CHALLENGE//\//_}
  CHALLENGE=${CHALLENGE%%=*}
}

at_hash() {
  _b64url "$(printf '%s' "$1" | openssl dgst -sha256 -binary | head -c 16 | base64 -w0)"
}

# authz_query [NAME=VALUE | +NAME=VALUE | -NAME]...: AUTHZ_QUERY, a query
# string (the first arguments are the defaults, later ones adjust them).
authz_query() {
  local -a names=() values=()
  local a n v i found
  for a in "$@"; do
    if [[ $a == -* ]]; then
      n=${a#-}
      for i in "${!names[@]}"; do
        if [[ ${names[$i]} == "$n" ]]; then unset "names[$i]" "values[$i]"; fi
      done
      continue
    fi
    local add=0
    if [[ $a == +* ]]; then add=1 a=${a#+}; fi
    n=${a%%=*} v=${a#*=} found=0
    if ((!add)); then
      for i in "${!names[@]}"; do
        if [[ ${names[$i]} == "$n" ]]; then values[i]=$v found=1; fi
      done
    fi
    if ((!found)); then names+=("$n") values+=("$v"); fi
  done
  AUTHZ_QUERY=
  for i in "${!names[@]}"; do
    _urlenc "${values[$i]}"
    AUTHZ_QUERY+="${AUTHZ_QUERY:+&}${names[$i]}=$URLENC"
  done
}

authorize() {
  local cid=$1 ru=$2 scope=$3
  shift 3
  pkce_new
  printf -v STATE 'st-%08x%08x' "$SRANDOM" "$SRANDOM"
  printf -v NONCE 'n-%08x%08x' "$SRANDOM" "$SRANDOM"
  authz_query response_type=code "client_id=$cid" "redirect_uri=$ru" "scope=$scope" \
    "state=$STATE" "nonce=$NONCE" "code_challenge=$CHALLENGE" code_challenge_method=S256 "$@"
  bhttp GET "/oauth2/authorize?$AUTHZ_QUERY"
}

_form_value() {
  local re="name=\"$1\" value=\"([^\"]*)\""
  FORM_VALUE=
  if [[ $HTTP_BODY =~ $re ]]; then FORM_VALUE=${BASH_REMATCH[1]}; fi
}

form_value() {
  _form_value "$1"
  printf '%s' "$FORM_VALUE"
}

form_scopes() {
  local s=$HTTP_BODY re='name="scope" value="([^"]*)"'
  while [[ $s =~ $re ]]; do
    printf '%s\n' "${BASH_REMATCH[1]}"
    s=${s#*"${BASH_REMATCH[0]}"}
  done
}

login_post() {
  local login=$1 pw=$2 csrf r
  shift 2
  _form_value csrf
  csrf=$FORM_VALUE
  _form_value r
  r=$FORM_VALUE
  bhttp POST /login "${FORM[@]}" --data-urlencode "csrf=$csrf" ${r:+--data-urlencode "r=$r"} \
    --data-urlencode "login=$login" --data-urlencode "password=$pw" "$@"
}

consent_post() {
  local decision=$1 csrf r s
  shift
  _form_value csrf
  csrf=$FORM_VALUE
  _form_value r
  r=$FORM_VALUE
  local -a scopes=("$@")
  if ((${#scopes[@]} == 0)); then mapfile -t scopes < <(form_scopes); fi
  local -a args=(--data-urlencode "csrf=$csrf" --data-urlencode "r=$r" --data-urlencode "decision=$decision")
  for s in "${scopes[@]}"; do args+=(--data-urlencode "scope=$s"); done
  bhttp POST /consent "${FORM[@]}" "${args[@]}"
}

expect_code() {
  local ru=$1 msg=${2:-code}
  assert_status 303 "$msg: 303 back to the client"
  [[ $LOCATION == "$ru?"* ]] || fail "$msg: Location [$LOCATION] is not $ru?..."
  _qparam "$LOCATION" code || fail "$msg: no code in [$LOCATION]"
  CODE=$QPARAM
  _qparam "$LOCATION" state || true
  RSTATE=$QPARAM
  _qparam "$LOCATION" iss || true
  RISS=$QPARAM
  ok "$msg: a code at the redirect URI"
}

expect_redirect_error() {
  local ru=$1 err=$2 msg=$3
  assert_status 303 "$msg: 303"
  [[ $LOCATION == "$ru?"* ]] || fail "$msg: Location [$LOCATION] is not $ru?..."
  _qparam "$LOCATION" error || true
  assert_eq "$err" "$QPARAM" "$msg: error=$err"
  _qparam "$LOCATION" iss || true
  assert_eq "$HUB_URL" "$QPARAM" "$msg: iss (RFC 9207)"
  if _qparam "$LOCATION" code; then fail "$msg: an error redirect carries a code"; fi
}

expect_error_page() {
  local st=$1 msg=$2
  assert_status "$st" "$msg: status $st"
  assert_eq "" "$(hdr Location)" "$msg: no Location (no redirect)"
  assert_eq "text/html; charset=utf-8" "$(hdr Content-Type)" "$msg: an HTML page"
}

flow_to_code() {
  local cid=$1 ru=$2 scope=$3 login=$4 pw=$5
  shift 5
  SAW_LOGIN=0 SAW_CONSENT=0
  authorize "$cid" "$ru" "$scope" "$@"
  assert_status 303 "authorize $cid: 303"
  if [[ $LOCATION == /login\?* ]]; then
    SAW_LOGIN=1
    bhttp GET "$LOCATION"
    assert_status 200 "the sign-in page"
    login_post "$login" "$pw"
  fi
  if [[ $LOCATION == /consent\?* ]]; then
    SAW_CONSENT=1
    bhttp GET "$LOCATION"
    assert_status 200 "the consent page"
    consent_post allow
  fi
  expect_code "$ru" "flow for $cid"
}

# _client_auth ID SECRET: curl arguments authenticating the client.
_client_auth() {
  if [[ -n $2 ]]; then
    CLIENT_AUTH=(-u "$1:$2")
  else
    CLIENT_AUTH=(--data-urlencode "client_id=$1")
  fi
}

# _tokens: AT, IDT, RT from a 200 token response.
_tokens() {
  AT='' IDT='' RT=''
  if [[ $HTTP_STATUS == 200 ]]; then
    IFS='|' read -r AT IDT RT < <(jq -r '[.access_token // "", .id_token // "", .refresh_token // ""] | join("|")' <<<"$HTTP_BODY")
  fi
}

redeem() {
  local id=$1 secret=$2 code=$3 verifier=$4 ru=$5
  shift 5
  _client_auth "$id" "$secret"
  ohttp POST /oauth2/token "${FORM[@]}" "${CLIENT_AUTH[@]}" --data grant_type=authorization_code \
    --data-urlencode "code=$code" --data-urlencode "code_verifier=$verifier" \
    --data-urlencode "redirect_uri=$ru" "$@"
  _tokens
}

redeem_ok() {
  redeem "$@"
  assert_status 200 "redeem the code ($1)"
}

refresh() {
  local id=$1 secret=$2 rt=$3
  shift 3
  _client_auth "$id" "$secret"
  ohttp POST /oauth2/token "${FORM[@]}" "${CLIENT_AUTH[@]}" --data grant_type=refresh_token \
    --data-urlencode "refresh_token=$rt" "$@"
  _tokens
}

userinfo() {
  ohttp GET /oauth2/userinfo -H "Authorization: Bearer $1"
}

assert_unseen() {
  local msg=$1 t
  shift
  grep -oE '[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*' "$SEEN" | sort -u |
    jq -Rr 'split(".")[0:2][] | gsub("-"; "+") | gsub("_"; "/") | . as $s
      | ($s + ("===" | .[0:((4 - ($s | length) % 4) % 4)])) | try @base64d catch ""' >"$SEEN.jwt"
  assert_ge "$(wc -l <"$SEEN.jwt")" 2 "$msg: (the JWTs of the answers are decoded)"
  for t in "$@"; do
    if grep -qF -e "$t" "$SEEN" "$SEEN.jwt"; then
      fail "$msg: [$t] appears: $(grep -hF -e "$t" "$SEEN" "$SEEN.jwt" | head -n 3)"
    fi
  done
  ok "$msg"
}

expect_oauth_error() {
  local status=$1 name=$2 msg=$3
  assert_status "$status" "$msg: status $status"
  _hdr Content-Type
  assert_match '^application/json(;.*)?$' "$HDR" "$msg: application/json"
  _hdr Cache-Control
  assert_eq "no-store" "$HDR" "$msg: Cache-Control: no-store"
  assert_json "keys == [\"error\", \"error_description\"] and .error == \"$name\" and (.error_description | test(\"^[ !#-\\\\[\\\\]-~]+\$\"))" \
    "$msg: error $name with a description (RFC 6749 §5.2)"
}

page_headers_ok() {
  local msg=$1 csp
  assert_eq "text/html; charset=utf-8" "$(hdr Content-Type)" "$msg: text/html; charset=utf-8"
  csp=$(hdr Content-Security-Policy)
  assert_match "frame-ancestors 'none'" "$csp" "$msg: CSP frame-ancestors 'none'"
  assert_no_match "unsafe-inline|unsafe-eval" "$csp" "$msg: CSP without unsafe-inline or unsafe-eval"
  assert_match "default-src 'none'" "$csp" "$msg: CSP default-src 'none'"
  assert_eq "DENY" "$(hdr X-Frame-Options)" "$msg: X-Frame-Options DENY"
  assert_match "no-store" "$(hdr Cache-Control)" "$msg: Cache-Control no-store"
  assert_eq "no-referrer" "$(hdr Referrer-Policy)" "$msg: Referrer-Policy no-referrer"
  assert_eq "nosniff" "$(hdr X-Content-Type-Options)" "$msg: X-Content-Type-Options nosniff"
  assert_no_match "<script|javascript:|on(load|click|error|submit)=" "$HTTP_BODY" "$msg: no script"
}
