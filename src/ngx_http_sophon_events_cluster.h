
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: the servers of one PostgreSQL cluster, a
 * primary and its streaming standbys, and which of them a request uses.
 */


#ifndef _NGX_HTTP_SOPHON_EVENTS_CLUSTER_H_INCLUDED_
#define _NGX_HTTP_SOPHON_EVENTS_CLUSTER_H_INCLUDED_


#include "ngx_http_sophon_events_common.h"

#include <libpq-fe.h>


/* a tried server is one bit of a request's ngx_uint_t */
#define NGX_HTTP_SOPHON_EVENTS_MAX_SERVERS  32


/* sophon_events_read_from, and what writes and streams need */
#define NGX_HTTP_SOPHON_EVENTS_READ_STANDBY  0
#define NGX_HTTP_SOPHON_EVENTS_READ_PRIMARY  1
#define NGX_HTTP_SOPHON_EVENTS_READ_ANY      2
#define NGX_HTTP_SOPHON_EVENTS_PRIMARY_ONLY  3


/* what a server told us it is; unknown until it has */
#define NGX_HTTP_SOPHON_EVENTS_ROLE_UNKNOWN  0
#define NGX_HTTP_SOPHON_EVENTS_ROLE_PRIMARY  1
#define NGX_HTTP_SOPHON_EVENTS_ROLE_STANDBY  2


/* a location's servers: one pool each */

struct ngx_http_sophon_events_cluster_s {
    /* ngx_http_sophon_events_pool_t *, one a server */
    ngx_array_t                     servers;
    ngx_uint_t                      next;     /* this worker's round robin */
};


typedef struct ngx_http_sophon_events_probe_s
    ngx_http_sophon_events_probe_t;


/*
 * One server, host:port, whatever the pools (roles, locations) that reach
 * it: what this worker knows of it.
 */

struct ngx_http_sophon_events_server_s {
    ngx_str_t                       name;
    ngx_uint_t                      index;     /* in every server */
    ngx_uint_t                      fails;
    time_t                          first_fail;
    time_t                          down_until;
    ngx_uint_t                      role;
    ngx_int_t                       lag;       /* ms; -1: unknown */
    ngx_msec_t                      lag_at;    /* when it was read */

    /* the probe, on a connection of one of its pools of several */
    ngx_http_sophon_events_pool_t  *probe_pool;
    ngx_http_sophon_events_probe_t *probe;
    ngx_msec_t                      interval;
};


/*
 * A healthy server for "want", round robin among the best: for reads the
 * role asked for, then one whose role is not known yet, then the other;
 * for writes and streams the primary, or one not known yet.  Servers in
 * "tried" are left out, and the one returned is added.  NULL: none is
 * healthy.
 */
ngx_http_sophon_events_pool_t *ngx_http_sophon_events_cluster_pick(
    ngx_http_sophon_events_cluster_t *cluster, ngx_uint_t want,
    ngx_uint_t *tried);

/* the server of "name", made at its first pool */
ngx_http_sophon_events_server_t *ngx_http_sophon_events_server(
    ngx_conf_t *cf, ngx_array_t *servers, ngx_str_t *name);

/*
 * A connection to the server failed, or one in use broke, or a probe
 * found no answer: 1 if that leaves the server out now.
 */
ngx_uint_t ngx_http_sophon_events_server_failed(
    ngx_http_sophon_events_pool_t *pool, ngx_log_t *log);

/* a connection of a pool among several says its server is a standby */
ngx_uint_t ngx_http_sophon_events_server_standby_now(
    ngx_http_sophon_events_conn_t *conn);

/* a standby, as this worker knows: its streams end (stream.c) */
ngx_uint_t ngx_http_sophon_events_server_standby(
    ngx_http_sophon_events_pool_t *pool);

/* a connection is ready: the server is up, and says what it is now */
void ngx_http_sophon_events_server_up(ngx_http_sophon_events_pool_t *pool,
    PGconn *pg);

/* a connection comes back: a promotion shows in its in_hot_standby */
void ngx_http_sophon_events_server_role(ngx_http_sophon_events_pool_t *pool,
    PGconn *pg);

/* each worker probes its servers of clusters of several */
ngx_int_t ngx_http_sophon_events_cluster_init_process(ngx_cycle_t *cycle,
    ngx_array_t *servers, ngx_array_t *pools);


#endif /* _NGX_HTTP_SOPHON_EVENTS_CLUSTER_H_INCLUDED_ */
