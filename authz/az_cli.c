/* `renkei client ...` and `renkei keys ...`: the operator's path to service
 * IDs and signing keys, in the platform context. Bad input exits 2, a
 * database failure 1. */
#include <getopt.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "authz/az_client.h"
#include "core/cli.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/db.h"

static const char client_usage[] =
    "client add --tenant ID --name NAME --grant G[,G] [--scope \"S ...\"]\n"
    "              [--default-scope \"S ...\"] [--redirect-uri URI]... [--audience URI]...\n"
    "              [--auth-method client_secret_basic|client_secret_post|private_key_jwt]\n"
    "              [--jwks-file F] [--public] [--token-alg ES256|RS256] [--token-ttl S]\n"
    "              [--sector HOST] [--post-logout-redirect-uri URI]... [--json]\n"
    "       renkei client list [--tenant ID] [--json]\n"
    "       renkei client show ID [--json]\n"
    "       renkei client rotate-secret ID [--json]\n"
    "       renkei client disable ID | enable ID\n"
    "       renkei client initial-token --tenant ID [--uses N] [--ttl SECONDS] [--json]";

static int bad(const char *what, const char *fmt, ...) PRINTF_LIKE(2, 3);
static int bad(const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "renkei: %s: %s\n", what, msg);
    free(msg);
    return 2;
}

static int usage(const char *what, const char *why, const char *text)
{
    fprintf(stderr, "renkei: %s: %s\nusage: renkei %s\n", what, why, text);
    return 2;
}

static int report(const char *what, enum az_rc rc, const struct az_result *res)
{
    if (rc == AZ_UNAVAILABLE || rc == AZ_ERROR) {
        fprintf(stderr, "renkei: %s: %s\n", what, res->message);
        return 1;
    }
    return bad(what, "%s", res->message);
}

/* "a,b c" → ["a","b","c"] (commas or spaces), appended to arr. */
static void split_into(json_t *arr, const char *s)
{
    while (*s) {
        while (*s == ',' || *s == ' ')
            s++;
        size_t n = strcspn(s, ", ");
        if (n)
            json_array_append_new(arr, json_stringn(s, n));
        s += n;
    }
}

enum {
    O_TENANT = 1,
    O_NAME,
    O_GRANT,
    O_SCOPE,
    O_DEFAULT_SCOPE,
    O_REDIRECT,
    O_AUDIENCE,
    O_METHOD,
    O_JWKS,
    O_PUBLIC,
    O_ALG,
    O_TTL,
    O_JSON,
    O_USES,
    O_IAT_TTL,
    O_SECTOR,
    O_LOGOUT_URI
};

static const struct option opts[] = {
    {"tenant", required_argument, NULL, O_TENANT},
    {"name", required_argument, NULL, O_NAME},
    {"grant", required_argument, NULL, O_GRANT},
    {"scope", required_argument, NULL, O_SCOPE},
    {"default-scope", required_argument, NULL, O_DEFAULT_SCOPE},
    {"redirect-uri", required_argument, NULL, O_REDIRECT},
    {"audience", required_argument, NULL, O_AUDIENCE},
    {"auth-method", required_argument, NULL, O_METHOD},
    {"jwks-file", required_argument, NULL, O_JWKS},
    {"public", no_argument, NULL, O_PUBLIC},
    {"token-alg", required_argument, NULL, O_ALG},
    {"token-ttl", required_argument, NULL, O_TTL},
    {"json", no_argument, NULL, O_JSON},
    {"uses", required_argument, NULL, O_USES},
    {"ttl", required_argument, NULL, O_IAT_TTL},
    {"sector", required_argument, NULL, O_SECTOR},
    {"post-logout-redirect-uri", required_argument, NULL, O_LOGOUT_URI},
    {NULL, 0, NULL, 0},
};

struct args {
    const char *id, *tenant, *name, *method, *jwks_file, *alg, *ttl, *uses, *iat_ttl, *sector;
    json_t *grants, *scopes, *defaults, *redirects, *audiences, *logout_uris;
    bool pub, json;
};

