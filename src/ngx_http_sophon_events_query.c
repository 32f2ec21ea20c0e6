
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: one request's statement on a pooled
 * connection, its rows read as fast as the database sends them.
 *
 * The whole request is one round trip in libpq's pipeline mode:
 *
 *   [Parse]     once per connection and statement shape
 *   Execute     in single-row mode
 *   Sync
 *
 * One statement computes the total and the page (sql.c), so both read one
 * snapshot and always agree, however fast events are written.  Every
 * command's results end with a NULL from PQgetResult(); the Sync's result
 * is the last one.
 *
 * The rows are read at the database's speed, whatever the client's: the
 * answer goes into the request's buffers, then into a temporary file
 * (output.c), so the connection goes back to the pool the moment the Sync
 * arrives.  A request that goes away before that leaves its statement to
 * be read to the end for nobody (bounded by sophon_events_drain), and the
 * connection goes back to the pool all the same: no client can make
 * PostgreSQL start a new backend at its own rate.
 */


#include "ngx_http_sophon_events_query.h"
#include "ngx_http_sophon_events_pool.h"
#include "ngx_http_sophon_events_cluster.h"
#include "ngx_http_sophon_events_sql.h"
#include "ngx_http_sophon_events_output.h"
#include "ngx_http_sophon_events_stream.h"
#include "ngx_http_sophon_events_status.h"


typedef enum {
    NGX_HTTP_SOPHON_EVENTS_STEP_PREPARE = 0,
    NGX_HTTP_SOPHON_EVENTS_STEP_PAGE,
    NGX_HTTP_SOPHON_EVENTS_STEP_SYNC
} ngx_http_sophon_events_step_e;


/* a statement in flight, and the connection it holds */

struct ngx_http_sophon_events_query_s {
    ngx_http_sophon_events_conn_t  *conn;
    ngx_http_sophon_events_ctx_t   *ctx;         /* NULL: read for nobody */
    ngx_uint_t                      shape;
    ngx_uint_t                      steps[3];    /* the pipeline */
    ngx_uint_t                      nsteps;
    ngx_uint_t                      step;        /* being read */
    ngx_uint_t                      error_status;
    ngx_msec_t                      start;
    size_t                          drain_left;  /* bytes of rows */
    ngx_msec_t                      drain_time;
};


static void ngx_http_sophon_events_query_wait_handler(ngx_event_t *ev);
static void ngx_http_sophon_events_query_send(
    ngx_http_sophon_events_ctx_t *ctx);
static ngx_int_t ngx_http_sophon_events_query_pipeline(
    ngx_http_sophon_events_query_t *q, ngx_http_sophon_events_ctx_t *ctx);
static ngx_int_t ngx_http_sophon_events_query_prepare(
    ngx_http_sophon_events_query_t *q, ngx_http_sophon_events_ctx_t *ctx,
    ngx_http_sophon_events_stmt_t *stmt);
static void ngx_http_sophon_events_query_handler(
    ngx_http_sophon_events_conn_t *conn);
static void ngx_http_sophon_events_query_read(
    ngx_http_sophon_events_query_t *q);
static ngx_int_t ngx_http_sophon_events_query_consume(
    ngx_http_sophon_events_conn_t *conn);
static ngx_int_t ngx_http_sophon_events_query_result(
    ngx_http_sophon_events_query_t *q, PGresult *res);
static ngx_int_t ngx_http_sophon_events_query_row(
    ngx_http_sophon_events_query_t *q, PGresult *res);
static void ngx_http_sophon_events_query_error(
    ngx_http_sophon_events_query_t *q, PGresult *res);
static ngx_uint_t ngx_http_sophon_events_query_status(const char *sqlstate);
static void ngx_http_sophon_events_query_done(
    ngx_http_sophon_events_query_t *q);
static void ngx_http_sophon_events_query_abort(
    ngx_http_sophon_events_query_t *q, ngx_uint_t status,
    const char *reason);
static ngx_uint_t ngx_http_sophon_events_query_next_server(
    ngx_http_sophon_events_ctx_t *ctx, const char *why);
static void ngx_http_sophon_events_query_end(
    ngx_http_sophon_events_query_t *q, ngx_uint_t reusable);
static void ngx_http_sophon_events_query_output_failed(
    ngx_http_sophon_events_ctx_t *ctx, ngx_int_t rc);
