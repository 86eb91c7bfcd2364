/* Numbers and times for the decoder. Doubles: an exact fast path (at most 15
 * significant digits and a decimal exponent within +-22, where both the mantissa
 * and the power of ten are exact doubles, so one IEEE multiply/divide rounds
 * correctly); everything else goes to glibc's strtod_l in the "C" locale, which
 * rounds correctly, on a NUL-terminated copy of the token. */
#include "num.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NUM_MAX_LEN 4096 /* longer number tokens are refused (Python refuses 4300+ digit ints) */

static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static void c_locale_init(void) { c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

double dltc__strtod_c(const char *s, char **endp) {
  pthread_once(&c_locale_once, c_locale_init);
  if (c_locale)
    return strtod_l(s, endp, c_locale);
  return strtod(s, endp); /* newlocale failed: the process locale (normally "C") */
}

static inline int is_digit(char c) { return (unsigned char)(c - '0') < 10; }

int dltc__num_parse(const char *p, const char *end, const char **endp, int64_t *i, double *d) {
  const char *s = p;
  int neg = 0;
  if (p < end && *p == '-') {
    neg = 1;
    p++;
  }
  if (p >= end || !is_digit(*p))
    goto err;
  uint64_t m = 0;
  int ndig = 0;    /* significant digits seen */
  int dropped = 0; /* significant digits not accumulated in m */
  int64_t exp10 = 0;
  int is_int = 1;
  if (*p == '0') {
    p++;
    if (p < end && is_digit(*p))
      goto err; /* leading zero */
  } else {
    while (p < end && is_digit(*p)) {
      if (ndig < 19)
        m = m * 10 + (uint64_t)(*p - '0');
      else {
        dropped++;
        exp10++;
      }
      ndig++;
      p++;
    }
  }
  if (p < end && *p == '.') {
    is_int = 0;
    p++;
    if (p >= end || !is_digit(*p))
      goto err;
    while (p < end && is_digit(*p)) {
      if (ndig == 0 && *p == '0') {
        exp10--; /* leading zeros of 0.000x */
      } else {
        if (ndig < 19) {
          m = m * 10 + (uint64_t)(*p - '0');
          exp10--;
        } else
          dropped++;
        ndig++;
      }
      p++;
    }
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    is_int = 0;
    p++;
    int eneg = 0;
    if (p < end && (*p == '+' || *p == '-')) {
      eneg = *p == '-';
      p++;
    }
    if (p >= end || !is_digit(*p))
      goto err;
    int64_t e = 0;
    while (p < end && is_digit(*p)) {
      if (e < 1000000)
        e = e * 10 + (*p - '0');
      p++;
    }
    exp10 += eneg ? -e : e;
  }
  *endp = p;
  if ((size_t)(p - s) > NUM_MAX_LEN)
    return DLTC_NUM_TOOLONG;
  if (is_int && !dropped) {
    if (!neg && m <= (uint64_t)INT64_MAX) {
      *i = (int64_t)m;
      return DLTC_NUM_INT;
    }
    if (neg && m <= (uint64_t)INT64_MAX + 1) {
      *i = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
      return DLTC_NUM_INT;
    }
  }
  if (m == 0 && !dropped) {
    *d = neg ? -0.0 : 0.0;
    return DLTC_NUM_DOUBLE;
  }
  if (!dropped && ndig <= 15 && exp10 >= -22 && exp10 <= 22) {
    double v = (double)m;
    v = exp10 < 0 ? v / pow10_exact[-exp10] : v * pow10_exact[exp10];
    *d = neg ? -v : v;
    return DLTC_NUM_DOUBLE;
  }
  {
    char buf[NUM_MAX_LEN + 1];
    size_t n = (size_t)(p - s);
    memcpy(buf, s, n);
    buf[n] = '\0';
    *d = dltc__strtod_c(buf, NULL);
  }
  return DLTC_NUM_DOUBLE;
err:
  *endp = p;
  return DLTC_NUM_ERR;
}

/* ---- Python str() of numbers ----------------------------------------------------- */

size_t dltc__fmt_i64(int64_t v, char *buf) {
  char tmp[24];
  size_t n = 0;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  size_t k = 0;
  if (v < 0)
    buf[k++] = '-';
  while (n)
    buf[k++] = tmp[--n];
  buf[k] = '\0';
  return k;
}

/* repr(float): the shortest digits that round-trip, in fixed notation when the
 * decimal exponent is in [-4, 16), else d[.ddd]e+XX. */
size_t dltc__fmt_f64(double v, char *buf) {
  if (isnan(v))
    return (size_t)sprintf(buf, "nan");
  if (isinf(v))
    return (size_t)sprintf(buf, v < 0 ? "-inf" : "inf");
  if (v == 0)
    return (size_t)sprintf(buf, signbit(v) ? "-0.0" : "0.0");
  /* Shortest digits that round-trip, as Python's repr: for each length, the correctly
   * rounded candidate, else its neighbours one unit in the last place away (the
   * nearest decimal of that length need not be the one that reads back, e.g.
   * 2**-24 = 5.9604644775390625e-08 -> 5.960464477539063e-08). */
  int neg = signbit(v) != 0;
  double a = neg ? -v : v;
  char digits[24] = {0};
  int nd = 0, x = 0;
  for (int prec = 1; prec <= 17 && !nd; prec++) {
    char e[40];
    snprintf(e, sizeof e, "%.*e", prec - 1, a);
    uint64_t m = 0;
    const char *q = e;
    for (; *q && *q != 'e'; q++)
      if (is_digit(*q))
        m = m * 10 + (uint64_t)(*q - '0');
    int ex = (int)strtol(q + 1, NULL, 10);
    uint64_t lo = 1;
    for (int i = 1; i < prec; i++)
      lo *= 10; /* 10^(prec-1): smallest prec-digit mantissa */
    for (int c = 0; c < 3 && !nd; c++) {
      uint64_t cm = m;
      int cx = ex;
      if (c == 1) {
        cm = m + 1;
        if (cm == lo * 10) {
          cm = lo;
          cx++;
        }
      } else if (c == 2) {
        if (m == lo) {
          cm = lo * 10 - 1;
          cx--;
        } else
          cm = m - 1;
      }
      char t[48];
      snprintf(t, sizeof t, "%llue%d", (unsigned long long)cm, cx - (prec - 1));
      if (dltc__strtod_c(t, NULL) == a) {
        nd = snprintf(digits, sizeof digits, "%llu", (unsigned long long)cm);
        x = cx;
      }
    }
  }
  while (nd > 1 && digits[nd - 1] == '0')
    nd--;
  /* value = D1.D2.. * 10^x */
  size_t k = 0;
  if (neg)
    buf[k++] = '-';
  if (x >= -4 && x < 16) {
    if (x < 0) {
      buf[k++] = '0';
      buf[k++] = '.';
      for (int z = 0; z < -x - 1; z++)
        buf[k++] = '0';
      for (int j = 0; j < nd; j++)
        buf[k++] = digits[j];
    } else {
      for (int j = 0; j <= x; j++)
        buf[k++] = j < nd ? digits[j] : '0';
      buf[k++] = '.';
      if (nd > x + 1)
        for (int j = x + 1; j < nd; j++)
          buf[k++] = digits[j];
      else
        buf[k++] = '0';
    }
  } else {
    buf[k++] = digits[0];
    if (nd > 1) {
      buf[k++] = '.';
      for (int j = 1; j < nd; j++)
        buf[k++] = digits[j];
    }
    k += (size_t)sprintf(buf + k, "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
  }
  buf[k] = '\0';
  return k;
}

/* ---- ISO-8601 ------------------------------------------------------------------- */

int64_t dltc__days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static int digits_at(const char *s, size_t n, size_t at, int count, int *out) {
  if (at + (size_t)count > n)
    return -1;
  int v = 0;
  for (int k = 0; k < count; k++) {
    if (!is_digit(s[at + k]))
      return -1;
    v = v * 10 + (s[at + k] - '0');
  }
  *out = v;
  return 0;
}

int dltc__iso_parse(const char *s, size_t n, int64_t *us, int *has_time) {
  int Y, M = 1, D = 1, h = 0, mi = 0, sec = 0;
  int64_t frac = 0;
  size_t i;
  /* date: YYYY-MM-DD (extended) or YYYYMMDD (basic) */
  if (digits_at(s, n, 0, 4, &Y))
    return -1;
  int dext = n > 4 && (s[4] == '-' || (s[4] == '/' && n >= 10)); /* pendulum takes / too */
  char sep = n > 4 ? s[4] : '-';
  int64_t days;
  int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
  int wk, wd = 1, yd;
  size_t w0 = dext ? 5 : 4; /* where a week date's W would be */
  if (n == 4 || (n == 7 && dext)) {
    /* YYYY or YYYY-MM (dates only) */
    M = 1;
    if (n == 7 && (digits_at(s, n, 5, 2, &M) || M < 1 || M > 12))
      return -1;
    *has_time = 0;
    *us = dltc__days_from_civil(Y, (unsigned)M, 1) * 86400 * 1000000;
    return 0;
  } else if (n > w0 && s[w0] == 'W') {
    /* week date YYYY-Www[-D] / YYYYWww[D], with pendulum's unchecked arithmetic */
    if (digits_at(s, n, w0 + 1, 2, &wk) || wk > 53)
      return -1;
    i = w0 + 3;
    if (i < n && (dext ? s[i] == '-' : is_digit(s[i]))) {
      if (digits_at(s, n, dext ? i + 1 : i, 1, &wd) || wd > 7)
        return -1;
      i += dext ? 2 : 1;
    }
    int64_t jan1 = dltc__days_from_civil(Y, 1, 1);
    int dow1 = (int)(((jan1 + 3) % 7 + 7) % 7); /* Monday 0 */
    if (wk == 53 && !(dow1 == 3 || (leap && dow1 == 2)))
      return -1; /* only long years have a week 53 */
    int64_t jan4 = jan1 + 3;
    int64_t monday = jan4 - (((jan4 + 3) % 7 + 7) % 7);
    days = monday + (int64_t)(wk - 1) * 7 + (wd - 1);
  } else if ((sep == '-' && n >= 8 && digits_at(s, n, 5, 3, &yd) == 0 &&
              (n == 8 || !is_digit(s[8]))) ||
             (n == 7 && digits_at(s, n, 4, 3, &yd) == 0)) {
    /* ordinal date YYYY-DDD or YYYYDDD */
    if (yd < 1 || yd > 365 + leap)
      return -1;
    days = dltc__days_from_civil(Y, 1, 1) + yd - 1;
    i = n == 7 ? 7 : 8;
  } else {
    if (dext) {
      if (n < 10 || digits_at(s, n, 5, 2, &M) || s[7] != sep || digits_at(s, n, 8, 2, &D))
        return -1;
      i = 10;
    } else {
      if (digits_at(s, n, 4, 2, &M) || digits_at(s, n, 6, 2, &D))
        return -1;
      i = 8;
    }
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1])
      return -1;
    if (M == 2 && D == 29 && !leap)
      return -1;
    days = dltc__days_from_civil(Y, (unsigned)M, (unsigned)D);
  }
  int64_t tz = 0;
  *has_time = 0;
  if (i < n) {
    /* time: HH[:MM[:SS[.f]]] or HH[MM[SS[.f]]]; upper-case T or a space (dlt's
     * parser refuses lower-case t and z) */
    if (s[i] != 'T' && s[i] != ' ')
      return -1;
    if (sep == '/' && s[i] != ' ')
      return -1; /* pendulum: YYYY/MM/DD takes " HH:MM[:SS[.f]]" only, no zone */
    i++;
    if (digits_at(s, n, i, 2, &h))
      return -1;
    i += 2;
    int ext = i < n && s[i] == ':';
    if (dext && !ext && i < n && is_digit(s[i]))
      return -1; /* an extended date takes an extended time (as pendulum) */
    if (ext ? digits_at(s, n, i + 1, 2, &mi) == 0 : digits_at(s, n, i, 2, &mi) == 0) {
      i += ext ? 3 : 2;
      if (!dext && ext && i < n && s[i] == ':')
        return -1; /* pendulum: a basic date takes HH:MM but not HH:MM:SS */
      if (ext ? (i < n && s[i] == ':') : (i + 1 < n && is_digit(s[i]))) {
        if (digits_at(s, n, ext ? i + 1 : i, 2, &sec))
          return -1;
        i += ext ? 3 : 2;
        if (i < n && (s[i] == '.' || s[i] == ',')) {
          i++;
          int nd = 0;
          while (i < n && is_digit(s[i])) {
            if (nd < 6)
              frac = frac * 10 + (s[i] - '0');
            nd++;
            i++;
          }
          if (nd == 0)
            return -1;
          for (; nd < 6; nd++)
            frac *= 10;
        }
      }
    } else if (ext)
      return -1; /* "HH:" without minutes */
    if (h > 23 || mi > 59 || sec > 59)
      return -1;
    if (sep == '/' && (!ext || i < n))
      return -1;
    if (i < n) {
      if (s[i] == 'Z' && i + 1 == n) {
        i++;
      } else if (s[i] == '+' || s[i] == '-') {
        int sign = s[i] == '-' ? -1 : 1, th, tm = 0;
        if (digits_at(s, n, i + 1, 2, &th))
          return -1;
        i += 3;
        if (i < n && s[i] == ':')
          i++;
        if (i < n) {
          if (digits_at(s, n, i, 2, &tm))
            return -1;
          i += 2;
        }
        if (tm > 60 || th * 60 + tm > 24 * 60) /* pendulum's bounds */
          return -1;
        tz = (int64_t)sign * (th * 3600 + tm * 60);
      } else
        return -1;
    }
    if (i != n)
      return -1;
    *has_time = 1;
  }
  int64_t secs = days * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec - tz;
  *us = secs * 1000000 + frac;
  return 0;
}

