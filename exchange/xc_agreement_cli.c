/* `renkei agreement ...`: the operator's path to agreements. Runs in the
 * platform context (it may propose for any consumer and approve for any
 * provider). Bad input exits 2 with one line saying what is wrong; a state
 * the agreement cannot move from exits 2 too; a database failure exits 1. */
#include <getopt.h>
#include <stdlib.h>

#include "core/cli.h"
#include "core/config.h"
#include "core/db.h"
#include "exchange/xc_agreement.h"

static const char usage_text[] =
    "agreement add --provider ID --consumer ID --type T[,T] [--attrs A[,A]] --purpose P[,P]\n"
    "               [--actions read[,write]] [--personal [--consent-scope S] [--resident-attr A]]\n"
    "               [--from TIME] [--until TIME] [--rate N/min] [--description D] [--json]\n"
    "       renkei agreement list [--provider ID] [--consumer ID] [--state S] [--json]\n"
    "       renkei agreement show|approve|suspend|resume|revoke ID [--json]\n"
    "       (TIME is RFC 3339, e.g. 2026-04-01T00:00:00+09:00)";

static int bad(const char *fmt, ...) PRINTF_LIKE(1, 2);
static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "renkei: agreement: %s\n", msg);
    free(msg);
    return 2;
}

static int usage(const char *what)
{
    fprintf(stderr, "renkei: agreement: %s\nusage: renkei %s\n", what, usage_text);
    return 2;
}

/* Echoes what the operator typed only when it is plain printable ASCII. */
static const char *shown(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e || n >= 60)
            return "(a value with control, non-ASCII or too many characters)";
    }
    return s;
}

static int report(enum xc_ag_rc rc, const struct xc_ag_result *res)
{
    if (rc == XC_AG_UNAVAILABLE || rc == XC_AG_ERROR) {
        fprintf(stderr, "renkei: agreement: %s\n", res->message);
        return 1;
    }
    return bad("%s", res->message);
}

static void print_list_line(const char *label, char *const *v, size_t n, const char *none)
{
    printf("%-14s", label);
    if (!n)
        printf("%s", none);
    for (size_t i = 0; i < n; i++)
        printf("%s%s", i ? ", " : "", v[i]);
    printf("\n");
}

static void print_agreement(const struct xc_agreement *a, bool json)
{
    if (json) {
        json_t *j = xc_agreement_json(a);
        core_cli_print_json(j);
        json_decref(j);
        return;
    }
    char from[32] = "-", until[32] = "-";
    if (a->valid_from)
        xc_ag_time_format(a->valid_from, from);
    if (a->valid_until)
        xc_ag_time_format(a->valid_until, until);
    printf("%-14s%s\n%-14s%s\n%-14s%s\n%-14s%s\n", "id:", a->id, "provider:", a->provider,
           "consumer:", a->consumer, "state:", xc_ag_state_name(a->state));
    print_list_line("types:", a->types, a->ntypes, "-");
    print_list_line("attrs:", a->attrs, a->nattrs, "(all)");
    printf("%-14s%s%s%s\n", "actions:", a->actions & XC_AG_READ ? "read" : "",
           a->actions == (XC_AG_READ | XC_AG_WRITE) ? ", " : "",
           a->actions & XC_AG_WRITE ? "write" : "");
    print_list_line("purposes:", a->purposes, a->npurposes, "-");
    if (a->personal)
        printf("%-14syes (consent scope %s, resident attribute %s)\n",
               "personal:", a->consent_scope, a->resident_attr);
    else
        printf("%-14sno\n", "personal:");
    printf("%-14s%s\n%-14s%s\n", "valid from:", from, "valid until:", until);
    if (a->rate_per_minute)
        printf("%-14s%d/min\n", "rate:", a->rate_per_minute);
    else
        printf("%-14sno limit\n", "rate:");
    if (a->description)
        printf("%-14s%s\n", "description:", a->description);
    printf("%-14s%s\n%-14s%s\n%-14s%d\n", "created:", a->created_at, "updated:", a->updated_at,
           "version:", a->version);
}

enum {
    OPT_PROVIDER = 1,
    OPT_CONSUMER,
    OPT_TYPE,
    OPT_ATTRS,
    OPT_PURPOSE,
    OPT_ACTIONS,
    OPT_PERSONAL,
    OPT_SCOPE,
    OPT_RESIDENT_ATTR,
    OPT_FROM,
    OPT_UNTIL,
    OPT_RATE,
    OPT_DESCRIPTION,
    OPT_STATE,
    OPT_JSON,
};

