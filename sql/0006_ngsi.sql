-- 0006_ngsi: the hosted NGSI-v2 context store (one per hosted town) and its
-- subscriptions. Geography is PostGIS's (installed in schema public; the
-- hub's connections search renkei, then public).

-- The runner made this transaction renkei_owner; the extension and the
-- catalogue marks below need the login role (a superuser the first time; a
-- database where the operator installed PostGIS beforehand needs no
-- privilege for the extension).
RESET ROLE;
CREATE EXTENSION IF NOT EXISTS postgis SCHEMA public;

-- Row-level security lets the planner use an index for a condition only
-- when the condition's function is LEAKPROOF; jsonb containment (the q
-- filters' GIN index) and PostGIS's bounding-box operators
-- (the geo filters' GIST indexes) are not marked so, which
-- would make every filtered query of the service role scan the town's whole
-- table. None of them can reveal a row through an error or side effect (the
-- exact geometry predicates, which can raise errors quoting coordinates, stay
-- unmarked and run after the tenant check), so they are marked here. Only a
-- superuser may do it: otherwise the operator runs these statements once
-- (queries stay correct without them, only slower). pg_dump does not keep
-- them: run them again after a restore or a PostGIS upgrade.
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        ALTER FUNCTION pg_catalog.jsonb_contains(jsonb, jsonb) LEAKPROOF;
        ALTER FUNCTION public.geography_overlaps(public.geography, public.geography) LEAKPROOF;
        ALTER FUNCTION public.geometry_overlaps(public.geometry, public.geometry) LEAKPROOF;
        ALTER FUNCTION public.geometry_within(public.geometry, public.geometry) LEAKPROOF;
        ALTER FUNCTION public.geometry_same(public.geometry, public.geometry) LEAKPROOF;
    ELSE
        RAISE NOTICE 'not a superuser: jsonb_contains and the PostGIS bounding-box operators stay not LEAKPROOF, so filters under row-level security cannot use their indexes';
    END IF;
END
$$;

SET LOCAL ROLE renkei_owner;

-- One row per entity. Identity is (tenant, service path, id, type) as in
-- Orion. attrs holds every attribute as
--   {"<name>": {"type": T, "value": V, "metadata": {"<md>": {"type", "value"}},
--               "dateCreated": ISO, "dateModified": ISO}}
-- so q/mq filters and orderBy are JSONB expressions PostgreSQL evaluates
-- (GIN-indexed containment for equality). seq gives creation order, stable
-- across pages. geom is the entity's one location attribute, if any.
CREATE TABLE renkei.ngsi_entities (
    tenant_id    text NOT NULL REFERENCES renkei.tenants (id),
    service_path text NOT NULL CHECK (service_path ~ '^/([A-Za-z0-9_]{1,50}(/[A-Za-z0-9_]{1,50}){0,9})?$'),
    id           text NOT NULL CHECK (octet_length(id) BETWEEN 1 AND 256),
    type         text NOT NULL CHECK (octet_length(type) BETWEEN 1 AND 256),
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    attrs        jsonb NOT NULL CHECK (jsonb_typeof(attrs) = 'object'),
    geom         public.geometry(Geometry, 4326),
    -- the same on the sphere, stored: casting per row made a 2 km search
    -- over 100,000 entities ten times slower
    geog         public.geography GENERATED ALWAYS AS (public.geography(geom)) STORED,
    created_at   timestamptz NOT NULL DEFAULT now(),
    modified_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id, type, service_path)
);
CREATE UNIQUE INDEX ngsi_entities_order ON renkei.ngsi_entities (tenant_id, seq);
CREATE INDEX ngsi_entities_type ON renkei.ngsi_entities (tenant_id, type, seq);
CREATE INDEX ngsi_entities_path ON renkei.ngsi_entities (tenant_id, service_path text_pattern_ops);
-- jsonb_path_ops: one entry per path and value, so {"station":{"value":"S42"}}
-- is one lookup (the default opclass looks up "station", "value" and "S42"
-- apart and intersects; "value" is in every row: 2.5 ms against 0.06 ms at
-- 10,000 entities). It serves @> only: existence (q=attr) is a filter.
-- fastupdate off: sensors update all the time, and entries waiting in the
-- pending list are scanned by every query until a vacuum moves them (a
-- filtered query went from 2 ms to 11 ms after a run of updates).
CREATE INDEX ngsi_entities_attrs ON renkei.ngsi_entities USING gin (attrs jsonb_path_ops)
    WITH (fastupdate = off);
