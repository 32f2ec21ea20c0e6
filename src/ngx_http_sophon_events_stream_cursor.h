
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: a stream's cursor, the "id:" of each of
 * its events (stream.c says what it means).
 */


#ifndef _NGX_HTTP_SOPHON_EVENTS_STREAM_CURSOR_H_INCLUDED_
#define _NGX_HTTP_SOPHON_EVENTS_STREAM_CURSOR_H_INCLUDED_


#include "ngx_http_sophon_events_common.h"


/* the counter that makes ids increase: 16 hex digits before the rest */
#define NGX_HTTP_SOPHON_EVENTS_SEQ_LEN  16

/*
 * The longest cursor: a client sends it back in a header line, which
 * nginx takes up to large_client_header_buffers (8k by default).  An
 * event whose cursor would be longer (an "_id" of kilobytes, thousands of
 * transactions in progress) is sent without an id.
 */
#define NGX_HTTP_SOPHON_EVENTS_STREAM_CURSOR_LEN  8000


/*
 * F(a, b, (xid, kind, id)) or, "history", H(a, (ts, id)): the parts as
 * PostgreSQL prints them; those a form does not have are empty
 */
typedef struct {
    uint64_t      seq;
    ngx_uint_t    history;
    ngx_str_t     a;
    ngx_str_t     b;
    ngx_str_t     xid;
    ngx_str_t     kind;
    ngx_str_t     ts;
    ngx_str_t     id;
} ngx_http_sophon_events_stream_cursor_t;


/*
 * NGX_OK: "cursor" holds the parts, NUL-terminated copies in "pool";
 * NGX_DECLINED: not a cursor of a stream, or one PostgreSQL would refuse
 * (a snapshot out of order, a ts that is no float8); NGX_ERROR: no memory.
 * It touches nothing but "pool", so the fuzzer drives it alone.
 */
ngx_int_t ngx_http_sophon_events_stream_cursor_decode(ngx_pool_t *pool,
    ngx_str_t *text, ngx_http_sophon_events_stream_cursor_t *cursor);

/* the text's length, and the text written at "p": returns its end */
size_t ngx_http_sophon_events_stream_cursor_len(
    ngx_http_sophon_events_stream_cursor_t *cursor);
u_char *ngx_http_sophon_events_stream_cursor_encode(u_char *p,
    ngx_http_sophon_events_stream_cursor_t *cursor);


/*
 * Whether snapshot "newer" sees every transaction that "older" sees (both
 * as PostgreSQL prints them, or checked by the decoder); when unsure, no.
 */
ngx_uint_t ngx_http_sophon_events_snapshot_covers(u_char *newer,
    size_t newer_len, u_char *older, size_t older_len);


#endif /* _NGX_HTTP_SOPHON_EVENTS_STREAM_CURSOR_H_INCLUDED_ */
