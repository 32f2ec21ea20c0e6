
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * libFuzzer target: the query-string parser and the statements built from
 * what it accepts.  The first two bytes pick the limits, so the length and
 * list limits are exercised too; the rest is the query string.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_sophon_events_args.h"
#include "ngx_http_sophon_events_sql.h"

#include <assert.h>


void ngx_shim_free(ngx_pool_t *pool);

static void check_accepted(ngx_pool_t *pool,
    ngx_http_sophon_events_limits_t *limits,
    ngx_http_sophon_events_query_args_t *args);
static void check_statement(ngx_pool_t *pool,
    ngx_http_sophon_events_query_args_t *args);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_int_t                            rc;
    ngx_str_t                            query, error;
    ngx_pool_t                           pool;
    ngx_http_sophon_events_limits_t      limits;
    ngx_http_sophon_events_query_args_t  args;

    if (size < 2) {
        return 0;
    }

    memset(&pool, 0, sizeof(ngx_pool_t));

    limits.per_page_default = 10;
    limits.per_page_max = 1000;
    limits.top_k_max = 10000000;
    limits.max_value_length = 1 + data[0];
    limits.max_list_items = 1 + data[1] % 100;

    /* a copy of exactly the input's size: a read past it is a report */

    query.len = size - 2;
    query.data = malloc(query.len + 1);
    assert(query.data != NULL);
    memcpy(query.data, data + 2, query.len);

    ngx_str_null(&error);

    rc = ngx_http_sophon_events_parse_args(&pool, &query, &limits, &args,
                                           &error);

    if (rc == NGX_OK) {
        check_accepted(&pool, &limits, &args);

    } else {
        /* a refusal names its parameter: "name: reason" */
        assert(rc == NGX_DECLINED);
        assert(error.len > 0);
        assert(memchr(error.data, ':', error.len) != NULL);
    }

    free(query.data);
    ngx_shim_free(&pool);

    return 0;
}


static void
check_accepted(ngx_pool_t *pool, ngx_http_sophon_events_limits_t *limits,
    ngx_http_sophon_events_query_args_t *args)
{
    ngx_uint_t   i;
    ngx_str_t   *v;

    assert(args->per_page >= 1 && args->per_page <= limits->per_page_max);
    assert(args->page <= NGX_MAX_INT32_VALUE);
    assert(args->top_k <= limits->top_k_max);

    for (i = 0; i < NGX_HTTP_SOPHON_EVENTS_NFILTERS; i++) {
        v = &args->filter[i];

        if (v->data == NULL) {
            continue;
        }

        /* a bound parameter is a C string: no NUL may hide in it */
        assert(v->len > 0);
        assert(memchr(v->data, '\0', v->len) == NULL);
    }

    check_statement(pool, args);
}


/* the text has exactly the placeholders the parameters fill, in order */

static void
check_statement(ngx_pool_t *pool, ngx_http_sophon_events_query_args_t *args)
{
    u_char                         *p;
    ngx_str_t                       text;
    ngx_uint_t                      shape, n, max;
    ngx_http_sophon_events_stmt_t   stmt;

    shape = ngx_http_sophon_events_sql_shape(args);

    assert(ngx_http_sophon_events_sql_text(pool, shape, &text) == NGX_OK);
    assert(ngx_http_sophon_events_sql_stmt(pool, args, &stmt) == NGX_OK);

    assert(text.data[text.len] == '\0');
    assert(strlen((char *) text.data) == text.len);

    max = 0;

    for (p = text.data; (p = (u_char *) strchr((char *) p, '$')); p++) {
        n = strtoul((char *) p + 1, NULL, 10);
        assert(n >= 1);
        max = ngx_max(max, n);
    }

    assert(max == (ngx_uint_t) stmt.nparams);

    for (n = 0; n < (ngx_uint_t) stmt.nparams; n++) {
        if (stmt.values[n]) {
            (void) strlen(stmt.values[n]);
        }
    }
}
