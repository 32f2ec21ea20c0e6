
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: the live stream of events, Server-Sent
 * Events, and the worker's one listening connection that wakes it.
 */


#ifndef _NGX_HTTP_SOPHON_EVENTS_STREAM_H_INCLUDED_
#define _NGX_HTTP_SOPHON_EVENTS_STREAM_H_INCLUDED_


#include "ngx_http_sophon_events_common.h"


/*
 * the request's arguments are parsed: the stream's answer starts
 * (NGX_DONE), or the request is answered already (HEAD, errors), and this
 * is what the handler returns
 */
ngx_int_t ngx_http_sophon_events_stream_start(
    ngx_http_sophon_events_ctx_t *ctx);

/* a stream's request's write handler */
void ngx_http_sophon_events_stream_write_handler(ngx_http_request_t *r);

/* the stream is being finalized: it leaves the worker's queues */
void ngx_http_sophon_events_stream_stop(ngx_http_sophon_events_stream_t *st);

/* no connection for its statement: it tries again in a second */
void ngx_http_sophon_events_stream_retry(ngx_http_sophon_events_stream_t *st,
    const char *reason);


#endif /* _NGX_HTTP_SOPHON_EVENTS_STREAM_H_INCLUDED_ */
