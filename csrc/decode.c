/* The decoder: a strict RFC 8259 parser over one complete document that writes
 * Arrow builders directly (no DOM), flattening objects into path columns, turning
 * lists into child tables, inferring types and applying dlt's contract modes.
 *
 * Decisions (tested in tests/c/test_decode.c):
 * - UTF-8 is validated (no overlongs, no encoded surrogates, <= U+10FFFF); a lone
 *   UTF-16 surrogate in a \u escape is rejected with EPARSE (Arrow utf8 cannot hold
 *   it; Python would keep it as an unpaired code point). Surrogate pairs combine.
 * - Integers that fit int64 are exact; larger ones are read as (correctly rounded)
 *   doubles. An integral double beyond int64 offered to a bigint column is what dlt
 *   turns into an int no column holds: ESCHEMA (evolve) or a reject (discard modes).
 * - Doubles: an exact fast path (<= 15 digits, |exp10| <= 22) or strtod_l in the C
 *   locale (correctly rounded, as Python's float()), see num.c. Overflow is +-inf.
 * - Caps: max_depth (<= DLTC_MAX_DEPTH), max_string (raw bytes of one string or key),
 *   keys <= 4096 bytes, number tokens <= 4096 bytes, column key paths <= 128 keys.
 * - Errors carry the byte offset and the path of the last member read
 *   ($.games[12].white.rating); contract errors point at the offending value.
 * - A repeated key keeps the last scalar (as json.loads); a repeated list key adds
 *   the rows of both lists (known difference).
 * - Batches close only at document boundaries, so a failed document rolls back by
 *   truncating the open builders and popping the columns and tables it created. */
#include "decode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "num.h"
#include "schema.h"

#define NOINLINE __attribute__((noinline, cold))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

#define REJECTS_MAX_PENDING 65536 /* rejects of one root record; more: counted only */

struct pending_reject {
  char *path;
  const char *reason;
  int32_t node; /* the column's node, -1 */
  int64_t row;  /* row of the node's table the value was in */
};

struct frame {
  const char *key; /* raw (escaped) key bytes in the input, or NULL for an index */
  uint32_t keylen;
  int64_t idx;
};

/* One captured value; strings and JSON text live in the decoder's capture arena. */
struct capval {
  uint8_t kind; /* enum dltc_capture_kind */
  int64_t i;
  double f;
  size_t off, n; /* in the arena */
};

/* What a speculative decode changed, to undo it: rows of each table (in a marks array),
 * the undo log, counters, captures and where its skeleton text starts. */
struct spec_mark {
  size_t ntables;
  size_t undo;
  struct dltc_decoder_stats st;
  size_t caprows, arena;
};

struct dltc_decoder {
  struct dltc_schema s;
  int32_t root_table, rejects_table;
  char *selector;
  size_t selector_len;
  /* where the records are: DOCUMENT (selector or document), PATH (steps), AUTO */
  int records;
  struct dltc_path_step *steps; /* selector (1 step) or the records path; owned */
  size_t nsteps;
  char *steps_keys; /* the steps' key bytes; owned */
  char **auto_keys;
  size_t *auto_keys_len;
  size_t nauto_keys;
  int auto_max_keys;
  /* per document: the path used, matches, auto's candidate */
  int last_ok;
  struct dltc_path_step *found; /* AUTO: the detected path (auto_max_keys steps) */
  size_t nfound;
  char *found_buf;
  size_t found_cap;
  int report_found; /* records_path reports `found` (else `steps`) */
  int64_t nmatch;
  int first_kind; /* first byte of the first match */
  int64_t first_start, first_end;
  int first_depth, first_npath;
  struct spec_mark first_mark; /* before the first match (rows in marks_alt) */
  int auto_won, auto_cand;
  int64_t cand_start, cand_end;
  size_t cand_skel; /* skeleton offset of the candidate's "[]" */
  /* skeleton */
  int64_t skel_cap; /* 0: off */
  char *skel;
  size_t skel_len, skel_alloc;
  int skel_over;
  int64_t skel_over_off;
  char skel_over_path[DLTC_ERROR_PATH_SIZE];
  /* row captures */
  size_t ncap;
  int32_t *cap_node; /* node per capture, -1: the record itself */
  struct capval *caps;
  size_t caprows, capalloc; /* rows; entries allocated */
  char *arena;
  size_t arena_len, arena_cap;
  int infer, mode_columns, mode_data_type, mode_tables, child_tables, dlt_ids;
  char *load_id;
  size_t load_id_len;
  char *root_name;
  struct {
    char *key; /* components joined by \x1f */
    size_t len;
    char *name;
  } * names;
  size_t nnames;
  int64_t batch_rows;
  int max_depth;
  int64_t max_string;
  struct dltc_decoder_stats st;
  char *scratch; /* decoded keys / strings that cannot go straight to a column */
  size_t scratch_cap;
  int64_t *marks_doc, *marks_rec, *marks_alt;
  size_t marks_cap;
  struct frame *frames;        /* 3 x (max_depth + 8): the path, a saved path, a spare */
  size_t nframes;              /* max_depth + 8 */
  struct pending_reject *pend; /* rejects of the current root record */
  int npend, cappend;
  uint8_t rnd[4096];
  size_t rnd_pos;
  /* the compiled plan, for dltc_decoder_reset: its nodes, tables and columns */
  size_t plan_nnodes, plan_ntables;
  size_t plan_ncols[2];
};

struct parser {
  struct dltc_decoder *d;
  struct dltc_schema *s;
  const char *base, *p, *end;
  struct dltc_error *err;
  int depth;
  int npath;
  const char *url;
  size_t url_len;
  int discard;        /* current root record is dropped (discard_row) */
  const char *vstart; /* start of the value being stored (freeze errors point here) */
  size_t nsteps;      /* records path steps for this document */
  int64_t caprow;     /* capture row of the current root record */
};

/* value kinds reuse enum dltc_type: TEXT, BIGINT, DOUBLE, BOOL, JSON */
struct value {
  int kind;
  int64_t i;
  double f;
  const char *str; /* decoded text (TEXT) or raw JSON (JSON) */
  size_t n;
};

/* ---- errors (out of line) ---------------------------------------------------------- */

static size_t path_format(const struct parser *ps, char *buf, size_t cap) {
  size_t k = 0;
  if (cap < 2)
    return 0;
  buf[k++] = '$';
  for (int i = 0; i < ps->npath && k + 1 < cap; i++) {
    const struct frame *f = &ps->d->frames[i];
    int w;
    if (f->key)
      w = snprintf(buf + k, cap - k, ".%.*s", (int)f->keylen, f->key);
    else
      w = snprintf(buf + k, cap - k, "[%lld]", (long long)f->idx);
    if (w < 0)
      break;
    k += (size_t)w;
    if (k >= cap)
      k = cap - 1;
  }
  buf[k] = '\0';
  return k;
}

/* Record the first (innermost) error: code, message (fmt with one long long and/or
 * two strings; no va_list, which clang-tidy 14 misreads across files), byte offset
 * ps->p and the JSON path. Returns the recorded code. */
NOINLINE static int fail_fmt(struct parser *ps, int code, const char *fmt, long long v,
                             const char *s1, const char *s2) {
  struct dltc_error *err = ps->err;
  if (!err)
    return code;
  if (err->code)
    return err->code;
  err->code = code;
  if (s1)
    snprintf(err->msg, sizeof err->msg, fmt, s1, s2);
  else
    snprintf(err->msg, sizeof err->msg, fmt, v);
  err->offset = ps->p - ps->base;
  path_format(ps, err->path, sizeof err->path);
  return code;
}

/* A constant message (or one with a single %lld). */
#define fail(ps, code, msg) fail_fmt(ps, code, "%s", 0, msg, NULL)
#define fail_ll(ps, code, fmt, v) fail_fmt(ps, code, fmt, (long long)(v), NULL, NULL)

/* An error that happened below (e.g. ENOMEM in a builder): add offset and path. */
NOINLINE static int fail_from(struct parser *ps, int code) {
  if (ps->err) {
    ps->err->offset = ps->p - ps->base;
    path_format(ps, ps->err->path, sizeof ps->err->path);
    if (!ps->err->code)
      ps->err->code = code;
  }
  return code;
}

/* ---- scanning ------------------------------------------------------------------------ */

static inline void skip_ws(struct parser *ps) {
  const char *p = ps->p, *end = ps->end;
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    p++;
  ps->p = p;
}

static inline int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static int hex4(const char *p, const char *end, unsigned *out) {
  if (end - p < 4)
    return -1;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(p[i]);
    if (h < 0)
      return -1;
    v = v << 4 | (unsigned)h;
  }
  *out = v;
  return 0;
}

/* Validate one UTF-8 sequence starting at p (lead byte >= 0x80); returns its length or 0. */
static inline int utf8_seq(const unsigned char *p, const unsigned char *end) {
  unsigned c = p[0];
  if (c < 0xC2)
    return 0;
  if (c < 0xE0) {
    if (end - p < 2 || (p[1] & 0xC0) != 0x80)
      return 0;
    return 2;
  }
  if (c < 0xF0) {
    if (end - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
      return 0;
    if (c == 0xE0 && p[1] < 0xA0)
      return 0;
    if (c == 0xED && p[1] > 0x9F)
      return 0; /* UTF-16 surrogates */
    return 3;
  }
  if (c < 0xF5) {
    if (end - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
      return 0;
    if (c == 0xF0 && p[1] < 0x90)
      return 0;
    if (c == 0xF4 && p[1] > 0x8F)
      return 0;
    return 4;
  }
  return 0;
}

/* Write code point u (a valid scalar value) as UTF-8; returns the bytes written. */
static inline size_t put_utf8(char *o, unsigned u) {
  if (u < 0x80) {
    o[0] = (char)u;
    return 1;
  }
  if (u < 0x800) {
    o[0] = (char)(0xC0 | (u >> 6));
    o[1] = (char)(0x80 | (u & 0x3F));
    return 2;
  }
  if (u < 0x10000) {
    o[0] = (char)(0xE0 | (u >> 12));
    o[1] = (char)(0x80 | ((u >> 6) & 0x3F));
    o[2] = (char)(0x80 | (u & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (u >> 18));
  o[1] = (char)(0x80 | ((u >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((u >> 6) & 0x3F));
  o[3] = (char)(0x80 | (u & 0x3F));
  return 4;
}

enum { SCAN_NOROOM = -1 };

/* At '"': validate the string (UTF-8, escapes, surrogate pairs, control characters)
 * and leave ps->p after the closing quote; *start and *len give the raw content and
 * *esc whether it has escapes. With dst (room bytes), also write the unescaped text
 * there in the same pass and put its length in *len; if it may not fit, return
 * SCAN_NOROOM with ps->p unchanged. The output is never longer than the input, so
 * a 16-byte block store at o is in bounds while (p - s0) + 16 <= room. Reads stay
 * in [ps->p, ps->end). always_inline: the dst == NULL copy loses the stores. */
__attribute__((always_inline)) static inline int
scan_impl(struct parser *ps, const char **start, size_t *len, int *esc, char *dst, size_t room) {
  const char *p = ps->p + 1, *end = ps->end;
  const char *s0 = p;
  char *o = dst;
  int has_esc = 0;
  *esc = 0; /* defined outputs on every path (the analyzer cannot see fail() != 0) */
  *len = 0;
  *start = s0;
  for (;;) {
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1F);
    while (end - p >= 16) {
      if (dst && (size_t)(p - s0) + 16 > room)
        return SCAN_NOROOM;
      __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
      if (dst)
        _mm_storeu_si128((__m128i *)(void *)o, v);
      __m128i m = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bs));
      m = _mm_or_si128(m, _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl));
      unsigned mask = (unsigned)_mm_movemask_epi8(m) | (unsigned)_mm_movemask_epi8(v);
      if (mask) {
        unsigned k = (unsigned)__builtin_ctz(mask);
        p += k;
        if (dst)
          o += k;
        goto special;
      }
      p += 16;
      if (dst)
        o += 16;
    }
#endif
    while (p < end) {
      unsigned char c = (unsigned char)*p;
      if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80)
        goto special;
      if (dst) {
        if ((size_t)(p - s0) + 16 > room)
          return SCAN_NOROOM;
        *o++ = (char)c;
      }
      p++;
    }
    ps->p = p;
    return fail(ps, DLTC_EPARSE, "unterminated string");
  special:;
    if (dst && (size_t)(p - s0) + 16 > room)
      return SCAN_NOROOM;
    unsigned char c = (unsigned char)*p;
    if (c == '"') {
      if (UNLIKELY((int64_t)(p - s0) > ps->d->max_string)) {
        ps->p = p + 1;
        return fail_ll(ps, DLTC_ELIMIT, "string longer than max_string (%lld bytes)",
                       ps->d->max_string);
      }
      ps->p = p + 1;
      *start = s0;
      *len = dst ? (size_t)(o - dst) : (size_t)(p - s0);
      *esc = has_esc;
      return 0;
    }
    if (c == '\\') {
      has_esc = 1;
      if (end - p < 2) {
        ps->p = p;
        return fail(ps, DLTC_EPARSE, "unterminated string");
      }
      char e = p[1];
      if (e == 'u') {
        unsigned u;
        if (hex4(p + 2, end, &u)) {
          ps->p = p;
          return fail(ps, DLTC_EPARSE, "bad \\u escape");
        }
        p += 6;
        if (u >= 0xD800 && u <= 0xDBFF) {
          unsigned lo;
          if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, end, &lo) || lo < 0xDC00 ||
              lo > 0xDFFF) {
            ps->p = p - 6;
            return fail_ll(ps, DLTC_EPARSE, "lone surrogate \\u%04llX", u);
          }
          p += 6;
          u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        } else if (u >= 0xDC00 && u <= 0xDFFF) {
          ps->p = p - 6;
          return fail_ll(ps, DLTC_EPARSE, "lone surrogate \\u%04llX", u);
        }
        if (dst)
          o += put_utf8(o, u);
        continue;
      }
      char out;
      switch (e) {
      case '"': out = '"'; break;
      case '\\': out = '\\'; break;
      case '/': out = '/'; break;
      case 'b': out = '\b'; break;
      case 'f': out = '\f'; break;
      case 'n': out = '\n'; break;
      case 'r': out = '\r'; break;
      case 't': out = '\t'; break;
      default: ps->p = p; return fail(ps, DLTC_EPARSE, "bad escape");
      }
      if (dst)
        *o++ = out;
      p += 2;
      continue;
    }
    if (c < 0x20) {
      ps->p = p;
      return fail(ps, DLTC_EPARSE, "control character in string");
    }
    int n = utf8_seq((const unsigned char *)p, (const unsigned char *)end);
    if (!n) {
      ps->p = p;
      return fail(ps, DLTC_EPARSE, "invalid UTF-8");
    }
    if (dst) {
      memcpy(o, p, (size_t)n);
      o += n;
    }
    p += n;
  }
}

