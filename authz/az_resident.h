#ifndef AZ_RESIDENT_H
#define AZ_RESIDENT_H

/*
 * Residents: the common ID (random, internal: never in a token, a page, an
 * API answer or the audit log), their home town, login, display name and
 * scrypt password hash; links from the common ID to each town's local
 * resident number; sign-in with throttling per login and per address.
 * Residents are named outside the hub by their login (unique hub-wide).
 */
#include <stdbool.h>
#include <stddef.h>

#include "authz/az_client.h"

#define AZ_LOGIN_MAX    254
#define AZ_PASSWORD_MIN 8
#define AZ_PASSWORD_MAX 1024

struct az_resident {
    char id[65]; /* the common ID ("r_..."); internal only */
    char tenant[51];
    char login[AZ_LOGIN_MAX + 1];
    char name[801]; /* up to 200 characters of UTF-8 */
    char email[AZ_LOGIN_MAX + 1];
    bool email_verified;
    bool disabled;
    char created_at[40];
    char updated_at[40];
    int version;
};

/* A new resident (strings borrowed; name and email may be NULL). */
struct az_resident_spec {
    const char *tenant;
    const char *login; /* e-mail or phone-style name; stored lower-cased */
    const char *name;
    const char *email; /* NULL: the login when it is an e-mail address */
    const char *password;
    size_t password_len;
};

/* Normalizes and checks a login (lower-cases ASCII into out); NULL when
 * fine, else why. */
const char *az_login_check(const char *login, char out[AZ_LOGIN_MAX + 1]);

/* ---- passwords (scrypt through OpenSSL's EVP_KDF) ---- */

/* Hashes password with the configured parameters into a string
 * "$scrypt$ln=L,r=R,p=P$<salt b64>$<hash b64>" (malloc'd). */
char *az_password_hash(const char *password, size_t len);
/* True when password matches stored (constant time). *rehash is set when the
 * stored parameters are weaker than the configured ones. */
bool az_password_verify(const char *password, size_t len, const char *stored, bool *rehash);
/* A stored-format string with the configured parameters, a random salt and a
 * hash no password matches (malloc'd): what sign-in checks an unknown login
 * against, so that it costs the same. */
char *az_password_dummy(void);

/* ---- the registry (context: a tenant id or CORE_DB_PLATFORM) ---- */

/* Creates a resident; records resident.create. AZ_CONFLICT: the login is
 * taken (in any town). out (may be NULL) receives the new resident. */
enum az_rc az_resident_create(const char *context, const struct az_resident_spec *s,
                              const char *actor, struct az_resident *out, struct az_result *res);
/* Reads the resident with login in context (AZ_NOT_FOUND when it cannot see one). */
enum az_rc az_resident_by_login(const char *context, const char *login, struct az_resident *out,
                                struct az_result *res);
/* Reads a resident by common ID (platform context; the hub's own use). */
enum az_rc az_resident_by_id(const char *id, struct az_resident *out, struct az_result *res);
/* Up to limit residents of tenant (NULL: all the context sees) after login
 * `after` in login order. *out is malloc'd (free it). */
enum az_rc az_resident_list(const char *context, const char *tenant, const char *after, int limit,
                            struct az_resident **out, size_t *n, struct az_result *res);
/* Disables or enables; records resident.disable / resident.enable. Disabling
 * ends the resident's sessions and kills their refresh tokens. */
enum az_rc az_resident_set_disabled(const char *context, const char *login, bool disabled,
                                    const char *actor, struct az_result *res);
/* Changes name, email and/or password (NULL: unchanged); records resident.update. */
enum az_rc az_resident_update(const char *context, const char *login, const char *name,
                              const char *email, const char *password, size_t password_len,
                              const char *actor, struct az_result *res);
/* Links the resident to local_id in tenant (replacing an earlier link of the
 * resident in that tenant); records resident.link. AZ_CONFLICT: another
 * resident has that local number in tenant; AZ_FORBIDDEN: a town's context
 * links into another town. */
enum az_rc az_resident_link(const char *context, const char *login, const char *tenant,
                            const char *local_id, const char *actor, struct az_result *res);
enum az_rc az_resident_unlink(const char *context, const char *login, const char *tenant,
                              const char *actor, struct az_result *res);
/* The resident's links visible in context: [{"tenant", "local_id", "created_at"}]. */
enum az_rc az_resident_links(const char *context, const char *login, json_t **out,
                             struct az_result *res);
/* The exchange's lookup: the local number of common ID resident_id in tenant. */
enum az_rc az_resident_local_id(const char *resident_id, const char *tenant, char out[101]);

/* The resident as the admin API and `--json` show it (no common ID, no hash). */
json_t *az_resident_json(const struct az_resident *r);

/* ---- sign-in ---- */

enum az_signin_rc {
    AZ_SIGNIN_OK,
    AZ_SIGNIN_BAD,       /* unknown login or wrong password: one answer for both */
    AZ_SIGNIN_DISABLED,  /* right password, disabled resident (or suspended town) */
    AZ_SIGNIN_THROTTLED, /* too many failures: *retry_after seconds */
    AZ_SIGNIN_UNAVAILABLE,
};
/* Checks login and password (an unknown login costs the same scrypt work as
 * a known one), counting failures per login and per peer address; rehashes
 * a password stored with weaker parameters. 5 failures of a login within 15
 * minutes lock it for 15 minutes, 30 of an address likewise; a right
 * password clears the login's count. out (may be NULL) is filled on
 * AZ_SIGNIN_OK only; *retry_after (may be NULL) is set on THROTTLED. */
enum az_signin_rc az_resident_signin(const char *login, const char *password, size_t len,
                                     const char *peer, struct az_resident *out, int *retry_after);

/* `renkei resident ...` */
struct core_app;
int az_cmd_resident(const struct core_app *app, int argc, char **argv);
/* /admin/v1/residents */
struct core_router;
void az_residents_routes(struct core_router *r);

#endif
