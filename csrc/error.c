/* Filling struct dltc_error. Kept out of line so hot loops only pay for a call
 * on the (rare) failure path. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void dltc_error_reset(struct dltc_error *err) {
  if (!err)
    return;
  err->code = DLTC_OK;
  err->offset = -1;
  err->path[0] = '\0';
  err->msg[0] = '\0';
}

int dltc_error_set(struct dltc_error *err, int code, const char *fmt, ...) {
  if (!err)
    return code;
  err->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  return code;
}

const char *dltc_code_name(int code) {
  switch (code) {
  case DLTC_OK: return "OK";
  case DLTC_ENOMEM: return "ENOMEM";
  case DLTC_EINVAL: return "EINVAL";
  case DLTC_EPARSE: return "EPARSE";
  case DLTC_ELIMIT: return "ELIMIT";
  case DLTC_EHTTP: return "EHTTP";
  case DLTC_ENET: return "ENET";
  case DLTC_EREFUSED: return "EREFUSED";
  case DLTC_ESCHEMA: return "ESCHEMA";
  case DLTC_ECANCEL: return "ECANCEL";
  case DLTC_EMORE: return "EMORE";
  case DLTC_EAGAIN: return "EAGAIN";
  }
  return "E?";
}
