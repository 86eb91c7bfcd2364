/* Tests of error.c: formatting, truncation and reset. */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "version.h"

static int failures;
#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                     \
      failures++;                                                                                  \
    }                                                                                              \
  } while (0)

int main(void) {
  struct dltc_error err;
  dltc_error_reset(&err);
  CHECK(err.code == DLTC_OK && err.offset == -1 && err.msg[0] == '\0');

  CHECK(dltc_error_set(&err, DLTC_EINVAL, "bad %s %d", "thing", 42) == DLTC_EINVAL);
  CHECK(err.code == DLTC_EINVAL);
  CHECK(strcmp(err.msg, "bad thing 42") == 0);

  char big[4096];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  dltc_error_set(&err, DLTC_ELIMIT, "%s", big);
  CHECK(strlen(err.msg) == DLTC_ERROR_MSG_SIZE - 1);

  CHECK(dltc_error_set(NULL, DLTC_ENOMEM, "ignored") == DLTC_ENOMEM);
  CHECK(strcmp(dltc_code_name(DLTC_EPARSE), "EPARSE") == 0);
  CHECK(strncmp(dltc_curl_version(), "libcurl/", 8) == 0);
  CHECK(strlen(dltc_version()) > 0);

  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("test_error: ok\n");
  return 0;
}
