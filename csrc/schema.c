/* The compiled plan: nodes (keys per object level), tables and their columns,
 * and the undo log that lets a document or record be rolled back. */
#include "schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint32_t dltc__hash(const char *k, size_t n) {
  /* FNV-1a; keys are short */
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) {
    h ^= (uint8_t)k[i];
    h *= 16777619u;
  }
  return h;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem, size_t max,
                struct dltc_error *err) {
  if (need <= *cap)
    return 0;
  if (need > max)
    return dltc_error_set(err, DLTC_ELIMIT, "schema limit reached (%zu entries)", max);
  size_t c = *cap ? *cap * 2 : 16;
  while (c < need)
    c *= 2;
  void *p = dltc__realloc(*arr, c * elem);
  if (!p)
    return dltc_error_set(err, DLTC_ENOMEM, "out of memory (schema)");
  *arr = p;
  *cap = c;
  return 0;
}

int dltc__schema_init(struct dltc_schema *s, struct dltc_error *err) {
  (void)err;
  memset(s, 0, sizeof *s);
  return 0;
}

static void table_free(struct dltc_table *t) {
  if (t->key)
    for (int i = 0; i < t->nkey; i++)
      dltc__free(t->key[i]);
  dltc__free(t->key);
  dltc__free(t->key_len);
  dltc__free(t->dlt_name);
  for (size_t i = 0; i < t->ncols; i++)
    dltc_col_reset(&t->cols[i]);
  dltc__free(t->cols);
  dltc__free(t->meta);
  for (size_t i = 0; i < t->nbatches; i++)
    dltc_batch_free(t->batches[i]);
  dltc__free(t->batches);
  memset(t, 0, sizeof *t);
}

void dltc__schema_free(struct dltc_schema *s) {
  for (size_t i = 0; i < s->nnodes; i++) {
    dltc__free(s->nodes[i].key);
    dltc__free(s->nodes[i].slots);
  }
  dltc__free(s->nodes);
  for (size_t i = 0; i < s->ntables; i++)
    table_free(&s->tables[i]);
  dltc__free(s->tables);
  dltc__free(s->undo);
  for (size_t i = 0; i < s->caphints; i++)
    dltc__free(s->hints[i].key);
  dltc__free(s->hints);
  memset(s, 0, sizeof *s);
}

/* ---- capacity hints ------------------------------------------------------------ */

/* "k1\x1fk2\x1ecolumn name" into buf; 0 if it does not fit. */
static size_t hint_key(const struct dltc_table *t, const char *name, char *buf, size_t cap) {
  size_t k = 0, nl = strlen(name);
  for (int i = 0; i < t->nkey; i++) {
    if (k + t->key_len[i] + 1 >= cap)
      return 0;
    if (i)
      buf[k++] = '\x1f';
    memcpy(buf + k, t->key[i], t->key_len[i]);
    k += t->key_len[i];
  }
  if (k + nl + 2 >= cap)
    return 0;
  buf[k++] = t->nkey < 0 ? '!' : '\x1e';
  memcpy(buf + k, name, nl);
  k += nl;
  buf[k] = '\0';
  return k;
}

static struct dltc_hint *hint_slot(struct dltc_schema *s, const char *key, size_t n) {
  if (!s->caphints)
    return NULL;
  size_t mask = s->caphints - 1;
  for (size_t i = dltc__hash(key, n) & mask;; i = (i + 1) & mask) {
    struct dltc_hint *h = &s->hints[i];
    if (!h->key || (strlen(h->key) == n && memcmp(h->key, key, n) == 0))
      return h;
  }
}

/* Remember column c's capacities (best effort: no error if memory is short). */
static void hint_save(struct dltc_schema *s, const struct dltc_table *t, const struct dltc_col *c) {
  char key[1024];
  size_t n = hint_key(t, c->name, key, sizeof key);
  if (!n)
    return;
  if ((s->nhints + 1) * 2 > s->caphints) {
    if (s->caphints >= DLTC_MAX_HINTS)
      return;
    size_t nc = s->caphints ? s->caphints * 2 : 64;
    struct dltc_hint *nh = dltc__calloc(nc, sizeof *nh);
    if (!nh)
      return;
    struct dltc_hint *old = s->hints;
    size_t oc = s->caphints;
    s->hints = nh;
    s->caphints = nc;
    for (size_t i = 0; i < oc; i++)
      if (old[i].key)
        *hint_slot(s, old[i].key, strlen(old[i].key)) = old[i];
    dltc__free(old);
  }
  struct dltc_hint *h = hint_slot(s, key, n);
  if (!h->key) {
    if (!(h->key = dltc__strndup(key, n)))
      return;
    s->nhints++;
  }
  const struct dltc_buf *b[3] = {&c->validity, &c->values, &c->data};
  for (int i = 0; i < 3; i++)
    h->caps[i] = b[i]->data ? b[i]->cap : b[i]->hint;
}

