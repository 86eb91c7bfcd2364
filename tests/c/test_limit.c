/* Tests of limit.c: the AIMD window, the token bucket, backoff bounds and
 * Retry-After parsing (seconds, HTTP dates in all three formats, 0, garbage,
 * overflow), plus the ETag and Link parsers of http.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "limit.h"

static int failures;
#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                     \
      failures++;                                                                                  \
    }                                                                                              \
  } while (0)

static int ra(const char *s, int64_t now, double *out) {
  return dltc_retry_after_parse(s, strlen(s), now, out, NULL);
}

static void test_window(void) {
  struct dltc_window w;
  dltc_window_init(&w, 8, 256);
  CHECK(dltc_window_limit(&w) == 8);
  /* slow start: +1 per success */
  for (int i = 0; i < 8; i++)
    dltc_window_on_success(&w);
  CHECK(dltc_window_limit(&w) == 16);
  /* pushback with 9 in flight (8 accepted): window drops to 8, not to half */
  uint64_t ep = w.epoch;
  CHECK(dltc_window_on_overload(&w, ep, 9) == 1);
  CHECK(dltc_window_limit(&w) == 8);
  CHECK(!w.slow_start && w.wmax == 8.0);
  /* more 429s from the same episode do not shrink again */
  CHECK(dltc_window_on_overload(&w, ep, 9) == 0);
  CHECK(dltc_window_limit(&w) == 8);
  /* near wmax growth is slow: one window of successes adds only PROBE */
  for (int i = 0; i < 8; i++)
    dltc_window_on_success(&w);
  CHECK(dltc_window_limit(&w) == 8);
  CHECK(fabs(w.cwnd - 8.0 - DLTC_WINDOW_PROBE) < 0.02);
  /* about 1/PROBE windows of successes to reach 9 */
  int n = 0;
  while (dltc_window_limit(&w) < 9 && n < 1000) {
    dltc_window_on_success(&w);
    n++;
  }
  CHECK(n > 40 && n < 80);
  /* beyond wmax+1 normal additive increase: +1 per window */
  double before = w.cwnd;
  for (int i = 0; i < 9; i++)
    dltc_window_on_success(&w);
  CHECK(w.cwnd - before > 0.9 && w.cwnd - before < 1.1);
  /* pushback with few in flight (rate limit): at least halves */
  dltc_window_init(&w, 64, 256);
  CHECK(dltc_window_on_overload(&w, w.epoch, 3) == 1);
  CHECK(dltc_window_limit(&w) == 32);
  /* repeated pushbacks go down to 1, never 0 */
  for (int i = 0; i < 20; i++)
    dltc_window_on_overload(&w, w.epoch, 1);
  CHECK(dltc_window_limit(&w) == 1);
  /* cap */
  dltc_window_init(&w, 8, 10);
  for (int i = 0; i < 100; i++)
    dltc_window_on_success(&w);
  CHECK(dltc_window_limit(&w) == 10);
  dltc_window_init(&w, 500, 10);
  CHECK(dltc_window_limit(&w) == 10);
  dltc_window_init(&w, 0, 0);
  CHECK(dltc_window_limit(&w) == 1);
}

/* Simulate a server that accepts `limit` requests in parallel: the window
 * must settle near it with few pushbacks. */
static void test_window_finds_limit(void) {
  for (int limit = 4; limit <= 64; limit *= 2) {
    struct dltc_window w;
    dltc_window_init(&w, 8, 256);
    long ok = 0, rejected = 0;
    double sum_inflight = 0;
    for (int round = 0; round < 2000; round++) {
      int lim = dltc_window_limit(&w);
      uint64_t ep = w.epoch;
      int accepted = lim < limit ? lim : limit;
      for (int i = 0; i < lim; i++) {
        if (i < accepted) {
          ok++;
          dltc_window_on_success(&w);
        } else {
          rejected++;
          dltc_window_on_overload(&w, ep, i + 1);
        }
      }
      if (round >= 200)
        sum_inflight += accepted;
    }
    double goodput = sum_inflight / 1800.0 / limit;
    double share = (double)rejected / (double)(ok + rejected);
    if (goodput < 0.9 || share > 0.05)
      fprintf(stderr, "limit %d: goodput %.3f, 429 share %.3f\n", limit, goodput, share);
    CHECK(goodput >= 0.9);
    CHECK(share <= 0.05);
  }
}

