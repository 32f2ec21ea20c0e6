
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: with_feature=0, a document without its
 * feature vector, cut out of the stored bytes.
 */


#ifndef _NGX_HTTP_SOPHON_EVENTS_FEATURE_H_INCLUDED_
#define _NGX_HTTP_SOPHON_EVENTS_FEATURE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* where the kept stretches go: NGX_OK, or an error that stops the cut */
typedef ngx_int_t (*ngx_http_sophon_events_feature_write_pt)(void *data,
    const u_char *p, size_t len);


/*
 * Writes the document without the members "feature" of its
 * common.recognize_face_attr objects, and every other byte as it is;
 * returns NGX_OK, or what the write that failed returned.
 */
ngx_int_t ngx_http_sophon_events_feature_cut(const u_char *doc, size_t len,
    ngx_http_sophon_events_feature_write_pt write, void *data);


#endif /* _NGX_HTTP_SOPHON_EVENTS_FEATURE_H_INCLUDED_ */
