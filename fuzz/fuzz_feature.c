
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * libFuzzer target: with_feature=0's cut (feature.c).  On any input it
 * reads nothing outside the document and writes only the document's own
 * stretches, in order.  On valid JSON (yajl, strict) what it writes is
 * valid JSON too, and no common.recognize_face_attr object in it has a
 * member "feature" any more.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_sophon_events_feature.h"

#include <assert.h>
#include <yajl/yajl_tree.h>

#include "fuzz_json.h"


typedef struct {
    const u_char  *doc;
    const u_char  *after;     /* past the last stretch written */
    u_char        *out;
    size_t         len;
} fuzz_sink_t;


static ngx_int_t
fuzz_write(void *data, const u_char *p, size_t len)
{
    fuzz_sink_t  *sink = data;

    /* a stretch of the document, after the one before */
    assert(len > 0);
    assert(p >= sink->after);
    sink->after = p + len;

    memcpy(sink->out + sink->len, p, len);
    sink->len += len;

    return NGX_OK;
}


static yajl_val
fuzz_member(yajl_val obj, size_t i, const char *key)
{
    if (strcmp(obj->u.object.keys[i], key) == 0) {
        return obj->u.object.values[i];
    }

    return NULL;
}


/* no "feature" left in any common.recognize_face_attr object */

static void
fuzz_check_cut(yajl_val top)
{
    size_t    i, j, k;
    yajl_val  common, attr;

    if (!YAJL_IS_OBJECT(top)) {
        return;
    }

    for (i = 0; i < top->u.object.len; i++) {
        common = fuzz_member(top, i, "common");
        if (common == NULL || !YAJL_IS_OBJECT(common)) {
            continue;
        }

        for (j = 0; j < common->u.object.len; j++) {
            attr = fuzz_member(common, j, "recognize_face_attr");
            if (attr == NULL || !YAJL_IS_OBJECT(attr)) {
                continue;
            }

            for (k = 0; k < attr->u.object.len; k++) {
                assert(fuzz_member(attr, k, "feature") == NULL);
            }
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char         *text;
    u_char       *doc;
    yajl_val      tree;
    ngx_int_t     rc;
    fuzz_sink_t   sink;

    /* a copy of its own size, so that ASan sees a read past the end */
    doc = malloc(size ? size : 1);
    sink.out = malloc(size ? size : 1);
    assert(doc != NULL && sink.out != NULL);

    memcpy(doc, data, size);

    sink.doc = doc;
    sink.after = doc;
    sink.len = 0;

    rc = ngx_http_sophon_events_feature_cut(doc, size, fuzz_write, &sink);

    assert(rc == NGX_OK);
    assert(sink.len <= size);
    assert(sink.after <= doc + size);

    /* yajl takes \v and \f for white space, JSON (and PostgreSQL) not */

    if (memchr(data, '\0', size) == NULL && memchr(data, '\v', size) == NULL
        && memchr(data, '\f', size) == NULL && valid_json(doc, size))
    {
        assert(valid_json(sink.out, sink.len));

        text = malloc(sink.len + 1);
        assert(text != NULL);
        memcpy(text, sink.out, sink.len);
        text[sink.len] = '\0';

        tree = yajl_tree_parse(text, NULL, 0);
        assert(tree != NULL);

        fuzz_check_cut(tree);

        yajl_tree_free(tree);
        free(text);
    }

    free(doc);
    free(sink.out);

    return 0;
}
