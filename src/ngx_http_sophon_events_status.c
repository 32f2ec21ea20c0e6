
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: the counters, and the status page.
 *
 * Each worker counts in its own slot of the zone (by ngx_worker), so that
 * a scrape, whichever worker serves it, sees every worker, and a reload,
 * which keeps a zone of the same name and size, keeps the counts.
 * Counters are added to atomically: for a while after a reload an exiting
 * worker and its successor share a slot, and both count.  Gauges (pools,
 * queues, servers, streams) are set, and only by the slot's owner, the
 * worker that took it last: an exiting worker's would be stale.
 */


#include "ngx_http_sophon_events_common.h"
#include "ngx_http_sophon_events_pool.h"
#include "ngx_http_sophon_events_cluster.h"
#include "ngx_http_sophon_events_output.h"
#include "ngx_http_sophon_events_status.h"


#define NGX_HTTP_SOPHON_EVENTS_FIRST_STATUS  100
#define NGX_HTTP_SOPHON_EVENTS_CODES         500     /* 100 .. 599 */
#define NGX_HTTP_SOPHON_EVENTS_BUCKETS       12      /* the last: +Inf */
#define NGX_HTTP_SOPHON_EVENTS_POOLS         64
#define NGX_HTTP_SOPHON_EVENTS_SERVERS       32
#define NGX_HTTP_SOPHON_EVENTS_LABEL_LEN     120
#define NGX_HTTP_SOPHON_EVENTS_SLOTS         256     /* workers at most */

/* a view's gauge of live streams, after the slot's counts */
#define NGX_HTTP_SOPHON_EVENTS_LIVE          NGX_HTTP_SOPHON_EVENTS_NCOUNTS


typedef struct {
    ngx_atomic_t    bucket[NGX_HTTP_SOPHON_EVENTS_BUCKETS]; /* each its own */
    ngx_atomic_t    sum;                                    /* ms */
} ngx_http_sophon_events_hist_t;


typedef struct {
    ngx_atomic_t    server;       /* its server's index + 1; 0: none */
    ngx_atomic_t    open;
    ngx_atomic_t    idle;
    ngx_atomic_t    waiting;
} ngx_http_sophon_events_pool_gauge_t;


typedef struct {
    ngx_atomic_t    name_len;
    u_char          name[NGX_HTTP_SOPHON_EVENTS_LABEL_LEN];
    ngx_atomic_t    role;
    ngx_atomic_t    fails;
    ngx_atomic_t    down_until;   /* time_t */
    ngx_atomic_t    lag;          /* ms + 1; 0: unknown */
} ngx_http_sophon_events_srv_gauge_t;


typedef struct {
    ngx_atomic_t                         pid;      /* the owner; 0: none */
    ngx_atomic_t                         used;     /* ever had an owner */
    ngx_atomic_t                         requests[NGX_HTTP_SOPHON_EVENTS_CODES];
    ngx_atomic_t                         count[NGX_HTTP_SOPHON_EVENTS_NCOUNTS];
    ngx_http_sophon_events_hist_t        request_time;
    ngx_http_sophon_events_hist_t        db_time;

    /* the gauges */
    ngx_atomic_t                         streams;
    ngx_atomic_t                         npools;
    ngx_atomic_t                         nservers;
    ngx_http_sophon_events_pool_gauge_t  pool[NGX_HTTP_SOPHON_EVENTS_POOLS];
    ngx_http_sophon_events_srv_gauge_t   server[NGX_HTTP_SOPHON_EVENTS_SERVERS];
} ngx_http_sophon_events_slot_t;


typedef struct {
    ngx_uint_t                      nslots;
    ngx_http_sophon_events_slot_t   slot[1];
} ngx_http_sophon_events_shctx_t;


/* what a page shows of one worker, or of all summed */

typedef struct {
    ngx_str_t       name;
    ngx_uint_t      role;
    ngx_uint_t      workers;      /* that know it */
    ngx_uint_t      up;           /* of them, those that use it */
    ngx_uint_t      fails;
    ngx_int_t       lag;          /* ms; -1: unknown */
    ngx_uint_t      open;
    ngx_uint_t      idle;
    ngx_uint_t      waiting;
} ngx_http_sophon_events_srv_view_t;


typedef struct {
    uint64_t        bucket[NGX_HTTP_SOPHON_EVENTS_BUCKETS];
    uint64_t        sum;
} ngx_http_sophon_events_hist_view_t;


typedef struct {
    ngx_int_t                           worker;    /* -1: the sum */
    ngx_pid_t                           pid;
    uint64_t                            requests[NGX_HTTP_SOPHON_EVENTS_CODES];
    uint64_t                            count[NGX_HTTP_SOPHON_EVENTS_LIVE + 1];
    ngx_http_sophon_events_hist_view_t  time[2];
    ngx_uint_t                          nservers;
    ngx_http_sophon_events_srv_view_t   server[NGX_HTTP_SOPHON_EVENTS_SERVERS];
} ngx_http_sophon_events_view_t;


/* the answer, in buffers of the request's pool */

typedef struct {
    ngx_http_request_t             *request;
    ngx_chain_t                    *out;
    ngx_chain_t                    *cl;       /* the last */
    off_t                           size;
} ngx_http_sophon_events_writer_t;


typedef struct ngx_http_sophon_events_family_s
    ngx_http_sophon_events_family_t;

typedef ngx_int_t (*ngx_http_sophon_events_emit_pt)(
    ngx_http_sophon_events_writer_t *w, ngx_http_sophon_events_family_t *f,
    ngx_http_sophon_events_view_t *view);

/* a metric family: its samples written by "emit", of its "what" */
struct ngx_http_sophon_events_family_s {
    const char                      *name;
    const char                      *type;
    const char                      *help;
    ngx_http_sophon_events_emit_pt   emit;
    ngx_uint_t                       what;
};


enum {
    NGX_HTTP_SOPHON_EVENTS_REQUEST_TIME = 0,
    NGX_HTTP_SOPHON_EVENTS_DB_TIME
};


enum {
    NGX_HTTP_SOPHON_EVENTS_SERVER_OPEN = 0,
    NGX_HTTP_SOPHON_EVENTS_SERVER_IDLE,
    NGX_HTTP_SOPHON_EVENTS_SERVER_BUSY,
    NGX_HTTP_SOPHON_EVENTS_SERVER_WAITING,
    NGX_HTTP_SOPHON_EVENTS_SERVER_UP,
    NGX_HTTP_SOPHON_EVENTS_SERVER_PRIMARY,
    NGX_HTTP_SOPHON_EVENTS_SERVER_FAILS,
    NGX_HTTP_SOPHON_EVENTS_SERVER_LAG
};


