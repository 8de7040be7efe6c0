#ifndef XC_GEO_H
#define XC_GEO_H

/*
 * Geography of the hosted NGSI-v2 store: an entity's one location (from its
 * attributes, as Orion finds it) and Orion's geographical queries (georel,
 * geometry, coords) compiled to SQL over the PostGIS column e.geom
 * (geometry(Geometry, 4326), GIST-indexed both as geometry and as
 * geography). Everything PostGIS will read is validated here first, so a
 * stored or queried shape never makes PostGIS raise an error.
 */
#include <jansson.h>

#include "exchange/xc_sql.h"

/* At most this many positions in one location or one query shape. */
#define XC_GEO_MAX_POINTS 10000
/* At most this many bytes in the coords parameter. */
#define XC_GEO_MAX_COORDS_TEXT (64 * 1024)

enum xc_geo_rc {
    XC_GEO_NONE,    /* no location attribute */
    XC_GEO_OK,      /* *geojson holds the location */
    XC_GEO_BAD,     /* 400 BadRequest, err holds Orion's description */
    XC_GEO_TOO_MANY /* 413 NoResourcesAvailable, err holds Orion's description */
};

/* The entity's location from its attributes (normalized form, {name: {"type",
 * "value", "metadata"}}): geo:point, geo:line, geo:box, geo:polygon, geo:json
 * (a geometry, or a Feature / a FeatureCollection of exactly one Feature), or
 * a "lat, lon" string with metadata location = "WGS84" / "WGS 84". A null
 * value or metadata ignoreType = true makes an attribute no location. On
 * XC_GEO_OK *geojson is a malloc'd GeoJSON geometry (lon, lat order, 2D)
 * for ST_GeomFromGeoJSON; the caller frees it. */
enum xc_geo_rc xc_geo_location(const json_t *attrs, char **geojson, char *err, size_t errlen);

/* The location of one attribute (NULL-safe), as xc_geo_location judges each
 * attribute; for updates that touch one attribute. XC_GEO_TOO_MANY is never
 * returned. */
enum xc_geo_rc xc_geo_attr_location(const json_t *attr, char **geojson, char *err, size_t errlen);

/* Compiles the URI parameters georel, geometry, coords of GET /v2/entities
 * (each NULL or "" when absent) into a boolean SQL expression over e.geom
 * appended to where. None of them: *present = false and nothing appended.
 * For georel near, *order is an ORDER BY expression (nearest first, pool
 * memory, sharing where's parameters); otherwise NULL. false with Orion's
 * description ("Invalid query: ...") in err for bad input (400 BadRequest);
 * nothing is appended then. */
bool xc_geo_compile(struct xc_sql *where, const char *georel, const char *geometry,
                    const char *coords, bool *present, const char **order, char *err,
                    size_t errlen);

/* The same for the "expression" object of POST /v2/op/query and of a
 * subscription's condition, whose errors Orion words differently ("error
 * parsing geo-query fields: ...", and a partial expression is refused). */
bool xc_geo_compile_expression(struct xc_sql *where, const char *georel, const char *geometry,
                               const char *coords, bool *present, const char **order, char *err,
                               size_t errlen);

#endif
