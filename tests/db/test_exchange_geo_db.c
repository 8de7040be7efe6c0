/*
 * Geography of the hosted store against a real PostgreSQL with PostGIS:
 * shelters around Takamatsu stored with the location xc_geo_location makes
 * of their attributes, found by each of Orion's geographical queries as
 * xc_geo_compile writes them, run through the service role and the tenant
 * context as the store runs them; and the plans use the GIST indexes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/db.h"
#include "core/log.h"
#include "core/pool.h"
#include "exchange/xc_geo.h"
#include "tests/support/tsup.h"

#define TOWN  "kagawa_geo"
#define OTHER "other_town"
#define BULK  "kagawa_bulk"

/* Takamatsu station, the reference point of the queries */
#define STATION "34.3503,134.0467"

static const char *conninfo;

/* ---- storing entities ---- */

struct put {
    const char *tenant, *id, *attrs, *geojson;
};

static enum core_db_rc tx_put(struct core_db_conn *c, void *arg)
{
    struct put *p = arg;
    const char *v[] = {p->tenant, p->id, p->attrs, p->geojson};
    /* as the store writes it: the location made of the attributes */
    PGresult *r = core_db_exec_sql(
        c,
        "INSERT INTO ngsi_entities (tenant_id, service_path, id, type, attrs, geom) VALUES ($1, "
        "'/', $2, 'Shelter', $3::jsonb, public.ST_SetSRID(public.ST_GeomFromGeoJSON($4::text), "
        "4326))",
        4, v);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    return CORE_DB_OK;
}

static void put(const char *tenant, const char *id, const char *attrs)
{
    json_t *a = json_loads(attrs, 0, NULL);
    if (!a)
        fail_msg("test JSON of %s", id);
    char *geojson = NULL, err[256];
    enum xc_geo_rc rc = xc_geo_location(a, &geojson, err, sizeof err);
    json_decref(a);
    if (rc != XC_GEO_OK && rc != XC_GEO_NONE)
        fail_msg("%s: %s", id, err);
    struct put p = {tenant, id, attrs, geojson};
    struct core_db_err dberr;
    if (core_db_tx(tenant, CORE_TX_WRITE, tx_put, &p, &dberr) != CORE_DB_OK)
        fail_msg("insert %s: %s %s", id, dberr.sqlstate, dberr.message);
    free(geojson);
}

static void put_point(const char *tenant, const char *id, const char *latlon)
{
    char attrs[256];
    snprintf(attrs, sizeof attrs, "{\"location\": {\"type\": \"geo:point\", \"value\": \"%s\"}}",
             latlon);
    put(tenant, id, attrs);
}

