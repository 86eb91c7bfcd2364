/* libFuzzer target for the decoder: a hash of the input picks the plan (selector,
 * inference, child tables, contract modes, small caps, an allocation to fail), the
 * whole input is one document, fed twice. Checks: acceptance does not depend on the plan,
 * every exported string is valid UTF-8 within its offsets, row counts add up. */
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

/* Feed data twice under the plan chosen by `sel`; returns the first feed's code. */
static int run(uint8_t sel, const char *data, size_t n) {
  struct dltc_plan_spec spec;
  dltc_plan_spec_init(&spec);
  spec.selector = (sel & 1) ? "games" : NULL;
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
  int first = dltc_decoder_feed(d, data, n, "fuzz", 4, &rows, &err);
  if (first && (err.offset < 0 || (size_t)err.offset > n || err.path[0] != '$'))
    abort();
  (void)dltc_decoder_feed(d, data, n, "fuzz", 4, &rows, &err);
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
  /* a copy of exactly the document's size, so ASan sees any read past its end */
  char *doc = malloc(size ? size : 1);
  if (!doc)
    return 0;
  memcpy(doc, buf, size);
  int rc0 = run(0, doc, size);
  int rc = run(sel, doc, size);
  /* plan-independence: the plan never turns a syntax error into success (contract
   * errors and caps may come first, so only accepted vs EPARSE is compared) */
  if (!(sel & 1) && ((rc0 == 0 && rc == DLTC_EPARSE) || (rc0 == DLTC_EPARSE && rc == 0)))
    abort();
  /* error paths: fail one allocation, chosen by the hash */
  dltc__alloc_fail_at(1 + (long)(h % 97));
  run(sel, doc, size);
  dltc__alloc_fail_at(0);
  free(doc);
  return 0;
}
