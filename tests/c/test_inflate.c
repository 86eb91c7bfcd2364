/* Tests of csrc/inflate.c: round trips against zlib's gzip and libbrotlienc's br,
 * multi-member gzip, truncation, garbage, the size and ratio caps, and failing
 * each allocation in turn. */
#include <brotli/encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "arrow.h"
#include "inflate.h"

static int failures;
#define CHECK(c)                                                                                   \
  do {                                                                                             \
    if (!(c)) {                                                                                    \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c);                        \
      failures++;                                                                                  \
    }                                                                                              \
  } while (0)

/* JSON-like text with enough variety to compress like an archive (~4:1). */
static uint8_t *make_text(size_t n, unsigned seed) {
  uint8_t *p = malloc(n);
  unsigned x = seed;
  for (size_t i = 0; i < n;) {
    x = x * 1103515245u + 12345u;
    int k = snprintf((char *)p + i, n - i, "{\"uuid\":\"%08x\",\"rating\":%u,\"result\":\"%s\"},",
                     x, (x >> 8) % 3000, (x & 1) ? "win" : "resigned");
    if (k < 0 || (size_t)k >= n - i) {
      memset(p + i, ' ', n - i);
      break;
    }
    i += (size_t)k;
  }
  return p;
}

/* gzip with zlib (one member); caller frees. */
static uint8_t *gz(const uint8_t *in, size_t n, size_t *out_n) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    abort();
  size_t cap = deflateBound(&z, (uLong)n) + 64;
  uint8_t *out = malloc(cap);
  z.next_in = (Bytef *)(uintptr_t)in;
  z.avail_in = (uInt)n;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  if (deflate(&z, Z_FINISH) != Z_STREAM_END)
    abort();
  *out_n = z.total_out;
  deflateEnd(&z);
  return out;
}

static uint8_t *br(const uint8_t *in, size_t n, int quality, size_t *out_n) {
  size_t cap = BrotliEncoderMaxCompressedSize(n) + 64;
  uint8_t *out = malloc(cap);
  *out_n = cap;
  if (!BrotliEncoderCompress(quality, 22, BROTLI_MODE_TEXT, n, in, out_n, out))
    abort();
  return out;
}

/* Decode and compare to want; returns the code. */
static int roundtrip(const uint8_t *in, size_t n, enum dltc_encoding enc, const uint8_t *want,
                     size_t want_n, uint8_t *dst, size_t dst_cap) {
  struct dltc_error err;
  uint8_t *out = NULL;
  size_t len = 0;
  int rc = dltc_inflate(in, n, enc, (size_t)256 << 20, 200.0, dst, dst_cap, &out, &len, &err);
  if (rc) {
    fprintf(stderr, "inflate: %s\n", err.msg);
    return rc;
  }
  CHECK(len == want_n);
  CHECK(len == want_n && memcmp(out, want, len) == 0);
  if (out != dst)
    dltc__free(out);
  return 0;
}

static int expect_fail(const uint8_t *in, size_t n, enum dltc_encoding enc, size_t max_out,
                       double ratio, const char *needle) {
  struct dltc_error err;
  uint8_t *out = (uint8_t *)1;
  size_t len = 0;
  int rc = dltc_inflate(in, n, enc, max_out, ratio, NULL, 0, &out, &len, &err);
  CHECK(rc != 0);
  CHECK(out == NULL);
  if (rc && needle && !strstr(err.msg, needle)) {
    fprintf(stderr, "message '%s' lacks '%s'\n", err.msg, needle);
    failures++;
  }
  return rc;
}

