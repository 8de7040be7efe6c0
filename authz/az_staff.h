#ifndef AZ_STAFF_H
#define AZ_STAFF_H

/*
 * Staff: accounts of the hub (residents' accounts, signed in through the
 * same pages) holding roles that open the consoles. A role always acts for
 * the account's home town:
 *   platform_admin  scopes "admin tenant.admin audit.read": every town
 *   tenant_admin    scope "tenant.admin": the home town's clients and agreements
 *   auditor         scope "audit.read": the home town's audit (a
 *                   prefecture's includes its towns)
 * Roles are granted by the platform (renkei resident grant); each grant and
 * withdrawal is an audit event.
 */
#include <stdbool.h>

#include "authz/az_client.h"
#include "authz/az_resident.h"
#include "authz/az_session.h"
#include "core/auth.h"

enum az_role {
    AZ_ROLE_PLATFORM_ADMIN = 1u << 0,
    AZ_ROLE_TENANT_ADMIN = 1u << 1,
    AZ_ROLE_AUDITOR = 1u << 2,
};

/* "platform_admin", "tenant_admin", "auditor"; NULL for anything else. */
const char *az_role_name(unsigned role);
/* One role by name; false when it is none of the three. */
bool az_role_parse(const char *s, unsigned *out);
/* The scopes a set of roles grants (a static string; "" for none). */
const char *az_role_scope(unsigned roles);

/* The signed-in person behind the request's session cookie. */
struct az_staff {
    struct az_session session;
    char login[AZ_LOGIN_MAX + 1];
    char name[801];
    char tenant[51]; /* home town: the town every role acts for */
    unsigned roles;  /* enum az_role bits; 0 for a resident without any */
};

/* The request's session and its account's roles (AZ_SESSION_OK with roles 0
 * for a resident who holds none). */
enum az_session_rc az_staff_get(struct core_req *req, struct az_staff *out);

/* The principal of a console's own reads: a GET or HEAD of the auditor API
 * (/audit/v1/...) or of the admin API's towns, clients and agreements (not
 * residents) without an Authorization header,
 * from the same origin (Sec-Fetch-Site), by a signed-in account with roles.
 * Returns 1 and fills *out (strings in req->pool), 0 when this does not
 * apply (the caller asks for a bearer token), -1 once 503 is queued. */
int az_staff_principal(struct core_req *req, struct core_principal *out);

/* Grants or withdraws role (a name) for login, in the platform context;
 * actor names who did it in the audit event. AZ_CONFLICT: already held
 * (grant); AZ_NOT_FOUND: no such account, or not held (withdraw). */
enum az_rc az_staff_grant(const char *login, const char *role, const char *actor,
                          struct az_result *res);
enum az_rc az_staff_withdraw(const char *login, const char *role, const char *actor,
                             struct az_result *res);
/* The roles login holds. */
enum az_rc az_staff_roles(const char *login, unsigned *roles, struct az_result *res);

#endif
