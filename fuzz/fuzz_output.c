/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * libFuzzer target: the JSON answer (output_start, _row, _flush, _finish)
 * and send_error, against a fake client that takes a fuzzer-chosen number
 * of bytes per call, so buffer recycling, the temporary file the answer
 * goes into once every memory buffer is on its way, and that file's cap
 * (sophon_events_max_temp_file_size, 0 included) are exercised.
 *
 * The client reassembles the answer from memory buffers and from the file
 * stretches (read with pread(), as sendfile() would), and it must be
 * '{"data":[' + the documents joined by ',' + the pagination block, byte
 * for byte.  Checked on the way: never more than sophon_events_buffers
 * memory buffers and the one that fills the file; no memory buffer handed
 * on once the file is in use; the file handed on a stretch at a time, in
 * order, and only what was written to it; and the answer ends in
 * NGX_DECLINED exactly when the file would have to hold more than its cap,
 * with nothing past the cap written.
 *
 * Input: the front gives the settings, the rows and, after each row, the
 * events that follow it (the database is slow, the client can write); the
 * back gives the client's byte budgets (unlimited once the input runs
 * out).  flags 0x80 chooses a cap (else 1g, see choose_cap()); bit 0x80 of
 * the buffers' number leaves sophon_events_temp_path unset, for the
 * location's client_body_temp_path.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_sophon_events_output.h"

#include <yajl/yajl_parse.h>
#include <unistd.h>

#define NGX_SHIM_HTTP_DECLS_ONLY
#include "ngx_shim_http.c"
#include "fuzz_json.h"


void ngx_shim_free(ngx_pool_t *pool);


static const uint8_t  *in_p, *in_end;


static unsigned
take(void)
{
    return in_p < in_end ? *in_p++ : 0;
}


static size_t
take_bytes(const uint8_t **p, size_t n)
{
    n = ngx_min(n, (size_t) (in_end - in_p));
    *p = in_p;
    in_p += n;
    return n;
}


size_t
ngx_shim_budget(void)
{
    unsigned  b;

    if (in_end <= in_p) {
        return (size_t) -1;
    }

    b = *--in_end;

    if (b == 255) {
        return (size_t) -1;
    }

    return b < 64 ? b : (size_t) (b - 63) * 97;
}


/*
 * A doc is valid alone and as an array element, the way the answer embeds
 * it: yajl takes "2\"x" alone (a number, then a string it is still
 * waiting for), and "" in brackets is an empty array.
 */

static int
valid_element(const char *text, size_t len)
{
    u_char  *p;
    int      ok;

    p = malloc(len + 2);
    assert(p != NULL);

    p[0] = '[';
    memcpy(p + 1, text, len);
    p[len + 1] = ']';

    ok = valid_json((u_char *) text, len) && valid_json(p, len + 2);
    free(p);

    return ok;
}


#define MAX_ROWS  48

typedef struct {
    char    *text;       /* NULL: a NULL doc */
    size_t   len;
} row_t;


static size_t
make_row(row_t *row, unsigned kind)
{
    size_t          len, i;
    const uint8_t  *p;

    len = take() | (take() << 8);

    switch (kind % 4) {

    case 0:     /* NULL */
        row->text = NULL;
        row->len = 0;
        return 0;

    case 1:     /* raw bytes, maybe empty */
        len %= 64;
        len = take_bytes(&p, len);
        row->text = malloc(len + 1);
        memcpy(row->text, p, len);
        row->len = len;
        return len;

    default:    /* a valid JSON object of a chosen size, maybe huge */
        len = (kind % 4 == 2) ? len % 200 : len % 20000;
        row->text = malloc(len + 16);
        i = sprintf(row->text, "{\"p\":\"");
        memset(row->text + i, 'a' + kind % 26, len);
        i += len;
        i += sprintf(row->text + i, "\"}");
        row->len = i;
        return i;
    }
}


/* the answer as it must be, byte for byte */

