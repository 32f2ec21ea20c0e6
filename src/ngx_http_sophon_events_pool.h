
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: the per-worker pool of non-blocking
 * PostgreSQL connections and its queue of waiting requests.
 */


#ifndef _NGX_HTTP_SOPHON_EVENTS_POOL_H_INCLUDED_
#define _NGX_HTTP_SOPHON_EVENTS_POOL_H_INCLUDED_


#include "ngx_http_sophon_events_common.h"
#include "ngx_http_sophon_events_sql.h"

#include <poll.h>


typedef struct ngx_http_sophon_events_listener_s
    ngx_http_sophon_events_listener_t;

typedef void (*ngx_http_sophon_events_conn_handler_pt)(
    ngx_http_sophon_events_conn_t *conn);


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
    ngx_uint_t                         nconnecting;
    ngx_uint_t                         nwaiting;

    /* this worker's streams on this server, and its listening connection */
    ngx_http_sophon_events_listener_t *listener;

    /*
     * The server among others of its cluster (cluster.c): its name, for
     * the log and $sophon_events_server, what this worker knows of it,
     * shared by every pool of the same host:port, and this directive's
     * parameters.  A location's only server is always used.
     */
    ngx_str_t                          name;        /* host:port */
    ngx_http_sophon_events_server_t   *server;
    ngx_uint_t                         index;       /* in every pool */
    ngx_uint_t                         max_fails;
    time_t                             fail_timeout;
    ngx_msec_t                         max_lag;     /* 0: any */
    ngx_msec_t                         connect_timeout;
    unsigned                           several:1;   /* not alone */
};


typedef enum {
    NGX_HTTP_SOPHON_EVENTS_CONNECTING = 0,
    NGX_HTTP_SOPHON_EVENTS_IDLE,
    NGX_HTTP_SOPHON_EVENTS_ACTIVE
} ngx_http_sophon_events_conn_state_e;


struct ngx_http_sophon_events_conn_s {
    ngx_queue_t                             queue;     /* in pool->idle */
    ngx_http_sophon_events_pool_t          *pool;
    PGconn                                 *pg;
    ngx_connection_t                       *connection; /* PQsocket() */
    ino_t                                   socket_ino; /* its identity */
    ngx_http_sophon_events_conn_state_e     state;
    ngx_msec_t                              connect_deadline;

    /* whoever holds the connection (ACTIVE) is called on its events */
    ngx_http_sophon_events_conn_handler_pt  handler;
    void                                   *data;

    /* the statements this server session has prepared */
    ngx_http_sophon_events_prepared_t       prepared;

    unsigned                                watched:1; /* in the loop */
};


ngx_http_sophon_events_pool_t *ngx_http_sophon_events_pool_create(
    ngx_conf_t *cf, ngx_str_t *conninfo);

/*
 * NGX_OK: waiter->conn is the caller's now; NGX_AGAIN: waiter->event is
 * posted later (see ngx_http_sophon_events_waiter_t); NGX_DECLINED: the
 * queue is full; NGX_ERROR: no connection can be had.
 */
ngx_int_t ngx_http_sophon_events_pool_acquire(
    ngx_http_sophon_events_pool_t *pool,
    ngx_http_sophon_events_waiter_t *waiter, ngx_log_t *log);

/* the waiter leaves the queue; a connection handed to it goes back */
void ngx_http_sophon_events_pool_abandon(ngx_http_sophon_events_pool_t *pool,
    ngx_http_sophon_events_waiter_t *waiter);

/*
 * Gives a connection back: to the queue, or idle, if it is "reusable" and
 * clean (no result left unread, no transaction open); closed otherwise.
 * Its handler is forgotten either way.
 */
void ngx_http_sophon_events_pool_release(ngx_http_sophon_events_conn_t *conn,
    ngx_uint_t reusable);

void ngx_http_sophon_events_pool_close_idle(
    ngx_http_sophon_events_pool_t *pool);

/* does the socket have "what" (POLLIN, POLLOUT) now?  never waits */
ngx_uint_t ngx_http_sophon_events_conn_ready(
    ngx_http_sophon_events_conn_t *conn, short what);

/* set a socket's wait: the timer lives on the read event */
void ngx_http_sophon_events_conn_timer(ngx_http_sophon_events_conn_t *conn,
    ngx_msec_t timeout);

/*
 * libpq's message on one line, for nginx's log: its newlines and tabs
 * become spaces, the trailing ones go.  A copy, valid until the next
 * call: libpq's own text may go with its connection.
 */
const char *ngx_http_sophon_events_pq_message(const char *message);


#endif /* _NGX_HTTP_SOPHON_EVENTS_POOL_H_INCLUDED_ */
