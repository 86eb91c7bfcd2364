/* libFuzzer target for the decoder: a hash of the input picks the plan (selector,
 * inference, child tables, contract modes, small caps, an allocation to fail) and its
 * records options (a records path built from the first keys the input holds, with "*"
 * steps; dlt's auto-detection; a skeleton with a small cap; row captures), the whole input
 * is one document, fed twice. Checks: acceptance does not depend on the plan, every exported
 * string is valid UTF-8 within its offsets, row counts add up, the skeleton is valid JSON no
 * longer than the input, there is one capture row per root record and captured text is
 * valid UTF-8 (JSON text valid JSON). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arrow.h"
#include "decode.h"

static int utf8_ok(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    size_t k;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      k = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      k = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      k = 3;
      cp = c & 0x07;
    } else
      return 0;
    for (size_t j = 1; j <= k; j++) {
      if (i + j >= n || (s[i + j] & 0xC0) != 0x80)
        return 0;
      cp = cp << 6 | (s[i + j] & 0x3F);
    }
    static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < min[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += k + 1;
  }
  return 1;
}

static void check_batch(const struct ArrowSchema *sc, const struct ArrowArray *a) {
  if (a->n_children != sc->n_children)
    abort();
  for (int64_t c = 0; c < a->n_children; c++) {
    const struct ArrowArray *ch = a->children[c];
    if (ch->length != a->length)
      abort();
    if (strcmp(sc->children[c]->format, "u") != 0)
      continue;
    const int32_t *off = ch->buffers[1];
    const uint8_t *data = ch->buffers[2];
    if (off[0] != 0)
      abort();
    for (int64_t r = 0; r < ch->length; r++) {
      if (off[r + 1] < off[r])
        abort();
      if (!utf8_ok(data + off[r], (size_t)(off[r + 1] - off[r])))
        abort();
    }
  }
}

static void drain(struct dltc_decoder *d);

/* The records options: up to two keys found in the input (raw bytes between quotes). */
struct records_opt {
  uint8_t sel; /* bits 0-2: path shape or auto; 3: skeleton; 4: captures; 5: set path */
  const char *k[2];
  size_t kn[2];
};

/* 1 if s[0, n) is accepted as a JSON document by a plain decoder. */
static int json_ok(const char *s, size_t n) {
  struct dltc_plan_spec spec;
  dltc_plan_spec_init(&spec);
  spec.infer = 0;
  struct dltc_decoder *d = NULL;
  struct dltc_error err;
  if (dltc_decoder_new(&spec, &d, &err))
    return -1;
  int64_t rows;
  char *copy = malloc(n ? n : 1); /* exactly n bytes: ASan sees a read past the end */
  if (!copy) {
    dltc_decoder_free(d);
    return -1;
  }
  memcpy(copy, s, n);
  int rc = dltc_decoder_feed(d, copy, n, "", 0, &rows, &err);
  free(copy);
  dltc_decoder_free(d);
  return rc == DLTC_ENOMEM ? -1 : rc == 0;
}

/* After a successful feed of n bytes that added `rows` root rows: skeleton and captures. */
static void check_records(struct dltc_decoder *d, const struct records_opt *ro, size_t n,
                          int64_t rows, int64_t discarded) {
  struct dltc_error err;
  const struct dltc_path_step *st;
  if (dltc_decoder_records_path(d, &st) < 0)
    abort();
  if (ro->sel & 8) {
    const char *t;
    size_t tn;
    int rc = dltc_decoder_skeleton(d, &t, &tn, &err);
    if (rc == 0 && (tn > n || json_ok(t, tn) == 0))
      abort();
    if (rc && rc != DLTC_ELIMIT)
      abort();
  }
  if (ro->sel & 16) {
    /* one row per record, those a contract dropped included */
    size_t nrec = dltc_decoder_capture_rows(d);
    if (nrec != (size_t)(rows + discarded))
      abort();
    for (size_t r = 0; r < nrec; r++)
      for (size_t i = 0; i < dltc_decoder_ncaptures(d); i++) {
        struct dltc_capture c;
        dltc_decoder_capture(d, r, i, &c);
        if (c.kind == DLTC_CAP_STRING && !utf8_ok((const uint8_t *)c.s, c.n))
          abort();
        if (c.kind == DLTC_CAP_JSON && json_ok(c.s, c.n) == 0)
          abort();
      }
  }
}