static void args_release(struct args *a)
{
    json_decref(a->grants);
    json_decref(a->scopes);
    json_decref(a->defaults);
    json_decref(a->redirects);
    json_decref(a->audiences);
    json_decref(a->logout_uris);
}

/* allowed: a string of option codes; want_id: one positional argument. */
static int parse(int argc, char **argv, const char *allowed, bool want_id, struct args *a)
{
    memset(a, 0, sizeof *a);
    opterr = 0;
    optind = 1;
    int c, idx;
    while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
        if (c == '?' || !strchr(allowed, c)) {
            args_release(a);
            char why[200];
            snprintf(why, sizeof why,
                     "%s: unknown option, or one missing its value, or one "
                     "that does not apply: %s",
                     argv[0], argv[optind - 1]);
            return usage("client", why, client_usage);
        }
        switch (c) {
        case O_TENANT:
            a->tenant = optarg;
            break;
        case O_NAME:
            a->name = optarg;
            break;
        case O_GRANT:
            split_into(a->grants ? a->grants : (a->grants = json_array()), optarg);
            break;
        case O_SCOPE:
            split_into(a->scopes ? a->scopes : (a->scopes = json_array()), optarg);
            break;
        case O_DEFAULT_SCOPE:
            split_into(a->defaults ? a->defaults : (a->defaults = json_array()), optarg);
            break;
        case O_REDIRECT:
            json_array_append_new(a->redirects ? a->redirects : (a->redirects = json_array()),
                                  json_string(optarg));
            break;
        case O_SECTOR:
            a->sector = optarg;
            break;
        case O_LOGOUT_URI:
            json_array_append_new(a->logout_uris ? a->logout_uris : (a->logout_uris = json_array()),
                                  json_string(optarg));
            break;
        case O_AUDIENCE:
            json_array_append_new(a->audiences ? a->audiences : (a->audiences = json_array()),
                                  json_string(optarg));
            break;
        case O_METHOD:
            a->method = optarg;
            break;
        case O_JWKS:
            a->jwks_file = optarg;
            break;
        case O_PUBLIC:
            a->pub = true;
            break;
        case O_ALG:
            a->alg = optarg;
            break;
        case O_TTL:
            a->ttl = optarg;
            break;
        case O_JSON:
            a->json = true;
            break;
        case O_USES:
            a->uses = optarg;
            break;
        case O_IAT_TTL:
            a->iat_ttl = optarg;
            break;
        default:
            break;
        }
    }
    int positional = argc - optind;
    if (want_id ? positional != 1 : positional != 0) {
        args_release(a);
        return usage("client", want_id ? "give exactly one client id" : "unexpected argument",
                     client_usage);
    }
    if (want_id)
        a->id = argv[optind];
    return 0;
}

static bool setup(bool secret)
{
    if (!core_cli_config(true, secret))
        return false;
    core_db_init(core_cfg.db, 1);
    return true;
}

static const char add_opts[] = {
    O_TENANT, O_NAME,   O_GRANT, O_SCOPE, O_DEFAULT_SCOPE, O_REDIRECT, O_AUDIENCE,   O_METHOD,
    O_JWKS,   O_PUBLIC, O_ALG,   O_TTL,   O_JSON,          O_SECTOR,   O_LOGOUT_URI, 0};

