
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: statistics from the counts,
 * GET /SophonFace/api/events/stats?interval=hour|day
 * &group_by=streams,userType with the list's time bounds, streams and
 * userType:
 *
 *   {"data": [{"start": 1607040000, "stream": "cam1", "userType": 1,
 *              "count": 12}, ...]}
 *
 * sophon_events_stats() (sql/schema.sql) reads the counts that the list's
 * totals read: per hour, and per day for the whole days of the window, so
 * a year of days costs hundreds of rows, whatever the events; only the
 * window's two partial hours are counted as rows.  Ordered by start, then
 * the group keys; a bucket without events is left out.
 */


#include "ngx_http_sophon_events_query.h"
#include "ngx_http_sophon_events_output.h"


#define NGX_HTTP_SOPHON_EVENTS_BY_STREAM     1
#define NGX_HTTP_SOPHON_EVENTS_BY_USER_TYPE  2


static ngx_int_t ngx_http_sophon_events_stats_check(
    ngx_http_sophon_events_ctx_t *ctx, ngx_str_t *error);
static ngx_int_t ngx_http_sophon_events_stats_group_by(ngx_str_t *value,
    ngx_uint_t *by);
static ngx_int_t ngx_http_sophon_events_stats_stmt(
    ngx_http_sophon_events_ctx_t *ctx, ngx_http_sophon_events_stmt_t *stmt);
static ngx_int_t ngx_http_sophon_events_stats_text(
    ngx_http_sophon_events_ctx_t *ctx, ngx_str_t *text);
static ngx_int_t ngx_http_sophon_events_stats_row(
    ngx_http_sophon_events_ctx_t *ctx, PGresult *res);
static ngx_int_t ngx_http_sophon_events_stats_finish(
    ngx_http_sophon_events_ctx_t *ctx);


const ngx_http_sophon_events_endpoint_t  ngx_http_sophon_events_stats = {
    ngx_http_sophon_events_stats_check,
    ngx_http_sophon_events_stats_stmt,
    ngx_http_sophon_events_stats_text,
    ngx_http_sophon_events_stats_row,
    ngx_http_sophon_events_stats_finish
};


static ngx_str_t  ngx_http_sophon_events_stats_sql = ngx_string(
    "SELECT start, device_id, person_type, n FROM sophon_events_stats("
    "$1::float8, $2::float8, $3::int4, $4::text[], $5::int2[],"
    " $6::bool, $7::bool)");


/* the filters the counts know; the others are refused, not ignored */
static ngx_uint_t  ngx_http_sophon_events_stats_filters[] = {
    NGX_HTTP_SOPHON_EVENTS_DATETIME_GTE,
    NGX_HTTP_SOPHON_EVENTS_DATETIME_LTE,
    NGX_HTTP_SOPHON_EVENTS_STREAMS,
    NGX_HTTP_SOPHON_EVENTS_USER_TYPE
};


static ngx_str_t  ngx_http_sophon_events_filter_names[] = {
    ngx_string("datetime_gte"),
    ngx_string("datetime_lte"),
    ngx_string("name"),
    ngx_string("identity_id"),
    ngx_string("score_min"),
    ngx_string("score_max"),
    ngx_string("userType"),
    ngx_string("room"),
    ngx_string("groups"),
    ngx_string("streams")
};


static ngx_int_t
ngx_http_sophon_events_stats_check(ngx_http_sophon_events_ctx_t *ctx,
    ngx_str_t *error)
{
    u_char                               *msg;
    ngx_uint_t                            i, j, by;
    ngx_http_sophon_events_query_args_t  *args;

    args = &ctx->args;

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_NFILTERS; i++) {
        if (args->filter[i].data == NULL) {
            continue;
        }

        for (j = 0; j < 4; j++) {
            if (ngx_http_sophon_events_stats_filters[j] == i) {
                break;
            }
        }

        if (j == 4) {
            msg = ngx_pnalloc(ctx->request->pool, NGX_MAX_ERROR_STR);
            if (msg == NULL) {
                return NGX_ERROR;
            }

            error->data = msg;
            error->len = ngx_snprintf(msg, NGX_MAX_ERROR_STR,
                                  "%V: statistics take only time bounds, "
                                  "streams and userType",
                                  &ngx_http_sophon_events_filter_names[i])
                         - msg;
            return NGX_DECLINED;
        }
    }

    if (args->interval.data == NULL
        || (args->interval.len == 4
            && ngx_strncmp(args->interval.data, "hour", 4) == 0))
    {
        ctx->bucket_hours = 1;

    } else if (args->interval.len == 3
               && ngx_strncmp(args->interval.data, "day", 3) == 0)
    {
        ctx->bucket_hours = 24;

    } else {
        ngx_str_set(error, "interval: must be hour or day");
        return NGX_DECLINED;
    }

    if (ngx_http_sophon_events_stats_group_by(&args->group_by, &by)
        != NGX_OK)
    {
        ngx_str_set(error, "group_by: must be a list of streams and "
                           "userType, each at most once");
        return NGX_DECLINED;
    }

    ctx->group_by = by;
    ctx->shape = NGX_HTTP_SOPHON_EVENTS_SHAPE_STATS;

    return NGX_OK;
}


/* "streams,userType", either, both, or none */

