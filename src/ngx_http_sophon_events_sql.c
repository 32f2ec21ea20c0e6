
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: the statement, built from the filter set.
 *
 * Its text depends only on which filters are present, on whether the
 * documents are wanted at all (HEAD) and on after=, never on the values:
 * those are always bound parameters, lists included (one array parameter
 * each).  So a connection prepares each shape once, and at most
 * 2^(NFILTERS + 2) shapes exist.  with_feature=0 is not the database's
 * business: the documents are sent as they are stored, and feature.c cuts
 * the vector out of each on its way to the client.  Parameters: $1 the
 * page's limit, $2 its offset, $3 top_k (NULL: none), all three int8, then
 * the filters present, in the filters' order.
 *
 * One statement answers a request, so the total and the page read one
 * snapshot.  Each row is (total, doc); a page past the end is one row with
 * a NULL doc, so the total always arrives:
 *
 *   WITH t AS MATERIALIZED (SELECT <total> AS n)
 *   SELECT least(t.n, $3), p.doc FROM t LEFT JOIN LATERAL (
 *       SELECT e.doc FROM (<the page's ids>) p
 *       JOIN sophon_events e ON e.id = p.id
 *       ORDER BY p.ts DESC, p.id DESC) p ON true
 *
 * The total is sophon_events_total() when the filters are only a time
 * window, cameras and person types: the counts that sql/schema.sql keeps
 * with the events; without a window, the sum of the totals per camera and
 * person type that match.  When they are only name= and identity_id, it
 * is the sum of the counts per identity that match:
 *
 *   (SELECT coalesce(sum(n), 0) FROM sophon_event_identities
 *    WHERE identity_name ILIKE $n AND identity_id = $m)
 *
 * Otherwise it counts the matching rows, at most top_k:
 *
 *   (SELECT count(*) FROM (SELECT 1 FROM sophon_events
 *    WHERE <filters> LIMIT $3) m)
 *
 * The page finds its ids first, from an index, and only its own rows visit
 * the heap (page 10,000 of 200,000 events: 16 ms instead of 64 ms here):
 *
 *   SELECT id, ts FROM sophon_events WHERE <filters>
 *   ORDER BY ts DESC, id DESC LIMIT $1 OFFSET $2
 *
 * When the total is exact and cheap, a page in the second half of the match
 * set is read oldest first from the other end, so that the last page costs
 * what the first does; a one-time filter runs only one of the two branches.
 *
 * HEAD answers the same headers as GET and needs only the total: its
 * statement is "SELECT least(<total>, $3)", one row, one column.
 *
 * Each row also brings the event's ts and id, for the cursor of the next
 * page (cursor.c).  A page after a cursor (after=) reads its ids from the
 * index after that event, in the time of the first page whatever its
 * depth, with the same total; its last two parameters are the cursor's ts
 * and id:
 *
 *   SELECT id, ts FROM sophon_events WHERE <filters>
 *   AND (ts, id) < ($n::float8, $n+1::text)
 *   ORDER BY ts DESC, id DESC LIMIT $1 OFFSET $2        ($2 is 0)
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

/* the time window's bounds */
#define NGX_HTTP_SOPHON_EVENTS_WINDOW                                         \
    (ngx_http_sophon_events_bit(NGX_HTTP_SOPHON_EVENTS_DATETIME_GTE)          \
     | ngx_http_sophon_events_bit(NGX_HTTP_SOPHON_EVENTS_DATETIME_LTE))

/* the filters that the counts per identity answer, alone or together */
#define NGX_HTTP_SOPHON_EVENTS_IDENTITY                                       \
    (ngx_http_sophon_events_bit(NGX_HTTP_SOPHON_EVENTS_NAME)                  \
     | ngx_http_sophon_events_bit(NGX_HTTP_SOPHON_EVENTS_IDENTITY_ID))

/* the shape's bits past the filters': the total alone */
#define NGX_HTTP_SOPHON_EVENTS_TOTAL_ONLY                                     \
    ngx_http_sophon_events_bit(NGX_HTTP_SOPHON_EVENTS_NFILTERS)

/* the page after a cursor */
#define NGX_HTTP_SOPHON_EVENTS_AFTER                                          \
    ngx_http_sophon_events_bit(NGX_HTTP_SOPHON_EVENTS_NFILTERS + 1)

#define NGX_HTTP_SOPHON_EVENTS_INT8OID  20

/* $1, $2, $3, then the filters */
#define NGX_HTTP_SOPHON_EVENTS_FIRST_FILTER  4


static u_char *ngx_http_sophon_events_sql_ids(u_char *p, u_char *last,
    ngx_uint_t filters, ngx_uint_t after, const char *order);
static u_char *ngx_http_sophon_events_sql_conditions(u_char *p, u_char *last,
    ngx_uint_t filters);
static u_char *ngx_http_sophon_events_sql_total(u_char *p, u_char *last,
    ngx_uint_t filters);
static ngx_uint_t ngx_http_sophon_events_sql_param(ngx_uint_t filters,
    ngx_uint_t filter);
static ngx_uint_t ngx_http_sophon_events_sql_param_from(ngx_uint_t filters,
    ngx_uint_t filter, ngx_uint_t first);
static u_char *ngx_http_sophon_events_sql_sum(u_char *p, u_char *last,
    const char *table, ngx_uint_t filters);
static ngx_uint_t ngx_http_sophon_events_sql_counted(ngx_uint_t filters);


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


/*
 * $1, $2, $3: typed here, since the statement of HEAD does not use $1 and
 * $2, and PostgreSQL cannot infer the type of a parameter never used
 */
const Oid  ngx_http_sophon_events_sql_types[] = {
    NGX_HTTP_SOPHON_EVENTS_INT8OID,
    NGX_HTTP_SOPHON_EVENTS_INT8OID,
    NGX_HTTP_SOPHON_EVENTS_INT8OID
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

    if (args->total_only) {
        shape |= NGX_HTTP_SOPHON_EVENTS_TOTAL_ONLY;

    } else if (args->after) {
        shape |= NGX_HTTP_SOPHON_EVENTS_AFTER;
    }

    return shape;
}


ngx_int_t
ngx_http_sophon_events_sql_text(ngx_pool_t *pool, ngx_uint_t shape,
    ngx_str_t *text)
{
    u_char      *p, *last;
    size_t       len;
    ngx_uint_t   filters, after;

    filters = shape & ~(NGX_HTTP_SOPHON_EVENTS_TOTAL_ONLY
                        | NGX_HTTP_SOPHON_EVENTS_AFTER);

    /* the cursor's parameters follow the filters' */
    after = (shape & NGX_HTTP_SOPHON_EVENTS_AFTER)
            ? ngx_http_sophon_events_sql_param(filters,
                                           NGX_HTTP_SOPHON_EVENTS_NFILTERS)
            : 0;

    len = 4096;

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    text->data = p;
    last = p + len - 1;

    if (shape & NGX_HTTP_SOPHON_EVENTS_TOTAL_ONLY) {
        p = ngx_slprintf(p, last, "SELECT least(");
        p = ngx_http_sophon_events_sql_total(p, last, filters);
        p = ngx_slprintf(p, last, ", $3::int8)");
        goto done;
    }

    p = ngx_slprintf(p, last, "WITH t AS MATERIALIZED (SELECT ");
    p = ngx_http_sophon_events_sql_total(p, last, filters);
    p = ngx_slprintf(p, last,
                     " AS n) SELECT least(t.n, $3::int8), p.doc, p.ts, p.id"
                     " FROM t LEFT JOIN LATERAL (SELECT"
                     " e.doc, p.ts, p.id FROM (");

    if (!ngx_http_sophon_events_sql_counted(filters) || after) {
        p = ngx_http_sophon_events_sql_ids(p, last, filters, after,
                                           "ts DESC, id DESC");
        p = ngx_slprintf(p, last, " LIMIT $1::int8 OFFSET $2::int8");

    } else {
        p = ngx_slprintf(p, last, "SELECT id, ts FROM (");
        p = ngx_http_sophon_events_sql_ids(p, last, filters, 0,
                                           "ts DESC, id DESC");
        p = ngx_slprintf(p, last,
                         " LIMIT $1::int8 OFFSET $2::int8) f"
                         " WHERE $2::int8 <= t.n / 2"
                         " UNION ALL SELECT id, ts FROM (");
        p = ngx_http_sophon_events_sql_ids(p, last, filters, 0, "ts, id");
        p = ngx_slprintf(p, last,
                         " LIMIT greatest(least($1::int8, t.n - $2::int8), 0)"
                         " OFFSET greatest(t.n - $2::int8 - $1::int8, 0)) b"
                         " WHERE $2::int8 > t.n / 2"
                         " LIMIT $1::int8");
    }

    p = ngx_slprintf(p, last,
                     ") p JOIN sophon_events e ON e.id = p.id"
                     " ORDER BY p.ts DESC, p.id DESC) p ON true");

done:

    if (p == last) {
        /* cannot happen with these texts: refuse rather than cut one */
        return NGX_ERROR;
    }

    *p = '\0';
    text->len = p - text->data;

    return NGX_OK;
}


static u_char *
ngx_http_sophon_events_sql_ids(u_char *p, u_char *last, ngx_uint_t filters,
    ngx_uint_t after, const char *order)
{
    p = ngx_slprintf(p, last, "SELECT id, ts FROM sophon_events WHERE true");
    p = ngx_http_sophon_events_sql_conditions(p, last, filters);

    if (after) {
        /* id is COLLATE "C", as is the index: so is the cursor's */
        p = ngx_slprintf(p, last,
                         " AND (ts, id) < ($%ui::float8, $%ui::text)",
                         after, after + 1);
    }

    return ngx_slprintf(p, last, " ORDER BY %s", order);
}


static u_char *
ngx_http_sophon_events_sql_conditions(u_char *p, u_char *last,
    ngx_uint_t filters)
{
    return ngx_http_sophon_events_sql_filters(p, last, filters,
                                        NGX_HTTP_SOPHON_EVENTS_FIRST_FILTER);
}


u_char *
ngx_http_sophon_events_sql_filters(u_char *p, u_char *last,
    ngx_uint_t filters, ngx_uint_t first)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_NFILTERS; i++) {
        if (filters & ngx_http_sophon_events_bit(i)) {
            p = ngx_slprintf(p, last, ngx_http_sophon_events_conditions[i],
                             ngx_http_sophon_events_sql_param_from(filters, i,
                                                                   first));
        }
    }

    return p;
}


