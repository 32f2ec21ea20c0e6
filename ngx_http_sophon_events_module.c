
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module
 *
 * GET /SophonFace/api/events: the event history of a SophonFace box, read
 * from PostgreSQL without ever blocking the worker and streamed out as
 * JSON.  This file holds the directives, the configuration and the content
 * handler; src/ holds one file per concern (args, sql, pool, query,
 * output).
 */


#include "ngx_http_sophon_events_common.h"
#include "ngx_http_sophon_events_args.h"
#include "ngx_http_sophon_events_sql.h"
#include "ngx_http_sophon_events_pool.h"
#include "ngx_http_sophon_events_cluster.h"
#include "ngx_http_sophon_events_query.h"
#include "ngx_http_sophon_events_output.h"
#include "ngx_http_sophon_events_stream.h"
#include "ngx_http_sophon_events_status.h"


static ngx_int_t ngx_http_sophon_events_route(ngx_http_request_t *r,
    ngx_http_sophon_events_ctx_t *ctx, ngx_str_t *error);
static ngx_int_t ngx_http_sophon_events_event_id(ngx_http_request_t *r,
    ngx_http_sophon_events_ctx_t *ctx, ngx_str_t *error);
static ngx_int_t ngx_http_sophon_events_allow(ngx_http_request_t *r,
    ngx_str_t *error);
static ngx_int_t ngx_http_sophon_events_start(ngx_http_request_t *r,
    ngx_http_sophon_events_ctx_t *ctx);
static void ngx_http_sophon_events_write_handler(ngx_http_request_t *r);
static void ngx_http_sophon_events_cleanup(void *data);

static ngx_int_t ngx_http_sophon_events_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

