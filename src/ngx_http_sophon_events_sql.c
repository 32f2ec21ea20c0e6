
/*
 * ngx_http_sophon_events_module: the statements, built from the filter set.
 *
 * The text of a statement depends only on which filters are present, never
 * on their values: those are always bound parameters ($n), lists included
 * (one array parameter each).  So a connection prepares each shape once and
 * at most 2^NFILTERS shapes exist.
 *
 * Two statements answer a request, executed in one REPEATABLE READ
 * transaction so that the total and the page see the same snapshot.
 *
 * The total ($1: top_k or NULL, then the filters):
 *
 *   SELECT count(*) FROM (SELECT 1 FROM sophon_events
 *   WHERE <filters> LIMIT $1) m
 *
 * or, when the filters are only a time window, cameras and person types,
 * the counts that sql/schema.sql keeps with the events:
 *
 *   SELECT LEAST(sophon_events_total(<gte>, <lte>, <streams>, <types>), $1)
 *
 * The page ($1: limit, $2: offset, then the filters) finds its ids first:
 * skipping OFFSET rows then walks an index alone, and only the rows of the
 * page visit the heap (page 10,000 of 200,000 events: 16 ms instead of
 * 64 ms here); the join keeps the order, so the outer ORDER BY is free:
 *
 *   SELECT e.doc FROM (SELECT id, ts FROM sophon_events WHERE <filters>
 *   ORDER BY ts DESC, id DESC LIMIT $1 OFFSET $2) p
 *   JOIN sophon_events e ON e.id = p.id ORDER BY p.ts DESC, p.id DESC
 *
 * When the total is cheap, a page in the second half of the match set is
 * read from the other end, oldest first, so that the last page costs what
 * the first does; a one-time filter runs only one of the two branches.
 */


#include "ngx_http_sophon_events_sql.h"


#define NGX_HTTP_SOPHON_EVENTS_INT_LEN  NGX_INT64_LEN + 1

#define ngx_http_sophon_events_bit(f)   ((ngx_uint_t) 1 << (f))

/* the filters that sophon_events_total() counts without counting rows */
#define NGX_HTTP_SOPHON_EVENTS_COUNTED                                        \
    (ngx_http_sophon_events_bit(NGX_HTTP_SOPHON_EVENTS_DATETIME_GTE)          \
     | ngx_http_sophon_events_bit(NGX_HTTP_SOPHON_EVENTS_DATETIME_LTE)        \
     | ngx_http_sophon_events_bit(NGX_HTTP_SOPHON_EVENTS_STREAMS)             \
     | ngx_http_sophon_events_bit(NGX_HTTP_SOPHON_EVENTS_USER_TYPE))


static u_char *ngx_http_sophon_events_sql_conditions(u_char *p, u_char *last,
    ngx_uint_t shape, ngx_uint_t first);
static u_char *ngx_http_sophon_events_sql_total(u_char *p, u_char *last,
    ngx_uint_t shape, ngx_uint_t first);
static ngx_uint_t ngx_http_sophon_events_sql_param(ngx_uint_t shape,
    ngx_uint_t filter, ngx_uint_t first);


/* each filter's condition; "%ui" is its parameter's number */
static char  *ngx_http_sophon_events_conditions[] = {
    " AND ts >= $%ui::float8",                    /* datetime_gte */
    " AND ts <= $%ui::float8",                    /* datetime_lte */
    " AND identity_name ILIKE $%ui",              /* name */
    " AND identity_id = $%ui",                    /* identity_id */
    " AND score >= $%ui::float8",                 /* score_min */
    " AND score <= $%ui::float8",                 /* score_max */
    " AND person_type = ANY ($%ui::int2[])",      /* userType */
    " AND room = $%ui",                           /* room */
    " AND group_id = ANY ($%ui::text[])",         /* groups */
    " AND device_id = ANY ($%ui::text[])"         /* streams */
};


