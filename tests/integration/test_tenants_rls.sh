#!/usr/bin/env bash
# Row-level security of the tenant registry, from SQL directly: a session
# that does what the hub does (SET ROLE renkei_service, then the tenant
# context in renkei.tenant) cannot read or write another tenant's rows even
# when it names them by id; only the platform context ('*') may create
# tenants or change a parent or a state; a town logs audit entries only about
# itself and reads those it is part of, its prefecture reads its towns', the
# platform reads all; no context means no tenant-scoped rows; the tables are
# append-only where they must be and the parent chain stays a tree.
source "$(dirname "$0")/lib.sh"

migrate

# The registry, made the operator's way: a prefecture, two towns with a
# remote city OS (bearer token, client credentials) and one hosted town.
TOKEN="rk-rls-token-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$TOKEN" >"$tmpdir/token"
printf 'rk-rls-client-secret\n' >"$tmpdir/client-secret"
add() {
  run_renkei tenant add "$@"
  if [[ $RUN_STATUS != 0 ]]; then
    fail "renkei tenant add $* exited $RUN_STATUS: stdout [$RUN_OUT] stderr [$RUN_ERR]"
  fi
}
add kagawa --name 香川県 --hosted
add takamatsu --name 高松市 --parent kagawa --city-os https://orion.takamatsu.example.jp/ \
  --fiware-service takamatsu --upstream-token-file "$tmpdir/token"
add kanonji --name 観音寺市 --parent kagawa --city-os https://orion.kanonji.example.jp/ \
  --upstream-token-url https://idp.kanonji.example.jp/token --upstream-client-id hub \
  --upstream-client-secret-file "$tmpdir/client-secret"
add ayagawa --name 綾川町 --parent kagawa --hosted

assert_eq "kanonji
takamatsu" "$(sql "SELECT tenant_id FROM renkei.tenant_upstreams ORDER BY 1")" \
  "the superuser sees both upstream rows (the data the policies must hide)"

# svc CONTEXT SCRIPT: run the psql SCRIPT in one session as the hub's role
# (SET ROLE renkei_service) with renkei.tenant set to CONTEXT by
# set_config('renkei.tenant', CONTEXT, false); CONTEXT "-" sets nothing.
# CONTEXT is passed as a psql variable, so any string is taken literally.
# Stops at the first error.  Sets SVC_STATUS, SVC_OUT, SVC_ERR.
svc() {
  local ctx=$1 script=$2 setctx=
  if [[ $ctx != - ]]; then
    setctx="SELECT set_config('renkei.tenant', :'ctx', false) AS _ctx \\gset"
  fi
  SVC_STATUS=0
  printf '%s\n' '\set VERBOSITY verbose' 'SET ROLE renkei_service;' "$setctx" "$script" |
    psql "$RENKEI_DB" -XqAt -v ON_ERROR_STOP=1 -v ctx="$ctx" \
      >"$tmpdir/svc.out" 2>"$tmpdir/svc.err" || SVC_STATUS=$?
  SVC_OUT=$(cat "$tmpdir/svc.out")
  SVC_ERR=$(cat "$tmpdir/svc.err")
}

# svc_eq CONTEXT EXPECTED SCRIPT MSG: SCRIPT succeeds and prints EXPECTED.
svc_eq() {
  svc "$1" "$3"
  assert_eq 0 "$SVC_STATUS" "$4: succeeds (stderr [$SVC_ERR])"
  assert_eq "$2" "$SVC_OUT" "$4"
}

# svc_refused CONTEXT REGEX SCRIPT MSG: SCRIPT fails with an error matching
# REGEX (the verbose message: "ERROR:  SQLSTATE: text").
svc_refused() {
  svc "$1" "$3"
  assert_ne 0 "$SVC_STATUS" "$4: refused (stdout [$SVC_OUT])"
  assert_match "$2" "$SVC_ERR" "$4: the error"
}

# Rows changed by a data-modifying statement, as one number.
changed() { printf 'WITH x AS (%s RETURNING 1) SELECT count(*) FROM x;' "$1"; }

