/* The fetch engine: one thread runs a libcurl multi loop and is the only one to
 * touch curl handles. Any thread submits requests (mutex + wakeup); finished
 * requests (success or final error) wait in a bounded queue for the consumer;
 * while that queue is full no new transfer starts, so memory stays bounded
 * (at most queue_size + max_concurrency bodies) however large the job. */
#ifndef DLTC_ENGINE_H
#define DLTC_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "error.h"

struct dltc_engine;

/* Event-loop flavours; see engine.c for the measurement behind the default. */
enum dltc_loop { DLTC_LOOP_POLL = 0, DLTC_LOOP_EPOLL = 1 };

#define DLTC_MAX_HEADERS 64
#define DLTC_MAX_ALLOWED_HOSTS 256
#define DLTC_MAX_EMPTY_ON 16
#define DLTC_MAX_REQ_HEADERS 64 /* per request */
#define DLTC_MAX_AUTH 256       /* auth specs per engine */
#define DLTC_AUTH_NONE 0        /* handle: no auth */

struct dltc_engine_config {
  int max_concurrency;     /* fixed ceiling, all hosts together and per host window cap */
  int initial_concurrency; /* starting per-host window */
  double rps;              /* per-host requests/second, <= 0 unlimited */
  int max_attempts;        /* attempts per request, >= 1 */
  double max_retry_time;   /* seconds from first attempt after which no retry starts */
  double backoff_base;     /* seconds: first retry waits up to this (full jitter) */
  double backoff_cap;      /* seconds: longest backoff */
  double connect_timeout, timeout, low_speed_time; /* seconds; 0 = none */
  int64_t max_body;                                /* decoded body bytes */
  double max_ratio; /* decoded/wire bytes, checked once decoded > 1 MiB */
  int max_redirects;
  int same_host_redirects;          /* 1: a redirect must stay on the request's host */
  const char *const *allowed_hosts; /* NULL = any; else n_allowed host names */
  size_t n_allowed;
  const char *ca_file;        /* NULL = system store */
  int verify;                 /* TLS peer and host verification */
  const char *const *headers; /* "Name: value" lines, n_headers of them */
  size_t n_headers;
  int http2;              /* allow HTTP/2 (ALPN) over TLS and multiplexing */
  int queue_size;         /* completed responses held before transfers pause */
  const char *user_agent; /* NULL = "dltc/<version>" */
  size_t max_pending;     /* submitted-but-unreturned cap; submit fails beyond */
  int loop;               /* enum dltc_loop */
  int decompress_caller;  /* 1: ask for gzip/br, hand the body over undecoded (see
                             dltc_response.encoding); 0: the engine decodes */
};

/* Defaults of docs/CONTRACTS.md section 3. Strings are not owned by the config. */
void dltc_engine_config_init(struct dltc_engine_config *cfg);

/* One finished request. Owned by the caller of dltc_engine_next; free with
 * dltc_response_free. Strings are NUL-terminated and owned by the response. */
struct dltc_response {
  uint64_t id;
  const char *url; /* as submitted */
  long status;     /* last HTTP status, 0 when none (transport error, refused) */
  char *body;      /* decoded body or NULL; "" (len 0) for statuses in empty_on */
  size_t body_len;
  const char *etag;      /* validated ETag of the response, or NULL */
  const char *link_next; /* target of Link rel="next", or NULL */
  int not_modified;      /* 1 on 304 */
  int code;              /* 0 ok, else DLTC_E* of the final failure */
  const char *error;     /* final error message, NULL on success */
  int attempts;
  double elapsed;        /* seconds from first attempt start to completion */
  int http_version;      /* 10, 11, 20, 30, 0 unknown */
  int encoding;          /* enum dltc_encoding (inflate.h) of body: DLTC_ENC_IDENTITY on
                            success unless decompress_caller; else the response's
                            Content-Encoding (error bodies are not decoded) */
  const char *method;    /* method of the last hop (a 303 turns POST into GET) */
  const char *final_url; /* URL of the last hop (== url without redirects); never holds
                            an API key added by auth */
  char *headers;         /* every header of the last response, in order, as n_headers
                            "name\0value\0" pairs (name as sent, value trimmed); NULL if none.
                            A consumer may take it (set to NULL) and free() it itself. */
  size_t headers_len, n_headers;
};

void dltc_response_free(struct dltc_response *r);

/* Start an engine and its thread. Copies every string of cfg. Returns 0 and
 * sets *out, or a code with err filled (and *out NULL). */
int dltc_engine_new(const struct dltc_engine_config *cfg, struct dltc_engine **out,
                    struct dltc_error *err);

/* A fresh request id (thread-safe), for callers that must record something
 * under the id before the request can complete (see dltc_engine_submit). */
uint64_t dltc_engine_reserve_id(struct dltc_engine *e);

/* Queue a GET of url from any thread; never blocks on the network. etag (may
 * be NULL) is sent as If-None-Match; a status in empty_on[0..n_empty) counts
 * as success with an empty body. Every accepted submit produces exactly one
 * response, refused or malformed URLs included (as an error response).
 * *id: 0 to get a new id, or one from dltc_engine_reserve_id. Returns 0 and
 * the id in *id, or DLTC_EINVAL (bad etag / too many statuses),
 * DLTC_ELIMIT (max_pending reached), DLTC_ECANCEL (engine stopped). */
