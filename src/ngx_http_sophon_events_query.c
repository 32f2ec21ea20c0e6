
/*
 * ngx_http_sophon_events_module: one request's statement on a pooled
 * connection, its rows read as they arrive.
 *
 * The whole request is one round trip in libpq's pipeline mode:
 *
 *   [Parse]     once per connection and filter set
 *   Execute     in single-row mode, streamed out
 *   Sync
 *
 * One statement computes the total and the page (sql.c), so both read one
 * snapshot and always agree, however fast events are written.  Every
 * command's results end with a NULL from PQgetResult(); the Sync's result
 * is the last one.
 */


#include "ngx_http_sophon_events_query.h"
#include "ngx_http_sophon_events_pool.h"
#include "ngx_http_sophon_events_sql.h"
#include "ngx_http_sophon_events_output.h"


typedef enum {
    NGX_HTTP_SOPHON_EVENTS_STEP_PREPARE = 0,
    NGX_HTTP_SOPHON_EVENTS_STEP_PAGE,
    NGX_HTTP_SOPHON_EVENTS_STEP_SYNC
} ngx_http_sophon_events_step_e;


static ngx_int_t ngx_http_sophon_events_query_pipeline(
    ngx_http_sophon_events_ctx_t *ctx);
static ngx_int_t ngx_http_sophon_events_query_prepare(
    ngx_http_sophon_events_ctx_t *ctx, ngx_http_sophon_events_stmt_t *stmt);
static void ngx_http_sophon_events_query_read(
    ngx_http_sophon_events_ctx_t *ctx);
static ngx_int_t ngx_http_sophon_events_query_consume(
    ngx_http_sophon_events_conn_t *conn);
static ngx_int_t ngx_http_sophon_events_query_result(
    ngx_http_sophon_events_ctx_t *ctx, PGresult *res);
static ngx_int_t ngx_http_sophon_events_query_rows(
    ngx_http_sophon_events_ctx_t *ctx, PGresult *res);
static ngx_int_t ngx_http_sophon_events_query_error(
    ngx_http_sophon_events_ctx_t *ctx, PGresult *res);
static ngx_uint_t ngx_http_sophon_events_query_status(const char *sqlstate);
static ngx_int_t ngx_http_sophon_events_query_wait_client(
    ngx_http_sophon_events_ctx_t *ctx);
static void ngx_http_sophon_events_query_done(
    ngx_http_sophon_events_ctx_t *ctx);


static ngx_str_t  ngx_http_sophon_events_messages[] = {
    ngx_string("the database is unavailable"),
    ngx_string("the database did not answer in time"),
    ngx_string("the database answered with an unexpected error")
};


void
ngx_http_sophon_events_query_send(ngx_http_sophon_events_ctx_t *ctx)
{
    int                             rc;
    ngx_http_sophon_events_conn_t  *conn;

    conn = ctx->conn;

    ctx->nsteps = 0;
    ctx->step = 0;
    ctx->error_status = 0;
    ctx->db_start = ngx_current_msec;

    if (ngx_http_sophon_events_query_pipeline(ctx) != NGX_OK) {
        ngx_http_sophon_events_query_failed(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                            PQerrorMessage(conn->pg));
        return;
    }

    ngx_http_sophon_events_conn_timer(conn, ctx->conf->query_timeout);

    /* 1: the rest goes out when the socket takes it, on a write event */

    rc = PQflush(conn->pg);

    if (rc == -1) {
        ngx_http_sophon_events_query_failed(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                            PQerrorMessage(conn->pg));
    }
}


