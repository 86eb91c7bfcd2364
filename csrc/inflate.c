/* Bounded content decoding (gzip via libdeflate, br via libbrotlidec) of whole bodies:
 * the engine's own (one pass when a transfer ends) and the consumer's, for bodies the
 * engine hands over undecoded (decompress="caller"). The output grows geometrically
 * from a size hint up to one cap (max_out, or max_ratio * input once past the ratio
 * floor). */
#include "inflate.h"

#include <brotli/decode.h>
#include <libdeflate.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#define ZLIB_CONST /* next_in is const: the input is never written */
#include <zlib.h>

#include "arrow.h" /* dltc__malloc & co: one allocation hook for the whole core */

#define FIRST_GUESS_MIN ((size_t)64 << 10)

const char *dltc_encoding_name(enum dltc_encoding enc) {
  switch (enc) {
  case DLTC_ENC_GZIP: return "gzip";
  case DLTC_ENC_BR: return "br";
  default: return "identity";
  }
}

int dltc_encoding_parse(const char *value, enum dltc_encoding *out, struct dltc_error *err) {
  *out = DLTC_ENC_IDENTITY;
  if (!value)
    return 0;
  while (*value == ' ' || *value == '\t')
    value++;
  size_t len = strlen(value);
  while (len && (value[len - 1] == ' ' || value[len - 1] == '\t'))
    len--;
  if (len == 0 || (len == 8 && strncasecmp(value, "identity", 8) == 0))
    return 0;
  if ((len == 4 && strncasecmp(value, "gzip", 4) == 0) ||
      (len == 6 && strncasecmp(value, "x-gzip", 6) == 0)) {
    *out = DLTC_ENC_GZIP;
    return 0;
  }
  if (len == 2 && strncasecmp(value, "br", 2) == 0) {
    *out = DLTC_ENC_BR;
    return 0;
  }
  return dltc_error_set(err, DLTC_EINVAL, "unsupported Content-Encoding '%.*s'",
                        (int)(len > 64 ? 64 : len), value);
}

size_t dltc_inflate_size_hint(const uint8_t *in, size_t n, enum dltc_encoding enc) {
  if (enc == DLTC_ENC_IDENTITY)
    return n;
  if (enc != DLTC_ENC_GZIP || n < 18 || in[0] != 0x1f || in[1] != 0x8b)
    return 0;
  const uint8_t *t = in + n - 4;
  return (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
}

/* The output buffer: starts as the caller's dst (not owned) or a fresh one. */
struct obuf {
  uint8_t *p;
  size_t cap, len;
  int owned;
};

/* Grow b to at least want bytes (callers clamp want to the cap + 1). */
static int obuf_grow(struct obuf *b, size_t want, enum dltc_encoding enc, struct dltc_error *err) {
  uint8_t *np;
  if (b->owned) {
    np = dltc__realloc(b->p, want);
  } else {
    np = dltc__malloc(want);
    if (np && b->p && b->len)
      memcpy(np, b->p, b->len);
  }
  if (!np)
    return dltc_error_set(err, DLTC_ENOMEM, "out of memory decoding %s body (%zu bytes)",
                          dltc_encoding_name(enc), want);
  b->p = np;
  b->cap = want;
  b->owned = 1;
  return 0;
}

static size_t next_cap(size_t cap, size_t limit1) {
  size_t c = cap < FIRST_GUESS_MIN ? FIRST_GUESS_MIN : cap;
  c = c > limit1 / 2 ? limit1 : c * 2;
  return c;
}

static int cap_error(enum dltc_encoding enc, size_t n, size_t limit, int by_ratio, double max_ratio,
                     struct dltc_error *err) {
  if (by_ratio)
    return dltc_error_set(err, DLTC_ELIMIT,
                          "%s body of %zu bytes decodes to more than %zu bytes: over max_ratio "
                          "(%.0f:1)",
                          dltc_encoding_name(enc), n, limit, max_ratio);
  return dltc_error_set(err, DLTC_ELIMIT,
                        "%s body of %zu bytes decodes to more than max_size (%zu bytes)",
                        dltc_encoding_name(enc), n, limit);
}

static void *deflate_alloc(size_t n) { return dltc__malloc(n); }
static void deflate_free(void *p) { dltc__free(p); }
static void set_deflate_allocator(void) {
  libdeflate_set_memory_allocator(deflate_alloc, deflate_free);
}
static pthread_once_t deflate_once = PTHREAD_ONCE_INIT;

/* One decompressor per thread, kept between calls: allocating one is a ~10 KB
 * malloc plus table set-up, more work than decoding a small body. Freed when the
 * thread exits (the key's destructor). */
static pthread_key_t deflate_key;
static void deflate_key_free(void *d) { libdeflate_free_decompressor(d); }
static void deflate_init(void) {
  set_deflate_allocator();
  if (pthread_key_create(&deflate_key, deflate_key_free) != 0)
    deflate_key = (pthread_key_t)-1;
}

/* This thread's decompressor (allocated on first use), or NULL out of memory;
 * *owned says the caller must free it (no thread-specific storage). */
static struct libdeflate_decompressor *thread_decompressor(int *owned) {
  pthread_once(&deflate_once, deflate_init);
  *owned = 0;
  struct libdeflate_decompressor *d = NULL;
  if (deflate_key != (pthread_key_t)-1 && (d = pthread_getspecific(deflate_key)))
    return d;
  if (!(d = libdeflate_alloc_decompressor()))
    return NULL;
  if (deflate_key == (pthread_key_t)-1 || pthread_setspecific(deflate_key, d) != 0)
    *owned = 1;
  return d;
}

static int all_zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return 0;
  return 1;
}

