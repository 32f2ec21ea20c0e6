
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: the statement, built from the filter set.
 */


#ifndef _NGX_HTTP_SOPHON_EVENTS_SQL_H_INCLUDED_
#define _NGX_HTTP_SOPHON_EVENTS_SQL_H_INCLUDED_


#include "ngx_http_sophon_events_common.h"


#define NGX_HTTP_SOPHON_EVENTS_MAX_PARAMS  (NGX_HTTP_SOPHON_EVENTS_NFILTERS + 8)

#define NGX_HTTP_SOPHON_EVENTS_NAME_LEN    sizeof("sophon_events_0000")

/* $1, $2 and $3 are int8; the filters' types are in the text */
#define NGX_HTTP_SOPHON_EVENTS_TYPED_PARAMS  3

/*
 * one shape per filter set, HEAD (the total alone) and after=: the
 * filters' bits, then those two
 */
#define NGX_HTTP_SOPHON_EVENTS_LIST_SHAPES                                    \
    (1 << (NGX_HTTP_SOPHON_EVENTS_NFILTERS + 2))

/* the other endpoints' statements follow the list's */
#define NGX_HTTP_SOPHON_EVENTS_SHAPE_EVENT    NGX_HTTP_SOPHON_EVENTS_LIST_SHAPES
#define NGX_HTTP_SOPHON_EVENTS_SHAPE_DELETE                                   \
    (NGX_HTTP_SOPHON_EVENTS_LIST_SHAPES + 1)
#define NGX_HTTP_SOPHON_EVENTS_SHAPE_STATS                                    \
    (NGX_HTTP_SOPHON_EVENTS_LIST_SHAPES + 2)

/*
 * a stream's: its start at now, then one per filter set and whether it
 * reads the past first
 */
#define NGX_HTTP_SOPHON_EVENTS_SHAPE_STREAM_NOW                               \
    (NGX_HTTP_SOPHON_EVENTS_LIST_SHAPES + 3)
#define NGX_HTTP_SOPHON_EVENTS_SHAPE_STREAM                                   \
    (NGX_HTTP_SOPHON_EVENTS_LIST_SHAPES + 4)

#define NGX_HTTP_SOPHON_EVENTS_SHAPES                                         \
    (NGX_HTTP_SOPHON_EVENTS_SHAPE_STREAM                                      \
     + (1 << (NGX_HTTP_SOPHON_EVENTS_NFILTERS + 1)))


/* which shapes a server session has prepared, one bit each */
typedef struct {
    uint8_t       bits[(NGX_HTTP_SOPHON_EVENTS_SHAPES + 7) / 8];
} ngx_http_sophon_events_prepared_t;


/* one execution of the prepared statement: its name and its parameters */
typedef struct {
    char          name[NGX_HTTP_SOPHON_EVENTS_NAME_LEN];
    int           nparams;
    const char   *values[NGX_HTTP_SOPHON_EVENTS_MAX_PARAMS];

    /* the parameters typed at Parse, the rest by casts in the text */
    int           ntypes;
    const Oid    *types;
} ngx_http_sophon_events_stmt_t;


/* the filters present, as a bit set: it names the statements' shape */
ngx_uint_t ngx_http_sophon_events_sql_shape(
    ngx_http_sophon_events_query_args_t *args);

extern const Oid  ngx_http_sophon_events_sql_types[];

#define ngx_http_sophon_events_sql_prepared(prepared, shape)                  \
    ((prepared)->bits[(shape) / 8] & (1 << ((shape) % 8)))

#define ngx_http_sophon_events_sql_set_prepared(prepared, shape)              \
    (prepared)->bits[(shape) / 8] |= 1 << ((shape) % 8)

/* the statement's text, for PQsendPrepare(), NUL-terminated */
ngx_int_t ngx_http_sophon_events_sql_text(ngx_pool_t *pool, ngx_uint_t shape,
    ngx_str_t *text);

/* its name and parameters for this request */
ngx_int_t ngx_http_sophon_events_sql_stmt(ngx_pool_t *pool,
    ngx_http_sophon_events_query_args_t *args,
    ngx_http_sophon_events_stmt_t *stmt);

/* a statement's name, from its shape */
void ngx_http_sophon_events_sql_name(ngx_http_sophon_events_stmt_t *stmt,
    ngx_uint_t shape);

/* the filters' conditions, " AND ...", their parameters from "first" on */
u_char *ngx_http_sophon_events_sql_filters(u_char *p, u_char *last,
    ngx_uint_t filters, ngx_uint_t first);

/* the filters' values, as parameters from stmt->nparams on */
ngx_int_t ngx_http_sophon_events_sql_filter_values(ngx_pool_t *pool,
    ngx_http_sophon_events_query_args_t *args,
    ngx_http_sophon_events_stmt_t *stmt);


#endif /* _NGX_HTTP_SOPHON_EVENTS_SQL_H_INCLUDED_ */
