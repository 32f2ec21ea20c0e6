
/*
 * ngx_http_sophon_events_module: the per-worker pool of non-blocking
 * PostgreSQL connections and its queue of waiting requests.
 *
 * libpq owns each socket; nginx only watches it.  A connection is wrapped
 * in an ngx_connection_t for the event loop and is unwrapped, never closed
 * by nginx, before PQfinish() closes the socket.  Connections are opened
 * with PQconnectStartParams() and driven by PQconnectPoll() from socket
 * events, so no step ever waits on the database.
 */


#include "ngx_http_sophon_events_pool.h"
#include "ngx_http_sophon_events_query.h"

#include <poll.h>

#if (NGX_OPENSSL)
#include <openssl/ssl.h>
#endif


static ngx_int_t ngx_http_sophon_events_pool_param(ngx_conf_t *cf,
    ngx_http_sophon_events_pool_t *pool, ngx_uint_t i, const char *keyword,
    const char *value);
static ngx_int_t ngx_http_sophon_events_pool_options(ngx_conf_t *cf,
    ngx_http_sophon_events_pool_t *pool, ngx_uint_t i, const char *options);
static char *ngx_http_sophon_events_strdup(ngx_pool_t *pool, const char *a,
    const char *b);
static ngx_int_t ngx_http_sophon_events_conn_open(
    ngx_http_sophon_events_pool_t *pool, ngx_http_sophon_events_ctx_t *ctx);
static ngx_int_t ngx_http_sophon_events_conn_watch(
    ngx_http_sophon_events_conn_t *conn);
static void ngx_http_sophon_events_conn_unwatch(
    ngx_http_sophon_events_conn_t *conn);
static ngx_uint_t ngx_http_sophon_events_conn_same_socket(
    ngx_http_sophon_events_conn_t *conn);
static void ngx_http_sophon_events_conn_close(
    ngx_http_sophon_events_conn_t *conn);
static void ngx_http_sophon_events_conn_handler(ngx_event_t *ev);
static void ngx_http_sophon_events_conn_event(
    ngx_http_sophon_events_conn_t *conn);
static void ngx_http_sophon_events_conn_connect(
    ngx_http_sophon_events_conn_t *conn);
static void ngx_http_sophon_events_conn_connected(
    ngx_http_sophon_events_conn_t *conn);
static void ngx_http_sophon_events_conn_idle(
    ngx_http_sophon_events_conn_t *conn);
static ngx_int_t ngx_http_sophon_events_conn_check_idle(
    ngx_http_sophon_events_conn_t *conn);
static void ngx_http_sophon_events_pool_serve_waiting(
    ngx_http_sophon_events_pool_t *pool);
static void ngx_http_sophon_events_conn_failed(
    ngx_http_sophon_events_conn_t *conn, const char *why);


/*
 * The connection string is parsed here, so that "nginx -t" refuses a bad
 * one, and completed with what the module relies on: UTF8 as the client
 * encoding, and a server that notices within a second when the module
 * closes a connection in the middle of a query (its client went away, or
 * it timed out), so that the query stops instead of running on.  The
 * operator's own "options" come after ours and may override them.
 */

