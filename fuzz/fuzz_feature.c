
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * libFuzzer target: with_feature=0's cut (feature.c).  On any input it
 * reads nothing outside the document and writes only the document's own
 * stretches, in order.  On valid JSON (yajl, strict) what it writes is
 * valid JSON too, and the same document less the members "feature" of
 * its common.recognize_face_attr objects: every other value, key and
 * number spelling as it was.  A write that fails stops the cut, and its
 * code comes back.
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
    ngx_uint_t     calls;
    ngx_uint_t     fail_at;   /* the call that fails, 0: none */
    ngx_int_t      fail_rc;
} fuzz_sink_t;


static ngx_int_t
fuzz_write(void *data, const u_char *p, size_t len)
{
    fuzz_sink_t  *sink = data;

    if (++sink->calls == sink->fail_at) {
        return sink->fail_rc;
    }

    /* a stretch of the document, after the one before */
    assert(len > 0);
    assert(p >= sink->after);
    sink->after = p + len;

    memcpy(sink->out + sink->len, p, len);
    sink->len += len;

    return NGX_OK;
}


/* the path's key at each level, as feature.c follows it */
static const char  *fuzz_path[] = {
    "common", "recognize_face_attr", "feature"
};


/*
 * Whether cut is doc less the members "feature" of the path's objects:
 * level is the depth on the path of an object of doc (0: the document),
 * or -1 off the path, where the two must be the same.
 */

static int
fuzz_same_but_cut(yajl_val doc, yajl_val cut, int level)
{
    int     next;
    size_t  i, j;

    if (doc->type != cut->type) {
        return 0;
    }

    switch (doc->type) {

    case yajl_t_string:
        return strcmp(doc->u.string, cut->u.string) == 0;

    case yajl_t_number:
        /* as spelled */
        return strcmp(doc->u.number.r, cut->u.number.r) == 0;

    case yajl_t_array:
        if (doc->u.array.len != cut->u.array.len) {
            return 0;
        }

        for (i = 0; i < doc->u.array.len; i++) {
            if (!fuzz_same_but_cut(doc->u.array.values[i],
                                   cut->u.array.values[i], -1))
            {
                return 0;
            }
        }

        return 1;

    case yajl_t_object:
        j = 0;

        for (i = 0; i < doc->u.object.len; i++) {

            if (level == 2 && strcmp(doc->u.object.keys[i], "feature") == 0) {
                continue;
            }

            if (j == cut->u.object.len
                || strcmp(doc->u.object.keys[i], cut->u.object.keys[j]) != 0)
            {
                return 0;
            }

            next = (level >= 0 && level < 2
                    && strcmp(doc->u.object.keys[i], fuzz_path[level]) == 0)
                   ? level + 1 : -1;

            if (!fuzz_same_but_cut(doc->u.object.values[i],
                                   cut->u.object.values[j], next))
            {
                return 0;
            }

            j++;
        }

        return j == cut->u.object.len;

    default:
        /* true, false, null */
        return 1;
    }
}


static yajl_val
fuzz_tree(const u_char *json, size_t len)
{
    char      *text;
    yajl_val   tree;

    text = malloc(len + 1);
    assert(text != NULL);
    memcpy(text, json, len);
    text[len] = '\0';

    tree = yajl_tree_parse(text, NULL, 0);
    assert(tree != NULL);

    free(text);

    return tree;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char       *doc;
    yajl_val      in, out;
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
    sink.calls = 0;
    sink.fail_at = 0;

    rc = ngx_http_sophon_events_feature_cut(doc, size, fuzz_write, &sink);

    assert(rc == NGX_OK);
    assert(sink.len <= size);
    assert(sink.after <= doc + size);

    /* yajl takes \v and \f for white space, JSON (and PostgreSQL) not */

    if (memchr(data, '\0', size) == NULL && memchr(data, '\v', size) == NULL
        && memchr(data, '\f', size) == NULL && valid_json(doc, size))
    {
        assert(valid_json(sink.out, sink.len));

        in = fuzz_tree(doc, size);
        out = fuzz_tree(sink.out, sink.len);

        assert(fuzz_same_but_cut(in, out, YAJL_IS_OBJECT(in) ? 0 : -1));

        yajl_tree_free(in);
        yajl_tree_free(out);
    }

    /* the same cut, with a write that fails: its code comes back */

    if (sink.calls) {
        sink.fail_at = 1 + size % sink.calls;
        sink.fail_rc = (size & 1) ? NGX_DECLINED : NGX_ERROR;
        sink.after = doc;
        sink.len = 0;
        sink.calls = 0;

        rc = ngx_http_sophon_events_feature_cut(doc, size, fuzz_write, &sink);

        assert(rc == sink.fail_rc);
        assert(sink.calls == sink.fail_at);
    }

    free(doc);
    free(sink.out);

    return 0;
}
