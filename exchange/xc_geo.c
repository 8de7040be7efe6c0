#include <math.h>

#include "exchange/xc_geo.h"

/*
 * Shapes are parsed into one model (points, parts, polygons), checked there,
 * and written out again as GeoJSON text we produce ourselves: PostGIS then
 * reads only numbers we formatted, in lon/lat order, 2D (the column has no Z),
 * and a geometry GEOS can relate without a TopologyException (crossing rings
 * make it throw, measured on PostGIS 3.3 / GEOS 3.11).
 */

struct geo_pt {
    double lon, lat;
};

enum geo_kind {
    GK_POINT,
    GK_MULTIPOINT,
    GK_LINE,
    GK_MULTILINE,
    GK_POLYGON,
    GK_MULTIPOLYGON,
};

struct geo {
    enum geo_kind kind;
    struct geo_pt *pt;
    size_t npt, ptcap;
    size_t *part_end; /* a line or ring ends before pt[part_end[i]] */
    size_t npart, partcap;
    size_t *poly_end; /* a polygon's rings end before part_end[poly_end[i]] */
    size_t npoly, polycap;
    bool toomany;
};

static void geo_init(struct geo *g, enum geo_kind kind)
{
    memset(g, 0, sizeof *g);
    g->kind = kind;
}

static void geo_release(struct geo *g)
{
    free(g->pt);
    free(g->part_end);
    free(g->poly_end);
    memset(g, 0, sizeof *g);
}

static bool geo_add(struct geo *g, double lon, double lat)
{
    if (g->npt >= XC_GEO_MAX_POINTS) {
        g->toomany = true;
        return false;
    }
    if (g->npt == g->ptcap) {
        g->ptcap = g->ptcap ? 2 * g->ptcap : 16;
        g->pt = xrealloc(g->pt, g->ptcap * sizeof *g->pt);
    }
    g->pt[g->npt++] = (struct geo_pt){lon, lat};
    return true;
}

static void geo_end_part(struct geo *g)
{
    if (g->npart == g->partcap) {
        g->partcap = g->partcap ? 2 * g->partcap : 8;
        g->part_end = xrealloc(g->part_end, g->partcap * sizeof *g->part_end);
    }
    g->part_end[g->npart++] = g->npt;
}

static void geo_end_poly(struct geo *g)
{
    if (g->npoly == g->polycap) {
        g->polycap = g->polycap ? 2 * g->polycap : 4;
        g->poly_end = xrealloc(g->poly_end, g->polycap * sizeof *g->poly_end);
    }
    g->poly_end[g->npoly++] = g->npart;
}

static size_t part_start(const struct geo *g, size_t part)
{
    return part ? g->part_end[part - 1] : 0;
}

static size_t poly_start(const struct geo *g, size_t poly)
{
    return poly ? g->poly_end[poly - 1] : 0;
}

static bool in_range(double lon, double lat)
{
    return isfinite(lon) && isfinite(lat) && lon >= -180 && lon <= 180 && lat >= -90 && lat <= 90;
}

/* ---- GeoJSON out ---- */

/* %.17g reads back as the same double, so a stored shape and a query shape
 * written from the same input text compare equal. */
static void put_pos(struct strbuf *sb, struct geo_pt p)
{
    strbuf_addf(sb, "[%.17g,%.17g]", p.lon, p.lat);
}

static void put_part(struct strbuf *sb, const struct geo *g, size_t part)
{
    strbuf_adds(sb, "[");
    for (size_t i = part_start(g, part); i < g->part_end[part]; i++) {
        if (i > part_start(g, part))
            strbuf_adds(sb, ",");
        put_pos(sb, g->pt[i]);
    }
    strbuf_adds(sb, "]");
}

static void put_poly(struct strbuf *sb, const struct geo *g, size_t poly)
{
    strbuf_adds(sb, "[");
    for (size_t r = poly_start(g, poly); r < g->poly_end[poly]; r++) {
        if (r > poly_start(g, poly))
            strbuf_adds(sb, ",");
        put_part(sb, g, r);
    }
    strbuf_adds(sb, "]");
}

static char *geo_json(const struct geo *g)
{
    static const char *const names[] = {
        [GK_POINT] = "Point",     [GK_MULTIPOINT] = "MultiPoint",
        [GK_LINE] = "LineString", [GK_MULTILINE] = "MultiLineString",
        [GK_POLYGON] = "Polygon", [GK_MULTIPOLYGON] = "MultiPolygon",
    };
    struct strbuf sb;
    /* XC_GEO_MAX_POINTS positions of two %.17g numbers fit well within */
    strbuf_init(&sb, 4 * 1024 * 1024);
    strbuf_addf(&sb, "{\"type\":\"%s\",\"coordinates\":", names[g->kind]);
    switch (g->kind) {
    case GK_POINT:
        put_pos(&sb, g->pt[0]);
        break;
    case GK_MULTIPOINT:
        strbuf_adds(&sb, "[");
        for (size_t i = 0; i < g->npt; i++) {
            if (i)
                strbuf_adds(&sb, ",");
            put_pos(&sb, g->pt[i]);
        }
        strbuf_adds(&sb, "]");
        break;
    case GK_LINE:
        put_part(&sb, g, 0);
        break;
    case GK_MULTILINE:
        strbuf_adds(&sb, "[");
        for (size_t p = 0; p < g->npart; p++) {
            if (p)
                strbuf_adds(&sb, ",");
            put_part(&sb, g, p);
        }
        strbuf_adds(&sb, "]");
        break;
    case GK_POLYGON:
        put_poly(&sb, g, 0);
        break;
    case GK_MULTIPOLYGON:
        strbuf_adds(&sb, "[");
        for (size_t p = 0; p < g->npoly; p++) {
            if (p)
                strbuf_adds(&sb, ",");
            put_poly(&sb, g, p);
        }
        strbuf_adds(&sb, "]");
        break;
    }
    strbuf_adds(&sb, "}");
    return strbuf_detach(&sb, NULL);
}

