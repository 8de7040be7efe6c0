#!/usr/bin/env bash
# Who may use the consoles: staff roles granted and withdrawn with the CLI
# (each an audit event; the roles table is the platform's only, in SQL too),
# the sign-in page sending staff back to the console they asked for (and to
# nowhere else: no open redirect), a console session reading the auditor and
# admin APIs with its cookie (GET only, same origin only, with its roles'
# scopes, re-read on every request), and the language switch.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/oidc_lib.sh"

RUN_TIMEOUT=20
az_setup
PW='Marugame castle 1597'
resident_add kagawa auditor@kagawa.example "監査 一郎" "" "$PW"
resident_add takamatsu auditor@takamatsu.example "高松 監査" "" "$PW"
resident_add kagawa ops@kagawa.example "運用 花子" "" "$PW"
resident_add takamatsu hanako@example.jp "高松 花子" "" "$PW"

# ------------------------------------------------------------- the CLI

run_renkei resident grant auditor@kagawa.example --role auditor
assert_eq 0 "$RUN_STATUS" "grant auditor"
assert_eq "granted auditor@kagawa.example the role auditor" "$RUN_OUT" "grant says what it did"
run_renkei resident grant auditor@kagawa.example --role auditor
assert_eq 2 "$RUN_STATUS" "granting a role held already exits 2"
assert_match "holds the role auditor already" "$RUN_ERR" "and says so"
run_renkei resident grant auditor@kagawa.example --role superuser
assert_eq 2 "$RUN_STATUS" "an unknown role exits 2"
assert_match "platform_admin, tenant_admin or auditor" "$RUN_ERR" "naming the roles there are"
run_renkei resident grant auditor@kagawa.example
assert_eq 2 "$RUN_STATUS" "grant without --role exits 2"
run_renkei resident grant nobody@example.jp --role auditor
assert_eq 2 "$RUN_STATUS" "granting to no account exits 2"
assert_match "no account nobody@example.jp" "$RUN_ERR" "and names it"
run_renkei resident withdraw hanako@example.jp --role auditor
assert_eq 2 "$RUN_STATUS" "withdrawing a role not held exits 2"
run_renkei resident grant auditor@takamatsu.example --role auditor
assert_eq 0 "$RUN_STATUS" "grant takamatsu's auditor"
run_renkei resident grant ops@kagawa.example --role platform_admin
assert_eq 0 "$RUN_STATUS" "grant platform_admin"
run_renkei resident grant ops@kagawa.example --role tenant_admin
assert_eq 0 "$RUN_STATUS" "a second role"
run_renkei resident show ops@kagawa.example --json
assert_eq '["platform_admin","tenant_admin"]' "$(jq -c .roles <<<"$RUN_OUT")" "show --json lists the roles"
run_renkei resident show ops@kagawa.example
assert_match "roles: +platform_admin tenant_admin" "$RUN_OUT" "show lists them too"
run_renkei resident show hanako@example.jp --json
assert_eq '[]' "$(jq -c .roles <<<"$RUN_OUT")" "a resident without roles"

grants=$(sql "SELECT count(*) FROM renkei.audit_entries WHERE canonical::jsonb->>'kind' = 'staff.grant' AND canonical::jsonb->'detail'->>'role' IN ('auditor', 'platform_admin', 'tenant_admin') AND canonical::jsonb->>'actor' LIKE 'cli:%'")
assert_eq 4 "$grants" "every grant is an audit event (role, login, the CLI's actor)"
assert_eq 0 "$(svc_sql takamatsu "SELECT count(*) FROM renkei.staff_roles")" \
  "a town's context sees no roles (row-level security)"
err=$(svc_sql takamatsu "INSERT INTO renkei.staff_roles (resident_id, role, granted_by) SELECT id, 'platform_admin', 'x' FROM renkei.residents WHERE login = 'hanako@example.jp'" 2>&1 || true)
assert_match "row-level security" "$err" "nor can it grant one"

# ------------------------------------------------------------- sign-in

oidc_hub_start
browser auditor
bhttp GET /audit
assert_status 303 "the console without a session"
assert_eq "/login?next=%2Faudit" "$LOCATION" "goes to the sign-in page, coming back after"
bhttp GET "/audit?kind=transfer&decision=deny"
assert_eq "/login?next=%2Faudit%3Fkind%3Dtransfer%26decision%3Ddeny" "$LOCATION" \
  "with its query"
for bad in //evil.example/audit https://evil.example/audit /account /audit/v1/entries \
  /auditx '/audit/../account' '/audit\evil' /admin//x '/admin/%2e%2e/oauth2/authorize' \
  '/audit/%2E%2E/account'; do
  bhttp GET "/login?next=$(urlenc "$bad")"
  assert_status 200 "the sign-in page with next=$bad"
  assert_no_match 'name="next"' "$HTTP_BODY" "next=$bad is not carried (consoles' pages only)"
