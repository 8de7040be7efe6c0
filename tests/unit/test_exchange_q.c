/*
 * The q/mq compiler without a database: what parses, what is refused and
 * why, the bounds, the shape of the SQL (GIN-indexable containment for
 * equality) and that no piece of the query reaches the SQL text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "exchange/xc_q.h"

struct compiled {
    struct core_pool *pool;
    struct xc_sql sql;
    bool ok;
    char err[256];
};

static void compile(struct compiled *c, const char *q, enum xc_q_kind kind)
{
    c->pool = core_pool_new();
    xc_sql_init(&c->sql, c->pool);
    c->err[0] = 0;
    c->ok = xc_q_compile(&c->sql, q, kind, c->err, sizeof c->err);
}

static void release(struct compiled *c)
{
    xc_sql_release(&c->sql);
    core_pool_free(c->pool);
}

/* q compiles; its SQL text is returned in buf for inspection. */
static void ok_q(const char *q, enum xc_q_kind kind)
{
    struct compiled c;
    compile(&c, q, kind);
    if (!c.ok)
        fail_msg("%s \"%s\" refused: %s", kind == XC_Q_ATTRS ? "q" : "mq", q, c.err);
    assert_true(c.sql.text.len > 2);
    assert_int_equal(c.sql.text.buf[0], '(');
    assert_int_equal(c.sql.text.buf[c.sql.text.len - 1], ')');
    release(&c);
}

/* q is refused, and the description contains want. */
static void bad_q(const char *q, enum xc_q_kind kind, const char *want)
{
    struct compiled c;
    compile(&c, q, kind);
    if (c.ok)
        fail_msg("\"%s\" should be refused (%s), compiled to %s", q, want, c.sql.text.buf);
    if (!strstr(c.err, want))
        fail_msg("\"%s\": error \"%s\" does not say \"%s\"", q, c.err, want);
    release(&c);
}

static void test_operators(void **state)
{
    (void)state;
    const char *good[] = {
        "temperature==40",
        "temperature:40",
        "temperature!=41",
        "temperature>42",
        "temperature<43",
        "temperature>=44",
        "temperature<=45",
        "color~=ow",
        "color~='o;w'",
        "temperature",
        "!temperature",
        " temperature == 40 ",
        "a==true",
        "a==false",
        "a==null",
        "a!=null",
        "a=='20'",
        "a=='light,green','deep,blue'",
        "a=='x..y'",
        "a==",
        "a==1..5",
        "a==-1.5..2e3",
        "a==A..M",
        "a=='A'..'M'",
        "a==2017-01-01..2018-01-01T00:00:00Z",
        "a!=1..5",
        "a==1,2,3",
        "a!=red,green",
        "a==2017-01-01,2018-01-01",
        "tirePressure.frontRight>130",
        "'a.b'.w.'x.y'==3",
        "dateCreated>2017-01-01",
        "dateModified<=1500000000",
        "a==1;b!=2;c;!d",
        "a==1;",
        ";a==1",
        "a>='m'",
        "a<b",
        "a==x:y",
        "a==2017-06-01T12",
        "a==2017-06-01T12:30",
        "a==2017-06-01T1230",
        "a==2017-06-01T12:30:15.123+09:00",
        "a==2017-06-01T123015-0530",
        "a==2017-06-01T12:30:15+09",
        "a==名前",
        "名前==値",
    };
    for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
        if (strcmp(good[i], "a==") == 0)
            continue; /* listed with the refusals below */
        ok_q(good[i], XC_Q_ATTRS);
    }
    const char *mgood[] = {"temp.accuracy<0.9",  "temp.accuracy",
                           "!temp.accuracy",     "temp.dateModified>2017-01-01",
                           "temp.info.level==3", "temp.'a.b'.c~=x"};
    for (size_t i = 0; i < ARRAY_SIZE(mgood); i++)
        ok_q(mgood[i], XC_Q_METADATA);
}