/* sophon_events_total()'s arguments, in its order, and their types */
static ngx_uint_t  ngx_http_sophon_events_total_args[] = {
    NGX_HTTP_SOPHON_EVENTS_DATETIME_GTE,
    NGX_HTTP_SOPHON_EVENTS_DATETIME_LTE,
    NGX_HTTP_SOPHON_EVENTS_STREAMS,
    NGX_HTTP_SOPHON_EVENTS_USER_TYPE
};

static char  *ngx_http_sophon_events_total_types[] = {
    "float8", "float8", "text[]", "int2[]"
};


ngx_uint_t
ngx_http_sophon_events_sql_shape(ngx_http_sophon_events_query_args_t *args)
{
    ngx_uint_t  i, shape;

    shape = 0;

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_NFILTERS; i++) {
        if (args->filter[i].data != NULL) {
            shape |= ngx_http_sophon_events_bit(i);
        }
    }

    return shape;
}


ngx_int_t
ngx_http_sophon_events_sql_text(ngx_pool_t *pool,
    ngx_http_sophon_events_stmt_e which, ngx_uint_t shape, ngx_str_t *text)
{
    u_char      *p, *last;
    size_t       len;
    ngx_uint_t   counted;

    counted = (shape & ~NGX_HTTP_SOPHON_EVENTS_COUNTED) == 0;

    len = 2048;

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    text->data = p;
    last = p + len - 1;

    if (which == NGX_HTTP_SOPHON_EVENTS_COUNT && counted) {
        p = ngx_slprintf(p, last, "SELECT LEAST(");
        p = ngx_http_sophon_events_sql_total(p, last, shape, 2);
        p = ngx_slprintf(p, last, ", $1::int8)");

    } else if (which == NGX_HTTP_SOPHON_EVENTS_COUNT) {
        p = ngx_slprintf(p, last,
                         "SELECT count(*) FROM (SELECT 1 FROM sophon_events "
                         "WHERE true");
        p = ngx_http_sophon_events_sql_conditions(p, last, shape, 2);
        p = ngx_slprintf(p, last, " LIMIT $1::int8) m");

    } else if (!counted) {
        p = ngx_slprintf(p, last,
                         "SELECT e.doc FROM (SELECT id, ts FROM sophon_events "
                         "WHERE true");
        p = ngx_http_sophon_events_sql_conditions(p, last, shape, 3);
        p = ngx_slprintf(p, last,
                         " ORDER BY ts DESC, id DESC"
                         " LIMIT $1::int8 OFFSET $2::int8) p"
                         " JOIN sophon_events e ON e.id = p.id"
                         " ORDER BY p.ts DESC, p.id DESC");

    } else {
        p = ngx_slprintf(p, last, "WITH t AS (SELECT ");
        p = ngx_http_sophon_events_sql_total(p, last, shape, 3);
        p = ngx_slprintf(p, last,
                         " AS n) SELECT e.doc FROM ("
                         "SELECT id, ts FROM (SELECT id, ts FROM sophon_events"
                         " WHERE true");
        p = ngx_http_sophon_events_sql_conditions(p, last, shape, 3);
        p = ngx_slprintf(p, last,
                         " ORDER BY ts DESC, id DESC"
                         " LIMIT $1::int8 OFFSET $2::int8) f"
                         " WHERE $2::int8 <= (SELECT n FROM t) / 2"
                         " UNION ALL "
                         "SELECT id, ts FROM (SELECT id, ts FROM sophon_events"
                         " WHERE true");
        p = ngx_http_sophon_events_sql_conditions(p, last, shape, 3);
        p = ngx_slprintf(p, last,
                         " ORDER BY ts, id"
                         " LIMIT greatest(least($1::int8,"
                         " (SELECT n FROM t) - $2::int8), 0)"
                         " OFFSET greatest((SELECT n FROM t) - $2::int8"
                         " - $1::int8, 0)) b"
                         " WHERE $2::int8 > (SELECT n FROM t) / 2"
                         " LIMIT $1::int8) p"
                         " JOIN sophon_events e ON e.id = p.id"
                         " ORDER BY p.ts DESC, p.id DESC");
    }

    if (p == last) {
        /* cannot happen with these texts: refuse rather than cut one */
        return NGX_ERROR;
    }

    *p = '\0';
    text->len = p - text->data;

    return NGX_OK;
}


