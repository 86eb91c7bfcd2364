/* Auth helpers: base64, the OAuth2 token request body, the token response. */
#include "auth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

char *dltc_base64(const char *in, size_t n) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  char *out = malloc((n + 2) / 3 * 4 + 1);
  if (!out)
    return NULL;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)(unsigned char)in[i] << 16;
    if (i + 1 < n)
      v |= (uint32_t)(unsigned char)in[i + 1] << 8;
    if (i + 2 < n)
      v |= (uint32_t)(unsigned char)in[i + 2];
    out[o++] = tbl[(v >> 18) & 63];
    out[o++] = tbl[(v >> 12) & 63];
    out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? tbl[v & 63] : '=';
  }
  out[o] = '\0';
  return out;
}

int dltc_auth_token_form(const struct dltc_auth_spec *s, char **out, size_t *out_len,
                         struct dltc_error *err) {
  /* fields in dlt's order; a form key equal to one of them replaces its value */
  const char *keys[3 + DLTC_AUTH_MAX_FORM], *vals[3 + DLTC_AUTH_MAX_FORM];
  size_t n = 0, need = 1;
  *out = NULL;
  *out_len = 0;
  if (s->n_form > DLTC_AUTH_MAX_FORM)
    return dltc_error_set(err, DLTC_EINVAL, "at most %d access_token_request_data fields",
                          DLTC_AUTH_MAX_FORM);
  if (!s->client_auth_basic) {
    keys[n] = "client_id", vals[n++] = s->client_id ? s->client_id : "";
    keys[n] = "client_secret", vals[n++] = s->client_secret ? s->client_secret : "";
  }
  keys[n] = "grant_type", vals[n++] = "client_credentials";
  for (size_t i = 0; i < s->n_form; i++) {
    const char *k = s->form[2 * i], *v = s->form[2 * i + 1];
    size_t j = 0;
    while (j < n && strcmp(keys[j], k) != 0)
      j++;
    keys[j] = k;
    vals[j] = v;
    if (j == n)
      n++;
  }
  for (size_t i = 0; i < n; i++)
    need += 3 * (strlen(keys[i]) + strlen(vals[i])) + 2;
  char *buf = malloc(need);
  if (!buf)
    return dltc_error_set(err, DLTC_ENOMEM, "out of memory");
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (i)
      buf[o++] = '&';
    o += dltc_form_encode(keys[i], strlen(keys[i]), buf + o);
    buf[o++] = '=';
    o += dltc_form_encode(vals[i], strlen(vals[i]), buf + o);
  }
  buf[o] = '\0';
  *out = buf;
  *out_len = o;
  return 0;
}

/* ---- a minimal JSON reader for the token response ----------------------------------
 * Only the top-level object is walked; other values are skipped (bounded depth). */

struct rd {
  const char *s;
  size_t n, i;
};

