/* Column builders (64-byte-aligned buffers) and their export through the Arrow C
 * Data / C Stream interfaces. Every exported child array and schema owns its own
 * memory and has its own release callback, so a consumer may move children out
 * and release them in any order. All allocation goes through dltc__malloc & co. */
#include "arrow.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

/* ---- allocation hooks --------------------------------------------------------- */

static long alloc_fail_at; /* 0: never fail */
static long alloc_count;

static int alloc_should_fail(void) {
  if (alloc_fail_at <= 0)
    return 0;
  return ++alloc_count == alloc_fail_at;
}

void dltc__alloc_fail_at(long n) {
  alloc_fail_at = n;
  alloc_count = 0;
}

long dltc__alloc_count(void) { return alloc_count; }

void *dltc__malloc(size_t n) {
  if (alloc_should_fail())
    return NULL;
  return malloc(n ? n : 1);
}

void *dltc__calloc(size_t n, size_t size) {
  if (alloc_should_fail())
    return NULL;
  return calloc(n ? n : 1, size ? size : 1);
}

void *dltc__realloc(void *p, size_t n) {
  if (alloc_should_fail())
    return NULL;
  return realloc(p, n ? n : 1);
}

void dltc__free(void *p) { free(p); }

char *dltc__strndup(const char *s, size_t n) {
  char *r = dltc__malloc(n + 1);
  if (!r)
    return NULL;
  memcpy(r, s, n);
  r[n] = '\0';
  return r;
}

static void *aligned_alloc64(size_t n) {
  if (alloc_should_fail())
    return NULL;
  void *p = NULL;
  if (posix_memalign(&p, 64, n ? n : 64) != 0)
    return NULL;
  return p;
}

/* ---- types -------------------------------------------------------------------- */

static const char *const type_names[DLTC_T__COUNT] = {
    NULL, "text", "bigint", "double", "bool", "timestamp", "date", "json",
};

const char *dltc_type_name(int type) {
  if (type <= 0 || type >= DLTC_T__COUNT)
    return NULL;
  return type_names[type];
}

int dltc_type_from_name(const char *name, size_t n) {
  for (int t = 1; t < DLTC_T__COUNT; t++)
    if (strlen(type_names[t]) == n && memcmp(type_names[t], name, n) == 0)
      return t;
  return DLTC_T_NONE;
}

static const char *type_format(int type) {
  switch (type) {
  case DLTC_T_TEXT:
  case DLTC_T_JSON: return "u";
  case DLTC_T_BIGINT: return "l";
  case DLTC_T_DOUBLE: return "g";
  case DLTC_T_BOOL: return "b";
  case DLTC_T_TIMESTAMP: return "tsu:UTC";
  case DLTC_T_DATE: return "tdD";
  }
  return "n";
}

/* Bytes per value in `values` (0 for bit-packed bool). */
static size_t type_width(int type) {
  switch (type) {
  case DLTC_T_TEXT:
  case DLTC_T_JSON:
  case DLTC_T_DATE: return 4;
  case DLTC_T_BIGINT:
  case DLTC_T_DOUBLE:
  case DLTC_T_TIMESTAMP: return 8;
  }
  return 0;
}

static int is_string_type(int type) { return type == DLTC_T_TEXT || type == DLTC_T_JSON; }

/* ---- buffers ------------------------------------------------------------------ */

/* Buffers of BIG_BUF bytes or more are mapped pages (64-byte aligned for free) and
 * grow with mremap: no copy and no re-faulting of pages already written. Smaller
 * ones come from posix_memalign. A buffer's capacity says which kind it is. */
#define BUF_MAX ((size_t)1 << 40)
#define BIG_BUF ((size_t)256 << 10)

static uint8_t *buf_alloc(size_t cap) {
  if (cap < BIG_BUF)
    return aligned_alloc64(cap);
  if (alloc_should_fail())
    return NULL;
  void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
  madvise(p, cap, MADV_HUGEPAGE);
  return p;
}

