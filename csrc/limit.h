/* Per-host limits of the fetch engine: the adaptive (AIMD) concurrency window,
 * the requests-per-second token bucket, retry backoff with full jitter and the
 * Retry-After header. Pure arithmetic on caller-supplied clocks and random
 * state, so all of it is unit-testable and fuzzable without a network. */
#ifndef DLTC_LIMIT_H
#define DLTC_LIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* ---- concurrency window ----------------------------------------------------
 * cwnd is the number of requests one host may have in flight. It grows by one
 * per success in slow start (doubling per round trip), then by 1/cwnd per
 * success (one per round trip). On a 429/503 it drops to the in-flight level
 * the server accepted (but never below half), and remembers that level as
 * wmax: just above wmax it grows only by DLTC_WINDOW_PROBE/cwnd per success,
 * so it probes the known limit rarely (few 429s) and holds goodput near it.
 * One pushback episode shrinks the window once: replies to requests started
 * before the last decrease are ignored (epoch). */
#define DLTC_WINDOW_PROBE 0.125
#define DLTC_WINDOW_BETA 0.5

struct dltc_window {
  double cwnd;     /* current window, min <= cwnd <= max */
  double min, max; /* bounds; min is 1 */
  double wmax;     /* accepted level at the last pushback; 0 = none seen */
  int slow_start;  /* 1 until the first pushback */
  uint64_t epoch;  /* incremented on each decrease */
};

/* Set w to `initial` (clamped to [1, max]) in slow start. max < 1 becomes 1. */
void dltc_window_init(struct dltc_window *w, int initial, int max);

/* Requests allowed in flight now: floor(cwnd), at least 1. */
int dltc_window_limit(const struct dltc_window *w);

/* A request finished without pushback (2xx, 304, an expected 404...). */
void dltc_window_on_success(struct dltc_window *w);

/* The server pushed back (429 or 503) on a request that started when the
 * window's epoch was started_epoch, with started_inflight requests in flight
 * to the host counting itself. Returns 1 if the window shrank, 0 if this reply
 * belongs to an episode already acted on. */
int dltc_window_on_overload(struct dltc_window *w, uint64_t started_epoch, int started_inflight);

/* Change the ceiling while in use (set_limits): max < 1 becomes 1; cwnd and the
 * remembered level are clamped to it, the rest of the state is kept. */
void dltc_window_set_max(struct dltc_window *w, int max);

/* ---- token bucket ------------------------------------------------------------ */

struct dltc_bucket {
  double rate;   /* tokens per second; <= 0 means unlimited */
  double burst;  /* capacity */
  double tokens; /* available now */
  double last;   /* clock of the last refill, seconds */
};

/* rate <= 0: unlimited. burst < 1 becomes 1. Starts full at clock `now`. */
void dltc_bucket_init(struct dltc_bucket *b, double rate, double burst, double now);

/* Take one token at clock `now` (seconds, monotonic). Returns 0 when taken, or
 * the seconds to wait until one is available (nothing taken). */
double dltc_bucket_take(struct dltc_bucket *b, double now);

/* Change rate and burst at clock `now` (set_limits): tokens earned at the old
 * rate are kept, capped at the new burst; rate <= 0 means unlimited. */
void dltc_bucket_set_rate(struct dltc_bucket *b, double rate, double burst, double now);

/* ---- backoff -------------------------------------------------------------------- */

/* Small, fast PRNG (xorshift64*) for jitter; *state must be non-zero. */
uint64_t dltc_rand_next(uint64_t *state);

/* Uniform double in [0, 1). */
double dltc_rand_unit(uint64_t *state);

/* Delay before retry number `retry` (1 = first retry): full jitter, uniform in
 * [0, min(cap, base * 2^(retry-1))], then raised to at least `floor`.
 * Never NaN or negative; retry is clamped to [1, 62]. */
double dltc_backoff_delay(int retry, double base, double cap, double floor, uint64_t *rng);

/* ---- Retry-After ----------------------------------------------------------------- */

/* Longest pause Retry-After may ask for; larger values are clamped to it. */
#define DLTC_RETRY_AFTER_MAX 86400.0

/* Parse a Retry-After value (s, n bytes, need not be NUL-terminated): either
 * delay-seconds (1*DIGIT) or an HTTP-date (IMF-fixdate, RFC 850, asctime),
 * with optional surrounding whitespace. now_unix is the wall clock used for
 * dates. On success stores seconds to wait in *out (0 for dates in the past,
 * clamped to DLTC_RETRY_AFTER_MAX) and returns 0; garbage returns DLTC_EPARSE
 * and fills err. */
int dltc_retry_after_parse(const char *s, size_t n, int64_t now_unix, double *out,
                           struct dltc_error *err);

/* Parse an HTTP-date (the three formats above, exact, no surrounding space) to
 * seconds since the epoch. Returns 0 or DLTC_EPARSE. Years 1970..9999. */
int dltc_http_date_parse(const char *s, size_t n, int64_t *out_unix);

#endif
