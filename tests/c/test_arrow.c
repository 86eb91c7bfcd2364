/* Tests of arrow.c: builders (values, nulls, truncation, 64-byte alignment, big
 * buffers), batch export with columns added later, the C stream (schema formats,
 * end of stream), early and out-of-order release, and allocation failure in turn. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arrow.h"

static int failures;
#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                     \
      failures++;                                                                                  \
    }                                                                                              \
  } while (0)

#define ALIGNED(p) (((uintptr_t)(p)&63) == 0)

static int bit(const void *buf, int64_t i) {
  return (((const uint8_t *)buf)[i >> 3] >> (i & 7)) & 1;
}

static void test_builders(void) {
  struct dltc_error err;
  struct dltc_col c;
  CHECK(dltc_col_init(&c, "x", 1, DLTC_T_NONE, &err) == DLTC_EINVAL);
  /* strings */
  CHECK(dltc_col_init(&c, "s\x1fk", 3, DLTC_T_TEXT, &err) == 0);
  CHECK(strcmp(c.name, "s\x1fk") == 0);
  for (int i = 0; i < 100; i++) {
    if (i % 3 == 0)
      CHECK(dltc_col_append_null(&c, &err) == 0);
    else {
      char b[16];
      int n = snprintf(b, sizeof b, "v%d", i);
      CHECK(dltc_col_append_str(&c, b, (size_t)n, &err) == 0);
    }
  }
  CHECK(c.length == 100 && c.null_count == 34);
  CHECK(ALIGNED(c.values.data) && ALIGNED(c.data.data) && ALIGNED(c.validity.data));
  const int32_t *off = (const int32_t *)(const void *)c.values.data;
  CHECK(off[0] == 0 && off[1] == 0 && off[2] == 2 && off[3] == 4 && off[4] == 4);
  CHECK(memcmp(c.data.data, "v1v2v4", 6) == 0);
  CHECK(!bit(c.validity.data, 0) && bit(c.validity.data, 1) && !bit(c.validity.data, 99));
  dltc_col_truncate(&c, 5);
  CHECK(c.length == 5 && c.null_count == 2 && c.data.len == 6 && c.values.len == 24);
  CHECK(dltc_col_append_str(&c, "zz", 2, &err) == 0);
  off = (const int32_t *)(const void *)c.values.data;
  CHECK(off[6] == 8 && memcmp(c.data.data + 6, "zz", 2) == 0);
  /* the tail of the validity byte was cleared by the truncation */
  CHECK(bit(c.validity.data, 5) == 1);
  CHECK(c.validity.data[0] == (uint8_t)(0x02 | 0x04 | 0x10 | 0x20));
  /* reserve/commit unescapes straight into the column */
  char *dst = dltc_col_reserve_str(&c, 10, &err);
  CHECK(dst != NULL);
  memcpy(dst, "abc", 3);
  CHECK(dltc_col_commit_str(&c, 3, &err) == 0);
  off = (const int32_t *)(const void *)c.values.data;
  CHECK(off[7] == 11 && c.length == 7);
  dltc_col_reset(&c);
  dltc_col_reset(&c); /* twice is fine */

  /* fixed width, bool, big buffers (mmap + mremap growth) */
  struct dltc_col i64, b, f, dt;
  CHECK(dltc_col_init(&i64, "i", 1, DLTC_T_BIGINT, &err) == 0);
  CHECK(dltc_col_init(&b, "b", 1, DLTC_T_BOOL, &err) == 0);
  CHECK(dltc_col_init(&f, "f", 1, DLTC_T_DOUBLE, &err) == 0);
  CHECK(dltc_col_init(&dt, "d", 1, DLTC_T_DATE, &err) == 0);
  const int64_t N = 300000; /* 2.4 MB of int64: grows through the mapped path */
  for (int64_t i = 0; i < N; i++) {
    CHECK(dltc_col_append_i64(&i64, i * 7, &err) == 0);
    CHECK((i % 5 ? dltc_col_append_bool(&b, (int)(i & 1), &err) : dltc_col_append_null(&b, &err)) ==
          0);
    CHECK(dltc_col_append_f64(&f, (double)i / 2, &err) == 0);
    CHECK(dltc_col_append_i32(&dt, (int32_t)-i, &err) == 0);
    if (failures)
      break;
  }
  CHECK(ALIGNED(i64.values.data) && ALIGNED(b.values.data) && ALIGNED(f.values.data));
  const int64_t *iv = (const int64_t *)(const void *)i64.values.data;
  CHECK(iv[N - 1] == (N - 1) * 7 && iv[12345] == 12345 * 7);
  CHECK(bit(b.values.data, 7) && !bit(b.values.data, 8) && !bit(b.validity.data, 10));
  CHECK(b.null_count == N / 5);
  dltc_col_truncate(&b, 11);
  CHECK(b.length == 11 && b.null_count == 3 && b.values.len == 2 && b.validity.len == 2);
  CHECK(dltc_col_append_bool(&b, 1, &err) == 0 && bit(b.values.data, 11));
  CHECK(!bit(b.values.data, 12) && !bit(b.validity.data, 12)); /* cleared by truncate */
  dltc_col_truncate(&i64, 0);
  CHECK(i64.length == 0 && i64.values.len == 0);
  CHECK(dltc_col_append_nulls(&i64, 3, &err) == 0 && i64.null_count == 3);
  dltc_col_reset(&i64);
  dltc_col_reset(&b);
  dltc_col_reset(&f);
  dltc_col_reset(&dt);
}

