/*
 * libFuzzer target: the JSON answer (output_start, _rows, _flush, _finish)
 * and send_error, against a fake client that takes a fuzzer-chosen number
 * of bytes per call, so back-pressure and buffer recycling are exercised.
 *
 * Input: the front gives the settings and the rows, the back gives the
 * client's byte budgets (unlimited once the input runs out).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_sophon_events_output.h"

#include <yajl/yajl_parse.h>

#define NGX_SHIM_HTTP_DECLS_ONLY
#include "ngx_shim_http.c"


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


static int
valid_json(const u_char *p, size_t n)
{
    yajl_handle  h;
    int          ok;

    h = yajl_alloc(NULL, NULL, NULL);
    assert(h != NULL);

    ok = yajl_parse(h, p, n) == yajl_status_ok
         && yajl_complete_parse(h) == yajl_status_ok;

    yajl_free(h);

    return ok;
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


static void
check_body(row_t *rows, ngx_uint_t nrows, ngx_uint_t all_valid)
{
    size_t         off, len;
    u_char        *p;
    ngx_uint_t     i, first;
    static const char  head[] = "{\"data\":[";
    static const char  tail[] = "],\"pagination\":{";

    p = ngx_shim_sink.data;
    len = ngx_shim_sink.len;

    assert(len >= sizeof(head) - 1);
    assert(memcmp(p, head, sizeof(head) - 1) == 0);
    off = sizeof(head) - 1;

    for (i = 0, first = 1; i < nrows; i++) {
        if (rows[i].text == NULL) {
            continue;
        }

        if (!first) {
            assert(off < len && p[off] == ',');
            off++;
        }

        first = 0;

        assert(len - off >= rows[i].len);
        assert(memcmp(p + off, rows[i].text, rows[i].len) == 0);
        off += rows[i].len;
    }

    assert(len - off >= sizeof(tail) - 1);
    assert(memcmp(p + off, tail, sizeof(tail) - 1) == 0);
    assert(p[len - 1] == '}' && p[len - 2] == '}');

    if (all_valid) {
        assert(valid_json(p, len));
    }
}


static void
check_bufs(ngx_http_sophon_events_ctx_t *ctx)
{
    size_t  size, extra;

    /*
     * the envelope never waits: one buffer past the limit, or as many as
     * its longest piece (the pagination block, < 256 bytes) takes
     */
    size = ctx->conf->bufs.size;
    extra = size >= 256 ? 1 : 256 / size + 2;

    assert((size_t) ctx->nbufs <= ctx->conf->bufs.num + extra);
    assert(ngx_shim_sink.nbufs_created == (ngx_uint_t) ctx->nbufs);
}