static ngx_int_t ngx_http_sophon_events_query_wait_client(
    ngx_http_sophon_events_ctx_t *ctx);


static ngx_str_t  ngx_http_sophon_events_messages[] = {
    ngx_string("the database is unavailable"),
    ngx_string("the database did not answer in time"),
    ngx_string("the database answered with an unexpected error")
};


void
ngx_http_sophon_events_query_start(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_int_t                         rc;
    ngx_http_sophon_events_waiter_t  *waiter;

    waiter = &ctx->waiter;

    waiter->event.handler = ngx_http_sophon_events_query_wait_handler;
    waiter->event.data = ctx;
    waiter->event.log = ctx->request->connection->log;
    waiter->connect_timeout = ctx->conf->connect_timeout;

    rc = ngx_http_sophon_events_pool_acquire(ctx->pool, waiter,
                                             ctx->request->connection->log);

    switch (rc) {

    case NGX_OK:
        ngx_http_sophon_events_query_send(ctx);
        break;

    case NGX_AGAIN:
        break;

    case NGX_DECLINED:
        ngx_http_sophon_events_count(NGX_HTTP_SOPHON_EVENTS_COUNT_QUEUE_FULL,
                                     1);

        if (ctx->stream) {
            ngx_http_sophon_events_stream_retry(ctx->stream,
                                    "too many requests wait for the database");
            break;
        }

        ngx_http_sophon_events_request_failed(ctx, NGX_LOG_ERR,
                                    NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "too many requests wait for the database");
        break;

    default:
        if (ngx_http_sophon_events_query_next_server(ctx,
                                      "no database connection can be opened"))
        {
            break;
        }

        ngx_http_sophon_events_request_failed(ctx, NGX_LOG_ERR,
                                    NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "no database connection can be opened");
        break;
    }
}


/*
 * No connection to the server could be had (none could be opened, none
 * came free in time, or it turned out a standby for a write): a request
 * that sent nothing yet goes to the next healthy server of the cluster,
 * as proxy_next_upstream would send it.  A stream stays where it listens.
 */

static ngx_uint_t
ngx_http_sophon_events_query_next_server(ngx_http_sophon_events_ctx_t *ctx,
    const char *why)
{
    ngx_http_sophon_events_pool_t  *pool;

    if (ctx->stream) {
        return 0;
    }

    pool = ngx_http_sophon_events_cluster_pick(ctx->cluster, ctx->want,
                                               &ctx->tried);
    if (pool == NULL) {
        return 0;
    }

    ngx_log_error(NGX_LOG_WARN, ctx->request->connection->log, 0,
                  "sophon_events: trying database server %V instead of %V: "
                  "%s", &pool->name, &ctx->pool->name, why);

    ngx_http_sophon_events_pool_abandon(ctx->pool, &ctx->waiter);
    ctx->pool = pool;

    ngx_http_sophon_events_query_start(ctx);

    return 1;
}


/* the pool's wake-up, with a connection or without, or the queue's timeout */

