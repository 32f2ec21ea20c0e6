
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * For the fuzz targets: whether a text is one JSON value, by yajl's strict
 * parser (no comments, no trailing garbage, UTF-8 checked).
 */


#ifndef _FUZZ_JSON_H_INCLUDED_
#define _FUZZ_JSON_H_INCLUDED_


#include <assert.h>
#include <yajl/yajl_parse.h>


static int
valid_json(const u_char *p, size_t n)
{
    yajl_handle  h;
    int          ok;

    h = yajl_alloc(NULL, NULL, NULL);
    assert(h != NULL);

    ok = yajl_parse(h, p, n) == yajl_status_ok
         && yajl_complete_parse(h) == yajl_status_ok;

    yajl_free(h);

    return ok;
}


#endif /* _FUZZ_JSON_H_INCLUDED_ */
