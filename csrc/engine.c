/* The fetch engine's event loop. One thread owns the libcurl multi handle and
 * every easy handle; other threads only touch the mutex-guarded incoming and
 * done lists (and wake the loop). Per host: an AIMD window, a token bucket and
 * a Retry-After pause decide when a ready request may start; retries wait in a
 * due-time-sorted list; redirects are followed here, not by libcurl, so every
 * hop is checked against the host policy before anything is sent.
 *
 * Loop flavour, chosen by measurement (small identity bodies from the loopback
 * replica, 3 alternating runs each, medians of CPU-us per request on a loaded
 * 2-core machine): with 256 transfers at 50 ms latency, epoll +
 * curl_multi_socket_action used 45.8 and 49.2 us against 49.6 and 54.5 for
 * curl_multi_poll (whose perform() walks every easy handle at each wakeup); at
 * 0 ms latency and at 64 transfers the two were within the noise. APIs are
 * latency-bound with many transfers in flight, so epoll is the default;
 * DLTC_LOOP_POLL stays selectable (Client(loop="poll")). */
#include "engine.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "inflate.h"
#include "arrow.h" /* dltc__free for inflate's buffers */
#include "limit.h"
#include "version.h"

#define SNIPPET 200       /* body bytes quoted in an error */
#define LAT_SAMPLES 65536 /* latency reservoir */
#define MAX_HOSTS 4096
#define MAX_SECRETS 8
#define BUFFER_SIZE (64 * 1024) /* libcurl receive buffer per handle */
#define MIN_RETRY_DELAY 0.01    /* seconds: even Retry-After: 0 waits this long */

#define LAT_BATCH 1024

enum abort_reason { ABORT_NONE, ABORT_BODY, ABORT_NOMEM };

/* Counters the engine thread bumps without locking; copied to the shared
 * stats under smu once per loop iteration. */
struct counts {
  uint64_t requests, responses, errors, wire_bytes, decoded_bytes, not_modified, status_429,
      status_503, refused, redirects, http2, connects, token_fetches;
  uint64_t retries[DLTC_RC_COUNT];
  int inflight;
};

struct host {
  char *key; /* "host:port" */
  struct dltc_window win;
  struct dltc_bucket bucket;
  int inflight;
  double paused_until;
  struct req *ready_head, *ready_tail;
  struct host *next;
};

/* An easy handle with its error buffer; pooled and reused across requests. */
struct slot {
  CURL *easy;
  char errbuf[CURL_ERROR_SIZE];
  int dirty; /* method/body options set: reset before a plain GET */
  struct slot *next;
};

#define AUTH_SECRETS 6

/* A registered auth spec. Immutable after dltc_engine_add_auth but for the
 * OAuth2 state, which only the engine thread touches. */
struct auth {
  int type;
  char *line;      /* header line of static auth ("Authorization: Bearer ..."), or NULL */
  size_t name_len; /* length of the header name in line */
  char *query;     /* api_key in the query: "name=key", form-encoded */
  struct curl_slist *hdrs, *hdrs_public; /* client headers + line; without secrets */
  char *secrets[AUTH_SECRETS];
  size_t n_secrets;
  /* OAuth2 client credentials */
  char *token_url, *token_host, *token_key, *token_safe;
  char *form; /* token request body */
  size_t form_len;
  char *basic_line; /* client_auth basic: Authorization line of the token request */
  double default_exp;
  char *token, *prev_token; /* current and previous access token */
  char *token_line;         /* "Authorization: Bearer <token>" */
  double expiry, refresh_at;
  uint64_t gen; /* bumped at each new token */
  int fetching;
  struct req *wait_head, *wait_tail; /* requests waiting for a token */
};

struct req {
  struct dltc_response r; /* first member: a response pointer is a req pointer */
  struct dltc_engine *e;
  char *url;                  /* as submitted (r.url) */
  char *safe_url;             /* without user:password, for messages */
  char *cur_url;              /* current hop; == url until a redirect */
  char *orig_host;            /* host name of the submitted URL */
  char *host_key;             /* "host:port" of the current hop */
  char *etag_in;              /* If-None-Match value or NULL */
  char *password, *basic_b64; /* from user:password in the URL, redacted in messages */
  int empty_on[DLTC_MAX_EMPTY_ON];
  int n_empty;
  int refused; /* DLTC_E* when refused at submit, else 0 */
  char *refused_msg;
  struct host *host;
  struct slot *slot;
  struct curl_slist *hdrs;      /* per-request list or NULL (then a shared one is used) */
  struct curl_slist *user;      /* the request's own header lines, or NULL */
  struct curl_slist *auth_node; /* OAuth2: the node of hdrs holding Authorization */
  char *method;                 /* upper-cased, NULL = GET */
  char *body;                   /* request body (has_body) */
  size_t body_len;
  int has_body, body_dropped; /* dropped: a 301/302/303 turned the request into a GET */
  struct auth *auth;
  char *send_url;     /* url with the API key added by auth, or NULL */
  CURLU *uh;          /* url as parsed at submit, handed to libcurl (CURLOPT_CURLU) on the
                         first hop so the engine thread does not parse it again; or NULL */
  uint64_t token_gen; /* OAuth2: generation of the token last sent */
  int auth_retried;   /* OAuth2: already retried after a 401 */
  int internal;       /* an OAuth2 token request of the engine itself */
  size_t hcap;        /* capacity of r.headers */
  int redirects, redirect_pending, cross_host;
  double t_first, due;
  uint64_t started_epoch;
  int started_inflight, started_limit;
  size_t body_cap;
  int abort;
  char last[320];            /* last retryable failure, for the final message */
  struct req *next;          /* incoming / ready / delayed / done list */
  struct req *aprev, *anext; /* in-flight list */
};

struct dltc_engine {
  struct dltc_engine_config cfg;
  char **allowed;
  size_t n_allowed;
  char *ca_file, *user_agent;
  struct curl_slist *base_hdrs, *base_hdrs_public; /* public: without secrets */
  int n_std;        /* the first n_std lines of both: the engine's own (User-Agent, ...) */
  int no_proxy_env; /* no proxy variable was set when the engine started */
  char *secrets[MAX_SECRETS];
  size_t n_secrets;
  struct auth *auths[DLTC_MAX_AUTH + 1]; /* by handle; [0] unused */
  int n_auth;

  /* set_limits: requested under mu, applied by the loop, acknowledged on lcv */
  pthread_cond_t lcv;
  uint64_t lim_req, lim_done;
  int lim_conc, lim_set_rps;
  double lim_rps;

  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct req *in_head, *in_tail;
  struct req *done_head, *done_tail;
  size_t n_done, pending;
  uint64_t next_id;
  int stopping, stopped, thread_started;
  pthread_t thread;

  /* engine thread only */
  CURLM *multi;
  int epfd, evfd;      /* epoll flavour */
  struct fdstate *fds; /* epoll flavour: by fd number, what the epoll set holds */
  int n_fds;
  double timer_due; /* epoll flavour: when libcurl wants a timeout call, <0 none */
  struct host *hosts;
  size_t n_hosts;
  struct slot *pool;
  size_t n_pool;
  struct req *delayed; /* sorted by due */
  struct req *active;  /* in flight */
  int inflight;
  uint64_t rng;
  double t0;

  struct counts cnt;         /* engine thread's own counters, published at each flush */
  double lat_new[LAT_BATCH]; /* attempt latencies not yet in the reservoir */
  size_t n_lat_new;
  struct req *batch_head, *batch_tail; /* finished, not yet handed to consumers */
  size_t n_batch;
  int n_waiters; /* consumers blocked in dltc_engine_next (under mu) */

  pthread_mutex_t smu; /* guards st, lat, hist */
  struct dltc_engine_stats st;
  double *lat;
  size_t n_lat;
  uint64_t n_lat_seen;
  int last_window;
};

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void dltc_engine_config_init(struct dltc_engine_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->max_concurrency = 256;
  cfg->initial_concurrency = 8;
  cfg->rps = 0;
  cfg->max_attempts = 5;
  cfg->max_retry_time = 120.0;
  cfg->backoff_base = 0.1;
  cfg->backoff_cap = 10.0;
  cfg->connect_timeout = 10.0;
  cfg->timeout = 120.0;
  cfg->low_speed_time = 30.0;
  cfg->max_body = (int64_t)256 << 20;
  cfg->max_ratio = 200.0;
  cfg->max_redirects = 5;
  cfg->same_host_redirects = 1;
  cfg->verify = 1;
  cfg->http2 = 1;
  cfg->queue_size = 64;
  cfg->max_pending = (size_t)1 << 22;
  cfg->loop = DLTC_LOOP_EPOLL;
}

const char *dltc_retry_cause_name(int cause) {
  switch (cause) {
  case DLTC_RC_429: return "status_429";
  case DLTC_RC_503: return "status_503";
  case DLTC_RC_5XX: return "status_5xx";
  case DLTC_RC_CONNECT: return "connect";
  case DLTC_RC_TIMEOUT: return "timeout";
  case DLTC_RC_TRUNCATED: return "truncated";
  case DLTC_RC_OTHER: return "other";
  }
  return "?";
}

/* ---- requests ------------------------------------------------------------------ */

static void req_free(struct req *q) {
  if (!q)
    return;
  free(q->r.body);
  free((char *)q->r.etag);
  free((char *)q->r.link_next);
  free((char *)q->r.error);
  if (q->cur_url != q->url)
    free(q->cur_url);
  free(q->url);
  free(q->safe_url);
  free(q->orig_host);
  free(q->host_key);
  free(q->etag_in);
  free(q->refused_msg);
  free(q->password);
  free(q->basic_b64);
  curl_slist_free_all(q->hdrs);
  curl_slist_free_all(q->user);
  free(q->method);
  free(q->body);
  free(q->send_url);
  curl_url_cleanup(q->uh);
  free(q->r.headers);
  free(q);
}

void dltc_response_free(struct dltc_response *r) { req_free((struct req *)r); }

static void lower(char *s) {
  for (; s && *s; s++)
    if (*s >= 'A' && *s <= 'Z')
      *s = (char)(*s - 'A' + 'a');
}

static int host_allowed(const struct dltc_engine *e, const char *host) {
  if (!e->allowed)
    return 1;
  for (size_t i = 0; i < e->n_allowed; i++)
    if (strcmp(e->allowed[i], host) == 0)
      return 1;
  return 0;
}

/* Parse url into its host name, "host:port" key and a credential-free form; with
 * uh_out, also the parsed URL itself when it holds no credentials (else NULL).
 * Returns 0, or a DLTC_E* code with a message in msg (no allocation kept). */
static int parse_target(const char *url, char **host_out, char **key_out, char **safe_out,
                        CURLU **uh_out, char *msg, size_t msg_size) {
  int rc = DLTC_EINVAL;
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *port = NULL, *safe = NULL, *key = NULL;
  if (!u) {
    rc = DLTC_ENOMEM;
    snprintf(msg, msg_size, "out of memory");
    goto out;
  }
  if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
    snprintf(msg, msg_size, "malformed URL");
    goto out;
  }
  if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
    snprintf(msg, msg_size, "only http and https URLs are fetched");
    goto out;
  }
  if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0]) {
    snprintf(msg, msg_size, "URL has no host");
    goto out;
  }
  if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
    snprintf(msg, msg_size, "URL has no port");
    goto out;
  }
  if (strchr(url, '@')) { /* maybe user:password: messages get the URL without them */
    curl_url_set(u, CURLUPART_USER, NULL, 0);
    curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
    if (curl_url_get(u, CURLUPART_URL, &safe, 0) != CURLUE_OK) {
      snprintf(msg, msg_size, "malformed URL");
      goto out;
    }
  }
  lower(host);
  size_t kn = strlen(host) + strlen(port) + 2;
  key = malloc(kn);
  *host_out = strdup(host);
  *safe_out = strdup(safe ? safe : url);
  if (!key || !*host_out || !*safe_out) {
    free(key);
    free(*host_out);
    free(*safe_out);
    *host_out = *safe_out = key = NULL;
    rc = DLTC_ENOMEM;
    snprintf(msg, msg_size, "out of memory");
    goto out;
  }
  snprintf(key, kn, "%s:%s", host, port);
  *key_out = key;
  if (uh_out && !safe) {
    *uh_out = u;
    u = NULL;
  }
  rc = 0;
