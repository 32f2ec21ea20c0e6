
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: the live stream,
 * GET /SophonFace/api/events/stream, Server-Sent Events:
 *
 *   id: <cursor>
 *   event: event              (or "deleted", data {"_id": ...})
 *   data: <the document, on one line>
 *
 * What a stream has sent is always exactly described by its cursor, so a
 * client that resumes with it (Last-Event-ID, last_event_id=, since=) gets
 * every matching event committed after it, once, whatever the order in
 * which transactions commit.  Each row keeps the transaction that wrote
 * it (xid, sql/schema.sql), and a cursor holds snapshots, not a sequence
 * number:
 *
 *   F(A, B, k)   everything A sees, and of what B sees and A does not, the
 *                rows up to k in (xid, id, kind) order (k none: nothing;
 *                F(S, S, none) is where a stream stands after no event)
 *   H(A, t)      of what A sees, the rows up to t = (ts, id) in time
 *                order: the past, for a stream that starts at a time bound
 *
 * A snapshot names the transactions in progress when it was taken, so a
 * row committed late is one that the older snapshot does not see and a
 * newer one does: it is sent then, however old its xid.  Each statement
 * takes a new snapshot S (pg_current_snapshot(), that of the statement
 * itself, so it agrees with the rows it reads) and reads, in this order,
 * at most a batch of rows, and of them only as many as half the stream's
 * buffers hold:
 *
 *   part 0   H: the rest of the past that A sees, after t, by (ts, id)
 *   part 1   F: the rest of what B sees and A does not, after k
 *   part 2   what S sees and B (H: A) does not, by (xid, id, kind)
 *
 * Rows of part 2 carry the cursor F(B, S, k) (H: F(A, S, k)).  A
 * statement that sent all the rows it had, fewer than a batch, read
 * everything S sees: the stream's cursor becomes F(S, S, none).
 *
 * One connection per worker and database LISTENs (sophon_events_notify()
 * notifies on every writing statement) and wakes the worker's streams.
 * The streams of the same filters then read in one statement (see
 * stream_gather()), at most half of the pool's connections at a time, so
 * that streams never crowd out the list.  Thousands of idle streams cost
 * no connection and no statement.  The listening connection is opened
 * with the first stream and closed with the last; while it is not
 * listening, the heartbeat reads instead, and when it listens again every
 * stream reads once, so no notification lost on the way loses an event.
 *
 * A stream's answer is kept in sophon_events_buffers, never in a file:
 * its next statement waits until the client has taken the last one's
 * rows, and a client that takes nothing for send_timeout is cut, and
 * resumes from its last id.  A worker that exits (reload, graceful stop)
 * ends its streams cleanly within a second; their clients resume on the
 * new workers.
 */


#include "ngx_http_sophon_events_query.h"
#include "ngx_http_sophon_events_output.h"
#include "ngx_http_sophon_events_pool.h"
#include "ngx_http_sophon_events_cluster.h"
#include "ngx_http_sophon_events_stream.h"
#include "ngx_http_sophon_events_status.h"
#include "ngx_http_sophon_events_stream_cursor.h"


/* rows read by one statement of a stream */
#define NGX_HTTP_SOPHON_EVENTS_BATCH       256

#define NGX_HTTP_SOPHON_EVENTS_LISTEN_RETRY  1000

#define NGX_HTTP_SOPHON_EVENTS_WATCH       1000

/* $1..$8 below, then the filters */
#define NGX_HTTP_SOPHON_EVENTS_STREAM_PARAMS  8

#define NGX_HTTP_SOPHON_EVENTS_HISTORY                                        \
    ((ngx_uint_t) 1 << NGX_HTTP_SOPHON_EVENTS_NFILTERS)


/* a text that grows as needed, NUL-terminated, freed with its stream */
typedef struct {
    u_char                             *data;
    size_t                              len;
    size_t                              size;
    unsigned                            null:1;
} ngx_http_sophon_events_text_t;


struct ngx_http_sophon_events_stream_s {
    ngx_queue_t                         queue;       /* listener->streams */
    ngx_queue_t                         run;         /* listener->runnable */
    ngx_http_sophon_events_ctx_t       *ctx;
    ngx_http_sophon_events_listener_t  *listener;
    ngx_event_t                         heartbeat;
    ngx_event_t                         retry;       /* no connection */

    /* the cursor: what has been sent (see above) */
    ngx_uint_t                          history;     /* H, not F */
    ngx_http_sophon_events_text_t       a;
    ngx_http_sophon_events_text_t       b;
    ngx_http_sophon_events_text_t       k_xid;       /* null: none */
    ngx_http_sophon_events_text_t       k_kind;
    ngx_http_sophon_events_text_t       k_id;
    ngx_http_sophon_events_text_t       k_ts;
    uint64_t                            seq;

    /* this statement's snapshot, and whether part 2 moved the frame */
    ngx_http_sophon_events_text_t       snapshot;

    /* the last event's id, being written; the statement's text */
    ngx_http_sophon_events_text_t       id;
    ngx_http_sophon_events_text_t       text;

    /* rows the statement had to send; the bytes a batch may hold */
    ngx_uint_t                          available;
    u_char                              budget[NGX_INT_T_LEN + 1];

    /* ids sent: 0 before the first */
    ngx_uint_t                          ids;
    ngx_uint_t                          batch_rows;
    ngx_uint_t                          shifted;

    /* the filters' values, NUL-terminated once for every statement */
    const char                         *values[NGX_HTTP_SOPHON_EVENTS_NFILTERS];
    ngx_uint_t                          nvalues;

    /* the filters as one text: streams with the same may share statements */
    ngx_str_t                           key;

    /*
     * A statement serves the stream that runs it, its leader, and the
     * streams that ride it: those in the leader's very place, which take
     * every row, and those that have everything B sees, which take the
     * rows newer than B (part 2).
     */
    ngx_queue_t                         riders;      /* as a leader */
    ngx_queue_t                         ride;        /* as a rider */
    ngx_http_sophon_events_stream_t    *leader;
    ngx_uint_t                          all_parts;

    unsigned                            queued:1;    /* in runnable */
    unsigned                            running:1;   /* a statement */
    unsigned                            again:1;     /* woken meanwhile */
    unsigned                            blocked:1;   /* output pending */
    unsigned                            moved:1;     /* no id says where */
    unsigned                            stopped:1;   /* finalized */
};


struct ngx_http_sophon_events_listener_s {
    ngx_http_sophon_events_pool_t      *pool;
    ngx_queue_t                         streams;
    ngx_uint_t                          nstreams;
    ngx_queue_t                         runnable;
    ngx_uint_t                          running;
    ngx_uint_t                          max_running;

    ngx_http_sophon_events_waiter_t     waiter;
    ngx_http_sophon_events_conn_t      *conn;
    ngx_event_t                         retry;
    ngx_event_t                         watch;      /* ngx_exiting */
    ngx_event_t                         kick;       /* runs the runnable */
    ngx_event_t                         poll;       /* stream_poll */
    ngx_msec_t                          poll_interval;
    unsigned                            listening:1;
};


static ngx_int_t ngx_http_sophon_events_stream_cursor(
    ngx_http_sophon_events_ctx_t *ctx, ngx_str_t *error);
static ngx_int_t ngx_http_sophon_events_stream_resume(
    ngx_http_sophon_events_stream_t *st,
    ngx_http_sophon_events_stream_cursor_t *cursor);
static ngx_str_t *ngx_http_sophon_events_text_str(
    ngx_http_sophon_events_text_t *t, ngx_str_t *s);
static ngx_int_t ngx_http_sophon_events_text_set(
    ngx_http_sophon_events_text_t *t, u_char *data, size_t len);
static ngx_int_t ngx_http_sophon_events_text_reserve(
    ngx_http_sophon_events_text_t *t, size_t size);
static void ngx_http_sophon_events_text_copy(
    ngx_http_sophon_events_text_t *dst, ngx_http_sophon_events_text_t *src);
static void ngx_http_sophon_events_stream_cleanup(void *data);
static ngx_int_t ngx_http_sophon_events_stream_values(
    ngx_http_sophon_events_stream_t *st);
static void ngx_http_sophon_events_stream_wake(
    ngx_http_sophon_events_stream_t *st);
static void ngx_http_sophon_events_stream_run(
    ngx_http_sophon_events_stream_t *st);
static void ngx_http_sophon_events_stream_gather(
    ngx_http_sophon_events_stream_t *st);
static ngx_uint_t ngx_http_sophon_events_stream_caught_up(
    ngx_http_sophon_events_stream_t *st);
static ngx_uint_t ngx_http_sophon_events_stream_same_place(
    ngx_http_sophon_events_stream_t *st, ngx_http_sophon_events_stream_t *o);
static ngx_uint_t ngx_http_sophon_events_text_eq(
    ngx_http_sophon_events_text_t *a, ngx_http_sophon_events_text_t *b);
static void ngx_http_sophon_events_stream_join(
    ngx_http_sophon_events_stream_t *leader,
    ngx_http_sophon_events_stream_t *st, ngx_uint_t all_parts);
static void ngx_http_sophon_events_stream_leave(
    ngx_http_sophon_events_stream_t *st);
