
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: the servers of one PostgreSQL cluster.
 *
 * Each "sophon_events_db" of a location is one server with a pool of its
 * own; the pools of one host:port (a reader's and a deleter's, those of
 * several locations) share one server, and what a worker knows of it, it
 * learned itself, as nginx's upstream servers do without a zone:
 *
 *   - its role, from the server: PostgreSQL 14 and newer report
 *     in_hot_standby at connect and again when a promotion changes it, so
 *     every connection made or given back tells, at no cost;
 *   - its health: "max_fails" failures within "fail_timeout" (connections
 *     refused, timed out or broken, probes unanswered) leave it out for
 *     "fail_timeout";
 *   - a standby's replay lag.
 *
 * A probe asks each server every second (every max_lag / 2 with
 * "max_lag") on a connection of one of its pools, never in a request's
 * time: its answer is the role and the lag.  So a server that no request
 * uses for what it has become (a promoted standby, for the DELETEs) is
 * known all the same, and a server left out is asked again when its
 * fail_timeout is over, and comes back by itself.  When a server's role
 * changes or a primary is left out, every server is probed at once: a
 * failover is seen in one round trip, not a second.
 */


#include "ngx_http_sophon_events_cluster.h"
#include "ngx_http_sophon_events_pool.h"
#include "ngx_http_sophon_events_status.h"


struct ngx_http_sophon_events_probe_s {
    ngx_http_sophon_events_server_t  *server;
    ngx_http_sophon_events_waiter_t   waiter;
    ngx_http_sophon_events_conn_t    *conn;
    ngx_event_t                       timer;
    ngx_int_t                         lag;           /* read this round */
    ngx_int_t                         standby;       /* -1: not read */
};


/* a lag older than this many intervals is not known any more */
#define NGX_HTTP_SOPHON_EVENTS_LAG_ROUNDS  5


static ngx_uint_t ngx_http_sophon_events_cluster_rank(
    ngx_http_sophon_events_pool_t *pool, ngx_uint_t want);
static void ngx_http_sophon_events_server_set_role(
    ngx_http_sophon_events_server_t *server, ngx_uint_t role);
static void ngx_http_sophon_events_probe_all(void);
static void ngx_http_sophon_events_probe_timer(ngx_event_t *ev);
static void ngx_http_sophon_events_probe_wait_handler(ngx_event_t *ev);
static void ngx_http_sophon_events_probe_send(
    ngx_http_sophon_events_probe_t *probe);
static void ngx_http_sophon_events_probe_handler(
    ngx_http_sophon_events_conn_t *conn);
static ngx_int_t ngx_http_sophon_events_probe_read(
    ngx_http_sophon_events_probe_t *probe, PGconn *pg);
static void ngx_http_sophon_events_probe_done(
    ngx_http_sophon_events_probe_t *probe, ngx_int_t rc);


/* this worker's servers, for the probes that go all at once */
static ngx_array_t  *ngx_http_sophon_events_servers;


/*
 * Whether the server is a standby (PostgreSQL 13 and older do not report
 * in_hot_standby), and its lag in ms: none when it replayed all it
 * received (a quiet primary sends nothing, and the last replayed commit
 * grows old; a standby restarted replays past where streaming starts
 * again, the start of a WAL segment), else the age of the last commit it
 * replayed; -1 when it cannot tell.
 */

static const char  ngx_http_sophon_events_probe_sql[] =
    "SELECT pg_is_in_recovery(),"
    " CASE WHEN NOT pg_is_in_recovery()"
    " OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0"
    " ELSE coalesce((extract(epoch FROM now()"
    " - pg_last_xact_replay_timestamp()) * 1000)::bigint, -1) END";


/* the rank of each role for each want: lower is better, 3 is never */

static const ngx_uint_t  ngx_http_sophon_events_ranks[][3] = {
    /* unknown, primary, standby */
    { 1, 2, 0 },                          /* READ_STANDBY */
    { 1, 0, 2 },                          /* READ_PRIMARY */
    { 0, 0, 0 },                          /* READ_ANY */
    { 1, 0, 3 }                           /* PRIMARY_ONLY */
};


