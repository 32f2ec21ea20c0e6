
/*
 * ngx_http_sophon_events_module: the JSON answer, streamed in buffers the
 * request owns and recycles.
 *
 * yajl writes the envelope ('{"data":[', the pagination block, errors);
 * each event is the text of its jsonb column, which PostgreSQL guarantees
 * is valid JSON, copied between the envelope's brackets as it is.  At most
 * sophon_events_buffers buffers exist per request: when all of them are on
 * their way to a slow client, rows wait in libpq, and libpq waits in the
 * socket, so a page of any size costs the worker the same memory.
 */


#include "ngx_http_sophon_events_output.h"


#define NGX_HTTP_SOPHON_EVENTS_TAG                                            \
    (ngx_buf_tag_t) &ngx_http_sophon_events_module


typedef struct {
    ngx_uint_t    status;
    ngx_str_t     name;
} ngx_http_sophon_events_status_t;


static ngx_int_t ngx_http_sophon_events_next_buf(
    ngx_http_sophon_events_ctx_t *ctx, ngx_uint_t force);
static void ngx_http_sophon_events_queue_buf(
    ngx_http_sophon_events_ctx_t *ctx);
static size_t ngx_http_sophon_events_write(ngx_http_sophon_events_ctx_t *ctx,
    const u_char *data, size_t len, ngx_uint_t force);
static void ngx_http_sophon_events_print(void *data, const char *s,
    size_t len);
static ngx_int_t ngx_http_sophon_events_gen_create(
    ngx_http_sophon_events_ctx_t *ctx);
static void ngx_http_sophon_events_gen_cleanup(void *data);
static ngx_int_t ngx_http_sophon_events_gen_key_int(yajl_gen gen,
    const char *key, int64_t value);


static ngx_http_sophon_events_status_t  ngx_http_sophon_events_statuses[] = {
    { NGX_HTTP_BAD_REQUEST, ngx_string("BAD_REQUEST") },
    { NGX_HTTP_NOT_FOUND, ngx_string("NOT_FOUND") },
    { NGX_HTTP_NOT_ALLOWED, ngx_string("METHOD_NOT_ALLOWED") },
    { NGX_HTTP_SERVICE_UNAVAILABLE, ngx_string("SERVICE_UNAVAILABLE") },
    { NGX_HTTP_GATEWAY_TIME_OUT, ngx_string("GATEWAY_TIMEOUT") },
    { 0, ngx_string("INTERNAL_ERROR") }
};


/* the charset apart, so that gzip_types application/json matches */
static ngx_str_t  ngx_http_sophon_events_json_type =
    ngx_string("application/json");

static ngx_str_t  ngx_http_sophon_events_charset = ngx_string("utf-8");