/* ---- SHAKE128 (FIPS 202) and base64 ---------------------------------------------- */

static const uint64_t keccak_rc[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808AULL, 0x8000000080008000ULL,
    0x000000000000808BULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008AULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000AULL,
    0x000000008000808BULL, 0x800000000000008BULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800AULL, 0x800000008000000AULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL};

static const int keccak_rot[25] = {0,  1,  62, 28, 27, 36, 44, 6,  55, 20, 3,  10, 43,
                                   25, 39, 41, 45, 15, 21, 8,  18, 2,  61, 56, 14};

static inline uint64_t rol64(uint64_t x, int r) { return r ? (x << r) | (x >> (64 - r)) : x; }

/* Keccak-f[1600]; state index x + 5*y. */
static void keccak_f(uint64_t a[25]) {
  for (int round = 0; round < 24; round++) {
    uint64_t c[5], dd[5], b[25];
    for (int x = 0; x < 5; x++)
      c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
    for (int x = 0; x < 5; x++)
      dd[x] = c[(x + 4) % 5] ^ rol64(c[(x + 1) % 5], 1);
    for (int k = 0; k < 25; k++)
      a[k] ^= dd[k % 5];
    /* rho and pi: B[y, 2x+3y] = rot(A[x, y]) */
    for (int x = 0; x < 5; x++)
      for (int y = 0; y < 5; y++)
        b[y + 5 * ((2 * x + 3 * y) % 5)] = rol64(a[x + 5 * y], keccak_rot[x + 5 * y]);
    for (int x = 0; x < 5; x++)
      for (int y = 0; y < 5; y++)
        a[x + 5 * y] = b[x + 5 * y] ^ (~b[(x + 1) % 5 + 5 * y] & b[(x + 2) % 5 + 5 * y]);
    a[0] ^= keccak_rc[round];
  }
}

