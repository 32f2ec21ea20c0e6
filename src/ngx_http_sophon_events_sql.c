
/*
 * ngx_http_sophon_events_module: the statements, built from the filter set.
 *
 * The text of a statement depends only on which filters are present, never
 * on their values: those are always bound parameters ($n), lists included
 * (one array parameter each).  So a connection prepares each shape once and
 * at most 2^NFILTERS shapes exist.
 *
 * Two statements answer a request, executed in one REPEATABLE READ
 * transaction so that the total and the page see the same snapshot:
 *
 *   count: SELECT count(*) FROM (SELECT 1 FROM sophon_events
 *          WHERE <filters> LIMIT $1) m                 -- $1: top_k or NULL
 *
 *   page:  SELECT e.doc FROM (SELECT id, ts FROM sophon_events
 *          WHERE <filters> ORDER BY ts DESC, id DESC LIMIT $1 OFFSET $2) p
 *          JOIN sophon_events e ON e.id = p.id ORDER BY p.ts DESC, p.id DESC
 *
 * The page finds its ids first: skipping OFFSET rows then walks the
 * (ts, id) index alone, and only the rows of the page visit the heap
 * (page 10,000 of 200,000 events: 16 ms instead of 64 ms here).  The join
 * keeps the inner order, so the outer ORDER BY costs no sort.
 */


#include "ngx_http_sophon_events_sql.h"


#define NGX_HTTP_SOPHON_EVENTS_INT_LEN  NGX_INT64_LEN + 1


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


static ngx_str_t  ngx_http_sophon_events_count_head =
    ngx_string("SELECT count(*) FROM (SELECT 1 FROM sophon_events WHERE true");

static ngx_str_t  ngx_http_sophon_events_count_tail =
    ngx_string(" LIMIT $1) m");

static ngx_str_t  ngx_http_sophon_events_page_head =
    ngx_string("SELECT e.doc FROM (SELECT id, ts FROM sophon_events "
               "WHERE true");

static ngx_str_t  ngx_http_sophon_events_page_tail =
    ngx_string(" ORDER BY ts DESC, id DESC LIMIT $1 OFFSET $2) p"
               " JOIN sophon_events e ON e.id = p.id"
               " ORDER BY p.ts DESC, p.id DESC");


ngx_uint_t
ngx_http_sophon_events_sql_shape(ngx_http_sophon_events_query_args_t *args)
{
    ngx_uint_t  i, shape;

    shape = 0;

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_NFILTERS; i++) {
        if (args->filter[i].data != NULL) {
            shape |= (ngx_uint_t) 1 << i;
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
    ngx_str_t   *head, *tail;
    ngx_uint_t   i, n;

    if (which == NGX_HTTP_SOPHON_EVENTS_COUNT) {
        head = &ngx_http_sophon_events_count_head;
        tail = &ngx_http_sophon_events_count_tail;
        n = 2;

    } else {
        head = &ngx_http_sophon_events_page_head;
        tail = &ngx_http_sophon_events_page_tail;
        n = 3;
    }

    len = head->len + tail->len + 1;

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_NFILTERS; i++) {
        len += ngx_strlen(ngx_http_sophon_events_conditions[i])
               + NGX_INT_T_LEN;
    }

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    text->data = p;
    last = p + len;

    p = ngx_cpymem(p, head->data, head->len);

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_NFILTERS; i++) {
        if (shape & ((ngx_uint_t) 1 << i)) {
            p = ngx_slprintf(p, last, ngx_http_sophon_events_conditions[i],
                             n++);
        }
    }

    p = ngx_cpymem(p, tail->data, tail->len);
    *p = '\0';

    text->len = p - text->data;

    return NGX_OK;
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
