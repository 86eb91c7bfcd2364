/* Small HTTP header-value parsers the engine needs beyond what libcurl does:
 * entity tags (ETag / If-None-Match) and Link (RFC 8288) for pagination.
 * Inputs are untrusted bytes from the network; every function is bounded by
 * the length it is given and never reads past it (fuzzed in tests/fuzz). */
#ifndef DLTC_HTTP_H
#define DLTC_HTTP_H

#include <stddef.h>

#include "error.h"

/* Validate an entity-tag `W/"..."` or `"..."` (RFC 9110 8.8.3) in s[0..n),
 * ignoring surrounding whitespace. On success sets *off and *len to the tag
 * (including W/ and quotes) and returns 0; otherwise DLTC_EPARSE. A valid tag
 * never contains CR, LF, NUL or other controls, so it is safe to send back. */
int dltc_etag_parse(const char *s, size_t n, size_t *off, size_t *len);

/* Find, in a Link header value s[0..n), the first link whose rel parameter
 * contains the token `rel` (case-insensitive; quoted lists allowed). On success
 * sets *off and *len to the URI reference between < and > and returns 0. Returns
 * DLTC_EAGAIN when the header is well-formed but has no such link and
 * DLTC_EPARSE when it is malformed before one was found. */
int dltc_link_find(const char *s, size_t n, const char *rel, size_t *off, size_t *len);

/* Form-encode s[0..n) into out as Python's urllib.parse.quote_plus(safe="") does
 * (the encoding requests/dlt use for params and form bodies): A-Z a-z 0-9 "_.-~"
 * kept, space as '+', every other byte as %XX (upper-case hex). out must hold
 * 3 * n bytes; no NUL is written. Returns the bytes written. */
size_t dltc_form_encode(const char *s, size_t n, char *out);

/* Append form-encoded pairs to url's query the way requests does: after an
 * existing query with '&' (none after a bare '?'), before any '#fragment'.
 * kv[2i], kv[2i+1] are key and value with lengths lens[2i], lens[2i+1].
 * Returns 0 with *out malloc'd (caller frees), DLTC_ENOMEM or DLTC_EINVAL. */
int dltc_url_add_query(const char *url, const char *const *kv, const size_t *lens, size_t n_pairs,
                       char **out, struct dltc_error *err);

#endif
