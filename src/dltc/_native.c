/* dltc._native: the one file that includes Python.h. A thin binding over the C
 * core in csrc/: it converts arguments, releases the GIL around every wait and
 * every decode, and turns struct dltc_error into Python exceptions.
 *
 * Layout: common helpers, then one section per component (engine, decoder),
 * each with its own *_add_types() called from module exec. Keep edits inside a
 * component's section. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "error.h"
#include "version.h"

/* ---------------------------------------------------------------- common -- */

/* Per-module state: exception types and heap types live here, not in globals. */
struct module_state {
  PyObject *json_decode_error; /* dltc.JSONDecodeError (subclass of ValueError) */
  PyObject *fetch_error;       /* dltc.FetchError (subclass of OSError) */
  PyObject *types[16];         /* heap types added by the component sections */
};

static inline struct module_state *get_state(PyObject *module) {
  return (struct module_state *)PyModule_GetState(module);
}

/* Returns a new reference to the version string. */
static PyObject *py_version(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  return PyUnicode_FromString(dltc_version());
}

/* Returns a new reference to libcurl's version line. */
static PyObject *py_curl_version(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  const char *v;
  Py_BEGIN_ALLOW_THREADS v = dltc_curl_version();
  Py_END_ALLOW_THREADS return PyUnicode_FromString(v);
}

/* ---------------------------------------------------------------- engine -- */

static int engine_add_types(PyObject *module) {
  (void)module;
  return 0;
}

/* --------------------------------------------------------------- decoder -- */
/* Decoder (csrc/decode.h) and ArrowStream (one table's batches, exported once
 * through __arrow_c_stream__ as a PyCapsule "arrow_array_stream"). */

#include "decode.h"

static struct PyModuleDef native_module;

/* `PyObject ob_base;` is what PyObject_HEAD expands to (spelt out for clang-format). */
typedef struct {
  PyObject ob_base;
  struct ArrowArrayStream stream; /* never read: each export is a clone of it */
  PyObject *key;                  /* tuple of str, or "_dltc_rejects" */
  int64_t num_rows;
} ArrowStreamObject;

typedef struct {
  PyObject ob_base;
  struct dltc_decoder *dec;
  int busy; /* a feed runs with the GIL released: refuse concurrent use */
} DecoderObject;

/* Slot index in module_state.types for each decoder type. */
enum { DEC_TYPE_DECODER = 8, DEC_TYPE_STREAM = 9 };

static void arrow_stream_dealloc(PyObject *self) {
  ArrowStreamObject *o = (ArrowStreamObject *)self;
  PyTypeObject *tp = Py_TYPE(self);
  if (o->stream.release)
    o->stream.release(&o->stream);
  Py_XDECREF(o->key);
  tp->tp_free(self);
  Py_DECREF(tp);
}

/* Capsule destructor: release the stream only if the consumer did not move it out. */
static void arrow_stream_capsule_free(PyObject *capsule) {
  struct ArrowArrayStream *s = PyCapsule_GetPointer(capsule, "arrow_array_stream");
  if (!s) {
    PyErr_Clear();
    return;
  }
  if (s->release)
    s->release(s);
  PyMem_Free(s);
}

/* Returns a new reference to a PyCapsule owning a new stream over the same batches
 * (shared, reference counted): every export yields all rows, so consumers that
 * export twice (DuckDB reads the schema from a first export) work. */
