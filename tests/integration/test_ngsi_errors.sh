#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The hosted NGSI-v2 store's errors, as Orion reports them: a JSON object
# {"error", "description"} with Content-Type application/json exactly, and
# the status and error name the NGSI-v2 specification fixes ("Error
# Responses": ParseError and BadRequest 400, NotFound 404, TooManyResults
# 409, Unprocessable 422, ContentLengthRequired 411, RequestEntityTooLarge
# 413, UnsupportedMediaType 415; 405 and 406 of HTTP), plus the hub's 401
# and 403.  Orion's identifier rules (1-256 printable ASCII without
# whitespace, & ? / # and the forbidden < > " ' = ; ( )) in ids, types and
# names, the forbidden characters in string values unless the attribute is
# TextUnrestricted, the Fiware-ServicePath rules of the Orion manual
# (service_path.md), bounds on list parameters, and Fiware-Service as a
# tenant name (multitenancy.md: read in lower case).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/ngsi_lib.sh"

RUN_TIMEOUT=30
ngsi_setup

hub_alive() {
  check "$1: the hub is still running" alive "$HUB_PID"
}

# ------------------------------------------------------------------ HTTP-level errors

http GET /v2/entities
assert_status 401 "GET /v2/entities without a token"
assert_eq "application/json" "$(header Content-Type)" "401: Content-Type application/json"
assert_json 'keys == ["description", "error"] and (.error | type == "string") and (.description | type == "string")' \
  "401: {error, description}"
assert_match '^Bearer' "$(header WWW-Authenticate)" "401: WWW-Authenticate: Bearer"
http GET /v2/entities -H 'Authorization: Bearer not.a.token'
assert_status 401 "GET /v2/entities with a malformed token"
http POST /v2/entities -H 'Content-Type: application/json' --data '{"id": "x"}'
assert_status 401 "POST /v2/entities without a token"
http GET /v2/types
assert_status 401 "GET /v2/types without a token"
http POST /v2/op/query -H 'Content-Type: application/json' --data '{}'
assert_status 401 "POST /v2/op/query without a token"

ngsi_create '{"id": "E1", "type": "T", "a": {"value": 1}}'
NGSI_TOKEN=$TOK_KJ_RO
ngsi GET /v2/entities/E1
assert_status 200 "a read-only token (ngsi.read) reads"
ngsi_json POST /v2/entities '{"id": "E2", "type": "T"}'
assert_error 403 Forbidden "a read-only token creating an entity"
ngsi_json PATCH /v2/entities/E1/attrs '{"a": {"value": 2}}'
assert_error 403 Forbidden "a read-only token updating an attribute"
ngsi_json POST /v2/op/update '{"actionType": "append", "entities": [{"id": "E3", "type": "T"}]}'
assert_error 403 Forbidden "a read-only token in op/update"
ngsi DELETE /v2/entities/E1
assert_error 403 Forbidden "a read-only token deleting an entity"
ngsi_json POST /v2/op/query '{}'
assert_status 200 "a read-only token in op/query (a read)"
NGSI_TOKEN=$TOK_KJ_WO
ngsi GET /v2/entities
assert_error 403 Forbidden "a write-only token (ngsi.write) listing entities"
ngsi GET /v2/entities/E1
assert_error 403 Forbidden "a write-only token reading an entity"
ngsi GET /v2/types
assert_error 403 Forbidden "a write-only token listing types"
NGSI_TOKEN=$TOK_KJ
ngsi GET '/v2/entities/E1?options=keyValues'
assert_json '. == {"id": "E1", "type": "T", "a": 1}' "the refused writes changed nothing, E2 and E3 do not exist"
ngsi GET '/v2/entities?id=E2,E3'
assert_json '. == []' "the refused creations created nothing"

ngsi GET /v2/entities/NoSuch
assert_error 404 NotFound "GET of a missing entity"
assert_json '.description == "The requested entity has not been found. Check type and id"' "404: Orion's description"