static u_char *
expected_body(ngx_http_sophon_events_ctx_t *ctx, row_t *rows,
    ngx_uint_t nrows, size_t *len)
{
    size_t      n;
    u_char     *p, *e;
    int64_t     pages;
    ngx_uint_t  i, first;

    n = 256;    /* the envelope, < 150 bytes */

    for (i = 0; i < nrows; i++) {
        n += rows[i].len + 1;
    }

    p = malloc(n);
    assert(p != NULL);

    e = p + sprintf((char *) p, "{\"data\":[");

    for (i = 0, first = 1; i < nrows; i++) {
        if (rows[i].text == NULL) {
            continue;
        }

        if (!first) {
            *e++ = ',';
        }

        first = 0;

        memcpy(e, rows[i].text, rows[i].len);
        e += rows[i].len;
    }

    /* ceil(total / per_page), total >= 0 */
    pages = ctx->total / (int64_t) ctx->args.per_page
            + (ctx->total % (int64_t) ctx->args.per_page != 0);

    /*
     * "next" is null: the harness hands the rows to output_row() alone,
     * and the last event's ts and id come from query.c
     */
    e += sprintf((char *) e, "],\"pagination\":{\"num_pages\":%lld,"
                 "\"page\":%lld,\"per_page\":%lld,\"total_count\":%lld,"
                 "\"next\":null}}",
                 (long long) pages, (long long) ctx->args.page,
                 (long long) ctx->args.per_page, (long long) ctx->total);

    assert((size_t) (e - p) <= n);

    *len = e - p;

    return p;
}


static ngx_http_sophon_events_ctx_t  *cur_ctx;
static ngx_uint_t                     finishing;


static void
check_bufs(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_buf_t  *b;

    /* sophon_events_buffers, and one more that fills the file */

    assert(ctx->nbufs >= 0
           && (ngx_uint_t) ctx->nbufs <= ctx->conf->bufs.num);
    assert(ngx_shim_sink.nbufs_created
           == (ngx_uint_t) ctx->nbufs + (ctx->spill ? 1 : 0));

    assert((ctx->spill == NULL) == (ctx->temp_file == NULL));

    if (ctx->spill == NULL) {
        assert(ngx_shim_sink.files_created == 0);
        return;
    }

    /* no file at all with a cap of 0 */
    assert(ctx->conf->max_temp_file_size > 0);

    b = ctx->spill;
    assert((size_t) (b->end - b->start) == ctx->conf->bufs.size);
    assert(b->start <= b->pos && b->pos <= b->last && b->last <= b->end);

    /* once the file is in use, no memory buffer is filled */
    assert(ctx->cl == NULL);

    assert(ctx->temp_file->offset == ngx_shim_sink.file_size);
    assert(ctx->temp_file->offset <= ctx->conf->max_temp_file_size);
    assert(ctx->file_queued <= ctx->temp_file->offset);
}


/* at every call of the output filter, from inside the module too */

static void
check_filter(ngx_chain_t *in)
{
    ngx_uint_t                     i, nfile;
    ngx_chain_t                   *cl;
    ngx_http_sophon_events_ctx_t  *ctx;

    ctx = cur_ctx;

    check_bufs(ctx);

    nfile = 0;

    for (cl = in; cl; cl = cl->next) {

        if (!cl->buf->in_file) {
            /* no memory buffer is handed on once the file is in use */
            assert(ctx->spill == NULL);
            continue;
        }

        assert(ctx->temp_file != NULL);
        assert(cl->buf->file == &ctx->temp_file->file);
        assert(cl->buf->tag == (ngx_buf_tag_t) &ngx_http_sophon_events_module);

        nfile++;
    }

    if (finishing || nfile == 0) {
        return;
    }

    /* a stretch of the file at a time, once the client took the one before */

    assert(nfile == 1);

    for (i = 0; i < ngx_shim_sink.npending; i++) {
        assert(!ngx_shim_sink.pending[i].buf->in_file);
    }
}


/*
 * The answer went into memory, then into the file: what the file needs is
 * what memory did not take.  NGX_DECLINED exactly when that passes the
 * cap, and then the file holds no more than the cap; what the client got
 * and what the file holds are the answer's, at their places.
 */