/* open, then idle, are written apart: a scrape between them sees more idle */

#define ngx_http_sophon_events_busy(s)                                       \
    ((s)->open > (s)->idle ? (s)->open - (s)->idle : 0)


static ngx_int_t ngx_http_sophon_events_zone_init(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_sophon_events_status_log(ngx_http_request_t *r);
static void ngx_http_sophon_events_observe(
    ngx_http_sophon_events_hist_t *h, ngx_msec_int_t ms);
static ngx_uint_t ngx_http_sophon_events_status_owner(void);
static void ngx_http_sophon_events_status_clear(
    ngx_http_sophon_events_slot_t *slot);
static ngx_int_t ngx_http_sophon_events_status_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_sophon_events_status_format(ngx_http_request_t *r,
    ngx_uint_t *prometheus);
static ngx_http_sophon_events_view_t *ngx_http_sophon_events_status_views(
    ngx_http_request_t *r, ngx_http_sophon_events_shctx_t *sh,
    ngx_uint_t *nviews);
static void ngx_http_sophon_events_view_slot(
    ngx_http_sophon_events_view_t *view, ngx_http_sophon_events_slot_t *slot,
    ngx_uint_t gauges);
static void ngx_http_sophon_events_view_add(ngx_http_sophon_events_view_t *sum,
    ngx_http_sophon_events_view_t *view);
static ngx_int_t ngx_http_sophon_events_json(
    ngx_http_sophon_events_writer_t *w, ngx_str_t *zone,
    ngx_http_sophon_events_view_t *views, ngx_uint_t nviews);
static ngx_int_t ngx_http_sophon_events_json_view(yajl_gen gen,
    ngx_http_sophon_events_view_t *view);
static ngx_int_t ngx_http_sophon_events_json_histogram(yajl_gen gen,
    const char *key, ngx_http_sophon_events_hist_view_t *h);
static ngx_int_t ngx_http_sophon_events_json_server(yajl_gen gen,
    ngx_http_sophon_events_srv_view_t *s);
static ngx_int_t ngx_http_sophon_events_gen_key(yajl_gen gen,
    const char *key);
static ngx_int_t ngx_http_sophon_events_gen_seconds(yajl_gen gen,
    uint64_t ms);
static ngx_int_t ngx_http_sophon_events_prometheus(
    ngx_http_sophon_events_writer_t *w, ngx_http_sophon_events_view_t *views,
    ngx_uint_t nviews);
static ngx_int_t ngx_http_sophon_events_emit_requests(
    ngx_http_sophon_events_writer_t *w, ngx_http_sophon_events_family_t *f,
    ngx_http_sophon_events_view_t *view);
static ngx_int_t ngx_http_sophon_events_emit_count(
    ngx_http_sophon_events_writer_t *w, ngx_http_sophon_events_family_t *f,
    ngx_http_sophon_events_view_t *view);
static ngx_int_t ngx_http_sophon_events_emit_histogram(
    ngx_http_sophon_events_writer_t *w, ngx_http_sophon_events_family_t *f,
    ngx_http_sophon_events_view_t *view);
static ngx_int_t ngx_http_sophon_events_emit_server(
    ngx_http_sophon_events_writer_t *w, ngx_http_sophon_events_family_t *f,
    ngx_http_sophon_events_view_t *view);
static ngx_int_t ngx_http_sophon_events_series(
    ngx_http_sophon_events_writer_t *w, ngx_http_sophon_events_view_t *view,
    const char *name, const char *suffix, ngx_uint_t labels);
static ngx_int_t ngx_http_sophon_events_write(
    ngx_http_sophon_events_writer_t *w, const char *fmt, ...);
static ngx_int_t ngx_http_sophon_events_write_room(
    ngx_http_sophon_events_writer_t *w, size_t room);
static ngx_int_t ngx_http_sophon_events_write_label(
    ngx_http_sophon_events_writer_t *w, ngx_str_t *value);


/* Prometheus's default buckets, in ms */
static ngx_msec_int_t  ngx_http_sophon_events_bounds[] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};

static const char  *ngx_http_sophon_events_les[] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
    "5", "10", "+Inf"
};

static const char  *ngx_http_sophon_events_roles[] = {
    "unknown", "primary", "standby"
};

static const char  *ngx_http_sophon_events_count_names[] = {
    "queue_timeouts", "queue_full", "connect_failures", "query_timeouts",
    "cut_streams", "streams", "rows_sent", "bytes_sent", "live_streams"
};


static ngx_http_sophon_events_family_t  ngx_http_sophon_events_families[] = {

    { "requests_total", "counter",
      "Requests answered by the module's locations, by HTTP status.",
      ngx_http_sophon_events_emit_requests, 0 },

    { "rows_sent_total", "counter",
      "Events sent: in pages, as one event, and in live streams.",
      ngx_http_sophon_events_emit_count, NGX_HTTP_SOPHON_EVENTS_COUNT_ROWS },

    { "bytes_sent_total", "counter",
      "Bytes sent to clients, headers included.",
      ngx_http_sophon_events_emit_count, NGX_HTTP_SOPHON_EVENTS_COUNT_BYTES },

    { "request_duration_seconds", "histogram",
      "Time from a request's first byte to its answer's last, live streams "
      "left out.",
      ngx_http_sophon_events_emit_histogram,
      NGX_HTTP_SOPHON_EVENTS_REQUEST_TIME },

    { "db_duration_seconds", "histogram",
      "Time a request's statements took in the database, live streams left "
      "out.",
      ngx_http_sophon_events_emit_histogram, NGX_HTTP_SOPHON_EVENTS_DB_TIME },

    { "pool_open_connections", "gauge",
      "Database connections open or opening, by server.",
      ngx_http_sophon_events_emit_server, NGX_HTTP_SOPHON_EVENTS_SERVER_OPEN },

    { "pool_idle_connections", "gauge",
      "Database connections idle in the pool, by server.",
      ngx_http_sophon_events_emit_server, NGX_HTTP_SOPHON_EVENTS_SERVER_IDLE },

    { "pool_busy_connections", "gauge",
      "Database connections in use or opening, by server.",
      ngx_http_sophon_events_emit_server, NGX_HTTP_SOPHON_EVENTS_SERVER_BUSY },

    { "queue_length", "gauge",
      "Requests waiting for a database connection, by server.",
      ngx_http_sophon_events_emit_server,
      NGX_HTTP_SOPHON_EVENTS_SERVER_WAITING },

    { "queue_timeouts_total", "counter",
      "Requests and streams no database connection came free for in time.",
      ngx_http_sophon_events_emit_count,
      NGX_HTTP_SOPHON_EVENTS_COUNT_QUEUE_TIMEOUTS },

    { "queue_full_total", "counter",
      "Requests refused because the queue for connections was full.",
      ngx_http_sophon_events_emit_count,
      NGX_HTTP_SOPHON_EVENTS_COUNT_QUEUE_FULL },

    { "connect_failures_total", "counter",
      "Database connections that could not be opened.",
      ngx_http_sophon_events_emit_count,
      NGX_HTTP_SOPHON_EVENTS_COUNT_CONNECT_FAILURES },

    { "query_timeouts_total", "counter",
      "Requests the database did not answer in time (504).",
      ngx_http_sophon_events_emit_count,
      NGX_HTTP_SOPHON_EVENTS_COUNT_QUERY_TIMEOUTS },

    { "cut_streams_total", "counter",
      "Answers cut after their 200 began: a database failure, a stuck "
      "client.",
      ngx_http_sophon_events_emit_count, NGX_HTTP_SOPHON_EVENTS_COUNT_CUT },

    { "streams_total", "counter",
      "Live streams opened.",
      ngx_http_sophon_events_emit_count,
      NGX_HTTP_SOPHON_EVENTS_COUNT_STREAMS },

    { "live_streams", "gauge",
      "Live streams open now.",
      ngx_http_sophon_events_emit_count, NGX_HTTP_SOPHON_EVENTS_LIVE },

    { "server_up", "gauge",
      "1 if the server is in use, 0 while it is left out after failures.",
      ngx_http_sophon_events_emit_server, NGX_HTTP_SOPHON_EVENTS_SERVER_UP },

    { "server_primary", "gauge",
      "1 for a primary, 0 for a standby; absent while the role is unknown.",
      ngx_http_sophon_events_emit_server,
      NGX_HTTP_SOPHON_EVENTS_SERVER_PRIMARY },

    { "server_fails", "gauge",
      "Failures counted against the server within its fail_timeout.",
      ngx_http_sophon_events_emit_server,
      NGX_HTTP_SOPHON_EVENTS_SERVER_FAILS },

    { "server_lag_seconds", "gauge",
      "A standby's replay lag; absent while unknown.",
      ngx_http_sophon_events_emit_server, NGX_HTTP_SOPHON_EVENTS_SERVER_LAG },

    { NULL, NULL, NULL, NULL, 0 }
};