static PyObject *arrow_stream_export(PyObject *self, PyObject *args, PyObject *kwds) {
  ArrowStreamObject *o = (ArrowStreamObject *)self;
  static char *kwlist[] = {"requested_schema", NULL};
  PyObject *requested = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:__arrow_c_stream__", kwlist, &requested))
    return NULL;
  (void)requested; /* the schema is fixed; consumers cast if they need to */
  if (!o->stream.release) {
    PyErr_SetString(PyExc_RuntimeError, "ArrowStream has no data");
    return NULL;
  }
  struct ArrowArrayStream *s = PyMem_Malloc(sizeof *s);
  if (!s)
    return PyErr_NoMemory();
  struct dltc_error err;
  dltc_error_reset(&err);
  if (dltc_stream_clone(&o->stream, s, &err)) {
    PyMem_Free(s);
    if (err.code == DLTC_ENOMEM)
      return PyErr_NoMemory();
    PyErr_SetString(PyExc_RuntimeError, err.msg);
    return NULL;
  }
  PyObject *cap = PyCapsule_New(s, "arrow_array_stream", arrow_stream_capsule_free);
  if (!cap) {
    s->release(s);
    PyMem_Free(s);
    return NULL;
  }
  return cap;
}

/* Returns a new reference (the key). */
static PyObject *arrow_stream_get_key(PyObject *self, void *closure) {
  (void)closure;
  return Py_NewRef(((ArrowStreamObject *)self)->key);
}

/* Returns a new reference. */
static PyObject *arrow_stream_get_num_rows(PyObject *self, void *closure) {
  (void)closure;
  return PyLong_FromLongLong(((ArrowStreamObject *)self)->num_rows);
}

