
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * ngx_http_sophon_events_module: the query string, parsed and checked.
 *
 * Every value is percent-decoded strictly, must be UTF-8 without NUL bytes,
 * and is turned into the exact text of a bound parameter, so that nothing
 * the client sends is ever part of a statement's text and PostgreSQL never
 * gets a value it would refuse (a refusal there would be a 500, not a 400).
 */


#include "ngx_http_sophon_events_args.h"
#include "ngx_http_sophon_events_cursor.h"
#include "ngx_http_sophon_events_stream_cursor.h"

#include <yajl/yajl_parse.h>
#include <math.h>


#define NGX_HTTP_SOPHON_EVENTS_PAGE_MAX      NGX_MAX_INT32_VALUE
#define NGX_HTTP_SOPHON_EVENTS_NUMBER_LEN    64


typedef enum {
    NGX_HTTP_SOPHON_EVENTS_ARG_PER_PAGE = 0,
    NGX_HTTP_SOPHON_EVENTS_ARG_PAGE,
    NGX_HTTP_SOPHON_EVENTS_ARG_TOP_K,
    NGX_HTTP_SOPHON_EVENTS_ARG_WITH_FEATURE,
    NGX_HTTP_SOPHON_EVENTS_ARG_CURSOR,
    NGX_HTTP_SOPHON_EVENTS_ARG_NUMBER,
    NGX_HTTP_SOPHON_EVENTS_ARG_STRING,
    NGX_HTTP_SOPHON_EVENTS_ARG_SUBSTRING,
    NGX_HTTP_SOPHON_EVENTS_ARG_TYPE_LIST,
    NGX_HTTP_SOPHON_EVENTS_ARG_STRING_LIST,
    NGX_HTTP_SOPHON_EVENTS_ARG_WORD,
    NGX_HTTP_SOPHON_EVENTS_ARG_STREAM_CURSOR
} ngx_http_sophon_events_arg_kind_e;



/* "filter": the filter's index; for words and cursors, the field's offset */
typedef struct {
    ngx_str_t                            name;
    ngx_http_sophon_events_arg_kind_e    kind;
    ngx_uint_t                           filter;
} ngx_http_sophon_events_param_t;


typedef struct {
    ngx_pool_t                            *pool;
    ngx_http_sophon_events_limits_t       *limits;
    ngx_http_sophon_events_query_args_t   *args;
    ngx_str_t                             *error;

    ngx_http_sophon_events_param_t        *param;
    ngx_uint_t                             seen;
    ngx_array_t                           *items[
                                         NGX_HTTP_SOPHON_EVENTS_NFILTERS + 1];
    ngx_uint_t                             list_depth;
} ngx_http_sophon_events_parse_t;


static ngx_http_sophon_events_param_t *ngx_http_sophon_events_find_param(
    ngx_str_t *name);
static ngx_int_t ngx_http_sophon_events_parse_pair(
    ngx_http_sophon_events_parse_t *p, u_char *start, u_char *end);
static ngx_int_t ngx_http_sophon_events_unescape(ngx_pool_t *pool,
    u_char *start, u_char *end, ngx_str_t *out);
static ngx_int_t ngx_http_sophon_events_set_value(
    ngx_http_sophon_events_parse_t *p, ngx_str_t *value);
static ngx_int_t ngx_http_sophon_events_parse_uint(ngx_str_t *value,
    ngx_uint_t min, ngx_uint_t max, ngx_uint_t *out);
static ngx_int_t ngx_http_sophon_events_parse_flag(ngx_str_t *value,
    ngx_uint_t *out);
static ngx_int_t ngx_http_sophon_events_parse_number(
    ngx_http_sophon_events_parse_t *p, ngx_str_t *value, ngx_str_t *out);
static ngx_int_t ngx_http_sophon_events_like_pattern(ngx_pool_t *pool,
    ngx_str_t *value, ngx_str_t *out);
static ngx_int_t ngx_http_sophon_events_add_list(
    ngx_http_sophon_events_parse_t *p, ngx_str_t *value);
static ngx_int_t ngx_http_sophon_events_add_json_list(
    ngx_http_sophon_events_parse_t *p, ngx_str_t *value);
static ngx_int_t ngx_http_sophon_events_add_item(
    ngx_http_sophon_events_parse_t *p, u_char *data, size_t len);
