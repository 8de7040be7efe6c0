/* `renkei resident ...`: the operator's path to residents and their links
 * to towns, in the platform context. Passwords come only from standard
 * input (never the command line, which other users can read in ps). Bad
 * input exits 2, a database failure 1. */
#include <getopt.h>
#include <stdlib.h>

#include <openssl/crypto.h>

#include "authz/az_resident.h"
#include "authz/az_staff.h"
#include "core/cli.h"
#include "core/config.h"
#include "core/db.h"

static const char resident_usage[] =
    "resident add --tenant ID --login LOGIN [--name NAME] [--email E] --password-stdin [--json]\n"
    "       renkei resident list [--tenant ID] [--json]\n"
    "       renkei resident show LOGIN [--json]\n"
    "       renkei resident disable LOGIN | enable LOGIN [--json]\n"
    "       renkei resident passwd LOGIN --password-stdin\n"
    "       renkei resident link LOGIN --tenant ID --local-id X\n"
    "       renkei resident unlink LOGIN --tenant ID\n"
    "       renkei resident grant LOGIN --role platform_admin|tenant_admin|auditor\n"
    "       renkei resident withdraw LOGIN --role ROLE";

static int bad(const char *fmt, ...) PRINTF_LIKE(1, 2);
static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "renkei: resident: %s\n", msg);
    free(msg);
    return 2;
}

/* Bad usage is one line too; `renkei resident help` prints the usage. */
static int usage(const char *why)
{
    fprintf(stderr, "renkei: resident: %s (see renkei resident help)\n", why);
    return 2;
}

static int report(enum az_rc rc, const struct az_result *res)
{
    if (rc == AZ_UNAVAILABLE || rc == AZ_ERROR) {
        fprintf(stderr, "renkei: resident: %s\n", res->message);
        return 1;
    }
    return bad("%s", res->message);
}

enum { O_TENANT = 1, O_LOGIN, O_NAME, O_EMAIL, O_STDIN, O_JSON, O_LOCAL, O_ROLE };

static const struct option opts[] = {
    {"tenant", required_argument, NULL, O_TENANT},
    {"login", required_argument, NULL, O_LOGIN},
    {"name", required_argument, NULL, O_NAME},
    {"email", required_argument, NULL, O_EMAIL},
    {"password-stdin", no_argument, NULL, O_STDIN},
    {"json", no_argument, NULL, O_JSON},
    {"local-id", required_argument, NULL, O_LOCAL},
    {"role", required_argument, NULL, O_ROLE},
    {NULL, 0, NULL, 0},
};

struct args {
    const char *login, *tenant, *name, *email, *local_id, *role;
    bool password_stdin, json;
};

/* allowed: the option codes that apply; want_login: one positional LOGIN. */
static int parse(int argc, char **argv, const char *allowed, bool want_login, struct args *a)
{
    memset(a, 0, sizeof *a);
    opterr = 0;
    optind = 1;
    int c, idx;
    while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
        if (c == '?' || !strchr(allowed, c)) {
            char why[300];
            snprintf(why, sizeof why,
                     "%s: unknown option, or one missing its value, or one that does not "
                     "apply: %.100s",
                     argv[0], argv[optind - 1]);
            return usage(why);
        }
        const char **slot = NULL;
        switch (c) {
        case O_TENANT:
            slot = &a->tenant;
            break;
        case O_LOGIN:
            slot = &a->login;
            break;
        case O_NAME:
            slot = &a->name;
            break;
        case O_EMAIL:
            slot = &a->email;
            break;
        case O_LOCAL:
            slot = &a->local_id;
            break;
        case O_ROLE:
            slot = &a->role;
            break;
        case O_STDIN:
            a->password_stdin = true;
            break;
        case O_JSON:
            a->json = true;
            break;
        default:
            break;
        }
        if (slot) {
            if (*slot)
                return bad("%s: --%s given twice", argv[0], opts[c - 1].name);
            *slot = optarg;
        }
    }
    int positional = argc - optind;
    if (want_login ? positional != 1 : positional != 0)
        return usage(want_login ? "give exactly one login" : "unexpected argument");
    if (want_login)
        a->login = argv[optind];
    return 0;
}

