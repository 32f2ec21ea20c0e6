
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: the opaque cursor of the next page
 * (pagination.next, after=).
 */


#ifndef _NGX_HTTP_SOPHON_EVENTS_CURSOR_H_INCLUDED_
#define _NGX_HTTP_SOPHON_EVENTS_CURSOR_H_INCLUDED_


#include "ngx_http_sophon_events_common.h"


/* an event's "timestamp" as PostgreSQL prints a float8, at most */
#define NGX_HTTP_SOPHON_EVENTS_CURSOR_TS_LEN   32

/* the longest "_id" a cursor carries */
#define NGX_HTTP_SOPHON_EVENTS_CURSOR_ID_LEN   1024

/* the longest after= value: two hex digits a byte */
#define NGX_HTTP_SOPHON_EVENTS_CURSOR_LEN                                     \
    (2 * (10 + NGX_HTTP_SOPHON_EVENTS_CURSOR_TS_LEN                           \
          + NGX_HTTP_SOPHON_EVENTS_CURSOR_ID_LEN))


/*
 * args->cursor, checked against the rest of "args" (the filters, per_page
 * and top_k it was made for): NGX_OK sets args->after, args->after_ts,
 * args->after_id and args->page; NGX_DECLINED: "error" says why, naming
 * "after"; NGX_ERROR: out of memory.
 */
ngx_int_t ngx_http_sophon_events_cursor_decode(ngx_pool_t *pool,
    ngx_http_sophon_events_query_args_t *args, ngx_str_t *error);

/*
 * The cursor of the page "page" that follows the event (ts, id), as
 * PostgreSQL printed them; NGX_DECLINED: they cannot make one (an "_id"
 * too long), there is no next cursor.
 */
ngx_int_t ngx_http_sophon_events_cursor_encode(ngx_pool_t *pool,
    ngx_http_sophon_events_query_args_t *args, ngx_uint_t page,
    ngx_str_t *ts, ngx_str_t *id, ngx_str_t *cursor);


#endif /* _NGX_HTTP_SOPHON_EVENTS_CURSOR_H_INCLUDED_ */