done
bhttp GET "/login?next=$(urlenc '/audit?seq=5')"
assert_match 'name="next" value="/audit\?seq=5"' "$HTTP_BODY" "a console's page is carried"
login_post auditor@kagawa.example "$PW" --data-urlencode "next=//evil.example/"
assert_status 303 "signed in"
assert_eq "/account" "$LOCATION" "a forged next goes to the account page, not away"
browser auditor2
bhttp GET "/login?next=$(urlenc '/audit?seq=5')"
login_post auditor@kagawa.example "$PW" --data-urlencode "next=$(form_value next)"
assert_eq "/audit?seq=5" "$LOCATION" "a console's next is where the sign-in leads"
bhttp GET /login "--data-urlencode" "x=1" -G --data-urlencode "next=/audit"
assert_status 303 "the sign-in page of a signed-in person with next"
assert_eq "/audit" "$LOCATION" "goes straight to the console"

bhttp GET /audit
assert_status 200 "the auditor console"
csp=$(hdr Content-Security-Policy)
assert_match "script-src 'self'" "$csp" "console CSP: scripts from the hub only"
assert_match "frame-ancestors 'none'" "$csp" "console CSP: no framing"
assert_match "form-action 'self'" "$csp" "console CSP: forms post to the hub only"
assert_no_match "unsafe-inline|unsafe-eval" "$csp" "console CSP: nothing inline"
assert_match "no-store" "$(hdr Cache-Control)" "console pages are not cached"
assert_no_match "<script>|<script [^>]*>[^<]|style=|javascript:|on(load|click|error|submit)=" \
  "$HTTP_BODY" "no inline script or style"
bhttp GET /admin
assert_status 403 "an auditor is not an operator"

# ------------------------------------------------------------- the APIs with the cookie

bhttp GET "/audit/v1/entries?limit=500"
assert_status 200 "the auditor API with the console's session"
assert_json '.items | length > 0 and all(.kind != null)' "entries"
bhttp GET "/audit/v1/entries?limit=5" -H "Sec-Fetch-Site: cross-site"
assert_status 401 "not from another site's page"
bhttp GET "/audit/v1/entries?limit=5" -H "Sec-Fetch-Site: same-site"
assert_status 401 "not from a sibling site's page either"
bhttp GET "/audit/v1/entries?limit=5" -H "Sec-Fetch-Site: same-origin"
assert_status 200 "from the console's own page"
bhttp POST /audit/v1/checkpoints
assert_status 401 "no POST with a cookie (CSRF)"
bhttp GET /v2/entities
assert_status 401 "no cookie for the NGSI API"
bhttp GET /admin/v1/tenants
assert_status 403 "an auditor's session lacks scope admin"
bhttp GET /audit/v1/entries -H "Authorization: Bearer nonsense"
assert_status 401 "a bearer token, when given, is what counts"

browser takamatsu_auditor
bhttp GET "/login?next=%2Faudit"
login_post auditor@takamatsu.example "$PW" --data-urlencode "next=/audit"
bhttp GET "/audit/v1/entries?limit=1000"
assert_status 200 "takamatsu's auditor"
assert_json '[.items[] | .tenant] | length > 0 and all(. == "takamatsu")' \
  "sees takamatsu's entries only (row-level security)"

browser resident
bhttp GET /login
login_post hanako@example.jp "$PW"
assert_status 303 "a resident signs in"
bhttp GET /audit
assert_status 403 "a resident without a role gets no console"
bhttp GET /audit/v1/entries
assert_status 401 "nor the API"

browser ops
bhttp GET "/login?next=%2Fadmin"
login_post ops@kagawa.example "$PW" --data-urlencode "next=/admin"
assert_eq "/admin" "$LOCATION" "the operator comes back to /admin"
bhttp GET /admin/v1/tenants
assert_status 200 "the platform's operator reads the admin API"
assert_json '[.items[].id] | sort == ["kagawa", "kanonji", "takamatsu"]' "every town"
bhttp GET /admin/v1/residents
assert_status 401 "but not residents' personal data: the consoles do not read it"
bhttp GET /audit
assert_status 200 "and the audit console"
run_renkei resident withdraw ops@kagawa.example --role platform_admin
assert_eq 0 "$RUN_STATUS" "withdraw platform_admin"
bhttp GET /admin/v1/tenants
assert_status 200 "still a tenant admin"
assert_json '[.items[].id] == ["kagawa"]' "now of its home town only (roles are read every request)"
bhttp GET /audit
assert_status 403 "and no audit console any more"
n=$(sql "SELECT count(*) FROM renkei.audit_entries WHERE canonical::jsonb->>'kind' = 'staff.withdraw'")
assert_eq 1 "$n" "the withdrawal is an audit event"

# ------------------------------------------------------------- language

browser lang
bhttp GET "/lang?to=en&next=$(urlenc /login?next=/audit)"
assert_status 303 "/lang"
assert_eq "/login?next=/audit" "$LOCATION" "goes back"
assert_match "renkei_lang=en; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000" "$(set_cookies)" \
  "remembers the choice for a year"
bhttp GET /login
assert_match '<html lang="en">' "$HTTP_BODY" "the pages are in English now"
assert_match 'href="/lang\?to=ja&amp;next=%2Flogin"' "$HTTP_BODY" "with the way back to Japanese"
bhttp GET "/lang?to=en&next=$(urlenc //evil.example/)"
assert_eq "/account" "$LOCATION" "no open redirect"
bhttp GET "/lang?to=fr&next=/login"
assert_status 400 "only ja and en"