ngx_http_sophon_events_pool_t *
ngx_http_sophon_events_pool_create(ngx_conf_t *cf, ngx_str_t *conninfo)
{
    char                           *error, *options;
    u_char                         *info;
    ngx_uint_t                      n;
    PQconninfoOption               *opts, *o;
    ngx_http_sophon_events_pool_t  *pool;

    pool = ngx_pcalloc(cf->pool, sizeof(ngx_http_sophon_events_pool_t));
    if (pool == NULL) {
        return NULL;
    }

    info = ngx_pnalloc(cf->pool, conninfo->len + 1);
    if (info == NULL) {
        return NULL;
    }

    (void) ngx_cpystrn(info, conninfo->data, conninfo->len + 1);

    error = NULL;
    opts = PQconninfoParse((char *) info, &error);

    if (opts == NULL) {
        /* libpq's message names the bad part, never a password */

        n = error ? ngx_strlen(error) : 0;

        while (n && (error[n - 1] == '\n' || error[n - 1] == ' ')) {
            error[--n] = '\0';
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid connection string: %s",
                           error ? error : "out of memory");
        PQfreemem(error);
        return NULL;
    }

    n = 4;

    for (o = opts; o->keyword; o++) {
        n++;
    }

    pool->keywords = ngx_pcalloc(cf->pool, n * sizeof(char *));
    pool->values = ngx_pcalloc(cf->pool, n * sizeof(char *));

    if (pool->keywords == NULL || pool->values == NULL) {
        goto failed;
    }

    options = NULL;
    n = 0;

    for (o = opts; o->keyword; o++) {

        if (o->val == NULL || ngx_strcmp(o->keyword, "client_encoding") == 0) {
            continue;
        }

        if (ngx_strcmp(o->keyword, "options") == 0) {
            options = o->val;
            continue;
        }

        if (ngx_http_sophon_events_pool_param(cf, pool, n++, o->keyword,
                                              o->val)
            != NGX_OK)
        {
            goto failed;
        }
    }

    if (ngx_http_sophon_events_pool_param(cf, pool, n++, "client_encoding",
                                          "UTF8") != NGX_OK
        || ngx_http_sophon_events_pool_param(cf, pool, n++,
                                             "fallback_application_name",
                                             "nginx sophon_events") != NGX_OK
        || ngx_http_sophon_events_pool_options(cf, pool, n++, options)
           != NGX_OK)
    {
        goto failed;
    }

    PQconninfoFree(opts);

    ngx_queue_init(&pool->idle);
    ngx_queue_init(&pool->waiting);

    return pool;

failed:

    PQconninfoFree(opts);
    return NULL;
}


