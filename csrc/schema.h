/* The compiled plan of a decoder: tables (root, child tables, rejects), their
 * column builders, and a tree of key nodes per table whose children are found by
 * a per-level hash plus a "next key last time" hint, so records with a stable key
 * order cost one memcmp per key. Nodes, tables and columns are addressed by index
 * (the arrays grow). Changes made while decoding are logged so a document or a
 * record can be rolled back. */
#ifndef DLTC_SCHEMA_H
#define DLTC_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "arrow.h"
#include "error.h"

#define DLTC_MAX_COLUMNS 100000 /* per table */
#define DLTC_MAX_TABLES 10000
#define DLTC_MAX_NODES 1000000
#define DLTC_MAX_KEY 4096 /* bytes of one key */

/* One key at one object level of one table. */
struct dltc_node {
  char *key; /* raw key bytes (decoded), owned */
  uint32_t keylen;
  uint32_t hash;
  int32_t parent;             /* parent node, -1 for a table's record level */
  int32_t table;              /* table this node's columns live in */
  int32_t hint_next;          /* sibling that followed this key last time, -1 */
  int32_t hint_first;         /* as object level: the first key last time, -1 */
  int32_t child_table;        /* list values: child table, -1 */
  int32_t col[DLTC_T__COUNT]; /* column per value type: col[main_type] is the column,
                                 others are variants (name + "v_<type>"); -1 none */
  uint8_t main_type;          /* declared or first inferred type; DLTC_T_NONE: none yet */
  uint8_t declared;           /* from the plan */
  uint8_t nullable;
  uint8_t json;     /* keep any value as JSON text */
  uint8_t captured; /* a row capture of the plan ends here (root table only) */
  /* children as an object level: open addressing over node indexes */
  int32_t *slots;
  uint32_t mask; /* nslots - 1, 0 if no table */
  uint32_t nchildren;
};

struct dltc_colmeta {
  int32_t node; /* owning node, -1 for system columns */
  uint8_t type;
  uint8_t nullable;
  uint8_t declared;
};

enum { DLTC_SYS_ID, DLTC_SYS_PARENT_ID, DLTC_SYS_LIST_IDX, DLTC_SYS_LOAD_ID, DLTC_SYS__COUNT };

struct dltc_table {
  char **key; /* raw components; owned */
  size_t *key_len;
  int nkey;       /* -1 for the rejects table */
  int32_t parent; /* parent table, -1 */
  int32_t root;   /* node of the record level */
  char *dlt_name; /* name used in the child-id digest; owned, may be NULL */
  struct dltc_col *cols;
  struct dltc_colmeta *meta;
  size_t ncols, capcols;
  int32_t sys[DLTC_SYS__COUNT]; /* system column indexes, -1 */
  int64_t nrows;                /* rows in the open batch */
  int64_t closed_rows;          /* rows in closed batches */
  int64_t total_rows;           /* rows ever committed (for "new table" contract checks) */
  struct dltc_batch **batches;
  size_t nbatches, capbatches;
  int declared; /* has declared columns */
  int settled;  /* has rows from an earlier document: new keys are new columns */
};

enum { DLTC_UNDO_COL, DLTC_UNDO_TABLE };
struct dltc_undo {
  int kind;
  int32_t table;
  int32_t node;
  int type; /* DLTC_UNDO_COL: which node->col[] slot; main if it was the main column */
  int was_main;
};

/* Buffer capacities a column needed before a reset, by "table key\x1ecolumn name". */
struct dltc_hint {
  char *key;      /* owned, NUL-terminated */
  size_t caps[3]; /* validity, values, data */
};
#define DLTC_MAX_HINTS 65536

struct dltc_schema {
  struct dltc_node *nodes;
  size_t nnodes, capnodes;
  struct dltc_table *tables;
  size_t ntables, captables;
  struct dltc_undo *undo;
  size_t nundo, capundo;
  int logging;             /* record undo entries */
  struct dltc_hint *hints; /* open addressing, caphints a power of 2 (or 0) */
  size_t nhints, caphints;
};

int dltc__schema_init(struct dltc_schema *s, struct dltc_error *err);
void dltc__schema_free(struct dltc_schema *s);

uint32_t dltc__hash(const char *k, size_t n);

/* Child node of `parent` (a node index, or -1 - table for a table's record level)
 * named k, or -1. */
int32_t dltc__node_find(const struct dltc_schema *s, int32_t obj, const char *k, size_t n,
                        uint32_t h);
/* Add a child node to object level `obj` (node index). Returns index or -1 (err set). */
int32_t dltc__node_add(struct dltc_schema *s, int32_t obj, const char *k, size_t n, uint32_t h,
                       int32_t table, struct dltc_error *err);

/* Create a table whose key is parent's key + comps (ncomps). Returns index or -1. */
int32_t dltc__table_add(struct dltc_schema *s, int32_t parent, const char *const *comps,
                        const size_t *comp_len, int ncomps, struct dltc_error *err);

/* Add a column of `type` to table t for node (or -1 for system columns) with a name
 * built from the node path. variant 0: the node's main column (node->col[type]);
 * variant = a value kind: a variant column named "v_<kind>" in node->col[kind]
 * (its type may differ: dlt infers it, e.g. an ISO string -> timestamp). Back-fills
 * nulls for rows of the open batch. Returns the column index or -1. */
int32_t dltc__col_add(struct dltc_schema *s, int32_t t, int32_t node, int type, int variant,
                      const char *sysname, struct dltc_error *err);

/* Undo log marks and rollback to a mark (pops created columns and tables). */
static inline size_t dltc__undo_mark(const struct dltc_schema *s) { return s->nundo; }
void dltc__undo_rollback(struct dltc_schema *s, size_t mark);

/* Back to the first nnodes nodes and ntables tables, table i keeping its first
 * ncols[i] columns (emptied, buffers kept); everything else is freed after its
 * buffer capacities are saved as hints that dltc__col_add applies to a column of
 * the same table key and name. Rows, batches and the undo log are dropped. */
void dltc__schema_reset(struct dltc_schema *s, size_t nnodes, size_t ntables, const size_t *ncols);

/* Path components of node (from the table's record level), written as pointers. Returns count. */
int dltc__node_path(const struct dltc_schema *s, int32_t node, const char **comps, size_t *lens,
                    int max);

#endif
