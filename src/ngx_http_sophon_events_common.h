
/*
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
    ngx_str_t                       filter[NGX_HTTP_SOPHON_EVENTS_NFILTERS];
} ngx_http_sophon_events_query_args_t;


typedef struct ngx_http_sophon_events_pool_s  ngx_http_sophon_events_pool_t;
typedef struct ngx_http_sophon_events_conn_s  ngx_http_sophon_events_conn_t;
typedef struct ngx_http_sophon_events_ctx_s   ngx_http_sophon_events_ctx_t;


typedef struct {
    ngx_flag_t                      enable;
    ngx_http_sophon_events_pool_t  *pool;

    ngx_msec_t                      connect_timeout;
    ngx_msec_t                      query_timeout;

    ngx_uint_t                      per_page_default;
    ngx_uint_t                      per_page_max;
    ngx_uint_t                      top_k_max;
    size_t                          max_value_length;
    ngx_uint_t                      max_list_items;

    ngx_bufs_t                      bufs;
} ngx_http_sophon_events_loc_conf_t;


struct ngx_http_sophon_events_ctx_s {
    ngx_http_request_t                    *request;
    ngx_http_sophon_events_loc_conf_t     *conf;
    ngx_http_sophon_events_query_args_t    args;

    /* the database side */
    ngx_http_sophon_events_conn_t         *conn;
    ngx_queue_t                            waiting;    /* in pool->waiting */
    ngx_event_t                            wait_timer;
    ngx_uint_t                             shape;      /* filters present */
    ngx_uint_t                             steps[4];   /* the pipeline */
    ngx_uint_t                             nsteps;
    ngx_uint_t                             step;       /* being read */
    ngx_uint_t                             error_status;
    ngx_msec_t                             db_start;
    ngx_msec_t                             db_time;

    /* the answer */
    int64_t                                total;
    ngx_uint_t                             rows;
    yajl_gen                               gen;
    ngx_chain_t                           *out;
    ngx_chain_t                          **last_out;
    ngx_chain_t                           *free;
    ngx_chain_t                           *busy;
    ngx_chain_t                           *cl;         /* being filled */
    ngx_int_t                              nbufs;

    /* rows received and not yet all copied into buffers */
    PGresult                              *result;
    int                                    row;
    size_t                                 row_sent;

    unsigned                               queued:1;
    unsigned                               paused:1;   /* client behind */
    unsigned                               header_sent:1;
    unsigned                               discard:1;  /* HEAD */
    unsigned                               out_failed:1;
    unsigned                               done:1;
};


extern ngx_module_t  ngx_http_sophon_events_module;


#endif /* _NGX_HTTP_SOPHON_EVENTS_COMMON_H_INCLUDED_ */
