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

static int decode_add_types(PyObject *module) {
  (void)module;
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