static void test_types(void) {
  CHECK(dltc_type_from_name("timestamp", 9) == DLTC_T_TIMESTAMP);
  CHECK(dltc_type_from_name("json", 4) == DLTC_T_JSON);
  CHECK(dltc_type_from_name("jso", 3) == DLTC_T_NONE);
  CHECK(strcmp(dltc_type_name(DLTC_T_BIGINT), "bigint") == 0);
  CHECK(dltc_type_name(0) == NULL && dltc_type_name(99) == NULL);
}

/* A table of 4 columns: two in the batch, two added later (exported as all-null). */
static char *names[] = {"t", "i", "later_s", "later_b"};
static int types[] = {DLTC_T_TEXT, DLTC_T_BIGINT, DLTC_T_JSON, DLTC_T_BOOL};

static int make_batch(int64_t rows, struct dltc_batch **out, struct dltc_error *err) {
  struct dltc_col cols[2];
  memset(cols, 0, sizeof cols);
  int rc;
  if ((rc = dltc_col_init(&cols[0], "t", 1, DLTC_T_TEXT, err)))
    goto out;
  if ((rc = dltc_col_init(&cols[1], "i", 1, DLTC_T_BIGINT, err)))
    goto out;
  for (int64_t r = 0; r < rows; r++) {
    if ((rc = (r == 1 ? dltc_col_append_null(&cols[0], err)
                      : dltc_col_append_str(&cols[0], "hello", 5, err))))
      goto out;
    if ((rc = dltc_col_append_i64(&cols[1], r, err)))
      goto out;
  }
  rc = dltc_batch_new(cols, 2, rows, out, err);
  /* the builders are empty again, with a capacity hint */
  if (!rc && (cols[0].length != 0 || cols[1].values.data != NULL))
    rc = DLTC_EINVAL;
out:
  dltc_col_reset(&cols[0]);
  dltc_col_reset(&cols[1]);
  return rc;
}