out:
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_free(safe);
  curl_url_cleanup(u);
  return rc;
}

/* ---- stats ------------------------------------------------------------------- */

static void hist_add(struct dltc_engine *e, int window) {
  /* caller holds smu */
  struct dltc_engine_stats *s = &e->st;
  if (window == e->last_window && s->n_history)
    return;
  e->last_window = window;
  if (s->n_history == DLTC_HIST_MAX) { /* halve the resolution, keep the span */
    size_t j = 0;
    for (size_t i = 0; i < DLTC_HIST_MAX; i += 2, j++) {
      s->history_t[j] = s->history_t[i];
      s->history_w[j] = s->history_w[i];
    }
    s->n_history = j;
  }
  s->history_t[s->n_history] = mono() - e->t0;
  s->history_w[s->n_history] = window;
  s->n_history++;
}

static void note_window(struct dltc_engine *e, struct host *h) {
  int w = dltc_window_limit(&h->win);
  if (w == e->last_window)
    return;
  pthread_mutex_lock(&e->smu);
  hist_add(e, w);
  e->st.window = w;
  pthread_mutex_unlock(&e->smu);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

void dltc_engine_stats(struct dltc_engine *e, struct dltc_engine_stats *out) {
  double *tmp = NULL;
  size_t n;
  pthread_mutex_lock(&e->smu);
  *out = e->st;
  n = e->n_lat;
  if (n && (tmp = malloc(n * sizeof *tmp)))
    memcpy(tmp, e->lat, n * sizeof *tmp);
  pthread_mutex_unlock(&e->smu);
  out->latency_p50 = out->latency_p99 = 0;
  if (tmp) {
    qsort(tmp, n, sizeof *tmp, cmp_double);
    out->latency_p50 = tmp[(size_t)((double)(n - 1) * 0.50)];
    out->latency_p99 = tmp[(size_t)((double)(n - 1) * 0.99)];
    free(tmp);
  }
}

/* ---- finishing -------------------------------------------------------------------- */

/* Replace every secret header value in msg by "***" (in place, bounded). */
static void redact_one(char *msg, size_t size, const char *sec) {
  char tmp[1024];
  size_t sn = sec ? strlen(sec) : 0, o = 0;
  if (!sn || !strstr(msg, sec))
    return;
  for (const char *p = msg; *p && o + 1 < sizeof tmp;) {
    if (strncmp(p, sec, sn) == 0) {
      for (int k = 0; k < 3 && o + 1 < sizeof tmp; k++)
        tmp[o++] = '*';
      p += sn;
    } else {
      tmp[o++] = *p++;
    }
  }
  tmp[o] = '\0';
  snprintf(msg, size, "%s", tmp);
}

/* Redact the configured Authorization/Cookie values and, for a URL with
 * user:password, the password and the Basic token libcurl derived from it. */
static void redact(const struct dltc_engine *e, const struct req *q, char *msg, size_t size) {
  for (size_t i = 0; i < e->n_secrets; i++)
    redact_one(msg, size, e->secrets[i]);
  redact_one(msg, size, q->basic_b64);
  redact_one(msg, size, q->password);
  if (q->auth) {
    for (size_t i = 0; i < q->auth->n_secrets; i++)
      redact_one(msg, size, q->auth->secrets[i]);
    redact_one(msg, size, q->auth->token);
    redact_one(msg, size, q->auth->prev_token);
  }
}

/* For a URL with userinfo, remember what must never be shown (see redact). */
static int note_userinfo(struct req *q, const char *url) {
  int rc = 0;
  char *user = NULL, *pw = NULL, *pair = NULL;
  CURLU *u = curl_url();
  if (!u)
    return DLTC_ENOMEM;
  if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_PASSWORD, &pw, CURLU_URLDECODE) != CURLUE_OK || !pw[0])
    goto out;
  if (curl_url_get(u, CURLUPART_USER, &user, CURLU_URLDECODE) != CURLUE_OK)
    goto out;
  size_t n = strlen(user) + strlen(pw) + 2;
  if (!(pair = malloc(n)) || !(q->password = strdup(pw))) {
    rc = DLTC_ENOMEM;
    goto out;
  }
  snprintf(pair, n, "%s:%s", user, pw);
  if (!(q->basic_b64 = dltc_base64(pair, strlen(pair))))
    rc = DLTC_ENOMEM;
out:
  free(pair);
  curl_free(user);
  curl_free(pw);
  curl_url_cleanup(u);
  return rc;
}

/* Append up to SNIPPET bytes of body to buf as printable text. */
static void snippet(const char *body, size_t n, char *buf, size_t size) {
  size_t len = strlen(buf);
  if (n > SNIPPET)
    n = SNIPPET;
  for (size_t i = 0; i < n && len + 1 < size; i++) {
    unsigned char c = (unsigned char)body[i];
    buf[len++] = (c >= 0x20 && c < 0x7F) ? (char)c : (c == '\n' || c == '\t' ? ' ' : '?');
  }
  buf[len] = '\0';
}

/* snippet() of q's body; a body left encoded (decompress_caller) is decoded first
 * when small enough, so error messages stay readable. Rare path: error statuses. */
static void body_snippet(const struct req *q, char *buf, size_t size) {
  const char *b = q->r.body ? q->r.body : "";
  if (q->r.encoding == DLTC_ENC_IDENTITY || !q->r.body_len) {
    snippet(b, q->r.body_len, buf, size);
    return;
  }
  uint8_t *dec = NULL;
  size_t n = 0;
  struct dltc_error err;
  if (dltc_inflate((const uint8_t *)b, q->r.body_len, (enum dltc_encoding)q->r.encoding,
                   (size_t)1 << 20, 1000.0, NULL, 0, &dec, &n, &err) == 0) {
    snippet((const char *)dec, n, buf, size);
    dltc__free(dec);
  } else {
    size_t len = strlen(buf);
    snprintf(buf + len, size - len, "(%zu bytes of %s)", q->r.body_len,
             dltc_encoding_name((enum dltc_encoding)q->r.encoding));
  }
}

static void auth_fetched(struct dltc_engine *e, struct req *tq, double now);

/* Queue a finished request for the consumers; flush() hands the batch over. */
static void push_done(struct dltc_engine *e, struct req *q) {
  if (q->internal) { /* an OAuth2 token request: for the engine, not the consumer */
    auth_fetched(e, q, mono());
    return;
  }
  q->r.final_url = q->cur_url;
  q->r.method = q->method ? q->method : "GET";
  q->next = NULL;
  e->cnt.responses++;
  if (q->r.code)
    e->cnt.errors++;
  if (e->batch_tail)
    e->batch_tail->next = q;
  else
    e->batch_head = q;
  e->batch_tail = q;
  e->n_batch++;
}

static void lat_merge(struct dltc_engine *e) {
  /* caller holds smu; reservoir sampling keeps a uniform sample of all attempts */
  for (size_t i = 0; i < e->n_lat_new; i++) {
    if (e->n_lat < LAT_SAMPLES) {
      e->lat[e->n_lat++] = e->lat_new[i];
    } else {
      uint64_t j = dltc_rand_next(&e->rng) % (e->n_lat_seen + 1);
      if (j < LAT_SAMPLES)
        e->lat[j] = e->lat_new[i];
    }
    e->n_lat_seen++;
  }
  e->n_lat_new = 0;
}

/* Publish counters and hand the finished batch to consumers: one lock each
 * per loop iteration, and a wakeup only when someone waits. */
static void flush(struct dltc_engine *e) {
  struct counts *c = &e->cnt;
  c->inflight = e->inflight;
  pthread_mutex_lock(&e->smu);
  struct dltc_engine_stats *s = &e->st;
  s->requests = c->requests;
  s->responses = c->responses;
  s->errors = c->errors;
  s->wire_bytes = c->wire_bytes;
  s->decoded_bytes = c->decoded_bytes;
  s->not_modified = c->not_modified;
  s->status_429 = c->status_429;
  s->status_503 = c->status_503;
  s->refused = c->refused;
  s->redirects = c->redirects;
  s->http2 = c->http2;
  s->connects = c->connects;
  s->token_fetches = c->token_fetches;
  memcpy(s->retries, c->retries, sizeof s->retries);
  s->inflight = c->inflight;
  lat_merge(e);
  pthread_mutex_unlock(&e->smu);
  if (!e->batch_head)
    return;
  pthread_mutex_lock(&e->mu);
  if (e->done_tail)
    e->done_tail->next = e->batch_head;
  else
    e->done_head = e->batch_head;
  e->done_tail = e->batch_tail;
  e->n_done += e->n_batch;
  if (e->n_waiters) {
    if (e->n_batch > 1)
      pthread_cond_broadcast(&e->cv);
    else
      pthread_cond_signal(&e->cv);
  }
  pthread_mutex_unlock(&e->mu);
  e->batch_head = e->batch_tail = NULL;
  e->n_batch = 0;
}

/* Finish q with an error: code, and a message built from fmt (redacted). */
static void finish_error(struct dltc_engine *e, struct req *q, int code, const char *msg,
                         double now) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", msg);
  redact(e, q, buf, sizeof buf);
  q->r.code = code;
  q->r.error = strdup(buf);
  if (q->t_first > 0)
    q->r.elapsed = now - q->t_first;
  push_done(e, q);
}

static void finish_ok(struct dltc_engine *e, struct req *q, double now) {
  q->r.code = 0;
  q->r.elapsed = q->t_first > 0 ? now - q->t_first : 0;
  push_done(e, q);
}

static int is_secret_header(const char *line) {
  static const char *const names[] = {"authorization:", "proxy-authorization:", "cookie:"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strncasecmp(line, names[i], strlen(names[i])) == 0)
      return (int)strlen(names[i]);
  return 0;
}

/* Length of the name of header line "Name: value" (trailing blanks cut). */
static size_t line_name_len(const char *line) {
  const char *c = strchr(line, ':');
  size_t n = c ? (size_t)(c - line) : strlen(line);
  while (n && (line[n - 1] == ' ' || line[n - 1] == '\t'))
    n--;
  return n;
}

static int line_is(const char *line, const char *name, size_t n) {
  return line_name_len(line) == n && strncasecmp(line, name, n) == 0;
}

static int list_has(const struct curl_slist *l, const char *name, size_t n) {
  for (; l; l = l->next)
    if (line_is(l->data, name, n))
      return 1;
  return 0;
}

/* The method sends a body (or an empty one) through POSTFIELDS. */
static int sends_body(const struct req *q) {
  if (q->has_body && !q->body_dropped)
    return 1;
  return q->method && strcmp(q->method, "GET") != 0 && strcmp(q->method, "HEAD") != 0;
}

static int needs_own_hdrs(const struct req *q) {
  return q->user || q->etag_in || sends_body(q) ||
         (q->auth && q->auth->type == DLTC_AUTH_OAUTH2_CC && !q->internal);
}

static int is_body_header(const char *line) {
  return line_is(line, "content-type", 12) || line_is(line, "content-length", 14) ||
         line_is(line, "transfer-encoding", 17);
}

/* Build q->hdrs: client headers not replaced by the request's own, the request's
 * own, the auth header, If-None-Match, and for a body "Expect:" (no 100-continue
 * round trip) and "Content-Type:" when none was given (libcurl would add a form
 * type). After a cross-host redirect, secret headers and auth are left out.
 * Called by submit (any thread; reads only immutable engine data) and by the
 * engine thread on redirects. Returns 0 or DLTC_ENOMEM. */