static ngx_str_t  ngx_http_sophon_events_status_not_allowed =
    ngx_string("method: only GET and HEAD are allowed");

static ngx_str_t  ngx_http_sophon_events_bad_format =
    ngx_string("format: must be json or prometheus");


/* this worker's slot, if there is a zone and the worker has one */
static ngx_http_sophon_events_slot_t  *ngx_http_sophon_events_slot;

static ngx_uint_t  ngx_http_sophon_events_nstreams;


char *
ngx_http_sophon_events_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_sophon_events_main_conf_t  *smcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (smcf->zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small", &value[1]);
        return NGX_CONF_ERROR;
    }

    smcf->zone = ngx_shared_memory_add(cf, &value[1], size,
                                       &ngx_http_sophon_events_module);
    if (smcf->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (smcf->zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used", &value[1]);
        return NGX_CONF_ERROR;
    }

    smcf->zone->init = ngx_http_sophon_events_zone_init;
    smcf->zone->data = smcf;

    return NGX_CONF_OK;
}


char *
ngx_http_sophon_events_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t            *clcf;
    ngx_http_sophon_events_main_conf_t  *smcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "is duplicate: the location has a content handler already";
    }

    clcf->handler = ngx_http_sophon_events_status_handler;

    smcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_sophon_events_module);
    smcf->status = 1;

    return NGX_CONF_OK;
}


/*
 * After the configuration: a status page needs the zone, and the zone
 * needs a slot for every worker; the log phase counts.
 */

ngx_int_t
ngx_http_sophon_events_status_postconfiguration(ngx_conf_t *cf,
    ngx_http_sophon_events_main_conf_t *smcf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    if (smcf->zone == NULL) {
        if (smcf->status) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "sophon_events_status needs sophon_events_zone");
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (smcf->pools.nelts > NGX_HTTP_SOPHON_EVENTS_POOLS
        || smcf->servers.nelts > NGX_HTTP_SOPHON_EVENTS_SERVERS)
    {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "sophon_events_zone shows the connections of the "
                      "first %d sophon_events_db and the first %d servers "
                      "only", NGX_HTTP_SOPHON_EVENTS_POOLS,
                      NGX_HTTP_SOPHON_EVENTS_SERVERS);
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_sophon_events_status_log;

    return NGX_OK;
}


/*
 * After the configuration, worker_processes included, and the zones: a
 * slot for every worker, or a clear refusal (a reload keeps the old
 * configuration).  A zone of another size is a new zone, counting anew.
 */

ngx_int_t
ngx_http_sophon_events_status_init_module(ngx_cycle_t *cycle,
    ngx_http_sophon_events_main_conf_t *smcf)
{
    size_t                           need;
    ngx_core_conf_t                 *ccf;
    ngx_http_sophon_events_shctx_t  *sh;

    if (smcf->zone == NULL) {
        return NGX_OK;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);
    sh = smcf->zone->data;

    if ((ngx_uint_t) ccf->worker_processes <= sh->nslots) {
        return NGX_OK;
    }

    /* the slab pool's own pages, and a margin for its bookkeeping */

    need = ccf->worker_processes * sizeof(ngx_http_sophon_events_slot_t)
           + 8 * ngx_pagesize;

    ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                  "sophon_events_zone \"%V\" has %ui slots for %i workers: "
                  "give it %uzk at least", &smcf->zone->shm.name, sh->nslots,
                  ccf->worker_processes, need / 1024 + 1);

    return NGX_ERROR;
}


/*
 * A reload keeps the old zone's counts; a new zone has as many slots as
 * fit, up to NGX_HTTP_SOPHON_EVENTS_SLOTS.
 */

static ngx_int_t
ngx_http_sophon_events_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_sophon_events_shctx_t  *old = data;

    size_t                           size;
    ngx_uint_t                       n;
    ngx_slab_pool_t                 *shpool;
    ngx_http_sophon_events_shctx_t  *sh;

    if (old) {
        shm_zone->data = old;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    n = (shpool->end - shpool->start) / sizeof(ngx_http_sophon_events_slot_t);
    n = ngx_min(n, NGX_HTTP_SOPHON_EVENTS_SLOTS);

    for ( ;; ) {
        if (n == 0) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "sophon_events_zone \"%V\" is too small",
                          &shm_zone->shm.name);
            return NGX_ERROR;
        }

        size = offsetof(ngx_http_sophon_events_shctx_t, slot)
               + n * sizeof(ngx_http_sophon_events_slot_t);

        sh = ngx_slab_calloc(shpool, size);
        if (sh) {
            break;
        }

        n--;
    }

    sh->nslots = n;

    shpool->data = sh;
    shm_zone->data = sh;

    return NGX_OK;
}