/* ---- validity ---- */

enum geo_fail {
    GF_OK,
    GF_LINE_FEW,
    GF_LINE_DEGENERATE,
    GF_RING_FEW,
    GF_RING_OPEN,
    GF_RING_DEGENERATE,
    GF_CROSS,
    GF_HOLE_OUTSIDE,
    GF_OVERLAP,
};

static const char *geo_fail_text(enum geo_fail f)
{
    switch (f) {
    case GF_LINE_FEW:
        return "a line needs at least 2 positions";
    case GF_LINE_DEGENERATE:
        return "a line needs 2 distinct positions";
    case GF_RING_FEW:
        return "a polygon ring needs at least 4 positions";
    case GF_RING_OPEN:
        return "a polygon ring must end where it starts";
    case GF_RING_DEGENERATE:
        return "a polygon ring encloses no area";
    case GF_CROSS:
        return "polygon edges cross or touch each other";
    case GF_HOLE_OUTSIDE:
        return "a polygon hole is not inside its polygon";
    case GF_OVERLAP:
        return "polygons or holes overlap";
    case GF_OK:
        break;
    }
    return "invalid geometry";
}

static bool pt_eq(struct geo_pt a, struct geo_pt b)
{
    return a.lon == b.lon && a.lat == b.lat;
}

static int orient(struct geo_pt a, struct geo_pt b, struct geo_pt c)
{
    double v = (b.lon - a.lon) * (c.lat - a.lat) - (b.lat - a.lat) * (c.lon - a.lon);
    return (v > 0) - (v < 0);
}

/* c on the segment ab, given that the three are collinear */
static bool within(struct geo_pt a, struct geo_pt b, struct geo_pt c)
{
    return c.lon >= (a.lon < b.lon ? a.lon : b.lon) && c.lon <= (a.lon > b.lon ? a.lon : b.lon) &&
           c.lat >= (a.lat < b.lat ? a.lat : b.lat) && c.lat <= (a.lat > b.lat ? a.lat : b.lat);
}

/* 1 inside, 0 on the boundary, -1 outside the closed ring r[0..n-1] */
static int pt_in_ring(const struct geo_pt *r, size_t n, struct geo_pt p)
{
    bool inside = false;
    for (size_t i = 0; i + 1 < n; i++) {
        struct geo_pt a = r[i], b = r[i + 1];
        if (orient(a, b, p) == 0 && within(a, b, p))
            return 0;
        if ((a.lat > p.lat) != (b.lat > p.lat)) {
            double x = a.lon + (p.lat - a.lat) * (b.lon - a.lon) / (b.lat - a.lat);
            if (p.lon < x)
                inside = !inside;
        }
    }
    return inside ? 1 : -1;
}

struct seg {
    struct geo_pt a, b;
    double minx, maxx, miny, maxy;
    size_t ring, idx, nring; /* ring number, index in it, segments in it */
};

static int seg_cmp(const void *x, const void *y)
{
    const struct seg *s = x, *t = y;
    return (s->minx > t->minx) - (s->minx < t->minx);
}

/* Whether two segments meet where a valid polygonal geometry must not: a
 * proper crossing anywhere; within one ring, any contact but the shared
 * vertex of neighbours (and no folding back over it); between rings, any
 * contact but isolated points. */
static bool seg_bad(const struct seg *s, const struct seg *t)
{
    int o1 = orient(s->a, s->b, t->a), o2 = orient(s->a, s->b, t->b);
    int o3 = orient(t->a, t->b, s->a), o4 = orient(t->a, t->b, s->b);
    if (o1 * o2 < 0 && o3 * o4 < 0)
        return true;
    bool touch = (o1 == 0 && within(s->a, s->b, t->a)) || (o2 == 0 && within(s->a, s->b, t->b)) ||
                 (o3 == 0 && within(t->a, t->b, s->a)) || (o4 == 0 && within(t->a, t->b, s->b));
    if (!touch)
        return false;
    bool collinear = o1 == 0 && o2 == 0;
    if (s->ring == t->ring) {
        size_t lo = s->idx < t->idx ? s->idx : t->idx, hi = s->idx < t->idx ? t->idx : s->idx;
        bool neighbours = hi == lo + 1 || (lo == 0 && hi == s->nring - 1);
        if (!neighbours)
            return true;
        if (!collinear)
            return false;
        /* collinear neighbours: fine when they continue, bad when one turns
         * back over the other (a spike) */
        struct geo_pt shared = pt_eq(s->a, t->a) || pt_eq(s->a, t->b) ? s->a : s->b;
        struct geo_pt p = pt_eq(s->a, shared) ? s->b : s->a;
        struct geo_pt q = pt_eq(t->a, shared) ? t->b : t->a;
        double dot = (p.lon - shared.lon) * (q.lon - shared.lon) +
                     (p.lat - shared.lat) * (q.lat - shared.lat);
        return dot > 0;
    }
    if (!collinear)
        return false;
    /* collinear segments of two rings: bad when they share more than a point */
    int n = within(s->a, s->b, t->a) + within(s->a, s->b, t->b) + within(t->a, t->b, s->a) +
            within(t->a, t->b, s->b);
    if (n >= 3)
        return true;
    if (n == 2) {
        /* two contacts: one point where the ends meet, or an overlap */
        struct geo_pt c[4];
        int k = 0;
        if (within(s->a, s->b, t->a))
            c[k++] = t->a;
        if (within(s->a, s->b, t->b))
            c[k++] = t->b;
        if (within(t->a, t->b, s->a))
            c[k++] = s->a;
        if (within(t->a, t->b, s->b))
            c[k++] = s->b;
        return !pt_eq(c[0], c[1]);
    }
    return false;
}