static void
drive_output(ngx_http_request_t *r, ngx_http_sophon_events_loc_conf_t *conf,
    unsigned flags)
{
    int                            i, n, nres;
    PGresult                      *res;
    ngx_int_t                      rc;
    ngx_uint_t                     nrows, k, guard, all_valid, batch_end;
    PGresAttDesc                   attrs[2];
    ngx_http_sophon_events_ctx_t   ctx;
    row_t                          rows[MAX_ROWS];
    char                           total[32];

    memset(&ctx, 0, sizeof(ctx));
    ctx.request = r;
    ctx.conf = conf;
    ctx.args.per_page = 1 + take();
    ctx.args.page = 1 + take();
    ctx.total = (int64_t) ((uint64_t) take() << 56 | (uint64_t) take() << 8
                           | take());

    nrows = take() % MAX_ROWS;
    all_valid = 1;

    for (k = 0; k < nrows; k++) {
        unsigned kind = take();
        make_row(&rows[k], kind);

        if (rows[k].text && !valid_element(rows[k].text, rows[k].len)) {
            all_valid = 0;
        }
    }

    rc = ngx_http_sophon_events_output_start(&ctx);
    check_bufs(&ctx);

    if (rc != NGX_OK) {
        assert(ngx_shim_sink.header_rc != NGX_OK);
        goto done;
    }

    memset(attrs, 0, sizeof(attrs));
    attrs[0].name = "total";
    attrs[0].typid = 20;
    attrs[0].typlen = 8;
    attrs[0].atttypmod = -1;
    attrs[1].name = "doc";
    attrs[1].typid = 3802;
    attrs[1].typlen = -1;
    attrs[1].atttypmod = -1;

    sprintf(total, "%lld", (long long) ctx.total);

    /* the rows come in one or several results */

    for (k = 0; k < nrows; /* void */) {
        res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
        assert(res != NULL);
        assert(PQsetResultAttrs(res, 2, attrs));

        nres = 0;
        do {
            assert(PQsetvalue(res, nres, 0, total, strlen(total)));
            assert(PQsetvalue(res, nres, 1, rows[k].text,
                              rows[k].text ? (int) rows[k].len : -1));
            batch_end = take() & 1;
            nres++;
            k++;
        } while (k < nrows && !batch_end);

        n = PQntuples(res);
        assert(n == nres);

        ctx.result = res;
        ctx.row = 0;
        ctx.row_sent = 0;

        for (guard = 0; ; guard++) {
            assert(guard < 1000000);

            rc = ngx_http_sophon_events_output_rows(&ctx);
            check_bufs(&ctx);

            if (rc == NGX_OK) {
                break;
            }

            assert(rc == NGX_AGAIN);
            assert(!ctx.discard);

            rc = ngx_http_sophon_events_output_flush(&ctx, 1);
            check_bufs(&ctx);
            assert(rc != NGX_ERROR);

            /* the client is behind: its write events */

            while (!ngx_http_sophon_events_output_ready(&ctx)) {
                assert(++guard < 1000000);
                rc = ngx_http_sophon_events_output_flush(&ctx, 0);
                check_bufs(&ctx);
                assert(rc != NGX_ERROR);
            }
        }

        assert(ctx.result == NULL);

        /* the database is slow between results, sometimes */

        if (flags & 0x10) {
            rc = ngx_http_sophon_events_output_flush(&ctx, 1);
            check_bufs(&ctx);
            assert(rc != NGX_ERROR);
        }

        (void) i;
    }

    rc = ngx_http_sophon_events_output_finish(&ctx);
    check_bufs(&ctx);
    assert(rc != NGX_ERROR);

    if (ctx.discard) {
        assert(ngx_shim_sink.len == 0 && ngx_shim_sink.calls == 0);
        assert(ngx_shim_sink.special & NGX_HTTP_LAST);
        goto done;
    }

    /* nginx's writer sends the rest */

    for (guard = 0; ngx_shim_sink.npending; guard++) {
        assert(guard < 1000000);
        (void) ngx_http_output_filter(r, NULL);
    }

    assert(ngx_shim_sink.last_seen);
    assert(ngx_shim_sink.last_buf == (r == r->main));

    check_body(rows, nrows, all_valid);

done:

    if (ctx.result) {
        PQclear(ctx.result);
    }

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
    unsigned                            flags;
    ngx_pool_t                          pool;
    ngx_connection_t                    c;
    ngx_http_request_t                  r, main_r;
    ngx_http_sophon_events_loc_conf_t   conf;

    in_p = data;
    in_end = data + size;

    flags = take();

    memset(&pool, 0, sizeof(pool));
    memset(&c, 0, sizeof(c));
    memset(&r, 0, sizeof(r));
    memset(&main_r, 0, sizeof(main_r));
    memset(&conf, 0, sizeof(conf));

    free(ngx_shim_sink.data);
    memset(&ngx_shim_sink, 0, offsetof(ngx_shim_sink_t, pending));
    ngx_shim_sink.header_rc = (flags & 0x04) ? ((flags & 0x08) ? NGX_ERROR
                                                               : 404)
                                             : NGX_OK;

    c.log = NULL;
    r.connection = &c;
    r.pool = &pool;
    r.main = (flags & 0x02) ? &main_r : &r;
    r.header_only = (flags & 0x01);

    if (ngx_list_init(&r.headers_out.headers, &pool, 1,
                      sizeof(ngx_table_elt_t)) != NGX_OK)
    {
        return 0;
    }

    conf.bufs.num = 1 + take() % 8;
    conf.bufs.size = 1 + (take() | (take() << 8)) % ((flags & 0x20) ? 64 : 8192);

    if (flags & 0x40) {
        drive_error(&r);

    } else {
        drive_output(&r, &conf, flags);
    }

    ngx_shim_run_cleanups(&pool);
    ngx_shim_free(&pool);

    return 0;
}