ngx_http_sophon_events_pool_t *
ngx_http_sophon_events_cluster_pick(ngx_http_sophon_events_cluster_t *cluster,
    ngx_uint_t want, ngx_uint_t *tried)
{
    ngx_uint_t                      i, n, k, rank, best_rank, best;
    ngx_http_sophon_events_pool_t **server;

    server = cluster->servers.elts;
    n = cluster->servers.nelts;

    if (n == 1) {
        /* alone, as an upstream's only server: never left out */

        if (*tried & 1) {
            return NULL;
        }

        *tried |= 1;
        return server[0];
    }

    best = n;
    best_rank = 3;

    for (k = 0; k < n; k++) {
        i = (cluster->next + k) % n;

        if (*tried & ((ngx_uint_t) 1 << i)) {
            continue;
        }

        rank = ngx_http_sophon_events_cluster_rank(server[i], want);

        if (rank < best_rank) {
            best_rank = rank;
            best = i;
        }
    }

    if (best == n) {
        return NULL;
    }

    cluster->next = best + 1;
    *tried |= (ngx_uint_t) 1 << best;

    return server[best];
}


static ngx_uint_t
ngx_http_sophon_events_cluster_rank(ngx_http_sophon_events_pool_t *pool,
    ngx_uint_t want)
{
    ngx_http_sophon_events_server_t  *server;

    server = pool->server;

    if (server->down_until > ngx_time()) {
        return 3;
    }

    if (server->role == NGX_HTTP_SOPHON_EVENTS_ROLE_STANDBY
        && pool->max_lag
        && want != NGX_HTTP_SOPHON_EVENTS_PRIMARY_ONLY
        && (server->lag < 0
            || (ngx_msec_t) server->lag > pool->max_lag
            || ngx_current_msec - server->lag_at
               > NGX_HTTP_SOPHON_EVENTS_LAG_ROUNDS * server->interval))
    {
        return 3;
    }

    return ngx_http_sophon_events_ranks[want][server->role];
}


ngx_http_sophon_events_server_t *
ngx_http_sophon_events_server(ngx_conf_t *cf, ngx_array_t *servers,
    ngx_str_t *name)
{
    ngx_uint_t                         i;
    ngx_http_sophon_events_server_t  **s, *server;

    s = servers->elts;

    for (i = 0; i < servers->nelts; i++) {
        if (s[i]->name.len == name->len
            && ngx_strncmp(s[i]->name.data, name->data, name->len) == 0)
        {
            return s[i];
        }
    }

    server = ngx_pcalloc(cf->pool, sizeof(ngx_http_sophon_events_server_t));
    if (server == NULL) {
        return NULL;
    }

    s = ngx_array_push(servers);
    if (s == NULL) {
        return NULL;
    }

    server->name = *name;
    server->index = servers->nelts - 1;
    server->lag = -1;
    server->interval = 1000;
    *s = server;

    return server;
}


ngx_uint_t
ngx_http_sophon_events_server_failed(ngx_http_sophon_events_pool_t *pool,
    ngx_log_t *log)
{
    time_t                            now;
    ngx_http_sophon_events_server_t  *server;

    server = pool->server;

    if (!pool->several || pool->max_fails == 0) {
        return 0;
    }

    now = ngx_time();

    if (now - server->first_fail >= pool->fail_timeout) {
        server->fails = 0;
        server->first_fail = now;
    }

    if (++server->fails < pool->max_fails) {
        ngx_http_sophon_events_status_server(server);
        return 0;
    }

    server->fails = 0;

    if (server->down_until > now) {
        server->down_until = now + pool->fail_timeout;
        ngx_http_sophon_events_status_server(server);
        return 0;
    }

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "sophon_events: database server %V is left out for %T s "
                  "after %ui failure%s", &server->name, pool->fail_timeout,
                  pool->max_fails, pool->max_fails == 1 ? "" : "s");

    server->down_until = now + pool->fail_timeout;

    ngx_http_sophon_events_status_server(server);

    /* a primary gone: where is the next one? */

    if (server->role == NGX_HTTP_SOPHON_EVENTS_ROLE_PRIMARY) {
        ngx_http_sophon_events_probe_all();
    }

    return 1;
}


ngx_uint_t
ngx_http_sophon_events_server_standby(ngx_http_sophon_events_pool_t *pool)
{
    return pool->several
           && pool->server->role == NGX_HTTP_SOPHON_EVENTS_ROLE_STANDBY;
}