static void
ngx_http_sophon_events_query_wait_handler(ngx_event_t *ev)
{
    ngx_connection_t              *c;
    ngx_http_sophon_events_ctx_t  *ctx;

    ctx = ev->data;
    c = ctx->request->connection;

    if (ev->timedout) {
        ngx_http_sophon_events_count(
                              NGX_HTTP_SOPHON_EVENTS_COUNT_QUEUE_TIMEOUTS, 1);
    }

    if (ev->timedout && ctx->stream) {
        ev->timedout = 0;
        ngx_http_sophon_events_stream_retry(ctx->stream,
                                "no database connection came free in time");

    } else if (ev->timedout) {
        ev->timedout = 0;

        if (!ngx_http_sophon_events_query_next_server(ctx,
                                "no database connection came free in time"))
        {
            ngx_http_sophon_events_request_failed(ctx, NGX_LOG_ERR,
                                NGX_HTTP_SERVICE_UNAVAILABLE,
                                "no database connection came free in time");
        }

    } else if (ctx->waiter.conn == NULL) {
        if (ngx_http_sophon_events_query_next_server(ctx,
                                      "no database connection can be opened"))
        {
            ngx_http_run_posted_requests(c);
            return;
        }

        ngx_http_sophon_events_request_failed(ctx, NGX_LOG_ERR,
                                NGX_HTTP_SERVICE_UNAVAILABLE,
                                "no database connection can be opened");

    } else {
        ngx_http_sophon_events_query_send(ctx);
    }

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_sophon_events_query_send(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_http_sophon_events_conn_t   *conn;
    ngx_http_sophon_events_query_t  *q;

    conn = ctx->waiter.conn;
    ctx->waiter.conn = NULL;

    /*
     * A write's server was the primary when it was picked; a promotion
     * elsewhere may have made it a standby since.  Its connection says.
     */

    if (ctx->want == NGX_HTTP_SOPHON_EVENTS_PRIMARY_ONLY
        && ctx->stream == NULL
        && ngx_http_sophon_events_server_standby_now(conn))
    {
        ngx_http_sophon_events_pool_release(conn, 1);

        if (!ngx_http_sophon_events_query_next_server(ctx,
                                                "it is a standby now"))
        {
            ngx_http_sophon_events_request_failed(ctx, NGX_LOG_ERR,
                                   NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "no primary database server is available");
        }

        return;
    }

    q = ngx_calloc(sizeof(ngx_http_sophon_events_query_t),
                   ctx->request->connection->log);

    if (q == NULL) {
        ngx_http_sophon_events_pool_release(conn, 1);
        ngx_http_sophon_events_request_failed(ctx, NGX_LOG_ERR,
                                       NGX_HTTP_INTERNAL_SERVER_ERROR,
                                       "out of memory");
        return;
    }

    q->conn = conn;
    q->ctx = ctx;
    q->shape = ctx->shape;
    q->start = ngx_current_msec;
    ctx->db_sent = 1;
    q->drain_left = ctx->conf->drain_size;
    q->drain_time = ctx->conf->drain_time;

    conn->handler = ngx_http_sophon_events_query_handler;
    conn->data = q;
    ctx->query = q;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "sophon_events query: shape %04xi on connection %p",
                   q->shape, conn);

    if (ngx_http_sophon_events_query_pipeline(q, ctx) != NGX_OK) {
        ngx_http_sophon_events_query_abort(q, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      ngx_http_sophon_events_pq_message(
                                                   PQerrorMessage(conn->pg)));
        return;
    }

    ngx_http_sophon_events_conn_timer(conn, ctx->conf->query_timeout);

    /* 1: the rest goes out when the socket takes it, on a write event */

    if (PQflush(conn->pg) == -1) {
        ngx_http_sophon_events_query_abort(q, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      ngx_http_sophon_events_pq_message(
                                                   PQerrorMessage(conn->pg)));
    }
}