static int inflate_gzip(const uint8_t *in, size_t n, size_t limit, struct obuf *b, int *over_cap,
                        struct dltc_error *err) {
  int rc = 0, owned = 0;
  struct libdeflate_decompressor *d = thread_decompressor(&owned);
  if (!d) {
    rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory creating a gzip decoder");
    goto out;
  }
  size_t off = 0;
  while (off < n) {
    if (in[off] == 0 && off > 0 && all_zero(in + off, n - off))
      break; /* NUL padding after the last member, as gzip(1) tolerates */
    if (n - off < 18 || in[off] != 0x1f || in[off + 1] != 0x8b) {
      rc = dltc_error_set(err, DLTC_EPARSE,
                          off ? "gzip body of %zu bytes: trailing garbage at byte %zu"
                              : "gzip body of %zu bytes: not gzip data (at byte %zu)",
                          n, off);
      goto out;
    }
    for (;;) {
      size_t used = 0, got = 0;
      enum libdeflate_result r = libdeflate_gzip_decompress_ex(d, in + off, n - off, b->p + b->len,
                                                               b->cap - b->len, &used, &got);
      if (r == LIBDEFLATE_SUCCESS) {
        off += used;
        b->len += got;
        break;
      }
      if (r != LIBDEFLATE_INSUFFICIENT_SPACE) {
        rc = dltc_error_set(err, DLTC_EPARSE,
                            "gzip body of %zu bytes: corrupt or truncated member at byte %zu", n,
                            off);
        goto out;
      }
      if (b->cap > limit) {
        *over_cap = 1;
        goto out;
      }
      if ((rc = obuf_grow(b, next_cap(b->cap, limit + 1), DLTC_ENC_GZIP, err)))
        goto out;
    }
    if (b->len > limit) {
      *over_cap = 1;
      goto out;
    }
  }
out:
  if (owned)
    libdeflate_free_decompressor(d);
  return rc;
}

static voidpf zlib_alloc(voidpf opaque, uInt items, uInt size) {
  (void)opaque;
  return (size_t)items > SIZE_MAX / size ? NULL : dltc__malloc((size_t)items * size);
}
static void zlib_free(voidpf opaque, voidpf p) {
  (void)opaque;
  dltc__free(p);
}

/* gzip decoded in steps (zlib), the ratio checked against the input consumed so far, as
 * if the body were still arriving: for a body whose trailer announces more than the cap.
 * A bomb ends after about max(ratio floor, max_ratio x the input read) of output; a
 * truncated or corrupt body (whose "trailer" is any 4 bytes) is still told apart. */
