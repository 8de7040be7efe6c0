-- 0007_residents: residents (the common ID), their links to each town's
-- local resident number, hub sessions (single sign-on), consent, one-time
-- authorization codes, refresh tokens, and sign-in throttling.
--
-- residents          one row per person: the common ID (random, internal,
--                    never sent to an app), home tenant, login, display name,
--                    scrypt hash with its parameters. A town sees its own
--                    residents; sign-in looks across towns as the platform.
-- resident_links     common ID -> a town's local resident number, one per
--                    (resident, town). A town sees the links into itself.
-- sessions           the hub's sign-in sessions (cookie stored as SHA-256).
-- grants / consents  what a resident allowed one client: a grant per
--                    (resident, client) while it lives, its scopes with time
--                    granted and optional expiry. Revocation ends the grant;
--                    every token that names it dies with it.
-- auth_codes         one-time codes (stored as SHA-256), 60 s at most; what
--                    the redemption issued, so a replay can revoke it.
-- refresh_tokens     opaque, stored as SHA-256, rotated on each use; a family
--                    shares one id so reuse of a rotated token kills it all.
-- signin_failures    failed sign-ins per login and per address, for throttling.
--
-- All of them are platform-only except residents and resident_links (a
-- town's admin manages its own) and grants/consents (a town's admin may read
-- its own clients' grants).

ALTER TABLE renkei.clients
    ADD COLUMN sector_identifier text
        CHECK (sector_identifier IS NULL OR sector_identifier ~ '^[a-z0-9.:-]{1,253}$'),
    ADD COLUMN post_logout_redirect_uris text[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(post_logout_redirect_uris) <= 20);

CREATE TABLE renkei.residents (
    id             text PRIMARY KEY CHECK (id ~ '^r_[A-Za-z0-9_-]{22,62}$'),
    tenant_id      text NOT NULL REFERENCES renkei.tenants (id),
    login          text NOT NULL CHECK (char_length(login) BETWEEN 3 AND 254
                                        AND login = lower(login)
                                        AND login !~ '[[:space:][:cntrl:]]'),
    name           text NOT NULL DEFAULT '' CHECK (char_length(name) <= 200
                                                   AND name !~ '[[:cntrl:]]'),
    email          text CHECK (email IS NULL OR (char_length(email) <= 254 AND email ~ '^[^@[:space:]]+@[^@[:space:]]+$')),
    email_verified boolean NOT NULL DEFAULT false,
    password_hash  text NOT NULL CHECK (password_hash ~ '^\$scrypt\$'),
    state          text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'disabled')),
    -- tokens issued before this (when the resident was last disabled) stay dead
    tokens_after   timestamptz,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    version        integer NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX residents_login ON renkei.residents (login);
CREATE INDEX residents_tenant ON renkei.residents (tenant_id, id);
ALTER TABLE renkei.residents ENABLE ROW LEVEL SECURITY;
ALTER TABLE renkei.residents FORCE ROW LEVEL SECURITY;
CREATE POLICY residents_own ON renkei.residents
    USING (renkei.is_platform() OR tenant_id = renkei.current_tenant())
    WITH CHECK (renkei.is_platform() OR tenant_id = renkei.current_tenant());
GRANT SELECT, INSERT, UPDATE ON renkei.residents TO renkei_service;

CREATE FUNCTION renkei.residents_touch() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.tenant_id <> OLD.tenant_id THEN
        RAISE EXCEPTION 'a resident''s common ID and home town do not change'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.updated_at := now();
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;
CREATE TRIGGER residents_touch BEFORE UPDATE ON renkei.residents
    FOR EACH ROW EXECUTE FUNCTION renkei.residents_touch();
CREATE TRIGGER residents_no_delete BEFORE DELETE ON renkei.residents
    FOR EACH ROW EXECUTE FUNCTION renkei.refuse_change();

