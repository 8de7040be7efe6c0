#!/usr/bin/env bash
# /admin/v1/residents over HTTP with real tokens: scope admin manages every
# town's residents, tenant.admin only its own town's; another town's
# resident is a 404 (row-level security hides it, and the database refuses
# it in SQL too); create (201, Location), list with cursor paging, read with
# links, change name, e-mail, password and state, link and unlink a town's
# local number; duplicate logins 409, bad input 400, bodies bounded; audit
# entries without personal data; no password or common ID leaves the hub.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"

RUN_TIMEOUT=20
az_setup

client_add --tenant kagawa --name platform-ops --grant client_credentials --scope admin
ADM_ID=$CID ADM_SECRET=$CSECRET
client_add --tenant takamatsu --name takamatsu-admin --grant client_credentials --scope tenant.admin
TA_ID=$CID TA_SECRET=$CSECRET
client_add --tenant kanonji --name kanonji-admin --grant client_credentials --scope tenant.admin
KA_ID=$CID KA_SECRET=$CSECRET
client_add --tenant takamatsu --name takamatsu-reader --grant client_credentials --scope ngsi.read
TR_ID=$CID TR_SECRET=$CSECRET

hub_start
get_token "$ADM_ID" "$ADM_SECRET"
ADM=$TOKEN
get_token "$TA_ID" "$TA_SECRET"
TAT=$TOKEN
get_token "$KA_ID" "$KA_SECRET"
KAT=$TOKEN
get_token "$TR_ID" "$TR_SECRET"
READER=$TOKEN

RESIDENT_KEYS='["created_at", "email", "email_verified", "links", "login", "name", "state", "tenant", "updated_at", "version"]'
PW1='Ritsurin garden 1745'
PW2='Zenigata sand coin 1633'
PW3='Kotohira 785 steps up'

# ------------------------------------------------------------- create

admin_send POST /admin/v1/residents "$ADM" "{\"login\": \"x@example.jp\", \"password\": \"$PW1\"}"
assert_error 400 BadRequest "admin creates without a tenant"
admin_send POST /admin/v1/residents "$ADM" \
  "{\"tenant\": \"takamatsu\", \"login\": \"Sanuki.Taro@Example.JP\", \"name\": \"讃岐 太郎\", \"password\": \"$PW1\"}"
assert_status 201 "admin creates a takamatsu resident"
assert_json "keys == $RESIDENT_KEYS" "the body: the resident, no common ID, no hash"
assert_json '.login == "sanuki.taro@example.jp" and .tenant == "takamatsu" and .name == "讃岐 太郎" and .email == "sanuki.taro@example.jp" and .state == "active" and .links == []' \
  "login lower-cased, e-mail from the login"
assert_match '/admin/v1/residents/sanuki\.taro%40example\.jp$' "$(header Location)" "Location names the resident"
loc=$(header Location)
http GET "${loc#"$HUB_URL"}" -H "Authorization: Bearer $ADM"
assert_status 200 "GET on the Location"
assert_json '.login == "sanuki.taro@example.jp"' "it is the resident"

admin_send POST /admin/v1/residents "$TAT" "{\"login\": \"0877-00-1111\", \"name\": \"高松 次郎\", \"email\": \"jiro@example.jp\", \"password\": \"$PW2\"}"
assert_status 201 "tenant.admin creates a resident of its own town (tenant by default)"
assert_json '.tenant == "takamatsu" and .email == "jiro@example.jp"' "in takamatsu, with the e-mail given"
admin_send POST /admin/v1/residents "$KAT" "{\"login\": \"kanon.hanako@example.jp\", \"name\": \"観音 花子\", \"password\": \"$PW3\"}"
assert_status 201 "kanonji's admin creates a kanonji resident"
admin_send POST /admin/v1/residents "$TAT" "{\"tenant\": \"kanonji\", \"login\": \"sneaky@example.jp\", \"password\": \"$PW1\"}"
assert_error 403 Forbidden "tenant.admin creates a resident of another town"