/* a worker takes its slot: the counts go on, the gauges start afresh */

void
ngx_http_sophon_events_status_init_process(ngx_cycle_t *cycle,
    ngx_http_sophon_events_main_conf_t *smcf)
{
    size_t                                len;
    ngx_uint_t                            i;
    ngx_http_sophon_events_slot_t        *slot;
    ngx_http_sophon_events_pool_t       **pool;
    ngx_http_sophon_events_shctx_t       *sh;
    ngx_http_sophon_events_server_t     **server;
    ngx_http_sophon_events_srv_gauge_t   *g;

    ngx_http_sophon_events_slot = NULL;
    ngx_http_sophon_events_nstreams = 0;

    if (smcf == NULL || smcf->zone == NULL
        || (ngx_process != NGX_PROCESS_WORKER
            && ngx_process != NGX_PROCESS_SINGLE))
    {
        return;
    }

    sh = smcf->zone->data;

    if (ngx_worker >= sh->nslots) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "sophon_events_zone \"%V\" has %ui slots: worker %ui "
                      "is not counted", &smcf->zone->shm.name, sh->nslots,
                      ngx_worker);
        return;
    }

    slot = &sh->slot[ngx_worker];

    slot->pid = ngx_pid;
    slot->used = 1;

    ngx_http_sophon_events_status_clear(slot);

    server = smcf->servers.elts;

    for (i = 0;
         i < smcf->servers.nelts && i < NGX_HTTP_SOPHON_EVENTS_SERVERS;
         i++)
    {
        g = &slot->server[i];
        len = ngx_min(server[i]->name.len, NGX_HTTP_SOPHON_EVENTS_LABEL_LEN);
        ngx_memcpy(g->name, server[i]->name.data, len);
        g->name_len = len;
    }

    slot->nservers = i;

    pool = smcf->pools.elts;

    for (i = 0;
         i < smcf->pools.nelts && i < NGX_HTTP_SOPHON_EVENTS_POOLS;
         i++)
    {
        slot->pool[i].server =
            (pool[i]->server->index < NGX_HTTP_SOPHON_EVENTS_SERVERS)
            ? pool[i]->server->index + 1 : 0;
    }

    slot->npools = i;

    ngx_http_sophon_events_slot = slot;

    /* and their state, as this worker starts with it */

    for (i = 0; i < smcf->servers.nelts; i++) {
        ngx_http_sophon_events_status_server(server[i]);
    }
}


/* an exiting worker's gauges go with it; its counts stay */

void
ngx_http_sophon_events_status_exit_process(void)
{
    ngx_http_sophon_events_slot_t  *slot;

    slot = ngx_http_sophon_events_slot;

    if (slot == NULL || !ngx_http_sophon_events_status_owner()) {
        return;
    }

    ngx_http_sophon_events_status_clear(slot);
    slot->pid = 0;

    ngx_http_sophon_events_slot = NULL;
}


static void
ngx_http_sophon_events_status_clear(ngx_http_sophon_events_slot_t *slot)
{
    slot->streams = 0;
    slot->npools = 0;
    slot->nservers = 0;

    ngx_memzero(slot->pool, sizeof(slot->pool));
    ngx_memzero(slot->server, sizeof(slot->server));
}


static ngx_uint_t
ngx_http_sophon_events_status_owner(void)
{
    return ngx_http_sophon_events_slot->pid == (ngx_atomic_uint_t) ngx_pid;
}


void
ngx_http_sophon_events_count(ngx_http_sophon_events_count_e what,
    ngx_atomic_int_t n)
{
    if (ngx_http_sophon_events_slot) {
        (void) ngx_atomic_fetch_add(&ngx_http_sophon_events_slot->count[what],
                                    n);
    }
}


void
ngx_http_sophon_events_status_pool(ngx_http_sophon_events_pool_t *pool)
{
    ngx_uint_t                            idle;
    ngx_queue_t                          *q;
    ngx_http_sophon_events_pool_gauge_t  *g;

    if (ngx_http_sophon_events_slot == NULL
        || pool->index >= NGX_HTTP_SOPHON_EVENTS_POOLS
        || !ngx_http_sophon_events_status_owner())
    {
        return;
    }

    idle = 0;

    for (q = ngx_queue_head(&pool->idle);
         q != ngx_queue_sentinel(&pool->idle);
         q = ngx_queue_next(q))
    {
        idle++;
    }

    g = &ngx_http_sophon_events_slot->pool[pool->index];

    g->open = pool->nconnections;
    g->idle = idle;
    g->waiting = pool->nwaiting;
}


void
ngx_http_sophon_events_status_server(ngx_http_sophon_events_server_t *server)
{
    ngx_http_sophon_events_srv_gauge_t  *g;

    if (ngx_http_sophon_events_slot == NULL
        || server->index >= NGX_HTTP_SOPHON_EVENTS_SERVERS
        || !ngx_http_sophon_events_status_owner())
    {
        return;
    }

    g = &ngx_http_sophon_events_slot->server[server->index];

    g->role = server->role;
    g->fails = server->fails;
    g->down_until = server->down_until;
    g->lag = (server->lag < 0) ? 0 : server->lag + 1;
}


void
ngx_http_sophon_events_status_progress(ngx_http_sophon_events_ctx_t *ctx)
{
    off_t  sent;

    if (ngx_http_sophon_events_slot == NULL) {
        return;
    }

    sent = ctx->request->connection->sent;

    ngx_http_sophon_events_count(NGX_HTTP_SOPHON_EVENTS_COUNT_ROWS,
                                 ctx->rows - ctx->rows_counted);
    ngx_http_sophon_events_count(NGX_HTTP_SOPHON_EVENTS_COUNT_BYTES,
                                 sent - ctx->sent_counted);

    ctx->rows_counted = ctx->rows;
    ctx->sent_counted = sent;
}


void
ngx_http_sophon_events_status_streams(ngx_int_t delta)
{
    ngx_http_sophon_events_nstreams += delta;

    if (delta > 0) {
        ngx_http_sophon_events_count(NGX_HTTP_SOPHON_EVENTS_COUNT_STREAMS,
                                     delta);
    }

    if (ngx_http_sophon_events_slot && ngx_http_sophon_events_status_owner())
    {
        ngx_http_sophon_events_slot->streams = ngx_http_sophon_events_nstreams;
    }
}


/*
 * The log phase counts every request whose location is one of the
 * module's endpoints, however it ended: its status, the events and bytes
 * it sent, and, but for a live stream, whose time is its client's, how
 * long it took and how long its statements did.
 */

