#ifndef XC_AGREEMENT_H
#define XC_AGREEMENT_H

/*
 * Data-sharing agreements between towns: what a consumer town may read (or
 * write) of a provider town's city OS, for which purposes, when, how often,
 * and whether it is personal data that needs the resident's consent. The
 * consumer proposes; the provider's administrator (or the platform's)
 * approves, suspends, resumes or revokes. Every change is an audit event.
 *
 * The policy index (xc_policy_*) holds every agreement that can permit
 * anything in memory, kept coherent across hub processes by NOTIFY
 * renkei_agreements, so a decision costs no database round trip.
 */
#include <jansson.h>
#include <stdint.h>

#include "core/cli.h"
#include "core/db.h"
#include "core/router.h"

#define XC_AG_ID_LEN      27  /* "ag_" + 24 base32 characters (120 random bits) */
#define XC_AG_LIST_MAX    100 /* entity types, attributes, purposes in one agreement */
#define XC_AG_PURPOSE_MAX 64  /* bytes of a purpose: [a-z0-9][a-z0-9._-]* */
#define XC_AG_SCOPE_MAX   64  /* bytes of a consent scope */
#define XC_AG_RATE_MAX    1000000
#define XC_AG_NOTE_MAX    1000 /* characters of a description */

enum xc_ag_state { XC_AG_PROPOSED, XC_AG_ACTIVE, XC_AG_SUSPENDED, XC_AG_REVOKED };

/* Actions (bit set). */
#define XC_AG_READ  1u
#define XC_AG_WRITE 2u

struct xc_agreement {
    char id[XC_AG_ID_LEN + 1];
    char provider[51];
    char consumer[51];
    char **types; /* entity types, at least one */
    size_t ntypes;
    char **attrs; /* attribute names; none: every attribute */
    size_t nattrs;
    unsigned actions; /* XC_AG_READ | XC_AG_WRITE, at least one */
    char **purposes;  /* at least one */
    size_t npurposes;
    bool personal;
    char *consent_scope; /* personal: the scope the resident must have granted the
                          * consumer's client (default "exchange.<provider>") */
    char *resident_attr; /* personal: the provider's attribute holding its local
                          * resident number (default "refResident") */
    int64_t valid_from;  /* unix seconds; 0: from approval on */
    int64_t valid_until; /* unix seconds; 0: open-ended */
    int rate_per_minute; /* 0: no limit */
    char *description;   /* may be NULL */
    enum xc_ag_state state;
    char created_at[40], updated_at[40]; /* RFC 3339 */
    int version;
};

void xc_agreement_release(struct xc_agreement *a);
const char *xc_ag_state_name(enum xc_ag_state s);

/* The agreement in the contract's shape: {"id", "provider", "consumer",
 * "entity_types", "attrs", "actions", "purposes", "personal", "valid_from",
 * "valid_until", "rate_per_minute", "state"} plus "consent_scope",
 * "resident_attr" (personal only), "description", "created_at",
 * "updated_at", "version". Times RFC 3339 UTC or null. New reference. */
json_t *xc_agreement_json(const struct xc_agreement *a);

/* Deep copy of src into dst (dst's old contents are not released). */
void xc_agreement_copy(struct xc_agreement *dst, const struct xc_agreement *src);
/* "proposed" ... "revoked" to the state; false for anything else. */
bool xc_ag_state_parse(const char *s, enum xc_ag_state *out);

/* ---- validation: NULL when fine, else a message naming the field ---- */

/* A purpose: [a-z0-9][a-z0-9._-]{0,63}. */
const char *xc_ag_check_purpose(const char *s);
/* RFC 3339 with a time and a zone ("2026-04-01T00:00:00Z", "...+09:00",
 * fractions allowed and dropped) to unix seconds; false otherwise. */