static int build_hdrs(struct dltc_engine *e, struct req *q) {
  struct curl_slist *l = NULL, *t;
  struct auth *a = q->internal ? NULL : q->auth;
  int pub = q->cross_host;
  const char *aline = NULL;
  size_t an = 0;
  if (a && a->type == DLTC_AUTH_OAUTH2_CC)
    aline = "Authorization: Bearer", an = 13; /* the token is filled in at start */
  else if (a && a->line)
    aline = a->line, an = a->name_len;
  curl_slist_free_all(q->hdrs);
  q->hdrs = NULL;
  q->auth_node = NULL;
  int i = 0;
  for (struct curl_slist *it = e->base_hdrs; it; it = it->next, i++) {
    const char *d = it->data;
    size_t n = line_name_len(d);
    if ((q->internal && i >= e->n_std) || (pub && is_secret_header(d)) || list_has(q->user, d, n) ||
        (aline && line_is(d, aline, an)) || (q->body_dropped && is_body_header(d)))
      continue;
    if (!(t = curl_slist_append(l, d)))
      goto nomem;
    l = t;
  }
  for (struct curl_slist *it = q->user; it; it = it->next) {
    const char *d = it->data;
    if ((pub && is_secret_header(d)) || (aline && line_is(d, aline, an)) ||
        (q->body_dropped && is_body_header(d)))
      continue;
    if (!(t = curl_slist_append(l, d)))
      goto nomem;
    l = t;
  }
  if (aline && !pub) {
    if (!(t = curl_slist_append(l, aline)))
      goto nomem;
    l = t;
    if (a->type == DLTC_AUTH_OAUTH2_CC) {
      while (t->next)
        t = t->next;
      q->auth_node = t;
      q->token_gen = 0; /* never a token's generation: start_one puts the token in */
    }
  }
  if (q->etag_in) {
    char line[1100];
    snprintf(line, sizeof line, "If-None-Match: %s", q->etag_in);
    if (!(t = curl_slist_append(l, line)))
      goto nomem;
    l = t;
  }
  if (sends_body(q)) {
    if (!(t = curl_slist_append(l, "Expect:")))
      goto nomem;
    l = t;
    if (!list_has(l, "content-type", 12)) {
      if (!(t = curl_slist_append(l, "Content-Type:")))
        goto nomem;
      l = t;
    }
  }
  q->hdrs = l;
  return 0;
nomem:
  curl_slist_free_all(l);
  q->auth_node = NULL;
  return DLTC_ENOMEM;
}

/* ---- hosts, queues ---------------------------------------------------------------- */

static struct host *host_get(struct dltc_engine *e, const char *key) {
  for (struct host *h = e->hosts; h; h = h->next)
    if (strcmp(h->key, key) == 0)
      return h;
  if (e->n_hosts >= MAX_HOSTS)
    return NULL;
  struct host *h = calloc(1, sizeof *h);
  if (!h || !(h->key = strdup(key))) {
    free(h);
    return NULL;
  }
  dltc_window_init(&h->win, e->cfg.initial_concurrency, e->cfg.max_concurrency);
  dltc_bucket_init(&h->bucket, e->cfg.rps, e->cfg.rps >= 1 ? e->cfg.rps : 1, mono());
  h->next = e->hosts;
  e->hosts = h;
  e->n_hosts++;
  note_window(e, h);
  return h;
}

static void ready_push(struct host *h, struct req *q, int front) {
  if (front) {
    q->next = h->ready_head;
    h->ready_head = q;
    if (!h->ready_tail)
      h->ready_tail = q;
  } else {
    q->next = NULL;
    if (h->ready_tail)
      h->ready_tail->next = q;
    else
      h->ready_head = q;
    h->ready_tail = q;
  }
}

static void delayed_insert(struct dltc_engine *e, struct req *q) {
  struct req **pp = &e->delayed;
  while (*pp && (*pp)->due <= q->due)
    pp = &(*pp)->next;
  q->next = *pp;
  *pp = q;
}

static void active_add(struct dltc_engine *e, struct req *q) {
  q->aprev = NULL;
  q->anext = e->active;
  if (e->active)
    e->active->aprev = q;
  e->active = q;
}

static void active_del(struct dltc_engine *e, struct req *q) {
  if (q->aprev)
    q->aprev->anext = q->anext;
  else
    e->active = q->anext;
  if (q->anext)
    q->anext->aprev = q->aprev;
  q->aprev = q->anext = NULL;
}

/* ---- transfers ---------------------------------------------------------------------- */

/* The body as received (libcurl decodes nothing): max_body caps its wire bytes here,
 * while streaming; decode_body caps the decoded bytes. */
static size_t on_write(char *p, size_t size, size_t nmemb, void *ud) {
  struct req *q = ud;
  struct dltc_engine *e = q->e;
  size_t n = size * nmemb;
  size_t need = q->r.body_len + n;
  if ((int64_t)need > e->cfg.max_body) {
    q->abort = ABORT_BODY;
    return 0;
  }
  if (need + 1 > q->body_cap) {
    size_t cap = q->body_cap ? q->body_cap * 2 : 16384;
    if (!q->body_cap && q->slot) {
      curl_off_t cl = -1;
      curl_easy_getinfo(q->slot->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
      if (cl > 0 && (int64_t)cl < e->cfg.max_body && (size_t)cl + 1 > cap)
        cap = (size_t)cl + 1;
    }
    if (cap < need + 1)
      cap = need + 1;
    if ((int64_t)cap > e->cfg.max_body + 1)
      cap = (size_t)e->cfg.max_body + 1;
    char *nb = realloc(q->r.body, cap);
    if (!nb) {
      q->abort = ABORT_NOMEM;
      return 0;
    }
    q->r.body = nb;
    q->body_cap = cap;
  }
  memcpy(q->r.body + q->r.body_len, p, n);
  q->r.body_len = need;
  q->r.body[need] = '\0';
  return n;
}

#define MAX_HEADER_BYTES ((size_t)256 * 1024) /* response headers kept per request */

/* Append n bytes to q's header buffer (growing it). Returns 0 or -1. */
static int hdr_put(struct req *q, const char *p, size_t n) {
  if (q->r.headers_len + n + 1 > q->hcap) {
    size_t cap = q->hcap ? q->hcap * 2 : 512;
    while (cap < q->r.headers_len + n + 1)
      cap *= 2;
    char *nb = realloc(q->r.headers, cap);
    if (!nb)
      return -1;
    q->r.headers = nb;
    q->hcap = cap;
  }
  memcpy(q->r.headers + q->r.headers_len, p, n);
  q->r.headers_len += n;
  return 0;
}

/* libcurl hands over each header line of each response (1xx, redirects of its
 * own: none, the final one); a status line starts a new set. Kept as
 * "name\0value\0" pairs; an obs-fold continuation joins the previous value. */
static size_t on_header(char *p, size_t size, size_t nitems, void *ud) {
  struct req *q = ud;
  size_t len = size * nitems, l = len;
  while (l && (p[l - 1] == '\r' || p[l - 1] == '\n'))
    l--;
  if (l >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    q->r.headers_len = 0;
    q->r.n_headers = 0;
    return len;
  }
  if (!l || q->r.headers_len + l + 2 > MAX_HEADER_BYTES)
    return len;
  if (p[0] == ' ' || p[0] == '\t') {
    size_t i = 0;
    while (i < l && (p[i] == ' ' || p[i] == '\t'))
      i++;
    if (!q->r.n_headers || i == l)
      return len;
    q->r.headers[q->r.headers_len - 1] = ' ';
    if (hdr_put(q, p + i, l - i) || hdr_put(q, "", 1))
      return len; /* out of memory: headers incomplete, the transfer goes on */
    return len;
  }
  const char *colon = memchr(p, ':', l);
  if (!colon || colon == p)
    return len;
  size_t nl = (size_t)(colon - p);
  while (nl && (p[nl - 1] == ' ' || p[nl - 1] == '\t'))
    nl--;
  const char *v = colon + 1, *end = p + l;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  size_t mark = q->r.headers_len;
  if (hdr_put(q, p, nl) || hdr_put(q, "", 1) || hdr_put(q, v, (size_t)(end - v)) ||
      hdr_put(q, "", 1)) {
    q->r.headers_len = mark;
    return len;
  }
  q->r.n_headers++;
  return len;
}

/* First value of header name (case-insensitive) in q's last response, or NULL. */
static const char *hdr_find(const struct req *q, const char *name) {
  const char *p = q->r.headers;
  for (size_t i = 0; i < q->r.n_headers; i++) {
    size_t nl = strlen(p);
    const char *v = p + nl + 1;
    if (strcasecmp(p, name) == 0)
      return v;
    p = v + strlen(v) + 1;
  }
  return NULL;
}

static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a);
static int close_socket(void *ud, curl_socket_t fd);

static struct slot *slot_get(struct dltc_engine *e) {
  struct slot *s = e->pool;
  if (s) {
    e->pool = s->next;
    e->n_pool--;
    s->next = NULL;
    return s;
  }
  s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  CURL *h = s->easy = curl_easy_init();
  if (!h) {
    free(s);
    return NULL;
  }
  const struct dltc_engine_config *c = &e->cfg;
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->errbuf);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  /* libcurl never decodes: the body arrives as sent and decode_body() (libdeflate,
   * one pass, no per-response 40 KB zlib state to calloc) decodes it at the end, or
   * the consumer does (decompress_caller). Accept-Encoding and User-Agent are lines
   * of base_hdrs, not CURLOPT_ACCEPT_ENCODING / CURLOPT_USERAGENT: libcurl formats
   * those into a string of their own before every transfer and then once more into
   * the request, a character at a time */
  curl_easy_setopt(h, CURLOPT_HTTP_CONTENT_DECODING, 0L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_BUFFERSIZE, (long)BUFFER_SIZE);
  if (c->loop == DLTC_LOOP_EPOLL) {
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, e);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, e);
  }
  if (c->connect_timeout > 0)
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->connect_timeout * 1000));
  if (c->timeout > 0)
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(c->timeout * 1000));
  if (c->low_speed_time > 0) {
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)ceil(c->low_speed_time));
  }
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, c->verify ? 1L : 0L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, c->verify ? 2L : 0L);
  if (e->ca_file)
    curl_easy_setopt(h, CURLOPT_CAINFO, e->ca_file);
  if (c->http2) {
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
  } else {
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  }
  if (c->max_body > 0)
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_body);
  if (e->no_proxy_env)
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* what libcurl would find: spares its getenv()s */
  return s;
}

static void slot_put(struct dltc_engine *e, struct slot *s) {
  if (!s)
    return;
  if (e->n_pool >= (size_t)e->cfg.max_concurrency) {
    curl_easy_cleanup(s->easy);
    free(s);
    return;
  }
  s->next = e->pool;
  e->pool = s;
  e->n_pool++;
}

/* Start q on its host now. On failure q is finished with an error. */
static void start_one(struct dltc_engine *e, struct req *q, double now) {
  struct slot *s = slot_get(e);
  if (!s) {
    finish_error(e, q, DLTC_ENOMEM, "out of memory starting a transfer", now);
    return;
  }
  CURL *h = s->easy;
  q->slot = s;
  s->errbuf[0] = '\0';
  /* a pooled handle may hold the CURLU of an earlier request: always set (or clear) it */
  CURLU *uh = q->cur_url == q->url ? q->uh : NULL;
  curl_easy_setopt(h, CURLOPT_CURLU, uh);
  if (!uh)
    curl_easy_setopt(h, CURLOPT_URL,
                     q->send_url && q->cur_url == q->url ? q->send_url : q->cur_url);
  curl_easy_setopt(h, CURLOPT_PRIVATE, q);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, q);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, q);
  if (q->auth_node && q->auth->token_line && q->token_gen != q->auth->gen) {
    char *line = strdup(q->auth->token_line); /* OAuth2: the current token */
    if (line) {
      free(q->auth_node->data);
      q->auth_node->data = line;
      q->token_gen = q->auth->gen;
    }
  }
  struct curl_slist *hl = q->hdrs;
  if (!hl && q->auth && q->auth->hdrs)
    hl = q->cross_host ? q->auth->hdrs_public : q->auth->hdrs;
  if (!hl)
    hl = q->cross_host ? e->base_hdrs_public : e->base_hdrs;
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
  if (s->dirty) {
    /* POSTFIELDS sets the method to POST: reset it first, HTTPGET last */
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L); /* also clears NOBODY */
    s->dirty = 0;
  }
  if (q->method || (q->has_body && !q->body_dropped)) {
    const char *m = q->method ? q->method : "GET";
    int with_body = q->has_body && !q->body_dropped;
    s->dirty = 1;
    if (strcmp(m, "HEAD") == 0 && !with_body) {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(m, "GET") != 0 || with_body) {
      /* the body (or an empty one: Content-Length: 0, as requests sends) stays in q,
       * so every retry and 307/308 hop sends it again */
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(with_body ? q->body_len : 0));
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, with_body && q->body ? q->body : "");
      if (strcmp(m, "POST") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
    }
  }
  q->abort = ABORT_NONE;
  q->r.body_len = 0;
  q->r.headers_len = 0;
  q->r.n_headers = 0;
  q->r.encoding = DLTC_ENC_IDENTITY;
  if (q->redirect_pending)
    q->redirect_pending = 0;
  else
    q->r.attempts++;
  if (q->t_first <= 0)
    q->t_first = now;
  struct host *hst = q->host;
  hst->inflight++;
  e->inflight++;
  q->started_inflight = hst->inflight;
  q->started_epoch = hst->win.epoch;
  q->started_limit = dltc_window_limit(&hst->win);
  active_add(e, q);
  if (curl_multi_add_handle(e->multi, h) != CURLM_OK) {
    active_del(e, q);
    hst->inflight--;
    e->inflight--;
    q->slot = NULL;
    slot_put(e, s);
    finish_error(e, q, DLTC_ENET, "libcurl refused to add a transfer", now);
  }
}