static u_char *
ngx_http_sophon_events_sql_total(u_char *p, u_char *last, ngx_uint_t filters)
{
    ngx_uint_t  i, filter;

    if ((filters & NGX_HTTP_SOPHON_EVENTS_IDENTITY)
        && (filters & ~NGX_HTTP_SOPHON_EVENTS_IDENTITY) == 0)
    {
        return ngx_http_sophon_events_sql_sum(p, last,
                                              "sophon_event_identities",
                                              filters);
    }

    if ((filters & NGX_HTTP_SOPHON_EVENTS_COUNTED) == filters
        && (filters & NGX_HTTP_SOPHON_EVENTS_WINDOW) == 0)
    {
        /*
         * cameras and person types alone, or no filter: the totals, with
         * no call of sophon_events_total() to plan and run
         */
        return ngx_http_sophon_events_sql_sum(p, last, "sophon_event_totals",
                                              filters);
    }

    if (filters & ~NGX_HTTP_SOPHON_EVENTS_COUNTED) {
        p = ngx_slprintf(p, last,
                         "(SELECT count(*) FROM (SELECT 1 FROM sophon_events"
                         " WHERE true");
        p = ngx_http_sophon_events_sql_conditions(p, last, filters);

        return ngx_slprintf(p, last, " LIMIT $3::int8) m)");
    }

    p = ngx_slprintf(p, last, "sophon_events_total(");

    for (i = 0; i < 4; i++) {
        filter = ngx_http_sophon_events_total_args[i];

        if (i) {
            p = ngx_slprintf(p, last, ", ");
        }

        if (filters & ngx_http_sophon_events_bit(filter)) {
            p = ngx_slprintf(p, last, "$%ui::%s",
                             ngx_http_sophon_events_sql_param(filters, filter),
                             ngx_http_sophon_events_total_types[i]);

        } else {
            p = ngx_slprintf(p, last, "NULL");
        }
    }

    return ngx_slprintf(p, last, ")");
}