static ngx_int_t ngx_http_sophon_events_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_sophon_events_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_sophon_events_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_sophon_events_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_sophon_events_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_sophon_events(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_sophon_events_endpoint(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_sophon_events_db_param(
    ngx_http_sophon_events_pool_t *pool, ngx_str_t *param);
static char *ngx_http_sophon_events_db(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_sophon_events_drain(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_sophon_events_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_sophon_events_init_process(ngx_cycle_t *cycle);
static void ngx_http_sophon_events_exit_process(ngx_cycle_t *cycle);


static ngx_conf_num_bounds_t  ngx_http_sophon_events_positive = {
    ngx_conf_check_num_bounds, 1, NGX_MAX_INT32_VALUE
};


static ngx_conf_enum_t  ngx_http_sophon_events_read_from[] = {
    { ngx_string("standby"), NGX_HTTP_SOPHON_EVENTS_READ_STANDBY },
    { ngx_string("primary"), NGX_HTTP_SOPHON_EVENTS_READ_PRIMARY },
    { ngx_string("any"), NGX_HTTP_SOPHON_EVENTS_READ_ANY },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_sophon_events_commands[] = {

    { ngx_string("sophon_events"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_sophon_events,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("sophon_events_stream"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_sophon_events_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sophon_events_loc_conf_t, stream),
      NULL },

    { ngx_string("sophon_events_stats"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_sophon_events_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sophon_events_loc_conf_t, stats),
      NULL },

    { ngx_string("sophon_events_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_sophon_events_status,
      0,
      0,
      NULL },

    { ngx_string("sophon_events_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_sophon_events_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("sophon_events_db"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_sophon_events_db,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sophon_events_loc_conf_t, db),
      NULL },

    { ngx_string("sophon_events_read_from"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sophon_events_loc_conf_t, read_from),
      &ngx_http_sophon_events_read_from },

    { ngx_string("sophon_events_delete"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sophon_events_loc_conf_t, delete),
      NULL },

    { ngx_string("sophon_events_delete_db"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_sophon_events_db,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sophon_events_loc_conf_t, delete_db),
      NULL },

    { ngx_string("sophon_events_stream_heartbeat"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sophon_events_loc_conf_t, stream_heartbeat),
      NULL },

    { ngx_string("sophon_events_stream_poll"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sophon_events_loc_conf_t, stream_poll),
      NULL },

    { ngx_string("sophon_events_max_streams"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sophon_events_loc_conf_t, max_streams),
      &ngx_http_sophon_events_positive },

    { ngx_string("sophon_events_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sophon_events_loc_conf_t, connect_timeout),
      NULL },

    { ngx_string("sophon_events_query_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sophon_events_loc_conf_t, query_timeout),
      NULL },

    { ngx_string("sophon_events_per_page"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sophon_events_loc_conf_t, limits.per_page_default),
      &ngx_http_sophon_events_positive },

    { ngx_string("sophon_events_max_per_page"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sophon_events_loc_conf_t, limits.per_page_max),
      &ngx_http_sophon_events_positive },

    { ngx_string("sophon_events_max_top_k"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sophon_events_loc_conf_t, limits.top_k_max),
      &ngx_http_sophon_events_positive },

    { ngx_string("sophon_events_max_value_length"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sophon_events_loc_conf_t, limits.max_value_length),
      NULL },

    { ngx_string("sophon_events_max_list_items"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sophon_events_loc_conf_t, limits.max_list_items),
      &ngx_http_sophon_events_positive },

    { ngx_string("sophon_events_buffers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_conf_set_bufs_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sophon_events_loc_conf_t, bufs),
      NULL },

    { ngx_string("sophon_events_temp_path"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1234,
      ngx_conf_set_path_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sophon_events_loc_conf_t, temp_path),
      NULL },

    { ngx_string("sophon_events_max_temp_file_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_off_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sophon_events_loc_conf_t, max_temp_file_size),
      NULL },

    { ngx_string("sophon_events_drain"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_sophon_events_drain,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_sophon_events_module_ctx = {
    ngx_http_sophon_events_add_variables,   /* preconfiguration */
    ngx_http_sophon_events_postconfiguration, /* postconfiguration */

    ngx_http_sophon_events_create_main_conf, /* create main configuration */
    NULL,                                   /* init main configuration */

    NULL,                                   /* create server configuration */
    NULL,                                   /* merge server configuration */

    ngx_http_sophon_events_create_loc_conf, /* create location configuration */
    ngx_http_sophon_events_merge_loc_conf   /* merge location configuration */
};


ngx_module_t  ngx_http_sophon_events_module = {
    NGX_MODULE_V1,
    &ngx_http_sophon_events_module_ctx,     /* module context */
    ngx_http_sophon_events_commands,        /* module directives */
    NGX_HTTP_MODULE,                        /* module type */
    NULL,                                   /* init master */
    ngx_http_sophon_events_init_module,     /* init module */
    ngx_http_sophon_events_init_process,    /* init process */
    NULL,                                   /* init thread */
    NULL,                                   /* exit thread */
    ngx_http_sophon_events_exit_process,    /* exit process */
    NULL,                                   /* exit master */
    NGX_MODULE_V1_PADDING
};


enum {
    NGX_HTTP_SOPHON_EVENTS_VAR_ROWS = 0,
    NGX_HTTP_SOPHON_EVENTS_VAR_TOTAL,
    NGX_HTTP_SOPHON_EVENTS_VAR_DB_TIME,
    NGX_HTTP_SOPHON_EVENTS_VAR_SERVER
};


static ngx_http_variable_t  ngx_http_sophon_events_vars[] = {

    { ngx_string("sophon_events_rows"), NULL,
      ngx_http_sophon_events_variable, NGX_HTTP_SOPHON_EVENTS_VAR_ROWS,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("sophon_events_total"), NULL,
      ngx_http_sophon_events_variable, NGX_HTTP_SOPHON_EVENTS_VAR_TOTAL,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("sophon_events_db_time"), NULL,
      ngx_http_sophon_events_variable, NGX_HTTP_SOPHON_EVENTS_VAR_DB_TIME,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("sophon_events_server"), NULL,
      ngx_http_sophon_events_variable, NGX_HTTP_SOPHON_EVENTS_VAR_SERVER,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_sophon_events_not_allowed =
    ngx_string("method: only GET and HEAD are allowed");

static ngx_str_t  ngx_http_sophon_events_not_allowed_delete =
    ngx_string("method: only GET, HEAD and DELETE are allowed");

static ngx_str_t  ngx_http_sophon_events_no_endpoint =
    ngx_string("no such endpoint");

static ngx_str_t  ngx_http_sophon_events_no_server =
    ngx_string("no database server is available");


ngx_int_t
ngx_http_sophon_events_handler(ngx_http_request_t *r)
{
    ngx_int_t                           rc;
    ngx_str_t                           error;
    ngx_http_sophon_events_ctx_t       *ctx;
    ngx_http_sophon_events_loc_conf_t  *conf;

    /* a body left unread would be taken for the next request */

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    conf = ngx_http_get_module_loc_conf(r, ngx_http_sophon_events_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_sophon_events_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->conf = conf;
    ctx->cluster = conf->db;
    ctx->want = conf->read_from;

    rc = ngx_http_sophon_events_route(r, ctx, &error);

    if (rc == NGX_OK) {
        rc = ngx_http_sophon_events_parse_args(r->pool, &r->args,
                                               &conf->limits, &ctx->args,
                                               &error);
        if (rc == NGX_DECLINED) {
            rc = NGX_HTTP_BAD_REQUEST;
        }
    }

    if (rc == NGX_OK && ctx->endpoint->check) {
        /* what only its endpoint knows: a stats interval, a stream cursor */

        rc = ctx->endpoint->check(ctx, &error);
        if (rc == NGX_DECLINED) {
            rc = NGX_HTTP_BAD_REQUEST;
        }
    }

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "sophon_events: bad request: %V", &error);

        if (rc == NGX_HTTP_NOT_ALLOWED
            && ngx_http_sophon_events_allow(r, &error) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_sophon_events_send_error(r, rc, &error);
    }

    if (ctx->endpoint == &ngx_http_sophon_events_list) {
        /* the same headers as GET need only the total */
        ctx->args.total_only = (r->method == NGX_HTTP_HEAD);
        ctx->shape = ngx_http_sophon_events_sql_shape(&ctx->args);
    }

    ctx->pool = ngx_http_sophon_events_cluster_pick(ctx->cluster, ctx->want,
                                                    &ctx->tried);
    if (ctx->pool == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "sophon_events: no database server is available");

        return ngx_http_sophon_events_send_error(r,
                                      NGX_HTTP_SERVICE_UNAVAILABLE,
                                      &ngx_http_sophon_events_no_server);
    }

    return ngx_http_sophon_events_start(r, ctx);
}


/*
 * Which endpoint the request asks for: the location's directive, then, in
 * a location of sophon_events, the method and the URI.  A prefix location
 * serves the list at its own URI and one event at "<location>/<_id>".
 */

static ngx_int_t
ngx_http_sophon_events_route(ngx_http_request_t *r,
    ngx_http_sophon_events_ctx_t *ctx, ngx_str_t *error)
{
    ngx_int_t                           rc;
    ngx_http_sophon_events_loc_conf_t  *conf;

    conf = ctx->conf;

    if (conf->stream || conf->stats) {
        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            *error = ngx_http_sophon_events_not_allowed;
            return NGX_HTTP_NOT_ALLOWED;
        }

        if (conf->stats) {
            ctx->endpoint = &ngx_http_sophon_events_stats;
            return NGX_OK;
        }

        /* LISTEN runs on the primary only */

        ctx->endpoint = &ngx_http_sophon_events_stream_batch;
        ctx->want = NGX_HTTP_SOPHON_EVENTS_PRIMARY_ONLY;
        return NGX_OK;
    }

    rc = ngx_http_sophon_events_event_id(r, ctx, error);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ctx->event_id.data) {
        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            *error = ngx_http_sophon_events_not_allowed;
            return NGX_HTTP_NOT_ALLOWED;
        }

        ctx->endpoint = &ngx_http_sophon_events_one;
        ctx->shape = NGX_HTTP_SOPHON_EVENTS_SHAPE_EVENT;
        return NGX_OK;
    }

    if (r->method == NGX_HTTP_DELETE && conf->delete == 1) {
        ctx->endpoint = &ngx_http_sophon_events_delete;
        ctx->shape = NGX_HTTP_SOPHON_EVENTS_SHAPE_DELETE;
        ctx->cluster = conf->delete_db;
        ctx->want = NGX_HTTP_SOPHON_EVENTS_PRIMARY_ONLY;
        return NGX_OK;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        *error = (conf->delete == 1)
                 ? ngx_http_sophon_events_not_allowed_delete
                 : ngx_http_sophon_events_not_allowed;
        return NGX_HTTP_NOT_ALLOWED;
    }

    ctx->endpoint = &ngx_http_sophon_events_list;

    return NGX_OK;
}


/* 405's Allow: the methods its message names */

static ngx_int_t
ngx_http_sophon_events_allow(ngx_http_request_t *r, ngx_str_t *error)
{
    return ngx_http_sophon_events_add_header(r, "Allow",
              (error->data == ngx_http_sophon_events_not_allowed_delete.data)
              ? "GET, HEAD, DELETE" : "GET, HEAD");
}


/*
 * "<location>/<_id>": the rest of the URI, decoded by nginx, is the id.
 * NGX_OK with ctx->event_id unset: the location's own URI, the list.  An
 * exact or a regex location has no such rest: it serves the list alone.
 */

static ngx_int_t
ngx_http_sophon_events_event_id(ngx_http_request_t *r,
    ngx_http_sophon_events_ctx_t *ctx, ngx_str_t *error)
{
    u_char                    *p, *end;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (clcf->exact_match
#if (NGX_PCRE)
        || clcf->regex
#endif
        || r->uri.len <= clcf->name.len)
    {
        return NGX_OK;
    }

    p = r->uri.data + clcf->name.len;
    end = r->uri.data + r->uri.len;

    if (clcf->name.len == 0 || clcf->name.data[clcf->name.len - 1] != '/') {
        if (*p != '/') {
            /* "/SophonFace/api/eventsX" */
            *error = ngx_http_sophon_events_no_endpoint;
            return NGX_HTTP_NOT_FOUND;
        }

        p++;
    }

    if (p == end) {
        /* "<location>/": the list */
        return NGX_OK;
    }

    if ((size_t) (end - p) > ctx->conf->limits.max_value_length) {
        error->data = ngx_pnalloc(r->pool, NGX_INT_T_LEN + 32);
        if (error->data == NULL) {
            return NGX_ERROR;
        }

        error->len = ngx_sprintf(error->data, "_id: is longer than %uz bytes",
                                 ctx->conf->limits.max_value_length)
                     - error->data;
        return NGX_HTTP_BAD_REQUEST;
    }

    if (ngx_strlchr(p, end, '\0') != NULL
        || ngx_http_sophon_events_utf8_valid(p, end - p) != NGX_OK)
    {
        ngx_str_set(error, "_id: is not valid UTF-8 text");
        return NGX_HTTP_BAD_REQUEST;
    }

    ctx->event_id.data = ngx_pnalloc(r->pool, end - p + 1);
    if (ctx->event_id.data == NULL) {
        return NGX_ERROR;
    }

    ctx->event_id.len = end - p;
    (void) ngx_cpystrn(ctx->event_id.data, p, end - p + 1);

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_start(ngx_http_request_t *r,
    ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_int_t            rc;
    ngx_http_cleanup_t  *cln;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_sophon_events_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_sophon_events_module);

    if (ctx->stream) {
        rc = ngx_http_sophon_events_stream_start(ctx);
        if (rc != NGX_DONE) {
            return rc;
        }
    }

    /* notice a client that goes away while the database works */
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ctx->stream
                             ? ngx_http_sophon_events_stream_write_handler
                             : ngx_http_sophon_events_write_handler;

    r->main->count++;

    if (ctx->stream == NULL) {
        ngx_http_sophon_events_query_start(ctx);
    }

    return NGX_DONE;
}


static void
ngx_http_sophon_events_write_handler(ngx_http_request_t *r)
{
    ngx_http_sophon_events_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_sophon_events_module);

    ngx_http_sophon_events_query_client(ctx);
}


/*
 * The request ends, however: it lets go of the database.  A statement
 * still running is read to its end for nobody, and its connection goes
 * back to the pool.
 */

static void
ngx_http_sophon_events_cleanup(void *data)
{
    ngx_http_sophon_events_ctx_t  *ctx = data;

    ngx_http_sophon_events_query_detach(ctx);
}


/* a header of the answer: its name and value are static strings */

ngx_int_t
ngx_http_sophon_events_add_header(ngx_http_request_t *r, char *name,
    char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);

#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


/* the request's first header of this name, or NULL */

ngx_table_elt_t *
ngx_http_sophon_events_header(ngx_http_request_t *r, ngx_str_t *name)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == name->len
            && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0)
        {
            return &h[i];
        }
    }
}


static ngx_int_t
ngx_http_sophon_events_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                        *p;
    ngx_http_sophon_events_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_sophon_events_module);

    if (ctx == NULL
        || (data == NGX_HTTP_SOPHON_EVENTS_VAR_SERVER && ctx->pool == NULL))
    {
        v->not_found = 1;
        return NGX_OK;
    }

    if (data == NGX_HTTP_SOPHON_EVENTS_VAR_SERVER) {
        /* the server the request went to last */
        v->data = ctx->pool->name.data;
        v->len = ctx->pool->name.len;
        v->valid = 1;
        v->no_cacheable = 1;
        v->not_found = 0;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;

    switch (data) {

    case NGX_HTTP_SOPHON_EVENTS_VAR_ROWS:
        p = ngx_sprintf(p, "%ui", ctx->rows);
        break;

    case NGX_HTTP_SOPHON_EVENTS_VAR_TOTAL:
        p = ngx_sprintf(p, "%L", ctx->total);
        break;

    default: /* NGX_HTTP_SOPHON_EVENTS_VAR_DB_TIME */
        p = ngx_sprintf(p, "%M", ctx->db_time);
        break;
    }

    v->len = p - v->data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_sophon_events_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_sophon_events_main_conf_t  *smcf;

    smcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_sophon_events_module);

    return ngx_http_sophon_events_status_postconfiguration(cf, smcf);
}


static void *
ngx_http_sophon_events_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_sophon_events_main_conf_t  *smcf;

    smcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_sophon_events_main_conf_t));
    if (smcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&smcf->pools, cf->pool, 4,
                       sizeof(ngx_http_sophon_events_pool_t *))
        != NGX_OK
        || ngx_array_init(&smcf->servers, cf->pool, 4,
                          sizeof(ngx_http_sophon_events_server_t *))
           != NGX_OK)
    {
        return NULL;
    }

    return smcf;
}


static void *
ngx_http_sophon_events_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_sophon_events_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_sophon_events_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->bufs.num = 0;
     *     conf->temp_path = NULL;
     */

    conf->enable = NGX_CONF_UNSET;
    conf->stream = NGX_CONF_UNSET;
    conf->stats = NGX_CONF_UNSET;
    conf->db = NGX_CONF_UNSET_PTR;
    conf->read_from = NGX_CONF_UNSET_UINT;
    conf->delete = NGX_CONF_UNSET;
    conf->delete_db = NGX_CONF_UNSET_PTR;
    conf->stream_heartbeat = NGX_CONF_UNSET_MSEC;
    conf->stream_poll = NGX_CONF_UNSET_MSEC;
    conf->max_streams = NGX_CONF_UNSET_UINT;
    conf->connect_timeout = NGX_CONF_UNSET_MSEC;
    conf->query_timeout = NGX_CONF_UNSET_MSEC;
    conf->limits.per_page_default = NGX_CONF_UNSET_UINT;
    conf->limits.per_page_max = NGX_CONF_UNSET_UINT;
    conf->limits.top_k_max = NGX_CONF_UNSET_UINT;
    conf->limits.max_value_length = NGX_CONF_UNSET_SIZE;
    conf->limits.max_list_items = NGX_CONF_UNSET_UINT;
    conf->max_temp_file_size = NGX_CONF_UNSET;
    conf->drain_size = NGX_CONF_UNSET_SIZE;
    conf->drain_time = NGX_CONF_UNSET_MSEC;

    return conf;
}


static char *
ngx_http_sophon_events_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_sophon_events_loc_conf_t  *prev = parent;
    ngx_http_sophon_events_loc_conf_t  *conf = child;

    ngx_uint_t                       i;
    ngx_http_sophon_events_pool_t  **server;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->stream, prev->stream, 0);
    ngx_conf_merge_value(conf->stats, prev->stats, 0);
    ngx_conf_merge_ptr_value(conf->db, prev->db, NULL);
    ngx_conf_merge_uint_value(conf->read_from, prev->read_from,
                              NGX_HTTP_SOPHON_EVENTS_READ_STANDBY);
    ngx_conf_merge_value(conf->delete, prev->delete, 0);
    ngx_conf_merge_ptr_value(conf->delete_db, prev->delete_db, NULL);

    ngx_conf_merge_msec_value(conf->stream_heartbeat, prev->stream_heartbeat,
                              15000);
    ngx_conf_merge_msec_value(conf->stream_poll, prev->stream_poll, 0);
    ngx_conf_merge_uint_value(conf->max_streams, prev->max_streams, 1024);

    ngx_conf_merge_msec_value(conf->connect_timeout, prev->connect_timeout,
                              5000);
    ngx_conf_merge_msec_value(conf->query_timeout, prev->query_timeout,
                              30000);

    ngx_conf_merge_uint_value(conf->limits.per_page_default,
                              prev->limits.per_page_default, 10);
    ngx_conf_merge_uint_value(conf->limits.per_page_max,
                              prev->limits.per_page_max, 1000);
    ngx_conf_merge_uint_value(conf->limits.top_k_max,
                              prev->limits.top_k_max, 10000000);
    ngx_conf_merge_size_value(conf->limits.max_value_length,
                              prev->limits.max_value_length, 256);
    ngx_conf_merge_uint_value(conf->limits.max_list_items,
                              prev->limits.max_list_items, 100);

    ngx_conf_merge_bufs_value(conf->bufs, prev->bufs, 8, 32768);

    ngx_conf_merge_off_value(conf->max_temp_file_size,
                             prev->max_temp_file_size, 1024 * 1024 * 1024);

    ngx_conf_merge_size_value(conf->drain_size, prev->drain_size,
                              16 * 1024 * 1024);
    ngx_conf_merge_msec_value(conf->drain_time, prev->drain_time, 5000);

    /* unset: the location's client_body_temp_path, when it is needed */

    if (conf->temp_path == NULL) {
        conf->temp_path = prev->temp_path;
    }

    if (!conf->enable && !conf->stream && !conf->stats) {
        return NGX_CONF_OK;
    }

    if (conf->db == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sophon_events\" needs \"sophon_events_db\"");
        return NGX_CONF_ERROR;
    }

    server = conf->db->servers.elts;

    for (i = 0; i < conf->db->servers.nelts; i++) {
        if (server[i]->connect_timeout == 0) {
            /* the probe's, of the first location that uses it */
            server[i]->connect_timeout = conf->connect_timeout;
        }
    }

    for (i = 0; conf->stream && i < conf->db->servers.nelts; i++) {
        if (server[i]->max_connections < 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"sophon_events_stream\" needs connections=2 "
                               "at least in \"sophon_events_db\": one listens");
            return NGX_CONF_ERROR;
        }
    }

    if (conf->delete == 1 && conf->delete_db == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sophon_events_delete on\" needs "
                           "\"sophon_events_delete_db\", with a role that "
                           "may delete");
        return NGX_CONF_ERROR;
    }

    if (conf->delete == 1) {
        server = conf->delete_db->servers.elts;

        for (i = 0; i < conf->delete_db->servers.nelts; i++) {
            if (server[i]->connect_timeout == 0) {
                server[i]->connect_timeout = conf->connect_timeout;
            }
        }
    }

    if (conf->limits.per_page_default > conf->limits.per_page_max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sophon_events_per_page\" is larger than "
                           "\"sophon_events_max_per_page\"");
        return NGX_CONF_ERROR;
    }

    /* the envelope never waits for a buffer: keep what it can add small */

    if (conf->bufs.size < 256) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sophon_events_buffers\" size must be at least "
                           "256 bytes");
        return NGX_CONF_ERROR;
    }

    if (conf->limits.max_value_length == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sophon_events_max_value_length\" must not be 0");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_sophon_events(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_sophon_events_loc_conf_t  *slcf = conf;

    if (slcf->enable != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    slcf->enable = 1;

    return ngx_http_sophon_events_endpoint(cf, cmd, conf);
}


/* sophon_events; sophon_events_stream; sophon_events_stats; */

static char *
ngx_http_sophon_events_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_sophon_events_loc_conf_t  *slcf = conf;

    ngx_flag_t                *flag;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler == ngx_http_sophon_events_handler) {
        return "is duplicate: a location serves one endpoint";
    }

    if (clcf->handler) {
        return "is duplicate: the location has a content handler already";
    }

    if (cmd->offset) {
        flag = (ngx_flag_t *) ((char *) slcf + cmd->offset);
        *flag = 1;
    }

    clcf->handler = ngx_http_sophon_events_handler;

    return NGX_CONF_OK;
}