/* The segments of every ring of a polygonal geometry, without zero-length
 * ones (repeated positions are valid). */
static struct seg *ring_segments(const struct geo *g, size_t *nseg)
{
    struct seg *sv = xmalloc((g->npt ? g->npt : 1) * sizeof *sv);
    size_t n = 0;
    for (size_t r = 0; r < g->npart; r++) {
        size_t first = n, idx = 0;
        for (size_t i = part_start(g, r); i + 1 < g->part_end[r]; i++) {
            struct geo_pt a = g->pt[i], b = g->pt[i + 1];
            if (pt_eq(a, b))
                continue;
            sv[n++] = (struct seg){
                .a = a,
                .b = b,
                .minx = a.lon < b.lon ? a.lon : b.lon,
                .maxx = a.lon > b.lon ? a.lon : b.lon,
                .miny = a.lat < b.lat ? a.lat : b.lat,
                .maxy = a.lat > b.lat ? a.lat : b.lat,
                .ring = r,
                .idx = idx++,
            };
        }
        for (size_t i = first; i < n; i++)
            sv[i].nring = idx;
    }
    *nseg = n;
    return sv;
}

static bool rings_cross(const struct geo *g)
{
    size_t n;
    struct seg *sv = ring_segments(g, &n);
    /* sorted by left end, a segment only meets those starting before its
     * right end: near linear for real shapes, quadratic at worst (bounded
     * by XC_GEO_MAX_POINTS) */
    qsort(sv, n, sizeof *sv, seg_cmp);
    bool bad = false;
    for (size_t i = 0; i < n && !bad; i++) {
        for (size_t j = i + 1; j < n && sv[j].minx <= sv[i].maxx; j++) {
            if (sv[j].maxy < sv[i].miny || sv[j].miny > sv[i].maxy)
                continue;
            if (seg_bad(&sv[i], &sv[j])) {
                bad = true;
                break;
            }
        }
    }
    free(sv);
    return bad;
}

static void ring_box(const struct geo *g, size_t r, double box[4])
{
    box[0] = box[1] = INFINITY;
    box[2] = box[3] = -INFINITY;
    for (size_t i = part_start(g, r); i < g->part_end[r]; i++) {
        struct geo_pt p = g->pt[i];
        box[0] = p.lon < box[0] ? p.lon : box[0];
        box[1] = p.lat < box[1] ? p.lat : box[1];
        box[2] = p.lon > box[2] ? p.lon : box[2];
        box[3] = p.lat > box[3] ? p.lat : box[3];
    }
}

static bool boxes_meet(const double a[4], const double b[4])
{
    return a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3];
}

/* Where ring r lies against ring s, rings not crossing: 1 some position of r
 * strictly inside s, -1 some strictly outside, 0 all on its boundary. */
static int ring_against(const struct geo *g, size_t r, size_t s)
{
    const struct geo_pt *sp = g->pt + part_start(g, s);
    size_t sn = g->part_end[s] - part_start(g, s);
    for (size_t i = part_start(g, r); i < g->part_end[r]; i++) {
        int w = pt_in_ring(sp, sn, g->pt[i]);
        if (w)
            return w;
    }
    return 0;
}

/* Ring r (not crossing anything) lies inside polygon p's area: inside its
 * shell and in none of its holes. */
static bool ring_in_area(const struct geo *g, size_t r, size_t p)
{
    size_t shell = poly_start(g, p);
    if (ring_against(g, r, shell) <= 0)
        return false;
    for (size_t h = shell + 1; h < g->poly_end[p]; h++) {
        if (ring_against(g, r, h) >= 0)
            return false;
    }
    return true;
}

static enum geo_fail check_polygons(const struct geo *g)
{
    for (size_t r = 0; r < g->npart; r++) {
        size_t s = part_start(g, r), n = g->part_end[r] - s;
        if (n < 4)
            return GF_RING_FEW;
        if (!pt_eq(g->pt[s], g->pt[s + n - 1]))
            return GF_RING_OPEN;
        /* all on one line: no area (crossing tests would only call it a
         * fold) */
        size_t k = s + 1;
        while (k < s + n && pt_eq(g->pt[s], g->pt[k]))
            k++;
        bool flat = true;
        for (size_t i = k + 1; i < s + n && flat; i++)
            flat = orient(g->pt[s], g->pt[k], g->pt[i]) == 0;
        if (flat)
            return GF_RING_DEGENERATE;
    }
    if (rings_cross(g))
        return GF_CROSS;
    /* with no crossings, one position tells where a whole ring lies */
    double *box = xmalloc(g->npart * 4 * sizeof *box);
    for (size_t r = 0; r < g->npart; r++)
        ring_box(g, r, box + 4 * r);
    enum geo_fail f = GF_OK;
    for (size_t p = 0; p < g->npoly && f == GF_OK; p++) {
        size_t shell = poly_start(g, p);
        for (size_t h = shell + 1; h < g->poly_end[p] && f == GF_OK; h++) {
            if (ring_against(g, h, shell) < 0)
                f = GF_HOLE_OUTSIDE;
            for (size_t k = shell + 1; k < g->poly_end[p] && f == GF_OK; k++) {
                if (k != h && boxes_meet(box + 4 * h, box + 4 * k) && ring_against(g, h, k) > 0)
                    f = GF_OVERLAP;
            }
        }
        for (size_t q = 0; q < g->npoly && f == GF_OK; q++) {
            size_t qshell = poly_start(g, q);
            if (q != p && boxes_meet(box + 4 * shell, box + 4 * qshell) &&
                ring_in_area(g, qshell, p))
                f = GF_OVERLAP;
        }
    }
    free(box);
    return f;
}