CREATE TABLE renkei.resident_links (
    resident_id  text NOT NULL REFERENCES renkei.residents (id),
    tenant_id    text NOT NULL REFERENCES renkei.tenants (id),
    local_id     text NOT NULL CHECK (char_length(local_id) BETWEEN 1 AND 100
                                      AND local_id !~ '[[:space:][:cntrl:]]'),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (resident_id, tenant_id)
);
CREATE UNIQUE INDEX resident_links_local ON renkei.resident_links (tenant_id, local_id);
ALTER TABLE renkei.resident_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE renkei.resident_links FORCE ROW LEVEL SECURITY;
CREATE POLICY resident_links_own ON renkei.resident_links
    USING (renkei.is_platform() OR tenant_id = renkei.current_tenant())
    WITH CHECK (renkei.is_platform() OR tenant_id = renkei.current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON renkei.resident_links TO renkei_service;

CREATE TABLE renkei.sessions (
    id_hash      bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    sid          text NOT NULL UNIQUE CHECK (sid ~ '^[A-Za-z0-9_-]{16,64}$'),
    resident_id  text NOT NULL REFERENCES renkei.residents (id),
    auth_time    timestamptz NOT NULL,
    amr          text[] NOT NULL DEFAULT '{pwd}',
    acr          text NOT NULL DEFAULT '1',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    ended_at     timestamptz
);
CREATE INDEX sessions_resident ON renkei.sessions (resident_id);
CREATE INDEX sessions_expiry ON renkei.sessions (expires_at);

CREATE TABLE renkei.grants (
    id           text PRIMARY KEY CHECK (id ~ '^g_[A-Za-z0-9_-]{16,62}$'),
    resident_id  text NOT NULL REFERENCES renkei.residents (id),
    client_id    text NOT NULL REFERENCES renkei.clients (id),
    tenant_id    text NOT NULL REFERENCES renkei.tenants (id), -- the client's town
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    revoked_by   text
);
CREATE UNIQUE INDEX grants_live ON renkei.grants (resident_id, client_id) WHERE revoked_at IS NULL;
CREATE INDEX grants_resident ON renkei.grants (resident_id, created_at);

CREATE TABLE renkei.consents (
    grant_id     text NOT NULL REFERENCES renkei.grants (id),
    scope        text NOT NULL CHECK (char_length(scope) BETWEEN 1 AND 64),
    granted_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    PRIMARY KEY (grant_id, scope)
);

CREATE TABLE renkei.auth_codes (
    code_hash      bytea PRIMARY KEY CHECK (length(code_hash) = 32),
    client_id      text NOT NULL,
    grant_id       text NOT NULL REFERENCES renkei.grants (id),
    resident_id    text NOT NULL,
    sid            text NOT NULL,
    redirect_uri   text NOT NULL,
    scope          text NOT NULL,
    nonce          text,
    code_challenge text NOT NULL,
    resource       text,
    auth_time      timestamptz NOT NULL,
    amr            text[] NOT NULL,
    acr            text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz,
    -- what the redemption issued, revoked if the code is presented again
    access_jti     text,
    access_exp     timestamptz,
    family_id      text
);
CREATE INDEX auth_codes_expiry ON renkei.auth_codes (expires_at);

CREATE TABLE renkei.refresh_tokens (
    token_hash   bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    family_id    text NOT NULL,
    grant_id     text NOT NULL REFERENCES renkei.grants (id),
    client_id    text NOT NULL,
    resident_id  text NOT NULL,
    sid          text,
    scope        text NOT NULL,
    resource     text,
    auth_time    timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    rotated_at   timestamptz,
    revoked_at   timestamptz,
    -- the access token issued with it, revoked with the family
    access_jti   text,
    access_exp   timestamptz
);
CREATE INDEX refresh_tokens_family ON renkei.refresh_tokens (family_id);
CREATE INDEX refresh_tokens_grant ON renkei.refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_expiry ON renkei.refresh_tokens (expires_at);

CREATE TABLE renkei.signin_failures (
    key           text PRIMARY KEY CHECK (char_length(key) <= 300),
    failures      integer NOT NULL DEFAULT 0,
    window_start  timestamptz NOT NULL DEFAULT now(),
    locked_until  timestamptz
);

-- Platform-only tables: the service reads and writes them only in the
-- platform context; grants and consents are also readable by the client's
-- town (a town's admin sees who consented to its apps).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sessions', 'auth_codes', 'refresh_tokens', 'signin_failures'] LOOP
        EXECUTE format('ALTER TABLE renkei.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE renkei.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON renkei.%I USING (renkei.is_platform())
                            WITH CHECK (renkei.is_platform())', t || '_platform', t);
    END LOOP;
END
$$;
GRANT SELECT, INSERT, UPDATE, DELETE ON renkei.sessions, renkei.auth_codes,
    renkei.refresh_tokens, renkei.signin_failures TO renkei_service;

ALTER TABLE renkei.grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE renkei.grants FORCE ROW LEVEL SECURITY;
CREATE POLICY grants_read ON renkei.grants FOR SELECT
    USING (renkei.is_platform() OR tenant_id = renkei.current_tenant());
CREATE POLICY grants_add ON renkei.grants FOR INSERT WITH CHECK (renkei.is_platform());
CREATE POLICY grants_change ON renkei.grants FOR UPDATE
    USING (renkei.is_platform()) WITH CHECK (renkei.is_platform());
GRANT SELECT, INSERT, UPDATE ON renkei.grants TO renkei_service;

ALTER TABLE renkei.consents ENABLE ROW LEVEL SECURITY;
ALTER TABLE renkei.consents FORCE ROW LEVEL SECURITY;
CREATE POLICY consents_read ON renkei.consents FOR SELECT
    USING (renkei.is_platform() OR EXISTS (SELECT 1 FROM renkei.grants g
                                           WHERE g.id = grant_id
                                             AND g.tenant_id = renkei.current_tenant()));
CREATE POLICY consents_write ON renkei.consents FOR ALL
    USING (renkei.is_platform()) WITH CHECK (renkei.is_platform());
GRANT SELECT, INSERT, UPDATE, DELETE ON renkei.consents TO renkei_service;

-- Every hub process drops what it cached about a grant or a resident when it
-- changes: payload "g <grant id>" or "r <resident id>".
CREATE FUNCTION renkei.residents_notify() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_TABLE_NAME = 'grants' THEN
        PERFORM pg_notify('renkei_grants', 'g ' || NEW.id);
    ELSE
        PERFORM pg_notify('renkei_grants', 'r ' || NEW.id);
    END IF;
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION renkei.residents_notify() FROM PUBLIC;
CREATE TRIGGER grants_changed AFTER UPDATE ON renkei.grants
    FOR EACH ROW EXECUTE FUNCTION renkei.residents_notify();
CREATE TRIGGER residents_changed AFTER UPDATE ON renkei.residents
    FOR EACH ROW EXECUTE FUNCTION renkei.residents_notify();
