-- 0008_agreements: data-sharing agreements between towns.
--
-- agreements  what a consumer town may read (or write) of a provider town's
--             city OS: entity types, attributes (none: all), actions,
--             purposes, whether it is personal data (then the consent scope
--             the resident must have granted and the provider's attribute
--             holding its local resident number), a time window, a rate.
--
-- Who may do what (row-level security and the trigger below say it again
-- whatever the hub's C does):
--   see       the platform; a town that is the provider or the consumer
--   propose   the platform; the consumer town (INSERT, always 'proposed')
--   approve   proposed  -> active     the provider town or the platform
--   suspend   active    -> suspended  the provider town or the platform
--   resume    suspended -> active     the provider town or the platform
--   revoke    any       -> revoked    the provider, the platform, and the
--                                     consumer (it withdraws its own proposal
--                                     or gives up what it was given)
-- revoked is final. The terms are fixed once the agreement left 'proposed'
-- (a new agreement is proposed instead), and rows are never deleted: the
-- history of who agreed to what stays.

CREATE TABLE renkei.agreements (
    id              text PRIMARY KEY CHECK (id ~ '^ag_[a-z2-7]{24}$'),
    provider        text NOT NULL REFERENCES renkei.tenants (id),
    consumer        text NOT NULL REFERENCES renkei.tenants (id),
    entity_types    text[] NOT NULL CHECK (cardinality(entity_types) BETWEEN 1 AND 100
                                           AND array_position(entity_types, NULL) IS NULL),
    attrs           text[] NOT NULL DEFAULT '{}' CHECK (cardinality(attrs) <= 100
                                                       AND array_position(attrs, NULL) IS NULL),
    actions         text[] NOT NULL CHECK (cardinality(actions) BETWEEN 1 AND 2
                                           AND actions <@ ARRAY['read', 'write']),
    purposes        text[] NOT NULL CHECK (cardinality(purposes) BETWEEN 1 AND 100
                                           AND array_position(purposes, NULL) IS NULL),
    personal        boolean NOT NULL DEFAULT false,
    consent_scope   text CHECK (char_length(consent_scope) BETWEEN 1 AND 64
                                AND consent_scope !~ '[[:space:][:cntrl:]]'),
    resident_attr   text CHECK (char_length(resident_attr) BETWEEN 1 AND 256),
    valid_from      timestamptz,
    valid_until     timestamptz,
    rate_per_minute integer NOT NULL DEFAULT 0 CHECK (rate_per_minute BETWEEN 0 AND 1000000),
    description     text CHECK (char_length(description) <= 1000),
    state           text NOT NULL DEFAULT 'proposed'
                         CHECK (state IN ('proposed', 'active', 'suspended', 'revoked')),
    created_by      text NOT NULL CHECK (char_length(created_by) BETWEEN 1 AND 200),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         integer NOT NULL DEFAULT 1,
    CHECK (provider <> consumer),
    CHECK (personal = (consent_scope IS NOT NULL)),
    CHECK (personal = (resident_attr IS NOT NULL)),
    CHECK (valid_from IS NULL OR valid_until IS NULL OR valid_until > valid_from)
);
CREATE INDEX agreements_provider ON renkei.agreements (provider, id);
CREATE INDEX agreements_consumer ON renkei.agreements (consumer, id);

ALTER TABLE renkei.agreements ENABLE ROW LEVEL SECURITY;
ALTER TABLE renkei.agreements FORCE ROW LEVEL SECURITY;
CREATE POLICY agreements_read ON renkei.agreements FOR SELECT
    USING (renkei.is_platform() OR renkei.current_tenant() IN (provider, consumer));
CREATE POLICY agreements_propose ON renkei.agreements FOR INSERT
    WITH CHECK (state = 'proposed'
                AND (renkei.is_platform() OR consumer = renkei.current_tenant()));
CREATE POLICY agreements_change ON renkei.agreements FOR UPDATE
    USING (renkei.is_platform() OR renkei.current_tenant() IN (provider, consumer))
    WITH CHECK (renkei.is_platform() OR renkei.current_tenant() IN (provider, consumer));
GRANT SELECT, INSERT, UPDATE ON renkei.agreements TO renkei_service;

-- The life cycle and who may move it, and terms that do not change.
CREATE FUNCTION renkei.agreements_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    ctx  text := renkei.current_tenant();
    plat boolean := renkei.is_platform();
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.state <> 'proposed' THEN
            RAISE EXCEPTION 'an agreement starts as proposed'
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.id <> OLD.id OR NEW.provider <> OLD.provider OR NEW.consumer <> OLD.consumer
       OR NEW.created_at <> OLD.created_at OR NEW.created_by <> OLD.created_by THEN
        RAISE EXCEPTION 'an agreement''s id, towns and creation do not change'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (NEW.entity_types, NEW.attrs, NEW.actions, NEW.purposes, NEW.personal,
        NEW.consent_scope, NEW.resident_attr, NEW.valid_from, NEW.valid_until,
        NEW.rate_per_minute, NEW.description)
       IS DISTINCT FROM
       (OLD.entity_types, OLD.attrs, OLD.actions, OLD.purposes, OLD.personal,
        OLD.consent_scope, OLD.resident_attr, OLD.valid_from, OLD.valid_until,
        OLD.rate_per_minute, OLD.description) THEN
        IF OLD.state <> 'proposed' OR NEW.state <> 'proposed' THEN
            RAISE EXCEPTION 'the terms of agreement % are fixed once it is %', OLD.id, OLD.state
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        IF NOT plat AND ctx IS DISTINCT FROM OLD.consumer THEN
            RAISE EXCEPTION 'only the consumer changes its proposal %', OLD.id
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    IF NEW.state <> OLD.state THEN
        IF NOT ((OLD.state = 'proposed' AND NEW.state IN ('active', 'revoked'))
                OR (OLD.state = 'active' AND NEW.state IN ('suspended', 'revoked'))
                OR (OLD.state = 'suspended' AND NEW.state IN ('active', 'revoked'))) THEN
            RAISE EXCEPTION 'agreement % cannot go from % to %', OLD.id, OLD.state, NEW.state
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        IF NOT plat AND ctx IS DISTINCT FROM OLD.provider
           AND NOT (NEW.state = 'revoked' AND ctx IS NOT DISTINCT FROM OLD.consumer) THEN
            RAISE EXCEPTION 'only the provider % may make agreement % %', OLD.provider, OLD.id,
                            NEW.state
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    NEW.updated_at := now();
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;
CREATE TRIGGER agreements_guard BEFORE INSERT OR UPDATE ON renkei.agreements
    FOR EACH ROW EXECUTE FUNCTION renkei.agreements_guard();
CREATE TRIGGER agreements_no_delete BEFORE DELETE ON renkei.agreements
    FOR EACH ROW EXECUTE FUNCTION renkei.refuse_change();

-- Every hub node's policy index reloads when an agreement changes (LISTEN
-- renkei_agreements; the payload is the agreement's id).
CREATE FUNCTION renkei.agreements_notify() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('renkei_agreements', NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER agreements_changed AFTER INSERT OR UPDATE ON renkei.agreements
    FOR EACH ROW EXECUTE FUNCTION renkei.agreements_notify();
