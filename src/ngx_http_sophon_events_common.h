
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: the types every part of the module shares.
 */


#ifndef _NGX_HTTP_SOPHON_EVENTS_COMMON_H_INCLUDED_
#define _NGX_HTTP_SOPHON_EVENTS_COMMON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <libpq-fe.h>
#include <yajl/yajl_gen.h>


/* the filters of the contract, in the order their SQL conditions appear */
typedef enum {
    NGX_HTTP_SOPHON_EVENTS_DATETIME_GTE = 0,
    NGX_HTTP_SOPHON_EVENTS_DATETIME_LTE,
    NGX_HTTP_SOPHON_EVENTS_NAME,
    NGX_HTTP_SOPHON_EVENTS_IDENTITY_ID,
    NGX_HTTP_SOPHON_EVENTS_SCORE_MIN,
    NGX_HTTP_SOPHON_EVENTS_SCORE_MAX,
    NGX_HTTP_SOPHON_EVENTS_USER_TYPE,
    NGX_HTTP_SOPHON_EVENTS_ROOM,
    NGX_HTTP_SOPHON_EVENTS_GROUPS,
    NGX_HTTP_SOPHON_EVENTS_STREAMS,
    NGX_HTTP_SOPHON_EVENTS_NFILTERS
} ngx_http_sophon_events_filter_e;


/* DELETE's list of ids: a list parameter, kept past the filters */
#define NGX_HTTP_SOPHON_EVENTS_EVENT_ID_LIST  NGX_HTTP_SOPHON_EVENTS_NFILTERS


/*
 * One request's query, checked: every filter value is already the text of
 * a bound parameter (a number PostgreSQL parses exactly as we did, a LIKE
 * pattern, an array literal), or has a NULL data pointer when absent.
 */
typedef struct {
    ngx_uint_t                      per_page;
    ngx_uint_t                      page;
    ngx_uint_t                      top_k;        /* 0: no cap */
    ngx_uint_t                      with_feature; /* 0: left out */
    ngx_uint_t                      total_only;   /* HEAD: no documents */
    ngx_str_t                       filter[NGX_HTTP_SOPHON_EVENTS_NFILTERS
                                           + 1];

    /* the other endpoints' own: as given, checked by their endpoint */
    ngx_str_t                       interval;     /* stats */
    ngx_str_t                       group_by;     /* stats */
    ngx_str_t                       last_event_id; /* stream */
    ngx_str_t                       since;        /* stream */

    /* after=: the page after an event, (ts, id) desc, not an offset */
    ngx_str_t                       cursor;       /* as given */
    ngx_uint_t                      after;
    ngx_str_t                       after_ts;     /* bound parameters */
    ngx_str_t                       after_id;
} ngx_http_sophon_events_query_args_t;


/* what the query string may hold: the location's, read in place */
typedef struct {
    ngx_uint_t                      per_page_default;
    ngx_uint_t                      per_page_max;
    ngx_uint_t                      top_k_max;
    size_t                          max_value_length;
    ngx_uint_t                      max_list_items;
} ngx_http_sophon_events_limits_t;


typedef struct ngx_http_sophon_events_pool_s   ngx_http_sophon_events_pool_t;
typedef struct ngx_http_sophon_events_conn_s   ngx_http_sophon_events_conn_t;
typedef struct ngx_http_sophon_events_query_s  ngx_http_sophon_events_query_t;
typedef struct ngx_http_sophon_events_ctx_s    ngx_http_sophon_events_ctx_t;
typedef struct ngx_http_sophon_events_endpoint_s
    ngx_http_sophon_events_endpoint_t;
typedef struct ngx_http_sophon_events_stream_s ngx_http_sophon_events_stream_t;
typedef struct ngx_http_sophon_events_cluster_s
    ngx_http_sophon_events_cluster_t;
typedef struct ngx_http_sophon_events_server_s
    ngx_http_sophon_events_server_t;


/*
 * The http block's: every pool (ngx_http_sophon_events_pool_t *), every
 * server (ngx_http_sophon_events_server_t *), the counters' zone, and
 * whether a location shows it.
 */
typedef struct {
    ngx_array_t                     pools;
    ngx_array_t                     servers;
    ngx_shm_zone_t                 *zone;
    ngx_uint_t                      status;
} ngx_http_sophon_events_main_conf_t;


