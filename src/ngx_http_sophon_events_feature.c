
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: with_feature=0, a document without its
 * feature vector, cut out of the stored bytes.
 *
 * The documents are stored as their writers wrote them (sql/schema.sql)
 * and sent as they are; with_feature=0 must not make the database print
 * them either.  So the module finds the member "feature" of
 * common.recognize_face_attr in the text itself, in one pass that reads
 * only the path's objects member by member and skips every other value
 * by its brackets, and writes the stretches around it.  A member goes
 * with the comma that separates it from a kept neighbour, so what is left
 * is valid JSON with every other byte in place:
 *
 *   {"age":"20","feature":[...],"box":[...]}  ->  {"age":"20","box":[...]}
 *   {"feature":[...],"box":[...]}             ->  {"box":[...]}
 *   {"feature":[...]}                         ->  {}
 *
 * Every such object loses every such member, duplicates included, where
 * jsonb would have kept the last of each; a key spelled with escapes
 * ("fe\u0061ture") is the same key.  The column's json type guarantees
 * valid JSON; on anything else the scan stops and the rest of the bytes
 * go out unchanged, never past the document's end.
 */


#include "ngx_http_sophon_events_feature.h"


/* the levels of the path: the document, common, recognize_face_attr */
#define NGX_HTTP_SOPHON_EVENTS_FEATURE_LEVELS  3


typedef struct {
    const u_char                             *pos;
    const u_char                             *last;

    /* the bytes before it are written or cut */
    const u_char                             *sent;

    ngx_http_sophon_events_feature_write_pt   write;
    void                                     *data;

    /* what the write that failed returned */
    ngx_int_t                                 write_rc;
} ngx_http_sophon_events_scan_t;


static ngx_int_t ngx_http_sophon_events_scan_object(
    ngx_http_sophon_events_scan_t *s, ngx_uint_t level);
static ngx_int_t ngx_http_sophon_events_scan_cut(
    ngx_http_sophon_events_scan_t *s, const u_char *start, const u_char *end);
static void ngx_http_sophon_events_scan_space(
    ngx_http_sophon_events_scan_t *s);
static ngx_int_t ngx_http_sophon_events_scan_string(
    ngx_http_sophon_events_scan_t *s);
static ngx_int_t ngx_http_sophon_events_scan_value(
    ngx_http_sophon_events_scan_t *s);
static ngx_int_t ngx_http_sophon_events_scan_flat(
    ngx_http_sophon_events_scan_t *s);
static ngx_uint_t ngx_http_sophon_events_key_is(const u_char *p,
    const u_char *last, const char *name);


/* the key that leads from each level to the next */
static const char  *ngx_http_sophon_events_feature_path[] = {
    "common", "recognize_face_attr", "feature"
};


ngx_int_t
ngx_http_sophon_events_feature_cut(const u_char *doc, size_t len,
    ngx_http_sophon_events_feature_write_pt write, void *data)
{
    ngx_int_t                      rc;
    ngx_http_sophon_events_scan_t  s;

    s.pos = doc;
    s.last = doc + len;
    s.sent = doc;
    s.write = write;
    s.data = data;

    ngx_http_sophon_events_scan_space(&s);

    if (s.pos < s.last && *s.pos == '{') {
        rc = ngx_http_sophon_events_scan_object(&s, 0);

        /* NGX_DECLINED: not JSON, the rest goes as it is */

        if (rc == NGX_ERROR) {
            return s.write_rc;
        }
    }

    if (s.last > s.sent) {
        return s.write(s.data, s.sent, s.last - s.sent);
    }

    return NGX_OK;
}


/*
 * An object of the path, at its "{": each member's key is read, and the
 * value is scanned further if it leads on along the path, cut if it is the
 * feature, skipped otherwise.
 */

static ngx_int_t
ngx_http_sophon_events_scan_object(ngx_http_sophon_events_scan_t *s,
    ngx_uint_t level)
{
    ngx_int_t      rc;
    ngx_uint_t     kept, on_path, cut;
    const u_char  *key, *key_end, *value_end, *comma;

    s->pos++;
    kept = 0;
    comma = NULL;

    for ( ;; ) {
        ngx_http_sophon_events_scan_space(s);

        if (s->pos == s->last) {
            return NGX_DECLINED;
        }

        if (*s->pos == '}' && comma == NULL) {
            s->pos++;
            return NGX_OK;
        }

        if (*s->pos != '"') {
            return NGX_DECLINED;
        }

        key = s->pos;

        if (ngx_http_sophon_events_scan_string(s) != NGX_OK) {
            return NGX_DECLINED;
        }

        key_end = s->pos;

        ngx_http_sophon_events_scan_space(s);

        if (s->pos == s->last || *s->pos != ':') {
            return NGX_DECLINED;
        }

        s->pos++;
        ngx_http_sophon_events_scan_space(s);

        if (s->pos == s->last) {
            return NGX_DECLINED;
        }

        on_path = ngx_http_sophon_events_key_is(key + 1, key_end - 1,
                                   ngx_http_sophon_events_feature_path[level]);

        cut = on_path && level == NGX_HTTP_SOPHON_EVENTS_FEATURE_LEVELS - 1;

        if (on_path && !cut && *s->pos == '{') {
            rc = ngx_http_sophon_events_scan_object(s, level + 1);

        } else {
            rc = ngx_http_sophon_events_scan_value(s);
        }

        if (rc != NGX_OK) {
            return rc;
        }

        value_end = s->pos;

        ngx_http_sophon_events_scan_space(s);

        if (s->pos == s->last || (*s->pos != ',' && *s->pos != '}')) {
            return NGX_DECLINED;
        }

        if (cut) {
            /*
             * with the comma after a kept member, or else with the one
             * before the next member, if any
             */

            if (kept) {
                rc = ngx_http_sophon_events_scan_cut(s, comma, value_end);

            } else if (*s->pos == ',') {
                rc = ngx_http_sophon_events_scan_cut(s, key, s->pos + 1);

            } else {
                rc = ngx_http_sophon_events_scan_cut(s, key, value_end);
            }

            if (rc != NGX_OK) {
                return rc;
            }

        } else {
            kept = 1;
        }

        if (*s->pos == '}') {
            s->pos++;
            return NGX_OK;
        }

        comma = s->pos++;
    }
}


