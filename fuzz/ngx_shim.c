
/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * The few nginx core functions that the module's pure parts (args, sql)
 * call, written again for the fuzzer: nginx-dev ships headers, not the core
 * sources.  Simple and strict rather than fast: every allocation is its own
 * malloc() so that AddressSanitizer sees every overflow.
 */


#include <ngx_config.h>
#include <ngx_core.h>


typedef struct ngx_shim_block_s  ngx_shim_block_t;

struct ngx_shim_block_s {
    ngx_shim_block_t  *next;
};


void *
ngx_palloc(ngx_pool_t *pool, size_t size)
{
    ngx_shim_block_t  *b;

    b = malloc(sizeof(ngx_shim_block_t) + size);
    if (b == NULL) {
        return NULL;
    }

    /* the pool's "large" list head keeps every block, for ngx_shim_free */
    b->next = (ngx_shim_block_t *) pool->large;
    pool->large = (ngx_pool_large_t *) b;

    return b + 1;
}


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    return ngx_palloc(pool, size);
}


void *
ngx_pcalloc(ngx_pool_t *pool, size_t size)
{
    void  *p;

    p = ngx_palloc(pool, size);
    if (p) {
        memset(p, 0, size);
    }

    return p;
}


void
ngx_shim_free(ngx_pool_t *pool)
{
    ngx_shim_block_t  *b, *next;

    for (b = (ngx_shim_block_t *) pool->large; b; b = next) {
        next = b->next;
        free(b);
    }

    pool->large = NULL;
}


ngx_array_t *
ngx_array_create(ngx_pool_t *p, ngx_uint_t n, size_t size)
{
    ngx_array_t  *a;

    a = ngx_palloc(p, sizeof(ngx_array_t));
    if (a == NULL) {
        return NULL;
    }

    if (ngx_array_init(a, p, n, size) != NGX_OK) {
        return NULL;
    }

    return a;
}


void *
ngx_array_push(ngx_array_t *a)
{
    void  *elts;

    if (a->nelts == a->nalloc) {
        elts = ngx_palloc(a->pool, 2 * a->nalloc * a->size);
        if (elts == NULL) {
            return NULL;
        }

        memcpy(elts, a->elts, a->nelts * a->size);
        a->elts = elts;
        a->nalloc *= 2;
    }

    return (u_char *) a->elts + a->size * a->nelts++;
}


ngx_int_t
ngx_hextoi(u_char *line, size_t n)
{
    u_char     c, ch;
    ngx_int_t  value;

    if (n == 0) {
        return NGX_ERROR;
    }

    for (value = 0; n--; line++) {
        ch = *line;

        if (ch >= '0' && ch <= '9') {
            value = value * 16 + (ch - '0');
            continue;
        }

        c = (u_char) (ch | 0x20);

        if (c >= 'a' && c <= 'f') {
            value = value * 16 + (c - 'a' + 10);
            continue;
        }

        return NGX_ERROR;
    }

    return value;
}


u_char *
ngx_cpystrn(u_char *dst, u_char *src, size_t n)
{
    if (n == 0) {
        return dst;
    }

    while (--n) {
        *dst = *src;

        if (*dst == '\0') {
            return dst;
        }

        dst++;
        src++;
    }

    *dst = '\0';

    return dst;
}


/*
 * the formats the module uses: %V %s %c %Z %ui %uz %L %M %d, %0Nxi and
 * %0NuxL
 */

u_char *
ngx_vslprintf(u_char *buf, u_char *last, const char *fmt, va_list args)
{
    int         n;
    char        spec[32], *s;
    size_t      width, len;
    ngx_str_t  *v;
    ngx_uint_t  zero, hex;

    while (*fmt && buf < last) {

        if (*fmt != '%') {
            *buf++ = *fmt++;
            continue;
        }

        fmt++;
        zero = (*fmt == '0');
        width = 0;
        hex = 0;

        while (*fmt >= '0' && *fmt <= '9') {
            width = width * 10 + (*fmt++ - '0');
        }

        if (*fmt == 'u') {
            fmt++;
        }

        if (*fmt == 'x') {
            hex = 1;
            fmt++;
        }

        len = last - buf;

        switch (*fmt++) {

        case 'V':
            v = va_arg(args, ngx_str_t *);
            len = ngx_min(len, v->len);
            buf = ngx_cpymem(buf, v->data, len);
            continue;

        case 's':
            s = va_arg(args, char *);
            len = ngx_min(len, strlen(s));
            buf = ngx_cpymem(buf, s, len);
            continue;

        case 'c':
            *buf++ = (u_char) va_arg(args, int);
            continue;

        case 'Z':
            *buf++ = '\0';
            continue;

        case 'z':
            n = snprintf(spec, sizeof(spec), "%zu", va_arg(args, size_t));
            break;

        case 'L':
            if (hex) {
                n = snprintf(spec, sizeof(spec), zero ? "%0*llx" : "%*llx",
                             (int) width,
                             (unsigned long long) va_arg(args, int64_t));
                break;
            }

            n = snprintf(spec, sizeof(spec), "%lld",
                         (long long) va_arg(args, int64_t));
            break;

        case 'M':
            n = snprintf(spec, sizeof(spec), "%lu",
                         (unsigned long) va_arg(args, ngx_msec_t));
            break;

        case 'd':
            n = snprintf(spec, sizeof(spec), "%d", va_arg(args, int));
            break;

        default: /* 'i' */
            n = snprintf(spec, sizeof(spec), hex ? (zero ? "%0*lx" : "%*lx")
                                                 : (zero ? "%0*lu" : "%*lu"),
                         (int) width, (unsigned long) va_arg(args, ngx_uint_t));
            break;
        }

        len = ngx_min(len, (size_t) n);
        buf = ngx_cpymem(buf, spec, len);
    }

    return buf;
}


u_char *
ngx_slprintf(u_char *buf, u_char *last, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    va_start(args, fmt);
    p = ngx_vslprintf(buf, last, fmt, args);
    va_end(args);

    return p;
}


u_char * ngx_cdecl
ngx_sprintf(u_char *buf, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    va_start(args, fmt);
    p = ngx_vslprintf(buf, (void *) -1, fmt, args);
    va_end(args);

    return p;
}


u_char *
ngx_hex_dump(u_char *dst, u_char *src, size_t len)
{
    static u_char  hex[] = "0123456789abcdef";

    while (len--) {
        *dst++ = hex[*src >> 4];
        *dst++ = hex[*src++ & 0xf];
    }

    return dst;
}