static ngx_int_t ngx_http_sophon_events_make_literals(
    ngx_http_sophon_events_parse_t *p);
static ngx_int_t ngx_http_sophon_events_array_literal(ngx_pool_t *pool,
    ngx_array_t *items, ngx_uint_t quote, ngx_str_t *out);
static ngx_int_t ngx_http_sophon_events_fail(
    ngx_http_sophon_events_parse_t *p, const char *fmt, ...);

static ngx_int_t ngx_http_sophon_events_json_surrogates_paired(
    ngx_str_t *value);
static int ngx_http_sophon_events_json_refuse(void *data);
static int ngx_http_sophon_events_json_refuse_bool(void *data, int value);
static int ngx_http_sophon_events_json_start_array(void *data);
static int ngx_http_sophon_events_json_end_array(void *data);
static int ngx_http_sophon_events_json_string(void *data,
    const unsigned char *s, size_t len);
static int ngx_http_sophon_events_json_number(void *data, const char *s,
    size_t len);


static ngx_http_sophon_events_param_t  ngx_http_sophon_events_params[] = {

    { ngx_string("per_page"), NGX_HTTP_SOPHON_EVENTS_ARG_PER_PAGE, 0 },
    { ngx_string("page"), NGX_HTTP_SOPHON_EVENTS_ARG_PAGE, 0 },
    { ngx_string("top_k"), NGX_HTTP_SOPHON_EVENTS_ARG_TOP_K, 0 },

    { ngx_string("with_feature"), NGX_HTTP_SOPHON_EVENTS_ARG_WITH_FEATURE,
      0 },

    { ngx_string("after"), NGX_HTTP_SOPHON_EVENTS_ARG_CURSOR, 0 },

    { ngx_string("datetime_gte"), NGX_HTTP_SOPHON_EVENTS_ARG_NUMBER,
      NGX_HTTP_SOPHON_EVENTS_DATETIME_GTE },

    { ngx_string("datetime_lte"), NGX_HTTP_SOPHON_EVENTS_ARG_NUMBER,
      NGX_HTTP_SOPHON_EVENTS_DATETIME_LTE },

    { ngx_string("name"), NGX_HTTP_SOPHON_EVENTS_ARG_SUBSTRING,
      NGX_HTTP_SOPHON_EVENTS_NAME },

    { ngx_string("identity_id"), NGX_HTTP_SOPHON_EVENTS_ARG_STRING,
      NGX_HTTP_SOPHON_EVENTS_IDENTITY_ID },

    { ngx_string("score_min"), NGX_HTTP_SOPHON_EVENTS_ARG_NUMBER,
      NGX_HTTP_SOPHON_EVENTS_SCORE_MIN },

    { ngx_string("score_max"), NGX_HTTP_SOPHON_EVENTS_ARG_NUMBER,
      NGX_HTTP_SOPHON_EVENTS_SCORE_MAX },

    { ngx_string("userType"), NGX_HTTP_SOPHON_EVENTS_ARG_TYPE_LIST,
      NGX_HTTP_SOPHON_EVENTS_USER_TYPE },

    { ngx_string("room"), NGX_HTTP_SOPHON_EVENTS_ARG_STRING,
      NGX_HTTP_SOPHON_EVENTS_ROOM },

    { ngx_string("groups"), NGX_HTTP_SOPHON_EVENTS_ARG_STRING_LIST,
      NGX_HTTP_SOPHON_EVENTS_GROUPS },

    { ngx_string("streams"), NGX_HTTP_SOPHON_EVENTS_ARG_STRING_LIST,
      NGX_HTTP_SOPHON_EVENTS_STREAMS },

    /* DELETE's */
    { ngx_string("event_id_list"), NGX_HTTP_SOPHON_EVENTS_ARG_STRING_LIST,
      NGX_HTTP_SOPHON_EVENTS_EVENT_ID_LIST },

    /* the statistics' */
    { ngx_string("interval"), NGX_HTTP_SOPHON_EVENTS_ARG_WORD,
      offsetof(ngx_http_sophon_events_query_args_t, interval) },

    { ngx_string("group_by"), NGX_HTTP_SOPHON_EVENTS_ARG_WORD,
      offsetof(ngx_http_sophon_events_query_args_t, group_by) },

    /* the stream's: a browser cannot set Last-Event-ID on a new stream */
    { ngx_string("last_event_id"), NGX_HTTP_SOPHON_EVENTS_ARG_STREAM_CURSOR,
      offsetof(ngx_http_sophon_events_query_args_t, last_event_id) },

    { ngx_string("since"), NGX_HTTP_SOPHON_EVENTS_ARG_STREAM_CURSOR,
      offsetof(ngx_http_sophon_events_query_args_t, since) },

    { ngx_null_string, 0, 0 }
};


