
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: the per-worker pool of non-blocking
 * PostgreSQL connections and its queue of waiting requests.
 *
 * The pool is a plain resource, as nginx's upstream keepalive cache is: it
 * opens, hands out, takes back and closes connections, and knows nothing
 * of what runs on them.  Whoever takes a connection installs its handler;
 * giving it back forgets the handler.
 *
 * libpq owns each socket; nginx only watches it.  A connection is wrapped
 * in an ngx_connection_t for the event loop and is unwrapped, never closed
 * by nginx, before PQfinish() closes the socket.  Connections are opened
 * with PQconnectStartParams() and driven by PQconnectPoll() from socket
 * events, so no step ever waits on the database.
 *
 * A request that finds no idle connection waits in the queue; a new
 * connection is opened for it while fewer are being opened than requests
 * wait, and the pool allows one more.  Whichever connection comes free
 * first, new or given back, goes to the oldest waiting request.
 */


#include "ngx_http_sophon_events_pool.h"
#include "ngx_http_sophon_events_cluster.h"
#include "ngx_http_sophon_events_status.h"

#include <poll.h>

#if (NGX_OPENSSL)
#include <openssl/ssl.h>
#endif


static ngx_int_t ngx_http_sophon_events_pool_check(ngx_conf_t *cf,
    PQconninfoOption *opts);
static ngx_int_t ngx_http_sophon_events_pool_check_host(ngx_conf_t *cf,
    const char *host);
static ngx_int_t ngx_http_sophon_events_pool_name(ngx_conf_t *cf,
    ngx_http_sophon_events_pool_t *pool, PQconninfoOption *opts);
static const char *ngx_http_sophon_events_pool_value(PQconninfoOption *opts,
    const char *keyword);
static ngx_int_t ngx_http_sophon_events_pool_param(ngx_conf_t *cf,
    ngx_http_sophon_events_pool_t *pool, ngx_uint_t i, const char *keyword,
    const char *value);
static ngx_int_t ngx_http_sophon_events_pool_options(ngx_conf_t *cf,
    ngx_http_sophon_events_pool_t *pool, ngx_uint_t i, const char *options);
static char *ngx_http_sophon_events_strdup(ngx_pool_t *pool, const char *a,
    const char *b);
static ngx_http_sophon_events_conn_t *ngx_http_sophon_events_pool_get_idle(
    ngx_http_sophon_events_pool_t *pool);
static void ngx_http_sophon_events_pool_give(
    ngx_http_sophon_events_conn_t *conn);
static void ngx_http_sophon_events_pool_wake(
    ngx_http_sophon_events_pool_t *pool,
    ngx_http_sophon_events_conn_t *conn);
static void ngx_http_sophon_events_pool_fail_waiting(
    ngx_http_sophon_events_pool_t *pool);
static void ngx_http_sophon_events_pool_serve_waiting(
    ngx_http_sophon_events_pool_t *pool);
static ngx_int_t ngx_http_sophon_events_conn_open(
    ngx_http_sophon_events_pool_t *pool, ngx_msec_t connect_timeout,
    ngx_log_t *log);
static void ngx_http_sophon_events_conn_notice(void *arg,
    const PGresult *res);
static ngx_int_t ngx_http_sophon_events_conn_watch(
    ngx_http_sophon_events_conn_t *conn);
static void ngx_http_sophon_events_conn_unwatch(
    ngx_http_sophon_events_conn_t *conn);
static ngx_uint_t ngx_http_sophon_events_conn_same_socket(
    ngx_http_sophon_events_conn_t *conn);
static void ngx_http_sophon_events_conn_close(
    ngx_http_sophon_events_conn_t *conn);
static void ngx_http_sophon_events_conn_handler(ngx_event_t *ev);
static void ngx_http_sophon_events_conn_connect(
    ngx_http_sophon_events_conn_t *conn);
static void ngx_http_sophon_events_conn_failed(
    ngx_http_sophon_events_conn_t *conn, const char *why);
static void ngx_http_sophon_events_conn_idle(
    ngx_http_sophon_events_conn_t *conn);
static ngx_int_t ngx_http_sophon_events_conn_check_idle(
    ngx_http_sophon_events_conn_t *conn);