ngsi DELETE /v2/entities
assert_status 405 "DELETE /v2/entities"
assert_match 'GET' "$(header Allow)" "405: Allow names GET"
assert_match 'POST' "$(header Allow)" "405: Allow names POST"
ngsi PUT /v2/entities/E1 -H 'Content-Type: application/json' --data '{}'
assert_status 405 "PUT /v2/entities/E1"
assert_match 'GET' "$(header Allow)" "405 on /v2/entities/{id}: Allow names GET"
assert_match 'DELETE' "$(header Allow)" "405 on /v2/entities/{id}: Allow names DELETE"
ngsi POST /v2/types/T -H 'Content-Type: application/json' --data '{}'
assert_status 405 "POST /v2/types/T"

ngsi GET /v2/entities -H 'Accept: text/html'
assert_error 406 NotAcceptable "GET /v2/entities with Accept: text/html"
ngsi GET /v2/entities/E1 -H 'Accept: application/xml'
assert_error 406 NotAcceptable "GET /v2/entities/E1 with Accept: application/xml"
ngsi GET /v2/entities -H 'Accept: text/html, application/json;q=0.9'
assert_status 200 "an Accept that admits application/json is fine"

ngsi POST /v2/entities -H 'Content-Type: application/json'
assert_error 411 ContentLengthRequired "POST /v2/entities without a body"
ngsi POST /v2/entities -H 'Content-Type: application/json' --data ''
assert_error 411 ContentLengthRequired "POST /v2/entities with Content-Length: 0"
ngsi PATCH /v2/entities/E1/attrs -H 'Content-Type: application/json' --data ''
assert_error 411 ContentLengthRequired "PATCH .../attrs with Content-Length: 0"

big=$(jq -nc '{id: "Big", type: "T", a: {value: ("x" * 1100000)}}')
printf '%s' "$big" >"$tmpdir/big.json"
ngsi POST /v2/entities -H 'Content-Type: application/json' --data-binary "@$tmpdir/big.json"
assert_error 413 RequestEntityTooLarge "POST /v2/entities with a body over 1 MiB"
ngsi GET /v2/entities/Big
assert_error 404 NotFound "the entity of the refused body was not created"
jq -nc '{id: "Large", type: "T", a: {value: ("x" * 1000000)}}' >"$tmpdir/large.json"
ngsi POST /v2/entities -H 'Content-Type: application/json' --data-binary "@$tmpdir/large.json"
assert_status 201 "a body just under 1 MiB is accepted"

ngsi POST /v2/entities -H 'Content-Type: text/plain' --data '{"id": "E4", "type": "T"}'
assert_error 415 UnsupportedMediaType "POST /v2/entities as text/plain"
ngsi POST /v2/entities -H 'Content-Type: application/x-www-form-urlencoded' --data 'id=E4'
assert_error 415 UnsupportedMediaType "POST /v2/entities as a form"
ngsi POST /v2/entities -H 'Content-Type: application/json; charset=utf-8' --data '{"id": "E4", "type": "T"}'
assert_status 201 "application/json with a charset parameter is JSON"