static enum geo_fail geo_check(const struct geo *g)
{
    switch (g->kind) {
    case GK_POINT:
    case GK_MULTIPOINT:
        return GF_OK;
    case GK_LINE:
    case GK_MULTILINE:
        for (size_t r = 0; r < g->npart; r++) {
            size_t s = part_start(g, r), n = g->part_end[r] - s;
            if (n < 2)
                return GF_LINE_FEW;
            bool distinct = false;
            for (size_t i = s + 1; i < s + n && !distinct; i++)
                distinct = !pt_eq(g->pt[s], g->pt[i]);
            if (!distinct)
                return GF_LINE_DEGENERATE;
        }
        return GF_OK;
    case GK_POLYGON:
    case GK_MULTIPOLYGON:
        return check_polygons(g);
    }
    return GF_OK;
}

/* ---- numbers and "lat, lon" text ---- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* A decimal number (no hex, inf or nan, which strtod would take), with
 * blanks around it as Orion allows. */
static bool parse_num(const char *s, size_t len, double *out)
{
    while (len && is_space(*s)) {
        s++;
        len--;
    }
    while (len && is_space(s[len - 1]))
        len--;
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return false;
    size_t i = 0, digits = 0;
    if (s[i] == '+' || s[i] == '-')
        i++;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        i++;
        digits++;
    }
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
            digits++;
        }
    }
    if (!digits)
        return false;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t e = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
            e++;
        }
        if (!e)
            return false;
    }
    if (i != len)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    double v = strtod(buf, NULL);
    if (!isfinite(v))
        return false;
    *out = v;
    return true;
}

/* "lat, lon" of the simple location format */
static bool parse_latlon(const char *s, size_t len, struct geo_pt *p)
{
    const char *comma = memchr(s, ',', len);
    if (!comma)
        return false;
    double lat, lon;
    if (!parse_num(s, (size_t)(comma - s), &lat) ||
        !parse_num(comma + 1, len - (size_t)(comma - s) - 1, &lon))
        return false;
    if (!in_range(lon, lat))
        return false;
    *p = (struct geo_pt){lon, lat};
    return true;
}

/* ---- an attribute's location ---- */

#define LOC_PREFIX "error parsing location attribute: "

static void set_err(char *err, size_t errlen, const char *fmt, ...) PRINTF_LIKE(3, 4);

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    /* a long echo of the input is cut, which is fine for a description */
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool md_value_is(const json_t *md, const char *name, const json_t **value)
{
    const json_t *m = json_object_get(md, name);
    if (!json_is_object(m))
        return false;
    *value = json_object_get(m, "value");
    return *value != NULL;
}

enum loc_kind { LK_NONE, LK_POINT, LK_LINE, LK_BOX, LK_POLYGON, LK_JSON, LK_LEGACY };

/* Whether Orion takes the attribute as a location, from its type and
 * metadata, before looking at the value's shape (so a second location is
 * refused as such even when it is malformed). */
static enum loc_kind loc_kind(const json_t *attr)
{
    if (!json_is_object(attr))
        return LK_NONE;
    const json_t *value = json_object_get(attr, "value");
    if (!value || json_is_null(value))
        return LK_NONE;
    const char *type = json_string_value(json_object_get(attr, "type"));
    const json_t *md = json_object_get(attr, "metadata");
    const json_t *v;
    enum loc_kind k = LK_NONE;
    if (type && strcmp(type, "geo:point") == 0)
        k = LK_POINT;
    else if (type && strcmp(type, "geo:line") == 0)
        k = LK_LINE;
    else if (type && strcmp(type, "geo:box") == 0)
        k = LK_BOX;
    else if (type && strcmp(type, "geo:polygon") == 0)
        k = LK_POLYGON;
    else if (type && strcmp(type, "geo:json") == 0)
        k = LK_JSON;
    if (k != LK_NONE) {
        /* Orion: ignoreType true (a boolean) turns the special type off */
        if (md_value_is(md, "ignoreType", &v) && json_is_true(v))
            return LK_NONE;
        return k;
    }
    if (md_value_is(md, "location", &v) && json_is_string(v) &&
        (strcmp(json_string_value(v), "WGS84") == 0 || strcmp(json_string_value(v), "WGS 84") == 0))
        return LK_LEGACY;
    return LK_NONE;
}

/* geo:line / geo:box / geo:polygon: an array of "lat, lon" strings */
static bool latlon_array(const json_t *value, struct geo *g, char *err, size_t errlen)
{
    if (!json_is_array(value)) {
        set_err(err, errlen,
                LOC_PREFIX "geo:line, geo:box and geo:polygon needs array of strings as value");
        return false;
    }
    size_t i;
    const json_t *item;
    json_array_foreach(value, i, item)
    {
        if (!json_is_string(item)) {
            set_err(err, errlen,
                    LOC_PREFIX "geo:line, geo:box and geo:polygon needs array of strings but "
                               "some element is not a string");
            return false;
        }
        struct geo_pt p;
        if (!parse_latlon(json_string_value(item), json_string_length(item), &p)) {
            set_err(err, errlen,
                    LOC_PREFIX "geo coordinates format error [see Orion user manual]: %s",
                    json_string_value(item));
            return false;
        }
        if (!geo_add(g, p.lon, p.lat)) {
            set_err(err, errlen, LOC_PREFIX "too many coordinates (at most %d)", XC_GEO_MAX_POINTS);
            return false;
        }
    }
    return true;
}

