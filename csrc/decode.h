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

/* Where the records of a document are (see docs/CONTRACTS.md 4.6). */
enum dltc_records {
  DLTC_RECORDS_DOCUMENT = 0, /* selector's value, or the document (read_json's rules) */
  DLTC_RECORDS_PATH = 1,     /* records_path, with dlt's extract_response rules */
  DLTC_RECORDS_AUTO = 2,     /* dlt's detector (find_response_page_data), then as PATH */
};

/* One step of a records path: a key (raw, unescaped UTF-8), or the wildcard: every
 * element of an array and every member value of an object (JSONPath `*`). */
struct dltc_path_step {
  const char *key; /* NULL for the wildcard */
  size_t len;
};

#define DLTC_MAX_PATH_STEPS 64       /* records path steps; capture path keys */
#define DLTC_MAX_CAPTURES 64         /* row captures per plan */
#define DLTC_MAX_AUTO_KEYS 64        /* record key names for auto-detection */
#define DLTC_MAX_SKELETON (64 << 20) /* upper bound of skeleton_cap */

/* A value captured per root record: a path of raw keys from the record (0 keys: the
 * record itself). */
struct dltc_capture_spec {
  const char *const *path;
  const size_t *path_len;
  size_t npath;
};

/* What dltc_decoder_new compiles. Everything is copied; the caller keeps ownership. */
struct dltc_plan_spec {
  const char *selector; /* records = this key of the top-level object; NULL: the document */
  int records;          /* enum dltc_records; PATH and AUTO exclude selector */
  const struct dltc_path_step *records_path; /* PATH: nrecords_path steps (0: the document) */
  size_t nrecords_path;
  /* AUTO: list key names that mark records (dlt's RECORD_KEY_PATTERNS minus
   * NON_RECORD_KEY_PATTERNS, exact match) and how deep lists are looked for: lists
   * are found under objects at most auto_max_keys - 1 keys deep (dlt: 3) */
  const char *const *auto_keys;
  const size_t *auto_keys_len;
  size_t nauto_keys;
  int auto_max_keys;
  int64_t skeleton_cap; /* > 0: build the skeleton of each document, at most this many bytes */
  const struct dltc_capture_spec *captures;
  size_t ncaptures;
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

/* Defaults: selector NULL, records DOCUMENT, auto_max_keys 3, no skeleton or captures, infer 1,
 * evolve/evolve, child_tables 1, dlt_ids 1, batch_rows 65536, max_depth 1024, max_string 64 MiB. */
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

/* Change where the records are, between documents (dlt pins the path it detected on
 * the first page of a paginate() call: feed that page with DLTC_RECORDS_AUTO, read
 * dltc_decoder_records_path, then set DLTC_RECORDS_PATH with it). records is PATH or
 * AUTO (AUTO keeps the plan's auto_keys); steps are copied. 0, or DLTC_EINVAL /
 * DLTC_ENOMEM (the old path stays). */
int dltc_decoder_set_records_path(struct dltc_decoder *d, int records,
                                  const struct dltc_path_step *steps, size_t nsteps,
                                  struct dltc_error *err);

/* The records path of the last successful document: PATH: the plan's; AUTO: the one
 * detected (0 steps: the whole document); DOCUMENT: the selector, or 0 steps. Returns
 * the number of steps (pointers valid until the next feed or set), or -1 when the last
 * feed failed or nothing was fed. */
int dltc_decoder_records_path(const struct dltc_decoder *d, const struct dltc_path_step **steps);

/* The skeleton of the last successful document: the document as compact JSON with each
 * array the records were taken from replaced by [] (a record that is not an array is
 * kept whole). 0 and *text (owned by the decoder, valid until the next feed), or
 * DLTC_ELIMIT with err's offset and path at the value that crossed skeleton_cap, or
 * DLTC_EINVAL (no skeleton in the plan, or the last feed failed). */
int dltc_decoder_skeleton(const struct dltc_decoder *d, const char **text, size_t *n,
                          struct dltc_error *err);

/* Row captures of the last successful document: one row per root record, in document
 * order (records a contract discarded included: dlt resolves children before
 * normalizing), ncaptures values each. */
enum dltc_capture_kind {
  DLTC_CAP_MISSING = 0, /* no such key (or the record is not an object) */
  DLTC_CAP_NULL,
  DLTC_CAP_FALSE,
  DLTC_CAP_TRUE,
  DLTC_CAP_INT,    /* i */
  DLTC_CAP_DOUBLE, /* f */
  DLTC_CAP_BIGINT, /* an integer beyond int64: its digits in s, n */
  DLTC_CAP_STRING, /* unescaped UTF-8 in s, n */
  DLTC_CAP_JSON,   /* an object or array as compact JSON text in s, n */
};
struct dltc_capture {
  int kind;
  int64_t i;
  double f;
  const char *s; /* owned by the decoder, valid until the next feed */
  size_t n;
};
size_t dltc_decoder_capture_rows(const struct dltc_decoder *d);
size_t dltc_decoder_ncaptures(const struct dltc_decoder *d);
void dltc_decoder_capture(const struct dltc_decoder *d, size_t row, size_t i,
                          struct dltc_capture *out);

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