static int cmd_add(int argc, char **argv)
{
    struct args a;
    int rc = parse(argc, argv, add_opts, false, &a);
    if (rc)
        return rc;
    struct az_client_spec s = {.tenant = a.tenant, .name = a.name};
    json_t *jwks = NULL;
    if (!a.tenant || !a.name || !a.grants) {
        args_release(&a);
        return usage("client", "--tenant, --name and --grant are required", client_usage);
    }
    s.auth = a.pub ? AZ_AUTH_NONE : AZ_AUTH_BASIC;
    if (a.method && (a.pub || !az_auth_method_parse(a.method, &s.auth))) {
        args_release(&a);
        return bad("client", "--auth-method must be client_secret_basic, client_secret_post or "
                             "private_key_jwt (and not with --public)");
    }
    if (a.jwks_file) {
        json_error_t e;
        jwks = json_load_file(a.jwks_file, JSON_REJECT_DUPLICATES, &e);
        if (!jwks) {
            args_release(&a);
            return bad("client", "--jwks-file: %s: %s", a.jwks_file, e.text);
        }
        if (!a.method)
            s.auth = AZ_AUTH_JWT;
    }
    if (a.alg && !core_alg_parse(a.alg, &s.token_alg)) {
        json_decref(jwks);
        args_release(&a);
        return bad("client", "--token-alg must be ES256 or RS256");
    }
    long ttl = 0;
    if (a.ttl && !core_parse_long(a.ttl, 60, 86400, &ttl)) {
        json_decref(jwks);
        args_release(&a);
        return bad("client", "--token-ttl must be from 60 to 86400 seconds");
    }
    s.token_ttl = (int)ttl;
    s.grant_types = a.grants;
    s.scopes = a.scopes;
    s.default_scopes = a.defaults;
    s.redirect_uris = a.redirects;
    s.audiences = a.audiences;
    s.jwks = jwks;
    s.sector_identifier = a.sector;
    s.post_logout_redirect_uris = a.logout_uris;
    const char *why = az_client_spec_check(&s);
    if (why) {
        json_decref(jwks);
        args_release(&a);
        return bad("client", "%s", why);
    }
    if (!setup(true)) {
        json_decref(jwks);
        args_release(&a);
        return 1;
    }
    char id[65], secret[64];
    struct az_result res;
    char *who = core_cli_actor();
    enum az_rc r = az_client_create(CORE_DB_PLATFORM, &s, who, id, secret, NULL, &res);
    free(who);
    json_decref(jwks);
    args_release(&a);
    if (r != AZ_OK)
        return report("client", r, &res);
    if (a.json) {
        json_t *j = json_pack("{s:s}", "client_id", id);
        if (secret[0])
            json_object_set_new(j, "client_secret", json_string(secret));
        core_cli_print_json(j);
        json_decref(j);
    } else {
        printf("client_id:     %s\n", id);
        if (secret[0])
            printf("client_secret: %s\n(the secret is shown only now: store it)\n", secret);
    }
    OPENSSL_cleanse(secret, sizeof secret);
    return 0;
}

static void print_client(const struct az_client *c)
{
    char *scopes = json_dumps(c->scopes, JSON_COMPACT);
    char *grants = json_dumps(c->grant_types, JSON_COMPACT);
    printf("client_id:   %s\ntenant:      %s\nname:        %s\nauth:        %s\n"
           "grants:      %s\nscopes:      %s\ntoken:       %s, %d s\nstate:       %s\n"
           "created:     %s\n",
           c->id, c->tenant, c->name, az_auth_method_name(c->auth), grants, scopes,
           core_alg_name(c->token_alg), c->token_ttl, c->disabled ? "disabled" : "active",
           c->created_at);
    free(scopes);
    free(grants);
}

static int cmd_list(int argc, char **argv)
{
    struct args a;
    const char allowed[] = {O_TENANT, O_JSON, 0};
    int rc = parse(argc, argv, allowed, false, &a);
    if (rc)
        return rc;
    if (a.tenant && !core_tenant_id_ok(a.tenant))
        return bad("client", "--tenant is not a tenant id");
    if (!setup(false))
        return 1;
    json_t *all = json_array();
    if (!a.json)
        printf("%-26s %-14s %-9s %-20s %s\n", "CLIENT_ID", "TENANT", "STATE", "AUTH", "NAME");
    char after[65] = "";
    for (;;) {
        struct az_client *items = NULL;
        size_t n = 0;
        struct az_result res;
        enum az_rc r = az_client_list(CORE_DB_PLATFORM, a.tenant, after[0] ? after : NULL, 500,
                                      &items, &n, &res);
        if (r != AZ_OK) {
            json_decref(all);
            return report("client", r, &res);
        }
        for (size_t i = 0; i < n; i++) {
            if (a.json)
                json_array_append_new(all, az_client_json(&items[i]));
            else
                printf("%-26s %-14s %-9s %-20s %s\n", items[i].id, items[i].tenant,
                       items[i].disabled ? "disabled" : "active",
                       az_auth_method_name(items[i].auth), items[i].name);
            xsnprintf(after, sizeof after, "%s", items[i].id);
            az_client_release(&items[i]);
        }
        free(items);
        if (n < 500)
            break;
    }
    if (a.json)
        core_cli_print_json(all);
    json_decref(all);
    return 0;
}

