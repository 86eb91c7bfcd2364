/* Errors of the C core: an errno-style code plus a fixed-size message struct.
 * Every public function returns 0 on success or a DLTC_E* code, and fills the
 * struct dltc_error passed last on every failure path. */
#ifndef DLTC_ERROR_H
#define DLTC_ERROR_H

#include <stddef.h>
#include <stdint.h>

enum dltc_code {
  DLTC_OK = 0,
  DLTC_ENOMEM = 1,   /* allocation failed */
  DLTC_EINVAL = 2,   /* bad argument or configuration */
  DLTC_EPARSE = 3,   /* malformed input (JSON, header) */
  DLTC_ELIMIT = 4,   /* a cap was hit: size, depth, ratio, redirects */
  DLTC_EHTTP = 5,    /* HTTP status that is an error for this request */
  DLTC_ENET = 6,     /* transport: connect, reset, timeout, TLS */
  DLTC_EREFUSED = 7, /* policy refused the request (host not allowed) */
  DLTC_ESCHEMA = 8,  /* a schema contract was violated (freeze) */
  DLTC_ECANCEL = 9,  /* stopped by the caller */
  DLTC_EMORE = 10,   /* not an error: need more input */
  DLTC_EAGAIN = 11,  /* not an error: nothing ready yet */
};

#define DLTC_ERROR_MSG_SIZE 1024
#define DLTC_ERROR_PATH_SIZE 256

struct dltc_error {
  int code;                        /* enum dltc_code */
  int64_t offset;                  /* byte offset into the input, -1 if none */
  char path[DLTC_ERROR_PATH_SIZE]; /* JSON path such as $.games[12].white.rating, or "" */
  char msg[DLTC_ERROR_MSG_SIZE];   /* human-readable, NUL-terminated */
};

/* Clear err to "no error". err may be NULL. */
void dltc_error_reset(struct dltc_error *err);

/* Fill err (if not NULL) with code and a printf-style message; returns code so
 * callers can write `return dltc_error_set(err, DLTC_EINVAL, "...")`. */
int dltc_error_set(struct dltc_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Short static name of a code, e.g. "ENOMEM". */
const char *dltc_code_name(int code);

#endif
