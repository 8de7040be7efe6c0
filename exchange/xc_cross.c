/*
 * Another town's data: the decision, the narrowing, and the audit entry of
 * every cross-town request (see xc_cross.h).
 */
#include <stdatomic.h>
#include <ctype.h>

#include "audit/au.h"
#include "authz/az_resident.h"
#include "core/crypto.h"
#include "core/log.h"
#include "exchange/xc_cross.h"
#include "exchange/xc_q.h"

#define HEADER_MAX 128

/* A purpose as agreements spell them: [a-z0-9][a-z0-9._-]{0,63}. */
static bool purpose_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > XC_AG_PURPOSE_MAX ||
        !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!islower(c) && !isdigit(c) && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

static bool agreement_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 4 || n > XC_AG_ID_LEN || strncmp(s, "ag_", 3) != 0)
        return false;
    for (s += 3; *s; s++)
        if (!isalnum((unsigned char)*s))
            return false;
    return true;
}

/* Entities in a reply body: an array's length, 1 for an object, else 0. */
static long count_entities(unsigned status, const void *body, size_t len)
{
    if (status >= 300 || len == 0)
        return 0;
    const char *b = body;
    if (b[0] == '{')
        return 1;
    if (b[0] != '[')
        return 0;
    json_t *v = json_loadb(b, len, JSON_DECODE_ANY, NULL);
    long n = json_is_array(v) ? (long)json_array_size(v) : 0;
    json_decref(v);
    return n;
}

static const char *reason_of(const struct xc_cross *x, unsigned status)
{
    if (x->decided)
        return x->dec.permit ? NULL : xc_deny_code(x->dec.deny);
    if (status == 503)
        return "unavailable";
    return status >= 500 ? "error" : "bad_request";
}

/* Decisions by outcome and reason, for /metrics: [0] permits, [d] denials
 * for reason d, then requests that ended before a decision (decision
 * "none": unavailable, error, bad_request). */
#define XC_N_DENY (XC_DENY_NOT_LINKED + 1)
static atomic_ullong m_decisions[XC_N_DENY + 3];
static const char *const undecided[] = {"unavailable", "error", "bad_request"};

void xc_cross_metrics(struct strbuf *out)
{
    strbuf_addf(out,
                "# HELP renkei_exchange_decisions_total Cross-town requests by decision and "
                "reason (each one an audit entry).\n"
                "# TYPE renkei_exchange_decisions_total counter\n"
                "renkei_exchange_decisions_total{decision=\"permit\",reason=\"\"} %llu\n",
                (unsigned long long)atomic_load(&m_decisions[0]));
    for (int d = 1; d < XC_N_DENY; d++)
        strbuf_addf(out, "renkei_exchange_decisions_total{decision=\"deny\",reason=\"%s\"} %llu\n",
                    xc_deny_code((enum xc_deny)d),
                    (unsigned long long)atomic_load(&m_decisions[d]));
    for (size_t i = 0; i < ARRAY_SIZE(undecided); i++)
        strbuf_addf(out, "renkei_exchange_decisions_total{decision=\"none\",reason=\"%s\"} %llu\n",
                    undecided[i], (unsigned long long)atomic_load(&m_decisions[XC_N_DENY + i]));
}

static void count_decision(const struct xc_cross *x, unsigned status)
{
    size_t i;
    if (x->decided)
        i = x->dec.permit ? 0 : (size_t)x->dec.deny;
    else
        i = XC_N_DENY + (status == 503 ? 0 : status >= 500 ? 1 : 2);
    if (i < ARRAY_SIZE(m_decisions))
        atomic_fetch_add(&m_decisions[i], 1);
}

static void json_release(void *p)
{
    json_decref(p);
}

/* The appender's word on the entry: the held reply leaves, or a 503. */
static void audit_done(void *arg, bool ok, uint64_t seq)
{
    (void)seq;
    struct core_req *req = arg;
    if (!ok)
        core_error("transfer of request %s not recorded: reply withheld", req->request_id);
    core_req_gate_done(req, ok);
}

/* The reply gate: the transfer's audit entry, committed before the reply
 * goes out. The entry lives in the request's pool until the appender has
 * committed it; the worker thread meanwhile serves other connections. */
