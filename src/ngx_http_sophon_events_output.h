
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
 * the 200 header, of "type" (NULL: JSON), and a yajl generator in ctx->gen
 * that writes into the answer
 */
ngx_int_t ngx_http_sophon_events_output_header(
    ngx_http_sophon_events_ctx_t *ctx, ngx_str_t *type);

/* bytes of the answer; a document, without its feature if so asked */
ngx_int_t ngx_http_sophon_events_output_write(
    ngx_http_sophon_events_ctx_t *ctx, const u_char *data, size_t len);
ngx_int_t ngx_http_sophon_events_output_doc(
    ngx_http_sophon_events_ctx_t *ctx, u_char *doc, size_t len);
ngx_int_t ngx_http_sophon_events_output_line(
    ngx_http_sophon_events_ctx_t *ctx, u_char *doc, size_t len);

/* the answer is all written: its last buffer goes to nginx */
ngx_int_t ngx_http_sophon_events_output_end(
    ngx_http_sophon_events_ctx_t *ctx);

/* "key": value, with yajl */
ngx_int_t ngx_http_sophon_events_gen_key_int(yajl_gen gen, const char *key,
    int64_t value);

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

/* the same with the box's own code and status name (40401 ID_NOT_FOUND) */
ngx_int_t ngx_http_sophon_events_send_error_code(ngx_http_request_t *r,
    ngx_uint_t status, ngx_uint_t code, ngx_str_t *name, ngx_str_t *message);


#endif /* _NGX_HTTP_SOPHON_EVENTS_OUTPUT_H_INCLUDED_ */
