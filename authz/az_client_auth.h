#ifndef AZ_CLIENT_AUTH_H
#define AZ_CLIENT_AUTH_H

/* Client authentication at the token, introspection and revocation
 * endpoints: client_secret_basic, client_secret_post, private_key_jwt
 * (RFC 7523), with throttling of failures per client and per address. */
#include "authz/az_client.h"
#include "authz/az_form.h"

/* Authenticates the caller from the request and its form. On failure the
 * OAuth error reply is queued (400 invalid_request, 401 invalid_client,
 * 429, 503) and NULL returned. A public client (auth none) is identified by
 * its client_id alone: callers decide what such a client may do. The client
 * is shared: az_client_put it. */
const struct az_client *az_authenticate(struct core_req *req, const struct az_form *f);

/* The token endpoint's rate limit (RENKEI_TOKEN_RATE): each client has a
 * bucket of 5 s worth of tokens, refilled at the configured rate; a public
 * client has one per address, so that nobody can spend an app's bucket for
 * all its users. True when the request may go on; otherwise 429 with
 * Retry-After is queued. Always true when the rate is 0. */
bool az_token_rate_admit(struct core_req *req, const struct az_client *c);

/* Clears the failure counters and the token buckets (tests). */
void az_throttle_reset(void);

#endif