static int scan_string(struct parser *ps, const char **start, size_t *len, int *esc) {
  return scan_impl(ps, start, len, esc, NULL, 0);
}

/* scan_impl writing to dst: the one-pass path of text columns. */
static int scan_copy(struct parser *ps, char *dst, size_t room, size_t *len) {
  const char *start;
  int esc;
  return scan_impl(ps, &start, len, &esc, dst, room);
}

/* Unescape a validated raw string span into dst (room for n bytes); returns length. */
static size_t unescape(const char *s, size_t n, char *dst) {
  const char *end = s + n;
  char *o = dst;
  while (s < end) {
    const char *bs = memchr(s, '\\', (size_t)(end - s));
    if (!bs) {
      memcpy(o, s, (size_t)(end - s));
      o += end - s;
      break;
    }
    memcpy(o, s, (size_t)(bs - s));
    o += bs - s;
    s = bs + 1;
    char e = *s++;
    switch (e) {
    case 'b': *o++ = '\b'; break;
    case 'f': *o++ = '\f'; break;
    case 'n': *o++ = '\n'; break;
    case 'r': *o++ = '\r'; break;
    case 't': *o++ = '\t'; break;
    case 'u': {
      unsigned u = 0;
      hex4(s, end, &u);
      s += 4;
      if (u >= 0xD800 && u <= 0xDBFF) {
        unsigned lo = 0xDC00;
        hex4(s + 2, end, &lo);
        s += 6;
        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
      }
      if (u < 0x80)
        *o++ = (char)u;
      else if (u < 0x800) {
        *o++ = (char)(0xC0 | (u >> 6));
        *o++ = (char)(0x80 | (u & 0x3F));
      } else if (u < 0x10000) {
        *o++ = (char)(0xE0 | (u >> 12));
        *o++ = (char)(0x80 | ((u >> 6) & 0x3F));
        *o++ = (char)(0x80 | (u & 0x3F));
      } else {
        *o++ = (char)(0xF0 | (u >> 18));
        *o++ = (char)(0x80 | ((u >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((u >> 6) & 0x3F));
        *o++ = (char)(0x80 | (u & 0x3F));
      }
      break;
    }
    default: *o++ = e; break; /* " \ / */
    }
  }
  return (size_t)(o - dst);
}

static int scratch_reserve(struct parser *ps, size_t n) {
  struct dltc_decoder *d = ps->d;
  if (n <= d->scratch_cap)
    return 0;
  size_t c = d->scratch_cap ? d->scratch_cap : 256;
  while (c < n)
    c *= 2;
  char *p = dltc__realloc(d->scratch, c);
  if (!p)
    return fail(ps, DLTC_ENOMEM, "out of memory (scratch)");
  d->scratch = p;
  d->scratch_cap = c;
  return 0;
}

static int skip_value(struct parser *ps);

static int skip_container(struct parser *ps, char close) {
  if (UNLIKELY(++ps->depth > ps->d->max_depth))
    return fail_ll(ps, DLTC_ELIMIT, "nesting deeper than max_depth (%lld)", ps->d->max_depth);
  ps->p++;
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == close) {
    ps->p++;
    ps->depth--;
    return 0;
  }
  for (;;) {
    int rc;
    if (close == '}') {
      if (ps->p >= ps->end || *ps->p != '"')
        return fail(ps, DLTC_EPARSE, "expected a key");
      const char *ks;
      size_t kn;
      int ke;
      if ((rc = scan_string(ps, &ks, &kn, &ke)))
        return rc;
      skip_ws(ps);
      if (ps->p >= ps->end || *ps->p != ':')
        return fail(ps, DLTC_EPARSE, "expected ':'");
      ps->p++;
      skip_ws(ps);
    }
    if ((rc = skip_value(ps)))
      return rc;
    skip_ws(ps);
    if (ps->p >= ps->end)
      return fail(ps, DLTC_EPARSE, "unexpected end of input");
    if (*ps->p == ',') {
      ps->p++;
      skip_ws(ps);
      continue;
    }
    if (*ps->p == close) {
      ps->p++;
      ps->depth--;
      return 0;
    }
    return fail(ps, DLTC_EPARSE, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

static int match_lit(struct parser *ps, const char *lit, size_t n) {
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0)
    return fail(ps, DLTC_EPARSE, "invalid literal");
  ps->p += n;
  return 0;
}

/* Validate and skip one value (no output). */
static int skip_value(struct parser *ps) {
  if (ps->p >= ps->end)
    return fail(ps, DLTC_EPARSE, "unexpected end of input");
  switch (*ps->p) {
  case '{': return skip_container(ps, '}');
  case '[': return skip_container(ps, ']');
  case '"': {
    const char *s;
    size_t n;
    int e;
    return scan_string(ps, &s, &n, &e);
  }
  case 't': return match_lit(ps, "true", 4);
  case 'f': return match_lit(ps, "false", 5);
  case 'n': return match_lit(ps, "null", 4);
  default: {
    int64_t i;
    double f;
    const char *e;
    int k = dltc__num_parse(ps->p, ps->end, &e, &i, &f);
    if (k == DLTC_NUM_ERR) {
      ps->p = e;
      return fail(ps, DLTC_EPARSE, "invalid number or value");
    }
    if (k == DLTC_NUM_TOOLONG)
      return fail(ps, DLTC_ELIMIT, "number longer than 4096 bytes");
    ps->p = e;
    return 0;
  }
  }
}

/* ---- ids ------------------------------------------------------------------------------ */

static int random_bytes(struct parser *ps, uint8_t *out, size_t n) {
  struct dltc_decoder *d = ps->d;
  if (d->rnd_pos + n > sizeof d->rnd) {
    size_t got = 0;
    while (got < sizeof d->rnd) {
      ssize_t r = getrandom(d->rnd + got, sizeof d->rnd - got, 0);
      if (r <= 0)
        return fail(ps, DLTC_EINVAL, "getrandom failed");
      got += (size_t)r;
    }
    d->rnd_pos = 0;
  }
  memcpy(out, d->rnd + d->rnd_pos, n);
  d->rnd_pos += n;
  return 0;
}

#define DLT_ID_BYTES 10

/* ---- columns and contracts ----------------------------------------------------------------- */

static int add_pending(struct parser *ps, int32_t node, const char *reason, int suffix_node) {
  struct dltc_decoder *d = ps->d;
  if (d->npend >= REJECTS_MAX_PENDING) {
    d->st.rejects_unrecorded++;
    return 0;
  }
  if (d->npend == d->cappend) {
    int c = d->cappend ? d->cappend * 2 : 8;
    struct pending_reject *np = dltc__realloc(d->pend, (size_t)c * sizeof *np);
    if (!np)
      return fail(ps, DLTC_ENOMEM, "out of memory (rejects)");
    d->pend = np;
    d->cappend = c;
  }
  char buf[DLTC_ERROR_PATH_SIZE];
  size_t k = path_format(ps, buf, sizeof buf);
  if (suffix_node && node >= 0) {
    const char *comps[64];
    size_t lens[64];
    int n = dltc__node_path(ps->s, node, comps, lens, 64);
    for (int i = 0; i < n && k + lens[i] + 2 < sizeof buf; i++) {
      buf[k++] = '.';
      memcpy(buf + k, comps[i], lens[i]);
      k += lens[i];
    }
    buf[k] = '\0';
  }
  char *p = dltc__strndup(buf, k);
  if (!p)
    return fail(ps, DLTC_ENOMEM, "out of memory (rejects)");
  d->pend[d->npend].path = p;
  d->pend[d->npend].reason = reason;
  d->pend[d->npend].node = node;
  d->pend[d->npend].row = node >= 0 ? ps->s->tables[ps->s->nodes[node].table].nrows : -1;
  d->npend++;
  return 0;
}

enum { STORE_OK = 0, STORE_SKIP = -1 };

/* New keys of a settled table are new columns (contract "columns"); a table made
 * by this document takes its columns with it (dlt: they come with the new table). */
static inline int table_settled(const struct dltc_table *t) { return t->declared || t->settled; }

/* Apply a contract mode to a violation. Returns 0 to proceed (evolve), STORE_SKIP to
 * drop the value, or an error. */
static int contract(struct parser *ps, int mode, int32_t node, const char *reason) {
  switch (mode) {
  case DLTC_MODE_EVOLVE: return 0;
  case DLTC_MODE_FREEZE: {
    const char *comps[64];
    size_t lens[64];
    char name[512];
    size_t k = 0;
    int n = node >= 0 ? dltc__node_path(ps->s, node, comps, lens, 64) : 0;
    for (int i = 0; i < n && k + lens[i] + 2 < sizeof name; i++) {
      if (i)
        name[k++] = '.';
      memcpy(name + k, comps[i], lens[i]);
      k += lens[i];
    }
    name[k] = '\0';
    if (ps->vstart && ps->vstart <= ps->p)
      ps->p = ps->vstart; /* point at the offending value */
    return fail_fmt(ps, DLTC_ESCHEMA, "contract violation (%s) on frozen schema: %s", 0, reason,
                    name);
  }
  case DLTC_MODE_DISCARD_ROW: {
    int rc = add_pending(ps, node, reason, 0);
    if (rc)
      return rc;
    ps->discard = 1;
    return STORE_SKIP;
  }
  default: {
    int rc = add_pending(ps, node, reason, 0);
    return rc ? rc : STORE_SKIP;
  }
  }
}

/* Python's datetime range, years 1..9999 (dlt cannot make other timestamps). */
static inline int us_in_range(int64_t us) {
  return us >= -62135596800000000LL && us < 253402300800000000LL;
}

static int infer_type(const struct value *v) {
  if (v->kind == DLTC_T_TEXT) {
    int64_t us;
    int has_time;
    if (v->n >= 11 && dltc__iso_parse(v->str, v->n, &us, &has_time) == 0 && has_time &&
        us_in_range(us))
      return DLTC_T_TIMESTAMP;
  }
  return v->kind;
}

/* text -> int64 as int(s.strip()) / int(s[2:], 16) for "0x". -1: not an integer,
 * -2: an integer beyond int64. */
static int text_to_i64(const char *s, size_t n, int64_t *out) {
  while (n && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) {
    s++;
    n--;
  }
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
    n--;
  if (!n)
    return -1;
  int base = 10;
  int neg = 0;
  if (n > 2 && s[0] == '0' && s[1] == 'x') {
    base = 16;
    s += 2;
    n -= 2;
  }
  if (base == 10 && (*s == '+' || *s == '-')) {
    neg = *s == '-';
    s++;
    n--;
  }
  if (!n)
    return -1;
  uint64_t v = 0;
  int over = 0;
  for (size_t i = 0; i < n; i++) {
    int dgt = base == 16 ? hexval(s[i]) : (s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : -1);
    if (dgt < 0)
      return -1;
    if (v > (UINT64_MAX - (uint64_t)dgt) / (uint64_t)base)
      over = 1;
    else
      v = v * (uint64_t)base + (uint64_t)dgt;
  }
  if (over || (!neg && v > (uint64_t)INT64_MAX) || (neg && v > (uint64_t)INT64_MAX + 1))
    return -2; /* an integer, but beyond int64 */
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}

static int text_to_f64(const char *s, size_t n, double *out) {
  char buf[128];
  while (n && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) {
    s++;
    n--;
  }
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
    n--;
  if (!n || n >= sizeof buf)
    return -1;
  if (n > 2 && s[0] == '0' && s[1] == 'x') {
    int64_t i;
    if (text_to_i64(s, n, &i))
      return -1;
    *out = (double)i;
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' ||
          c == 'i' || c == 'n' || c == 'f' || c == 't' || c == 'y' || c == 'a' || c == 'I' ||
          c == 'N' || c == 'F' || c == 'T' || c == 'Y' || c == 'A'))
      return -1;
  }
  memcpy(buf, s, n);
  buf[n] = '\0';
  char *e;
  double v = dltc__strtod_c(buf, &e);
  if (e != buf + n)
    return -1;
  *out = v;
  return 0;
}

static int text_to_bool(const char *s, size_t n, int *out) {
  static const char *const yes[] = {"yes", "true", "t", "y", "1"};
  static const char *const no[] = {"no", "false", "f", "n", "0"};
  char low[8];
  if (n == 0 || n > 5)
    return -1;
  for (size_t i = 0; i < n; i++)
    low[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
  for (int i = 0; i < 5; i++) {
    if (strlen(yes[i]) == n && memcmp(low, yes[i], n) == 0) {
      *out = 1;
      return 0;
    }
    if (strlen(no[i]) == n && memcmp(low, no[i], n) == 0) {
      *out = 0;
      return 0;
    }
  }
  return -1;
}

/* Epoch seconds -> microseconds as dlt gets them (Python's datetime.fromtimestamp:
 * modf, fraction * 1e6 in double, rounded half to even), so large values keep their
 * microseconds and 2.5e-6 s gives 2 us as in Python. */
static int secs_to_us(double secs, int64_t *us) {
  if (!(secs > -9.2e12 && secs < 9.2e12))
    return -1;
  double s = __builtin_trunc(secs);
  double r = __builtin_nearbyint((secs - s) * 1e6); /* exact fraction; ties to even */
  *us = (int64_t)s * 1000000 + (int64_t)r;
  return 0;
}

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0)))
    q--;
  return q;
}