static int setup(void **state)
{
    (void)state;
    core_log_set_level(CORE_LOG_ERROR);
    conninfo = tsup_db_create("t_xc_geo");
    if (!conninfo)
        return -1;
    tsup_exec(conninfo, "INSERT INTO renkei.tenants (id, name, city_os) VALUES "
                        "('" TOWN "', 'Kagawa geography', 'hosted'), "
                        "('" OTHER "', 'Another town', 'hosted'), "
                        "('" BULK "', 'Many shelters', 'hosted')");
    core_db_init(conninfo, 2);

    /* Shelters around Takamatsu station (distances from it): */
    /* the port, 213 m */
    put_point(TOWN, "sunport", "34.3521, 134.0475");
    /* the castle keep, 488 m, as GeoJSON */
    put(TOWN, "castle",
        "{\"location\": {\"type\": \"geo:json\", \"value\": {\"type\": \"Point\", "
        "\"coordinates\": [134.0520, 34.3506]}}}");
    /* Tamamo park around it, 303 m to its west edge, a Feature */
    put(TOWN, "park",
        "{\"area\": {\"type\": \"geo:json\", \"value\": {\"type\": \"Feature\", \"properties\": "
        "{}, \"geometry\": {\"type\": \"Polygon\", \"coordinates\": [[[134.0500, 34.3495], "
        "[134.0540, 34.3495], [134.0540, 34.3520], [134.0500, 34.3520], [134.0500, "
        "34.3495]]]}}}}");
    /* city hall, 843 m, with the legacy location metadata */
    put(TOWN, "cityhall",
        "{\"position\": {\"type\": \"Text\", \"value\": \"34.3427, 134.0466\", \"metadata\": "
        "{\"location\": {\"type\": \"string\", \"value\": \"WGS84\"}}}}");
    /* the prefectural office, 1.17 km */
    put_point(TOWN, "pref", "34.3401, 134.0434");
    /* Ritsurin garden as a box, 2.25 km */
    put(TOWN, "ritsurin",
        "{\"location\": {\"type\": \"geo:box\", \"value\": [\"34.3255, 134.0410\", \"34.3300, "
        "134.0460\"]}}");
    /* the Yashima plateau, 4.5 km */
    put(TOWN, "yashima",
        "{\"location\": {\"type\": \"geo:polygon\", \"value\": [\"34.3560, 134.0950\", "
        "\"34.3560, 134.1050\", \"34.3620, 134.1080\", \"34.3680, 134.1000\", \"34.3620, "
        "134.0940\", \"34.3560, 134.0950\"]}}");
    /* Marugame station, 23.7 km */
    put_point(TOWN, "marugame", "34.2916, 133.7985");
    /* an evacuation route down Chuo-dori, 144 m */
    put(TOWN, "route",
        "{\"location\": {\"type\": \"geo:line\", \"value\": [\"34.3490, 134.0467\", \"34.3440, "
        "134.0460\", \"34.3380, 134.0455\"]}}");
    /* no location, a location turned off, a null one */
    put(TOWN, "nowhere", "{\"name\": {\"type\": \"Text\", \"value\": \"phone tree\"}}");
    put(TOWN, "ignored",
        "{\"location\": {\"type\": \"geo:point\", \"value\": \"34.3503, 134.0467\", "
        "\"metadata\": {\"ignoreType\": {\"type\": \"Boolean\", \"value\": true}}}}");
    put(TOWN, "unset", "{\"location\": {\"type\": \"geo:json\", \"value\": null}}");
    /* another town's shelter right at the station: never seen from TOWN */
    put_point(OTHER, "stranger", "34.3503, 134.0467");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    core_db_shutdown();
    tsup_db_drop();
    return 0;
}

/* ---- querying ---- */

struct run {
    struct xc_sql *sql;
    bool explain;
    struct strbuf out;
};

static enum core_db_rc tx_run(struct core_db_conn *c, void *arg)
{
    struct run *run = arg;
    strbuf_release(&run->out);
    if (run->explain) {
        /* a small table of near neighbours is not what the plan is about */
        PGresult *r = core_db_exec_sql(c, "SET LOCAL enable_seqscan = off", 0, NULL);
        if (!r)
            return CORE_DB_ERROR;
        PQclear(r);
    }
    PGresult *r = core_db_exec_sql(c, run->sql->text.buf, run->sql->nparams, run->sql->params);
    if (!r)
        return CORE_DB_ERROR;
    for (int i = 0; i < PQntuples(r); i++)
        strbuf_addf(&run->out, "%s%s", i ? (run->explain ? "\n" : ",") : "", PQgetvalue(r, i, 0));
    PQclear(r);
    return CORE_DB_OK;
}

/* The ids a query returns in TOWN (by id, or nearest first for near), or
 * the plan of it; the caller frees. */