static ngx_int_t
ngx_http_sophon_events_query_pipeline(ngx_http_sophon_events_query_t *q,
    ngx_http_sophon_events_ctx_t *ctx)
{
    PGconn                         *pg;
    ngx_http_sophon_events_conn_t  *conn;
    ngx_http_sophon_events_stmt_t   stmt;

    conn = q->conn;
    pg = conn->pg;

    if (PQpipelineStatus(pg) == PQ_PIPELINE_OFF
        && PQenterPipelineMode(pg) != 1)
    {
        return NGX_ERROR;
    }

    if (ctx->endpoint->stmt(ctx, &stmt) != NGX_OK) {
        return NGX_ERROR;
    }

    if (!ngx_http_sophon_events_sql_prepared(&conn->prepared, q->shape)
        && ngx_http_sophon_events_query_prepare(q, ctx, &stmt) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!PQsendQueryPrepared(pg, stmt.name, stmt.nparams, stmt.values,
                             NULL, NULL, 0))
    {
        return NGX_ERROR;
    }

    q->steps[q->nsteps++] = NGX_HTTP_SOPHON_EVENTS_STEP_PAGE;

    if (q->nsteps == 1) {
        /* the first command: its results are not being read yet */
        (void) PQsetSingleRowMode(pg);
    }

    if (!PQpipelineSync(pg)) {
        return NGX_ERROR;
    }

    q->steps[q->nsteps++] = NGX_HTTP_SOPHON_EVENTS_STEP_SYNC;

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_query_prepare(ngx_http_sophon_events_query_t *q,
    ngx_http_sophon_events_ctx_t *ctx, ngx_http_sophon_events_stmt_t *stmt)
{
    ngx_str_t  text;

    if (ctx->endpoint->text(ctx, &text) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "sophon_events query: prepare %s: %V", stmt->name, &text);

    if (!PQsendPrepare(q->conn->pg, stmt->name, (char *) text.data,
                       stmt->ntypes, stmt->types))
    {
        return NGX_ERROR;
    }

    q->steps[q->nsteps++] = NGX_HTTP_SOPHON_EVENTS_STEP_PREPARE;

    return NGX_OK;
}


/* the database socket is ready, or its timer fired */

static void
ngx_http_sophon_events_query_handler(ngx_http_sophon_events_conn_t *conn)
{
    ngx_connection_t                *c;
    ngx_http_sophon_events_query_t  *q;

    q = conn->data;

    /* the request may end here: run what it posted, as upstream does */

    c = q->ctx ? q->ctx->request->connection : NULL;

    ngx_http_sophon_events_query_read(q);

    if (c) {
        ngx_http_run_posted_requests(c);
    }
}


static void
ngx_http_sophon_events_query_read(ngx_http_sophon_events_query_t *q)
{
    PGconn                         *pg;
    ngx_int_t                       rc;
    PGresult                       *res;
    ngx_event_t                    *rev;
    ngx_http_sophon_events_conn_t  *conn;

    conn = q->conn;
    pg = conn->pg;
    rev = conn->connection->read;

    if (conn->connection->close) {
        /* worker_shutdown_timeout */
        ngx_http_sophon_events_query_abort(q, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "nginx is shutting down");
        return;
    }

    if (rev->timedout) {
        rev->timedout = 0;

        /* the server ends the statement when its socket goes away */

        ngx_http_sophon_events_query_abort(q, NGX_HTTP_GATEWAY_TIME_OUT,
                                   q->ctx ? "the database did not answer "
                                            "in time"
                                          : "the statement of a request that "
                                            "went away did not end in time");
        return;
    }

    if (PQflush(pg) == -1) {
        ngx_http_sophon_events_query_abort(q, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      ngx_http_sophon_events_pq_message(
                                                         PQerrorMessage(pg)));
        return;
    }

    /*
     * q->ctx may become NULL in any step: the client failed and its
     * request ended; the statement is then read on for nobody
     */

    for ( ;; ) {

        if (PQisBusy(pg)) {
            rc = ngx_http_sophon_events_query_consume(conn);

            if (rc == NGX_ERROR) {
                ngx_http_sophon_events_query_abort(q,
                                      NGX_HTTP_SERVICE_UNAVAILABLE,
                                      ngx_http_sophon_events_pq_message(
                                                         PQerrorMessage(pg)));
                return;
            }

            if (rc == NGX_AGAIN) {
                /* what we have goes out while the database works */

                if (q->ctx) {
                    ngx_http_sophon_events_query_client(q->ctx);
                }

                return;
            }
        }

        res = PQgetResult(pg);

        if (res == NULL) {
            /* the end of one command's results */

            q->step++;

            if (PQstatus(pg) == CONNECTION_BAD || q->step >= q->nsteps) {
                /* the server went away: no Sync will ever come */
                ngx_http_sophon_events_query_abort(q,
                                  q->error_status
                                  ? q->error_status
                                  : NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "the database closed the connection");
                return;
            }

            if (q->steps[q->step] == NGX_HTTP_SOPHON_EVENTS_STEP_PAGE) {
                /* before any of its results is parsed, or it is refused */
                (void) PQsetSingleRowMode(pg);
            }

            continue;
        }

        rc = ngx_http_sophon_events_query_result(q, res);

        if (rc == NGX_DONE) {
            ngx_http_sophon_events_query_done(q);
            return;
        }

        if (rc == NGX_ABORT) {
            ngx_http_sophon_events_query_abort(q, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "the statement of a request that went "
                                   "away sent more than sophon_events_drain "
                                   "allows");
            return;
        }

        if (rc != NGX_OK) {
            ngx_http_sophon_events_query_output_failed(q->ctx, rc);
        }
    }
}


/*
 * The socket is edge-triggered: read until it is empty.  PQconsumeInput()
 * may stop after one recv() with data still queued, and no new edge would
 * come for it.
 */

static ngx_int_t
ngx_http_sophon_events_query_consume(ngx_http_sophon_events_conn_t *conn)
{
    for ( ;; ) {
        if (!PQconsumeInput(conn->pg)) {
            return NGX_ERROR;
        }

        if (!PQisBusy(conn->pg)) {
            return NGX_OK;
        }

        if (!ngx_http_sophon_events_conn_ready(conn, POLLIN)) {
            return NGX_AGAIN;
        }
    }
}


/*
 * NGX_OK: read on; NGX_DONE: the Sync; NGX_ABORT: a statement read for
 * nobody went past its bounds; NGX_ERROR, NGX_DECLINED: the answer could
 * not be written (output.c)
 */

static ngx_int_t
ngx_http_sophon_events_query_result(ngx_http_sophon_events_query_t *q,
    PGresult *res)
{
    ngx_uint_t      step;
    ExecStatusType  status;

    status = PQresultStatus(res);

    if (status == PGRES_PIPELINE_SYNC) {
        PQclear(res);
        return NGX_DONE;
    }

    if (status == PGRES_PIPELINE_ABORTED) {
        /* a command after a failed one */
        PQclear(res);
        return NGX_OK;
    }

    if (status != PGRES_COMMAND_OK
        && status != PGRES_TUPLES_OK
        && status != PGRES_SINGLE_TUPLE)
    {
        ngx_http_sophon_events_query_error(q, res);
        PQclear(res);
        return NGX_OK;
    }

    step = q->steps[q->step];

    if (step == NGX_HTTP_SOPHON_EVENTS_STEP_PREPARE) {
        /* it exists on the server now, whatever happens to the Execute */
        ngx_http_sophon_events_sql_set_prepared(&q->conn->prepared, q->shape);
    }

    if (step == NGX_HTTP_SOPHON_EVENTS_STEP_PAGE && PQntuples(res) > 0) {
        return ngx_http_sophon_events_query_row(q, res);
    }

    PQclear(res);

    return NGX_OK;
}


/*
 * A row goes to the endpoint; one read for nobody only counts towards its
 * bounds.
 */

static ngx_int_t
ngx_http_sophon_events_query_row(ngx_http_sophon_events_query_t *q,
    PGresult *res)
{
    int        i;
    size_t     len;
    ngx_int_t  rc;

    if (q->ctx) {
        rc = q->ctx->endpoint->row(q->ctx, res);
        PQclear(res);
        return rc;
    }

    len = 0;

    for (i = 0; i < PQnfields(res); i++) {
        len += PQgetlength(res, 0, i);
    }

    PQclear(res);

    if (len > q->drain_left) {
        return NGX_ABORT;
    }

    q->drain_left -= len;

    return NGX_OK;
}


/*
 * The first error decides the answer.  The rest of the pipeline comes back
 * aborted; the Sync ends it.
 */

static void
ngx_http_sophon_events_query_error(ngx_http_sophon_events_query_t *q,
    PGresult *res)
{
    char       *sqlstate;
    ngx_log_t  *log;

    if (q->error_status) {
        return;
    }

    sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    q->error_status = ngx_http_sophon_events_query_status(sqlstate);

    log = q->ctx ? q->ctx->request->connection->log
                 : q->conn->connection->log;

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "sophon_events: the database answered %s: %s",
                  PQresStatus(PQresultStatus(res)),
                  ngx_http_sophon_events_pq_message(
                                                  PQresultErrorMessage(res)));
}