static void test_refused(void **state)
{
    (void)state;
    bad_q("", XC_Q_ATTRS, "empty q");
    bad_q(NULL, XC_Q_ATTRS, "empty q");
    bad_q(";", XC_Q_ATTRS, "empty q");
    bad_q("   ", XC_Q_ATTRS, "empty q");
    bad_q("a==1;;b==2", XC_Q_ATTRS, "empty q-item");
    /* Orion's forbidden characters in values, not in patterns */
    bad_q("a==b=c", XC_Q_ATTRS, "forbidden characters in String Filter");
    bad_q("color==a<b", XC_Q_ATTRS, "forbidden characters in String Filter");
    bad_q("t>>3", XC_Q_ATTRS, "forbidden characters in String Filter");
    bad_q("a.b=='x(y)'", XC_Q_METADATA, "forbidden characters in String Filter");
    bad_q("a==\"x", XC_Q_ATTRS, "forbidden characters in String Filter");
    ok_q("a~=^(x|y)$", XC_Q_ATTRS);
    bad_q("a==1; ;b==2", XC_Q_ATTRS, "empty q-item");
    bad_q("a==1;;", XC_Q_ATTRS, "empty q-item");
    bad_q("a==", XC_Q_ATTRS, "empty right-hand-side");
    bad_q("a!=  ", XC_Q_ATTRS, "empty right-hand-side");
    bad_q("a~=", XC_Q_ATTRS, "empty right-hand-side");
    bad_q("==1", XC_Q_ATTRS, "empty left-hand-side");
    bad_q("!", XC_Q_ATTRS, "empty left-hand-side");
    bad_q("a=1", XC_Q_ATTRS, "invalid character");
    bad_q("!a==1", XC_Q_ATTRS, "invalid character");
    bad_q("a(b)==1", XC_Q_ATTRS, "invalid character");
    bad_q("a\"==1", XC_Q_ATTRS, "invalid character");
    bad_q("a\x01==1", XC_Q_ATTRS, "invalid character");
    bad_q("a=1", XC_Q_METADATA, "/mq/");
    bad_q("a..b==1", XC_Q_ATTRS, "empty attribute name");
    bad_q(".a==1", XC_Q_ATTRS, "empty attribute name");
    bad_q("a.==1", XC_Q_ATTRS, "empty attribute name");
    bad_q("''==1", XC_Q_ATTRS, "empty attribute name");
    bad_q("'a==1", XC_Q_ATTRS, "non-terminated");
    bad_q("a=='x", XC_Q_ATTRS, "non-terminated");
    bad_q("a=='x'y'", XC_Q_ATTRS, "non-terminated");
    bad_q("a=='x''y'", XC_Q_ATTRS, "quote in forced string");
    bad_q("a==x'y'", XC_Q_ATTRS, "quote");
    bad_q("a>1..5", XC_Q_ATTRS, "ranges only valid for equal and not equal ops");
    bad_q("a~=1,2", XC_Q_METADATA, "no metadata");
    bad_q("a<1,2", XC_Q_ATTRS, "lists only valid for equal and not equal ops");
    bad_q("a==1..", XC_Q_ATTRS, "empty item in range");
    bad_q("a==..5", XC_Q_ATTRS, "empty item in range");
    bad_q("a==1..b", XC_Q_ATTRS, "types mixed");
    bad_q("a==1..2017-01-01", XC_Q_ATTRS, "types mixed");
    bad_q("a==true..false", XC_Q_ATTRS, "invalid data type for /range-from/");
    bad_q("a==1..null", XC_Q_ATTRS, "invalid data type for /range-to/");
    bad_q("a==1..2,3", XC_Q_ATTRS, "invalid range");
    bad_q("a==1,", XC_Q_ATTRS, "empty item in list");
    bad_q("a==,1", XC_Q_ATTRS, "empty item in list");
    bad_q("a==1,,2", XC_Q_ATTRS, "empty item in list");
    bad_q("a==1,b", XC_Q_ATTRS, "invalid JSON value type in list");
    bad_q("a==true,false", XC_Q_ATTRS, "invalid JSON value type in list");
    bad_q("a==null,1", XC_Q_ATTRS, "invalid JSON value type in list");
    bad_q("a==1,2017-01-01", XC_Q_ATTRS, "invalid JSON value type in list");
    bad_q("a>true", XC_Q_ATTRS, "values of type /Bool/ not supported for operator /GreaterThan/");
    bad_q("a<=null", XC_Q_ATTRS, "/Null/ not supported for operator /LessThanOrEqual/");
    bad_q("a~=[a", XC_Q_ATTRS, "brackets");
    bad_q("a~=(a", XC_Q_ATTRS, "parentheses");
    bad_q("a~=a)", XC_Q_ATTRS, "parentheses");
    bad_q("a~=*a", XC_Q_ATTRS, "quantifier");
    bad_q("a~=a**", XC_Q_ATTRS, "quantifier");
    bad_q("a~=a+?", XC_Q_ATTRS, "quantifier");
    bad_q("a~=x|*b", XC_Q_ATTRS, "quantifier");
    bad_q("a~=^*", XC_Q_ATTRS, "quantifier");
    bad_q("a~=a{2}{3}", XC_Q_ATTRS, "quantifier");
    bad_q("a~=a{1,300}", XC_Q_ATTRS, "repetition");
    bad_q("a~=a{256}", XC_Q_ATTRS, "repetition");
    bad_q("a~=a{2,1}", XC_Q_ATTRS, "repetition");
    bad_q("a~=a{1,2,3}", XC_Q_ATTRS, "repetition");
    bad_q("a~=a{x}", XC_Q_ATTRS, "repetition");
    bad_q("a~=(?i)x", XC_Q_ATTRS, "(?");
    bad_q("a~=x\\", XC_Q_ATTRS, "escape");
    bad_q("a~=[[:foo:]]", XC_Q_ATTRS, "character class");
    bad_q("a~=[z-a]", XC_Q_ATTRS, "character range");
    bad_q("a~=[[:alpha:]-z]", XC_Q_ATTRS, "character range");
    bad_q("a~=[a-c-e]", XC_Q_ATTRS, "character range");
    bad_q("a~=[[.a.]]", XC_Q_ATTRS, "collating");
    bad_q("a~=(.{1,255}){1,255}", XC_Q_ATTRS, "too complex");
    bad_q("a~=((a{255}){255}){255}", XC_Q_ATTRS, "too complex");
    /* mq needs a metadata name */
    bad_q("temp", XC_Q_METADATA, "no metadata");
    bad_q("!temp", XC_Q_METADATA, "no metadata");
    bad_q("temp<3", XC_Q_METADATA, "no metadata");
    /* not UTF-8 */
    bad_q("a==\xff", XC_Q_ATTRS, "UTF-8");
    bad_q("a==\xc3", XC_Q_ATTRS, "UTF-8");
    bad_q("a==\xed\xa0\x80", XC_Q_ATTRS, "UTF-8");
    bad_q("a==\xc0\xaf", XC_Q_ATTRS, "UTF-8");
}

