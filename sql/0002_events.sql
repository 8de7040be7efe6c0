-- 0002_events: events waiting for the audit log.
--
-- Every change an auditor must see later (a tenant created or suspended, a
-- client or key changed, a consent given) is written here in the same
-- transaction as the change itself, so none is lost and none is recorded for
-- a change that rolled back. The audit log (a later migration) takes them
-- over into its Merkle log; until then they wait here, in order.

CREATE TABLE renkei.pending_events (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time     timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind     text NOT NULL CHECK (kind ~ '^[a-z_]+(\.[a-z_]+)+$' AND length(kind) <= 64),
    tenant   text,                 -- the tenant the event is about (NULL: the platform)
    actor    text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    detail   jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(detail) = 'object')
);
CREATE INDEX pending_events_tenant ON renkei.pending_events (tenant, id);

-- The platform reads and writes every event; a tenant's transaction may only
-- record events about itself, and reads none (the auditor API reads them).
ALTER TABLE renkei.pending_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE renkei.pending_events FORCE ROW LEVEL SECURITY;
CREATE POLICY pending_events_insert ON renkei.pending_events FOR INSERT
    WITH CHECK (renkei.is_platform() OR tenant = renkei.current_tenant());
CREATE POLICY pending_events_select ON renkei.pending_events FOR SELECT
    USING (renkei.is_platform());
GRANT SELECT, INSERT ON renkei.pending_events TO renkei_service;

CREATE TRIGGER pending_events_append_only
    BEFORE UPDATE OR DELETE ON renkei.pending_events
    FOR EACH ROW EXECUTE FUNCTION renkei.refuse_change();
CREATE TRIGGER pending_events_no_truncate
    BEFORE TRUNCATE ON renkei.pending_events
    FOR EACH STATEMENT EXECUTE FUNCTION renkei.refuse_change();