bool xc_ag_time_parse(const char *s, int64_t *out);
/* Unix seconds as "2026-04-01T00:00:00Z". */
void xc_ag_time_format(int64_t t, char out[32]);
/* "N" or "N/min" with N in [0, XC_AG_RATE_MAX]; false otherwise. */
bool xc_ag_rate_parse(const char *s, int *out);
/* The terms of a proposal as a whole: towns (ids, different), types and
 * attrs (NGSI names), actions, purposes, lists of at most XC_AG_LIST_MAX
 * without duplicates, personal fields, time window (until after from),
 * rate, description. Writes the reason into err (a 400's description). */
bool xc_agreement_check(const struct xc_agreement *a, char *err, size_t errlen);
/* Fills the personal defaults (consent_scope "exchange.<provider>",
 * resident_attr "refResident") when a->personal and they are unset. */
void xc_agreement_defaults(struct xc_agreement *a);
/* A proposal (the body of POST /admin/v1/agreements) into a, everything
 * owned by a: the members' types, the consumer (default_consumer when
 * absent; NULL: required), the actions, defaults, then xc_agreement_check.
 * Members it does not know are ignored (the handler refuses them first).
 * false with err when the proposal is not acceptable. */
bool xc_agreement_from_json(json_t *body, const char *default_consumer, struct xc_agreement *a,
                            char *err, size_t errlen);

/* ---- database (xc_agreement_db.c) ----
 * context is CORE_DB_PLATFORM or a tenant id (row-level security: a town
 * sees the agreements it is provider or consumer of). Every change records
 * an audit event (agreement.propose|approve|suspend|resume|revoke, tenant =
 * the provider) in its own transaction. */
enum xc_ag_rc {
    XC_AG_OK,
    XC_AG_NOT_FOUND,   /* no such agreement, or not visible in this context */
    XC_AG_INVALID,     /* bad terms (an unknown town, say): 400 */
    XC_AG_FORBIDDEN,   /* this context may not do it: 403 */
    XC_AG_CONFLICT,    /* not a legal transition from the current state: 409 */
    XC_AG_STALE,       /* if_version is not the current version: 412 */
    XC_AG_UNAVAILABLE, /* the database cannot be reached */
    XC_AG_ERROR,       /* anything else: logged */
};
struct xc_ag_result {
    enum xc_ag_rc rc;
    char message[300];
};

/* Proposes a (checked with xc_agreement_check first) as context: the
 * platform, or the consumer town itself. A new id is drawn; *out receives
 * the stored agreement (release it). */
enum xc_ag_rc xc_agreement_create(const char *context, const struct xc_agreement *a,
                                  const char *actor, struct xc_agreement *out,
                                  struct xc_ag_result *res);
/* Reads one agreement; *out released by the caller. */
enum xc_ag_rc xc_agreement_get(const char *context, const char *id, struct xc_agreement *out,
                               struct xc_ag_result *res);

struct xc_ag_filter {
    const char *provider; /* NULL: any */
    const char *consumer; /* NULL: any */
    int state;            /* -1: any, -2: any but revoked, else an xc_ag_state */
    const char *after;    /* cursor: ids after this one (NULL: from the start) */
    int limit;
};
/* Up to f->limit agreements in id order; *out an array of *n (release each,
 * then free the array). */
enum xc_ag_rc xc_agreement_list(const char *context, const struct xc_ag_filter *f,
                                struct xc_agreement **out, size_t *n, struct xc_ag_result *res);

/* Moves agreement id to state `to` (approve: proposed->active, resume:
 * suspended->active, suspend, revoke), if_version 0 or the version read.
 * The provider (or the platform) does all of it; the consumer may only
 * revoke (withdraw). *out receives the new state (release it). */
enum xc_ag_rc xc_agreement_set_state(const char *context, const char *id, enum xc_ag_state to,
                                     int if_version, const char *actor, struct xc_agreement *out,
                                     struct xc_ag_result *res);

/* ---- the policy decision ---- */

/* Why a cross-town request was denied (each has a fixed reason code in the
 * audit entry and a description in the 403). */
