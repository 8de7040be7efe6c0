#ifndef AU_H
#define AU_H

/*
 * The audit log: one tamper-evident RFC 9162 Merkle log of every transfer
 * between towns and every change an auditor must see, with signed
 * checkpoints, proofs, the auditor API and the offline verifier. The byte
 * format is specified in audit/FORMAT.md.
 */
#include <jansson.h>

#include "core/cli.h"
#include "core/db.h"
#include "core/router.h"

/* the purpose the checkpoint keys' private halves are sealed for */
#define AU_KEY_LABEL "renkei.audit.checkpoint-key.v1"

/*
 * One entry. Strings are borrowed; NULL means absent (null in the entry).
 * kind: "transfer", "consent.grant", "tenant.create", ...; tenant: the tenant
 * the event is about; actor: who caused it ("client:<id>", "cli:root");
 * decision: "permit"/"deny" (transfers); resident: the opaque reference of
 * au_resident_ref(), never a name or a town's resident number. request,
 * outcome, detail: JSON objects of strings, integers, booleans, arrays
 * (no fractions), or NULL; a response body is never put here, only its digest.
 */
struct au_entry {
    const char *kind;
    const char *tenant;
    const char *actor;
    const char *decision;
    const char *reason;
    const char *consumer_tenant;
    const char *consumer_client;
    const char *provider;
    const char *agreement;
    const char *purpose;
    const char *resident;
    json_t *request;
    json_t *outcome;
    json_t *detail;
};

/*
 * Appends e and returns once it is committed (synchronous_commit on), so a
 * request may be answered only after its record is durable. Concurrent
 * callers share group commits. *seq (may be NULL) receives its index.
 * Returns false when e is malformed (our bug, logged) or the database cannot
 * take it: the caller must then fail closed (503) and return no data.
 */
bool au_append(const struct au_entry *e, uint64_t *seq);

/*
 * au_append without waiting: done(arg, ok, seq) is called once e is
 * committed (ok) or refused, on the appender's thread (or on the caller's,
 * before this returns, when no appender runs). e and everything it points to
 * must stay valid until done is called; done must not block.
 */
typedef void (*au_append_done)(void *arg, bool ok, uint64_t seq);
void au_append_async(const struct au_entry *e, au_append_done done, void *arg);

/* Appends e inside the caller's transaction: it is in the log exactly when
 * that transaction commits. Holds the log's head lock until then, so keep
 * the rest of the transaction short. false: the statement failed (roll back). */
bool au_append_in_tx(struct core_db_conn *c, const struct au_entry *e, uint64_t *seq);

/* An administrative event, appended in the caller's transaction (above):
 * kind "tenant.create" style, tenant the one it is about (NULL: the
 * platform), actor who did it, detail an object (borrowed; NULL for none),
 * never secrets or personal data. */
bool au_event_record(struct core_db_conn *c, const char *kind, const char *tenant,
                     const char *actor, json_t *detail);

/* The opaque reference under which the log names a resident: base64url of an
 * HMAC of their common ID under a key derived from the master secret (43
 * characters + NUL). */
void au_resident_ref(const char *common_id, char out[44]);

/* The transfers that carried a resident's reference, oldest first, after
 * seq after (-1: from the start), at most limit; *more when there are more.
 * Items: {seq, time, town, service, provider, purpose, agreement, decision}.
 * NULL when the database failed. */
json_t *au_access_log(const char *resident_ref, int64_t after, long limit, bool *more);

/* The public checkpoint keys (active and retired), as JWKs with kid, use and
 * alg, for the hub's JWKS. New reference; NULL before au_start. */
json_t *au_jwks(void);

void au_routes(struct core_router *r);
/* With `serve`: takes over pending events, loads the checkpoint key, starts
 * the group-commit appender and the checkpointer. */
void au_start(void);
void au_stop(void);
/* `renkei audit verify|export|verify-file|checkpoint` */
int au_cmd_audit(const struct core_app *app, int argc, char **argv);

#endif
