
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: the opaque cursor of the next page.
 *
 * A page ends with its oldest event; the next page is the per_page events
 * of the same filters just older than it in the answer's order ("timestamp"
 * desc, "_id" desc), read from the index at any depth in the time of the
 * first page.  The cursor holds what that takes, in lowercase hex:
 *
 *   1 byte     its version, 1
 *   4 bytes    a fingerprint of the filters, per_page and top_k it was
 *              made for (FNV-1a), so that a cursor of other filters is
 *              refused rather than followed into a wrong page
 *   4 bytes    the number of the page it opens (pagination.page)
 *   1 byte     the length of the event's "timestamp"
 *   ...        the "timestamp" as PostgreSQL printed the float8 (the
 *              shortest text that reads back as the same double)
 *   ...        the event's "_id"
 *
 * Clients must treat it as opaque: the format may change with a version.
 */


#include "ngx_http_sophon_events_cursor.h"
#include "ngx_http_sophon_events_args.h"


#define NGX_HTTP_SOPHON_EVENTS_CURSOR_VERSION  1
#define NGX_HTTP_SOPHON_EVENTS_CURSOR_HEAD     10

#define NGX_HTTP_SOPHON_EVENTS_FNV_BASIS       2166136261U
#define NGX_HTTP_SOPHON_EVENTS_FNV_PRIME       16777619U


static uint32_t ngx_http_sophon_events_cursor_fingerprint(
    ngx_http_sophon_events_query_args_t *args);
static uint32_t ngx_http_sophon_events_fnv(uint32_t h, u_char *p,
    size_t len);
static ngx_int_t ngx_http_sophon_events_cursor_float(u_char *p, size_t len);
static ngx_int_t ngx_http_sophon_events_cursor_text(u_char *p, size_t len);
static u_char *ngx_http_sophon_events_cursor_hex(u_char *dst, u_char *src,
    size_t len);


static ngx_str_t  ngx_http_sophon_events_cursor_bad =
    ngx_string("after: is not a cursor of this API");

static ngx_str_t  ngx_http_sophon_events_cursor_foreign =
    ngx_string("after: is the cursor of other filters, per_page or top_k");


ngx_int_t
ngx_http_sophon_events_cursor_decode(ngx_pool_t *pool,
    ngx_http_sophon_events_query_args_t *args, ngx_str_t *error)
{
    u_char     *b, *p, *ts, *id;
    size_t      n, i, tslen, idlen;
    uint32_t    fingerprint, page;
    ngx_int_t   hi, lo;
    ngx_str_t  *cursor;

    cursor = &args->cursor;

    if (cursor->len % 2
        || cursor->len < 2 * NGX_HTTP_SOPHON_EVENTS_CURSOR_HEAD
        || cursor->len > NGX_HTTP_SOPHON_EVENTS_CURSOR_LEN)
    {
        goto bad;
    }

    n = cursor->len / 2;

    b = ngx_pnalloc(pool, n);
    if (b == NULL) {
        return NGX_ERROR;
    }

    /* lowercase only: one cursor, one spelling */

    for (i = 0; i < n; i++) {
        p = &cursor->data[2 * i];

        if ((p[0] >= 'A' && p[0] <= 'F') || (p[1] >= 'A' && p[1] <= 'F')) {
            goto bad;
        }

        hi = ngx_hextoi(p, 1);
        lo = ngx_hextoi(p + 1, 1);

        if (hi == NGX_ERROR || lo == NGX_ERROR) {
            goto bad;
        }

        b[i] = (u_char) (hi * 16 + lo);
    }

    if (b[0] != NGX_HTTP_SOPHON_EVENTS_CURSOR_VERSION) {
        goto bad;
    }

    fingerprint = (uint32_t) b[1] << 24 | (uint32_t) b[2] << 16
                  | (uint32_t) b[3] << 8 | b[4];
    page = (uint32_t) b[5] << 24 | (uint32_t) b[6] << 16
           | (uint32_t) b[7] << 8 | b[8];
    tslen = b[9];

    ts = b + NGX_HTTP_SOPHON_EVENTS_CURSOR_HEAD;
    id = ts + tslen;

    if (tslen > NGX_HTTP_SOPHON_EVENTS_CURSOR_TS_LEN
        || tslen > n - NGX_HTTP_SOPHON_EVENTS_CURSOR_HEAD)
    {
        goto bad;
    }

    idlen = n - NGX_HTTP_SOPHON_EVENTS_CURSOR_HEAD - tslen;

    if (page == 0
        || page > NGX_MAX_INT32_VALUE
        || ngx_http_sophon_events_cursor_float(ts, tslen) != NGX_OK
        || ngx_http_sophon_events_cursor_text(id, idlen) != NGX_OK)
    {
        goto bad;
    }

    if (fingerprint != ngx_http_sophon_events_cursor_fingerprint(args)) {
        *error = ngx_http_sophon_events_cursor_foreign;
        return NGX_DECLINED;
    }

    /* bound parameters: NUL-terminated copies */

    args->after_ts.data = ngx_pnalloc(pool, tslen + 1);
    args->after_id.data = ngx_pnalloc(pool, idlen + 1);

    if (args->after_ts.data == NULL || args->after_id.data == NULL) {
        return NGX_ERROR;
    }

    *ngx_cpymem(args->after_ts.data, ts, tslen) = '\0';
    args->after_ts.len = tslen;

    *ngx_cpymem(args->after_id.data, id, idlen) = '\0';
    args->after_id.len = idlen;

    args->after = 1;
    args->page = page;

    return NGX_OK;

bad:

    *error = ngx_http_sophon_events_cursor_bad;
    return NGX_DECLINED;
}


