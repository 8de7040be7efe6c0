/*
 * Geography of the hosted store without a database: which attribute is the
 * location and the GeoJSON made of it, every refusal with Orion's words, and
 * the SQL (with its parameters) of each geographical query.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "exchange/xc_geo.h"

/* ---- helpers ---- */

static enum xc_geo_rc loc(const char *attrs_json, char **out, char *err)
{
    json_error_t je;
    json_t *attrs = json_loads(attrs_json, 0, &je);
    if (!attrs)
        fail_msg("test JSON: %s: %s", attrs_json, je.text);
    err[0] = '\0';
    enum xc_geo_rc rc = xc_geo_location(attrs, out, err, 512);
    json_decref(attrs);
    return rc;
}

/* The location is this GeoJSON (compared as numbers, not text). */
static void assert_geojson(const char *got, const char *want)
{
    json_t *g = json_loads(got, 0, NULL), *w = json_loads(want, 0, NULL);
    assert_non_null(g);
    assert_non_null(w);
    if (!json_equal(g, w))
        fail_msg("got %s, want %s", got, want);
    json_decref(g);
    json_decref(w);
}

static void assert_loc(const char *attrs, const char *want)
{
    char *out = NULL, err[512];
    enum xc_geo_rc rc = loc(attrs, &out, err);
    if (rc != XC_GEO_OK)
        fail_msg("%s: rc %d (%s)", attrs, rc, err);
    assert_geojson(out, want);
    free(out);
}

static void assert_none(const char *attrs)
{
    char *out = (char *)"x", err[512];
    assert_int_equal(loc(attrs, &out, err), XC_GEO_NONE);
    assert_null(out);
}

static void assert_bad(const char *attrs, const char *msg)
{
    char *out = (char *)"x", err[512];
    enum xc_geo_rc rc = loc(attrs, &out, err);
    if (rc != XC_GEO_BAD)
        fail_msg("%s: rc %d, want XC_GEO_BAD", attrs, rc);
    assert_null(out);
    assert_string_equal(err, msg);
}

#define P "error parsing location attribute: "

/* ---- which attribute is the location ---- */

static void test_no_location(void **state)
{
    (void)state;
    assert_none("{}");
    assert_none("{\"t\": {\"type\": \"Number\", \"value\": 3}}");
    /* a null value makes a geo attribute no location (Orion) */
    assert_none("{\"l\": {\"type\": \"geo:point\", \"value\": null}}");
    assert_none("{\"l\": {\"type\": \"geo:json\", \"value\": null}}");
    assert_none("{\"l\": {\"type\": \"geo:point\"}}");
    /* ignoreType true turns the special type off, whatever the value */
    assert_none("{\"l\": {\"type\": \"geo:point\", \"value\": \"nowhere\", \"metadata\": "
                "{\"ignoreType\": {\"type\": \"Boolean\", \"value\": true}}}}");
    /* legacy location metadata naming another datum: not a location */
    assert_none("{\"l\": {\"type\": \"Text\", \"value\": \"34.35, 134.04\", \"metadata\": "
                "{\"location\": {\"type\": \"string\", \"value\": \"Tokyo\"}}}}");
    /* not an object at all */
    char *out = (char *)"x", err[64];
    json_t *arr = json_array();
    assert_int_equal(xc_geo_location(arr, &out, err, sizeof err), XC_GEO_NONE);
    assert_null(out);
    json_decref(arr);
}

static void test_ignore_type_false_is_location(void **state)
{
    (void)state;
    /* present but false (or not a boolean): still a location, as in Orion */
    assert_loc("{\"l\": {\"type\": \"geo:point\", \"value\": \"34.3503, 134.0467\", \"metadata\": "
               "{\"ignoreType\": {\"type\": \"Boolean\", \"value\": false}}}}",
               "{\"type\": \"Point\", \"coordinates\": [134.0467, 34.3503]}");
    assert_loc("{\"l\": {\"type\": \"geo:point\", \"value\": \"34.3503, 134.0467\", \"metadata\": "
               "{\"ignoreType\": {\"type\": \"Text\", \"value\": \"true\"}}}}",
               "{\"type\": \"Point\", \"coordinates\": [134.0467, 34.3503]}");
}

static void test_geo_point(void **state)
{
    (void)state;
    /* Takamatsu station; latitude first in, longitude first out */
    assert_loc("{\"name\": {\"type\": \"Text\", \"value\": \"x\"}, \"location\": {\"type\": "
               "\"geo:point\", \"value\": \"34.3503, 134.0467\"}}",
               "{\"type\": \"Point\", \"coordinates\": [134.0467, 34.3503]}");
    assert_loc("{\"l\": {\"type\": \"geo:point\", \"value\": \" -33.86 ,151.21 \"}}",
               "{\"type\": \"Point\", \"coordinates\": [151.21, -33.86]}");
    assert_loc("{\"l\": {\"type\": \"geo:point\", \"value\": \"90, -180\"}}",
               "{\"type\": \"Point\", \"coordinates\": [-180, 90]}");
    assert_loc("{\"l\": {\"type\": \"geo:point\", \"value\": \"3.4e1, 1.34E2\"}}",
               "{\"type\": \"Point\", \"coordinates\": [134, 34]}");
    const char *bad[] = {"34.35",   "91, 0",   "0, 180.5",     "abc, 1", "1e999, 0", "nan, 0",
                         "inf, 0",  "0x10, 0", "1, 2, 3",      ", 1",    "1,",       "- 1, 2",
                         "1..2, 3", "",        "34.35;134.04", "1 2, 3", "+, 3"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        char attrs[128], msg[160];
        snprintf(attrs, sizeof attrs, "{\"l\": {\"type\": \"geo:point\", \"value\": \"%s\"}}",
                 bad[i]);
        snprintf(msg, sizeof msg, P "geo coordinates format error [see Orion user manual]: %s",
                 bad[i]);
        assert_bad(attrs, msg);
    }
    assert_bad("{\"l\": {\"type\": \"geo:point\", \"value\": 34}}",
               P "geo coordinates format error [see Orion user manual]: ");
}

