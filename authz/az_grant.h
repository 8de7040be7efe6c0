#ifndef AZ_GRANT_H
#define AZ_GRANT_H

/*
 * Consent: what a resident allowed one client. A grant per (resident,
 * client) while it lives, its scopes each with the time granted and an
 * optional expiry. Tokens issued under a grant carry its id ("grant" claim)
 * and die when it is revoked or the resident disabled: every hub process
 * learns of that by NOTIFY renkei_grants.
 */
#include <jansson.h>
#include <stdbool.h>

#include "authz/az_client.h"

/* The live grant of resident for client (grant_out "" when none) and its
 * scopes that have not expired (space-separated into scopes_out). */
enum az_rc az_grant_find(const char *resident, const char *client, char grant_out[65],
                         char scopes_out[AZ_SCOPE_MAX + 1]);

/* Records the resident's consent to exactly scopes for client (creating the
 * grant or replacing its scopes; expires_s > 0 bounds them), with a
 * consent.grant audit entry in the same transaction. */
enum az_rc az_grant_consent(const char *resident, const struct az_client *c, const char *scopes,
                            long expires_s, char grant_out[65]);

/* Revokes grant_id of resident: the grant ends, its refresh tokens die, a
 * consent.revoke entry is appended. AZ_NOT_FOUND when it is not theirs or
 * already revoked. */
enum az_rc az_grant_revoke(const char *resident, const char *grant_id, const char *actor);

/* The resident's live grants for the account page: [{"grant_id",
 * "client_id", "client_name", "tenant", "tenant_name", "created_at",
 * "scopes": [{"scope", "granted_at", "expires_at"}]}]. NULL when the
 * database is down. */
json_t *az_grant_list(const char *resident);

/* 1 when grant_id is live and its resident (and their town) active:
 * resident_out gets the common ID, scopes_out the scopes consented now and
 * *after the time up to which tokens are dead (the resident's last disable);
 * 0 when not, -1 when it cannot be told now. Cached per process until a
 * consented scope expires, dropped on NOTIFY. */
int az_grant_live(const char *grant_id, char resident_out[65], char scopes_out[AZ_SCOPE_MAX + 1],
                  long long *after);
/* Drops what this process cached about resident's grants (after a change to
 * the resident committed here; other processes hear of it by NOTIFY). */
void az_grant_forget_resident(const char *resident);

void az_grant_cache_init(void);
void az_grant_cache_release(void);

#endif
