
/*
 * ngx_http_sophon_events_module: one request's pipeline of statements on
 * a pooled connection, its results read as they arrive.
 */


#ifndef _NGX_HTTP_SOPHON_EVENTS_QUERY_H_INCLUDED_
#define _NGX_HTTP_SOPHON_EVENTS_QUERY_H_INCLUDED_


#include "ngx_http_sophon_events_common.h"


/* the connection is ours (ctx->conn): send the whole pipeline */
void ngx_http_sophon_events_query_send(ngx_http_sophon_events_ctx_t *ctx);

/* the database socket is ready, or its timer fired */
void ngx_http_sophon_events_query_handler(ngx_http_sophon_events_ctx_t *ctx);

/* the client took some output: read on */
void ngx_http_sophon_events_query_resume(ngx_http_sophon_events_ctx_t *ctx);

/* leave the queue, drop held rows, release the connection */
void ngx_http_sophon_events_query_detach(ngx_http_sophon_events_ctx_t *ctx,
    ngx_uint_t reusable);

/* the request ends with "status", or, once a 200 has started, is cut */
void ngx_http_sophon_events_query_failed(ngx_http_sophon_events_ctx_t *ctx,
    ngx_uint_t status, const char *reason);


#endif /* _NGX_HTTP_SOPHON_EVENTS_QUERY_H_INCLUDED_ */
