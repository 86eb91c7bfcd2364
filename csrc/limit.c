/* The engine's per-host limits: AIMD window, token bucket, jittered backoff,
 * and Retry-After / HTTP-date parsing. No I/O, no clocks of its own: every
 * function takes the time it needs, which keeps it testable and fuzzable. */
#include "limit.h"

#include <math.h>
#include <string.h>

/* ---- window ------------------------------------------------------------------- */

static double clampd(double v, double lo, double hi) { return v < lo ? lo : (v > hi ? hi : v); }

void dltc_window_init(struct dltc_window *w, int initial, int max) {
  if (max < 1)
    max = 1;
  w->min = 1.0;
  w->max = (double)max;
  w->cwnd = clampd((double)initial, w->min, w->max);
  w->wmax = 0.0;
  w->slow_start = 1;
  w->epoch = 0;
}

int dltc_window_limit(const struct dltc_window *w) {
  int lim = (int)floor(w->cwnd);
  return lim < 1 ? 1 : lim;
}

void dltc_window_on_success(struct dltc_window *w) {
  double c = w->cwnd;
  if (w->slow_start)
    c += 1.0;
  else if (w->wmax > 0 && c >= w->wmax && c < w->wmax + 1.0)
    c += DLTC_WINDOW_PROBE / c; /* near the known limit: probe rarely */
  else
    c += 1.0 / c;
  w->cwnd = clampd(c, w->min, w->max);
}

int dltc_window_on_overload(struct dltc_window *w, uint64_t started_epoch, int started_inflight) {
  if (started_epoch < w->epoch)
    return 0; /* a reply from the episode we already shrank for */
  double accepted = (double)(started_inflight - 1);
  double half = w->cwnd * DLTC_WINDOW_BETA;
  double c = accepted > half ? accepted : half;
  if (c >= w->cwnd)
    c = w->cwnd - 1.0;
  w->cwnd = clampd(floor(c), w->min, w->max);
  w->wmax = w->cwnd;
  w->slow_start = 0;
  w->epoch++;
  return 1;
}

void dltc_window_set_max(struct dltc_window *w, int max) {
  if (max < 1)
    max = 1;
  w->max = (double)max;
  w->cwnd = clampd(w->cwnd, w->min, w->max);
  if (w->wmax > w->max)
    w->wmax = w->max;
}

/* ---- token bucket ------------------------------------------------------------- */

void dltc_bucket_init(struct dltc_bucket *b, double rate, double burst, double now) {
  b->rate = rate > 0 && isfinite(rate) ? rate : 0.0;
  b->burst = burst >= 1.0 && isfinite(burst) ? burst : 1.0;
  b->tokens = b->burst;
  b->last = now;
}

double dltc_bucket_take(struct dltc_bucket *b, double now) {
  if (b->rate <= 0)
    return 0.0;
  if (now > b->last) {
    b->tokens = fmin(b->burst, b->tokens + (now - b->last) * b->rate);
    b->last = now;
  }
  if (b->tokens >= 1.0) {
    b->tokens -= 1.0;
    return 0.0;
  }
  double wait = (1.0 - b->tokens) / b->rate;
  return wait > 1e-6 ? wait : 1e-6;
}

void dltc_bucket_set_rate(struct dltc_bucket *b, double rate, double burst, double now) {
  if (b->rate > 0 && now > b->last) /* tokens earned at the old rate are kept */
    b->tokens = fmin(b->burst, b->tokens + (now - b->last) * b->rate);
  if (now > b->last)
    b->last = now;
  b->rate = rate > 0 && isfinite(rate) ? rate : 0.0;
  b->burst = burst >= 1.0 && isfinite(burst) ? burst : 1.0;
  if (b->tokens > b->burst)
    b->tokens = b->burst;
}

/* ---- backoff ------------------------------------------------------------------ */

uint64_t dltc_rand_next(uint64_t *state) {
  uint64_t x = *state ? *state : 0x9E3779B97F4A7C15ull;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1Dull;
}

double dltc_rand_unit(uint64_t *state) { return (double)(dltc_rand_next(state) >> 11) * 0x1.0p-53; }

double dltc_backoff_delay(int retry, double base, double cap, double floor_s, uint64_t *rng) {
  if (retry < 1)
    retry = 1;
  if (retry > 62)
    retry = 62;
  if (!(base >= 0) || !isfinite(base))
    base = 0;
  if (!(cap >= 0) || !isfinite(cap))
    cap = 0;
  if (!(floor_s >= 0) || !isfinite(floor_s))
    floor_s = 0;
  double top = ldexp(base, retry - 1);
  if (!(top <= cap))
    top = cap;
  double d = dltc_rand_unit(rng) * top;
  return d < floor_s ? floor_s : d;
}

/* ---- Retry-After / HTTP-date ---------------------------------------------------- */

static const char *const wkday[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const weekday_l[7] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                         "Friday", "Saturday", "Sunday"};
static const char *const month_name[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* A cursor over a bounded, not necessarily NUL-terminated string. */
struct cur {
  const char *p, *end;
};

static int lit(struct cur *c, const char *s) {
  size_t n = strlen(s);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0)
    return 0;
  c->p += n;
  return 1;
}

