/* Numbers and times for the decoder: strict JSON number parsing (int64 exact,
 * doubles correctly rounded), Python-compatible text of numbers (dlt coerces with
 * str()), ISO-8601 timestamps/dates, and dlt's _dlt_id values (shake128 digest,
 * random ids). No allocation; safe to call from any thread. */
#ifndef DLTC_NUM_H
#define DLTC_NUM_H

#include <stddef.h>
#include <stdint.h>

enum { DLTC_NUM_TOOLONG = -1, DLTC_NUM_ERR = 0, DLTC_NUM_INT = 1, DLTC_NUM_DOUBLE = 2 };

/* Parse a JSON number at p (p < end). Returns DLTC_NUM_INT with *i set (integers
 * without fraction/exponent that fit int64), DLTC_NUM_DOUBLE with *d set (all others,
 * including integers beyond int64, correctly rounded; overflow gives +-inf), or
 * DLTC_NUM_ERR with *endp at the offending byte, or DLTC_NUM_TOOLONG (token over
 * 4096 bytes). Reads only [p, end). */
int dltc__num_parse(const char *p, const char *end, const char **endp, int64_t *i, double *d);

/* Correctly rounded decimal text -> double in the C locale (s is NUL-terminated). */
double dltc__strtod_c(const char *s, char **endp);

/* Python's str() of an int or a float into buf (>= 32 bytes). Returns the length. */
size_t dltc__fmt_i64(int64_t v, char *buf);
size_t dltc__fmt_f64(double v, char *buf);

/* ISO-8601 date or date-time as dlt/pendulum reads them: YYYY, YYYY-MM (dates only),
 * YYYY-MM-DD, YYYYMMDD, YYYY-DDD, YYYY-Www[-D], YYYYWww[D]; then optionally T (upper case) or a
 * space and HH[:MM[:SS[.f{1,9}]]] or HH[MM[SS[.f]]], then Z or +-HH[[:]MM]. No zone = UTC;
 * fractions beyond 6 digits are truncated. Returns 0 and sets *us (microseconds since the epoch,
 * UTC) and *has_time, or -1. */
int dltc__iso_parse(const char *s, size_t n, int64_t *us, int *has_time);

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
int64_t dltc__days_from_civil(int64_t y, unsigned m, unsigned d);

/* SHAKE128 of msg, first outlen bytes into out. */
void dltc__shake128(const void *msg, size_t len, uint8_t *out, size_t outlen);

/* Standard base64 of n bytes without '=' padding; returns the length written. */
size_t dltc__base64_nopad(const uint8_t *in, size_t n, char *out);

#endif
