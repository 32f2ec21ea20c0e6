
/*
 * ngx_http_sophon_events_module: the JSON answer, streamed in buffers the
 * request owns and recycles.
 */


#ifndef _NGX_HTTP_SOPHON_EVENTS_OUTPUT_H_INCLUDED_
#define _NGX_HTTP_SOPHON_EVENTS_OUTPUT_H_INCLUDED_


#include "ngx_http_sophon_events_common.h"


/* the 200 header and '{"data":[' */
ngx_int_t ngx_http_sophon_events_output_start(
    ngx_http_sophon_events_ctx_t *ctx);

/*
 * copies the rows of ctx->result into buffers; NGX_AGAIN: the buffers are
 * all on their way to the client, call again when some come back
 */
ngx_int_t ngx_http_sophon_events_output_rows(
    ngx_http_sophon_events_ctx_t *ctx);

/* '],"pagination":{...}}' and the last buffer */
ngx_int_t ngx_http_sophon_events_output_finish(
    ngx_http_sophon_events_ctx_t *ctx);

/* passes what is ready down the filter chain and takes back sent buffers */
ngx_int_t ngx_http_sophon_events_output_flush(
    ngx_http_sophon_events_ctx_t *ctx, ngx_uint_t flush);

/* may another row be copied now, or is the client behind? */
ngx_uint_t ngx_http_sophon_events_output_ready(
    ngx_http_sophon_events_ctx_t *ctx);

/* a whole error answer, in the contract's shape; returns for finalize */
ngx_int_t ngx_http_sophon_events_send_error(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *message);


#endif /* _NGX_HTTP_SOPHON_EVENTS_OUTPUT_H_INCLUDED_ */
