/* `renkei tenant ...`: the operator's path to the registry. Runs in the
 * platform context. Bad input exits 2 with one line saying what is wrong;
 * a database failure exits 1. */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/cli.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/db.h"
#include "tenants/tn.h"

static const char usage_text[] =
    "tenant add ID --name NAME [--parent ID] [--hosted | --city-os URL [--fiware-service S]\n"
    "               [--upstream-token-file F | --upstream-token-url URL --upstream-client-id ID\n"
    "                --upstream-client-secret-file F [--upstream-scope S]]] [--json]\n"
    "       renkei tenant list [--json]\n"
    "       renkei tenant show ID [--json]\n"
    "       renkei tenant suspend ID [--reason TEXT] [--json]\n"
    "       renkei tenant resume ID [--json]";

static int bad(const char *fmt, ...) PRINTF_LIKE(1, 2);
static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "renkei: tenant: %s\n", msg);
    free(msg);
    return 2;
}

/* Echoes what the operator typed only when it is plain printable ASCII: an
 * id with a newline or a terminal escape is described, not reprinted. */
static const char *shown(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e || n >= 60)
            return "(an id with control, non-ASCII or too many characters)";
    }
    return s;
}

static int usage(const char *what)
{
    fprintf(stderr, "renkei: tenant: %s\nusage: renkei %s\n", what, usage_text);
    return 2;
}

/* "cli:<user>": who typed the command, for the audit events. */

/* Reads a secret from a file: at most 8 KiB, trailing whitespace dropped. */
static bool read_secret(const char *opt, const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        bad("%s: cannot read \"%s\": %s", opt, path, strerror(errno));
        return false;
    }
    char *buf = xmalloc(TN_SECRET_MAX + 2);
    size_t n = fread(buf, 1, TN_SECRET_MAX + 1, f);
    bool err = ferror(f);
    fclose(f);
    if (err || n > TN_SECRET_MAX) {
        OPENSSL_cleanse(buf, TN_SECRET_MAX + 2);
        free(buf);
        bad("%s: \"%s\" %s", opt, path, err ? "cannot be read" : "is larger than 8192 bytes");
        return false;
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    if (n == 0) {
        free(buf);
        bad("%s: \"%s\" is empty", opt, path);
        return false;
    }
    *out = buf;
    *len = n;
    return true;
}

static void print_tenant(const struct tn_tenant *t, bool json)
{
    if (json) {
        json_t *j = tn_tenant_json(t);
        core_cli_print_json(j);
        json_decref(j);
        return;
    }
    printf("id:         %s\nname:       %s\nparent:     %s\nstate:      %s\n", t->id, t->name,
           t->parent ? t->parent : "-", tn_state_name(t->state));
    if (t->hosted) {
        printf("city OS:    hosted by the hub\n");
    } else {
        printf("city OS:    %s\n", t->up.url ? t->up.url : "(remote)");
        if (t->up.fiware_service)
            printf("service:    %s\n", t->up.fiware_service);
        printf("upstream:   %s", tn_auth_name(t->up.auth));
        if (t->up.auth == TN_AUTH_CLIENT_CREDENTIALS)
            printf(" (client %s at %s)", t->up.client_id, t->up.token_url);
        printf("\n");
    }
    printf("created:    %s\nupdated:    %s\nversion:    %d\n", t->created_at, t->updated_at,
           t->version);
}

static int report(enum tn_rc rc, const struct tn_result *res)
{
    if (rc == TN_UNAVAILABLE || rc == TN_ERROR) {
        fprintf(stderr, "renkei: tenant: %s\n", res->message);
        return 1;
    }
    return bad("%s", res->message);
}

enum {
    OPT_NAME = 1,
    OPT_PARENT,
    OPT_HOSTED,
    OPT_CITY_OS,
    OPT_SERVICE,
    OPT_TOKEN_FILE,
    OPT_TOKEN_URL,
    OPT_CLIENT_ID,
    OPT_SECRET_FILE,
    OPT_SCOPE,
    OPT_JSON,
    OPT_REASON
};