static void test_bucket(void) {
  struct dltc_bucket b;
  dltc_bucket_init(&b, 10, 2, 100.0);
  CHECK(dltc_bucket_take(&b, 100.0) == 0);
  CHECK(dltc_bucket_take(&b, 100.0) == 0);
  double w = dltc_bucket_take(&b, 100.0);
  CHECK(w > 0.09 && w < 0.11);
  CHECK(dltc_bucket_take(&b, 100.05) > 0);
  CHECK(dltc_bucket_take(&b, 100.11) == 0);
  /* long idle refills only to burst */
  CHECK(dltc_bucket_take(&b, 1000.0) == 0);
  CHECK(dltc_bucket_take(&b, 1000.0) == 0);
  CHECK(dltc_bucket_take(&b, 1000.0) > 0);
  /* 100 takes over time at 10/s take about 10 s */
  dltc_bucket_init(&b, 10, 1, 0.0);
  double t = 0;
  for (int i = 0; i < 100; i++) {
    double d;
    while ((d = dltc_bucket_take(&b, t)) > 0)
      t += d;
  }
  CHECK(t > 9.8 && t < 10.0);
  dltc_bucket_init(&b, 0, 1, 0.0); /* unlimited */
  for (int i = 0; i < 1000; i++)
    CHECK(dltc_bucket_take(&b, 0.0) == 0);
  dltc_bucket_init(&b, NAN, NAN, 0.0);
  CHECK(dltc_bucket_take(&b, 0.0) == 0);
}

static void test_backoff(void) {
  uint64_t rng = 42;
  for (int retry = 1; retry <= 70; retry++) {
    double top = fmin(30.0, 0.1 * pow(2, retry > 62 ? 61 : retry - 1));
    double mx = 0, mn = 1e9, sum = 0;
    for (int i = 0; i < 2000; i++) {
      double d = dltc_backoff_delay(retry, 0.1, 30.0, 0.01, &rng);
      CHECK(d >= 0.01 && d <= top + 1e-9 && !isnan(d));
      mx = fmax(mx, d);
      mn = fmin(mn, d);
      sum += d;
    }
    /* full jitter: spread over the whole interval, mean near half */
    if (top > 0.1) {
      CHECK(mx > top * 0.95);
      CHECK(mn < top * 0.05 + 0.01);
      CHECK(fabs(sum / 2000 - top / 2) < top * 0.05);
    }
  }
  CHECK(dltc_backoff_delay(0, 0.1, 30, 0, &rng) <= 0.1);
  CHECK(dltc_backoff_delay(-5, 0.1, 30, 0, &rng) <= 0.1);
  CHECK(dltc_backoff_delay(3, NAN, 30, 0, &rng) == 0);
  CHECK(dltc_backoff_delay(3, 1, INFINITY, 0, &rng) <= 4);
  CHECK(dltc_backoff_delay(3, 1, 30, -1, &rng) >= 0);
  uint64_t z = 0; /* zero state must not stick at zero */
  CHECK(dltc_rand_next(&z) != 0 && z != 0);
}