ngx_int_t
ngx_http_sophon_events_cursor_encode(ngx_pool_t *pool,
    ngx_http_sophon_events_query_args_t *args, ngx_uint_t page,
    ngx_str_t *ts, ngx_str_t *id, ngx_str_t *cursor)
{
    u_char    head[NGX_HTTP_SOPHON_EVENTS_CURSOR_HEAD], *p;
    uint32_t  fingerprint;

    if (ts->len > NGX_HTTP_SOPHON_EVENTS_CURSOR_TS_LEN
        || id->len > NGX_HTTP_SOPHON_EVENTS_CURSOR_ID_LEN
        || page > NGX_MAX_INT32_VALUE)
    {
        return NGX_DECLINED;
    }

    fingerprint = ngx_http_sophon_events_cursor_fingerprint(args);

    head[0] = NGX_HTTP_SOPHON_EVENTS_CURSOR_VERSION;
    head[1] = (u_char) (fingerprint >> 24);
    head[2] = (u_char) (fingerprint >> 16);
    head[3] = (u_char) (fingerprint >> 8);
    head[4] = (u_char) fingerprint;
    head[5] = (u_char) (page >> 24);
    head[6] = (u_char) (page >> 16);
    head[7] = (u_char) (page >> 8);
    head[8] = (u_char) page;
    head[9] = (u_char) ts->len;

    cursor->len = 2 * (sizeof(head) + ts->len + id->len);

    cursor->data = ngx_pnalloc(pool, cursor->len);
    if (cursor->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_http_sophon_events_cursor_hex(cursor->data, head, sizeof(head));
    p = ngx_http_sophon_events_cursor_hex(p, ts->data, ts->len);
    (void) ngx_http_sophon_events_cursor_hex(p, id->data, id->len);

    return NGX_OK;
}


/* what decides the rows of a page: every filter's value, per_page, top_k */

static uint32_t
ngx_http_sophon_events_cursor_fingerprint(
    ngx_http_sophon_events_query_args_t *args)
{
    u_char      buf[2 * NGX_INT_T_LEN + 2], *end;
    uint32_t    h;
    ngx_uint_t  i;
    ngx_str_t  *value;

    end = ngx_sprintf(buf, "%ui %ui", args->per_page, args->top_k);

    h = ngx_http_sophon_events_fnv(NGX_HTTP_SOPHON_EVENTS_FNV_BASIS, buf,
                                   end - buf);

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_NFILTERS; i++) {
        value = &args->filter[i];

        /* which filter, and its length: no two sets run together */

        end = ngx_sprintf(buf, "|%ui:%uz:", i,
                          value->data ? value->len : (size_t) -1);

        h = ngx_http_sophon_events_fnv(h, buf, end - buf);

        if (value->data) {
            h = ngx_http_sophon_events_fnv(h, value->data, value->len);
        }
    }

    return h;
}


static uint32_t
ngx_http_sophon_events_fnv(uint32_t h, u_char *p, size_t len)
{
    while (len--) {
        h ^= *p++;
        h *= NGX_HTTP_SOPHON_EVENTS_FNV_PRIME;
    }

    return h;
}


/* what PostgreSQL prints of a finite float8: -?D+(.D+)?(e[+-]D+)? */

static ngx_int_t
ngx_http_sophon_events_cursor_float(u_char *p, size_t len)
{
    u_char  *end;
    size_t   n;

    end = p + len;

    if (p < end && *p == '-') {
        p++;
    }

    for (n = 0; p < end && *p >= '0' && *p <= '9'; p++, n++) { /* void */ }

    if (n == 0) {
        return NGX_DECLINED;
    }

    if (p < end && *p == '.') {
        p++;

        for (n = 0; p < end && *p >= '0' && *p <= '9'; p++, n++) {
            /* void */
        }

        if (n == 0) {
            return NGX_DECLINED;
        }
    }

    if (p < end && *p == 'e') {
        p++;

        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }

        for (n = 0; p < end && *p >= '0' && *p <= '9'; p++, n++) {
            /* void */
        }

        if (n == 0 || n > 3) {
            return NGX_DECLINED;
        }
    }

    return p == end ? NGX_OK : NGX_DECLINED;
}


/* an "_id" PostgreSQL takes as text: strict UTF-8, no NUL */

static ngx_int_t
ngx_http_sophon_events_cursor_text(u_char *p, size_t len)
{
    if (len == 0 || len > NGX_HTTP_SOPHON_EVENTS_CURSOR_ID_LEN
        || ngx_strlchr(p, p + len, '\0') != NULL)
    {
        return NGX_DECLINED;
    }

    return ngx_http_sophon_events_utf8_valid(p, len);
}


static u_char *
ngx_http_sophon_events_cursor_hex(u_char *dst, u_char *src, size_t len)
{
    static u_char  hex[] = "0123456789abcdef";

    while (len--) {
        *dst++ = hex[*src >> 4];
        *dst++ = hex[*src++ & 0xf];
    }

    return dst;
}
