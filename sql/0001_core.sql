-- 0001_core: the roles and the base schema every module builds on.
--
-- renkei_owner   owns schema renkei and every object in it; migrations run as it.
-- renkei_service what the hub runs as: pooled connections SET ROLE to it right
--                after connecting. It gets only the privileges each table grants
--                it, and row-level security applies to it (it owns nothing).
-- Both are NOLOGIN: a deployment grants them to its own login roles.
-- Roles are shared by every database of a cluster, so creating them tolerates
-- another database (or a concurrent migrate) having made them first.

DO $$
BEGIN
    BEGIN
        CREATE ROLE renkei_owner NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        CREATE ROLE renkei_service NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
END
$$;

-- Whoever runs migrations must be able to become the owner (superusers
-- already can; a CREATEROLE login in a managed service needs the grant).
DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'renkei_owner', 'MEMBER') THEN
        EXECUTE format('GRANT renkei_owner TO %I', current_user);
    END IF;
END
$$;

ALTER SCHEMA renkei OWNER TO renkei_owner;
ALTER TABLE renkei.schema_migrations OWNER TO renkei_owner;
REVOKE ALL ON SCHEMA renkei FROM PUBLIC;
GRANT USAGE ON SCHEMA renkei TO renkei_service;
GRANT SELECT ON renkei.schema_migrations TO renkei_service;

SET LOCAL ROLE renkei_owner;

-- Sequences behind identity columns are usable by the service; tables are
-- granted one by one in the migration that creates them.
ALTER DEFAULT PRIVILEGES FOR ROLE renkei_owner IN SCHEMA renkei
    GRANT USAGE, SELECT ON SEQUENCES TO renkei_service;
-- Functions are not executable by PUBLIC (PostgreSQL's default): each is
-- granted to the service on purpose. This must be a global default for the
-- role; a per-schema default cannot take back a global one.
ALTER DEFAULT PRIVILEGES FOR ROLE renkei_owner
    REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- The tenant of the current transaction, set by the hub's transaction runner
-- with set_config('renkei.tenant', id, true). NULL when none is set, so a
-- row-level security policy written as tenant_id = renkei.current_tenant()
-- shows nothing to a transaction that forgot to name its tenant.
CREATE FUNCTION renkei.current_tenant() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('renkei.tenant', true), '') $$;
GRANT EXECUTE ON FUNCTION renkei.current_tenant() TO renkei_service;

-- True in the platform's own context (the operator's CLI, the platform
-- admin API): set_config('renkei.tenant', '*', true). A tenant id can never
-- be '*', and the hub sets it only from its CORE_DB_PLATFORM constant.
CREATE FUNCTION renkei.is_platform() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('renkei.tenant', true) = '*', false) $$;
GRANT EXECUTE ON FUNCTION renkei.is_platform() TO renkei_service;

-- Trigger function for append-only tables (the audit log): refuses UPDATE,
-- DELETE and TRUNCATE through the hub. The owner or a superuser can still
-- disable triggers: tamper evidence comes from the Merkle log, not this.
CREATE FUNCTION renkei.refuse_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'table %.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
REVOKE EXECUTE ON FUNCTION renkei.refuse_change() FROM PUBLIC;
