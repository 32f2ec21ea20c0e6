/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * The nginx core and http functions that the output part of the module
 * calls, written again for fuzz/fuzz_output.c (with fuzz/ngx_shim.c for the
 * pool).  The output filter is a fake client: each call "sends" a number of
 * bytes the fuzzer chose, consuming buf->pos of a memory buffer like the
 * write filter does, and buf->file_pos of a file buffer like sendfile() does
 * (reading the file with pread()), and keeps what it could not send, as
 * nginx's r->out would.  The temporary file is a real one, unlinked at once,
 * as nginx's are.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <assert.h>
#include <stdio.h>


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
    off_t             file_pos;
    off_t             file_last;
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

    /* bytes handed down in memory buffers, then in file buffers */
    size_t            mem_bytes;
    off_t             file_bytes;
    off_t             file_next;      /* where the next file buffer starts */
    ngx_uint_t        file_seen;

    /* the temporary file: where it must be, what was written to it */
    ngx_path_t       *temp_path;
    ngx_fd_t          file_fd;
    off_t             file_size;
    ngx_uint_t        files_created;
    ngx_uint_t        files_open;

    ngx_uint_t        logged;

    /* the target's checks, at every call of the output filter */
    void            (*check)(ngx_chain_t *in);

    ngx_uint_t        npending;
    ngx_shim_pending_t  pending[NGX_SHIM_MAX_PENDING];
} ngx_shim_sink_t;

extern ngx_shim_sink_t  ngx_shim_sink;

/* bytes the client takes in one call: from the fuzzer's input */
size_t ngx_shim_budget(void);
void ngx_shim_run_cleanups(ngx_pool_t *p);


#ifndef NGX_SHIM_HTTP_DECLS_ONLY


ngx_module_t  ngx_http_sophon_events_module;
ngx_module_t  ngx_http_core_module;

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

    /* as nginx 1.22's (ngx_buf_size() covers file buffers), no zerocopy */

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


/* formats the message, so that a wrong format or argument is a report */

void
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
    u_char   buf[NGX_MAX_ERROR_STR];
    va_list  args;

    va_start(args, fmt);
    (void) ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);

    ngx_shim_sink.logged++;
}


static void
ngx_shim_close_file(void *data)
{
    int          rc;
    ngx_file_t  *file = data;

    rc = close(file->fd);
    assert(rc == 0);

    ngx_shim_sink.files_open--;
}


/*
 * As nginx's: the file is created (and, not persistent, unlinked) on the
 * first write, in tf->path, closed with the pool; the chain is written at
 * tf->offset, the buffers are left as they are, and the caller adds what
 * this returns to tf->offset.
 */

