-- 0005_audit: the audit log, an RFC 9162 Merkle log over one global order.
--
-- audit_head         one row: the tree's size and frontier (the roots of its
--                    perfect subtrees), and how far pending_events were taken
--                    over. Appends lock it, so every hub process assigns seq
--                    values from one place, without gaps.
-- audit_entries      one row per entry: its canonical bytes (audit/FORMAT.md)
--                    and leaf hash, with the fields auditors filter on.
-- audit_nodes        the hash of every complete subtree (level >= 1), so a
--                    proof costs O(log n) lookups however large the log is.
-- audit_checkpoints  signed tree heads, kept forever.
-- audit_keys         the checkpoint signing keys (private half sealed with the
--                    master secret, label renkei.audit.checkpoint-key.v1).
--
-- The service role may only INSERT and SELECT the log; triggers refuse UPDATE,
-- DELETE and TRUNCATE. What stops a superuser is the cryptography: signed
-- checkpoints and `renkei audit verify`.

CREATE TABLE renkei.audit_head (
    one            boolean PRIMARY KEY DEFAULT true CHECK (one),
    tree_size      bigint NOT NULL DEFAULT 0 CHECK (tree_size >= 0),
    frontier       bytea NOT NULL DEFAULT ''::bytea,
    pending_taken  bigint NOT NULL DEFAULT 0
);
INSERT INTO renkei.audit_head DEFAULT VALUES;
GRANT SELECT, UPDATE ON renkei.audit_head TO renkei_service;

CREATE FUNCTION renkei.audit_head_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.tree_size < OLD.tree_size OR NEW.pending_taken < OLD.pending_taken THEN
        RAISE EXCEPTION 'the audit log only grows'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION renkei.audit_head_guard() FROM PUBLIC;
CREATE TRIGGER audit_head_grows BEFORE UPDATE ON renkei.audit_head
    FOR EACH ROW EXECUTE FUNCTION renkei.audit_head_guard();
CREATE TRIGGER audit_head_kept BEFORE DELETE ON renkei.audit_head
    FOR EACH ROW EXECUTE FUNCTION renkei.refuse_change();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON renkei.audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION renkei.refuse_change();

CREATE TABLE renkei.audit_entries (
    seq              bigint PRIMARY KEY CHECK (seq >= 0),
    time             timestamptz NOT NULL,
    kind             text NOT NULL,
    tenant           text,     -- the tenant the event is about
    consumer_tenant  text,
    consumer_client  text,
    provider         text,
    agreement        text,
    purpose          text,
    decision         text CHECK (decision IN ('permit', 'deny')),
    resident         text,     -- the opaque resident reference, never a name or number
    canonical        text NOT NULL,
    leaf_hash        bytea NOT NULL CHECK (length(leaf_hash) = 32)
);
CREATE INDEX audit_entries_time ON renkei.audit_entries (time, seq);
CREATE INDEX audit_entries_tenant ON renkei.audit_entries (tenant, seq) WHERE tenant IS NOT NULL;
CREATE INDEX audit_entries_consumer ON renkei.audit_entries (consumer_tenant, seq)
    WHERE consumer_tenant IS NOT NULL;
CREATE INDEX audit_entries_provider ON renkei.audit_entries (provider, seq)
    WHERE provider IS NOT NULL;
CREATE INDEX audit_entries_client ON renkei.audit_entries (consumer_client, seq)
    WHERE consumer_client IS NOT NULL;
CREATE INDEX audit_entries_agreement ON renkei.audit_entries (agreement, seq)
    WHERE agreement IS NOT NULL;
CREATE INDEX audit_entries_resident ON renkei.audit_entries (resident, seq)
    WHERE resident IS NOT NULL;

-- Who may read an entry: the platform; a town that is its subject, consumer
-- or provider; and the prefecture above such a town.
CREATE FUNCTION renkei.audit_visible(subject text, consumer text, provider text)
    RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
    SELECT renkei.current_tenant() IN (subject, consumer, provider)
        OR EXISTS (SELECT 1 FROM renkei.tenants t
                    WHERE t.id IN (subject, consumer, provider)
                      AND t.parent_id = renkei.current_tenant())
$$;
GRANT EXECUTE ON FUNCTION renkei.audit_visible(text, text, text) TO renkei_service;

ALTER TABLE renkei.audit_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE renkei.audit_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_entries_insert ON renkei.audit_entries FOR INSERT
    WITH CHECK (renkei.is_platform() OR tenant = renkei.current_tenant());
CREATE POLICY audit_entries_read ON renkei.audit_entries FOR SELECT
    USING (renkei.is_platform() OR renkei.audit_visible(tenant, consumer_tenant, provider));
