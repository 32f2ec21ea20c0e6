
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: the counters of every worker in a shared
 * memory zone, and the status page that shows them, as JSON or in
 * Prometheus's text format.
 */


#ifndef _NGX_HTTP_SOPHON_EVENTS_STATUS_H_INCLUDED_
#define _NGX_HTTP_SOPHON_EVENTS_STATUS_H_INCLUDED_


#include "ngx_http_sophon_events_common.h"


/* what is counted outside the log phase: see ngx_http_sophon_events_count */
typedef enum {
    NGX_HTTP_SOPHON_EVENTS_COUNT_QUEUE_TIMEOUTS = 0,
    NGX_HTTP_SOPHON_EVENTS_COUNT_QUEUE_FULL,
    NGX_HTTP_SOPHON_EVENTS_COUNT_CONNECT_FAILURES,
    NGX_HTTP_SOPHON_EVENTS_COUNT_QUERY_TIMEOUTS,
    NGX_HTTP_SOPHON_EVENTS_COUNT_CUT,
    NGX_HTTP_SOPHON_EVENTS_COUNT_STREAMS,
    NGX_HTTP_SOPHON_EVENTS_COUNT_ROWS,
    NGX_HTTP_SOPHON_EVENTS_COUNT_BYTES,
    NGX_HTTP_SOPHON_EVENTS_NCOUNTS
} ngx_http_sophon_events_count_e;


char *ngx_http_sophon_events_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_sophon_events_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_sophon_events_status_postconfiguration(ngx_conf_t *cf,
    ngx_http_sophon_events_main_conf_t *smcf);
ngx_int_t ngx_http_sophon_events_status_init_module(ngx_cycle_t *cycle,
    ngx_http_sophon_events_main_conf_t *smcf);
void ngx_http_sophon_events_status_init_process(ngx_cycle_t *cycle,
    ngx_http_sophon_events_main_conf_t *smcf);
void ngx_http_sophon_events_status_exit_process(void);

/*
 * The hooks of the rest of the module: each costs a test of a pointer
 * when no zone is configured.
 */
void ngx_http_sophon_events_count(ngx_http_sophon_events_count_e what,
    ngx_atomic_int_t n);
void ngx_http_sophon_events_status_pool(ngx_http_sophon_events_pool_t *pool);
void ngx_http_sophon_events_status_server(
    ngx_http_sophon_events_server_t *server);
void ngx_http_sophon_events_status_streams(ngx_int_t delta);

/* the events and bytes a request sent since it was last counted */
void ngx_http_sophon_events_status_progress(ngx_http_sophon_events_ctx_t *ctx);


#endif /* _NGX_HTTP_SOPHON_EVENTS_STATUS_H_INCLUDED_ */