ngx_int_t
ngx_http_sophon_events_output_start(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = ctx->request;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_type = ngx_http_sophon_events_json_type;
    r->headers_out.content_type_len = ngx_http_sophon_events_json_type.len;
    r->headers_out.charset = ngx_http_sophon_events_charset;
    r->headers_out.content_length_n = -1;

    ctx->header_sent = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return NGX_ERROR;
    }

    if (r->header_only) {
        ctx->discard = 1;
        return NGX_OK;
    }

    ctx->last_out = &ctx->out;

    if (ngx_http_sophon_events_gen_create(ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (yajl_gen_map_open(ctx->gen) != yajl_gen_status_ok
        || yajl_gen_string(ctx->gen, (u_char *) "data", 4)
           != yajl_gen_status_ok
        || yajl_gen_array_open(ctx->gen) != yajl_gen_status_ok
        || ctx->out_failed)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_sophon_events_output_rows(ngx_http_sophon_events_ctx_t *ctx)
{
    int        n;
    size_t     len, sep, sent;
    u_char    *doc;
    PGresult  *res;

    res = ctx->result;
    n = PQntuples(res);

    /*
     * Each row is (total, doc) and becomes "," (after the first) and the
     * document's text; a NULL doc is the only row of an empty page.
     */

    while (ctx->row < n) {

        if (PQgetisnull(res, ctx->row, 1)) {
            ctx->row++;
            continue;
        }

        if (ctx->discard) {
            ctx->rows++;
            ctx->row++;
            continue;
        }

        doc = (u_char *) PQgetvalue(res, ctx->row, 1);
        len = PQgetlength(res, ctx->row, 1);
        sep = ctx->rows ? 1 : 0;

        if (ctx->row_sent < sep) {
            if (ngx_http_sophon_events_write(ctx, (u_char *) ",", 1, 0) == 0) {
                return NGX_AGAIN;
            }

            ctx->row_sent = 1;
        }

        sent = ctx->row_sent - sep;

        ctx->row_sent += ngx_http_sophon_events_write(ctx, doc + sent,
                                                      len - sent, 0);

        if (ctx->row_sent < sep + len) {
            return NGX_AGAIN;
        }

        ctx->row_sent = 0;
        ctx->row++;
        ctx->rows++;
    }

    PQclear(res);
    ctx->result = NULL;
    ctx->row = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_sophon_events_output_finish(ngx_http_sophon_events_ctx_t *ctx)
{
    yajl_gen             gen;
    ngx_buf_t           *b;
    ngx_http_request_t  *r;
    ngx_http_sophon_events_query_args_t  *args;

    r = ctx->request;

    if (ctx->discard) {
        return ngx_http_send_special(r, NGX_HTTP_LAST);
    }

    gen = ctx->gen;
    args = &ctx->args;

    if (yajl_gen_array_close(gen) != yajl_gen_status_ok
        || yajl_gen_string(gen, (u_char *) "pagination", 10)
           != yajl_gen_status_ok
        || yajl_gen_map_open(gen) != yajl_gen_status_ok
        || ngx_http_sophon_events_gen_key_int(gen, "num_pages",
                   (ctx->total + args->per_page - 1) / args->per_page)
           != NGX_OK
        || ngx_http_sophon_events_gen_key_int(gen, "page", args->page)
           != NGX_OK
        || ngx_http_sophon_events_gen_key_int(gen, "per_page", args->per_page)
           != NGX_OK
        || ngx_http_sophon_events_gen_key_int(gen, "total_count", ctx->total)
           != NGX_OK
        || yajl_gen_map_close(gen) != yajl_gen_status_ok
        || yajl_gen_map_close(gen) != yajl_gen_status_ok
        || ctx->out_failed)
    {
        return NGX_ERROR;
    }

    b = ctx->cl->buf;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    ngx_http_sophon_events_queue_buf(ctx);

    return ngx_http_sophon_events_output_flush(ctx, 0);
}


/*
 * "flush": what is ready must go now, a partly filled buffer too.  Needed
 * whenever we stop producing (the database is slow, or every buffer is on
 * its way): nginx would otherwise hold back less than postpone_output
 * bytes, and with buffers smaller than that we would wait for ourselves.
 */

ngx_int_t
ngx_http_sophon_events_output_flush(ngx_http_sophon_events_ctx_t *ctx,
    ngx_uint_t flush)
{
    ngx_int_t            rc;
    ngx_chain_t         *cl;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ctx->discard) {
        return NGX_OK;
    }

    if (flush) {
        if (ctx->cl && ctx->cl->buf->last > ctx->cl->buf->pos) {
            ngx_http_sophon_events_queue_buf(ctx);
        }

        for (cl = ctx->out; cl; cl = cl->next) {
            if (cl->next == NULL) {
                cl->buf->flush = 1;
            }
        }
    }

    if (ctx->out == NULL && ctx->busy == NULL) {
        return NGX_OK;
    }

    rc = ngx_http_output_filter(r, ctx->out);

    ngx_chain_update_chains(r->pool, &ctx->free, &ctx->busy, &ctx->out,
                            NGX_HTTP_SOPHON_EVENTS_TAG);
    ctx->last_out = &ctx->out;

    return rc;
}


ngx_uint_t
ngx_http_sophon_events_output_ready(ngx_http_sophon_events_ctx_t *ctx)
{
    if (ctx->discard || ctx->free != NULL) {
        return 1;
    }

    if (ctx->nbufs < ctx->conf->bufs.num) {
        return 1;
    }

    return ctx->cl != NULL && ctx->cl->buf->last < ctx->cl->buf->end;
}


ngx_int_t
ngx_http_sophon_events_send_error(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *message)
{
    size_t                            len;
    ngx_int_t                         rc;
    ngx_buf_t                        *b;
    yajl_gen                          gen;
    ngx_chain_t                       out;
    ngx_table_elt_t                  *allow;
    const unsigned char              *json;
    ngx_http_sophon_events_status_t  *s;

    for (s = ngx_http_sophon_events_statuses; s->status; s++) {
        if (s->status == status) {
            break;
        }
    }

    if (s->status == 0) {
        status = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    gen = yajl_gen_alloc(NULL);
    if (gen == NULL) {
        return NGX_ERROR;
    }

    b = NULL;

    (void) yajl_gen_config(gen, yajl_gen_validate_utf8, 1);

    if (yajl_gen_map_open(gen) != yajl_gen_status_ok
        || yajl_gen_string(gen, (u_char *) "error", 5) != yajl_gen_status_ok
        || yajl_gen_map_open(gen) != yajl_gen_status_ok
        || ngx_http_sophon_events_gen_key_int(gen, "code", status * 100)
           != NGX_OK
        || yajl_gen_string(gen, (u_char *) "message", 7)
           != yajl_gen_status_ok
        || yajl_gen_string(gen, message->data, message->len)
           != yajl_gen_status_ok
        || yajl_gen_string(gen, (u_char *) "status", 6) != yajl_gen_status_ok
        || yajl_gen_string(gen, s->name.data, s->name.len)
           != yajl_gen_status_ok
        || yajl_gen_map_close(gen) != yajl_gen_status_ok
        || yajl_gen_map_close(gen) != yajl_gen_status_ok
        || yajl_gen_get_buf(gen, &json, &len) != yajl_gen_status_ok)
    {
        goto failed;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        goto failed;
    }

    b->last = ngx_cpymem(b->last, json, len);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    yajl_gen_free(gen);

    if (status == NGX_HTTP_NOT_ALLOWED) {
        allow = ngx_list_push(&r->headers_out.headers);
        if (allow == NULL) {
            return NGX_ERROR;
        }

        allow->hash = 1;
        ngx_str_set(&allow->key, "Allow");
        ngx_str_set(&allow->value, "GET, HEAD");
    }

    r->headers_out.status = status;
    r->headers_out.content_type = ngx_http_sophon_events_json_type;
    r->headers_out.content_type_len = ngx_http_sophon_events_json_type.len;
    r->headers_out.charset = ngx_http_sophon_events_charset;
    r->headers_out.content_length_n = len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);

failed:

    yajl_gen_free(gen);
    return NGX_ERROR;
}


/* the buffer being filled goes to the end of the chain waiting to be sent */

static void
ngx_http_sophon_events_queue_buf(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_chain_t  *cl;

    cl = ctx->cl;
    ctx->cl = NULL;

    cl->next = NULL;
    *ctx->last_out = cl;
    ctx->last_out = &cl->next;
}


static ngx_int_t
ngx_http_sophon_events_next_buf(ngx_http_sophon_events_ctx_t *ctx,
    ngx_uint_t force)
{
    ngx_buf_t           *b;
    ngx_chain_t         *cl;
    ngx_http_request_t  *r;

    if (ctx->cl) {
        ngx_http_sophon_events_queue_buf(ctx);
    }

    if (ctx->free) {
        cl = ctx->free;
        ctx->free = cl->next;

        b = cl->buf;
        b->pos = b->start;
        b->last = b->start;
        b->flush = 0;
        b->last_buf = 0;
        b->last_in_chain = 0;

        ctx->cl = cl;
        return NGX_OK;
    }

    /* the envelope may take one buffer past the limit: it never waits */

    if (ctx->nbufs >= ctx->conf->bufs.num && !force) {
        return NGX_AGAIN;
    }

    r = ctx->request;

    b = ngx_create_temp_buf(r->pool, ctx->conf->bufs.size);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->tag = NGX_HTTP_SOPHON_EVENTS_TAG;

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = NULL;

    ctx->cl = cl;
    ctx->nbufs++;

    return NGX_OK;
}


/* copies what fits; returns how much that was */

static size_t
ngx_http_sophon_events_write(ngx_http_sophon_events_ctx_t *ctx,
    const u_char *data, size_t len, ngx_uint_t force)
{
    size_t      n, written;
    ngx_buf_t  *b;

    written = 0;

    while (written < len) {

        if (ctx->cl == NULL || ctx->cl->buf->last == ctx->cl->buf->end) {
            if (ngx_http_sophon_events_next_buf(ctx, force) != NGX_OK) {
                break;
            }
        }

        b = ctx->cl->buf;
        n = ngx_min((size_t) (b->end - b->last), len - written);

        b->last = ngx_cpymem(b->last, data + written, n);
        written += n;
    }

    return written;
}


/* yajl's print callback returns nothing: a failure is kept in the ctx */

static void
ngx_http_sophon_events_print(void *data, const char *s, size_t len)
{
    ngx_http_sophon_events_ctx_t  *ctx = data;

    if (ngx_http_sophon_events_write(ctx, (u_char *) s, len, 1) != len) {
        ctx->out_failed = 1;
    }
}


static ngx_int_t
ngx_http_sophon_events_gen_create(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(ctx->request->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    ctx->gen = yajl_gen_alloc(NULL);
    if (ctx->gen == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_sophon_events_gen_cleanup;
    cln->data = ctx->gen;

    if (!yajl_gen_config(ctx->gen, yajl_gen_print_callback,
                         ngx_http_sophon_events_print, ctx)
        || !yajl_gen_config(ctx->gen, yajl_gen_validate_utf8, 1))
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_sophon_events_gen_cleanup(void *data)
{
    yajl_gen_free(data);
}


static ngx_int_t
ngx_http_sophon_events_gen_key_int(yajl_gen gen, const char *key,
    int64_t value)
{
    if (yajl_gen_string(gen, (u_char *) key, ngx_strlen(key))
        != yajl_gen_status_ok
        || yajl_gen_integer(gen, value) != yajl_gen_status_ok)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}