/* One line of standard input into buf (AZ_PASSWORD_MAX + 1 bytes + NUL),
 * without its line end; 0, or the exit code after the message. */
static int read_password(char *buf, size_t size, size_t *len)
{
    *len = 0;
    if (!fgets(buf, (int)size, stdin)) {
        OPENSSL_cleanse(buf, size);
        return bad("no password on standard input");
    }
    size_t n = strlen(buf);
    bool whole = n > 0 && buf[n - 1] == '\n';
    if (!whole && !feof(stdin)) {
        OPENSSL_cleanse(buf, size);
        return bad("the password on standard input is longer than %d bytes", AZ_PASSWORD_MAX);
    }
    if (whole)
        buf[--n] = '\0';
    if (n > 0 && buf[n - 1] == '\r')
        buf[--n] = '\0';
    if (n == 0)
        return bad("the password on standard input is empty");
    if (n < AZ_PASSWORD_MIN) {
        OPENSSL_cleanse(buf, size);
        return bad("the password must be at least %d bytes", AZ_PASSWORD_MIN);
    }
    if (n > AZ_PASSWORD_MAX) {
        OPENSSL_cleanse(buf, size);
        return bad("the password on standard input is longer than %d bytes", AZ_PASSWORD_MAX);
    }
    *len = n;
    return 0;
}

static bool setup(bool secret)
{
    if (!core_cli_config(true, secret))
        return false;
    core_db_init(core_cfg.db, 1);
    return true;
}

static int cmd_add(int argc, char **argv)
{
    struct args a;
    const char allowed[] = {O_TENANT, O_LOGIN, O_NAME, O_EMAIL, O_STDIN, O_JSON, 0};
    int rc = parse(argc, argv, allowed, false, &a);
    if (rc)
        return rc;
    if (!a.tenant || !a.login || !a.password_stdin)
        return usage("--tenant, --login and --password-stdin are required");
    char norm[AZ_LOGIN_MAX + 1];
    const char *why;
    if (!core_tenant_id_ok(a.tenant))
        return bad("--tenant is not a tenant id");
    if ((why = az_login_check(a.login, norm)))
        return bad("--login: %s", why);
    char password[AZ_PASSWORD_MAX + 3];
    size_t len;
    if ((rc = read_password(password, sizeof password, &len)))
        return rc;
    struct az_resident_spec s = {.tenant = a.tenant,
                                 .login = a.login,
                                 .name = a.name,
                                 .email = a.email,
                                 .password = password,
                                 .password_len = len};
    if (!setup(true)) {
        OPENSSL_cleanse(password, sizeof password);
        return 1;
    }
    struct az_resident r;
    struct az_result res;
    char *who = core_cli_actor();
    enum az_rc r_rc = az_resident_create(CORE_DB_PLATFORM, &s, who, &r, &res);
    free(who);
    OPENSSL_cleanse(password, sizeof password);
    if (r_rc != AZ_OK)
        return report(r_rc, &res);
    if (a.json) {
        json_t *j = az_resident_json(&r);
        core_cli_print_json(j);
        json_decref(j);
    } else {
        printf("added resident %s (home town %s)\n", r.login, r.tenant);
    }
    return 0;
}