static void test_parse(void) {
  enum dltc_encoding e;
  struct dltc_error err;
  CHECK(dltc_encoding_parse(NULL, &e, &err) == 0 && e == DLTC_ENC_IDENTITY);
  CHECK(dltc_encoding_parse(" GZip ", &e, &err) == 0 && e == DLTC_ENC_GZIP);
  CHECK(dltc_encoding_parse("x-gzip", &e, &err) == 0 && e == DLTC_ENC_GZIP);
  CHECK(dltc_encoding_parse("br", &e, &err) == 0 && e == DLTC_ENC_BR);
  CHECK(dltc_encoding_parse("identity", &e, &err) == 0 && e == DLTC_ENC_IDENTITY);
  CHECK(dltc_encoding_parse("deflate", &e, &err) == DLTC_EINVAL && strstr(err.msg, "deflate"));
  CHECK(dltc_encoding_parse("gzip, br", &e, &err) == DLTC_EINVAL);
}

static void test_gzip(void) {
  size_t n = 300000, gn, gn2;
  uint8_t *text = make_text(n, 1);
  uint8_t *g = gz(text, n, &gn);
  CHECK(dltc_inflate_size_hint(g, gn, DLTC_ENC_GZIP) == n);
  CHECK(roundtrip(g, gn, DLTC_ENC_GZIP, text, n, NULL, 0) == 0);
  /* into an exactly sized caller buffer: no allocation for the output */
  uint8_t *dst = malloc(n);
  struct dltc_error err;
  uint8_t *out = NULL;
  size_t len = 0;
  CHECK(dltc_inflate(g, gn, DLTC_ENC_GZIP, n, 200, dst, n, &out, &len, &err) == 0);
  CHECK(out == dst && len == n && memcmp(dst, text, n) == 0);
  /* caller buffer too small: falls back to an allocated one */
  CHECK(roundtrip(g, gn, DLTC_ENC_GZIP, text, n, dst, 1000) == 0);
  free(dst);
  /* exactly at the size cap is fine, one byte under is not */
  CHECK(dltc_inflate(g, gn, DLTC_ENC_GZIP, n, 200, NULL, 0, &out, &len, &err) == 0 && len == n);
  dltc__free(out);
  expect_fail(g, gn, DLTC_ENC_GZIP, n - 1, 200, "max_size");

  /* multi-member: the trailer hint covers only the last member, so the output grows */
  size_t m = 700000;
  uint8_t *text2 = make_text(m, 2);
  uint8_t *g2 = gz(text2, m, &gn2);
  uint8_t *cat = malloc(gn2 + gn + 8);
  memcpy(cat, g2, gn2);
  memcpy(cat + gn2, g, gn);
  uint8_t *both = malloc(n + m);
  memcpy(both, text2, m);
  memcpy(both + m, text, n);
  CHECK(roundtrip(cat, gn2 + gn, DLTC_ENC_GZIP, both, n + m, NULL, 0) == 0);
  /* NUL padding after the last member is accepted; anything else is not */
  memset(cat + gn2 + gn, 0, 8);
  CHECK(roundtrip(cat, gn2 + gn + 8, DLTC_ENC_GZIP, both, n + m, NULL, 0) == 0);
  cat[gn2 + gn + 3] = 'x';
  CHECK(expect_fail(cat, gn2 + gn + 8, DLTC_ENC_GZIP, 1 << 30, 200, "trailing garbage") ==
        DLTC_EPARSE);

  /* truncated at many points, and a flipped byte */
  size_t cuts[] = {1, 2, 10, 17, 18, 100, gn / 2, gn - 8, gn - 4, gn - 1};
  for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++)
    CHECK(expect_fail(g, cuts[i], DLTC_ENC_GZIP, 1 << 30, 200, "gzip") == DLTC_EPARSE);
  uint8_t *bad = malloc(gn);
  memcpy(bad, g, gn);
  bad[gn / 2] ^= 0x55;
  CHECK(expect_fail(bad, gn, DLTC_ENC_GZIP, 1 << 30, 200, "gzip") == DLTC_EPARSE);
  free(bad);
  uint8_t garbage[256];
  for (size_t i = 0; i < sizeof garbage; i++)
    garbage[i] = (uint8_t)(i * 7 + 3);
  CHECK(expect_fail(garbage, sizeof garbage, DLTC_ENC_GZIP, 1 << 30, 200, "not gzip") ==
        DLTC_EPARSE);

  /* empty body: empty output */
  CHECK(dltc_inflate(g, 0, DLTC_ENC_GZIP, 10, 200, NULL, 0, &out, &len, &err) == 0 && len == 0);
  dltc__free(out);
  free(text);
  free(text2);
  free(g);
  free(g2);
  free(cat);
  free(both);
}