static void
check_file(ngx_http_sophon_events_ctx_t *ctx, ngx_int_t rc, u_char *expected,
    size_t elen)
{
    off_t         cap, need, size;
    size_t        mem;
    u_char       *p;
    ssize_t       n;
    ngx_chain_t  *cl;

    cap = ctx->conf->max_temp_file_size;
    size = ngx_shim_sink.file_size;

    /* what the memory buffers took, handed on or not */

    mem = ngx_shim_sink.mem_bytes;

    for (cl = ctx->out; cl; cl = cl->next) {
        if (!cl->buf->in_file) {
            mem += cl->buf->last - cl->buf->pos;
        }
    }

    if (ctx->cl) {
        mem += ctx->cl->buf->last - ctx->cl->buf->pos;
    }

    assert(mem <= elen);

    need = elen - mem;

    /* nothing past the cap */
    assert(size <= cap);

    if (rc == NGX_DECLINED) {
        assert(ctx->over_cap);
        assert(need > cap);
        assert((ngx_uint_t) ctx->nbufs == ctx->conf->bufs.num);

    } else {
        /* the whole answer is handed on: the rest is in the file */
        assert(!ctx->over_cap);
        assert(need == size);
    }

    assert(ngx_shim_sink.len <= elen);
    assert(ngx_shim_sink.len == 0
           || memcmp(ngx_shim_sink.data, expected, ngx_shim_sink.len) == 0);

    if (size == 0) {
        return;
    }

    p = malloc(size);
    assert(p != NULL);

    n = pread(ctx->temp_file->file.fd, p, size, 0);
    assert(n == size);
    assert(memcmp(p, expected + mem, size) == 0);

    free(p);
}


/* rc: the run goes on; NGX_DECLINED: it is over (a 500 in the module) */

static ngx_int_t
check_rc(ngx_http_sophon_events_ctx_t *ctx, ngx_int_t rc)
{
    check_bufs(ctx);

    /* nothing fails here but the cap */
    assert(rc == NGX_OK || rc == NGX_AGAIN || rc == NGX_DECLINED);

    if (rc == NGX_DECLINED) {
        assert(ctx->over_cap);
    }

    return rc;
}


/*
 * The cap: 0x0000-0x7fff as it is, or, with 0x8000, the answer's size less
 * what the memory buffers hold, plus -128..127 (bits 0-7): the file's size
 * when the client takes nothing, around which the cap matters the most.
 */

#define NO_CAP  0x10000

static off_t
choose_cap(ngx_http_sophon_events_loc_conf_t *conf, unsigned cap, size_t elen)
{
    off_t  n;

    if (cap == NO_CAP) {
        return 1024 * 1024 * 1024;
    }

    if (!(cap & 0x8000)) {
        return cap;
    }

    n = (off_t) elen - (off_t) (conf->bufs.num * conf->bufs.size)
        + (signed char) (cap & 0xff);

    return n > 0 ? n : 0;
}


