#ifndef CN_H
#define CN_H

/*
 * The consoles people use, served by the hub itself: the auditor console
 * (/audit) and the operator console (/admin). HTML rendered on the server
 * from templates compiled into the binary (console/pages), Japanese first,
 * English on request; a little JavaScript (served from /static, never
 * inline) for what needs it: the in-page verification of the audit log.
 * Staff sign in through the hub's own sign-in page; their roles come from
 * authz/az_staff.h.
 *
 * The console sits above every module (it calls tenants, authz, exchange and
 * audit through their headers); audit itself still depends on core only.
 */
struct core_router;
void cn_routes(struct core_router *r);

#endif