ngx_uint_t
ngx_http_sophon_events_server_standby_now(ngx_http_sophon_events_conn_t *conn)
{
    const char  *standby;

    if (!conn->pool->several) {
        return 0;
    }

    standby = PQparameterStatus(conn->pg, "in_hot_standby");

    return standby != NULL && ngx_strcmp(standby, "on") == 0;
}


void
ngx_http_sophon_events_server_up(ngx_http_sophon_events_pool_t *pool,
    PGconn *pg)
{
    pool->server->fails = 0;
    pool->server->down_until = 0;

    ngx_http_sophon_events_status_server(pool->server);

    ngx_http_sophon_events_server_role(pool, pg);
}


void
ngx_http_sophon_events_server_role(ngx_http_sophon_events_pool_t *pool,
    PGconn *pg)
{
    const char  *standby;

    /* NULL before PostgreSQL 14: the probe tells instead */

    standby = PQparameterStatus(pg, "in_hot_standby");
    if (standby == NULL) {
        return;
    }

    ngx_http_sophon_events_server_set_role(pool->server,
                                  ngx_strcmp(standby, "on") == 0
                                  ? NGX_HTTP_SOPHON_EVENTS_ROLE_STANDBY
                                  : NGX_HTTP_SOPHON_EVENTS_ROLE_PRIMARY);
}


static void
ngx_http_sophon_events_server_set_role(
    ngx_http_sophon_events_server_t *server, ngx_uint_t role)
{
    ngx_uint_t  known;

    if (role == server->role) {
        return;
    }

    known = (server->role != NGX_HTTP_SOPHON_EVENTS_ROLE_UNKNOWN);
    server->role = role;

    ngx_http_sophon_events_status_server(server);

    if (server->probe == NULL) {
        /* a location's only server: nothing to tell */
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "sophon_events: database server %V is a %s", &server->name,
                  role == NGX_HTTP_SOPHON_EVENTS_ROLE_STANDBY
                  ? "standby" : "primary");

    /* a promotion, or a primary back as a standby: what are the others? */

    if (known) {
        ngx_http_sophon_events_probe_all();
    }
}


ngx_int_t
ngx_http_sophon_events_cluster_init_process(ngx_cycle_t *cycle,
    ngx_array_t *servers, ngx_array_t *pools)
{
    ngx_uint_t                         i;
    ngx_msec_t                         interval;
    ngx_http_sophon_events_pool_t    **pool;
    ngx_http_sophon_events_probe_t    *probe;
    ngx_http_sophon_events_server_t  **server, *s;

    /* workers only: the cache manager and loader run no requests */

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    ngx_http_sophon_events_servers = servers;

    /* each server is probed on its first pool among others, as often as
     * its tightest max_lag needs */

    pool = pools->elts;

    for (i = 0; i < pools->nelts; i++) {
        if (!pool[i]->several) {
            continue;
        }

        s = pool[i]->server;

        if (s->probe_pool == NULL) {
            s->probe_pool = pool[i];
        }

        if (pool[i]->max_lag) {
            interval = ngx_min(ngx_max(pool[i]->max_lag / 2, 50), 1000);
            s->interval = ngx_min(s->interval, interval);
        }
    }

    server = servers->elts;

    for (i = 0; i < servers->nelts; i++) {
        s = server[i];

        if (s->probe_pool == NULL) {
            continue;
        }

        probe = ngx_pcalloc(cycle->pool,
                            sizeof(ngx_http_sophon_events_probe_t));
        if (probe == NULL) {
            return NGX_ERROR;
        }

        probe->server = s;

        probe->timer.handler = ngx_http_sophon_events_probe_timer;
        probe->timer.data = probe;
        probe->timer.log = cycle->log;
        probe->timer.cancelable = 1;

        probe->waiter.event.handler =
                                   ngx_http_sophon_events_probe_wait_handler;
        probe->waiter.event.data = probe;
        probe->waiter.event.log = cycle->log;
        probe->waiter.event.cancelable = 1;
        probe->waiter.connect_timeout = s->probe_pool->connect_timeout
                                        ? s->probe_pool->connect_timeout
                                        : 5000;

        s->probe = probe;

        ngx_add_timer(&probe->timer, 1);
    }

    return NGX_OK;
}


