
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: the query string, parsed and checked.
 */


#ifndef _NGX_HTTP_SOPHON_EVENTS_ARGS_H_INCLUDED_
#define _NGX_HTTP_SOPHON_EVENTS_ARGS_H_INCLUDED_


#include "ngx_http_sophon_events_common.h"


/*
 * NGX_OK: "args" holds the query; NGX_DECLINED: the client sent something
 * the contract refuses, "error" says what, naming the parameter;
 * NGX_ERROR: out of memory.  It touches nothing but "pool", so the fuzzer
 * can drive it without a request.
 */
ngx_int_t ngx_http_sophon_events_parse_args(ngx_pool_t *pool,
    ngx_str_t *query, ngx_http_sophon_events_limits_t *limits,
    ngx_http_sophon_events_query_args_t *args, ngx_str_t *error);

/* strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF */
ngx_int_t ngx_http_sophon_events_utf8_valid(u_char *p, size_t n);


#endif /* _NGX_HTTP_SOPHON_EVENTS_ARGS_H_INCLUDED_ */