/*
 * sophon_events_db "conninfo" [connections=N] [queue=N]
 *                  [queue_timeout=TIME] [idle_timeout=TIME]
 *                  [max_fails=N] [fail_timeout=TIME] [max_lag=TIME];
 *
 * Given again in the same block, it adds a server of the same cluster,
 * as "server" does in an upstream block.
 */

static char *
ngx_http_sophon_events_db(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t                           *value;
    ngx_uint_t                           i;
    ngx_http_sophon_events_pool_t       *pool, **pp, **server;
    ngx_http_sophon_events_cluster_t    *cluster, **field;
    ngx_http_sophon_events_main_conf_t  *smcf;

    field = (ngx_http_sophon_events_cluster_t **) ((char *) conf
                                                   + cmd->offset);
    cluster = *field;

    if (cluster == NGX_CONF_UNSET_PTR) {
        cluster = ngx_pcalloc(cf->pool,
                              sizeof(ngx_http_sophon_events_cluster_t));
        if (cluster == NULL
            || ngx_array_init(&cluster->servers, cf->pool, 2,
                              sizeof(ngx_http_sophon_events_pool_t *))
               != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        *field = cluster;
    }

    if (cluster->servers.nelts == NGX_HTTP_SOPHON_EVENTS_MAX_SERVERS) {
        return "has too many servers";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        return "takes a libpq connection string";
    }

    pool = ngx_http_sophon_events_pool_create(cf, &value[1]);
    if (pool == NULL) {
        return NGX_CONF_ERROR;
    }

    pool->max_connections = 8;
    pool->max_waiting = 64;
    pool->wait_timeout = 3000;
    pool->idle_timeout = 60000;
    pool->max_fails = 1;
    pool->fail_timeout = 10;

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_http_sophon_events_db_param(pool, &value[i]) != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    smcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_sophon_events_module);

    pp = ngx_array_push(&smcf->pools);
    if (pp == NULL) {
        return NGX_CONF_ERROR;
    }

    *pp = pool;
    pool->index = smcf->pools.nelts - 1;

    pool->server = ngx_http_sophon_events_server(cf, &smcf->servers,
                                                 &pool->name);
    if (pool->server == NULL) {
        return NGX_CONF_ERROR;
    }

    pp = ngx_array_push(&cluster->servers);
    if (pp == NULL) {
        return NGX_CONF_ERROR;
    }

    *pp = pool;

    /* among others: its health and role count */

    if (cluster->servers.nelts > 1) {
        server = cluster->servers.elts;

        for (i = 0; i < cluster->servers.nelts; i++) {
            server[i]->several = 1;
        }
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_sophon_events_db_param(ngx_http_sophon_events_pool_t *pool,
    ngx_str_t *param)
{
    ngx_int_t    n;
    ngx_str_t    s;
    ngx_msec_t   ms;
    ngx_uint_t   i;

    static ngx_str_t  counts[] = {
        ngx_string("connections="),
        ngx_string("queue="),
        ngx_string("max_fails=")
    };

    static ngx_str_t  times[] = {
        ngx_string("queue_timeout="),
        ngx_string("idle_timeout="),
        ngx_string("fail_timeout="),
        ngx_string("max_lag=")
    };

    for (i = 0; i < sizeof(counts) / sizeof(ngx_str_t); i++) {
        if (param->len <= counts[i].len
            || ngx_strncmp(param->data, counts[i].data, counts[i].len) != 0)
        {
            continue;
        }

        n = ngx_atoi(param->data + counts[i].len, param->len - counts[i].len);
        if (n == NGX_ERROR || (i == 0 && n == 0)) {
            return NGX_ERROR;
        }

        switch (i) {
        case 0:
            pool->max_connections = n;
            break;
        case 1:
            pool->max_waiting = n;
            break;
        default:
            pool->max_fails = n;
            break;
        }

        return NGX_OK;
    }

    for (i = 0; i < sizeof(times) / sizeof(ngx_str_t); i++) {
        if (param->len <= times[i].len
            || ngx_strncmp(param->data, times[i].data, times[i].len) != 0)
        {
            continue;
        }

        s.data = param->data + times[i].len;
        s.len = param->len - times[i].len;

        ms = ngx_parse_time(&s, 0);
        if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
            return NGX_ERROR;
        }

        switch (i) {
        case 0:
            pool->wait_timeout = ms;
            break;
        case 1:
            pool->idle_timeout = ms;
            break;
        case 2:
            /* whole seconds, as the server's health is kept */
            pool->fail_timeout = (ms + 999) / 1000;
            break;
        default:
            pool->max_lag = ms;
            break;
        }

        return NGX_OK;
    }

    return NGX_ERROR;
}


/* sophon_events_drain SIZE TIME; */

static char *
ngx_http_sophon_events_drain(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_sophon_events_loc_conf_t  *slcf = conf;

    ssize_t      size;
    ngx_str_t   *value;
    ngx_msec_t   ms;

    if (slcf->drain_size != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[1]);
    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid size \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    ms = ngx_parse_time(&value[2], 0);
    if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid time \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    slcf->drain_size = size;
    slcf->drain_time = ms;

    return NGX_CONF_OK;
}


/* after the configuration and its zones: the zone has a slot a worker */

static ngx_int_t
ngx_http_sophon_events_init_module(ngx_cycle_t *cycle)
{
    ngx_http_sophon_events_main_conf_t  *smcf;

    smcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_sophon_events_module);
    if (smcf == NULL) {
        return NGX_OK;
    }

    return ngx_http_sophon_events_status_init_module(cycle, smcf);
}


