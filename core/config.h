#ifndef CORE_CONFIG_H
#define CORE_CONFIG_H

#include "core/cidr.h"
#include "core/log.h"

/*
 * Configuration comes from the environment; RENKEI_CONFIG_FILE may name a
 * file of KEY=value lines with the same keys (the environment wins). Every
 * value is validated at start; a bad one yields one line naming the variable.
 */
struct core_config {
    char *db;                /* RENKEI_DB, libpq connection string; NULL when unset */
    char *listen;            /* RENKEI_LISTEN as given, "host:port" */
    char *listen_host;       /* host part without brackets */
    int listen_port;         /* 0: let the kernel choose */
    char *issuer;            /* RENKEI_ISSUER without a trailing slash; NULL: derive from listen */
    char *secret_file;       /* RENKEI_SECRET_FILE */
    char *signing_key_files; /* RENKEI_SIGNING_KEY_FILE as given; NULL: keys in the database */
    char *audit_key_file;    /* RENKEI_AUDIT_KEY_FILE; NULL: the checkpoint key in the database */
    int threads;             /* RENKEI_THREADS */
    int db_pool;             /* RENKEI_DB_POOL */
    long max_body;           /* RENKEI_MAX_BODY, bytes */
    int shutdown_grace;      /* RENKEI_SHUTDOWN_GRACE, seconds */
    int conn_per_ip;         /* RENKEI_MAX_CONN_PER_IP; 0: no limit */
    int token_rate;          /* RENKEI_TOKEN_RATE, tokens/s per client; 0: no limit */
    enum core_log_level log_level; /* RENKEI_LOG */
    bool log_level_set;            /* RENKEI_LOG was given */
    /* RENKEI_NOTIFY_DENY: addresses NGSI notifications may not go to */
    struct core_cidr *notify_deny;
    size_t notify_ndeny;
    /* RENKEI_TRUSTED_PROXIES: peers whose X-Forwarded-For is believed */
    struct core_cidr *trusted_proxies;
    size_t ntrusted_proxies;
    /* RENKEI_SCRYPT: the cost of new resident password hashes (log2 N, r, p) */
    int scrypt_ln, scrypt_r, scrypt_p;
};

/* What RENKEI_NOTIFY_DENY is when unset: link-local and the clouds' other
 * metadata addresses (AWS over IPv6, Alibaba), unspecified, multicast and
 * broadcast addresses. */
#define CORE_NOTIFY_DENY_DEFAULT                                                                   \
    "169.254.0.0/16, fe80::/10, fd00:ec2::254, 100.100.100.200, 0.0.0.0/8, ::/128, "               \
    "224.0.0.0/4, ff00::/8, 255.255.255.255/32"

/* RENKEI_SCRYPT when unset (OWASP's minimum for scrypt), and the bounds of
 * each parameter: N = 2^ln, and 128 * r * N bytes of memory at most 1 GiB. */
#define CORE_SCRYPT_DEFAULT "ln=17,r=8,p=1"
#define CORE_SCRYPT_LN_MIN  12
#define CORE_SCRYPT_LN_MAX  22
#define CORE_SCRYPT_R_MAX   32
#define CORE_SCRYPT_P_MAX   16
#define CORE_SCRYPT_MEM_MAX (1ULL << 30)

/* Parses scrypt parameters written exactly "ln=L,r=R,p=P" (that order, no
 * spaces, no leading zeros) within the bounds above; false otherwise. The
 * same text is the parameter part of a stored password hash. */
bool core_config_scrypt_parse(const char *s, size_t len, int *ln, int *r, int *p);

/* Looks a key up; returns NULL when it is not set. */
typedef const char *(*core_config_lookup)(const char *key, void *ctx);

/* Fills cfg from lookup. On failure returns false and sets *err to one line
 * ("RENKEI_X: what is wrong"), owned by the caller. cfg must be released
 * with core_config_release either way. */
bool core_config_parse(struct core_config *cfg, core_config_lookup lookup, void *ctx, char **err);

/* Loads from the process environment and RENKEI_CONFIG_FILE. */
bool core_config_load(struct core_config *cfg, char **err);

void core_config_release(struct core_config *cfg);

/* Splits "host:port" / "[v6]:port". Returns false on bad syntax or port. */
bool core_config_split_listen(const char *s, char **host, int *port);

/* Checks an issuer URL (RFC 8414 §2: https, no query or fragment; plain http
 * only for loopback hosts). Returns NULL when fine, else a static reason. */
const char *core_config_check_issuer(const char *url);

/* True for localhost (any case), 127.0.0.0/8 and ::1. */
bool core_config_is_loopback(const char *host);

/* The issuer for a listen host and the port actually bound. Caller frees. */
char *core_config_default_issuer(const char *host, int port);

/* The configuration the process runs with (set once by main). */
extern struct core_config core_cfg;

#endif
