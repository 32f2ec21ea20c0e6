
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: the live stream of events, Server-Sent
 * Events, and the worker's one listening connection that wakes it.
 */


#ifndef _NGX_HTTP_SOPHON_EVENTS_STREAM_H_INCLUDED_
#define _NGX_HTTP_SOPHON_EVENTS_STREAM_H_INCLUDED_


#include "ngx_http_sophon_events_common.h"


/* the request's arguments are parsed: the stream's answer starts */
ngx_int_t ngx_http_sophon_events_stream_start(
    ngx_http_sophon_events_ctx_t *ctx);


#endif /* _NGX_HTTP_SOPHON_EVENTS_STREAM_H_INCLUDED_ */