static int inflate_gzip_stream(const uint8_t *in, size_t n, size_t limit, double max_ratio,
                               struct obuf *b, int *over_cap, int *by_ratio,
                               struct dltc_error *err) {
  z_stream z;
  memset(&z, 0, sizeof z);
  z.zalloc = zlib_alloc;
  z.zfree = zlib_free;
  if (inflateInit2(&z, 15 + 16) != Z_OK)
    return dltc_error_set(err, DLTC_ENOMEM, "out of memory creating a gzip decoder");
  int rc = 0;
  size_t off = 0;
  for (;;) {
    if (b->cap - b->len < FIRST_GUESS_MIN / 4) {
      if (b->cap > limit) {
        *over_cap = 1;
        goto out;
      }
      if ((rc = obuf_grow(b, next_cap(b->cap, limit + 1), DLTC_ENC_GZIP, err)))
        goto out;
    }
    size_t avail = n - off > UINT_MAX ? UINT_MAX : n - off;
    size_t room = b->cap - b->len > UINT_MAX ? UINT_MAX : b->cap - b->len;
    z.next_in = in + off;
    z.avail_in = (uInt)avail;
    z.next_out = b->p + b->len;
    z.avail_out = (uInt)room;
    int zr = inflate(&z, Z_NO_FLUSH);
    off += avail - z.avail_in;
    b->len += room - z.avail_out;
    if (b->len > limit ||
        (b->len > DLTC_INFLATE_RATIO_FLOOR && (double)b->len > max_ratio * (double)off)) {
      *over_cap = 1;
      if (b->len <= limit)
        *by_ratio = 1; /* stopped by the ratio so far, before the cap */
      goto out;
    }
    if (zr == Z_STREAM_END) {
      if (off == n || all_zero(in + off, n - off))
        goto out;
      if (n - off < 18 || in[off] != 0x1f || in[off + 1] != 0x8b) {
        rc = dltc_error_set(err, DLTC_EPARSE,
                            "gzip body of %zu bytes: trailing garbage at byte %zu", n, off);
        goto out;
      }
      inflateReset(&z); /* the next member */
    } else if (zr == Z_MEM_ERROR) {
      rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory decoding gzip body");
      goto out;
    } else if (zr != Z_OK && !(zr == Z_BUF_ERROR && off < n)) {
      rc = dltc_error_set(err, DLTC_EPARSE,
                          zr == Z_BUF_ERROR ? "gzip body of %zu bytes: truncated at byte %zu"
                                            : "gzip body of %zu bytes: corrupt data at byte %zu",
                          n, off);
      goto out;
    }
  }
out:
  inflateEnd(&z);
  return rc;
}

static void *brotli_alloc(void *opaque, size_t n) {
  (void)opaque;
  return dltc__malloc(n);
}
static void brotli_free(void *opaque, void *p) {
  (void)opaque;
  dltc__free(p);
}

static int inflate_br(const uint8_t *in, size_t n, size_t limit, struct obuf *b, int *over_cap,
                      struct dltc_error *err) {
  int rc = 0;
  BrotliDecoderState *st = BrotliDecoderCreateInstance(brotli_alloc, brotli_free, NULL);
  if (!st) {
    rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory creating a br decoder");
    goto out;
  }
  size_t avail_in = n;
  const uint8_t *next_in = in;
  for (;;) {
    size_t avail_out = b->cap - b->len;
    uint8_t *next_out = b->p + b->len;
    BrotliDecoderResult r =
        BrotliDecoderDecompressStream(st, &avail_in, &next_in, &avail_out, &next_out, NULL);
    b->len = (size_t)(next_out - b->p);
    if (b->len > limit) {
      *over_cap = 1;
      goto out;
    }
    if (r == BROTLI_DECODER_RESULT_SUCCESS) {
      if (avail_in)
        rc = dltc_error_set(err, DLTC_EPARSE, "br body of %zu bytes: trailing garbage at byte %zu",
                            n, n - avail_in);
      goto out;
    }
    if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT) {
      rc = dltc_error_set(err, DLTC_EPARSE, "br body of %zu bytes: truncated", n);
      goto out;
    }
    if (r == BROTLI_DECODER_RESULT_ERROR) {
      BrotliDecoderErrorCode ec = BrotliDecoderGetErrorCode(st);
      rc = dltc_error_set(err,
                          ec <= BROTLI_DECODER_ERROR_ALLOC_CONTEXT_MODES &&
                                  ec >= BROTLI_DECODER_ERROR_ALLOC_BLOCK_TYPE_TREES
                              ? DLTC_ENOMEM
                              : DLTC_EPARSE,
                          "br body of %zu bytes: %s at byte %zu", n, BrotliDecoderErrorString(ec),
                          n - avail_in);
      goto out;
    }
    /* NEEDS_MORE_OUTPUT */
    if (b->cap > limit) {
      *over_cap = 1;
      goto out;
    }
    if ((rc = obuf_grow(b, next_cap(b->cap, limit + 1), DLTC_ENC_BR, err)))
      goto out;
  }
