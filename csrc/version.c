/* Version strings and libcurl's process-wide initialisation. */
#include "version.h"

#include <curl/curl.h>
#include <pthread.h>

#include "dltc_version.h"
#include "error.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static CURLcode init_result = CURLE_OK;

static void global_init_once(void) { init_result = curl_global_init(CURL_GLOBAL_DEFAULT); }

const char *dltc_version(void) { return DLTC_VERSION; }

const char *dltc_curl_version(void) {
  dltc_global_init();
  return curl_version();
}

int dltc_global_init(void) {
  pthread_once(&init_once, global_init_once);
  return init_result == CURLE_OK ? DLTC_OK : DLTC_ENET;
}
