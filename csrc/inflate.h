/* Content decoding of HTTP bodies off the engine thread: gzip (multi-member) with
 * libdeflate, br with libbrotlidec, identity. Every call is bounded by an output
 * size cap and a ratio cap, so a hostile body cannot exhaust memory. Thread-safe:
 * no shared state but the allocation-failure test hook of arrow.h. */
#ifndef DLTC_INFLATE_H
#define DLTC_INFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum dltc_encoding { DLTC_ENC_IDENTITY = 0, DLTC_ENC_GZIP = 1, DLTC_ENC_BR = 2 };

/* Below this many output bytes the ratio cap is not checked (as in the engine):
 * small bodies of repetitive JSON legitimately compress far beyond 200:1. */
#define DLTC_INFLATE_RATIO_FLOOR ((size_t)1 << 20)

/* Map a Content-Encoding value (case-insensitive, surrounding blanks ignored;
 * "x-gzip" is gzip; NULL, "" and "identity" are identity) to *out. Returns 0,
 * or DLTC_EINVAL with err naming the value for anything else (deflate, zstd,
 * stacked codings). */
int dltc_encoding_parse(const char *value, enum dltc_encoding *out, struct dltc_error *err);

/* Static name of an encoding: "identity", "gzip", "br". */
const char *dltc_encoding_name(enum dltc_encoding enc);

/* Expected decoded size when the input announces it (gzip: the ISIZE trailer of
 * the last member, mod 2^32), else 0. A hint only: the input may lie. */
size_t dltc_inflate_size_hint(const uint8_t *in, size_t n, enum dltc_encoding enc);

/* The one cap on the output of decoding n input bytes: max_out, or, once that is
 * more than DLTC_INFLATE_RATIO_FLOOR, max_ratio * n (then *by_ratio is 1). */
size_t dltc_inflate_cap(size_t n, size_t max_out, double max_ratio, int *by_ratio);

/* Decode in[0..n) of encoding enc. The output may be at most max_out bytes, and
 * once over DLTC_INFLATE_RATIO_FLOOR at most max_ratio * n bytes (max_ratio >= 1).
 * dst (may be NULL) is a caller buffer of dst_cap bytes tried first. On success
 * returns 0, *out_len the size, *out either dst (the output fit in it) or a
 * buffer allocated with dltc__malloc that the caller frees with dltc__free.
 * Identity copies (or uses dst). gzip accepts concatenated members and trailing
 * NUL padding, and checks each member's CRC and size. A gzip body whose trailer
 * announces more than the cap is decoded in steps with the ratio checked against
 * the input read so far (zlib), so a bomb costs about the ratio floor, not the
 * cap. On failure *out is NULL
 * and the code is DLTC_EPARSE (corrupt, truncated, trailing garbage), DLTC_ELIMIT
 * (a cap, named with its value), DLTC_ENOMEM or DLTC_EINVAL; the message names
 * the encoding and sizes but not the URL (the caller adds it). */
int dltc_inflate(const uint8_t *in, size_t n, enum dltc_encoding enc, size_t max_out,
                 double max_ratio, uint8_t *dst, size_t dst_cap, uint8_t **out, size_t *out_len,
                 struct dltc_error *err);

#endif
