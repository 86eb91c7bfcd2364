/* The decoder: a strict RFC 8259 JSON parser that writes Arrow column builders
 * directly from a compiled schema plan (schema.h), with dlt's flattening, child
 * tables, type inference and contract modes. One call to dltc_decoder_feed parses
 * one complete document; its rows are committed only if the whole document is good. */
#ifndef DLTC_DECODE_H
#define DLTC_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "arrow.h"
#include "error.h"

/* Upper bound of max_depth: the parser recurses once per nesting level (at most
 * ~0.7 KB of stack per level), so 4096 levels stay within 3 MB of a thread's stack. */
#define DLTC_MAX_DEPTH 4096

/* Contract modes, as dlt names them. */
enum dltc_mode {
  DLTC_MODE_EVOLVE = 0,
  DLTC_MODE_FREEZE = 1,
  DLTC_MODE_DISCARD_ROW = 2,
  DLTC_MODE_DISCARD_VALUE = 3,
};

/* One declared column: a path of raw keys (no naming applied) and its hints. */
struct dltc_column_spec {
  const char *const *path; /* npath raw key components (UTF-8, not NUL-terminated) */
  const size_t *path_len;
  size_t npath;
  int type;     /* enum dltc_type */
  int nullable; /* 0: a missing/null value falls under the data_type contract */
  int json;     /* keep the value (any JSON) as JSON text */
};

/* A child table's dlt name, used in the digest that makes child _dlt_id values. */
struct dltc_table_name {
  const char *const *key; /* raw path components of the table (as in the flush key) */
  const size_t *key_len;
  size_t nkey;
  const char *name; /* dlt table name, e.g. "players_profiles__streaming_platforms" */
};

/* What dltc_decoder_new compiles. Everything is copied; the caller keeps ownership. */
struct dltc_plan_spec {
  const char *selector; /* records = this key of the top-level object; NULL: the document */
  const struct dltc_column_spec *columns;
  size_t ncolumns;
  int infer;             /* unknown keys become columns (else they are skipped) */
  int mode_columns;      /* enum dltc_mode for new columns */
  int mode_data_type;    /* enum dltc_mode for values of the wrong type */
  int mode_tables;       /* enum dltc_mode for new (child) tables */
  int child_tables;      /* lists -> child tables (else json columns) */
  int dlt_ids;           /* add _dlt_id / _dlt_parent_id / _dlt_list_idx */
  const char *load_id;   /* constant _dlt_load_id column, or NULL */
  const char *root_name; /* dlt name of the root table (child-id digest), or NULL */
  const struct dltc_table_name *table_names; /* dlt names of child tables (may be NULL) */
  size_t ntable_names;
  int64_t batch_rows; /* close a batch at the first document boundary past this */
  int max_depth;
  int64_t max_string;
};

/* Defaults: selector NULL, infer 1, evolve/evolve, child_tables 1, dlt_ids 1,
 * batch_rows 65536, max_depth 1024, max_string 64 MiB. */
void dltc_plan_spec_init(struct dltc_plan_spec *spec);

struct dltc_decoder;

/* Compile spec into a decoder. 0 and *out set, or an error (nothing to free). */
int dltc_decoder_new(const struct dltc_plan_spec *spec, struct dltc_decoder **out,
                     struct dltc_error *err);
void dltc_decoder_free(struct dltc_decoder *d);

/* Parse one complete JSON document of n bytes (need not be NUL-terminated; never
 * read past data+n). On success *rows = rows added to the root table. On failure
 * every row, column and table this document added is rolled back, and err has the
 * byte offset and the JSON path: DLTC_EPARSE (malformed), DLTC_ELIMIT (a cap),
 * DLTC_ESCHEMA (a freeze contract; or, as dlt raises, a value that neither its
 * column nor its variant can hold under data_type evolve), DLTC_ENOMEM. Not
 * thread-safe per decoder; different decoders may run in parallel. */
int dltc_decoder_feed(struct dltc_decoder *d, const char *data, size_t n, const char *source_url,
                      size_t source_url_len, int64_t *rows, struct dltc_error *err);

/* Back to the compiled plan, as if new: inferred columns, child tables, variants,
 * rows not flushed yet and pending rejects are dropped; declared columns stay.
 * Unlike a new decoder it keeps its memory: each column's buffers start at the
 * capacity the same column (table key and name) needed before, so reusing one
 * decoder per document costs no buffer growth. Stats are cumulative. */
void dltc_decoder_reset(struct dltc_decoder *d);

/* Tables that have rows (including closed batches), for flushing. Indexes are
 * valid until the next feed. */
size_t dltc_decoder_ntables(const struct dltc_decoder *d);
/* Key of table i: number of raw components in *nkey and pointers to them; the root
 * has nkey 0. The rejects table returns -1 in *nkey. Rows in the table in *rows. */
void dltc_decoder_table_key(const struct dltc_decoder *d, size_t i, const char *const **key,
                            const size_t **key_len, int *nkey, int64_t *rows);

/* Move table i's rows (closed batches and the open one) into a new stream; the
 * builders are reset, the table's schema stays. On failure the rows are lost and
 * out->release == NULL. */
int dltc_decoder_flush_table(struct dltc_decoder *d, size_t i, struct ArrowArrayStream *out,
                             struct dltc_error *err);

/* Counters. */
struct dltc_decoder_stats {
  int64_t documents;
  int64_t rows; /* root rows committed */
  int64_t child_rows;
  int64_t bytes; /* bytes of documents fed successfully */
  int64_t failed_documents;
  int64_t rejects_new_column; /* contract "columns" discarded a value/row */
  int64_t rejects_new_table;  /* contract "tables" discarded a list (or its row) */
  int64_t rejects_data_type;  /* contract "data_type" discarded a value/row */
  int64_t rejects_missing;    /* a non-nullable field was missing/null */
  int64_t rows_discarded;     /* rows dropped by discard_row */
  int64_t variants;           /* variant columns created */
  int64_t rejects_unrecorded; /* rejects counted above but not in the rejects table
                                 (over 65536 in one record) */
  int64_t batches;
};
void dltc_decoder_stats(const struct dltc_decoder *d, struct dltc_decoder_stats *out);

#endif
