/* Arrow column builders with 64-byte-aligned buffers, and their export through the
 * Arrow C Data Interface and C Stream Interface. The ABI structs below are written
 * from the Arrow specification (format/CDataInterface, CStreamInterface); the usual
 * guard macros let this header coexist with any other definition of them. */
#ifndef DLTC_ARROW_H
#define DLTC_ARROW_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "error.h"

/* ---- Arrow C Data Interface (ABI-stable, from the spec) ---------------------- */
#ifndef ARROW_C_DATA_INTERFACE
#define ARROW_C_DATA_INTERFACE

#define ARROW_FLAG_DICTIONARY_ORDERED 1
#define ARROW_FLAG_NULLABLE 2
#define ARROW_FLAG_MAP_KEYS_SORTED 4

struct ArrowSchema {
  const char *format;
  const char *name;
  const char *metadata;
  int64_t flags;
  int64_t n_children;
  struct ArrowSchema **children;
  struct ArrowSchema *dictionary;
  void (*release)(struct ArrowSchema *);
  void *private_data;
};

struct ArrowArray {
  int64_t length;
  int64_t null_count;
  int64_t offset;
  int64_t n_buffers;
  int64_t n_children;
  const void **buffers;
  struct ArrowArray **children;
  struct ArrowArray *dictionary;
  void (*release)(struct ArrowArray *);
  void *private_data;
};
#endif /* ARROW_C_DATA_INTERFACE */

#ifndef ARROW_C_STREAM_INTERFACE
#define ARROW_C_STREAM_INTERFACE
struct ArrowArrayStream {
  int (*get_schema)(struct ArrowArrayStream *, struct ArrowSchema *out);
  int (*get_next)(struct ArrowArrayStream *, struct ArrowArray *out);
  const char *(*get_last_error)(struct ArrowArrayStream *);
  void (*release)(struct ArrowArrayStream *);
  void *private_data;
};
#endif /* ARROW_C_STREAM_INTERFACE */

/* ---- allocation (every allocation of the decoder goes through these) --------- */

/* malloc/realloc/free of the decoder and the builders. Tests make the n-th call
 * fail with dltc__alloc_fail_at(n) (1-based; 0 turns failing off). */
void *dltc__malloc(size_t n);
void *dltc__calloc(size_t n, size_t size);
void *dltc__realloc(void *p, size_t n);
void dltc__free(void *p);
char *dltc__strndup(const char *s, size_t n);
void dltc__alloc_fail_at(long n);
long dltc__alloc_count(void); /* allocations attempted since the last dltc__alloc_fail_at */

/* ---- column types -------------------------------------------------------------- */

/* dlt data types as the decoder stores them. Values are stable (used in tables). */
enum dltc_type {
  DLTC_T_NONE = 0,      /* no type yet (only nulls seen) */
  DLTC_T_TEXT = 1,      /* utf8 */
  DLTC_T_BIGINT = 2,    /* int64 */
  DLTC_T_DOUBLE = 3,    /* float64 */
  DLTC_T_BOOL = 4,      /* bool */
  DLTC_T_TIMESTAMP = 5, /* timestamp[us, tz=UTC] */
  DLTC_T_DATE = 6,      /* date32 */
  DLTC_T_JSON = 7,      /* utf8 holding JSON text */
  DLTC_T__COUNT = 8,
};

/* "text", "bigint", ... for a type, or NULL. */
const char *dltc_type_name(int type);
/* The type for a dlt type name (length n), or DLTC_T_NONE if unknown. */
int dltc_type_from_name(const char *name, size_t n);

/* ---- buffers and column builders ---------------------------------------------- */

/* A growable byte buffer whose data is 64-byte aligned (and padded to 64 bytes). */
struct dltc_buf {
  uint8_t *data;
  size_t len;
  size_t cap;
  size_t hint; /* capacity to start with (the last batch's), 0: small */
};

/* Builder of one Arrow column. Storage by type:
 *   TEXT/JSON: offsets (int32, len+1 entries) + data bytes
 *   BIGINT/TIMESTAMP: int64 values; DOUBLE: double; DATE: int32 days; BOOL: bitmap
 * validity is a bitmap kept for every column (bit set = valid). */
struct dltc_col {
  char *name;     /* raw path components joined by '\x1f'; owned */
  int type;       /* enum dltc_type */
  int64_t length; /* values appended */
  int64_t null_count;
  struct dltc_buf validity;
  struct dltc_buf values; /* fixed-width values, or string offsets */
  struct dltc_buf data;   /* string bytes */
};

