/* libFuzzer target for the header-value parsers the engine runs on untrusted
 * bytes: Retry-After (seconds and HTTP-dates), ETag and Link. The first byte
 * picks the parser; the rest is the value, copied to an exact-size heap buffer
 * so ASan catches any read past its end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "limit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  size_t n = size - 1;
  char *v = malloc(n ? n : 1);
  if (!v)
    return 0;
  memcpy(v, data + 1, n);
  size_t off = 0, len = 0;
  switch (data[0] % 4) {
  case 0: {
    double s = -1;
    if (dltc_retry_after_parse(v, n, 1700000000, &s, NULL) == 0 &&
        (!(s >= 0) || s > DLTC_RETRY_AFTER_MAX))
      abort();
    break;
  }
  case 1: {
    int64_t t;
    if (dltc_http_date_parse(v, n, &t) == 0 && t < 0)
      abort();
    break;
  }
  case 2:
    if (dltc_etag_parse(v, n, &off, &len) == 0) {
      if (off + len > n || len < 2 || v[off + len - 1] != '"')
        abort();
      for (size_t i = off; i < off + len; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7F)
          abort(); /* would allow header injection when sent back */
    }
    break;
  default:
    if (dltc_link_find(v, n, "next", &off, &len) == 0 && off + len > n)
      abort();
    break;
  }
  free(v);
  return 0;
}