RLS_ERR='ERROR: +42501: new row violates row-level security policy'
PRIV_ERR='ERROR: +42501: permission denied'

tenants_rows() { sql "SELECT id, name, parent_id, state, city_os, version FROM renkei.tenants ORDER BY id"; }
upstream_rows() { sql "SELECT tenant_id, url, fiware_service, auth, token_url, client_id, scope, md5(secret) FROM renkei.tenant_upstreams ORDER BY 1"; }
pending_rows() { sql "SELECT id, kind, tenant, actor, detail FROM renkei.pending_events ORDER BY id"; }
audit_rows() {
  sql "SELECT seq, time, kind, tenant, consumer_tenant, consumer_client, provider, agreement, purpose,
              decision, resident, canonical, encode(leaf_hash, 'hex') FROM renkei.audit_entries ORDER BY seq"
}

# entry_sql SEQ KIND TENANT [CONSUMER [PROVIDER]]: an INSERT of one audit
# entry by hand (actor rls-test, detail {"by": "rls"}, a made-up leaf hash);
# "-" is NULL.  Such rows do not belong to the Merkle tree, so the log no
# longer verifies: fine in this throwaway database, where nothing verifies it.
entry_sql() {
  local -a vals=()
  local a
  for a in "$3" "${4:--}" "${5:--}"; do
    if [[ $a == - ]]; then vals+=(NULL); else vals+=("'$a'"); fi
  done
  printf '%s' "INSERT INTO renkei.audit_entries (seq, time, kind, tenant, consumer_tenant, provider, canonical, leaf_hash)" \
    " VALUES ($1, now(), '$2', ${vals[0]}, ${vals[1]}, ${vals[2]}, '{\"actor\": \"rls-test\", \"detail\": {\"by\": \"rls\"}}', sha256('x'));"
}

svc_eq takamatsu "renkei_service|takamatsu|f" \
  "SELECT current_user, renkei.current_tenant(), renkei.is_platform();" \
  "the session runs as renkei_service in takamatsu's context"

# ---------------------------------------------- (1) reading tenant_upstreams

svc_eq takamatsu "" "SELECT tenant_id, url FROM renkei.tenant_upstreams WHERE tenant_id = 'kanonji';" \
  "takamatsu asking for kanonji's upstream by id gets 0 rows"
svc_eq takamatsu "0" "SELECT count(*) FROM renkei.tenant_upstreams WHERE tenant_id <> 'takamatsu';" \
  "takamatsu sees no other tenant's upstream at all"
svc_eq takamatsu "takamatsu|https://orion.takamatsu.example.jp/|bearer|t" \
  "SELECT tenant_id, url, auth, secret IS NOT NULL FROM renkei.tenant_upstreams;" \
  "takamatsu reads its own upstream, and only that"
svc_eq kanonji "kanonji|client_credentials" "SELECT tenant_id, auth FROM renkei.tenant_upstreams;" \
  "kanonji reads its own upstream, and only that"
svc_eq ayagawa "0" "SELECT count(*) FROM renkei.tenant_upstreams;" \
  "a hosted town sees no upstream rows"
# The hub's own read of a tenant (tenants LEFT JOIN tenant_upstreams by id):
# the directory row is visible, the other town's upstream is not.
svc_eq takamatsu "kanonji|観音寺市|||t" \
  "SELECT t.id, t.name, u.url, u.auth, u.secret IS NULL FROM renkei.tenants t LEFT JOIN renkei.tenant_upstreams u ON u.tenant_id = t.id WHERE t.id = 'kanonji';" \
  "the hub's tenant query for kanonji in takamatsu's context carries no upstream"
svc_eq '*' "kanonji|takamatsu" "SELECT string_agg(tenant_id, '|' ORDER BY tenant_id) FROM renkei.tenant_upstreams;" \
  "the platform context sees every upstream"
svc_eq takamatsu "ayagawa|kagawa|kanonji|takamatsu" "SELECT string_agg(id, '|' ORDER BY id) FROM renkei.tenants;" \
  "the directory (renkei.tenants) is readable by every town"