static void ws(struct rd *r) {
  while (r->i < r->n &&
         (r->s[r->i] == ' ' || r->s[r->i] == '\t' || r->s[r->i] == '\n' || r->s[r->i] == '\r'))
    r->i++;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static int hex4(struct rd *r, unsigned *out) {
  unsigned v = 0;
  if (r->i + 4 > r->n)
    return -1;
  for (int k = 0; k < 4; k++) {
    int h = hexval(r->s[r->i++]);
    if (h < 0)
      return -1;
    v = v * 16 + (unsigned)h;
  }
  *out = v;
  return 0;
}

/* A string at r->i (the opening quote). With out (capacity >= the raw length + 1),
 * the unescaped UTF-8 is stored there and its length in *len. Returns 0 or -1. */
static int str(struct rd *r, char *out, size_t *len) {
  size_t o = 0;
  if (r->i >= r->n || r->s[r->i] != '"')
    return -1;
  r->i++;
  while (r->i < r->n) {
    unsigned char c = (unsigned char)r->s[r->i++];
    if (c == '"') {
      if (out) {
        out[o] = '\0';
        *len = o;
      }
      return 0;
    }
    if (c < 0x20)
      return -1;
    if (c != '\\') {
      if (out)
        out[o++] = (char)c;
      continue;
    }
    if (r->i >= r->n)
      return -1;
    char e = r->s[r->i++];
    unsigned cp;
    switch (e) {
    case '"': cp = '"'; break;
    case '\\': cp = '\\'; break;
    case '/': cp = '/'; break;
    case 'b': cp = '\b'; break;
    case 'f': cp = '\f'; break;
    case 'n': cp = '\n'; break;
    case 'r': cp = '\r'; break;
    case 't': cp = '\t'; break;
    case 'u':
      if (hex4(r, &cp))
        return -1;
      if (cp >= 0xD800 && cp < 0xDC00 && r->i + 6 <= r->n && r->s[r->i] == '\\' &&
          r->s[r->i + 1] == 'u') {
        unsigned lo;
        r->i += 2;
        if (hex4(r, &lo) || lo < 0xDC00 || lo > 0xDFFF)
          return -1;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      }
      break;
    default: return -1;
    }
    if (!out)
      continue;
    if (cp < 0x80) {
      out[o++] = (char)cp;
    } else if (cp < 0x800) {
      out[o++] = (char)(0xC0 | (cp >> 6));
      out[o++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out[o++] = (char)(0xE0 | (cp >> 12));
      out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
      out[o++] = (char)(0x80 | (cp & 0x3F));
    } else {
      out[o++] = (char)(0xF0 | (cp >> 18));
      out[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
      out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
      out[o++] = (char)(0x80 | (cp & 0x3F));
    }
  }
  return -1;
}

/* Skip any value; containers up to depth 64. Returns 0 or -1. */
static int skip(struct rd *r, int depth) {
  ws(r);
  if (r->i >= r->n || depth > 64)
    return -1;
  char c = r->s[r->i];
  if (c == '"')
    return str(r, NULL, NULL);
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    r->i++;
    ws(r);
    if (r->i < r->n && r->s[r->i] == close) {
      r->i++;
      return 0;
    }
    for (;;) {
      if (c == '{') {
        ws(r);
        if (str(r, NULL, NULL))
          return -1;
        ws(r);
        if (r->i >= r->n || r->s[r->i++] != ':')
          return -1;
      }
      if (skip(r, depth + 1))
        return -1;
      ws(r);
      if (r->i >= r->n)
        return -1;
      char d = r->s[r->i++];
      if (d == close)
        return 0;
      if (d != ',')
        return -1;
    }
  }
  size_t start = r->i; /* number, true, false, null */
  while (r->i < r->n && strchr("+-.0123456789eEtrufalsn", r->s[r->i]))
    r->i++;
  return r->i > start ? 0 : -1;
}

/* Whole seconds of a JSON number or numeric string s[0..n) as Python's int()
 * would take them (int(3600.9) == 3600, int("3600") == 3600). -1 if not one. */
static double seconds_of(const char *s, size_t n, int quoted) {
  char buf[64];
  if (n == 0 || n >= sizeof buf)
    return -1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  char *end = NULL;
  if (quoted) { /* int("3600") accepts digits only (and surrounding space, sign) */
    long long v = strtoll(buf, &end, 10);
    while (end && (*end == ' ' || *end == '\t'))
      end++;
    return end && *end == '\0' && v >= 0 ? (double)v : -1;
  }
  double v = strtod(buf, &end);
  if (!end || *end != '\0' || !(v >= 0) || v > 1e12)
    return -1;
  return (double)(long long)v;
}

int dltc_auth_token_parse(const char *body, size_t n, char **token, double *expires_in,
                          struct dltc_error *err) {
  struct rd r = {body, n, 0};
  char *tok = NULL;
  *token = NULL;
  *expires_in = -1;
  ws(&r);
  if (r.i >= n || body[r.i] != '{')
    goto bad;
  r.i++;
  ws(&r);
  if (r.i < n && body[r.i] == '}') {
    r.i++;
  } else {
    for (;;) {
      char key[32];
      size_t klen = 0;
      ws(&r);
      size_t kstart = r.i;
      if (str(&r, NULL, NULL))
        goto bad;
      size_t raw = r.i - kstart;
      int want = 0; /* 1 access_token, 2 expires_in */
      if (raw < sizeof key) {
        r.i = kstart;
        if (str(&r, key, &klen))
          goto bad;
        if (klen == 12 && memcmp(key, "access_token", 12) == 0)
          want = 1;
        else if (klen == 10 && memcmp(key, "expires_in", 10) == 0)
          want = 2;
      }
      ws(&r);
      if (r.i >= n || body[r.i++] != ':')
        goto bad;
      ws(&r);
      size_t vstart = r.i;
      if (want == 1 && r.i < n && body[r.i] == '"') {
        size_t vlen;
        free(tok);
        size_t cap = 0;
        struct rd probe = r;
        if (str(&probe, NULL, NULL))
          goto bad;
        cap = probe.i - r.i + 1;
        if (!(tok = malloc(cap))) {
          return dltc_error_set(err, DLTC_ENOMEM, "out of memory");
        }
        if (str(&r, tok, &vlen))
          goto bad;
        for (size_t k = 0; k < vlen; k++)
          if ((unsigned char)tok[k] < 0x20 || tok[k] == 0x7F) {
            free(tok);
            return dltc_error_set(err, DLTC_EPARSE,
                                  "token response: access_token contains control characters");
          }
      } else if (want == 1) {
        free(tok);
        return dltc_error_set(err, DLTC_EPARSE, "token response: access_token is not a string");
      } else {
        if (skip(&r, 0))
          goto bad;
        if (want == 2) {
          int quoted = body[vstart] == '"';
          const char *v = body + vstart + quoted;
          size_t vn = r.i - vstart - 2 * (size_t)quoted;
          if (!(quoted || (body[vstart] >= '0' && body[vstart] <= '9')) ||
              (*expires_in = seconds_of(v, vn, quoted)) < 0) {
            free(tok);
            return dltc_error_set(err, DLTC_EPARSE,
                                  "token response: expires_in is not a number of seconds");
          }
        }
      }
      ws(&r);
      if (r.i >= n)
        goto bad;
      char d = body[r.i++];
      if (d == '}')
        break;
      if (d != ',')
        goto bad;
    }
  }
  ws(&r);
  if (r.i != n)
    goto bad;
  if (!tok)
    return dltc_error_set(err, DLTC_EPARSE, "token response has no access_token");
  if (!tok[0]) {
    free(tok);
    return dltc_error_set(err, DLTC_EPARSE, "token response has an empty access_token");
  }
  *token = tok;
  return 0;
bad:
  free(tok);
  *expires_in = -1;
  return dltc_error_set(err, DLTC_EPARSE, "token response is not a JSON object (byte %zu)", r.i);
}