admin_send POST /admin/v1/residents "$TAT" "{\"login\": \"SANUKI.taro@example.jp\", \"password\": \"$PW1\"}"
assert_error 409 Conflict "a login taken (another case)"
admin_send POST /admin/v1/residents "$TAT" "{\"login\": \"kanon.hanako@example.jp\", \"password\": \"$PW1\"}"
assert_error 409 Conflict "a login taken in another town is taken too"
assert_no_match '観音|kanonji' "$HTTP_BODY" "and the 409 says nothing of that town"
for login in '"ab"' '"a b@example.jp"' '"a@b"' '"+1234"' '"山田"' '""' '42' 'null'; do
  admin_send POST /admin/v1/residents "$TAT" "{\"login\": $login, \"password\": \"$PW1\"}"
  assert_error 400 BadRequest "login $login"
done
for pw in '""' '"short"' "\"$(printf 'p%.0s' {1..1025})\"" '12345678' '["x"]'; do
  admin_send POST /admin/v1/residents "$TAT" "{\"login\": \"pw.test\", \"password\": ${pw}}"
  assert_error 400 BadRequest "password ${pw:0:20}"
done
admin_send POST /admin/v1/residents "$TAT" "{\"login\": \"pw.test\"}"
assert_error 400 BadRequest "no password"
admin_send POST /admin/v1/residents "$TAT" "{\"login\": \"m.test\", \"password\": \"$PW1\", \"email\": \"not-mail\"}"
assert_error 400 BadRequest "a bad e-mail"
admin_send POST /admin/v1/residents "$TAT" "{\"login\": \"m.test\", \"password\": \"$PW1\", \"id\": \"r_mine\"}"
assert_error 400 BadRequest "an unknown member (id)"
assert_match 'id' "$HTTP_BODY" "the 400 names it"
admin_send POST /admin/v1/residents "$TAT" "{\"login\": \"m.test\", \"password\": \"$PW1\", \"name\": \"$(printf 'x%.0s' {1..17000})\"}"
assert_error 413 RequestEntityTooLarge "a body over 16 KiB"
admin_send POST /admin/v1/residents "$READER" "{\"login\": \"r.test\", \"password\": \"$PW1\"}"
assert_error 403 Forbidden "a token with ngsi.read only"
http POST /admin/v1/residents -H 'Content-Type: application/json' --data "{\"login\": \"r.test\", \"password\": \"$PW1\"}"
assert_error 401 Unauthorized "no token"
assert_eq 3 "$(sql "SELECT count(*) FROM renkei.residents")" "three residents, none of the refused ones"

# ---------------------------------------------------------------- list

admin_get /admin/v1/residents "$ADM"
assert_status 200 "admin lists residents"
assert_json '[.items[].login] == ["0877-00-1111", "kanon.hanako@example.jp", "sanuki.taro@example.jp"] and .next == null' \
  "every town's residents in login order, one page"
assert_json "[.items[] | keys == ($RESIDENT_KEYS - [\"links\"])] | all" "list items: no common ID, no hash"
admin_get '/admin/v1/residents?limit=2' "$ADM"
assert_json '(.items | length) == 2 and .next == "kanon.hanako@example.jp"' "limit=2: two and a cursor"
admin_get '/admin/v1/residents?limit=2&cursor=kanon.hanako%40example.jp' "$ADM"
assert_json '[.items[].login] == ["sanuki.taro@example.jp"] and .next == null' "the second page"
admin_get '/admin/v1/residents?tenant=kanonji' "$ADM"
assert_json '[.items[].login] == ["kanon.hanako@example.jp"]' "admin ?tenant=kanonji"
for q in 'limit=0' 'limit=201' 'limit=x' 'tenant=Bad-Id'; do
  admin_get "/admin/v1/residents?$q" "$ADM"
  assert_error 400 BadRequest "list ?$q"
done
admin_get '/admin/v1/residents?limit=200' "$ADM"
assert_status 200 "limit=200 is the most"
admin_get /admin/v1/residents "$TAT"
assert_json '[.items[].login] == ["0877-00-1111", "sanuki.taro@example.jp"]' "tenant.admin takamatsu lists its own residents only"
admin_get '/admin/v1/residents?tenant=kanonji' "$TAT"
assert_status 200 "tenant.admin names another town"
assert_json '.items == [] and .next == null' "and sees none of its residents"