static int auth_must_wait(struct dltc_engine *e, struct auth *a, double now);
static void auth_park(struct dltc_engine *e, struct req *q, double now);

/* Start whatever the windows, buckets, pauses and the done queue allow.
 * Returns seconds until a blocked start could become possible by time alone. */
static double start_ready(struct dltc_engine *e, double now, size_t n_done) {
  double wait = INFINITY;
  if (n_done >= (size_t)e->cfg.queue_size)
    return wait; /* backpressure: the consumer's next() wakes us */
  int progress = 1;
  while (progress && e->inflight < e->cfg.max_concurrency) {
    progress = 0;
    for (struct host *h = e->hosts; h && e->inflight < e->cfg.max_concurrency; h = h->next) {
      if (!h->ready_head || h->inflight >= dltc_window_limit(&h->win))
        continue;
      struct req *hq = h->ready_head;
      if (hq->auth && hq->auth->type == DLTC_AUTH_OAUTH2_CC && !hq->internal && !hq->cross_host) {
        /* off the queue first: a token fetch may be queued at its front */
        h->ready_head = hq->next;
        if (!h->ready_head)
          h->ready_tail = NULL;
        if (auth_must_wait(e, hq->auth, now)) {
          auth_park(e, hq, now);
          progress = 1;
          continue;
        }
        ready_push(h, hq, 1);
      }
      if (now < h->paused_until) {
        wait = fmin(wait, h->paused_until - now);
        continue;
      }
      double w = dltc_bucket_take(&h->bucket, now);
      if (w > 0) {
        wait = fmin(wait, w);
        continue;
      }
      struct req *q = h->ready_head;
      h->ready_head = q->next;
      if (!h->ready_head)
        h->ready_tail = NULL;
      q->next = NULL;
      start_one(e, q, now);
      progress = 1;
    }
  }
  return wait;
}

/* Queue q (just submitted, redirected or due for retry) on its host. */
static void enqueue(struct dltc_engine *e, struct req *q, int front, double now) {
  if (!q->host) {
    q->host = host_get(e, q->host_key);
    if (!q->host) {
      finish_error(e, q, DLTC_ELIMIT, "too many distinct hosts", now);
      return;
    }
  }
  ready_push(q->host, q, front);
}

/* ---- OAuth2 client credentials ---------------------------------------------------- */