/* yajl skips a value whose callback is NULL: refuse those explicitly */
static yajl_callbacks  ngx_http_sophon_events_json_callbacks = {
    ngx_http_sophon_events_json_refuse,         /* null */
    ngx_http_sophon_events_json_refuse_bool,    /* boolean */
    NULL,                                       /* integer */
    NULL,                                       /* double */
    ngx_http_sophon_events_json_number,         /* number, as text */
    ngx_http_sophon_events_json_string,         /* string */
    ngx_http_sophon_events_json_refuse,         /* start map */
    NULL,                                       /* map key */
    NULL,                                       /* end map */
    ngx_http_sophon_events_json_start_array,    /* start array */
    ngx_http_sophon_events_json_end_array       /* end array */
};


ngx_int_t
ngx_http_sophon_events_parse_args(ngx_pool_t *pool, ngx_str_t *query,
    ngx_http_sophon_events_limits_t *limits,
    ngx_http_sophon_events_query_args_t *args, ngx_str_t *error)
{
    u_char                          *p, *end, *amp;
    ngx_int_t                        rc;
    ngx_http_sophon_events_parse_t   parse;

    ngx_memzero(&parse, sizeof(ngx_http_sophon_events_parse_t));
    ngx_memzero(args, sizeof(ngx_http_sophon_events_query_args_t));

    parse.pool = pool;
    parse.limits = limits;
    parse.args = args;
    parse.error = error;

    args->per_page = limits->per_page_default;
    args->with_feature = 1;

    p = query->data;
    end = query->data + query->len;

    while (p < end) {
        amp = ngx_strlchr(p, end, '&');
        if (amp == NULL) {
            amp = end;
        }

        if (amp > p) {
            rc = ngx_http_sophon_events_parse_pair(&parse, p, amp);
            if (rc != NGX_OK) {
                return rc;
            }
        }

        p = amp + 1;
    }

    rc = ngx_http_sophon_events_make_literals(&parse);

    if (rc != NGX_OK || args->cursor.len == 0) {
        return rc;
    }

    /* the cursor is checked against everything else the request says */

    return ngx_http_sophon_events_cursor_decode(pool, args, error);
}