static void test_stream(void) {
  struct dltc_error err;
  struct dltc_batch **bs = malloc(2 * sizeof *bs);
  CHECK(make_batch(3, &bs[0], &err) == 0);
  CHECK(make_batch(70, &bs[1], &err) == 0);
  CHECK(dltc_batch_rows(bs[1]) == 70);
  struct ArrowArrayStream st;
  /* the stream owns the batches array: allocate it with dltc__malloc's partner */
  struct dltc_batch **owned = dltc__malloc(2 * sizeof *owned);
  memcpy(owned, bs, 2 * sizeof *bs);
  free(bs);
  CHECK(dltc_stream_new(owned, 2, names, types, 4, &st, &err) == 0);
  struct ArrowSchema sc;
  CHECK(st.get_schema(&st, &sc) == 0);
  CHECK(strcmp(sc.format, "+s") == 0 && sc.n_children == 4);
  CHECK(strcmp(sc.children[0]->format, "u") == 0 && strcmp(sc.children[1]->format, "l") == 0);
  CHECK(strcmp(sc.children[2]->format, "u") == 0 && strcmp(sc.children[3]->format, "b") == 0);
  CHECK(strcmp(sc.children[2]->name, "later_s") == 0);
  CHECK(sc.children[0]->flags & ARROW_FLAG_NULLABLE);
  /* move a child schema out and release the parent first */
  struct ArrowSchema moved = *sc.children[1];
  sc.children[1]->release = NULL;
  sc.release(&sc);
  CHECK(sc.release == NULL);
  CHECK(strcmp(moved.name, "i") == 0);
  moved.release(&moved);

  struct ArrowArray a;
  CHECK(st.get_next(&st, &a) == 0);
  CHECK(a.release && a.length == 3 && a.n_children == 4 && a.n_buffers == 1);
  const struct ArrowArray *t = a.children[0];
  CHECK(t->n_buffers == 3 && t->null_count == 1 && t->length == 3);
  for (int i = 0; i < 3; i++)
    CHECK(ALIGNED(t->buffers[i]));
  const int32_t *off = t->buffers[1];
  CHECK(off[0] == 0 && off[1] == 5 && off[2] == 5 && off[3] == 10);
  CHECK(memcmp(t->buffers[2], "hellohello", 10) == 0);
  const struct ArrowArray *later = a.children[2];
  CHECK(later->null_count == 3 && later->length == 3 && later->n_buffers == 3);
  const int32_t *loff = later->buffers[1];
  CHECK(loff[0] == 0 && loff[3] == 0 && !bit(later->buffers[0], 2));
  /* move a child array out, release the parent, then the child */
  struct ArrowArray child = *a.children[1];
  a.children[1]->release = NULL;
  a.release(&a);
  CHECK(a.release == NULL);
  const int64_t *iv = child.buffers[1];
  CHECK(iv[2] == 2 && child.length == 3);
  child.release(&child);
  /* release the stream with one batch never taken */
  st.release(&st);
  CHECK(st.release == NULL);

  /* a stream read to the end returns released arrays */
  struct dltc_batch **one = dltc__malloc(sizeof *one);
  CHECK(make_batch(1, &one[0], &err) == 0);
  CHECK(dltc_stream_new(one, 1, names, types, 2, &st, &err) == 0);
  CHECK(st.get_next(&st, &a) == 0 && a.release && a.length == 1 && a.n_children == 2);
  a.release(&a);
  CHECK(st.get_next(&st, &a) == 0 && a.release == NULL);
  CHECK(st.get_next(&st, &a) == 0 && a.release == NULL);
  CHECK(st.get_last_error(&st) == NULL);
  st.release(&st);

  /* an empty stream (no batches) still has a schema */
  CHECK(dltc_stream_new(dltc__malloc(1), 0, names, types, 4, &st, &err) == 0);
  CHECK(st.get_schema(&st, &sc) == 0 && sc.n_children == 4);
  sc.release(&sc);
  CHECK(st.get_next(&st, &a) == 0 && a.release == NULL);
  st.release(&st);
}

static int64_t drain(struct ArrowArrayStream *st, struct ArrowArray *keep) {
  int64_t rows = 0;
  for (;;) {
    struct ArrowArray a;
    if (st->get_next(st, &a) || !a.release)
      break;
    rows += a.length;
    if (keep && !keep->release)
      *keep = a; /* keep the first batch alive past the streams */
    else
      a.release(&a);
  }
  return rows;
}