/* Queue the engine's own token request for a (engine thread). */
static void auth_fetch_start(struct dltc_engine *e, struct auth *a, double now) {
  struct req *t = calloc(1, sizeof *t);
  struct curl_slist *l;
  if (!t)
    return; /* retried when the next request needs the token */
  t->e = e;
  t->internal = 1;
  t->auth = a;
  t->url = strdup(a->token_url);
  t->cur_url = t->url;
  t->r.url = t->url;
  t->orig_host = strdup(a->token_host);
  t->host_key = strdup(a->token_key);
  t->safe_url = strdup(a->token_safe);
  t->method = strdup("POST");
  t->has_body = 1;
  t->body_len = a->form_len;
  t->body = malloc(a->form_len + 1);
  if (!t->url || !t->orig_host || !t->host_key || !t->safe_url || !t->method || !t->body)
    goto fail;
  memcpy(t->body, a->form, a->form_len + 1);
  if (!(l = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded")))
    goto fail;
  t->user = l;
  if (a->basic_line && !curl_slist_append(t->user, a->basic_line))
    goto fail;
  if (build_hdrs(e, t) != 0)
    goto fail;
  a->fetching = 1;
  enqueue(e, t, 1, now);
  return;
fail:
  req_free(t);
}

/* Must a request with OAuth2 auth a wait for a token? Starts a fetch when none
 * runs and the token is missing, expired or due for refresh; a token that is
 * due but not expired is still used while the new one is fetched. */
static int auth_must_wait(struct dltc_engine *e, struct auth *a, double now) {
  int valid = a->token && now < a->expiry;
  if ((!valid || now >= a->refresh_at) && !a->fetching)
    auth_fetch_start(e, a, now);
  return !valid;
}

static void auth_park(struct dltc_engine *e, struct req *q, double now) {
  struct auth *a = q->auth;
  q->next = NULL;
  if (a->wait_tail)
    a->wait_tail->next = q;
  else
    a->wait_head = q;
  a->wait_tail = q;
  if (!a->fetching) /* the fetch could not even be queued (out of memory) */
    auth_fetch_start(e, a, now);
  if (!a->fetching) {
    a->wait_head = a->wait_tail = NULL;
    finish_error(e, q, DLTC_ENOMEM, "out of memory starting the OAuth2 token request", now);
  }
}

/* Refresh this long before expiry: min(60 s, lifetime/10), but at least
 * min(1 s, lifetime/2), so short-lived tokens are renewed in time too. */
static double refresh_margin(double lifetime) {
  double m = lifetime / 10, floor = fmin(1.0, lifetime / 2);
  return fmin(60.0, fmax(m, floor));
}

/* The token request tq finished (engine thread): store the token and release
 * the waiting requests, or fail them with the reason (secrets redacted). */
static void auth_fetched(struct dltc_engine *e, struct req *tq, double now) {
  struct auth *a = tq->auth;
  char msg[1024];
  int code = 0;
  char *tok = NULL;
  double exp = -1;
  a->fetching = 0;
  e->cnt.token_fetches++;
  if (tq->r.code) {
    code = tq->r.code;
    snprintf(msg, sizeof msg, "OAuth2 token request failed: %s", tq->r.error);
  } else {
    const char *b = tq->r.body ? tq->r.body : "";
    size_t n = tq->r.body_len;
    uint8_t *dec = NULL;
    struct dltc_error perr;
    if (tq->r.encoding != DLTC_ENC_IDENTITY && n) {
      size_t dn = 0;
      if (dltc_inflate((const uint8_t *)b, n, (enum dltc_encoding)tq->r.encoding, (size_t)1 << 20,
                       1000.0, NULL, 0, &dec, &dn, &perr) == 0) {
        b = (const char *)dec;
        n = dn;
      }
    }
    code = dltc_auth_token_parse(b, n, &tok, &exp, &perr);
    dltc__free(dec);
    if (code)
      snprintf(msg, sizeof msg, "OAuth2 token request to %.300s failed: %.600s", tq->safe_url,
               perr.msg);
  }
  if (!code) {
    size_t ln = strlen(tok) + 32;
    char *line = malloc(ln);
    if (!line) {
      free(tok);
      code = DLTC_ENOMEM;
      snprintf(msg, sizeof msg, "out of memory storing the OAuth2 token");
    } else {
      snprintf(line, ln, "Authorization: Bearer %s", tok);
      free(a->prev_token);
      a->prev_token = a->token;
      a->token = tok;
      free(a->token_line);
      a->token_line = line;
      a->gen++;
      if (exp < 0)
        exp = a->default_exp;
      a->expiry = now + exp;
      a->refresh_at = a->expiry - refresh_margin(exp);
    }
  }
  struct req *w = a->wait_head;
  a->wait_head = a->wait_tail = NULL;
  if (!code) { /* back to the front of their hosts' queues, in their order */
    struct req *rev = NULL;
    while (w) {
      struct req *nx = w->next;
      w->next = rev;
      rev = w;
      w = nx;
    }
    while (rev) {
      struct req *nx = rev->next;
      ready_push(rev->host, rev, 1);
      rev = nx;
    }
  } else {
    while (w) {
      struct req *nx = w->next;
      finish_error(e, w, code, msg, now);
      w = nx;
    }
  }
  req_free(tq);
}

static void retry_or_fail(struct dltc_engine *e, struct req *q, int cause, double retry_after,
                          int code, double now) {
  char msg[1024];
  if (q->r.attempts >= e->cfg.max_attempts) {
    snprintf(msg, sizeof msg, "%s; gave up after %d attempts", q->last, q->r.attempts);
    finish_error(e, q, code, msg, now);
    return;
  }
  double d = dltc_backoff_delay(q->r.attempts, e->cfg.backoff_base, e->cfg.backoff_cap,
                                MIN_RETRY_DELAY, &e->rng);
  if (retry_after > d)
    d = retry_after;
  if (now + d - q->t_first > e->cfg.max_retry_time) {
    snprintf(msg, sizeof msg, "%s; gave up after %d attempts (max_retry_time %.1fs)", q->last,
             q->r.attempts, e->cfg.max_retry_time);
    finish_error(e, q, code, msg, now);
    return;
  }
  e->cnt.retries[cause]++;
  q->r.body_len = 0;
  if (q->body_cap > (1 << 20)) { /* do not hold big buffers while waiting */
    free(q->r.body);
    q->r.body = NULL;
    q->body_cap = 0;
  }
  q->due = now + d;
  delayed_insert(e, q);
}

/* Grow the window only when it was at least half used: an application-limited
 * host (few requests queued) must not inflate it far above what was probed. */
static void window_success(struct dltc_engine *e, struct req *q) {
  if (q->started_inflight * 2 >= q->started_limit) {
    dltc_window_on_success(&q->host->win);
    note_window(e, q->host);
  }
}

static int in_empty_on(const struct req *q, long status) {
  for (int i = 0; i < q->n_empty; i++)
    if (q->empty_on[i] == status)
      return 1;
  return 0;
}

/* Follow a redirect of q to loc if policy allows; else finish q. */
static void redirect(struct dltc_engine *e, struct req *q, const char *loc, long status,
                     double now) {
  char msg[1024];
  char *host = NULL, *key = NULL, *safe = NULL, *copy = NULL;
  if (q->redirects >= e->cfg.max_redirects) {
    snprintf(msg, sizeof msg, "too many redirects (max_redirects %d) for %s", e->cfg.max_redirects,
             q->safe_url);
    finish_error(e, q, DLTC_ELIMIT, msg, now);
    return;
  }
  char pmsg[128];
  int rc = parse_target(loc, &host, &key, &safe, NULL, pmsg, sizeof pmsg);
  if (rc) {
    snprintf(msg, sizeof msg, "HTTP %ld redirect of %s refused: %s", status, q->safe_url, pmsg);
    finish_error(e, q, DLTC_EREFUSED, msg, now);
    goto out;
  }
  if ((e->cfg.same_host_redirects && strcmp(host, q->orig_host) != 0) || !host_allowed(e, host)) {
    snprintf(msg, sizeof msg, "HTTP %ld redirect of %s to host %s refused (%s)", status,
             q->safe_url, host,
             e->cfg.same_host_redirects ? "same_host_redirects" : "allowed_hosts");
    e->cnt.refused++;
    finish_error(e, q, DLTC_EREFUSED, msg, now);
    goto out;
  }
  if (!(copy = strdup(loc))) {
    finish_error(e, q, DLTC_ENOMEM, "out of memory", now);
    goto out;
  }
  if (q->cur_url != q->url)
    free(q->cur_url);
  q->cur_url = copy;
  q->cross_host = strcmp(host, q->orig_host) != 0;
  /* as requests does: 303 (and 302) turn any method but HEAD into a GET, and 301 a
   * POST; the body and its headers are dropped then. 307/308 resend both. */
  const char *m = q->method ? q->method : "GET";
  if (((status == 303 || status == 302) && strcmp(m, "HEAD") != 0) ||
      (status == 301 && strcmp(m, "POST") == 0)) {
    free(q->method);
    q->method = NULL;
    q->body_dropped = q->has_body;
  }
  if ((q->hdrs || needs_own_hdrs(q)) && build_hdrs(e, q) != 0) {
    finish_error(e, q, DLTC_ENOMEM, "out of memory", now);
    goto out;
  }
  if (strcmp(key, q->host_key) != 0) {
    free(q->host_key);
    q->host_key = key;
    key = NULL;
    q->host = NULL;
  }
  q->redirects++;
  q->redirect_pending = 1;
  e->cnt.redirects++;
  free(q->r.body);
  q->r.body = NULL;
  q->body_cap = 0;
  q->r.body_len = 0;
  enqueue(e, q, 1, now);
out:
  free(host);
  free(key);
  free(safe);
}

/* Decode q's body (as received, Content-Encoding q->r.encoding) in place, unless the
 * consumer decodes (decompress_caller). max_body caps the decoded size and
 * max_ratio the decoded/wire ratio once past 1 MiB, as dltc_inflate does. Returns 0;
 * DLTC_EPARSE (corrupt or truncated data, q->last says so: retryable), or
 * DLTC_ELIMIT / DLTC_ENOMEM with the final message in msg. */
static int decode_body(struct dltc_engine *e, struct req *q, char *msg, size_t size) {
  if (e->cfg.decompress_caller || q->r.encoding == DLTC_ENC_IDENTITY || !q->r.body_len)
    return 0;
  const uint8_t *in = (const uint8_t *)q->r.body;
  size_t n = q->r.body_len, max = (size_t)e->cfg.max_body;
  enum dltc_encoding enc = (enum dltc_encoding)q->r.encoding;
  int by_ratio;
  size_t limit = dltc_inflate_cap(n, max, e->cfg.max_ratio, &by_ratio);
  /* a buffer of the announced size (+1 for the NUL): the usual case needs no regrowth;
   * the announcement may lie, so never more than the cap */
  size_t hint = dltc_inflate_size_hint(in, n, enc);
  char *dst = hint && hint <= limit ? malloc(hint + 1) : NULL;
  uint8_t *out = NULL;
  size_t len = 0;
  struct dltc_error err;
  int rc = dltc_inflate(in, n, enc, max, e->cfg.max_ratio, (uint8_t *)dst, dst ? hint + 1 : 0, &out,
                        &len, &err);
  char *body = (char *)out;
  if (rc == 0 && (out != (uint8_t *)dst || len == hint + 1)) {
    /* dltc_inflate grew a buffer of its own (plain malloc), or filled dst: room for the NUL */
    if (out != (uint8_t *)dst)
      free(dst);
    dst = NULL;
    if (!(body = realloc(out, len + 1))) {
      free(out);
      rc = DLTC_ENOMEM;
    }
  }
  if (!rc && !body)
    rc = DLTC_ENOMEM;
  if (rc) {
    free(dst);
    if (rc == DLTC_EPARSE)
      snprintf(q->last, sizeof q->last, "bad %s body from %s: %.150s", dltc_encoding_name(enc),
               q->safe_url, err.msg);
    else if (rc == DLTC_ELIMIT && by_ratio)
      snprintf(msg, size, "body of %s decompresses more than max_ratio (%.0f:1)", q->safe_url,
               e->cfg.max_ratio);
    else if (rc == DLTC_ELIMIT)
      snprintf(msg, size, "body of %s larger than max_body (%lld bytes)", q->safe_url,
               (long long)e->cfg.max_body);
    else
      snprintf(msg, size, "out of memory decoding the body of %s", q->safe_url);
    return rc == DLTC_EPARSE || rc == DLTC_ELIMIT ? rc : DLTC_ENOMEM;
  }
  body[len] = '\0';
  free(q->r.body);
  q->r.body = body;
  q->r.body_len = len;
  q->body_cap = len + 1;
  q->r.encoding = DLTC_ENC_IDENTITY;
  e->cnt.decoded_bytes = e->cnt.decoded_bytes - n + len; /* on_done counted n */
  return 0;
}

static int retry_cause_of(CURLcode rc) {
  switch (rc) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_CONNECT:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SEND_ERROR: return DLTC_RC_CONNECT;
  case CURLE_OPERATION_TIMEDOUT: return DLTC_RC_TIMEOUT;
  case CURLE_PARTIAL_FILE:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
  case CURLE_BAD_CONTENT_ENCODING: return DLTC_RC_TRUNCATED;
  default: return -1;
  }
}

/* A transfer of q ended with curl code rc (engine thread). */
static void on_done(struct dltc_engine *e, struct req *q, CURLcode rc, double now) {
  struct slot *s = q->slot;
  CURL *h = s->easy;
  struct host *hst = q->host;
  char msg[1024];
  long status = 0, ver = 0;
  curl_off_t wire = 0, total_us = 0;
  curl_multi_remove_handle(e->multi, h);
  active_del(e, q);
  hst->inflight--;
  e->inflight--;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &ver);
  curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &wire);
  curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &total_us);
  long nconn = 0;
  curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &nconn);
  q->r.status = status;
  q->r.http_version = ver == CURL_HTTP_VERSION_1_0   ? 10
                      : ver == CURL_HTTP_VERSION_1_1 ? 11
                      : ver == CURL_HTTP_VERSION_2_0 ? 20
                      : ver == CURL_HTTP_VERSION_3   ? 30
                                                     : 0;
  struct counts *cn = &e->cnt;
  cn->requests++;
  cn->wire_bytes += (uint64_t)wire;
  cn->decoded_bytes += q->r.body_len;
  cn->http2 += q->r.http_version == 20;
  cn->connects += (uint64_t)(nconn > 0 ? nconn : 0);
  cn->not_modified += status == 304;
  cn->status_429 += status == 429;
  cn->status_503 += status == 503;
  if (e->n_lat_new == LAT_BATCH) {
    pthread_mutex_lock(&e->smu);
    lat_merge(e);
    pthread_mutex_unlock(&e->smu);
  }
  e->lat_new[e->n_lat_new++] = (double)total_us * 1e-6;

  char *etag = NULL, *loc = NULL;
  double ra = -1;
  int bad_encoding = 0;
  if (rc == CURLE_OK) {
    const char *v = hdr_find(q, "ETag");
    size_t off, len;
    if (v && dltc_etag_parse(v, strlen(v), &off, &len) == 0)
      etag = strndup(v + off, len);
    if (status == 429 || status == 503) {
      double sec;
      v = hdr_find(q, "Retry-After");
      if (v && dltc_retry_after_parse(v, strlen(v), (int64_t)time(NULL), &sec, NULL) == 0)
        ra = sec;
    }
    if (status >= 300 && status < 400 && status != 304) {
      char *l = NULL;
      if (curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &l) == CURLE_OK && l)
        loc = strdup(l);
    }
    if (status >= 200 && status < 300) {
      v = hdr_find(q, "Link");
      if (v && dltc_link_find(v, strlen(v), "next", &off, &len) == 0)
        q->r.link_next = strndup(v + off, len);
    }
    enum dltc_encoding enc;
    struct dltc_error eerr;
    if (dltc_encoding_parse(hdr_find(q, "Content-Encoding"), &enc, &eerr) == 0) {
      q->r.encoding = q->r.body_len ? (int)enc : DLTC_ENC_IDENTITY;
    } else if (status >= 200 && status < 300) {
      bad_encoding = 1; /* the body would be unreadable: fail it here, named */
      snprintf(msg, sizeof msg, "%.200s from %s", eerr.msg, q->safe_url);
    }
  } else {
    snprintf(q->last, sizeof q->last, "transport error for %s: %s", q->safe_url,
             s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
  }
  q->slot = NULL;
  slot_put(e, s);

  free((char *)q->r.etag);
  q->r.etag = etag;

  if (rc != CURLE_OK) {
    if (q->abort == ABORT_BODY || rc == CURLE_FILESIZE_EXCEEDED) {
      snprintf(msg, sizeof msg, "body of %s larger than max_body (%lld bytes)", q->safe_url,
               (long long)e->cfg.max_body);
      finish_error(e, q, DLTC_ELIMIT, msg, now);
    } else if (q->abort == ABORT_NOMEM) {
      finish_error(e, q, DLTC_ENOMEM, "out of memory receiving a body", now);
    } else {
      int cause = retry_cause_of(rc);
      if (cause >= 0)
        retry_or_fail(e, q, cause, -1, DLTC_ENET, now);
      else
        finish_error(e, q, DLTC_ENET, q->last, now);
    }
    goto out;
  }
  if (status == 304) {
    q->r.not_modified = 1;
    q->r.encoding = DLTC_ENC_IDENTITY;
    free(q->r.body);
    q->r.body = NULL;
    q->r.body_len = 0;
    window_success(e, q);
    finish_ok(e, q, now);
  } else if (loc) {
    redirect(e, q, loc, status, now);
  } else if (bad_encoding) {
    finish_error(e, q, DLTC_EHTTP, msg, now);
  } else if (in_empty_on(q, status)) {
    q->r.body_len = 0;
    q->r.encoding = DLTC_ENC_IDENTITY;
    if (!q->r.body)
      q->r.body = calloc(1, 1);
    else
      q->r.body[0] = '\0';
    window_success(e, q);
    finish_ok(e, q, now);
  } else if (status == 401 && q->auth && q->auth->type == DLTC_AUTH_OAUTH2_CC && !q->internal &&
             !q->auth_retried) {
    /* the token may have been revoked or expired early: fetch a new one (unless a
     * newer one came meanwhile) and send q once more */
    q->auth_retried = 1;
    if (q->token_gen == q->auth->gen)
      q->auth->expiry = q->auth->refresh_at = 0;
    q->r.body_len = 0;
    enqueue(e, q, 1, now);
  } else if (status == 429 || status == 503 || status >= 500 || status == 408) {
    int cause = status == 429 ? DLTC_RC_429 : status == 503 ? DLTC_RC_503 : DLTC_RC_5XX;
    if (status == 429 || status == 503) {
      if (dltc_window_on_overload(&hst->win, q->started_epoch, q->started_inflight))
        note_window(e, hst);
      /* a pause longer than the retry budget helps nobody: cap it */
      double pause = ra < e->cfg.max_retry_time ? ra : e->cfg.max_retry_time;
      if (pause > 0 && now + pause > hst->paused_until)
        hst->paused_until = now + pause;
    }
    snprintf(q->last, sizeof q->last, "HTTP %ld from %s: ", status, q->safe_url);
    body_snippet(q, q->last, sizeof q->last);
    retry_or_fail(e, q, cause, ra, DLTC_EHTTP, now);
  } else if (status >= 400 || status < 200) {
    snprintf(msg, sizeof msg, "HTTP %ld from %s: ", status, q->safe_url);
    body_snippet(q, msg, sizeof msg);
    finish_error(e, q, DLTC_EHTTP, msg, now);
  } else {
    int drc = decode_body(e, q, msg, sizeof msg);
    if (drc == DLTC_EPARSE) { /* corrupt or cut short on the way: as a truncated transfer */
      retry_or_fail(e, q, DLTC_RC_TRUNCATED, -1, DLTC_ENET, now);
    } else if (drc) {
      finish_error(e, q, drc, msg, now);
    } else {
      if (!q->r.body)
        q->r.body = calloc(1, 1);
      window_success(e, q);
      finish_ok(e, q, now);
    }
  }
out:
  free(loc);
}

/* ---- the loop ------------------------------------------------------------------------- */

static void drain_messages(struct dltc_engine *e) {
  CURLMsg *m;
  int left;
  double now = mono();
  while ((m = curl_multi_info_read(e->multi, &left))) {
    if (m->msg != CURLMSG_DONE)
      continue;
    struct req *q = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&q);
    if (q)
      on_done(e, q, m->data.result, now);
  }
}