# ... and writing them.
up_before=$(upstream_rows)
svc_eq takamatsu 0 "$(changed "UPDATE renkei.tenant_upstreams SET url = 'https://evil.example/' WHERE tenant_id = 'kanonji'")" \
  "takamatsu's UPDATE of kanonji's upstream changes 0 rows"
svc_eq takamatsu 0 "$(changed "DELETE FROM renkei.tenant_upstreams WHERE tenant_id = 'kanonji'")" \
  "takamatsu's DELETE of kanonji's upstream deletes 0 rows"
svc_refused takamatsu "$RLS_ERR.*tenant_upstreams" \
  "INSERT INTO renkei.tenant_upstreams (tenant_id, url, auth) VALUES ('ayagawa', 'https://evil.example/', 'none');" \
  "takamatsu inserting an upstream for ayagawa"
svc_refused takamatsu "$RLS_ERR.*tenant_upstreams" \
  "UPDATE renkei.tenant_upstreams SET tenant_id = 'ayagawa' WHERE tenant_id = 'takamatsu';" \
  "takamatsu moving its own upstream row to ayagawa"
assert_eq "$up_before" "$(upstream_rows)" "tenant_upstreams is unchanged after takamatsu's attempts"

# ------------------------------------------------ (2) updating renkei.tenants

t_before=$(tenants_rows)
svc_eq takamatsu 0 "$(changed "UPDATE renkei.tenants SET name = '乗っ取り' WHERE id = 'kanonji'")" \
  "takamatsu's UPDATE of kanonji's name changes 0 rows (UPDATE 0)"
svc_eq takamatsu 0 "$(changed "UPDATE renkei.tenants SET name = '乗っ取り' WHERE id IN ('kagawa', 'ayagawa', 'kanonji')")" \
  "takamatsu's UPDATE of its parent and siblings changes 0 rows"
assert_eq "$t_before" "$(tenants_rows)" "renkei.tenants is unchanged (names and versions)"
v=$(sql "SELECT version FROM renkei.tenants WHERE id = 'takamatsu'")
svc_eq takamatsu "takamatsu" \
  "$(printf 'WITH x AS (UPDATE renkei.tenants SET name = %s RETURNING id) SELECT string_agg(id, %s) FROM x;' "'高松市役所'" "','")" \
  "takamatsu's UPDATE without a WHERE clause reaches only its own row"
assert_eq "高松市役所|$((v + 1))" "$(sql "SELECT name, version FROM renkei.tenants WHERE id = 'takamatsu'")" \
  "takamatsu renamed itself; the version went up by one"
assert_eq "$(grep -v '^takamatsu|' <<<"$t_before")" "$(tenants_rows | grep -v '^takamatsu|')" \
  "the other tenants' rows are untouched"
svc_eq takamatsu 1 "$(changed "UPDATE renkei.tenants SET name = '高松市' WHERE id = 'takamatsu'")" \
  "takamatsu renames itself back (UPDATE 1)"

# ----------------------------------- (3) parent and state are the platform's

t_before=$(tenants_rows)
svc_refused takamatsu "42501: only the platform may change the parent of tenant takamatsu" \
  "UPDATE renkei.tenants SET parent_id = NULL WHERE id = 'takamatsu';" \
  "takamatsu clearing its own parent"
svc_refused takamatsu "42501: only the platform may change the parent" \
  "UPDATE renkei.tenants SET parent_id = 'ayagawa' WHERE id = 'takamatsu';" \
  "takamatsu moving itself under ayagawa"
svc_refused takamatsu "42501: only the platform may suspend or resume tenant takamatsu" \
  "UPDATE renkei.tenants SET state = 'suspended' WHERE id = 'takamatsu';" \
  "takamatsu suspending itself"
svc_refused takamatsu "42501: .*id and creation time do not change" \
  "UPDATE renkei.tenants SET id = 'takamatsu2' WHERE id = 'takamatsu';" \
  "takamatsu renaming its id"
assert_eq "$t_before" "$(tenants_rows)" "renkei.tenants unchanged after the refused updates"
svc_eq '*' 1 "$(changed "UPDATE renkei.tenants SET state = 'suspended' WHERE id = 'ayagawa'")" \
  "the platform context may suspend a tenant"
