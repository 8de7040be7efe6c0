#ifndef CORE_CLI_H
#define CORE_CLI_H

#include <jansson.h>

#include "core/routes.h"
#include "core/secret.h"

/*
 * The command line: one binary, subcommands registered in one table
 * (core/app.c). A command gets its own argv (argv[0] is its name) and returns
 * the exit code: 0 done, 1 failed, 2 bad usage.
 */
struct core_app;

struct core_command {
    const char *name;
    int (*run)(const struct core_app *app, int argc, char **argv);
    const char *usage;   /* "migrate [--status] [--json]" */
    const char *summary; /* one line */
};

typedef void (*core_module_fn)(void);

struct core_app {
    const struct core_command *commands;
    size_t ncommands;
    const core_routes_fn *routes; /* every module's registration function */
    size_t nroutes;
    const core_module_fn *starts; /* `serve` runs these once the pool exists */
    size_t nstarts;
    const core_module_fn *stops; /* and these after the server stopped */
    size_t nstops;
    const struct core_sealed_col *sealed; /* every column of core_seal'd values */
    size_t nsealed;
    core_event_fn record_event; /* the audit log's administrative events */
};

int core_main(const struct core_app *app, int argc, char **argv);

/* Prints every command's usage to f. */
void core_cli_usage(const struct core_app *app, FILE *f);
/* Prints "renkei: msg" and the command's usage to stderr; returns 2. */
int core_cli_bad_usage(const struct core_app *app, const char *command, const char *fmt, ...)
    PRINTF_LIKE(3, 4);

/* Loads and validates configuration for a command; prints the one-line
 * error and returns false on failure. need_db: RENKEI_DB must be set. */
bool core_cli_config(bool need_db, bool need_secret);
/* Set by `serve` before core_cli_config: the process is the server. */
extern bool core_cli_serving;
/* Set by the audit commands before core_cli_config: they sign checkpoints,
 * so RENKEI_AUDIT_KEY_FILE is read. */
extern bool core_cli_audit_signs;

/* Prints j indented on stdout (the --json output of every command). */
void core_cli_print_json(json_t *j);
/* Releases what core_cli_config and a command's pool set up. */
void core_cli_finish(void);

/* "cli:<user>": who ran the command, for audit events. Caller frees. */
char *core_cli_actor(void);

int core_cmd_version(const struct core_app *app, int argc, char **argv);
int core_cmd_help(const struct core_app *app, int argc, char **argv);
int core_cmd_migrate(const struct core_app *app, int argc, char **argv);
int core_cmd_serve(const struct core_app *app, int argc, char **argv);

#endif