/* epoll flavour: libcurl tells us which sockets to watch and when to time out.
 *
 * A kept-alive connection is handed back after every transfer (CURL_POLL_REMOVE)
 * and wanted again (CURL_POLL_IN) by the next one a moment later: two epoll_ctl
 * calls per request for nothing. So a connection socket (one libcurl opened and
 * will close through open_socket/close_socket, where we see it) stays in the epoll
 * set while idle; an event on it then, when libcurl is not watching it, removes it
 * for real. Any other socket libcurl watches (a resolver's socketpair, closed
 * without the close callback) is removed at once, as libcurl asks. */
struct fdstate {
  uint32_t events;    /* what the epoll set holds for this fd; 0: not in the set */
  unsigned ours : 1;  /* opened by open_socket; close_socket will tell its end */
  unsigned watch : 1; /* libcurl currently wants events on it */
};

static struct fdstate *fd_state(struct dltc_engine *e, curl_socket_t fd) {
  if (fd < 0)
    return NULL;
  if (fd >= e->n_fds) {
    int n = e->n_fds ? e->n_fds : 64;
    while (n <= fd)
      n *= 2;
    struct fdstate *nf = realloc(e->fds, (size_t)n * sizeof *nf);
    if (!nf)
      return NULL;
    memset(nf + e->n_fds, 0, (size_t)(n - e->n_fds) * sizeof *nf);
    e->fds = nf;
    e->n_fds = n;
  }
  return &e->fds[fd];
}

static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a) {
  (void)purpose;
  struct dltc_engine *e = ud;
  curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
  struct fdstate *st = fd >= 0 ? fd_state(e, fd) : NULL;
  if (st)
    *st = (struct fdstate){.ours = 1};
  return fd;
}

static int close_socket(void *ud, curl_socket_t fd) {
  struct dltc_engine *e = ud;
  if (fd >= 0 && fd < e->n_fds)
    e->fds[fd] = (struct fdstate){0}; /* close() takes it out of the epoll set */
  return close(fd);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *ud, void *sockp) {
  (void)easy;
  (void)sockp;
  struct dltc_engine *e = ud;
  struct epoll_event ev = {.data.fd = fd};
  if (what & CURL_POLL_IN)
    ev.events |= EPOLLIN;
  if (what & CURL_POLL_OUT)
    ev.events |= EPOLLOUT;
  struct fdstate *st = fd_state(e, fd);
  if (!st) { /* out of memory for the table: plain ADD/DEL for this fd */
    if (what == CURL_POLL_REMOVE)
      epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
    else if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST)
      epoll_ctl(e->epfd, EPOLL_CTL_MOD, fd, &ev);
    return 0;
  }
  if (what == CURL_POLL_REMOVE) {
    st->watch = 0;
    if (!st->ours && st->events) {
      epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
      st->events = 0;
    }
    return 0;
  }
  st->watch = 1;
  if (st->events == ev.events)
    return 0; /* already so in the set: the idle connection libcurl takes up again */
  if (st->events) {
    epoll_ctl(e->epfd, EPOLL_CTL_MOD, fd, &ev);
  } else if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST) {
    epoll_ctl(e->epfd, EPOLL_CTL_MOD, fd, &ev);
  }
  st->events = ev.events;
  return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *ud) {
  (void)multi;
  ((struct dltc_engine *)ud)->timer_due =
      timeout_ms < 0 ? -1.0 : mono() + (double)timeout_ms * 1e-3;
  return 0;
}

static void wake_loop(struct dltc_engine *e) {
  /* caller holds mu, so the loop cannot have torn the multi handle down */
  if (e->cfg.loop == DLTC_LOOP_EPOLL) {
    uint64_t one = 1;
    ssize_t w = write(e->evfd, &one, sizeof one);
    (void)w;
  } else if (e->multi) {
    curl_multi_wakeup(e->multi);
  }
}

/* Wait for socket activity up to timeout_ms and let libcurl act on it. */
static void wait_and_drive(struct dltc_engine *e, int timeout_ms) {
  int running;
  if (e->cfg.loop == DLTC_LOOP_POLL) {
    curl_multi_poll(e->multi, NULL, 0, timeout_ms, NULL);
    curl_multi_perform(e->multi, &running);
    return;
  }
  if (e->timer_due >= 0) {
    double t = (e->timer_due - mono()) * 1000;
    if (t < timeout_ms)
      timeout_ms = t <= 0 ? 0 : (int)ceil(t);
  }
  struct epoll_event evs[64];
  int n = epoll_wait(e->epfd, evs, 64, timeout_ms);
  for (int i = 0; i < n; i++) {
    int fd = evs[i].data.fd;
    if (fd == e->evfd) {
      uint64_t v;
      ssize_t r = read(e->evfd, &v, sizeof v);
      (void)r;
      continue;
    }
    if (fd < e->n_fds && !e->fds[fd].watch) {
      /* an idle connection kept in the set (on_socket): its peer closed it or sent
       * something unasked; libcurl finds that out when it next checks the
       * connection, so only stop watching it */
      epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
      e->fds[fd].events = 0;
      continue;
    }
    int mask = 0;
    if (evs[i].events & (EPOLLIN | EPOLLHUP))
      mask |= CURL_CSELECT_IN;
    if (evs[i].events & EPOLLOUT)
      mask |= CURL_CSELECT_OUT;
    if (evs[i].events & EPOLLERR)
      mask |= CURL_CSELECT_ERR;
    curl_multi_socket_action(e->multi, fd, mask, &running);
  }
  if (e->timer_due >= 0 && mono() >= e->timer_due) {
    e->timer_due = -1;
    curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  }
}

/* Engine thread (under mu, which only guards the request fields): new limits. */
static void apply_limits(struct dltc_engine *e, int conc, int set_rps, double rps) {
  double now = mono();
  if (conc > 0)
    e->cfg.max_concurrency = conc;
  if (set_rps)
    e->cfg.rps = rps;
  for (struct host *h = e->hosts; h; h = h->next) {
    if (conc > 0) {
      dltc_window_set_max(&h->win, conc);
      note_window(e, h);
    }
    if (set_rps)
      dltc_bucket_set_rate(&h->bucket, rps, rps >= 1 ? rps : 1, now);
  }
}

static void *loop_main(void *arg) {
  struct dltc_engine *e = arg;
  for (;;) {
    pthread_mutex_lock(&e->mu);
    int stop = e->stopping;
    struct req *in = e->in_head;
    e->in_head = e->in_tail = NULL;
    size_t n_done = e->n_done;
    if (e->lim_req != e->lim_done) { /* set_limits: apply, then acknowledge */
      apply_limits(e, e->lim_conc, e->lim_set_rps, e->lim_rps);
      e->lim_conc = 0;
      e->lim_set_rps = 0;
      e->lim_done = e->lim_req;
      pthread_cond_broadcast(&e->lcv);
    }
    pthread_mutex_unlock(&e->mu);
    if (stop) {
      while (in) {
        struct req *nx = in->next;
        req_free(in);
        in = nx;
      }
      break;
    }
    double now = mono();
    while (in) {
      struct req *nx = in->next;
      if (in->refused) {
        e->cnt.refused++;
        finish_error(e, in, in->refused, in->refused_msg, now);
      } else {
        enqueue(e, in, 0, now);
      }
      in = nx;
    }
    while (e->delayed && e->delayed->due <= now) {
      struct req *q = e->delayed;
      e->delayed = q->next;
      enqueue(e, q, 1, now);
    }
    double wait = start_ready(e, now, n_done);
    if (e->delayed)
      wait = fmin(wait, e->delayed->due - now);
    int timeout_ms = 1000;
    if (wait < 1.0)
      timeout_ms = wait <= 0 ? 0 : (int)ceil(wait * 1000);
    flush(e);
    wait_and_drive(e, timeout_ms);
    drain_messages(e);
    flush(e); /* before the next iteration reads n_done for backpressure */
  }
  /* stopping: tear down every transfer; only this thread touches curl handles */
  while (e->batch_head) {
    struct req *q = e->batch_head;
    e->batch_head = q->next;
    req_free(q);
  }
  e->batch_tail = NULL;
  struct req *act = e->active;
  e->active = NULL;
  while (act) {
    struct req *q = act;
    act = q->anext;
    curl_multi_remove_handle(e->multi, q->slot->easy);
    curl_easy_cleanup(q->slot->easy);
    free(q->slot);
    q->slot = NULL;
    req_free(q);
  }
  while (e->pool) {
    struct slot *s = e->pool;
    e->pool = s->next;
    curl_easy_cleanup(s->easy);
    free(s);
  }
  while (e->delayed) {
    struct req *q = e->delayed;
    e->delayed = q->next;
    req_free(q);
  }
  for (int i = 1; i <= e->n_auth; i++) {
    struct auth *a = e->auths[i];
    while (a->wait_head) {
      struct req *q = a->wait_head;
      a->wait_head = q->next;
      req_free(q);
    }
    a->wait_tail = NULL;
  }
  for (struct host *h = e->hosts; h; h = h->next) {
    while (h->ready_head) {
      struct req *q = h->ready_head;
      h->ready_head = q->next;
      req_free(q);
    }
    h->ready_tail = NULL;
  }
  pthread_mutex_lock(&e->mu);
  CURLM *m = e->multi;
  e->multi = NULL;
  pthread_mutex_unlock(&e->mu);
  curl_multi_cleanup(m);
  return NULL;
}

/* ---- public API ------------------------------------------------------------------------ */