static char *query_in(const char *tenant, const char *georel, const char *geometry,
                      const char *coords, bool explain)
{
    struct core_pool *pool = core_pool_new();
    struct xc_sql sql;
    xc_sql_init(&sql, pool);
    xc_sql_add(&sql, explain ? "EXPLAIN SELECT e.id" : "SELECT e.id");
    xc_sql_add(&sql, " FROM ngsi_entities e WHERE e.tenant_id = ");
    xc_sql_param(&sql, tenant);
    xc_sql_add(&sql, " AND ");
    bool present;
    const char *order;
    char err[256];
    if (!xc_geo_compile(&sql, georel, geometry, coords, &present, &order, err, sizeof err))
        fail_msg("%s %s %s: %s", georel, geometry, coords, err);
    assert_true(present);
    /* near orders by distance alone: a second key (a tie-breaker) keeps
     * PostgreSQL 15 from ordering by the index */
    xc_sql_add(&sql, " ORDER BY ");
    xc_sql_add(&sql, order ? order : "e.id");
    xc_sql_add(&sql, " LIMIT 20");
    assert_true(xc_sql_ok(&sql));
    struct run run = {.sql = &sql, .explain = explain};
    strbuf_init(&run.out, SIZE_MAX);
    struct core_db_err dberr;
    if (core_db_tx(tenant, CORE_TX_READ, tx_run, &run, &dberr) != CORE_DB_OK)
        fail_msg("%s: %s %s", sql.text.buf, dberr.sqlstate, dberr.message);
    xc_sql_release(&sql);
    core_pool_free(pool);
    char *out = strbuf_detach(&run.out, NULL);
    return out ? out : xstrdup("");
}

static void assert_ids(const char *georel, const char *geometry, const char *coords,
                       const char *want)
{
    char *got = query_in(TOWN, georel, geometry, coords, false);
    if (strcmp(got, want) != 0)
        fail_msg("georel=%s&geometry=%s&coords=%s: got [%s], want [%s]", georel, geometry, coords,
                 got, want);
    free(got);
}

/* ---- near ---- */

static void test_near_within_2km(void **state)
{
    (void)state;
    /* nearest first; the legacy-metadata city hall, the GeoJSON park and
     * the route count as any shelter; the other town's does not */
    assert_ids("near;maxDistance:2000", "point", STATION,
               "route,sunport,park,castle,cityhall,pref");
    assert_ids("near;maxDistance:250", "point", STATION, "route,sunport");
    assert_ids("near;maxDistance:100", "point", STATION, "");
}

static void test_near_min_distance(void **state)
{
    (void)state;
    assert_ids("near;minDistance:2000", "point", STATION, "ritsurin,yashima,marugame");
    assert_ids("near;minDistance:1000;maxDistance:5000", "point", STATION, "pref,ritsurin,yashima");
    /* at least 0 m: every located shelter, nearest first */
    assert_ids("near;minDistance:0", "point", STATION,
               "route,sunport,park,castle,cityhall,pref,ritsurin,yashima,marugame");
}

/* ---- coveredBy, intersects, disjoint, equals ---- */

/* central Takamatsu, from the port down to the prefectural office */
#define CENTRE_POLYGON                                                                             \
    "34.3540,134.0400;34.3540,134.0560;34.3390,134.0560;34.3390,134.0400;34.3540,134.0400"

static void test_covered_by(void **state)
{
    (void)state;
    /* the route leaves the polygon southwards: not covered (had it ended
     * on the border it would be: the border is part of the shape) */
    assert_ids("coveredBy", "polygon", CENTRE_POLYGON, "castle,cityhall,park,pref,sunport");
    /* the same as a box, corners given either way */
    assert_ids("coveredBy", "box", "34.3390,134.0400;34.3540,134.0560",
               "castle,cityhall,park,pref,sunport");
    assert_ids("coveredBy", "box", "34.3540,134.0560;34.3390,134.0400",
               "castle,cityhall,park,pref,sunport");
    /* a box around Ritsurin garden's own box: covered, border included */
    assert_ids("coveredBy", "box", "34.3255,134.0410;34.3300,134.0460", "ritsurin");
    assert_ids("coveredBy", "box", "34.3380,134.0400;34.3540,134.0560",
               "castle,cityhall,park,pref,route,sunport");
    /* the whole of Kagawa */
    assert_ids("coveredBy", "box", "34.00,133.40;34.60,134.50",
               "castle,cityhall,marugame,park,pref,ritsurin,route,sunport,yashima");
}