static const struct option opts[] = {
    {"provider", required_argument, NULL, OPT_PROVIDER},
    {"consumer", required_argument, NULL, OPT_CONSUMER},
    {"type", required_argument, NULL, OPT_TYPE},
    {"attrs", required_argument, NULL, OPT_ATTRS},
    {"purpose", required_argument, NULL, OPT_PURPOSE},
    {"actions", required_argument, NULL, OPT_ACTIONS},
    {"personal", no_argument, NULL, OPT_PERSONAL},
    {"consent-scope", required_argument, NULL, OPT_SCOPE},
    {"resident-attr", required_argument, NULL, OPT_RESIDENT_ATTR},
    {"from", required_argument, NULL, OPT_FROM},
    {"until", required_argument, NULL, OPT_UNTIL},
    {"rate", required_argument, NULL, OPT_RATE},
    {"description", required_argument, NULL, OPT_DESCRIPTION},
    {"state", required_argument, NULL, OPT_STATE},
    {"json", no_argument, NULL, OPT_JSON},
    {NULL, 0, NULL, 0},
};

struct parsed {
    const char *id;
    const char *v[OPT_JSON + 1]; /* option values by code */
    bool personal, json;
};

/* Parses argv (argv[0] is the verb) allowing the options in `allowed`. */
static int parse(int argc, char **argv, const char *allowed, bool want_id, struct parsed *p)
{
    memset(p, 0, sizeof *p);
    opterr = 0;
    optind = 1;
    int c, idx;
    while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
        if (c == '?' || c == ':') {
            char what[160];
            snprintf(what, sizeof what, "%s: unknown option, or one missing its value: %s", argv[0],
                     argv[optind - 1]);
            return usage(what);
        }
        if (!strchr(allowed, c + '@'))
            return usage("an option does not apply to this command");
        if (p->v[c] && c != OPT_PERSONAL && c != OPT_JSON)
            return usage("an option is given twice");
        if (c == OPT_PERSONAL)
            p->personal = true;
        else if (c == OPT_JSON)
            p->json = true;
        else
            p->v[c] = optarg;
    }
    int positional = argc - optind;
    if (want_id && positional != 1)
        return usage(positional ? "give exactly one agreement id" : "the agreement id is missing");
    if (!want_id && positional != 0)
        return usage("unexpected argument");
    if (want_id) {
        p->id = argv[optind];
        size_t n = strlen(p->id);
        bool ok = n == XC_AG_ID_LEN && strncmp(p->id, "ag_", 3) == 0;
        for (size_t i = 3; ok && i < n; i++)
            ok = (p->id[i] >= 'a' && p->id[i] <= 'z') || (p->id[i] >= '2' && p->id[i] <= '7');
        if (!ok)
            return bad("an agreement id is \"ag_\" and 24 characters of a-z, 2-7 (got \"%s\")",
                       shown(p->id));
    }
    return 0;
}

#define A(x) ((char)('@' + (x)))

/* Splits "a,b,c" into a list (an empty part is kept, for the check to name). */
static char **split(const char *s, size_t *n)
{
    *n = 0;
    if (!s)
        return NULL;
    size_t count = 1;
    for (const char *c = s; *c; c++)
        count += *c == ',';
    char **v = xcalloc(count, sizeof *v);
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        v[(*n)++] = xstrndup(p, len);
        if (!comma)
            break;
        p = comma + 1;
    }
    return v;
}