static const struct option add_opts[] = {
    {"name", required_argument, NULL, OPT_NAME},
    {"parent", required_argument, NULL, OPT_PARENT},
    {"hosted", no_argument, NULL, OPT_HOSTED},
    {"city-os", required_argument, NULL, OPT_CITY_OS},
    {"fiware-service", required_argument, NULL, OPT_SERVICE},
    {"upstream-token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"upstream-token-url", required_argument, NULL, OPT_TOKEN_URL},
    {"upstream-client-id", required_argument, NULL, OPT_CLIENT_ID},
    {"upstream-client-secret-file", required_argument, NULL, OPT_SECRET_FILE},
    {"upstream-scope", required_argument, NULL, OPT_SCOPE},
    {"json", no_argument, NULL, OPT_JSON},
    {"reason", required_argument, NULL, OPT_REASON},
    {NULL, 0, NULL, 0},
};

struct parsed {
    const char *id;
    const char *name, *parent, *city_os, *service, *token_file, *token_url, *client_id,
        *secret_file, *scope, *reason;
    bool hosted, json;
};

/* Parses argv (argv[0] is the verb) allowing the options in `allowed`. */
static int parse(int argc, char **argv, const char *allowed, bool want_id, struct parsed *p)
{
    memset(p, 0, sizeof *p);
    opterr = 0;
    optind = 1;
    int c, idx;
    while ((c = getopt_long(argc, argv, "", add_opts, &idx)) != -1) {
        if (c == '?' || c == ':') {
            char what[160];
            snprintf(what, sizeof what, "%s: unknown option, or one missing its value: %s", argv[0],
                     argv[optind - 1]);
            return usage(what);
        }
        if (!strchr(allowed, c + '@'))
            return usage("an option does not apply to this command");
        switch (c) {
        case OPT_NAME:
            p->name = optarg;
            break;
        case OPT_PARENT:
            p->parent = optarg;
            break;
        case OPT_HOSTED:
            p->hosted = true;
            break;
        case OPT_CITY_OS:
            p->city_os = optarg;
            break;
        case OPT_SERVICE:
            p->service = optarg;
            break;
        case OPT_TOKEN_FILE:
            p->token_file = optarg;
            break;
        case OPT_TOKEN_URL:
            p->token_url = optarg;
            break;
        case OPT_CLIENT_ID:
            p->client_id = optarg;
            break;
        case OPT_SECRET_FILE:
            p->secret_file = optarg;
            break;
        case OPT_SCOPE:
            p->scope = optarg;
            break;
        case OPT_JSON:
            p->json = true;
            break;
        case OPT_REASON:
            p->reason = optarg;
            break;
        default:
            break;
        }
    }
    int positional = argc - optind;
    if (want_id && positional != 1)
        return usage(positional ? "give exactly one tenant id" : "the tenant id is missing");
    if (!want_id && positional != 0)
        return usage("unexpected argument");
    if (want_id) {
        p->id = argv[optind];
        const char *why = tn_check_id(p->id);
        if (why)
            return bad("%s (got \"%s\")", why, shown(p->id));
    }
    return 0;
}

/* Option letters as '@' + code, for `allowed`. */
#define A(x) ((char)('@' + (x)))

static int cmd_add(int argc, char **argv)
{
    const char allowed[] = {A(OPT_NAME),      A(OPT_PARENT),    A(OPT_HOSTED),
                            A(OPT_CITY_OS),   A(OPT_SERVICE),   A(OPT_TOKEN_FILE),
                            A(OPT_TOKEN_URL), A(OPT_CLIENT_ID), A(OPT_SECRET_FILE),
                            A(OPT_SCOPE),     A(OPT_JSON),      0};
    struct parsed p;
    int rc = parse(argc, argv, allowed, true, &p);
    if (rc)
        return rc;
    const char *why;
    if ((why = tn_check_name(p.name)))
        return bad("--name: %s", why);
    if (p.parent && (why = tn_check_id(p.parent)))
        return bad("--parent: %s (got \"%s\")", why, shown(p.parent));
    if (p.hosted == (p.city_os != NULL))
        return bad("give either --hosted or --city-os URL");
    if (p.hosted &&
        (p.service || p.token_file || p.token_url || p.client_id || p.secret_file || p.scope))
        return bad("--hosted takes no upstream options");
    if (p.token_file && (p.token_url || p.client_id || p.secret_file || p.scope))
        return bad("--upstream-token-file and the client-credentials options exclude each other");

    struct tn_tenant t = {0};
    xsnprintf(t.id, sizeof t.id, "%s", p.id);
    t.name = xstrdup(p.name);
    t.parent = p.parent ? xstrdup(p.parent) : NULL;
    t.hosted = p.hosted;
    if (!p.hosted) {
        t.up.url = xstrdup(p.city_os);
        t.up.fiware_service = p.service ? xstrdup(p.service) : NULL;
        if (p.token_file) {
            t.up.auth = TN_AUTH_BEARER;
            if (!read_secret("--upstream-token-file", p.token_file, &t.up.secret,
                             &t.up.secret_len)) {
                tn_tenant_release(&t);
                return 2;
            }
        } else if (p.token_url || p.client_id || p.secret_file || p.scope) {
            t.up.auth = TN_AUTH_CLIENT_CREDENTIALS;
            t.up.token_url = p.token_url ? xstrdup(p.token_url) : NULL;
            t.up.client_id = p.client_id ? xstrdup(p.client_id) : NULL;
            t.up.scope = p.scope ? xstrdup(p.scope) : NULL;
            if (!p.secret_file) {
                tn_tenant_release(&t);
                return bad("--upstream-client-secret-file is missing");
            }
            if (!read_secret("--upstream-client-secret-file", p.secret_file, &t.up.secret,
                             &t.up.secret_len)) {
                tn_tenant_release(&t);
                return 2;
            }
        }
        if ((why = tn_check_upstream(&t.up))) {
            tn_tenant_release(&t);
            return bad("%s", why);
        }
    }
    if (!core_cli_config(true, true)) {
        tn_tenant_release(&t);
        return 1;
    }
    core_db_init(core_cfg.db, 1);
    char *who = core_cli_actor();
    struct tn_result res;
    enum tn_rc r = tn_create(&t, who, &res);
    free(who);
    tn_tenant_release(&t);
    if (r != TN_OK) {
        rc = report(r, &res);
    } else {
        struct tn_tenant shown;
        if (tn_get(CORE_DB_PLATFORM, p.id, &shown, &res) == TN_OK) {
            if (p.json)
                print_tenant(&shown, true);
            else
                printf("created tenant %s (%s)\n", shown.id, shown.name);
            tn_tenant_release(&shown);
        }
        rc = 0;
    }
    return rc;
}

static int cmd_list(int argc, char **argv)
{
    const char allowed[] = {A(OPT_JSON), 0};
    struct parsed p;
    int rc = parse(argc, argv, allowed, false, &p);
    if (rc)
        return rc;
    if (!core_cli_config(true, false))
        return 1;
    core_db_init(core_cfg.db, 1);
    json_t *all = json_array();
    if (!p.json)
        printf("%-20s %-12s %-10s %-8s %s\n", "ID", "PARENT", "STATE", "CITY_OS", "NAME");
    char after[51] = "";
    for (;;) {
        struct tn_tenant *items = NULL;
        size_t n = 0;
        struct tn_result res;
        enum tn_rc r = tn_list(CORE_DB_PLATFORM, after[0] ? after : NULL, 500, &items, &n, &res);
        if (r != TN_OK) {
            json_decref(all);
            return report(r, &res);
        }
        for (size_t i = 0; i < n; i++) {
            if (p.json)
                json_array_append_new(all, tn_tenant_json(&items[i]));
            else
                printf("%-20s %-12s %-10s %-8s %s\n", items[i].id,
                       items[i].parent ? items[i].parent : "-", tn_state_name(items[i].state),
                       items[i].hosted ? "hosted" : "remote", items[i].name);
            xsnprintf(after, sizeof after, "%s", items[i].id);
            tn_tenant_release(&items[i]);
        }
        free(items);
        if (n < 500)
            break;
    }
    if (p.json) {
        core_cli_print_json(all);
    }
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
    struct tn_tenant t;
    struct tn_result res;
    enum tn_rc r = tn_get(CORE_DB_PLATFORM, p.id, &t, &res);
    if (r != TN_OK)
        return report(r, &res);
    print_tenant(&t, p.json);
    tn_tenant_release(&t);
    return 0;
}

static int cmd_state(int argc, char **argv, enum tn_state state)
{
    const char allowed[] = {A(OPT_JSON), A(OPT_REASON), 0};
    struct parsed p;
    int rc = parse(argc, argv, allowed, true, &p);
    if (rc)
        return rc;
    if (p.reason && (strlen(p.reason) > 500 || tn_check_name(p.reason)))
        return bad("--reason must be text of at most 500 bytes");
    if (!core_cli_config(true, false))
        return 1;
    core_db_init(core_cfg.db, 1);
    struct tn_patch patch = {.state = (int)state, .reason = p.reason};
    char *who = core_cli_actor();
    struct tn_tenant t;
    struct tn_result res;
    enum tn_rc r = tn_update(CORE_DB_PLATFORM, p.id, &patch, who, &t, &res);
    free(who);
    if (r != TN_OK)
        return report(r, &res);
    if (p.json)
        print_tenant(&t, true);
    else
        printf("%s tenant %s\n", state == TN_SUSPENDED ? "suspended" : "resumed", t.id);
    tn_tenant_release(&t);
    return 0;
}

int tn_cmd_tenant(const struct core_app *app, int argc, char **argv)
{
    (void)app;
    if (argc < 2)
        return usage("which tenant command?");
    const char *verb = argv[1];
    int rc;
    if (strcmp(verb, "add") == 0)
        rc = cmd_add(argc - 1, argv + 1);
    else if (strcmp(verb, "list") == 0)
        rc = cmd_list(argc - 1, argv + 1);
    else if (strcmp(verb, "show") == 0)
        rc = cmd_show(argc - 1, argv + 1);
    else if (strcmp(verb, "suspend") == 0)
        rc = cmd_state(argc - 1, argv + 1, TN_SUSPENDED);
    else if (strcmp(verb, "resume") == 0)
        rc = cmd_state(argc - 1, argv + 1, TN_ACTIVE);
    else
        return usage("unknown tenant command");
    core_cli_finish();
    return rc;
}