static void test_geo_line(void **state)
{
    (void)state;
    assert_loc("{\"l\": {\"type\": \"geo:line\", \"value\": [\"34.35, 134.04\", \"34.36, 134.05\", "
               "\"34.37, 134.05\"]}}",
               "{\"type\": \"LineString\", \"coordinates\": [[134.04, 34.35], [134.05, 34.36], "
               "[134.05, 34.37]]}");
    assert_bad("{\"l\": {\"type\": \"geo:line\", \"value\": [\"34.35, 134.04\"]}}",
               P "geo:line uses at least 2 coordinates");
    assert_bad("{\"l\": {\"type\": \"geo:line\", \"value\": [\"34.35, 134.04\", \"34.35, "
               "134.04\"]}}",
               P "geo:line uses at least 2 distinct coordinates");
    assert_bad("{\"l\": {\"type\": \"geo:line\", \"value\": \"34.35, 134.04\"}}",
               P "geo:line, geo:box and geo:polygon needs array of strings as value");
    assert_bad("{\"l\": {\"type\": \"geo:line\", \"value\": [\"34.35, 134.04\", [1, 2]]}}",
               P "geo:line, geo:box and geo:polygon needs array of strings but some element is "
                 "not a string");
    assert_bad("{\"l\": {\"type\": \"geo:line\", \"value\": [\"34.35, 134.04\", \"34.35, "
               "234.04\"]}}",
               P "geo coordinates format error [see Orion user manual]: 34.35, 234.04");
}

static void test_geo_box(void **state)
{
    (void)state;
    /* corners in any order; Orion's ring from the lower-left corner */
    assert_loc("{\"l\": {\"type\": \"geo:box\", \"value\": [\"34.36, 134.06\", \"34.34, "
               "134.04\"]}}",
               "{\"type\": \"Polygon\", \"coordinates\": [[[134.04, 34.34], [134.04, 34.36], "
               "[134.06, 34.36], [134.06, 34.34], [134.04, 34.34]]]}");
    assert_bad("{\"l\": {\"type\": \"geo:box\", \"value\": [\"34.36, 134.06\"]}}",
               P "geo:box uses exactly 2 coordinates");
    assert_bad("{\"l\": {\"type\": \"geo:box\", \"value\": [\"1, 2\", \"3, 4\", \"5, 6\"]}}",
               P "geo:box uses exactly 2 coordinates");
    assert_bad("{\"l\": {\"type\": \"geo:box\", \"value\": [\"34.36, 134.06\", \"34.36, "
               "134.04\"]}}",
               P "geo:box coordinates are not defining an actual box");
    assert_bad("{\"l\": {\"type\": \"geo:box\", \"value\": [\"34.36, 134.06\", \"34.34, "
               "134.06\"]}}",
               P "geo:box coordinates are not defining an actual box");
}

static void test_geo_polygon(void **state)
{
    (void)state;
    assert_loc("{\"l\": {\"type\": \"geo:polygon\", \"value\": [\"0, 0\", \"0, 2\", \"2, 2\", "
               "\"0, 0\"]}}",
               "{\"type\": \"Polygon\", \"coordinates\": [[[0, 0], [2, 0], [2, 2], [0, 0]]]}");
    /* a repeated position is valid */
    assert_loc("{\"l\": {\"type\": \"geo:polygon\", \"value\": [\"0, 0\", \"0, 2\", \"0, 2\", "
               "\"2, 2\", \"0, 0\"]}}",
               "{\"type\": \"Polygon\", \"coordinates\": [[[0, 0], [2, 0], [2, 0], [2, 2], [0, "
               "0]]]}");
    assert_bad("{\"l\": {\"type\": \"geo:polygon\", \"value\": [\"0, 0\", \"0, 2\", \"0, 0\"]}}",
               P "geo:polygon uses at least 4 coordinates");
    assert_bad("{\"l\": {\"type\": \"geo:polygon\", \"value\": [\"0, 0\", \"0, 2\", \"2, 2\", "
               "\"1, 0\"]}}",
               P "geo:polygon first and last coordinates must match");
    /* the NGSI-v2 specification's example of an invalid polygon */
    assert_bad("{\"l\": {\"type\": \"geo:polygon\", \"value\": [\"0, 0\", \"0, 2\", \"2, 0\", "
               "\"2, 2\", \"0, 0\"]}}",
               P "geo:polygon: polygon edges cross or touch each other");
    assert_bad("{\"l\": {\"type\": \"geo:polygon\", \"value\": [\"0, 0\", \"1, 1\", \"2, 2\", "
               "\"0, 0\"]}}",
               P "geo:polygon: a polygon ring encloses no area");
    /* a spike going back over its own edge */
    assert_bad("{\"l\": {\"type\": \"geo:polygon\", \"value\": [\"0, 0\", \"2, 0\", \"2, 2\", "
               "\"0, 2\", \"0, 3\", \"0, 2\", \"0, 0\"]}}",
               P "geo:polygon: polygon edges cross or touch each other");
    /* a ring touching itself at a vertex */
    assert_bad("{\"l\": {\"type\": \"geo:polygon\", \"value\": [\"0, 0\", \"4, 0\", \"4, 4\", "
               "\"0, 4\", \"0, 2\", \"1, 3\", \"2, 2\", \"1, 1\", \"0, 2\", \"0, 0\"]}}",
               P "geo:polygon: polygon edges cross or touch each other");
}

