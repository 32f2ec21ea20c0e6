/*
 * Copyright (C) The ngx_http_sophon_events_module authors
 *
 * sophon-events-gen: write N realistic SophonFace recognition events as
 * JSON Lines (one compact event document per line) to stdout.
 *
 *     sophon-events-gen N [SEED]
 *
 * The output depends only on N and SEED (default 1): the generator uses its
 * own PRNG (splitmix64 seeding xoshiro256**), integer arithmetic for all the
 * random choices, and single correctly rounded IEEE operations (no libm
 * transcendental function, no a * b + c that a compiler could fuse) for the
 * few floating-point values, so the same N and SEED give the same bytes.
 *
 * The pools (8 devices, 6 groups, 40 rooms, 500 known identities) are fixed,
 * independent of SEED, so that data sets made with different seeds describe
 * the same box.  The events end at a fixed epoch, 2020-12-09 00:00 +08:00.
 *
 * Numbers are printed as Python's repr() prints them (the shortest text that
 * reads back as the same double), except that a tiny magnitude never uses
 * exponent notation: 1.2345e-06 is printed 0.0000012345.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <math.h>
#include <unistd.h>


typedef unsigned __int128  u128;


#define FEATURE_DIM        512
#define N_DEVICES          8
#define N_GROUPS           6
#define N_ROOMS            40
#define N_IDENTITIES       500
#define END_EPOCH          1607443200LL    /* 2020-12-09 00:00:00 +08:00 */
#define TZ_OFFSET          (8 * 3600)
#define TICKS              10000000LL      /* 100 ns ticks per second */
#define EVENTS_PER_DAY     2500
#define MAX_DAYS           366
#define POOL_SEED          0x50b40f4ce5ULL
#define OBUF_SIZE          (4 << 20)
#define EVENT_MAX          (64 << 10)      /* an event is ~10 KB */


/* PRNG: xoshiro256** seeded by splitmix64 */

typedef struct {
    uint64_t  s[4];
} rng_t;


static uint64_t
splitmix64(uint64_t *x)
{
    uint64_t  z;

    z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}


static void
rng_seed(rng_t *r, uint64_t seed)
{
    int  i;

    for (i = 0; i < 4; i++) {
        r->s[i] = splitmix64(&seed);
    }
}


static inline uint64_t
rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}


static inline uint64_t
rnext(rng_t *r)
{
    uint64_t  result, t;

    result = rotl(r->s[1] * 5, 7) * 9;
    t = r->s[1] << 17;
    r->s[2] ^= r->s[0];
    r->s[3] ^= r->s[1];
    r->s[1] ^= r->s[2];
    r->s[0] ^= r->s[3];
    r->s[2] ^= t;
    r->s[3] = rotl(r->s[3], 45);
    return result;
}


/* uniform in [0, n) (multiply-shift; the bias is far below 2^-32) */
static inline uint64_t
rbelow(rng_t *r, uint64_t n)
{
    return (uint64_t) (((u128) rnext(r) * n) >> 64);
}


/* uniform in [lo, hi] */
static inline int64_t
rrange(rng_t *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t) rbelow(r, (uint64_t) (hi - lo + 1));
}


/* true with probability num / den */
static inline int
chance(rng_t *r, uint64_t num, uint64_t den)
{
    return rbelow(r, den) < num;
}


/* approximately normal integer, mean 0, sd about 2^30 (Irwin-Hall, 4 terms) */
static inline int64_t
rgauss(rng_t *r)
{
    uint64_t  a, b;

    a = rnext(r);
    b = rnext(r);
    return (int64_t) (a >> 32) + (int64_t) (a & 0xffffffff)
           + (int64_t) (b >> 32) + (int64_t) (b & 0xffffffff)
           - 2 * (int64_t) 0xffffffff;
}


/* numbers: shortest round-trip text, never in exponent notation */

static const uint64_t  p10[20] = {
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL,
    10000000ULL, 100000000ULL, 1000000000ULL, 10000000000ULL,
    100000000000ULL, 1000000000000ULL, 10000000000000ULL,
    100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
    100000000000000000ULL, 1000000000000000000ULL,
    10000000000000000000ULL
};

static u128  p10w[39];      /* 10^0 .. 10^38 */
static int   p10bits[39];   /* bit length of 10^i */


static void
init_pow10(void)
{
    int   i, b;
    u128  v;

    v = 1;
    for (i = 0; i < 39; i++) {
        p10w[i] = v;
        for (b = 0; b < 128 && (v >> b) != 0; b++) { /* void */ }
        p10bits[i] = b;
        v *= 10;
    }
}


/* T / 10^j with constant divisors, so that the compiler multiplies */
static inline uint64_t
div_p10(uint64_t t, int j)
{
    switch (j) {
    case 0: return t;
    case 1: return t / 10ULL;
    case 2: return t / 100ULL;
    case 3: return t / 1000ULL;
    case 4: return t / 10000ULL;
    case 5: return t / 100000ULL;
    case 6: return t / 1000000ULL;
    case 7: return t / 10000000ULL;
    case 8: return t / 100000000ULL;
    case 9: return t / 1000000000ULL;
    case 10: return t / 10000000000ULL;
    case 11: return t / 100000000000ULL;
    case 12: return t / 1000000000000ULL;
    case 13: return t / 10000000000000ULL;
    case 14: return t / 100000000000000ULL;
    case 15: return t / 1000000000000000ULL;
    default: return t / 10000000000000000ULL;
    }
}


/*
 * Print the decimal number c / 10^p (c > 0) without exponent, without
 * trailing zeros, and with at least one digit after the point.
 */
static const char  lut[] =
    "0001020304050607080910111213141516171819202122232425262728293031323334"
    "3536373839404142434445464748495051525354555657585960616263646566676869"
    "707172737475767778798081828384858687888990919293949596979899";