/* Validate that s[0,n) is one JSON document (for text -> json coercion). */
static int is_json_text(struct parser *ps, const char *s, size_t n) {
  struct parser sub = *ps;
  struct dltc_error e;
  dltc_error_reset(&e);
  sub.base = sub.p = s;
  sub.end = s + n;
  sub.err = &e;
  sub.depth = ps->depth;
  sub.npath = 0;
  skip_ws(&sub);
  if (skip_value(&sub))
    return 0;
  skip_ws(&sub);
  return sub.p == sub.end;
}

/* append_coerced's results besides 0 and error codes (which are > 0). */
enum { COERCE_NONE = -1, COERCE_NOHOLD = -2 };

/* Append v to column ci of table t, coercing as dlt does. Returns 0, COERCE_NONE if
 * the value does not coerce (dlt makes a variant), COERCE_NOHOLD if dlt's coercion
 * gives a value no column holds (an integral double beyond int64: dlt fails), or an
 * error code (offset and path set). */
static int append_coerced(struct parser *ps, struct dltc_col *col, const struct value *v) {
  struct dltc_error *err = ps->err;
  int rc = 0;
  int to = col->type;
  switch (to) {
  case DLTC_T_TEXT:
    switch (v->kind) {
    case DLTC_T_TEXT: rc = dltc_col_append_str(col, v->str, v->n, err); break;
    case DLTC_T_BIGINT: {
      char b[32];
      size_t n = dltc__fmt_i64(v->i, b);
      rc = dltc_col_append_str(col, b, n, err);
      break;
    }
    case DLTC_T_DOUBLE: {
      char b[48];
      size_t n = dltc__fmt_f64(v->f, b);
      rc = dltc_col_append_str(col, b, n, err);
      break;
    }
    case DLTC_T_BOOL:
      rc = dltc_col_append_str(col, v->i ? "True" : "False", v->i ? 4 : 5, err);
      break;
    case DLTC_T_JSON: rc = dltc_col_append_str(col, v->str, v->n, err); break;
    default: return COERCE_NONE;
    }
    break;
  case DLTC_T_JSON:
    if (v->kind == DLTC_T_JSON)
      rc = dltc_col_append_str(col, v->str, v->n, err);
    else if (v->kind == DLTC_T_TEXT && is_json_text(ps, v->str, v->n))
      rc = dltc_col_append_str(col, v->str, v->n, err);
    else
      return COERCE_NONE;
    break;
  case DLTC_T_BIGINT: {
    int64_t x;
    if (v->kind == DLTC_T_BIGINT)
      x = v->i;
    else if (v->kind == DLTC_T_DOUBLE) {
      if (!__builtin_isfinite(v->f) || v->f != __builtin_trunc(v->f))
        return COERCE_NONE;
      if (!(v->f >= -9223372036854775808.0 && v->f < 9223372036854775808.0))
        return COERCE_NOHOLD; /* dlt: int(v), which no bigint column holds */
      x = (int64_t)v->f;
    } else if (v->kind == DLTC_T_TEXT) {
      int r = text_to_i64(v->str, v->n, &x);
      if (r)
        return r == -2 ? COERCE_NOHOLD : COERCE_NONE;
    } else
      return COERCE_NONE;
    rc = dltc_col_append_i64(col, x, err);
    break;
  }
  case DLTC_T_DOUBLE: {
    double x;
    if (v->kind == DLTC_T_DOUBLE)
      x = v->f;
    else if (v->kind == DLTC_T_BIGINT)
      x = (double)v->i;
    else if (v->kind == DLTC_T_TEXT) {
      if (text_to_f64(v->str, v->n, &x))
        return COERCE_NONE;
    } else
      return COERCE_NONE;
    rc = dltc_col_append_f64(col, x, err);
    break;
  }
  case DLTC_T_BOOL: {
    int x;
    if (v->kind == DLTC_T_BOOL || v->kind == DLTC_T_BIGINT)
      x = v->i != 0;
    else if (v->kind == DLTC_T_DOUBLE)
      x = v->f != 0;
    else if (v->kind == DLTC_T_TEXT) {
      if (text_to_bool(v->str, v->n, &x))
        return COERCE_NONE;
    } else
      return COERCE_NONE;
    rc = dltc_col_append_bool(col, x, err);
    break;
  }
  case DLTC_T_TIMESTAMP:
  case DLTC_T_DATE: {
    int64_t us;
    int has_time;
    double secs;
    if (v->kind == DLTC_T_TEXT) {
      /* as dlt: ISO-8601 (pendulum), else a numeric string is epoch seconds */
      if (dltc__iso_parse(v->str, v->n, &us, &has_time) == 0) {
      } else if (to == DLTC_T_TIMESTAMP && !memchr(v->str, 'x', v->n) &&
                 text_to_f64(v->str, v->n, &secs) == 0) {
        if (secs_to_us(secs, &us))
          return COERCE_NONE;
      } else
        return COERCE_NONE;
    } else if (v->kind == DLTC_T_BIGINT) {
      if (v->i > INT64_MAX / 1000000 || v->i < INT64_MIN / 1000000)
        return COERCE_NONE;
      us = v->i * 1000000;
    } else if (v->kind == DLTC_T_DOUBLE) {
      if (secs_to_us(v->f, &us))
        return COERCE_NONE;
    } else
      return COERCE_NONE;
    if (!us_in_range(us))
      return COERCE_NONE;
    if (to == DLTC_T_TIMESTAMP)
      rc = dltc_col_append_i64(col, us, err);
    else {
      int64_t days = floor_div(us, 86400000000LL);
      if (days > INT32_MAX || days < INT32_MIN)
        return COERCE_NONE;
      rc = dltc_col_append_i32(col, (int32_t)days, err);
    }
    break;
  }
  default: return COERCE_NONE;
  }
  return rc ? fail_from(ps, rc) : 0;
}

/* Make sure the current row of col has no value yet (a repeated key keeps the last). */
static inline void clear_dup(struct dltc_col *col, int64_t row) {
  if (UNLIKELY(col->length > row))
    dltc_col_truncate(col, row);
}

/* Store a scalar (or raw JSON) value at node. */
static int store(struct parser *ps, int32_t node, const struct value *v) {
  struct dltc_schema *s = ps->s;
  struct dltc_node *nd = &s->nodes[node];
  int32_t ti = nd->table;
  int rc;
  if (UNLIKELY(nd->main_type == DLTC_T_NONE)) {
    if (!nd->declared && !ps->d->infer)
      return 0;
    if (table_settled(&s->tables[ti])) {
      rc = contract(ps, ps->d->mode_columns, node, "new_column");
      if (rc == STORE_SKIP) {
        ps->d->st.rejects_new_column++;
        return 0;
      }
      if (rc)
        return rc;
    }
    if (dltc__col_add(s, ti, node, infer_type(v), 0, NULL, ps->err) < 0)
      return fail_from(ps, ps->err ? ps->err->code : DLTC_ENOMEM);
    nd = &s->nodes[node];
  }
  struct dltc_table *t = &s->tables[ti];
  struct dltc_col *col = &t->cols[nd->col[nd->main_type]];
  clear_dup(col, t->nrows);
  rc = append_coerced(ps, col, v);
  if (LIKELY(rc >= 0))
    return rc; /* stored, or an error */
  if (rc == COERCE_NONE) {
    /* does not coerce: a variant column named for the value's kind */
    int32_t vc = nd->col[v->kind];
    if (vc < 0 || v->kind == nd->main_type) {
      rc = contract(ps, ps->d->mode_data_type, node, "data_type");
      if (rc == STORE_SKIP) {
        ps->d->st.rejects_data_type++;
        return 0;
      }
      if (rc)
        return rc;
      /* typed as dlt infers it (an ISO string: timestamp) */
      vc = dltc__col_add(s, ti, node, infer_type(v), v->kind, NULL, ps->err);
      if (vc < 0)
        return fail_from(ps, ps->err ? ps->err->code : DLTC_ENOMEM);
      ps->d->st.variants++;
    }
    col = &t->cols[vc];
    clear_dup(col, t->nrows);
    rc = append_coerced(ps, col, v);
    if (LIKELY(rc >= 0))
      return rc;
  }
  /* the variant (a timestamp) does not take it either, or dlt's coercion gives a
   * value no column holds: dlt raises (CannotCoerceColumnException or at load).
   * evolve cannot help; the discard modes drop it as usual. */
  if (ps->d->mode_data_type == DLTC_MODE_EVOLVE) {
    if (ps->vstart && ps->vstart <= ps->p)
      ps->p = ps->vstart;
    return fail(ps, DLTC_ESCHEMA, "value coerces to nothing its column or variant can hold");
  }
  rc = contract(ps, ps->d->mode_data_type, node, "data_type");
  if (rc == STORE_SKIP) {
    ps->d->st.rejects_data_type++;
    return 0;
  }
  return rc;
}

/* ---- records ------------------------------------------------------------------------------ */

static int parse_value(struct parser *ps, int32_t node);
static int capture_value(struct parser *ps, int32_t node, const char *vs);
static int parse_record(struct parser *ps, int32_t ti, const char *parent_id, size_t parent_id_len,
                        int64_t idx);

static inline int push_key(struct parser *ps, const char *k, size_t n) {
  if (UNLIKELY(ps->npath > ps->d->max_depth + 2))
    return fail_ll(ps, DLTC_ELIMIT, "nesting deeper than max_depth (%lld)", ps->d->max_depth);
  struct frame *f = &ps->d->frames[ps->npath++];
  f->key = k;
  f->keylen = (uint32_t)n;
  return 0;
}

static inline int push_idx(struct parser *ps, int64_t i) {
  if (UNLIKELY(ps->npath > ps->d->max_depth + 2))
    return fail_ll(ps, DLTC_ELIMIT, "nesting deeper than max_depth (%lld)", ps->d->max_depth);
  struct frame *f = &ps->d->frames[ps->npath++];
  f->key = NULL;
  f->idx = i;
  return 0;
}

/* After an array element whose index frame is on the path: consume ',' (*more = 1) or the
 * closing ']' (*more = 0, depth restored); pops the element's frame either way. */
static inline int array_next(struct parser *ps, int *more) {
  skip_ws(ps);
  if (UNLIKELY(ps->p >= ps->end))
    return fail(ps, DLTC_EPARSE, "unexpected end of input in array");
  if (*ps->p == ',') {
    ps->npath--;
    ps->p++;
    skip_ws(ps);
    *more = 1;
    return 0;
  }
  if (*ps->p == ']') {
    ps->npath--;
    ps->p++;
    ps->depth--;
    *more = 0;
    return 0;
  }
  return fail(ps, DLTC_EPARSE, "expected ',' or ']'");
}

/* At '{': flatten the object's keys under object level obj. */
static int parse_object(struct parser *ps, int32_t obj) {
  struct dltc_schema *s = ps->s;
  if (UNLIKELY(++ps->depth > ps->d->max_depth))
    return fail_ll(ps, DLTC_ELIMIT, "nesting deeper than max_depth (%lld)", ps->d->max_depth);
  ps->p++;
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == '}') {
    ps->p++;
    ps->depth--;
    return 0;
  }
  int32_t hint = s->nodes[obj].hint_first;
  int32_t prev = -1;
  for (;;) {
    int rc;
    if (UNLIKELY(ps->p >= ps->end || *ps->p != '"'))
      return fail(ps, DLTC_EPARSE, "expected a key");
    const char *kraw;
    size_t krawn;
    int kesc;
    if ((rc = scan_string(ps, &kraw, &krawn, &kesc)))
      return rc;
    const char *k = kraw;
    size_t kn = krawn;
    if (UNLIKELY(kesc)) {
      if ((rc = scratch_reserve(ps, krawn + 1)))
        return rc;
      kn = unescape(kraw, krawn, ps->d->scratch);
      k = ps->d->scratch;
    }
    int32_t node;
    if (LIKELY(hint >= 0 && s->nodes[hint].keylen == kn &&
               memcmp(s->nodes[hint].key, k, kn) == 0)) {
      node = hint;
    } else {
      uint32_t h = dltc__hash(k, kn);
      node = dltc__node_find(s, obj, k, kn, h);
      if (node < 0 && ps->d->infer) {
        node = dltc__node_add(s, obj, k, kn, h, s->nodes[obj].table, ps->err);
        if (node < 0)
          return fail_from(ps, ps->err ? ps->err->code : DLTC_ENOMEM);
      }
      if (node >= 0) {
        if (prev >= 0)
          s->nodes[prev].hint_next = node;
        else
          s->nodes[obj].hint_first = node;
      }
    }
    skip_ws(ps);
    if (UNLIKELY(ps->p >= ps->end || *ps->p != ':'))
      return fail(ps, DLTC_EPARSE, "expected ':'");
    ps->p++;
    skip_ws(ps);
    if ((rc = push_key(ps, kraw, krawn)))
      return rc;
    if (node >= 0) {
      const char *vs = ps->p;
      rc = parse_value(ps, node);
      if (UNLIKELY(s->nodes[node].captured) && !rc)
        rc = capture_value(ps, node, vs);
    } else
      rc = skip_value(ps);
    if (rc)
      return rc;
    skip_ws(ps);
    if (UNLIKELY(ps->p >= ps->end))
      return fail(ps, DLTC_EPARSE, "unexpected end of input in object");
    if (*ps->p == ',') {
      ps->npath--;
      ps->p++;
      skip_ws(ps);
      if (node >= 0) {
        prev = node;
        hint = s->nodes[node].hint_next;
      }
      continue;
    }
    if (*ps->p == '}') {
      ps->npath--;
      ps->p++;
      ps->depth--;
      return 0;
    }
    return fail(ps, DLTC_EPARSE, "expected ',' or '}'");
  }
}