static void test_bomb(void) {
  size_t n = (size_t)16 << 20, gn, bn;
  uint8_t *zeros = calloc(1, n);
  uint8_t *g = gz(zeros, n, &gn);
  uint8_t *b = br(zeros, n, 5, &bn);
  /* 16 MiB of zeros is ~1000:1 */
  CHECK(expect_fail(g, gn, DLTC_ENC_GZIP, (size_t)1 << 30, 200, "max_ratio") == DLTC_ELIMIT);
  CHECK(expect_fail(b, bn, DLTC_ENC_BR, (size_t)1 << 30, 200, "max_ratio") == DLTC_ELIMIT);
  struct dltc_error err;
  uint8_t *out = NULL;
  size_t len = 0;
  /* the gzip trailer announces 16 MiB, over the cap (200 x ~16 KiB): decoded in steps
   * and stopped by the ratio so far once past the 1 MiB floor. Allocations: zlib's
   * state and window, and the output doubling from 64 KiB to just past 1 MiB (6); a
   * decode up to the cap would double 12 times */
  dltc__alloc_fail_at(1L << 40);
  CHECK(dltc_inflate(g, gn, DLTC_ENC_GZIP, (size_t)1 << 30, 200, NULL, 0, &out, &len, &err) ==
            DLTC_ELIMIT &&
        !out && strstr(err.msg, "max_ratio"));
  CHECK(dltc__alloc_count() <= 8);
  dltc__alloc_fail_at(0);
  /* a trailer that lies (says 10 bytes): decoding starts, the cap still ends it */
  uint8_t *liar = malloc(gn);
  memcpy(liar, g, gn);
  memcpy(liar + gn - 4, "\x0a\0\0\0", 4);
  int lrc = dltc_inflate(liar, gn, DLTC_ENC_GZIP, (size_t)1 << 30, 200, NULL, 0, &out, &len, &err);
  CHECK(lrc == DLTC_ELIMIT && !out);
  free(liar);
  CHECK(dltc_inflate(g, gn, DLTC_ENC_GZIP, n, 1e6, NULL, 0, &out, &len, &err) == 0 && len == n);
  dltc__free(out);
  CHECK(dltc_inflate(b, bn, DLTC_ENC_BR, n, 1e6, NULL, 0, &out, &len, &err) == 0 && len == n);
  dltc__free(out);
  /* a small body under the ratio floor is not held to the ratio */
  size_t sg;
  uint8_t *small = gz(zeros, 100000, &sg);
  CHECK(dltc_inflate(small, sg, DLTC_ENC_GZIP, n, 200, NULL, 0, &out, &len, &err) == 0 &&
        len == 100000);
  dltc__free(out);
  free(small);
  free(zeros);
  free(g);
  free(b);
}

