#include <stdlib.h>

#include <openssl/crypto.h>

#include "core/db.h"
#include "core/url.h"
#include "tenants/tn.h"

void tn_upstream_release(struct tn_upstream *up)
{
    free(up->url);
    free(up->fiware_service);
    free(up->token_url);
    free(up->client_id);
    free(up->scope);
    if (up->secret) {
        OPENSSL_cleanse(up->secret, up->secret_len);
        free(up->secret);
    }
    memset(up, 0, sizeof *up);
}

void tn_tenant_release(struct tn_tenant *t)
{
    free(t->name);
    free(t->parent);
    tn_upstream_release(&t->up);
    memset(t, 0, sizeof *t);
}

const char *tn_state_name(enum tn_state s)
{
    return s == TN_SUSPENDED ? "suspended" : "active";
}

const char *tn_auth_name(enum tn_auth a)
{
    switch (a) {
    case TN_AUTH_BEARER:
        return "bearer";
    case TN_AUTH_CLIENT_CREDENTIALS:
        return "client_credentials";
    case TN_AUTH_NONE:
        break;
    }
    return "none";
}

const char *tn_check_id(const char *id)
{
    if (!id || !*id)
        return "id is missing";
    if (strlen(id) > 50)
        return "id is longer than 50 characters";
    if (!core_tenant_id_ok(id))
        return "id may hold only lower-case letters a-z, digits and _ (as Orion requires of a "
               "Fiware-Service)";
    return NULL;
}

/* Length in code points of valid UTF-8 without control characters; -1 if
 * the bytes are not such text. */
static long utf8_chars(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    long n = 0;
    while (*p) {
        unsigned c = *p;
        int extra;
        unsigned cp;
        if (c < 0x80) {
            extra = 0;
            cp = c;
        } else if ((c & 0xe0) == 0xc0) {
            extra = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3;
            cp = c & 0x07;
        } else {
            return -1;
        }
        p++;
        for (int i = 0; i < extra; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (*p & 0x3f);
        }
        /* overlong forms, surrogates, beyond Unicode, and control characters */
        static const unsigned min[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min[extra] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return -1;
        if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
            return -1;
        n++;
    }
    return n;
}

const char *tn_check_name(const char *name)
{
    if (!name || !*name)
        return "name is missing";
    long n = utf8_chars(name);
    if (n < 0)
        return "name must be UTF-8 text without control characters";
    if (n > TN_NAME_MAX)
        return "name is longer than 200 characters";
    return NULL;
}

const char *tn_check_upstream(const struct tn_upstream *up)
{
    static _Thread_local char msg[200];
    struct core_url u;
    const char *why;
    if (!up->url)
        return "city OS URL is missing";
    if ((why = core_url_check(up->url, 0, &u))) {
        snprintf(msg, sizeof msg, "city OS URL %s", why);
        return msg;
    }
    if (up->fiware_service && !core_tenant_id_ok(up->fiware_service))
        return "fiware_service may hold only a-z, 0-9 and _, at most 50 characters";
    switch (up->auth) {
    case TN_AUTH_NONE:
        if (up->secret || up->token_url || up->client_id || up->scope)
            return "upstream credentials given without an auth type";
        return NULL;
    case TN_AUTH_BEARER:
        if (up->token_url || up->client_id || up->scope)
            return "a bearer upstream takes only a token";
        break;
    case TN_AUTH_CLIENT_CREDENTIALS:
        if (!up->token_url || !up->client_id)
            return "client_credentials needs token_url and client_id";
        if ((why = core_url_check(up->token_url, 0, &u))) {
            snprintf(msg, sizeof msg, "token_url %s", why);
            return msg;
        }
        if (strlen(up->client_id) > 200 || utf8_chars(up->client_id) < 1)
            return "client_id must be 1-200 characters of text";
        if (up->scope && (strlen(up->scope) > 1000 || utf8_chars(up->scope) < 0))
            return "scope must be at most 1000 characters of text";
        break;
    }
    if (!up->secret || up->secret_len == 0)
        return up->auth == TN_AUTH_BEARER ? "the upstream token is missing"
                                          : "the upstream client secret is missing";
    if (up->secret_len > TN_SECRET_MAX)
        return "the upstream secret is longer than 8192 bytes";
    for (size_t i = 0; i < up->secret_len; i++) {
        unsigned char c = (unsigned char)up->secret[i];
        if (c <= 0x20 || c >= 0x7f)
            return "the upstream secret must be printable ASCII without spaces";
    }
    return NULL;
}

json_t *tn_tenant_json(const struct tn_tenant *t)
{
    json_t *os;
    if (t->hosted || !t->up.url) {
        /* a remote city OS's address is shown only where it is visible */
        os = json_pack("{s:s}", "kind", t->hosted ? "hosted" : "remote");
    } else {
        os = json_pack("{s:s, s:s, s:s?, s:s}", "kind", "remote", "url", t->up.url,
                       "fiware_service", t->up.fiware_service, "auth", tn_auth_name(t->up.auth));
        if (t->up.auth == TN_AUTH_CLIENT_CREDENTIALS) {
            json_object_set_new(os, "token_url", json_string(t->up.token_url));
            json_object_set_new(os, "client_id", json_string(t->up.client_id));
            if (t->up.scope)
                json_object_set_new(os, "scope", json_string(t->up.scope));
        }
    }
    return json_pack("{s:s, s:s, s:s?, s:s, s:o, s:s, s:s, s:i}", "id", t->id, "name", t->name,
                     "parent", t->parent, "state", tn_state_name(t->state), "city_os", os,
                     "created_at", t->created_at, "updated_at", t->updated_at, "version",
                     t->version);
}
