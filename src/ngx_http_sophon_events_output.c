
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: the JSON answer, in buffers the request
 * owns and recycles, then in a temporary file while the client is behind.
 *
 * yajl writes the envelope ('{"data":[', the pagination block, errors);
 * each event is the text of its json column, the bytes its writer wrote,
 * which PostgreSQL checked as valid JSON on insert, copied between the
 * envelope's brackets as they are (with_feature=0: without the vector,
 * feature.c).
 *
 * The database is read at its own speed, never the client's (query.c).
 * At most sophon_events_buffers buffers exist per request; when all of
 * them are on their way to a slow client, the rest of the answer goes
 * through one more buffer into a temporary file in sophon_events_temp_path
 * (unlinked at once: it goes with the request), at most
 * sophon_events_max_temp_file_size of it.  The file is handed to nginx a
 * stretch at a time, each once the client has taken the one before, and
 * sent by sendfile() or read back in output_buffers: so a page of any size
 * costs the worker the same memory, as proxy_buffering does.
 */


#include "ngx_http_sophon_events_output.h"
#include "ngx_http_sophon_events_cursor.h"
#include "ngx_http_sophon_events_feature.h"


#define NGX_HTTP_SOPHON_EVENTS_TAG                                            \
    (ngx_buf_tag_t) &ngx_http_sophon_events_module


typedef struct {
    ngx_uint_t    status;
    ngx_str_t     name;
} ngx_http_sophon_events_status_t;


static ngx_int_t ngx_http_sophon_events_next_buf(
    ngx_http_sophon_events_ctx_t *ctx);
static void ngx_http_sophon_events_queue_buf(
    ngx_http_sophon_events_ctx_t *ctx);
static void ngx_http_sophon_events_append(ngx_http_sophon_events_ctx_t *ctx,
    ngx_chain_t *cl);
static ngx_int_t ngx_http_sophon_events_write(
    ngx_http_sophon_events_ctx_t *ctx, const u_char *data, size_t len);
static ngx_int_t ngx_http_sophon_events_write_piece(void *data,
    const u_char *p, size_t len);
static ngx_int_t ngx_http_sophon_events_write_line(void *data,
    const u_char *p, size_t len);
static ngx_int_t ngx_http_sophon_events_spill_start(
    ngx_http_sophon_events_ctx_t *ctx);
static ngx_int_t ngx_http_sophon_events_spill_write(
    ngx_http_sophon_events_ctx_t *ctx);
static ngx_int_t ngx_http_sophon_events_queue_file(
    ngx_http_sophon_events_ctx_t *ctx);
static ngx_uint_t ngx_http_sophon_events_file_busy(
    ngx_http_sophon_events_ctx_t *ctx);
static void ngx_http_sophon_events_take_back(
    ngx_http_sophon_events_ctx_t *ctx);
static void ngx_http_sophon_events_print(void *data, const char *s,
    size_t len);
static ngx_int_t ngx_http_sophon_events_gen_create(
    ngx_http_sophon_events_ctx_t *ctx);
