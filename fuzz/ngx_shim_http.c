/*
 * The nginx core and http functions that the output part of the module
 * calls, written again for fuzz/fuzz_output.c (with fuzz/ngx_shim.c for the
 * pool).  The output filter is a fake client: each call "sends" a number of
 * bytes the fuzzer chose, consuming buf->pos like the write filter does,
 * and keeps what it could not send, as nginx's r->out would.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <assert.h>


/*
 * What the fake client received, for the target's checks.  The target
 * includes this file with NGX_SHIM_HTTP_DECLS_ONLY defined to see these
 * declarations (the brief allows no new header).
 */

#define NGX_SHIM_MAX_PENDING  4096

typedef struct {
    ngx_buf_t        *buf;
    u_char           *pos;
    u_char           *last;
} ngx_shim_pending_t;

typedef struct {
    ngx_int_t         header_rc;
    ngx_uint_t        header_sent;
    ngx_uint_t        status;
    ngx_uint_t        special;
    ngx_uint_t        calls;
    ngx_uint_t        nbufs_created;
    ngx_uint_t        last_seen;
    ngx_uint_t        last_buf;
    u_char           *data;
    size_t            len;
    size_t            cap;
    ngx_uint_t        npending;
    ngx_shim_pending_t  pending[NGX_SHIM_MAX_PENDING];
} ngx_shim_sink_t;

extern ngx_shim_sink_t  ngx_shim_sink;

/* bytes the client takes in one call: from the fuzzer's input */
size_t ngx_shim_budget(void);
void ngx_shim_run_cleanups(ngx_pool_t *p);


#ifndef NGX_SHIM_HTTP_DECLS_ONLY


ngx_module_t  ngx_http_sophon_events_module;

ngx_shim_sink_t  ngx_shim_sink;


ngx_buf_t *
ngx_create_temp_buf(ngx_pool_t *pool, size_t size)
{
    ngx_buf_t  *b;

    b = ngx_pcalloc(pool, sizeof(ngx_buf_t));
    if (b == NULL) {
        return NULL;
    }

    b->start = ngx_palloc(pool, size);
    if (b->start == NULL) {
        return NULL;
    }

    b->pos = b->start;
    b->last = b->start;
    b->end = b->last + size;
    b->temporary = 1;

    ngx_shim_sink.nbufs_created++;

    return b;
}


ngx_chain_t *
ngx_alloc_chain_link(ngx_pool_t *pool)
{
    /* never reuses pool->chain: every link is its own block */
    return ngx_palloc(pool, sizeof(ngx_chain_t));
}


void
ngx_chain_update_chains(ngx_pool_t *p, ngx_chain_t **free, ngx_chain_t **busy,
    ngx_chain_t **out, ngx_buf_tag_t tag)
{
    ngx_chain_t  *cl;

    /* as nginx 1.22's, without the file buffers */

    if (*out) {
        if (*busy == NULL) {
            *busy = *out;

        } else {
            for (cl = *busy; cl->next; cl = cl->next) { /* void */ }

            cl->next = *out;
        }

        *out = NULL;
    }

    while (*busy) {
        cl = *busy;

        if (cl->buf->tag != tag) {
            *busy = cl->next;
            ngx_free_chain(p, cl);
            continue;
        }

        if (ngx_buf_size(cl->buf) != 0) {
            break;
        }

        cl->buf->pos = cl->buf->start;
        cl->buf->last = cl->buf->start;

        *busy = cl->next;
        cl->next = *free;
        *free = cl;
    }
}


ngx_pool_cleanup_t *
ngx_pool_cleanup_add(ngx_pool_t *p, size_t size)
{
    ngx_pool_cleanup_t  *c;

    c = ngx_palloc(p, sizeof(ngx_pool_cleanup_t));
    if (c == NULL) {
        return NULL;
    }

    if (size) {
        c->data = ngx_palloc(p, size);
        if (c->data == NULL) {
            return NULL;
        }

    } else {
        c->data = NULL;
    }

    c->handler = NULL;
    c->next = p->cleanup;
    p->cleanup = c;

    return c;
}