static void hint_apply(struct dltc_schema *s, const struct dltc_table *t, struct dltc_col *c) {
  char key[1024];
  size_t n = s->nhints ? hint_key(t, c->name, key, sizeof key) : 0;
  if (!n)
    return;
  const struct dltc_hint *h = hint_slot(s, key, n);
  if (!h->key)
    return;
  c->validity.hint = h->caps[0];
  c->values.hint = h->caps[1];
  c->data.hint = h->caps[2];
}

void dltc__schema_reset(struct dltc_schema *s, size_t nnodes, size_t ntables, const size_t *ncols) {
  for (size_t i = 0; i < s->ntables; i++) {
    struct dltc_table *t = &s->tables[i];
    for (size_t c = 0; c < t->ncols; c++)
      hint_save(s, t, &t->cols[c]);
    for (size_t b = 0; b < t->nbatches; b++)
      dltc_batch_free(t->batches[b]);
    t->nbatches = 0;
    if (i >= ntables) {
      table_free(t);
      continue;
    }
    for (size_t c = ncols[i]; c < t->ncols; c++)
      dltc_col_reset(&t->cols[c]);
    t->ncols = ncols[i];
    for (size_t c = 0; c < t->ncols; c++)
      dltc_col_truncate(&t->cols[c], 0);
    t->nrows = t->closed_rows = t->total_rows = 0;
    t->settled = 0;
  }
  if (s->ntables > ntables)
    s->ntables = ntables;
  for (size_t i = nnodes; i < s->nnodes; i++) {
    dltc__free(s->nodes[i].key);
    dltc__free(s->nodes[i].slots);
  }
  if (s->nnodes > nnodes)
    s->nnodes = nnodes;
  for (size_t i = 0; i < s->nnodes; i++) {
    struct dltc_node *nd = &s->nodes[i];
    nd->child_table = -1;
    nd->hint_first = nd->hint_next = -1;
    size_t tc = s->tables[nd->table].ncols;
    for (int k = 0; k < DLTC_T__COUNT; k++)
      if (nd->col[k] >= 0 && (size_t)nd->col[k] >= tc)
        nd->col[k] = -1;
    if (nd->main_type != DLTC_T_NONE && nd->col[nd->main_type] < 0)
      nd->main_type = DLTC_T_NONE;
    if (nd->mask)
      for (uint32_t j = 0; j <= nd->mask; j++)
        nd->slots[j] = -1;
    nd->nchildren = 0;
  }
  /* re-link the kept nodes to their parents (the slot tables are big enough) */
  for (size_t i = 0; i < s->nnodes; i++) {
    int32_t par = s->nodes[i].parent;
    if (par < 0)
      continue;
    struct dltc_node *o = &s->nodes[par];
    uint32_t j = s->nodes[i].hash & o->mask;
    while (o->slots[j] >= 0)
      j = (j + 1) & o->mask;
    o->slots[j] = (int32_t)i;
    o->nchildren++;
  }
  s->nundo = 0;
}

int32_t dltc__node_find(const struct dltc_schema *s, int32_t obj, const char *k, size_t n,
                        uint32_t h) {
  const struct dltc_node *o = &s->nodes[obj];
  if (!o->mask)
    return -1;
  for (uint32_t i = h & o->mask;; i = (i + 1) & o->mask) {
    int32_t c = o->slots[i];
    if (c < 0)
      return -1;
    const struct dltc_node *cn = &s->nodes[c];
    if (cn->hash == h && cn->keylen == n && memcmp(cn->key, k, n) == 0)
      return c;
  }
}

static int rehash(struct dltc_schema *s, int32_t obj, struct dltc_error *err) {
  struct dltc_node *o = &s->nodes[obj];
  uint32_t nslots = o->mask ? (o->mask + 1) * 2 : 8;
  int32_t *slots = dltc__malloc(nslots * sizeof *slots);
  if (!slots)
    return dltc_error_set(err, DLTC_ENOMEM, "out of memory (schema)");
  for (uint32_t i = 0; i < nslots; i++)
    slots[i] = -1;
  if (o->mask)
    for (uint32_t i = 0; i <= o->mask; i++) {
      int32_t c = o->slots[i];
      if (c < 0)
        continue;
      uint32_t j = s->nodes[c].hash & (nslots - 1);
      while (slots[j] >= 0)
        j = (j + 1) & (nslots - 1);
      slots[j] = c;
    }
  dltc__free(o->slots);
  o->slots = slots;
  o->mask = nslots - 1;
  return 0;
}

