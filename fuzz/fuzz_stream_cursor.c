
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * libFuzzer target: a stream's cursor (Last-Event-ID, last_event_id=,
 * since=), which a client sends and the module binds as parameters.  What
 * it accepts must hold only what PostgreSQL takes (checked again here, on
 * its own), and must encode back to the same text, so that a stream
 * resumed from it goes on where it was.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_sophon_events_stream_cursor.h"

#include <assert.h>


void ngx_shim_free(ngx_pool_t *pool);

static void check_snapshot(ngx_str_t *s);
static void check_digits(ngx_str_t *s);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                                  *p, *end;
    ngx_int_t                                rc;
    ngx_str_t                                text, again;
    ngx_pool_t                               pool;
    ngx_http_sophon_events_stream_cursor_t   c, c2;

    memset(&pool, 0, sizeof(ngx_pool_t));

    /* a copy of exactly the input's size: a read past it is a report */

    text.len = size;
    text.data = malloc(size + 1);
    assert(text.data != NULL);
    memcpy(text.data, data, size);

    rc = ngx_http_sophon_events_stream_cursor_decode(&pool, &text, &c);

    if (rc != NGX_OK) {
        assert(rc == NGX_DECLINED);
        goto done;
    }

    check_snapshot(&c.a);

    if (c.history) {
        assert(c.ts.len > 0 && c.b.data == NULL && c.xid.data == NULL);

    } else if (c.xid.len == 0) {
        /* where a stream stands: no event */
        check_snapshot(&c.b);
        assert(c.kind.len == 0 && c.id.len == 0);

    } else {
        check_snapshot(&c.b);
        check_digits(&c.xid);
        assert(c.kind.len == 1
               && (c.kind.data[0] == '0' || c.kind.data[0] == '1'));
    }

    /* every part is a C string for libpq: no NUL inside, one at the end */

    assert(memchr(c.id.data, '\0', c.id.len) == NULL);
    assert(c.id.data[c.id.len] == '\0');
    assert(c.a.data[c.a.len] == '\0');

    /* the same text, in lowercase hex */

    assert(ngx_http_sophon_events_stream_cursor_len(&c) == text.len);

    again.data = malloc(text.len);
    assert(again.data != NULL);

    end = ngx_http_sophon_events_stream_cursor_encode(again.data, &c);
    again.len = end - again.data;

    assert(again.len == text.len);

    for (p = again.data; p < end; p++) {
        assert(ngx_tolower(*p) == ngx_tolower(text.data[p - again.data]));
    }

    assert(ngx_http_sophon_events_stream_cursor_decode(&pool, &again, &c2)
           == NGX_OK);
    assert(c2.seq == c.seq && c2.history == c.history);

    free(again.data);

done:

    free(text.data);
    ngx_shim_free(&pool);

    return 0;
}


/* "xmin:xmax:xip,...": digits, two colons, commas after the second */

static void
check_snapshot(ngx_str_t *s)
{
    size_t      i;
    ngx_uint_t  colons;

    assert(s->len > 0);
    colons = 0;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] == ':') {
            colons++;
            continue;
        }

        assert((s->data[i] >= '0' && s->data[i] <= '9')
               || (s->data[i] == ',' && colons == 2));
    }

    assert(colons == 2);
}


static void
check_digits(ngx_str_t *s)
{
    size_t  i;

    assert(s->len > 0 && s->len <= 20);

    for (i = 0; i < s->len; i++) {
        assert(s->data[i] >= '0' && s->data[i] <= '9');
    }
}
