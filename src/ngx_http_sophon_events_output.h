
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: the JSON answer, in buffers the request
 * owns and recycles, then in a temporary file while the client is behind.
 */


#ifndef _NGX_HTTP_SOPHON_EVENTS_OUTPUT_H_INCLUDED_
#define _NGX_HTTP_SOPHON_EVENTS_OUTPUT_H_INCLUDED_


#include "ngx_http_sophon_events_common.h"


/* the 200 header and '{"data":[' */
ngx_int_t ngx_http_sophon_events_output_start(
    ngx_http_sophon_events_ctx_t *ctx);

/*
 * one event's document; NGX_DECLINED: the client is behind, and the
 * temporary file would pass sophon_events_max_temp_file_size
 */
ngx_int_t ngx_http_sophon_events_output_row(ngx_http_sophon_events_ctx_t *ctx,
    u_char *doc, size_t len);

/* '],"pagination":{...}}' and the last buffer, all handed to nginx */
ngx_int_t ngx_http_sophon_events_output_finish(
    ngx_http_sophon_events_ctx_t *ctx);

/*
 * passes what is ready down the filter chain and takes back sent buffers;
 * "flush": what is ready must go now, a partly filled buffer too
 */
ngx_int_t ngx_http_sophon_events_output_flush(
    ngx_http_sophon_events_ctx_t *ctx, ngx_uint_t flush);

/* a whole error answer, in the contract's shape; returns for finalize */
ngx_int_t ngx_http_sophon_events_send_error(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *message);


#endif /* _NGX_HTTP_SOPHON_EVENTS_OUTPUT_H_INCLUDED_ */