static ngx_int_t
ngx_http_sophon_events_stats_group_by(ngx_str_t *value, ngx_uint_t *by)
{
    u_char      *p, *end, *comma;
    size_t       len;
    ngx_uint_t   bit;

    *by = 0;

    if (value->data == NULL) {
        return NGX_OK;
    }

    p = value->data;
    end = p + value->len;

    for ( ;; ) {
        comma = ngx_strlchr(p, end, ',');
        len = (comma ? comma : end) - p;

        if (len == 7 && ngx_strncmp(p, "streams", 7) == 0) {
            bit = NGX_HTTP_SOPHON_EVENTS_BY_STREAM;

        } else if (len == 8 && ngx_strncmp(p, "userType", 8) == 0) {
            bit = NGX_HTTP_SOPHON_EVENTS_BY_USER_TYPE;

        } else {
            return NGX_DECLINED;
        }

        if (*by & bit) {
            return NGX_DECLINED;
        }

        *by |= bit;

        if (comma == NULL) {
            return NGX_OK;
        }

        p = comma + 1;
    }
}


static ngx_int_t
ngx_http_sophon_events_stats_stmt(ngx_http_sophon_events_ctx_t *ctx,
    ngx_http_sophon_events_stmt_t *stmt)
{
    char                                 *filter[4];
    ngx_uint_t                            i;
    ngx_str_t                            *value;
    ngx_http_sophon_events_query_args_t  *args;

    args = &ctx->args;

    ngx_http_sophon_events_sql_name(stmt, ctx->shape);

    /* the filters, NULL where absent */

    for (i = 0; i < 4; i++) {
        value = &args->filter[ngx_http_sophon_events_stats_filters[i]];

        filter[i] = NULL;

        if (value->data) {
            filter[i] = ngx_pnalloc(ctx->request->pool, value->len + 1);
            if (filter[i] == NULL) {
                return NGX_ERROR;
            }

            (void) ngx_cpystrn((u_char *) filter[i], value->data,
                               value->len + 1);
        }
    }

    stmt->values[0] = filter[0];
    stmt->values[1] = filter[1];
    stmt->values[2] = (ctx->bucket_hours == 24) ? "24" : "1";
    stmt->values[3] = filter[2];
    stmt->values[4] = filter[3];
    stmt->values[5] = (ctx->group_by & NGX_HTTP_SOPHON_EVENTS_BY_STREAM)
                      ? "t" : "f";
    stmt->values[6] = (ctx->group_by & NGX_HTTP_SOPHON_EVENTS_BY_USER_TYPE)
                      ? "t" : "f";

    stmt->nparams = 7;
    stmt->ntypes = 0;
    stmt->types = NULL;

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_stats_text(ngx_http_sophon_events_ctx_t *ctx,
    ngx_str_t *text)
{
    *text = ngx_http_sophon_events_stats_sql;
    return NGX_OK;
}


/* (start, device_id, person_type, n): one bucket */

static ngx_int_t
ngx_http_sophon_events_stats_row(ngx_http_sophon_events_ctx_t *ctx,
    PGresult *res)
{
    ngx_int_t  rc;
    yajl_gen   gen;

    if (!ctx->header_sent) {
        rc = ngx_http_sophon_events_output_start(ctx);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    ctx->rows++;

    if (ctx->discard) {
        return NGX_OK;
    }

    gen = ctx->gen;

    /* integers from PostgreSQL's text: any bigint, negative ones too */

    if (yajl_gen_map_open(gen) != yajl_gen_status_ok
        || yajl_gen_string(gen, (u_char *) "start", 5) != yajl_gen_status_ok
        || yajl_gen_number(gen, PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0))
           != yajl_gen_status_ok)
    {
        goto failed;
    }

    if (ctx->group_by & NGX_HTTP_SOPHON_EVENTS_BY_STREAM) {
        if (yajl_gen_string(gen, (u_char *) "stream", 6)
            != yajl_gen_status_ok
            || (PQgetisnull(res, 0, 1)
                ? yajl_gen_null(gen)
                : yajl_gen_string(gen, (u_char *) PQgetvalue(res, 0, 1),
                                  PQgetlength(res, 0, 1)))
               != yajl_gen_status_ok)
        {
            goto failed;
        }
    }

    if (ctx->group_by & NGX_HTTP_SOPHON_EVENTS_BY_USER_TYPE) {
        if (yajl_gen_string(gen, (u_char *) "userType", 8)
            != yajl_gen_status_ok
            || yajl_gen_number(gen, PQgetvalue(res, 0, 2),
                               PQgetlength(res, 0, 2))
               != yajl_gen_status_ok)
        {
            goto failed;
        }
    }

    if (yajl_gen_string(gen, (u_char *) "count", 5) != yajl_gen_status_ok
        || yajl_gen_number(gen, PQgetvalue(res, 0, 3), PQgetlength(res, 0, 3))
           != yajl_gen_status_ok
        || yajl_gen_map_close(gen) != yajl_gen_status_ok)
    {
        goto failed;
    }

    if (ctx->out_failed) {
        goto failed;
    }

    return NGX_OK;

failed:

    return ctx->over_cap ? NGX_DECLINED : NGX_ERROR;
}


static ngx_int_t
ngx_http_sophon_events_stats_finish(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_int_t  rc;

    if (!ctx->header_sent) {
        rc = ngx_http_sophon_events_output_start(ctx);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (!ctx->discard
        && (yajl_gen_array_close(ctx->gen) != yajl_gen_status_ok
            || yajl_gen_map_close(ctx->gen) != yajl_gen_status_ok
            || ctx->out_failed))
    {
        return ctx->over_cap ? NGX_DECLINED : NGX_ERROR;
    }

    return ngx_http_sophon_events_output_end(ctx);
}
