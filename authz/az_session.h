#ifndef AZ_SESSION_H
#define AZ_SESSION_H

/*
 * The hub's sign-in sessions (single sign-on across every town's apps), the
 * anti-CSRF token of its forms, and authorization requests sealed while the
 * resident signs in and consents.
 *
 * A session is a random cookie value (HttpOnly, SameSite=Lax, Secure and
 * __Host- prefixed when the issuer is https) stored only as its SHA-256. A
 * new value is made at every sign-in and never taken from the browser, so a
 * planted cookie cannot become a session (fixation). Sessions end after 30
 * minutes idle or 10 hours in all, at sign-out, or when the resident is
 * disabled.
 */
#include <jansson.h>
#include <stdbool.h>

#include "core/http.h"

#define AZ_SESSION_IDLE_S 1800
#define AZ_SESSION_MAX_S  36000
#define AZ_AUTHREQ_TTL_S  900  /* to sign in and consent */
#define AZ_AUTHREQ_MAX    6000 /* characters of a sealed request */

struct az_session {
    char sid[65];      /* public session id (the ID token's sid) */
    char resident[65]; /* the common ID */
    long long auth_time;
    char acr[16];
    char amr[32]; /* space-separated */
};

enum az_session_rc { AZ_SESSION_OK, AZ_SESSION_NONE, AZ_SESSION_UNAVAILABLE };

/* The session the request's cookie names, when live. */
enum az_session_rc az_session_get(struct core_req *req, struct az_session *out);
/* Starts a session for resident after a successful sign-in: ends the one the
 * cookie named, sets the new cookie. False when the database is down. */
bool az_session_start(struct core_req *req, const char *resident, struct az_session *out);
/* Ends the session the cookie names (if any) and clears the cookie. */
bool az_session_end(struct core_req *req);

/* The token to put in a form (and the cookie it is bound to, set when the
 * browser has none). */
const char *az_csrf_token(struct core_req *req);
/* True when a form's token matches the browser's cookie, and the request
 * does not come from another site (Origin, Sec-Fetch-Site). */
bool az_csrf_ok(struct core_req *req, const char *token);

/* Seals an authorization request's parameters (an object) for the pages'
 * hidden fields: encrypted and authenticated with the master secret, with an
 * expiry. malloc'd base64url. */
char *az_authreq_seal(json_t *params);
/* Opens one: the object (new reference), or NULL when it was altered, is
 * not ours or has expired (*expired says which). */
json_t *az_authreq_open(const char *sealed, bool *expired);

/* Cookies get Secure and the __Host- prefix when the issuer is https. */
bool az_cookie_secure(void);

#endif