/*
 * The connection string is parsed here, so that "nginx -t" refuses a bad
 * one, and completed with what the module relies on: UTF8 as the client
 * encoding; no GSS encryption, whose negotiation may wait on a Kerberos
 * server inside PQconnectPoll(); and a server that notices within a second
 * when the module closes a connection in the middle of a query, so that
 * the query stops instead of running on.  The operator's own values win,
 * but for the encoding, and their "options" come after ours.
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

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid connection string: %s",
                           error ? ngx_http_sophon_events_pq_message(error)
                                 : "out of memory");
        PQfreemem(error);
        return NULL;
    }

    if (ngx_http_sophon_events_pool_check(cf, opts) != NGX_OK
        || ngx_http_sophon_events_pool_name(cf, pool, opts) != NGX_OK)
    {
        goto failed;
    }

    n = 9;

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

    if (ngx_http_sophon_events_pool_value(opts, "gssencmode") == NULL
        && ngx_http_sophon_events_pool_param(cf, pool, n++, "gssencmode",
                                             "disable") != NGX_OK)
    {
        goto failed;
    }

    if (ngx_http_sophon_events_pool_value(opts, "fallback_application_name")
        == NULL
        && ngx_http_sophon_events_pool_param(cf, pool, n++,
                                             "fallback_application_name",
                                             "nginx sophon_events") != NGX_OK)
    {
        goto failed;
    }

    /*
     * A server that vanishes without a word (a failover, a NAT that forgot
     * the connection) is found within a minute, not two hours: the stream's
     * listening connection waits for nothing but notifications.  The
     * string's own keepalive settings win.
     */

    if ((ngx_http_sophon_events_pool_value(opts, "keepalives_idle") == NULL
         && ngx_http_sophon_events_pool_param(cf, pool, n++,
                                              "keepalives_idle", "30")
            != NGX_OK)
        || (ngx_http_sophon_events_pool_value(opts, "keepalives_interval")
            == NULL
            && ngx_http_sophon_events_pool_param(cf, pool, n++,
                                                 "keepalives_interval", "10")
               != NGX_OK)
        || (ngx_http_sophon_events_pool_value(opts, "keepalives_count") == NULL
            && ngx_http_sophon_events_pool_param(cf, pool, n++,
                                                 "keepalives_count", "3")
               != NGX_OK))
    {
        goto failed;
    }

#if !(NGX_OPENSSL)

    /*
     * libpq's TLS keeps decrypted bytes that the socket no longer shows;
     * only OpenSSL's SSL_pending() tells of them
     */

    if (ngx_http_sophon_events_pool_value(opts, "sslmode") == NULL
        && ngx_http_sophon_events_pool_param(cf, pool, n++, "sslmode",
                                             "disable") != NGX_OK)
    {
        goto failed;
    }

#endif

    if (ngx_http_sophon_events_pool_param(cf, pool, n++, "client_encoding",
                                          "UTF8") != NGX_OK
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


/*
 * What would make PQconnectPoll() wait, refused at "nginx -t": a host
 * name, which libpq resolves with a blocking getaddrinfo() (a "hostaddr"
 * spares the lookup), and, without nginx's OpenSSL, TLS.
 */

static ngx_int_t
ngx_http_sophon_events_pool_check(ngx_conf_t *cf, PQconninfoOption *opts)
{
    u_char      *host, *addr, *h, *a, *hnext, *anext;
    const char  *value;

    /*
     * GSS encryption keeps decrypted bytes that the socket no longer
     * shows, and its negotiation may wait on a Kerberos server
     */

    value = ngx_http_sophon_events_pool_value(opts, "gssencmode");

    if (value && ngx_strcmp(value, "disable") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"gssencmode=%s\" can block the worker: "
                           "use \"gssencmode=disable\"", value);
        return NGX_ERROR;
    }

#if !(NGX_OPENSSL)

    value = ngx_http_sophon_events_pool_value(opts, "sslmode");

    if (value && ngx_strcmp(value, "disable") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sslmode=%s\" needs nginx built with OpenSSL: "
                           "use \"sslmode=disable\"", value);
        return NGX_ERROR;
    }

