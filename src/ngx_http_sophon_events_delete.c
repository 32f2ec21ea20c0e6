
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: DELETE /SophonFace/api/events
 * ?event_id_list=a,b,c, the box's own request, in every list form of the
 * contract.  One statement, so one transaction: the events and their
 * counts go together (the counting triggers, sql/schema.sql), and every
 * total is exact right after.  The answer says which ids were deleted and
 * which were not found, each once, in the order the request gave them:
 *
 *   {"data": {"deleted": [...], "not_found": [...]}}
 *
 * It runs on sophon_events_delete_db's pool: the reader's role cannot
 * delete, by design (sql/roles.sql).
 */


#include "ngx_http_sophon_events_query.h"
#include "ngx_http_sophon_events_output.h"


static ngx_int_t ngx_http_sophon_events_delete_check(
    ngx_http_sophon_events_ctx_t *ctx, ngx_str_t *error);
static ngx_int_t ngx_http_sophon_events_delete_stmt(
    ngx_http_sophon_events_ctx_t *ctx, ngx_http_sophon_events_stmt_t *stmt);
static ngx_int_t ngx_http_sophon_events_delete_text(
    ngx_http_sophon_events_ctx_t *ctx, ngx_str_t *text);
static ngx_int_t ngx_http_sophon_events_delete_row(
    ngx_http_sophon_events_ctx_t *ctx, PGresult *res);
static ngx_int_t ngx_http_sophon_events_delete_start(
    ngx_http_sophon_events_ctx_t *ctx);
static ngx_int_t ngx_http_sophon_events_delete_section(
    ngx_http_sophon_events_ctx_t *ctx);
static ngx_int_t ngx_http_sophon_events_delete_finish(
    ngx_http_sophon_events_ctx_t *ctx);


const ngx_http_sophon_events_endpoint_t  ngx_http_sophon_events_delete = {
    ngx_http_sophon_events_delete_check,
    ngx_http_sophon_events_delete_stmt,
    ngx_http_sophon_events_delete_text,
    ngx_http_sophon_events_delete_row,
    ngx_http_sophon_events_delete_finish
};


/*
 * Rows (id, deleted), the deleted first; each list in the request's order.
 * The ids are compared as the column is, byte by byte ("C"), so that the
 * index on id finds them.  sophon_events_lock() locks the events in id
 * order first, once (an InitPlan, before any row is deleted): two DELETEs
 * of overlapping lists would otherwise lock them in the orders of their
 * plans and could deadlock; in one order, the second waits for the
 * first, then finds those events gone.
 */
static ngx_str_t  ngx_http_sophon_events_delete_sql = ngx_string(
    "WITH ids AS (SELECT id COLLATE \"C\" AS id, min(n) AS n"
    " FROM unnest($1::text[]) WITH ORDINALITY AS u(id, n) GROUP BY 1),"
    " gone AS (DELETE FROM sophon_events e USING ids WHERE e.id = ids.id"
    " AND (SELECT sophon_events_lock($1::text[])) RETURNING e.id)"
    " SELECT ids.id, gone.id IS NOT NULL FROM ids"
    " LEFT JOIN gone ON gone.id = ids.id"
    " ORDER BY gone.id IS NULL, ids.n");


static ngx_int_t
ngx_http_sophon_events_delete_check(ngx_http_sophon_events_ctx_t *ctx,
    ngx_str_t *error)
{
    ngx_uint_t  i;

    if (ctx->args.filter[NGX_HTTP_SOPHON_EVENTS_EVENT_ID_LIST].data == NULL) {
        ngx_str_set(error, "event_id_list: is required");
        return NGX_DECLINED;
    }

    /* a DELETE that filters would delete what it did not name */

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_NFILTERS; i++) {
        if (ctx->args.filter[i].data) {
            ngx_str_set(error, "event_id_list: DELETE takes no filter, "
                               "only the ids");
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_delete_stmt(ngx_http_sophon_events_ctx_t *ctx,
    ngx_http_sophon_events_stmt_t *stmt)
{
    ngx_str_t  *list;

    list = &ctx->args.filter[NGX_HTTP_SOPHON_EVENTS_EVENT_ID_LIST];

    ngx_http_sophon_events_sql_name(stmt, ctx->shape);

    stmt->values[0] = (char *) ngx_pnalloc(ctx->request->pool, list->len + 1);
    if (stmt->values[0] == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_cpystrn((u_char *) stmt->values[0], list->data, list->len + 1);

    stmt->nparams = 1;
    stmt->ntypes = 0;
    stmt->types = NULL;

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_delete_text(ngx_http_sophon_events_ctx_t *ctx,
    ngx_str_t *text)
{
    *text = ngx_http_sophon_events_delete_sql;
    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_delete_row(ngx_http_sophon_events_ctx_t *ctx,
    PGresult *res)
{
    ngx_int_t  rc;

    if (!ctx->header_sent) {
        rc = ngx_http_sophon_events_delete_start(ctx);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (!ctx->section && *PQgetvalue(res, 0, 1) == 'f') {
        /* the first id not found */
        rc = ngx_http_sophon_events_delete_section(ctx);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    ctx->rows++;

    if (yajl_gen_string(ctx->gen, (u_char *) PQgetvalue(res, 0, 0),
                        PQgetlength(res, 0, 0))
        != yajl_gen_status_ok
        || ctx->out_failed)
    {
        return ctx->over_cap ? NGX_DECLINED : NGX_ERROR;
    }

    return NGX_OK;
}


/* '{"data":{"deleted":[' */

static ngx_int_t
ngx_http_sophon_events_delete_start(ngx_http_sophon_events_ctx_t *ctx)
{
    yajl_gen  gen;

    if (ngx_http_sophon_events_output_header(ctx, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    gen = ctx->gen;

    if (yajl_gen_map_open(gen) != yajl_gen_status_ok
        || yajl_gen_string(gen, (u_char *) "data", 4) != yajl_gen_status_ok
        || yajl_gen_map_open(gen) != yajl_gen_status_ok
        || yajl_gen_string(gen, (u_char *) "deleted", 7)
           != yajl_gen_status_ok
        || yajl_gen_array_open(gen) != yajl_gen_status_ok
        || ctx->out_failed)
    {
        return ctx->over_cap ? NGX_DECLINED : NGX_ERROR;
    }

    return NGX_OK;
}


/* '],"not_found":[' */

static ngx_int_t
ngx_http_sophon_events_delete_section(ngx_http_sophon_events_ctx_t *ctx)
{
    yajl_gen  gen;

    gen = ctx->gen;
    ctx->section = 1;

    if (yajl_gen_array_close(gen) != yajl_gen_status_ok
        || yajl_gen_string(gen, (u_char *) "not_found", 9)
           != yajl_gen_status_ok
        || yajl_gen_array_open(gen) != yajl_gen_status_ok
        || ctx->out_failed)
    {
        return ctx->over_cap ? NGX_DECLINED : NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_delete_finish(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_int_t  rc;

    if (!ctx->header_sent) {
        /* cannot happen: the list has an id at least */
        rc = ngx_http_sophon_events_delete_start(ctx);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (!ctx->section) {
        rc = ngx_http_sophon_events_delete_section(ctx);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (yajl_gen_array_close(ctx->gen) != yajl_gen_status_ok
        || yajl_gen_map_close(ctx->gen) != yajl_gen_status_ok
        || yajl_gen_map_close(ctx->gen) != yajl_gen_status_ok
        || ctx->out_failed)
    {
        return ctx->over_cap ? NGX_DECLINED : NGX_ERROR;
    }

    return ngx_http_sophon_events_output_end(ctx);
}
