
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: the list, GET /SophonFace/api/events, a
 * page of events and its exact total (the statement: sql.c).
 */


#include "ngx_http_sophon_events_query.h"
#include "ngx_http_sophon_events_output.h"
#include "ngx_http_sophon_events_cursor.h"


static ngx_int_t ngx_http_sophon_events_list_stmt(
    ngx_http_sophon_events_ctx_t *ctx, ngx_http_sophon_events_stmt_t *stmt);
static ngx_int_t ngx_http_sophon_events_list_text(
    ngx_http_sophon_events_ctx_t *ctx, ngx_str_t *text);
static ngx_int_t ngx_http_sophon_events_list_row(
    ngx_http_sophon_events_ctx_t *ctx, PGresult *res);
static ngx_int_t ngx_http_sophon_events_list_last(
    ngx_http_sophon_events_ctx_t *ctx, PGresult *res);
static ngx_int_t ngx_http_sophon_events_list_finish(
    ngx_http_sophon_events_ctx_t *ctx);


const ngx_http_sophon_events_endpoint_t  ngx_http_sophon_events_list = {
    NULL,
    ngx_http_sophon_events_list_stmt,
    ngx_http_sophon_events_list_text,
    ngx_http_sophon_events_list_row,
    ngx_http_sophon_events_list_finish
};


static ngx_int_t
ngx_http_sophon_events_list_stmt(ngx_http_sophon_events_ctx_t *ctx,
    ngx_http_sophon_events_stmt_t *stmt)
{
    return ngx_http_sophon_events_sql_stmt(ctx->request->pool, &ctx->args,
                                           stmt);
}


static ngx_int_t
ngx_http_sophon_events_list_text(ngx_http_sophon_events_ctx_t *ctx,
    ngx_str_t *text)
{
    return ngx_http_sophon_events_sql_text(ctx->request->pool, ctx->shape,
                                           text);
}


/*
 * A row of (total, doc, ts, id), or (total) for HEAD: the first one brings
 * the total, and the answer's header with it; a NULL doc is the row of a
 * page past the end.
 */

static ngx_int_t
ngx_http_sophon_events_list_row(ngx_http_sophon_events_ctx_t *ctx,
    PGresult *res)
{
    size_t     len;
    ngx_int_t  rc;

    len = PQnfields(res) > 1 && !PQgetisnull(res, 0, 1)
          ? (size_t) PQgetlength(res, 0, 1) : 0;

    rc = NGX_OK;

    if (!ctx->header_sent) {
        ctx->total = PQgetisnull(res, 0, 0)
                     ? NGX_ERROR
                     : ngx_atoof((u_char *) PQgetvalue(res, 0, 0),
                                 PQgetlength(res, 0, 0));

        if (ctx->total == NGX_ERROR) {
            ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                          "sophon_events: the database answered no total");
            return NGX_ERROR;
        }

        rc = ngx_http_sophon_events_output_start(ctx);
    }

    if (rc == NGX_OK && len) {
        rc = ngx_http_sophon_events_output_row(ctx,
                                        (u_char *) PQgetvalue(res, 0, 1), len);

        if (rc == NGX_OK && PQnfields(res) > 3) {
            rc = ngx_http_sophon_events_list_last(ctx, res);
        }
    }

    return rc;
}


/* the event's ts and id, kept while it is the last one of the page */

static ngx_int_t
ngx_http_sophon_events_list_last(ngx_http_sophon_events_ctx_t *ctx,
    PGresult *res)
{
    size_t  tslen, idlen;

    tslen = PQgetlength(res, 0, 2);
    idlen = PQgetlength(res, 0, 3);

    if (ctx->last_ts.data == NULL) {
        ctx->last_ts.data = ngx_pnalloc(ctx->request->pool,
                                        NGX_HTTP_SOPHON_EVENTS_CURSOR_TS_LEN);
        if (ctx->last_ts.data == NULL) {
            return NGX_ERROR;
        }
    }

    if (idlen > ctx->last_id_size) {
        /* ids are short: this happens once or twice a page */

        ctx->last_id_size = ngx_max(idlen, 64);
        ctx->last_id.data = ngx_pnalloc(ctx->request->pool,
                                        ctx->last_id_size);
        if (ctx->last_id.data == NULL) {
            return NGX_ERROR;
        }
    }

    /* longer than any float8's text: no cursor (output.c) */

    ctx->last_ts.len = ngx_min(tslen, NGX_HTTP_SOPHON_EVENTS_CURSOR_TS_LEN);
    ngx_memcpy(ctx->last_ts.data, PQgetvalue(res, 0, 2), ctx->last_ts.len);
    ctx->last_id.len = idlen;
    ngx_memcpy(ctx->last_id.data, PQgetvalue(res, 0, 3), idlen);

    if (tslen > NGX_HTTP_SOPHON_EVENTS_CURSOR_TS_LEN) {
        ctx->last_ts.len = 0;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_list_finish(ngx_http_sophon_events_ctx_t *ctx)
{
    if (!ctx->header_sent
        && ngx_http_sophon_events_output_start(ctx) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_sophon_events_output_finish(ctx);
}