#endif

    value = ngx_http_sophon_events_pool_value(opts, "host");

    if (value == NULL) {
        return NGX_OK;
    }

    host = (u_char *) ngx_http_sophon_events_strdup(cf->pool, value, "");

    value = ngx_http_sophon_events_pool_value(opts, "hostaddr");

    addr = (u_char *) ngx_http_sophon_events_strdup(cf->pool,
                                                    value ? value : "", "");

    if (host == NULL || addr == NULL) {
        return NGX_ERROR;
    }

    /*
     * "host" and "hostaddr" may list several, comma-separated, position
     * by position: a host with an address of its own is never looked up
     */

    for (h = host, a = addr; h; h = hnext, a = anext) {
        hnext = (u_char *) ngx_strchr(h, ',');
        anext = a ? (u_char *) ngx_strchr(a, ',') : NULL;

        if (hnext) {
            *hnext++ = '\0';
        }

        if (anext) {
            *anext++ = '\0';
        }

        if ((a == NULL || *a == '\0')
            && ngx_http_sophon_events_pool_check_host(cf, (char *) h)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_pool_check_host(ngx_conf_t *cf, const char *host)
{
    size_t     len;
#if (NGX_HAVE_INET6)
    u_char     addr6[16];
#endif

    len = ngx_strlen(host);

    /* the default, a Unix socket's directory, or an abstract one */

    if (len == 0 || host[0] == '/' || host[0] == '@') {
        return NGX_OK;
    }

    if (ngx_inet_addr((u_char *) host, len) != INADDR_NONE) {
        return NGX_OK;
    }

#if (NGX_HAVE_INET6)
    if (ngx_inet6_addr((u_char *) host, len, addr6) == NGX_OK) {
        return NGX_OK;
    }
#endif

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"host=%s\" is a name: libpq would resolve it "
                       "with a blocking lookup in the worker; give an "
                       "address, a Unix socket directory, or \"hostaddr=\"",
                       host);

    return NGX_ERROR;
}


/* "host:port" as libpq will reach it, for the log and a variable */

static ngx_int_t
ngx_http_sophon_events_pool_name(ngx_conf_t *cf,
    ngx_http_sophon_events_pool_t *pool, PQconninfoOption *opts)
{
    u_char      *p;
    size_t       len;
    const char  *host, *port;

    host = ngx_http_sophon_events_pool_value(opts, "hostaddr");

    if (host == NULL) {
        host = ngx_http_sophon_events_pool_value(opts, "host");
    }

    if (host == NULL) {
        host = "localhost";
    }

    port = ngx_http_sophon_events_pool_value(opts, "port");

    if (port == NULL) {
        port = "5432";
    }

    len = ngx_strlen(host) + 1 + ngx_strlen(port);

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    pool->name.data = p;
    pool->name.len = ngx_sprintf(p, "%s:%s", host, port) - p;

    return NGX_OK;
}


static const char *
ngx_http_sophon_events_pool_value(PQconninfoOption *opts, const char *keyword)
{
    PQconninfoOption  *o;

    for (o = opts; o->keyword; o++) {
        if (ngx_strcmp(o->keyword, keyword) == 0) {
            return o->val;
        }
    }

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


const char *
ngx_http_sophon_events_pq_message(const char *message)
{
    u_char         *p, *last;
    const u_char   *m;
    static u_char   line[NGX_MAX_ERROR_STR / 2];

    p = line;
    last = line + sizeof(line) - 1;

    for (m = (const u_char *) message; *m && p < last; m++) {

        if (*m == '\n' || *m == '\r' || *m == '\t') {
            /* "...refused\n\tIs the server running...": one space */
            if (p > line && p[-1] != ' ') {
                *p++ = ' ';
            }

            continue;
        }

        *p++ = *m;
    }

    while (p > line && p[-1] == ' ') {
        p--;
    }

    *p = '\0';

    return (const char *) line;
}


ngx_int_t
ngx_http_sophon_events_pool_acquire(ngx_http_sophon_events_pool_t *pool,
    ngx_http_sophon_events_waiter_t *waiter, ngx_log_t *log)
{
    ngx_uint_t                      open;
    ngx_http_sophon_events_conn_t  *conn;

    waiter->conn = NULL;

    conn = ngx_http_sophon_events_pool_get_idle(pool);

    if (conn) {
        conn->state = NGX_HTTP_SOPHON_EVENTS_ACTIVE;
        waiter->conn = conn;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                       "sophon_events pool: idle connection %p taken", conn);

        return NGX_OK;
    }

    /*
     * A request for which a connection is opened waits for it in the queue
     * too, but is not one that "queue=" bounds: those wait for a busy one.
     */

    open = pool->nconnecting <= pool->nwaiting
           && pool->nconnections < pool->max_connections;

    if (!open && pool->nwaiting >= pool->max_waiting) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                       "sophon_events pool: queue full (%ui)",
                       pool->nwaiting);
        return NGX_DECLINED;
    }

    ngx_queue_insert_tail(&pool->waiting, &waiter->queue);
    pool->nwaiting++;
    waiter->queued = 1;

    ngx_http_sophon_events_status_pool(pool);

    /*
     * Among several servers the connect's own timeout fires first, so
     * that the request is woken to try another one, not failed.
     */

    ngx_add_timer(&waiter->event,
                  open ? ngx_max(pool->wait_timeout,
                                 waiter->connect_timeout
                                 + (pool->several ? 100 : 0))
                       : pool->wait_timeout);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "sophon_events pool: queued, %ui waiting, %ui connecting",
                   pool->nwaiting, pool->nconnecting);

    if (open
        && ngx_http_sophon_events_conn_open(pool, waiter->connect_timeout,
                                            log)
           != NGX_OK)
    {
        ngx_http_sophon_events_pool_abandon(pool, waiter);

        if (ngx_http_sophon_events_server_failed(pool, log)) {
            ngx_http_sophon_events_pool_fail_waiting(pool);
        }

        return NGX_ERROR;
    }

    return NGX_AGAIN;
}


