/* libFuzzer target for dltc_inflate on untrusted bodies: the first byte picks the
 * encoding (gzip, br, identity) and whether a caller buffer is offered; the rest is
 * the body, in an exact-size heap buffer so ASan sees any over-read. Checks that
 * the caps hold and that a success really is within them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arrow.h"
#include "inflate.h"

#define MAX_OUT ((size_t)4 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  size_t n = size - 1;
  uint8_t *in = malloc(n ? n : 1);
  if (!in)
    return 0;
  memcpy(in, data + 1, n);
  enum dltc_encoding enc = (enum dltc_encoding)(data[0] % 3);
  size_t dst_cap = (data[0] & 0x80) ? (size_t)(data[0] & 0x7f) * 97 : 0;
  uint8_t *dst = dst_cap ? malloc(dst_cap) : NULL;
  struct dltc_error err;
  uint8_t *out = NULL;
  size_t len = 0;
  int rc = dltc_inflate(in, n, enc, MAX_OUT, 50.0, dst, dst_cap, &out, &len, &err);
  if (rc == 0) {
    if (!out || len > MAX_OUT || (len > DLTC_INFLATE_RATIO_FLOOR && (double)len > 50.0 * (double)n))
      abort();
    if (len)
      (void)out[len - 1]; /* the whole output is addressable */
    if (out != dst)
      dltc__free(out);
  } else if (out || err.msg[0] == '\0') {
    abort();
  }
  free(dst);
  free(in);
  return 0;
}