static ngx_int_t
ngx_http_sophon_events_status_log(ngx_http_request_t *r)
{
    ngx_uint_t                          status;
    ngx_time_t                         *tp;
    ngx_msec_int_t                      ms;
    ngx_http_core_loc_conf_t           *clcf;
    ngx_http_sophon_events_slot_t      *slot;
    ngx_http_sophon_events_ctx_t       *ctx;
    ngx_http_sophon_events_loc_conf_t  *conf;

    slot = ngx_http_sophon_events_slot;
    if (slot == NULL) {
        return NGX_OK;
    }

    /* the module's own: not a location inside one, which inherits its conf */

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (clcf->handler != ngx_http_sophon_events_handler) {
        return NGX_OK;
    }

    conf = ngx_http_get_module_loc_conf(r, ngx_http_sophon_events_module);

    status = r->err_status ? r->err_status : r->headers_out.status;

    if (status >= NGX_HTTP_SOPHON_EVENTS_FIRST_STATUS
        && status < NGX_HTTP_SOPHON_EVENTS_FIRST_STATUS
                    + NGX_HTTP_SOPHON_EVENTS_CODES)
    {
        (void) ngx_atomic_fetch_add(
                  &slot->requests[status - NGX_HTTP_SOPHON_EVENTS_FIRST_STATUS],
                  1);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_sophon_events_module);

    if (ctx) {
        ngx_http_sophon_events_status_progress(ctx);

    } else {
        ngx_http_sophon_events_count(NGX_HTTP_SOPHON_EVENTS_COUNT_BYTES,
                                     r->connection->sent);
    }

    if (conf->stream) {
        return NGX_OK;
    }

    tp = ngx_timeofday();

    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));

    ngx_http_sophon_events_observe(&slot->request_time, ms);

    if (ctx && ctx->db_sent) {
        ngx_http_sophon_events_observe(&slot->db_time,
                                       (ngx_msec_int_t) ctx->db_time);
    }

    return NGX_OK;
}


static void
ngx_http_sophon_events_observe(ngx_http_sophon_events_hist_t *h,
    ngx_msec_int_t ms)
{
    ngx_uint_t  i;

    ms = ngx_max(ms, 0);

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_BUCKETS - 1; i++) {
        if (ms <= ngx_http_sophon_events_bounds[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&h->bucket[i], 1);
    (void) ngx_atomic_fetch_add(&h->sum, ms);
}


static ngx_int_t
ngx_http_sophon_events_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                            rc;
    ngx_uint_t                           nviews, prometheus;
    ngx_http_sophon_events_view_t       *views;
    ngx_http_sophon_events_writer_t      w;
    ngx_http_sophon_events_main_conf_t  *smcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        if (ngx_http_sophon_events_add_header(r, "Allow", "GET, HEAD")
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_sophon_events_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                &ngx_http_sophon_events_status_not_allowed);
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_sophon_events_status_format(r, &prometheus) != NGX_OK) {
        return ngx_http_sophon_events_send_error(r, NGX_HTTP_BAD_REQUEST,
                                          &ngx_http_sophon_events_bad_format);
    }

    smcf = ngx_http_get_module_main_conf(r, ngx_http_sophon_events_module);

    views = ngx_http_sophon_events_status_views(r, smcf->zone->data, &nviews);
    if (views == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(&w, sizeof(ngx_http_sophon_events_writer_t));
    w.request = r;

    if (prometheus) {
        rc = ngx_http_sophon_events_prometheus(&w, views, nviews);
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");

    } else {
        rc = ngx_http_sophon_events_json(&w, &smcf->zone->shm.name, views,
                                         nviews);
        ngx_str_set(&r->headers_out.content_type, "application/json");
    }

    if (rc != NGX_OK || w.out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the format follows Accept; a scrape is never to be cached */

    if (ngx_http_sophon_events_add_header(r, "Vary", "Accept") != NGX_OK
        || ngx_http_sophon_events_add_header(r, "Cache-Control",
                                                "no-store")
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = w.size;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    w.cl->buf->last_buf = (r == r->main) ? 1 : 0;
    w.cl->buf->last_in_chain = 1;

    return ngx_http_output_filter(r, w.out);
}


/*
 * ?format=json or ?format=prometheus; without it, Prometheus's scraper is
 * known by its Accept header (the text format 0.0.4, or OpenMetrics, of
 * which it takes the text format too).
 */

static ngx_int_t
ngx_http_sophon_events_status_format(ngx_http_request_t *r,
    ngx_uint_t *prometheus)
{
    ngx_str_t         value, name;
    ngx_table_elt_t  *h;

    *prometheus = 0;

    if (ngx_http_arg(r, (u_char *) "format", 6, &value) == NGX_OK) {
        if (value.len == 10
            && ngx_strncmp(value.data, "prometheus", 10) == 0)
        {
            *prometheus = 1;
            return NGX_OK;
        }

        if (value.len == 4 && ngx_strncmp(value.data, "json", 4) == 0) {
            return NGX_OK;
        }

        return NGX_ERROR;
    }

    ngx_str_set(&name, "Accept");

    h = ngx_http_sophon_events_header(r, &name);

    if (h
        && (ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                             (u_char *) "version=0.0.4", 13 - 1)
            || ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                                (u_char *) "application/openmetrics-text",
                                28 - 1)))
    {
        *prometheus = 1;
    }

    return NGX_OK;
}


/* views[0] is the sum; then one a slot that ever had a worker */

static ngx_http_sophon_events_view_t *
ngx_http_sophon_events_status_views(ngx_http_request_t *r,
    ngx_http_sophon_events_shctx_t *sh, ngx_uint_t *nviews)
{
    ngx_uint_t                      i, n;
    ngx_http_sophon_events_slot_t  *slot;
    ngx_http_sophon_events_view_t  *views, *view;

    n = 1;

    for (i = 0; i < sh->nslots; i++) {
        n += (sh->slot[i].used != 0);
    }

    views = ngx_pcalloc(r->pool, n * sizeof(ngx_http_sophon_events_view_t));
    if (views == NULL) {
        return NULL;
    }

    /* a worker that takes its first slot meanwhile is shown next time */

    *nviews = n;

    views[0].worker = -1;
    n = 1;

    for (i = 0; i < sh->nslots && n < *nviews; i++) {
        slot = &sh->slot[i];

        if (!slot->used) {
            continue;
        }

        view = &views[n++];
        view->worker = i;
        view->pid = (ngx_pid_t) slot->pid;

        ngx_http_sophon_events_view_slot(view, slot, slot->pid != 0);
        ngx_http_sophon_events_view_add(&views[0], view);
    }

    *nviews = n;

    return views;
}