/* every probe that waits for its next round runs now */

static void
ngx_http_sophon_events_probe_all(void)
{
    ngx_uint_t                         i;
    ngx_http_sophon_events_server_t  **server;

    if (ngx_http_sophon_events_servers == NULL) {
        return;
    }

    server = ngx_http_sophon_events_servers->elts;

    for (i = 0; i < ngx_http_sophon_events_servers->nelts; i++) {
        if (server[i]->probe && server[i]->probe->timer.timer_set) {
            ngx_add_timer(&server[i]->probe->timer, 1);
        }
    }
}


static void
ngx_http_sophon_events_probe_timer(ngx_event_t *ev)
{
    ngx_int_t                         rc;
    ngx_http_sophon_events_pool_t    *pool;
    ngx_http_sophon_events_probe_t   *probe;
    ngx_http_sophon_events_server_t  *server;

    probe = ev->data;
    server = probe->server;
    pool = server->probe_pool;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    /*
     * Left out: asked again when its fail_timeout is over.  A pool whose
     * connections are all busy skips the round, its last lag kept: the
     * probe never waits behind requests, nor takes a place in the queue.
     */

    if (server->down_until > ngx_time()
        || (ngx_queue_empty(&pool->idle)
            && pool->nconnections >= pool->max_connections))
    {
        ngx_add_timer(&probe->timer, server->interval);
        return;
    }

    rc = ngx_http_sophon_events_pool_acquire(pool, &probe->waiter, ev->log);

    if (rc == NGX_OK) {
        ngx_http_sophon_events_probe_send(probe);
        return;
    }

    if (rc != NGX_AGAIN) {
        /* a connection could not be opened: counted already */
        ngx_http_sophon_events_probe_done(probe, NGX_DECLINED);
    }
}


static void
ngx_http_sophon_events_probe_wait_handler(ngx_event_t *ev)
{
    ngx_http_sophon_events_probe_t  *probe;

    probe = ev->data;

    if (ev->timedout) {
        ev->timedout = 0;
        ngx_http_sophon_events_probe_done(probe, NGX_DECLINED);
        return;
    }

    if (probe->waiter.conn == NULL) {
        ngx_http_sophon_events_probe_done(probe, NGX_DECLINED);
        return;
    }

    ngx_http_sophon_events_probe_send(probe);
}


/* in the pipeline, as the pool's statements are: the query, then a Sync */

static void
ngx_http_sophon_events_probe_send(ngx_http_sophon_events_probe_t *probe)
{
    PGconn                         *pg;
    ngx_http_sophon_events_conn_t  *conn;

    conn = probe->waiter.conn;
    probe->waiter.conn = NULL;

    probe->conn = conn;
    probe->lag = -1;
    probe->standby = -1;

    conn->handler = ngx_http_sophon_events_probe_handler;
    conn->data = probe;

    pg = conn->pg;

    if ((PQpipelineStatus(pg) == PQ_PIPELINE_OFF
         && PQenterPipelineMode(pg) != 1)
        || !PQsendQueryParams(pg, ngx_http_sophon_events_probe_sql, 0, NULL,
                              NULL, NULL, NULL, 0)
        || !PQpipelineSync(pg)
        || PQflush(pg) == -1)
    {
        ngx_log_error(NGX_LOG_ERR, probe->timer.log, 0,
                      "sophon_events: database server %V cannot be probed: "
                      "%s", &probe->server->name,
                      ngx_http_sophon_events_pq_message(PQerrorMessage(pg)));
        ngx_http_sophon_events_probe_done(probe, NGX_ERROR);
        return;
    }

    ngx_http_sophon_events_conn_timer(conn, probe->server->probe_pool
                                                              ->wait_timeout);
}