static int cmd_show(int argc, char **argv)
{
    struct args a;
    const char allowed[] = {O_JSON, 0};
    int rc = parse(argc, argv, allowed, true, &a);
    if (rc)
        return rc;
    if (!setup(false))
        return 1;
    struct az_client c;
    struct az_result res;
    enum az_rc r = az_client_read(CORE_DB_PLATFORM, a.id, &c, &res);
    if (r != AZ_OK)
        return report("client", r, &res);
    if (a.json) {
        json_t *j = az_client_json(&c);
        core_cli_print_json(j);
        json_decref(j);
    } else {
        print_client(&c);
    }
    az_client_release(&c);
    return 0;
}

static int cmd_rotate(int argc, char **argv)
{
    struct args a;
    const char allowed[] = {O_JSON, 0};
    int rc = parse(argc, argv, allowed, true, &a);
    if (rc)
        return rc;
    if (!setup(true))
        return 1;
    char secret[64];
    struct az_result res;
    char *who = core_cli_actor();
    enum az_rc r = az_client_rotate_secret(CORE_DB_PLATFORM, a.id, who, secret, &res);
    free(who);
    if (r != AZ_OK)
        return report("client", r, &res);
    if (a.json) {
        json_t *j = json_pack("{s:s, s:s}", "client_id", a.id, "client_secret", secret);
        core_cli_print_json(j);
        json_decref(j);
    } else {
        printf("client_secret: %s\n(the old secret no longer works; this one is shown only "
               "now)\n",
               secret);
    }
    OPENSSL_cleanse(secret, sizeof secret);
    return 0;
}

static int cmd_state(int argc, char **argv, bool disabled)
{
    struct args a;
    const char allowed[] = {O_JSON, 0};
    int rc = parse(argc, argv, allowed, true, &a);
    if (rc)
        return rc;
    if (!setup(false))
        return 1;
    struct az_result res;
    char *who = core_cli_actor();
    enum az_rc r = az_client_set_disabled(CORE_DB_PLATFORM, a.id, disabled, who, &res);
    free(who);
    if (r != AZ_OK)
        return report("client", r, &res);
    if (a.json) {
        json_t *j =
            json_pack("{s:s, s:s}", "client_id", a.id, "state", disabled ? "disabled" : "active");
        core_cli_print_json(j);
        json_decref(j);
    } else {
        printf("%s client %s\n", disabled ? "disabled" : "enabled", a.id);
    }
    return 0;
}

static int cmd_initial_token(int argc, char **argv)
{
    struct args a;
    const char allowed[] = {O_TENANT, O_USES, O_IAT_TTL, O_JSON, 0};
    int rc = parse(argc, argv, allowed, false, &a);
    if (rc)
        return rc;
    long uses = 1, ttl = 86400;
    if (!a.tenant || !core_tenant_id_ok(a.tenant))
        return bad("client", "--tenant ID is required");
    if (a.uses && !core_parse_long(a.uses, 1, 1000, &uses))
        return bad("client", "--uses must be from 1 to 1000");
    if (a.iat_ttl && !core_parse_long(a.iat_ttl, 60, 30 * 86400, &ttl))
        return bad("client", "--ttl must be from 60 seconds to 30 days");
    if (!setup(true))
        return 1;
    char token[64];
    struct az_result res;
    char *who = core_cli_actor();
    enum az_rc r = az_initial_token_create(a.tenant, (int)uses, (int)ttl, who, token, &res);
    free(who);
    if (r != AZ_OK)
        return report("client", r, &res);
    if (a.json) {
        json_t *j = json_pack("{s:s, s:s, s:i, s:i}", "initial_access_token", token, "tenant",
                              a.tenant, "uses", (int)uses, "expires_in", (int)ttl);
        core_cli_print_json(j);
        json_decref(j);
    } else {
        printf("initial_access_token: %s\n(for %s: %ld registration(s) within %ld s; shown only "
               "now)\n",
               token, a.tenant, uses, ttl);
    }
    OPENSSL_cleanse(token, sizeof token);
    return 0;
}