/* writes what is not written yet up to start, and passes over the cut */

static ngx_int_t
ngx_http_sophon_events_scan_cut(ngx_http_sophon_events_scan_t *s,
    const u_char *start, const u_char *end)
{
    ngx_int_t  rc;

    if (start > s->sent) {
        rc = s->write(s->data, s->sent, start - s->sent);
        if (rc != NGX_OK) {
            s->write_rc = rc;
            return NGX_ERROR;
        }
    }

    s->sent = end;

    return NGX_OK;
}


static void
ngx_http_sophon_events_scan_space(ngx_http_sophon_events_scan_t *s)
{
    while (s->pos < s->last
           && (*s->pos == ' ' || *s->pos == '\t' || *s->pos == '\n'
               || *s->pos == '\r'))
    {
        s->pos++;
    }
}


/* a string, from its opening quote to past its closing one */

static ngx_int_t
ngx_http_sophon_events_scan_string(ngx_http_sophon_events_scan_t *s)
{
    const u_char  *p;

    for (p = s->pos + 1; p < s->last; p++) {

        if (*p == '\\') {
            /* the escaped character is never the closing quote */

            if (++p == s->last) {
                break;
            }

            continue;
        }

        if (*p == '"') {
            s->pos = p + 1;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/*
 * A value off the path: a string, an object or array (counted by their
 * brackets, the strings inside skipped whole) or a scalar.
 */

static ngx_int_t
ngx_http_sophon_events_scan_value(ngx_http_sophon_events_scan_t *s)
{
    size_t         depth;
    const u_char  *p;

    if (*s->pos == '"') {
        return ngx_http_sophon_events_scan_string(s);
    }

    if (*s->pos == '[' && ngx_http_sophon_events_scan_flat(s) == NGX_OK) {
        return NGX_OK;
    }

    p = s->pos;

    if (*p != '{' && *p != '[') {
        /* a number, true, false or null: up to what follows a value */

        while (p < s->last
               && *p != ',' && *p != '}' && *p != ']'
               && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
        {
            p++;
        }

        s->pos = p;

        return NGX_OK;
    }

    depth = 0;

    while (p < s->last) {

        switch (*p) {

        case '"':
            s->pos = p;

            if (ngx_http_sophon_events_scan_string(s) != NGX_OK) {
                return NGX_DECLINED;
            }

            p = s->pos;
            continue;

        case '{':
        case '[':
            depth++;
            break;

        case '}':
        case ']':
            if (--depth == 0) {
                s->pos = p + 1;
                return NGX_OK;
            }

            break;
        }

        p++;
    }

    return NGX_DECLINED;
}


/*
 * An array of scalars, the shape of the feature and of most arrays of a
 * document: its end is its first "]" when nothing opens or quotes before
 * it.  memchr() finds those four bytes many times faster than a loop over
 * the 10 kB of 512 numbers; anything else is left to the loop.
 */

static ngx_int_t
ngx_http_sophon_events_scan_flat(ngx_http_sophon_events_scan_t *s)
{
    size_t         len;
    const u_char  *start, *end;

    start = s->pos + 1;

    end = memchr(start, ']', s->last - start);
    if (end == NULL) {
        return NGX_DECLINED;
    }

    len = end - start;

    if (memchr(start, '"', len) != NULL
        || memchr(start, '[', len) != NULL
        || memchr(start, '{', len) != NULL)
    {
        return NGX_DECLINED;
    }

    s->pos = end + 1;

    return NGX_OK;
}


/*
 * Whether a key's text, between its quotes, spells name (ASCII letters
 * and "_"): as it is, or with \u escapes.
 */

static ngx_uint_t
ngx_http_sophon_events_key_is(const u_char *p, const u_char *last,
    const char *name)
{
    ngx_int_t  ch;

    for ( /* void */ ; *name; name++) {

        if (p == last) {
            return 0;
        }

        if (*p != '\\') {
            if (*p++ != (u_char) *name) {
                return 0;
            }

            continue;
        }

        /* the other escapes stand for no letter */

        if (last - p < 6 || p[1] != 'u') {
            return 0;
        }

        ch = ngx_hextoi((u_char *) p + 2, 4);

        if (ch != (u_char) *name) {
            return 0;
        }

        p += 6;
    }

    return p == last;
}