static void ngx_http_sophon_events_gen_cleanup(void *data);
static ngx_int_t ngx_http_sophon_events_gen_next(
    ngx_http_sophon_events_ctx_t *ctx);


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
    if (ngx_http_sophon_events_output_header(ctx, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->discard) {
        return NGX_OK;
    }

    if (yajl_gen_map_open(ctx->gen) != yajl_gen_status_ok
        || yajl_gen_string(ctx->gen, (u_char *) "data", 4)
           != yajl_gen_status_ok
        || yajl_gen_array_open(ctx->gen) != yajl_gen_status_ok
        || ctx->out_failed)
    {
        return ctx->over_cap ? NGX_DECLINED : NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_sophon_events_output_header(ngx_http_sophon_events_ctx_t *ctx,
    ngx_str_t *type)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = ctx->request;

    r->headers_out.status = NGX_HTTP_OK;

    if (type == NULL) {
        r->headers_out.content_type = ngx_http_sophon_events_json_type;
        r->headers_out.charset = ngx_http_sophon_events_charset;

    } else {
        /* text/event-stream is UTF-8 by definition */
        r->headers_out.content_type = *type;
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
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

    return ngx_http_sophon_events_gen_create(ctx);
}


/* "," (after the first) and the document's text */

ngx_int_t
ngx_http_sophon_events_output_row(ngx_http_sophon_events_ctx_t *ctx,
    u_char *doc, size_t len)
{
    ngx_int_t  rc;

    if (ctx->discard) {
        ctx->rows++;
        return NGX_OK;
    }

    if (ctx->rows) {
        rc = ngx_http_sophon_events_write(ctx, (u_char *) ",", 1);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    rc = ngx_http_sophon_events_output_doc(ctx, doc, len);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx->rows++;

    return NGX_OK;
}


/* a document as it is stored, or without its feature (with_feature=0) */

ngx_int_t
ngx_http_sophon_events_output_doc(ngx_http_sophon_events_ctx_t *ctx,
    u_char *doc, size_t len)
{
    if (ctx->args.with_feature) {
        return ngx_http_sophon_events_write(ctx, doc, len);
    }

    return ngx_http_sophon_events_feature_cut(doc, len,
                                            ngx_http_sophon_events_write_piece,
                                            ctx);
}


/*
 * The same on one line, for a stream's "data:": a document holds CR and LF
 * only as white space between its tokens (inside a JSON string they are
 * escaped), so each becomes a space and the JSON stays the same.
 */

ngx_int_t
ngx_http_sophon_events_output_line(ngx_http_sophon_events_ctx_t *ctx,
    u_char *doc, size_t len)
{
    if (ctx->discard) {
        return NGX_OK;
    }

    if (ctx->args.with_feature) {
        return ngx_http_sophon_events_write_line(ctx, doc, len);
    }

    return ngx_http_sophon_events_feature_cut(doc, len,
                                            ngx_http_sophon_events_write_line,
                                            ctx);
}


ngx_int_t
ngx_http_sophon_events_output_write(ngx_http_sophon_events_ctx_t *ctx,
    const u_char *data, size_t len)
{
    if (ctx->discard) {
        return NGX_OK;
    }

    return ngx_http_sophon_events_write(ctx, data, len);
}


ngx_int_t
ngx_http_sophon_events_output_finish(ngx_http_sophon_events_ctx_t *ctx)
{
    yajl_gen                              gen;
    ngx_http_sophon_events_query_args_t  *args;

    if (ctx->discard) {
        return ngx_http_sophon_events_output_end(ctx);
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
        || ngx_http_sophon_events_gen_next(ctx) != NGX_OK
        || yajl_gen_map_close(gen) != yajl_gen_status_ok
        || yajl_gen_map_close(gen) != yajl_gen_status_ok
        || ctx->out_failed)
    {
        return ctx->over_cap ? NGX_DECLINED : NGX_ERROR;
    }

    return ngx_http_sophon_events_output_end(ctx);
}


/*
 * Everything is handed to nginx, the last buffer marked: its writer sends
 * the rest.
 */

ngx_int_t
ngx_http_sophon_events_output_end(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_int_t            rc;
    ngx_chain_t         *cl;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ctx->discard) {
        return ngx_http_send_special(r, NGX_HTTP_LAST);
    }

    if (ctx->out_failed) {
        return ctx->over_cap ? NGX_DECLINED : NGX_ERROR;
    }

    if (ctx->spill) {
        rc = ngx_http_sophon_events_spill_write(ctx);
        if (rc != NGX_OK) {
            return rc;
        }

        if (ctx->temp_file->offset > ctx->file_queued
            && ngx_http_sophon_events_queue_file(ctx) != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (ctx->cl) {
        ngx_http_sophon_events_queue_buf(ctx);
    }

    if (ctx->out == NULL) {
        /* a stream whose client has taken everything: the end alone */
        return ngx_http_send_special(r, NGX_HTTP_LAST);
    }

    for (cl = ctx->out; cl->next; cl = cl->next) { /* void */ }

    cl->buf->last_buf = (r == r->main) ? 1 : 0;
    cl->buf->last_in_chain = 1;

    return ngx_http_sophon_events_output_flush(ctx, 0);
}


/*
 * "flush": what is ready must go now, a partly filled buffer too.  Needed
 * whenever we stop producing (the database is slow): nginx would otherwise
 * hold back less than postpone_output bytes.
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
        if (ctx->spill) {
            rc = ngx_http_sophon_events_spill_write(ctx);
            if (rc != NGX_OK) {
                return rc;
            }

        } else if (ctx->cl && ctx->cl->buf->last > ctx->cl->buf->pos) {
            ngx_http_sophon_events_queue_buf(ctx);
        }
    }

    /* the file's next stretch, once the client took the one before */

    if (ctx->temp_file
        && ctx->temp_file->offset > ctx->file_queued
        && !ngx_http_sophon_events_file_busy(ctx)
        && ngx_http_sophon_events_queue_file(ctx) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (flush) {
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

    ngx_http_sophon_events_take_back(ctx);

    return rc;
}


/* what the client took comes back: memory buffers and file stretches */

static void
ngx_http_sophon_events_take_back(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_chain_t  *cl, **ll;

    ngx_chain_update_chains(ctx->request->pool, &ctx->free, &ctx->busy,
                            &ctx->out, NGX_HTTP_SOPHON_EVENTS_TAG);
    ctx->last_out = &ctx->out;

    for (ll = &ctx->free; *ll; /* void */) {
        cl = *ll;

        if (cl->buf->in_file) {
            *ll = cl->next;
            cl->next = ctx->file_free;
            ctx->file_free = cl;
            continue;
        }

        ll = &cl->next;
    }
}


ngx_int_t
ngx_http_sophon_events_send_error(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *message)
{
    return ngx_http_sophon_events_send_error_code(r, status, status * 100,
                                                  NULL, message);
}


ngx_int_t
ngx_http_sophon_events_send_error_code(ngx_http_request_t *r,
    ngx_uint_t status, ngx_uint_t code, ngx_str_t *name, ngx_str_t *message)
{
    size_t                              len;
    ngx_int_t                           rc;
    ngx_buf_t                          *b;
    yajl_gen                            gen;
    ngx_chain_t                         out;
    const unsigned char                *json;
    ngx_http_sophon_events_status_t    *s;

    for (s = ngx_http_sophon_events_statuses; s->status; s++) {
        if (s->status == status) {
            break;
        }
    }

    if (s->status == 0) {
        status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        code = status * 100;
        name = NULL;
    }

    if (name == NULL) {
        name = &s->name;
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
        || ngx_http_sophon_events_gen_key_int(gen, "code", code) != NGX_OK
        || yajl_gen_string(gen, (u_char *) "message", 7)
           != yajl_gen_status_ok
        || yajl_gen_string(gen, message->data, message->len)
           != yajl_gen_status_ok
        || yajl_gen_string(gen, (u_char *) "status", 6) != yajl_gen_status_ok
        || yajl_gen_string(gen, name->data, name->len) != yajl_gen_status_ok
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

    ngx_http_sophon_events_append(ctx, cl);
}


/* to the end of the chain waiting to be sent: a buffer or a file stretch */

static void
ngx_http_sophon_events_append(ngx_http_sophon_events_ctx_t *ctx,
    ngx_chain_t *cl)
{
    cl->next = NULL;
    *ctx->last_out = cl;
    ctx->last_out = &cl->next;
}


/*
 * The buffer being filled is queued and the next one taken: a free one, a
 * new one while fewer than sophon_events_buffers exist, or NGX_AGAIN.
 */

static ngx_int_t
ngx_http_sophon_events_next_buf(ngx_http_sophon_events_ctx_t *ctx)
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

    if (ctx->nbufs >= ctx->conf->bufs.num) {
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


/*
 * Copies "data" into the answer: into memory buffers while one is free,
 * into the temporary file once none is (and from then on, to keep the
 * order).  NGX_DECLINED: the file would pass its cap.
 */

static ngx_int_t
ngx_http_sophon_events_write(ngx_http_sophon_events_ctx_t *ctx,
    const u_char *data, size_t len)
{
    size_t      n;
    ngx_int_t   rc;
    ngx_buf_t  *b;

    while (len) {

        if (ctx->spill) {
            b = ctx->spill;

            if (b->last == b->end) {
                rc = ngx_http_sophon_events_spill_write(ctx);
                if (rc != NGX_OK) {
                    return rc;
                }
            }

        } else {

            if (ctx->cl == NULL || ctx->cl->buf->last == ctx->cl->buf->end) {
                rc = ngx_http_sophon_events_next_buf(ctx);

                if (rc == NGX_AGAIN) {
                    /*
                     * all on their way: take back what the client took;
                     * "flush", or buffers under postpone_output in all
                     * would never go while the database is fast
                     */

                    if (ngx_http_sophon_events_output_flush(ctx, 1)
                        == NGX_ERROR)
                    {
                        return NGX_ERROR;
                    }

                    rc = ngx_http_sophon_events_next_buf(ctx);

                    if (rc == NGX_AGAIN) {
                        rc = ngx_http_sophon_events_spill_start(ctx);
                        if (rc != NGX_OK) {
                            return rc;
                        }

                        continue;
                    }
                }

                if (rc != NGX_OK) {
                    return NGX_ERROR;
                }
            }

            b = ctx->cl->buf;
        }

        n = ngx_min((size_t) (b->end - b->last), len);

        b->last = ngx_cpymem(b->last, data, n);
        data += n;
        len -= n;
    }

    return NGX_OK;
}


/* a stretch of a document that with_feature=0 keeps (feature.c) */

static ngx_int_t
ngx_http_sophon_events_write_piece(void *data, const u_char *p, size_t len)
{
    return ngx_http_sophon_events_write(data, p, len);
}


static ngx_int_t
ngx_http_sophon_events_write_line(void *data, const u_char *p, size_t len)
{
    ngx_int_t      rc;
    const u_char  *q, *end;

    end = p + len;

    for (q = p; q < end; q++) {
        if (*q != '\n' && *q != '\r') {
            continue;
        }

        rc = ngx_http_sophon_events_write(data, p, q - p);
        if (rc != NGX_OK) {
            return rc;
        }

        rc = ngx_http_sophon_events_write(data, (u_char *) " ", 1);
        if (rc != NGX_OK) {
            return rc;
        }

        p = q + 1;
    }

    return ngx_http_sophon_events_write(data, p, end - p);
}


/* the client is behind and every memory buffer is on its way to it */

static ngx_int_t
ngx_http_sophon_events_spill_start(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_temp_file_t           *tf;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

    if (ctx->conf->max_temp_file_size == 0 || ctx->no_spill) {
        ctx->over_cap = 1;
        return NGX_DECLINED;
    }

    r = ctx->request;

    tf = ngx_pcalloc(r->pool, sizeof(ngx_temp_file_t));
    if (tf == NULL) {
        return NGX_ERROR;
    }

    /* not persistent: unlinked as soon as it is created */

    tf->file.fd = NGX_INVALID_FILE;
    tf->file.log = r->connection->log;
    tf->path = ctx->conf->temp_path;

    if (tf->path == NULL) {
        /* no sophon_events_temp_path: where the location keeps bodies */
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
        tf->path = clcf->client_body_temp_path;
    }
    tf->pool = r->pool;
    tf->log_level = NGX_LOG_INFO;
    tf->warn = "a sophon_events answer is buffered to a temporary file";

    ctx->spill = ngx_create_temp_buf(r->pool, ctx->conf->bufs.size);
    if (ctx->spill == NULL) {
        return NGX_ERROR;
    }

    ctx->temp_file = tf;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "sophon_events output: the rest goes to a temporary file");

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_spill_write(ngx_http_sophon_events_ctx_t *ctx)
{
    ssize_t           n;
    ngx_buf_t        *b;
    ngx_chain_t       cl;
    ngx_temp_file_t  *tf;

    b = ctx->spill;
    tf = ctx->temp_file;

    if (b->last == b->pos) {
        return NGX_OK;
    }

    if (tf->offset + (b->last - b->pos) > ctx->conf->max_temp_file_size) {
        ctx->over_cap = 1;
        return NGX_DECLINED;
    }

    cl.buf = b;
    cl.next = NULL;

    n = ngx_write_chain_to_temp_file(tf, &cl);

    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    tf->offset += n;

    b->pos = b->start;
    b->last = b->start;

    return NGX_OK;
}


/* what the file holds and nginx has not been given yet, as one buffer */

static ngx_int_t
ngx_http_sophon_events_queue_file(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    cl = ctx->file_free;

    if (cl) {
        ctx->file_free = cl->next;
        b = cl->buf;
        ngx_memzero(b, sizeof(ngx_buf_t));

    } else {
        b = ngx_calloc_buf(ctx->request->pool);
        if (b == NULL) {
            return NGX_ERROR;
        }

        cl = ngx_alloc_chain_link(ctx->request->pool);
        if (cl == NULL) {
            return NGX_ERROR;
        }

        cl->buf = b;
    }

    b->in_file = 1;
    b->file = &ctx->temp_file->file;
    b->file_pos = ctx->file_queued;
    b->file_last = ctx->temp_file->offset;
    b->tag = NGX_HTTP_SOPHON_EVENTS_TAG;

    ctx->file_queued = b->file_last;

    ngx_http_sophon_events_append(ctx, cl);

    return NGX_OK;
}


/*
 * has the client still to take a stretch of the file?  A stretch queued
 * is handed to nginx in the same call (output_flush): only "busy" holds
 * one
 */

static ngx_uint_t
ngx_http_sophon_events_file_busy(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_chain_t  *cl;

    for (cl = ctx->busy; cl; cl = cl->next) {
        if (cl->buf->in_file && cl->buf->file_pos < cl->buf->file_last) {
            return 1;
        }
    }

    return 0;
}


/* yajl's print callback returns nothing: a failure is kept in the ctx */

static void
ngx_http_sophon_events_print(void *data, const char *s, size_t len)
{
    ngx_int_t                      rc;
    ngx_http_sophon_events_ctx_t  *ctx = data;

    if (ctx->out_failed) {
        return;
    }

    rc = ngx_http_sophon_events_write(ctx, (u_char *) s, len);

    if (rc != NGX_OK) {
        ctx->out_failed = 1;
        ctx->over_cap = (rc == NGX_DECLINED);
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


ngx_int_t
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


/*
 * "next": the cursor of the next page, or null when this one is the last:
 * short of per_page, or ending where the (top_k capped) total does
 */

static ngx_int_t
ngx_http_sophon_events_gen_next(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_int_t                             rc;
    ngx_str_t                             cursor;
    ngx_http_sophon_events_query_args_t  *args;

    args = &ctx->args;

    if (yajl_gen_string(ctx->gen, (u_char *) "next", 4) != yajl_gen_status_ok)
    {
        return NGX_ERROR;
    }

    rc = NGX_DECLINED;

    if (ctx->rows == args->per_page
        && ctx->last_ts.len
        && (int64_t) (args->page + 1) * (int64_t) args->per_page < ctx->total)
    {
        rc = ngx_http_sophon_events_cursor_encode(ctx->request->pool, args,
                                                  args->page + 1,
                                                  &ctx->last_ts,
                                                  &ctx->last_id, &cursor);
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    if (rc == NGX_DECLINED) {
        return yajl_gen_null(ctx->gen) == yajl_gen_status_ok
               ? NGX_OK : NGX_ERROR;
    }

    return yajl_gen_string(ctx->gen, cursor.data, cursor.len)
           == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;
}