static ngx_int_t
ngx_http_sophon_events_pool_param(ngx_conf_t *cf,
    ngx_http_sophon_events_pool_t *pool, ngx_uint_t i, const char *keyword,
    const char *value)
{
    pool->keywords[i] = ngx_http_sophon_events_strdup(cf->pool, keyword, "");
    pool->values[i] = ngx_http_sophon_events_strdup(cf->pool, value, "");

    if (pool->keywords[i] == NULL || pool->values[i] == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_pool_options(ngx_conf_t *cf,
    ngx_http_sophon_events_pool_t *pool, ngx_uint_t i, const char *options)
{
    pool->keywords[i] = "options";
    pool->values[i] = ngx_http_sophon_events_strdup(cf->pool,
                                  "-c client_connection_check_interval=1000 ",
                                  options ? options : "");

    return pool->values[i] ? NGX_OK : NGX_ERROR;
}


/* "a" and "b" together, NUL-terminated, in the pool */

static char *
ngx_http_sophon_events_strdup(ngx_pool_t *pool, const char *a, const char *b)
{
    u_char  *p;
    size_t   alen, blen;

    alen = ngx_strlen(a);
    blen = ngx_strlen(b);

    p = ngx_pnalloc(pool, alen + blen + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, a, alen);
    ngx_memcpy(p + alen, b, blen);
    p[alen + blen] = '\0';

    return (char *) p;
}


ngx_int_t
ngx_http_sophon_events_pool_acquire(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_queue_t                    *q;
    ngx_http_sophon_events_conn_t  *conn;
    ngx_http_sophon_events_pool_t  *pool;

    pool = ctx->conf->pool;

    while (!ngx_queue_empty(&pool->idle)) {
        q = ngx_queue_head(&pool->idle);
        conn = ngx_queue_data(q, ngx_http_sophon_events_conn_t, queue);

        /*
         * A restart or pg_terminate_backend() may have closed it with an
         * event not handled yet: never hand a dead connection out.
         */

        if (ngx_http_sophon_events_conn_ready(conn, POLLIN)
            && ngx_http_sophon_events_conn_check_idle(conn) != NGX_OK)
        {
            continue;
        }

        ngx_queue_remove(q);

        conn->state = NGX_HTTP_SOPHON_EVENTS_ACTIVE;
        conn->ctx = ctx;
        ctx->conn = conn;

        ngx_http_sophon_events_conn_timer(conn, 0);

        return NGX_OK;
    }

    if (pool->nconnections < pool->max_connections) {
        return ngx_http_sophon_events_conn_open(pool, ctx);
    }

    if (pool->nwaiting >= pool->max_waiting) {
        return NGX_DECLINED;
    }

    ngx_queue_insert_tail(&pool->waiting, &ctx->waiting);
    pool->nwaiting++;
    ctx->queued = 1;

    ngx_add_timer(&ctx->wait_timer, pool->wait_timeout);

    return NGX_AGAIN;
}


void
ngx_http_sophon_events_pool_release(ngx_http_sophon_events_ctx_t *ctx,
    ngx_uint_t reusable)
{
    ngx_http_sophon_events_conn_t  *conn;
    ngx_http_sophon_events_pool_t  *pool;

    conn = ctx->conn;
    ctx->conn = NULL;

    if (conn == NULL) {
        return;
    }

    conn->ctx = NULL;
    pool = conn->pool;

    /*
     * Only a connection that is idle in every sense goes back: no result
     * left unread, no transaction open.  Anything else is closed: the
     * server ends whatever it was doing when the socket goes away.
     */

    if (!reusable
        || ngx_exiting
        || conn->state != NGX_HTTP_SOPHON_EVENTS_ACTIVE
        || PQstatus(conn->pg) != CONNECTION_OK
        || PQtransactionStatus(conn->pg) != PQTRANS_IDLE)
    {
        if (conn->state == NGX_HTTP_SOPHON_EVENTS_CONNECTING && !ngx_exiting) {
            /* let it finish: the next request will want it */
            return;
        }

        ngx_http_sophon_events_conn_close(conn);
        ngx_http_sophon_events_pool_serve_waiting(pool);
        return;
    }

    ngx_http_sophon_events_conn_idle(conn);
    ngx_http_sophon_events_pool_serve_waiting(pool);
}


void
ngx_http_sophon_events_pool_abandon(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_http_sophon_events_pool_t  *pool;

    pool = ctx->conf->pool;

    if (ctx->queued) {
        ngx_queue_remove(&ctx->waiting);
        pool->nwaiting--;
        ctx->queued = 0;
    }

    if (ctx->wait_timer.timer_set) {
        ngx_del_timer(&ctx->wait_timer);
    }

    if (ctx->wait_timer.posted) {
        ngx_delete_posted_event(&ctx->wait_timer);
    }
}


void
ngx_http_sophon_events_pool_close_idle(ngx_http_sophon_events_pool_t *pool)
{
    ngx_queue_t                    *q;
    ngx_http_sophon_events_conn_t  *conn;

    while (!ngx_queue_empty(&pool->idle)) {
        q = ngx_queue_head(&pool->idle);
        conn = ngx_queue_data(q, ngx_http_sophon_events_conn_t, queue);
        ngx_http_sophon_events_conn_close(conn);
    }
}


void
ngx_http_sophon_events_conn_timer(ngx_http_sophon_events_conn_t *conn,
    ngx_msec_t timeout)
{
    ngx_event_t  *rev;

    rev = conn->connection->read;

    if (rev->timer_set) {
        ngx_del_timer(rev);
    }

    /*
     * An exiting worker (reload, graceful stop) waits for the timers that
     * are not cancelable: those of connections that serve a request.  An
     * idle one must not keep it.
     */

    rev->cancelable = (conn->state == NGX_HTTP_SOPHON_EVENTS_IDLE);

    if (timeout) {
        ngx_add_timer(rev, timeout);
    }
}


/*
 * A new connection, for "ctx".  PQconnectStartParams()
 * resolves a host name with a blocking getaddrinfo(): the README asks for
 * an address ("host=127.0.0.1", or "hostaddr=") in sophon_events_db.
 */

static ngx_int_t
ngx_http_sophon_events_conn_open(ngx_http_sophon_events_pool_t *pool,
    ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_log_t                      *log;
    ngx_http_sophon_events_conn_t  *conn;

    log = ctx->request->connection->log;

    conn = ngx_calloc(sizeof(ngx_http_sophon_events_conn_t), log);
    if (conn == NULL) {
        return NGX_ERROR;
    }

    conn->pool = pool;
    conn->state = NGX_HTTP_SOPHON_EVENTS_CONNECTING;
    conn->connect_timeout = ctx->conf->connect_timeout;

    conn->pg = PQconnectStartParams(pool->keywords, pool->values, 0);

    if (conn->pg == NULL || PQstatus(conn->pg) == CONNECTION_BAD) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "sophon_events: cannot connect to the database: %s",
                      conn->pg ? PQerrorMessage(conn->pg) : "out of memory");

        PQfinish(conn->pg);
        ngx_free(conn);
        return NGX_ERROR;
    }

    if (PQsetnonblocking(conn->pg, 1) != 0
        || ngx_http_sophon_events_conn_watch(conn) != NGX_OK)
    {
        PQfinish(conn->pg);
        ngx_free(conn);
        return NGX_ERROR;
    }

    pool->nconnections++;

    conn->ctx = ctx;
    ctx->conn = conn;

    ngx_http_sophon_events_conn_timer(conn, conn->connect_timeout);

    return NGX_AGAIN;
}


