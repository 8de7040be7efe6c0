#ifndef TN_H
#define TN_H

/*
 * The tenant registry: towns (and the prefecture above them), how the hub
 * reaches each town's city OS, and their state. Ids are Fiware-Service names.
 */
#include <jansson.h>

#include "core/db.h"
#include "core/router.h"

#define TN_NAME_MAX       200  /* characters */
#define TN_SECRET_MAX     8192 /* bytes of an upstream token or client secret */
#define TN_UPSTREAM_LABEL "renkei.tenant.upstream.v1"

enum tn_state { TN_ACTIVE, TN_SUSPENDED };
enum tn_auth { TN_AUTH_NONE, TN_AUTH_BEARER, TN_AUTH_CLIENT_CREDENTIALS };

/* A remote city OS: an NGSI-v2 endpoint and what the hub presents there. */
struct tn_upstream {
    char *url;
    char *fiware_service; /* NULL: none sent */
    enum tn_auth auth;
    char *token_url; /* client_credentials */
    char *client_id; /* client_credentials */
    char *scope;     /* client_credentials, may be NULL */
    char *secret;    /* bearer token or client secret: set when writing only */
    size_t secret_len;
};

struct tn_tenant {
    char id[51];
    char *name;
    char *parent; /* NULL: none */
    enum tn_state state;
    bool hosted;
    struct tn_upstream up; /* when !hosted */
    char created_at[40];
    char updated_at[40];
    int version;
};

void tn_tenant_release(struct tn_tenant *t);
const char *tn_state_name(enum tn_state s);
const char *tn_auth_name(enum tn_auth a);

/* ---- validation: NULL when fine, else a message naming the field ---- */

/* A description of what is wrong with id, or NULL. */
const char *tn_check_id(const char *id);
/* Valid UTF-8, 1-200 characters, no control characters. */
const char *tn_check_name(const char *name);
/* The upstream's URL, service, auth fields and secret as a whole. */
const char *tn_check_upstream(const struct tn_upstream *up);

/* The tenant as the admin API shows it (never any secret). */
json_t *tn_tenant_json(const struct tn_tenant *t);

/* ---- database ---- */

enum tn_rc {
    TN_OK,
    TN_NOT_FOUND,   /* no such tenant (or not visible in this context) */
    TN_EXISTS,      /* create: the id is taken */
    TN_BAD_PARENT,  /* the parent does not exist */
    TN_CYCLE,       /* the parent chain would loop (or be deeper than 8) */
    TN_FORBIDDEN,   /* the database refused it for this context */
    TN_CONFLICT,    /* the version given is not the current one */
    TN_UNAVAILABLE, /* the database cannot be reached */
    TN_ERROR,       /* anything else: logged */
};

/* What a failed call says about itself, for the error reply. */
struct tn_result {
    enum tn_rc rc;
    char message[300];
};

/* Creates t in the platform context, with its upstream (the secret sealed)
 * and a tenant.create event by actor. */
enum tn_rc tn_create(const struct tn_tenant *t, const char *actor, struct tn_result *res);

/* Reads one tenant in context (CORE_DB_PLATFORM or a tenant id): the upstream
 * only when the context may see it. *out is released by the caller. */
enum tn_rc tn_get(const char *context, const char *id, struct tn_tenant *out,
                  struct tn_result *res);

/* Up to limit tenants with ids after `after` (NULL: from the start), in id
 * order; *out is an array of *n (release each, then free the array). */
enum tn_rc tn_list(const char *context, const char *after, int limit, struct tn_tenant **out,
                   size_t *n, struct tn_result *res);

/* A change to a tenant: NULL / -1 fields stay as they are. */
struct tn_patch {
    const char *name;
    const char *parent; /* "" clears the parent */
    int state;          /* -1, TN_ACTIVE, TN_SUSPENDED */
    bool set_city_os;
    bool hosted;
    const struct tn_upstream *up; /* when set_city_os && !hosted */
    int if_version;               /* 0: any */
    const char *reason;           /* recorded with a state change */
};

/* Applies p to tenant id in context, records tenant.update / tenant.suspend /
 * tenant.resume events by actor, and leaves the new state in *out. */
enum tn_rc tn_update(const char *context, const char *id, const struct tn_patch *p,
                     const char *actor, struct tn_tenant *out, struct tn_result *res);

/* Reads tenant id's city OS registration in the platform context and opens
 * its sealed secret (for forwarding; never shown anywhere). TN_NOT_FOUND
 * when there is no such tenant or it is hosted; TN_ERROR when the secret
 * does not open (altered, or the master secret changed: logged). *out is
 * released with tn_upstream_release, which wipes the secret. */
enum tn_rc tn_upstream_load(const char *id, struct tn_upstream *out);
void tn_upstream_release(struct tn_upstream *up);

/* ---- the cache of tenant state for hot paths ---- */

struct tn_brief {
    enum tn_state state;
    bool hosted;
};

/* Starts listening for changes (call before core_db_listen_start). */
void tn_cache_init(void);
void tn_cache_release(void);
/* Drops tenant id from this node's cache (after a change committed here;
 * other nodes hear of it by NOTIFY). */
void tn_cache_forget(const char *id);
/* The state of tenant id: from the cache when it is coherent, else from the
 * database. TN_NOT_FOUND, TN_UNAVAILABLE as for tn_get. */
enum tn_rc tn_brief(const char *id, struct tn_brief *out);

/* ---- entry points ---- */

void tn_routes(struct core_router *r);
struct core_app;
int tn_cmd_tenant(const struct core_app *app, int argc, char **argv);

#endif