static int cmd_add(int argc, char **argv)
{
    const char allowed[] = {
        A(OPT_PROVIDER), A(OPT_CONSUMER), A(OPT_TYPE),        A(OPT_ATTRS),         A(OPT_PURPOSE),
        A(OPT_ACTIONS),  A(OPT_PERSONAL), A(OPT_SCOPE),       A(OPT_RESIDENT_ATTR), A(OPT_FROM),
        A(OPT_UNTIL),    A(OPT_RATE),     A(OPT_DESCRIPTION), A(OPT_JSON),          0};
    struct parsed p;
    int rc = parse(argc, argv, allowed, false, &p);
    if (rc)
        return rc;
    if (!p.v[OPT_PROVIDER] || !p.v[OPT_CONSUMER] || !p.v[OPT_TYPE] || !p.v[OPT_PURPOSE])
        return usage("--provider, --consumer, --type and --purpose are required");
    struct xc_agreement a = {0};
    if (!xsnprintf(a.provider, sizeof a.provider, "%s", p.v[OPT_PROVIDER]) ||
        !xsnprintf(a.consumer, sizeof a.consumer, "%s", p.v[OPT_CONSUMER]))
        return bad("a tenant id has at most 50 characters");
    a.types = split(p.v[OPT_TYPE], &a.ntypes);
    a.attrs = split(p.v[OPT_ATTRS], &a.nattrs);
    a.purposes = split(p.v[OPT_PURPOSE], &a.npurposes);
    a.actions = XC_AG_READ;
    if (p.v[OPT_ACTIONS]) {
        size_t n;
        char **acts = split(p.v[OPT_ACTIONS], &n);
        a.actions = 0;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(acts[i], "read") == 0)
                a.actions |= XC_AG_READ;
            else if (strcmp(acts[i], "write") == 0)
                a.actions |= XC_AG_WRITE;
            else
                a.actions |= 4u; /* refused by the check */
            free(acts[i]);
        }
        free(acts);
    }
    a.personal = p.personal;
    if ((p.v[OPT_SCOPE] || p.v[OPT_RESIDENT_ATTR]) && !p.personal) {
        xc_agreement_release(&a);
        return bad("--consent-scope and --resident-attr go with --personal");
    }
    a.consent_scope = p.v[OPT_SCOPE] ? xstrdup(p.v[OPT_SCOPE]) : NULL;
    a.resident_attr = p.v[OPT_RESIDENT_ATTR] ? xstrdup(p.v[OPT_RESIDENT_ATTR]) : NULL;
    a.description = p.v[OPT_DESCRIPTION] ? xstrdup(p.v[OPT_DESCRIPTION]) : NULL;
    if (p.v[OPT_FROM] && !xc_ag_time_parse(p.v[OPT_FROM], &a.valid_from)) {
        xc_agreement_release(&a);
        return bad("--from: not an RFC 3339 time such as 2026-04-01T00:00:00+09:00 (got \"%s\")",
                   shown(p.v[OPT_FROM]));
    }
    if (p.v[OPT_UNTIL] && !xc_ag_time_parse(p.v[OPT_UNTIL], &a.valid_until)) {
        xc_agreement_release(&a);
        return bad("--until: not an RFC 3339 time such as 2027-03-31T23:59:59+09:00 (got \"%s\")",
                   shown(p.v[OPT_UNTIL]));
    }
    if (p.v[OPT_RATE] && !xc_ag_rate_parse(p.v[OPT_RATE], &a.rate_per_minute)) {
        xc_agreement_release(&a);
        return bad("--rate: give N/min with N from 0 (no limit) to %d (got \"%s\")", XC_AG_RATE_MAX,
                   shown(p.v[OPT_RATE]));
    }
    xc_agreement_defaults(&a);
    char err[300];
    if (!xc_agreement_check(&a, err, sizeof err)) {
        xc_agreement_release(&a);
        return bad("%s", err);
    }
    if (!core_cli_config(true, true)) {
        xc_agreement_release(&a);
        return 1;
    }
    core_db_init(core_cfg.db, 1);
    char *who = core_cli_actor();
    struct xc_agreement made;
    struct xc_ag_result res;
    enum xc_ag_rc r = xc_agreement_create(CORE_DB_PLATFORM, &a, who, &made, &res);
    free(who);
    xc_agreement_release(&a);
    if (r != XC_AG_OK)
        return report(r, &res);
    if (p.json)
        print_agreement(&made, true);
    else
        printf("proposed agreement %s: %s gives %s (approve it with: renkei agreement approve "
               "%s)\n",
               made.id, made.provider, made.consumer, made.id);
    xc_agreement_release(&made);
    return 0;
}

static int cmd_list(int argc, char **argv)
{
    const char allowed[] = {A(OPT_PROVIDER), A(OPT_CONSUMER), A(OPT_STATE), A(OPT_JSON), 0};
    struct parsed p;
    int rc = parse(argc, argv, allowed, false, &p);
    if (rc)
        return rc;
    struct xc_ag_filter f = {p.v[OPT_PROVIDER], p.v[OPT_CONSUMER], -1, NULL, 500};
    if (f.provider && !core_tenant_id_ok(f.provider))
        return bad("--provider: not a tenant id (got \"%s\")", shown(f.provider));
    if (f.consumer && !core_tenant_id_ok(f.consumer))
        return bad("--consumer: not a tenant id (got \"%s\")", shown(f.consumer));
    if (p.v[OPT_STATE]) {
        enum xc_ag_state st;
        if (!xc_ag_state_parse(p.v[OPT_STATE], &st))
            return bad("--state must be proposed, active, suspended or revoked");
        f.state = (int)st;
    }
    if (!core_cli_config(true, false))
        return 1;
    core_db_init(core_cfg.db, 1);
    json_t *all = json_array();
    if (!p.json)
        printf("%-28s %-12s %-12s %-10s %s\n", "ID", "PROVIDER", "CONSUMER", "STATE", "TYPES");
    char after[XC_AG_ID_LEN + 1] = "";
    for (;;) {
        struct xc_agreement *items = NULL;
        size_t n = 0;
        struct xc_ag_result res;
        f.after = after[0] ? after : NULL;
        enum xc_ag_rc r = xc_agreement_list(CORE_DB_PLATFORM, &f, &items, &n, &res);
        if (r != XC_AG_OK) {
            json_decref(all);
            return report(r, &res);
        }
        for (size_t i = 0; i < n; i++) {
            struct xc_agreement *a = &items[i];
            if (p.json) {
                json_array_append_new(all, xc_agreement_json(a));
            } else {
                printf("%-28s %-12s %-12s %-10s ", a->id, a->provider, a->consumer,
                       xc_ag_state_name(a->state));
                for (size_t k = 0; k < a->ntypes; k++)
                    printf("%s%s", k ? "," : "", a->types[k]);
                printf("\n");
            }
            xsnprintf(after, sizeof after, "%s", a->id);
            xc_agreement_release(a);
        }
        free(items);
        if (n < (size_t)f.limit)
            break;
    }
    if (p.json)
        core_cli_print_json(all);
    json_decref(all);
    return 0;
}