static ngx_int_t ngx_http_sophon_events_stream_deliver(
    ngx_http_sophon_events_stream_t *st, PGresult *res);
static ngx_int_t ngx_http_sophon_events_stream_done(
    ngx_http_sophon_events_stream_t *st, ngx_uint_t rows,
    ngx_uint_t available);
static void ngx_http_sophon_events_stream_heartbeat(ngx_event_t *ev);
static ngx_int_t ngx_http_sophon_events_stream_place(
    ngx_http_sophon_events_stream_t *st);
static void ngx_http_sophon_events_stream_retry_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_sophon_events_stream_header(
    ngx_http_sophon_events_ctx_t *ctx);
static ngx_int_t ngx_http_sophon_events_stream_frame(
    ngx_http_sophon_events_stream_t *st, PGresult *res);
static ngx_int_t ngx_http_sophon_events_stream_id(
    ngx_http_sophon_events_stream_t *st);
static ngx_int_t ngx_http_sophon_events_stream_json_id(
    ngx_http_sophon_events_ctx_t *ctx, u_char *id, size_t len);
static void ngx_http_sophon_events_stream_end(
    ngx_http_sophon_events_stream_t *st, const char *why);

static ngx_int_t ngx_http_sophon_events_batch_stmt(
    ngx_http_sophon_events_ctx_t *ctx, ngx_http_sophon_events_stmt_t *stmt);
static ngx_int_t ngx_http_sophon_events_batch_text(
    ngx_http_sophon_events_ctx_t *ctx, ngx_str_t *text);
static u_char *ngx_http_sophon_events_batch_newer(u_char *p, u_char *last,
    ngx_uint_t filters, const char *guard, const char *snapshot);
static u_char *ngx_http_sophon_events_batch_part(u_char *p, u_char *last,
    ngx_uint_t filters, const char *table, const char *part,
    const char *kind, const char *where, const char *order);
static ngx_int_t ngx_http_sophon_events_batch_row(
    ngx_http_sophon_events_ctx_t *ctx, PGresult *res);
static ngx_int_t ngx_http_sophon_events_batch_finish(
    ngx_http_sophon_events_ctx_t *ctx);

static ngx_http_sophon_events_listener_t *ngx_http_sophon_events_listener(
    ngx_http_sophon_events_pool_t *pool, ngx_log_t *log);
static void ngx_http_sophon_events_listen(
    ngx_http_sophon_events_listener_t *ls);
static void ngx_http_sophon_events_listen_wait_handler(ngx_event_t *ev);
static void ngx_http_sophon_events_listen_start(
    ngx_http_sophon_events_listener_t *ls);
static void ngx_http_sophon_events_listen_handler(
    ngx_http_sophon_events_conn_t *conn);
static void ngx_http_sophon_events_listen_failed(
    ngx_http_sophon_events_listener_t *ls, const char *reason);
static void ngx_http_sophon_events_listen_retry(ngx_event_t *ev);
static void ngx_http_sophon_events_listen_watch(ngx_event_t *ev);
static void ngx_http_sophon_events_listen_kick(ngx_event_t *ev);
static void ngx_http_sophon_events_listen_poll(ngx_event_t *ev);
static void ngx_http_sophon_events_wake_all(
    ngx_http_sophon_events_listener_t *ls);


const ngx_http_sophon_events_endpoint_t  ngx_http_sophon_events_stream_batch =
{
    ngx_http_sophon_events_stream_cursor,
    ngx_http_sophon_events_batch_stmt,
    ngx_http_sophon_events_batch_text,
    ngx_http_sophon_events_batch_row,
    ngx_http_sophon_events_batch_finish
};


/*
 * $1 A, $2 B (pg_snapshot), $3 k's xid, $4 its kind (0: a deletion, 1: an
 * event), $5 its id, $6 the batch's limit, $7 t's ts, $8 the bytes of
 * documents a batch may hold: typed here, since each text uses only some
 * of them
 */
static const Oid  ngx_http_sophon_events_stream_types[] = {
    5038, 5038, 5069, 23, 25, 20, 701, 20
};


static ngx_str_t  ngx_http_sophon_events_stream_now = ngx_string(
    "SELECT -1, NULL::int4, NULL::text, NULL::text, NULL::text, NULL::json,"
    " pg_current_snapshot()::text");

static ngx_str_t  ngx_http_sophon_events_event_stream =
    ngx_string("text/event-stream");

static ngx_str_t  ngx_http_sophon_events_too_many_streams =
    ngx_string("sophon_events_max_streams streams are open in this worker");