static u_char *
ngx_http_sophon_events_sql_conditions(u_char *p, u_char *last,
    ngx_uint_t shape, ngx_uint_t first)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_NFILTERS; i++) {
        if (shape & ngx_http_sophon_events_bit(i)) {
            p = ngx_slprintf(p, last, ngx_http_sophon_events_conditions[i],
                             ngx_http_sophon_events_sql_param(shape, i,
                                                              first));
        }
    }

    return p;
}


static u_char *
ngx_http_sophon_events_sql_total(u_char *p, u_char *last, ngx_uint_t shape,
    ngx_uint_t first)
{
    ngx_uint_t  i, filter;

    p = ngx_slprintf(p, last, "sophon_events_total(");

    for (i = 0; i < 4; i++) {
        filter = ngx_http_sophon_events_total_args[i];

        if (i) {
            p = ngx_slprintf(p, last, ", ");
        }

        if (shape & ngx_http_sophon_events_bit(filter)) {
            p = ngx_slprintf(p, last, "$%ui::%s",
                             ngx_http_sophon_events_sql_param(shape, filter,
                                                              first),
                             ngx_http_sophon_events_total_types[i]);

        } else {
            p = ngx_slprintf(p, last, "NULL");
        }
    }

    return ngx_slprintf(p, last, ")");
}


/* parameters follow the filters' order: count the present ones before */

static ngx_uint_t
ngx_http_sophon_events_sql_param(ngx_uint_t shape, ngx_uint_t filter,
    ngx_uint_t first)
{
    ngx_uint_t  i, n;

    n = first;

    for (i = 0; i < filter; i++) {
        if (shape & ngx_http_sophon_events_bit(i)) {
            n++;
        }
    }

    return n;
}


ngx_int_t
ngx_http_sophon_events_sql_stmt(ngx_pool_t *pool,
    ngx_http_sophon_events_stmt_e which,
    ngx_http_sophon_events_query_args_t *args,
    ngx_http_sophon_events_stmt_t *stmt)
{
    u_char      *p;
    int64_t      offset, limit;
    ngx_str_t   *value;
    ngx_uint_t   i, shape;

    shape = ngx_http_sophon_events_sql_shape(args);

    (void) ngx_sprintf((u_char *) stmt->name, "sophon_events_%c_%04xi%Z",
                       which == NGX_HTTP_SOPHON_EVENTS_COUNT ? 'c' : 'p',
                       shape);

    stmt->nparams = 0;

    if (which == NGX_HTTP_SOPHON_EVENTS_COUNT) {
        /* LIMIT NULL is no limit at all */
        limit = args->top_k ? (int64_t) args->top_k : -1;
        offset = -1;

    } else {
        offset = (int64_t) args->page * (int64_t) args->per_page;
        limit = args->per_page;

        /* only the first top_k events of the match set exist */

        if (args->top_k) {
            limit = ngx_min(limit, (int64_t) args->top_k - offset);
            limit = ngx_max(limit, 0);
        }
    }

    p = ngx_pnalloc(pool, 2 * NGX_HTTP_SOPHON_EVENTS_INT_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (limit < 0) {
        stmt->values[stmt->nparams++] = NULL;

    } else {
        stmt->values[stmt->nparams++] = (char *) p;
        p = ngx_sprintf(p, "%L%Z", limit);
    }

    if (offset >= 0) {
        stmt->values[stmt->nparams++] = (char *) p;
        (void) ngx_sprintf(p, "%L%Z", offset);
    }

    /* the same order as the conditions of ngx_http_sophon_events_sql_text */

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_NFILTERS; i++) {
        value = &args->filter[i];

        if (value->data == NULL) {
            continue;
        }

        p = ngx_pnalloc(pool, value->len + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        (void) ngx_cpystrn(p, value->data, value->len + 1);
        stmt->values[stmt->nparams++] = (char *) p;
    }

    return NGX_OK;
}