static void
ngx_http_sophon_events_probe_handler(ngx_http_sophon_events_conn_t *conn)
{
    ngx_int_t                        rc;
    ngx_http_sophon_events_probe_t  *probe;

    probe = conn->data;

    if (conn->connection->close) {
        ngx_http_sophon_events_probe_done(probe, NGX_DECLINED);
        return;
    }

    if (conn->connection->read->timedout) {
        conn->connection->read->timedout = 0;

        ngx_log_error(NGX_LOG_ERR, probe->timer.log, 0,
                      "sophon_events: database server %V did not answer "
                      "its probe in time", &probe->server->name);
        ngx_http_sophon_events_probe_done(probe, NGX_ERROR);
        return;
    }

    rc = ngx_http_sophon_events_probe_read(probe, conn->pg);

    if (rc == NGX_AGAIN) {
        return;
    }

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, probe->timer.log, 0,
                      "sophon_events: database server %V cannot be probed: "
                      "%s", &probe->server->name,
                      ngx_http_sophon_events_pq_message(
                                                  PQerrorMessage(conn->pg)));
    }

    ngx_http_sophon_events_probe_done(probe, rc);
}


/* NGX_OK at the Sync, NGX_AGAIN until then */

static ngx_int_t
ngx_http_sophon_events_probe_read(ngx_http_sophon_events_probe_t *probe,
    PGconn *pg)
{
    char        *value;
    PGresult    *res;
    ngx_int_t    rc, lag;
    ngx_uint_t   nulls;

    if (PQflush(pg) == -1) {
        return NGX_ERROR;
    }

    /* edge-triggered: read until the socket is empty */

    do {
        if (!PQconsumeInput(pg)) {
            return NGX_ERROR;
        }

    } while (ngx_http_sophon_events_conn_ready(probe->conn, POLLIN));

    rc = NGX_AGAIN;
    nulls = 0;

    while (rc == NGX_AGAIN && !PQisBusy(pg)) {
        res = PQgetResult(pg);

        if (res == NULL) {
            /* the end of the query's results; twice: nothing will come */

            if (++nulls > 1) {
                return NGX_ERROR;
            }

            continue;
        }

        nulls = 0;

        switch (PQresultStatus(res)) {

        case PGRES_TUPLES_OK:
            if (PQntuples(res) == 1 && PQnfields(res) == 2) {
                probe->standby = (PQgetvalue(res, 0, 0)[0] == 't');

                value = PQgetvalue(res, 0, 1);
                lag = ngx_atoi((u_char *) value, ngx_strlen(value));
                probe->lag = (lag == NGX_ERROR) ? -1 : lag;
            }

            break;

        case PGRES_PIPELINE_SYNC:
            rc = NGX_OK;
            break;

        default:
            rc = NGX_ERROR;
            break;
        }

        PQclear(res);
    }

    if (rc == NGX_AGAIN && PQstatus(pg) == CONNECTION_BAD) {
        return NGX_ERROR;
    }

    return rc;
}


/*
 * The round's end: NGX_OK, answered; NGX_ERROR, the server failed it (no
 * answer in time, an error); NGX_DECLINED, no connection (a failed
 * connect is counted where it fails) or nginx stops.  The next round in
 * an interval.
 */

static void
ngx_http_sophon_events_probe_done(ngx_http_sophon_events_probe_t *probe,
    ngx_int_t rc)
{
    ngx_http_sophon_events_pool_t    *pool;
    ngx_http_sophon_events_conn_t    *conn;
    ngx_http_sophon_events_server_t  *server;

    server = probe->server;
    pool = server->probe_pool;

    ngx_http_sophon_events_pool_abandon(pool, &probe->waiter);

    conn = probe->conn;
    probe->conn = NULL;

    if (conn) {
        ngx_http_sophon_events_pool_release(conn, rc == NGX_OK);
    }

    if (rc == NGX_ERROR) {
        server->lag = -1;
        (void) ngx_http_sophon_events_server_failed(pool, probe->timer.log);
    }

    if (rc == NGX_OK) {
        if (probe->standby >= 0) {
            ngx_http_sophon_events_server_set_role(server,
                                   probe->standby
                                   ? NGX_HTTP_SOPHON_EVENTS_ROLE_STANDBY
                                   : NGX_HTTP_SOPHON_EVENTS_ROLE_PRIMARY);
        }

        server->lag = probe->lag;
        server->lag_at = ngx_current_msec;
    }

    ngx_http_sophon_events_status_server(server);

    if (!ngx_exiting && !ngx_terminate && !ngx_quit
        && !probe->timer.timer_set)
    {
        ngx_add_timer(&probe->timer, server->interval);
    }
}