ngx_int_t
ngx_http_sophon_events_stream_start(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_int_t                           rc;
    ngx_http_request_t                 *r;
    ngx_http_sophon_events_stream_t    *st;
    ngx_http_sophon_events_listener_t  *ls;

    r = ctx->request;
    st = ctx->stream;

    ls = ngx_http_sophon_events_listener(ctx->pool, r->connection->log);
    if (ls == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ls->nstreams >= ctx->conf->max_streams) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "sophon_events: %V",
                      &ngx_http_sophon_events_too_many_streams);
        return ngx_http_sophon_events_send_error(r,
                                    NGX_HTTP_SERVICE_UNAVAILABLE,
                                    &ngx_http_sophon_events_too_many_streams);
    }

    if (r->method == NGX_HTTP_HEAD) {
        /* the headers alone: the arguments and the cursor are checked */

        rc = ngx_http_sophon_events_stream_header(ctx);
        if (rc != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_http_sophon_events_output_end(ctx);

        return (rc == NGX_DONE) ? NGX_OK : rc;
    }

    st->listener = ls;

    ngx_queue_insert_tail(&ls->streams, &st->queue);
    ls->nstreams++;
    ngx_http_sophon_events_status_streams(1);

    ngx_queue_init(&st->riders);

    /* half the buffers: a batch always fits what the client has not taken */

    (void) ngx_sprintf(st->budget, "%uz%Z",
                       ctx->conf->bufs.num * ctx->conf->bufs.size / 2);

    if (ngx_http_sophon_events_stream_values(st) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st->heartbeat.handler = ngx_http_sophon_events_stream_heartbeat;
    st->heartbeat.data = st;
    st->heartbeat.log = r->connection->log;

    st->retry.handler = ngx_http_sophon_events_stream_retry_handler;
    st->retry.data = st;
    st->retry.log = r->connection->log;

    /* a stream's answer has no end: never a file, its batches fit */

    ctx->no_spill = 1;

    /*
     * The 200 at once: a browser's EventSource gives up on an error
     * status, and reconnects after a cut.  What fails from now on cuts.
     */

    rc = ngx_http_sophon_events_stream_header(ctx);
    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_sophon_events_output_flush(ctx, 1);
    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_add_timer(&st->heartbeat, ctx->conf->stream_heartbeat);

    ngx_http_sophon_events_listen(ls);

    /* the first statement: its start, or what the cursor has not seen */

    ngx_http_sophon_events_stream_wake(st);

    return NGX_DONE;
}


/*
 * The stream's cursor, from the Last-Event-ID header first (a browser
 * sends it when it reconnects, with the URL it started with), then
 * last_event_id= and since=; or its start, H at datetime_gte, or now.
 */

static ngx_int_t
ngx_http_sophon_events_stream_cursor(ngx_http_sophon_events_ctx_t *ctx,
    ngx_str_t *error)
{
    ngx_int_t                                rc;
    ngx_str_t                                cursor, name;
    ngx_pool_cleanup_t                      *cln;
    ngx_table_elt_t                         *h;
    ngx_http_sophon_events_stream_t         *st;
    ngx_http_sophon_events_stream_cursor_t   decoded;

    st = ngx_pcalloc(ctx->request->pool,
                     sizeof(ngx_http_sophon_events_stream_t));
    if (st == NULL) {
        return NGX_ERROR;
    }

    /* its texts are freed with the request, however it ends */

    cln = ngx_pool_cleanup_add(ctx->request->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_sophon_events_stream_cleanup;
    cln->data = st;

    st->ctx = ctx;
    ctx->stream = st;
    ctx->shape = NGX_HTTP_SOPHON_EVENTS_SHAPE_STREAM_NOW;

    ngx_str_null(&cursor);
    ngx_str_set(&name, "Last-Event-ID");

    h = ngx_http_sophon_events_header(ctx->request, &name);
    if (h) {
        cursor = h->value;
    }

    if (cursor.len == 0) {
        ngx_str_set(&name, "last_event_id");
        cursor = ctx->args.last_event_id;
    }

    if (cursor.len == 0) {
        ngx_str_set(&name, "since");
        cursor = ctx->args.since;
    }

    st->seq = (uint64_t) ngx_time() * 1000000;

    if (cursor.len) {
        rc = ngx_http_sophon_events_stream_cursor_decode(ctx->request->pool,
                                                         &cursor, &decoded);
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_OK && ngx_http_sophon_events_stream_resume(st, &decoded)
                            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED) {
            error->data = ngx_pnalloc(ctx->request->pool, name.len + 64);
            if (error->data == NULL) {
                return NGX_ERROR;
            }

            error->len = ngx_sprintf(error->data,
                                     "%V: is not a cursor of this stream",
                                     &name)
                         - error->data;
            return NGX_DECLINED;
        }

    } else if (ctx->args.filter[NGX_HTTP_SOPHON_EVENTS_DATETIME_GTE].data) {
        /* the past first, from datetime_gte, then live */
        st->history = 1;
        st->a.null = 1;
        st->k_ts.null = 1;
        st->k_id.null = 1;

    } else {
        return NGX_OK;
    }

    ctx->shape = NGX_HTTP_SOPHON_EVENTS_SHAPE_STREAM
                 + (ngx_http_sophon_events_sql_shape(&ctx->args)
                    & (NGX_HTTP_SOPHON_EVENTS_HISTORY - 1))
                 + (st->history ? NGX_HTTP_SOPHON_EVENTS_HISTORY : 0);

    return NGX_OK;
}


/* the stream goes on from where the cursor says */

static ngx_int_t
ngx_http_sophon_events_stream_resume(ngx_http_sophon_events_stream_t *st,
    ngx_http_sophon_events_stream_cursor_t *c)
{
    ngx_uint_t                       i, none;
    ngx_str_t                       *from[6];
    ngx_http_sophon_events_text_t   *to[6];

    st->seq = c->seq;
    st->history = c->history;

    from[0] = &c->a;      to[0] = &st->a;
    from[1] = &c->b;      to[1] = &st->b;
    from[2] = &c->xid;    to[2] = &st->k_xid;
    from[3] = &c->kind;   to[3] = &st->k_kind;
    from[4] = &c->ts;     to[4] = &st->k_ts;
    from[5] = &c->id;     to[5] = &st->k_id;

    none = !c->history && c->xid.len == 0;

    for (i = 0; i < 6; i++) {
        /* F(A, B, none): no xid, kind or id */

        if (from[i]->data == NULL || (none && (i == 2 || i == 3 || i == 5))) {
            to[i]->null = 1;
            continue;
        }

        if (ngx_http_sophon_events_text_set(to[i], from[i]->data,
                                            from[i]->len)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_text_set(ngx_http_sophon_events_text_t *t,
    u_char *data, size_t len)
{
    if (ngx_http_sophon_events_text_reserve(t, len + 1) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memcpy(t->data, data, len);
    t->data[len] = '\0';
    t->len = len;
    t->null = 0;

    return NGX_OK;
}


/* room for "size" bytes; what it held is not kept */

static ngx_int_t
ngx_http_sophon_events_text_reserve(ngx_http_sophon_events_text_t *t,
    size_t size)
{
    u_char  *p;

    if (size <= t->size) {
        return NGX_OK;
    }

    size = ngx_max(size, 64);

    p = ngx_alloc(size, ngx_cycle->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (t->data) {
        ngx_free(t->data);
    }

    t->data = p;
    t->size = size;

    return NGX_OK;
}


static void
ngx_http_sophon_events_text_copy(ngx_http_sophon_events_text_t *dst,
    ngx_http_sophon_events_text_t *src)
{
    if (src->null) {
        dst->null = 1;
        return;
    }

    /* only a failed allocation fails it: the frame stays what it was */
    (void) ngx_http_sophon_events_text_set(dst, src->data, src->len);
}


static void
ngx_http_sophon_events_stream_cleanup(void *data)
{
    ngx_http_sophon_events_stream_t  *st = data;

    ngx_uint_t                          i;
    ngx_http_sophon_events_text_t      *t[9];
    ngx_http_sophon_events_listener_t  *ls;

    ls = st->listener;

    if (ls) {
        ngx_http_sophon_events_stream_stop(st);

        /* a statement that a finalize left behind is read for nobody */

        if (st->ctx->query) {
            ngx_http_sophon_events_query_detach(st->ctx);
        }

        ngx_queue_remove(&st->queue);
        ls->nstreams--;
        ngx_http_sophon_events_status_streams(-1);
    }

    t[0] = &st->a;
    t[1] = &st->b;
    t[2] = &st->k_xid;
    t[3] = &st->k_kind;
    t[4] = &st->k_id;
    t[5] = &st->k_ts;
    t[6] = &st->snapshot;
    t[7] = &st->id;
    t[8] = &st->text;

    for (i = 0; i < 9; i++) {
        if (t[i]->data) {
            ngx_free(t[i]->data);
            t[i]->data = NULL;
        }
    }

    if (ls && ls->nstreams == 0) {
        /* the last one: the listening connection goes too */
        ngx_http_sophon_events_listen_failed(ls, NULL);
    }
}


static ngx_int_t
ngx_http_sophon_events_stream_values(ngx_http_sophon_events_stream_t *st)
{
    u_char                         *p;
    size_t                          len;
    ngx_uint_t                      i;
    ngx_http_sophon_events_ctx_t   *ctx;
    ngx_http_sophon_events_stmt_t   stmt;

    ctx = st->ctx;
    stmt.nparams = 0;

    if (ngx_http_sophon_events_sql_filter_values(ctx->request->pool,
                                                 &ctx->args, &stmt)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_memcpy(st->values, stmt.values, stmt.nparams * sizeof(char *));
    st->nvalues = stmt.nparams;

    /* the filters present, then each value with its NUL */

    len = 2 * NGX_INT_T_LEN + 2;

    for (i = 0; i < st->nvalues; i++) {
        len += ngx_strlen(st->values[i]) + 1;
    }

    p = ngx_pnalloc(ctx->request->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    st->key.data = p;
    p = ngx_sprintf(p, "%ui:%s:", ngx_http_sophon_events_sql_shape(&ctx->args)
                                  & (NGX_HTTP_SOPHON_EVENTS_HISTORY - 1),
                    st->budget);

    for (i = 0; i < st->nvalues; i++) {
        p = ngx_cpymem(p, st->values[i], ngx_strlen(st->values[i]) + 1);
    }

    st->key.len = p - st->key.data;

    return NGX_OK;
}


/* there may be new rows: read them now, or once the statement running ends */

static void
ngx_http_sophon_events_stream_wake(ngx_http_sophon_events_stream_t *st)
{
    ngx_http_sophon_events_listener_t  *ls;

    ls = st->listener;

    if (st->stopped) {
        return;
    }

    if (st->running) {
        st->again = 1;
        return;
    }

    if (st->queued) {
        return;
    }


    ngx_queue_insert_tail(&ls->runnable, &st->run);
    st->queued = 1;

    if (!ls->kick.posted) {
        ngx_post_event(&ls->kick, &ngx_posted_events);
    }
}


/* the runnable streams take their turns, a few statements at a time */

static void
ngx_http_sophon_events_listen_kick(ngx_event_t *ev)
{
    ngx_queue_t                        *q;
    ngx_http_sophon_events_stream_t    *st;
    ngx_http_sophon_events_listener_t  *ls;

    ls = ev->data;

    while (ls->running < ls->max_running
           && !ngx_queue_empty(&ls->runnable))
    {
        q = ngx_queue_head(&ls->runnable);
        ngx_queue_remove(q);

        st = ngx_queue_data(q, ngx_http_sophon_events_stream_t, run);
        st->queued = 0;

        if (st->ctx->out || st->ctx->busy) {
            /*
             * the client has not taken the last batch: its write handler
             * wakes it when it has, so that a batch fits the buffers
             */
            st->blocked = 1;
            continue;
        }

        st->blocked = 0;

        ngx_http_sophon_events_stream_gather(st);
        ngx_http_sophon_events_stream_run(st);
    }
}


static void
ngx_http_sophon_events_stream_run(ngx_http_sophon_events_stream_t *st)
{
    ngx_connection_t              *c;
    ngx_http_sophon_events_ctx_t  *ctx;

    ctx = st->ctx;
    c = ctx->request->connection;

    st->running = 1;
    st->again = 0;
    st->batch_rows = 0;
    st->shifted = 0;
    st->listener->running++;

    ngx_http_sophon_events_query_start(ctx);

    /* it may have failed, and the request ended, already */

    ngx_http_run_posted_requests(c);
}


/*
 * The runnable streams of the same filters that this statement can serve
 * ride it.  A stream that has everything of an older snapshot than
 * another's is made to lead with B the newer one (F(A, B, none) says the
 * same as F(A, A, none)): it reads the rows between the two alone, and
 * the rows after B with the other.  After the statement they all stand at
 * its snapshot, and go on together: a thousand streams of the same
 * filters read one statement per notification, whatever their cursors
 * were when they came.
 */

static void
ngx_http_sophon_events_stream_gather(ngx_http_sophon_events_stream_t *st)
{
    ngx_queue_t                        *q, *next;
    ngx_http_sophon_events_stream_t    *o, *newer;
    ngx_http_sophon_events_listener_t  *ls;

    ls = st->listener;

    if (st->history || st->ctx->discard) {
        return;
    }

    newer = NULL;

    for (q = ngx_queue_head(&ls->runnable);
         q != ngx_queue_sentinel(&ls->runnable);
         q = next)
    {
        next = ngx_queue_next(q);
        o = ngx_queue_data(q, ngx_http_sophon_events_stream_t, run);

        if (o->key.len != st->key.len
            || ngx_memcmp(o->key.data, st->key.data, st->key.len) != 0
            || o->history || o->ctx->discard || o->ctx->out || o->ctx->busy)
        {
            continue;
        }

        if (ngx_http_sophon_events_stream_same_place(st, o)) {
            ngx_http_sophon_events_stream_join(st, o, 1);
            continue;
        }

        if (newer == NULL
            && ngx_http_sophon_events_stream_caught_up(st)
            && ngx_http_sophon_events_stream_caught_up(o)
            && ngx_http_sophon_events_snapshot_covers(o->a.data, o->a.len,
                                                      st->a.data, st->a.len))
        {
            newer = o;
        }
    }

    if (newer == NULL) {
        return;
    }

    /* the leader and its like read up to the newer snapshot first */

    ngx_http_sophon_events_text_copy(&st->b, &newer->a);

    for (q = ngx_queue_head(&st->riders);
         q != ngx_queue_sentinel(&st->riders);
         q = ngx_queue_next(q))
    {
        o = ngx_queue_data(q, ngx_http_sophon_events_stream_t, ride);
        ngx_http_sophon_events_text_copy(&o->b, &newer->a);
    }

    for (q = ngx_queue_head(&ls->runnable);
         q != ngx_queue_sentinel(&ls->runnable);
         q = next)
    {
        next = ngx_queue_next(q);
        o = ngx_queue_data(q, ngx_http_sophon_events_stream_t, run);

        if (o->key.len == st->key.len
            && ngx_memcmp(o->key.data, st->key.data, st->key.len) == 0
            && !o->history && !o->ctx->discard
            && o->ctx->out == NULL && o->ctx->busy == NULL
            && ngx_http_sophon_events_stream_caught_up(o)
            && ngx_http_sophon_events_text_eq(&o->a, &st->b))
        {
            ngx_http_sophon_events_stream_join(st, o, 0);
        }
    }
}


/* F(S, S, none): everything S sees is sent, nothing else */

static ngx_uint_t
ngx_http_sophon_events_stream_caught_up(ngx_http_sophon_events_stream_t *st)
{
    return !st->history && st->k_xid.null
           && ngx_http_sophon_events_text_eq(&st->a, &st->b);
}


static ngx_uint_t
ngx_http_sophon_events_stream_same_place(ngx_http_sophon_events_stream_t *st,
    ngx_http_sophon_events_stream_t *o)
{
    return st->history == o->history
           && ngx_http_sophon_events_text_eq(&st->a, &o->a)
           && ngx_http_sophon_events_text_eq(&st->b, &o->b)
           && ngx_http_sophon_events_text_eq(&st->k_xid, &o->k_xid)
           && ngx_http_sophon_events_text_eq(&st->k_kind, &o->k_kind)
           && ngx_http_sophon_events_text_eq(&st->k_id, &o->k_id)
           && ngx_http_sophon_events_text_eq(&st->k_ts, &o->k_ts);
}


static ngx_uint_t
ngx_http_sophon_events_text_eq(ngx_http_sophon_events_text_t *a,
    ngx_http_sophon_events_text_t *b)
{
    ngx_uint_t  anull, bnull;

    anull = a->null || a->data == NULL;
    bnull = b->null || b->data == NULL;

    if (anull || bnull) {
        return anull == bnull;
    }

    return a->len == b->len && ngx_memcmp(a->data, b->data, a->len) == 0;
}


static void
ngx_http_sophon_events_stream_join(ngx_http_sophon_events_stream_t *leader,
    ngx_http_sophon_events_stream_t *st, ngx_uint_t all_parts)
{
    ngx_queue_remove(&st->run);
    st->queued = 0;

    st->running = 1;
    st->again = 0;
    st->shifted = 0;
    st->leader = leader;
    st->all_parts = all_parts;

    ngx_queue_insert_tail(&leader->riders, &st->ride);
}


/* a rider is on its own again; its cursor says what it has */

static void
ngx_http_sophon_events_stream_leave(ngx_http_sophon_events_stream_t *st)
{
    ngx_queue_remove(&st->ride);

    st->leader = NULL;
    st->running = 0;
}


static void
ngx_http_sophon_events_stream_heartbeat(ngx_event_t *ev)
{
    ngx_int_t                         rc;
    ngx_connection_t                 *c;
    ngx_http_sophon_events_ctx_t     *ctx;
    ngx_http_sophon_events_stream_t  *st;

    st = ev->data;
    ctx = st->ctx;
    c = ctx->request->connection;

    /* the listening connection is down: read instead of waiting for it */

    if (!st->listener->listening) {
        ngx_http_sophon_events_stream_wake(st);
    }

    ngx_add_timer(&st->heartbeat, ctx->conf->stream_heartbeat);

    ngx_http_sophon_events_status_progress(ctx);

    if (ctx->query || ctx->done || st->leader) {
        /* rows are on their way: no comment between an event's lines */
        return;
    }

    if (ctx->out || ctx->busy) {
        /*
         * the client is behind: it needs no sign of life, and its
         * send_timeout runs from the last time it took something
         */
        return;
    }

    /*
     * Where the stream stands, when no event's id says it yet (statements
     * read nothing for it): a client that comes back later resumes from
     * there, not from an old event.  Otherwise a comment.
     */

    if (st->moved) {
        rc = ngx_http_sophon_events_stream_place(st);

    } else {
        rc = ngx_http_sophon_events_output_write(ctx, (u_char *) ":\n\n", 3);
    }

    if (rc == NGX_OK) {
        ngx_http_sophon_events_query_client(ctx);

    } else {
        ngx_http_sophon_events_request_failed(ctx, NGX_LOG_WARN,
                         NGX_HTTP_INTERNAL_SERVER_ERROR,
                         "the stream's client is slower than its events, and "
                         "all of sophon_events_buffers wait for it");
    }

    /* a timer's handler: nothing else runs what a failure posted */
    ngx_http_run_posted_requests(c);
}


/* an id with no event: the cursor of where the stream stands */

static ngx_int_t
ngx_http_sophon_events_stream_place(ngx_http_sophon_events_stream_t *st)
{
    ngx_int_t  rc;

    st->seq++;
    st->moved = 0;

    rc = ngx_http_sophon_events_stream_id(st);

    if (rc == NGX_OK) {
        rc = ngx_http_sophon_events_output_write(st->ctx, (u_char *) "\n", 1);
    }

    return rc;
}


/* the client took some output: a stream held back by it reads again */

void
ngx_http_sophon_events_stream_write_handler(ngx_http_request_t *r)
{
    ngx_connection_t                 *c;
    ngx_http_sophon_events_ctx_t     *ctx;
    ngx_http_sophon_events_stream_t  *st;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_sophon_events_module);
    st = ctx->stream;

    ngx_http_sophon_events_query_client(ctx);

    if (c->destroyed || ctx->done) {
        return;
    }

    if (st->blocked && ctx->out == NULL && ctx->busy == NULL) {
        st->blocked = 0;
        ngx_http_sophon_events_stream_wake(st);
    }
}


/*
 * The stream is finalized, or about to be: it leaves every queue and
 * statement of the worker, at once, whenever its request is freed.
 */

void
ngx_http_sophon_events_stream_stop(ngx_http_sophon_events_stream_t *st)
{
    ngx_http_sophon_events_stream_t    *rider;
    ngx_http_sophon_events_listener_t  *ls;

    ls = st->listener;

    if (st->stopped || ls == NULL) {
        return;
    }

    st->stopped = 1;

    if (st->heartbeat.timer_set) {
        ngx_del_timer(&st->heartbeat);
    }

    if (st->retry.timer_set) {
        ngx_del_timer(&st->retry);
    }

    if (st->queued) {
        ngx_queue_remove(&st->run);
        st->queued = 0;
    }

    if (st->leader) {
        ngx_http_sophon_events_stream_leave(st);

    } else if (st->running) {
        /* its statement, if any, is read on for nobody */
        st->running = 0;
        ls->running--;
        ngx_post_event(&ls->kick, &ngx_posted_events);
    }

    /* a leader's riders read on their own: its statement is theirs no more */

    while (!ngx_queue_empty(&st->riders)) {
        rider = ngx_queue_data(ngx_queue_head(&st->riders),
                               ngx_http_sophon_events_stream_t, ride);
        ngx_http_sophon_events_stream_leave(rider);
        ngx_http_sophon_events_stream_wake(rider);
    }
}


/*
 * No connection could be had for the stream's statement (the pool's queue
 * is full, or timed out): it tries again in a second, its riders with it,
 * instead of being cut.
 */

void
ngx_http_sophon_events_stream_retry(ngx_http_sophon_events_stream_t *st,
    const char *reason)
{
    ngx_http_sophon_events_stream_t    *rider;
    ngx_http_sophon_events_listener_t  *ls;

    ls = st->listener;

    ngx_log_error(NGX_LOG_WARN, st->ctx->request->connection->log, 0,
                  "sophon_events: a stream waits a second: %s", reason);

    /* out of the pool's queue: a connection must not come to it now */
    ngx_http_sophon_events_pool_abandon(st->ctx->pool, &st->ctx->waiter);

    if (st->running) {
        st->running = 0;
        ls->running--;
        ngx_post_event(&ls->kick, &ngx_posted_events);
    }

    st->again = 0;
    ngx_add_timer(&st->retry, 1000);

    while (!ngx_queue_empty(&st->riders)) {
        rider = ngx_queue_data(ngx_queue_head(&st->riders),
                               ngx_http_sophon_events_stream_t, ride);
        ngx_http_sophon_events_stream_leave(rider);

        if (!rider->retry.timer_set) {
            ngx_add_timer(&rider->retry, 1000);
        }
    }
}


static void
ngx_http_sophon_events_stream_retry_handler(ngx_event_t *ev)
{
    ngx_http_sophon_events_stream_wake(ev->data);
}


/* the 200, and how soon a client comes back after a cut: one second */

static ngx_int_t
ngx_http_sophon_events_stream_header(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_http_request_t  *r;

    r = ctx->request;

    /* a proxy in front passes the events on as they come */

    if (ngx_http_sophon_events_add_header(r, "Cache-Control", "no-cache")
        != NGX_OK
        || ngx_http_sophon_events_add_header(r, "X-Accel-Buffering", "no")
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_sophon_events_output_header(ctx,
                                    &ngx_http_sophon_events_event_stream)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_sophon_events_output_write(ctx,
                                               (u_char *) "retry: 1000\n\n",
                                               13);
}


/*
 * The statements.  Each row is (part, kind, xid, id, ts, doc, snapshot);
 * the first is the statement's snapshot alone, part -1.  Every part reads
 * at most a batch, from an index in its own order, and the whole is sorted
 * once, without the documents, which are fetched by id for what is sent.
 */

static ngx_int_t
ngx_http_sophon_events_batch_stmt(ngx_http_sophon_events_ctx_t *ctx,
    ngx_http_sophon_events_stmt_t *stmt)
{
    ngx_http_sophon_events_stream_t  *st;

    st = ctx->stream;

    ngx_http_sophon_events_sql_name(stmt, ctx->shape);

    stmt->ntypes = 0;
    stmt->types = NULL;
    stmt->nparams = 0;

    if (ctx->shape == NGX_HTTP_SOPHON_EVENTS_SHAPE_STREAM_NOW) {
        return NGX_OK;
    }

#define ngx_http_sophon_events_value(t)                                       \
    ((t).null || (t).data == NULL ? NULL : (const char *) (t).data)

    stmt->values[0] = ngx_http_sophon_events_value(st->a);
    stmt->values[1] = st->history ? NULL
                                  : ngx_http_sophon_events_value(st->b);
    stmt->values[2] = ngx_http_sophon_events_value(st->k_xid);
    stmt->values[3] = ngx_http_sophon_events_value(st->k_kind);
    stmt->values[4] = ngx_http_sophon_events_value(st->k_id);
    stmt->values[5] = ngx_value(NGX_HTTP_SOPHON_EVENTS_BATCH);
    stmt->values[6] = ngx_http_sophon_events_value(st->k_ts);
    stmt->values[7] = (const char *) st->budget;

#undef ngx_http_sophon_events_value

    ngx_memcpy(&stmt->values[NGX_HTTP_SOPHON_EVENTS_STREAM_PARAMS],
               st->values, st->nvalues * sizeof(char *));

    stmt->nparams = NGX_HTTP_SOPHON_EVENTS_STREAM_PARAMS + st->nvalues;
    stmt->ntypes = NGX_HTTP_SOPHON_EVENTS_STREAM_PARAMS;
    stmt->types = ngx_http_sophon_events_stream_types;

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_batch_text(ngx_http_sophon_events_ctx_t *ctx,
    ngx_str_t *text)
{
    u_char                           *p, *last;
    ngx_uint_t                        filters;
    ngx_http_sophon_events_stream_t  *st;

    st = ctx->stream;

    if (ctx->shape == NGX_HTTP_SOPHON_EVENTS_SHAPE_STREAM_NOW) {
        *text = ngx_http_sophon_events_stream_now;
        return NGX_OK;
    }

    filters = (ctx->shape - NGX_HTTP_SOPHON_EVENTS_SHAPE_STREAM)
              & (NGX_HTTP_SOPHON_EVENTS_HISTORY - 1);

    /* the stream's own buffer: a long stream prepares again and again */

    if (ngx_http_sophon_events_text_reserve(&st->text, 8192) != NGX_OK) {
        return NGX_ERROR;
    }

    p = st->text.data;
    text->data = p;
    last = p + st->text.size - 1;

    p = ngx_slprintf(p, last,
                     "WITH s AS MATERIALIZED"
                     " (SELECT pg_current_snapshot() AS now),"
                     " r AS MATERIALIZED (SELECT * FROM (");

    if ((ctx->shape - NGX_HTTP_SOPHON_EVENTS_SHAPE_STREAM)
        & NGX_HTTP_SOPHON_EVENTS_HISTORY)
    {
        /* the past that A sees (A NULL: this statement's), after t */

        p = ngx_http_sophon_events_batch_part(p, last, filters,
                     "sophon_events", "0", "1",
                     "($1 IS NULL OR xid IS NULL"
                     " OR pg_visible_in_snapshot(xid, $1))"
                     " AND (ts, id) > (coalesce($7, '-Infinity'),"
                     " coalesce($5, ''))",
                     "ts, id");
        p = ngx_slprintf(p, last, " UNION ALL ");

        /* then what is new since A */

        p = ngx_http_sophon_events_batch_newer(p, last, filters,
                                               "$1 IS NOT NULL AND", "$1");

    } else {
        /*
         * the rest of what B sees and A does not, after k: in (xid, id,
         * kind) order, from k in the (xid, id) index
         */

        p = ngx_http_sophon_events_batch_part(p, last, filters,
                     "sophon_events", "1", "1",
                     "xid >= pg_snapshot_xmin($1)"
                     " AND xid < pg_snapshot_xmax($2)"
                     " AND NOT pg_visible_in_snapshot(xid, $1)"
                     " AND pg_visible_in_snapshot(xid, $2)"
                     " AND (xid, id) >= (coalesce($3, '0'), coalesce($5, ''))"
                     " AND NOT coalesce(xid = $3 AND id = $5 AND $4 = 1,"
                     " false)",
                     "xid, id");
        p = ngx_slprintf(p, last, " UNION ALL ");
        p = ngx_http_sophon_events_batch_part(p, last, filters,
                     "sophon_event_deletions", "1", "0",
                     "xid >= pg_snapshot_xmin($1)"
                     " AND xid < pg_snapshot_xmax($2)"
                     " AND NOT pg_visible_in_snapshot(xid, $1)"
                     " AND pg_visible_in_snapshot(xid, $2)"
                     " AND (xid, id) >= (coalesce($3, '0'), coalesce($5, ''))"
                     " AND NOT coalesce(xid = $3 AND id = $5, false)",
                     "xid, id");
        p = ngx_slprintf(p, last, " UNION ALL ");

        /* then what is new since B */

        p = ngx_http_sophon_events_batch_newer(p, last, filters, "", "$2");
    }

    /*
     * The batch: at most $6 rows, and of them only as many as $8 bytes
     * hold (the first one always), so that it fits the stream's buffers:
     * each row's document, and its id line and event lines, at most twice
     * its id and four snapshots' text (w.id); the first row is the
     * snapshot, with how many rows there were to send.
     */

    p = ngx_slprintf(p, last,
                     ") u ORDER BY part,"
                     " CASE WHEN part = 0 THEN ts END,"
                     " CASE WHEN part = 0 THEN id END,"
                     " xid, id, kind LIMIT $6),"
                     " d AS (SELECT r.part, r.kind, r.xid, r.id, r.ts, e.doc,"
                     " CASE WHEN r.part = 0 THEN r.ts END AS o1,"
                     " CASE WHEN r.part = 0 THEN r.id END AS o2,"
                     " sum(coalesce(octet_length(e.doc::text), 0)"
                     " + 2 * octet_length(r.id) + w.id) OVER"
                     " (ORDER BY r.part, CASE WHEN r.part = 0 THEN r.ts END,"
                     " CASE WHEN r.part = 0 THEN r.id END, r.xid, r.id,"
                     " r.kind) AS upto,"
                     " coalesce(octet_length(e.doc::text), 0)"
                     " + 2 * octet_length(r.id) + w.id AS len"
                     " FROM r CROSS JOIN (SELECT 128 + 4 * octet_length("
                     "now::text) AS id FROM s) w"
                     " LEFT JOIN sophon_events e"
                     " ON r.kind = 1 AND e.id = r.id)"
                     " SELECT -1 AS part, NULL::int4 AS kind,"
                     " NULL::xid8 AS xid, (SELECT count(*) FROM r)::text AS id,"
                     " NULL::float8 AS ts, NULL::json AS doc,"
                     " (SELECT now::text FROM s) AS snapshot,"
                     " NULL::float8 AS o1, NULL::text AS o2"
                     " UNION ALL"
                     " SELECT part, kind, xid, id, ts, doc, NULL, o1, o2"
                     " FROM d WHERE upto - len < $8 OR upto = len"
                     " ORDER BY 1, 8, 9, 3, 4, 2");

    if (p == last) {
        return NGX_ERROR;
    }

    *p = '\0';
    text->len = p - text->data;

    return NGX_OK;
}


/* part 2: the events and deletions a snapshot does not see, after "guard" */

static u_char *
ngx_http_sophon_events_batch_newer(u_char *p, u_char *last,
    ngx_uint_t filters, const char *guard, const char *snapshot)
{
    u_char  where[128];

    *ngx_snprintf(where, sizeof(where) - 1,
                  "%s xid >= pg_snapshot_xmin(%s)"
                  " AND NOT pg_visible_in_snapshot(xid, %s)",
                  guard, snapshot, snapshot) = '\0';

    p = ngx_http_sophon_events_batch_part(p, last, filters, "sophon_events",
                                          "2", "1", (char *) where, "xid, id");
    p = ngx_slprintf(p, last, " UNION ALL ");

    return ngx_http_sophon_events_batch_part(p, last, filters,
                                             "sophon_event_deletions", "2",
                                             "0", (char *) where, "xid, id");
}


/*
 * one part: at most a batch of a table's rows, in the index's order; a
 * deletion of an event that this snapshot has again is not sent (the
 * event is, in this frame or a later one: it says more)
 */

static u_char *
ngx_http_sophon_events_batch_part(u_char *p, u_char *last, ngx_uint_t filters,
    const char *table, const char *part, const char *kind, const char *where,
    const char *order)
{
    p = ngx_slprintf(p, last,
                     "(SELECT %s AS part, %s AS kind, xid, id, ts FROM %s"
                     " WHERE %s", part, kind, table, where);
    p = ngx_http_sophon_events_sql_filters(p, last, filters,
                                   NGX_HTTP_SOPHON_EVENTS_STREAM_PARAMS + 1);

    if (kind[0] == '0') {
        p = ngx_slprintf(p, last,
                         " AND NOT EXISTS (SELECT FROM sophon_events e"
                         " WHERE e.id = sophon_event_deletions.id");
        p = ngx_http_sophon_events_sql_filters(p, last, filters,
                                   NGX_HTTP_SOPHON_EVENTS_STREAM_PARAMS + 1);
        p = ngx_slprintf(p, last, ")");
    }

    return ngx_slprintf(p, last, " ORDER BY %s LIMIT $6)", order);
}


static ngx_int_t
ngx_http_sophon_events_batch_row(ngx_http_sophon_events_ctx_t *ctx,
    PGresult *res)
{
    ngx_int_t                         rc;
    ngx_uint_t                        newer;
    ngx_queue_t                      *q, *next;
    ngx_connection_t                 *c;
    ngx_http_sophon_events_stream_t  *st, *rider;

    st = ctx->stream;

    if (*PQgetvalue(res, 0, 0) == '-') {
        /* the snapshot of this statement, every rider's too */

        st->available = PQgetisnull(res, 0, 3)
                        ? 0 : (ngx_uint_t) ngx_atoi((u_char *)
                                                    PQgetvalue(res, 0, 3),
                                                    PQgetlength(res, 0, 3));

        if (ngx_http_sophon_events_text_set(&st->snapshot,
                                            (u_char *) PQgetvalue(res, 0, 6),
                                            PQgetlength(res, 0, 6))
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        for (q = ngx_queue_head(&st->riders);
             q != ngx_queue_sentinel(&st->riders);
             q = ngx_queue_next(q))
        {
            rider = ngx_queue_data(q, ngx_http_sophon_events_stream_t, ride);
            ngx_http_sophon_events_text_copy(&rider->snapshot, &st->snapshot);
        }

        return NGX_OK;
    }

    st->batch_rows++;

    newer = (*PQgetvalue(res, 0, 0) == '2');

    /* a rider that cannot take it is cut; the others go on */

    for (q = ngx_queue_head(&st->riders);
         q != ngx_queue_sentinel(&st->riders);
         q = next)
    {
        next = ngx_queue_next(q);
        rider = ngx_queue_data(q, ngx_http_sophon_events_stream_t, ride);

        if (!rider->all_parts && !newer) {
            continue;
        }

        rc = ngx_http_sophon_events_stream_deliver(rider, res);

        if (rc != NGX_OK) {
            c = rider->ctx->request->connection;

            ngx_http_sophon_events_stream_leave(rider);
            ngx_http_sophon_events_request_failed(rider->ctx, NGX_LOG_WARN,
                         NGX_HTTP_INTERNAL_SERVER_ERROR,
                         (rc == NGX_DECLINED)
                         ? "the stream's client is slower than its events, "
                           "and all of sophon_events_buffers wait for it"
                         : "the stream could not be written");

            /* its own connection: nothing else runs what it posted */
            ngx_http_run_posted_requests(c);
        }
    }

    return ngx_http_sophon_events_stream_deliver(st, res);
}


/* one row to one stream: its cursor moves, and the event goes out */

static ngx_int_t
ngx_http_sophon_events_stream_deliver(ngx_http_sophon_events_stream_t *st,
    PGresult *res)
{
    ngx_int_t                      rc;
    ngx_http_sophon_events_ctx_t  *ctx;

    ctx = st->ctx;

    ctx->rows++;
    ngx_http_sophon_events_status_progress(ctx);

    if (ngx_http_sophon_events_stream_frame(st, res) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->discard) {
        return NGX_OK;
    }

    rc = ngx_http_sophon_events_stream_id(st);
    if (rc != NGX_OK) {
        return rc;
    }

    if (*PQgetvalue(res, 0, 1) == '0') {
        rc = ngx_http_sophon_events_output_write(ctx,
                           (u_char *) "event: deleted\ndata: {\"_id\":", 28);

        if (rc == NGX_OK) {
            rc = ngx_http_sophon_events_stream_json_id(ctx,
                                              (u_char *) PQgetvalue(res, 0, 3),
                                              PQgetlength(res, 0, 3));
        }

        if (rc == NGX_OK) {
            rc = ngx_http_sophon_events_output_write(ctx, (u_char *) "}\n\n",
                                                     3);
        }

        return rc;
    }

    if (PQgetisnull(res, 0, 5)) {
        /* cannot happen: the event is read in the same snapshot */
        return NGX_OK;
    }

    rc = ngx_http_sophon_events_output_write(ctx,
                                    (u_char *) "event: event\ndata: ", 19);

    if (rc == NGX_OK) {
        rc = ngx_http_sophon_events_output_line(ctx,
                                              (u_char *) PQgetvalue(res, 0, 5),
                                              PQgetlength(res, 0, 5));
    }

    if (rc == NGX_OK) {
        rc = ngx_http_sophon_events_output_write(ctx, (u_char *) "\n\n", 2);
    }

    return rc;
}


/* the cursor moves to the row: it is sent */

static ngx_int_t
ngx_http_sophon_events_stream_frame(ngx_http_sophon_events_stream_t *st,
    PGresult *res)
{
    char  *part;

    part = PQgetvalue(res, 0, 0);

    st->seq++;

    if (part[0] == '0') {
        if (st->a.null) {
            ngx_http_sophon_events_text_copy(&st->a, &st->snapshot);
        }

        if (ngx_http_sophon_events_text_set(&st->k_ts,
                                            (u_char *) PQgetvalue(res, 0, 4),
                                            PQgetlength(res, 0, 4))
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        return ngx_http_sophon_events_text_set(&st->k_id,
                                              (u_char *) PQgetvalue(res, 0, 3),
                                              PQgetlength(res, 0, 3));
    }

    if (part[0] == '2' && !st->shifted) {
        /* the first row newer than B (H: than A): the frame moves */

        if (!st->history) {
            ngx_http_sophon_events_text_copy(&st->a, &st->b);
        }

        ngx_http_sophon_events_text_copy(&st->b, &st->snapshot);
        st->history = 0;
        st->k_ts.null = 1;
        st->shifted = 1;
    }

    if (ngx_http_sophon_events_text_set(&st->k_xid,
                                        (u_char *) PQgetvalue(res, 0, 2),
                                        PQgetlength(res, 0, 2))
        != NGX_OK
        || ngx_http_sophon_events_text_set(&st->k_kind,
                                           (u_char *) PQgetvalue(res, 0, 1),
                                           PQgetlength(res, 0, 1))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_sophon_events_text_set(&st->k_id,
                                           (u_char *) PQgetvalue(res, 0, 3),
                                           PQgetlength(res, 0, 3));
}


/*
 * "id: " and the cursor (stream_cursor.c), or nothing for a cursor too long
 * to come back in a header: a client that resumes before the next event
 * gets this one again
 */

static ngx_int_t
ngx_http_sophon_events_stream_id(ngx_http_sophon_events_stream_t *st)
{
    size_t                                  len;
    ngx_int_t                               rc;
    ngx_http_sophon_events_ctx_t           *ctx;
    ngx_http_sophon_events_stream_cursor_t  c;

    ctx = st->ctx;

    ngx_memzero(&c, sizeof(ngx_http_sophon_events_stream_cursor_t));

    c.seq = st->seq;
    c.history = st->history;

    (void) ngx_http_sophon_events_text_str(&st->a, &c.a);
    (void) ngx_http_sophon_events_text_str(&st->k_id, &c.id);

    if (st->history) {
        (void) ngx_http_sophon_events_text_str(&st->k_ts, &c.ts);

    } else {
        (void) ngx_http_sophon_events_text_str(&st->b, &c.b);
        (void) ngx_http_sophon_events_text_str(&st->k_xid, &c.xid);
        (void) ngx_http_sophon_events_text_str(&st->k_kind, &c.kind);
    }

    len = ngx_http_sophon_events_stream_cursor_len(&c);

    if (len > NGX_HTTP_SOPHON_EVENTS_STREAM_CURSOR_LEN) {
        return NGX_OK;
    }

    /* the buffer of the stream's id, reused: nothing grows per event */

    if (ngx_http_sophon_events_text_reserve(&st->id, len + sizeof("id: \n"))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    st->ids++;

    st->id.len = ngx_http_sophon_events_stream_cursor_encode(
                     ngx_cpymem(st->id.data, "id: ", 4), &c)
                 - st->id.data;
    st->id.data[st->id.len++] = '\n';

    rc = ngx_http_sophon_events_output_write(ctx, st->id.data, st->id.len);

    return rc;
}


static ngx_str_t *
ngx_http_sophon_events_text_str(ngx_http_sophon_events_text_t *t,
    ngx_str_t *s)
{
    if (t->null || t->data == NULL) {
        ngx_str_null(s);

    } else {
        s->data = t->data;
        s->len = t->len;
    }

    return s;
}


/* a JSON string: PostgreSQL's text is UTF-8, only escapes are needed */

static ngx_int_t
ngx_http_sophon_events_stream_json_id(ngx_http_sophon_events_ctx_t *ctx,
    u_char *id, size_t len)
{
    u_char      buf[8], *p, *end, *start;
    ngx_int_t   rc;

    static u_char  hex[] = "0123456789abcdef";

    rc = ngx_http_sophon_events_output_write(ctx, (u_char *) "\"", 1);

    start = id;
    end = id + len;

    for (p = id; rc == NGX_OK && p < end; p++) {

        if (*p >= 0x20 && *p != '"' && *p != '\\') {
            continue;
        }

        rc = ngx_http_sophon_events_output_write(ctx, start, p - start);
        start = p + 1;

        if (rc != NGX_OK) {
            break;
        }

        if (*p == '"' || *p == '\\') {
            buf[0] = '\\';
            buf[1] = *p;
            rc = ngx_http_sophon_events_output_write(ctx, buf, 2);
            continue;
        }

        buf[0] = '\\';
        buf[1] = 'u';
        buf[2] = '0';
        buf[3] = '0';
        buf[4] = hex[*p >> 4];
        buf[5] = hex[*p & 0xf];
        rc = ngx_http_sophon_events_output_write(ctx, buf, 6);
    }

    if (rc == NGX_OK) {
        rc = ngx_http_sophon_events_output_write(ctx, start, end - start);
    }

    if (rc == NGX_OK) {
        rc = ngx_http_sophon_events_output_write(ctx, (u_char *) "\"", 1);
    }

    return rc;
}


/*
 * The statement ended: what it wrote goes out, and the stream reads again
 * at once if the batch was full or it was woken meanwhile.  NGX_DONE: the
 * request goes on.
 */

static ngx_int_t
ngx_http_sophon_events_batch_finish(ngx_http_sophon_events_ctx_t *ctx)
{
    ngx_int_t                           rc;
    ngx_connection_t                   *c;
    ngx_http_sophon_events_stream_t    *st, *rider;
    ngx_http_sophon_events_listener_t  *ls;

    st = ctx->stream;
    ls = st->listener;

    st->running = 0;
    ls->running--;

    if (!ls->kick.posted) {
        ngx_post_event(&ls->kick, &ngx_posted_events);
    }

    /* the riders end the statement as the leader does, on their own */

    while (!ngx_queue_empty(&st->riders)) {
        rider = ngx_queue_data(ngx_queue_head(&st->riders),
                               ngx_http_sophon_events_stream_t, ride);

        ngx_http_sophon_events_stream_leave(rider);

        c = rider->ctx->request->connection;

        rc = ngx_http_sophon_events_stream_done(rider, st->batch_rows,
                                                st->available);

        if (rc == NGX_DONE) {
            ngx_http_sophon_events_query_client(rider->ctx);

        } else if (ngx_exiting && rc != NGX_ERROR && rc != NGX_DECLINED) {
            /* ended cleanly (stream_done) */
            rider->ctx->done = 1;
            ngx_http_finalize_request(rider->ctx->request, rc);

        } else {
            ngx_http_sophon_events_request_failed(rider->ctx, NGX_LOG_WARN,
                         NGX_HTTP_INTERNAL_SERVER_ERROR,
                         "the stream could not be written");
        }

        ngx_http_run_posted_requests(c);
    }

    rc = ngx_http_sophon_events_stream_done(st, st->batch_rows,
                                            st->available);

    st->batch_rows = 0;

    return rc;
}


/*
 * A statement that sent "rows" of the "available" rows it had ended for
 * this stream: all of them, fewer than a batch, and the stream has
 * everything its snapshot sees.  NGX_DONE: it goes on.
 */

static ngx_int_t
ngx_http_sophon_events_stream_done(ngx_http_sophon_events_stream_t *st,
    ngx_uint_t rows, ngx_uint_t available)
{
    ngx_int_t                      rc;
    ngx_http_sophon_events_ctx_t  *ctx;

    ctx = st->ctx;

    if (rows == available && available < NGX_HTTP_SOPHON_EVENTS_BATCH) {
        /* everything this snapshot sees is sent: F(S, S, none) */

        st->moved = !ngx_http_sophon_events_text_eq(&st->a, &st->snapshot)
                    || !ngx_http_sophon_events_text_eq(&st->b, &st->snapshot)
                    || !st->k_xid.null;

        ngx_http_sophon_events_text_copy(&st->a, &st->snapshot);
        ngx_http_sophon_events_text_copy(&st->b, &st->snapshot);
        st->k_xid.null = 1;
        st->k_kind.null = 1;
        st->k_id.null = 1;
        st->k_ts.null = 1;
        st->history = 0;

    } else {
        st->again = 1;
    }

    st->shifted = 0;

    ctx->shape = NGX_HTTP_SOPHON_EVENTS_SHAPE_STREAM
                 + (ngx_http_sophon_events_sql_shape(&ctx->args)
                    & (NGX_HTTP_SOPHON_EVENTS_HISTORY - 1))
                 + (st->history ? NGX_HTTP_SOPHON_EVENTS_HISTORY : 0);

    if (ngx_exiting) {
        ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                      "sophon_events: stream ended, nginx is shutting down");
        ngx_http_sophon_events_stream_stop(st);
        return ngx_http_sophon_events_output_end(ctx);
    }

    if (st->moved && st->ids == 0) {
        /* the first statement: the client has a cursor from the start */
        rc = ngx_http_sophon_events_stream_place(st);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (st->again) {
        ngx_http_sophon_events_stream_wake(st);
    }

    /* what it wrote goes out (query.c) */

    return NGX_DONE;
}


/* the stream ends cleanly: the last chunk, and the client resumes */

static void
ngx_http_sophon_events_stream_end(ngx_http_sophon_events_stream_t *st,
    const char *why)
{
    ngx_int_t                      rc;
    ngx_http_sophon_events_ctx_t  *ctx;

    ctx = st->ctx;

    ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                  "sophon_events: stream ended, %s", why);

    ngx_http_sophon_events_query_detach(ctx);
    ngx_http_sophon_events_stream_stop(st);

    ctx->done = 1;

    rc = ngx_http_sophon_events_output_end(ctx);

    ngx_http_finalize_request(ctx->request,
                              (rc == NGX_DECLINED) ? NGX_ERROR : rc);
}


/* the worker's listener of a pool, made with the first stream */

static ngx_http_sophon_events_listener_t *
ngx_http_sophon_events_listener(ngx_http_sophon_events_pool_t *pool,
    ngx_log_t *log)
{
    ngx_http_sophon_events_listener_t  *ls;

    if (pool->listener) {
        return pool->listener;
    }

    ls = ngx_calloc(sizeof(ngx_http_sophon_events_listener_t), log);
    if (ls == NULL) {
        return NULL;
    }

    ls->pool = pool;
    ngx_queue_init(&ls->streams);
    ngx_queue_init(&ls->runnable);

    /* at most half the pool's connections read for streams */
    ls->max_running = ngx_max(pool->max_connections / 2, 1);

    ls->retry.handler = ngx_http_sophon_events_listen_retry;
    ls->retry.data = ls;
    ls->retry.log = ngx_cycle->log;
    ls->retry.cancelable = 1;

    ls->watch.handler = ngx_http_sophon_events_listen_watch;
    ls->watch.data = ls;
    ls->watch.log = ngx_cycle->log;
    ls->watch.cancelable = 1;

    ls->kick.handler = ngx_http_sophon_events_listen_kick;
    ls->kick.data = ls;
    ls->kick.log = ngx_cycle->log;

    ls->poll.handler = ngx_http_sophon_events_listen_poll;
    ls->poll.data = ls;
    ls->poll.log = ngx_cycle->log;
    ls->poll.cancelable = 1;

    ls->waiter.event.handler = ngx_http_sophon_events_listen_wait_handler;
    ls->waiter.event.data = ls;
    ls->waiter.event.log = ngx_cycle->log;

    pool->listener = ls;

    return ls;
}


/* a connection for LISTEN, unless it has one or waits for one */

static void
ngx_http_sophon_events_listen(ngx_http_sophon_events_listener_t *ls)
{
    ngx_int_t                           rc;
    ngx_http_sophon_events_stream_t    *st;
    ngx_http_sophon_events_loc_conf_t  *conf;

    if (!ls->watch.timer_set) {
        ngx_add_timer(&ls->watch, NGX_HTTP_SOPHON_EVENTS_WATCH);
    }

    if (!ls->poll.timer_set && !ngx_queue_empty(&ls->streams)) {
        st = ngx_queue_data(ngx_queue_head(&ls->streams),
                            ngx_http_sophon_events_stream_t, queue);
        ls->poll_interval = st->ctx->conf->stream_poll;

        if (ls->poll_interval) {
            ngx_add_timer(&ls->poll, ls->poll_interval);
        }
    }

    if (ls->conn || ls->waiter.queued || ls->waiter.event.posted
        || ls->retry.timer_set || ngx_queue_empty(&ls->streams))
    {
        return;
    }

    st = ngx_queue_data(ngx_queue_head(&ls->streams),
                        ngx_http_sophon_events_stream_t, queue);
    conf = st->ctx->conf;

    ls->waiter.connect_timeout = conf->connect_timeout;

    rc = ngx_http_sophon_events_pool_acquire(ls->pool, &ls->waiter,
                                             ngx_cycle->log);

    if (rc == NGX_OK) {
        ngx_http_sophon_events_listen_start(ls);
        return;
    }

    if (rc != NGX_AGAIN) {
        ngx_http_sophon_events_listen_failed(ls,
                                  "no database connection can be opened");
    }
}


static void
ngx_http_sophon_events_listen_wait_handler(ngx_event_t *ev)
{
    ngx_http_sophon_events_listener_t  *ls;

    ls = ev->data;

    if (ev->timedout) {
        ev->timedout = 0;
        ngx_http_sophon_events_listen_failed(ls,
                                  "no database connection came free in time");
        return;
    }

    if (ls->waiter.conn == NULL) {
        ngx_http_sophon_events_listen_failed(ls,
                                  "no database connection can be opened");
        return;
    }

    ngx_http_sophon_events_listen_start(ls);
}


/*
 * LISTEN, outside the pipeline the pool's connections are in: the
 * notifications come whenever, not as a command's results
 */

static void
ngx_http_sophon_events_listen_start(ngx_http_sophon_events_listener_t *ls)
{
    PGconn                         *pg;
    ngx_http_sophon_events_conn_t  *conn;

    conn = ls->waiter.conn;
    ls->waiter.conn = NULL;

    if (ngx_queue_empty(&ls->streams)) {
        ngx_http_sophon_events_pool_release(conn, 1);
        return;
    }

    ls->conn = conn;
    pg = conn->pg;

    conn->handler = ngx_http_sophon_events_listen_handler;
    conn->data = ls;

    if ((PQpipelineStatus(pg) != PQ_PIPELINE_OFF
         && PQexitPipelineMode(pg) != 1)
        || !PQsendQuery(pg, "LISTEN sophon_events")
        || PQflush(pg) == -1)
    {
        ngx_http_sophon_events_listen_failed(ls,
                      ngx_http_sophon_events_pq_message(PQerrorMessage(pg)));
        return;
    }

    ngx_http_sophon_events_conn_timer(conn, conn->pool->wait_timeout);
}


static void
ngx_http_sophon_events_listen_handler(ngx_http_sophon_events_conn_t *conn)
{
    PGconn                             *pg;
    PGnotify                           *notify;
    PGresult                           *res;
    ngx_uint_t                          woken, failed;
    ngx_http_sophon_events_listener_t  *ls;

    ls = conn->data;
    pg = conn->pg;

    if (conn->connection->close) {
        ngx_http_sophon_events_listen_failed(ls, "nginx is shutting down");
        return;
    }

    if (conn->connection->read->timedout) {
        conn->connection->read->timedout = 0;
        ngx_http_sophon_events_listen_failed(ls, "LISTEN timed out");
        return;
    }

    if (PQflush(pg) == -1) {
        goto failed;
    }

    /* edge-triggered: read until the socket is empty */

    do {
        if (!PQconsumeInput(pg)) {
            goto failed;
        }

    } while (ngx_http_sophon_events_conn_ready(conn, POLLIN));

    failed = 0;

    while (!ls->listening && !PQisBusy(pg)) {
        res = PQgetResult(pg);

        if (res == NULL) {
            if (failed) {
                goto failed;
            }

            /*
             * listening from now on: whatever was committed before is
             * read by every stream once, so no notification is missed
             */

            ls->listening = 1;
            ngx_http_sophon_events_conn_timer(conn, 0);
            ngx_http_sophon_events_wake_all(ls);

            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                           "sophon_events stream: listening");
            break;
        }

        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "sophon_events: LISTEN failed: %s",
                          ngx_http_sophon_events_pq_message(
                                                  PQresultErrorMessage(res)));
            failed = 1;
        }

        PQclear(res);
    }

    woken = 0;

    while ((notify = PQnotifies(pg)) != NULL) {
        PQfreemem(notify);
        woken = 1;
    }

    if (woken) {
        ngx_http_sophon_events_wake_all(ls);
    }

    if (PQstatus(pg) == CONNECTION_BAD) {
        goto failed;
    }

    return;

failed:

    ngx_http_sophon_events_listen_failed(ls,
                      ngx_http_sophon_events_pq_message(PQerrorMessage(pg)));
}


/*
 * The listening connection is closed (NULL reason: no stream needs it),
 * and opened again in a second while streams are open; meanwhile their
 * heartbeats read.
 */

static void
ngx_http_sophon_events_listen_failed(ngx_http_sophon_events_listener_t *ls,
    const char *reason)
{
    ngx_http_sophon_events_conn_t  *conn;

    if (reason) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "sophon_events: the stream's listening connection "
                      "failed: %s", reason);
    }

    ngx_http_sophon_events_pool_abandon(ls->pool, &ls->waiter);

    conn = ls->conn;
    ls->conn = NULL;
    ls->listening = 0;

    if (conn) {
        /* it would receive notifications in the pool: closed */
        ngx_http_sophon_events_pool_release(conn, 0);
    }

    if (ngx_queue_empty(&ls->streams)) {
        if (ls->retry.timer_set) {
            ngx_del_timer(&ls->retry);
        }

        if (ls->watch.timer_set) {
            ngx_del_timer(&ls->watch);
        }

        if (ls->poll.timer_set) {
            ngx_del_timer(&ls->poll);
        }

        return;
    }

    if (!ls->retry.timer_set && !ngx_exiting) {
        ngx_add_timer(&ls->retry, NGX_HTTP_SOPHON_EVENTS_LISTEN_RETRY);
    }
}


static void
ngx_http_sophon_events_listen_retry(ngx_event_t *ev)
{
    ngx_http_sophon_events_listen(ev->data);
}


/*
 * An exiting worker (reload, graceful stop) ends its streams: the timer
 * is cancelable, so it does not keep the worker, but the streams'
 * heartbeats do until it has run.  So do the streams of a server that is
 * a standby now (a failover): they resume on the primary.
 */

static void
ngx_http_sophon_events_listen_watch(ngx_event_t *ev)
{
    const char                         *why;
    ngx_queue_t                        *q, *next;
    ngx_connection_t                   *c;
    ngx_http_sophon_events_stream_t    *st;
    ngx_http_sophon_events_listener_t  *ls;

    ls = ev->data;

    if (ngx_exiting) {
        why = "nginx is shutting down";

    } else if (ngx_http_sophon_events_server_standby(ls->pool)) {
        why = "its database server is a standby now";

    } else {
        ngx_add_timer(ev, NGX_HTTP_SOPHON_EVENTS_WATCH);
        return;
    }

    for (q = ngx_queue_head(&ls->streams);
         q != ngx_queue_sentinel(&ls->streams);
         q = next)
    {
        next = ngx_queue_next(q);
        st = ngx_queue_data(q, ngx_http_sophon_events_stream_t, queue);
        c = st->ctx->request->connection;

        if (st->stopped || st->ctx->done) {
            /* ended already, its answer on its way */
            continue;
        }

        ngx_http_sophon_events_stream_end(st, why);

        /* a timer's handler: nothing else runs what the end posted */
        ngx_http_run_posted_requests(c);
    }
}


/*
 * sophon_events_stream_poll: every stream reads every so often, notified
 * or not, for writers that do not notify (README, "The live stream")
 */

static void
ngx_http_sophon_events_listen_poll(ngx_event_t *ev)
{
    ngx_http_sophon_events_listener_t  *ls;

    ls = ev->data;

    if (ngx_queue_empty(&ls->streams) || ls->poll_interval == 0) {
        return;
    }

    ngx_http_sophon_events_wake_all(ls);

    ngx_add_timer(ev, ls->poll_interval);
}


static void
ngx_http_sophon_events_wake_all(ngx_http_sophon_events_listener_t *ls)
{
    ngx_queue_t                      *q;
    ngx_http_sophon_events_stream_t  *st;

    for (q = ngx_queue_head(&ls->streams);
         q != ngx_queue_sentinel(&ls->streams);
         q = ngx_queue_next(q))
    {
        st = ngx_queue_data(q, ngx_http_sophon_events_stream_t, queue);
        ngx_http_sophon_events_stream_wake(st);
    }
}