static void
drive_output(ngx_http_request_t *r, ngx_http_sophon_events_loc_conf_t *conf,
    unsigned flags, unsigned cap)
{
    size_t                         elen;
    u_char                        *expected;
    unsigned                       ev, n;
    ngx_int_t                      rc;
    ngx_uint_t                     nrows, ndocs, k, all_valid;
    ngx_http_sophon_events_ctx_t   ctx;
    row_t                          rows[MAX_ROWS];

    memset(&ctx, 0, sizeof(ctx));
    ctx.request = r;
    ctx.conf = conf;
    ctx.args.per_page = 1 + take();
    ctx.args.page = 1 + take();

    /* a count(*): never negative */
    ctx.total = (int64_t) ((uint64_t) (take() & 0x7f) << 56
                           | (uint64_t) take() << 8 | take());

    nrows = take() % MAX_ROWS;
    ndocs = 0;
    all_valid = 1;

    for (k = 0; k < nrows; k++) {
        unsigned kind = take();
        make_row(&rows[k], kind);

        if (rows[k].text == NULL) {
            continue;
        }

        ndocs++;

        if (!valid_element(rows[k].text, rows[k].len)) {
            all_valid = 0;
        }
    }

    expected = expected_body(&ctx, rows, nrows, &elen);

    conf->max_temp_file_size = choose_cap(conf, cap, elen);

    cur_ctx = &ctx;
    finishing = 0;
    ngx_shim_sink.check = check_filter;

    rc = ngx_http_sophon_events_output_start(&ctx);
    check_bufs(&ctx);

    if (rc == NGX_DECLINED) {
        goto declined;
    }

    if (rc != NGX_OK) {
        assert(rc == NGX_ERROR);
        assert(ngx_shim_sink.header_rc != NGX_OK);
        goto done;
    }

    /*
     * Each document as the database gives it (a NULL doc is the only row
     * of an empty page: none), then what happens before the next one.
     */

    for (k = 0; k < nrows; k++) {

        if (rows[k].text) {
            rc = ngx_http_sophon_events_output_row(&ctx,
                                         (u_char *) rows[k].text, rows[k].len);

            if (check_rc(&ctx, rc) == NGX_DECLINED) {
                goto declined;
            }

            assert(rc == NGX_OK);
        }

        ev = take();

        /* the database is slow: what is ready goes now */

        if ((flags & 0x10) && (ev & 1)) {
            rc = ngx_http_sophon_events_output_flush(&ctx, 1);

            if (check_rc(&ctx, rc) == NGX_DECLINED) {
                goto declined;
            }
        }

        /* the client's write events */

        for (n = (ev >> 1) & 3; n; n--) {
            rc = ngx_http_sophon_events_output_flush(&ctx, 1);

            if (check_rc(&ctx, rc) == NGX_DECLINED) {
                goto declined;
            }
        }
    }

    if (flags & 0x10) {
        rc = ngx_http_sophon_events_output_flush(&ctx, 1);

        if (check_rc(&ctx, rc) == NGX_DECLINED) {
            goto declined;
        }
    }

    finishing = 1;

    rc = ngx_http_sophon_events_output_finish(&ctx);

    if (check_rc(&ctx, rc) == NGX_DECLINED) {
        goto declined;
    }

    if (ctx.discard) {
        assert(ngx_shim_sink.len == 0 && ngx_shim_sink.calls == 0);
        assert(ngx_shim_sink.special & NGX_HTTP_LAST);
        assert(ctx.rows == ndocs);
        goto done;
    }

    /* everything is nginx's now: ctx->out is empty, nothing is filled */

    assert(ctx.out == NULL && ctx.cl == NULL);
    assert(ctx.spill == NULL || ctx.spill->last == ctx.spill->pos);
    assert(ctx.temp_file == NULL
           || ctx.file_queued == ctx.temp_file->offset);

    check_file(&ctx, rc, expected, elen);

    /* nginx's writer sends the rest */

    for (k = 0; ngx_shim_sink.npending; k++) {
        assert(k < 1000000);
        (void) ngx_http_output_filter(r, NULL);
    }

    assert(ngx_shim_sink.last_seen);
    assert(ngx_shim_sink.last_buf == (r == r->main));

    assert(ctx.rows == ndocs);

    assert(ngx_shim_sink.len == elen);
    assert(memcmp(ngx_shim_sink.data, expected, elen) == 0);

    assert(ngx_shim_sink.mem_bytes + ngx_shim_sink.file_bytes == elen);
    assert(ngx_shim_sink.file_bytes == ngx_shim_sink.file_size);

    if (all_valid) {
        assert(valid_json(ngx_shim_sink.data, ngx_shim_sink.len));
    }

    goto done;

declined:

    assert(!ctx.discard);

    check_file(&ctx, rc, expected, elen);

done:

    ngx_shim_sink.check = NULL;
    cur_ctx = NULL;

    free(expected);

    for (k = 0; k < nrows; k++) {
        free(rows[k].text);
    }
}