/* Feed data twice under the plan chosen by `sel` and `ro`; returns the first feed's code. */
static int run(uint8_t sel, const struct records_opt *ro, const char *data, size_t n) {
  struct dltc_plan_spec spec;
  dltc_plan_spec_init(&spec);
  spec.selector = (sel & 1) ? "games" : NULL;
  struct dltc_path_step steps[3];
  static const char *const keys[] = {"data", "items", "games"};
  static const size_t keys_len[] = {4, 5, 5};
  const char *cp[2][2];
  size_t cl[2][2];
  struct dltc_capture_spec caps[3];
  if (ro) {
    struct dltc_path_step k0 = {ro->k[0], ro->kn[0]}, k1 = {ro->k[1], ro->kn[1]}, star = {NULL, 0};
    size_t ns = 0;
    switch (ro->sel & 7) {
    case 0: break; /* the document, dlt's unwrap */
    case 1: steps[ns++] = k0; break;
    case 2: steps[ns++] = k0, steps[ns++] = star; break;
    case 3: steps[ns++] = star, steps[ns++] = k0; break;
    case 4: steps[ns++] = k0, steps[ns++] = star, steps[ns++] = k1; break;
    case 5: steps[ns++] = star; break;
    default: spec.records = DLTC_RECORDS_AUTO; break;
    }
    if (spec.records != DLTC_RECORDS_AUTO) {
      spec.records = DLTC_RECORDS_PATH;
      spec.records_path = steps;
      spec.nrecords_path = ns;
    }
    spec.selector = NULL;
    spec.auto_keys = keys;
    spec.auto_keys_len = keys_len;
    spec.nauto_keys = 3;
    spec.skeleton_cap = (ro->sel & 8) ? 1 + (int64_t)n / 2 : 0; /* over the cap now and then */
    if (ro->sel & 16) {
      for (int i = 0; i < 2; i++) {
        cp[i][0] = ro->k[i];
        cl[i][0] = ro->kn[i];
        cp[i][1] = ro->k[1 - i];
        cl[i][1] = ro->kn[1 - i];
      }
      caps[0] = (struct dltc_capture_spec){cp[0], cl[0], 1};
      caps[1] = (struct dltc_capture_spec){cp[1], cl[1], 2};
      caps[2] = (struct dltc_capture_spec){NULL, NULL, 0};
      spec.captures = caps;
      spec.ncaptures = 3;
    }
  }
  spec.infer = !(sel & 2);
  spec.child_tables = !(sel & 4);
  spec.mode_columns = (sel >> 3) & 3;
  spec.mode_data_type = (sel >> 5) & 3;
  spec.batch_rows = 3;
  spec.max_depth = 64; /* deep nesting is covered by the C tests; keeps runs fast */
  spec.root_name = "games";
  spec.load_id = (sel & 0x80) ? "L" : NULL;
  static const char *const p_a[] = {"a"}, *const p_wr[] = {"white", "rating"};
  static const size_t l_a[] = {1}, l_wr[] = {5, 6};
  struct dltc_column_spec cols[2] = {{p_a, l_a, 1, DLTC_T_TIMESTAMP, 1, 0},
                                     {p_wr, l_wr, 2, DLTC_T_BIGINT, 0, 0}};
  if (sel & 0x40) {
    spec.columns = cols;
    spec.ncolumns = 2;
  }
  struct dltc_decoder *d = NULL;
  struct dltc_error err;
  if (dltc_decoder_new(&spec, &d, &err))
    return -1;
  int64_t rows;
  struct dltc_decoder_stats st0, st1;
  dltc_decoder_stats(d, &st0);
  int first = dltc_decoder_feed(d, data, n, "fuzz", 4, &rows, &err);
  if (first && (err.offset < 0 || (size_t)err.offset > n || err.path[0] != '$'))
    abort();
  dltc_decoder_stats(d, &st1);
  if (ro && !first)
    check_records(d, ro, n, rows, st1.rows_discarded - st0.rows_discarded);
  if (ro && (ro->sel & 32)) {
    /* pin what the first feed found, as a source does after an "auto" page */
    const struct dltc_path_step *st;
    int ns = dltc_decoder_records_path(d, &st);
    struct dltc_path_step copy[DLTC_MAX_PATH_STEPS];
    for (int i = 0; i < ns; i++)
      copy[i] = st[i];
    if (ns >= 0)
      (void)dltc_decoder_set_records_path(d, DLTC_RECORDS_PATH, copy, (size_t)ns, &err);
  }
  int second = dltc_decoder_feed(d, data, n, "fuzz", 4, &rows, &err);
  dltc_decoder_stats(d, &st0);
  if (ro && !second)
    check_records(d, ro, n, rows, st0.rows_discarded - st1.rows_discarded);
  drain(d);
  /* a reset decoder decodes the document again, as a new one would */
  dltc_decoder_reset(d);
  int again = dltc_decoder_feed(d, data, n, "fuzz", 4, &rows, &err);
  if (again != first && again != DLTC_ENOMEM && first != DLTC_ENOMEM)
    abort();
  drain(d);
  dltc_decoder_free(d);
  return first;
}

