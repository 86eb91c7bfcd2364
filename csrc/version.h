/* Version strings of dltc and of the libcurl it runs on, and the one-time
 * global initialisation libcurl needs before any thread uses it. */
#ifndef DLTC_VERSION_H
#define DLTC_VERSION_H

/* dltc's own version, e.g. "0.1.0". Static storage. */
const char *dltc_version(void);

/* libcurl's version line, e.g. "libcurl/7.88.1 OpenSSL/3.0.x zlib/... brotli/...".
 * Static storage owned by libcurl. */
const char *dltc_curl_version(void);

/* Initialise libcurl once per process; safe to call from any thread, any number
 * of times. Returns 0 or DLTC_ENET. */
int dltc_global_init(void);

#endif