static void test_retry_after(void) {
  double s = -1;
  int64_t now = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
  CHECK(ra("120", now, &s) == 0 && s == 120);
  CHECK(ra("  7 \t", now, &s) == 0 && s == 7);
  CHECK(ra("0", now, &s) == 0 && s == 0);
  CHECK(ra("000", now, &s) == 0 && s == 0);
  /* overflow: clamps, no UB */
  CHECK(ra("99999999999999999999999999999999999999", now, &s) == 0 && s == DLTC_RETRY_AFTER_MAX);
  CHECK(ra("86401", now, &s) == 0 && s == DLTC_RETRY_AFTER_MAX);
  /* HTTP dates: IMF-fixdate, RFC 850, asctime */
  CHECK(ra("Sun, 06 Nov 1994 08:50:37 GMT", now, &s) == 0 && s == 60);
  CHECK(ra("Sunday, 06-Nov-94 08:49:47 GMT", now, &s) == 0 && s == 10);
  CHECK(ra("Sun Nov  6 08:49:40 1994", now, &s) == 0 && s == 3);
  CHECK(ra("Sun, 06 Nov 1994 08:00:00 GMT", now, &s) == 0 && s == 0); /* past */
  CHECK(ra("Thu, 01 Jan 1970 00:00:00 GMT", now, &s) == 0 && s == 0);
  CHECK(ra("Fri, 31 Dec 9999 23:59:59 GMT", now, &s) == 0 && s == DLTC_RETRY_AFTER_MAX);
  int64_t t;
  CHECK(dltc_http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", 29, &t) == 0 && t == now);
  CHECK(dltc_http_date_parse("Tue, 29 Feb 2028 12:00:00 GMT", 29, &t) == 0 && t == 1835438400);
  /* garbage */
  const char *bad[] = {"",
                       "   ",
                       "soon",
                       "-1",
                       "1.5",
                       "12abc",
                       "0x10",
                       "+5",
                       "Sun, 06 Nov 1994 08:49:37 UTC",
                       "Sun, 06 Nov 1994 08:49:37",
                       "Mon, 06 Nov 1994 08:49:37 GMT", /* wrong weekday */
                       "Sun, 31 Nov 1994 08:49:37 GMT",
                       "Sun, 06 Foo 1994 08:49:37 GMT",
                       "Sun, 06 Nov 1994 24:49:37 GMT",
                       "Sun, 6 Nov 1994 08:49:37 GMT",
                       "Sun, 06 Nov 1994 08:49:37 GMTx",
                       "Wed, 29 Feb 2023 00:00:00 GMT",
                       "Thu, 01 Jan 1969 00:00:00 GMT",
                       "Sun Nov 6 08:49:37 1994"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct dltc_error err;
    dltc_error_reset(&err);
    s = -7;
    int rc = dltc_retry_after_parse(bad[i], strlen(bad[i]), now, &s, &err);
    if (rc != DLTC_EPARSE)
      fprintf(stderr, "accepted garbage: '%s'\n", bad[i]);
    CHECK(rc == DLTC_EPARSE && err.code == DLTC_EPARSE && s == -7 && err.msg[0]);
  }
  CHECK(dltc_retry_after_parse(NULL, 0, now, &s, NULL) == DLTC_EPARSE);
  /* not NUL-terminated: only n bytes are read */
  char buf[3] = {'4', '2', '9'};
  CHECK(dltc_retry_after_parse(buf, 2, now, &s, NULL) == 0 && s == 42);
}

static void test_etag_link(void) {
  size_t off, len;
  const char *e1 = " W/\"abc-123\" ";
  CHECK(dltc_etag_parse(e1, strlen(e1), &off, &len) == 0 && off == 1 && len == 11);
  CHECK(dltc_etag_parse("\"\"", 2, &off, &len) == 0 && len == 2);
  CHECK(dltc_etag_parse("abc", 3, &off, &len) == DLTC_EPARSE);
  CHECK(dltc_etag_parse("\"a\r\nX: y\"", 9, &off, &len) == DLTC_EPARSE);
  CHECK(dltc_etag_parse("\"abc", 4, &off, &len) == DLTC_EPARSE);
  CHECK(dltc_etag_parse("\"a\"b", 4, &off, &len) == DLTC_EPARSE);
  CHECK(dltc_etag_parse("W/", 2, &off, &len) == DLTC_EPARSE);
  CHECK(dltc_etag_parse("", 0, &off, &len) == DLTC_EPARSE);

  const char *l1 =
      "<https://api.x/p?page=1>; rel=\"prev\", <https://api.x/p?page=3>; rel=\"next last\"";
  CHECK(dltc_link_find(l1, strlen(l1), "next", &off, &len) == 0);
  CHECK(len == 22 && strncmp(l1 + off, "https://api.x/p?page=3", len) == 0);
  CHECK(dltc_link_find(l1, strlen(l1), "prev", &off, &len) == 0 &&
        strncmp(l1 + off, "https://api.x/p?page=1", len) == 0);
  CHECK(dltc_link_find(l1, strlen(l1), "first", &off, &len) == DLTC_EAGAIN);
  const char *l2 = "</a>;rel=NEXT";
  CHECK(dltc_link_find(l2, strlen(l2), "next", &off, &len) == 0 && len == 2);
  const char *l3 = "</a>; title=\"x, \\\"y\"; rel=next";
  CHECK(dltc_link_find(l3, strlen(l3), "next", &off, &len) == 0);
  CHECK(dltc_link_find("garbage", 7, "next", &off, &len) == DLTC_EPARSE);
  CHECK(dltc_link_find("<unterminated", 13, "next", &off, &len) == DLTC_EPARSE);
  CHECK(dltc_link_find("</a>; rel=\"next", 15, "next", &off, &len) == DLTC_EPARSE);
  CHECK(dltc_link_find("", 0, "next", &off, &len) == DLTC_EAGAIN);
}

int main(void) {
  test_window();
  test_window_finds_limit();
  test_bucket();
  test_backoff();
  test_retry_after();
  test_etag_link();
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("test_limit: ok\n");
  return 0;
}