static void
ngx_http_sophon_events_view_slot(ngx_http_sophon_events_view_t *view,
    ngx_http_sophon_events_slot_t *slot, ngx_uint_t gauges)
{
    time_t                                now;
    ngx_uint_t                            i, k;
    ngx_http_sophon_events_pool_gauge_t  *p;
    ngx_http_sophon_events_srv_gauge_t   *g;
    ngx_http_sophon_events_srv_view_t    *s;

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_CODES; i++) {
        view->requests[i] = slot->requests[i];
    }

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_NCOUNTS; i++) {
        view->count[i] = slot->count[i];
    }

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_BUCKETS; i++) {
        view->time[0].bucket[i] = slot->request_time.bucket[i];
        view->time[1].bucket[i] = slot->db_time.bucket[i];
    }

    view->time[0].sum = slot->request_time.sum;
    view->time[1].sum = slot->db_time.sum;

    if (!gauges) {
        return;
    }

    view->count[NGX_HTTP_SOPHON_EVENTS_LIVE] = slot->streams;

    now = ngx_time();

    view->nservers = ngx_min(slot->nservers,
                             NGX_HTTP_SOPHON_EVENTS_SERVERS);

    for (i = 0; i < view->nservers; i++) {
        g = &slot->server[i];
        s = &view->server[i];

        s->name.data = g->name;
        s->name.len = ngx_min(g->name_len, NGX_HTTP_SOPHON_EVENTS_LABEL_LEN);
        s->role = (g->role <= NGX_HTTP_SOPHON_EVENTS_ROLE_STANDBY) ? g->role
                                         : NGX_HTTP_SOPHON_EVENTS_ROLE_UNKNOWN;
        s->workers = 1;
        s->up = ((time_t) g->down_until <= now);
        s->fails = g->fails;
        s->lag = (ngx_int_t) g->lag - 1;
    }

    for (i = 0;
         i < ngx_min(slot->npools, NGX_HTTP_SOPHON_EVENTS_POOLS);
         i++)
    {
        p = &slot->pool[i];
        k = p->server;

        if (k == 0 || k > view->nservers) {
            continue;
        }

        s = &view->server[k - 1];
        s->open += p->open;
        s->idle += p->idle;
        s->waiting += p->waiting;
    }
}


/*
 * The sum: counts and connections add up; a server (by name: workers of
 * two configurations may differ) is up if every worker uses it, its lag
 * and fails are the largest any worker saw, its role the first known.
 */

static void
ngx_http_sophon_events_view_add(ngx_http_sophon_events_view_t *sum,
    ngx_http_sophon_events_view_t *view)
{
    ngx_uint_t                          i, k;
    ngx_http_sophon_events_srv_view_t  *s, *t;

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_CODES; i++) {
        sum->requests[i] += view->requests[i];
    }

    for (i = 0; i <= NGX_HTTP_SOPHON_EVENTS_LIVE; i++) {
        sum->count[i] += view->count[i];
    }

    for (k = 0; k < 2; k++) {
        for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_BUCKETS; i++) {
            sum->time[k].bucket[i] += view->time[k].bucket[i];
        }

        sum->time[k].sum += view->time[k].sum;
    }

    for (i = 0; i < view->nservers; i++) {
        s = &view->server[i];

        for (k = 0; k < sum->nservers; k++) {
            t = &sum->server[k];

            if (t->name.len == s->name.len
                && ngx_strncmp(t->name.data, s->name.data, s->name.len) == 0)
            {
                break;
            }
        }

        if (k == sum->nservers) {
            if (k == NGX_HTTP_SOPHON_EVENTS_SERVERS) {
                continue;
            }

            t = &sum->server[sum->nservers++];
            t->name = s->name;
            t->lag = -1;
        }

        t = &sum->server[k];

        if (t->role == NGX_HTTP_SOPHON_EVENTS_ROLE_UNKNOWN) {
            t->role = s->role;
        }

        t->workers++;
        t->up += s->up;
        t->fails = ngx_max(t->fails, s->fails);
        t->lag = ngx_max(t->lag, s->lag);
        t->open += s->open;
        t->idle += s->idle;
        t->waiting += s->waiting;
    }
}