static int cmd_list(int argc, char **argv)
{
    struct args a;
    const char allowed[] = {O_TENANT, O_JSON, 0};
    int rc = parse(argc, argv, allowed, false, &a);
    if (rc)
        return rc;
    if (a.tenant && !core_tenant_id_ok(a.tenant))
        return bad("--tenant is not a tenant id");
    if (!setup(false))
        return 1;
    json_t *all = json_array();
    if (!a.json)
        printf("%-32s %-14s %-9s %s\n", "LOGIN", "TENANT", "STATE", "NAME");
    char after[AZ_LOGIN_MAX + 1] = "";
    for (;;) {
        struct az_resident *items = NULL;
        size_t n = 0;
        struct az_result res;
        enum az_rc r = az_resident_list(CORE_DB_PLATFORM, a.tenant, after[0] ? after : NULL, 500,
                                        &items, &n, &res);
        if (r != AZ_OK) {
            json_decref(all);
            return report(r, &res);
        }
        for (size_t i = 0; i < n; i++) {
            if (a.json)
                json_array_append_new(all, az_resident_json(&items[i]));
            else
                printf("%-32s %-14s %-9s %s\n", items[i].login, items[i].tenant,
                       items[i].disabled ? "disabled" : "active", items[i].name);
            xsnprintf(after, sizeof after, "%s", items[i].login);
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
    struct az_resident r;
    struct az_result res;
    enum az_rc r_rc = az_resident_by_login(CORE_DB_PLATFORM, a.login, &r, &res);
    json_t *links = NULL;
    unsigned roles = 0;
    if (r_rc == AZ_OK)
        r_rc = az_resident_links(CORE_DB_PLATFORM, a.login, &links, &res);
    if (r_rc == AZ_OK)
        r_rc = az_staff_roles(a.login, &roles, &res);
    if (r_rc != AZ_OK)
        return report(r_rc, &res);
    if (a.json) {
        json_t *j = az_resident_json(&r);
        json_object_set_new(j, "links", links);
        json_t *rl = json_array();
        for (unsigned bit = 1; bit <= AZ_ROLE_AUDITOR; bit <<= 1)
            if (roles & bit)
                json_array_append_new(rl, json_string(az_role_name(bit)));
        json_object_set_new(j, "roles", rl);
        core_cli_print_json(j);
        json_decref(j);
        return 0;
    }
    printf("login:     %s\ntenant:    %s\nname:      %s\nemail:     %s%s\nstate:     %s\n"
           "created:   %s\nupdated:   %s\nroles:    %s%s%s%s\nlinks:%s\n",
           r.login, r.tenant, r.name, r.email[0] ? r.email : "-",
           r.email[0] && r.email_verified ? " (verified)" : "", r.disabled ? "disabled" : "active",
           r.created_at, r.updated_at, roles ? "" : " none",
           roles & AZ_ROLE_PLATFORM_ADMIN ? " platform_admin" : "",
           roles & AZ_ROLE_TENANT_ADMIN ? " tenant_admin" : "",
           roles & AZ_ROLE_AUDITOR ? " auditor" : "", json_array_size(links) ? "" : "     none");
    size_t i;
    json_t *l;
    json_array_foreach(links, i, l)
    {
        printf("  %-14s %s\n", json_string_value(json_object_get(l, "tenant")),
               json_string_value(json_object_get(l, "local_id")));
    }
    json_decref(links);
    return 0;
}

static int cmd_state(int argc, char **argv, bool disabled)
{
    struct args a;
    const char allowed[] = {O_JSON, 0};
    int rc = parse(argc, argv, allowed, true, &a);
    if (rc)
        return rc;
    if (!setup(true))
        return 1;
    struct az_result res;
    char *who = core_cli_actor();
    enum az_rc r = az_resident_set_disabled(CORE_DB_PLATFORM, a.login, disabled, who, &res);
    free(who);
    if (r != AZ_OK)
        return report(r, &res);
    if (!a.json) {
        printf("%s resident %s\n", disabled ? "disabled" : "enabled", a.login);
        return 0;
    }
    struct az_resident now;
    r = az_resident_by_login(CORE_DB_PLATFORM, a.login, &now, &res);
    if (r != AZ_OK)
        return report(r, &res);
    json_t *j = az_resident_json(&now);
    core_cli_print_json(j);
    json_decref(j);
    return 0;
}

static int cmd_passwd(int argc, char **argv)
{
    struct args a;
    const char allowed[] = {O_STDIN, 0};
    int rc = parse(argc, argv, allowed, true, &a);
    if (rc)
        return rc;
    if (!a.password_stdin)
        return usage("--password-stdin is required (the password is read from standard input)");
    char norm[AZ_LOGIN_MAX + 1];
    const char *why = az_login_check(a.login, norm);
    if (why)
        return bad("%s", why);
    char password[AZ_PASSWORD_MAX + 3];
    size_t len;
    if ((rc = read_password(password, sizeof password, &len)))
        return rc;
    if (!setup(true)) {
        OPENSSL_cleanse(password, sizeof password);
        return 1;
    }
    struct az_result res;
    char *who = core_cli_actor();
    enum az_rc r =
        az_resident_update(CORE_DB_PLATFORM, a.login, NULL, NULL, password, len, who, &res);
    free(who);
    OPENSSL_cleanse(password, sizeof password);
    if (r != AZ_OK)
        return report(r, &res);
    printf("changed the password of %s\n", norm);
    return 0;
}

static int cmd_link(int argc, char **argv, bool link)
{
    struct args a;
    const char with_local[] = {O_TENANT, O_LOCAL, 0};
    const char without[] = {O_TENANT, 0};
    int rc = parse(argc, argv, link ? with_local : without, true, &a);
    if (rc)
        return rc;
    if (!a.tenant || (link && !a.local_id))
        return usage(link ? "--tenant and --local-id are required" : "--tenant is required");
    if (!core_tenant_id_ok(a.tenant))
        return bad("--tenant is not a tenant id");
    if (!setup(true))
        return 1;
    struct az_result res;
    char *who = core_cli_actor();
    enum az_rc r =
        link ? az_resident_link(CORE_DB_PLATFORM, a.login, a.tenant, a.local_id, who, &res)
             : az_resident_unlink(CORE_DB_PLATFORM, a.login, a.tenant, who, &res);
    free(who);
    if (r != AZ_OK)
        return report(r, &res);
    if (link)
        printf("linked %s to %s's number %s\n", a.login, a.tenant, a.local_id);
    else
        printf("unlinked %s from %s\n", a.login, a.tenant);
    return 0;
}

/* grant / withdraw LOGIN --role ROLE: the consoles' roles (authz/az_staff.h). */
static int cmd_role(int argc, char **argv, bool grant)
{
    struct args a;
    const char allowed[] = {O_ROLE, 0};
    int rc = parse(argc, argv, allowed, true, &a);
    if (rc)
        return rc;
    unsigned bit;
    if (!a.role)
        return usage("--role is required");
    if (!az_role_parse(a.role, &bit))
        return bad("--role must be platform_admin, tenant_admin or auditor");
    if (!setup(true))
        return 1;
    struct az_result res;
    char *who = core_cli_actor();
    enum az_rc r = grant ? az_staff_grant(a.login, a.role, who, &res)
                         : az_staff_withdraw(a.login, a.role, who, &res);
    free(who);
    if (r != AZ_OK)
        return report(r, &res);
    if (grant)
        printf("granted %s the role %s\n", a.login, a.role);
    else
        printf("withdrew the role %s from %s\n", a.role, a.login);
    return 0;
}

int az_cmd_resident(const struct core_app *app, int argc, char **argv)
{
    (void)app;
    if (argc < 2)
        return usage("which resident command?");
    const char *verb = argv[1];
    if (strcmp(verb, "help") == 0 && argc == 2) {
        printf("usage: renkei %s\n", resident_usage);
        return 0;
    }
    int rc;
    if (strcmp(verb, "add") == 0)
        rc = cmd_add(argc - 1, argv + 1);
    else if (strcmp(verb, "list") == 0)
        rc = cmd_list(argc - 1, argv + 1);
    else if (strcmp(verb, "show") == 0)
        rc = cmd_show(argc - 1, argv + 1);
    else if (strcmp(verb, "disable") == 0)
        rc = cmd_state(argc - 1, argv + 1, true);
    else if (strcmp(verb, "enable") == 0)
        rc = cmd_state(argc - 1, argv + 1, false);
    else if (strcmp(verb, "passwd") == 0)
        rc = cmd_passwd(argc - 1, argv + 1);
    else if (strcmp(verb, "link") == 0)
        rc = cmd_link(argc - 1, argv + 1, true);
    else if (strcmp(verb, "unlink") == 0)
        rc = cmd_link(argc - 1, argv + 1, false);
    else if (strcmp(verb, "grant") == 0)
        rc = cmd_role(argc - 1, argv + 1, true);
    else if (strcmp(verb, "withdraw") == 0)
        rc = cmd_role(argc - 1, argv + 1, false);
    else
        return usage("unknown resident command");
    core_cli_finish();
    return rc;
}