static int child_table_name(struct dltc_decoder *d, struct dltc_table *t) {
  /* key joined by \x1f, looked up in the plan's names; else root_name + "__" + key */
  size_t len = 0;
  for (int i = 0; i < t->nkey; i++)
    len += t->key_len[i] + 2;
  char *j = dltc__malloc(len + 1);
  if (!j)
    return DLTC_ENOMEM;
  size_t k = 0;
  for (int i = 0; i < t->nkey; i++) {
    if (i)
      j[k++] = '\x1f';
    memcpy(j + k, t->key[i], t->key_len[i]);
    k += t->key_len[i];
  }
  for (size_t i = 0; i < d->nnames; i++)
    if (d->names[i].len == k && memcmp(d->names[i].key, j, k) == 0) {
      dltc__free(j);
      t->dlt_name = dltc__strndup(d->names[i].name, strlen(d->names[i].name));
      return t->dlt_name ? 0 : DLTC_ENOMEM;
    }
  const char *root = d->root_name ? d->root_name : "";
  size_t rl = strlen(root);
  char *name = dltc__malloc(rl + len + 3);
  if (!name) {
    dltc__free(j);
    return DLTC_ENOMEM;
  }
  memcpy(name, root, rl);
  size_t n = rl;
  for (int i = 0; i < t->nkey; i++) {
    if (n) {
      name[n++] = '_';
      name[n++] = '_';
    }
    memcpy(name + n, t->key[i], t->key_len[i]);
    n += t->key_len[i];
  }
  name[n] = '\0';
  dltc__free(j);
  t->dlt_name = name;
  return 0;
}

/* Create the child table for list node `node` (contract "columns" applies). Returns
 * the table index, -2 to skip the list, or -1 on error. */
static int32_t child_table_for(struct parser *ps, int32_t node) {
  struct dltc_schema *s = ps->s;
  int32_t ti = s->nodes[node].table;
  if (!s->nodes[node].declared && !ps->d->infer)
    return -2;
  const char *comps[128];
  size_t lens[128];
  int n = dltc__node_path(s, node, comps, lens, 128);
  if (n < 0) {
    fail(ps, DLTC_ELIMIT, "list path deeper than 128 keys");
    return -1;
  }
  /* one table per key, as dlt: {"k":[{"k":[..]}]} and {"k":{"k":[..]}} both feed
   * root__k__k (rows with parents in different tables) */
  const struct dltc_table *pt = &s->tables[ti];
  for (size_t i = 0; i < s->ntables; i++) {
    const struct dltc_table *o = &s->tables[i];
    if (o->nkey != pt->nkey + n)
      continue;
    int same = 1;
    for (int j = 0; j < o->nkey && same; j++) {
      const char *c = j < pt->nkey ? pt->key[j] : comps[j - pt->nkey];
      size_t cl = j < pt->nkey ? pt->key_len[j] : lens[j - pt->nkey];
      same = o->key_len[j] == cl && memcmp(o->key[j], c, cl) == 0;
    }
    if (same) {
      s->nodes[node].child_table = (int32_t)i;
      return (int32_t)i;
    }
  }
  /* a new table: contract "tables" (dlt's is_new_table). dlt applies it to the new table's
   * own rows, so under discard_row the parent row stays: both discard modes drop the list. */
  int mode =
      ps->d->mode_tables == DLTC_MODE_DISCARD_ROW ? DLTC_MODE_DISCARD_VALUE : ps->d->mode_tables;
  int rc = contract(ps, mode, node, "new_table");
  if (rc == STORE_SKIP) {
    ps->d->st.rejects_new_table++;
    return -2;
  }
  if (rc)
    return -1;
  int32_t ct = dltc__table_add(s, ti, comps, lens, n, ps->err);
  if (ct < 0) {
    fail_from(ps, ps->err ? ps->err->code : DLTC_ENOMEM);
    return -1;
  }
  struct dltc_table *t = &s->tables[ct];
  if (ps->d->dlt_ids) {
    if (child_table_name(ps->d, t)) {
      fail(ps, DLTC_ENOMEM, "out of memory (table name)");
      return -1;
    }
    static const char *const sysn[3] = {"_dlt_parent_id", "_dlt_list_idx", "_dlt_id"};
    static const int sysk[3] = {DLTC_SYS_PARENT_ID, DLTC_SYS_LIST_IDX, DLTC_SYS_ID};
    static const int syst[3] = {DLTC_T_TEXT, DLTC_T_BIGINT, DLTC_T_TEXT};
    for (int i = 0; i < 3; i++) {
      int32_t c = dltc__col_add(s, ct, -1, syst[i], 0, sysn[i], ps->err);
      if (c < 0) {
        fail_from(ps, ps->err ? ps->err->code : DLTC_ENOMEM);
        return -1;
      }
      s->tables[ct].sys[sysk[i]] = c;
    }
  }
  s->nodes[node].child_table = ct;
  return ct;
}

/* At '[' of a list value at node (child tables on). */
static int parse_list(struct parser *ps, int32_t node) {
  struct dltc_schema *s = ps->s;
  int32_t ct = s->nodes[node].child_table;
  if (ct < 0) {
    /* peek: an empty list creates nothing (dlt makes no table for []) */
    const char *q = ps->p + 1;
    while (q < ps->end && (*q == ' ' || *q == '\n' || *q == '\r' || *q == '\t'))
      q++;
    if (q < ps->end && *q == ']') {
      ps->p = q + 1;
      return 0;
    }
    ct = child_table_for(ps, node);
    if (ct == -1)
      return ps->err && ps->err->code ? ps->err->code : DLTC_ENOMEM;
    if (ct == -2)
      return skip_value(ps);
  }
  /* parent id: the value of the parent row's _dlt_id */
  char pid[64];
  size_t pidn = 0;
  int32_t pt = s->nodes[node].table;
  if (ps->d->dlt_ids) {
    struct dltc_table *ptab = &s->tables[pt];
    struct dltc_col *idc = &ptab->cols[ptab->sys[DLTC_SYS_ID]];
    int32_t a, b;
    memcpy(&a, idc->values.data + 4 * (size_t)ptab->nrows, 4);
    memcpy(&b, idc->values.data + 4 * (size_t)(ptab->nrows + 1), 4);
    pidn = (size_t)(b - a);
    if (pidn > sizeof pid)
      pidn = sizeof pid;
    memcpy(pid, idc->data.data + a, pidn);
  }
  if (UNLIKELY(++ps->depth > ps->d->max_depth))
    return fail_ll(ps, DLTC_ELIMIT, "nesting deeper than max_depth (%lld)", ps->d->max_depth);
  ps->p++;
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == ']') {
    ps->p++;
    ps->depth--;
    return 0;
  }
  for (int64_t idx = 0;; idx++) {
    int rc;
    if ((rc = push_idx(ps, idx)))
      return rc;
    if ((rc = parse_record(ps, ct, pid, pidn, idx)))
      return rc;
    int more = 0;
    if ((rc = array_next(ps, &more)))
      return rc;
    if (!more)
      return 0;
  }
}

static int parse_value(struct parser *ps, int32_t node) {
  struct dltc_schema *s = ps->s;
  struct value v;
  int rc;
  if (UNLIKELY(ps->p >= ps->end))
    return fail(ps, DLTC_EPARSE, "unexpected end of input");
  char c = *ps->p;
  struct dltc_node *nd = &s->nodes[node];
  ps->vstart = ps->p;
  if (UNLIKELY(nd->json) && c != '"') {
    const char *start = ps->p;
    if ((rc = skip_value(ps)))
      return rc;
    if (c == 'n')
      return 0;
    v.kind = DLTC_T_JSON;
    v.str = start;
    v.n = (size_t)(ps->p - start);
    return store(ps, node, &v);
  }
  switch (c) {
  case '"': {
    const char *raw;
    size_t rawn;
    int esc;
    /* fast path: a text column takes the string in one pass (validate + unescape +
     * copy); strings longer than the room left fall back to scan, reserve, copy */
    if (LIKELY(nd->main_type == DLTC_T_TEXT)) {
      struct dltc_table *t = &s->tables[nd->table];
      struct dltc_col *col = &t->cols[nd->col[DLTC_T_TEXT]];
      clear_dup(col, t->nrows);
      size_t room = col->data.data ? col->data.cap - col->data.len : 0;
      if (UNLIKELY(room < 256)) {
        if (!dltc_col_reserve_str(col, 4096, ps->err))
          return fail_from(ps, ps->err ? ps->err->code : DLTC_ENOMEM);
        room = col->data.cap - col->data.len;
      }
      if (room > (size_t)INT32_MAX - col->data.len)
        room = (size_t)INT32_MAX - col->data.len;
      size_t n = 0;
      rc = scan_copy(ps, (char *)col->data.data + col->data.len, room - 1, &n);
      if (LIKELY(rc == 0)) {
        if ((rc = dltc_col_commit_str(col, n, ps->err)))
          return fail_from(ps, rc);
        return 0;
      }
      if (rc != SCAN_NOROOM)
        return rc;
      if ((rc = scan_string(ps, &raw, &rawn, &esc)))
        return rc;
      char *dst = dltc_col_reserve_str(col, rawn, ps->err);
      if (!dst)
        return fail_from(ps, ps->err ? ps->err->code : DLTC_ENOMEM);
      n = esc ? unescape(raw, rawn, dst) : rawn;
      if (!esc)
        memcpy(dst, raw, rawn);
      if ((rc = dltc_col_commit_str(col, n, ps->err)))
        return fail_from(ps, rc);
      return 0;
    }
    if ((rc = scan_string(ps, &raw, &rawn, &esc)))
      return rc;
    v.kind = DLTC_T_TEXT;
    if (esc) {
      if ((rc = scratch_reserve(ps, rawn + 1)))
        return rc;
      v.n = unescape(raw, rawn, ps->d->scratch);
      v.str = ps->d->scratch;
    } else {
      v.str = raw;
      v.n = rawn;
    }
    return store(ps, node, &v);
  }
  case '{':
    if ((rc = parse_object(ps, node)))
      return rc;
    return 0;
  case '[':
    if (ps->d->child_tables)
      return parse_list(ps, node);
    {
      const char *start = ps->p;
      if ((rc = skip_value(ps)))
        return rc;
      v.kind = DLTC_T_JSON;
      v.str = start;
      v.n = (size_t)(ps->p - start);
      return store(ps, node, &v);
    }
  case 't':
    if ((rc = match_lit(ps, "true", 4)))
      return rc;
    v.kind = DLTC_T_BOOL;
    v.i = 1;
    return store(ps, node, &v);
  case 'f':
    if ((rc = match_lit(ps, "false", 5)))
      return rc;
    v.kind = DLTC_T_BOOL;
    v.i = 0;
    return store(ps, node, &v);
  case 'n': return match_lit(ps, "null", 4);
  default: {
    const char *e;
    int k = dltc__num_parse(ps->p, ps->end, &e, &v.i, &v.f);
    if (UNLIKELY(k <= 0)) {
      if (k == DLTC_NUM_TOOLONG)
        return fail(ps, DLTC_ELIMIT, "number longer than 4096 bytes");
      ps->p = e;
      return fail(ps, DLTC_EPARSE, "invalid number or value");
    }
    ps->p = e;
    if (k == DLTC_NUM_INT) {
      if (LIKELY(nd->main_type == DLTC_T_BIGINT)) {
        struct dltc_table *t = &s->tables[nd->table];
        struct dltc_col *col = &t->cols[nd->col[DLTC_T_BIGINT]];
        clear_dup(col, t->nrows);
        if ((rc = dltc_col_append_i64(col, v.i, ps->err)))
          return fail_from(ps, rc);
        return 0;
      }
      v.kind = DLTC_T_BIGINT;
    } else
      v.kind = DLTC_T_DOUBLE;
    return store(ps, node, &v);
  }
  }
}

/* Lookup-or-add of a fixed key ("value", "list") at a table's record level. */
static int32_t fixed_node(struct parser *ps, int32_t ti, const char *k) {
  struct dltc_schema *s = ps->s;
  int32_t root = s->tables[ti].root;
  size_t n = strlen(k);
  uint32_t h = dltc__hash(k, n);
  int32_t node = dltc__node_find(s, root, k, n, h);
  if (node < 0) {
    node = dltc__node_add(s, root, k, n, h, ti, ps->err);
    if (node < 0)
      fail_from(ps, ps->err ? ps->err->code : DLTC_ENOMEM);
  }
  return node;
}