static char *repeat(const char *piece, size_t times, const char *sep)
{
    struct strbuf sb;
    strbuf_init(&sb, 1 << 20);
    for (size_t i = 0; i < times; i++) {
        if (i)
            strbuf_adds(&sb, sep);
        strbuf_adds(&sb, piece);
    }
    return strbuf_detach(&sb, NULL);
}

static void test_bounds(void **state)
{
    (void)state;
    /* statements: 64 fine (with a trailing ';' too), 65 not */
    char *q = repeat("a==1", XC_Q_MAX_STATEMENTS, ";");
    ok_q(q, XC_Q_ATTRS);
    char *q2 = xasprintf("%s;", q);
    ok_q(q2, XC_Q_ATTRS);
    free(q2);
    q2 = xasprintf("%s;b", q);
    bad_q(q2, XC_Q_ATTRS, "too many statements");
    free(q2);
    free(q);

    /* list items: 100 fine, 101 not */
    char *items = repeat("7", XC_Q_MAX_LIST, ",");
    q = xasprintf("a==%s", items);
    ok_q(q, XC_Q_ATTRS);
    free(q);
    q = xasprintf("a!=%s,8", items);
    bad_q(q, XC_Q_ATTRS, "too many items in list");
    free(q);
    free(items);

    /* path depth: 16 tokens fine, 17 not */
    char *path = repeat("p", XC_Q_MAX_DEPTH, ".");
    q = xasprintf("%s==1", path);
    ok_q(q, XC_Q_ATTRS);
    ok_q(q, XC_Q_METADATA);
    free(q);
    q = xasprintf("%s.p==1", path);
    bad_q(q, XC_Q_ATTRS, "too deep");
    free(q);
    free(path);

    /* a name of 256 bytes, then 257 */
    char name[XC_Q_MAX_NAME + 2];
    memset(name, 'n', sizeof name - 1);
    name[XC_Q_MAX_NAME] = 0;
    q = xasprintf("%s>1", name);
    ok_q(q, XC_Q_ATTRS);
    free(q);
    name[XC_Q_MAX_NAME] = 'n';
    name[XC_Q_MAX_NAME + 1] = 0;
    q = xasprintf("%s>1", name);
    bad_q(q, XC_Q_ATTRS, "too long");
    free(q);

    /* a pattern of 256 bytes, then 257 */
    char re[XC_Q_MAX_REGEX + 2];
    memset(re, 'r', sizeof re - 1);
    re[XC_Q_MAX_REGEX] = 0;
    q = xasprintf("a~=%s", re);
    ok_q(q, XC_Q_ATTRS);
    free(q);
    re[XC_Q_MAX_REGEX] = 'r';
    re[XC_Q_MAX_REGEX + 1] = 0;
    q = xasprintf("a~=%s", re);
    bad_q(q, XC_Q_ATTRS, "pattern too long");
    free(q);

    /* the whole q: 8192 bytes fine, 8193 not */
    char *big = xmalloc(XC_Q_MAX_LEN + 2);
    memset(big, 'x', XC_Q_MAX_LEN + 1);
    memcpy(big, "a==", 3);
    big[XC_Q_MAX_LEN] = 0;
    ok_q(big, XC_Q_ATTRS);
    big[XC_Q_MAX_LEN] = 'x';
    big[XC_Q_MAX_LEN + 1] = 0;
    bad_q(big, XC_Q_ATTRS, "q too long");
    free(big);

    /* within every bound, but past the statement's parameter budget */
    items = repeat("7", XC_Q_MAX_LIST, ",");
    char *one = xasprintf("a==%s", items);
    q = repeat(one, 4, ";");
    bad_q(q, XC_Q_ATTRS, "too complex");
    free(q);
    free(one);
    free(items);
}

