#ifndef XC_POLICY_H
#define XC_POLICY_H

/*
 * The pure parts of the policy decision (exchange only, and the unit tests):
 * the rules over a given set of agreements, and the per-minute rate window.
 * xc_policy.c wraps them with the in-memory index, the towns' state and the
 * rate table.
 */
#include "exchange/xc_agreement.h"

/*
 * Decides ask over the n agreements ags (any order; those of other towns are
 * ignored). Does not look at the towns' state nor take rate. On permit,
 * out->ag is a copy of the permitting agreement; on deny, of the closest
 * agreement between the two towns when there is one. Release out with
 * xc_decision_release.
 */
void xc_policy_decide_over(const struct xc_agreement *ags, size_t n,
                           const struct xc_policy_ask *ask, struct xc_decision *out);

/* One agreement's use in the current minute (window [minute*60, +60)). */
struct xc_rate {
    int64_t minute;
    int count;
};
/* Takes one unit of limit a minute at time now (unix seconds); false when
 * this minute's are used up. limit 0: no limit (always true). */
bool xc_rate_take(struct xc_rate *r, int limit, int64_t now);

#endif
