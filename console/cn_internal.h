#ifndef CN_INTERNAL_H
#define CN_INTERNAL_H

/* Each console's routes (console/cn_routes.c calls them all). */
struct core_router;
void cn_page_routes(struct core_router *r);  /* /static/console/... */
void cn_audit_routes(struct core_router *r); /* /audit... */
void cn_admin_routes(struct core_router *r); /* /admin... */

#endif