static int cmd_show(int argc, char **argv)
{
    const char allowed[] = {A(OPT_JSON), 0};
    struct parsed p;
    int rc = parse(argc, argv, allowed, true, &p);
    if (rc)
        return rc;
    if (!core_cli_config(true, false))
        return 1;
    core_db_init(core_cfg.db, 1);
    struct xc_agreement a;
    struct xc_ag_result res;
    enum xc_ag_rc r = xc_agreement_get(CORE_DB_PLATFORM, p.id, &a, &res);
    if (r != XC_AG_OK)
        return report(r, &res);
    print_agreement(&a, p.json);
    xc_agreement_release(&a);
    return 0;
}

/* A state change. from: the state the agreement must be in (approve and
 * resume both make it active, and each refuses the other's starting state,
 * so an operator's slip does not pass silently); -1: any the database
 * allows. The change is conditional on the version read. */
static int cmd_state(int argc, char **argv, int from, enum xc_ag_state to, const char *done)
{
    const char allowed[] = {A(OPT_JSON), 0};
    struct parsed p;
    int rc = parse(argc, argv, allowed, true, &p);
    if (rc)
        return rc;
    if (!core_cli_config(true, true))
        return 1;
    core_db_init(core_cfg.db, 1);
    struct xc_ag_result res;
    enum xc_ag_rc r;
    int version = 0;
    if (from >= 0) {
        struct xc_agreement cur;
        r = xc_agreement_get(CORE_DB_PLATFORM, p.id, &cur, &res);
        if (r != XC_AG_OK)
            return report(r, &res);
        version = cur.version;
        enum xc_ag_state now = cur.state;
        xc_agreement_release(&cur);
        if ((int)now != from)
            return bad("agreement %s is %s: %s applies to a %s agreement", p.id,
                       xc_ag_state_name(now), argv[0], xc_ag_state_name((enum xc_ag_state)from));
    }
    char *who = core_cli_actor();
    struct xc_agreement a;
    r = xc_agreement_set_state(CORE_DB_PLATFORM, p.id, to, version, who, &a, &res);
    free(who);
    if (r != XC_AG_OK)
        return report(r, &res);
    if (p.json)
        print_agreement(&a, true);
    else
        printf("%s agreement %s (%s gives %s)\n", done, a.id, a.provider, a.consumer);
    xc_agreement_release(&a);
    return 0;
}

int xc_cmd_agreement(const struct core_app *app, int argc, char **argv)
{
    (void)app;
    if (argc < 2)
        return usage("which agreement command?");
    const char *verb = argv[1];
    int rc;
    if (strcmp(verb, "add") == 0)
        rc = cmd_add(argc - 1, argv + 1);
    else if (strcmp(verb, "list") == 0)
        rc = cmd_list(argc - 1, argv + 1);
    else if (strcmp(verb, "show") == 0)
        rc = cmd_show(argc - 1, argv + 1);
    else if (strcmp(verb, "approve") == 0)
        rc = cmd_state(argc - 1, argv + 1, XC_AG_PROPOSED, XC_AG_ACTIVE, "approved");
    else if (strcmp(verb, "resume") == 0)
        rc = cmd_state(argc - 1, argv + 1, XC_AG_SUSPENDED, XC_AG_ACTIVE, "resumed");
    else if (strcmp(verb, "suspend") == 0)
        rc = cmd_state(argc - 1, argv + 1, -1, XC_AG_SUSPENDED, "suspended");
    else if (strcmp(verb, "revoke") == 0)
        rc = cmd_state(argc - 1, argv + 1, -1, XC_AG_REVOKED, "revoked");
    else
        return usage("unknown agreement command");
    core_cli_finish();
    return rc;
}