# --------------------------------------------------- another town's: 404

admin_get /admin/v1/residents/kanon.hanako@example.jp "$TAT"
assert_error 404 NotFound "takamatsu reads kanonji's resident"
assert_no_match '観音|kanonji' "$HTTP_BODY" "the 404 tells nothing of her"
admin_get /admin/v1/residents/nobody.at.all@example.jp "$TAT"
assert_error 404 NotFound "a resident that does not exist: the same 404"
before=$(sql "SELECT version || state || name || password_hash FROM renkei.residents WHERE login = 'kanon.hanako@example.jp'")
admin_send PATCH /admin/v1/residents/kanon.hanako@example.jp "$TAT" '{"name": "乗っ取り"}'
assert_error 404 NotFound "takamatsu renames kanonji's resident"
admin_send PATCH /admin/v1/residents/kanon.hanako@example.jp "$TAT" '{"state": "disabled"}'
assert_error 404 NotFound "takamatsu disables kanonji's resident"
admin_send PATCH /admin/v1/residents/kanon.hanako@example.jp "$TAT" "{\"password\": \"$PW1\"}"
assert_error 404 NotFound "takamatsu sets the password of kanonji's resident"
admin_send PUT /admin/v1/residents/kanon.hanako@example.jp/links/takamatsu "$TAT" '{"local_id": "TK-9"}'
assert_error 404 NotFound "takamatsu links kanonji's resident to a takamatsu number"
admin_send PUT /admin/v1/residents/kanon.hanako@example.jp/links/kanonji "$TAT" '{"local_id": "KJ-9"}'
assert_error 404 NotFound "takamatsu links kanonji's resident to a kanonji number"
http DELETE /admin/v1/residents/kanon.hanako@example.jp/links/kanonji -H "Authorization: Bearer $TAT"
assert_error 404 NotFound "takamatsu unlinks kanonji's resident"
assert_eq "$before" "$(sql "SELECT version || state || name || password_hash FROM renkei.residents WHERE login = 'kanon.hanako@example.jp'")" \
  "kanonji's resident is unchanged"
assert_eq 0 "$(sql "SELECT count(*) FROM renkei.resident_links")" "and no link was made"

# the database says the same to a session that does what the hub does
svc() {
  printf '%s\n' 'SET ROLE renkei_service;' "SELECT set_config('renkei.tenant', 'takamatsu', false) \\gset" "$1" |
    psql "$RENKEI_DB" -XqAt -v ON_ERROR_STOP=1 2>&1
}
assert_eq 0 "$(svc "SELECT count(*) FROM renkei.residents WHERE tenant_id = 'kanonji';")" \
  "SQL as renkei_service in takamatsu's context: no kanonji resident"
assert_eq 0 "$(svc "SELECT count(*) FROM renkei.residents WHERE login = 'kanon.hanako@example.jp';")" \
  "not even by login"
assert_eq 2 "$(svc "SELECT count(*) FROM renkei.residents;")" "its own two"
assert_eq 0 "$(svc "WITH x AS (UPDATE renkei.residents SET name = 'x' WHERE tenant_id = 'kanonji' RETURNING 1) SELECT count(*) FROM x;")" \
  "an UPDATE of kanonji's residents changes nothing"
assert_match 'row-level security' "$(svc "INSERT INTO renkei.residents (id, tenant_id, login, password_hash, created_by) VALUES ('r_AAAAAAAAAAAAAAAAAAAAAA', 'kanonji', 'planted', '\$scrypt\$x', 'sql');" || true)" \
  "an INSERT of a kanonji resident is refused"
assert_match 'row-level security' "$(svc "INSERT INTO renkei.resident_links (resident_id, tenant_id, local_id, created_by) SELECT id, 'kanonji', 'KJ-1', 'sql' FROM renkei.residents LIMIT 1;" || true)" \
  "a link into kanonji is refused"
assert_eq "0 0" "$(svc "SELECT (SELECT count(*) FROM renkei.signin_failures) || ' ' || (SELECT count(*) FROM renkei.sessions);")" \
  "sign-in failures and sessions are the platform's only"

