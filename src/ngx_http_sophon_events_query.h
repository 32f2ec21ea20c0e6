
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: one request's statement on a pooled
 * connection, its rows read as fast as the database sends them.
 */


#ifndef _NGX_HTTP_SOPHON_EVENTS_QUERY_H_INCLUDED_
#define _NGX_HTTP_SOPHON_EVENTS_QUERY_H_INCLUDED_


#include "ngx_http_sophon_events_common.h"
#include "ngx_http_sophon_events_sql.h"


/*
 * What an endpoint gives the query: its statement, what to do with each of
 * its rows (single-row mode), and the end of its answer once the Sync came
 * without an error.  A row callback returns NGX_OK, or NGX_ERROR or
 * NGX_DECLINED when the answer cannot be written (output.c); "finish"
 * returns what the request is finalized with, or NGX_DONE when the request
 * goes on (a stream).
 */

struct ngx_http_sophon_events_endpoint_s {
    /* NULL, or the arguments checked: NGX_DECLINED, "error" says why */
    ngx_int_t   (*check)(ngx_http_sophon_events_ctx_t *ctx, ngx_str_t *error);
    ngx_int_t   (*stmt)(ngx_http_sophon_events_ctx_t *ctx,
                        ngx_http_sophon_events_stmt_t *stmt);
    ngx_int_t   (*text)(ngx_http_sophon_events_ctx_t *ctx, ngx_str_t *text);
    ngx_int_t   (*row)(ngx_http_sophon_events_ctx_t *ctx, PGresult *res);
    ngx_int_t   (*finish)(ngx_http_sophon_events_ctx_t *ctx);
};


extern const ngx_http_sophon_events_endpoint_t  ngx_http_sophon_events_list;
extern const ngx_http_sophon_events_endpoint_t  ngx_http_sophon_events_one;
extern const ngx_http_sophon_events_endpoint_t  ngx_http_sophon_events_delete;
extern const ngx_http_sophon_events_endpoint_t  ngx_http_sophon_events_stats;
extern const ngx_http_sophon_events_endpoint_t
    ngx_http_sophon_events_stream_batch;


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

/*
 * The request ends with "status", or, once a 200 has started, is cut, and
 * "reason" is logged at "level".
 */
void ngx_http_sophon_events_request_failed(ngx_http_sophon_events_ctx_t *ctx,
    ngx_uint_t level, ngx_uint_t status, const char *reason);


#endif /* _NGX_HTTP_SOPHON_EVENTS_QUERY_H_INCLUDED_ */