static int write_ids(struct parser *ps, struct dltc_table *t, int32_t ti, const char *pid,
                     size_t pidn, int64_t idx) {
  struct dltc_decoder *d = ps->d;
  int rc;
  uint8_t raw[DLT_ID_BYTES];
  char id[32];
  if (t->sys[DLTC_SYS_PARENT_ID] >= 0) {
    /* child: digest128(f"{parent_id}_{table}_{idx}", 10) */
    char stackbuf[512];
    size_t nl = strlen(t->dlt_name);
    size_t need = pidn + nl + 24;
    char *m = stackbuf;
    if (need > sizeof stackbuf) {
      if ((rc = scratch_reserve(ps, need)))
        return rc;
      m = d->scratch;
    }
    size_t k = 0;
    if (pidn)
      memcpy(m, pid, pidn);
    k += pidn;
    m[k++] = '_';
    memcpy(m + k, t->dlt_name, nl);
    k += nl;
    m[k++] = '_';
    k += dltc__fmt_i64(idx, m + k);
    dltc__shake128(m, k, raw, DLT_ID_BYTES);
    struct dltc_col *pc = &t->cols[t->sys[DLTC_SYS_PARENT_ID]];
    struct dltc_col *ic = &t->cols[t->sys[DLTC_SYS_LIST_IDX]];
    if ((rc = dltc_col_append_str(pc, pid, pidn, ps->err)) ||
        (rc = dltc_col_append_i64(ic, idx, ps->err)))
      return fail_from(ps, rc);
  } else {
    if ((rc = random_bytes(ps, raw, DLT_ID_BYTES)))
      return rc;
  }
  size_t n = dltc__base64_nopad(raw, DLT_ID_BYTES, id);
  if ((rc = dltc_col_append_str(&t->cols[t->sys[DLTC_SYS_ID]], id, n, ps->err)))
    return fail_from(ps, rc);
  (void)ti;
  return 0;
}

/* Whether a value of node in row was already rejected in this record. */
static int rejected(const struct dltc_decoder *d, int32_t node, int64_t row) {
  for (int i = 0; i < d->npend; i++)
    if (d->pend[i].node == node && d->pend[i].row == row)
      return 1;
  return 0;
}

/* End the current row of table ti: nulls for columns without a value, and the
 * non-nullable check. */
static int finish_row(struct parser *ps, int32_t ti) {
  struct dltc_table *t = &ps->s->tables[ti];
  int64_t row = t->nrows;
  int rc;
  for (size_t c = 0; c < t->ncols; c++) {
    struct dltc_col *col = &t->cols[c];
    if (LIKELY(col->length > row))
      continue;
    if (UNLIKELY(!t->meta[c].nullable) && !ps->discard && !rejected(ps->d, t->meta[c].node, row)) {
      ps->vstart = NULL;
      rc = contract(ps, ps->d->mode_data_type, t->meta[c].node, "missing");
      if (rc == STORE_SKIP) {
        ps->d->st.rejects_missing++;
        /* the reject path names the field */
        if (ps->d->npend > 0) {
          struct pending_reject *pr = &ps->d->pend[ps->d->npend - 1];
          char buf[DLTC_ERROR_PATH_SIZE];
          snprintf(buf, sizeof buf, "%s.%s", pr->path, col->name);
          for (char *q = buf; *q; q++)
            if (*q == '\x1f')
              *q = '.';
          char *np = dltc__strndup(buf, strlen(buf));
          if (np) {
            dltc__free(pr->path);
            pr->path = np;
          }
        }
      } else if (rc)
        return rc;
    }
    t = &ps->s->tables[ti];
    col = &t->cols[c];
    if ((rc = dltc_col_append_null(col, ps->err)))
      return fail_from(ps, rc);
  }
  t->nrows++;
  return 0;
}

static int parse_record(struct parser *ps, int32_t ti, const char *pid, size_t pidn, int64_t idx) {
  struct dltc_schema *s = ps->s;
  struct dltc_table *t = &s->tables[ti];
  int rc;
  if (ps->d->dlt_ids && (rc = write_ids(ps, t, ti, pid, pidn, idx)))
    return rc;
  if (t->sys[DLTC_SYS_LOAD_ID] >= 0 &&
      (rc = dltc_col_append_str(&t->cols[t->sys[DLTC_SYS_LOAD_ID]], ps->d->load_id,
                                ps->d->load_id_len, ps->err)))
    return fail_from(ps, rc);
  if (ps->p >= ps->end)
    return fail(ps, DLTC_EPARSE, "unexpected end of input");
  char c = *ps->p;
  if (c == '{') {
    if ((rc = parse_object(ps, t->root)))
      return rc;
  } else {
    /* as dlt: a root record that is not an object is {"value": item}; a list inside a
     * list is a row {"list": item} of the child table */
    int nested_list = c == '[' && ps->d->child_tables && ps->s->tables[ti].nkey > 0;
    int32_t node = fixed_node(ps, ti, nested_list ? "list" : "value");
    if (node < 0)
      return ps->err ? ps->err->code : DLTC_ENOMEM;
    if ((rc = parse_value(ps, node)))
      return rc;
  }
  if (ps->d->child_tables && ps->s->tables[ti].nkey > 0)
    ps->d->st.child_rows++;
  return finish_row(ps, ti);
}

/* ---- document level ---------------------------------------------------------------------- */

static int marks_reserve(struct parser *ps) {
  struct dltc_decoder *d = ps->d;
  size_t n = ps->s->ntables;
  if (n <= d->marks_cap)
    return 0;
  size_t c = n * 2;
  int64_t *a = dltc__realloc(d->marks_doc, c * sizeof *a);
  if (!a)
    return fail(ps, DLTC_ENOMEM, "out of memory");
  d->marks_doc = a;
  int64_t *b = dltc__realloc(d->marks_rec, c * sizeof *b);
  if (!b)
    return fail(ps, DLTC_ENOMEM, "out of memory");
  d->marks_rec = b;
  int64_t *m = dltc__realloc(d->marks_alt, c * sizeof *m);
  if (!m)
    return fail(ps, DLTC_ENOMEM, "out of memory");
  d->marks_alt = m;
  d->marks_cap = c;
  return 0;
}

static void rollback_rows(struct dltc_schema *s, const int64_t *marks, size_t ntables_then) {
  for (size_t ti = 0; ti < s->ntables && ti < ntables_then; ti++) {
    struct dltc_table *t = &s->tables[ti];
    t->nrows = marks[ti];
    for (size_t c = 0; c < t->ncols; c++)
      dltc_col_truncate(&t->cols[c], marks[ti]);
  }
}

static void clear_pending(struct dltc_decoder *d) {
  for (int i = 0; i < d->npend; i++)
    dltc__free(d->pend[i].path);
  d->npend = 0;
}

/* Append the pending rejects of a record to the rejects table. */
static int flush_pending(struct parser *ps, const char *rec, size_t recn) {
  struct dltc_decoder *d = ps->d;
  struct dltc_table *r = &ps->s->tables[d->rejects_table];
  int rc = 0;
  for (int i = 0; i < d->npend; i++) {
    const char *reason = d->pend[i].reason;
    if ((rc = dltc_col_append_str(&r->cols[0], ps->url, ps->url_len, ps->err)) ||
        (rc =
             dltc_col_append_str(&r->cols[1], d->pend[i].path, strlen(d->pend[i].path), ps->err)) ||
        (rc = dltc_col_append_str(&r->cols[2], reason, strlen(reason), ps->err)) ||
        (rc = dltc_col_append_str(&r->cols[3], rec, recn, ps->err)))
      break;
    r->nrows++;
  }
  clear_pending(d);
  return rc ? fail_from(ps, rc) : 0;
}

/* ---- row captures ------------------------------------------------------------------------- */

#define CAPTURE_MAX_BYTES ((size_t)1 << 30) /* captured text of one document */

/* The capture row of a new root record, every value missing. */
static int capture_row(struct parser *ps) {
  struct dltc_decoder *d = ps->d;
  size_t need = (d->caprows + 1) * d->ncap;
  if (need > d->capalloc) {
    size_t c = d->capalloc ? d->capalloc * 2 : 64 * d->ncap;
    while (c < need)
      c *= 2;
    struct capval *n = dltc__realloc(d->caps, c * sizeof *n);
    if (!n)
      return fail(ps, DLTC_ENOMEM, "out of memory (row captures)");
    d->caps = n;
    d->capalloc = c;
  }
  memset(&d->caps[d->caprows * d->ncap], 0, d->ncap * sizeof *d->caps); /* DLTC_CAP_MISSING */
  ps->caprow = (int64_t)d->caprows++;
  return 0;
}

/* Room for n more bytes in the capture arena, or NULL (error recorded). */
static char *arena_reserve(struct parser *ps, size_t n) {
  struct dltc_decoder *d = ps->d;
  if (n > CAPTURE_MAX_BYTES - d->arena_len) {
    fail_ll(ps, DLTC_ELIMIT, "row captures of one document over %lld bytes",
            (long long)CAPTURE_MAX_BYTES);
    return NULL;
  }
  if (d->arena_len + n > d->arena_cap) {
    size_t c = d->arena_cap ? d->arena_cap : 4096;
    while (c < d->arena_len + n)
      c *= 2;
    char *a = dltc__realloc(d->arena, c);
    if (!a) {
      fail(ps, DLTC_ENOMEM, "out of memory (row captures)");
      return NULL;
    }
    d->arena = a;
    d->arena_cap = c;
  }
  return d->arena + d->arena_len;
}

/* Copy the validated JSON text [s, e) to dst without the whitespace between tokens;
 * returns the bytes written (<= e - s). */
static size_t compact_into(char *dst, const char *s, const char *e) {
  char *o = dst;
  int in_str = 0;
  for (const char *q = s; q < e; q++) {
    char c = *q;
    if (in_str) {
      *o++ = c;
      if (c == '\\')
        *o++ = *++q;
      else if (c == '"')
        in_str = 0;
      continue;
    }
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
      continue;
    if (c == '"')
      in_str = 1;
    *o++ = c;
  }
  return (size_t)(o - dst);
}

/* Capture i of the current row := the validated value [s, e). */
static int capture_set(struct parser *ps, size_t i, const char *s, const char *e) {
  struct dltc_decoder *d = ps->d;
  struct capval *cv = &d->caps[(size_t)ps->caprow * d->ncap + i];
  char *o;
  switch (*s) {
  case 'n': cv->kind = DLTC_CAP_NULL; return 0;
  case 't': cv->kind = DLTC_CAP_TRUE; return 0;
  case 'f': cv->kind = DLTC_CAP_FALSE; return 0;
  case '"':
    if (!(o = arena_reserve(ps, (size_t)(e - s))))
      return ps->err ? ps->err->code : DLTC_ENOMEM;
    cv->kind = DLTC_CAP_STRING;
    cv->off = d->arena_len;
    cv->n = unescape(s + 1, (size_t)(e - s) - 2, o);
    d->arena_len += cv->n;
    return 0;
  case '{':
  case '[':
    if (!(o = arena_reserve(ps, (size_t)(e - s))))
      return ps->err ? ps->err->code : DLTC_ENOMEM;
    cv->kind = DLTC_CAP_JSON;
    cv->off = d->arena_len;
    cv->n = compact_into(o, s, e);
    d->arena_len += cv->n;
    return 0;
  default: {
    const char *q;
    int k = dltc__num_parse(s, e, &q, &cv->i, &cv->f);
    if (k == DLTC_NUM_INT) {
      cv->kind = DLTC_CAP_INT;
      return 0;
    }
    size_t n = (size_t)(e - s);
    if (memchr(s, '.', n) || memchr(s, 'e', n) || memchr(s, 'E', n)) {
      cv->kind = DLTC_CAP_DOUBLE;
      return 0;
    }
    /* an integer beyond int64: json.loads makes it a Python int, so keep its digits */
    if (!(o = arena_reserve(ps, n)))
      return ps->err ? ps->err->code : DLTC_ENOMEM;
    memcpy(o, s, n);
    cv->kind = DLTC_CAP_BIGINT;
    cv->off = d->arena_len;
    cv->n = n;
    d->arena_len += n;
    return 0;
  }
  }
}

/* After the value [vs, ps->p) of a captured node of the current root record. */
NOINLINE static int capture_value(struct parser *ps, int32_t node, const char *vs) {
  struct dltc_decoder *d = ps->d;
  int rc;
  for (size_t i = 0; i < d->ncap; i++)
    if (d->cap_node[i] == node && (rc = capture_set(ps, i, vs, ps->p)))
      return rc;
  return 0;
}

/* After a root record [start, ps->p): the captures of the record itself. */
static int capture_self(struct parser *ps, const char *start) {
  struct dltc_decoder *d = ps->d;
  int rc;
  for (size_t i = 0; i < d->ncap; i++)
    if (d->cap_node[i] < 0 && (rc = capture_set(ps, i, start, ps->p)))
      return rc;
  return 0;
}

/* One root record (an element of the records array, or the document). */
static int root_record(struct parser *ps) {
  struct dltc_decoder *d = ps->d;
  struct dltc_schema *s = ps->s;
  int rc;
  if ((rc = marks_reserve(ps)))
    return rc;
  size_t nt = s->ntables;
  for (size_t i = 0; i < nt; i++)
    d->marks_rec[i] = s->tables[i].nrows;
  size_t umark = dltc__undo_mark(s);
  const char *start = ps->p;
  ps->discard = 0;
  if (UNLIKELY(d->ncap) && (rc = capture_row(ps)))
    return rc;
  if ((rc = parse_record(ps, d->root_table, NULL, 0, 0)))
    return rc;
  if (UNLIKELY(d->ncap) && (rc = capture_self(ps, start)))
    return rc;
  if (UNLIKELY(d->npend)) {
    if (ps->discard) {
      dltc__undo_rollback(s, umark);
      rollback_rows(s, d->marks_rec, nt);
      d->st.rows_discarded++;
    }
    if ((rc = flush_pending(ps, start, (size_t)(ps->p - start))))
      return rc;
  }
  return 0;
}