GRANT SELECT, INSERT ON renkei.audit_entries TO renkei_service;

-- Hashes only: nothing in them is a tenant's to hide.
CREATE TABLE renkei.audit_nodes (
    level  smallint NOT NULL CHECK (level BETWEEN 1 AND 63),
    idx    bigint NOT NULL CHECK (idx >= 0),
    hash   bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);
GRANT SELECT, INSERT ON renkei.audit_nodes TO renkei_service;

CREATE TABLE renkei.audit_checkpoints (
    tree_size  bigint PRIMARY KEY CHECK (tree_size >= 0),
    root_hash  bytea NOT NULL CHECK (length(root_hash) = 32),
    time       text NOT NULL,   -- exactly as signed
    kid        text NOT NULL,
    signature  bytea NOT NULL
);
GRANT SELECT, INSERT ON renkei.audit_checkpoints TO renkei_service;

CREATE TABLE renkei.audit_keys (
    kid             text PRIMARY KEY CHECK (kid ~ '^audit-[A-Za-z0-9_-]{16,64}$'),
    public_jwk      jsonb NOT NULL CHECK (jsonb_typeof(public_jwk) = 'object'),
    private_sealed  bytea NOT NULL,
    state           text NOT NULL CHECK (state IN ('active', 'retired')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    retired_at      timestamptz
);
CREATE UNIQUE INDEX audit_keys_one_active ON renkei.audit_keys (state) WHERE state = 'active';
ALTER TABLE renkei.audit_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE renkei.audit_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_keys_read ON renkei.audit_keys FOR SELECT USING (renkei.is_platform());
CREATE POLICY audit_keys_write ON renkei.audit_keys FOR INSERT WITH CHECK (renkei.is_platform());
CREATE POLICY audit_keys_retire ON renkei.audit_keys FOR UPDATE
    USING (renkei.is_platform()) WITH CHECK (renkei.is_platform());
GRANT SELECT, INSERT, UPDATE ON renkei.audit_keys TO renkei_service;

-- A key is retired, never changed or removed: old checkpoints must verify.
CREATE FUNCTION renkei.audit_keys_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.kid <> OLD.kid OR NEW.public_jwk <> OLD.public_jwk
       OR NEW.private_sealed <> OLD.private_sealed OR OLD.state <> 'active'
       OR NEW.state <> 'retired' THEN
        RAISE EXCEPTION 'an audit key can only be retired'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.retired_at := now();
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION renkei.audit_keys_guard() FROM PUBLIC;
CREATE TRIGGER audit_keys_retire_only BEFORE UPDATE ON renkei.audit_keys
    FOR EACH ROW EXECUTE FUNCTION renkei.audit_keys_guard();

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['audit_entries', 'audit_nodes', 'audit_checkpoints'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON renkei.%I
                            FOR EACH ROW EXECUTE FUNCTION renkei.refuse_change()',
                       t || '_append_only', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON renkei.%I
                            FOR EACH STATEMENT EXECUTE FUNCTION renkei.refuse_change()',
                       t || '_no_truncate', t);
    END LOOP;
    EXECUTE 'CREATE TRIGGER audit_keys_kept BEFORE DELETE ON renkei.audit_keys
                 FOR EACH ROW EXECUTE FUNCTION renkei.refuse_change()';
    EXECUTE 'CREATE TRIGGER audit_keys_no_truncate BEFORE TRUNCATE ON renkei.audit_keys
                 FOR EACH STATEMENT EXECUTE FUNCTION renkei.refuse_change()';
END
$$;

-- Events now go straight into the log; what is still pending is taken over
-- by the hub (audit_head.pending_taken) the first time it starts.
REVOKE INSERT ON renkei.pending_events FROM renkei_service;

-- Every hub process reloads the checkpoint keys when one is added or retired.
CREATE FUNCTION renkei.audit_keys_notify() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('renkei_audit_keys', NEW.kid);
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION renkei.audit_keys_notify() FROM PUBLIC;
CREATE TRIGGER audit_keys_changed AFTER INSERT OR UPDATE ON renkei.audit_keys
    FOR EACH ROW EXECUTE FUNCTION renkei.audit_keys_notify();

-- Administrative events as rows, for people at a psql prompt and for
-- reports: the members of each entry that an event carries. Row-level
-- security of audit_entries applies (security_invoker).
CREATE VIEW renkei.audit_events WITH (security_invoker = true) AS
    SELECT seq, time, kind, tenant,
           canonical::jsonb ->> 'actor' AS actor,
           coalesce(canonical::jsonb -> 'detail', '{}'::jsonb) AS detail
      FROM renkei.audit_entries;
GRANT SELECT ON renkei.audit_events TO renkei_service;