typedef struct {
    ngx_flag_t                      enable;
    ngx_flag_t                      stream;
    ngx_flag_t                      stats;

    /* the servers, and which of them reads go to */
    ngx_http_sophon_events_cluster_t  *db;
    ngx_uint_t                      read_from;

    /* DELETE: off unless enabled, on servers with a role that may delete */
    ngx_flag_t                      delete;
    ngx_http_sophon_events_cluster_t  *delete_db;

    ngx_msec_t                      stream_heartbeat;
    ngx_msec_t                      stream_poll;
    ngx_uint_t                      max_streams;

    ngx_msec_t                      connect_timeout;
    ngx_msec_t                      query_timeout;

    ngx_http_sophon_events_limits_t  limits;

    /* what the client has not taken yet: memory, then a file */
    ngx_bufs_t                      bufs;
    ngx_path_t                     *temp_path;
    off_t                           max_temp_file_size;

    /* a connection whose request went away reads on to the Sync */
    size_t                          drain_size;
    ngx_msec_t                      drain_time;
} ngx_http_sophon_events_loc_conf_t;


/*
 * A request waiting for a connection.  The pool wakes it by one path
 * only: its posted event, with "conn" set, or NULL if none could be
 * opened; the same event's timer is the queue's timeout.
 */

typedef struct {
    ngx_queue_t                     queue;        /* in pool->waiting */
    ngx_event_t                     event;
    ngx_http_sophon_events_conn_t  *conn;
    ngx_msec_t                      connect_timeout;
    unsigned                        queued:1;
} ngx_http_sophon_events_waiter_t;


struct ngx_http_sophon_events_ctx_s {
    ngx_http_request_t                    *request;
    ngx_http_sophon_events_loc_conf_t     *conf;
    ngx_http_sophon_events_query_args_t    args;

    /* what the request asks: its statement, its rows, its answer */
    const ngx_http_sophon_events_endpoint_t  *endpoint;
    ngx_str_t                              event_id;   /* one event */
    ngx_uint_t                             bucket_hours; /* stats */
    ngx_uint_t                             group_by;   /* stats */
    ngx_http_sophon_events_stream_t       *stream;

    /* the database side: the servers, the one in use, those tried */
    ngx_http_sophon_events_cluster_t      *cluster;
    ngx_uint_t                             want;
    ngx_uint_t                             tried;
    ngx_http_sophon_events_pool_t         *pool;
    ngx_http_sophon_events_waiter_t        waiter;
    ngx_http_sophon_events_query_t        *query;      /* being read */
    ngx_uint_t                             shape;      /* filters present */
    ngx_msec_t                             db_time;

    /* what the status zone's counters have of it already (streams) */
    ngx_uint_t                             rows_counted;
    off_t                                  sent_counted;

    /* the answer */
    int64_t                                total;
    ngx_uint_t                             rows;

    /* the last event's ts and id: the cursor of the next page */
    ngx_str_t                              last_ts;
    ngx_str_t                              last_id;
    size_t                                 last_id_size;
    yajl_gen                               gen;
    ngx_chain_t                           *out;
    ngx_chain_t                          **last_out;
    ngx_chain_t                           *free;
    ngx_chain_t                           *busy;
    ngx_chain_t                           *cl;         /* being filled */
    ngx_int_t                              nbufs;

    /* past the memory buffers, the rest goes through a temporary file */
    ngx_temp_file_t                       *temp_file;
    ngx_buf_t                             *spill;      /* filled, written */
    off_t                                  file_queued; /* handed on */
    ngx_chain_t                           *file_free;

    unsigned                               header_sent:1;
    unsigned                               db_sent:1;  /* a statement */
    unsigned                               discard:1;  /* HEAD */
    unsigned                               out_failed:1;
    unsigned                               over_cap:1;
    unsigned                               done:1;
    unsigned                               no_spill:1; /* streams */
    unsigned                               section:1;  /* delete */
};


extern ngx_module_t  ngx_http_sophon_events_module;


/* the content handler of every endpoint */
ngx_int_t ngx_http_sophon_events_handler(ngx_http_request_t *r);

ngx_table_elt_t *ngx_http_sophon_events_header(ngx_http_request_t *r,
    ngx_str_t *name);
ngx_int_t ngx_http_sophon_events_add_header(ngx_http_request_t *r,
    char *name, char *value);


#endif /* _NGX_HTTP_SOPHON_EVENTS_COMMON_H_INCLUDED_ */