/*
 * The sum of the counters of a table of counts that match the filters:
 * its columns have the events' names, so the filters' conditions serve.
 */

static u_char *
ngx_http_sophon_events_sql_sum(u_char *p, u_char *last, const char *table,
    ngx_uint_t filters)
{
    p = ngx_slprintf(p, last, "(SELECT coalesce(sum(n), 0)::int8 FROM %s"
                     " WHERE true", table);
    p = ngx_http_sophon_events_sql_conditions(p, last, filters);

    return ngx_slprintf(p, last, ")");
}


/* whether counts answer the total, exact and cheap, or rows are counted */

static ngx_uint_t
ngx_http_sophon_events_sql_counted(ngx_uint_t filters)
{
    return (filters & ~NGX_HTTP_SOPHON_EVENTS_COUNTED) == 0
           || (filters & ~NGX_HTTP_SOPHON_EVENTS_IDENTITY) == 0;
}


/* parameters follow the filters' order: count the present ones before */

static ngx_uint_t
ngx_http_sophon_events_sql_param(ngx_uint_t filters, ngx_uint_t filter)
{
    return ngx_http_sophon_events_sql_param_from(filters, filter,
                                        NGX_HTTP_SOPHON_EVENTS_FIRST_FILTER);
}


static ngx_uint_t
ngx_http_sophon_events_sql_param_from(ngx_uint_t filters, ngx_uint_t filter,
    ngx_uint_t first)
{
    ngx_uint_t  i, n;

    n = first;

    for (i = 0; i < filter; i++) {
        if (filters & ngx_http_sophon_events_bit(i)) {
            n++;
        }
    }

    return n;
}