ssize_t
ngx_write_chain_to_temp_file(ngx_temp_file_t *tf, ngx_chain_t *chain)
{
    int                  fd, rc;
    off_t                offset;
    size_t               n;
    ssize_t              total, written;
    u_char              *name;
    ngx_buf_t           *b;
    ngx_chain_t         *cl;
    ngx_pool_cleanup_t  *cln;
    ngx_shim_sink_t     *s = &ngx_shim_sink;

    assert(tf->path != NULL && tf->path == s->temp_path);
    assert(tf->pool != NULL && !tf->persistent);

    if (tf->file.fd == NGX_INVALID_FILE) {

        /* one file per request */
        assert(s->files_created == 0);

        cln = ngx_pool_cleanup_add(tf->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        n = tf->path->name.len + sizeof("/sophon-fuzz.XXXXXX");

        name = ngx_pnalloc(tf->pool, n);
        if (name == NULL) {
            return NGX_ERROR;
        }

        (void) snprintf((char *) name, n, "%.*s/sophon-fuzz.XXXXXX",
                        (int) tf->path->name.len, tf->path->name.data);

        fd = mkstemp((char *) name);
        assert(fd != -1);

        rc = unlink((char *) name);
        assert(rc == 0);

        tf->file.fd = fd;
        tf->file.name.data = name;
        tf->file.name.len = ngx_strlen(name);

        cln->handler = ngx_shim_close_file;
        cln->data = &tf->file;

        s->file_fd = fd;
        s->files_created++;
        s->files_open++;

        if (tf->log_level) {
            ngx_log_error(tf->log_level, tf->file.log, 0, "%s %V",
                          tf->warn, &tf->file.name);
        }
    }

    assert(tf->file.fd == s->file_fd);

    /* the answer's next bytes: the file only grows, without holes */
    assert(tf->offset == s->file_size);

    offset = tf->offset;
    total = 0;

    for (cl = chain; cl; cl = cl->next) {
        b = cl->buf;

        assert(ngx_buf_in_memory(b) && b->pos <= b->last);

        n = b->last - b->pos;

        if (n == 0) {
            continue;
        }

        written = pwrite(tf->file.fd, b->pos, n, offset);
        assert(written == (ssize_t) n);

        offset += n;
        total += n;
    }

    tf->file.offset = offset;
    s->file_size = offset;

    return total;
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


static u_char *
ngx_shim_sink_reserve(size_t n)
{
    ngx_shim_sink_t  *s = &ngx_shim_sink;

    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2 + 64;
        s->data = realloc(s->data, s->cap);
        assert(s->data != NULL);
    }

    return s->data + s->len;
}


ngx_int_t
ngx_http_output_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    off_t                n;
    size_t               budget;
    ssize_t              got;
    ngx_uint_t           i, j;
    ngx_buf_t           *b;
    ngx_chain_t         *cl;
    ngx_shim_sink_t     *s = &ngx_shim_sink;
    ngx_shim_pending_t  *p;

    s->calls++;

    if (s->check) {
        s->check(in);
    }

    /* what we still hold must not have been touched by its owner */

    for (i = 0; i < s->npending; i++) {
        p = &s->pending[i];
        b = p->buf;
        assert(b->pos == p->pos && b->last == p->last);
        assert(b->file_pos == p->file_pos && b->file_last == p->file_last);
    }

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        assert(!s->last_seen);

        for (i = 0; i < s->npending; i++) {
            assert(s->pending[i].buf != b);
        }

        if (ngx_buf_in_memory(b)) {
            assert(!b->in_file);
            assert(b->start <= b->pos && b->pos <= b->last
                   && b->last <= b->end);

            /* the write filter's "zero size buf in writer" */
            assert(b->last > b->pos);

            /* the answer's order: no memory after the file */
            assert(!s->file_seen);

            s->mem_bytes += b->last - b->pos;

        } else {
            assert(b->in_file && b->file != NULL);
            assert(b->file->fd == s->file_fd && s->files_open);
            assert(b->file_pos < b->file_last);

            /* the file in order, and only what was written to it */
            assert(b->file_pos == s->file_next);
            assert(b->file_last <= s->file_size);

            s->file_next = b->file_last;
            s->file_bytes += b->file_last - b->file_pos;
            s->file_seen = 1;
        }

        assert(s->npending < NGX_SHIM_MAX_PENDING);
        p = &s->pending[s->npending++];
        p->buf = b;
        p->pos = b->pos;
        p->last = b->last;
        p->file_pos = b->file_pos;
        p->file_last = b->file_last;

        if (b->last_buf || b->last_in_chain) {
            s->last_seen = 1;
            s->last_buf = b->last_buf;
        }
    }

    budget = ngx_shim_budget();

    for (i = 0; i < s->npending && budget; i++) {
        p = &s->pending[i];
        b = p->buf;

        n = ngx_buf_size(b);

        if ((size_t) n > budget) {
            n = budget;
        }

        if (ngx_buf_in_memory(b)) {
            ngx_memcpy(ngx_shim_sink_reserve(n), b->pos, n);
            b->pos += n;
            p->pos = b->pos;

        } else {
            /* sendfile() */
            got = pread(b->file->fd, ngx_shim_sink_reserve(n), n,
                        b->file_pos);
            assert(got == (ssize_t) n);

            b->file_pos += n;
            p->file_pos = b->file_pos;
        }

        s->len += n;
        budget -= n;
    }

    /* drop what is sent */

    for (i = 0, j = 0; i < s->npending; i++) {
        if (ngx_buf_size(s->pending[i].buf) > 0) {
            s->pending[j++] = s->pending[i];
        }
    }

    s->npending = j;

    return s->npending ? NGX_AGAIN : NGX_OK;
}


#endif /* NGX_SHIM_HTTP_DECLS_ONLY */