t_before=$(tenants_rows)
svc_refused ayagawa "42501: only the platform may suspend or resume tenant ayagawa" \
  "UPDATE renkei.tenants SET state = 'active' WHERE id = 'ayagawa';" \
  "a suspended ayagawa resuming itself"
assert_eq "$t_before" "$(tenants_rows)" "ayagawa is still suspended"
svc_eq '*' 1 "$(changed "UPDATE renkei.tenants SET state = 'active' WHERE id = 'ayagawa'")" \
  "the platform context may resume it"

# ----------------------------------------------- (4) only the platform creates

svc_refused takamatsu "$RLS_ERR.*\"tenants\"" \
  "INSERT INTO renkei.tenants (id, name, parent_id, city_os) VALUES ('takamatsu_kita', '北', 'takamatsu', 'hosted');" \
  "takamatsu creating a tenant (even under itself)"
svc_refused kagawa "$RLS_ERR.*\"tenants\"" \
  "INSERT INTO renkei.tenants (id, name, city_os) VALUES ('evil', '悪', 'hosted');" \
  "the prefecture's own context creating a tenant"
assert_eq 0 "$(sql "SELECT count(*) FROM renkei.tenants WHERE id IN ('takamatsu_kita', 'evil')")" \
  "no tenant was created"
svc_eq '*' 1 "$(changed "INSERT INTO renkei.tenants (id, name, parent_id, city_os) VALUES ('takamatsu_chuo', '中央', 'takamatsu', 'hosted')")" \
  "the platform context creates a tenant"

# ------------------------------------------------------------ (5) the audit log

# Events go straight into the log (renkei.audit_entries) now; the service role
# may no longer add to the old queue, in any context.
p_before=$(pending_rows)
svc_refused takamatsu "$PRIV_ERR.*pending_events" \
  "INSERT INTO renkei.pending_events (kind, tenant, actor) VALUES ('tenant.update', 'takamatsu', 'rls-test');" \
  "takamatsu recording a pending event about itself"
svc_refused '*' "$PRIV_ERR.*pending_events" \
  "INSERT INTO renkei.pending_events (kind, tenant, actor) VALUES ('tenant.update', 'takamatsu', 'rls-test');" \
  "the platform context recording a pending event"
assert_eq "$p_before" "$(pending_rows)" "pending_events unchanged by the refused inserts"

entries="SELECT kind, tenant, consumer_tenant, provider FROM renkei.audit_entries ORDER BY seq;"
assert_eq "tenant.create|kagawa||
tenant.create|takamatsu||
tenant.create|kanonji||
tenant.create|ayagawa||" "$(sql "$entries")" \
  "the log holds the registry's four tenant.create entries (the superuser's view)"

a_before=$(audit_rows)
svc_refused takamatsu "$RLS_ERR.*audit_entries" "$(entry_sql 1000001 tenant.update kanonji)" \
  "takamatsu logging an entry about kanonji"
svc_refused takamatsu "$RLS_ERR.*audit_entries" "$(entry_sql 1000001 key.rotate -)" \
  "takamatsu logging a platform entry (tenant NULL)"
assert_eq "$a_before" "$(audit_rows)" "no entry was written by the refused inserts"
svc_eq takamatsu "" "$(entry_sql 1000001 tenant.update takamatsu)" "takamatsu logs an entry about itself"
assert_eq 'tenant.update|takamatsu|rls-test|{"by": "rls"}' \
  "$(sql "SELECT kind, tenant, actor, detail FROM renkei.audit_events WHERE seq = 1000001")" \
  "the entry takamatsu logged is there (renkei.audit_events)"
# Entries between towns, and one about the platform, as the platform logs them.
svc_eq '*' "" "$(entry_sql 1000002 transfer kanonji takamatsu kanonji)
$(entry_sql 1000003 transfer ayagawa ayagawa takamatsu)
$(entry_sql 1000004 transfer kanonji ayagawa kanonji)
$(entry_sql 1000005 key.rotate -)" \
  "the platform context logs entries about any town and about the platform"