int az_cmd_client(const struct core_app *app, int argc, char **argv)
{
    (void)app;
    if (argc < 2)
        return usage("client", "which client command?", client_usage);
    const char *verb = argv[1];
    int rc;
    if (strcmp(verb, "add") == 0)
        rc = cmd_add(argc - 1, argv + 1);
    else if (strcmp(verb, "list") == 0)
        rc = cmd_list(argc - 1, argv + 1);
    else if (strcmp(verb, "show") == 0)
        rc = cmd_show(argc - 1, argv + 1);
    else if (strcmp(verb, "rotate-secret") == 0)
        rc = cmd_rotate(argc - 1, argv + 1);
    else if (strcmp(verb, "disable") == 0)
        rc = cmd_state(argc - 1, argv + 1, true);
    else if (strcmp(verb, "enable") == 0)
        rc = cmd_state(argc - 1, argv + 1, false);
    else if (strcmp(verb, "initial-token") == 0)
        rc = cmd_initial_token(argc - 1, argv + 1);
    else
        return usage("client", "unknown client command", client_usage);
    core_cli_finish();
    return rc;
}

int az_cmd_keys(const struct core_app *app, int argc, char **argv)
{
    (void)app;
    bool json = argc == 3 && strcmp(argv[2], "--json") == 0;
    if (argc < 2 || argc > 3 || (argc == 3 && !json) ||
        (strcmp(argv[1], "list") != 0 && strcmp(argv[1], "rotate") != 0))
        return usage("keys", "use keys list or keys rotate", "keys list | rotate [--json]");
    if (!setup(true))
        return 1;
    int rc = 0;
    /* loading creates the first keys when there are none yet; a node's own
     * trouble with them (a key file this command was not given) is logged,
     * and the list still shows what the database holds */
    (void)az_keys_load();
    if (strcmp(argv[1], "rotate") == 0) {
        char err[300];
        char *who = core_cli_actor();
        if (!az_keys_rotate(who, err, sizeof err)) {
            fprintf(stderr, "renkei: keys: rotation failed: %s\n", err);
            rc = 1;
        }
        free(who);
    }
    json_t *rows = rc == 0 ? az_keys_list() : NULL;
    if (rc == 0 && !rows) {
        fprintf(stderr, "renkei: keys: the database is not available\n");
        rc = 1;
    }
    if (rows && json) {
        core_cli_print_json(rows);
    } else if (rows) {
        printf("%-44s %-6s %-9s %-8s %-21s %s\n", "KID", "ALG", "STATE", "HELD", "CREATED",
               "RETIRE_AFTER");
        size_t i;
        json_t *r;
        json_array_foreach(rows, i, r)
        {
            const char *ra = json_string_value(json_object_get(r, "retire_after"));
            printf("%-44s %-6s %-9s %-8s %-21s %s\n", json_string_value(json_object_get(r, "kid")),
                   json_string_value(json_object_get(r, "alg")),
                   json_string_value(json_object_get(r, "state")),
                   json_string_value(json_object_get(r, "held")),
                   json_string_value(json_object_get(r, "created_at")), ra ? ra : "-");
        }
    }
    json_decref(rows);
    az_keys_release();
    core_cli_finish();
    return rc;
}