/* The SQL and its parameters for one q. */
static void shape(const char *q, enum xc_q_kind kind, const char *sql, int nparams,
                  const char *const *params)
{
    struct compiled c;
    compile(&c, q, kind);
    if (!c.ok)
        fail_msg("\"%s\" refused: %s", q, c.err);
    if (strcmp(c.sql.text.buf, sql) != 0)
        fail_msg("\"%s\"\n compiled to %s\n expected    %s", q, c.sql.text.buf, sql);
    assert_int_equal(c.sql.nparams, nparams);
    for (int i = 0; i < nparams && params; i++)
        if (params[i])
            assert_string_equal(c.sql.params[i], params[i]);
    release(&c);
}

static void test_sql_shape(void **state)
{
    (void)state;
    /* equality: containment, scalar or inside an array, which GIN answers */
    shape(
        "temperature==40", XC_Q_ATTRS, "((e.attrs @> $1::jsonb OR e.attrs @> $2::jsonb))", 2,
        (const char *[]){"{\"temperature\":{\"value\":40}}", "{\"temperature\":{\"value\":[40]}}"});
    shape("temperature:+040.50", XC_Q_ATTRS, "((e.attrs @> $1::jsonb OR e.attrs @> $2::jsonb))", 2,
          (const char *[]){"{\"temperature\":{\"value\":40.50}}", NULL});
    shape("a==.5e3", XC_Q_ATTRS, "((e.attrs @> $1::jsonb OR e.attrs @> $2::jsonb))", 2,
          (const char *[]){"{\"a\":{\"value\":0.5e3}}", NULL});
    shape("a=='20'", XC_Q_ATTRS, "((e.attrs @> $1::jsonb OR e.attrs @> $2::jsonb))", 2,
          (const char *[]){"{\"a\":{\"value\":\"20\"}}", NULL});
    shape("a==x\\y", XC_Q_ATTRS, "((e.attrs @> $1::jsonb OR e.attrs @> $2::jsonb))", 2,
          (const char *[]){"{\"a\":{\"value\":\"x\\\\y\"}}", NULL});
    shape("a==true", XC_Q_ATTRS, "((e.attrs @> $1::jsonb OR e.attrs @> $2::jsonb))", 2,
          (const char *[]){"{\"a\":{\"value\":true}}", NULL});
    shape("a==null", XC_Q_ATTRS, "((e.attrs @> $1::jsonb OR e.attrs @> $2::jsonb))", 2,
          (const char *[]){"{\"a\":{\"value\":null}}", NULL});
    shape("tire.front.'x.y'==1", XC_Q_ATTRS, "((e.attrs @> $1::jsonb OR e.attrs @> $2::jsonb))", 2,
          (const char *[]){"{\"tire\":{\"value\":{\"front\":{\"x.y\":1}}}}",
                           "{\"tire\":{\"value\":{\"front\":{\"x.y\":[1]}}}}"});
    shape("temp.accuracy==0.9", XC_Q_METADATA, "((e.attrs @> $1::jsonb OR e.attrs @> $2::jsonb))",
          2, (const char *[]){"{\"temp\":{\"metadata\":{\"accuracy\":{\"value\":0.9}}}}", NULL});
    shape("color==red,'a,b'", XC_Q_ATTRS,
          "((e.attrs @> $1::jsonb OR e.attrs @> $2::jsonb OR e.attrs @> $3::jsonb OR e.attrs @> "
          "$4::jsonb))",
          4, (const char *[]){NULL, NULL, "{\"color\":{\"value\":\"a,b\"}}", NULL});
    /* existence: the GIN key test */
    shape("temperature", XC_Q_ATTRS, "((e.attrs ? $1::text))", 1, (const char *[]){"temperature"});
    shape("!temperature", XC_Q_ATTRS, "((NOT e.attrs ? $1::text))", 1, NULL);
    /* comparisons */
    shape("a>5", XC_Q_ATTRS,
          "((e.attrs ? $1::text AND renkei.ngsi_num((e.attrs -> $1::text -> 'value')) > "
          "$2::numeric))",
          2, (const char *[]){"a", "5"});
    shape("a<m", XC_Q_ATTRS,
          "((e.attrs ? $1::text AND jsonb_typeof((e.attrs -> $1::text -> 'value')) = 'string' "
          "AND ((e.attrs -> $1::text -> 'value') #>> '{}') COLLATE \"C\" < $2::text))",
          2, (const char *[]){"a", "m"});
    shape("a>=2017-06-01", XC_Q_ATTRS,
          "((e.attrs ? $1::text AND ((e.attrs -> $1::text) ->> 'type') IN ('DateTime', "
          "'ISO8601') AND renkei.ngsi_time((e.attrs -> $1::text -> 'value')) >= "
          "$2::timestamptz))",
          2, (const char *[]){"a", "2017-06-01T00:00:00+00:00"});
    shape("dateModified>2017-06-01T10:00:00.5-05:30", XC_Q_ATTRS,
          "((e.modified_at > $1::timestamptz))", 1,
          (const char *[]){"2017-06-01T10:00:00.5-05:30"});
    shape("dateCreated<1500000000", XC_Q_ATTRS,
          "((extract(epoch FROM e.created_at) < $1::numeric))", 1, NULL);
    shape("dateCreated==abc", XC_Q_ATTRS, "(FALSE)", 0, NULL);
    shape("a!=1", XC_Q_ATTRS,
          "((e.attrs ? $1::text AND NOT coalesce((e.attrs @> $2::jsonb OR e.attrs @> "
          "$3::jsonb), FALSE)))",
          3, NULL);
    shape("a~=^x.*y$", XC_Q_ATTRS,
          "((e.attrs ? $1::text AND jsonb_typeof((e.attrs -> $1::text -> 'value')) = 'string' "
          "AND ((e.attrs -> $1::text -> 'value') #>> '{}') COLLATE \"C\" ~ ('(?e)' || "
          "$2::text)))",
          2, (const char *[]){"a", "^x.*y$"});
    shape("a;b", XC_Q_ATTRS, "((e.attrs ? $1::text) AND (e.attrs ? $2::text))", 2, NULL);
}