/* hand libpq's socket to the event loop, edge-triggered both ways */

static ngx_int_t
ngx_http_sophon_events_conn_watch(ngx_http_sophon_events_conn_t *conn)
{
    struct stat        st;
    ngx_socket_t       fd;
    ngx_connection_t  *c;

    fd = PQsocket(conn->pg);
    if (fd == (ngx_socket_t) -1) {
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, ngx_cycle->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = conn;
    c->read->handler = ngx_http_sophon_events_conn_handler;
    c->write->handler = ngx_http_sophon_events_conn_handler;
    c->read->log = c->log;
    c->write->log = c->log;

    conn->connection = c;

    if (fstat(fd, &st) == -1) {
        ngx_http_sophon_events_conn_unwatch(conn);
        return NGX_ERROR;
    }

    conn->socket_ino = st.st_ino;

    if (ngx_add_conn) {
        if (ngx_add_conn(c) == NGX_OK) {
            conn->watched = 1;
            return NGX_OK;
        }

    } else if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_CLEAR_EVENT)
               == NGX_OK
               && ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_CLEAR_EVENT)
                  == NGX_OK)
    {
        conn->watched = 1;
        return NGX_OK;
    }

    ngx_http_sophon_events_conn_unwatch(conn);

    return NGX_ERROR;
}


/*
 * Is libpq's socket still the one we watch?  The number alone does not
 * tell: a new socket often gets the number of the one just closed.
 */

static ngx_uint_t
ngx_http_sophon_events_conn_same_socket(ngx_http_sophon_events_conn_t *conn)
{
    struct stat   st;
    ngx_socket_t  fd;

    fd = PQsocket(conn->pg);

    if (fd == (ngx_socket_t) -1 || fd != conn->connection->fd) {
        return 0;
    }

    return fstat(fd, &st) == 0 && st.st_ino == conn->socket_ino;
}


/* forget the socket without closing it: it is libpq's to close */

