
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: one request's statement on a pooled
 * connection, its rows read as fast as the database sends them.
 */


#ifndef _NGX_HTTP_SOPHON_EVENTS_QUERY_H_INCLUDED_
#define _NGX_HTTP_SOPHON_EVENTS_QUERY_H_INCLUDED_


#include "ngx_http_sophon_events_common.h"


/* takes a connection from the pool, or waits for one, and sends */
void ngx_http_sophon_events_query_start(ngx_http_sophon_events_ctx_t *ctx);

/* the client took some output, or its send_timeout fired */
void ngx_http_sophon_events_query_client(ngx_http_sophon_events_ctx_t *ctx);

/*
 * The request lets go of the database: it leaves the queue, and a
 * statement still being read is read to its end for nobody, then the
 * connection goes back to the pool.
 */
void ngx_http_sophon_events_query_detach(ngx_http_sophon_events_ctx_t *ctx);


#endif /* _NGX_HTTP_SOPHON_EVENTS_QUERY_H_INCLUDED_ */