static bool box_from_corners(struct geo *g, struct geo_pt c1, struct geo_pt c2, bool ccw)
{
    if (c1.lat == c2.lat || c1.lon == c2.lon)
        return false;
    double x0 = c1.lon < c2.lon ? c1.lon : c2.lon, x1 = c1.lon < c2.lon ? c2.lon : c1.lon;
    double y0 = c1.lat < c2.lat ? c1.lat : c2.lat, y1 = c1.lat < c2.lat ? c2.lat : c1.lat;
    g->npt = g->npart = g->npoly = 0;
    g->kind = GK_POLYGON;
    /* Orion's order: clockwise for an entity's geo:box, counter-clockwise for
     * a query's box (ST_Equals ignores it, kept for whoever reads the text) */
    geo_add(g, x0, y0);
    if (ccw) {
        geo_add(g, x1, y0);
        geo_add(g, x1, y1);
        geo_add(g, x0, y1);
    } else {
        geo_add(g, x0, y1);
        geo_add(g, x1, y1);
        geo_add(g, x1, y0);
    }
    geo_add(g, x0, y0);
    geo_end_part(g);
    geo_end_poly(g);
    return true;
}

/* ---- geo:json ---- */

static bool gj_pos(const json_t *v, struct geo *g)
{
    /* a third number (altitude) is allowed by GeoJSON and dropped */
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n < 2 || n > 3)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!json_is_number(json_array_get(v, i)))
            return false;
    }
    double lon = json_number_value(json_array_get(v, 0));
    double lat = json_number_value(json_array_get(v, 1));
    return in_range(lon, lat) && geo_add(g, lon, lat);
}

/* an array of positions, ended as one part */
static bool gj_part(const json_t *v, struct geo *g)
{
    if (!json_is_array(v))
        return false;
    size_t i;
    const json_t *p;
    json_array_foreach(v, i, p)
    {
        if (!gj_pos(p, g))
            return false;
    }
    geo_end_part(g);
    return true;
}

static bool gj_poly(const json_t *v, struct geo *g)
{
    if (!json_is_array(v) || json_array_size(v) == 0)
        return false;
    size_t i;
    const json_t *r;
    json_array_foreach(v, i, r)
    {
        if (!gj_part(r, g))
            return false;
    }
    geo_end_poly(g);
    return true;
}

static bool gj_coords(const json_t *c, struct geo *g)
{
    size_t i;
    const json_t *v;
    switch (g->kind) {
    case GK_POINT:
        return gj_pos(c, g);
    case GK_MULTIPOINT:
        if (!json_is_array(c) || json_array_size(c) == 0)
            return false;
        json_array_foreach(c, i, v)
        {
            if (!gj_pos(v, g))
                return false;
        }
        return true;
    case GK_LINE:
        return gj_part(c, g);
    case GK_MULTILINE:
        if (!json_is_array(c) || json_array_size(c) == 0)
            return false;
        json_array_foreach(c, i, v)
        {
            if (!gj_part(v, g))
                return false;
        }
        return true;
    case GK_POLYGON:
        return gj_poly(c, g);
    case GK_MULTIPOLYGON:
        if (!json_is_array(c) || json_array_size(c) == 0)
            return false;
        json_array_foreach(c, i, v)
        {
            if (!gj_poly(v, g))
                return false;
        }
        return true;
    }
    return false;
}

static bool gj_geometry(const json_t *v, struct geo *g, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        enum geo_kind kind;
    } kinds[] = {
        {"Point", GK_POINT},     {"MultiPoint", GK_MULTIPOINT},
        {"LineString", GK_LINE}, {"MultiLineString", GK_MULTILINE},
        {"Polygon", GK_POLYGON}, {"MultiPolygon", GK_MULTIPOLYGON},
    };
    const char *type = json_string_value(json_object_get(v, "type"));
    size_t k = 0;
    while (type && k < ARRAY_SIZE(kinds) && strcmp(type, kinds[k].name) != 0)
        k++;
    if (!type || k == ARRAY_SIZE(kinds)) {
        set_err(err, errlen,
                LOC_PREFIX "geo:json type must be Point, MultiPoint, LineString, MultiLineString, "
                           "Polygon, MultiPolygon, Feature or FeatureCollection");
        return false;
    }
    geo_init(g, kinds[k].kind);
    if (!gj_coords(json_object_get(v, "coordinates"), g)) {
        if (g->toomany)
            set_err(err, errlen, LOC_PREFIX "too many coordinates (at most %d)", XC_GEO_MAX_POINTS);
        else
            set_err(err, errlen,
                    LOC_PREFIX "geo:json coordinates do not make a %s of [longitude, latitude] "
                               "positions (longitude in [-180, 180], latitude in [-90, 90])",
                    kinds[k].name);
        return false;
    }
    enum geo_fail f = geo_check(g);
    if (f != GF_OK) {
        set_err(err, errlen, LOC_PREFIX "geo:json: %s", geo_fail_text(f));
        return false;
    }
    return true;
}

/* Orion's messages for a Feature / FeatureCollection */
static bool gj_value(const json_t *v, struct geo *g, char *err, size_t errlen)
{
    const char *type = json_string_value(json_object_get(v, "type"));
    if (type && strcmp(type, "FeatureCollection") == 0) {
        const json_t *fs = json_object_get(v, "features");
        if (!fs) {
            set_err(err, errlen, LOC_PREFIX "features field not found in FeatureCollection");
            return false;
        }
        if (!json_is_array(fs)) {
            set_err(err, errlen, LOC_PREFIX "features in FeatureCollection is not an array");
            return false;
        }
        if (json_array_size(fs) == 0) {
            set_err(err, errlen, LOC_PREFIX "features in FeatureCollection has 0 items");
            return false;
        }
        if (json_array_size(fs) > 1) {
            set_err(err, errlen, LOC_PREFIX "features in FeatureCollection has more than 1 item");
            return false;
        }
        v = json_array_get(fs, 0);
        type = "Feature";
    }
    if (type && strcmp(type, "Feature") == 0) {
        const json_t *geom = json_object_get(v, "geometry");
        if (!geom) {
            set_err(err, errlen, LOC_PREFIX "geometry in Feature not found");
            return false;
        }
        if (!json_is_object(geom)) {
            set_err(err, errlen, LOC_PREFIX "geometry in Feature is not an object");
            return false;
        }
        v = geom;
    }
    return gj_geometry(v, g, err, errlen);
}