ngsi_json POST /v2/entities '{"id": "E5", "type": "T", '
assert_error 400 ParseError "POST /v2/entities with malformed JSON"
ngsi_json PATCH /v2/entities/E1/attrs '{"a": {"value": 1}'
assert_error 400 ParseError "PATCH .../attrs with malformed JSON"
ngsi_json POST /v2/op/update '{"actionType": "append", "entities": [}'
assert_error 400 ParseError "op/update with malformed JSON"
ngsi_json POST /v2/entities '{"type": "T", "a": {"value": 1}}'
assert_error 400 BadRequest "POST /v2/entities without id"
ngsi_json POST /v2/entities '{"id": 5, "type": "T"}'
assert_error 400 BadRequest "an id that is not a string"
ngsi_json POST /v2/entities '{"id": "E6", "type": "T", "a": {"value": 1, "bogus": 2}}'
assert_error 400 BadRequest "an attribute with an unknown member"
ngsi_json POST /v2/entities/E1/attrs '{"id": "E1", "a": {"value": 3}}'
assert_error 400 BadRequest "POST .../attrs naming id"
ngsi_get /v2/entities 'q=temperature=='
assert_error 400 BadRequest "a q statement without a right-hand side"
ngsi_get /v2/entities 'q===3'
assert_error 400 BadRequest "a q statement without an attribute"
ngsi_get /v2/entities 'q=a==1;;b==2'
assert_error 400 BadRequest "a q with an empty statement"
# Orion refuses its forbidden characters in the string values of a q
# (StringFilterItem::valueGet: "forbidden characters in String Filter"),
# except after ~=.
ngsi_get /v2/entities 'q=color==a<b'
assert_error 400 BadRequest "a q value holding <"
ngsi_get /v2/entities 'q=temperature>>3'
assert_error 400 BadRequest "q=temperature>>3 (the value >3 holds a forbidden character)"
ngsi_get /v2/entities "mq=a.b=='x(y)'"
assert_error 400 BadRequest "an mq value holding ( )"
ngsi_get /v2/entities 'q=color~=^(a|b)$'
assert_status 200 "a ~= pattern may hold ( ) and the rest"
ngsi_get /v2/entities 'q=temperature==1..'
assert_error 400 BadRequest "a range without an upper bound"
ngsi_get /v2/entities 'idPattern=a(b'
assert_error 400 BadRequest "an invalid idPattern (a regular expression that does not compile)"
ngsi GET '/v2/entities?id=E1&idPattern=E.*'
assert_error 400 BadRequest "id with idPattern"
ngsi GET '/v2/entities?options=bogus'
assert_error 400 BadRequest "an unknown option"

ngsi_json POST /v2/entities '{"id": "E1", "type": "T"}'
assert_error 422 Unprocessable "creating E1 again"
ngsi_create '{"id": "Dup", "type": "T1"}'
ngsi_create '{"id": "Dup", "type": "T2"}'
ngsi GET /v2/entities/Dup
assert_error 409 TooManyResults "GET of an id two entities share"

# ------------------------------------------------------------------ identifiers

