#include "exchange/xc_cross.h"
#include "exchange/xc.h"
#include "exchange/xc_agreement.h"
#include "exchange/xc_http.h"
#include "exchange/xc_parsed.h"
#include "core/metrics.h"
#include "exchange/xc_subs.h"
#include "exchange/xc_upstream.h"

void xc_routes(struct core_router *r)
{
    xc_misc_routes(r);
    xc_entities_routes(r);
    xc_attrs_routes(r);
    xc_op_routes(r);
    xc_subs_routes(r);
    xc_agreement_routes(r);
    xc_catalog_routes(r);
}

void xc_start(void)
{
    xc_subs_start();
    xc_policy_init();
    xc_upstream_init();
    core_metrics_add_collector(xc_parsed_metrics);
    core_metrics_add_collector(xc_cross_metrics);
    core_metrics_add_collector(xc_upstream_metrics);
}

void xc_stop(void)
{
    xc_subs_stop();
    xc_policy_release();
    xc_upstream_release();
    xc_parsed_clear();
}
