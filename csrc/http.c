/* Entity-tag and Link header parsing (strict, bounded, allocation-free) and the
 * form encoding of query parameters. */
#include "http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is_ows(char c) { return c == ' ' || c == '\t'; }

/* etagc = %x21 / %x23-7E / obs-text */
static int is_etagc(unsigned char c) { return c == 0x21 || (c >= 0x23 && c != 0x7F); }

int dltc_etag_parse(const char *s, size_t n, size_t *off, size_t *len) {
  size_t i = 0;
  while (i < n && is_ows(s[i]))
    i++;
  while (n > i && is_ows(s[n - 1]))
    n--;
  size_t start = i;
  if (n - i >= 2 && s[i] == 'W' && s[i + 1] == '/')
    i += 2;
  if (i >= n || s[i] != '"')
    return DLTC_EPARSE;
  i++;
  while (i < n && s[i] != '"') {
    if (!is_etagc((unsigned char)s[i]))
      return DLTC_EPARSE;
    i++;
  }
  if (i >= n || i + 1 != n) /* no closing quote, or bytes after it */
    return DLTC_EPARSE;
  *off = start;
  *len = n - start;
  return 0;
}

static int is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
    return 1;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Does the space-separated list v[0..vn) contain `tok` (case-insensitive)? */
static int has_token(const char *v, size_t vn, const char *tok) {
  size_t tn = strlen(tok);
  size_t i = 0;
  while (i < vn) {
    while (i < vn && (v[i] == ' ' || v[i] == '\t'))
      i++;
    size_t j = i;
    while (j < vn && v[j] != ' ' && v[j] != '\t')
      j++;
    if (j - i == tn && tn > 0 && strncasecmp(v + i, tok, tn) == 0)
      return 1;
    i = j;
  }
  return 0;
}

int dltc_link_find(const char *s, size_t n, const char *rel, size_t *off, size_t *len) {
  size_t i = 0;
  for (;;) {
    while (i < n && (is_ows(s[i]) || s[i] == ','))
      i++;
    if (i >= n)
      return DLTC_EAGAIN;
    if (s[i] != '<')
      return DLTC_EPARSE;
    size_t uri = ++i;
    while (i < n && s[i] != '>') {
      if ((unsigned char)s[i] < 0x20 || s[i] == '<')
        return DLTC_EPARSE;
      i++;
    }
    if (i >= n)
      return DLTC_EPARSE;
    size_t uri_len = i - uri;
    i++;
    int match = 0;
    /* link-params: *( OWS ";" OWS link-param ) */
    for (;;) {
      while (i < n && is_ows(s[i]))
        i++;
      if (i >= n || s[i] == ',')
        break;
      if (s[i] != ';')
        return DLTC_EPARSE;
      i++;
      while (i < n && is_ows(s[i]))
        i++;
      size_t name = i;
      while (i < n && is_tchar((unsigned char)s[i]))
        i++;
      size_t name_len = i - name;
      if (name_len == 0)
        return DLTC_EPARSE;
      while (i < n && is_ows(s[i]))
        i++;
      const char *val = NULL;
      size_t val_len = 0;
      if (i < n && s[i] == '=') {
        i++;
        while (i < n && is_ows(s[i]))
          i++;
        if (i < n && s[i] == '"') {
          size_t v = ++i;
          while (i < n && s[i] != '"') {
            if (s[i] == '\\' && i + 1 < n)
              i++;
            i++;
          }
          if (i >= n)
            return DLTC_EPARSE;
          val = s + v;
          val_len = i - v;
          i++;
        } else {
          size_t v = i;
          while (i < n && is_tchar((unsigned char)s[i]))
            i++;
          val = s + v;
          val_len = i - v;
        }
      }
      if (name_len == 3 && strncasecmp(s + name, "rel", 3) == 0 && val &&
          has_token(val, val_len, rel))
        match = 1;
    }
    if (match) {
      *off = uri;
      *len = uri_len;
      return 0;
    }
  }
}

size_t dltc_form_encode(const char *s, size_t n, char *out) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
        c == '.' || c == '-' || c == '~') {
      out[o++] = (char)c;
    } else if (c == ' ') {
      out[o++] = '+';
    } else {
      out[o++] = '%';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  return o;
}

int dltc_url_add_query(const char *url, const char *const *kv, const size_t *lens, size_t n_pairs,
                       char **out, struct dltc_error *err) {
  *out = NULL;
  if (!url)
    return dltc_error_set(err, DLTC_EINVAL, "url is required");
  size_t un = strlen(url);
  const char *hash = strchr(url, '#');
  size_t base = hash ? (size_t)(hash - url) : un;
  size_t need = un + 2;
  for (size_t i = 0; i < 2 * n_pairs; i++) {
    if (lens[i] > (SIZE_MAX - need) / 4)
      return dltc_error_set(err, DLTC_EINVAL, "query parameters too long");
    need += 3 * lens[i] + 1;
  }
  char *buf = malloc(need);
  if (!buf)
    return dltc_error_set(err, DLTC_ENOMEM, "out of memory");
  memcpy(buf, url, base);
  size_t o = base;
  const char *q = memchr(url, '?', base);
  if (n_pairs) {
    if (!q)
      buf[o++] = '?';
    else if (q + 1 != url + base)
      buf[o++] = '&';
  }
  for (size_t i = 0; i < n_pairs; i++) {
    if (i)
      buf[o++] = '&';
    o += dltc_form_encode(kv[2 * i], lens[2 * i], buf + o);
    buf[o++] = '=';
    o += dltc_form_encode(kv[2 * i + 1], lens[2 * i + 1], buf + o);
  }
  memcpy(buf + o, url + base, un - base);
  o += un - base;
  buf[o] = '\0';
  *out = buf;
  return 0;
}