svc_eq takamatsu "tenant.create|takamatsu||
tenant.update|takamatsu||
transfer|kanonji|takamatsu|kanonji
transfer|ayagawa|ayagawa|takamatsu" "$entries" \
  "takamatsu reads the entries about itself and those it is consumer or provider of, and only those"
svc_eq takamatsu 0 \
  "SELECT count(*) FROM renkei.audit_entries WHERE seq = 1000004 OR (kind = 'tenant.create' AND tenant = 'kanonji');" \
  "takamatsu asking for kanonji's own entries by seq or tenant gets 0 rows"
svc_eq kanonji "tenant.create|kanonji||
transfer|kanonji|takamatsu|kanonji
transfer|kanonji|ayagawa|kanonji" "$entries" \
  "kanonji reads its entries, not takamatsu's"
svc_eq kagawa "tenant.create|kagawa||
tenant.create|takamatsu||
tenant.create|kanonji||
tenant.create|ayagawa||
tenant.update|takamatsu||
transfer|kanonji|takamatsu|kanonji
transfer|ayagawa|ayagawa|takamatsu
transfer|kanonji|ayagawa|kanonji" "$entries" \
  "the prefecture kagawa reads its own entries and its towns', not the platform's"
svc_eq '*' "9|key.rotate" \
  "SELECT count(*), string_agg(kind, ',') FILTER (WHERE tenant IS NULL) FROM renkei.audit_entries;" \
  "the platform context reads every entry, the platform's too"
svc_eq '*' "$(sql "$entries")" "$entries" "the platform context reads what the superuser reads"
# The readable view applies the same row-level security (security_invoker).
svc_eq takamatsu "tenant.create|takamatsu
tenant.update|takamatsu
transfer|kanonji
transfer|ayagawa" "SELECT kind, tenant FROM renkei.audit_events ORDER BY seq;" \
  "takamatsu reads through renkei.audit_events only the entries it reads in the table"
svc_eq kagawa 8 "SELECT count(*) FROM renkei.audit_events;" "kagawa reads 8 entries through the view"
svc_eq '*' 9 "SELECT count(*) FROM renkei.audit_events;" "the platform context reads all 9 through the view"

# ----------------------------------------------------- (6) no tenant context

svc_eq - "|f|0" "SELECT renkei.current_tenant(), renkei.is_platform(), (SELECT count(*) FROM renkei.tenant_upstreams);" \
  "without renkei.tenant: no tenant, not the platform, 0 upstream rows"
svc_eq '' "|f|0" "SELECT renkei.current_tenant(), renkei.is_platform(), (SELECT count(*) FROM renkei.tenant_upstreams);" \
  "with renkei.tenant empty: no tenant, not the platform, 0 upstream rows"
svc_eq nosuchtown "0" "SELECT count(*) FROM renkei.tenant_upstreams;" \
  "a context naming no tenant: 0 upstream rows"
svc_eq - 0 "$(changed "UPDATE renkei.tenants SET name = 'x' WHERE id = 'takamatsu'")" \
  "without a context an UPDATE of renkei.tenants changes 0 rows"
svc_eq - 0 "$(changed "DELETE FROM renkei.tenant_upstreams")" \
  "without a context a DELETE of tenant_upstreams deletes 0 rows"
svc_eq - "0|0" "SELECT (SELECT count(*) FROM renkei.audit_entries), (SELECT count(*) FROM renkei.audit_events);" \
  "without a context: 0 audit entries, in the table or the view"
a_before=$(audit_rows)
svc_refused - "$RLS_ERR.*audit_entries" "$(entry_sql 1000006 tenant.update takamatsu)" \
  "without a context, logging an entry"
assert_eq "$a_before" "$(audit_rows)" "no entry was written without a context"
svc_refused - "$RLS_ERR.*tenant_upstreams" \
  "INSERT INTO renkei.tenant_upstreams (tenant_id, url, auth) VALUES ('ayagawa', 'https://evil.example/', 'none');" \
  "without a context, inserting an upstream"