void
ngx_http_sophon_events_pool_abandon(ngx_http_sophon_events_pool_t *pool,
    ngx_http_sophon_events_waiter_t *waiter)
{
    ngx_http_sophon_events_conn_t  *conn;

    if (waiter->queued) {
        ngx_queue_remove(&waiter->queue);
        pool->nwaiting--;
        waiter->queued = 0;

        ngx_http_sophon_events_status_pool(pool);
    }

    if (waiter->event.timer_set) {
        ngx_del_timer(&waiter->event);
    }

    if (waiter->event.posted) {
        ngx_delete_posted_event(&waiter->event);
    }

    /* handed over, its wake-up not run yet */

    conn = waiter->conn;

    if (conn) {
        waiter->conn = NULL;
        ngx_http_sophon_events_pool_release(conn, 1);
    }
}


void
ngx_http_sophon_events_pool_release(ngx_http_sophon_events_conn_t *conn,
    ngx_uint_t reusable)
{
    ngx_http_sophon_events_pool_t  *pool;

    pool = conn->pool;

    conn->handler = NULL;
    conn->data = NULL;

    /*
     * Only a connection that is idle in every sense is used again: no
     * result left unread, no transaction open.  Anything else is closed:
     * the server ends whatever it was doing when the socket goes away.
     */

    if (PQstatus(conn->pg) != CONNECTION_OK) {
        (void) ngx_http_sophon_events_server_failed(pool,
                                                    conn->connection->log);

    } else {
        ngx_http_sophon_events_server_role(pool, conn->pg);
    }

    if (!reusable
        || ngx_exiting
        || PQstatus(conn->pg) != CONNECTION_OK
        || PQtransactionStatus(conn->pg) != PQTRANS_IDLE)
    {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, conn->connection->log, 0,
                       "sophon_events pool: connection %p closed, "
                       "reusable:%ui", conn, reusable);

        ngx_http_sophon_events_conn_close(conn);
        ngx_http_sophon_events_pool_serve_waiting(pool);
        return;
    }

    ngx_http_sophon_events_pool_give(conn);
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


/* an idle connection that is still alive, or NULL */