int dltc_engine_new(const struct dltc_engine_config *cfg, struct dltc_engine **out,
                    struct dltc_error *err) {
  int rc = DLTC_ENOMEM;
  struct dltc_engine *e = NULL;
  *out = NULL;
  if (dltc_global_init() != 0) {
    rc = dltc_error_set(err, DLTC_ENET, "curl_global_init failed");
    goto out;
  }
  if (cfg->max_concurrency < 1 || cfg->initial_concurrency < 1 || cfg->max_attempts < 1 ||
      cfg->queue_size < 1 || cfg->max_body < 1 || cfg->max_redirects < 0 ||
      !(cfg->max_ratio >= 1) || cfg->n_allowed > DLTC_MAX_ALLOWED_HOSTS ||
      cfg->n_headers > DLTC_MAX_HEADERS || !(cfg->max_retry_time >= 0) || !(cfg->timeout >= 0) ||
      !(cfg->connect_timeout >= 0) || !(cfg->low_speed_time >= 0)) {
    rc = dltc_error_set(err, DLTC_EINVAL, "invalid engine configuration");
    goto out;
  }
  e = calloc(1, sizeof *e);
  if (!e)
    goto nomem;
  e->cfg = *cfg;
  e->epfd = e->evfd = -1;
  e->timer_due = -1;
  e->last_window = -1;
  e->cfg.allowed_hosts = NULL;
  e->cfg.headers = NULL;
  e->cfg.ca_file = NULL;
  e->cfg.user_agent = NULL;
  pthread_mutex_init(&e->mu, NULL);
  pthread_cond_init(&e->cv, NULL);
  pthread_cond_init(&e->lcv, NULL);
  pthread_mutex_init(&e->smu, NULL);
  e->t0 = mono();
  e->rng = ((uint64_t)(uintptr_t)e) ^ (uint64_t)(e->t0 * 1e9) ^ 0x9E3779B97F4A7C15ull;
  if (!(e->lat = malloc(LAT_SAMPLES * sizeof *e->lat)))
    goto nomem;
  if (cfg->allowed_hosts) {
    if (!(e->allowed = calloc(cfg->n_allowed + 1, sizeof *e->allowed)))
      goto nomem;
    e->n_allowed = cfg->n_allowed;
    for (size_t i = 0; i < cfg->n_allowed; i++) {
      if (!(e->allowed[i] = strdup(cfg->allowed_hosts[i])))
        goto nomem;
      lower(e->allowed[i]);
    }
  }
  if (cfg->ca_file && !(e->ca_file = strdup(cfg->ca_file)))
    goto nomem;
  if (cfg->user_agent && strpbrk(cfg->user_agent, "\r\n")) {
    rc = dltc_error_set(err, DLTC_EINVAL, "user_agent must be a single line");
    goto out;
  }
  if (cfg->user_agent) {
    e->user_agent = strdup(cfg->user_agent);
  } else {
    char ua[64];
    snprintf(ua, sizeof ua, "dltc/%s", dltc_version());
    e->user_agent = strdup(ua);
  }
  if (!e->user_agent)
    goto nomem;
  /* libcurl looks for a proxy in the environment at every transfer (five getenv()
   * calls, each a walk of the environment); look once here, and when there is none
   * tell it so. With a proxy variable set, libcurl keeps its own rules. */
  {
    static const char *const vars[] = {"http_proxy", "https_proxy", "HTTPS_PROXY",
                                       "all_proxy",  "ALL_PROXY",   "HTTP_PROXY"};
    e->no_proxy_env = 1;
    for (size_t k = 0; k < sizeof vars / sizeof vars[0]; k++)
      if (getenv(vars[k]))
        e->no_proxy_env = 0;
  }
  /* the engine's own lines first (n_std), each unless the client's headers name it */
  {
    char ua[600];
    snprintf(ua, sizeof ua, "User-Agent: %.512s", e->user_agent);
    const char *std[] = {ua, "Accept-Encoding: gzip, br"};
    for (size_t k = 0; k < sizeof std / sizeof std[0]; k++) {
      size_t n = line_name_len(std[k]);
      int given = 0;
      for (size_t i = 0; i < cfg->n_headers; i++)
        given |= cfg->headers[i] && line_is(cfg->headers[i], std[k], n);
      if (given)
        continue;
      struct curl_slist *l = curl_slist_append(e->base_hdrs, std[k]);
      if (!l)
        goto nomem;
      e->base_hdrs = l;
      if (!(l = curl_slist_append(e->base_hdrs_public, std[k])))
        goto nomem;
      e->base_hdrs_public = l;
      e->n_std++;
    }
  }
  for (size_t i = 0; i < cfg->n_headers; i++) {
    const char *line = cfg->headers[i];
    if (!line || strpbrk(line, "\r\n") || !strchr(line, ':')) {
      rc = dltc_error_set(err, DLTC_EINVAL, "header %zu is not a single 'Name: value' line", i);
      goto out;
    }
    struct curl_slist *l = curl_slist_append(e->base_hdrs, line);
    if (!l)
      goto nomem;
    e->base_hdrs = l;
    int sn = is_secret_header(line);
    if (sn) {
      const char *v = line + sn;
      while (*v == ' ' || *v == '\t')
        v++;
      if (*v && e->n_secrets < MAX_SECRETS && !(e->secrets[e->n_secrets++] = strdup(v)))
        goto nomem;
    } else {
      if (!(l = curl_slist_append(e->base_hdrs_public, line)))
        goto nomem;
      e->base_hdrs_public = l;
    }
  }
  if (!(e->multi = curl_multi_init()))
    goto nomem;
  curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)cfg->max_concurrency);
  curl_multi_setopt(e->multi, CURLMOPT_MAX_CONCURRENT_STREAMS,
                    (long)(cfg->max_concurrency > 100 ? cfg->max_concurrency : 100));
  if (cfg->loop == DLTC_LOOP_EPOLL) {
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    e->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (e->epfd < 0 || e->evfd < 0) {
      rc = dltc_error_set(err, DLTC_ENET, "epoll/eventfd: %s", strerror(errno));
      goto out;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = e->evfd};
    epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->evfd, &ev);
    curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
  }
  if (pthread_create(&e->thread, NULL, loop_main, e) != 0) {
    rc = dltc_error_set(err, DLTC_ENOMEM, "cannot start the engine thread");
    goto out;
  }
  e->thread_started = 1;
  pthread_setname_np(e->thread, "dltc-engine"); /* visible in top -H, perf, gdb */
  *out = e;
  e = NULL;
  rc = 0;
  goto out;
nomem:
  rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory creating the engine");
out:
  if (e)
    dltc_engine_free(e);
  return rc;
}

int dltc_engine_submit(struct dltc_engine *e, const char *url, const char *etag,
                       const int *empty_on, size_t n_empty, uint64_t *id, struct dltc_error *err) {
  struct dltc_request rq = {.url = url, .etag = etag, .empty_on = empty_on, .n_empty = n_empty};
  return dltc_engine_submit_request(e, &rq, id, err);
}

