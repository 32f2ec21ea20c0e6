
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: a stream's cursor.  16 hex digits of the
 * stream's counter, then, hex-encoded, one of
 *
 *   "F" a "|" b "|" xid "|" kind "|" id
 *   "H" a "|" ts "|" id
 *
 * (F with xid, kind and id empty: where a stream stands after no event)
 *
 * a and b are snapshots as pg_current_snapshot() prints them
 * ("xmin:xmax:xip,..."), xid an xid8, kind 0 (a deletion) or 1 (an event),
 * ts a float8 as PostgreSQL prints it; the id is last, and may hold
 * anything but a NUL.  Every part is checked as PostgreSQL's input
 * functions would, so that a cursor PostgreSQL would refuse is the
 * client's 400, not the database's error.
 */


#include "ngx_http_sophon_events_stream_cursor.h"
#include "ngx_http_sophon_events_cursor.h"
#include "ngx_http_sophon_events_args.h"

#include <math.h>


static ngx_int_t ngx_http_sophon_events_stream_cursor_split(u_char *text,
    size_t len, ngx_http_sophon_events_stream_cursor_t *cursor);
static ngx_int_t ngx_http_sophon_events_snapshot_valid(ngx_str_t *s);
static ngx_int_t ngx_http_sophon_events_uint64(u_char *p, size_t len,
    uint64_t *value);
static ngx_int_t ngx_http_sophon_events_float_valid(ngx_str_t *s);
static ngx_int_t ngx_http_sophon_events_copy(ngx_pool_t *pool, ngx_str_t *s);