static ngx_http_sophon_events_conn_t *
ngx_http_sophon_events_pool_get_idle(ngx_http_sophon_events_pool_t *pool)
{
    ngx_queue_t                    *q;
    ngx_http_sophon_events_conn_t  *conn;

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
        ngx_http_sophon_events_conn_timer(conn, 0);

        ngx_http_sophon_events_status_pool(pool);

        return conn;
    }

    return NULL;
}


/* a connection came free: to the oldest waiting request, or idle */

static void
ngx_http_sophon_events_pool_give(ngx_http_sophon_events_conn_t *conn)
{
    ngx_http_sophon_events_pool_t  *pool;

    pool = conn->pool;

    if (ngx_queue_empty(&pool->waiting)) {
        ngx_http_sophon_events_conn_idle(conn);
        return;
    }

    ngx_http_sophon_events_conn_timer(conn, 0);
    ngx_http_sophon_events_pool_wake(pool, conn);
}


/*
 * Wakes the oldest waiting request through its posted event, never from
 * the caller's stack (which may be another request's): with "conn", or
 * with NULL when a connection could not be opened.
 */

static void
ngx_http_sophon_events_pool_wake(ngx_http_sophon_events_pool_t *pool,
    ngx_http_sophon_events_conn_t *conn)
{
    ngx_queue_t                      *q;
    ngx_http_sophon_events_waiter_t  *waiter;

    q = ngx_queue_head(&pool->waiting);
    ngx_queue_remove(q);
    pool->nwaiting--;

    ngx_http_sophon_events_status_pool(pool);

    waiter = ngx_queue_data(q, ngx_http_sophon_events_waiter_t, queue);
    waiter->queued = 0;

    if (waiter->event.timer_set) {
        ngx_del_timer(&waiter->event);
    }

    if (conn) {
        conn->state = NGX_HTTP_SOPHON_EVENTS_ACTIVE;
    }

    waiter->conn = conn;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, waiter->event.log, 0,
                   "sophon_events pool: waiting request woken, "
                   "connection %p, %ui still waiting", conn, pool->nwaiting);

    ngx_post_event(&waiter->event, &ngx_posted_events);
}


/* a slot opened: connections for those still waiting */

static void
ngx_http_sophon_events_pool_serve_waiting(ngx_http_sophon_events_pool_t *pool)
{
    ngx_queue_t                      *q;
    ngx_http_sophon_events_conn_t    *conn;
    ngx_http_sophon_events_waiter_t  *waiter;

    while (!ngx_queue_empty(&pool->waiting)) {

        conn = ngx_http_sophon_events_pool_get_idle(pool);

        if (conn) {
            ngx_http_sophon_events_pool_wake(pool, conn);
            continue;
        }

        if (pool->nconnecting >= pool->nwaiting
            || pool->nconnections >= pool->max_connections)
        {
            return;
        }

        q = ngx_queue_head(&pool->waiting);
        waiter = ngx_queue_data(q, ngx_http_sophon_events_waiter_t, queue);

        if (ngx_http_sophon_events_conn_open(pool, waiter->connect_timeout,
                                             waiter->event.log)
            != NGX_OK)
        {
            /* the waiting request would fail the same way now */
            ngx_http_sophon_events_pool_wake(pool, NULL);

            if (ngx_http_sophon_events_server_failed(pool,
                                                     waiter->event.log))
            {
                ngx_http_sophon_events_pool_fail_waiting(pool);
            }
        }
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
 * A new connection, for whoever waits longest when it is ready.  Host
 * names were refused at configuration time: nothing here resolves one.
 */

static ngx_int_t
ngx_http_sophon_events_conn_open(ngx_http_sophon_events_pool_t *pool,
    ngx_msec_t connect_timeout, ngx_log_t *log)
{
    ngx_http_sophon_events_conn_t  *conn;

    conn = ngx_calloc(sizeof(ngx_http_sophon_events_conn_t), log);
    if (conn == NULL) {
        return NGX_ERROR;
    }

    conn->pool = pool;
    conn->state = NGX_HTTP_SOPHON_EVENTS_CONNECTING;
    conn->connect_deadline = ngx_current_msec + connect_timeout;

    conn->pg = PQconnectStartParams(pool->keywords, pool->values, 0);

    if (conn->pg == NULL || PQstatus(conn->pg) == CONNECTION_BAD) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "sophon_events: cannot connect to the database: %s",
                      conn->pg
                      ? ngx_http_sophon_events_pq_message(
                                                     PQerrorMessage(conn->pg))
                      : "out of memory");

        ngx_http_sophon_events_count(
                          NGX_HTTP_SOPHON_EVENTS_COUNT_CONNECT_FAILURES, 1);

        PQfinish(conn->pg);
        ngx_free(conn);
        return NGX_ERROR;
    }

    (void) PQsetNoticeReceiver(conn->pg, ngx_http_sophon_events_conn_notice,
                               conn);

    if (PQsetnonblocking(conn->pg, 1) != 0
        || ngx_http_sophon_events_conn_watch(conn) != NGX_OK)
    {
        PQfinish(conn->pg);
        ngx_free(conn);
        return NGX_ERROR;
    }

    pool->nconnections++;
    pool->nconnecting++;

    ngx_http_sophon_events_status_pool(pool);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, log, 0,
                   "sophon_events pool: connecting %p, %ui of %ui",
                   conn, pool->nconnections, pool->max_connections);

    ngx_http_sophon_events_conn_timer(conn, connect_timeout);

    return NGX_OK;
}