static int32_t node_new(struct dltc_schema *s, const char *k, size_t n, uint32_t h, int32_t parent,
                        int32_t table, struct dltc_error *err) {
  if (grow((void **)&s->nodes, &s->capnodes, s->nnodes + 1, sizeof *s->nodes, DLTC_MAX_NODES, err))
    return -1;
  char *key = dltc__strndup(k, n);
  if (!key) {
    dltc_error_set(err, DLTC_ENOMEM, "out of memory (schema)");
    return -1;
  }
  struct dltc_node *nd = &s->nodes[s->nnodes];
  memset(nd, 0, sizeof *nd);
  nd->key = key;
  nd->keylen = (uint32_t)n;
  nd->hash = h;
  nd->parent = parent;
  nd->table = table;
  nd->hint_next = nd->hint_first = nd->child_table = -1;
  for (int i = 0; i < DLTC_T__COUNT; i++)
    nd->col[i] = -1;
  nd->nullable = 1;
  return (int32_t)s->nnodes++;
}

int32_t dltc__node_add(struct dltc_schema *s, int32_t obj, const char *k, size_t n, uint32_t h,
                       int32_t table, struct dltc_error *err) {
  if (n > DLTC_MAX_KEY) {
    dltc_error_set(err, DLTC_ELIMIT, "key longer than %d bytes", DLTC_MAX_KEY);
    return -1;
  }
  struct dltc_node *o = &s->nodes[obj];
  if ((o->nchildren + 1) * 2 > (o->mask ? o->mask + 1 : 0))
    if (rehash(s, obj, err))
      return -1;
  int32_t c = node_new(s, k, n, h, obj, table, err);
  if (c < 0)
    return -1;
  o = &s->nodes[obj]; /* nodes may have moved */
  uint32_t j = h & o->mask;
  while (o->slots[j] >= 0)
    j = (j + 1) & o->mask;
  o->slots[j] = c;
  o->nchildren++;
  return c;
}

int dltc__node_path(const struct dltc_schema *s, int32_t node, const char **comps, size_t *lens,
                    int max) {
  int n = 0;
  for (int32_t x = node; x >= 0 && s->nodes[x].parent >= 0; x = s->nodes[x].parent)
    n++;
  if (n > max)
    return -1;
  int i = n;
  for (int32_t x = node; x >= 0 && s->nodes[x].parent >= 0; x = s->nodes[x].parent) {
    i--;
    comps[i] = s->nodes[x].key;
    lens[i] = s->nodes[x].keylen;
  }
  return n;
}

static int undo_push(struct dltc_schema *s, struct dltc_undo u, struct dltc_error *err) {
  if (!s->logging)
    return 0;
  if (grow((void **)&s->undo, &s->capundo, s->nundo + 1, sizeof *s->undo, (size_t)1 << 30, err))
    return -1;
  s->undo[s->nundo++] = u;
  return 0;
}

int32_t dltc__table_add(struct dltc_schema *s, int32_t parent, const char *const *comps,
                        const size_t *comp_len, int ncomps, struct dltc_error *err) {
  if (grow((void **)&s->tables, &s->captables, s->ntables + 1, sizeof *s->tables, DLTC_MAX_TABLES,
           err))
    return -1;
  int32_t ti = (int32_t)s->ntables;
  struct dltc_table *t = &s->tables[ti];
  memset(t, 0, sizeof *t);
  t->parent = parent;
  t->root = -1;
  for (int i = 0; i < DLTC_SYS__COUNT; i++)
    t->sys[i] = -1;
  int pk = parent >= 0 ? s->tables[parent].nkey : 0;
  int nk = ncomps < 0 ? -1 : pk + ncomps;
  t->nkey = nk;
  if (nk > 0) {
    t->key = dltc__calloc((size_t)nk, sizeof *t->key);
    t->key_len = dltc__calloc((size_t)nk, sizeof *t->key_len);
    if (!t->key || !t->key_len)
      goto nomem;
    for (int i = 0; i < nk; i++) {
      const char *c = i < pk ? s->tables[parent].key[i] : comps[i - pk];
      size_t cl = i < pk ? s->tables[parent].key_len[i] : comp_len[i - pk];
      if (!(t->key[i] = dltc__strndup(c, cl)))
        goto nomem;
      t->key_len[i] = cl;
    }
  }
  s->ntables++;
  int32_t root = node_new(s, "", 0, dltc__hash("", 0), -1, ti, err);
  if (root < 0) {
    s->ntables--;
    table_free(t);
    return -1;
  }
  s->tables[ti].root = root;
  if (undo_push(s, (struct dltc_undo){DLTC_UNDO_TABLE, ti, -1, 0, 0}, err)) {
    /* the root node stays as an orphan; free the table */
    s->ntables--;
    table_free(&s->tables[ti]);
    return -1;
  }
  return ti;
nomem:
  table_free(t);
  dltc_error_set(err, DLTC_ENOMEM, "out of memory (schema)");
  return -1;
}