static void audit_gate(struct core_req *req, unsigned status, const void *body, size_t len,
                       void *arg)
{
    struct xc_cross *x = arg;
    bool permit = x->decided && x->dec.permit;
    unsigned char h[32];
    core_sha256(body ? body : "", len, h);
    char *digest = core_b64_encode(h, sizeof h);
    long entities = x->entities >= 0 ? x->entities : count_entities(status, body, len);
    if (status >= 300)
        entities = 0;
    /* id: the request id (X-Request-Id, or the hub's), which the hub's log
     * and the client's reply carry too */
    json_t *request =
        json_pack("{s:s, s:s, s:s, s:s*, s:O, s:O}", "id", req->request_id, "method", x->method,
                  "path", x->path, "service_path", x->service_path, "types",
                  x->types ? x->types : json_null(), "attrs", x->attrs ? x->attrs : json_null());
    json_t *outcome = json_pack("{s:i, s:I, s:I, s:s}", "status", (int)status, "entities",
                                (json_int_t)entities, "bytes", (json_int_t)len, "sha256", digest);
    free(digest);
    core_pool_cleanup(req->pool, json_release, request);
    core_pool_cleanup(req->pool, json_release, outcome);
    struct au_entry *e = core_pcalloc(req->pool, sizeof *e);
    *e = (struct au_entry){
        .kind = "transfer",
        .tenant = x->provider,
        .actor = x->actor,
        .decision = permit ? "permit" : "deny",
        .reason = reason_of(x, status),
        .consumer_tenant = x->consumer,
        .consumer_client = x->client,
        .provider = x->provider,
        .agreement = x->dec.has_ag ? x->dec.ag.id : NULL,
        .purpose = x->purpose,
        .resident = x->has_resident ? x->resident_ref : NULL,
        .request = request,
        .outcome = outcome,
    };
    count_decision(x, status);
    au_append_async(e, audit_done, req);
}

static void cross_free(void *p)
{
    struct xc_cross *x = p;
    xc_decision_release(&x->dec);
    json_decref(x->types);
    json_decref(x->attrs);
}

void xc_cross_begin(struct xc_ngsi *n)
{
    struct core_req *req = n->req;
    struct xc_cross *x = core_pcalloc(req->pool, sizeof *x);
    core_pool_cleanup(req->pool, cross_free, x);
    x->provider = n->tenant;
    x->consumer = n->p->tenant;
    x->client = n->p->client_id ? n->p->client_id : "?";
    x->actor = core_psprintf(req->pool, "client:%s", x->client);
    x->method = req->method;
    x->path = req->path;
    x->entities = -1;
    const char *sp = core_req_header(req, "Fiware-ServicePath");
    if (sp && *sp && strlen(sp) <= 1024)
        x->service_path = sp;
    const char *purpose = core_req_header(req, "Renkei-Purpose");
    if (purpose && purpose_ok(purpose)) /* the entry may outlive the connection's headers */
        x->purpose = core_pstrdup(req->pool, purpose);
    const char *ag = core_req_header(req, "Renkei-Agreement");
    x->agreement_hdr = ag && *ag ? ag : NULL;
    if (n->p->resident) {
        au_resident_ref(n->p->resident, x->resident_ref);
        x->has_resident = true;
    }
    n->x = x;
    core_req_gate(req, audit_gate, x);
}

static void deny(struct xc_ngsi *n, enum xc_deny why, const char *fmt, ...) PRINTF_LIKE(3, 4);

static void deny(struct xc_ngsi *n, enum xc_deny why, const char *fmt, ...)
{
    struct xc_cross *x = n->x;
    x->decided = true;
    x->dec.permit = false;
    x->dec.deny = why;
    va_list ap;
    va_start(ap, fmt);
    char *d = xvasprintf(fmt, ap);
    va_end(ap);
    if (why == XC_DENY_RATE) {
        core_reply_header(n->req, "Retry-After", "60");
        core_reply_error(n->req, CORE_ERR_TOO_MANY_REQUESTS, "%s", d);
    } else {
        core_reply_error(n->req, CORE_ERR_FORBIDDEN, "%s", d);
    }
    free(d);
}

void xc_cross_deny(struct xc_ngsi *n, enum xc_deny why, const char *msg)
{
    deny(n, why, "%s", msg);
}