/* the server's NOTICEs and WARNINGs go to nginx's log, not to stderr */

static void
ngx_http_sophon_events_conn_notice(void *arg, const PGresult *res)
{
    char                           *severity;
    ngx_log_t                      *log;
    ngx_uint_t                      level;
    ngx_http_sophon_events_conn_t  *conn = arg;

    severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);

    if (severity == NULL) {
        level = NGX_LOG_NOTICE;

    } else if (ngx_strcmp(severity, "WARNING") == 0) {
        level = NGX_LOG_WARN;

    } else if (ngx_strcmp(severity, "NOTICE") == 0) {
        level = NGX_LOG_NOTICE;

    } else {
        /* INFO, LOG, DEBUG: only what a client asked for */
        level = NGX_LOG_INFO;
    }

    log = conn->connection ? conn->connection->log : ngx_cycle->log;

    ngx_log_error(level, log, 0, "sophon_events: the database says: %s",
                  ngx_http_sophon_events_pq_message(
                                              PQresultErrorMessage(res)));
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
    ngx_http_sophon_events_pool_t  *pool;

    pool = conn->pool;

    switch (conn->state) {

    case NGX_HTTP_SOPHON_EVENTS_IDLE:
        ngx_queue_remove(&conn->queue);
        break;

    case NGX_HTTP_SOPHON_EVENTS_CONNECTING:
        pool->nconnecting--;
        break;

    default: /* NGX_HTTP_SOPHON_EVENTS_ACTIVE */
        break;
    }

    ngx_http_sophon_events_conn_unwatch(conn);

    PQfinish(conn->pg);
    pool->nconnections--;
    ngx_free(conn);

    ngx_http_sophon_events_status_pool(pool);
}