int32_t dltc__col_add(struct dltc_schema *s, int32_t ti, int32_t node, int type, int variant,
                      const char *sysname, struct dltc_error *err) {
  struct dltc_table *t = &s->tables[ti];
  if (grow((void **)&t->cols, &t->capcols, t->ncols + 1, sizeof *t->cols, DLTC_MAX_COLUMNS, err))
    return -1;
  size_t capm = t->capcols;
  /* meta grows in step with cols */
  struct dltc_colmeta *m = dltc__realloc(t->meta, capm * sizeof *t->meta);
  if (!m) {
    dltc_error_set(err, DLTC_ENOMEM, "out of memory (schema)");
    return -1;
  }
  t->meta = m;
  /* the column name: node path joined by \x1f, or the system name */
  char stackname[512];
  char *name = stackname;
  size_t len = 0;
  if (node >= 0) {
    const char *comps[128];
    size_t lens[128];
    int n = dltc__node_path(s, node, comps, lens, 128);
    if (n < 0) {
      dltc_error_set(err, DLTC_ELIMIT, "column path deeper than 128 keys");
      return -1;
    }
    size_t total = 8 + (variant ? 16 : 0);
    for (int i = 0; i < n; i++)
      total += lens[i] + 1;
    if (total > sizeof stackname) {
      name = dltc__malloc(total);
      if (!name) {
        dltc_error_set(err, DLTC_ENOMEM, "out of memory (schema)");
        return -1;
      }
    }
    for (int i = 0; i < n; i++) {
      if (i)
        name[len++] = '\x1f';
      memcpy(name + len, comps[i], lens[i]);
      len += lens[i];
    }
    if (variant)
      len += (size_t)sprintf(name + len, "\x1fv_%s", dltc_type_name(variant));
  } else {
    len = strlen(sysname);
    memcpy(name, sysname, len);
  }
  int32_t ci = (int32_t)t->ncols;
  int rc = dltc_col_init(&t->cols[ci], name, len, type, err);
  if (name != stackname)
    dltc__free(name);
  if (rc)
    return -1;
  hint_apply(s, t, &t->cols[ci]);
  if (t->nrows && dltc_col_append_nulls(&t->cols[ci], t->nrows, err)) {
    dltc_col_reset(&t->cols[ci]);
    return -1;
  }
  t->meta[ci].node = node;
  t->meta[ci].type = (uint8_t)type;
  t->meta[ci].nullable = 1;
  t->meta[ci].declared = 0;
  t->ncols++;
  if (node >= 0) {
    struct dltc_node *nd = &s->nodes[node];
    int was_main = 0;
    int slot = variant ? variant : type;
    if (!variant) {
      nd->main_type = (uint8_t)type;
      was_main = 1;
    }
    nd->col[slot] = ci;
    if (undo_push(s, (struct dltc_undo){DLTC_UNDO_COL, ti, node, slot, was_main}, err)) {
      nd->col[slot] = -1;
      if (was_main)
        nd->main_type = DLTC_T_NONE;
      t->ncols--;
      dltc_col_reset(&t->cols[ci]);
      return -1;
    }
  }
  return ci;
}

void dltc__undo_rollback(struct dltc_schema *s, size_t mark) {
  while (s->nundo > mark) {
    struct dltc_undo u = s->undo[--s->nundo];
    if (u.kind == DLTC_UNDO_COL) {
      struct dltc_table *t = &s->tables[u.table];
      struct dltc_node *nd = &s->nodes[u.node];
      int32_t ci = nd->col[u.type];
      nd->col[u.type] = -1;
      if (u.was_main)
        nd->main_type = DLTC_T_NONE;
      /* columns are popped in reverse creation order, so ci is the last one */
      if (ci >= 0 && (size_t)ci + 1 == t->ncols) {
        dltc_col_reset(&t->cols[ci]);
        t->ncols--;
      }
    } else {
      int32_t ti = u.table;
      if ((size_t)ti + 1 == s->ntables) {
        struct dltc_table *t = &s->tables[ti];
        /* unlink from the node that pointed to it */
        for (size_t i = 0; i < s->nnodes; i++)
          if (s->nodes[i].child_table == ti)
            s->nodes[i].child_table = -1;
        table_free(t);
        s->ntables--;
      }
    }
  }
}
