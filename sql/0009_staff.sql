-- 0009_staff: the roles that let a person (an account of the hub, signed in
-- through the same pages as every resident) use the consoles.
--
-- staff_roles  platform_admin  the prefecture's operators: every town, every
--                              client and agreement, and the whole audit log
--              tenant_admin    a town's staff: its clients, its agreements
--                              (the side it is on), its own record
--              auditor         the audit log of the account's home town (a
--                              prefecture's auditor sees its towns: the audit
--                              log's row-level security decides)
-- The town a role acts for is always the account's home town. Only the
-- platform grants and reads roles (the CLI and the sign-in lookup), and every
-- grant and withdrawal is an audit event.

CREATE TABLE renkei.staff_roles (
    resident_id text NOT NULL REFERENCES renkei.residents (id),
    role        text NOT NULL CHECK (role IN ('platform_admin', 'tenant_admin', 'auditor')),
    granted_by  text NOT NULL CHECK (char_length(granted_by) <= 300),
    granted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (resident_id, role)
);
ALTER TABLE renkei.staff_roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE renkei.staff_roles FORCE ROW LEVEL SECURITY;
CREATE POLICY staff_roles_platform ON renkei.staff_roles
    USING (renkei.is_platform()) WITH CHECK (renkei.is_platform());
GRANT SELECT, INSERT, DELETE ON renkei.staff_roles TO renkei_service;
