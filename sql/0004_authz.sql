-- 0004_authz: the token service's keys, clients (service IDs), initial access
-- tokens for dynamic registration, and revoked access tokens.

-- Signing keys. The private half is sealed with the master secret
-- (core_seal, label renkei.authz.signing-key.v1, aad = kid). One active key
-- per algorithm; a rotated key stays published (retiring) until every token
-- it signed has expired, then it is retired and leaves the JWKS.
CREATE TABLE renkei.signing_keys (
    kid            text PRIMARY KEY CHECK (kid ~ '^[A-Za-z0-9_-]{16,64}$'),
    alg            text NOT NULL CHECK (alg IN ('ES256', 'RS256')),
    public_jwk     jsonb NOT NULL CHECK (jsonb_typeof(public_jwk) = 'object'),
    private_sealed bytea NOT NULL,
    state          text NOT NULL CHECK (state IN ('active', 'retiring', 'retired')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    retiring_at    timestamptz,
    retire_after   timestamptz,
    CHECK ((state = 'active') = (retiring_at IS NULL))
);
CREATE UNIQUE INDEX signing_keys_one_active ON renkei.signing_keys (alg) WHERE state = 'active';
ALTER TABLE renkei.signing_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE renkei.signing_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY signing_keys_read ON renkei.signing_keys FOR SELECT USING (renkei.is_platform());
CREATE POLICY signing_keys_write ON renkei.signing_keys FOR INSERT WITH CHECK (renkei.is_platform());
CREATE POLICY signing_keys_change ON renkei.signing_keys FOR UPDATE
    USING (renkei.is_platform()) WITH CHECK (renkei.is_platform());
GRANT SELECT, INSERT, UPDATE ON renkei.signing_keys TO renkei_service;

-- Clients (service IDs), each of one tenant. Secrets are stored only as
-- HMAC-SHA256 under a key derived from the master secret: a 256-bit random
-- secret needs no slow hash, and the HMAC key never leaves the hub.
CREATE TABLE renkei.clients (
    id                 text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{8,64}$'),
    tenant_id          text NOT NULL REFERENCES renkei.tenants (id),
    name               text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200
                                            AND name !~ '[[:cntrl:]]'),
    auth_method        text NOT NULL CHECK (auth_method IN ('client_secret_basic',
                             'client_secret_post', 'private_key_jwt', 'none')),
    secret_hmac        bytea CHECK (secret_hmac IS NULL OR length(secret_hmac) = 32),
    secret_set_at      timestamptz,
    jwks               jsonb CHECK (jwks IS NULL OR jsonb_typeof(jwks) = 'object'),
    grant_types        text[] NOT NULL CHECK (cardinality(grant_types) BETWEEN 1 AND 8),
    redirect_uris      text[] NOT NULL DEFAULT '{}' CHECK (cardinality(redirect_uris) <= 20),
    scopes             text[] NOT NULL CHECK (cardinality(scopes) <= 50),
    default_scopes     text[] NOT NULL CHECK (default_scopes <@ scopes),
    audiences          text[] NOT NULL DEFAULT '{}' CHECK (cardinality(audiences) <= 20),
    token_alg          text NOT NULL DEFAULT 'ES256' CHECK (token_alg IN ('ES256', 'RS256')),
    token_ttl          integer NOT NULL DEFAULT 600 CHECK (token_ttl BETWEEN 60 AND 86400),
    state              text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'disabled')),
    registration_hmac  bytea CHECK (registration_hmac IS NULL OR length(registration_hmac) = 32),
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    version            integer NOT NULL DEFAULT 1,
    CHECK ((auth_method IN ('client_secret_basic', 'client_secret_post'))
           = (secret_hmac IS NOT NULL)),
    CHECK ((auth_method = 'private_key_jwt') = (jwks IS NOT NULL))
);
CREATE INDEX clients_tenant ON renkei.clients (tenant_id, id);
ALTER TABLE renkei.clients ENABLE ROW LEVEL SECURITY;
ALTER TABLE renkei.clients FORCE ROW LEVEL SECURITY;
CREATE POLICY clients_own ON renkei.clients
    USING (renkei.is_platform() OR tenant_id = renkei.current_tenant())
    WITH CHECK (renkei.is_platform() OR tenant_id = renkei.current_tenant());
GRANT SELECT, INSERT, UPDATE ON renkei.clients TO renkei_service;