/*
 * libpq's sockets are watched edge-triggered: with select or poll an idle,
 * always writable database socket would spin the worker.  Each worker
 * then probes the servers of its clusters of several (cluster.c).
 */

static ngx_int_t
ngx_http_sophon_events_init_process(ngx_cycle_t *cycle)
{
    ngx_http_sophon_events_main_conf_t  *smcf;

    smcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_sophon_events_module);

    ngx_http_sophon_events_status_init_process(cycle, smcf);

    if (smcf == NULL || smcf->pools.nelts == 0) {
        return NGX_OK;
    }

    if (!(ngx_event_flags & NGX_USE_CLEAR_EVENT)) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "sophon_events needs an edge-triggered event method "
                      "(epoll, kqueue)");
        return NGX_ERROR;
    }

    return ngx_http_sophon_events_cluster_init_process(cycle, &smcf->servers,
                                                       &smcf->pools);
}


/* a worker that exits closes its idle database connections */

static void
ngx_http_sophon_events_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                           i;
    ngx_http_sophon_events_pool_t      **pool;
    ngx_http_sophon_events_main_conf_t  *smcf;

    smcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_sophon_events_module);
    if (smcf == NULL) {
        return;
    }

    pool = smcf->pools.elts;

    for (i = 0; i < smcf->pools.nelts; i++) {
        ngx_http_sophon_events_pool_close_idle(pool[i]);
    }

    ngx_http_sophon_events_status_exit_process();
}