ngx_int_t
ngx_http_sophon_events_stream_cursor_decode(ngx_pool_t *pool,
    ngx_str_t *text, ngx_http_sophon_events_stream_cursor_t *cursor)
{
    u_char      *raw;
    size_t       len, i;
    ngx_int_t    n;

    ngx_memzero(cursor, sizeof(ngx_http_sophon_events_stream_cursor_t));

    if (text->len < NGX_HTTP_SOPHON_EVENTS_SEQ_LEN + 2
        || text->len > NGX_HTTP_SOPHON_EVENTS_STREAM_CURSOR_LEN
        || (text->len & 1))
    {
        return NGX_DECLINED;
    }

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_SEQ_LEN; i++) {
        n = ngx_hextoi(&text->data[i], 1);
        if (n == NGX_ERROR) {
            return NGX_DECLINED;
        }

        cursor->seq = (cursor->seq << 4) | (uint64_t) n;
    }

    len = (text->len - NGX_HTTP_SOPHON_EVENTS_SEQ_LEN) / 2;

    raw = ngx_pnalloc(pool, len);
    if (raw == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < len; i++) {
        n = ngx_hextoi(&text->data[NGX_HTTP_SOPHON_EVENTS_SEQ_LEN + 2 * i], 2);
        if (n == NGX_ERROR) {
            return NGX_DECLINED;
        }

        raw[i] = (u_char) n;
    }

    if (ngx_http_sophon_events_stream_cursor_split(raw, len, cursor)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (ngx_http_sophon_events_copy(pool, &cursor->a) != NGX_OK
        || ngx_http_sophon_events_copy(pool, &cursor->b) != NGX_OK
        || ngx_http_sophon_events_copy(pool, &cursor->xid) != NGX_OK
        || ngx_http_sophon_events_copy(pool, &cursor->kind) != NGX_OK
        || ngx_http_sophon_events_copy(pool, &cursor->ts) != NGX_OK
        || ngx_http_sophon_events_copy(pool, &cursor->id) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_stream_cursor_split(u_char *text, size_t len,
    ngx_http_sophon_events_stream_cursor_t *cursor)
{
    u_char      *p, *end, *bar;
    uint64_t     xid;
    ngx_str_t   *part[5];
    ngx_uint_t   i, nparts;

    if (text[0] == 'H') {
        cursor->history = 1;
        part[0] = &cursor->a;
        part[1] = &cursor->ts;
        part[2] = &cursor->id;
        nparts = 3;

    } else if (text[0] == 'F') {
        part[0] = &cursor->a;
        part[1] = &cursor->b;
        part[2] = &cursor->xid;
        part[3] = &cursor->kind;
        part[4] = &cursor->id;
        nparts = 5;

    } else {
        return NGX_DECLINED;
    }

    p = text + 1;
    end = text + len;

    for (i = 0; i < nparts - 1; i++) {
        bar = ngx_strlchr(p, end, '|');
        if (bar == NULL) {
            return NGX_DECLINED;
        }

        part[i]->data = p;
        part[i]->len = bar - p;
        p = bar + 1;
    }

    /* the id: what is left, "|" included */

    part[i]->data = p;
    part[i]->len = end - p;

    if (ngx_strlchr(p, end, '\0') != NULL
        || ngx_http_sophon_events_utf8_valid(p, end - p) != NGX_OK
        || ngx_http_sophon_events_snapshot_valid(&cursor->a) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (cursor->history) {
        return ngx_http_sophon_events_float_valid(&cursor->ts);
    }

    if (ngx_http_sophon_events_snapshot_valid(&cursor->b) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (cursor->xid.len == 0) {
        /* F(A, B, none): where a stream stands, after no event */
        return (cursor->kind.len == 0 && cursor->id.len == 0)
               ? NGX_OK : NGX_DECLINED;
    }

    if (ngx_http_sophon_events_uint64(cursor->xid.data, cursor->xid.len,
                                      &xid)
        != NGX_OK
        || cursor->kind.len != 1
        || (cursor->kind.data[0] != '0' && cursor->kind.data[0] != '1'))
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * "xmin:xmax:xip,xip", as pg_snapshot_in() takes it: 0 < xmin <= xmax,
 * the xips ascending, each in [xmin, xmax)
 */

static ngx_int_t
ngx_http_sophon_events_snapshot_valid(ngx_str_t *s)
{
    u_char    *p, *end, *sep;
    uint64_t   xmin, xmax, xip, prev;

    p = s->data;
    end = p + s->len;

    sep = ngx_strlchr(p, end, ':');
    if (sep == NULL
        || ngx_http_sophon_events_uint64(p, sep - p, &xmin) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    p = sep + 1;

    sep = ngx_strlchr(p, end, ':');
    if (sep == NULL
        || ngx_http_sophon_events_uint64(p, sep - p, &xmax) != NGX_OK
        || xmin == 0 || xmin > xmax)
    {
        return NGX_DECLINED;
    }

    p = sep + 1;
    prev = 0;

    while (p < end) {
        sep = ngx_strlchr(p, end, ',');
        if (sep == NULL) {
            sep = end;

        } else if (sep + 1 == end) {
            return NGX_DECLINED;
        }

        if (ngx_http_sophon_events_uint64(p, sep - p, &xip) != NGX_OK
            || xip < xmin || xip >= xmax || xip <= prev)
        {
            return NGX_DECLINED;
        }

        prev = xip;
        p = (sep == end) ? end : sep + 1;
    }

    return NGX_OK;
}


/* decimal digits, no sign, no leading zero, within 64 bits */

static ngx_int_t
ngx_http_sophon_events_uint64(u_char *p, size_t len, uint64_t *value)
{
    uint64_t  n;

    if (len == 0 || len > 20 || (len > 1 && *p == '0')) {
        return NGX_DECLINED;
    }

    n = 0;

    while (len--) {
        if (*p < '0' || *p > '9'
            || n > (UINT64_MAX - (uint64_t) (*p - '0')) / 10)
        {
            return NGX_DECLINED;
        }

        n = n * 10 + (*p++ - '0');
    }

    *value = n;

    return NGX_OK;
}


/* a finite float8, in the characters PostgreSQL prints one with */

static ngx_int_t
ngx_http_sophon_events_float_valid(ngx_str_t *s)
{
    char     buf[NGX_HTTP_SOPHON_EVENTS_CURSOR_TS_LEN + 1], *end;
    double   d;
    size_t   i;

    if (s->len == 0 || s->len > NGX_HTTP_SOPHON_EVENTS_CURSOR_TS_LEN) {
        return NGX_DECLINED;
    }

    for (i = 0; i < s->len; i++) {
        if (ngx_strchr("0123456789+-.e", s->data[i]) == NULL) {
            return NGX_DECLINED;
        }
    }

    ngx_memcpy(buf, s->data, s->len);
    buf[s->len] = '\0';

    /*
     * what PostgreSQL refuses as out of range, as float8in() does: a
     * number that underflows to 0 (1e-400) or overflows; subnormals are
     * numbers
     */

    ngx_set_errno(0);
    d = strtod(buf, &end);

    if (end != buf + s->len || !isfinite(d)
        || (ngx_errno == ERANGE && d == 0.0))
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* a part, NUL-terminated for libpq; an empty one stays empty */

static ngx_int_t
ngx_http_sophon_events_copy(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char  *p;

    if (s->data == NULL) {
        return NGX_OK;
    }

    p = ngx_pnalloc(pool, s->len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, s->data, s->len);
    p[s->len] = '\0';
    s->data = p;

    return NGX_OK;
}


size_t
ngx_http_sophon_events_stream_cursor_len(
    ngx_http_sophon_events_stream_cursor_t *c)
{
    size_t  len;

    len = 1 + c->a.len + 1 + c->id.len;

    if (c->history) {
        len += c->ts.len + 1;

    } else {
        len += c->b.len + 1 + c->xid.len + 1 + c->kind.len + 1;
    }

    return NGX_HTTP_SOPHON_EVENTS_SEQ_LEN + 2 * len;
}


u_char *
ngx_http_sophon_events_stream_cursor_encode(u_char *p,
    ngx_http_sophon_events_stream_cursor_t *c)
{
    p = ngx_sprintf(p, "%016uxL", c->seq);

    p = ngx_hex_dump(p, (u_char *) (c->history ? "H" : "F"), 1);
    p = ngx_hex_dump(p, c->a.data, c->a.len);
    p = ngx_hex_dump(p, (u_char *) "|", 1);

    if (c->history) {
        p = ngx_hex_dump(p, c->ts.data, c->ts.len);
        p = ngx_hex_dump(p, (u_char *) "|", 1);

    } else {
        p = ngx_hex_dump(p, c->b.data, c->b.len);
        p = ngx_hex_dump(p, (u_char *) "|", 1);
        p = ngx_hex_dump(p, c->xid.data, c->xid.len);
        p = ngx_hex_dump(p, (u_char *) "|", 1);
        p = ngx_hex_dump(p, c->kind.data, c->kind.len);
        p = ngx_hex_dump(p, (u_char *) "|", 1);
    }

    return ngx_hex_dump(p, c->id.data, c->id.len);
}


/*
 * "older" sees a transaction when it is below its xmin, or below its xmax
 * and not one of its xips.  "newer" sees all of those when its xmax is not
 * below older's and none of its own xips (in progress for it) is one that
 * older sees: each is at least older's xmax, or one of older's xips.
 */

ngx_uint_t
ngx_http_sophon_events_snapshot_covers(u_char *newer, size_t newer_len,
    u_char *older, size_t older_len)
{
    u_char    *p, *end, *q, *qend, *sep;
    uint64_t   nxmax, oxmin, oxmax, xip, oxip;

    p = newer;
    end = newer + newer_len;
    q = older;
    qend = older + older_len;

    /* xmin:xmax: of each; newer's xmin does not matter */

    if ((sep = ngx_strlchr(p, end, ':')) == NULL) {
        return 0;
    }

    p = sep + 1;

    if ((sep = ngx_strlchr(p, end, ':')) == NULL
        || ngx_http_sophon_events_uint64(p, sep - p, &nxmax) != NGX_OK)
    {
        return 0;
    }

    p = sep + 1;

    if ((sep = ngx_strlchr(q, qend, ':')) == NULL
        || ngx_http_sophon_events_uint64(q, sep - q, &oxmin) != NGX_OK)
    {
        return 0;
    }

    q = sep + 1;

    if ((sep = ngx_strlchr(q, qend, ':')) == NULL
        || ngx_http_sophon_events_uint64(q, sep - q, &oxmax) != NGX_OK)
    {
        return 0;
    }

    q = sep + 1;

    if (nxmax < oxmax) {
        return 0;
    }

    /* both xip lists ascend: walk them together */

    oxip = 0;

    while (p < end) {
        sep = ngx_strlchr(p, end, ',');
        if (sep == NULL) {
            sep = end;
        }

        if (ngx_http_sophon_events_uint64(p, sep - p, &xip) != NGX_OK) {
            return 0;
        }

        p = (sep == end) ? end : sep + 1;

        if (xip >= oxmax) {
            break;
        }

        if (xip < oxmin) {
            /* older saw it finished; newer cannot see it in progress */
            return 0;
        }

        while (oxip < xip && q < qend) {
            sep = ngx_strlchr(q, qend, ',');
            if (sep == NULL) {
                sep = qend;
            }

            if (ngx_http_sophon_events_uint64(q, sep - q, &oxip) != NGX_OK) {
                return 0;
            }

            q = (sep == qend) ? qend : sep + 1;
        }

        if (oxip != xip) {
            return 0;
        }
    }

    return 1;
}
