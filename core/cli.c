#include <getopt.h>
#include <pwd.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <openssl/crypto.h>

#include "core/cli.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/jose.h"
#include "core/db.h"
#include "core/log.h"
#include "core/migrate.h"

void core_cli_usage(const struct core_app *app, FILE *f)
{
    fprintf(f, "usage: renkei <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < app->ncommands; i++)
        fprintf(f, "  renkei %-40s %s\n", app->commands[i].usage, app->commands[i].summary);
    fprintf(f, "\nconfiguration comes from RENKEI_* environment variables (see README.md).\n");
}

static const struct core_command *find(const struct core_app *app, const char *name)
{
    for (size_t i = 0; i < app->ncommands; i++) {
        if (strcmp(app->commands[i].name, name) == 0)
            return &app->commands[i];
    }
    return NULL;
}

int core_cli_bad_usage(const struct core_app *app, const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "renkei: %s\n", msg);
    free(msg);
    const struct core_command *c = command ? find(app, command) : NULL;
    if (c)
        fprintf(stderr, "usage: renkei %s\n", c->usage);
    else
        core_cli_usage(app, stderr);
    return 2;
}

void core_cli_print_json(json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", text ? text : "null");
    free(text);
}

void core_cli_finish(void)
{
    core_db_shutdown();
    core_secret_release();
    core_config_release(&core_cfg);
}

char *core_cli_actor(void)
{
    struct passwd pw, *found = NULL;
    char buf[1024];
    if (getpwuid_r(geteuid(), &pw, buf, sizeof buf, &found) == 0 && found)
        return xasprintf("cli:%s", pw.pw_name);
    return xasprintf("cli:uid%u", (unsigned)geteuid());
}

bool core_cli_serving;
bool core_cli_audit_signs;

bool core_cli_config(bool need_db, bool need_secret)
{
    char *err = NULL;
    if (!core_config_load(&core_cfg, &err)) {
        fprintf(stderr, "renkei: %s\n", err);
        free(err);
        return false;
    }
    /* A command's own output is what the operator reads: unless RENKEI_LOG
     * asks for more, its log shows warnings and errors only. `serve` logs
     * at info by default. */
    core_log_set_level(core_cfg.log_level_set || core_cli_serving ? core_cfg.log_level
                                                                  : CORE_LOG_WARN);
    if (need_db) {
        if (!core_cfg.db) {
            fprintf(stderr, "renkei: RENKEI_DB: is not set; it must be a libpq connection string "
                            "(e.g. \"host=/run/postgresql dbname=renkei\")\n");
            return false;
        }
        if (!core_db_conninfo_ok(core_cfg.db, &err)) {
            fprintf(stderr, "renkei: %s\n", err);
            free(err);
            return false;
        }
    }
    if (need_secret && !core_secret_load(core_cfg.secret_file, &err)) {
        fprintf(stderr, "renkei: %s\n", err);
        free(err);
        return false;
    }
    /* only the server signs tokens: a command (a migration run as another
     * user, say) neither needs the key files nor may be able to read them */
    if (need_secret && core_cli_serving && core_cfg.signing_key_files &&
        !core_file_keys_load(core_cfg.signing_key_files, &err)) {
        fprintf(stderr, "renkei: %s\n", err);
        free(err);
        core_secret_release();
        return false;
    }
    /* the checkpoint key: the server, and commands that sign checkpoints */
    if (need_secret && (core_cli_serving || core_cli_audit_signs) && core_cfg.audit_key_file &&
        !core_audit_file_key_load(core_cfg.audit_key_file, &err)) {
        fprintf(stderr, "renkei: %s\n", err);
        free(err);
        core_secret_release();
        return false;
    }
    return true;
}

/* Parses flags of a command that takes only --json-style switches. */
static int parse_flags(const struct core_app *app, int argc, char **argv, const struct option *opts,
                       bool *values)
{
    opterr = 0;
    optind = 1;
    int c, idx;
    while ((c = getopt_long(argc, argv, "+", opts, &idx)) != -1) {
        if (c == '?') {
            if (optopt)
                return core_cli_bad_usage(app, argv[0], "%s: unknown option -%c", argv[0], optopt);
            return core_cli_bad_usage(app, argv[0], "%s: unknown option %s", argv[0],
                                      argv[optind - 1]);
        }
        values[c] = true;
    }
    if (optind < argc)
        return core_cli_bad_usage(app, argv[0], "%s: unexpected argument \"%s\"", argv[0],
                                  argv[optind]);
    return 0;
}

int core_cmd_version(const struct core_app *app, int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 0}, {NULL, 0, NULL, 0}};
    bool v[1] = {false};
    int rc = parse_flags(app, argc, argv, opts, v);
    if (rc)
        return rc;
    if (v[0]) {
        json_t *j =
            json_pack("{s:s, s:s, s:s, s:i, s:s, s:s}", "version", RENKEI_VERSION, "libmicrohttpd",
                      MHD_get_version(), "openssl", OpenSSL_version(OPENSSL_VERSION), "libpq",
                      PQlibVersion(), "jansson", jansson_version_str(), "libcurl",
                      curl_version_info(CURLVERSION_NOW)->version);
        char *text = json_dumps(j, JSON_PRESERVE_ORDER);
        printf("%s\n", text);
        free(text);
        json_decref(j);
    } else {
        printf("renkei %s\n", RENKEI_VERSION);
    }
    return 0;
}

int core_cmd_help(const struct core_app *app, int argc, char **argv)
{
    if (argc > 2)
        return core_cli_bad_usage(app, "help", "help: takes at most one command name");
    if (argc == 2) {
        const struct core_command *c = find(app, argv[1]);
        if (!c)
            return core_cli_bad_usage(app, NULL, "help: no command \"%s\"", argv[1]);
        printf("usage: renkei %s\n  %s\n", c->usage, c->summary);
        return 0;
    }
    core_cli_usage(app, stdout);
    return 0;
}

int core_cmd_migrate(const struct core_app *app, int argc, char **argv)
{
    static const struct option opts[] = {
        {"status", no_argument, NULL, 0}, {"json", no_argument, NULL, 1}, {NULL, 0, NULL, 0}};
    bool v[2] = {false, false};
    int rc = parse_flags(app, argc, argv, opts, v);
    if (rc)
        return rc;
    /* The secret is not used by migrations yet, but creating it here means
     * the first `renkei migrate` leaves a complete installation. */
    if (!core_cli_config(true, true))
        return 1;
    rc = core_migrate_run(core_cfg.db, v[0], v[1]);
    core_secret_release();
    core_config_release(&core_cfg);
    return rc;
}

int core_main(const struct core_app *app, int argc, char **argv)
{
    if (argc < 2)
        return core_cli_bad_usage(app, NULL, "no command given");
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        name = "help";
    else if (strcmp(name, "--version") == 0)
        name = "version";
    const struct core_command *c = find(app, name);
    if (!c)
        return core_cli_bad_usage(app, NULL, "unknown command \"%s\"", argv[1]);
    return c->run(app, argc - 1, argv + 1);
}