static void
drive_error(ngx_http_request_t *r)
{
    size_t          len;
    ngx_int_t       rc;
    ngx_str_t       msg;
    ngx_uint_t      guard;
    const uint8_t  *p;
    static const ngx_uint_t  statuses[] = { 400, 404, 405, 503, 504, 500,
                                            499, 200, 0 };
    ngx_uint_t      status;

    status = statuses[take() % (sizeof(statuses) / sizeof(statuses[0]))];

    len = take();
    len = take_bytes(&p, len);

    /* a copy of exactly the message's size: a read past it is a report */
    msg.len = len;
    msg.data = malloc(len ? len : 1);
    memcpy(msg.data, p, len);

    rc = ngx_http_sophon_events_send_error(r, status, &msg);

    if (rc == NGX_ERROR && !ngx_shim_sink.header_sent) {
        /* only a message yajl refuses (not UTF-8) may fail before */
        goto done;
    }

    assert(ngx_shim_sink.header_sent);

    if (ngx_shim_sink.header_rc != NGX_OK || r->header_only) {
        assert(ngx_shim_sink.calls == 0);
        goto done;
    }

    for (guard = 0; ngx_shim_sink.npending; guard++) {
        assert(guard < 1000000);
        (void) ngx_http_output_filter(r, NULL);
    }

    assert(ngx_shim_sink.last_seen);
    assert((off_t) ngx_shim_sink.len == r->headers_out.content_length_n);
    assert(valid_json(ngx_shim_sink.data, ngx_shim_sink.len));

done:

    free(msg.data);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned                            flags, num, cap;
    void                               *loc_conf[1];
    ngx_log_t                           log;
    ngx_pool_t                          pool;
    ngx_path_t                          path;
    ngx_connection_t                    c;
    ngx_http_request_t                  r, main_r;
    ngx_http_core_loc_conf_t            clcf;
    ngx_http_sophon_events_loc_conf_t   conf;

    in_p = data;
    in_end = data + size;

    flags = take();

    memset(&log, 0, sizeof(log));
    memset(&pool, 0, sizeof(pool));
    memset(&path, 0, sizeof(path));
    memset(&c, 0, sizeof(c));
    memset(&r, 0, sizeof(r));
    memset(&main_r, 0, sizeof(main_r));
    memset(&clcf, 0, sizeof(clcf));
    memset(&conf, 0, sizeof(conf));

    free(ngx_shim_sink.data);
    memset(&ngx_shim_sink, 0, offsetof(ngx_shim_sink_t, pending));
    ngx_shim_sink.header_rc = (flags & 0x04) ? ((flags & 0x08) ? NGX_ERROR
                                                               : 404)
                                             : NGX_OK;

    /* every message is formatted, debug ones too */
    log.log_level = NGX_LOG_DEBUG_ALL;

    c.log = &log;
    r.connection = &c;
    r.pool = &pool;
    r.main = (flags & 0x02) ? &main_r : &r;
    r.header_only = (flags & 0x01);

    if (ngx_list_init(&r.headers_out.headers, &pool, 1,
                      sizeof(ngx_table_elt_t)) != NGX_OK)
    {
        return 0;
    }

    num = take();

    conf.bufs.num = 1 + num % 8;
    conf.bufs.size = 1 + (take() | (take() << 8))
                         % ((flags & 0x20) ? 64 : 8192);

    cap = (flags & 0x80) ? take() | (take() << 8) : NO_CAP;

    ngx_str_set(&path.name, "/tmp");
    ngx_shim_sink.temp_path = &path;

    if (num & 0x80) {
        /* no sophon_events_temp_path: the location's client_body_temp_path */
        clcf.client_body_temp_path = &path;
        loc_conf[ngx_http_core_module.ctx_index] = &clcf;
        r.loc_conf = loc_conf;

    } else {
        /* r.loc_conf stays NULL: a look at it would be a report */
        conf.temp_path = &path;
    }

    if (flags & 0x40) {
        drive_error(&r);

    } else {
        drive_output(&r, &conf, flags, cap);
    }

    ngx_shim_run_cleanups(&pool);
    ngx_shim_free(&pool);

    /* the temporary file goes with the request */
    assert(ngx_shim_sink.files_open == 0);

    return 0;
}