static enum xc_geo_rc attr_parse(const json_t *attr, enum loc_kind k, char **geojson, char *err,
                                 size_t errlen)
{
    const json_t *value = json_object_get(attr, "value");
    struct geo g;
    geo_init(&g, GK_POINT);
    bool ok = false;
    switch (k) {
    case LK_NONE:
        return XC_GEO_NONE;
    case LK_POINT:
    case LK_LEGACY: {
        struct geo_pt p;
        const char *s = json_string_value(value);
        ok = s && parse_latlon(s, json_string_length(value), &p);
        if (ok)
            geo_add(&g, p.lon, p.lat);
        else
            set_err(err, errlen,
                    LOC_PREFIX "geo coordinates format error [see Orion user manual]: %s",
                    s ? s : "");
        break;
    }
    case LK_LINE:
        g.kind = GK_LINE;
        if (!latlon_array(value, &g, err, errlen))
            break;
        geo_end_part(&g);
        if (g.npt < 2) {
            set_err(err, errlen, LOC_PREFIX "geo:line uses at least 2 coordinates");
            break;
        }
        if (geo_check(&g) != GF_OK) {
            set_err(err, errlen, LOC_PREFIX "geo:line uses at least 2 distinct coordinates");
            break;
        }
        ok = true;
        break;
    case LK_BOX:
        if (!latlon_array(value, &g, err, errlen))
            break;
        if (g.npt != 2) {
            set_err(err, errlen, LOC_PREFIX "geo:box uses exactly 2 coordinates");
            break;
        }
        ok = box_from_corners(&g, g.pt[0], g.pt[1], false);
        if (!ok)
            set_err(err, errlen, LOC_PREFIX "geo:box coordinates are not defining an actual box");
        break;
    case LK_POLYGON: {
        g.kind = GK_POLYGON;
        if (!latlon_array(value, &g, err, errlen))
            break;
        geo_end_part(&g);
        geo_end_poly(&g);
        if (g.npt < 4) {
            set_err(err, errlen, LOC_PREFIX "geo:polygon uses at least 4 coordinates");
            break;
        }
        if (!pt_eq(g.pt[0], g.pt[g.npt - 1])) {
            set_err(err, errlen, LOC_PREFIX "geo:polygon first and last coordinates must match");
            break;
        }
        enum geo_fail f = geo_check(&g);
        if (f != GF_OK) {
            set_err(err, errlen, LOC_PREFIX "geo:polygon: %s", geo_fail_text(f));
            break;
        }
        ok = true;
        break;
    }
    case LK_JSON:
        if (!json_is_object(value)) {
            set_err(err, errlen, LOC_PREFIX "geo:json needs an object or null as value");
            break;
        }
        ok = gj_value(value, &g, err, errlen);
        break;
    }
    if (ok)
        *geojson = geo_json(&g);
    geo_release(&g);
    return ok ? XC_GEO_OK : XC_GEO_BAD;
}

enum xc_geo_rc xc_geo_attr_location(const json_t *attr, char **geojson, char *err, size_t errlen)
{
    *geojson = NULL;
    return attr_parse(attr, loc_kind(attr), geojson, err, errlen);
}

enum xc_geo_rc xc_geo_location(const json_t *attrs, char **geojson, char *err, size_t errlen)
{
    *geojson = NULL;
    if (!json_is_object(attrs))
        return XC_GEO_NONE;
    bool found = false;
    const char *name;
    json_t *attr;
    /* in the attributes' order, as Orion: a malformed first location is a
     * 400, any second location a 413 */
    json_object_foreach((json_t *)attrs, name, attr)
    {
        enum loc_kind k = loc_kind(attr);
        if (k == LK_NONE)
            continue;
        if (found) {
            free(*geojson);
            *geojson = NULL;
            set_err(err, errlen,
                    "You cannot use more than one geo location attribute when creating an entity "
                    "[see Orion user manual]");
            return XC_GEO_TOO_MANY;
        }
        if (attr_parse(attr, k, geojson, err, errlen) == XC_GEO_BAD)
            return XC_GEO_BAD;
        found = true;
    }
    return found ? XC_GEO_OK : XC_GEO_NONE;
}

/* ---- geographical queries ---- */

enum georel { GR_NONE, GR_NEAR, GR_COVERED_BY, GR_INTERSECTS, GR_EQUALS, GR_DISJOINT };

static const char *const georel_names[] = {
    [GR_NONE] = "",
    [GR_NEAR] = "near",
    [GR_COVERED_BY] = "coveredBy",
    [GR_INTERSECTS] = "intersects",
    [GR_EQUALS] = "equals",
    [GR_DISJOINT] = "disjoint",
};

enum geometry { GM_NONE, GM_POINT, GM_LINE, GM_BOX, GM_POLYGON };

static const char *const geometry_names[] = {
    [GM_NONE] = "",   [GM_POINT] = "point",     [GM_LINE] = "line",
    [GM_BOX] = "box", [GM_POLYGON] = "polygon",
};

struct query {
    enum georel rel;
    enum geometry shape;
    bool has_max, has_min;
    double max, min;
};

/* the next ';'-separated item of *s, false at the end */
static bool next_item(const char **s, const char **item, size_t *len)
{
    if (!*s)
        return false;
    const char *semi = strchr(*s, ';');
    *item = *s;
    *len = semi ? (size_t)(semi - *s) : strlen(*s);
    *s = semi ? semi + 1 : NULL;
    return true;
}

static bool item_is(const char *item, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(item, word, len) == 0;
}