int dltc_engine_submit(struct dltc_engine *e, const char *url, const char *etag,
                       const int *empty_on, size_t n_empty, uint64_t *id, struct dltc_error *err);

/* One request for dltc_engine_submit_request. Everything is copied.
 * method: NULL = "GET"; any RFC 9110 token, upper-cased. GET and HEAD without a
 * body send none; every other method sends body (or an empty one, with
 * Content-Length: 0, as requests does), resent as is on every retry. No
 * Content-Type is added: put it in headers. headers: "Name: value" lines that
 * replace client headers of the same name (case-insensitive); "Name:" removes
 * one. auth: DLTC_AUTH_NONE or a handle of dltc_engine_add_auth; its header
 * replaces a header of the same name. */
struct dltc_request {
  const char *url; /* query included (dltc_url_add_query builds one) */
  const char *method;
  const char *const *headers;
  size_t n_headers;
  const char *body; /* NULL: no body */
  size_t body_len;
  const char *etag;
  const int *empty_on;
  size_t n_empty;
  int auth;
};

/* dltc_engine_submit for any request; same contract and errors, plus
 * DLTC_EINVAL for a bad method, header line or auth handle. */
int dltc_engine_submit_request(struct dltc_engine *e, const struct dltc_request *rq, uint64_t *id,
                               struct dltc_error *err);

/* Register an auth spec (copied; see auth.h) from any thread; *handle gets a
 * value > 0 for dltc_request.auth. OAuth2: the token is POSTed for through the
 * engine when a request first needs it (one fetch at a time; the others wait),
 * refetched in the background once it is within min(60 s, lifetime/10, at least
 * min(1 s, lifetime/2)) of expiry, and once more when a request gets a 401 (that
 * request is then retried with the new token; a second 401 is its error).
 * Returns 0, DLTC_EINVAL (missing field, CR/LF, token URL not allowed) or
 * DLTC_ELIMIT (DLTC_MAX_AUTH reached). Secrets never appear in messages. */
int dltc_engine_add_auth(struct dltc_engine *e, const struct dltc_auth_spec *spec, int *handle,
                         struct dltc_error *err);

/* Change limits while requests are in flight, from any thread (not the engine's):
 * max_concurrency > 0 sets the ceiling of all hosts together and of each host's
 * window (0 = unchanged); with set_rps, rps becomes every host's rate (<= 0 =
 * unlimited). Returns once the engine thread applied them: no transfer starts
 * above the new limits after that (transfers already started run to their end).
 * Returns 0, DLTC_EINVAL or DLTC_ECANCEL (stopped). */
int dltc_engine_set_limits(struct dltc_engine *e, int max_concurrency, int set_rps, double rps,
                           struct dltc_error *err);

/* Wait up to timeout_ms (< 0: forever) for a finished request. Returns 0 and
 * sets *out (caller frees), DLTC_EAGAIN on timeout, DLTC_ECANCEL when the
 * engine was stopped. Safe from several threads; each response goes to one. */
int dltc_engine_next(struct dltc_engine *e, int timeout_ms, struct dltc_response **out,
                     struct dltc_error *err);

/* Submitted and not yet returned by dltc_engine_next (0 once stopped). */
size_t dltc_engine_pending(struct dltc_engine *e);

#define DLTC_HIST_MAX 4096
enum dltc_retry_cause {
  DLTC_RC_429,
  DLTC_RC_503,
  DLTC_RC_5XX,
  DLTC_RC_CONNECT,
  DLTC_RC_TIMEOUT,
  DLTC_RC_TRUNCATED,
  DLTC_RC_OTHER,
  DLTC_RC_COUNT
};
/* Static name of a retry cause, e.g. "status_429". */
const char *dltc_retry_cause_name(int cause);

struct dltc_engine_stats {
  uint64_t requests;      /* attempts that reached the network */
  uint64_t responses;     /* finished requests */
  uint64_t errors;        /* finished with an error */
  uint64_t wire_bytes;    /* body bytes as received (compressed) */
  uint64_t decoded_bytes; /* body bytes after content decoding (as received when
                            decompress_caller: the engine decodes nothing) */
  uint64_t not_modified;  /* 304s */
  uint64_t status_429;
  uint64_t status_503;
  uint64_t refused; /* refused before sending (host, scheme, URL) */
  uint64_t redirects;
  uint64_t http2;         /* attempts answered over HTTP/2 */
  uint64_t connects;      /* new connections opened (the rest reused one) */
  uint64_t token_fetches; /* OAuth2 token requests finished (success or not) */
  uint64_t retries[DLTC_RC_COUNT];
  double latency_p50, latency_p99; /* seconds per attempt */
  int window;                      /* current window of the busiest host */
  int inflight;
  size_t n_history;
  double history_t[DLTC_HIST_MAX]; /* seconds since engine start */
  int history_w[DLTC_HIST_MAX];
};

/* Snapshot of the counters, from any thread. */
void dltc_engine_stats(struct dltc_engine *e, struct dltc_engine_stats *out);

/* Stop the loop thread, remove and clean every curl handle and drop every
 * queued or finished response. Idempotent; wakes threads in dltc_engine_next
 * (they return DLTC_ECANCEL). The struct stays valid until dltc_engine_free. */
void dltc_engine_stop(struct dltc_engine *e);

/* Stop (if needed) and free. No other thread may be using e. */
void dltc_engine_free(struct dltc_engine *e);

#endif