static int parse_records_array(struct parser *ps) {
  int rc;
  if (UNLIKELY(++ps->depth > ps->d->max_depth))
    return fail_ll(ps, DLTC_ELIMIT, "nesting deeper than max_depth (%lld)", ps->d->max_depth);
  ps->p++;
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == ']') {
    ps->p++;
    ps->depth--;
    return 0;
  }
  for (int64_t idx = 0;; idx++) {
    if ((rc = push_idx(ps, idx)))
      return rc;
    if ((rc = root_record(ps)))
      return rc;
    int more = 0;
    if ((rc = array_next(ps, &more)))
      return rc;
    if (!more)
      return 0;
  }
}

/* ---- records path and skeleton ------------------------------------------------------------ */

NOINLINE static void skel_overflow(struct parser *ps, const char *at) {
  struct dltc_decoder *d = ps->d;
  d->skel_over = 1;
  d->skel_over_off = at - ps->base;
  path_format(ps, d->skel_over_path, sizeof d->skel_over_path);
}

/* Append n bytes to the skeleton (no-op without one, or once over its cap: at is where
 * the value that crossed it starts). */
static int skel_put(struct parser *ps, const char *t, size_t n, const char *at) {
  struct dltc_decoder *d = ps->d;
  if (LIKELY(!d->skel_cap) || d->skel_over)
    return 0;
  if (n > (size_t)d->skel_cap - d->skel_len) {
    skel_overflow(ps, at);
    return 0;
  }
  if (d->skel_len + n > d->skel_alloc) {
    size_t c = d->skel_alloc ? d->skel_alloc : 1024;
    while (c < d->skel_len + n)
      c *= 2;
    char *b = dltc__realloc(d->skel, c);
    if (!b)
      return fail(ps, DLTC_ENOMEM, "out of memory (skeleton)");
    d->skel = b;
    d->skel_alloc = c;
  }
  memcpy(d->skel + d->skel_len, t, n);
  d->skel_len += n;
  return 0;
}
#define SKEL(ps, lit) skel_put(ps, lit, sizeof(lit) - 1, (ps)->p)

/* The validated value [s, e) into the skeleton, without whitespace between tokens. */
static int skel_compact(struct parser *ps, const char *s, const char *e) {
  if (LIKELY(!ps->d->skel_cap) || ps->d->skel_over)
    return 0;
  const char *run = s;
  int in_str = 0, rc;
  for (const char *q = s; q < e; q++) {
    char c = *q;
    if (in_str) {
      if (c == '\\')
        q++;
      else if (c == '"')
        in_str = 0;
      continue;
    }
    if (c == '"')
      in_str = 1;
    else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
      if (q > run && (rc = skel_put(ps, run, (size_t)(q - run), s)))
        return rc;
      run = q + 1;
    }
  }
  return e > run ? skel_put(ps, run, (size_t)(e - run), s) : 0;
}

/* A value that holds no records: validated, and copied to the skeleton. */
static int copy_value(struct parser *ps) {
  const char *s = ps->p;
  int rc = skip_value(ps);
  return rc ? rc : skel_compact(ps, s, ps->p);
}

/* At '{' or '[' of a container the walk looks into: depth, and the opening byte to the
 * skeleton; *empty when it closes at once (then consumed and written too). */
static int walk_open(struct parser *ps, char close, int *empty) {
  *empty = 0;
  if (UNLIKELY(++ps->depth > ps->d->max_depth))
    return fail_ll(ps, DLTC_ELIMIT, "nesting deeper than max_depth (%lld)", ps->d->max_depth);
  int rc = skel_put(ps, ps->p, 1, ps->p);
  ps->p++;
  skip_ws(ps);
  if (rc)
    return rc;
  if (ps->p < ps->end && *ps->p == close) {
    ps->p++;
    ps->depth--;
    *empty = 1;
    return skel_put(ps, &close, 1, ps->p);
  }
  return 0;
}

/* At a member of an object the walk looks into: the raw key (*k, *kn, *esc) and ':' into
 * the skeleton (after a ',' unless first), its frame pushed, ps->p at the value. */
static int walk_key(struct parser *ps, int first, const char **k, size_t *kn, int *esc) {
  int rc;
  *k = NULL; /* defined outputs on every path (the analyzer cannot see fail() != 0) */
  *kn = 0;
  *esc = 0;
  if (ps->p >= ps->end || *ps->p != '"')
    return fail(ps, DLTC_EPARSE, "expected a key");
  const char *q = ps->p;
  if ((rc = scan_string(ps, k, kn, esc)))
    return rc;
  if ((!first && (rc = SKEL(ps, ","))) || (rc = skel_put(ps, q, (size_t)(ps->p - q), q)))
    return rc;
  skip_ws(ps);
  if (ps->p >= ps->end || *ps->p != ':')
    return fail(ps, DLTC_EPARSE, "expected ':'");
  ps->p++;
  skip_ws(ps);
  if ((rc = SKEL(ps, ":")))
    return rc;
  if ((rc = push_key(ps, *k, *kn)))
    return rc;
  if (ps->p >= ps->end)
    return fail(ps, DLTC_EPARSE, "unexpected end of input");
  return 0;
}

/* After a member's value: ',' (*more = 1) or '}' (*more = 0, depth restored, '}'
 * written); pops the member's frame. */
static int walk_next(struct parser *ps, int *more) {
  skip_ws(ps);
  *more = 0;
  if (ps->p >= ps->end)
    return fail(ps, DLTC_EPARSE, "unexpected end of input in object");
  if (*ps->p == ',') {
    ps->npath--;
    ps->p++;
    skip_ws(ps);
    *more = 1;
    return 0;
  }
  if (*ps->p == '}') {
    ps->npath--;
    ps->p++;
    ps->depth--;
    return SKEL(ps, "}");
  }
  return fail(ps, DLTC_EPARSE, "expected ',' or '}'");
}

/* *hit: the raw key (escaped when esc) is w. */
static int key_is(struct parser *ps, const char *k, size_t kn, int esc, const char *w, size_t wn,
                  int *hit) {
  if (LIKELY(!esc)) {
    *hit = kn == wn && (kn == 0 || memcmp(k, w, kn) == 0);
    return 0;
  }
  int rc = scratch_reserve(ps, kn + 1);
  if (rc)
    return rc;
  size_t un = unescape(k, kn, ps->d->scratch);
  *hit = un == wn && (un == 0 || memcmp(ps->d->scratch, w, un) == 0);
  return 0;
}

/* Record what a speculative decode may change: rows per table (in marks_alt), the undo
 * log, counters and captures. */
static int mark_save(struct parser *ps, struct spec_mark *m) {
  struct dltc_decoder *d = ps->d;
  struct dltc_schema *s = ps->s;
  int rc = marks_reserve(ps);
  if (rc)
    return rc;
  m->ntables = s->ntables;
  for (size_t i = 0; i < s->ntables; i++)
    d->marks_alt[i] = s->tables[i].nrows;
  m->undo = dltc__undo_mark(s);
  m->st = d->st;
  m->caprows = d->caprows;
  m->arena = d->arena_len;
  return 0;
}

/* Undo everything decoded since mark_save (nothing else may have decoded since). */
static void mark_restore(struct parser *ps, const struct spec_mark *m) {
  struct dltc_decoder *d = ps->d;
  dltc__undo_rollback(ps->s, m->undo);
  rollback_rows(ps->s, d->marks_alt, m->ntables);
  d->st = m->st;
  d->caprows = m->caprows;
  d->arena_len = m->arena;
}

/* found := n steps (keys copied; escaped when esc). */
static int found_set(struct dltc_decoder *d, const struct dltc_path_step *st, size_t n, int esc) {
  size_t total = 1;
  for (size_t i = 0; i < n; i++)
    total += st[i].key ? st[i].len : 0;
  if (total > d->found_cap) {
    char *b = dltc__realloc(d->found_buf, total);
    if (!b)
      return DLTC_ENOMEM;
    d->found_buf = b;
    d->found_cap = total;
  }
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    size_t len = 0;
    if (st[i].key) {
      if (esc)
        len = unescape(st[i].key, st[i].len, d->found_buf + off);
      else {
        memcpy(d->found_buf + off, st[i].key, st[i].len);
        len = st[i].len;
      }
    }
    d->found[i].key = st[i].key ? d->found_buf + off : NULL; /* found_buf stays put now */
    d->found[i].len = len;
    off += len;
  }
  d->nfound = n;
  return 0;
}

/* Decode the first match again as one record: a second match showed that the matches
 * themselves are the records (dlt unwraps a single match only). The first match was a
 * list (decoded as its elements) or null (no record). */
NOINLINE static int redecode_first(struct parser *ps) {
  struct dltc_decoder *d = ps->d;
  mark_restore(ps, &d->first_mark);
  const char *p = ps->p;
  int depth = ps->depth, npath = ps->npath;
  struct frame *cur = d->frames, *saved = d->frames + d->nframes, *spare = saved + d->nframes;
  memcpy(spare, cur, (size_t)npath * sizeof *cur);
  memcpy(cur, saved, (size_t)d->first_npath * sizeof *cur);
  ps->p = ps->base + d->first_start;
  ps->depth = d->first_depth;
  ps->npath = d->first_npath;
  int rc = root_record(ps);
  if (!rc && ps->p != ps->base + d->first_end)
    rc = fail(ps, DLTC_EINVAL, "internal: the first match decoded to another end");
  memcpy(cur, spare, (size_t)npath * sizeof *cur);
  ps->p = p;
  ps->depth = depth;
  ps->npath = npath;
  return rc;
}

/* The value at the end of the records path. DOCUMENT: a list's elements are the records,
 * anything else is one (with a selector, null is none). PATH and AUTO, as dlt's
 * extract_response: a single match is unwrapped (a list: its elements; null: none;
 * anything else: one record); with two or more matches each match is one record. Lists
 * the records come from are [] in the skeleton. */
static int match(struct parser *ps) {
  struct dltc_decoder *d = ps->d;
  const char *start = ps->p;
  char c = *start;
  int rc;
  if (d->records == DLTC_RECORDS_DOCUMENT) {
    if (c == '[')
      return (rc = parse_records_array(ps)) ? rc : skel_put(ps, "[]", 2, start);
    if (c == 'n' && d->selector)
      return copy_value(ps);
    return (rc = root_record(ps)) ? rc : skel_compact(ps, start, ps->p);
  }
  if (d->nmatch++ == 0) {
    if ((rc = mark_save(ps, &d->first_mark)))
      return rc;
    d->first_kind = (unsigned char)c;
    d->first_start = start - ps->base;
    d->first_depth = ps->depth;
    d->first_npath = ps->npath;
    memcpy(d->frames + d->nframes, d->frames, (size_t)ps->npath * sizeof *d->frames);
    if (c == '[')
      rc = (rc = parse_records_array(ps)) ? rc : skel_put(ps, "[]", 2, start);
    else if (c == 'n')
      rc = copy_value(ps);
    else
      rc = (rc = root_record(ps)) ? rc : skel_compact(ps, start, ps->p);
    d->first_end = ps->p - ps->base;
    return rc;
  }
  if (d->nmatch == 2 && (d->first_kind == '[' || d->first_kind == 'n') && (rc = redecode_first(ps)))
    return rc;
  if ((rc = root_record(ps)))
    return rc;
  return c == '[' ? skel_put(ps, "[]", 2, start) : skel_compact(ps, start, ps->p);
}

/* At a value `level` steps down the records path. */
static int walk(struct parser *ps, size_t level) {
  struct dltc_decoder *d = ps->d;
  int rc, empty = 0, more = 0;
  if (UNLIKELY(ps->p >= ps->end))
    return fail(ps, DLTC_EPARSE, "unexpected end of input");
  if (level == ps->nsteps)
    return match(ps);
  const struct dltc_path_step *st = &d->steps[level];
  char c = *ps->p;
  if (c == '{') {
    if ((rc = walk_open(ps, '}', &empty)) || empty)
      return rc;
    for (int first = 1;; first = 0) {
      const char *k;
      size_t kn;
      int esc, hit = 1;
      if ((rc = walk_key(ps, first, &k, &kn, &esc)))
        return rc;
      if (st->key && (rc = key_is(ps, k, kn, esc, st->key, st->len, &hit)))
        return rc;
      if ((rc = hit ? walk(ps, level + 1) : copy_value(ps)))
        return rc;
      if ((rc = walk_next(ps, &more)) || !more)
        return rc;
    }
  }
  if (c == '[' && !st->key) {
    if ((rc = walk_open(ps, ']', &empty)) || empty)
      return rc;
    for (int64_t idx = 0;; idx++) {
      if ((rc = push_idx(ps, idx)) || (rc = walk(ps, level + 1)) || (rc = array_next(ps, &more)))
        return rc;
      if (!more)
        return SKEL(ps, "]");
      if ((rc = SKEL(ps, ",")))
        return rc;
    }
  }
  if (d->records == DLTC_RECORDS_DOCUMENT)
    return fail_fmt(ps, DLTC_EPARSE, "expected an object holding \"%s\"%s", 0, d->selector, "");
  return copy_value(ps); /* not an object or array here: no match below */
}