CREATE FUNCTION renkei.clients_touch() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.tenant_id <> OLD.tenant_id THEN
        RAISE EXCEPTION 'a client''s id and tenant do not change'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.updated_at := now();
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;
CREATE TRIGGER clients_touch BEFORE UPDATE ON renkei.clients
    FOR EACH ROW EXECUTE FUNCTION renkei.clients_touch();
CREATE TRIGGER clients_no_delete BEFORE DELETE ON renkei.clients
    FOR EACH ROW EXECUTE FUNCTION renkei.refuse_change();

-- Initial access tokens for dynamic client registration (RFC 7591 §3),
-- one tenant each, stored as HMACs, with an expiry and a number of uses.
CREATE TABLE renkei.initial_access_tokens (
    token_hmac  bytea PRIMARY KEY CHECK (length(token_hmac) = 32),
    tenant_id   text NOT NULL REFERENCES renkei.tenants (id),
    expires_at  timestamptz NOT NULL,
    uses_left   integer NOT NULL CHECK (uses_left >= 0),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE renkei.initial_access_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE renkei.initial_access_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY initial_access_tokens_own ON renkei.initial_access_tokens
    USING (renkei.is_platform() OR tenant_id = renkei.current_tenant())
    WITH CHECK (renkei.is_platform() OR tenant_id = renkei.current_tenant());
GRANT SELECT, INSERT, UPDATE ON renkei.initial_access_tokens TO renkei_service;

-- Access tokens revoked before they expire (RFC 7009). Every hub node keeps
-- the unexpired ones in memory, told of new ones by NOTIFY.
CREATE TABLE renkei.revoked_tokens (
    jti         text PRIMARY KEY CHECK (length(jti) BETWEEN 16 AND 64),
    client_id   text NOT NULL,
    tenant_id   text NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revoked_tokens_expiry ON renkei.revoked_tokens (expires_at);
ALTER TABLE renkei.revoked_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE renkei.revoked_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY revoked_tokens_read ON renkei.revoked_tokens FOR SELECT USING (renkei.is_platform());
CREATE POLICY revoked_tokens_add ON renkei.revoked_tokens FOR INSERT
    WITH CHECK (renkei.is_platform() OR tenant_id = renkei.current_tenant());
GRANT SELECT, INSERT, DELETE ON renkei.revoked_tokens TO renkei_service;
CREATE POLICY revoked_tokens_expire ON renkei.revoked_tokens FOR DELETE
    USING (renkei.is_platform() AND expires_at < now());

-- jti of private_key_jwt client assertions already used (RFC 7523 §3:
-- replay protection), kept until the assertion has expired.
CREATE TABLE renkei.client_assertion_jtis (
    client_id   text NOT NULL,
    jti         text NOT NULL CHECK (length(jti) BETWEEN 8 AND 200),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertion_jtis_expiry ON renkei.client_assertion_jtis (expires_at);
ALTER TABLE renkei.client_assertion_jtis ENABLE ROW LEVEL SECURITY;
ALTER TABLE renkei.client_assertion_jtis FORCE ROW LEVEL SECURITY;
CREATE POLICY client_assertion_jtis_platform ON renkei.client_assertion_jtis
    USING (renkei.is_platform()) WITH CHECK (renkei.is_platform());
CREATE POLICY client_assertion_jtis_expire ON renkei.client_assertion_jtis FOR DELETE
    USING (renkei.is_platform() AND expires_at < now());
GRANT SELECT, INSERT, DELETE ON renkei.client_assertion_jtis TO renkei_service;

-- Cache coherence: clients and keys by id, revocations by jti.
CREATE FUNCTION renkei.authz_notify() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_TABLE_NAME = 'clients' THEN
        PERFORM pg_notify('renkei_clients', NEW.id);
    ELSIF TG_TABLE_NAME = 'signing_keys' THEN
        PERFORM pg_notify('renkei_keys', NEW.kid);
    ELSE
        PERFORM pg_notify('renkei_revoked',
                          NEW.jti || ' ' || extract(epoch FROM NEW.expires_at)::bigint);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER clients_changed AFTER INSERT OR UPDATE ON renkei.clients
    FOR EACH ROW EXECUTE FUNCTION renkei.authz_notify();
CREATE TRIGGER signing_keys_changed AFTER INSERT OR UPDATE ON renkei.signing_keys
    FOR EACH ROW EXECUTE FUNCTION renkei.authz_notify();
CREATE TRIGGER revoked_tokens_added AFTER INSERT ON renkei.revoked_tokens
    FOR EACH ROW EXECUTE FUNCTION renkei.authz_notify();