static void test_geo_json(void **state)
{
    (void)state;
    assert_loc("{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"Point\", "
               "\"coordinates\": [134.0467, 34.3503]}}}",
               "{\"type\": \"Point\", \"coordinates\": [134.0467, 34.3503]}");
    /* the altitude is dropped (the column is 2D); integers are numbers too */
    assert_loc("{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"Point\", "
               "\"coordinates\": [134, 34, 12.5], \"bbox\": [1, 2, 3, 4]}}}",
               "{\"type\": \"Point\", \"coordinates\": [134, 34]}");
    assert_loc("{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"MultiPoint\", "
               "\"coordinates\": [[1, 2], [3, 4]]}}}",
               "{\"type\": \"MultiPoint\", \"coordinates\": [[1, 2], [3, 4]]}");
    assert_loc("{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"MultiLineString\", "
               "\"coordinates\": [[[1, 2], [3, 4]], [[0, 0], [0, 1], [1, 1]]]}}}",
               "{\"type\": \"MultiLineString\", \"coordinates\": [[[1, 2], [3, 4]], [[0, 0], [0, "
               "1], [1, 1]]]}");
    /* a polygon with a hole touching nothing, and an island in the hole */
    const char *lake = "[[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]], [[2, 2], [2, 8], [8, 8], "
                       "[8, 2], [2, 2]]]";
    char attrs[512], want[512];
    snprintf(attrs, sizeof attrs,
             "{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"MultiPolygon\", "
             "\"coordinates\": [%s, [[[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]]]]}}}",
             lake);
    snprintf(want, sizeof want,
             "{\"type\": \"MultiPolygon\", \"coordinates\": [%s, [[[4, 4], [6, 4], [6, 6], "
             "[4, 6], [4, 4]]]]}",
             lake);
    assert_loc(attrs, want);
    /* two polygons sharing a corner only */
    assert_loc("{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"MultiPolygon\", "
               "\"coordinates\": [[[[0, 0], [1, 0], [1, 1], [0, 0]]], [[[1, 1], [2, 1], [2, 2], "
               "[1, 1]]]]}}}",
               "{\"type\": \"MultiPolygon\", \"coordinates\": [[[[0, 0], [1, 0], [1, 1], [0, "
               "0]]], [[[1, 1], [2, 1], [2, 2], [1, 1]]]]}");
}

static void test_geo_json_feature(void **state)
{
    (void)state;
    assert_loc("{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"Feature\", "
               "\"properties\": {\"name\": \"x\"}, \"geometry\": {\"type\": \"LineString\", "
               "\"coordinates\": [[1, 2], [3, 4]]}}}}",
               "{\"type\": \"LineString\", \"coordinates\": [[1, 2], [3, 4]]}");
    assert_loc("{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"FeatureCollection\", "
               "\"features\": [{\"type\": \"Feature\", \"geometry\": {\"type\": \"Point\", "
               "\"coordinates\": [1, 2]}}]}}}",
               "{\"type\": \"Point\", \"coordinates\": [1, 2]}");
    assert_bad("{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"Feature\"}}}",
               P "geometry in Feature not found");
    assert_bad("{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"Feature\", \"geometry\": "
               "null}}}",
               P "geometry in Feature is not an object");
    assert_bad("{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"FeatureCollection\"}}}",
               P "features field not found in FeatureCollection");
    assert_bad("{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"FeatureCollection\", "
               "\"features\": {}}}}",
               P "features in FeatureCollection is not an array");
    assert_bad("{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"FeatureCollection\", "
               "\"features\": []}}}",
               P "features in FeatureCollection has 0 items");
    assert_bad("{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"FeatureCollection\", "
               "\"features\": [{\"type\": \"Feature\", \"geometry\": {\"type\": \"Point\", "
               "\"coordinates\": [1, 2]}}, {\"type\": \"Feature\", \"geometry\": {\"type\": "
               "\"Point\", \"coordinates\": [1, 3]}}]}}}",
               P "features in FeatureCollection has more than 1 item");
    assert_bad("{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"FeatureCollection\", "
               "\"features\": [{\"type\": \"Feature\"}]}}}",
               P "geometry in Feature not found");
}