/* *rec: the raw key names records for auto-detection. */
static int auto_key(struct parser *ps, const char *k, size_t kn, int esc, int *rec) {
  struct dltc_decoder *d = ps->d;
  *rec = 0;
  for (size_t i = 0; i < d->nauto_keys && !*rec; i++) {
    int rc = key_is(ps, k, kn, esc, d->auto_keys[i], d->auto_keys_len[i], rec);
    if (rc)
      return rc;
  }
  return 0;
}

/* A record list no longer wins: undo its rows and put it back into the skeleton. */
NOINLINE static int auto_drop_candidate(struct parser *ps) {
  struct dltc_decoder *d = ps->d;
  int rc;
  mark_restore(ps, &d->first_mark);
  d->auto_cand = 0;
  if (!d->skel_cap || d->skel_over)
    return 0;
  size_t tail = d->skel_len - d->cand_skel - 2;
  if ((rc = scratch_reserve(ps, tail + 1)))
    return rc;
  memcpy(d->scratch, d->skel + d->cand_skel + 2, tail);
  d->skel_len = d->cand_skel;
  if ((rc = skel_compact(ps, ps->base + d->cand_start, ps->base + d->cand_end)))
    return rc;
  return skel_put(ps, d->scratch, tail, ps->p);
}

/* A list dlt's detector could pick (find_response_page_data): the first list whose key
 * is a record key wins; until then the first list of all is the candidate. */
static int auto_list(struct parser *ps, int rec) {
  struct dltc_decoder *d = ps->d;
  int rc;
  if (rec && d->auto_cand && (rc = auto_drop_candidate(ps)))
    return rc;
  if (!rec) {
    if ((rc = mark_save(ps, &d->first_mark)))
      return rc;
    d->cand_start = ps->p - ps->base;
    d->cand_skel = d->skel_len;
  }
  /* the walk pushed keys only: the frames are the path */
  struct dltc_path_step st[DLTC_MAX_PATH_STEPS];
  for (int i = 0; i < ps->npath; i++) {
    st[i].key = d->frames[i].key;
    st[i].len = d->frames[i].keylen;
  }
  if (found_set(d, st, (size_t)ps->npath, 1))
    return fail(ps, DLTC_ENOMEM, "out of memory (records path)");
  const char *start = ps->p;
  if ((rc = parse_records_array(ps)) || (rc = skel_put(ps, "[]", 2, start)))
    return rc;
  if (rec)
    d->auto_won = 1;
  else {
    d->auto_cand = 1;
    d->cand_end = ps->p - ps->base;
  }
  return 0;
}

/* At '{' of an object `keys` keys below the document, looking for lists as dlt's
 * find_all_lists does: depth first, in document order, into objects only. */
static int walk_auto(struct parser *ps, int keys) {
  struct dltc_decoder *d = ps->d;
  int rc, empty = 0, more = 0;
  if ((rc = walk_open(ps, '}', &empty)) || empty)
    return rc;
  for (int first = 1;; first = 0) {
    const char *k;
    size_t kn;
    int esc, rec = 0;
    if ((rc = walk_key(ps, first, &k, &kn, &esc)))
      return rc;
    char c = *ps->p;
    if (c == '[' && !d->auto_won && (rc = auto_key(ps, k, kn, esc, &rec)))
      return rc;
    if (c == '[' && !d->auto_won && (rec || !d->auto_cand))
      rc = auto_list(ps, rec);
    else if (c == '{' && keys + 1 < d->auto_max_keys)
      rc = walk_auto(ps, keys + 1);
    else
      rc = copy_value(ps);
    if (rc)
      return rc;
    if ((rc = walk_next(ps, &more)) || !more)
      return rc;
  }
}

/* The records of the document, found by the plan's records mode. */
static int parse_document(struct parser *ps) {
  struct dltc_decoder *d = ps->d;
  int rc;
  skip_ws(ps);
  if (ps->p >= ps->end)
    return fail(ps, DLTC_EPARSE, "empty document");
  d->nmatch = 0;
  d->auto_won = d->auto_cand = 0;
  d->nfound = 0;
  ps->nsteps = d->records == DLTC_RECORDS_AUTO ? 0 : d->nsteps;
  if (d->records == DLTC_RECORDS_AUTO && *ps->p == '{') {
    const char *doc = ps->p;
    if ((rc = walk_auto(ps, 0)))
      return rc;
    if (!d->auto_won && !d->auto_cand) {
      /* no list: the document is the one record (dlt selects "$"). Its bytes are parsed
       * a second time here, the one case that does. */
      const char *end = ps->p;
      ps->p = doc;
      if ((rc = root_record(ps)))
        return rc;
      if (ps->p != end)
        return fail(ps, DLTC_EINVAL, "internal: the document decoded to another end");
    }
  } else if ((rc = walk(ps, 0)))
    return rc;
  skip_ws(ps);
  if (ps->p != ps->end)
    return fail(ps, DLTC_EPARSE, "trailing data after the document");
  return 0;
}

static int close_batch(struct dltc_table *t, struct dltc_error *err) {
  if (t->nbatches == t->capbatches) {
    size_t c = t->capbatches ? t->capbatches * 2 : 4;
    struct dltc_batch **b =
        dltc__realloc(t->batches, c * sizeof *b); // NOLINT(bugprone-sizeof-expression)
    if (!b)
      return dltc_error_set(err, DLTC_ENOMEM, "out of memory (batches)");
    t->batches = b;
    t->capbatches = c;
  }
  struct dltc_batch *b;
  int rc = dltc_batch_new(t->cols, t->ncols, t->nrows, &b, err);
  if (rc)
    return rc;
  t->batches[t->nbatches++] = b;
  t->closed_rows += t->nrows;
  t->nrows = 0;
  return 0;
}

int dltc_decoder_feed(struct dltc_decoder *d, const char *data, size_t n, const char *source_url,
                      size_t source_url_len, int64_t *rows, struct dltc_error *err) {
  struct dltc_schema *s = &d->s;
  struct parser ps;
  memset(&ps, 0, sizeof ps);
  ps.d = d;
  ps.s = s;
  ps.base = ps.p = data;
  ps.end = data + n;
  ps.err = err;
  ps.url = source_url ? source_url : "";
  ps.url_len = source_url ? source_url_len : 0;
  dltc_error_reset(err);
  *rows = 0;
  int rc;
  d->last_ok = 0;
  d->skel_len = 0;
  d->skel_over = 0;
  d->caprows = 0;
  d->arena_len = 0;
  ps.caprow = -1;
  /* batches close only between documents */
  for (size_t i = 0; i < s->ntables; i++)
    if (s->tables[i].nrows >= d->batch_rows) {
      if ((rc = close_batch(&s->tables[i], err)))
        return rc;
      d->st.batches++;
    }
  if ((rc = marks_reserve(&ps)))
    return rc;
  size_t nt = s->ntables;
  for (size_t i = 0; i < nt; i++)
    d->marks_doc[i] = s->tables[i].nrows;
  struct dltc_decoder_stats st0 = d->st; /* a failed document counts only as failed */
  s->nundo = 0;
  s->logging = 1;
  rc = parse_document(&ps);
  s->logging = 0;
  if (rc) {
    dltc__undo_rollback(s, 0);
    rollback_rows(s, d->marks_doc, nt);
    clear_pending(d);
    d->st = st0;
    d->st.failed_documents++;
    if (err && err->offset < 0)
      err->offset = ps.p - ps.base;
    return rc;
  }
  s->nundo = 0;
  for (size_t i = 0; i < s->ntables; i++) {
    struct dltc_table *t = &s->tables[i];
    if (t->nrows + t->closed_rows + t->total_rows > 0)
      t->settled = 1;
  }
  *rows = s->tables[d->root_table].nrows - d->marks_doc[d->root_table];
  d->last_ok = 1;
  d->report_found = d->records == DLTC_RECORDS_AUTO;
  d->st.rows += *rows;
  d->st.documents++;
  d->st.bytes += (int64_t)n;
  return 0;
}

/* ---- construction ------------------------------------------------------------------------- */

void dltc_plan_spec_init(struct dltc_plan_spec *spec) {
  memset(spec, 0, sizeof *spec);
  spec->infer = 1;
  spec->child_tables = 1;
  spec->dlt_ids = 1;
  spec->auto_max_keys = 3; /* dlt's find_all_lists: lists at most 3 keys down */
  spec->batch_rows = 65536;
  spec->max_depth = 1024;
  spec->max_string = (int64_t)64 << 20;
}

/* d->steps := n steps, copied. 0 or DLTC_ENOMEM (the old steps stay). */
static int steps_copy(struct dltc_decoder *d, const struct dltc_path_step *st, size_t n) {
  size_t total = 1;
  for (size_t i = 0; i < n; i++)
    total += st[i].key ? st[i].len : 0;
  struct dltc_path_step *ns = dltc__calloc(n ? n : 1, sizeof *ns);
  char *nk = dltc__malloc(total);
  if (!ns || !nk) {
    dltc__free(ns);
    dltc__free(nk);
    return DLTC_ENOMEM;
  }
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    if (!st[i].key)
      continue; /* the wildcard: key NULL (calloc) */
    memcpy(nk + off, st[i].key, st[i].len);
    ns[i].key = nk + off;
    ns[i].len = st[i].len;
    off += st[i].len;
  }
  dltc__free(d->steps);
  dltc__free(d->steps_keys);
  d->steps = ns;
  d->steps_keys = nk;
  d->nsteps = n;
  return 0;
}

int dltc_decoder_set_records_path(struct dltc_decoder *d, int records,
                                  const struct dltc_path_step *steps, size_t nsteps,
                                  struct dltc_error *err) {
  dltc_error_reset(err);
  if ((records != DLTC_RECORDS_PATH && records != DLTC_RECORDS_AUTO) ||
      nsteps > DLTC_MAX_PATH_STEPS)
    return dltc_error_set(err, DLTC_EINVAL, "records: PATH (at most %d steps) or AUTO",
                          DLTC_MAX_PATH_STEPS);
  /* records_path keeps reporting what the last document used */
  if (d->last_ok && !d->report_found) {
    if (found_set(d, d->steps, d->nsteps, 0))
      return dltc_error_set(err, DLTC_ENOMEM, "out of memory (records path)");
    d->report_found = 1;
  }
  if (records == DLTC_RECORDS_PATH && steps_copy(d, steps, nsteps))
    return dltc_error_set(err, DLTC_ENOMEM, "out of memory (records path)");
  d->records = records;
  dltc__free(d->selector);
  d->selector = NULL;
  d->selector_len = 0;
  return 0;
}

static int add_sys(struct dltc_decoder *d, int32_t ti, int which, const char *name, int type,
                   struct dltc_error *err) {
  int32_t c = dltc__col_add(&d->s, ti, -1, type, 0, name, err);
  if (c < 0)
    return err ? err->code : DLTC_ENOMEM;
  d->s.tables[ti].sys[which] = c;
  return 0;
}