# ------------------------------------------------------- read and change

admin_get /admin/v1/residents/SANUKI.Taro@example.jp "$TAT"
assert_status 200 "takamatsu reads its resident (any case)"
assert_json "keys == $RESIDENT_KEYS and .login == \"sanuki.taro@example.jp\"" "the resident with links"
v1=$(jq .version <<<"$HTTP_BODY")
old_hash=$(sql "SELECT password_hash FROM renkei.residents WHERE login = 'sanuki.taro@example.jp'")
admin_send PATCH /admin/v1/residents/sanuki.taro@example.jp "$TAT" "{\"name\": \"讃岐 太郎右衛門\", \"email\": \"Taro@Mail.Example.JP\", \"password\": \"$PW2\"}"
assert_status 200 "PATCH name, email, password"
assert_json ".name == \"讃岐 太郎右衛門\" and .email == \"taro@mail.example.jp\" and .email_verified == false and .version > $v1" "the changed resident"
new_hash=$(sql "SELECT password_hash FROM renkei.residents WHERE login = 'sanuki.taro@example.jp'")
assert_ne "$old_hash" "$new_hash" "a new password hash"
assert_match '^\$scrypt\$ln=12,r=8,p=1\$' "$new_hash" "scrypt at the configured cost"
admin_send PATCH /admin/v1/residents/sanuki.taro@example.jp "$TAT" '{"email": null}'
assert_status 200 "PATCH email null"
assert_json '.email == null' "clears the e-mail address"
for body in '{}' '{"state": "gone"}' '{"name": 7}' '{"password": "short"}' '{"login": "new.login"}' '{"tenant": "kanonji"}' '{"email": "nope"}'; do
  admin_send PATCH /admin/v1/residents/sanuki.taro@example.jp "$TAT" "$body"
  assert_error 400 BadRequest "PATCH $body"
done
admin_send PATCH /admin/v1/residents/sanuki.taro@example.jp "$TAT" '{"state": "disabled"}'
assert_status 200 "PATCH state disabled"
assert_json '.state == "disabled"' "disabled"
assert_eq disabled "$(sql "SELECT state FROM renkei.residents WHERE login = 'sanuki.taro@example.jp'")" "disabled in the database"
admin_send PATCH /admin/v1/residents/sanuki.taro@example.jp "$ADM" '{"state": "active"}'
assert_status 200 "admin enables him again"
assert_json '.state == "active"' "active"

# --------------------------------------------------------------- links

admin_send PUT /admin/v1/residents/sanuki.taro@example.jp/links/takamatsu "$TAT" '{"local_id": "TK-000042"}'
assert_status 200 "takamatsu links its resident to its number"
assert_json 'keys == ["created_at", "local_id", "tenant"] and .tenant == "takamatsu" and .local_id == "TK-000042"' "the link"
admin_send PUT /admin/v1/residents/sanuki.taro@example.jp/links/kanonji "$TAT" '{"local_id": "KJ-1"}'
assert_error 403 Forbidden "takamatsu links its resident to kanonji's number"
admin_send PUT /admin/v1/residents/sanuki.taro@example.jp/links/kanonji "$ADM" '{"local_id": "KJ-000007"}'
assert_status 200 "admin links him to kanonji's number too"
admin_get /admin/v1/residents/sanuki.taro@example.jp "$ADM"
assert_json '[.links[] | [.tenant, .local_id]] == [["kanonji", "KJ-000007"], ["takamatsu", "TK-000042"]]' "admin sees both links"
admin_get /admin/v1/residents/sanuki.taro@example.jp "$TAT"
assert_json '[.links[].tenant] == ["takamatsu"]' "takamatsu sees only the link into itself"
admin_send PUT /admin/v1/residents/0877-00-1111/links/takamatsu "$TAT" '{"local_id": "TK-000042"}'
assert_error 409 Conflict "the same number of the same town for another resident"
admin_send PUT /admin/v1/residents/sanuki.taro@example.jp/links/takamatsu "$TAT" '{"local_id": "TK-000043"}'
assert_status 200 "a new number replaces the old"
admin_send PUT /admin/v1/residents/0877-00-1111/links/takamatsu "$TAT" '{"local_id": "TK-000042"}'
assert_status 200 "the freed number can go to another resident"
for body in '{}' '{"local_id": ""}' '{"local_id": "TK 1"}' '{"local_id": 5}' '{"local_id": "x", "tenant": "kanonji"}'; do
  admin_send PUT /admin/v1/residents/0877-00-1111/links/takamatsu "$TAT" "$body"
  assert_error 400 BadRequest "PUT link $body"