static void
ngx_http_sophon_events_conn_handler(ngx_event_t *ev)
{
    ngx_connection_t               *c;
    ngx_http_sophon_events_conn_t  *conn;

    c = ev->data;
    conn = c->data;

    switch (conn->state) {

    case NGX_HTTP_SOPHON_EVENTS_CONNECTING:
        if (c->close) {
            /* worker_shutdown_timeout */
            ngx_http_sophon_events_conn_failed(conn, "nginx is shutting down");
            return;
        }

        if (c->read->timedout) {
            ngx_http_sophon_events_conn_failed(conn, "timed out");
            return;
        }

        ngx_http_sophon_events_conn_connect(conn);
        return;

    case NGX_HTTP_SOPHON_EVENTS_IDLE:
        if (c->read->timedout || c->close) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                           "sophon_events pool: idle connection %p closed",
                           conn);
            ngx_http_sophon_events_conn_close(conn);
            return;
        }

        (void) ngx_http_sophon_events_conn_check_idle(conn);
        return;

    default: /* NGX_HTTP_SOPHON_EVENTS_ACTIVE */

        /* handed to a request whose wake-up has not run yet: it asks */

        if (conn->handler) {
            conn->handler(conn);
        }

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
                                      ngx_http_sophon_events_pq_message(
                                                   PQerrorMessage(conn->pg)));
            return;
        }

        /*
         * libpq opens a new socket when it moves on to the next address of
         * a host list, often with the number of the one it closed: follow
         * it.
         */

        if (!ngx_http_sophon_events_conn_same_socket(conn)) {
            ngx_http_sophon_events_conn_unwatch(conn);

            if (ngx_http_sophon_events_conn_watch(conn) != NGX_OK) {
                ngx_http_sophon_events_conn_failed(conn,
                                                   "cannot watch its socket");
                return;
            }

            /* the next address has what is left of the time, no more */
            ngx_http_sophon_events_conn_timer(conn,
                     (ngx_msec_int_t) (conn->connect_deadline
                                       - ngx_current_msec) > 0
                     ? conn->connect_deadline - ngx_current_msec : 1);
        }

        if (status == PGRES_POLLING_OK) {
            break;
        }

        if (!ngx_http_sophon_events_conn_ready(conn,
                                      status == PGRES_POLLING_WRITING
                                      ? POLLOUT : POLLIN))
        {
            /* the socket's next edge brings us back */
            return;
        }
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, conn->connection->log, 0,
                   "sophon_events pool: connection %p connected, backend %d",
                   conn, PQbackendPID(conn->pg));

    conn->pool->nconnecting--;
    conn->state = NGX_HTTP_SOPHON_EVENTS_ACTIVE;

    ngx_http_sophon_events_status_pool(conn->pool);

    ngx_http_sophon_events_server_up(conn->pool, conn->pg);

    ngx_http_sophon_events_pool_give(conn);
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


/*
 * The oldest waiting request would have had this connection: it fails
 * now rather than after its queue timeout, and the others try again.
 */

static void
ngx_http_sophon_events_conn_failed(ngx_http_sophon_events_conn_t *conn,
    const char *why)
{
    ngx_log_t                        *log;
    ngx_queue_t                      *q;
    ngx_http_sophon_events_pool_t    *pool;
    ngx_http_sophon_events_waiter_t  *waiter;

    pool = conn->pool;

    /* in the name of the request that gets the 503 for it, if any */

    log = conn->connection ? conn->connection->log : ngx_cycle->log;

    if (!ngx_queue_empty(&pool->waiting)) {
        q = ngx_queue_head(&pool->waiting);
        waiter = ngx_queue_data(q, ngx_http_sophon_events_waiter_t, queue);
        log = waiter->event.log;
    }

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "sophon_events: cannot connect to the database: %s, "
                  "server: %V", why, &pool->name);

    ngx_http_sophon_events_count(NGX_HTTP_SOPHON_EVENTS_COUNT_CONNECT_FAILURES,
                                 1);

    ngx_http_sophon_events_conn_close(conn);

    if (ngx_http_sophon_events_server_failed(pool, log)) {
        /* left out: all who wait for it go to another server */
        ngx_http_sophon_events_pool_fail_waiting(pool);
        return;
    }

    if (!ngx_queue_empty(&pool->waiting)) {
        ngx_http_sophon_events_pool_wake(pool, NULL);
    }

    ngx_http_sophon_events_pool_serve_waiting(pool);
}


/* every waiting request is woken without a connection */

static void
ngx_http_sophon_events_pool_fail_waiting(ngx_http_sophon_events_pool_t *pool)
{
    while (!ngx_queue_empty(&pool->waiting)) {
        ngx_http_sophon_events_pool_wake(pool, NULL);
    }
}


static void
ngx_http_sophon_events_conn_idle(ngx_http_sophon_events_conn_t *conn)
{
    conn->state = NGX_HTTP_SOPHON_EVENTS_IDLE;

    ngx_queue_insert_head(&conn->pool->idle, &conn->queue);

    ngx_http_sophon_events_status_pool(conn->pool);

    ngx_http_sophon_events_conn_timer(conn, conn->pool->idle_timeout);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->connection->log, 0,
                   "sophon_events pool: connection %p idle", conn);
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
                  ngx_http_sophon_events_pq_message(PQerrorMessage(conn->pg)));

    ngx_http_sophon_events_conn_close(conn);

    return NGX_DECLINED;
}