out:
  if (st)
    BrotliDecoderDestroyInstance(st);
  return rc;
}

size_t dltc_inflate_cap(size_t n, size_t max_out, double max_ratio, int *by_ratio) {
  double rl = max_ratio * (double)n;
  size_t ratio_limit = rl >= (double)SIZE_MAX / 2 ? SIZE_MAX / 2 : (size_t)rl;
  if (ratio_limit < DLTC_INFLATE_RATIO_FLOOR)
    ratio_limit = DLTC_INFLATE_RATIO_FLOOR;
  *by_ratio = ratio_limit < max_out;
  size_t limit = *by_ratio ? ratio_limit : max_out;
  return limit > SIZE_MAX / 2 ? SIZE_MAX / 2 : limit;
}

int dltc_inflate(const uint8_t *in, size_t n, enum dltc_encoding enc, size_t max_out,
                 double max_ratio, uint8_t *dst, size_t dst_cap, uint8_t **out, size_t *out_len,
                 struct dltc_error *err) {
  int rc = 0, over_cap = 0;
  struct obuf b = {dst, dst ? dst_cap : 0, 0, 0};
  *out = NULL;
  *out_len = 0;
  if (!(max_ratio >= 1) || (n && !in) ||
      (enc != DLTC_ENC_IDENTITY && enc != DLTC_ENC_GZIP && enc != DLTC_ENC_BR)) {
    rc = dltc_error_set(err, DLTC_EINVAL, "inflate: bad argument (max_ratio < 1 or encoding)");
    goto out;
  }
  int by_ratio;
  size_t limit = dltc_inflate_cap(n, max_out, max_ratio, &by_ratio);

  if (enc == DLTC_ENC_IDENTITY || n == 0) {
    if (n > max_out) {
      rc = cap_error(enc, n, max_out, 0, max_ratio, err);
      goto out;
    }
    if (b.cap < n && (rc = obuf_grow(&b, n, enc, err)))
      goto out;
    if (n && b.p) /* b.cap >= n > 0 implies b.p */
      memcpy(b.p, in, n);
    b.len = n;
  } else {
    size_t first = dltc_inflate_size_hint(in, n, enc);
    if (enc == DLTC_ENC_GZIP && first > limit) {
      /* the trailer announces more than the cap: a bomb, or a cut-short body whose last
       * 4 bytes are no trailer. Decode in steps so that a bomb stops early (it costs
       * about the ratio floor, not the cap) and a cut is still reported as one. */
      int stream_ratio = by_ratio;
      if ((rc = inflate_gzip_stream(in, n, limit, max_ratio, &b, &over_cap, &stream_ratio, err)))
        goto out;
      if (over_cap) {
        rc = cap_error(enc, n, limit, stream_ratio, max_ratio, err);
        goto out;
      }
      goto done;
    }
    if (first == 0)
      first = n > FIRST_GUESS_MIN / 4 ? n * 4 : FIRST_GUESS_MIN;
    if (first > limit + 1)
      first = limit + 1;
    if (b.cap < first && (rc = obuf_grow(&b, first, enc, err)))
      goto out;
    rc = enc == DLTC_ENC_GZIP ? inflate_gzip(in, n, limit, &b, &over_cap, err)
                              : inflate_br(in, n, limit, &b, &over_cap, err);
    if (rc)
      goto out;
    if (over_cap) {
      rc = cap_error(enc, n, limit, by_ratio, max_ratio, err);
      goto out;
    }
  }
done:
  if (!b.p && (rc = obuf_grow(&b, 1, enc, err))) /* empty output still gets a buffer */
    goto out;
  *out = b.p;
  *out_len = b.len;
  b.owned = 0;
out:
  if (b.owned)
    dltc__free(b.p);
  return rc;
}
