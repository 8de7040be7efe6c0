-- 0003_tenants: the registry of towns and how the hub reaches their city OS.
--
-- tenants          the directory: id (the Fiware-Service name), display name,
--                  parent (a prefecture above its towns), state, city OS kind.
--                  Every town may read the directory (the exchange and the
--                  catalogue need it); only the platform creates tenants,
--                  changes a parent or suspends; a town edits its own row.
-- tenant_upstreams where a remote city OS lives and the credentials the hub
--                  presents there (sealed with the master secret). Tenant-
--                  scoped: a town sees only its own, the platform sees all.

CREATE TABLE renkei.tenants (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9_]{1,50}$'),
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200
                                     AND name !~ '[[:cntrl:]]'),
    parent_id   text REFERENCES renkei.tenants (id),
    state       text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'suspended')),
    city_os     text NOT NULL CHECK (city_os IN ('hosted', 'remote')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    version     integer NOT NULL DEFAULT 1,
    CHECK (parent_id IS NULL OR parent_id <> id)
);
CREATE INDEX tenants_parent ON renkei.tenants (parent_id);

ALTER TABLE renkei.tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE renkei.tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenants_read ON renkei.tenants FOR SELECT USING (true);
CREATE POLICY tenants_create ON renkei.tenants FOR INSERT WITH CHECK (renkei.is_platform());
CREATE POLICY tenants_edit ON renkei.tenants FOR UPDATE
    USING (renkei.is_platform() OR id = renkei.current_tenant())
    WITH CHECK (renkei.is_platform() OR id = renkei.current_tenant());
GRANT SELECT, INSERT, UPDATE ON renkei.tenants TO renkei_service;

-- What only the platform may change, whatever the row-level policy lets a
-- town update, and the parent chain stays a tree.
CREATE FUNCTION renkei.tenants_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    cur   text;
    depth integer := 0;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.id <> OLD.id OR NEW.created_at <> OLD.created_at THEN
            RAISE EXCEPTION 'a tenant''s id and creation time do not change'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NEW.parent_id IS DISTINCT FROM OLD.parent_id AND NOT renkei.is_platform() THEN
            RAISE EXCEPTION 'only the platform may change the parent of tenant %', OLD.id
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NEW.state <> OLD.state AND NOT renkei.is_platform() THEN
            RAISE EXCEPTION 'only the platform may suspend or resume tenant %', OLD.id
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        NEW.updated_at := now();
        NEW.version := OLD.version + 1;
    END IF;
    cur := NEW.parent_id;
    WHILE cur IS NOT NULL LOOP
        IF cur = NEW.id THEN
            RAISE EXCEPTION 'tenant % cannot be its own ancestor', NEW.id
                USING ERRCODE = 'integrity_constraint_violation', HINT = 'cycle';
        END IF;
        depth := depth + 1;
        IF depth > 8 THEN
            RAISE EXCEPTION 'the parent chain of tenant % is deeper than 8', NEW.id
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        SELECT parent_id INTO cur FROM renkei.tenants WHERE id = cur;
    END LOOP;
    RETURN NEW;
END
$$;
CREATE TRIGGER tenants_guard BEFORE INSERT OR UPDATE ON renkei.tenants
    FOR EACH ROW EXECUTE FUNCTION renkei.tenants_guard();
-- No deletes through the hub: a town leaves by suspension; its history stays.
CREATE TRIGGER tenants_no_delete BEFORE DELETE ON renkei.tenants
    FOR EACH ROW EXECUTE FUNCTION renkei.refuse_change();

CREATE TABLE renkei.tenant_upstreams (
    tenant_id       text PRIMARY KEY REFERENCES renkei.tenants (id),
    url             text NOT NULL CHECK (url ~* '^https?://' AND length(url) <= 2048),
    fiware_service  text CHECK (fiware_service ~ '^[a-z0-9_]{1,50}$'),
    auth            text NOT NULL CHECK (auth IN ('none', 'bearer', 'client_credentials')),
    token_url       text CHECK (token_url ~* '^https?://' AND length(token_url) <= 2048),
    client_id       text CHECK (length(client_id) BETWEEN 1 AND 200),
    scope           text CHECK (length(scope) <= 1000),
    secret          bytea,         -- core_seal(label, aad = tenant id): token or client secret
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((auth = 'none') = (secret IS NULL)),
    CHECK ((auth = 'client_credentials') = (token_url IS NOT NULL AND client_id IS NOT NULL))
);
ALTER TABLE renkei.tenant_upstreams ENABLE ROW LEVEL SECURITY;
ALTER TABLE renkei.tenant_upstreams FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_upstreams_own ON renkei.tenant_upstreams
    USING (renkei.is_platform() OR tenant_id = renkei.current_tenant())
    WITH CHECK (renkei.is_platform() OR tenant_id = renkei.current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON renkei.tenant_upstreams TO renkei_service;

-- Caches of tenant state in every hub node drop their entry when it changes
-- (LISTEN renkei_tenants; the payload is the tenant id).
CREATE FUNCTION renkei.tenants_notify() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('renkei_tenants', NEW.id);
    RETURN NULL;
END
$$;
CREATE FUNCTION renkei.tenant_upstreams_notify() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('renkei_tenants', coalesce(NEW.tenant_id, OLD.tenant_id));
    RETURN NULL;
END
$$;
CREATE TRIGGER tenants_changed AFTER INSERT OR UPDATE ON renkei.tenants
    FOR EACH ROW EXECUTE FUNCTION renkei.tenants_notify();
CREATE TRIGGER tenant_upstreams_changed AFTER INSERT OR UPDATE OR DELETE ON renkei.tenant_upstreams
    FOR EACH ROW EXECUTE FUNCTION renkei.tenant_upstreams_notify();