static void
ngx_http_sophon_events_conn_unwatch(ngx_http_sophon_events_conn_t *conn)
{
    ngx_uint_t         flags;
    ngx_connection_t  *c;

    c = conn->connection;
    if (c == NULL) {
        return;
    }

    /*
     * libpq closes its socket itself when the server goes away; the kernel
     * then forgot it already, and asking it again would be an error
     */

    flags = (conn->watched && ngx_http_sophon_events_conn_same_socket(conn))
            ? 0 : NGX_CLOSE_EVENT;

    conn->watched = 0;

    conn->connection = NULL;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (ngx_del_conn) {
        (void) ngx_del_conn(c, flags);

    } else {
        if (c->read->active) {
            (void) ngx_del_event(c->read, NGX_READ_EVENT, flags);
        }

        if (c->write->active) {
            (void) ngx_del_event(c->write, NGX_WRITE_EVENT, flags);
        }
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    /* as ngx_close_connection() does: the slot by its fd first */
    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;
}


static void
ngx_http_sophon_events_conn_close(ngx_http_sophon_events_conn_t *conn)
{
    if (conn->state == NGX_HTTP_SOPHON_EVENTS_IDLE) {
        ngx_queue_remove(&conn->queue);
    }

    if (conn->ctx) {
        conn->ctx->conn = NULL;
    }

    ngx_http_sophon_events_conn_unwatch(conn);

    PQfinish(conn->pg);
    conn->pool->nconnections--;
    ngx_free(conn);
}


static void
ngx_http_sophon_events_conn_handler(ngx_event_t *ev)
{
    ngx_connection_t               *c, *client;
    ngx_http_sophon_events_conn_t  *conn;

    c = ev->data;
    conn = c->data;

    if (conn->ctx) {
        /* the request may end here: run what it posted, as upstream does */

        client = conn->ctx->request->connection;

        ngx_http_sophon_events_conn_event(conn);
        ngx_http_run_posted_requests(client);
        return;
    }

    ngx_http_sophon_events_conn_event(conn);
}


static void
ngx_http_sophon_events_conn_event(ngx_http_sophon_events_conn_t *conn)
{
    ngx_connection_t  *c;

    c = conn->connection;

    switch (conn->state) {

    case NGX_HTTP_SOPHON_EVENTS_CONNECTING:
        if (c->read->timedout) {
            ngx_http_sophon_events_conn_failed(conn, "timed out");
            return;
        }

        ngx_http_sophon_events_conn_connect(conn);
        return;

    case NGX_HTTP_SOPHON_EVENTS_IDLE:
        if (c->read->timedout) {
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                           "sophon_events: idle connection closed");
            ngx_http_sophon_events_conn_close(conn);
            return;
        }

        (void) ngx_http_sophon_events_conn_check_idle(conn);
        return;

    default: /* NGX_HTTP_SOPHON_EVENTS_ACTIVE */
        ngx_http_sophon_events_query_handler(conn->ctx);
        return;
    }
}


static void
ngx_http_sophon_events_conn_connect(ngx_http_sophon_events_conn_t *conn)
{
    PostgresPollingStatusType  status;

    /*
     * libpq asks to wait for a socket state that is often there already;
     * an edge-triggered socket would then never wake us: ask the socket.
     */

    for ( ;; ) {
        status = PQconnectPoll(conn->pg);

        if (status == PGRES_POLLING_FAILED) {
            ngx_http_sophon_events_conn_failed(conn,
                                               PQerrorMessage(conn->pg));
            return;
        }

        /*
         * libpq opens a new socket when it moves on to the next address of
         * a host (localhost: ::1, then 127.0.0.1), often with the number of
         * the one it closed: follow it.
         */

        if (!ngx_http_sophon_events_conn_same_socket(conn)) {
            ngx_http_sophon_events_conn_unwatch(conn);

            if (ngx_http_sophon_events_conn_watch(conn) != NGX_OK) {
                ngx_http_sophon_events_conn_failed(conn,
                                                   "cannot watch its socket");
                return;
            }

            ngx_http_sophon_events_conn_timer(conn, conn->connect_timeout);
        }

        if (status == PGRES_POLLING_OK) {
            ngx_http_sophon_events_conn_connected(conn);
            return;
        }

        if (!ngx_http_sophon_events_conn_ready(conn,
                                      status == PGRES_POLLING_WRITING
                                      ? POLLOUT : POLLIN))
        {
            /* the socket's next edge brings us back */
            return;
        }
    }
}


ngx_uint_t
ngx_http_sophon_events_conn_ready(ngx_http_sophon_events_conn_t *conn,
    short what)
{
    struct pollfd  pfd;
#if (NGX_OPENSSL)
    SSL           *ssl;

    /* decrypted bytes waiting in OpenSSL leave no trace on the socket */

    ssl = PQsslStruct(conn->pg, "OpenSSL");

    if (what == POLLIN && ssl && SSL_pending(ssl) > 0) {
        return 1;
    }
#endif

    pfd.fd = PQsocket(conn->pg);
    pfd.events = what;
    pfd.revents = 0;

    /* a zero timeout: this asks, it never waits */

    return poll(&pfd, 1, 0) == 1;
}