static int is_tchar(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

int dltc_engine_submit_request(struct dltc_engine *e, const struct dltc_request *rq, uint64_t *id,
                               struct dltc_error *err) {
  const char *url = rq->url, *etag = rq->etag;
  if (!url)
    return dltc_error_set(err, DLTC_EINVAL, "url is required");
  if (rq->n_empty > DLTC_MAX_EMPTY_ON)
    return dltc_error_set(err, DLTC_EINVAL, "at most %d statuses in empty_on", DLTC_MAX_EMPTY_ON);
  if (etag) {
    size_t off, len;
    if (strlen(etag) > 1000 || dltc_etag_parse(etag, strlen(etag), &off, &len) != 0)
      return dltc_error_set(err, DLTC_EINVAL,
                            "etag is not a valid entity-tag (W/\"...\" or \"...\")");
  }
  int is_get = 1;
  if (rq->method) {
    size_t ml = strlen(rq->method);
    if (!ml || ml > 32)
      return dltc_error_set(err, DLTC_EINVAL, "method must be 1 to 32 characters");
    for (size_t i = 0; i < ml; i++)
      if (!is_tchar((unsigned char)rq->method[i]))
        return dltc_error_set(err, DLTC_EINVAL, "method %.40s is not an HTTP token", rq->method);
    is_get = strcasecmp(rq->method, "GET") == 0;
  }
  if (rq->n_headers > DLTC_MAX_REQ_HEADERS)
    return dltc_error_set(err, DLTC_EINVAL, "at most %d headers per request", DLTC_MAX_REQ_HEADERS);
  for (size_t i = 0; i < rq->n_headers; i++) {
    const char *line = rq->headers[i];
    const char *c = line ? strchr(line, ':') : NULL;
    if (!c || c == line || strpbrk(line, "\r\n"))
      return dltc_error_set(err, DLTC_EINVAL, "header %zu is not a single 'Name: value' line", i);
  }
  struct auth *a = NULL;
  if (rq->auth != DLTC_AUTH_NONE) {
    int n = __atomic_load_n(&e->n_auth, __ATOMIC_ACQUIRE);
    if (rq->auth < 0 || rq->auth > n)
      return dltc_error_set(err, DLTC_EINVAL, "auth handle %d is not registered", rq->auth);
    a = e->auths[rq->auth];
  }
  struct req *q = calloc(1, sizeof *q);
  if (!q)
    return dltc_error_set(err, DLTC_ENOMEM, "out of memory");
  q->e = e;
  q->auth = a;
  q->url = strdup(url);
  q->cur_url = q->url;
  q->r.url = q->url;
  q->n_empty = (int)rq->n_empty;
  for (size_t i = 0; i < rq->n_empty; i++)
    q->empty_on[i] = rq->empty_on[i];
  if (!q->url || (etag && !(q->etag_in = strdup(etag))))
    goto nomem;
  if (rq->method && !is_get) {
    if (!(q->method = strdup(rq->method)))
      goto nomem;
    for (char *p = q->method; *p; p++)
      if (*p >= 'a' && *p <= 'z')
        *p = (char)(*p - 'a' + 'A');
  }
  if (rq->body) {
    q->has_body = 1;
    q->body_len = rq->body_len;
    if (!(q->body = malloc(rq->body_len + 1)))
      goto nomem;
    memcpy(q->body, rq->body, rq->body_len);
    q->body[rq->body_len] = '\0';
  }
  for (size_t i = 0; i < rq->n_headers; i++) {
    struct curl_slist *l = curl_slist_append(q->user, rq->headers[i]);
    if (!l)
      goto nomem;
    q->user = l;
  }
  if (a && a->query) {
    size_t n = strlen(url) + strlen(a->query) + 2;
    const char *hash = strchr(url, '#'), *qm = strchr(url, '?');
    size_t base = hash ? (size_t)(hash - url) : strlen(url);
    if (!(q->send_url = malloc(n)))
      goto nomem;
    char sep = qm && qm < url + base ? (qm + 1 == url + base ? '\0' : '&') : '?';
    snprintf(q->send_url, n, "%.*s%s%s%s", (int)base, url, sep ? (char[]){sep, 0} : "", a->query,
             url + base);
  }
  if (strchr(url, '@') && note_userinfo(q, url) != 0)
    goto nomem;
  char msg[160];
  int prc = parse_target(url, &q->orig_host, &q->host_key, &q->safe_url,
                         q->send_url ? NULL : &q->uh, msg, sizeof msg);
  if (prc == DLTC_ENOMEM)
    goto nomem;
  if (prc) {
    char full[1024];
    snprintf(full, sizeof full, "refused %.700s: %s", url, msg);
    q->refused = DLTC_EINVAL;
    q->refused_msg = strdup(full);
  } else if (!host_allowed(e, q->orig_host)) {
    char full[1024];
    snprintf(full, sizeof full, "refused %.700s: host %.200s is not in allowed_hosts", q->safe_url,
             q->orig_host);
    q->refused = DLTC_EREFUSED;
    q->refused_msg = strdup(full);
  }
  if (q->refused && !q->refused_msg)
    goto nomem;
  if (!q->refused && needs_own_hdrs(q) && build_hdrs(e, q) != 0)
    goto nomem;
  pthread_mutex_lock(&e->mu);
  if (e->stopping) {
    pthread_mutex_unlock(&e->mu);
    req_free(q);
    return dltc_error_set(err, DLTC_ECANCEL, "the client is closed");
  }
  if (e->pending >= e->cfg.max_pending) {
    pthread_mutex_unlock(&e->mu);
    req_free(q);
    return dltc_error_set(err, DLTC_ELIMIT, "more than %zu requests pending", e->cfg.max_pending);
  }
  q->r.id = *id ? *id : dltc_engine_reserve_id(e);
  *id = q->r.id;
  int was_empty = e->in_head == NULL;
  if (e->in_tail)
    e->in_tail->next = q;
  else
    e->in_head = q;
  e->in_tail = q;
  e->pending++;
  if (was_empty)
    wake_loop(e);
  pthread_mutex_unlock(&e->mu);
  return 0;
nomem:
  req_free(q);
  return dltc_error_set(err, DLTC_ENOMEM, "out of memory");
}

static void auth_free(struct auth *a) {
  if (!a)
    return;
  free(a->line);
  free(a->query);
  curl_slist_free_all(a->hdrs);
  curl_slist_free_all(a->hdrs_public);
  for (size_t i = 0; i < a->n_secrets; i++)
    free(a->secrets[i]);
  free(a->token_url);
  free(a->token_host);
  free(a->token_key);
  free(a->token_safe);
  free(a->form);
  free(a->basic_line);
  free(a->token);
  free(a->prev_token);
  free(a->token_line);
  free(a);
}

static int auth_secret(struct auth *a, const char *s, size_t n) {
  if (!s || !n || a->n_secrets >= AUTH_SECRETS)
    return 0;
  return (a->secrets[a->n_secrets++] = strndup(s, n)) ? 0 : DLTC_ENOMEM;
}

/* A header value or name the spec gives: present, one line. */
static int spec_str(const char *v, const char *what, struct dltc_error *err) {
  if (!v || !v[0])
    return dltc_error_set(err, DLTC_EINVAL, "auth: %s is required", what);
  if (strpbrk(v, "\r\n"))
    return dltc_error_set(err, DLTC_EINVAL, "auth: %s contains CR or LF", what);
  return 0;
}

int dltc_engine_add_auth(struct dltc_engine *e, const struct dltc_auth_spec *sp, int *handle,
                         struct dltc_error *err) {
  int rc = DLTC_ENOMEM;
  char *pair = NULL, *b64 = NULL;
  struct auth *a = calloc(1, sizeof *a);
  *handle = DLTC_AUTH_NONE;
  if (!a)
    return dltc_error_set(err, DLTC_ENOMEM, "out of memory");
  a->type = sp->type;
  switch (sp->type) {
  case DLTC_AUTH_BEARER: {
    if ((rc = spec_str(sp->token, "bearer token", err)))
      goto out;
    size_t n = strlen(sp->token) + 32;
    if (!(a->line = malloc(n)))
      goto nomem;
    snprintf(a->line, n, "Authorization: Bearer %s", sp->token);
    a->name_len = 13;
    if (auth_secret(a, sp->token, strlen(sp->token)))
      goto nomem;
    break;
  }
  case DLTC_AUTH_API_KEY: {
    if ((rc = spec_str(sp->name, "api_key name", err)) ||
        (rc = spec_str(sp->api_key, "api_key", err)))
      goto out;
    size_t nn = strlen(sp->name), kn = strlen(sp->api_key);
    if (sp->in_query) {
      if (!(a->query = malloc(3 * (nn + kn) + 2)))
        goto nomem;
      size_t o = dltc_form_encode(sp->name, nn, a->query);
      a->query[o++] = '=';
      size_t k0 = o;
      o += dltc_form_encode(sp->api_key, kn, a->query + o);
      a->query[o] = '\0';
      if (auth_secret(a, sp->api_key, kn) ||
          (o - k0 != kn && auth_secret(a, a->query + k0, o - k0)))
        goto nomem;
    } else {
      for (size_t i = 0; i < nn; i++)
        if (!is_tchar((unsigned char)sp->name[i])) {
          rc = dltc_error_set(err, DLTC_EINVAL, "auth: api_key name %.60s is not a header name",
                              sp->name);
          goto out;
        }
      if (!(a->line = malloc(nn + kn + 3)))
        goto nomem;
      snprintf(a->line, nn + kn + 3, "%s: %s", sp->name, sp->api_key);
      a->name_len = nn;
      if (auth_secret(a, sp->api_key, kn))
        goto nomem;
    }
    break;
  }
  case DLTC_AUTH_BASIC: {
    if (!sp->username || !sp->password || strpbrk(sp->username, "\r\n") ||
        strpbrk(sp->password, "\r\n")) {
      rc = dltc_error_set(err, DLTC_EINVAL, "auth: http_basic needs username and password");
      goto out;
    }
    size_t n = strlen(sp->username) + strlen(sp->password) + 2;
    if (!(pair = malloc(n)))
      goto nomem;
    snprintf(pair, n, "%s:%s", sp->username, sp->password);
    if (!(b64 = dltc_base64(pair, strlen(pair))))
      goto nomem;
    n = strlen(b64) + 32;
    if (!(a->line = malloc(n)))
      goto nomem;
    snprintf(a->line, n, "Authorization: Basic %s", b64);
    a->name_len = 13;
    if (auth_secret(a, sp->password, strlen(sp->password)) || auth_secret(a, b64, strlen(b64)))
      goto nomem;
    break;
  }
  case DLTC_AUTH_OAUTH2_CC: {
    if ((rc = spec_str(sp->token_url, "access_token_url", err)) ||
        (rc = spec_str(sp->client_id, "client_id", err)) ||
        (rc = spec_str(sp->client_secret, "client_secret", err)))
      goto out;
    if (!(sp->default_expiration > 0)) {
      rc = dltc_error_set(err, DLTC_EINVAL, "auth: default_token_expiration must be > 0");
      goto out;
    }
    char msg[160];
    int prc = parse_target(sp->token_url, &a->token_host, &a->token_key, &a->token_safe, NULL, msg,
                           sizeof msg);
    if (prc == DLTC_ENOMEM)
      goto nomem;
    if (prc) {
      rc = dltc_error_set(err, DLTC_EINVAL, "auth: access_token_url: %s", msg);
      goto out;
    }
    if (!host_allowed(e, a->token_host)) {
      rc = dltc_error_set(err, DLTC_EINVAL,
                          "auth: access_token_url host %.200s is not in allowed_hosts",
                          a->token_host);
      goto out;
    }
    if (!(a->token_url = strdup(sp->token_url)))
      goto nomem;
    if ((rc = dltc_auth_token_form(sp, &a->form, &a->form_len, err)))
      goto out;
    a->default_exp = sp->default_expiration;
    if (sp->client_auth_basic) {
      size_t n = strlen(sp->client_id) + strlen(sp->client_secret) + 2;
      if (!(pair = malloc(n)))
        goto nomem;
      snprintf(pair, n, "%s:%s", sp->client_id, sp->client_secret);
      if (!(b64 = dltc_base64(pair, strlen(pair))))
        goto nomem;
      n = strlen(b64) + 32;
      if (!(a->basic_line = malloc(n)))
        goto nomem;
      snprintf(a->basic_line, n, "Authorization: Basic %s", b64);
      if (auth_secret(a, b64, strlen(b64)))
        goto nomem;
    }
    size_t sn = strlen(sp->client_secret);
    char *enc = malloc(3 * sn + 1);
    if (!enc)
      goto nomem;
    size_t en = dltc_form_encode(sp->client_secret, sn, enc);
    int src = auth_secret(a, sp->client_secret, sn) ||
              auth_secret(a, sp->client_id, strlen(sp->client_id)) ||
              (en != sn && auth_secret(a, enc, en));
    free(enc);
    if (src)
      goto nomem;
    break;
  }
  default: rc = dltc_error_set(err, DLTC_EINVAL, "auth: unknown type %d", sp->type); goto out;
  }
  if (a->line) { /* the shared lists of requests with no headers of their own */
    struct curl_slist *l = NULL, *t;
    size_t an = a->name_len;
    for (int pub = 0; pub < 2; pub++) {
      l = NULL;
      for (struct curl_slist *it = e->base_hdrs; it; it = it->next) {
        if (line_is(it->data, a->line, an) || (pub && is_secret_header(it->data)))
          continue;
        if (!(t = curl_slist_append(l, it->data)))
          goto nomem_list;
        l = t;
      }
      if (!pub) {
        if (!(t = curl_slist_append(l, a->line)))
          goto nomem_list;
        l = t;
        a->hdrs = l;
      } else {
        a->hdrs_public = l; /* NULL: start_one falls back to the client's public list */
      }
    }
    goto listed;
  nomem_list:
    curl_slist_free_all(l);
    goto nomem;
  }
listed:
  pthread_mutex_lock(&e->mu);
  if (e->n_auth >= DLTC_MAX_AUTH) {
    pthread_mutex_unlock(&e->mu);
    rc = dltc_error_set(err, DLTC_ELIMIT, "at most %d auth specs per client", DLTC_MAX_AUTH);
    goto out;
  }
  e->auths[e->n_auth + 1] = a;
  __atomic_store_n(&e->n_auth, e->n_auth + 1, __ATOMIC_RELEASE);
  *handle = e->n_auth;
  pthread_mutex_unlock(&e->mu);
  a = NULL;
  rc = 0;
  goto out;
nomem:
  rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory");
out:
  if (pair) { /* it held a secret */
    memset(pair, 0, strlen(pair));
    free(pair);
  }
  free(b64);
  auth_free(a);
  return rc;
}

int dltc_engine_set_limits(struct dltc_engine *e, int max_concurrency, int set_rps, double rps,
                           struct dltc_error *err) {
  if (max_concurrency < 0)
    return dltc_error_set(err, DLTC_EINVAL, "max_concurrency must be >= 1");
  if (set_rps && isnan(rps))
    return dltc_error_set(err, DLTC_EINVAL, "rps must be a number");
  pthread_mutex_lock(&e->mu);
  if (e->stopping || !e->thread_started) {
    pthread_mutex_unlock(&e->mu);
    return dltc_error_set(err, DLTC_ECANCEL, "the client is closed");
  }
  if (max_concurrency > 0)
    e->lim_conc = max_concurrency;
  if (set_rps) {
    e->lim_set_rps = 1;
    e->lim_rps = rps;
  }
  uint64_t mine = ++e->lim_req;
  wake_loop(e);
  while (e->lim_done < mine && !e->stopping)
    pthread_cond_wait(&e->lcv, &e->mu);
  int stopped = e->lim_done < mine;
  pthread_mutex_unlock(&e->mu);
  return stopped ? dltc_error_set(err, DLTC_ECANCEL, "the client is closed") : 0;
}

uint64_t dltc_engine_reserve_id(struct dltc_engine *e) {
  return __atomic_add_fetch(&e->next_id, 1, __ATOMIC_RELAXED);
}

int dltc_engine_next(struct dltc_engine *e, int timeout_ms, struct dltc_response **out,
                     struct dltc_error *err) {
  struct timespec dl;
  *out = NULL;
  if (timeout_ms >= 0) {
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
      dl.tv_sec++;
      dl.tv_nsec -= 1000000000L;
    }
  }
  pthread_mutex_lock(&e->mu);
  while (!e->done_head && !e->stopping && timeout_ms != 0) {
    e->n_waiters++;
    int rc = timeout_ms < 0 ? pthread_cond_wait(&e->cv, &e->mu)
                            : pthread_cond_timedwait(&e->cv, &e->mu, &dl);
    e->n_waiters--;
    if (rc == ETIMEDOUT)
      break;
  }
  if (e->stopping) {
    pthread_mutex_unlock(&e->mu);
    return dltc_error_set(err, DLTC_ECANCEL, "the client is closed");
  }
  struct req *q = e->done_head;
  if (!q) {
    pthread_mutex_unlock(&e->mu);
    return DLTC_EAGAIN;
  }
  e->done_head = q->next;
  if (!e->done_head)
    e->done_tail = NULL;
  q->next = NULL;
  if (e->n_done-- == (size_t)e->cfg.queue_size)
    wake_loop(e); /* room again: transfers may start */
  e->pending--;
  pthread_mutex_unlock(&e->mu);
  *out = &q->r;
  return 0;
}

size_t dltc_engine_pending(struct dltc_engine *e) {
  pthread_mutex_lock(&e->mu);
  size_t n = e->stopping ? 0 : e->pending;
  pthread_mutex_unlock(&e->mu);
  return n;
}

void dltc_engine_stop(struct dltc_engine *e) {
  pthread_mutex_lock(&e->mu);
  if (e->stopping) {
    pthread_mutex_unlock(&e->mu);
    /* another thread may be joining; wait until it is done */
    pthread_mutex_lock(&e->mu);
    while (!e->stopped)
      pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    return;
  }
  e->stopping = 1;
  if (e->thread_started)
    wake_loop(e);
  pthread_cond_broadcast(&e->cv);
  pthread_cond_broadcast(&e->lcv);
  pthread_mutex_unlock(&e->mu);
  if (e->thread_started)
    pthread_join(e->thread, NULL);
  else if (e->multi) {
    curl_multi_cleanup(e->multi);
    e->multi = NULL;
  }
  pthread_mutex_lock(&e->mu);
  struct req *lists[2] = {e->in_head, e->done_head};
  e->in_head = e->in_tail = e->done_head = e->done_tail = NULL;
  e->n_done = 0;
  e->pending = 0;
  e->stopped = 1;
  pthread_cond_broadcast(&e->cv);
  pthread_mutex_unlock(&e->mu);
  for (int i = 0; i < 2; i++)
    while (lists[i]) {
      struct req *nx = lists[i]->next;
      req_free(lists[i]);
      lists[i] = nx;
    }
}

void dltc_engine_free(struct dltc_engine *e) {
  if (!e)
    return;
  dltc_engine_stop(e);
  while (e->hosts) {
    struct host *h = e->hosts;
    e->hosts = h->next;
    free(h->key);
    free(h);
  }
  for (size_t i = 0; e->allowed && i < e->n_allowed; i++)
    free(e->allowed[i]);
  free(e->allowed);
  for (size_t i = 0; i < e->n_secrets; i++)
    free(e->secrets[i]);
  for (int i = 1; i <= e->n_auth; i++)
    auth_free(e->auths[i]);
  curl_slist_free_all(e->base_hdrs);
  curl_slist_free_all(e->base_hdrs_public);
  free(e->ca_file);
  free(e->user_agent);
  free(e->lat);
  if (e->epfd >= 0)
    close(e->epfd);
  if (e->evfd >= 0)
    close(e->evfd);
  free(e->fds);
  pthread_cond_destroy(&e->cv);
  pthread_cond_destroy(&e->lcv);
  pthread_mutex_destroy(&e->mu);
  pthread_mutex_destroy(&e->smu);
  free(e);
}