/* the 8 digits of v < 10^8, ending just before s */
static inline char *
put8(char *s, uint32_t v)
{
    uint32_t  hi, lo, a, b;

    hi = v / 10000;
    lo = v - hi * 10000;
    a = hi / 100;
    b = lo / 100;
    s -= 8;
    memcpy(s, lut + 2 * a, 2);
    memcpy(s + 2, lut + 2 * (hi - 100 * a), 2);
    memcpy(s + 4, lut + 2 * b, 2);
    memcpy(s + 6, lut + 2 * (lo - 100 * b), 2);
    return s;
}


static char *
put_scaled(char *o, uint64_t c, int p)
{
    char               d[24], *e, *s;
    int                n, ip;
    uint32_t           c32, q32;
    uint64_t           q;

    /* an integer: 1170.0 comes as 117 / 10^-1 */
    while (p < 0) {
        c *= 10;
        p++;
    }

    /* drop the fraction's trailing zeros */
    while (p > 0 && c % 10 == 0) {
        c /= 10;
        p--;
    }

    /* the digits of c, right-aligned in d[], 8 at a time in 32 bits */
    e = d + sizeof(d);
    s = e;
    while (c >= 100000000) {
        q = c / 100000000;
        s = put8(s, (uint32_t) (c - q * 100000000));
        c = q;
    }
    c32 = (uint32_t) c;
    while (c32 >= 100) {
        q32 = c32 / 100;
        s -= 2;
        memcpy(s, lut + 2 * (c32 - 100 * q32), 2);
        c32 = q32;
    }
    if (c32 >= 10) {
        s -= 2;
        memcpy(s, lut + 2 * c32, 2);
    } else {
        *--s = (char) ('0' + c32);
    }
    n = (int) (e - s);

    ip = n - p;     /* digits before the decimal point */
    if (ip <= 0) {
        *o++ = '0';
        *o++ = '.';
        while (ip++ < 0) {
            *o++ = '0';
        }
        memcpy(o, s, n);
        return o + n;
    }

    memcpy(o, s, ip);
    o += ip;
    *o++ = '.';
    if (p == 0) {
        *o++ = '0';
        return o;
    }
    memcpy(o, s + ip, p);
    return o + p;
}


/* slow but simple: for values the fast path does not cover */
static char *
put_num_slow(char *o, double x)
{
    char  buf[64], dig[24], *p;
    int   k, nd, e, ip, i;

    for (k = 1; k <= 17; k++) {
        snprintf(buf, sizeof(buf), "%.*e", k - 1, x);
        if (strtod(buf, NULL) == x) {
            break;
        }
    }

    p = buf;
    if (*p == '-') {
        *o++ = *p++;
    }
    nd = 0;
    while (*p != 'e') {
        if (*p != '.') {
            dig[nd++] = *p;
        }
        p++;
    }
    e = atoi(p + 1);
    while (nd > 1 && dig[nd - 1] == '0') {
        nd--;
    }

    ip = e + 1;
    if (ip <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (i = ip; i < 0; i++) {
            *o++ = '0';
        }
        memcpy(o, dig, nd);
        return o + nd;
    }
    if (ip >= nd) {
        memcpy(o, dig, nd);
        o += nd;
        for (i = nd; i < ip; i++) {
            *o++ = '0';
        }
        *o++ = '.';
        *o++ = '0';
        return o;
    }
    memcpy(o, dig, ip);
    o += ip;
    *o++ = '.';
    memcpy(o, dig + ip, nd - ip);
    return o + nd - ip;
}


/*
 * Round T + R / 2^s (R < 2^s) to a multiple c of 10^j, half to even, set
 * *cp to c / 10^j, and tell whether c reads back as the double: it must
 * lie within half an ulp, |c * 2^s - (T * 2^s + R)| << shift <= 10^p, the
 * bound itself included only when the double's mantissa is even (a tie
 * reads back as the even one).  s <= 0 means R == 0 and no scaling.
 */
static inline int
round_ok(uint64_t t, u128 r, int s, int j, int shift, u128 lim, u128 pw,
    int even, uint64_t *cp)
{
    uint64_t  q, rem, h, c;
    u128      diff;
    int       up;

    if (j == 0) {
        q = t;
        up = (s > 0 && (r > ((u128) 1 << (s - 1))
                        || (r == ((u128) 1 << (s - 1)) && (q & 1))));
        c = q + (uint64_t) up;
        *cp = c;
    } else {
        q = div_p10(t, j);
        rem = t - q * p10[j];
        h = p10[j] / 2;
        up = (rem > h || (rem == h && (r > 0 || (q & 1))));
        *cp = q + (uint64_t) up;
        c = *cp * p10[j];
    }

    if (s > 0) {
        diff = up ? ((u128) (c - t) << s) - r : ((u128) (t - c) << s) + r;
    } else {
        diff = up ? c - t : t - c;
    }

    return diff <= lim + 1
           && ((diff << shift) < pw || (even && (diff << shift) == pw));
}


/*
 * The shortest decimal that reads back as x (as Python's repr() finds it),
 * in plain notation.  Exact integer arithmetic: x = m * 2^-s, X = m * 10^p
 * with p chosen so that T = floor(X / 2^s) has 17 digits; the k-digit
 * candidate is T rounded (half even, with the exact remainder) to k
 * digits, and it reads back as x when it lies within half an ulp of x.
 * Reading back succeeds for 17 digits, and when it fails for k digits it
 * fails for fewer, so try 16, 15, ... and keep the last that succeeds.
 */