/* Flush every table and check its stream. */
static void drain(struct dltc_decoder *d) {
  struct dltc_error err;
  for (size_t t = 0; t < dltc_decoder_ntables(d); t++) {
    const char *const *k;
    const size_t *kl;
    int nk;
    int64_t want;
    dltc_decoder_table_key(d, t, &k, &kl, &nk, &want);
    if (!want)
      continue;
    struct ArrowArrayStream st;
    if (dltc_decoder_flush_table(d, t, &st, &err))
      continue;
    struct ArrowSchema sc;
    int64_t got = 0;
    int ok = 1;
    if (st.get_schema(&st, &sc) == 0) {
      for (;;) {
        struct ArrowArray a;
        if (st.get_next(&st, &a)) {
          ok = 0;
          continue;
        }
        if (!a.release)
          break;
        check_batch(&sc, &a);
        got += a.length;
        a.release(&a);
      }
      sc.release(&sc);
    } else
      ok = 0;
    st.release(&st);
    if (ok && got != want)
      abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t size) {
  /* the whole input is the document (seeds stay valid JSON); the plan comes from a
   * hash of it, so mutations explore plans too */
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < size; i++)
    h = (h ^ buf[i]) * 16777619u;
  uint8_t sel = (uint8_t)(h >> 24);
  struct records_opt ro = {(uint8_t)(h >> 16), {"", ""}, {0, 0}};
  /* the first two strings of the input (raw) are the keys of the records path */
  for (size_t i = 0, k = 0; i < size && k < 2; i++) {
    if (buf[i] != '"')
      continue;
    size_t j = i + 1;
    while (j < size && buf[j] != '"' && j - i < 64)
      j++;
    if (j >= size || buf[j] != '"')
      break;
    ro.k[k] = (const char *)buf + i + 1;
    ro.kn[k] = j - i - 1;
    k++;
    i = j;
  }
  /* a copy of exactly the document's size, so ASan sees any read past its end */
  char *doc = malloc(size ? size : 1);
  if (!doc)
    return 0;
  memcpy(doc, buf, size);
  int rc0 = run(0, NULL, doc, size);
  int rc = run(sel, NULL, doc, size);
  /* plan-independence: the plan never turns a syntax error into success (contract
   * errors and caps may come first, so only accepted vs EPARSE is compared) */
  if (!(sel & 1) && ((rc0 == 0 && rc == DLTC_EPARSE) || (rc0 == DLTC_EPARSE && rc == 0)))
    abort();
  /* the records options never change what is valid JSON either */
  int rcr = run(sel & ~1, &ro, doc, size);
  if ((rc0 == 0 && rcr == DLTC_EPARSE) || (rc0 == DLTC_EPARSE && rcr == 0))
    abort();
  /* error paths: fail one allocation, chosen by the hash */
  dltc__alloc_fail_at(1 + (long)(h % 97));
  run(sel, NULL, doc, size);
  dltc__alloc_fail_at(1 + (long)(h % 89));
  run(sel, &ro, doc, size);
  dltc__alloc_fail_at(0);
  free(doc);
  return 0;
}