static const char *parse_geometry(const char *in, struct query *q)
{
    const char *item;
    size_t len;
    while (next_item(&in, &item, &len)) {
        enum geometry g = GM_NONE;
        for (size_t k = GM_POINT; k < ARRAY_SIZE(geometry_names); k++) {
            if (item_is(item, len, geometry_names[k]))
                g = (enum geometry)k;
        }
        if (g == GM_NONE)
            return "error parsing geometry: Invalid selector in geometry specification";
        if (q->shape != GM_NONE)
            return "error parsing geometry: geometry-type present more than once";
        q->shape = g;
    }
    return q->shape == GM_NONE ? "error parsing geometry: empty geometry" : NULL;
}

static const char *parse_distance(const char *s, size_t len, bool *set, double *out,
                                  const char *twice, const char *bad)
{
    if (*set)
        return twice;
    /* negative or absurd distances are refused rather than silently ignored
     * as Orion's MongoDB query does */
    if (!parse_num(s, len, out) || *out < 0 || *out > 1e9)
        return bad;
    *set = true;
    return NULL;
}

static const char *parse_georel(const char *in, struct query *q, char *buf, size_t buflen)
{
    const char *item, *e;
    size_t len;
    while (next_item(&in, &item, &len)) {
        enum georel r = GR_NONE;
        for (size_t k = GR_NEAR; k < ARRAY_SIZE(georel_names); k++) {
            if (item_is(item, len, georel_names[k]))
                r = (enum georel)k;
        }
        if (r != GR_NONE) {
            if (q->rel != GR_NONE)
                return "georel type present more than once";
            q->rel = r;
        } else if (len >= 12 && memcmp(item, "maxDistance:", 12) == 0) {
            e = parse_distance(item + 12, len - 12, &q->has_max, &q->max,
                               "maxDistance present more than once",
                               "invalid number for maxDistance");
            if (e)
                return e;
        } else if (len >= 12 && memcmp(item, "minDistance:", 12) == 0) {
            e = parse_distance(item + 12, len - 12, &q->has_min, &q->min,
                               "minDistance present more than once",
                               "invalid number for minDistance");
            if (e)
                return e;
        } else {
            return "Invalid modifier in georel parameter";
        }
    }
    /* the name echoed is one of ours, never input */
    if (q->has_max && q->rel != GR_NEAR) {
        xsnprintf(buf, buflen, "maxDistance erroneously used with georel /%s/",
                  georel_names[q->rel]);
        return buf;
    }
    if (q->has_min && q->rel != GR_NEAR) {
        xsnprintf(buf, buflen, "minDistance erroneously used with georel /%s/",
                  georel_names[q->rel]);
        return buf;
    }
    if (q->rel == GR_NEAR && !q->has_max && !q->has_min)
        return "georel /near/ without either minDistance nor maxDistance";
    if (q->rel == GR_NONE)
        return "empty georel";
    return NULL;
}

static const char *parse_coords(const char *in, struct geo *g)
{
    if (strlen(in) > XC_GEO_MAX_COORDS_TEXT)
        return "too many coordinates in URI param /coords/";
    const char *item;
    size_t len;
    while (next_item(&in, &item, &len)) {
        const char *comma = memchr(item, ',', len);
        if (!comma || memchr(comma + 1, ',', len - (size_t)(comma - item) - 1))
            return "invalid point in URI param /coords/";
        double lat, lon;
        if (!parse_num(item, (size_t)(comma - item), &lat) ||
            !parse_num(comma + 1, len - (size_t)(comma - item) - 1, &lon) || !in_range(lon, lat))
            return "invalid coordinates";
        if (!geo_add(g, lon, lat))
            return "too many coordinates in URI param /coords/";
    }
    if (g->npt == 0)
        return "erroneous coordinates for geometry";
    return NULL;
}

static const char *query_shape(const struct query *q, struct geo *g)
{
    switch (q->shape) {
    case GM_POINT:
        if (g->npt != 1)
            return "invalid number of coordinates for /point/";
        g->kind = GK_POINT;
        return NULL;
    case GM_LINE:
        if (g->npt < 2)
            return "invalid number of coordinates for /line/";
        g->kind = GK_LINE;
        geo_end_part(g);
        if (geo_check(g) != GF_OK)
            return "a line needs 2 distinct positions";
        return NULL;
    case GM_BOX:
        if (g->npt != 2)
            return "invalid number of coordinates for /box/";
        if (!box_from_corners(g, g->pt[0], g->pt[1], true))
            return "box coordinates are not defining an actual box";
        return NULL;
    case GM_POLYGON: {
        if (g->npt < 4)
            return "Too few coordinates for polygon";
        if (!pt_eq(g->pt[0], g->pt[g->npt - 1]))
            return "First and last point in polygon not the same";
        g->kind = GK_POLYGON;
        geo_end_part(g);
        geo_end_poly(g);
        enum geo_fail f = geo_check(g);
        return f == GF_OK ? NULL : geo_fail_text(f);
    }
    case GM_NONE:
        break;
    }
    return "invalid area-type";
}

/* Appends public.ST_SetSRID(public.ST_GeomFromGeoJSON($g::text), 4326). */
static void add_geom(struct xc_sql *w, const char *ref)
{
    xc_sql_add(w, "public.ST_SetSRID(public.ST_GeomFromGeoJSON(");
    xc_sql_add(w, ref);
    xc_sql_add(w, "::text), 4326)");
}

/* Appends the test "within meters of the point g" on the geography index:
 * the bounding-box && that ST_DWithin's index support would add, written
 * out, then ST_DWithin itself. Under the store's row-level security only
 * LEAKPROOF operators may drive an index scan, and a bounding-box && is one
 * that can be so marked without risk (it never raises an error, unlike the
 * exact predicates, which then stay filters after the tenant check). */