static void test_intersects(void **state)
{
    (void)state;
    /* an east-west line along 34.3505 from the station to the castle:
     * crosses the park, passes the castle's latitude 34.3506 by */
    assert_ids("intersects", "line", "34.3505,134.0440;34.3505,134.0530", "park");
    /* a line across Chuo-dori meets the route */
    assert_ids("intersects", "line", "34.3440,134.0400;34.3440,134.0500", "route");
    /* a polygon around the castle meets the castle and its park */
    assert_ids("intersects", "polygon",
               "34.3500,134.0510;34.3500,134.0530;34.3510,134.0530;34.3510,134.0510;34.3500,"
               "134.0510",
               "castle,park");
    /* a point inside the park */
    assert_ids("intersects", "point", "34.3510,134.0510", "park");
}

static void test_disjoint(void **state)
{
    (void)state;
    /* everything located and outside central Takamatsu: not the entities
     * without a location */
    assert_ids("disjoint", "polygon", CENTRE_POLYGON, "marugame,ritsurin,yashima");
}

static void test_equals(void **state)
{
    (void)state;
    assert_ids("equals", "point", "34.3401,134.0434", "pref");
    assert_ids("equals", "point", "34.3401,134.0435", "");
    /* the legacy-metadata location equals its point */
    assert_ids("equals", "point", "34.3427,134.0466", "cityhall");
    /* an entity's geo:box equals the query box of the same corners (the
     * rings run in opposite directions: equality is of the shapes) */
    assert_ids("equals", "box", "34.3300,134.0460;34.3255,134.0410", "ritsurin");
    assert_ids("equals", "line", "34.3490,134.0467;34.3440,134.0460;34.3380,134.0455", "route");
    assert_ids("equals", "polygon",
               "34.3560,134.0950;34.3560,134.1050;34.3620,134.1080;34.3680,134.1000;34.3620,"
               "134.0940;34.3560,134.0950",
               "yashima");
}

/* ---- shapes PostGIS must take as they are ---- */

static void test_stored_shapes_valid(void **state)
{
    (void)state;
    /* the trickier shapes xc_geo accepts */
    put(OTHER, "lake",
        "{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"MultiPolygon\", "
        "\"coordinates\": [[[[134.0, 34.0], [134.1, 34.0], [134.1, 34.1], [134.0, 34.1], [134.0, "
        "34.0]], [[134.02, 34.02], [134.02, 34.08], [134.08, 34.08], [134.08, 34.02], [134.02, "
        "34.02]]], [[[134.04, 34.04], [134.06, 34.04], [134.06, 34.06], [134.04, 34.06], "
        "[134.04, 34.04]]]]}}}");
    put(OTHER, "corners",
        "{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"MultiPolygon\", "
        "\"coordinates\": [[[[134.2, 34.2], [134.3, 34.2], [134.3, 34.3], [134.2, 34.2]]], "
        "[[[134.3, 34.3], [134.4, 34.3], [134.4, 34.4], [134.3, 34.3]]]]}}}");
    put(OTHER, "repeats",
        "{\"l\": {\"type\": \"geo:polygon\", \"value\": [\"34.5, 134.5\", \"34.5, 134.6\", "
        "\"34.5, 134.6\", \"34.6, 134.6\", \"34.5, 134.5\"]}}");
    put(OTHER, "altitude",
        "{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"MultiLineString\", "
        "\"coordinates\": [[[134.0, 34.0, 5], [134.1, 34.1, 7]]]}}}");
    assert_string_equal(tsup_value(conninfo, "SELECT count(*) FROM renkei.ngsi_entities WHERE "
                                             "geom IS NOT NULL AND NOT public.ST_IsValid(geom)"),
                        "0");
    assert_string_equal(tsup_value(conninfo, "SELECT count(*) FROM renkei.ngsi_entities WHERE "
                                             "public.ST_NDims(geom) <> 2 OR public.ST_SRID(geom) "
                                             "<> 4326"),
                        "0");
    /* every relation runs over them without a GEOS error */
    const char *rels[] = {"coveredBy", "intersects", "disjoint", "equals"};
    for (size_t i = 0; i < ARRAY_SIZE(rels); i++)
        free(query_in(OTHER, rels[i], "polygon",
                      "34.03,134.03;34.03,134.35;34.35,134.35;34.35,134.03;34.03,134.03", false));
    char *got = query_in(OTHER, "coveredBy", "box", "33.9,133.9;34.2,134.2", false);
    assert_string_equal(got, "altitude,lake");
    free(got);
    /* inside the lake's island: the lake (the island is part of it) */
    got = query_in(OTHER, "intersects", "point", "34.05,134.05", false);
    assert_string_equal(got, "lake");
    free(got);
    /* on the lake's water: in its hole, not in it */
    got = query_in(OTHER, "intersects", "point", "34.03,134.03", false);
    assert_string_equal(got, "");
    free(got);
}