void
ngx_http_sophon_events_sql_name(ngx_http_sophon_events_stmt_t *stmt,
    ngx_uint_t shape)
{
    (void) ngx_sprintf((u_char *) stmt->name, "sophon_events_%04xi%Z", shape);
}


ngx_int_t
ngx_http_sophon_events_sql_stmt(ngx_pool_t *pool,
    ngx_http_sophon_events_query_args_t *args,
    ngx_http_sophon_events_stmt_t *stmt)
{
    u_char   *p;
    int64_t   offset, limit;

    ngx_http_sophon_events_sql_name(stmt,
                                    ngx_http_sophon_events_sql_shape(args));

    stmt->ntypes = NGX_HTTP_SOPHON_EVENTS_TYPED_PARAMS;
    stmt->types = ngx_http_sophon_events_sql_types;

    offset = (int64_t) args->page * (int64_t) args->per_page;
    limit = args->per_page;

    /* only the first top_k events of the match set exist */

    if (args->top_k) {
        limit = ngx_min(limit, (int64_t) args->top_k - offset);
        limit = ngx_max(limit, 0);
    }

    p = ngx_pnalloc(pool, 3 * NGX_HTTP_SOPHON_EVENTS_INT_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    stmt->values[0] = (char *) p;
    p = ngx_sprintf(p, "%L%Z", limit);

    /* after a cursor, the page starts at it: its depth is only numbered */

    stmt->values[1] = (char *) p;
    p = ngx_sprintf(p, "%L%Z", args->after ? (int64_t) 0 : offset);

    /* NULL: least() and LIMIT ignore it */

    stmt->values[2] = NULL;

    if (args->top_k) {
        stmt->values[2] = (char *) p;
        (void) ngx_sprintf(p, "%ui%Z", args->top_k);
    }

    stmt->nparams = 3;

    if (ngx_http_sophon_events_sql_filter_values(pool, args, stmt) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (args->after && !args->total_only) {
        /* NUL-terminated by cursor.c */
        stmt->values[stmt->nparams++] = (char *) args->after_ts.data;
        stmt->values[stmt->nparams++] = (char *) args->after_id.data;
    }

    return NGX_OK;
}


/* the same order as ngx_http_sophon_events_sql_param() */

ngx_int_t
ngx_http_sophon_events_sql_filter_values(ngx_pool_t *pool,
    ngx_http_sophon_events_query_args_t *args,
    ngx_http_sophon_events_stmt_t *stmt)
{
    u_char      *p;
    ngx_str_t   *value;
    ngx_uint_t   i;

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