/* Clones share the batches: each yields all rows, in any release order. */
static void test_clone(void) {
  struct dltc_error err;
  struct dltc_batch **bs = dltc__malloc(2 * sizeof *bs);
  CHECK(make_batch(3, &bs[0], &err) == 0);
  CHECK(make_batch(5, &bs[1], &err) == 0);
  struct ArrowArrayStream st, c1, c2, c3;
  CHECK(dltc_stream_new(bs, 2, names, types, 4, &st, &err) == 0);
  CHECK(dltc_stream_clone(&st, &c1, &err) == 0);
  CHECK(dltc_stream_clone(&st, &c2, &err) == 0);
  struct ArrowSchema sc;
  CHECK(c1.get_schema(&c1, &sc) == 0 && sc.n_children == 4);
  sc.release(&sc);
  st.release(&st);
  CHECK(dltc_stream_clone(&st, &c3, &err) == DLTC_EINVAL && c3.release == NULL);
  struct ArrowArray kept;
  memset(&kept, 0, sizeof kept);
  CHECK(drain(&c1, &kept) == 8);
  c1.release(&c1);
  CHECK(dltc_stream_clone(&c2, &c3, &err) == 0);
  CHECK(drain(&c2, NULL) == 8);
  c2.release(&c2);
  CHECK(drain(&c3, NULL) == 8);
  c3.release(&c3);
  /* the kept batch outlives every stream */
  CHECK(kept.release && kept.length == 3);
  if (kept.release) {
    CHECK(memcmp(kept.children[0]->buffers[2], "hello", 5) == 0);
    const int64_t *iv = kept.children[1]->buffers[1];
    CHECK(iv[2] == 2);
    kept.release(&kept);
  }
}

/* Every allocation of build + export fails in turn: clean errors, nothing leaks. */
static int oom_run(void) {
  struct dltc_error err;
  struct dltc_batch **bs = dltc__malloc(2 * sizeof *bs);
  if (!bs)
    return 1;
  if (make_batch(5, &bs[0], &err)) {
    CHECK(err.code == DLTC_ENOMEM);
    dltc__free(bs);
    return 1;
  }
  if (make_batch(40000, &bs[1], &err)) {
    CHECK(err.code == DLTC_ENOMEM);
    dltc_batch_free(bs[0]);
    dltc__free(bs);
    return 1;
  }
  struct ArrowArrayStream st;
  if (dltc_stream_new(bs, 2, names, types, 4, &st, &err)) {
    CHECK(err.code == DLTC_ENOMEM && st.release == NULL);
    return 1; /* the stream freed the batches */
  }
  int failed = 0;
  struct ArrowSchema sc;
  if (st.get_schema(&st, &sc) == 0)
    sc.release(&sc);
  else {
    failed = 1;
    CHECK(st.get_last_error(&st) != NULL);
  }
  int64_t rows = 0;
  for (int i = 0; i < 3; i++) {
    struct ArrowArray a;
    if (st.get_next(&st, &a)) {
      failed = 1;
      CHECK(st.get_last_error(&st) != NULL);
      continue;
    }
    if (!a.release)
      break;
    rows += a.length;
    a.release(&a);
  }
  st.release(&st);
  if (!failed)
    CHECK(rows == 40005);
  return failed;
}

static void test_oom(void) {
  dltc__alloc_fail_at(0);
  CHECK(oom_run() == 0);
  int done = 0;
  long n;
  for (n = 1; n < 10000 && !done; n++) {
    dltc__alloc_fail_at(n);
    int failed = oom_run();
    if (dltc__alloc_count() < n) {
      CHECK(!failed);
      done = 1;
    }
  }
  dltc__alloc_fail_at(0);
  CHECK(done && n > 20);
}

int main(void) {
  test_types();
  test_builders();
  test_stream();
  test_clone();
  test_oom();
  if (failures) {
    fprintf(stderr, "%d failure(s)\n", failures);
    return 1;
  }
  printf("test_arrow: ok\n");
  return 0;
}