CREATE INDEX ngsi_entities_geom ON renkei.ngsi_entities USING gist (geom);
CREATE INDEX ngsi_entities_geog ON renkei.ngsi_entities USING gist (geog);
ALTER TABLE renkei.ngsi_entities ENABLE ROW LEVEL SECURITY;
ALTER TABLE renkei.ngsi_entities FORCE ROW LEVEL SECURITY;
CREATE POLICY ngsi_entities_own ON renkei.ngsi_entities
    USING (renkei.is_platform() OR tenant_id = renkei.current_tenant())
    WITH CHECK (renkei.is_platform() OR tenant_id = renkei.current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON renkei.ngsi_entities TO renkei_service;

-- Subscriptions: what Orion keeps per subscription, the request's shape in
-- spec (subject, notification without its counters, throttling, description),
-- and the delivery counters beside it.
CREATE TABLE renkei.ngsi_subscriptions (
    tenant_id           text NOT NULL REFERENCES renkei.tenants (id),
    id                  text NOT NULL CHECK (id ~ '^[0-9a-f]{24}$'),
    service_path        text NOT NULL,
    spec                jsonb NOT NULL CHECK (jsonb_typeof(spec) = 'object'),
    status              text NOT NULL CHECK (status IN ('active', 'inactive', 'oneshot')),
    expires             timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    times_sent          bigint NOT NULL DEFAULT 0,
    fails_counter       integer NOT NULL DEFAULT 0,
    last_notification   timestamptz,
    last_success        timestamptz,
    last_failure        timestamptz,
    last_success_code   integer,
    last_failure_reason text,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX ngsi_subscriptions_order ON renkei.ngsi_subscriptions (tenant_id, created_at, id);
ALTER TABLE renkei.ngsi_subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE renkei.ngsi_subscriptions FORCE ROW LEVEL SECURITY;
CREATE POLICY ngsi_subscriptions_own ON renkei.ngsi_subscriptions
    USING (renkei.is_platform() OR tenant_id = renkei.current_tenant())
    WITH CHECK (renkei.is_platform() OR tenant_id = renkei.current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON renkei.ngsi_subscriptions TO renkei_service;

-- Subscriptions changed on one node are reloaded by the others.
CREATE FUNCTION renkei.ngsi_subscriptions_notify() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('renkei_ngsi_subs', coalesce(NEW.tenant_id, OLD.tenant_id));
    RETURN NULL;
END
$$;
CREATE TRIGGER ngsi_subscriptions_changed
    AFTER INSERT OR DELETE OR UPDATE OF spec, status, expires ON renkei.ngsi_subscriptions
    FOR EACH ROW EXECUTE FUNCTION renkei.ngsi_subscriptions_notify();

-- q/mq helpers. A JSON number as numeric, anything else NULL.
CREATE FUNCTION renkei.ngsi_num(v jsonb) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN jsonb_typeof(v) = 'number' THEN v::numeric END $$;
GRANT EXECUTE ON FUNCTION renkei.ngsi_num(jsonb) TO renkei_service;

-- An ISO 8601 date/time string as timestamptz (UTC when it names no zone),
-- anything else (other types, other text, impossible dates) NULL.
CREATE FUNCTION renkei.ngsi_time_text(s text) RETURNS timestamptz
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    AS $$
BEGIN
    IF s !~ '(Z|[+-][0-9]{2}(:?[0-9]{2})?)$' THEN
        s := s || 'Z';
    END IF;
    RETURN s::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;
CREATE FUNCTION renkei.ngsi_time(v jsonb) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'string'
                 AND (v #>> '{}') ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$'
           THEN renkei.ngsi_time_text(v #>> '{}') END
    $$;
GRANT EXECUTE ON FUNCTION renkei.ngsi_time_text(text) TO renkei_service;
GRANT EXECUTE ON FUNCTION renkei.ngsi_time(jsonb) TO renkei_service;