static void buf_release(uint8_t *p, size_t cap) {
  if (!p)
    return;
  if (cap < BIG_BUF)
    dltc__free(p);
  else
    munmap(p, cap);
}

int dltc__buf_reserve(struct dltc_buf *b, size_t extra, struct dltc_error *err) {
  if (b->cap - b->len >= extra && b->data)
    return 0;
  if (extra > BUF_MAX - b->len)
    return dltc_error_set(err, DLTC_ELIMIT, "buffer would exceed %zu bytes", (size_t)BUF_MAX);
  size_t need = b->len + extra;
  size_t cap = b->cap ? b->cap : (b->hint > 64 ? b->hint : 64);
  while (cap < need)
    cap *= 2;
  cap = (cap + 63) & ~(size_t)63;
  if (cap >= BIG_BUF)
    cap = (cap + 4095) & ~(size_t)4095;
  uint8_t *p;
  if (b->data && b->cap >= BIG_BUF) {
    if (alloc_should_fail())
      p = NULL;
    else {
      void *q = mremap(b->data, b->cap, cap, MREMAP_MAYMOVE);
      p = q == MAP_FAILED ? NULL : q;
      if (p)
        madvise(p, cap, MADV_HUGEPAGE);
    }
    if (!p)
      return dltc_error_set(err, DLTC_ENOMEM, "out of memory (buffer of %zu bytes)", cap);
  } else {
    p = buf_alloc(cap);
    if (!p)
      return dltc_error_set(err, DLTC_ENOMEM, "out of memory (buffer of %zu bytes)", cap);
    if (b->len && b->data)
      memcpy(p, b->data, b->len);
    buf_release(b->data, b->cap);
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

void dltc__buf_free(struct dltc_buf *b) {
  buf_release(b->data, b->cap);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* ---- column builders ------------------------------------------------------------ */

int dltc_col_init(struct dltc_col *col, const char *name, size_t name_len, int type,
                  struct dltc_error *err) {
  memset(col, 0, sizeof *col);
  if (type <= DLTC_T_NONE || type >= DLTC_T__COUNT)
    return dltc_error_set(err, DLTC_EINVAL, "bad column type %d", type);
  col->name = dltc__strndup(name, name_len);
  if (!col->name)
    return dltc_error_set(err, DLTC_ENOMEM, "out of memory (column name)");
  col->type = type;
  return 0;
}

void dltc_col_reset(struct dltc_col *col) {
  dltc__free(col->name);
  dltc__buf_free(&col->validity);
  dltc__buf_free(&col->values);
  dltc__buf_free(&col->data);
  memset(col, 0, sizeof *col);
}

/* Make room for one more validity bit (and bool bit) and the value. */
static inline int col_grow(struct dltc_col *col, struct dltc_error *err) {
  int64_t i = col->length;
  if ((i & 7) == 0) {
    if (col->validity.cap == col->validity.len && dltc__buf_reserve(&col->validity, 1, err))
      return err ? err->code : DLTC_ENOMEM;
    if (col->type == DLTC_T_BOOL) {
      if (col->values.cap == col->values.len && dltc__buf_reserve(&col->values, 1, err))
        return err ? err->code : DLTC_ENOMEM;
      col->values.data[col->values.len++] = 0;
    }
    col->validity.data[col->validity.len++] = 0;
  }
  size_t w = type_width(col->type);
  if (w) {
    size_t extra = w;
    if (is_string_type(col->type) && col->values.len == 0)
      extra = 8; /* the leading 0 offset as well */
    if (col->values.cap - col->values.len < extra && dltc__buf_reserve(&col->values, extra, err))
      return err ? err->code : DLTC_ENOMEM;
    if (is_string_type(col->type) && col->values.len == 0) {
      int32_t z = 0;
      memcpy(col->values.data, &z, 4);
      col->values.len = 4;
    }
  }
  return 0;
}

static inline void set_valid(struct dltc_col *col) {
  int64_t i = col->length;
  col->validity.data[i >> 3] |= (uint8_t)(1u << (i & 7));
}

int dltc_col_append_null(struct dltc_col *col, struct dltc_error *err) {
  int rc = col_grow(col, err);
  if (rc)
    return rc;
  size_t w = type_width(col->type);
  if (is_string_type(col->type)) {
    int32_t off;
    memcpy(&off, col->values.data + col->values.len - 4, 4);
    memcpy(col->values.data + col->values.len, &off, 4);
    col->values.len += 4;
  } else if (w) {
    memset(col->values.data + col->values.len, 0, w);
    col->values.len += w;
  }
  col->length++;
  col->null_count++;
  return 0;
}

int dltc_col_append_nulls(struct dltc_col *col, int64_t n, struct dltc_error *err) {
  for (int64_t i = 0; i < n; i++) {
    int rc = dltc_col_append_null(col, err);
    if (rc)
      return rc;
  }
  return 0;
}

/* One fixed-width value (width is a constant at each call, so memcpy inlines). */
static inline int append_fixed(struct dltc_col *col, const void *v, size_t width,
                               struct dltc_error *err) {
  int rc = col_grow(col, err);
  if (rc)
    return rc;
  memcpy(col->values.data + col->values.len, v, width);
  col->values.len += width;
  set_valid(col);
  col->length++;
  return 0;
}

int dltc_col_append_i64(struct dltc_col *col, int64_t v, struct dltc_error *err) {
  return append_fixed(col, &v, sizeof v, err);
}

int dltc_col_append_i32(struct dltc_col *col, int32_t v, struct dltc_error *err) {
  return append_fixed(col, &v, sizeof v, err);
}

int dltc_col_append_f64(struct dltc_col *col, double v, struct dltc_error *err) {
  return append_fixed(col, &v, sizeof v, err);
}

int dltc_col_append_bool(struct dltc_col *col, int v, struct dltc_error *err) {
  int rc = col_grow(col, err);
  if (rc)
    return rc;
  int64_t i = col->length;
  if (v)
    col->values.data[i >> 3] |= (uint8_t)(1u << (i & 7));
  set_valid(col);
  col->length++;
  return 0;
}

#define STR_DATA_MAX ((size_t)INT32_MAX)

char *dltc_col_reserve_str(struct dltc_col *col, size_t n, struct dltc_error *err) {
  if (n > STR_DATA_MAX - col->data.len) {
    dltc_error_set(err, DLTC_ELIMIT, "string data of column over 2 GiB in one batch");
    return NULL;
  }
  if (col->data.cap - col->data.len < n + 1 || !col->data.data)
    if (dltc__buf_reserve(&col->data, n + 1, err))
      return NULL;
  return (char *)col->data.data + col->data.len;
}

int dltc_col_commit_str(struct dltc_col *col, size_t n, struct dltc_error *err) {
  int rc = col_grow(col, err);
  if (rc)
    return rc;
  col->data.len += n;
  int32_t off = (int32_t)col->data.len;
  memcpy(col->values.data + col->values.len, &off, 4);
  col->values.len += 4;
  set_valid(col);
  col->length++;
  return 0;
}

int dltc_col_append_str(struct dltc_col *col, const char *s, size_t n, struct dltc_error *err) {
  char *dst = dltc_col_reserve_str(col, n, err);
  if (!dst)
    return err ? err->code : DLTC_ENOMEM;
  if (n)
    memcpy(dst, s, n);
  return dltc_col_commit_str(col, n, err);
}

void dltc_col_truncate(struct dltc_col *col, int64_t length) {
  if (length >= col->length)
    return;
  /* recount nulls of the dropped tail */
  for (int64_t i = length; i < col->length; i++)
    if (!(col->validity.data[i >> 3] & (1u << (i & 7))))
      col->null_count--;
  size_t vbytes = (size_t)((length + 7) >> 3);
  col->validity.len = vbytes;
  if (length & 7)
    col->validity.data[length >> 3] &= (uint8_t)((1u << (length & 7)) - 1);
  if (col->type == DLTC_T_BOOL) {
    col->values.len = vbytes;
    if (length & 7)
      col->values.data[length >> 3] &= (uint8_t)((1u << (length & 7)) - 1);
  } else if (is_string_type(col->type)) {
    if (col->values.len) {
      int32_t off;
      memcpy(&off, col->values.data + 4 * (size_t)length, 4);
      col->data.len = (size_t)off;
      col->values.len = 4 * ((size_t)length + 1);
    }
  } else {
    col->values.len = type_width(col->type) * (size_t)length;
  }
  col->length = length;
}

/* ---- batches -------------------------------------------------------------------- */

/* A batch is immutable once made and reference counted: each exported child array
 * holds a reference, so streams can share it and consumers release in any order,
 * from any thread. */
struct dltc_batch {
  int64_t nrows;
  size_t ncols;
  struct dltc_col *cols; /* moved builders; names owned */
  long refs;             /* atomic */
};

/* Stands in for buffers a column never allocated (only when it has 0 rows): a
 * 0 offset, no valid bits. */
static const uint8_t zero64[64] __attribute__((aligned(64)));

static void batch_ref(struct dltc_batch *b) { __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED); }

int dltc_batch_new(struct dltc_col *cols, size_t ncols, int64_t nrows, struct dltc_batch **out,
                   struct dltc_error *err) {
  int rc = 0;
  struct dltc_batch *b = dltc__calloc(1, sizeof *b);
  if (!b) {
    rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (batch)");
    goto out;
  }
  b->nrows = nrows;
  b->ncols = ncols;
  b->refs = 1;
  b->cols = dltc__calloc(ncols ? ncols : 1, sizeof *b->cols);
  if (!b->cols) {
    rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (batch)");
    goto out;
  }
  for (size_t i = 0; i < ncols; i++) {
    b->cols[i].name = dltc__strndup(cols[i].name, strlen(cols[i].name));
    if (!b->cols[i].name) {
      rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (batch)");
      goto out;
    }
  }
  /* nothing can fail from here: move the buffers */
  for (size_t i = 0; i < ncols; i++) {
    struct dltc_col *d = &b->cols[i], *s = &cols[i];
    d->type = s->type;
    d->length = s->length;
    d->null_count = s->null_count;
    d->validity = s->validity;
    d->values = s->values;
    d->data = s->data;
    memset(&s->validity, 0, sizeof s->validity);
    memset(&s->values, 0, sizeof s->values);
    memset(&s->data, 0, sizeof s->data);
    s->validity.hint = d->validity.cap;
    s->values.hint = d->values.cap;
    s->data.hint = d->data.cap;
    s->length = s->null_count = 0;
  }
  *out = b;
  b = NULL;
out:
  dltc_batch_free(b);
  return rc;
}

void dltc_batch_free(struct dltc_batch *b) {
  if (!b || __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) > 0)
    return;
  if (b->cols)
    for (size_t i = 0; i < b->ncols; i++)
      dltc_col_reset(&b->cols[i]);
  dltc__free(b->cols);
  dltc__free(b);
}

int64_t dltc_batch_rows(const struct dltc_batch *b) { return b->nrows; }

/* ---- export: arrays --------------------------------------------------------------- */

/* A child array's private data: a reference to the batch whose column it shows, or
 * (a column the batch lacks) its own all-null buffers; and the pointer table. */
struct child_priv {
  struct dltc_batch *batch;
  uint8_t *bufs[3];
  size_t caps[3];
  const void *ptrs[3];
};

static void child_release(struct ArrowArray *a) {
  if (!a->release)
    return;
  struct child_priv *p = a->private_data;
  for (int i = 0; i < 3; i++)
    buf_release(p->bufs[i], p->caps[i]);
  dltc_batch_free(p->batch);
  dltc__free(p);
  a->release = NULL;
}

struct struct_priv {
  struct ArrowArray *child_structs; /* n entries */
  struct ArrowArray **children;
  size_t n;
  const void *ptrs[1];
};

static void struct_release(struct ArrowArray *a) {
  if (!a->release)
    return;
  struct struct_priv *p = a->private_data;
  for (size_t i = 0; i < p->n; i++)
    if (p->child_structs[i].release)
      p->child_structs[i].release(&p->child_structs[i]);
  dltc__free(p->child_structs);
  dltc__free(p->children);
  dltc__free(p);
  a->release = NULL;
}

/* Fill child a from column c of batch b (sharing its buffers, one more reference to
 * b), or as all-null of `type` when c is NULL. */
static int child_fill(struct ArrowArray *a, struct dltc_batch *b, const struct dltc_col *c,
                      int type, int64_t nrows, struct dltc_error *err) {
  struct child_priv *p = dltc__calloc(1, sizeof *p);
  if (!p)
    return dltc_error_set(err, DLTC_ENOMEM, "out of memory (export)");
  int nb = is_string_type(type) ? 3 : 2;
  int rc = 0;
  if (c) {
    const struct dltc_buf *bufs[3] = {&c->validity, &c->values, &c->data};
    for (int i = 0; i < nb; i++)
      p->ptrs[i] = bufs[i]->data ? bufs[i]->data : zero64;
    p->batch = b;
    batch_ref(b);
    a->null_count = c->null_count;
  } else {
    size_t vbytes = (size_t)((nrows + 7) >> 3);
    size_t w = type_width(type);
    size_t valbytes = w ? w * (size_t)(nrows + (is_string_type(type) ? 1 : 0)) : vbytes;
    p->caps[0] = (vbytes + 63) & ~(size_t)63;
    p->caps[1] = (valbytes + 63) & ~(size_t)63;
    p->caps[2] = 64;
    if (p->caps[0] >= BIG_BUF)
      p->caps[0] = (p->caps[0] + 4095) & ~(size_t)4095;
    if (p->caps[1] >= BIG_BUF)
      p->caps[1] = (p->caps[1] + 4095) & ~(size_t)4095;
    p->bufs[0] = buf_alloc(p->caps[0]);
    p->bufs[1] = buf_alloc(p->caps[1]);
    if (nb == 3)
      p->bufs[2] = buf_alloc(64);
    if (p->bufs[0])
      memset(p->bufs[0], 0, vbytes ? vbytes : 1);
    if (p->bufs[1])
      memset(p->bufs[1], 0, valbytes ? valbytes : 1);
    a->null_count = nrows;
    for (int i = 0; i < nb; i++)
      if (!p->bufs[i]) {
        rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (export)");
        goto fail;
      }
    for (int i = 0; i < nb; i++)
      p->ptrs[i] = p->bufs[i];
  }
  a->length = nrows;
  a->offset = 0;
  a->n_buffers = nb;
  a->n_children = 0;
  a->buffers = p->ptrs;
  a->children = NULL;
  a->dictionary = NULL;
  a->private_data = p;
  a->release = child_release;
  return 0;
fail:
  for (int i = 0; i < 3; i++)
    buf_release(p->bufs[i], p->caps[i]);
  dltc__free(p);
  return rc;
}

int dltc_batch_export(struct dltc_batch *b, char *const *names, const int *types, size_t n,
                      struct ArrowArray *out, struct dltc_error *err) {
  out->release = NULL;
  int rc = 0;
  struct ArrowArray tmp;
  memset(&tmp, 0, sizeof tmp);
  out->release = NULL;
  struct struct_priv *p = dltc__calloc(1, sizeof *p);
  if (!p) {
    rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (export)");
    goto out;
  }
  p->n = n;
  p->child_structs = dltc__calloc(n ? n : 1, sizeof *p->child_structs);
  /* an array of pointers */
  p->children = dltc__calloc(n ? n : 1, sizeof *p->children); // NOLINT(bugprone-sizeof-expression)
  if (!p->child_structs || !p->children) {
    rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (export)");
    goto out;
  }
  tmp.length = b->nrows;
  tmp.n_buffers = 1;
  tmp.n_children = (int64_t)n;
  p->ptrs[0] = NULL;
  tmp.buffers = p->ptrs;
  tmp.children = p->children;
  tmp.private_data = p;
  tmp.release = struct_release;
  p = NULL; /* owned by tmp now */
  struct struct_priv *tp = tmp.private_data;
  for (size_t i = 0; i < n; i++) {
    tp->children[i] = &tp->child_structs[i];
    const struct dltc_col *c = NULL;
    /* columns are append-only: batch column i, if present, is table column i */
    if (i < b->ncols && strcmp(b->cols[i].name, names[i]) == 0 && b->cols[i].type == types[i])
      c = &b->cols[i];
    if ((rc = child_fill(&tp->child_structs[i], b, c, types[i], b->nrows, err)))
      goto out;
  }
  *out = tmp;
  tmp.release = NULL;
out:
  if (p) {
    dltc__free(p->child_structs);
    dltc__free(p->children);
    dltc__free(p);
  }
  if (tmp.release)
    tmp.release(&tmp);
  return rc;
}

/* ---- export: schemas -------------------------------------------------------------- */

static void schema_child_release(struct ArrowSchema *s) {
  if (!s->release)
    return;
  dltc__free((void *)s->name);
  s->release = NULL;
}

struct schema_priv {
  struct ArrowSchema *child_structs;
  struct ArrowSchema **children;
  size_t n;
};

static void schema_release(struct ArrowSchema *s) {
  if (!s->release)
    return;
  struct schema_priv *p = s->private_data;
  for (size_t i = 0; i < p->n; i++)
    if (p->child_structs[i].release)
      p->child_structs[i].release(&p->child_structs[i]);
  dltc__free(p->child_structs);
  dltc__free(p->children);
  dltc__free(p);
  s->release = NULL;
}

int dltc_schema_export(char *const *names, const int *types, size_t n, struct ArrowSchema *out,
                       struct dltc_error *err) {
  int rc = 0;
  struct ArrowSchema tmp;
  memset(&tmp, 0, sizeof tmp);
  out->release = NULL;
  struct schema_priv *p = dltc__calloc(1, sizeof *p);
  if (!p) {
    rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (schema)");
    goto out;
  }
  p->child_structs = dltc__calloc(n ? n : 1, sizeof *p->child_structs);
  /* an array of pointers */
  p->children = dltc__calloc(n ? n : 1, sizeof *p->children); // NOLINT(bugprone-sizeof-expression)
  if (!p->child_structs || !p->children) {
    dltc__free(p->child_structs);
    dltc__free(p->children);
    dltc__free(p);
    rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (schema)");
    goto out;
  }
  p->n = n;
  tmp.format = "+s";
  tmp.name = "";
  tmp.n_children = (int64_t)n;
  tmp.children = p->children;
  tmp.private_data = p;
  tmp.release = schema_release;
  for (size_t i = 0; i < n; i++) {
    struct ArrowSchema *c = &p->child_structs[i];
    p->children[i] = c;
    char *name = dltc__strndup(names[i], strlen(names[i]));
    if (!name) {
      rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (schema)");
      goto out;
    }
    c->format = type_format(types[i]);
    c->name = name;
    c->metadata = NULL;
    c->flags = ARROW_FLAG_NULLABLE;
    c->n_children = 0;
    c->children = NULL;
    c->dictionary = NULL;
    c->private_data = NULL;
    c->release = schema_child_release;
  }
  *out = tmp;
  tmp.release = NULL;
out:
  if (tmp.release)
    tmp.release(&tmp);
  return rc;
}

/* ---- export: streams --------------------------------------------------------------- */

struct stream_priv {
  struct dltc_batch **batches;
  size_t nb, next;
  char **names;
  int *types;
  size_t n;
  char last_error[DLTC_ERROR_MSG_SIZE];
};

static void stream_priv_free(struct stream_priv *p) {
  if (!p)
    return;
  if (p->batches)
    for (size_t i = 0; i < p->nb; i++)
      dltc_batch_free(p->batches[i]);
  dltc__free(p->batches);
  if (p->names)
    for (size_t i = 0; i < p->n; i++)
      dltc__free(p->names[i]);
  dltc__free(p->names);
  dltc__free(p->types);
  dltc__free(p);
}

static int code_to_errno(int code) {
  switch (code) {
  case DLTC_ENOMEM: return ENOMEM;
  case DLTC_EINVAL: return EINVAL;
  }
  return EIO;
}

static int stream_get_schema(struct ArrowArrayStream *s, struct ArrowSchema *out) {
  struct stream_priv *p = s->private_data;
  struct dltc_error err;
  dltc_error_reset(&err);
  int rc = dltc_schema_export(p->names, p->types, p->n, out, &err);
  if (rc) {
    memcpy(p->last_error, err.msg, sizeof p->last_error);
    return code_to_errno(rc);
  }
  return 0;
}

static int stream_get_next(struct ArrowArrayStream *s, struct ArrowArray *out) {
  struct stream_priv *p = s->private_data;
  if (p->next >= p->nb) {
    memset(out, 0, sizeof *out);
    out->release = NULL; /* end of stream */
    return 0;
  }
  struct dltc_batch *b = p->batches[p->next];
  p->batches[p->next++] = NULL;
  struct dltc_error err;
  dltc_error_reset(&err);
  int rc = dltc_batch_export(b, p->names, p->types, p->n, out, &err);
  dltc_batch_free(b); /* the exported array holds its own references */
  if (rc) {
    memcpy(p->last_error, err.msg, sizeof p->last_error);
    return code_to_errno(rc);
  }
  return 0;
}

static const char *stream_last_error(struct ArrowArrayStream *s) {
  struct stream_priv *p = s->private_data;
  return p->last_error[0] ? p->last_error : NULL;
}

static void stream_release(struct ArrowArrayStream *s) {
  if (!s->release)
    return;
  stream_priv_free(s->private_data);
  s->private_data = NULL;
  s->release = NULL;
}

int dltc_stream_new(struct dltc_batch **batches, size_t nb, char *const *names, const int *types,
                    size_t n, struct ArrowArrayStream *out, struct dltc_error *err) {
  int rc = 0;
  out->release = NULL;
  struct stream_priv *p = dltc__calloc(1, sizeof *p);
  if (!p) {
    for (size_t i = 0; i < nb; i++)
      dltc_batch_free(batches[i]);
    dltc__free(batches);
    return dltc_error_set(err, DLTC_ENOMEM, "out of memory (stream)");
  }
  p->batches = batches;
  p->nb = nb;
  p->names = dltc__calloc(n ? n : 1, sizeof *p->names);
  p->types = dltc__calloc(n ? n : 1, sizeof *p->types);
  if (!p->names || !p->types) {
    rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (stream)");
    goto out;
  }
  p->n = n;
  for (size_t i = 0; i < n; i++) {
    p->types[i] = types[i];
    if (!(p->names[i] = dltc__strndup(names[i], strlen(names[i])))) {
      rc = dltc_error_set(err, DLTC_ENOMEM, "out of memory (stream)");
      goto out;
    }
  }
  out->get_schema = stream_get_schema;
  out->get_next = stream_get_next;
  out->get_last_error = stream_last_error;
  out->private_data = p;
  out->release = stream_release;
  p = NULL;
out:
  stream_priv_free(p);
  return rc;
}

int dltc_stream_clone(struct ArrowArrayStream *src, struct ArrowArrayStream *out,
                      struct dltc_error *err) {
  out->release = NULL;
  if (!src->release || src->get_next != stream_get_next)
    return dltc_error_set(err, DLTC_EINVAL, "not a live dltc stream");
  const struct stream_priv *sp = src->private_data;
  size_t nb = sp->nb - sp->next;
  struct dltc_batch **bs =
      dltc__calloc(nb ? nb : 1, sizeof *bs); // NOLINT(bugprone-sizeof-expression)
  if (!bs)
    return dltc_error_set(err, DLTC_ENOMEM, "out of memory (stream)");
  for (size_t i = 0; i < nb; i++) {
    bs[i] = sp->batches[sp->next + i];
    batch_ref(bs[i]);
  }
  /* dltc_stream_new takes the references, also on failure */
  return dltc_stream_new(bs, nb, sp->names, sp->types, sp->n, out, err);
}