/* Whatever the query holds, it reaches PostgreSQL as parameters only. */
static void test_no_input_in_sql(void **state)
{
    (void)state;
    const char *nasty[] = {
        "x'); DROP TABLE t; --==1",
        "zz$1==1",
        "a==zz') OR TRUE --",
        "a>zz' OR '1'='1",
        "a~=zz.*",
        "zz.'yy'==1",
        "a==zz1..zz2",
        "a!=zz1,zz2",
        "zzdoc.zzmd<3",
    };
    for (size_t i = 0; i < ARRAY_SIZE(nasty); i++) {
        for (int kind = 0; kind < 2; kind++) {
            struct compiled c;
            compile(&c, nasty[i], (enum xc_q_kind)kind);
            if (c.ok) {
                if (strstr(c.sql.text.buf, "zz") || strstr(c.sql.text.buf, "DROP"))
                    fail_msg("\"%s\" leaked into %s", nasty[i], c.sql.text.buf);
                for (int p = 0; p < c.sql.nparams; p++)
                    assert_non_null(c.sql.params[p]);
            }
            release(&c);
        }
    }
}

static void test_values(void **state)
{
    (void)state;
    /* what an unquoted value is: number, else date, else boolean/null, else string */
    struct {
        const char *q;
        const char *param; /* the containment document's value */
    } cases[] = {
        {"a==20", "20"},
        {"a==-0", "-0"},
        {"a==1e5", "1e5"},
        {"a==1E-5", "1e-5"},
        {"a==007", "7"},
        {"a==5.", "5"},
        {"a==1e999", "\"1e999\""}, /* out of double range: a string, as Orion */
        {"a==0x10", "\"0x10\""},
        {"a==inf", "\"inf\""},
        {"a==nan", "\"nan\""},
        {"a=='true'", "\"true\""},
        {"a==True", "\"True\""},
        {"a==''", "\"\""},
        {"a==2017-13-01", "\"2017-13-01\""}, /* no such month: a string */
        {"a==2017-02-29", "\"2017-02-29\""},
        {"a==2016-02-29T25:00", "\"2016-02-29T25:00\""},
        {"a==2017-01-01Z", "\"2017-01-01Z\""},
        {"a==1.2.3", "\"1.2.3\""},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct compiled c;
        compile(&c, cases[i].q, XC_Q_ATTRS);
        assert_true(c.ok);
        char *want = xasprintf("{\"a\":{\"value\":%s}}", cases[i].param);
        if (c.sql.nparams < 1 || strcmp(c.sql.params[0], want) != 0)
            fail_msg("%s: got %s, expected %s", cases[i].q,
                     c.sql.nparams ? c.sql.params[0] : "(none)", want);
        free(want);
        release(&c);
    }
    /* dates become timestamptz input with an explicit zone */
    struct {
        const char *q;
        const char *param;
    } dates[] = {
        {"a==2016-02-29", "2016-02-29T00:00:00+00:00"},
        {"a==2017-06-01T12", "2017-06-01T12:00:00+00:00"},
        {"a==2017-06-01T1230", "2017-06-01T12:30:00+00:00"},
        {"a==2017-06-01T123015.25Z", "2017-06-01T12:30:15.25+00:00"},
        {"a==2017-06-01T12:30:15+0900", "2017-06-01T12:30:15+09:00"},
        {"a==2017-06-01T12:30-03", "2017-06-01T12:30:00-03:00"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(dates); i++) {
        struct compiled c;
        compile(&c, dates[i].q, XC_Q_ATTRS);
        assert_true(c.ok);
        assert_int_equal(c.sql.nparams, 2);
        assert_string_equal(c.sql.params[1], dates[i].param);
        release(&c);
    }
}

static void test_attrs(void **state)
{
    (void)state;
    struct core_pool *pool = core_pool_new();
    const char **names;
    size_t n;
    char err[128];
    assert_true(xc_q_attrs(pool, "a==1;b.c>2;!d;a<5;dateCreated>2017-01-01;'e.f'~=x", XC_Q_ATTRS,
                           &names, &n, err, sizeof err));
    assert_int_equal(n, 4);
    assert_string_equal(names[0], "a");
    assert_string_equal(names[1], "b");
    assert_string_equal(names[2], "d");
    assert_string_equal(names[3], "e.f");
    assert_true(xc_q_attrs(pool, "temp.accuracy<0.9;temp.dateModified>2017-01-01;hum.unit",
                           XC_Q_METADATA, &names, &n, err, sizeof err));
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "temp");
    assert_string_equal(names[1], "hum");
    assert_false(xc_q_attrs(pool, "a==", XC_Q_ATTRS, &names, &n, err, sizeof err));
    assert_non_null(strstr(err, "empty right-hand-side"));
    core_pool_free(pool);
}

static void test_regex_ok(void **state)
{
    (void)state;
    char err[128];
    const char *good[] = {"ow",    "^b.*k$", "(a|b)+c", "[[:alpha:]]+",  "[]a]",
                          "[^]a]", "[a-]",   "a{0}",    "a{1,255}",      "(ab{1,100}){1,100}",
                          "x\\.y", "[\\d]",  "é.",      "a||b",          "()",
                          "a{3,}", "\\(",    "}",       "[a-z0-9_]{2,8}"};
    for (size_t i = 0; i < ARRAY_SIZE(good); i++)
        if (!xc_q_regex_ok(good[i], err, sizeof err))
            fail_msg("pattern %s refused: %s", good[i], err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operators),       cmocka_unit_test(test_refused),
        cmocka_unit_test(test_bounds),          cmocka_unit_test(test_sql_shape),
        cmocka_unit_test(test_no_input_in_sql), cmocka_unit_test(test_values),
        cmocka_unit_test(test_attrs),           cmocka_unit_test(test_regex_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
