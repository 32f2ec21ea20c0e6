
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: one event, GET /SophonFace/api/events/<_id>,
 * answered {"data": <document>}, with_feature=0 honoured; an unknown id is
 * the box's 404, code 40401, ID_NOT_FOUND.
 */


#include "ngx_http_sophon_events_query.h"
#include "ngx_http_sophon_events_output.h"


static ngx_int_t ngx_http_sophon_events_one_stmt(
    ngx_http_sophon_events_ctx_t *ctx, ngx_http_sophon_events_stmt_t *stmt);
static ngx_int_t ngx_http_sophon_events_one_text(
    ngx_http_sophon_events_ctx_t *ctx, ngx_str_t *text);
static ngx_int_t ngx_http_sophon_events_one_row(
    ngx_http_sophon_events_ctx_t *ctx, PGresult *res);
static ngx_int_t ngx_http_sophon_events_one_finish(
    ngx_http_sophon_events_ctx_t *ctx);


const ngx_http_sophon_events_endpoint_t  ngx_http_sophon_events_one = {
    NULL,
    ngx_http_sophon_events_one_stmt,
    ngx_http_sophon_events_one_text,
    ngx_http_sophon_events_one_row,
    ngx_http_sophon_events_one_finish
};


/* the primary key's index, compared byte by byte as the column is */
static ngx_str_t  ngx_http_sophon_events_one_sql =
    ngx_string("SELECT doc FROM sophon_events WHERE id = $1::text");

static ngx_str_t  ngx_http_sophon_events_id_not_found =
    ngx_string("ID_NOT_FOUND");

static ngx_str_t  ngx_http_sophon_events_no_such_event =
    ngx_string("_id: no event has this id");


static ngx_int_t
ngx_http_sophon_events_one_stmt(ngx_http_sophon_events_ctx_t *ctx,
    ngx_http_sophon_events_stmt_t *stmt)
{
    ngx_http_sophon_events_sql_name(stmt, ctx->shape);

    /* NUL-terminated by the handler */
    stmt->values[0] = (char *) ctx->event_id.data;
    stmt->nparams = 1;
    stmt->ntypes = 0;
    stmt->types = NULL;

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_one_text(ngx_http_sophon_events_ctx_t *ctx,
    ngx_str_t *text)
{
    *text = ngx_http_sophon_events_one_sql;
    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_one_row(ngx_http_sophon_events_ctx_t *ctx,
    PGresult *res)
{
    ngx_int_t  rc;

    if (ctx->header_sent) {
        /* cannot happen: the id is the primary key */
        return NGX_OK;
    }

    rc = ngx_http_sophon_events_output_header(ctx, NULL);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx->rows = 1;

    rc = ngx_http_sophon_events_output_write(ctx, (u_char *) "{\"data\":", 8);

    if (rc == NGX_OK && !ctx->discard) {
        rc = ngx_http_sophon_events_output_doc(ctx,
                                              (u_char *) PQgetvalue(res, 0, 0),
                                              PQgetlength(res, 0, 0));
    }

    if (rc == NGX_OK) {
        rc = ngx_http_sophon_events_output_write(ctx, (u_char *) "}", 1);
    }

    return rc;
}


static ngx_int_t
ngx_http_sophon_events_one_finish(ngx_http_sophon_events_ctx_t *ctx)
{
    if (!ctx->header_sent) {
        return ngx_http_sophon_events_send_error_code(ctx->request,
                                      NGX_HTTP_NOT_FOUND, 40401,
                                      &ngx_http_sophon_events_id_not_found,
                                      &ngx_http_sophon_events_no_such_event);
    }

    return ngx_http_sophon_events_output_end(ctx);
}