int dltc_decoder_new(const struct dltc_plan_spec *spec, struct dltc_decoder **out,
                     struct dltc_error *err) {
  int rc = 0;
  dltc_error_reset(err);
  struct dltc_decoder *d = dltc__calloc(1, sizeof *d);
  if (!d)
    return dltc_error_set(err, DLTC_ENOMEM, "out of memory (decoder)");
  d->rnd_pos = sizeof d->rnd; /* empty pool */
  if ((rc = dltc__schema_init(&d->s, err)))
    goto out;
  if (spec->max_depth < 1 || spec->max_depth > DLTC_MAX_DEPTH || spec->batch_rows < 1 ||
      spec->max_string < 0 || spec->mode_columns < 0 || spec->mode_columns > 3 ||
      spec->mode_tables < 0 || spec->mode_tables > 3 || spec->mode_data_type < 0 ||
      spec->mode_data_type > 3) {
    rc = dltc_error_set(err, DLTC_EINVAL, "bad plan limits or contract modes");
    goto out;
  }
  d->infer = spec->infer;
  d->mode_columns = spec->mode_columns;
  d->mode_tables = spec->mode_tables;
  d->mode_data_type = spec->mode_data_type;
  d->child_tables = spec->child_tables;
  d->dlt_ids = spec->dlt_ids;
  d->batch_rows = spec->batch_rows;
  d->max_depth = spec->max_depth;
  d->max_string = spec->max_string;
  d->nframes = (size_t)d->max_depth + 8;
  d->frames = dltc__calloc(3 * d->nframes, sizeof *d->frames);
  d->found = dltc__calloc(DLTC_MAX_PATH_STEPS, sizeof *d->found);
  if (!d->frames || !d->found) {
    rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (decoder)");
    goto out;
  }
  if (spec->records < DLTC_RECORDS_DOCUMENT || spec->records > DLTC_RECORDS_AUTO ||
      (spec->records != DLTC_RECORDS_DOCUMENT && spec->selector)) {
    rc = dltc_error_set(err, DLTC_EINVAL, "records: a selector or a records path, not both");
    goto out;
  }
  if (spec->nrecords_path > DLTC_MAX_PATH_STEPS || spec->auto_max_keys < 1 ||
      spec->auto_max_keys > DLTC_MAX_PATH_STEPS || spec->nauto_keys > DLTC_MAX_AUTO_KEYS) {
    rc = dltc_error_set(err, DLTC_EINVAL,
                        "records path: at most %d steps, auto depth 1..%d, at most %d auto keys",
                        DLTC_MAX_PATH_STEPS, DLTC_MAX_PATH_STEPS, DLTC_MAX_AUTO_KEYS);
    goto out;
  }
  if (spec->skeleton_cap < 0 || spec->skeleton_cap > DLTC_MAX_SKELETON ||
      spec->ncaptures > DLTC_MAX_CAPTURES) {
    rc = dltc_error_set(err, DLTC_EINVAL, "skeleton cap 0..%d bytes, at most %d row captures",
                        DLTC_MAX_SKELETON, DLTC_MAX_CAPTURES);
    goto out;
  }
  d->records = spec->records;
  d->auto_max_keys = spec->auto_max_keys;
  d->skel_cap = spec->skeleton_cap;
  if (spec->selector) {
    d->selector_len = strlen(spec->selector);
    if (!(d->selector = dltc__strndup(spec->selector, d->selector_len))) {
      rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (decoder)");
      goto out;
    }
    struct dltc_path_step one = {d->selector, d->selector_len};
    if ((rc = steps_copy(d, &one, 1))) {
      dltc_error_set(err, rc, "out of memory (decoder)");
      goto out;
    }
  } else if (spec->records == DLTC_RECORDS_PATH &&
             (rc = steps_copy(d, spec->records_path, spec->nrecords_path))) {
    dltc_error_set(err, rc, "out of memory (decoder)");
    goto out;
  }
  if (spec->nauto_keys) {
    d->auto_keys = dltc__calloc(spec->nauto_keys, sizeof *d->auto_keys);
    d->auto_keys_len = dltc__calloc(spec->nauto_keys, sizeof *d->auto_keys_len);
    if (!d->auto_keys || !d->auto_keys_len) {
      rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (decoder)");
      goto out;
    }
    for (size_t i = 0; i < spec->nauto_keys; i++) {
      if (!(d->auto_keys[i] = dltc__strndup(spec->auto_keys[i], spec->auto_keys_len[i]))) {
        rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (decoder)");
        goto out;
      }
      d->auto_keys_len[i] = spec->auto_keys_len[i];
      d->nauto_keys++;
    }
  }
  if (spec->load_id) {
    d->load_id_len = strlen(spec->load_id);
    if (!(d->load_id = dltc__strndup(spec->load_id, d->load_id_len))) {
      rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (decoder)");
      goto out;
    }
  }
  if (spec->root_name &&
      !(d->root_name = dltc__strndup(spec->root_name, strlen(spec->root_name)))) {
    rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (decoder)");
    goto out;
  }
  if (spec->ntable_names) {
    d->names = dltc__calloc(spec->ntable_names, sizeof *d->names);
    if (!d->names) {
      rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (decoder)");
      goto out;
    }
    for (size_t i = 0; i < spec->ntable_names; i++) {
      const struct dltc_table_name *tn = &spec->table_names[i];
      size_t len = 0;
      for (size_t j = 0; j < tn->nkey; j++)
        len += tn->key_len[j] + 1;
      char *k = dltc__malloc(len + 1);
      char *nm = dltc__strndup(tn->name, strlen(tn->name));
      if (!k || !nm) {
        dltc__free(k);
        dltc__free(nm);
        rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (decoder)");
        goto out;
      }
      size_t p = 0;
      for (size_t j = 0; j < tn->nkey; j++) {
        if (j)
          k[p++] = '\x1f';
        memcpy(k + p, tn->key[j], tn->key_len[j]);
        p += tn->key_len[j];
      }
      k[p] = '\0';
      d->names[d->nnames].key = k;
      d->names[d->nnames].len = p;
      d->names[d->nnames].name = nm;
      d->nnames++;
    }
  }
  /* root table, then the rejects table */
  d->root_table = dltc__table_add(&d->s, -1, NULL, NULL, 0, err);
  if (d->root_table < 0) {
    rc = err ? err->code : DLTC_ENOMEM;
    goto out;
  }
  d->rejects_table = dltc__table_add(&d->s, -1, NULL, NULL, -1, err);
  if (d->rejects_table < 0) {
    rc = err ? err->code : DLTC_ENOMEM;
    goto out;
  }
  {
    static const char *const rn[4] = {"source_url", "path", "reason", "record"};
    for (int i = 0; i < 4; i++)
      if (dltc__col_add(&d->s, d->rejects_table, -1, DLTC_T_TEXT, 0, rn[i], err) < 0) {
        rc = err ? err->code : DLTC_ENOMEM;
        goto out;
      }
  }
  /* declared columns */
  struct dltc_schema *s = &d->s;
  for (size_t i = 0; i < spec->ncolumns; i++) {
    const struct dltc_column_spec *cs = &spec->columns[i];
    if (cs->npath == 0 || (cs->type <= DLTC_T_NONE && !cs->json) || cs->type >= DLTC_T__COUNT) {
      rc = dltc_error_set(err, DLTC_EINVAL, "column %zu: empty path or bad type", i);
      goto out;
    }
    int32_t obj = s->tables[d->root_table].root;
    int32_t node = -1;
    for (size_t j = 0; j < cs->npath; j++) {
      uint32_t h = dltc__hash(cs->path[j], cs->path_len[j]);
      node = dltc__node_find(s, obj, cs->path[j], cs->path_len[j], h);
      if (node < 0)
        node = dltc__node_add(s, obj, cs->path[j], cs->path_len[j], h, d->root_table, err);
      if (node < 0) {
        rc = err ? err->code : DLTC_ENOMEM;
        goto out;
      }
      obj = node;
    }
    struct dltc_node *nd = &s->nodes[node];
    if (nd->declared) {
      rc = dltc_error_set(err, DLTC_EINVAL, "column %zu declared twice", i);
      goto out;
    }
    int type = cs->json ? DLTC_T_JSON : cs->type;
    int32_t c = dltc__col_add(s, d->root_table, node, type, 0, NULL, err);
    if (c < 0) {
      rc = err ? err->code : DLTC_ENOMEM;
      goto out;
    }
    nd = &s->nodes[node];
    nd->declared = 1;
    nd->nullable = (uint8_t)(cs->nullable != 0);
    nd->json = (uint8_t)(type == DLTC_T_JSON);
    s->tables[d->root_table].meta[c].nullable = (uint8_t)(cs->nullable != 0);
    s->tables[d->root_table].meta[c].declared = 1;
    s->tables[d->root_table].declared = 1;
  }
  /* row captures: nodes of the root table, marked (a capture of 0 keys is the record) */
  if (spec->ncaptures) {
    d->cap_node = dltc__calloc(spec->ncaptures, sizeof *d->cap_node);
    if (!d->cap_node) {
      rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (decoder)");
      goto out;
    }
    for (size_t i = 0; i < spec->ncaptures; i++) {
      const struct dltc_capture_spec *cs = &spec->captures[i];
      if (cs->npath > DLTC_MAX_PATH_STEPS) {
        rc = dltc_error_set(err, DLTC_EINVAL, "row capture %zu: more than %d keys", i,
                            DLTC_MAX_PATH_STEPS);
        goto out;
      }
      int32_t obj = s->tables[d->root_table].root;
      int32_t node = -1;
      for (size_t j = 0; j < cs->npath; j++) {
        if (node >= 0 && s->nodes[node].json) {
          /* the value there is kept whole as JSON text: nothing below it is read */
          rc = dltc_error_set(err, DLTC_EINVAL, "row capture %zu: passes through a json column", i);
          goto out;
        }
        uint32_t h = dltc__hash(cs->path[j], cs->path_len[j]);
        node = dltc__node_find(s, obj, cs->path[j], cs->path_len[j], h);
        if (node < 0)
          node = dltc__node_add(s, obj, cs->path[j], cs->path_len[j], h, d->root_table, err);
        if (node < 0) {
          rc = err ? err->code : DLTC_ENOMEM;
          goto out;
        }
        obj = node;
      }
      d->cap_node[i] = node;
      if (node >= 0)
        s->nodes[node].captured = 1;
    }
    d->ncap = spec->ncaptures;
  }
  if (d->load_id &&
      (rc = add_sys(d, d->root_table, DLTC_SYS_LOAD_ID, "_dlt_load_id", DLTC_T_TEXT, err)))
    goto out;
  if (d->dlt_ids && (rc = add_sys(d, d->root_table, DLTC_SYS_ID, "_dlt_id", DLTC_T_TEXT, err)))
    goto out;
  d->plan_nnodes = s->nnodes;
  d->plan_ntables = s->ntables;
  d->plan_ncols[0] = s->tables[0].ncols;
  d->plan_ncols[1] = s->tables[1].ncols;
  *out = d;
  d = NULL;
out:
  dltc_decoder_free(d);
  return rc;
}

void dltc_decoder_reset(struct dltc_decoder *d) {
  clear_pending(d);
  d->last_ok = 0;
  dltc__schema_reset(&d->s, d->plan_nnodes, d->plan_ntables, d->plan_ncols);
}

void dltc_decoder_free(struct dltc_decoder *d) {
  if (!d)
    return;
  dltc__schema_free(&d->s);
  clear_pending(d);
  dltc__free(d->selector);
  dltc__free(d->steps);
  dltc__free(d->steps_keys);
  for (size_t i = 0; i < d->nauto_keys; i++)
    dltc__free(d->auto_keys[i]);
  dltc__free(d->auto_keys);
  dltc__free(d->auto_keys_len);
  dltc__free(d->found);
  dltc__free(d->found_buf);
  dltc__free(d->skel);
  dltc__free(d->cap_node);
  dltc__free(d->caps);
  dltc__free(d->arena);
  dltc__free(d->marks_alt);
  dltc__free(d->load_id);
  dltc__free(d->root_name);
  for (size_t i = 0; i < d->nnames; i++) {
    dltc__free(d->names[i].key);
    dltc__free(d->names[i].name);
  }
  dltc__free(d->names);
  dltc__free(d->scratch);
  dltc__free(d->marks_doc);
  dltc__free(d->marks_rec);
  dltc__free(d->frames);
  dltc__free(d->pend);
  dltc__free(d);
}

/* ---- flush --------------------------------------------------------------------------------- */

size_t dltc_decoder_ntables(const struct dltc_decoder *d) { return d->s.ntables; }

void dltc_decoder_table_key(const struct dltc_decoder *d, size_t i, const char *const **key,
                            const size_t **key_len, int *nkey, int64_t *rows) {
  const struct dltc_table *t = &d->s.tables[i];
  *key = (const char *const *)t->key;
  *key_len = t->key_len;
  *nkey = t->nkey;
  *rows = t->closed_rows + t->nrows;
}

int dltc_decoder_flush_table(struct dltc_decoder *d, size_t i, struct ArrowArrayStream *out,
                             struct dltc_error *err) {
  struct dltc_table *t = &d->s.tables[i];
  int rc = 0;
  char **names = NULL;
  int *types = NULL;
  out->release = NULL;
  if (t->nrows > 0 || t->nbatches == 0) {
    if ((rc = close_batch(t, err)))
      return rc;
    d->st.batches++;
  }
  names = dltc__calloc(t->ncols ? t->ncols : 1, sizeof *names);
  types = dltc__calloc(t->ncols ? t->ncols : 1, sizeof *types);
  if (!names || !types) {
    rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (flush)");
    goto out;
  }
  for (size_t c = 0; c < t->ncols; c++) {
    names[c] = t->cols[c].name;
    types[c] = t->cols[c].type;
  }
  struct dltc_batch **b = t->batches;
  size_t nb = t->nbatches;
  int64_t rows = t->closed_rows;
  t->batches = NULL;
  t->nbatches = t->capbatches = 0;
  t->total_rows += rows;
  t->closed_rows = 0;
  rc = dltc_stream_new(b, nb, names, types, t->ncols, out, err);
out:
  dltc__free(names);
  dltc__free(types);
  return rc;
}

int dltc_decoder_records_path(const struct dltc_decoder *d, const struct dltc_path_step **steps) {
  *steps = NULL;
  if (!d->last_ok)
    return -1;
  if (d->report_found) {
    *steps = d->found;
    return (int)d->nfound;
  }
  *steps = d->steps;
  return (int)d->nsteps;
}

int dltc_decoder_skeleton(const struct dltc_decoder *d, const char **text, size_t *n,
                          struct dltc_error *err) {
  dltc_error_reset(err);
  *text = NULL;
  *n = 0;
  if (!d->skel_cap)
    return dltc_error_set(err, DLTC_EINVAL, "the plan has no skeleton");
  if (!d->last_ok)
    return dltc_error_set(err, DLTC_EINVAL, "no skeleton: the last feed failed or none was made");
  if (d->skel_over) {
    dltc_error_set(err, DLTC_ELIMIT, "skeleton longer than its cap (%lld bytes)",
                   (long long)d->skel_cap);
    if (err) {
      err->offset = d->skel_over_off;
      memcpy(err->path, d->skel_over_path, sizeof err->path);
    }
    return DLTC_ELIMIT;
  }
  *text = d->skel ? d->skel : "";
  *n = d->skel_len;
  return 0;
}

size_t dltc_decoder_capture_rows(const struct dltc_decoder *d) {
  return d->last_ok ? d->caprows : 0;
}

size_t dltc_decoder_ncaptures(const struct dltc_decoder *d) { return d->ncap; }

void dltc_decoder_capture(const struct dltc_decoder *d, size_t row, size_t i,
                          struct dltc_capture *out) {
  const struct capval *c = &d->caps[row * d->ncap + i];
  out->kind = c->kind;
  out->i = c->i;
  out->f = c->f;
  out->s = c->kind >= DLTC_CAP_BIGINT ? d->arena + c->off : NULL;
  out->n = c->kind >= DLTC_CAP_BIGINT ? c->n : 0;
}

void dltc_decoder_stats(const struct dltc_decoder *d, struct dltc_decoder_stats *out) {
  *out = d->st;
}