static void test_br(void) {
  size_t n = 500000, bn;
  uint8_t *text = make_text(n, 3);
  for (int q = 1; q <= 11; q += 5) {
    uint8_t *b = br(text, n, q, &bn);
    CHECK(roundtrip(b, bn, DLTC_ENC_BR, text, n, NULL, 0) == 0);
    free(b);
  }
  uint8_t *b = br(text, n, 4, &bn);
  expect_fail(b, bn, DLTC_ENC_BR, n - 1, 200, "max_size");
  struct dltc_error err;
  uint8_t *out = NULL;
  size_t len = 0;
  CHECK(dltc_inflate(b, bn, DLTC_ENC_BR, n, 200, NULL, 0, &out, &len, &err) == 0 && len == n);
  dltc__free(out);
  size_t cuts[] = {1, 5, bn / 3, bn - 1};
  for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++)
    CHECK(expect_fail(b, cuts[i], DLTC_ENC_BR, 1 << 30, 200, "br") == DLTC_EPARSE);
  uint8_t *tail = malloc(bn + 3);
  memcpy(tail, b, bn);
  memcpy(tail + bn, "xyz", 3);
  CHECK(expect_fail(tail, bn + 3, DLTC_ENC_BR, 1 << 30, 200, "trailing garbage") == DLTC_EPARSE);
  free(tail);
  uint8_t garbage[300];
  for (size_t i = 0; i < sizeof garbage; i++)
    garbage[i] = (uint8_t)(i * 131 + 17);
  CHECK(expect_fail(garbage, sizeof garbage, DLTC_ENC_BR, 1 << 30, 200, "br") == DLTC_EPARSE);
  free(b);
  free(text);
}

static void test_identity(void) {
  const uint8_t s[] = "hello";
  CHECK(roundtrip(s, 5, DLTC_ENC_IDENTITY, s, 5, NULL, 0) == 0);
  CHECK(expect_fail(s, 5, DLTC_ENC_IDENTITY, 4, 200, "max_size") == DLTC_ELIMIT);
  CHECK(expect_fail(s, 5, (enum dltc_encoding)9, 100, 200, "bad argument") == DLTC_EINVAL);
  CHECK(expect_fail(s, 5, DLTC_ENC_GZIP, 100, 0.5, "bad argument") == DLTC_EINVAL);
}

/* Fail allocation k = 1, 2, ... until a run needs no failure; every failing run
 * must report ENOMEM and leak nothing (ASan checks the leaks). */
static void oom_loop(const uint8_t *in, size_t n, enum dltc_encoding enc, const uint8_t *want,
                     size_t want_n) {
  int done = 0;
  for (long k = 1; k < 10000 && !done; k++) {
    struct dltc_error err;
    uint8_t *out = NULL;
    size_t len = 0;
    dltc__alloc_fail_at(k);
    int rc = dltc_inflate(in, n, enc, (size_t)64 << 20, 200, NULL, 0, &out, &len, &err);
    long used = dltc__alloc_count();
    dltc__alloc_fail_at(0);
    if (rc == 0) {
      CHECK(len == want_n && memcmp(out, want, len) == 0);
      dltc__free(out);
      done = used < k; /* the k-th allocation never happened: all paths covered */
    } else {
      if (rc != DLTC_ENOMEM)
        fprintf(stderr, "k=%ld: %s\n", k, err.msg);
      CHECK(rc == DLTC_ENOMEM);
      CHECK(out == NULL);
    }
  }
  CHECK(done);
}

static void test_oom(void) {
  size_t n = 200000, gn, bn, gn2;
  uint8_t *text = make_text(n, 4);
  uint8_t *g = gz(text, n, &gn);
  uint8_t *b = br(text, n, 5, &bn);
  oom_loop(g, gn, DLTC_ENC_GZIP, text, n);
  oom_loop(b, bn, DLTC_ENC_BR, text, n);
  oom_loop(text, n, DLTC_ENC_IDENTITY, text, n);
  /* two members: exercises the growth reallocations */
  uint8_t *small = gz(text, 1000, &gn2);
  uint8_t *cat = malloc(gn + gn2);
  memcpy(cat, g, gn);
  memcpy(cat + gn, small, gn2);
  uint8_t *both = malloc(n + 1000);
  memcpy(both, text, n);
  memcpy(both + n, text, 1000);
  oom_loop(cat, gn + gn2, DLTC_ENC_GZIP, both, n + 1000);
  free(cat);
  free(both);
  free(small);
  free(text);
  free(g);
  free(b);
}

int main(void) {
  test_parse();
  test_gzip();
  test_bomb();
  test_br();
  test_identity();
  test_oom();
  if (failures) {
    fprintf(stderr, "%d failures\n", failures);
    return 1;
  }
  printf("inflate: ok\n");
  return 0;
}