enum xc_deny {
    XC_DENY_NONE = 0,
    XC_DENY_NO_AGREEMENT, /* "no_agreement": nothing between these towns for this */
    XC_DENY_NO_PURPOSE,   /* "purpose_missing": no Renkei-Purpose header */
    XC_DENY_PURPOSE,      /* "purpose_not_agreed" */
    XC_DENY_TYPE,         /* "type_not_agreed" (also patterns that could match others) */
    XC_DENY_ACTION,       /* "action_not_agreed": a write under a read agreement */
    XC_DENY_ATTR,         /* "attr_not_agreed": an attribute named in q, mq, orderBy, attrs... */
    XC_DENY_NOT_YET,      /* "not_yet_valid" */
    XC_DENY_EXPIRED,      /* "expired" */
    XC_DENY_SUSPENDED,    /* "agreement_suspended" */
    XC_DENY_PROPOSED,     /* "agreement_not_approved" */
    XC_DENY_REVOKED,      /* "agreement_revoked" */
    XC_DENY_RATE,         /* "rate_limited" (429) */
    XC_DENY_TOWN,         /* "town_suspended": provider or consumer suspended */
    XC_DENY_CONSENT,      /* "no_consent": personal data without the resident's consent */
    XC_DENY_RESIDENT,     /* "resident_token_required": personal data, service token */
    XC_DENY_SERVICE,      /* "service_token_required": a town's data, a resident's token */
    XC_DENY_NOT_LINKED,   /* "resident_not_linked": no local number in the provider town */
};
const char *xc_deny_code(enum xc_deny d);

/* What a decision is asked about. types: the entity types the request
 * names (none: the request names no type, and a permit narrows it to the
 * agreement's types). agreement: the Renkei-Agreement header, NULL when
 * absent (then the first agreement, in id order, that covers everything is
 * used). now: unix seconds. */
struct xc_policy_ask {
    const char *provider;
    const char *consumer;
    unsigned action; /* XC_AG_READ or XC_AG_WRITE */
    const char *purpose;
    const char *const *types;
    size_t ntypes;
    const char *agreement;
    int64_t now;
    /* attributes the request names (q, mq, orderBy, attrs, a write's
     * attributes); none: the permit narrows to the agreement's attrs */
    const char *const *attrs;
    size_t nattrs;
    /* the token is a resident's: among agreements that would decide alike,
     * personal ones are preferred (a service's token: the others) */
    bool resident;
};

/* A decision. On permit, a copy of the agreement that permits it (owned by
 * the decision: release with xc_decision_release). On deny, why, and the
 * agreement that came closest when there is one between these two towns
 * (so the audit entry can name it); detail is a short human description
 * naming the failed condition and never another town's agreement. */
struct xc_decision {
    bool permit;
    enum xc_deny deny;
    char detail[256];
    struct xc_agreement ag; /* zeroed when no agreement applies */
    bool has_ag;
};

/* Decides from the in-memory index (the database only while the index is
 * not coherent, i.e. the listener is disconnected). A permit also takes one
 * unit of the agreement's rate for this minute (XC_DENY_RATE when none is
 * left). Returns false only when the database was needed and failed. */
bool xc_policy_decide(const struct xc_policy_ask *ask, struct xc_decision *out);
void xc_decision_release(struct xc_decision *d);

/* The agreements consumer may use (active, in their time window), in id
 * order; a JSON array of agreement objects. New reference; NULL when the
 * database was needed and failed. */
json_t *xc_policy_catalog(const char *consumer, int64_t now);

/* Starts listening for agreement changes (call before core_db_listen_start). */
void xc_policy_init(void);
void xc_policy_release(void);
/* Drops the index after a change committed on this node (others hear NOTIFY). */
void xc_policy_forget(void);

/* ---- entry points ---- */

void xc_agreement_routes(struct core_router *r);
int xc_cmd_agreement(const struct core_app *app, int argc, char **argv);

#endif