static PyMethodDef arrow_stream_methods[] = {
    {"__arrow_c_stream__", (PyCFunction)(void (*)(void))arrow_stream_export,
     METH_VARARGS | METH_KEYWORDS, "Export the batches once as an ArrowArrayStream capsule."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef arrow_stream_getset[] = {
    {"key", arrow_stream_get_key, NULL,
     "Table key: () root, tuple of raw keys, or '_dltc_rejects'.", NULL},
    {"num_rows", arrow_stream_get_num_rows, NULL, "Rows in the stream.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot arrow_stream_slots[] = {
    {Py_tp_dealloc, arrow_stream_dealloc},
    {Py_tp_methods, arrow_stream_methods},
    {Py_tp_getset, arrow_stream_getset},
    {Py_tp_doc, "One table's record batches from Decoder.flush(); implements __arrow_c_stream__."},
    {0, NULL},
};

static PyType_Spec arrow_stream_spec = {
    .name = "dltc._native.ArrowStream",
    .basicsize = sizeof(ArrowStreamObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = arrow_stream_slots,
};

/* Raise the Python exception for a failed core call; returns NULL. */
static PyObject *decoder_raise(PyObject *self, const struct dltc_error *err) {
  if (err->code == DLTC_ENOMEM)
    return PyErr_NoMemory();
  if (err->code == DLTC_EINVAL && err->offset < 0) {
    PyErr_SetString(PyExc_ValueError, err->msg);
    return NULL;
  }
  PyObject *mod = PyType_GetModuleByDef(Py_TYPE(self), &native_module);
  if (!mod)
    return NULL;
  struct module_state *st = get_state(mod);
  PyObject *msg = PyUnicode_FromFormat("%s at offset %lld (%s)", err->msg, (long long)err->offset,
                                       err->path[0] ? err->path : "$");
  if (!msg)
    return NULL;
  PyObject *exc = PyObject_CallOneArg(st->json_decode_error, msg);
  Py_DECREF(msg);
  if (!exc)
    return NULL;
  PyObject *off = PyLong_FromLongLong(err->offset);
  PyObject *path = PyUnicode_DecodeUTF8(err->path, (Py_ssize_t)strlen(err->path), "replace");
  PyObject *code = PyUnicode_FromString(dltc_code_name(err->code));
  if (off && path && code && PyObject_SetAttrString(exc, "offset", off) == 0 &&
      PyObject_SetAttrString(exc, "path", path) == 0 &&
      PyObject_SetAttrString(exc, "code", code) == 0)
    PyErr_SetObject(st->json_decode_error, exc);
  Py_XDECREF(off);
  Py_XDECREF(path);
  Py_XDECREF(code);
  Py_DECREF(exc);
  return NULL;
}

static int parse_mode(PyObject *v, int *out) {
  static const char *const names[4] = {"evolve", "freeze", "discard_row", "discard_value"};
  if (!PyUnicode_Check(v)) {
    PyErr_SetString(PyExc_TypeError, "contract mode must be a str");
    return -1;
  }
  for (int i = 0; i < 4; i++)
    if (PyUnicode_CompareWithASCIIString(v, names[i]) == 0) {
      *out = i;
      return 0;
    }
  PyErr_Format(PyExc_ValueError, "unknown contract mode %R", v);
  return -1;
}

/* Borrowed reference or NULL (no error) for plan[key]. */
static PyObject *plan_get(PyObject *plan, const char *key) {
  PyObject *v = PyDict_GetItemString(plan, key);
  return v == Py_None ? NULL : v;
}

static int plan_bool(PyObject *plan, const char *key, int *out) {
  PyObject *v = plan_get(plan, key);
  if (!v)
    return 0;
  int b = PyObject_IsTrue(v);
  if (b < 0)
    return -1;
  *out = b;
  return 0;
}

static int plan_i64(PyObject *plan, const char *key, int64_t *out) {
  PyObject *v = plan_get(plan, key);
  if (!v)
    return 0;
  long long x = PyLong_AsLongLong(v);
  if (x == -1 && PyErr_Occurred())
    return -1;
  *out = x;
  return 0;
}

/* Path components of a key/path sequence as UTF-8 pointers (borrowed from the str
 * objects, which the caller keeps alive). Returns a new list holding the strs. */
static PyObject *path_utf8(PyObject *seq, const char ***comps, size_t **lens, size_t *n) {
  PyObject *fast = PySequence_Fast(seq, "path must be a sequence of str");
  if (!fast)
    return NULL;
  Py_ssize_t m = PySequence_Fast_GET_SIZE(fast);
  *comps = PyMem_Calloc((size_t)m + 1, sizeof **comps);
  *lens = PyMem_Calloc((size_t)m + 1, sizeof **lens);
  if (!*comps || !*lens) {
    Py_DECREF(fast);
    PyErr_NoMemory();
    return NULL;
  }
  for (Py_ssize_t i = 0; i < m; i++) {
    PyObject *c = PySequence_Fast_GET_ITEM(fast, i);
    Py_ssize_t l;
    const char *u = PyUnicode_Check(c) ? PyUnicode_AsUTF8AndSize(c, &l) : NULL;
    if (!u) {
      if (!PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "path components must be str");
      Py_DECREF(fast);
      return NULL;
    }
    (*comps)[i] = u;
    (*lens)[i] = (size_t)l;
  }
  *n = (size_t)m;
  return fast;
}

static int decoder_init(PyObject *self, PyObject *args, PyObject *kwds) {
  DecoderObject *o = (DecoderObject *)self;
  static char *kwlist[] = {"plan", NULL};
  PyObject *plan;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!:Decoder", kwlist, &PyDict_Type, &plan))
    return -1;
  if (o->dec) {
    PyErr_SetString(PyExc_RuntimeError, "Decoder already initialised");
    return -1;
  }
  static const char *const known[] = {
      "selector",   "columns",   "infer",      "contract",  "child_tables", "dlt_ids", "load_id",
      "batch_rows", "max_depth", "max_string", "root_name", "table_names",  NULL};
  PyObject *k, *v;
  Py_ssize_t pos = 0;
  while (PyDict_Next(plan, &pos, &k, &v)) {
    int ok = 0;
    for (int i = 0; known[i]; i++)
      if (PyUnicode_Check(k) && PyUnicode_CompareWithASCIIString(k, known[i]) == 0)
        ok = 1;
    if (!ok) {
      PyErr_Format(PyExc_ValueError, "unknown plan key %R", k);
      return -1;
    }
  }
  int rc = -1;
  struct dltc_plan_spec spec;
  dltc_plan_spec_init(&spec);
  PyObject *keep = PyList_New(0); /* keeps str/sequence objects alive */
  struct dltc_column_spec *cols = NULL;
  struct dltc_table_name *tnames = NULL;
  size_t ncols = 0, ntn = 0;
  if (!keep)
    return -1;
  PyObject *x;
  if ((x = plan_get(plan, "selector"))) {
    if (!(spec.selector = PyUnicode_AsUTF8(x)))
      goto out;
  }
  if ((x = plan_get(plan, "load_id"))) {
    if (!(spec.load_id = PyUnicode_AsUTF8(x)))
      goto out;
  }
  if ((x = plan_get(plan, "root_name"))) {
    if (!(spec.root_name = PyUnicode_AsUTF8(x)))
      goto out;
  }
  if (plan_bool(plan, "infer", &spec.infer) ||
      plan_bool(plan, "child_tables", &spec.child_tables) ||
      plan_bool(plan, "dlt_ids", &spec.dlt_ids) || plan_i64(plan, "batch_rows", &spec.batch_rows) ||
      plan_i64(plan, "max_string", &spec.max_string))
    goto out;
  {
    int64_t md = spec.max_depth;
    if (plan_i64(plan, "max_depth", &md))
      goto out;
    if (md < 1 || md > DLTC_MAX_DEPTH) {
      PyErr_SetString(PyExc_ValueError, "max_depth must be in 1..4096");
      goto out;
    }
    spec.max_depth = (int)md;
  }
  if ((x = plan_get(plan, "contract"))) {
    if (PyUnicode_Check(x)) {
      if (parse_mode(x, &spec.mode_columns) || parse_mode(x, &spec.mode_data_type))
        goto out;
    } else if (PyDict_Check(x)) {
      PyObject *m;
      if ((m = PyDict_GetItemString(x, "columns")) && parse_mode(m, &spec.mode_columns))
        goto out;
      if ((m = PyDict_GetItemString(x, "data_type")) && parse_mode(m, &spec.mode_data_type))
        goto out;
    } else {
      PyErr_SetString(PyExc_TypeError, "contract must be a dict or a mode str");
      goto out;
    }
  }
  if ((x = plan_get(plan, "columns"))) {
    PyObject *fast = PySequence_Fast(x, "columns must be a list of dicts");
    if (!fast)
      goto out;
    int app = PyList_Append(keep, fast);
    Py_DECREF(fast);
    if (app)
      goto out;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(fast);
    cols = PyMem_Calloc((size_t)m + 1, sizeof *cols);
    if (!cols) {
      PyErr_NoMemory();
      goto out;
    }
    for (Py_ssize_t i = 0; i < m; i++) {
      PyObject *c = PySequence_Fast_GET_ITEM(fast, i);
      if (!PyDict_Check(c)) {
        PyErr_SetString(PyExc_TypeError, "each column must be a dict");
        goto out;
      }
      struct dltc_column_spec *cs = &cols[ncols++];
      cs->nullable = 1;
      PyObject *p = PyDict_GetItemString(c, "path");
      if (!p) {
        PyErr_SetString(PyExc_ValueError, "column without 'path'");
        goto out;
      }
      PyObject *held =
          path_utf8(p, (const char ***)&cs->path, (size_t **)&cs->path_len, &cs->npath);
      if (!held)
        goto out;
      app = PyList_Append(keep, held);
      Py_DECREF(held);
      if (app)
        goto out;
      PyObject *t = PyDict_GetItemString(c, "type");
      if (t && t != Py_None) {
        Py_ssize_t tl;
        const char *ts = PyUnicode_Check(t) ? PyUnicode_AsUTF8AndSize(t, &tl) : NULL;
        if (!ts || !(cs->type = dltc_type_from_name(ts, (size_t)tl))) {
          PyErr_Format(PyExc_ValueError, "unknown column type %R", t);
          goto out;
        }
      }
      PyObject *nb = PyDict_GetItemString(c, "nullable");
      if (nb && nb != Py_None && (cs->nullable = PyObject_IsTrue(nb)) < 0)
        goto out;
      PyObject *js = PyDict_GetItemString(c, "json");
      if (js && js != Py_None && (cs->json = PyObject_IsTrue(js)) < 0)
        goto out;
      if (cs->type == DLTC_T_JSON)
        cs->json = 1;
      if (!cs->type && !cs->json) {
        PyErr_SetString(PyExc_ValueError, "column needs a 'type' (or json=True)");
        goto out;
      }
    }
    spec.columns = cols;
    spec.ncolumns = ncols;
  }
  if ((x = plan_get(plan, "table_names"))) {
    if (!PyDict_Check(x)) {
      PyErr_SetString(PyExc_TypeError, "table_names must be a dict {key tuple: name}");
      goto out;
    }
    tnames = PyMem_Calloc((size_t)PyDict_Size(x) + 1, sizeof *tnames);
    if (!tnames) {
      PyErr_NoMemory();
      goto out;
    }
    pos = 0;
    while (PyDict_Next(x, &pos, &k, &v)) {
      struct dltc_table_name *tn = &tnames[ntn++];
      PyObject *held = path_utf8(k, (const char ***)&tn->key, (size_t **)&tn->key_len, &tn->nkey);
      if (!held)
        goto out;
      int app = PyList_Append(keep, held);
      Py_DECREF(held);
      if (app || !(tn->name = PyUnicode_AsUTF8(v)))
        goto out;
    }
    spec.table_names = tnames;
    spec.ntable_names = ntn;
  }
  {
    struct dltc_error err;
    dltc_error_reset(&err);
    if (dltc_decoder_new(&spec, &o->dec, &err)) {
      o->dec = NULL;
      decoder_raise(self, &err);
      goto out;
    }
  }
  rc = 0;
out:
  for (size_t i = 0; i < ncols; i++) {
    PyMem_Free((void *)cols[i].path);
    PyMem_Free((void *)cols[i].path_len);
  }
  PyMem_Free(cols);
  for (size_t i = 0; i < ntn; i++) {
    PyMem_Free((void *)tnames[i].key);
    PyMem_Free((void *)tnames[i].key_len);
  }
  PyMem_Free(tnames);
  Py_DECREF(keep);
  return rc;
}

static void decoder_dealloc(PyObject *self) {
  DecoderObject *o = (DecoderObject *)self;
  PyTypeObject *tp = Py_TYPE(self);
  dltc_decoder_free(o->dec);
  tp->tp_free(self);
  Py_DECREF(tp);
}

static int decoder_ready(DecoderObject *o) {
  if (!o->dec) {
    PyErr_SetString(PyExc_RuntimeError, "Decoder not initialised");
    return -1;
  }
  if (o->busy) {
    PyErr_SetString(PyExc_RuntimeError, "Decoder is in use by another thread");
    return -1;
  }
  return 0;
}

/* Returns a new reference: the number of root rows added. */
static PyObject *decoder_feed(PyObject *self, PyObject *args, PyObject *kwds) {
  DecoderObject *o = (DecoderObject *)self;
  static char *kwlist[] = {"data", "source_url", NULL};
  Py_buffer buf;
  const char *url = "";
  Py_ssize_t url_len = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*|s#:feed", kwlist, &buf, &url, &url_len))
    return NULL;
  if (decoder_ready(o)) {
    PyBuffer_Release(&buf);
    return NULL;
  }
  struct dltc_error err;
  int64_t rows = 0;
  int rc;
  o->busy = 1;
  PyThreadState *ts = PyEval_SaveThread(); /* Py_BEGIN_ALLOW_THREADS */
  rc = dltc_decoder_feed(o->dec, buf.buf, (size_t)buf.len, url, (size_t)url_len, &rows, &err);
  PyEval_RestoreThread(ts);
  o->busy = 0;
  PyBuffer_Release(&buf);
  if (rc)
    return decoder_raise(self, &err);
  return PyLong_FromLongLong(rows);
}

/* Returns a new reference: {key: ArrowStream}. */
static PyObject *decoder_flush(PyObject *self, PyObject *noargs) {
  (void)noargs;
  DecoderObject *o = (DecoderObject *)self;
  if (decoder_ready(o))
    return NULL;
  PyObject *mod = PyType_GetModuleByDef(Py_TYPE(self), &native_module);
  if (!mod)
    return NULL;
  PyTypeObject *stream_type = (PyTypeObject *)get_state(mod)->types[DEC_TYPE_STREAM];
  PyObject *out = PyDict_New();
  if (!out)
    return NULL;
  size_t n = dltc_decoder_ntables(o->dec);
  for (size_t i = 0; i < n; i++) {
    const char *const *key;
    const size_t *key_len;
    int nkey;
    int64_t rows;
    dltc_decoder_table_key(o->dec, i, &key, &key_len, &nkey, &rows);
    if (rows == 0)
      continue;
    PyObject *pk;
    if (nkey < 0)
      pk = PyUnicode_FromString("_dltc_rejects");
    else {
      pk = PyTuple_New(nkey);
      for (int j = 0; pk && j < nkey; j++) {
        PyObject *c = PyUnicode_DecodeUTF8(key[j], (Py_ssize_t)key_len[j], "surrogatepass");
        if (!c) {
          Py_CLEAR(pk);
          break;
        }
        PyTuple_SET_ITEM(pk, j, c);
      }
    }
    if (!pk)
      goto fail;
    ArrowStreamObject *so = (ArrowStreamObject *)stream_type->tp_alloc(stream_type, 0);
    if (!so) {
      Py_DECREF(pk);
      goto fail;
    }
    so->stream.release = NULL;
    so->key = pk; /* stolen */
    so->num_rows = rows;
    struct dltc_error err;
    dltc_error_reset(&err);
    if (dltc_decoder_flush_table(o->dec, i, &so->stream, &err)) {
      Py_DECREF(so);
      decoder_raise(self, &err);
      goto fail;
    }
    int r = PyDict_SetItem(out, pk, (PyObject *)so);
    Py_DECREF(so);
    if (r)
      goto fail;
  }
  return out;
fail:
  Py_DECREF(out);
  return NULL;
}

/* Returns a new reference (None). */
static PyObject *decoder_reset(PyObject *self, PyObject *noargs) {
  (void)noargs;
  DecoderObject *o = (DecoderObject *)self;
  if (decoder_ready(o))
    return NULL;
  dltc_decoder_reset(o->dec);
  Py_RETURN_NONE;
}

/* Returns a new reference: a dict of counters. */
static PyObject *decoder_stats(PyObject *self, PyObject *noargs) {
  (void)noargs;
  DecoderObject *o = (DecoderObject *)self;
  if (decoder_ready(o))
    return NULL;
  struct dltc_decoder_stats s;
  dltc_decoder_stats(o->dec, &s);
  return Py_BuildValue("{sLsLsLsLsLsLsLsLsLsLsLsL}", "documents", (long long)s.documents, "rows",
                       (long long)s.rows, "child_rows", (long long)s.child_rows, "bytes",
                       (long long)s.bytes, "failed_documents", (long long)s.failed_documents,
                       "rejects_new_column", (long long)s.rejects_new_column, "rejects_data_type",
                       (long long)s.rejects_data_type, "rejects_missing",
                       (long long)s.rejects_missing, "rows_discarded", (long long)s.rows_discarded,
                       "variants", (long long)s.variants, "batches", (long long)s.batches,
                       "rejects_unrecorded", (long long)s.rejects_unrecorded);
}

static PyMethodDef decoder_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))decoder_feed, METH_VARARGS | METH_KEYWORDS,
     "feed(data, source_url='') -> int: parse one JSON document (GIL released)."},
    {"flush", decoder_flush, METH_NOARGS, "flush() -> {key: ArrowStream}: tables with rows."},
    {"stats", decoder_stats, METH_NOARGS, "stats() -> dict of counters."},
    {"reset", decoder_reset, METH_NOARGS,
     "reset(): back to the plan (drops learned columns/tables and unflushed rows), keeping "
     "buffer capacities."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot decoder_slots[] = {
    {Py_tp_init, decoder_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, decoder_dealloc},
    {Py_tp_methods, decoder_methods},
    {Py_tp_doc, "Decoder(plan): schema-directed JSON to Arrow (see CONTRACTS.md section 4)."},
    {0, NULL},
};

static PyType_Spec decoder_spec = {
    .name = "dltc._native.Decoder",
    .basicsize = sizeof(DecoderObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = decoder_slots,
};

static int decode_add_types(PyObject *module) {
  struct module_state *st = get_state(module);
  PyObject *t = PyType_FromModuleAndSpec(module, &decoder_spec, NULL);
  if (!t)
    return -1;
  st->types[DEC_TYPE_DECODER] = t;
  if (PyModule_AddObjectRef(module, "Decoder", t) < 0)
    return -1;
  t = PyType_FromModuleAndSpec(module, &arrow_stream_spec, NULL);
  if (!t)
    return -1;
  st->types[DEC_TYPE_STREAM] = t;
  if (PyModule_AddObjectRef(module, "ArrowStream", t) < 0)
    return -1;
  return 0;
}

/* ---------------------------------------------------------------- module -- */

static PyMethodDef module_methods[] = {
    {"version", py_version, METH_NOARGS, "dltc's version."},
    {"curl_version", py_curl_version, METH_NOARGS, "The version line of the libcurl dltc runs on."},
    {NULL, NULL, 0, NULL},
};

static int module_exec(PyObject *module) {
  struct module_state *st = get_state(module);
  if (dltc_global_init() != 0) {
    PyErr_SetString(PyExc_ImportError, "dltc: curl_global_init failed");
    return -1;
  }
  st->json_decode_error = PyErr_NewExceptionWithDoc(
      "dltc.JSONDecodeError",
      "Malformed JSON or a schema contract violation; has .offset and .path.", PyExc_ValueError,
      NULL);
  if (!st->json_decode_error ||
      PyModule_AddObjectRef(module, "JSONDecodeError", st->json_decode_error) < 0)
    return -1;
  st->fetch_error = PyErr_NewExceptionWithDoc(
      "dltc.FetchError", "An HTTP request failed for good; the message names the URL.",
      PyExc_OSError, NULL);
  if (!st->fetch_error || PyModule_AddObjectRef(module, "FetchError", st->fetch_error) < 0)
    return -1;
  if (engine_add_types(module) < 0)
    return -1;
  if (decode_add_types(module) < 0)
    return -1;
  return 0;
}

static int module_traverse(PyObject *module, visitproc visit, void *arg) {
  struct module_state *st = get_state(module);
  Py_VISIT(st->json_decode_error);
  Py_VISIT(st->fetch_error);
  for (size_t i = 0; i < sizeof st->types / sizeof st->types[0]; i++)
    Py_VISIT(st->types[i]);
  return 0;
}

static int module_clear(PyObject *module) {
  struct module_state *st = get_state(module);
  Py_CLEAR(st->json_decode_error);
  Py_CLEAR(st->fetch_error);
  for (size_t i = 0; i < sizeof st->types / sizeof st->types[0]; i++)
    Py_CLEAR(st->types[i]);
  return 0;
}

static void module_free(void *module) { module_clear((PyObject *)module); }

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "dltc._native",
    .m_doc = "C core of dltc: fetch engine and JSON-to-Arrow decoder.",
    .m_size = sizeof(struct module_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModuleDef_Init(&native_module); }
