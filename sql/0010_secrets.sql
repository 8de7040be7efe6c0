-- 0010_secrets: which master secret seals the values at rest, so that
-- `renkei secret rotate` can re-seal them all and no node seals a value under
-- a master the others no longer hold; and signing keys whose private half
-- stays in a file of the service user (RENKEI_SIGNING_KEY_FILE), never in
-- the database.
--
-- secret_state  one row: the id of the master in use (a one-way function of
--               it, core_secret_id) and how many rotations it has seen. The
--               first hub or command to meet the database writes it.

CREATE TABLE renkei.secret_state (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    master_id   bytea NOT NULL CHECK (length(master_id) = 8),
    generation  integer NOT NULL DEFAULT 0 CHECK (generation >= 0),
    changed_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE renkei.secret_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE renkei.secret_state FORCE ROW LEVEL SECURITY;
-- Every transaction that seals a value reads it (a town's too, through the
-- trigger below) and locks it FOR SHARE, which takes the UPDATE policy's
-- USING; only the platform writes it.
CREATE POLICY secret_state_read ON renkei.secret_state FOR SELECT USING (true);
CREATE POLICY secret_state_add ON renkei.secret_state FOR INSERT
    WITH CHECK (renkei.is_platform());
CREATE POLICY secret_state_change ON renkei.secret_state FOR UPDATE
    USING (true) WITH CHECK (renkei.is_platform());
GRANT SELECT, INSERT, UPDATE ON renkei.secret_state TO renkei_service;

-- A rotation tells every node at its commit: the payload is the new id and
-- its generation (a node never goes back to an older one).
CREATE FUNCTION renkei.secret_state_notify() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('renkei_secret', encode(NEW.master_id, 'hex') || ' ' || NEW.generation);
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION renkei.secret_state_notify() FROM PUBLIC;
CREATE TRIGGER secret_state_changed AFTER UPDATE ON renkei.secret_state
    FOR EACH ROW EXECUTE FUNCTION renkei.secret_state_notify();

-- A sealed value written must be sealed under the recorded master: version 2
-- names its master in bytes 2-9. The first form (version 1, written before
-- this migration, or by an older binary) names none, and is taken only while
-- no rotation has happened. FOR SHARE: a rotation in progress holds the row
-- FOR UPDATE, so a value sealed meanwhile waits for it and is then checked
-- against the new master, never left behind under the old.
CREATE FUNCTION renkei.sealed_check() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    v bytea;
    was bytea;
    st record;
BEGIN
    -- the sealed column is the trigger's argument: one function for every
    -- column of core/app.c's catalogue (test_secret_rotate checks they match)
    EXECUTE format('SELECT ($1).%I', TG_ARGV[0]) INTO v USING NEW;
    IF TG_OP = 'UPDATE' THEN
        EXECUTE format('SELECT ($1).%I', TG_ARGV[0]) INTO was USING OLD;
    END IF;
    IF v IS NULL OR v IS NOT DISTINCT FROM was THEN
        RETURN NEW;
    END IF;
    -- Every session sees the row (policy secret_state_read, and the UPDATE
    -- policy's USING, which FOR SHARE also takes, are true for all): not
    -- found means no node has recorded a master yet.
    SELECT master_id, generation INTO st FROM renkei.secret_state FOR SHARE;
    IF NOT FOUND THEN
        RETURN NEW;
    END IF;
    IF length(v) > 9 AND get_byte(v, 0) = 2 AND substring(v FROM 2 FOR 8) = st.master_id THEN
        RETURN NEW;
    END IF;
    IF length(v) > 0 AND get_byte(v, 0) = 1 AND st.generation = 0 THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'a value sealed under another master secret than %',
        encode(st.master_id, 'hex')
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'this node holds an old RENKEI_SECRET_FILE: copy the rotated one here';
END
$$;
REVOKE EXECUTE ON FUNCTION renkei.sealed_check() FROM PUBLIC;
CREATE TRIGGER sealed_current BEFORE INSERT OR UPDATE ON renkei.signing_keys
    FOR EACH ROW EXECUTE FUNCTION renkei.sealed_check('private_sealed');
CREATE TRIGGER sealed_current BEFORE INSERT OR UPDATE ON renkei.audit_keys
    FOR EACH ROW EXECUTE FUNCTION renkei.sealed_check('private_sealed');
CREATE TRIGGER sealed_current BEFORE INSERT OR UPDATE ON renkei.tenant_upstreams
    FOR EACH ROW EXECUTE FUNCTION renkei.sealed_check('secret');

-- An audit key was retired, never changed; now a rotation may also re-seal
-- its private half, changing nothing else.
CREATE OR REPLACE FUNCTION renkei.audit_keys_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    cur bytea;
BEGIN
    IF NEW.kid <> OLD.kid OR NEW.public_jwk <> OLD.public_jwk OR NEW.held <> OLD.held
       OR NEW.public_mac IS DISTINCT FROM OLD.public_mac THEN
        RAISE EXCEPTION 'an audit key can only be retired'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.private_sealed IS DISTINCT FROM OLD.private_sealed THEN
        -- only as a rotation re-seals: from another master to the one the
        -- record names now (the rotation updates the record first)
        SELECT master_id INTO cur FROM renkei.secret_state;
        IF NEW.state <> OLD.state OR NEW.retired_at IS DISTINCT FROM OLD.retired_at
           OR cur IS NULL
           OR NOT (length(NEW.private_sealed) > 9 AND get_byte(NEW.private_sealed, 0) = 2
                   AND substring(NEW.private_sealed FROM 2 FOR 8) = cur)
           OR (length(OLD.private_sealed) > 9 AND get_byte(OLD.private_sealed, 0) = 2
               AND substring(OLD.private_sealed FROM 2 FOR 8) = cur) THEN
            RAISE EXCEPTION 'an audit key is only re-sealed by a rotation of the master secret'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.state <> 'active' OR NEW.state <> 'retired' THEN
        RAISE EXCEPTION 'an audit key can only be retired'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.retired_at := now();
    RETURN NEW;
END
$$;

-- The audit checkpoint key may be held in a file too (RENKEI_AUDIT_KEY_FILE),
-- with the same columns and the same MAC (its kid is "audit-" and the
-- thumbprint).
ALTER TABLE renkei.audit_keys ALTER COLUMN private_sealed DROP NOT NULL;
ALTER TABLE renkei.audit_keys
    ADD COLUMN held text NOT NULL DEFAULT 'database' CHECK (held IN ('database', 'file'));
ALTER TABLE renkei.audit_keys ADD COLUMN public_mac bytea;
ALTER TABLE renkei.audit_keys
    ADD CONSTRAINT audit_keys_held CHECK ((held = 'file') = (private_sealed IS NULL)
                                         AND (held = 'file') = (public_mac IS NOT NULL));

-- Signing keys held in a file: the row publishes the public half (so that
-- every node verifies, and the JWKS keeps a replaced file key until its
-- tokens have expired); the private half is nowhere in the database.
ALTER TABLE renkei.signing_keys ALTER COLUMN private_sealed DROP NOT NULL;
ALTER TABLE renkei.signing_keys
    ADD COLUMN held text NOT NULL DEFAULT 'database' CHECK (held IN ('database', 'file'));
-- Such a row is believed only with public_mac: an HMAC of its kid (the
-- thumbprint of public_jwk) and alg under a key derived from the master
-- secret's root, so a row written into the database by anyone but a hub
-- of this installation is not a key any node trusts.
ALTER TABLE renkei.signing_keys ADD COLUMN public_mac bytea;
ALTER TABLE renkei.signing_keys
    ADD CONSTRAINT signing_keys_held CHECK ((held = 'file') = (private_sealed IS NULL)
                                           AND (held = 'file') = (public_mac IS NOT NULL));