static ngx_int_t
ngx_http_sophon_events_json(ngx_http_sophon_events_writer_t *w,
    ngx_str_t *zone, ngx_http_sophon_events_view_t *views, ngx_uint_t nviews)
{
    size_t                len;
    ngx_int_t             rc;
    ngx_uint_t            i;
    yajl_gen              gen;
    const unsigned char  *json;

    gen = yajl_gen_alloc(NULL);
    if (gen == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (yajl_gen_map_open(gen) != yajl_gen_status_ok
        || ngx_http_sophon_events_gen_key(gen, "zone") != NGX_OK
        || yajl_gen_string(gen, zone->data, zone->len) != yajl_gen_status_ok
        || ngx_http_sophon_events_gen_key(gen, "sum") != NGX_OK
        || ngx_http_sophon_events_json_view(gen, &views[0]) != NGX_OK
        || ngx_http_sophon_events_gen_key(gen, "workers") != NGX_OK
        || yajl_gen_array_open(gen) != yajl_gen_status_ok)
    {
        goto done;
    }

    for (i = 1; i < nviews; i++) {
        if (ngx_http_sophon_events_json_view(gen, &views[i]) != NGX_OK) {
            goto done;
        }
    }

    if (yajl_gen_array_close(gen) != yajl_gen_status_ok
        || yajl_gen_map_close(gen) != yajl_gen_status_ok
        || yajl_gen_get_buf(gen, &json, &len) != yajl_gen_status_ok)
    {
        goto done;
    }

    rc = ngx_http_sophon_events_write_room(w, len + 1);

    if (rc == NGX_OK) {
        rc = ngx_http_sophon_events_write(w, "%*s\n", len, json);
    }

done:

    yajl_gen_free(gen);

    return rc;
}


static ngx_int_t
ngx_http_sophon_events_json_view(yajl_gen gen,
    ngx_http_sophon_events_view_t *view)
{
    u_char      code[NGX_INT_T_LEN];
    size_t      len;
    ngx_uint_t  i;

    if (yajl_gen_map_open(gen) != yajl_gen_status_ok) {
        return NGX_ERROR;
    }

    if (view->worker >= 0
        && (ngx_http_sophon_events_gen_key_int(gen, "worker", view->worker)
            != NGX_OK
            || ngx_http_sophon_events_gen_key_int(gen, "pid", view->pid)
               != NGX_OK))
    {
        return NGX_ERROR;
    }

    if (ngx_http_sophon_events_gen_key(gen, "requests") != NGX_OK
        || yajl_gen_map_open(gen) != yajl_gen_status_ok)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_CODES; i++) {
        if (view->requests[i] == 0) {
            continue;
        }

        len = ngx_sprintf(code, "%ui", i + NGX_HTTP_SOPHON_EVENTS_FIRST_STATUS)
              - code;

        if (yajl_gen_string(gen, code, len) != yajl_gen_status_ok
            || yajl_gen_integer(gen, view->requests[i]) != yajl_gen_status_ok)
        {
            return NGX_ERROR;
        }
    }

    if (yajl_gen_map_close(gen) != yajl_gen_status_ok) {
        return NGX_ERROR;
    }

    for (i = 0; i <= NGX_HTTP_SOPHON_EVENTS_LIVE; i++) {
        if (ngx_http_sophon_events_gen_key_int(gen,
                                    ngx_http_sophon_events_count_names[i],
                                    view->count[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_sophon_events_json_histogram(gen,
                                          "request_duration_seconds",
                                          &view->time[0])
           != NGX_OK
        || ngx_http_sophon_events_json_histogram(gen, "db_duration_seconds",
                                                 &view->time[1])
           != NGX_OK
        || ngx_http_sophon_events_gen_key(gen, "servers") != NGX_OK
        || yajl_gen_map_open(gen) != yajl_gen_status_ok)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < view->nservers; i++) {
        if (ngx_http_sophon_events_json_server(gen, &view->server[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (yajl_gen_map_close(gen) != yajl_gen_status_ok
        || yajl_gen_map_close(gen) != yajl_gen_status_ok)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* {"buckets": {"0.005": n, ..., "+Inf": n}, "sum": s, "count": n} */

static ngx_int_t
ngx_http_sophon_events_json_histogram(yajl_gen gen, const char *key,
    ngx_http_sophon_events_hist_view_t *h)
{
    uint64_t    n;
    ngx_uint_t  i;

    if (ngx_http_sophon_events_gen_key(gen, key) != NGX_OK
        || yajl_gen_map_open(gen) != yajl_gen_status_ok
        || ngx_http_sophon_events_gen_key(gen, "buckets") != NGX_OK
        || yajl_gen_map_open(gen) != yajl_gen_status_ok)
    {
        return NGX_ERROR;
    }

    n = 0;

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_BUCKETS; i++) {
        n += h->bucket[i];

        if (ngx_http_sophon_events_gen_key_int(gen,
                                           ngx_http_sophon_events_les[i], n)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (yajl_gen_map_close(gen) != yajl_gen_status_ok
        || ngx_http_sophon_events_gen_key(gen, "sum") != NGX_OK
        || ngx_http_sophon_events_gen_seconds(gen, h->sum) != NGX_OK
        || ngx_http_sophon_events_gen_key_int(gen, "count", n) != NGX_OK
        || yajl_gen_map_close(gen) != yajl_gen_status_ok)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_json_server(yajl_gen gen,
    ngx_http_sophon_events_srv_view_t *s)
{
    const char  *role;

    role = ngx_http_sophon_events_roles[s->role];

    if (yajl_gen_string(gen, s->name.data, s->name.len) != yajl_gen_status_ok
        || yajl_gen_map_open(gen) != yajl_gen_status_ok
        || ngx_http_sophon_events_gen_key(gen, "up") != NGX_OK
        || yajl_gen_bool(gen, s->up == s->workers) != yajl_gen_status_ok
        || ngx_http_sophon_events_gen_key(gen, "role") != NGX_OK
        || yajl_gen_string(gen, (u_char *) role, ngx_strlen(role))
           != yajl_gen_status_ok
        || ngx_http_sophon_events_gen_key_int(gen, "fails", s->fails)
           != NGX_OK
        || ngx_http_sophon_events_gen_key(gen, "lag_seconds") != NGX_OK
        || (s->lag < 0 ? yajl_gen_null(gen) != yajl_gen_status_ok
                       : ngx_http_sophon_events_gen_seconds(gen, s->lag)
                         != NGX_OK)
        || ngx_http_sophon_events_gen_key_int(gen, "open", s->open) != NGX_OK
        || ngx_http_sophon_events_gen_key_int(gen, "idle", s->idle) != NGX_OK
        || ngx_http_sophon_events_gen_key_int(gen, "busy",
                                     ngx_http_sophon_events_busy(s))
           != NGX_OK
        || ngx_http_sophon_events_gen_key_int(gen, "queue_length", s->waiting)
           != NGX_OK
        || yajl_gen_map_close(gen) != yajl_gen_status_ok)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_gen_key(yajl_gen gen, const char *key)
{
    if (yajl_gen_string(gen, (u_char *) key, ngx_strlen(key))
        != yajl_gen_status_ok)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_gen_seconds(yajl_gen gen, uint64_t ms)
{
    u_char  number[NGX_INT64_LEN + 5];
    size_t  len;

    len = ngx_sprintf(number, "%uL.%03uL", ms / 1000, ms % 1000) - number;

    if (yajl_gen_number(gen, (char *) number, len) != yajl_gen_status_ok) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The text format: each family summed over the workers under its own name,
 * then per worker as "sophon_events_worker_<name>{worker="N"}", so that
 * summing a family never counts twice.
 */

static ngx_int_t
ngx_http_sophon_events_prometheus(ngx_http_sophon_events_writer_t *w,
    ngx_http_sophon_events_view_t *views, ngx_uint_t nviews)
{
    ngx_uint_t                        i;
    ngx_http_sophon_events_family_t  *f;

    for (f = ngx_http_sophon_events_families; f->name; f++) {

        if (ngx_http_sophon_events_write(w,
                                  "# HELP sophon_events_%s %s\n"
                                  "# TYPE sophon_events_%s %s\n",
                                  f->name, f->help, f->name, f->type)
            != NGX_OK
            || f->emit(w, f, &views[0]) != NGX_OK
            || ngx_http_sophon_events_write(w,
                                  "# HELP sophon_events_worker_%s %s\n"
                                  "# TYPE sophon_events_worker_%s %s\n",
                                  f->name, f->help, f->name, f->type)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        for (i = 1; i < nviews; i++) {
            if (f->emit(w, f, &views[i]) != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


/*
 * A sample's name and the start of its labels: a worker's is
 * "sophon_events_worker_<name><suffix>{worker="N"", the sum's
 * "sophon_events_<name><suffix>"; then "," or "{" when the sample has
 * labels of its own, "}" or nothing when not.
 */

static ngx_int_t
ngx_http_sophon_events_series(ngx_http_sophon_events_writer_t *w,
    ngx_http_sophon_events_view_t *view, const char *name, const char *suffix,
    ngx_uint_t labels)
{
    if (view->worker >= 0) {
        return ngx_http_sophon_events_write(w,
                                   "sophon_events_worker_%s%s{worker=\"%i\"%s",
                                   name, suffix, view->worker,
                                   labels ? "," : "}");
    }

    return ngx_http_sophon_events_write(w, "sophon_events_%s%s%s", name,
                                        suffix, labels ? "{" : "");
}


static ngx_int_t
ngx_http_sophon_events_emit_requests(ngx_http_sophon_events_writer_t *w,
    ngx_http_sophon_events_family_t *f, ngx_http_sophon_events_view_t *view)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_CODES; i++) {
        if (view->requests[i] == 0) {
            continue;
        }

        if (ngx_http_sophon_events_series(w, view, f->name, "", 1) != NGX_OK
            || ngx_http_sophon_events_write(w, "status=\"%ui\"} %uL\n",
                                    i + NGX_HTTP_SOPHON_EVENTS_FIRST_STATUS,
                                    view->requests[i])
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_emit_count(ngx_http_sophon_events_writer_t *w,
    ngx_http_sophon_events_family_t *f, ngx_http_sophon_events_view_t *view)
{
    if (ngx_http_sophon_events_series(w, view, f->name, "", 0) != NGX_OK
        || ngx_http_sophon_events_write(w, " %uL\n", view->count[f->what])
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_emit_histogram(ngx_http_sophon_events_writer_t *w,
    ngx_http_sophon_events_family_t *f, ngx_http_sophon_events_view_t *view)
{
    uint64_t                             n;
    ngx_uint_t                           i;
    ngx_http_sophon_events_hist_view_t  *h;

    h = &view->time[f->what];
    n = 0;

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_BUCKETS; i++) {
        n += h->bucket[i];

        if (ngx_http_sophon_events_series(w, view, f->name, "_bucket", 1)
            != NGX_OK
            || ngx_http_sophon_events_write(w, "le=\"%s\"} %uL\n",
                                            ngx_http_sophon_events_les[i], n)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_sophon_events_series(w, view, f->name, "_sum", 0) != NGX_OK
        || ngx_http_sophon_events_write(w, " %uL.%03uL\n", h->sum / 1000,
                                        h->sum % 1000) != NGX_OK
        || ngx_http_sophon_events_series(w, view, f->name, "_count", 0)
           != NGX_OK
        || ngx_http_sophon_events_write(w, " %uL\n", n) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_emit_server(ngx_http_sophon_events_writer_t *w,
    ngx_http_sophon_events_family_t *f, ngx_http_sophon_events_view_t *view)
{
    uint64_t                            value;
    ngx_uint_t                          i;
    ngx_http_sophon_events_srv_view_t  *s;

    for (i = 0; i < view->nservers; i++) {
        s = &view->server[i];

        switch (f->what) {

        case NGX_HTTP_SOPHON_EVENTS_SERVER_OPEN:
            value = s->open;
            break;

        case NGX_HTTP_SOPHON_EVENTS_SERVER_IDLE:
            value = s->idle;
            break;

        case NGX_HTTP_SOPHON_EVENTS_SERVER_BUSY:
            value = ngx_http_sophon_events_busy(s);
            break;

        case NGX_HTTP_SOPHON_EVENTS_SERVER_WAITING:
            value = s->waiting;
            break;

        case NGX_HTTP_SOPHON_EVENTS_SERVER_UP:
            value = (s->up == s->workers);
            break;

        case NGX_HTTP_SOPHON_EVENTS_SERVER_PRIMARY:
            if (s->role == NGX_HTTP_SOPHON_EVENTS_ROLE_UNKNOWN) {
                continue;
            }

            value = (s->role == NGX_HTTP_SOPHON_EVENTS_ROLE_PRIMARY);
            break;

        case NGX_HTTP_SOPHON_EVENTS_SERVER_FAILS:
            value = s->fails;
            break;

        default: /* NGX_HTTP_SOPHON_EVENTS_SERVER_LAG */
            if (s->lag < 0) {
                continue;
            }

            value = s->lag;
            break;
        }

        if (ngx_http_sophon_events_series(w, view, f->name, "", 1) != NGX_OK
            || ngx_http_sophon_events_write(w, "server=\"") != NGX_OK
            || ngx_http_sophon_events_write_label(w, &s->name) != NGX_OK
            || (f->what == NGX_HTTP_SOPHON_EVENTS_SERVER_LAG
                ? ngx_http_sophon_events_write(w, "\"} %uL.%03uL\n",
                                               value / 1000, value % 1000)
                : ngx_http_sophon_events_write(w, "\"} %uL\n", value))
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a label's value: its backslashes, quotes and newlines escaped */

static ngx_int_t
ngx_http_sophon_events_write_label(ngx_http_sophon_events_writer_t *w,
    ngx_str_t *value)
{
    u_char  *p, *last;

    last = value->data + value->len;

    for (p = value->data; p < last; p++) {
        if (ngx_http_sophon_events_write(w,
                                     *p == '\\' ? "\\\\"
                                     : *p == '"' ? "\\\""
                                     : *p == '\n' ? "\\n" : "%c", *p)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * printf into the answer's buffers; what fills the last buffer may be cut,
 * and is written again into a larger one.
 */

static ngx_int_t
ngx_http_sophon_events_write(ngx_http_sophon_events_writer_t *w,
    const char *fmt, ...)
{
    size_t    room;
    u_char   *p;
    va_list   args;

    room = 4096;

    for ( ;; ) {
        if (ngx_http_sophon_events_write_room(w, room) != NGX_OK) {
            return NGX_ERROR;
        }

        va_start(args, fmt);
        p = ngx_vslprintf(w->cl->buf->last, w->cl->buf->end, fmt, args);
        va_end(args);

        if (p < w->cl->buf->end) {
            break;
        }

        room = (w->cl->buf->end - w->cl->buf->last) * 2;
    }

    w->size += p - w->cl->buf->last;
    w->cl->buf->last = p;

    return NGX_OK;
}


/*
 * The last buffer with "room" bytes free: it, or a new one, which takes
 * its place if it is still empty (nginx refuses an empty buffer).
 */

static ngx_int_t
ngx_http_sophon_events_write_room(ngx_http_sophon_events_writer_t *w,
    size_t room)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (w->cl && (size_t) (w->cl->buf->end - w->cl->buf->last) >= room) {
        return NGX_OK;
    }

    b = ngx_create_temp_buf(w->request->pool, ngx_max(room, 16384));
    if (b == NULL) {
        return NGX_ERROR;
    }

    if (w->cl && w->cl->buf->last == w->cl->buf->pos) {
        w->cl->buf = b;
        return NGX_OK;
    }

    cl = ngx_alloc_chain_link(w->request->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = NULL;

    if (w->cl) {
        w->cl->next = cl;

    } else {
        w->out = cl;
    }

    w->cl = cl;

    return NGX_OK;
}