static ngx_http_sophon_events_param_t *
ngx_http_sophon_events_find_param(ngx_str_t *name)
{
    ngx_http_sophon_events_param_t  *param;

    /* "groups[]=a" is the PHP and jQuery spelling of a repeated key */

    if (name->len > 2
        && name->data[name->len - 2] == '['
        && name->data[name->len - 1] == ']')
    {
        name->len -= 2;
    }

    for (param = ngx_http_sophon_events_params; param->name.len; param++) {
        if (param->name.len == name->len
            && ngx_strncmp(param->name.data, name->data, name->len) == 0)
        {
            return param;
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_sophon_events_parse_pair(ngx_http_sophon_events_parse_t *p,
    u_char *start, u_char *end)
{
    u_char                          *eq;
    ngx_int_t                        rc;
    ngx_str_t                        name, value;
    ngx_http_sophon_events_param_t  *param;

    eq = ngx_strlchr(start, end, '=');
    if (eq == NULL) {
        eq = end;
    }

    /*
     * A key that does not decode cannot be one of ours: it is an unknown
     * parameter, and unknown parameters are ignored (cache busters).
     */

    rc = ngx_http_sophon_events_unescape(p->pool, start, eq, &name);
    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return NGX_OK;
    }

    param = ngx_http_sophon_events_find_param(&name);
    if (param == NULL) {
        return NGX_OK;
    }

    p->param = param;

    rc = ngx_http_sophon_events_unescape(p->pool, eq == end ? end : eq + 1,
                                         end, &value);
    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_sophon_events_fail(p, "%V: bad percent-encoding",
                                           &param->name);
    }

    if (ngx_strlchr(value.data, value.data + value.len, '\0') != NULL) {
        return ngx_http_sophon_events_fail(p, "%V: contains a NUL byte",
                                           &param->name);
    }

    if (ngx_http_sophon_events_utf8_valid(value.data, value.len) != NGX_OK) {
        return ngx_http_sophon_events_fail(p, "%V: is not valid UTF-8",
                                           &param->name);
    }

    return ngx_http_sophon_events_set_value(p, &value);
}


/*
 * application/x-www-form-urlencoded: "+" is a space, "%" takes exactly two
 * hex digits.  nginx's own ngx_unescape_uri() lets a bad escape through as
 * it is; the contract wants it refused, hence a decoder of our own.
 */

static ngx_int_t
ngx_http_sophon_events_unescape(ngx_pool_t *pool, u_char *start, u_char *end,
    ngx_str_t *out)
{
    u_char      *d, c;
    ngx_int_t    hi, lo;

    d = ngx_pnalloc(pool, end - start + 1);
    if (d == NULL) {
        return NGX_ERROR;
    }

    out->data = d;

    while (start < end) {
        c = *start++;

        if (c == '+') {
            *d++ = ' ';
            continue;
        }

        if (c != '%') {
            *d++ = c;
            continue;
        }

        if (end - start < 2) {
            return NGX_DECLINED;
        }

        hi = ngx_hextoi(start, 1);
        lo = ngx_hextoi(start + 1, 1);

        if (hi == NGX_ERROR || lo == NGX_ERROR) {
            return NGX_DECLINED;
        }

        *d++ = (u_char) (hi * 16 + lo);
        start += 2;
    }

    out->len = d - out->data;
    *d = '\0';

    return NGX_OK;
}


/* strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF */

ngx_int_t
ngx_http_sophon_events_utf8_valid(u_char *p, size_t n)
{
    size_t    len, i;
    uint32_t  cp, min;

    while (n) {

        if (*p < 0x80) {
            p++;
            n--;
            continue;
        }

        if (*p >= 0xc2 && *p <= 0xdf) {
            len = 2;
            min = 0x80;
            cp = *p & 0x1f;

        } else if (*p >= 0xe0 && *p <= 0xef) {
            len = 3;
            min = 0x800;
            cp = *p & 0x0f;

        } else if (*p >= 0xf0 && *p <= 0xf4) {
            len = 4;
            min = 0x10000;
            cp = *p & 0x07;

        } else {
            return NGX_DECLINED;
        }

        if (n < len) {
            return NGX_DECLINED;
        }

        for (i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                return NGX_DECLINED;
            }

            cp = (cp << 6) | (p[i] & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return NGX_DECLINED;
        }

        p += len;
        n -= len;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_set_value(ngx_http_sophon_events_parse_t *p,
    ngx_str_t *value)
{
    ngx_uint_t                           bit, n;
    ngx_http_sophon_events_param_t      *param;
    ngx_http_sophon_events_query_args_t *args;

    param = p->param;
    args = p->args;

    if (param->kind == NGX_HTTP_SOPHON_EVENTS_ARG_TYPE_LIST
        || param->kind == NGX_HTTP_SOPHON_EVENTS_ARG_STRING_LIST)
    {
        return ngx_http_sophon_events_add_list(p, value);
    }

    bit = (ngx_uint_t) 1 << (param - ngx_http_sophon_events_params);

    if (p->seen & bit) {
        return ngx_http_sophon_events_fail(p, "%V: is given more than once",
                                           &param->name);
    }

    p->seen |= bit;

    if (value->len == 0) {
        return NGX_OK;
    }

    if (param->kind == NGX_HTTP_SOPHON_EVENTS_ARG_CURSOR) {
        /* ours, not the client's: its own limit */

        if (value->len > NGX_HTTP_SOPHON_EVENTS_CURSOR_LEN) {
            return ngx_http_sophon_events_fail(p,
                                     "after: is not a cursor of this API");
        }

        args->cursor = *value;
        return NGX_OK;
    }

    if (param->kind == NGX_HTTP_SOPHON_EVENTS_ARG_STREAM_CURSOR) {
        if (value->len > NGX_HTTP_SOPHON_EVENTS_STREAM_CURSOR_LEN) {
            return ngx_http_sophon_events_fail(p,
                              "%V: is not a cursor of this API", &param->name);
        }

        *(ngx_str_t *) ((char *) args + param->filter) = *value;
        return NGX_OK;
    }

    if (value->len > p->limits->max_value_length) {
        return ngx_http_sophon_events_fail(p, "%V: is longer than %uz bytes",
                                           &param->name,
                                           p->limits->max_value_length);
    }

    switch (param->kind) {

    case NGX_HTTP_SOPHON_EVENTS_ARG_PER_PAGE:
        if (ngx_http_sophon_events_parse_uint(value, 1,
                                              p->limits->per_page_max, &n)
            != NGX_OK)
        {
            return ngx_http_sophon_events_fail(p,
                          "per_page: must be an integer from 1 to %ui",
                          p->limits->per_page_max);
        }

        args->per_page = n;
        return NGX_OK;

    case NGX_HTTP_SOPHON_EVENTS_ARG_PAGE:
        if (ngx_http_sophon_events_parse_uint(value, 0,
                                          NGX_HTTP_SOPHON_EVENTS_PAGE_MAX, &n)
            != NGX_OK)
        {
            return ngx_http_sophon_events_fail(p,
                          "page: must be an integer from 0 to %ui",
                          (ngx_uint_t) NGX_HTTP_SOPHON_EVENTS_PAGE_MAX);
        }

        args->page = n;
        return NGX_OK;

    case NGX_HTTP_SOPHON_EVENTS_ARG_TOP_K:
        if (ngx_http_sophon_events_parse_uint(value, 1,
                                              p->limits->top_k_max, &n)
            != NGX_OK)
        {
            return ngx_http_sophon_events_fail(p,
                          "top_k: must be an integer from 1 to %ui",
                          p->limits->top_k_max);
        }

        args->top_k = n;
        return NGX_OK;

    case NGX_HTTP_SOPHON_EVENTS_ARG_WITH_FEATURE:
        if (ngx_http_sophon_events_parse_flag(value, &args->with_feature)
            != NGX_OK)
        {
            return ngx_http_sophon_events_fail(p,
                          "with_feature: must be 1, 0, true or false");
        }

        return NGX_OK;

    case NGX_HTTP_SOPHON_EVENTS_ARG_NUMBER:
        return ngx_http_sophon_events_parse_number(p, value,
                                               &args->filter[param->filter]);

    case NGX_HTTP_SOPHON_EVENTS_ARG_SUBSTRING:
        if (ngx_http_sophon_events_like_pattern(p->pool, value,
                                                &args->filter[param->filter])
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        return NGX_OK;

    case NGX_HTTP_SOPHON_EVENTS_ARG_WORD:
        *(ngx_str_t *) ((char *) args + param->filter) = *value;
        return NGX_OK;

    default: /* NGX_HTTP_SOPHON_EVENTS_ARG_STRING */
        args->filter[param->filter] = *value;
        return NGX_OK;
    }
}


/* decimal digits only: no sign, no space, no exponent */

static ngx_int_t
ngx_http_sophon_events_parse_uint(ngx_str_t *value, ngx_uint_t min,
    ngx_uint_t max, ngx_uint_t *out)
{
    size_t      i;
    ngx_uint_t  n;

    n = 0;

    for (i = 0; i < value->len; i++) {
        if (value->data[i] < '0' || value->data[i] > '9') {
            return NGX_DECLINED;
        }

        n = n * 10 + (value->data[i] - '0');

        if (n > max) {
            return NGX_DECLINED;
        }
    }

    if (n < min) {
        return NGX_DECLINED;
    }

    *out = n;

    return NGX_OK;
}


/* the spellings of a boolean that query strings use, and only those */

static ngx_int_t
ngx_http_sophon_events_parse_flag(ngx_str_t *value, ngx_uint_t *out)
{
    if ((value->len == 1 && value->data[0] == '1')
        || (value->len == 4 && ngx_strncmp(value->data, "true", 4) == 0))
    {
        *out = 1;
        return NGX_OK;
    }

    if ((value->len == 1 && value->data[0] == '0')
        || (value->len == 5 && ngx_strncmp(value->data, "false", 5) == 0))
    {
        *out = 0;
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/*
 * A JSON-like decimal number: [+-] digits [. digits] [e [+-] digits].
 * strtod() alone would also take "nan", "inf", hex floats and leading
 * spaces.  The bound parameter is our own "%.17g" of the parsed double, so
 * PostgreSQL compares exactly the value we checked.
 */

static ngx_int_t
ngx_http_sophon_events_parse_number(ngx_http_sophon_events_parse_t *p,
    ngx_str_t *value, ngx_str_t *out)
{
    u_char     *s, *end, *text;
    double      d;
    ngx_uint_t  digits, nonzero;

    s = value->data;
    end = value->data + value->len;
    digits = 0;
    nonzero = 0;

    if (s < end && (*s == '-' || *s == '+')) {
        s++;
    }

    for ( /* void */ ; s < end && *s >= '0' && *s <= '9'; s++) {
        digits++;
        nonzero |= (*s != '0');
    }

    if (s < end && *s == '.') {
        for (s++; s < end && *s >= '0' && *s <= '9'; s++) {
            digits++;
            nonzero |= (*s != '0');
        }
    }

    if (digits == 0) {
        goto invalid;
    }

    if (s < end && (*s == 'e' || *s == 'E')) {
        s++;

        if (s < end && (*s == '-' || *s == '+')) {
            s++;
        }

        if (s == end || *s < '0' || *s > '9') {
            goto invalid;
        }

        while (s < end && *s >= '0' && *s <= '9') {
            s++;
        }
    }

    if (s != end) {
        goto invalid;
    }

    /* value->data is NUL-terminated by the decoder */

    errno = 0;
    d = strtod((char *) value->data, NULL);

    if (isinf(d) || isnan(d) || (d == 0 && nonzero)) {
        return ngx_http_sophon_events_fail(p, "%V: is out of range",
                                           &p->param->name);
    }

    text = ngx_pnalloc(p->pool, NGX_HTTP_SOPHON_EVENTS_NUMBER_LEN);
    if (text == NULL) {
        return NGX_ERROR;
    }

    out->data = text;
    out->len = snprintf((char *) text, NGX_HTTP_SOPHON_EVENTS_NUMBER_LEN,
                        "%.17g", d);

    return NGX_OK;

invalid:

    return ngx_http_sophon_events_fail(p, "%V: must be a number",
                                       &p->param->name);
}


/* "%" + the value with "\", "%" and "_" escaped + "%", for ILIKE */

static ngx_int_t
ngx_http_sophon_events_like_pattern(ngx_pool_t *pool, ngx_str_t *value,
    ngx_str_t *out)
{
    u_char  *d, *s, *end;

    d = ngx_pnalloc(pool, 2 * value->len + 2);
    if (d == NULL) {
        return NGX_ERROR;
    }

    out->data = d;
    *d++ = '%';

    for (s = value->data, end = s + value->len; s < end; s++) {
        if (*s == '\\' || *s == '%' || *s == '_') {
            *d++ = '\\';
        }

        *d++ = *s;
    }

    *d++ = '%';
    out->len = d - out->data;

    return NGX_OK;
}


/*
 * Lists come as a JSON array (["a","b"], the seed's notation), as
 * "a,b", as repeated keys or as "key[]=a"; every form may be mixed and all
 * items add up.
 */

static ngx_int_t
ngx_http_sophon_events_add_list(ngx_http_sophon_events_parse_t *p,
    ngx_str_t *value)
{
    u_char     *s, *end, *comma, *item_end;
    ngx_int_t   rc;

    s = value->data;
    end = value->data + value->len;

    while (s < end && *s == ' ') {
        s++;
    }

    if (s == end) {
        return NGX_OK;
    }

    if (*s == '[') {
        return ngx_http_sophon_events_add_json_list(p, value);
    }

    for ( ;; ) {
        comma = ngx_strlchr(s, end, ',');
        item_end = comma ? comma : end;

        while (s < item_end && *s == ' ') {
            s++;
        }

        while (item_end > s && item_end[-1] == ' ') {
            item_end--;
        }

        rc = ngx_http_sophon_events_add_item(p, s, item_end - s);
        if (rc != NGX_OK) {
            return rc;
        }

        if (comma == NULL) {
            return NGX_OK;
        }

        s = comma + 1;
    }
}


static ngx_int_t
ngx_http_sophon_events_add_json_list(ngx_http_sophon_events_parse_t *p,
    ngx_str_t *value)
{
    yajl_handle    h;
    yajl_status    status;
    ngx_str_t     *error;

    error = p->error;
    error->len = 0;
    p->list_depth = 0;

    if (ngx_http_sophon_events_json_surrogates_paired(value) != NGX_OK) {
        return ngx_http_sophon_events_fail(p, "%V: has an item that is not "
                                           "valid UTF-8 text", &p->param->name);
    }

    h = yajl_alloc(&ngx_http_sophon_events_json_callbacks, NULL, p);
    if (h == NULL) {
        return NGX_ERROR;
    }

    status = yajl_parse(h, value->data, value->len);
    if (status == yajl_status_ok) {
        status = yajl_complete_parse(h);
    }

    yajl_free(h);

    if (status == yajl_status_ok) {
        return NGX_OK;
    }

    if (error->len) {
        /* an item was refused: keep the reason it gave */
        return NGX_DECLINED;
    }

    return ngx_http_sophon_events_fail(p, "%V: is not a valid list",
                                       &p->param->name);
}


/* a list holds strings or numbers: null, true, false and objects are not */

static int
ngx_http_sophon_events_json_refuse(void *data)
{
    return 0;
}


static int
ngx_http_sophon_events_json_refuse_bool(void *data, int value)
{
    return 0;
}


/*
 * yajl turns a lone surrogate escape ("\ud800") into "?" and joins a high
 * one to whatever escape follows: check the pairs ourselves, first.
 */

static ngx_int_t
ngx_http_sophon_events_json_surrogates_paired(ngx_str_t *value)
{
    u_char      *s, *end;
    ngx_int_t    cp;
    ngx_uint_t   high;

    s = value->data;
    end = value->data + value->len;
    high = 0;

    while (s < end) {

        if (*s != '\\' || end - s < 2) {
            if (high) {
                return NGX_DECLINED;
            }

            s++;
            continue;
        }

        if (s[1] != 'u') {
            /* another escape, "\\u0041" among them: two characters */
            if (high) {
                return NGX_DECLINED;
            }

            s += 2;
            continue;
        }

        cp = (end - s >= 6) ? ngx_hextoi(s + 2, 4) : NGX_ERROR;

        if (cp == NGX_ERROR) {
            /* yajl refuses it */
            return NGX_OK;
        }

        if (cp >= 0xdc00 && cp <= 0xdfff) {
            if (!high) {
                return NGX_DECLINED;
            }

            high = 0;

        } else if (high) {
            return NGX_DECLINED;

        } else if (cp >= 0xd800 && cp <= 0xdbff) {
            high = 1;
        }

        s += 6;
    }

    return high ? NGX_DECLINED : NGX_OK;
}


static int
ngx_http_sophon_events_json_start_array(void *data)
{
    ngx_http_sophon_events_parse_t  *p = data;

    return p->list_depth++ == 0;
}


static int
ngx_http_sophon_events_json_end_array(void *data)
{
    ngx_http_sophon_events_parse_t  *p = data;

    p->list_depth--;

    return 1;
}


static int
ngx_http_sophon_events_json_string(void *data, const unsigned char *s,
    size_t len)
{
    ngx_http_sophon_events_parse_t  *p = data;

    if (p->list_depth != 1) {
        return 0;
    }

    return ngx_http_sophon_events_add_item(p, (u_char *) s, len) == NGX_OK;
}


/* [1,4] for userType; a number in a string list counts as its text */

static int
ngx_http_sophon_events_json_number(void *data, const char *s, size_t len)
{
    return ngx_http_sophon_events_json_string(data, (const unsigned char *) s,
                                              len);
}


static ngx_int_t
ngx_http_sophon_events_add_item(ngx_http_sophon_events_parse_t *p,
    u_char *data, size_t len)
{
    ngx_uint_t                       n, filter;
    ngx_str_t                       *item, value;
    ngx_array_t                    **items;
    ngx_http_sophon_events_param_t  *param;

    param = p->param;
    filter = param->filter;
    items = &p->items[filter];

    if (len == 0) {
        return ngx_http_sophon_events_fail(p, "%V: has an empty item",
                                           &param->name);
    }

    if (len > p->limits->max_value_length) {
        return ngx_http_sophon_events_fail(p,
                                    "%V: has an item longer than %uz bytes",
                                    &param->name, p->limits->max_value_length);
    }

    /* JSON escapes (\u0000, lone surrogates) can make what UTF-8 did not */

    if (ngx_strlchr(data, data + len, '\0') != NULL
        || ngx_http_sophon_events_utf8_valid(data, len) != NGX_OK)
    {
        return ngx_http_sophon_events_fail(p, "%V: has an item that is not "
                                           "valid UTF-8 text", &param->name);
    }

    value.data = data;
    value.len = len;

    if (param->kind == NGX_HTTP_SOPHON_EVENTS_ARG_TYPE_LIST
        && ngx_http_sophon_events_parse_uint(&value, 1, 5, &n) != NGX_OK)
    {
        return ngx_http_sophon_events_fail(p, "%V: must be integers from "
                                           "1 to 5", &param->name);
    }

    if (*items == NULL) {
        *items = ngx_array_create(p->pool, 4, sizeof(ngx_str_t));
        if (*items == NULL) {
            return NGX_ERROR;
        }
    }

    if ((*items)->nelts >= p->limits->max_list_items) {
        return ngx_http_sophon_events_fail(p, "%V: has more than %ui items",
                                           &param->name,
                                           p->limits->max_list_items);
    }

    item = ngx_array_push(*items);
    if (item == NULL) {
        return NGX_ERROR;
    }

    /* yajl's string buffer is reused: keep a copy */

    item->data = ngx_pnalloc(p->pool, len);
    if (item->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(item->data, data, len);
    item->len = len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_make_literals(ngx_http_sophon_events_parse_t *p)
{
    ngx_uint_t                       i;
    ngx_http_sophon_events_param_t  *param;

    for (param = ngx_http_sophon_events_params; param->name.len; param++) {

        if (param->kind != NGX_HTTP_SOPHON_EVENTS_ARG_TYPE_LIST
            && param->kind != NGX_HTTP_SOPHON_EVENTS_ARG_STRING_LIST)
        {
            continue;
        }

        i = param->filter;

        if (p->items[i] == NULL) {
            continue;
        }

        if (ngx_http_sophon_events_array_literal(p->pool, p->items[i],
                       param->kind == NGX_HTTP_SOPHON_EVENTS_ARG_STRING_LIST,
                       &p->args->filter[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * A PostgreSQL array literal, {"a","b\"c"} or {1,4}, bound as text[] or
 * smallint[]: one parameter whatever the length of the list, so the
 * statement's text does not depend on it.
 */

static ngx_int_t
ngx_http_sophon_events_array_literal(ngx_pool_t *pool, ngx_array_t *items,
    ngx_uint_t quote, ngx_str_t *out)
{
    u_char     *d, *s, *end;
    size_t      len;
    ngx_str_t  *item;
    ngx_uint_t  i;

    item = items->elts;
    len = 2;

    for (i = 0; i < items->nelts; i++) {
        len += 2 * item[i].len + 3;
    }

    d = ngx_pnalloc(pool, len);
    if (d == NULL) {
        return NGX_ERROR;
    }

    out->data = d;
    *d++ = '{';

    for (i = 0; i < items->nelts; i++) {
        if (i) {
            *d++ = ',';
        }

        if (quote) {
            *d++ = '"';
        }

        for (s = item[i].data, end = s + item[i].len; s < end; s++) {
            if (*s == '"' || *s == '\\') {
                *d++ = '\\';
            }

            *d++ = *s;
        }

        if (quote) {
            *d++ = '"';
        }
    }

    *d++ = '}';
    out->len = d - out->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_sophon_events_fail(ngx_http_sophon_events_parse_t *p,
    const char *fmt, ...)
{
    u_char   *msg, *last;
    va_list   args;

    msg = ngx_pnalloc(p->pool, NGX_MAX_ERROR_STR);
    if (msg == NULL) {
        return NGX_ERROR;
    }

    va_start(args, fmt);
    last = ngx_vslprintf(msg, msg + NGX_MAX_ERROR_STR, fmt, args);
    va_end(args);

    p->error->data = msg;
    p->error->len = last - msg;

    return NGX_DECLINED;
}