static void
ngx_http_sophon_events_conn_connected(ngx_http_sophon_events_conn_t *conn)
{
    ngx_http_sophon_events_ctx_t  *ctx;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->connection->log, 0,
                   "sophon_events: connected, backend %d",
                   PQbackendPID(conn->pg));

    ngx_http_sophon_events_conn_timer(conn, 0);

    ctx = conn->ctx;

    if (ctx == NULL) {
        /* its request went away meanwhile: serve the queue */
        ngx_http_sophon_events_conn_idle(conn);
        ngx_http_sophon_events_pool_serve_waiting(conn->pool);
        return;
    }

    conn->state = NGX_HTTP_SOPHON_EVENTS_ACTIVE;

    ngx_http_sophon_events_query_send(ctx);
}


static void
ngx_http_sophon_events_conn_failed(ngx_http_sophon_events_conn_t *conn,
    const char *why)
{
    ngx_http_sophon_events_ctx_t   *ctx;
    ngx_http_sophon_events_pool_t  *pool;

    ctx = conn->ctx;
    pool = conn->pool;

    ngx_log_error(NGX_LOG_ERR,
                  ctx ? ctx->request->connection->log : ngx_cycle->log, 0,
                  "sophon_events: cannot connect to the database: %s", why);

    ngx_http_sophon_events_conn_close(conn);

    /*
     * The waiting requests would fail the same way: let them try now
     * rather than after their queue timeout.  Before the request ends:
     * a connection opened after it may reuse its freed ngx_connection_t,
     * which the caller still looks at.
     */

    ngx_http_sophon_events_pool_serve_waiting(pool);

    if (ctx) {
        ngx_http_sophon_events_query_failed(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                            "no database connection");
    }
}


static void
ngx_http_sophon_events_conn_idle(ngx_http_sophon_events_conn_t *conn)
{
    conn->state = NGX_HTTP_SOPHON_EVENTS_IDLE;
    conn->ctx = NULL;

    ngx_queue_insert_head(&conn->pool->idle, &conn->queue);

    ngx_http_sophon_events_conn_timer(conn, conn->pool->idle_timeout);
}


/*
 * Something arrived on an idle connection: the server closing it
 * (restart, pg_terminate_backend(), idle_session_timeout) or a notice.
 */

static ngx_int_t
ngx_http_sophon_events_conn_check_idle(ngx_http_sophon_events_conn_t *conn)
{
    PGresult  *res;

    if (PQconsumeInput(conn->pg)) {
        while (!PQisBusy(conn->pg)) {
            res = PQgetResult(conn->pg);
            if (res == NULL) {
                break;
            }

            PQclear(res);
        }
    }

    if (PQstatus(conn->pg) == CONNECTION_OK
        && PQtransactionStatus(conn->pg) == PQTRANS_IDLE)
    {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_INFO, conn->connection->log, 0,
                  "sophon_events: the server closed an idle connection: %s",
                  PQerrorMessage(conn->pg));

    ngx_http_sophon_events_conn_close(conn);

    return NGX_DECLINED;
}


/*
 * A connection came free or a slot opened: wake the oldest waiting request
 * through its posted timer event, never from the releasing request's stack.
 */

static void
ngx_http_sophon_events_pool_serve_waiting(ngx_http_sophon_events_pool_t *pool)
{
    ngx_int_t                      rc;
    ngx_queue_t                   *q;
    ngx_http_sophon_events_ctx_t  *ctx;

    while (!ngx_queue_empty(&pool->waiting)
           && (!ngx_queue_empty(&pool->idle)
               || pool->nconnections < pool->max_connections))
    {
        q = ngx_queue_head(&pool->waiting);
        ngx_queue_remove(q);
        pool->nwaiting--;

        ctx = ngx_queue_data(q, ngx_http_sophon_events_ctx_t, waiting);
        ctx->queued = 0;

        if (ctx->wait_timer.timer_set) {
            ngx_del_timer(&ctx->wait_timer);
        }

        rc = ngx_http_sophon_events_pool_acquire(ctx);

        if (rc == NGX_OK || rc == NGX_ERROR) {
            /* the wake-up finds ctx->conn set, or not: a 503 */
            ngx_post_event(&ctx->wait_timer, &ngx_posted_events);
        }

        /* NGX_AGAIN: connecting, ngx_http_sophon_events_query_send() */
    }
}