# bad_name CHARS MSG: an id, a type, an attribute name, an attribute type, a
# metadata name and a metadata type holding CHARS are each refused (400
# BadRequest), and nothing is created.
bad_name() {
  local s=$1 what=$2 body shown i
  # the six bodies, each followed by its form in the message (one jq: -c
  # writes one line each, control characters escaped)
  local -a lines
  mapfile -t lines < <(jq -nc --arg s "x${s}y" '
    {id: $s, type: "T"},
    {id: "N1", type: $s},
    {id: "N1", type: "T"} + {($s): {value: 1}},
    {id: "N1", type: "T", a: {value: 1, type: $s}},
    {id: "N1", type: "T", a: {value: 1, metadata: {($s): {value: 1}}}},
    {id: "N1", type: "T", a: {value: 1, metadata: {m: {value: 1, type: $s}}}}
    | ., del(.[] | nulls)')
  ((${#lines[@]} == 12)) || fail "bad_name $what: jq made ${#lines[@]} lines, not 12"
  for ((i = 0; i < 12; i += 2)); do
    body=${lines[i]} shown=${lines[i + 1]}
    ngsi_json POST /v2/entities "$body"
    assert_error 400 BadRequest "$what in $shown"
  done
  ngsi GET '/v2/entities?id=N1'
  assert_json '. == []' "$what: nothing was created"
}
# Every refused character in an id; two of them in every other kind of name
# (the same check serves all six, so the full matrix would only add time).
bad_id() {
  ngsi_json POST /v2/entities "$1"
  assert_error 400 BadRequest "$2 in an id"
}
bad_chars=(' ' $'\t' $'\x01' $'\x7f' 'é' '&' '?' '/' '#' '<' '>' '"' "'" '=' ';' '(' ')')
# the bodies {id: "x<c>y", type: "T"}, one a line, from one jq
mapfile -t bad_bodies < <(jq -nc '$ARGS.positional[] | {id: ("x" + . + "y"), type: "T"}' --args "${bad_chars[@]}")
assert_eq "${#bad_chars[@]}" "${#bad_bodies[@]}" "a body for each refused character"
for i in "${!bad_chars[@]}"; do
  bad_id "${bad_bodies[i]}" "[${bad_chars[i]}]"
done
ngsi GET '/v2/entities?id=N1'
assert_json '. == []' "no refused id was created"
bad_name ' ' "a space"
bad_name ';' "[;]"
for body in '{"id": "", "type": "T"}' '{"id": "N1", "type": ""}' '{"id": "N1", "type": "T", "": {"value": 1}}'; do
  ngsi_json POST /v2/entities "$body"
  assert_error 400 BadRequest "an empty identifier in $body"
done
okid='ok-chars_.:@!$%*+,~[]{}|^`'
ngsi_create "$(jq -nc --arg id "$okid" '{id: $id, type: "T"}')"
ngsi GET "/v2/entities/$(jq -rn --arg id "$okid" '$id | @uri')"
assert_status 200 "an id with every other printable character is readable by URL"

id256=$(printf 'i%.0s' {1..256})
type256=$(printf 't%.0s' {1..256})
name256=$(printf 'a%.0s' {1..256})
ngsi_create "{\"id\": \"$id256\", \"type\": \"$type256\", \"$name256\": {\"value\": 1}}"
ngsi GET "/v2/entities/$id256?type=$type256&options=keyValues"
assert_json ".\"$name256\" == 1" "a 256-byte id, type and attribute name"
long_refused() { # LABEL BODY
  ngsi_json POST /v2/entities "$2"
  assert_error 400 BadRequest "a 257-byte $1"
}
long_refused id "{\"id\": \"${id256}i\", \"type\": \"T\"}"
long_refused type "{\"id\": \"L1\", \"type\": \"${type256}t\"}"
long_refused "attribute name" "{\"id\": \"L1\", \"type\": \"T\", \"${name256}a\": {\"value\": 1}}"
long_refused "attribute type" "{\"id\": \"L1\", \"type\": \"T\", \"a\": {\"value\": 1, \"type\": \"${type256}t\"}}"
long_refused "metadata name" "{\"id\": \"L1\", \"type\": \"T\", \"a\": {\"value\": 1, \"metadata\": {\"${name256}m\": {\"value\": 1}}}}"
ngsi GET '/v2/entities?id=L1'
assert_json '. == []' "nothing was created with a 257-byte identifier"
ngsi GET "/v2/entities/${id256}i"
assert_error 400 BadRequest "GET of a 257-byte id"
ngsi GET '/v2/entities/a%20b'
assert_error 400 BadRequest "GET of an id with a space (URL-encoded)"
ngsi GET '/v2/entities/a%3Cb'
assert_error 400 BadRequest "GET of an id with < (URL-encoded)"
ngsi GET '/v2/entities?type=a%3Cb'
assert_error 400 BadRequest "type= with <"
ngsi GET '/v2/entities/E1/attrs/a%3Db'
assert_error 400 BadRequest "GET of an attribute name with ="

# Forbidden characters in string values, anywhere in them, unless the type is
# TextUnrestricted.
for v in '"<script>"' '"a=b"' '"x;y"' '"it'"'"'s"' '"(1)"' '"say \"hi\""' '{"k": "a>b"}' '["ok", "a<b"]'; do
  ngsi_json POST /v2/entities "{\"id\": \"V1\", \"type\": \"T\", \"a\": {\"value\": $v}}"
  assert_error 400 BadRequest "an attribute value $v"
  ngsi_json POST /v2/entities "{\"id\": \"V1\", \"type\": \"T\", \"a\": {\"value\": 1, \"metadata\": {\"m\": {\"value\": $v}}}}"
  assert_error 400 BadRequest "a metadata value $v"
done
ngsi_json POST '/v2/entities?options=keyValues' '{"id": "V1", "type": "T", "a": "<b>"}'
assert_error 400 BadRequest "a keyValues value with <"
ngsi_json PATCH /v2/entities/E1/attrs '{"a": {"value": "a<b"}}'
assert_error 400 BadRequest "PATCH of a value with <"
ngsi PUT /v2/entities/E1/attrs/a/value -H 'Content-Type: text/plain' --data-binary '"a<b"'
assert_error 400 BadRequest "PUT .../value text/plain with <"
ngsi_json POST /v2/op/update '{"actionType": "append", "entities": [{"id": "V2", "type": "T", "a": {"value": "(x)"}}]}'
assert_error 400 BadRequest "op/update with a value holding ( )"
ngsi GET '/v2/entities?id=V1,V2'
assert_json '. == []' "no entity was created with a forbidden value"
ngsi GET '/v2/entities/E1?options=keyValues'
assert_json '.a == 1' "E1 kept its value"
ngsi_create '{"id": "V3", "type": "T", "html": {"type": "TextUnrestricted", "value": "<a href=\"x\">it'"'"'s (1); a=b</a>"}}'
ngsi GET '/v2/entities/V3/attrs/html'
assert_json '. == {"type": "TextUnrestricted", "value": "<a href=\"x\">it'"'"'s (1); a=b</a>", "metadata": {}}' \
  "a TextUnrestricted attribute keeps forbidden characters"
ngsi_create '{"id": "V4", "type": "T", "q": {"value": "a&b?c/d#e%f"}}'
ngsi GET '/v2/entities/V4?options=keyValues'
assert_json '.q == "a&b?c/d#e%f"' "& ? / # % are allowed in values"

# ------------------------------------------------------------------ service paths

create_in() { # PATH BODY
  ngsi_json POST /v2/entities "$2" -H "Fiware-ServicePath: $1"
}
list_in() { # PATH [QUERY]: ids of the T-typed entities seen from PATH
  ngsi GET "/v2/entities?type=P${2:-}" -H "Fiware-ServicePath: $1"
  assert_status 200 "GET /v2/entities with Fiware-ServicePath: $1"
}

create_in /a/b '{"id": "Pab", "type": "P"}'
assert_status 201 "create in /a/b"
create_in /c '{"id": "Pc", "type": "P"}'
assert_status 201 "create in /c"
ngsi_json POST /v2/entities '{"id": "Proot", "type": "P"}'
assert_status 201 "create without Fiware-ServicePath (in /)"
list_in /a/b
assert_ids '["Pab"]' "/a/b sees the entity of /a/b"
list_in /a/b/
assert_ids '["Pab"]' "/a/b/ (a trailing slash is dropped) sees it too"
list_in '/a/#'
assert_ids '["Pab"]' "/a/# sees the entity of /a/b"
list_in /a
assert_ids '[]' "/a does not see the entity of /a/b"
list_in '/c/#'
assert_ids '["Pc"]' "/c/# sees /c only"
list_in /
assert_ids '["Proot"]' "/ sees the entity created without a service path"
list_in '/#'
assert_ids '["Pab","Pc","Proot"]' "/# sees all"
ngsi GET '/v2/entities?type=P'
assert_ids '["Pab","Pc","Proot"]' "a query without Fiware-ServicePath is on /#"
list_in '/a/b, /c'
assert_ids '["Pab","Pc"]' "two comma-separated paths"
ngsi GET /v2/entities/Pab -H 'Fiware-ServicePath: /c'
assert_error 404 NotFound "GET /v2/entities/Pab from /c"
ngsi GET /v2/entities/Pab -H 'Fiware-ServicePath: /a/b'
assert_status 200 "GET /v2/entities/Pab from /a/b"
ngsi_json PATCH /v2/entities/Pab/attrs '{"x": {"value": 1}}' -H 'Fiware-ServicePath: /c'
assert_error 404 NotFound "PATCH of Pab from /c"
ngsi DELETE /v2/entities/Pab -H 'Fiware-ServicePath: /a'
assert_error 404 NotFound "DELETE of Pab from /a"

# The same id and type in two paths are two entities.
create_in /p1 '{"id": "Same", "type": "P", "v": {"value": 1}}'
assert_status 201 "Same in /p1"
create_in /p2 '{"id": "Same", "type": "P", "v": {"value": 2}}'
assert_status 201 "Same (same id and type) in /p2"
create_in /p2 '{"id": "Same", "type": "P", "v": {"value": 3}}'
assert_error 422 Unprocessable "Same again in /p2"
ngsi GET '/v2/entities?id=Same&options=keyValues'
assert_json '[.[].v] == [1, 2]' "both are listed from /#"
ngsi GET '/v2/entities/Same?options=keyValues' -H 'Fiware-ServicePath: /p2'
assert_json '.v == 2' "GET from /p2 reads the one of /p2"
ngsi_json PATCH /v2/entities/Same/attrs '{"v": {"value": 20}}' -H 'Fiware-ServicePath: /p2'
assert_status 204 "PATCH Same in /p2"
ngsi GET '/v2/entities?id=Same&options=keyValues' -H 'Fiware-ServicePath: /p1'
assert_json '[.[].v] == [1]' "the PATCH in /p2 left /p1 alone"
ngsi GET /v2/entities/Same
assert_error 409 TooManyResults "GET /v2/entities/Same from /# (two entities)"

# Path syntax.
bad_path() { # PATH MSG [METHOD]
  create_in "$1" '{"id": "Pbad", "type": "P"}'
  assert_error 400 BadRequest "create with Fiware-ServicePath: $1 ($2)"
  ngsi GET '/v2/entities?type=P' -H "Fiware-ServicePath: $1"
  assert_error 400 BadRequest "query with Fiware-ServicePath: $1 ($2)"
}
bad_path 'a/b' "not absolute"
bad_path '/a-b' "a hyphen"
bad_path '/a b' "a space"
bad_path '/a.b' "a dot"
bad_path '/a//b' "an empty level"
bad_path '/a//' "an empty last level (found by tests/fuzz/fuzz_servicepath)"
bad_path '/a//#' "an empty last level before /#"
bad_path '//' "an empty level only"
bad_path "/$(printf 'x%.0s' {1..51})" "a level of 51 characters"
bad_path "$(printf '/l%.0s' {1..11})" "11 levels"
create_in "/$(printf 'x%.0s' {1..50})" '{"id": "P50", "type": "P"}'
assert_status 201 "a level of 50 characters"
create_in "$(printf '/l%.0s' {1..10})" '{"id": "P10", "type": "P"}'
assert_status 201 "10 levels"
ngsi GET '/v2/entities?id=P10' -H "Fiware-ServicePath: $(printf '/l%.0s' {1..10})"
assert_ids '["P10"]' "the entity 10 levels down is found there"
create_in '/a/#' '{"id": "Phash", "type": "P"}'
assert_error 400 BadRequest "create with Fiware-ServicePath: /a/# (# only in queries)"
create_in '/x, /y' '{"id": "Ptwo", "type": "P"}'
assert_error 400 BadRequest "create with two service paths"
ngsi_json PATCH /v2/entities/Same/attrs '{"v": {"value": 5}}' -H 'Fiware-ServicePath: /p1, /p2'
assert_error 400 BadRequest "PATCH with two service paths"
ngsi_json POST /v2/op/update '{"actionType": "append", "entities": [{"id": "Pop", "type": "P"}]}' -H 'Fiware-ServicePath: /p1,/p2'
assert_error 400 BadRequest "op/update with two service paths"
ngsi GET '/v2/entities?id=Pbad,Phash,Ptwo,Pop'
assert_json '. == []' "no entity was created under a refused service path"
ten=$(printf '/s%d,' {1..10})
ngsi GET '/v2/entities?type=P' -H "Fiware-ServicePath: ${ten%,}"
assert_status 200 "a query with 10 service paths"
eleven=$(printf '/s%d,' {1..11})
ngsi GET '/v2/entities?type=P' -H "Fiware-ServicePath: ${eleven%,}"
assert_error 400 BadRequest "a query with 11 service paths"
ngsi_json POST /v2/op/query '{"entities": [{"idPattern": ".*", "type": "P"}]}' -H "Fiware-ServicePath: ${eleven%,}"
assert_error 400 BadRequest "op/query with 11 service paths"

# ------------------------------------------------------------------ bounds

names=$(printf 'a%d,' {1..800})
ngsi GET "/v2/entities?attrs=${names%,}"
assert_error 400 BadRequest "attrs= with 800 names"
hub_alive "attrs= with 800 names"
ngsi GET "/v2/entities?metadata=${names%,}"
assert_error 400 BadRequest "metadata= with 800 names"
ngsi GET "/v2/entities?orderBy=${names%,}"
assert_error 400 BadRequest "orderBy= with 800 names"
ids=$(printf 'i%d,' {1..1001})
ngsi GET "/v2/entities?id=${ids%,}"
assert_error 400 BadRequest "id= with 1001 ids"
hub_alive "id= with 1001 ids"
ngsi GET "/v2/entities?type=${names%,}"
assert_error 400 BadRequest "type= with 800 types"
ngsi_get /v2/entities "idPattern=$(printf 'a%.0s' {1..2000})"
assert_error 400 BadRequest "an idPattern of 2000 characters"
ngsi_get /v2/entities "typePattern=$(printf 'a%.0s' {1..2000})"
assert_error 400 BadRequest "a typePattern of 2000 characters"
ngsi_get /v2/entities "idPattern=$(printf 'a%.0s' {1..10000})"
assert_error 414 URITooLong "a URL of more than 8 KiB"
hub_alive "long patterns"
longq=$(jq -nc '{expression: {q: ([range(0; 9000)] | map("a==\(.)") | join(";"))}}')
ngsi_json POST /v2/op/query "$longq"
assert_error 400 BadRequest "op/query with a q of $(jq '.expression.q | length' <<<"$longq") characters"
hub_alive "a very long q"
deep=$(printf '[%.0s' {1..5000})1$(printf ']%.0s' {1..5000})
ngsi_json POST /v2/entities "{\"id\": \"Deep\", \"a\": {\"value\": $deep}}"
assert_status 400 "a value nested 5000 deep"
hub_alive "a value nested 5000 deep"
many=$(jq -nc '{id: "Many", type: "T"} + ([range(0; 5000)] | map({key: "a\(.)", value: {value: .}}) | from_entries)')
ngsi_json POST /v2/entities "$many"
assert_match '^(201|400)$' "$HTTP_STATUS" "an entity with 5000 attributes is created or refused (not a crash)"
hub_alive "an entity with 5000 attributes"

# ------------------------------------------------------------------ Fiware-Service

ngsi_json POST /v2/entities '{"id": "Case", "type": "T"}' -H 'Fiware-Service: KANONJI'
assert_status 201 "Fiware-Service: KANONJI is kanonji (create)"
ngsi GET /v2/entities/Case -H 'Fiware-Service: kanonji'
assert_status 200 "the entity created under KANONJI is in kanonji"
ngsi GET /v2/entities/Case -H 'Fiware-Service: Kanonji'
assert_status 200 "Fiware-Service: Kanonji reads it too"
assert_eq 0 "$(sql "SELECT count(*) FROM renkei.ngsi_entities WHERE tenant_id <> lower(tenant_id)")" \
  "no row is stored under an upper-case tenant name"
for bad in 'kan-onji' 'kanonji!' 'kan onji' "$(printf 'k%.0s' {1..51})"; do
  ngsi GET /v2/entities -H "Fiware-Service: $bad"
  assert_error 400 BadRequest "Fiware-Service: $bad"
done

hub_alive "the end of the test"
ngsi_finish