static char *
put_num(char *o, double x)
{
    int       be, tz, s, b, e10, p, j, shift, mbits, t10, even;
    u128      X, R, lim, pw;
    uint64_t  bits, m, T, c, best;

    memcpy(&bits, &x, sizeof(bits));
    if (bits >> 63) {
        *o++ = '-';
        bits &= ~(1ULL << 63);
    }
    if (bits == 0) {
        memcpy(o, "0.0", 3);
        return o + 3;
    }

    be = (int) (bits >> 52);
    if (be == 0 || be - 1023 >= 53) {
        /* subnormal, or too large for the 17-digit window */
        memcpy(&x, &bits, sizeof(x));
        return put_num_slow(o, x);
    }

    m = (bits & ((1ULL << 52) - 1)) | (1ULL << 52);
    tz = __builtin_ctzll(m);
    m >>= tz;
    s = 1075 - be - tz;                 /* x = m * 2^-s */
    b = be - 1023;                      /* 2^b <= x < 2^(b+1) */
    mbits = 64 - __builtin_clzll(m);

    /* about (b + 1) * log10(2): 10^e10 <= x, or one too high */
    t10 = (b + 1) * 1233;
    e10 = (t10 >= 0) ? t10 >> 12 : -((-t10 + 4095) >> 12);

    for ( ;; ) {
        p = 16 - e10;
        if (p < 0 || p > 38 || mbits + p10bits[p] > 127 || s > 126) {
            memcpy(&x, &bits, sizeof(x));
            return put_num_slow(o, x);
        }
        X = (u128) m * p10w[p];
        if (s > 0) {
            T = (uint64_t) (X >> s);
            R = X & (((u128) 1 << s) - 1);
        } else {
            T = (uint64_t) (X << -s);
            R = 0;
        }
        if (T < p10[16]) {
            e10--;
            continue;
        }
        if (T >= p10[17]) {
            e10++;
            continue;
        }
        break;
    }

    /* half an ulp of the double is 10^p >> shift, in our units */
    shift = (s > 0) ? tz + 1 : s + tz + 1;
    pw = p10w[p];
    lim = pw >> shift;

    even = (tz > 0);
    if (!round_ok(T, R, s, 1, shift, lim, pw, even, &best)) {
        (void) round_ok(T, R, s, 0, shift, lim, pw, even, &best);
        return put_scaled(o, best, p);
    }
    for (j = 2; j <= 16; j++) {
        if (!round_ok(T, R, s, j, shift, lim, pw, even, &c)) {
            break;
        }
        best = c;
    }
    return put_scaled(o, best, p - (j - 1));
}


/* output buffer */

static char    obuf[OBUF_SIZE];
static size_t  olen;


static void
oflush(void)
{
    size_t   off;
    ssize_t  n;

    off = 0;
    while (off < olen) {
        n = write(STDOUT_FILENO, obuf + off, olen - off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            perror("sophon-events-gen: write");
            exit(1);
        }
        off += (size_t) n;
    }
    olen = 0;
}


static inline char *
put_raw(char *o, const char *s)
{
    size_t  n;

    n = strlen(s);
    memcpy(o, s, n);
    return o + n;
}