static void add_dwithin(struct xc_sql *w, const char *g, double meters)
{
    char num[32];
    xsnprintf(num, sizeof num, "%.17g", meters);
    const char *m = xc_sql_param_ref(w, num);
    xc_sql_add(w, "(e.geog OPERATOR(public.&&) public._ST_Expand(public.geography(");
    add_geom(w, g);
    xc_sql_add(w, "), ");
    xc_sql_add(w, m);
    /* on the sphere, as Orion's MongoDB measures; the constant goes first so
     * PostGIS builds its search tree once per query, not once per row */
    xc_sql_add(w, "::float8) AND public.ST_DWithin(public.geography(");
    add_geom(w, g);
    xc_sql_add(w, "), e.geog, ");
    xc_sql_add(w, m);
    xc_sql_add(w, "::float8, false))");
}

static void emit(struct xc_sql *w, const struct query *q, const char *gjson, const char **order)
{
    const char *g = xc_sql_param_ref(w, gjson);
    switch (q->rel) {
    case GR_NEAR:
        xc_sql_add(w, "(");
        if (q->has_max)
            add_dwithin(w, g, q->max);
        if (q->has_max && q->has_min)
            xc_sql_add(w, " AND ");
        if (q->has_min && q->min > 0) {
            char num[32];
            xsnprintf(num, sizeof num, "%.17g", q->min);
            xc_sql_add(w, "NOT public.ST_DWithin(public.geography(");
            add_geom(w, g);
            xc_sql_add(w, "), e.geog, ");
            xc_sql_param(w, num);
            xc_sql_add(w, "::float8, false)");
        } else if (q->has_min) {
            /* at least 0 m away: every entity that has a location */
            xc_sql_add(w, "e.geom IS NOT NULL");
        }
        xc_sql_add(w, ")");
        /* <-> on geography is what the GIST index orders by (KNN) */
        *order = core_psprintf(w->pool,
                               "e.geog OPERATOR(public.<->) public.geography("
                               "public.ST_SetSRID(public.ST_GeomFromGeoJSON(%s::text), 4326))",
                               g);
        break;
    case GR_COVERED_BY:
        xc_sql_add(w, "(e.geom OPERATOR(public.@) ");
        add_geom(w, g);
        xc_sql_add(w, " AND public.ST_CoveredBy(e.geom, ");
        add_geom(w, g);
        xc_sql_add(w, "))");
        break;
    case GR_INTERSECTS:
        xc_sql_add(w, "(e.geom OPERATOR(public.&&) ");
        add_geom(w, g);
        xc_sql_add(w, " AND public.ST_Intersects(e.geom, ");
        add_geom(w, g);
        xc_sql_add(w, "))");
        break;
    case GR_EQUALS:
        xc_sql_add(w, "(e.geom OPERATOR(public.~=) ");
        add_geom(w, g);
        xc_sql_add(w, " AND public.ST_Equals(e.geom, ");
        add_geom(w, g);
        xc_sql_add(w, "))");
        break;
    case GR_DISJOINT:
        /* no index helps here; a NULL geom (no location) never matches */
        xc_sql_add(w, "public.ST_Disjoint(e.geom, ");
        add_geom(w, g);
        xc_sql_add(w, ")");
        break;
    case GR_NONE:
        break;
    }
}

static bool given(const char *s)
{
    return s && *s;
}

static bool compile(struct xc_sql *where, const char *georel, const char *geometry,
                    const char *coords, bool *present, const char **order, char *err, size_t errlen,
                    bool expression)
{
    *present = false;
    *order = NULL;
    bool hr = given(georel), hg = given(geometry), hc = given(coords);
    if (!hr && !hg && !hc)
        return true;
    const char *prefix = expression ? "error parsing geo-query fields: " : "Invalid query: ";
    if (expression && !(hr && hg && hc)) {
        set_err(err, errlen,
                "partial geo expression: geometry, georel and coords have to be provided together");
        return false;
    }
    /* Orion's order of complaints for URI parameters */
    if (hc && !hg) {
        set_err(err, errlen, "Invalid query: URI param /coords/ used without /geometry/");
        return false;
    }
    if (hg && !hc) {
        set_err(err, errlen, "Invalid query: URI param /geometry/ used without /coords/");
        return false;
    }
    if (hr && !hg) {
        set_err(err, errlen, "Invalid query: URI param /georel/ used without /geometry/");
        return false;
    }
    if (!hr) {
        /* Orion lets this through and its MongoDB layer then drops the
         * filter; a query that silently returns everything helps nobody */
        set_err(err, errlen, "Invalid query: URI param /geometry/ used without /georel/");
        return false;
    }

    struct query q = {0};
    char buf[96];
    const char *e = parse_geometry(geometry, &q);
    if (!e)
        e = parse_georel(georel, &q, buf, sizeof buf);
    if (!e && q.shape == GM_LINE && q.rel == GR_COVERED_BY)
        e = "line geometry cannot be used with coveredBy georel";
    if (!e && q.shape == GM_POINT && q.rel == GR_COVERED_BY)
        e = "point geometry cannot be used with coveredBy georel";
    if (!e && q.shape != GM_POINT && q.rel == GR_NEAR)
        e = "georel /near/ used with geometry different than point";
    struct geo g;
    geo_init(&g, GK_POINT);
    if (!e)
        e = parse_coords(coords, &g);
    if (!e)
        e = query_shape(&q, &g);
    if (e) {
        set_err(err, errlen, "%s%s", prefix, e);
        geo_release(&g);
        return false;
    }
    char *gjson = geo_json(&g);
    geo_release(&g);
    emit(where, &q, gjson, order);
    free(gjson);
    *present = true;
    return true;
}

bool xc_geo_compile(struct xc_sql *where, const char *georel, const char *geometry,
                    const char *coords, bool *present, const char **order, char *err, size_t errlen)
{
    return compile(where, georel, geometry, coords, present, order, err, errlen, false);
}

bool xc_geo_compile_expression(struct xc_sql *where, const char *georel, const char *geometry,
                               const char *coords, bool *present, const char **order, char *err,
                               size_t errlen)
{
    return compile(where, georel, geometry, coords, present, order, err, errlen, true);
}