void dltc__shake128(const void *msg, size_t len, uint8_t *out, size_t outlen) {
  enum { RATE = 168 };
  uint64_t a[25];
  memset(a, 0, sizeof a);
  const uint8_t *m = msg;
  uint8_t block[RATE];
  for (;;) {
    size_t take = len < RATE ? len : RATE;
    int last = len < RATE;
    memset(block, 0, RATE);
    memcpy(block, m, take);
    if (last) {
      block[take] ^= 0x1F;
      block[RATE - 1] ^= 0x80;
    }
    for (int k = 0; k < RATE / 8; k++) {
      uint64_t w = 0;
      for (int j = 0; j < 8; j++)
        w |= (uint64_t)block[8 * k + j] << (8 * j);
      a[k] ^= w;
    }
    keccak_f(a);
    if (last)
      break;
    m += take;
    len -= take;
  }
  size_t done = 0;
  for (;;) {
    for (int k = 0; k < RATE && done < outlen; k++, done++)
      out[done] = (uint8_t)(a[k / 8] >> (8 * (k % 8)));
    if (done >= outlen)
      break;
    keccak_f(a);
  }
}

size_t dltc__base64_nopad(const uint8_t *in, size_t n, char *out) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t k = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[k++] = tbl[v >> 18];
    out[k++] = tbl[(v >> 12) & 63];
    out[k++] = tbl[(v >> 6) & 63];
    out[k++] = tbl[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[k++] = tbl[v >> 18];
    out[k++] = tbl[(v >> 12) & 63];
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[k++] = tbl[v >> 18];
    out[k++] = tbl[(v >> 12) & 63];
    out[k++] = tbl[(v >> 6) & 63];
  }
  return k;
}