static char *
put_str(char *o, const char *s)
{
    static const char  hex[] = "0123456789abcdef";
    unsigned char      ch;

    *o++ = '"';
    for ( ; *s; s++) {
        ch = (unsigned char) *s;
        if (ch == '"' || ch == '\\') {
            *o++ = '\\';
            *o++ = (char) ch;
        } else if (ch == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else if (ch == '\t') {
            *o++ = '\\';
            *o++ = 't';
        } else if (ch == '\r') {
            *o++ = '\\';
            *o++ = 'r';
        } else if (ch < 0x20) {
            o = put_raw(o, "\\u00");
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        } else {
            *o++ = (char) ch;
        }
    }
    *o++ = '"';
    return o;
}


static char *
put_int(char *o, int64_t v)
{
    char      d[24];
    int       n;
    uint64_t  u;

    if (v < 0) {
        *o++ = '-';
        u = (uint64_t) 0 - (uint64_t) v;
    } else {
        u = (uint64_t) v;
    }
    n = 0;
    do {
        d[n++] = (char) ('0' + u % 10);
        u /= 10;
    } while (u != 0);
    while (n > 0) {
        *o++ = d[--n];
    }
    return o;
}


/* a float32 value, printed as Python prints float(numpy.float32(v)) */
static inline char *
put_f32(char *o, float v)
{
    return put_num(o, (double) v);
}


/* hundredths, as Python prints round(v, 2): 10.15, 90.0 */
static char *
put_cents(char *o, int64_t c)
{
    o = put_int(o, c / 100);
    *o++ = '.';
    c %= 100;
    *o++ = (char) ('0' + c / 10);
    if (c % 10) {
        *o++ = (char) ('0' + c % 10);
    }
    return o;
}


/* a time in 100 ns ticks as a float of seconds (1607062639.7013178) */
static double
ticks_to_double(int64_t t)
{
    return (double) (t / TICKS) + (double) (t % TICKS) / (double) TICKS;
}


static char *
put_ticks_str(char *o, int64_t t)
{
    *o++ = '"';
    o = put_num(o, ticks_to_double(t));
    *o++ = '"';
    return o;
}


/* the pools */

typedef struct {
    char         device_id[40];
    char         ep_id[48];
    char         ep_ip[16];
    const char  *ep_name;
    int          type;              /* 0 photo, 1 rtsp, 2 card */
    int          has_gate;          /* IR + depth camera */
    unsigned     weight;
    int64_t      frame;
    int          height, width;
} device_t;

typedef struct {
    char         id[32];
    const char  *name;
    int          person_type;
    const char  *permission_id;
    const char  *permission_name;
    unsigned     weight;
} group_t;

typedef struct {
    char         id[16];
    char         name[64];
    int          group;
    int          room_direct;
    char         room[8];
    char         card_id[16];
    char         json_name[160];    /* "name", escaped */
    char         json_info[640];    /* identity_info, JSON */
    int32_t      base[FEATURE_DIM];
} identity_t;


static const char  *ep_types[] = { "photo", "rtsp", "card" };

static device_t  devices[N_DEVICES] = {
    { "", "", "", "Main Gate 大门",      0, 1, 20, 0, 0, 0 },
    { "", "", "", "Lobby Camera",        1, 0, 18, 0, 1080, 1920 },
    { "", "", "", "Parking B1 停车场",   1, 0, 13, 0, 720, 1280 },
    { "", "", "", "Office 3F 门禁",      2, 1, 11, 0, 0, 0 },
    { "", "", "", "Loading Dock",        1, 0,  7, 0, 1080, 1920 },
    { "", "", "", "111",                 0, 0, 12, 0, 0, 0 },
    { "", "", "", "Rear Exit 后门",      2, 0,  8, 0, 0, 0 },
    { "", "", "", "canteen-cam",         0, 1, 11, 0, 0, 0 },
};

static group_t  groups[N_GROUPS] = {
    { "", "Employees 员工",  1, "1", "All doors 全部门禁", 160 },
    { "", "研发部",          1, "2", "Office hours",       110 },
    { "", "Visitors 访客",   2, "3", "Visitors 9-18",       90 },
    { "", "Blacklist",       3, "",  "",                    20 },
    { "", "VIP",             5, "1", "All doors 全部门禁",  35 },
    { "", "Residents 住户",  1, "4", "Residential",         85 },
};

static const char  *rooms[N_ROOMS];
static char         room_buf[N_ROOMS][8];

static identity_t  *identities;
static uint64_t     id_cum[N_IDENTITIES];
static uint64_t     id_total;

static const char  *cn_surnames[] = {
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙",
    "马", "朱", "胡", "郭", "何", "高", "林", "罗", "郑", "梁", "谢", "宋",
    "欧阳", "司马"
};

static const char  *cn_given[] = {
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳",
    "杰", "娟", "涛", "明", "超", "霞", "平", "刚", "秀英", "秀兰", "桂英",
    "建华", "晓明", "子涵", "浩然", "雨桐", "一鸣", "思远"
};

static const char  *latin_first[] = {
    "Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry",
    "Irene", "Jack", "Kate", "Liam", "Mia", "Noah", "Olivia", "Paul",
    "Quinn", "Rosa", "Sam", "Tina", "Victor", "Wendy", "Xavier", "Yuki",
    "Zoe", "José", "Chloé", "Hans", "Priya", "Ahmed", "Wei", "Mei"
};

static const char  *latin_last[] = {
    "Smith", "Johnson", "Brown", "Taylor", "Wilson", "Martin", "Lee",
    "Walker", "Young", "King", "McDonald", "MacLeod", "DiMaggio",
    "van der Berg", "de la Cruz", "Müller", "Nakamura", "Kim", "Nguyen",
    "Patel", "Schmidt", "Rossi", "Dubois", "Chen", "Wang", "Zhang"
};

/* names that exercise escaping and LIKE metacharacters */
static const char  *special_names[] = {
    "100% Chen",
    "under_score Wu",
    "Back\\slash Zhao",
    "Say \"Cheese\" Wang",
    "O'Neil Sun",
    "%_\\\"' Mix",
    "王_100%",
    "C:\\Users\\lin",
    "Lily \"Lil'\" O'Hara",
    "50%_OFF",
    "dan_o'brien\\",
    "A\\_B%C"
};

static const int  special_at[] = {
    2, 5, 9, 14, 20, 27, 35, 44, 54, 65, 77, 90
};

static const char  *departments[] = {
    "R&D", "Sales", "HR", "财务部", "Operations", "Security 保安", "IT"
};


static void
make_uuid(rng_t *r, char *out)
{
    static const char  hex[] = "0123456789abcdef";
    uint64_t           a, b;
    int                i, n;
    char               h[32];

    a = rnext(r);
    b = rnext(r);
    for (i = 0; i < 16; i++) {
        h[i] = hex[(a >> (4 * i)) & 15];
        h[16 + i] = hex[(b >> (4 * i)) & 15];
    }
    h[12] = '4';
    h[16] = "89ab"[b & 3];
    n = 0;
    for (i = 0; i < 32; i++) {
        if (i == 8 || i == 12 || i == 16 || i == 20) {
            out[n++] = '-';
        }
        out[n++] = h[i];
    }
    out[n] = '\0';
}


static void
make_hex(rng_t *r, char *out, int len)
{
    static const char  hex[] = "0123456789abcdef";
    int                i;

    for (i = 0; i < len; i++) {
        out[i] = hex[rbelow(r, 16)];
    }
    out[len] = '\0';
}


static void
make_name(rng_t *r, char *out, size_t size)
{
    const char  *f, *l;
    char        *p;
    int          style;

    if (chance(r, 1, 2)) {
        /* surname and a given name of one or two characters */
        f = cn_surnames[rbelow(r, 26)];
        if (chance(r, 1, 4)) {
            snprintf(out, size, "%s%s%s", f, cn_given[rbelow(r, 20)],
                     cn_given[rbelow(r, 20)]);
        } else {
            snprintf(out, size, "%s%s", f, cn_given[rbelow(r, 30)]);
        }
        return;
    }

    f = latin_first[rbelow(r, 32)];
    l = latin_last[rbelow(r, 26)];
    style = (int) rbelow(r, 10);
    if (style == 0) {
        snprintf(out, size, "%s", f);
    } else if (style == 1) {
        snprintf(out, size, "%s, %s", l, f);
    } else {
        snprintf(out, size, "%s %s", f, l);
    }

    /* mixed case: some firmware imports upper- or lower-case names */
    style = (int) rbelow(r, 10);
    for (p = out; *p; p++) {
        if ((unsigned char) *p >= 0x80) {
            return;     /* not for "José": keep it as written */
        }
    }
    for (p = out; *p; p++) {
        if (style == 0 && *p >= 'A' && *p <= 'Z') {
            *p = (char) (*p - 'A' + 'a');
        } else if (style == 1 && *p >= 'a' && *p <= 'z') {
            *p = (char) (*p - 'a' + 'A');
        }
    }
}


static void
make_pools(void)
{
    rng_t        r;
    int          i, j, g, si;
    uint64_t     w, gw, used[N_IDENTITIES];
    identity_t  *id;
    char         ext[256], *o;

    rng_seed(&r, POOL_SEED);

    for (i = 0; i < N_DEVICES; i++) {
        device_t  *d = &devices[i];
        char       mac[16];

        make_uuid(&r, d->device_id);
        make_hex(&r, mac, 12);
        snprintf(d->ep_ip, sizeof(d->ep_ip), "192.168.1.%d",
                 (int) (96 + 5 * i));
        snprintf(d->ep_id, sizeof(d->ep_id), "0x%s__%s", mac, d->ep_ip);
        d->frame = rrange(&r, 1000, 900000);
    }

    for (g = 0; g < N_GROUPS; g++) {
        make_hex(&r, groups[g].id, 24);
    }

    for (i = 0; i < N_ROOMS; i++) {
        snprintf(room_buf[i], sizeof(room_buf[i]), "%d%02d",
                 10 + i / 8, 1 + i % 8);
        rooms[i] = room_buf[i];
    }

    identities = calloc(N_IDENTITIES, sizeof(identity_t));
    if (identities == NULL) {
        perror("sophon-events-gen");
        exit(1);
    }

    memset(used, 0, sizeof(used));
    gw = 0;
    for (g = 0; g < N_GROUPS; g++) {
        gw += groups[g].weight;
    }

    si = 0;
    id_total = 0;
    for (i = 0; i < N_IDENTITIES; i++) {
        uint64_t  v;

        id = &identities[i];

        /* unique 7-digit numeric id; the seed document's own comes first */
        if (i == 0) {
            v = 1244354;
        } else {
            do {
                v = (uint64_t) rrange(&r, 1000000, 9999999);
                for (j = 0; j < i; j++) {
                    if (used[j] == v) {
                        break;
                    }
                }
            } while (j < i);
        }
        used[i] = v;
        snprintf(id->id, sizeof(id->id), "%llu", (unsigned long long) v);

        if (si < (int) (sizeof(special_at) / sizeof(special_at[0]))
            && special_at[si] == i)
        {
            snprintf(id->name, sizeof(id->name), "%s", special_names[si]);
            si++;
        } else {
            make_name(&r, id->name, sizeof(id->name));
        }

        w = rbelow(&r, gw);
        for (g = 0; g < N_GROUPS - 1; g++) {
            if (w < groups[g].weight) {
                break;
            }
            w -= groups[g].weight;
        }
        id->group = g;

        snprintf(id->room, sizeof(id->room), "%s", rooms[rbelow(&r, N_ROOMS)]);
        id->room_direct = chance(&r, 1, 10);
        snprintf(id->card_id, sizeof(id->card_id), "%010llu",
                 (unsigned long long) rrange(&r, 1000000, 4000000000LL));

        for (j = 0; j < FEATURE_DIM; j++) {
            id->base[j] = (int32_t) (rgauss(&r) >> 1);
        }

        /* the precomputed JSON pieces */
        o = put_str(id->json_name, id->name);
        *o = '\0';

        o = ext;
        *o++ = '{';
        if (chance(&r, 2, 3)) {
            o = put_raw(o, "\"department\":");
            o = put_str(o, departments[rbelow(&r, 7)]);
            *o++ = ',';
        }
        o = put_raw(o, "\"phone\":\"1");
        o = put_int(o, rrange(&r, 3000000000LL, 8999999999LL));
        *o++ = '"';
        if (!id->room_direct) {
            o = put_raw(o, ",\"room\":");
            o = put_str(o, id->room);
        }
        *o++ = '}';
        *o = '\0';

        o = id->json_info;
        o = put_raw(o, "{\"card_id\":");
        o = put_str(o, id->card_id);
        o = put_raw(o, ",\"create_time\":");
        o = put_int(o, END_EPOCH - rrange(&r, 400, 900) * 86400
                       + rrange(&r, 0, 86399));
        o = put_raw(o, ",\"ext_info\":");
        o = put_raw(o, ext);
        o = put_raw(o, ",\"group_id\":");
        o = put_str(o, groups[g].id);
        o = put_raw(o, ",\"id\":");
        o = put_str(o, id->id);
        o = put_raw(o, ",\"name\":");
        o = put_raw(o, id->json_name);
        o = put_raw(o, ",\"person_type\":");
        o = put_int(o, groups[g].person_type);
        if (id->room_direct) {
            o = put_raw(o, ",\"room\":");
            o = put_str(o, id->room);
        }
        *o++ = '}';
        *o = '\0';

        /* a few identities pass often, most now and then */
        id_total += 1000000 / (uint64_t) (i + 15);
        id_cum[i] = id_total;
    }
}


static identity_t *
pick_identity(rng_t *r)
{
    uint64_t  x;
    int       lo, hi, mid;

    x = rbelow(r, id_total);
    lo = 0;
    hi = N_IDENTITIES - 1;
    while (lo < hi) {
        mid = (lo + hi) / 2;
        if (id_cum[mid] > x) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return &identities[lo];
}


static device_t *
pick_device(rng_t *r)
{
    uint64_t  total, x;
    int       i;

    total = 0;
    for (i = 0; i < N_DEVICES; i++) {
        total += devices[i].weight;
    }
    x = rbelow(r, total);
    for (i = 0; i < N_DEVICES - 1; i++) {
        if (x < devices[i].weight) {
            break;
        }
        x -= devices[i].weight;
    }
    return &devices[i];
}


/* one event */

typedef struct {
    int64_t    ts;          /* ticks */
    int64_t    id_us;       /* microseconds */
    device_t  *dev;
    int64_t    track_id;
} last_t;


static char *
put_feature(char *o, rng_t *r, const identity_t *id)
{
    int64_t  g[FEATURE_DIM];
    u128     ss;
    double   norm;
    float    f;
    int      i;

    ss = 0;
    for (i = 0; i < FEATURE_DIM; i++) {
        if (id != NULL) {
            /* the same person's features stay close to each other */
            g[i] = id->base[i] + (rgauss(r) >> 2);
        } else {
            g[i] = rgauss(r);
        }
        if (g[i] == 0) {
            g[i] = 1;
        }
        ss += (u128) ((uint64_t) (g[i] < 0 ? -g[i] : g[i]))
              * (uint64_t) (g[i] < 0 ? -g[i] : g[i]);
    }
    norm = sqrt((double) ss);

    *o++ = '[';
    for (i = 0; i < FEATURE_DIM; i++) {
        if (i) {
            *o++ = ',';
        }
        f = (float) ((double) g[i] / norm);
        o = put_f32(o, f);
    }
    *o++ = ']';
    return o;
}


/* a float32 drawn from [lo, hi) in steps of 2^-32 (hi < 2^31) */
static float
rfloat(rng_t *r, int64_t lo, int64_t hi)
{
    return (float) ((double) rrange(r, lo << 32, (hi << 32) - 1)
                    / 4294967296.0);
}


static char *
put_event(char *o, rng_t *r, int64_t ts, last_t *last)
{
    device_t           *dev;
    identity_t         *id;
    const group_t      *grp;
    int64_t             id_us, id_ticks, pic, score, x1, y1, w, h;
    int                 same_frame, stranger, i, attrs;
    const char         *want;

    same_frame = (last->dev != NULL && ts == last->ts);
    dev = same_frame ? last->dev : pick_device(r);

    /* _id: the creation time, 10 to 80 ms after the frame, unique */
    id_us = (ts + rrange(r, 100000, 800000)) / 10 + 1;
    if (id_us <= last->id_us) {
        id_us = last->id_us + 1;
    }
    id_ticks = id_us * 10;
    pic = id_ticks - rrange(r, 1, (id_ticks - ts) / 2);

    if (dev->type == 1) {
        /* another face of the same frame keeps the frame_id */
        if (!same_frame) {
            dev->frame += rrange(r, 1, 400);
        }
        last->track_id += rrange(r, 1, 5);
    }

    stranger = chance(r, 1, 3);
    id = stranger ? NULL : pick_identity(r);
    grp = stranger ? NULL : &groups[id->group];

    *o++ = '{';
    o = put_raw(o, "\"_id\":\"");
    o = put_int(o, id_us / 1000000);
    *o++ = '.';
    {
        int64_t  frac = id_us % 1000000;
        int      k;

        for (k = 100000; k > 0; k /= 10) {
            *o++ = (char) ('0' + (frac / k) % 10);
        }
    }
    *o++ = '"';

    o = put_raw(o, ",\"common\":{\"card_id\":");
    if (dev->type == 2 && !stranger && chance(r, 3, 4)) {
        o = put_str(o, id->card_id);
    } else {
        o = put_raw(o, "\"\"");
    }

    o = put_raw(o, ",\"ep_info\":{\"device_id\":");
    o = put_str(o, dev->device_id);
    o = put_raw(o, ",\"ep_id\":");
    o = put_str(o, dev->ep_id);
    o = put_raw(o, ",\"ep_ip\":");
    o = put_str(o, dev->ep_ip);
    o = put_raw(o, ",\"ep_name\":");
    o = put_str(o, dev->ep_name);
    o = put_raw(o, ",\"ep_type\":");
    o = put_str(o, ep_types[dev->type]);
    o = put_raw(o, "},\"frame_id\":");
    o = put_int(o, dev->type == 1 ? dev->frame : 0);

    o = put_raw(o, ",\"group_id\":");
    o = put_str(o, stranger ? "" : grp->id);
    o = put_raw(o, ",\"group_name\":");
    o = put_str(o, stranger ? "" : grp->name);
    o = put_raw(o, ",\"identity_id\":");
    o = put_str(o, stranger ? "" : id->id);
    o = put_raw(o, ",\"identity_info\":");
    o = put_raw(o, stranger ? "{}" : id->json_info);
    o = put_raw(o, ",\"identity_name\":");
    o = put_raw(o, stranger ? "\"\"" : id->json_name);
    o = put_raw(o, ",\"is_send\":");
    *o++ = chance(r, 4, 5) ? '1' : '0';
    o = put_raw(o, ",\"permission_id\":");
    o = put_str(o, stranger ? "" : grp->permission_id);
    o = put_raw(o, ",\"permission_name\":");
    o = put_str(o, stranger ? "" : grp->permission_name);

    /* some firmware leaves person_type out for known people (means 1) */
    if (stranger) {
        o = put_raw(o, ",\"person_type\":4");
    } else if (!chance(r, 3, 100)) {
        o = put_raw(o, ",\"person_type\":");
        o = put_int(o, grp->person_type);
    }

    /* recognize_face_attr */
    attrs = chance(r, 3, 5);
    o = put_raw(o, ",\"recognize_face_attr\":{\"age\":");
    if (attrs) {
        *o++ = '"';
        o = put_int(o, rrange(r, 16, 70));
        *o++ = '"';
    } else {
        o = put_raw(o, "null");
    }

    w = rrange(r, 60, 280);
    h = w + w / 5 + rrange(r, -10, 10);
    x1 = rrange(r, 0, 1900 - w);
    y1 = rrange(r, 0, 1060 - h);
    {
        float  bx1, by1, bx2, by2;

        bx1 = rfloat(r, x1, x1 + 1);
        by1 = rfloat(r, y1, y1 + 1);
        bx2 = rfloat(r, x1 + w, x1 + w + 1);
        by2 = rfloat(r, y1 + h, y1 + h + 1);

        o = put_raw(o, ",\"box\":[");
        o = put_f32(o, bx1);
        *o++ = ',';
        o = put_f32(o, by1);
        *o++ = ',';
        o = put_f32(o, bx2);
        *o++ = ',';
        o = put_f32(o, by2);
        *o++ = ']';
    }

    o = put_raw(o, ",\"expression\":");
    if (attrs) {
        static const char  *ex[] = { "neutral", "happy", "surprise", "sad" };
        o = put_str(o, ex[rbelow(r, 4)]);
    } else {
        o = put_raw(o, "null");
    }

    o = put_raw(o, ",\"feature\":");
    o = put_feature(o, r, id);

    o = put_raw(o, ",\"gender\":");
    if (attrs) {
        o = put_raw(o, chance(r, 1, 2) ? "\"male\"" : "\"female\"");
    } else {
        o = put_raw(o, "null");
    }
    o = put_raw(o, ",\"glasses\":");
    if (attrs) {
        static const char  *gl[] = { "none", "none", "glasses", "sunglasses" };
        o = put_str(o, gl[rbelow(r, 4)]);
    } else {
        o = put_raw(o, "null");
    }
    o = put_raw(o, ",\"hat\":");
    if (attrs) {
        o = put_raw(o, chance(r, 1, 5) ? "\"hat\"" : "\"none\"");
    } else {
        o = put_raw(o, "null");
    }
    o = put_raw(o, ",\"mask\":");
    if (attrs) {
        o = put_raw(o, chance(r, 1, 4) ? "\"mask\"" : "\"none\"");
    } else {
        o = put_raw(o, "null");
    }

    o = put_raw(o, ",\"point\":[");
    if (chance(r, 7, 10)) {
        static const int  px[5] = { 30, 70, 50, 35, 65 };
        static const int  py[5] = { 40, 40, 60, 80, 80 };

        for (i = 0; i < 5; i++) {
            if (i) {
                *o++ = ',';
            }
            o = put_f32(o, rfloat(r, x1 + w * px[i] / 100 - 3,
                                  x1 + w * px[i] / 100 + 3));
            *o++ = ',';
            o = put_f32(o, rfloat(r, y1 + h * py[i] / 100 - 3,
                                  y1 + h * py[i] / 100 + 3));
        }
    }
    o = put_raw(o, "]}");

    o = put_raw(o, ",\"recognize_face_pic_id\":");
    o = put_ticks_str(o, pic);

    /* score: strangers low, known people mostly above the 82 threshold */
    if (stranger) {
        score = rrange(r, 500, 6000);
    } else if (chance(r, 1, 12)) {
        score = rrange(r, 6000, 8199);
    } else {
        score = rrange(r, 8200, 9900);
    }
    o = put_raw(o, ",\"score\":");
    o = put_cents(o, score);

    o = put_raw(o, ",\"spot_pic_id\":");
    if (chance(r, 9, 10)) {
        o = put_ticks_str(o, pic);
    } else {
        o = put_ticks_str(o, pic + rrange(r, 1, 999));
    }

    if (stranger || score < 8200) {
        want = "0";
    } else if (grp->person_type == 3) {
        want = "1002";
    } else {
        want = "1001";
    }
    o = put_raw(o, ",\"want_action\":");
    o = put_str(o, want);
    *o++ = '}';

    /* gate_data */
    o = put_raw(o, ",\"gate_data\":{");
    if (dev->has_gate && chance(r, 4, 5)) {
        o = put_raw(o, "\"depth_image_id\":");
        o = put_ticks_str(o, pic + rrange(r, 1000, 9999));
        o = put_raw(o, ",\"ir_image_id\":");
        o = put_ticks_str(o, pic + rrange(r, 10000, 19999));
    }
    *o++ = '}';

    /* grab_data */
    o = put_raw(o, ",\"grab_data\":{");
    if (chance(r, 1, 2)) {
        o = put_raw(o, "\"grap_fiqa_info\":{\"age\":");
        o = put_int(o, rrange(r, 16, 70));
        o = put_raw(o, ",\"sex\":");
        o = put_int(o, rrange(r, 0, 1));
        *o++ = '}';
    }
    *o++ = '}';

    o = put_raw(o, ",\"timestamp\":");
    o = put_num(o, ticks_to_double(ts));

    /* video_data: tracks from the RTSP cameras */
    o = put_raw(o, ",\"video_data\":{");
    if (dev->type == 1) {
        o = put_raw(o, "\"in_timestamp\":");
        o = put_num(o, ticks_to_double(ts - rrange(r, 2000000, 30000000)));
        o = put_raw(o, ",\"out_timestamp\":");
        o = put_num(o, ticks_to_double(ts + rrange(r, 1000000, 20000000)));
        o = put_raw(o, ",\"pose_score\":");
        o = put_f32(o, rfloat(r, 0, 1));
        o = put_raw(o, ",\"track_id\":");
        o = put_int(o, last->track_id);
        o = put_raw(o, ",\"video_shape\":[");
        o = put_int(o, dev->height);
        *o++ = ',';
        o = put_int(o, dev->width);
        o = put_raw(o, ",3]");
    }
    *o++ = '}';

    *o++ = '}';
    *o++ = '\n';

    last->ts = ts;
    last->id_us = id_us;
    last->dev = dev;
    return o;
}


/* the timeline: hour bins over the period, busier in daytime */

static const unsigned  hour_weight[24] = {
    /* local time 00 .. 23 */
    2, 1, 1, 1, 1, 2, 5, 18, 40, 30, 18, 16,
    22, 20, 15, 14, 16, 24, 34, 20, 12, 8, 5, 3
};


static int
cmp_i64(const void *a, const void *b)
{
    int64_t  x = *(const int64_t *) a, y = *(const int64_t *) b;

    return (x > y) - (x < y);
}


static int
parse_u64(const char *s, uint64_t *v)
{
    uint64_t  x;

    if (*s == '\0') {
        return -1;
    }
    x = 0;
    for ( ; *s; s++) {
        if (*s < '0' || *s > '9') {
            return -1;
        }
        if (x > (UINT64_MAX - (uint64_t) (*s - '0')) / 10) {
            return -1;
        }
        x = x * 10 + (uint64_t) (*s - '0');
    }
    *v = x;
    return 0;
}


static void
usage(void)
{
    fputs("usage: sophon-events-gen N [SEED]\n"
          "  write N realistic SophonFace events as JSON Lines to stdout;\n"
          "  the same N and SEED (default 1) give the same bytes\n", stderr);
    exit(2);
}


#ifdef SELFTEST

/*
 * Check put_num() against the slow path:
 *   cc -O2 -DSELFTEST -o /tmp/t util/sophon-events-gen.c -lm && /tmp/t
 */
int
main(void)
{
    rng_t     r;
    long      i, bad;
    double    x;
    float     f;
    char      a[64], b[64], *e;
    uint64_t  bits;

    init_pow10();
    rng_seed(&r, 42);
    bad = 0;
    for (i = 0; i < 6000000; i++) {
        switch (i % 6) {
        case 0:     /* feature-like float32 */
            f = (float) ((double) rgauss(&r) / 2.7e10);
            x = f;
            break;
        case 1:     /* tiny float32 */
            bits = 0x2e000000u + (uint32_t) rbelow(&r, 0x0f000000u);
            memcpy(&f, &bits, 4);
            x = f;
            break;
        case 2:     /* timestamps */
            x = ticks_to_double(END_EPOCH * TICKS
                                - (int64_t) rbelow(&r, 400LL * 86400 * TICKS));
            break;
        case 3:     /* any double from 1e-8 to 1e15 */
            bits = 0x3e40000000000000ULL
                   + rbelow(&r, 0x4300000000000000ULL - 0x3e40000000000000ULL);
            memcpy(&x, &bits, 8);
            break;
        case 4:     /* box-like float32 */
            x = rfloat(&r, 0, 2000);
            break;
        default:    /* short decimals and integers, up to 2^53 */
            x = (double) rrange(&r, 1, 1LL << rrange(&r, 1, 53))
                / (double) p10[rrange(&r, 0, 19)];
            break;
        }
        if (i % 2) {
            x = -x;
        }
        e = put_num(a, x);
        *e = '\0';
        e = put_num_slow(b, x);
        *e = '\0';
        if (strcmp(a, b) != 0 || strtod(a, NULL) != x) {
            if (bad++ < 20) {
                printf("%.17g: fast %s slow %s\n", x, a, b);
            }
        }
    }
    printf("%ld mismatches\n", bad);
    return bad != 0;
}

#else

int
main(int argc, char **argv)
{
    rng_t      r;
    uint64_t   n, seed, done, days, nbins, h, cnt, cap, k, lo_n, hi_n;
    uint64_t  *cum, total;
    int64_t   *off, start, base;
    last_t     last;
    char      *o;

    if (argc < 2 || argc > 3 || parse_u64(argv[1], &n) != 0) {
        usage();
    }
    seed = 1;
    if (argc == 3 && parse_u64(argv[2], &seed) != 0) {
        usage();
    }

    init_pow10();
    make_pools();
    rng_seed(&r, seed);

    days = (n + EVENTS_PER_DAY - 1) / EVENTS_PER_DAY;
    if (days < 1) {
        days = 1;
    }
    if (days > MAX_DAYS) {
        days = MAX_DAYS;
    }
    nbins = days * 24;
    start = END_EPOCH - (int64_t) days * 86400;

    cum = malloc(nbins * sizeof(uint64_t));
    if (cum == NULL) {
        perror("sophon-events-gen");
        return 1;
    }
    total = 0;
    for (h = 0; h < nbins; h++) {
        /* local weekday: END_EPOCH starts a Wednesday (3) */
        int64_t   day = (int64_t) (h / 24) - (int64_t) days;
        int       wday = (int) (((3 + day) % 7 + 7) % 7);
        uint64_t  w = hour_weight[(h + (uint64_t) (start + TZ_OFFSET) / 3600)
                                  % 24];

        w *= (wday == 0 || wday == 6) ? 40 : 100;
        w *= (uint64_t) rrange(&r, 70, 130);
        total += w;
        cum[h] = total;
    }

    cap = 0;
    off = NULL;
    memset(&last, 0, sizeof(last));
    last.track_id = rrange(&r, 1000, 50000);
    done = 0;
    olen = 0;

    for (h = 0; h < nbins; h++) {
        /* events in this hour: the exact share of n */
        lo_n = h ? (uint64_t) ((u128) n * cum[h - 1] / total) : 0;
        hi_n = (uint64_t) ((u128) n * cum[h] / total);
        cnt = hi_n - lo_n;
        if (cnt == 0) {
            continue;
        }
        if (cnt > cap) {
            cap = cnt;
            free(off);
            off = malloc(cap * sizeof(int64_t));
            if (off == NULL) {
                perror("sophon-events-gen");
                return 1;
            }
        }
        for (k = 0; k < cnt; k++) {
            off[k] = (int64_t) rbelow(&r, 3600 * TICKS);
        }
        qsort(off, cnt, sizeof(int64_t), cmp_i64);

        base = (start + (int64_t) h * 3600) * TICKS;
        for (k = 0; k < cnt; k++) {
            /* about 2% of the faces share a frame with the previous one */
            if (k > 0 && chance(&r, 1, 50)) {
                off[k] = off[k - 1];
            }
            if (olen > OBUF_SIZE - EVENT_MAX) {
                oflush();
            }
            o = put_event(obuf + olen, &r, base + off[k], &last);
            olen = (size_t) (o - obuf);
            done++;
        }
    }
    oflush();

    free(off);
    free(cum);
    free(identities);
    return done == n ? 0 : 1;
}

#endif
