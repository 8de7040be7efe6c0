/* core_reload: the first loads gate readiness, requests coalesce around the
 * moment a load's transaction begins (core_reload_mark), a failed load is
 * tried again without being asked, and waiting ends once each load has run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "core/reload.h"

/* A load the test steers: it may hold before or after its mark until
 * released, and fail a given number of times first. */
struct steer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool hold_before, hold_after; /* hold there on the next run */
    bool holding;                 /* a run is held */
    int fail_first;               /* runs that fail before one succeeds */
    int runs;
};

static struct steer a, b;

static void steer_reset(struct steer *s)
{
    pthread_mutex_lock(&s->mu);
    s->hold_before = s->hold_after = s->holding = false;
    s->fail_first = 0;
    s->runs = 0;
    pthread_mutex_unlock(&s->mu);
}

static void hold(struct steer *s, bool *flag)
{
    pthread_mutex_lock(&s->mu);
    if (*flag) {
        s->holding = true;
        pthread_cond_broadcast(&s->cv);
        while (*flag)
            pthread_cond_wait(&s->cv, &s->mu);
        s->holding = false;
    }
    pthread_mutex_unlock(&s->mu);
}

static bool run(struct steer *s)
{
    hold(s, &s->hold_before);
    core_reload_mark();
    hold(s, &s->hold_after);
    pthread_mutex_lock(&s->mu);
    s->runs++;
    bool ok = s->fail_first == 0;
    if (!ok)
        s->fail_first--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static bool load_a(void)
{
    return run(&a);
}

static bool load_b(void)
{
    return run(&b);
}

static void release(struct steer *s)
{
    pthread_mutex_lock(&s->mu);
    s->hold_before = s->hold_after = false;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void await_holding(struct steer *s)
{
    pthread_mutex_lock(&s->mu);
    while (!s->holding)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

static void await_runs(struct steer *s, int n)
{
    pthread_mutex_lock(&s->mu);
    while (s->runs < n)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

static int runs(struct steer *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->runs;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Lets the thread take up anything still due: a settle, not a measure. */
static void settle(void)
{
    usleep(200 * 1000);
}

static int setup(void **state)
{
    (void)state;
    steer_reset(&a);
    steer_reset(&b);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    release(&a);
    release(&b);
    core_reload_stop();
    return 0;
}

static void test_first_loads_gate_readiness(void **state)
{
    (void)state;
    char why[128];
    bool failed = true;
    struct core_reload *ra = core_reload_add("the a keys", load_a);
    struct core_reload *rb = core_reload_add("the b keys", load_b);
    assert_non_null(ra);
    assert_non_null(rb);
    b.hold_after = true;
    core_reload_start();
    await_runs(&a, 1);
    await_holding(&b);
    assert_false(core_reload_ready(why, sizeof why, &failed));
    assert_false(failed);
    assert_string_equal(why, "the b keys are not loaded yet");
    release(&b);
    assert_true(core_reload_wait(10000));
    assert_true(core_reload_ready(why, sizeof why, &failed));
    settle();
    assert_int_equal(runs(&a), 1); /* nothing asked again: nothing ran again */
    assert_int_equal(runs(&b), 1);
}

static void test_requests_during_a_load_run_it_once_more(void **state)
{
    (void)state;
    struct core_reload *r = core_reload_add("the a keys", load_a);
    core_reload_start();
    assert_true(core_reload_wait(10000));
    assert_int_equal(runs(&a), 1);

    /* asked while a load is past its mark: one more load covers them all */
    a.hold_after = true;
    core_reload_request(r);
    await_holding(&a);
    for (int i = 0; i < 5; i++)
        core_reload_request(r);
    release(&a);
    await_runs(&a, 3);
    settle();
    assert_int_equal(runs(&a), 3);
}

static void test_requests_before_the_mark_are_covered(void **state)
{
    (void)state;
    struct core_reload *r = core_reload_add("the a keys", load_a);
    core_reload_start();
    assert_true(core_reload_wait(10000));

    /* asked while a load has not yet begun its transaction: that load reads
     * what they were about, so none runs after it */
    a.hold_before = true;
    core_reload_request(r);
    await_holding(&a);
    for (int i = 0; i < 5; i++)
        core_reload_request(r);
    release(&a);
    await_runs(&a, 2);
    settle();
    assert_int_equal(runs(&a), 2);
}

static void test_a_failed_load_is_tried_again(void **state)
{
    (void)state;
    char why[128];
    bool failed = false;
    core_reload_add("the a keys", load_a);
    a.fail_first = 1;
    core_reload_start();
    /* the wait ends when the load has run, though it failed */
    assert_false(core_reload_wait(10000));
    assert_int_equal(runs(&a), 1);
    assert_false(core_reload_ready(why, sizeof why, &failed));
    assert_true(failed);
    assert_string_equal(why, "the a keys could not be loaded (see the log)");
    /* nobody asks: the retry comes by itself (the wait above ended with the
     * first try, so this one returns at once: poll) */
    await_runs(&a, 2);
    while (!core_reload_ready(why, sizeof why, &failed))
        usleep(1000);
    assert_false(failed);
    assert_int_equal(runs(&a), 2);
}

static void test_nothing_registered_is_ready(void **state)
{
    (void)state;
    char why[16];
    bool failed = true;
    core_reload_start();
    assert_true(core_reload_wait(10000));
    assert_true(core_reload_ready(why, sizeof why, &failed));
    assert_false(failed);
}

int main(void)
{
    pthread_mutex_init(&a.mu, NULL);
    pthread_cond_init(&a.cv, NULL);
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_loads_gate_readiness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_during_a_load_run_it_once_more, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_requests_before_the_mark_are_covered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_load_is_tried_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_registered_is_ready, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