static json_t *name_array(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

bool xc_cross_decide(struct xc_ngsi *n, unsigned action, const char *const *types, size_t ntypes)
{
    struct xc_cross *x = n->x;
    if (!x)
        return true;
    x->action = action;
    json_decref(x->types);
    x->types = ntypes ? name_array(types, ntypes) : NULL;
    const char *hdr = core_req_header(n->req, "Renkei-Purpose");
    if (hdr && !x->purpose) {
        deny(n, XC_DENY_PURPOSE,
             "Renkei-Purpose must be one purpose name ([a-z0-9][a-z0-9._-], at most %d bytes)",
             XC_AG_PURPOSE_MAX);
        return false;
    }
    if (x->agreement_hdr && !agreement_id_ok(x->agreement_hdr)) {
        deny(n, XC_DENY_NO_AGREEMENT, "Renkei-Agreement does not name an agreement");
        return false;
    }
    struct xc_policy_ask ask = {.provider = x->provider,
                                .consumer = x->consumer,
                                .action = action,
                                .purpose = x->purpose,
                                .types = types,
                                .ntypes = ntypes,
                                .agreement = x->agreement_hdr,
                                .now = (int64_t)time(NULL),
                                .resident = n->p->resident != NULL};
    xc_decision_release(&x->dec);
    if (!xc_policy_decide(&ask, &x->dec)) {
        memset(&x->dec, 0, sizeof x->dec);
        core_reply_error(n->req, CORE_ERR_DB_UNAVAILABLE, NULL);
        return false;
    }
    x->decided = true;
    struct xc_decision *d = &x->dec;
    if (!d->permit) {
        deny(n, d->deny, "%s", d->detail[0] ? d->detail : "no data-sharing agreement permits this");
        return false;
    }
    const struct xc_agreement *ag = &d->ag;
    if (n->p->resident && !ag->personal) {
        /* a resident's consent lets an app reach their own records, never a
         * town's data as a whole */
        deny(n, XC_DENY_SERVICE,
             "a resident's token reaches only the resident's own records, under a personal-data "
             "agreement; agreement %s is for the town's services",
             ag->id);
        return false;
    }
    if (ag->personal) {
        if (!n->p->resident) {
            deny(n, XC_DENY_RESIDENT,
                 "agreement %s covers personal data: the request needs a resident's token "
                 "issued with their consent",
                 ag->id);
            return false;
        }
        if (!core_principal_has_scope(n->p, ag->consent_scope)) {
            deny(n, XC_DENY_CONSENT, "the resident has not consented to scope %s for this app",
                 ag->consent_scope);
            return false;
        }
        char local[101];
        enum az_rc rc = az_resident_local_id(n->p->resident, x->provider, local);
        if (rc == AZ_UNAVAILABLE) {
            core_reply_error(n->req, CORE_ERR_DB_UNAVAILABLE, NULL);
            return false;
        }
        if (rc != AZ_OK) {
            deny(n, XC_DENY_NOT_LINKED, "the resident has no record in town %s", x->provider);
            return false;
        }
        n->resident_attr = ag->resident_attr;
        n->resident_value = core_pstrdup(n->req->pool, local);
        if (n->remote && (action != XC_AG_READ || !n->listing)) {
            /* at a town's own Orion only a query can be kept to the
             * resident's entities (q); an id could name anyone's */
            deny(n, XC_DENY_ACTION,
                 "personal data at a town's own city OS is read through a query "
                 "(GET /v2/entities?type=..., POST /v2/op/query), which the hub keeps to the "
                 "resident's own entities");
            return false;
        }
    }
    if (!x->types)
        x->types = name_array((const char *const *)ag->types, ag->ntypes);
    if (ag->nattrs)
        x->attrs = name_array((const char *const *)ag->attrs, ag->nattrs);
    n->only_types = (const char *const *)ag->types;
    n->nonly_types = ag->ntypes;
    return true;
}

static bool attr_agreed(const struct xc_agreement *ag, const char *name)
{
    if (ag->nattrs == 0)
        return true;
    for (size_t i = 0; i < ag->nattrs; i++)
        if (!strcmp(ag->attrs[i], name))
            return true;
    return false;
}

bool xc_cross_attr(struct xc_ngsi *n, const char *name, const char *where)
{
    struct xc_cross *x = n->x;
    if (!x || attr_agreed(&x->dec.ag, name))
        return true;
    deny(n, XC_DENY_ATTR, "attribute %s%s%s is not covered by agreement %s", name,
         where ? " in " : "", where ? where : "", x->dec.ag.id);
    return false;
}

static bool builtin(const char *name)
{
    return !strcmp(name, "id") || !strcmp(name, "type") || !strcmp(name, "dateCreated") ||
           !strcmp(name, "dateModified") || !strcmp(name, "geo:distance");
}

static bool q_names(struct xc_ngsi *n, const char *q, enum xc_q_kind kind, const char *where)
{
    const char **names;
    size_t count;
    char err[300] = "";
    if (!xc_q_attrs(n->req->pool, q, kind, &names, &count, err, sizeof err)) {
        core_reply_error(n->req, CORE_ERR_BAD_REQUEST, "%s", err);
        return false;
    }
    for (size_t i = 0; i < count; i++)
        if (!builtin(names[i]) && !xc_cross_attr(n, names[i], where))
            return false;
    return true;
}

/* q or mq as a town's own Orion reads it: Orion splits at every ';', even
 * one inside quotes, so each piece is checked on its own as well. */
static bool q_names_split(struct xc_ngsi *n, const char *q, enum xc_q_kind kind, const char *where)
{
    if (!q_names(n, q, kind, where))
        return false;
    if (!n->remote || !strchr(q, ';'))
        return true;
    const char *p = q;
    for (;;) {
        size_t len = strcspn(p, ";");
        if (len) {
            char *piece = core_pstrndup(n->req->pool, p, len);
            const char **names;
            size_t count;
            char err[300] = "";
            if (!xc_q_attrs(n->req->pool, piece, kind, &names, &count, err, sizeof err)) {
                deny(n, XC_DENY_ATTR,
                     "%s cannot be read the same way by the hub and the town's city OS (a ';' "
                     "inside a value)",
                     where);
                return false;
            }
            for (size_t i = 0; i < count; i++)
                if (!builtin(names[i]) && !xc_cross_attr(n, names[i], where))
                    return false;
        }
        if (!p[len])
            break;
        p += len + 1;
    }
    return true;
}

bool xc_cross_query(struct xc_ngsi *n, const struct xc_query *q)
{
    struct xc_cross *x = n->x;
    if (!x || x->dec.ag.nattrs == 0)
        return true;
    if (q->q && !q_names_split(n, q->q, XC_Q_ATTRS, "q"))
        return false;
    if (q->mq && !q_names_split(n, q->mq, XC_Q_METADATA, "mq"))
        return false;
    for (size_t i = 0; i < q->norder; i++) {
        const char *o = q->order_by[i];
        if (o[0] == '!')
            o++;
        if (!builtin(o) && !xc_cross_attr(n, o, "orderBy"))
            return false;
    }
    if (q->georel || q->geometry || q->coords) {
        deny(n, XC_DENY_ATTR,
             "a geographic query reads the location attribute, and agreement %s covers only "
             "some attributes",
             x->dec.ag.id);
        return false;
    }
    return true;
}

void xc_cross_render(const struct xc_ngsi *n, struct xc_render *r)
{
    const struct xc_cross *x = n->x;
    if (!x || !x->dec.permit || x->dec.ag.nattrs == 0)
        return;
    r->restricted = true;
    r->allow = (const char *const *)x->dec.ag.attrs;
    r->nallow = x->dec.ag.nattrs;
}

void xc_cross_entities(struct xc_ngsi *n, long count)
{
    if (n->x)
        n->x->entities = count;
}

bool xc_cross_whole_entity(struct xc_ngsi *n, const char *what)
{
    struct xc_cross *x = n->x;
    if (!x || (x->dec.ag.nattrs == 0 && !n->resident_attr))
        return true;
    deny(n, XC_DENY_ATTR, "%s would touch attributes agreement %s does not cover", what,
         x->dec.ag.id);
    return false;
}

bool xc_cross_write(struct xc_ngsi *n, const char *type, const json_t *attrs, bool creating)
{
    if (!n->x)
        return true;
    if (type && xc_check_name(type)) {
        core_reply_error(n->req, CORE_ERR_BAD_REQUEST, "invalid character in URI parameter");
        return false;
    }
    if (!xc_cross_decide(n, XC_AG_WRITE, type ? &type : NULL, type ? 1 : 0))
        return false;
    if (n->remote && !type) {
        deny(n, XC_DENY_TYPE,
             "a write to a town's own city OS names the entity type (?type=), so it cannot "
             "reach a type the agreement does not cover");
        return false;
    }
    return xc_cross_write_attrs(n, attrs, creating);
}

bool xc_cross_write_attrs(struct xc_ngsi *n, const json_t *attrs, bool creating)
{
    if (!n->x)
        return true;
    const char *k;
    json_t *a;
    json_object_foreach((json_t *)attrs, k, a)
    {
        if (!xc_cross_attr(n, k, NULL))
            return false;
    }
    if (n->resident_attr) {
        json_t *ra = json_object_get(attrs, n->resident_attr);
        const char *v = json_string_value(json_object_get(ra, "value"));
        if ((creating || ra) && (!v || strcmp(v, n->resident_value) != 0)) {
            deny(n, XC_DENY_ATTR,
                 "a write under a personal-data agreement keeps the entity the "
                 "resident's own");
            return false;
        }
    }
    return true;
}

bool xc_cross_read_one(struct xc_ngsi *n, struct xc_render *r)
{
    if (!n->x)
        return true;
    const char *type = core_req_query(n->req, "type");
    if (type && xc_check_name(type)) {
        core_reply_error(n->req, CORE_ERR_BAD_REQUEST, "invalid character in URI parameter");
        return false;
    }
    if (n->remote && !type) {
        deny(n, XC_DENY_TYPE,
             "a read of one entity at a town's own city OS names its type (?type=), so it cannot "
             "reach a type the agreement does not cover");
        return false;
    }
    if (!xc_cross_decide(n, XC_AG_READ, type ? &type : NULL, type ? 1 : 0))
        return false;
    if (r)
        xc_cross_render(n, r);
    return true;
}