/* Exactly `ndig` digits into *out. */
static int digits(struct cur *c, int ndig, int *out) {
  if (c->end - c->p < ndig)
    return 0;
  int v = 0;
  for (int i = 0; i < ndig; i++) {
    char ch = c->p[i];
    if (ch < '0' || ch > '9')
      return 0;
    v = v * 10 + (ch - '0');
  }
  c->p += ndig;
  *out = v;
  return 1;
}

static int month(struct cur *c, int *out) {
  for (int i = 0; i < 12; i++)
    if (lit(c, month_name[i])) {
      *out = i + 1;
      return 1;
    }
  return 0;
}

static int hms(struct cur *c, int *h, int *m, int *s) {
  return digits(c, 2, h) && lit(c, ":") && digits(c, 2, m) && lit(c, ":") && digits(c, 2, s) &&
         *h <= 23 && *m <= 59 && *s <= 60;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (civil-from-days inverse). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m) {
  static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
    return 29;
  return dm[m - 1];
}

int dltc_http_date_parse(const char *s, size_t n, int64_t *out_unix) {
  struct cur c = {s, s + n};
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0, ok = 0;
  int wd = -1;
  for (int i = 0; i < 7 && wd < 0; i++) {
    struct cur t = c;
    if (lit(&t, weekday_l[i]) && lit(&t, ", ")) { /* RFC 850 */
      c = t;
      wd = i;
      int yy = 0;
      ok = digits(&c, 2, &d) && lit(&c, "-") && month(&c, &mo) && lit(&c, "-") &&
           digits(&c, 2, &yy) && lit(&c, " ") && hms(&c, &h, &mi, &se) && lit(&c, " GMT");
      y = yy < 70 ? 2000 + yy : 1900 + yy;
    }
  }
  for (int i = 0; i < 7 && wd < 0; i++) {
    struct cur t = c;
    if (!lit(&t, wkday[i]))
      continue;
    wd = i;
    if (lit(&t, ", ")) { /* IMF-fixdate */
      c = t;
      ok = digits(&c, 2, &d) && lit(&c, " ") && month(&c, &mo) && lit(&c, " ") &&
           digits(&c, 4, &y) && lit(&c, " ") && hms(&c, &h, &mi, &se) && lit(&c, " GMT");
    } else if (lit(&t, " ")) { /* asctime: "Sun Nov  6 08:49:37 1994" */
      c = t;
      ok = month(&c, &mo) && lit(&c, " ");
      if (ok) {
        if (c.p < c.end && *c.p == ' ') {
          c.p++;
          ok = digits(&c, 1, &d);
        } else {
          ok = digits(&c, 2, &d);
        }
      }
      ok = ok && lit(&c, " ") && hms(&c, &h, &mi, &se) && lit(&c, " ") && digits(&c, 4, &y);
    }
  }
  if (!ok || c.p != c.end || y < 1970 || d < 1 || d > days_in_month(y, mo))
    return DLTC_EPARSE;
  int64_t days = days_from_civil(y, mo, d);
  /* 1970-01-01 was a Thursday (index 3); a wrong weekday is a malformed date. */
  int64_t real_wd = ((days % 7) + 7 + 3) % 7;
  if (real_wd != wd)
    return DLTC_EPARSE;
  *out_unix = days * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + se;
  return 0;
}

static int is_ows(char ch) { return ch == ' ' || ch == '\t'; }

int dltc_retry_after_parse(const char *s, size_t n, int64_t now_unix, double *out,
                           struct dltc_error *err) {
  if (!s)
    return dltc_error_set(err, DLTC_EPARSE, "Retry-After: missing value");
  while (n && is_ows(*s)) {
    s++;
    n--;
  }
  while (n && is_ows(s[n - 1]))
    n--;
  if (n == 0)
    return dltc_error_set(err, DLTC_EPARSE, "Retry-After: empty value");
  if (s[0] >= '0' && s[0] <= '9') {
    double v = 0;
    for (size_t i = 0; i < n; i++) {
      if (s[i] < '0' || s[i] > '9')
        return dltc_error_set(err, DLTC_EPARSE, "Retry-After: not a number of seconds");
      if (v < DLTC_RETRY_AFTER_MAX) /* stop growing: no overflow however long */
        v = v * 10 + (s[i] - '0');
    }
    *out = v > DLTC_RETRY_AFTER_MAX ? DLTC_RETRY_AFTER_MAX : v;
    return 0;
  }
  int64_t when;
  if (dltc_http_date_parse(s, n, &when) != 0)
    return dltc_error_set(err, DLTC_EPARSE, "Retry-After: neither seconds nor an HTTP-date");
  double d = (double)(when - now_unix);
  *out = d < 0 ? 0 : (d > DLTC_RETRY_AFTER_MAX ? DLTC_RETRY_AFTER_MAX : d);
  return 0;
}