void
ngx_shim_run_cleanups(ngx_pool_t *p)
{
    ngx_pool_cleanup_t  *c;

    for (c = p->cleanup; c; c = c->next) {
        if (c->handler) {
            c->handler(c->data);
        }
    }

    p->cleanup = NULL;
}


void *
ngx_list_push(ngx_list_t *l)
{
    void             *elt;
    ngx_list_part_t  *last;

    last = l->last;

    if (last->nelts == l->nalloc) {
        last = ngx_palloc(l->pool, sizeof(ngx_list_part_t));
        if (last == NULL) {
            return NULL;
        }

        last->elts = ngx_palloc(l->pool, l->nalloc * l->size);
        if (last->elts == NULL) {
            return NULL;
        }

        last->nelts = 0;
        last->next = NULL;

        l->last->next = last;
        l->last = last;
    }

    elt = (char *) last->elts + l->size * last->nelts;
    last->nelts++;

    return elt;
}


ngx_int_t
ngx_http_send_header(ngx_http_request_t *r)
{
    assert(!ngx_shim_sink.header_sent);
    ngx_shim_sink.header_sent = 1;
    ngx_shim_sink.status = r->headers_out.status;

    return ngx_shim_sink.header_rc;
}


ngx_int_t
ngx_http_send_special(ngx_http_request_t *r, ngx_uint_t flags)
{
    ngx_shim_sink.special |= flags;
    return NGX_OK;
}


static void
ngx_shim_sink_append(u_char *p, size_t n)
{
    ngx_shim_sink_t  *s = &ngx_shim_sink;

    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2 + 64;
        s->data = realloc(s->data, s->cap);
        assert(s->data != NULL);
    }

    memcpy(s->data + s->len, p, n);
    s->len += n;
}


ngx_int_t
ngx_http_output_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    size_t            budget, n;
    ngx_uint_t        i, j;
    ngx_buf_t        *b;
    ngx_chain_t      *cl;
    ngx_shim_sink_t  *s = &ngx_shim_sink;

    s->calls++;

    /* what we still hold must not have been touched by its owner */

    for (i = 0; i < s->npending; i++) {
        b = s->pending[i].buf;
        assert(b->pos == s->pending[i].pos);
        assert(b->last == s->pending[i].last);
    }

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        assert(!s->last_seen);
        assert(b->start <= b->pos && b->pos <= b->last && b->last <= b->end);

        /* the write filter's "zero size buf in writer" */
        assert(b->last > b->pos);

        for (i = 0; i < s->npending; i++) {
            assert(s->pending[i].buf != b);
        }

        assert(s->npending < NGX_SHIM_MAX_PENDING);
        s->pending[s->npending].buf = b;
        s->pending[s->npending].pos = b->pos;
        s->pending[s->npending].last = b->last;
        s->npending++;

        if (b->last_buf || b->last_in_chain) {
            s->last_seen = 1;
            s->last_buf = b->last_buf;
        }
    }

    budget = ngx_shim_budget();

    for (i = 0; i < s->npending && budget; i++) {
        b = s->pending[i].buf;
        n = ngx_min(budget, (size_t) (b->last - b->pos));
        ngx_shim_sink_append(b->pos, n);
        b->pos += n;
        s->pending[i].pos = b->pos;
        budget -= n;
    }

    /* drop what is sent */

    for (i = 0, j = 0; i < s->npending; i++) {
        if (s->pending[i].buf->pos < s->pending[i].buf->last) {
            s->pending[j++] = s->pending[i];
        }
    }

    s->npending = j;

    return s->npending ? NGX_AGAIN : NGX_OK;
}

#endif /* NGX_SHIM_HTTP_DECLS_ONLY */