# The hub sets the context per transaction (set_config(..., true)): it does
# not outlive the transaction on a pooled connection.
svc_eq - "t|f|0" \
  "BEGIN; SELECT set_config('renkei.tenant', '*', true) AS _p \\gset
SELECT renkei.is_platform() AS in_tx \\gset
COMMIT;
SELECT :'in_tx', renkei.is_platform(), (SELECT count(*) FROM renkei.tenant_upstreams);" \
  "a transaction-local platform context ends with its transaction"
assert_eq "$up_before" "$(upstream_rows)" "tenant_upstreams unchanged after the context-less attempts"

# ------------------------------------------------ (7) roles, owner, FORCE RLS

assert_eq "f|f|f" "$(sql "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = 'renkei_service'")" \
  "renkei_service is no superuser, has no BYPASSRLS, cannot log in"
assert_eq f "$(sql "SELECT pg_has_role('renkei_service', 'renkei_owner', 'MEMBER')")" \
  "renkei_service is not a member of renkei_owner"
for t in tenants tenant_upstreams pending_events audit_entries; do
  assert_eq "renkei_owner|t|t" \
    "$(sql "SELECT c.relowner::regrole, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c WHERE c.oid = 'renkei.$t'::regclass")" \
    "renkei.$t: owned by renkei_owner, row-level security enabled and forced"
done
assert_eq "" "$(sql "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname IN ('tenant', 'tenant_id') AND NOT a.attisdropped
                     WHERE n.nspname = 'renkei' AND c.relkind IN ('r', 'p') AND NOT (c.relrowsecurity AND c.relforcerowsecurity)")" \
  "every table of schema renkei with a tenant column has row-level security forced"
assert_eq 0 "$(sql "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = 'renkei' AND c.relowner = 'renkei_service'::regrole")" \
  "renkei_service owns nothing in schema renkei"

# ---------------------------------------------------- (8) what is append-only

for p in "tenants DELETE" "tenants TRUNCATE" "pending_events INSERT" "pending_events UPDATE" "pending_events DELETE" \
  "pending_events TRUNCATE" "audit_entries UPDATE" "audit_entries DELETE" "audit_entries TRUNCATE"; do
  read -r t priv <<<"$p"
  assert_eq f "$(sql "SELECT has_table_privilege('renkei_service', 'renkei.$t', '$priv')")" \
    "renkei_service has no $priv privilege on renkei.$t"
done
t_before=$(tenants_rows)
a_before=$(audit_rows)
svc_refused takamatsu "$PRIV_ERR.*tenants" "DELETE FROM renkei.tenants WHERE id = 'takamatsu';" \
  "takamatsu deleting its own tenant row"
svc_refused '*' "$PRIV_ERR.*tenants" "DELETE FROM renkei.tenants WHERE id = 'ayagawa';" \
  "the platform context deleting a tenant"
svc_refused '*' "$PRIV_ERR.*audit_entries" "UPDATE renkei.audit_entries SET kind = 'forged';" \
  "the platform context updating audit entries"
svc_refused '*' "$PRIV_ERR.*audit_entries" "DELETE FROM renkei.audit_entries;" \
  "the platform context deleting audit entries"
svc_refused '*' "$PRIV_ERR.*audit_entries" "TRUNCATE renkei.audit_entries;" \
  "the platform context truncating audit entries"
svc_refused takamatsu "$PRIV_ERR.*audit_entries" "UPDATE renkei.audit_entries SET kind = 'forged' WHERE tenant = 'takamatsu';" \
  "takamatsu updating its entries"
svc_refused takamatsu "$PRIV_ERR.*audit_entries" "DELETE FROM renkei.audit_entries WHERE tenant = 'takamatsu';" \
  "takamatsu deleting its entries"