done
admin_send PUT /admin/v1/residents/0877-00-1111/links/nowhere "$ADM" '{"local_id": "N-1"}'
assert_error 404 NotFound "a link to a town that does not exist"
http DELETE /admin/v1/residents/sanuki.taro@example.jp/links/takamatsu -H "Authorization: Bearer $TAT"
assert_status 204 "takamatsu removes the link"
http DELETE /admin/v1/residents/sanuki.taro@example.jp/links/takamatsu -H "Authorization: Bearer $TAT"
assert_error 404 NotFound "removing it again"
http DELETE /admin/v1/residents/sanuki.taro@example.jp/links/kanonji -H "Authorization: Bearer $TAT"
assert_error 403 Forbidden "takamatsu removes kanonji's link"
assert_eq "kanonji:KJ-000007 takamatsu:TK-000042" \
  "$(sql "SELECT string_agg(tenant_id || ':' || local_id, ' ' ORDER BY tenant_id) FROM renkei.resident_links")" "the links left"

# ---------------------------------------------------------------- audit

assert_eq "resident.create:takamatsu:client:$ADM_ID resident.create:takamatsu:client:$TA_ID resident.create:kanonji:client:$KA_ID" \
  "$(sql "SELECT string_agg(kind || ':' || tenant || ':' || actor, ' ' ORDER BY seq) FROM renkei.audit_events WHERE kind = 'resident.create'")" \
  "resident.create entries: the town and the admin client"
assert_eq "resident.update resident.update resident.disable resident.enable resident.link resident.link resident.link resident.link resident.unlink" \
  "$(sql "SELECT string_agg(kind, ' ' ORDER BY seq) FROM renkei.audit_events WHERE kind LIKE 'resident.%' AND kind <> 'resident.create'")" \
  "one entry per change"
assert_eq '{"tenant": "kanonji", "replaced": false}' \
  "$(sql "SELECT detail FROM renkei.audit_events WHERE kind = 'resident.link' AND tenant = 'kanonji'")" "a link's detail: the town"
canon=$(sql "SELECT string_agg(canonical, E'\n' ORDER BY seq) FROM renkei.audit_entries WHERE kind LIKE 'resident.%'")
for personal in sanuki taro 0877-00-1111 kanon.hanako jiro@ "讃岐" "次郎" "花子" TK-0000 KJ-0000 "$PW1" "$PW2" "$PW3"; do
  assert_no_match "$personal" "$canon" "no [$personal] in the audit log"
done
for id in $(sql "SELECT id FROM renkei.residents"); do
  assert_no_match "$id" "$canon" "no common ID in the audit log"
done
assert_eq 0 "$(db_contains "$PW1" "$PW2" "$PW3")" "no password anywhere in the database"
assert_eq 0 "$(sql "SELECT count(*) FROM renkei.residents WHERE password_hash !~ '^\\\$scrypt\\\$ln=12,r=8,p=1\\\$[A-Za-z0-9+/]{22}\\\$[A-Za-z0-9+/]{43}\$'")" \
  "every stored hash is \$scrypt\$ln=12,r=8,p=1\$salt\$hash"

# the hub's log holds no password and no common ID either
for id in $(sql "SELECT id FROM renkei.residents"); do
  assert_no_match "$id" "$(cat "$HUB_LOG")" "no common ID in the hub's log"
done
for pw in "$PW1" "$PW2" "$PW3"; do
  assert_no_match "$pw" "$(cat "$HUB_LOG")" "no password in the hub's log"
done

http GET /openapi.json
assert_json '.paths["/admin/v1/residents/{login}/links/{tenant}"] | has("put") and has("delete")' "the routes are in the OpenAPI document"
