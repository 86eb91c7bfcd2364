/* Tests of engine.c that need no server: refused hosts and URLs, connection
 * errors retried then reported, timeouts of next(), stop with work in flight
 * (every handle cleaned: run under ASan/LSan by `make test-c`). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"

static int failures;
#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                     \
      failures++;                                                                                  \
    }                                                                                              \
  } while (0)

/* A loopback port with nothing listening (bound then closed). */
static int dead_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t n = sizeof a;
  bind(fd, (struct sockaddr *)&a, sizeof a);
  getsockname(fd, (struct sockaddr *)&a, &n);
  close(fd);
  return ntohs(a.sin_port);
}

int main(void) {
  struct dltc_engine_config cfg;
  dltc_engine_config_init(&cfg);
  const char *allowed[] = {"127.0.0.1"};
  const char *headers[] = {"Authorization: Bearer s3cr3t-token", "X-Test: 1"};
  cfg.allowed_hosts = allowed;
  cfg.n_allowed = 1;
  cfg.headers = headers;
  cfg.n_headers = 2;
  cfg.max_attempts = 3;
  cfg.backoff_base = 0.01;
  cfg.connect_timeout = 2;
  struct dltc_engine *e = NULL;
  struct dltc_error err;
  dltc_error_reset(&err);
  for (int loop = 0; loop < 2; loop++) {
    cfg.loop = loop ? DLTC_LOOP_EPOLL : DLTC_LOOP_POLL;
    CHECK(dltc_engine_new(&cfg, &e, &err) == 0);
    if (!e)
      return 1;
    uint64_t id1 = 0, id2 = 0, id3 = 0, id4 = 0, idx = 0;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", dead_port());
    CHECK(dltc_engine_submit(e, "http://example.com/x", NULL, NULL, 0, &id1, &err) == 0);
    CHECK(dltc_engine_submit(e, "ftp://127.0.0.1/x", NULL, NULL, 0, &id2, &err) == 0);
    CHECK(dltc_engine_submit(e, url, NULL, NULL, 0, &id3, &err) == 0);
    CHECK(dltc_engine_submit(e, "not a url", NULL, NULL, 0, &id4, &err) == 0);
    CHECK(dltc_engine_submit(e, url, "bad\r\netag", NULL, 0, &idx, &err) == DLTC_EINVAL);
    CHECK(dltc_engine_pending(e) == 4);
    int seen = 0;
    for (int i = 0; i < 4; i++) {
      struct dltc_response *r = NULL;
      int rc = dltc_engine_next(e, 10000, &r, &err);
      CHECK(rc == 0 && r);
      if (!r)
        break;
      CHECK(r->error != NULL && r->status == 0 && r->code != 0);
      if (r->id == id1) {
        CHECK(r->code == DLTC_EREFUSED && strstr(r->error, "allowed_hosts"));
        CHECK(r->attempts == 0);
      } else if (r->id == id3) {
        CHECK(r->code == DLTC_ENET && r->attempts == 3);
        CHECK(strstr(r->error, "gave up after 3 attempts") != NULL);
      } else {
        CHECK(r->code == DLTC_EINVAL);
      }
      CHECK(strstr(r->error, "s3cr3t") == NULL);
      seen |= 1 << (r->id - 1);
      dltc_response_free(r);
    }
    CHECK(seen == 0xF);
    CHECK(dltc_engine_pending(e) == 0);
    struct dltc_response *r = NULL;
    CHECK(dltc_engine_next(e, 20, &r, &err) == DLTC_EAGAIN && r == NULL);
    struct dltc_engine_stats st;
    dltc_engine_stats(e, &st);
    CHECK(st.refused == 3 && st.responses == 4 && st.errors == 4);
    CHECK(st.retries[DLTC_RC_CONNECT] == 2);
    /* stop with requests queued, delayed and in flight: nothing leaks */
    for (int i = 0; i < 50; i++) {
      idx = 0;
      CHECK(dltc_engine_submit(e, url, "W/\"x\"", NULL, 0, &idx, &err) == 0);
    }
    usleep(20000);
    dltc_engine_stop(e);
    CHECK(dltc_engine_pending(e) == 0);
    CHECK(dltc_engine_next(e, 10, &r, &err) == DLTC_ECANCEL);
    idx = 0;
    CHECK(dltc_engine_submit(e, url, NULL, NULL, 0, &idx, &err) == DLTC_ECANCEL);
    dltc_engine_stop(e);
    dltc_engine_free(e);
    e = NULL;
  }
  cfg.max_concurrency = 0;
  CHECK(dltc_engine_new(&cfg, &e, &err) == DLTC_EINVAL && e == NULL);
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("test_engine: ok\n");
  return 0;
}