static ngx_int_t
ngx_http_sophon_events_query_pipeline(ngx_http_sophon_events_ctx_t *ctx)
{
    PGconn                         *pg;
    ngx_uint_t                      shape;
    ngx_http_sophon_events_conn_t  *conn;
    ngx_http_sophon_events_stmt_t   stmt;

    conn = ctx->conn;
    pg = conn->pg;
    shape = ctx->shape;

    if (PQpipelineStatus(pg) == PQ_PIPELINE_OFF
        && PQenterPipelineMode(pg) != 1)
    {
        return NGX_ERROR;
    }

    if (ngx_http_sophon_events_sql_stmt(ctx->request->pool, &ctx->args, &stmt)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!(conn->prepared[shape / 8] & (1 << (shape % 8)))
        && ngx_http_sophon_events_query_prepare(ctx, &stmt) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!PQsendQueryPrepared(pg, stmt.name, stmt.nparams, stmt.values,
                             NULL, NULL, 0))
    {
        return NGX_ERROR;
    }

    ctx->steps[ctx->nsteps++] = NGX_HTTP_SOPHON_EVENTS_STEP_PAGE;

    if (ctx->nsteps == 1) {
        /* the first command: its results are not being read yet */
        (void) PQsetSingleRowMode(pg);
    }

    if (!PQpipelineSync(pg)) {
        return NGX_ERROR;
    }

    ctx->steps[ctx->nsteps++] = NGX_HTTP_SOPHON_EVENTS_STEP_SYNC;

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_query_prepare(ngx_http_sophon_events_ctx_t *ctx,
    ngx_http_sophon_events_stmt_t *stmt)
{
    ngx_str_t  text;

    if (ngx_http_sophon_events_sql_text(ctx->request->pool, ctx->shape, &text)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "sophon_events: prepare %s: %V", stmt->name, &text);

    if (!PQsendPrepare(ctx->conn->pg, stmt->name, (char *) text.data, 0,
                       NULL))
    {
        return NGX_ERROR;
    }

    ctx->steps[ctx->nsteps++] = NGX_HTTP_SOPHON_EVENTS_STEP_PREPARE;

    return NGX_OK;
}


void
ngx_http_sophon_events_query_handler(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_connection_t               *c;
    ngx_http_sophon_events_conn_t  *conn;

    conn = ctx->conn;
    c = conn->connection;

    if (ctx->nsteps == 0) {
        /*
         * handed over by the pool, its query not sent yet: the posted
         * wake-up of the request will send it
         */
        return;
    }

    if (c->read->timedout) {
        c->read->timedout = 0;
        ngx_http_sophon_events_query_failed(ctx, NGX_HTTP_GATEWAY_TIME_OUT,
                                   "the database did not answer in time");
        return;
    }

    if (PQflush(conn->pg) == -1) {
        ngx_http_sophon_events_query_failed(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                            PQerrorMessage(conn->pg));
        return;
    }

    ngx_http_sophon_events_query_read(ctx);
}


void
ngx_http_sophon_events_query_resume(ngx_http_sophon_events_ctx_t *ctx)
{
    /* the client's write events also come while we wait for a connection */

    if (ctx->conn == NULL || ctx->nsteps == 0 || ctx->done) {
        return;
    }

    if (ngx_http_sophon_events_output_flush(ctx, 0) == NGX_ERROR) {
        ngx_http_sophon_events_query_failed(ctx,
                                            NGX_HTTP_CLIENT_CLOSED_REQUEST,
                                            "the client connection failed");
        return;
    }

    /* the client's send_timeout runs only while it is behind */

    if (ngx_http_sophon_events_query_wait_client(ctx) != NGX_OK) {
        ngx_http_sophon_events_query_failed(ctx,
                                            NGX_HTTP_CLIENT_CLOSED_REQUEST,
                                            "the client connection failed");
        return;
    }

    if (!ngx_http_sophon_events_output_ready(ctx)) {
        return;
    }

    if (ctx->paused) {
        /* the database's time starts again where the client held it */
        ctx->paused = 0;
        ngx_http_sophon_events_conn_timer(ctx->conn,
                                          ctx->conf->query_timeout);
    }

    ngx_http_sophon_events_query_read(ctx);
}


static void
ngx_http_sophon_events_query_read(ngx_http_sophon_events_ctx_t *ctx)
{
    PGconn                         *pg;
    ngx_int_t                       rc;
    PGresult                       *res;
    ngx_http_sophon_events_conn_t  *conn;

    conn = ctx->conn;
    pg = conn->pg;

    for ( ;; ) {

        if (ctx->result) {
            rc = ngx_http_sophon_events_output_rows(ctx);

            if (rc == NGX_AGAIN) {
                rc = ngx_http_sophon_events_output_flush(ctx, 1);

                if (rc == NGX_ERROR) {
                    ngx_http_sophon_events_query_failed(ctx,
                                        NGX_HTTP_CLIENT_CLOSED_REQUEST,
                                        "the client connection failed");
                    return;
                }

                if (ngx_http_sophon_events_output_ready(ctx)) {
                    continue;
                }

                /* the client is behind: leave the rows in the socket */

                ctx->paused = 1;
                ngx_http_sophon_events_conn_timer(conn, 0);

                if (ngx_http_sophon_events_query_wait_client(ctx) != NGX_OK) {
                    ngx_http_sophon_events_query_failed(ctx,
                                        NGX_HTTP_CLIENT_CLOSED_REQUEST,
                                        "the client connection failed");
                }

                return;
            }
        }

        if (PQisBusy(pg)) {
            rc = ngx_http_sophon_events_query_consume(conn);

            if (rc == NGX_ERROR) {
                ngx_http_sophon_events_query_failed(ctx,
                                                NGX_HTTP_SERVICE_UNAVAILABLE,
                                                PQerrorMessage(pg));
                return;
            }

            if (rc == NGX_AGAIN) {
                /* what we have goes out while the database works */

                if (ngx_http_sophon_events_output_flush(ctx, 1) == NGX_ERROR
                    || ngx_http_sophon_events_query_wait_client(ctx)
                       != NGX_OK)
                {
                    ngx_http_sophon_events_query_failed(ctx,
                                        NGX_HTTP_CLIENT_CLOSED_REQUEST,
                                        "the client connection failed");
                }

                return;
            }
        }

        res = PQgetResult(pg);

        if (res == NULL) {
            /* the end of one command's results */

            ctx->step++;

            if (PQstatus(pg) == CONNECTION_BAD || ctx->step >= ctx->nsteps) {
                /* the server went away: no Sync will ever come */
                ngx_http_sophon_events_query_failed(ctx,
                                  ctx->error_status
                                  ? ctx->error_status
                                  : NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "the database closed the connection");
                return;
            }

            if (ctx->steps[ctx->step] == NGX_HTTP_SOPHON_EVENTS_STEP_PAGE) {
                /* before any of its results is parsed, or it is refused */
                (void) PQsetSingleRowMode(pg);
            }

            continue;
        }

        rc = ngx_http_sophon_events_query_result(ctx, res);

        if (rc == NGX_DONE) {
            ngx_http_sophon_events_query_done(ctx);
            return;
        }

        if (rc == NGX_ERROR) {
            ngx_http_sophon_events_query_failed(ctx,
                                        NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "the answer could not be written");
            return;
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


static ngx_int_t
ngx_http_sophon_events_query_result(ngx_http_sophon_events_ctx_t *ctx,
    PGresult *res)
{
    ExecStatusType                 status;
    ngx_uint_t                     step;
    ngx_http_sophon_events_conn_t  *conn;

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
        return ngx_http_sophon_events_query_error(ctx, res);
    }

    step = ctx->steps[ctx->step];
    conn = ctx->conn;

    if (step == NGX_HTTP_SOPHON_EVENTS_STEP_PREPARE) {
        /* it exists on the server now, whatever happens to the Execute */
        conn->prepared[ctx->shape / 8] |= 1 << (ctx->shape % 8);
    }

    if (step == NGX_HTTP_SOPHON_EVENTS_STEP_PAGE && PQntuples(res) > 0) {
        return ngx_http_sophon_events_query_rows(ctx, res);
    }

    PQclear(res);

    return NGX_OK;
}


/*
 * Rows of (total, doc): the first one brings the total, and the answer's
 * header with it; a NULL doc is the row of a page past the end.
 */

static ngx_int_t
ngx_http_sophon_events_query_rows(ngx_http_sophon_events_ctx_t *ctx,
    PGresult *res)
{
    if (!ctx->header_sent) {
        ctx->total = ngx_atoof((u_char *) PQgetvalue(res, 0, 0),
                               PQgetlength(res, 0, 0));

        if (ngx_http_sophon_events_output_start(ctx) != NGX_OK) {
            PQclear(res);
            return NGX_ERROR;
        }
    }

    ctx->result = res;
    ctx->row = 0;
    ctx->row_sent = 0;

    return NGX_OK;
}


/*
 * The first error decides the answer.  The rest of the pipeline comes back
 * aborted; the Sync ends it.
 */

static ngx_int_t
ngx_http_sophon_events_query_error(ngx_http_sophon_events_ctx_t *ctx,
    PGresult *res)
{
    char  *sqlstate;

    if (ctx->error_status == 0) {
        sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        ctx->error_status = ngx_http_sophon_events_query_status(sqlstate);

        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "sophon_events: the database answered %s: %s",
                      PQresStatus(PQresultStatus(res)),
                      PQresultErrorMessage(res));
    }

    PQclear(res);

    return NGX_OK;
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


static void
ngx_http_sophon_events_query_done(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_int_t            rc;
    ngx_uint_t           status;
    ngx_http_request_t  *r;

    r = ctx->request;
    ctx->db_time = ngx_current_msec - ctx->db_start;

    status = ctx->error_status;

    if (status) {
        /* an error nobody expected: do not bet on the connection again */
        ngx_http_sophon_events_query_failed(ctx, status,
                                            "the database answered an error");
        return;
    }

    ngx_http_sophon_events_pool_release(ctx, 1);

    if (!ctx->header_sent
        && ngx_http_sophon_events_output_start(ctx) != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    ctx->done = 1;

    rc = ngx_http_sophon_events_output_finish(ctx);

    ngx_http_finalize_request(r, rc);
}


void
ngx_http_sophon_events_query_failed(ngx_http_sophon_events_ctx_t *ctx,
    ngx_uint_t status, const char *reason)
{
    ngx_str_t           *message;
    ngx_uint_t           level;
    ngx_http_request_t  *r;

    r = ctx->request;

    /*
     * First: "reason" may be libpq's, freed with its connection.  A client
     * that goes away is its own business, not an error of the service.
     */

    level = (status == NGX_HTTP_CLIENT_CLOSED_REQUEST
             || status == NGX_HTTP_REQUEST_TIME_OUT)
            ? NGX_LOG_INFO : NGX_LOG_ERR;

    if (ctx->header_sent) {
        /* no last chunk: the client must not take a cut page for whole */
        ngx_log_error(level, r->connection->log, 0,
                      "sophon_events: answer cut after %ui events: %s",
                      ctx->rows, reason);

    } else {
        ngx_log_error(level, r->connection->log, 0,
                      "sophon_events: %s", reason);
    }

    ngx_http_sophon_events_query_detach(ctx, 0);

    ctx->done = 1;

    if (ctx->header_sent) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    if (level == NGX_LOG_INFO) {
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


/*
 * The request lets go of the database: it leaves the queue, drops the rows
 * it holds, and gives its connection back, or has it closed.
 */

void
ngx_http_sophon_events_query_detach(ngx_http_sophon_events_ctx_t *ctx,
    ngx_uint_t reusable)
{
    ngx_http_sophon_events_pool_abandon(ctx);

    if (ctx->result) {
        PQclear(ctx->result);
        ctx->result = NULL;
    }

    ngx_http_sophon_events_pool_release(ctx, reusable);
}