/* ---- plans ---- */

static void test_plans_use_indexes(void **state)
{
    (void)state;
    /* 5000 shelters on a grid over Kagawa, statistics gathered */
    tsup_exec(conninfo,
              "INSERT INTO renkei.ngsi_entities (tenant_id, service_path, id, type, attrs, geom) "
              "SELECT '" BULK "', '/', 'b' || i, 'Shelter', '{}', public.ST_SetSRID("
              "public.ST_MakePoint(133.6 + (i % 100) * 0.007, 34.1 + (i / 100) * 0.005), 4326) "
              "FROM generate_series(0, 4999) i;"
              "ANALYZE renkei.ngsi_entities");
    /* the query itself: one 700 m x 555 m grid cell, so 2 km holds a few */
    char *got = query_in(BULK, "near;maxDistance:400", "point", "34.30,134.02", false);
    assert_string_equal(got, "b4060");
    free(got);

    /* nearest first by the index itself (KNN), with no distance bound;
     * ordering is not a filter, so row-level security does not stand in
     * its way */
    char *plan = query_in(BULK, "near;minDistance:1000", "point", STATION, true);
    if (!strstr(plan, "ngsi_entities_geog") || !strstr(plan, "Order By"))
        fail_msg("near without maxDistance is not ordered by the index:\n%s", plan);
    free(plan);

    /* Filters are: under row-level security an index scan takes only
     * LEAKPROOF operators, and PostGIS marks none. The bounding-box
     * operators the compiled SQL spells out never raise an error, so the
     * migration marks them (run as a superuser here); then every filter
     * but disjoint is driven by a GIST index. */
    const char *marked = tsup_value(conninfo, "SELECT count(*) FROM pg_proc WHERE proleakproof "
                                              "AND proname IN ('geography_overlaps', "
                                              "'geometry_overlaps', 'geometry_within', "
                                              "'geometry_same')");
    assert_string_equal(marked, "4");
    const char *nears[] = {"near;maxDistance:2000", "near;minDistance:500;maxDistance:2000"};
    for (size_t i = 0; i < ARRAY_SIZE(nears); i++) {
        plan = query_in(BULK, nears[i], "point", STATION, true);
        if (!strstr(plan, "ngsi_entities_geog") || !strstr(plan, "Index Cond: (geog &&"))
            fail_msg("%s does not use the geography index:\n%s", nears[i], plan);
        free(plan);
    }
    const char *rels[] = {"coveredBy", "intersects", "equals"};
    for (size_t i = 0; i < ARRAY_SIZE(rels); i++) {
        plan = query_in(BULK, rels[i], "box", "34.30,134.00;34.32,134.03", true);
        if (!strstr(plan, "ngsi_entities_geom"))
            fail_msg("%s does not use the geometry index:\n%s", rels[i], plan);
        free(plan);
    }
    /* and the answers are the same as without the index */
    got = query_in(BULK, "near;maxDistance:400", "point", "34.30,134.02", false);
    assert_string_equal(got, "b4060");
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_near_within_2km),
        cmocka_unit_test(test_near_min_distance),
        cmocka_unit_test(test_covered_by),
        cmocka_unit_test(test_intersects),
        cmocka_unit_test(test_disjoint),
        cmocka_unit_test(test_equals),
        cmocka_unit_test(test_stored_shapes_valid),
        cmocka_unit_test(test_plans_use_indexes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