/* Grow b so that `extra` more bytes fit (64-byte aligned data). 0 or DLTC_ENOMEM/ELIMIT. */
int dltc__buf_reserve(struct dltc_buf *b, size_t extra, struct dltc_error *err);
void dltc__buf_free(struct dltc_buf *b);

/* Set up an empty builder (caller-allocated col) for `type`; name is copied. On
 * failure nothing is left to free. */
int dltc_col_init(struct dltc_col *col, const char *name, size_t name_len, int type,
                  struct dltc_error *err);
/* Free the buffers and the name; col may then be init'ed again. Safe on a zeroed col. */
void dltc_col_reset(struct dltc_col *col);

/* Append a value or a null. Each returns 0, DLTC_ENOMEM or DLTC_ELIMIT (string
 * data over 2 GiB in one batch). The value kind must fit the column's type. */
int dltc_col_append_null(struct dltc_col *col, struct dltc_error *err);
int dltc_col_append_nulls(struct dltc_col *col, int64_t n, struct dltc_error *err);
int dltc_col_append_i64(struct dltc_col *col, int64_t v, struct dltc_error *err);
int dltc_col_append_i32(struct dltc_col *col, int32_t v, struct dltc_error *err);
int dltc_col_append_f64(struct dltc_col *col, double v, struct dltc_error *err);
int dltc_col_append_bool(struct dltc_col *col, int v, struct dltc_error *err);
int dltc_col_append_str(struct dltc_col *col, const char *s, size_t n, struct dltc_error *err);
/* Reserve room for n more string bytes and return where to write them; finish with
 * dltc_col_commit_str(col, written). Lets the parser unescape straight into the column. */
char *dltc_col_reserve_str(struct dltc_col *col, size_t n, struct dltc_error *err);
int dltc_col_commit_str(struct dltc_col *col, size_t n, struct dltc_error *err);
/* Drop values so that `length` remain (rollback). */
void dltc_col_truncate(struct dltc_col *col, int64_t length);

/* ---- export --------------------------------------------------------------------- */

/* One finished record batch of a table: its columns, moved out of the builders.
 * Immutable and reference counted (exported arrays and streams share it). */
struct dltc_batch;

/* Move the ncols builders (all of length nrows) into a new batch; the builders are
 * left empty and ready for new rows (same name and type). On failure the builders
 * are unchanged. */
int dltc_batch_new(struct dltc_col *cols, size_t ncols, int64_t nrows, struct dltc_batch **out,
                   struct dltc_error *err);
/* Drop one reference (the last frees the buffers). Safe on NULL; thread-safe. */
void dltc_batch_free(struct dltc_batch *b);
int64_t dltc_batch_rows(const struct dltc_batch *b);

/* Export a batch as a struct array whose children share b's buffers (each child
 * holds a reference to b, so they may be moved out and released in any order); the
 * caller keeps its own reference. Columns named in `names`/`types` (n entries) that b lacks (added
 * after b was closed) are exported as all-null columns, so every batch of one stream has the same
 * schema. On failure *out and *schema are left released (release == NULL). */
int dltc_batch_export(struct dltc_batch *b, char *const *names, const int *types, size_t n,
                      struct ArrowArray *out, struct dltc_error *err);

/* Fill *out with the struct schema of columns names/types (names copied). Fields
 * are flagged nullable. On failure out->release == NULL. */
int dltc_schema_export(char *const *names, const int *types, size_t n, struct ArrowSchema *out,
                       struct dltc_error *err);

/* Build a stream over `nb` batches sharing the column list names/types (n
 * entries; copied). Takes ownership of the batches array (dltc__malloc'ed) and one
 * reference to each batch, also on failure (they are freed). On success *out is a
 * live stream the consumer releases; get_next hands each batch once (dropping the
 * stream's reference), then an empty (released) array. */
int dltc_stream_new(struct dltc_batch **batches, size_t nb, char *const *names, const int *types,
                    size_t n, struct ArrowArrayStream *out, struct dltc_error *err);

/* A new, independent stream over the batches of src (a live stream made by
 * dltc_stream_new) that src has not handed out yet: the batches are shared, so
 * every clone yields all their rows (a consumer such as DuckDB may export twice).
 * src is unchanged. On failure out->release == NULL. */
int dltc_stream_clone(struct ArrowArrayStream *src, struct ArrowArrayStream *out,
                      struct dltc_error *err);

#endif
