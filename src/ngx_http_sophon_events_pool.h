
/*
 * ngx_http_sophon_events_module: the per-worker pool of non-blocking
 * PostgreSQL connections and its queue of waiting requests.
 */


#ifndef _NGX_HTTP_SOPHON_EVENTS_POOL_H_INCLUDED_
#define _NGX_HTTP_SOPHON_EVENTS_POOL_H_INCLUDED_


#include "ngx_http_sophon_events_common.h"

#include <poll.h>


/*
 * one bit per statement shape (the filter set, and with_feature): has this
 * connection prepared it?
 */
#define NGX_HTTP_SOPHON_EVENTS_SHAPES                                         \
    (1 << (NGX_HTTP_SOPHON_EVENTS_NFILTERS + 1))


struct ngx_http_sophon_events_pool_s {
    /* the connection string, parsed, for PQconnectStartParams() */
    const char                       **keywords;
    const char                       **values;

    ngx_uint_t                         max_connections;
    ngx_uint_t                         max_waiting;
    ngx_msec_t                         wait_timeout;
    ngx_msec_t                         idle_timeout;

    /* the state of this worker, set up by ngx_fork()'s copy */
    ngx_queue_t                        idle;
    ngx_queue_t                        waiting;
    ngx_uint_t                         nconnections;
    ngx_uint_t                         nwaiting;
};


typedef enum {
    NGX_HTTP_SOPHON_EVENTS_CONNECTING = 0,
    NGX_HTTP_SOPHON_EVENTS_IDLE,
    NGX_HTTP_SOPHON_EVENTS_ACTIVE
} ngx_http_sophon_events_conn_state_e;


struct ngx_http_sophon_events_conn_s {
    ngx_queue_t                          queue;       /* in pool->idle */
    ngx_http_sophon_events_pool_t       *pool;
    PGconn                              *pg;
    ngx_connection_t                    *connection;  /* PQsocket() */
    ino_t                                socket_ino;  /* its identity */
    ngx_http_sophon_events_ctx_t        *ctx;         /* its request */
    ngx_http_sophon_events_conn_state_e  state;
    ngx_msec_t                           connect_timeout;
    unsigned                             watched:1;   /* in the loop */
    uint8_t                              prepared[
                                            NGX_HTTP_SOPHON_EVENTS_SHAPES / 8];
};


ngx_http_sophon_events_pool_t *ngx_http_sophon_events_pool_create(
    ngx_conf_t *cf, ngx_str_t *conninfo);

/*
 * NGX_OK: ctx->conn is ready now; NGX_AGAIN: ngx_http_sophon_events_ready()
 * is called later (ctx->conn set) or the request fails through
 * ngx_http_sophon_events_fail(); NGX_DECLINED: the queue is full;
 * NGX_ERROR: no connection can be had.
 */
ngx_int_t ngx_http_sophon_events_pool_acquire(
    ngx_http_sophon_events_ctx_t *ctx);

/* gives the request's connection back, or closes it if it is not clean */
void ngx_http_sophon_events_pool_release(ngx_http_sophon_events_ctx_t *ctx,
    ngx_uint_t reusable);

/* a request that leaves the queue or gives up its connection attempt */
void ngx_http_sophon_events_pool_abandon(ngx_http_sophon_events_ctx_t *ctx);

void ngx_http_sophon_events_pool_close_idle(
    ngx_http_sophon_events_pool_t *pool);

/* does the socket have "what" (POLLIN, POLLOUT) now?  never waits */
ngx_uint_t ngx_http_sophon_events_conn_ready(
    ngx_http_sophon_events_conn_t *conn, short what);

/* set a socket's wait: the timer lives on the read event */
void ngx_http_sophon_events_conn_timer(ngx_http_sophon_events_conn_t *conn,
    ngx_msec_t timeout);


#endif /* _NGX_HTTP_SOPHON_EVENTS_POOL_H_INCLUDED_ */