/*
 * A statement_timeout or a cancel (57014) is a database that did not answer
 * in time: 504.  A server shutting down or restarting (57P0x), a lost
 * connection (08xxx) or a server out of resources (53xxx) is a database
 * that cannot be had: 503.  Anything else was not expected: 500.
 */

static ngx_uint_t
ngx_http_sophon_events_query_status(const char *sqlstate)
{
    if (sqlstate == NULL) {
        /* libpq's own: the connection was lost */
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    if (ngx_strcmp(sqlstate, "57014") == 0) {
        return NGX_HTTP_GATEWAY_TIME_OUT;
    }

    if (ngx_strncmp(sqlstate, "57P0", 4) == 0
        || ngx_strncmp(sqlstate, "08", 2) == 0
        || ngx_strncmp(sqlstate, "53", 2) == 0)
    {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}


/* the Sync: the connection goes back, then the answer ends */

static void
ngx_http_sophon_events_query_done(ngx_http_sophon_events_query_t *q)
{
    ngx_int_t                      rc;
    ngx_uint_t                     status;
    ngx_http_request_t            *r;
    ngx_http_sophon_events_ctx_t  *ctx;

    ctx = q->ctx;
    status = q->error_status;

    if (ctx) {
        ctx->db_time = ngx_current_msec - q->start;
    }

    /* an error nobody expected: do not bet on the connection again */

    ngx_http_sophon_events_query_end(q, status == 0);

    if (ctx == NULL) {
        return;
    }

    if (status) {
        ngx_http_sophon_events_request_failed(ctx, NGX_LOG_ERR, status,
                                            "the database answered an error");
        return;
    }

    r = ctx->request;

    ctx->done = 1;

    rc = ctx->endpoint->finish(ctx);

    if (rc == NGX_DONE) {
        /* a stream: its answer goes on, what it wrote goes out */
        ctx->done = 0;
        ngx_http_sophon_events_query_client(ctx);
        return;
    }

    if (rc == NGX_ERROR || rc == NGX_DECLINED) {
        ngx_http_sophon_events_query_output_failed(ctx, rc);
        return;
    }

    /* what the client has not taken yet, nginx's writer sends */

    ngx_http_finalize_request(r, rc);
}


/* a failure of the database side: the connection is closed */

static void
ngx_http_sophon_events_query_abort(ngx_http_sophon_events_query_t *q,
    ngx_uint_t status, const char *reason)
{
    ngx_http_sophon_events_ctx_t  *ctx;

    /*
     * The reason is logged first: it may be libpq's, in a buffer that
     * closing this connection or opening the next one writes again.  The
     * request lets go of the query before it fails, so that it is closed
     * here, not drained.
     */

    ctx = q->ctx;

    if (ctx) {
        ctx->query = NULL;
        ctx->db_time = ngx_current_msec - q->start;
        q->ctx = NULL;

        ngx_http_sophon_events_request_failed(ctx, NGX_LOG_ERR, status,
                                              reason);

    } else {
        ngx_log_error(NGX_LOG_INFO, q->conn->connection->log, 0,
                      "sophon_events: %s", reason);
    }

    ngx_http_sophon_events_query_end(q, 0);
}


static void
ngx_http_sophon_events_query_end(ngx_http_sophon_events_query_t *q,
    ngx_uint_t reusable)
{
    ngx_http_sophon_events_conn_t  *conn;

    conn = q->conn;

    if (q->ctx) {
        q->ctx->query = NULL;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, conn->connection->log, 0,
                   "sophon_events query: ended on connection %p, "
                   "request:%d reusable:%ui", conn, q->ctx != NULL, reusable);

    ngx_free(q);

    ngx_http_sophon_events_pool_release(conn, reusable);
}


void
ngx_http_sophon_events_query_detach(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_http_sophon_events_query_t  *q;

    ngx_http_sophon_events_pool_abandon(ctx->pool, &ctx->waiter);

    q = ctx->query;

    if (q == NULL) {
        return;
    }

    ctx->query = NULL;
    q->ctx = NULL;

    if (ngx_exiting) {
        /*
         * closed at once, but from its own handler: this may run inside
         * its read loop, which must not find it freed
         */
        ngx_http_sophon_events_conn_timer(q->conn, 1);
        return;
    }

    /* the statement is read to its Sync for nobody, within bounds */

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, q->conn->connection->log, 0,
                   "sophon_events query: connection %p drains", q->conn);

    ngx_http_sophon_events_conn_timer(q->conn, q->drain_time);
}


/*
 * The client took some output (its write event), or the database makes us
 * wait: what is ready goes out, a partly filled buffer too.
 */

void
ngx_http_sophon_events_query_client(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_int_t     rc;
    ngx_event_t  *wev;

    wev = ctx->request->connection->write;

    if (wev->timedout) {
        /* the statement, if any, is read on for nobody */
        ctx->request->connection->timedout = 1;
        ngx_http_sophon_events_request_failed(ctx, NGX_LOG_INFO,
                                              NGX_HTTP_REQUEST_TIME_OUT,
                                              "the client timed out");
        return;
    }

    /*
     * the client's write events also come while we wait for a connection;
     * a stream's between its statements too, and what it has goes out
     */

    if (ctx->done || (ctx->query == NULL && ctx->stream == NULL)) {
        return;
    }

    rc = ngx_http_sophon_events_output_flush(ctx, 1);

    if (rc == NGX_ERROR || rc == NGX_DECLINED) {
        ngx_http_sophon_events_query_output_failed(ctx, rc);
        return;
    }

    if (ngx_http_sophon_events_query_wait_client(ctx) != NGX_OK) {
        ngx_http_sophon_events_query_output_failed(ctx, NGX_ERROR);
    }
}


/*
 * The answer could not be written: the client went away, the answer would
 * pass the temporary file's cap (NGX_DECLINED), or nginx failed (500).
 * The statement is read on for nobody either way.
 */

static void
ngx_http_sophon_events_query_output_failed(ngx_http_sophon_events_ctx_t *ctx,
    ngx_int_t rc)
{
    ngx_http_request_t  *r;

    r = ctx->request;

    if (rc == NGX_DECLINED && ctx->stream) {
        ngx_http_sophon_events_request_failed(ctx, NGX_LOG_WARN,
                         NGX_HTTP_INTERNAL_SERVER_ERROR,
                         "the stream's client is slower than its events, and "
                         "all of sophon_events_buffers wait for it");
        return;
    }

    if (rc == NGX_DECLINED) {
        ngx_http_sophon_events_request_failed(ctx, NGX_LOG_WARN,
                         NGX_HTTP_INTERNAL_SERVER_ERROR,
                         "the client is slower than the database, and the "
                         "rest of the answer would pass "
                         "sophon_events_max_temp_file_size");
        return;
    }

    if (r->connection->error) {
        ngx_http_sophon_events_request_failed(ctx, NGX_LOG_INFO,
                                              NGX_HTTP_CLIENT_CLOSED_REQUEST,
                                              "the client connection failed");
        return;
    }

    ngx_http_sophon_events_request_failed(ctx, NGX_LOG_ERR,
                                          NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "the answer could not be written");
}


/* the client's send_timeout runs only while it is behind */

static ngx_int_t
ngx_http_sophon_events_query_wait_client(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_event_t               *wev;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

    r = ctx->request;
    wev = r->connection->write;
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
        return NGX_ERROR;
    }

    if (!wev->delayed) {
        if (wev->active && !wev->ready) {
            ngx_add_timer(wev, clcf->send_timeout);

        } else if (wev->timer_set) {
            ngx_del_timer(wev);
        }
    }

    return NGX_OK;
}