static void test_geo_json_refused(void **state)
{
    (void)state;
    const char *types = P "geo:json type must be Point, MultiPoint, LineString, MultiLineString, "
                          "Polygon, MultiPolygon, Feature or FeatureCollection";
    assert_bad("{\"l\": {\"type\": \"geo:json\", \"value\": \"34, 134\"}}",
               P "geo:json needs an object or null as value");
    assert_bad("{\"l\": {\"type\": \"geo:json\", \"value\": [134, 34]}}",
               P "geo:json needs an object or null as value");
    assert_bad("{\"l\": {\"type\": \"geo:json\", \"value\": {\"coordinates\": [1, 2]}}}", types);
    assert_bad("{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"point\", "
               "\"coordinates\": [1, 2]}}}",
               types);
    /* relating collections would make GEOS raise errors */
    assert_bad("{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"GeometryCollection\", "
               "\"geometries\": []}}}",
               types);
    const char *shapes[][2] = {
        {"Point", "[200, 34]"},
        {"Point", "[134, -91]"},
        {"Point", "[134]"},
        {"Point", "[1, 2, 3, 4]"},
        {"Point", "[\"134\", \"34\"]"},
        {"Point", "[[1, 2]]"},
        {"MultiPoint", "[]"},
        {"MultiPoint", "[1, 2]"},
        {"LineString", "{}"},
        {"LineString", "[[1, 2], [3, true]]"},
        {"MultiLineString", "[]"},
        {"Polygon", "[]"},
        {"Polygon", "[[1, 2]]"},
        {"MultiPolygon", "[[]]"},
        {"MultiPolygon", "[]"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(shapes); i++) {
        char attrs[256], msg[256];
        snprintf(attrs, sizeof attrs,
                 "{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"%s\", \"coordinates\": "
                 "%s}}}",
                 shapes[i][0], shapes[i][1]);
        snprintf(msg, sizeof msg,
                 P "geo:json coordinates do not make a %s of [longitude, latitude] positions "
                   "(longitude in [-180, 180], latitude in [-90, 90])",
                 shapes[i][0]);
        assert_bad(attrs, msg);
    }
    assert_bad("{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"Point\"}}}",
               P "geo:json coordinates do not make a Point of [longitude, latitude] positions "
                 "(longitude in [-180, 180], latitude in [-90, 90])");
}

static void test_geo_json_invalid_shapes(void **state)
{
    (void)state;
    const struct {
        const char *type, *coords, *why;
    } cases[] = {
        {"LineString", "[[1, 2]]", "a line needs at least 2 positions"},
        {"LineString", "[[1, 2], [1, 2]]", "a line needs 2 distinct positions"},
        {"MultiLineString", "[[[1, 2], [3, 4]], [[5, 5]]]", "a line needs at least 2 positions"},
        {"Polygon", "[[[0, 0], [1, 0], [0, 0]]]", "a polygon ring needs at least 4 positions"},
        {"Polygon", "[[[0, 0], [1, 0], [1, 1], [0, 1]]]",
         "a polygon ring must end where it starts"},
        {"Polygon", "[[[0, 0], [1, 1], [2, 2], [0, 0]]]", "a polygon ring encloses no area"},
        {"Polygon", "[[[0, 0], [2, 0], [0, 2], [2, 2], [0, 0]]]",
         "polygon edges cross or touch each other"},
        /* a hole crossing its shell: GEOS raises a TopologyException on it */
        {"Polygon",
         "[[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]], [[3, 3], [5, 3], [5, 5], [3, 5], "
         "[3, 3]]]",
         "polygon edges cross or touch each other"},
        /* a hole sharing an edge with its shell */
        {"Polygon", "[[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]], [[0, 0], [2, 0], [2, 2], [0, 0]]]",
         "polygon edges cross or touch each other"},
        {"Polygon",
         "[[[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]], [[5, 5], [6, 5], [6, 6], [5, "
         "5]]]",
         "a polygon hole is not inside its polygon"},
        {"Polygon",
         "[[[0, 0], [9, 0], [9, 9], [0, 9], [0, 0]], [[1, 1], [8, 1], [8, 8], [1, 8], "
         "[1, 1]], [[2, 2], [3, 2], [3, 3], [2, 2]]]",
         "polygons or holes overlap"},
        /* overlapping polygons: GEOS raises a TopologyException on them */
        {"MultiPolygon",
         "[[[[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]]], [[[1, 1], [3, 1], [3, 3], "
         "[1, 3], [1, 1]]]]",
         "polygon edges cross or touch each other"},
        {"MultiPolygon",
         "[[[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]], [[[1, 1], [2, 1], [2, 2], "
         "[1, 1]]]]",
         "polygons or holes overlap"},
        {"MultiPolygon",
         "[[[[1, 1], [2, 1], [2, 2], [1, 1]]], [[[0, 0], [4, 0], [4, 4], [0, 4], "
         "[0, 0]]]]",
         "polygons or holes overlap"},
        {"MultiPolygon",
         "[[[[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]]], [[[2, 0], [4, 0], [4, 2], "
         "[2, 2], [2, 0]]]]",
         "polygon edges cross or touch each other"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char attrs[512], msg[256];
        snprintf(attrs, sizeof attrs,
                 "{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"%s\", \"coordinates\": "
                 "%s}}}",
                 cases[i].type, cases[i].coords);
        snprintf(msg, sizeof msg, P "geo:json: %s", cases[i].why);
        assert_bad(attrs, msg);
    }
}

static void test_bounds(void **state)
{
    (void)state;
    /* XC_GEO_MAX_POINTS positions are fine, one more is refused */
    for (int extra = 0; extra <= 1; extra++) {
        struct strbuf sb;
        strbuf_init(&sb, SIZE_MAX);
        strbuf_adds(&sb, "{\"l\": {\"type\": \"geo:json\", \"value\": {\"type\": \"LineString\", "
                         "\"coordinates\": [");
        for (int i = 0; i < XC_GEO_MAX_POINTS + extra; i++)
            strbuf_addf(&sb, "%s[%d.%04d, 34]", i ? "," : "", i / 10000, i % 10000);
        strbuf_adds(&sb, "]}}}");
        char *out = NULL, err[512];
        enum xc_geo_rc rc = loc(sb.buf, &out, err);
        if (extra) {
            assert_int_equal(rc, XC_GEO_BAD);
            assert_string_equal(err, P "too many coordinates (at most 10000)");
        } else {
            assert_int_equal(rc, XC_GEO_OK);
        }
        free(out);
        strbuf_release(&sb);
    }
    struct strbuf sb;
    strbuf_init(&sb, SIZE_MAX);
    strbuf_adds(&sb, "{\"l\": {\"type\": \"geo:line\", \"value\": [");
    for (int i = 0; i <= XC_GEO_MAX_POINTS; i++)
        strbuf_addf(&sb, "%s\"34, %d.%04d\"", i ? "," : "", i / 10000, i % 10000);
    strbuf_adds(&sb, "]}}");
    assert_bad(sb.buf, P "too many coordinates (at most 10000)");
    strbuf_release(&sb);
}

static void test_legacy_location_metadata(void **state)
{
    (void)state;
    assert_loc("{\"pos\": {\"type\": \"coords\", \"value\": \"34.3503, 134.0467\", \"metadata\": "
               "{\"location\": {\"type\": \"string\", \"value\": \"WGS84\"}}}}",
               "{\"type\": \"Point\", \"coordinates\": [134.0467, 34.3503]}");
    assert_loc("{\"pos\": {\"type\": \"Text\", \"value\": \"34.3503, 134.0467\", \"metadata\": "
               "{\"location\": {\"type\": \"string\", \"value\": \"WGS 84\"}}}}",
               "{\"type\": \"Point\", \"coordinates\": [134.0467, 34.3503]}");
    assert_bad("{\"pos\": {\"type\": \"Text\", \"value\": \"north\", \"metadata\": "
               "{\"location\": {\"type\": \"string\", \"value\": \"WGS84\"}}}}",
               P "geo coordinates format error [see Orion user manual]: north");
}

static void test_more_than_one(void **state)
{
    (void)state;
    const char *too_many = "You cannot use more than one geo location attribute when creating "
                           "an entity [see Orion user manual]";
    char *out = (char *)"x", err[512];
    assert_int_equal(loc("{\"a\": {\"type\": \"geo:point\", \"value\": \"1, 2\"}, \"b\": "
                         "{\"type\": \"geo:json\", \"value\": {\"type\": \"Point\", "
                         "\"coordinates\": [2, 1]}}}",
                         &out, err),
                     XC_GEO_TOO_MANY);
    assert_null(out);
    assert_string_equal(err, too_many);
    /* the second one is refused as a second location even when malformed */
    assert_int_equal(loc("{\"a\": {\"type\": \"geo:point\", \"value\": \"1, 2\"}, \"b\": "
                         "{\"type\": \"geo:point\", \"value\": \"junk\"}}",
                         &out, err),
                     XC_GEO_TOO_MANY);
    assert_string_equal(err, too_many);
    /* a malformed first one is reported first, as Orion walks them */
    assert_bad("{\"a\": {\"type\": \"geo:point\", \"value\": \"junk\"}, \"b\": {\"type\": "
               "\"geo:point\", \"value\": \"1, 2\"}}",
               P "geo coordinates format error [see Orion user manual]: junk");
    /* a legacy one counts too; an ignored or null one does not */
    assert_int_equal(loc("{\"a\": {\"type\": \"geo:point\", \"value\": \"1, 2\"}, \"b\": "
                         "{\"type\": \"Text\", \"value\": \"1, 2\", \"metadata\": {\"location\": "
                         "{\"type\": \"string\", \"value\": \"WGS84\"}}}}",
                         &out, err),
                     XC_GEO_TOO_MANY);
    assert_loc("{\"a\": {\"type\": \"geo:point\", \"value\": \"1, 2\"}, \"b\": {\"type\": "
               "\"geo:point\", \"value\": null}, \"c\": {\"type\": \"geo:point\", \"value\": "
               "\"3, 4\", \"metadata\": {\"ignoreType\": {\"type\": \"Boolean\", \"value\": "
               "true}}}}",
               "{\"type\": \"Point\", \"coordinates\": [2, 1]}");
}

static void test_attr_location(void **state)
{
    (void)state;
    char *out = (char *)"x", err[256];
    assert_int_equal(xc_geo_attr_location(NULL, &out, err, sizeof err), XC_GEO_NONE);
    assert_null(out);
    json_t *a = json_pack("{s:s, s:s}", "type", "geo:point", "value", "34.3503, 134.0467");
    assert_int_equal(xc_geo_attr_location(a, &out, err, sizeof err), XC_GEO_OK);
    assert_geojson(out, "{\"type\": \"Point\", \"coordinates\": [134.0467, 34.3503]}");
    free(out);
    json_decref(a);
    a = json_pack("{s:s, s:s}", "type", "geo:point", "value", "x");
    assert_int_equal(xc_geo_attr_location(a, &out, err, sizeof err), XC_GEO_BAD);
    assert_null(out);
    json_decref(a);
}

/* ---- queries ---- */

struct q {
    struct core_pool *pool;
    struct xc_sql w;
    bool present;
    const char *order;
    char err[512];
    bool ok;
};

static void q_run(struct q *q, bool expression, const char *georel, const char *geometry,
                  const char *coords)
{
    q->pool = core_pool_new();
    xc_sql_init(&q->w, q->pool);
    q->err[0] = '\0';
    q->present = true;
    q->order = "x";
    if (expression)
        q->ok = xc_geo_compile_expression(&q->w, georel, geometry, coords, &q->present, &q->order,
                                          q->err, sizeof q->err);
    else
        q->ok = xc_geo_compile(&q->w, georel, geometry, coords, &q->present, &q->order, q->err,
                               sizeof q->err);
}

static void q_done(struct q *q)
{
    xc_sql_release(&q->w);
    core_pool_free(q->pool);
}

static void assert_refused(const char *georel, const char *geometry, const char *coords,
                           const char *msg)
{
    struct q q;
    q_run(&q, false, georel, geometry, coords);
    if (q.ok)
        fail_msg("%s & %s & %s: accepted (%s)", georel, geometry, coords, q.w.text.buf);
    assert_string_equal(q.err, msg);
    assert_int_equal(q.w.nparams, 0);
    assert_int_equal(q.w.text.len, 0);
    q_done(&q);
}

#define G(n) "public.ST_SetSRID(public.ST_GeomFromGeoJSON($" #n "::text), 4326)"
/* within $m metres of the point $g: the geography index's && and the test */
#define NEAR(g, m)                                                                                 \
    "(e.geog OPERATOR(public.&&) public._ST_Expand(public.geography(" G(                           \
        g) "), $" #m "::float8) AND public.ST_DWithin(public.geography(" G(g) "), e.geog, $" #m    \
                                                                              "::float8, false))"

static void test_query_absent(void **state)
{
    (void)state;
    struct q q;
    q_run(&q, false, NULL, "", NULL);
    assert_true(q.ok);
    assert_false(q.present);
    assert_null(q.order);
    assert_int_equal(q.w.text.len, 0);
    q_done(&q);
    q_run(&q, true, NULL, NULL, NULL);
    assert_true(q.ok);
    assert_false(q.present);
    q_done(&q);
}

static void test_query_partial(void **state)
{
    (void)state;
    assert_refused(NULL, NULL, "34,134",
                   "Invalid query: URI param /coords/ used without /geometry/");
    assert_refused("near;maxDistance:10", NULL, "34,134",
                   "Invalid query: URI param /coords/ used without /geometry/");
    assert_refused(NULL, "point", NULL,
                   "Invalid query: URI param /geometry/ used without /coords/");
    assert_refused("intersects", NULL, NULL,
                   "Invalid query: URI param /georel/ used without /geometry/");
    assert_refused(NULL, "point", "34,134",
                   "Invalid query: URI param /geometry/ used without /georel/");
    struct q q;
    q_run(&q, true, "intersects", "point", NULL);
    assert_false(q.ok);
    assert_string_equal(q.err, "partial geo expression: geometry, georel and coords have to be "
                               "provided together");
    q_done(&q);
}

static void test_query_near(void **state)
{
    (void)state;
    struct q q;
    q_run(&q, false, "near;maxDistance:2000", "point", "34.3503,134.0467");
    assert_true(q.ok);
    assert_true(q.present);
    assert_string_equal(q.w.text.buf, "(" NEAR(1, 2) ")");
    assert_int_equal(q.w.nparams, 2);
    assert_geojson(q.w.params[0], "{\"type\": \"Point\", \"coordinates\": [134.0467, 34.3503]}");
    assert_string_equal(q.w.params[1], "2000");
    assert_string_equal(q.order, "e.geog OPERATOR(public.<->) public.geography(" G(1) ")");
    q_done(&q);

    q_run(&q, false, "minDistance:500;near;maxDistance:2.5e3", "point", " 34.3503 , 134.0467 ");
    assert_true(q.ok);
    assert_string_equal(q.w.text.buf,
                        "(" NEAR(1, 2) " AND NOT public.ST_DWithin(public.geography(" G(
                            1) "), "
                               "e.geog, $3::float8, false))");
    assert_string_equal(q.w.params[1], "2500");
    assert_string_equal(q.w.params[2], "500");
    assert_non_null(q.order);
    q_done(&q);

    /* at least 0 m away is anywhere, the point itself included */
    q_run(&q, false, "near;minDistance:0", "point", "34.3503,134.0467");
    assert_true(q.ok);
    assert_string_equal(q.w.text.buf, "(e.geom IS NOT NULL)");
    assert_non_null(q.order);
    q_done(&q);
}

static void test_query_shapes(void **state)
{
    (void)state;
    struct q q;
    q_run(&q, false, "coveredBy", "polygon", "34.34,134.04;34.36,134.04;34.36,134.06;34.34,134.04");
    assert_true(q.ok);
    assert_null(q.order);
    assert_string_equal(q.w.text.buf, "(e.geom OPERATOR(public.@) " G(
                                          1) " AND public.ST_CoveredBy(e.geom, " G(1) "))");
    assert_int_equal(q.w.nparams, 1);
    assert_geojson(q.w.params[0], "{\"type\": \"Polygon\", \"coordinates\": [[[134.04, 34.34], "
                                  "[134.04, 34.36], [134.06, 34.36], [134.04, 34.34]]]}");
    q_done(&q);

    /* a box from any two opposite corners, counter-clockwise as Orion */
    q_run(&q, false, "coveredBy", "box", "34.36,134.06;34.34,134.04");
    assert_true(q.ok);
    assert_geojson(q.w.params[0], "{\"type\": \"Polygon\", \"coordinates\": [[[134.04, 34.34], "
                                  "[134.06, 34.34], [134.06, 34.36], [134.04, 34.36], [134.04, "
                                  "34.34]]]}");
    q_done(&q);

    q_run(&q, false, "intersects", "line", "34.34,134.04;34.36,134.06");
    assert_true(q.ok);
    assert_string_equal(q.w.text.buf, "(e.geom OPERATOR(public.&&) " G(
                                          1) " AND public.ST_Intersects(e.geom, " G(1) "))");
    assert_geojson(q.w.params[0], "{\"type\": \"LineString\", \"coordinates\": [[134.04, 34.34], "
                                  "[134.06, 34.36]]}");
    q_done(&q);

    q_run(&q, false, "equals", "point", "34.3503,134.0467");
    assert_true(q.ok);
    assert_string_equal(q.w.text.buf, "(e.geom OPERATOR(public.~=) " G(
                                          1) " AND public.ST_Equals(e.geom, " G(1) "))");
    q_done(&q);

    q_run(&q, false, "disjoint", "box", "34.34,134.04;34.36,134.06");
    assert_true(q.ok);
    assert_string_equal(q.w.text.buf, "public.ST_Disjoint(e.geom, " G(1) ")");
    q_done(&q);

    /* parameters already in use are kept, and numbered after */
    q.pool = core_pool_new();
    xc_sql_init(&q.w, q.pool);
    xc_sql_add(&q.w, "e.type = ");
    xc_sql_param(&q.w, "Shelter");
    xc_sql_add(&q.w, " AND ");
    assert_true(xc_geo_compile(&q.w, "near;maxDistance:10", "point", "1,2", &q.present, &q.order,
                               q.err, sizeof q.err));
    assert_string_equal(q.w.text.buf, "e.type = $1 AND (" NEAR(2, 3) ")");
    assert_string_equal(q.order, "e.geog OPERATOR(public.<->) public.geography(" G(2) ")");
    q_done(&q);
}

static void test_query_input_never_in_sql(void **state)
{
    (void)state;
    struct q q;
    q_run(&q, false, "near;maxDistance:1e3", "point", "34.3503,134.0467");
    assert_true(q.ok);
    assert_null(strstr(q.w.text.buf, "34.35"));
    assert_null(strstr(q.w.text.buf, "1e3"));
    assert_null(strstr(q.w.text.buf, "1000"));
    assert_null(strstr(q.order, "34.35"));
    q_done(&q);
}

static void test_query_errors(void **state)
{
    (void)state;
    const char *pt = "34.35,134.04", *sq = "0,0;0,1;1,1;0,0";
    /* geometry */
    assert_refused("intersects", "circle", pt,
                   "Invalid query: error parsing geometry: Invalid selector in geometry "
                   "specification");
    assert_refused("intersects", "point;point", pt,
                   "Invalid query: error parsing geometry: geometry-type present more than once");
    assert_refused("intersects", "point;line", pt,
                   "Invalid query: error parsing geometry: geometry-type present more than once");
    assert_refused("intersects", "Point", pt,
                   "Invalid query: error parsing geometry: Invalid selector in geometry "
                   "specification");
    /* georel */
    assert_refused("within", "point", pt, "Invalid query: Invalid modifier in georel parameter");
    assert_refused("near;near;maxDistance:1", "point", pt,
                   "Invalid query: georel type present more than once");
    assert_refused("near;maxDistance:1;maxDistance:2", "point", pt,
                   "Invalid query: maxDistance present more than once");
    assert_refused("near;minDistance:1;minDistance:2", "point", pt,
                   "Invalid query: minDistance present more than once");
    const char *badmax[] = {"near;maxDistance:",    "near;maxDistance:x",
                            "near;maxDistance:-1",  "near;maxDistance:nan",
                            "near;maxDistance:inf", "near;maxDistance:1e99"};
    for (size_t i = 0; i < ARRAY_SIZE(badmax); i++)
        assert_refused(badmax[i], "point", pt, "Invalid query: invalid number for maxDistance");
    assert_refused("near;minDistance:0x10", "point", pt,
                   "Invalid query: invalid number for minDistance");
    assert_refused("intersects;maxDistance:10", "point", pt,
                   "Invalid query: maxDistance erroneously used with georel /intersects/");
    assert_refused("coveredBy;minDistance:10", "polygon", sq,
                   "Invalid query: minDistance erroneously used with georel /coveredBy/");
    assert_refused("maxDistance:10", "point", pt,
                   "Invalid query: maxDistance erroneously used with georel //");
    assert_refused("near", "point", pt,
                   "Invalid query: georel /near/ without either minDistance nor maxDistance");
    assert_refused(";", "point", pt, "Invalid query: Invalid modifier in georel parameter");
    /* combinations Orion refuses */
    assert_refused("coveredBy", "line", "0,0;1,1",
                   "Invalid query: line geometry cannot be used with coveredBy georel");
    assert_refused("coveredBy", "point", pt,
                   "Invalid query: point geometry cannot be used with coveredBy georel");
    assert_refused("near;maxDistance:10", "box", "0,0;1,1",
                   "Invalid query: georel /near/ used with geometry different than point");
    /* coords */
    assert_refused("intersects", "point", ";",
                   "Invalid query: invalid point in URI param /coords/");
    assert_refused("intersects", "point", "34.35",
                   "Invalid query: invalid point in URI param /coords/");
    assert_refused("intersects", "point", "1,2,3",
                   "Invalid query: invalid point in URI param /coords/");
    assert_refused("intersects", "point", "1,2;",
                   "Invalid query: invalid point in URI param /coords/");
    assert_refused("intersects", "point", "a,2", "Invalid query: invalid coordinates");
    assert_refused("intersects", "point", "1,b", "Invalid query: invalid coordinates");
    assert_refused("intersects", "point", "91,2", "Invalid query: invalid coordinates");
    assert_refused("intersects", "point", "1,-181", "Invalid query: invalid coordinates");
    assert_refused("intersects", "point", "1,2;3,4",
                   "Invalid query: invalid number of coordinates for /point/");
    assert_refused("intersects", "line", pt,
                   "Invalid query: invalid number of coordinates for /line/");
    assert_refused("intersects", "line", "1,2;1,2",
                   "Invalid query: a line needs 2 distinct positions");
    assert_refused("intersects", "box", pt,
                   "Invalid query: invalid number of coordinates for /box/");
    assert_refused("intersects", "box", "1,2;3,4;5,6",
                   "Invalid query: invalid number of coordinates for /box/");
    assert_refused("intersects", "box", "1,2;1,4",
                   "Invalid query: box coordinates are not defining an actual box");
    assert_refused("intersects", "polygon", "0,0;0,1;0,0",
                   "Invalid query: Too few coordinates for polygon");
    assert_refused("intersects", "polygon", "0,0;0,1;1,1;1,0",
                   "Invalid query: First and last point in polygon not the same");
    assert_refused("intersects", "polygon", "0,0;0,2;2,0;2,2;0,0",
                   "Invalid query: polygon edges cross or touch each other");
    assert_refused("intersects", "polygon", "0,0;1,1;2,2;0,0",
                   "Invalid query: a polygon ring encloses no area");
    /* the expression form words it as POST /v2/op/query does */
    struct q q;
    q_run(&q, true, "near", "point", pt);
    assert_false(q.ok);
    assert_string_equal(q.err, "error parsing geo-query fields: georel /near/ without either "
                               "minDistance nor maxDistance");
    q_done(&q);
}

static void test_query_bounds(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, SIZE_MAX);
    /* XC_GEO_MAX_POINTS positions are fine (short ones, to stay under the
     * text bound), one more is not */
    for (int i = 0; i < XC_GEO_MAX_POINTS; i++)
        strbuf_addf(&sb, "%s0,%d", i ? ";" : "", i % 2);
    assert_true(sb.len < XC_GEO_MAX_COORDS_TEXT);
    struct q q;
    q_run(&q, false, "intersects", "line", sb.buf);
    assert_true(q.ok);
    q_done(&q);
    strbuf_adds(&sb, ";2,2");
    assert_refused("intersects", "line", sb.buf,
                   "Invalid query: too many coordinates in URI param /coords/");
    strbuf_release(&sb);
    /* over 64 KiB of text, whatever it holds */
    char *big = xmalloc(XC_GEO_MAX_COORDS_TEXT + 2);
    memset(big, ' ', XC_GEO_MAX_COORDS_TEXT + 1);
    memcpy(big, "1,2", 3);
    big[XC_GEO_MAX_COORDS_TEXT + 1] = '\0';
    assert_refused("intersects", "point", big,
                   "Invalid query: too many coordinates in URI param /coords/");
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_location),
        cmocka_unit_test(test_ignore_type_false_is_location),
        cmocka_unit_test(test_geo_point),
        cmocka_unit_test(test_geo_line),
        cmocka_unit_test(test_geo_box),
        cmocka_unit_test(test_geo_polygon),
        cmocka_unit_test(test_geo_json),
        cmocka_unit_test(test_geo_json_feature),
        cmocka_unit_test(test_geo_json_refused),
        cmocka_unit_test(test_geo_json_invalid_shapes),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_legacy_location_metadata),
        cmocka_unit_test(test_more_than_one),
        cmocka_unit_test(test_attr_location),
        cmocka_unit_test(test_query_absent),
        cmocka_unit_test(test_query_partial),
        cmocka_unit_test(test_query_near),
        cmocka_unit_test(test_query_shapes),
        cmocka_unit_test(test_query_input_never_in_sql),
        cmocka_unit_test(test_query_errors),
        cmocka_unit_test(test_query_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