# Even a role that has the privileges (the superuser, past row-level
# security) meets the triggers.
superuser_refused() {
  local st=0
  psql "$RENKEI_DB" -XqAt -v ON_ERROR_STOP=1 -c "$1" >/dev/null 2>"$tmpdir/su.err" || st=$?
  assert_ne 0 "$st" "superuser $2: refused"
  assert_match 'append-only' "$(cat "$tmpdir/su.err")" "superuser $2: the trigger says append-only"
}
superuser_refused "DELETE FROM renkei.tenants WHERE id = 'ayagawa'" "DELETE of a tenant"
superuser_refused "UPDATE renkei.audit_entries SET kind = 'forged'" "UPDATE of audit entries"
superuser_refused "DELETE FROM renkei.audit_entries" "DELETE of audit entries"
superuser_refused "TRUNCATE renkei.audit_entries" "TRUNCATE of audit entries"
assert_eq "$t_before" "$(tenants_rows)" "renkei.tenants unchanged after the refused deletes"
assert_eq "$a_before" "$(audit_rows)" "renkei.audit_entries unchanged after the refused updates, deletes and truncates"

# ------------------------------------------------- (9) the parent chain is a tree

t_before=$(tenants_rows)
svc_refused '*' "kagawa cannot be its own ancestor" \
  "UPDATE renkei.tenants SET parent_id = 'takamatsu' WHERE id = 'kagawa';" \
  "platform: kagawa under takamatsu (whose parent is kagawa)"
svc_refused '*' "kagawa cannot be its own ancestor" \
  "UPDATE renkei.tenants SET parent_id = 'takamatsu_chuo' WHERE id = 'kagawa';" \
  "platform: kagawa under takamatsu_chuo (a cycle of three)"
svc_refused '*' "cannot be its own ancestor|23514: .*check constraint" \
  "UPDATE renkei.tenants SET parent_id = 'kagawa' WHERE id = 'kagawa';" \
  "platform: kagawa as its own parent"
svc_refused '*' "23503|foreign key" \
  "UPDATE renkei.tenants SET parent_id = 'nosuch' WHERE id = 'ayagawa';" \
  "platform: a parent that does not exist"
assert_eq "$t_before" "$(tenants_rows)" "renkei.tenants unchanged after the refused parent changes"
# Nine levels below kagawa is one too deep.
chain="INSERT INTO renkei.tenants (id, name, parent_id, city_os) VALUES ('d1', 'd', 'kagawa', 'hosted');"
for i in 2 3 4 5 6 7 8; do
  chain+=" INSERT INTO renkei.tenants (id, name, parent_id, city_os) VALUES ('d$i', 'd', 'd$((i - 1))', 'hosted');"
done
svc_eq '*' "" "$chain" "platform: a chain of eight levels below kagawa"
svc_refused '*' "deeper than 8" \
  "INSERT INTO renkei.tenants (id, name, parent_id, city_os) VALUES ('d9', 'd', 'd8', 'hosted');" \
  "platform: a ninth level"

# ---------------------------------- (10) a context is a string, '*' is the platform

for ctx in takamatsu "takamatsu' OR '1'='1" "' OR is_platform() --" ' *' '* ' '**' '%' '.*' "*'" 'kagawa,*'; do
  svc_eq "$ctx" "$ctx|f|0|0" \
    "SELECT renkei.current_tenant(), renkei.is_platform(), (SELECT count(*) FROM renkei.tenant_upstreams WHERE tenant_id <> 'takamatsu'), (SELECT count(*) FROM renkei.audit_entries WHERE 'takamatsu' NOT IN (coalesce(tenant, ''), coalesce(consumer_tenant, ''), coalesce(provider, '')));" \
    "context [$ctx] is just that string: not the platform, no other tenant's upstream or audit entries"
done
svc_eq "takamatsu' OR '1'='1" 0 "$(changed "UPDATE renkei.tenants SET name = name")" \
  "context [takamatsu' OR '1'='1] updates 0 rows"
svc_eq '*' "t|2" "SELECT renkei.is_platform(), (SELECT count(*) FROM renkei.tenant_upstreams);" \
  "context [*] exactly is the platform: is_platform() and every upstream (so the hub must never take it from a request)"
svc_refused '*' "23514|violates check constraint" \
  "INSERT INTO renkei.tenants (id, name, city_os) VALUES ('*', 'platform', 'hosted');" \
  "no tenant can have the id '*'"