/*
 * The request ends with "status", or, once a 200 has started, is cut: no
 * last chunk, so that the client cannot take a cut page for whole.
 */

void
ngx_http_sophon_events_request_failed(ngx_http_sophon_events_ctx_t *ctx,
    ngx_uint_t level, ngx_uint_t status, const char *reason)
{
    ngx_str_t           *message;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (status == NGX_HTTP_GATEWAY_TIME_OUT) {
        ngx_http_sophon_events_count(
                              NGX_HTTP_SOPHON_EVENTS_COUNT_QUERY_TIMEOUTS, 1);
    }

    if (ctx->header_sent
        && status != NGX_HTTP_CLIENT_CLOSED_REQUEST
        && status != NGX_HTTP_REQUEST_TIME_OUT)
    {
        ngx_http_sophon_events_count(NGX_HTTP_SOPHON_EVENTS_COUNT_CUT, 1);
    }

    /* first: "reason" may be libpq's, freed with its connection */

    if (ctx->header_sent) {
        ngx_log_error(level, r->connection->log, 0,
                      "sophon_events: answer cut after %ui events: %s",
                      ctx->rows, reason);

    } else {
        ngx_log_error(level, r->connection->log, 0,
                      "sophon_events: %s", reason);
    }

    ngx_http_sophon_events_query_detach(ctx);

    if (ctx->stream) {
        ngx_http_sophon_events_stream_stop(ctx->stream);
    }

    ctx->done = 1;

    if (ctx->header_sent) {
        if (status == NGX_HTTP_INTERNAL_SERVER_ERROR) {
            /* the access log says what happened, not the 200 */
            r->err_status = status;
        }

        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    if (status == NGX_HTTP_CLIENT_CLOSED_REQUEST
        || status == NGX_HTTP_REQUEST_TIME_OUT)
    {
        /* nobody to answer */
        ngx_http_finalize_request(r, status);
        return;
    }

    switch (status) {

    case NGX_HTTP_SERVICE_UNAVAILABLE:
        message = &ngx_http_sophon_events_messages[0];
        break;

    case NGX_HTTP_GATEWAY_TIME_OUT:
        message = &ngx_http_sophon_events_messages[1];
        break;

    default:
        message = &ngx_http_sophon_events_messages[2];
        break;
    }

    ngx_http_finalize_request(r,
                     ngx_http_sophon_events_send_error(r, status, message));
}
