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
  Py_BEGIN_ALLOW_THREADS
    v = dltc_curl_version();
  Py_END_ALLOW_THREADS
  return PyUnicode_FromString(v);
}

/* ---------------------------------------------------------------- engine -- */

static struct PyModuleDef native_module; /* defined at the end; engine needs it for lookups */

/* Client and Response over csrc/engine.h. Threads: the engine runs its own
 * thread; every Client method may be called from any Python thread (the C
 * engine guards its queues with a mutex, and the tag dict is touched only with
 * the GIL held). next() waits in 50 ms slices with the GIL released and checks
 * for signals between slices, so Ctrl-C interrupts it promptly. */
#include <structmember.h>

#include <strings.h>

#include "engine.h"
#include "http.h"
#include "inflate.h"
#include "arrow.h" /* dltc__free for inflate's buffers */

#define ENGINE_SLICE_MS 50

struct client_object {
  PyObject_HEAD struct dltc_engine *eng;
  PyObject *resp_type;  /* strong: dltc._native.Response */
  PyObject *tags;       /* dict id -> tag, for submits with a tag */
  PyObject *auth_cache; /* dict: canonical JSON of an auth spec -> handle (never shown) */
  int default_auth;     /* handle of Client(auth=...), or DLTC_AUTH_NONE */
  int closed;
};

struct response_object {
  PyObject_HEAD PyObject *id, *tag, *url, *status, *body, *etag, *not_modified, *error, *attempts,
      *elapsed, *http_version, *link_next, *content_encoding, *method, *final_url;
  char *hbuf; /* response headers as "name\0value\0" pairs (malloc'd by the engine) */
  size_t n_headers;
  PyObject *headers; /* list of (name, value), built on first use */
};

static PyMemberDef response_members[] = {
    {"id", T_OBJECT, offsetof(struct response_object, id), READONLY, "Request id from submit()."},
    {"tag", T_OBJECT, offsetof(struct response_object, tag), READONLY,
     "The tag given to submit()."},
    {"url", T_OBJECT, offsetof(struct response_object, url), READONLY, "URL as submitted."},
    {"status", T_OBJECT, offsetof(struct response_object, status), READONLY,
     "Last HTTP status; 0 on transport error or refusal."},
    {"body", T_OBJECT, offsetof(struct response_object, body), READONLY,
     "Decoded body (bytes); b'' for a status in empty_on; None on 304 or error."},
    {"etag", T_OBJECT, offsetof(struct response_object, etag), READONLY, "ETag of the response."},
    {"not_modified", T_OBJECT, offsetof(struct response_object, not_modified), READONLY,
     "True on 304 Not Modified."},
    {"error", T_OBJECT, offsetof(struct response_object, error), READONLY,
     "None on success; else why the request failed for good (status, URL, body start)."},
    {"attempts", T_OBJECT, offsetof(struct response_object, attempts), READONLY,
     "Attempts made (redirect hops not counted)."},
    {"elapsed", T_OBJECT, offsetof(struct response_object, elapsed), READONLY,
     "Seconds from first attempt to completion."},
    {"http_version", T_OBJECT, offsetof(struct response_object, http_version), READONLY,
     "'1.1', '2', ... or None when no response was received."},
    {"link_next", T_OBJECT, offsetof(struct response_object, link_next), READONLY,
     "Target of a Link rel=\"next\" header, or None."},
    {"content_encoding", T_OBJECT, offsetof(struct response_object, content_encoding), READONLY,
     "'gzip' or 'br' when body is still encoded (Client(decompress='caller')), else None."},
    {"method", T_OBJECT, offsetof(struct response_object, method), READONLY,
     "Method of the last hop, upper case (a 303 turns a POST into a GET)."},
    {"final_url", T_OBJECT, offsetof(struct response_object, final_url), READONLY,
     "URL after redirects (== url without any); never holds an API key added by auth."},
    {NULL, 0, 0, 0, NULL},
};

/* Returns a new reference: the headers of the final response as a list of
 * (name, value) str pairs in the order received (built once, then cached). */
static PyObject *response_get_headers(PyObject *self, void *closure) {
  (void)closure;
  struct response_object *r = (struct response_object *)self;
  if (r->headers)
    return Py_NewRef(r->headers);
  PyObject *list = PyList_New((Py_ssize_t)r->n_headers);
  if (!list)
    return NULL;
  const char *p = r->hbuf;
  for (size_t i = 0; i < r->n_headers; i++) {
    size_t nl = strlen(p);
    const char *v = p + nl + 1;
    size_t vl = strlen(v);
    PyObject *t = Py_BuildValue("(NN)", PyUnicode_DecodeLatin1(p, (Py_ssize_t)nl, NULL),
                                PyUnicode_DecodeUTF8(v, (Py_ssize_t)vl, "surrogateescape"));
    if (!t) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    p = v + vl + 1;
  }
  r->headers = list;
  return Py_NewRef(list);
}

/* header(name, default=None): the first value of header name, case-insensitive. */
static PyObject *response_header(PyObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"name", "default", NULL};
  struct response_object *r = (struct response_object *)self;
  const char *name;
  PyObject *dflt = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "s|O:header", kwlist, &name, &dflt))
    return NULL;
  const char *p = r->hbuf;
  for (size_t i = 0; i < r->n_headers; i++) {
    size_t nl = strlen(p);
    const char *v = p + nl + 1;
    size_t vl = strlen(v);
    if (strcasecmp(p, name) == 0)
      return PyUnicode_DecodeUTF8(v, (Py_ssize_t)vl, "surrogateescape");
    p = v + vl + 1;
  }
  return Py_NewRef(dflt);
}

static PyGetSetDef response_getset[] = {
    {"headers", response_get_headers, NULL,
     "Every header of the final response: a list of (name, value) in the order received "
     "(names as sent; use header() for a case-insensitive lookup).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef response_methods[] = {
    {"header", (PyCFunction)(void (*)(void))response_header, METH_VARARGS | METH_KEYWORDS,
     "header(name, default=None) -> str | None\n\nFirst value of a response header, "
     "case-insensitive."},
    {NULL, NULL, 0, NULL},
};

static int response_traverse(PyObject *self, visitproc visit, void *arg) {
  struct response_object *r = (struct response_object *)self;
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(r->tag);
  return 0;
}

static int response_clear(PyObject *self) {
  struct response_object *r = (struct response_object *)self;
  Py_CLEAR(r->id);
  Py_CLEAR(r->tag);
  Py_CLEAR(r->url);
  Py_CLEAR(r->status);
  Py_CLEAR(r->body);
  Py_CLEAR(r->etag);
  Py_CLEAR(r->not_modified);
  Py_CLEAR(r->error);
  Py_CLEAR(r->attempts);
  Py_CLEAR(r->elapsed);
  Py_CLEAR(r->http_version);
  Py_CLEAR(r->link_next);
  Py_CLEAR(r->content_encoding);
  Py_CLEAR(r->method);
  Py_CLEAR(r->final_url);
  Py_CLEAR(r->headers);
  return 0;
}

static void response_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  response_clear(self);
  free(((struct response_object *)self)->hbuf);
  tp->tp_free(self);
  Py_DECREF(tp);
}

/* Returns a new reference to the repr string. */
static PyObject *response_repr(PyObject *self) {
  struct response_object *r = (struct response_object *)self;
  return PyUnicode_FromFormat("<Response id=%S status=%S url=%R%s>", r->id, r->status, r->url,
                              r->error != Py_None ? " error" : "");
}

static PyType_Slot response_slots[] = {
    {Py_tp_doc, "A finished request: delivered exactly once per Client.submit()."},
    {Py_tp_members, response_members},
    {Py_tp_getset, response_getset},
    {Py_tp_methods, response_methods},
    {Py_tp_traverse, response_traverse},
    {Py_tp_clear, response_clear},
    {Py_tp_dealloc, response_dealloc},
    {Py_tp_repr, response_repr},
    {0, NULL},
};

static PyType_Spec response_spec = {
    .name = "dltc._native.Response",
    .basicsize = sizeof(struct response_object),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = response_slots,
};

/* Returns a new reference: s decoded as UTF-8 (invalid bytes replaced), or None for NULL. */
static PyObject *str_or_none(const char *s) {
  if (!s)
    Py_RETURN_NONE;
  return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

/* Consumes r (always freed). Returns a new reference to a Response, or NULL
 * with an exception set. */
static PyObject *response_from(struct client_object *c, struct dltc_response *r) {
  struct response_object *o = NULL;
  PyObject *key = PyLong_FromUnsignedLongLong(r->id);
  if (!key)
    goto out;
  o = PyObject_GC_New(struct response_object, (PyTypeObject *)c->resp_type);
  if (!o)
    goto out;
  o->id = key;
  key = NULL;
  o->tag = NULL;
  o->headers = NULL;
  o->hbuf = r->headers; /* taken over: freed with the Response */
  o->n_headers = r->headers ? r->n_headers : 0;
  r->headers = NULL;
  o->url = str_or_none(r->url);
  o->final_url = !r->final_url || strcmp(r->final_url, r->url) == 0 ? Py_XNewRef(o->url)
                                                                    : str_or_none(r->final_url);
  o->method = PyUnicode_FromString(r->method ? r->method : "GET");
  o->status = PyLong_FromLong(r->status);
  if (r->error || !r->body)
    o->body = Py_NewRef(Py_None);
  else
    o->body = PyBytes_FromStringAndSize(r->body, (Py_ssize_t)r->body_len);
  o->etag = str_or_none(r->etag);
  o->not_modified = PyBool_FromLong(r->not_modified);
  o->error = str_or_none(r->error);
  o->attempts = PyLong_FromLong(r->attempts);
  o->elapsed = PyFloat_FromDouble(r->elapsed);
  switch (r->http_version) {
  case 10: o->http_version = PyUnicode_FromString("1.0"); break;
  case 11: o->http_version = PyUnicode_FromString("1.1"); break;
  case 20: o->http_version = PyUnicode_FromString("2"); break;
  case 30: o->http_version = PyUnicode_FromString("3"); break;
  default: o->http_version = Py_NewRef(Py_None); break;
  }
  o->link_next = str_or_none(r->link_next);
  o->content_encoding = str_or_none(r->encoding != DLTC_ENC_IDENTITY && !r->error && r->body
                                        ? dltc_encoding_name(r->encoding)
                                        : NULL);
  /* the tag: popped so the dict holds only pending ids */
  PyObject *tag = PyDict_GetItemWithError(c->tags, o->id);
  if (tag) {
    o->tag = Py_NewRef(tag);
    if (PyDict_DelItem(c->tags, o->id) < 0)
      PyErr_Clear();
  } else {
    if (PyErr_Occurred())
      PyErr_Clear();
    o->tag = Py_NewRef(Py_None);
  }
  PyObject_GC_Track((PyObject *)o);
  if (!o->url || !o->status || !o->body || !o->etag || !o->not_modified || !o->error ||
      !o->attempts || !o->elapsed || !o->http_version || !o->link_next || !o->content_encoding ||
      !o->method || !o->final_url) {
    Py_CLEAR(o);
  }
out:
  Py_XDECREF(key);
  dltc_response_free(r);
  return (PyObject *)o;
}

static int client_ok(struct client_object *c) {
  if (c->closed || !c->eng) {
    PyErr_SetString(PyExc_ValueError, "the Client is closed");
    return 0;
  }
  return 1;
}

/* Sets a Python exception for a failed engine call. Always returns NULL. */
static PyObject *engine_raise(int code, const struct dltc_error *err) {
  PyObject *exc = PyExc_RuntimeError;
  if (code == DLTC_ENOMEM)
    return PyErr_NoMemory();
  if (code == DLTC_EINVAL || code == DLTC_ECANCEL)
    exc = PyExc_ValueError;
  PyErr_SetString(exc, err->msg[0] ? err->msg : dltc_code_name(code));
  return NULL;
}

/* Fills list[] with new UTF-8 copies of an iterable of str; returns count or -1. */
static Py_ssize_t strings_from(PyObject *iterable, char **list, Py_ssize_t cap, const char *what) {
  Py_ssize_t n = 0;
  PyObject *it = PyObject_GetIter(iterable), *item;
  if (!it)
    return -1;
  while ((item = PyIter_Next(it))) {
    const char *s = PyUnicode_Check(item) ? PyUnicode_AsUTF8(item) : NULL;
    if (!s || n >= cap) {
      if (!PyErr_Occurred())
        PyErr_Format(PyExc_TypeError, "%s: expected at most %zd str items", what, cap);
      Py_DECREF(item);
      Py_DECREF(it);
      return -1;
    }
    list[n] = strdup(s);
    Py_DECREF(item);
    if (!list[n]) {
      Py_DECREF(it);
      PyErr_NoMemory();
      return -1;
    }
    n++;
  }
  Py_DECREF(it);
  return PyErr_Occurred() ? -1 : n;
}

/* Fills list[] with "Name: value" copies from a mapping or an iterable of pairs
 * or of "Name: value" strings; returns count or -1. */
static Py_ssize_t headers_from(PyObject *obj, char **list, Py_ssize_t cap) {
  Py_ssize_t n = 0;
  PyObject *items =
      PyMapping_Check(obj) && !PyUnicode_Check(obj) && PyObject_HasAttrString(obj, "items")
          ? PyMapping_Items(obj)
          : PySequence_List(obj);
  if (!items)
    return -1;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
    PyObject *item = PyList_GET_ITEM(items, i);
    PyObject *line = NULL;
    if (PyUnicode_Check(item))
      line = Py_NewRef(item);
    else if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2 &&
             PyTuple_GET_ITEM(item, 1) == Py_None)
      line = PyUnicode_FromFormat("%S:", PyTuple_GET_ITEM(item, 0)); /* removes the header */
    else if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2)
      line = PyUnicode_FromFormat("%S: %S", PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1));
    else
      PyErr_SetString(PyExc_TypeError,
                      "headers: a dict, or (name, value) pairs, or 'Name: value' str");
    const char *s = line ? PyUnicode_AsUTF8(line) : NULL;
    if (s && n >= cap)
      PyErr_Format(PyExc_ValueError, "headers: at most %zd", cap);
    else if (s && (strpbrk(s, "\r\n") || !strchr(s, ':')))
      PyErr_SetString(PyExc_ValueError, "headers: a value contains CR/LF or a line has no ':'");
    else if (s && !(list[n++] = strdup(s)))
      PyErr_NoMemory();
    Py_XDECREF(line);
    if (PyErr_Occurred()) {
      Py_DECREF(items);
      return -1;
    }
  }
  Py_DECREF(items);
  return n;
}

/* ---- requests: params, bodies, auth specs ---------------------------------------- */

/* UTF-8 bytes of a param key/value the way requests stringifies it: str as is,
 * bytes raw, anything else str(v) (True -> "True", 1.5 -> "1.5"). *hold gets a
 * new reference to keep alive (or NULL). Returns 0 or -1. */
static int param_text(PyObject *v, PyObject **hold, const char **s, size_t *n) {
  Py_ssize_t len = 0;
  *hold = NULL;
  if (PyBytes_Check(v)) {
    *s = PyBytes_AS_STRING(v);
    *n = (size_t)PyBytes_GET_SIZE(v);
    return 0;
  }
  if (!PyUnicode_Check(v)) {
    if (!(*hold = PyObject_Str(v)))
      return -1;
    v = *hold;
  }
  if (!(*s = PyUnicode_AsUTF8AndSize(v, &len)))
    return -1;
  *n = (size_t)len;
  return 0;
}

/* Growing arrays of key/value pointers and the objects that own them. */
struct pairs {
  const char **kv;
  size_t *lens;
  size_t n, cap;  /* pairs */
  PyObject *hold; /* list of objects kept alive while kv is used */
};

static void pairs_free(struct pairs *p) {
  PyMem_Free(p->kv);
  PyMem_Free(p->lens);
  Py_XDECREF(p->hold);
  memset(p, 0, sizeof *p);
}

static int pairs_add(struct pairs *p, PyObject *k, PyObject *v) {
  PyObject *hk = NULL, *hv = NULL;
  const char *ks, *vs;
  size_t kn, vn;
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 16;
    const char **kv = PyMem_Realloc(p->kv, 2 * cap * sizeof *kv);
    if (!kv)
      return PyErr_NoMemory(), -1;
    p->kv = kv;
    size_t *lens = PyMem_Realloc(p->lens, 2 * cap * sizeof *lens);
    if (!lens)
      return PyErr_NoMemory(), -1;
    p->lens = lens;
    p->cap = cap;
  }
  if (param_text(k, &hk, &ks, &kn) < 0)
    return -1;
  if (param_text(v, &hv, &vs, &vn) < 0) {
    Py_XDECREF(hk);
    return -1;
  }
  int rc = 0;
  if ((hk && PyList_Append(p->hold, hk) < 0) || (hv && PyList_Append(p->hold, hv) < 0))
    rc = -1;
  Py_XDECREF(hk);
  Py_XDECREF(hv);
  if (rc < 0)
    return -1;
  p->kv[2 * p->n] = ks;
  p->lens[2 * p->n] = kn;
  p->kv[2 * p->n + 1] = vs;
  p->lens[2 * p->n + 1] = vn;
  p->n++;
  return 0;
}

/* Collect a mapping or an iterable of (key, value) pairs as requests'
 * _encode_params does: a list/tuple value repeats the key, None is left out. */
static int pairs_from(PyObject *obj, const char *what, struct pairs *p) {
  PyObject *items = NULL;
  int rc = -1;
  memset(p, 0, sizeof *p);
  if (!(p->hold = PyList_New(0)))
    return -1;
  if (PyDict_Check(obj) || (PyMapping_Check(obj) && PyObject_HasAttrString(obj, "items")))
    items = PyMapping_Items(obj);
  else if (PyUnicode_Check(obj) || PyBytes_Check(obj))
    PyErr_Format(PyExc_TypeError, "%s: a dict or (key, value) pairs, not a str", what);
  else
    items = PySequence_List(obj);
  if (!items)
    goto out;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
    PyObject *it = PyList_GET_ITEM(items, i);
    if (!PyTuple_Check(it) || PyTuple_GET_SIZE(it) != 2) {
      PyErr_Format(PyExc_TypeError, "%s: expected (key, value) pairs", what);
      goto out;
    }
    PyObject *k = PyTuple_GET_ITEM(it, 0), *v = PyTuple_GET_ITEM(it, 1);
    if (PyList_Check(v) || PyTuple_Check(v)) {
      for (Py_ssize_t j = 0; j < PySequence_Fast_GET_SIZE(v); j++) {
        PyObject *x = PySequence_Fast_GET_ITEM(v, j);
        if (x != Py_None && pairs_add(p, k, x) < 0)
          goto out;
      }
    } else if (v != Py_None && pairs_add(p, k, v) < 0) {
      goto out;
    }
  }
  rc = 0;
out:
  Py_XDECREF(items);
  if (rc < 0)
    pairs_free(p);
  return rc;
}

/* Returns a new bytes object: pairs form-encoded as "k=v&k2=v2" (quote_plus). */
static PyObject *pairs_form(const struct pairs *p) {
  size_t need = 1;
  for (size_t i = 0; i < 2 * p->n; i++)
    need += 3 * p->lens[i] + 1;
  PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)need);
  if (!b)
    return NULL;
  char *out = PyBytes_AS_STRING(b);
  size_t o = 0;
  for (size_t i = 0; i < p->n; i++) {
    if (i)
      out[o++] = '&';
    o += dltc_form_encode(p->kv[2 * i], p->lens[2 * i], out + o);
    out[o++] = '=';
    o += dltc_form_encode(p->kv[2 * i + 1], p->lens[2 * i + 1], out + o);
  }
  if (_PyBytes_Resize(&b, (Py_ssize_t)o) < 0)
    return NULL;
  return b;
}

/* spec[key] as a new UTF-8 copy in *out (str, or str() of a number); missing or
 * None leaves *out NULL. Returns 0 or -1. The value is never put in a message. */
static int spec_text(PyObject *spec, const char *key, char **out) {
  *out = NULL;
  PyObject *v = PyDict_GetItemString(spec, key); /* borrowed */
  if (!v || v == Py_None)
    return 0;
  PyObject *hold = NULL;
  const char *s;
  size_t n;
  if (!PyUnicode_Check(v) && !PyLong_Check(v) && !PyFloat_Check(v)) {
    PyErr_Format(PyExc_TypeError, "auth: %s must be a str", key);
    return -1;
  }
  if (param_text(v, &hold, &s, &n) < 0)
    return -1;
  *out = strndup(s, n);
  Py_XDECREF(hold);
  if (!*out) {
    PyErr_NoMemory();
    return -1;
  }
  return 0;
}

/* Register a spec dict (see docs/CONTRACTS.md 3.9) and store its handle. The spec's
 * secrets go into C copies only; error messages name keys, never values. */
static int auth_register(struct client_object *c, PyObject *spec, int *handle) {
  static const char *keys[] = {"token",     "name",          "api_key",
                               "username",  "password",      "access_token_url",
                               "client_id", "client_secret", NULL};
  char *v[8] = {0};
  char *form[2 * DLTC_AUTH_MAX_FORM] = {0};
  struct dltc_auth_spec sp = {0};
  int rc = -1;
  const char *type = NULL;
  PyObject *t = PyDict_GetItemString(spec, "type");
  if (!t || !(type = PyUnicode_Check(t) ? PyUnicode_AsUTF8(t) : NULL)) {
    if (!PyErr_Occurred())
      PyErr_SetString(PyExc_ValueError, "auth: the spec needs a 'type' str");
    return -1;
  }
  for (int i = 0; keys[i]; i++)
    if (spec_text(spec, keys[i], &v[i]) < 0)
      goto out;
  sp.token = v[0];
  sp.name = v[1];
  sp.api_key = v[2];
  sp.username = v[3];
  sp.password = v[4];
  sp.token_url = v[5];
  sp.client_id = v[6];
  sp.client_secret = v[7];
  if (strcmp(type, "bearer") == 0) {
    sp.type = DLTC_AUTH_BEARER;
  } else if (strcmp(type, "api_key") == 0) {
    sp.type = DLTC_AUTH_API_KEY;
    if (!sp.name)
      sp.name = "Authorization"; /* dlt's default */
    PyObject *loc = PyDict_GetItemString(spec, "location");
    const char *l =
        loc && loc != Py_None && PyUnicode_Check(loc) ? PyUnicode_AsUTF8(loc) : "header";
    if (!l)
      goto out;
    if (strcmp(l, "query") == 0 || strcmp(l, "param") == 0) {
      sp.in_query = 1;
    } else if (strcmp(l, "header") != 0) {
      PyErr_Format(PyExc_ValueError, "auth: api_key location must be 'header' or 'query', not %R",
                   loc);
      goto out;
    }
  } else if (strcmp(type, "http_basic") == 0) {
    sp.type = DLTC_AUTH_BASIC;
  } else if (strcmp(type, "oauth2_client_credentials") == 0) {
    sp.type = DLTC_AUTH_OAUTH2_CC;
    sp.default_expiration = 3600;
    PyObject *d = PyDict_GetItemString(spec, "default_token_expiration");
    if (d && d != Py_None && (sp.default_expiration = PyFloat_AsDouble(d)) == -1.0 &&
        PyErr_Occurred())
      goto out;
    PyObject *ca = PyDict_GetItemString(spec, "client_auth");
    const char *cas = ca && ca != Py_None && PyUnicode_Check(ca) ? PyUnicode_AsUTF8(ca) : "body";
    if (!cas)
      goto out;
    if (strcmp(cas, "basic") == 0) {
      sp.client_auth_basic = 1;
    } else if (strcmp(cas, "body") != 0) {
      PyErr_SetString(PyExc_ValueError, "auth: client_auth must be 'body' or 'basic'");
      goto out;
    }
    PyObject *data = PyDict_GetItemString(spec, "access_token_request_data");
    if (data && data != Py_None) {
      struct pairs p;
      if (pairs_from(data, "auth: access_token_request_data", &p) < 0)
        goto out;
      if (p.n > DLTC_AUTH_MAX_FORM) {
        pairs_free(&p);
        PyErr_Format(PyExc_ValueError, "auth: at most %d access_token_request_data fields",
                     DLTC_AUTH_MAX_FORM);
        goto out;
      }
      for (size_t i = 0; i < 2 * p.n; i++)
        if (!(form[i] = strndup(p.kv[i], p.lens[i]))) {
          pairs_free(&p);
          PyErr_NoMemory();
          goto out;
        }
      sp.form = (const char *const *)form;
      sp.n_form = p.n;
      pairs_free(&p);
    }
  } else {
    PyErr_Format(PyExc_ValueError,
                 "auth: unknown type %R (bearer, api_key, http_basic, oauth2_client_credentials)",
                 t);
    goto out;
  }
  struct dltc_error err;
  dltc_error_reset(&err);
  int erc = dltc_engine_add_auth(c->eng, &sp, handle, &err);
  if (erc) {
    engine_raise(erc, &err);
    goto out;
  }
  rc = 0;
out:
  for (int i = 0; i < 8; i++) {
    if (v[i])
      memset(v[i], 0, strlen(v[i]));
    free(v[i]);
  }
  for (size_t i = 0; i < 2 * DLTC_AUTH_MAX_FORM; i++)
    free(form[i]);
  return rc;
}

/* auth= of Client() or submit(): a handle (int), False (none) or a spec dict
 * (registered once per distinct spec: cached by its canonical JSON). */
static int auth_handle(struct client_object *c, PyObject *auth, int *handle) {
  if (auth == Py_False) {
    *handle = DLTC_AUTH_NONE;
    return 0;
  }
  if (PyLong_Check(auth) && !PyBool_Check(auth)) {
    long h = PyLong_AsLong(auth);
    if (h == -1 && PyErr_Occurred())
      return -1;
    *handle = (int)h;
    return 0;
  }
  if (!PyDict_Check(auth)) {
    PyErr_SetString(PyExc_TypeError, "auth must be a spec dict, a handle from add_auth() or False");
    return -1;
  }
  PyObject *json = PyImport_ImportModule("json"), *key = NULL;
  if (!json)
    return -1;
  PyObject *dumps = PyObject_GetAttrString(json, "dumps"), *args = NULL, *kw = NULL;
  Py_DECREF(json);
  if (dumps && (args = PyTuple_Pack(1, auth)) &&
      (kw = Py_BuildValue("{s:O,s:O}", "sort_keys", Py_True, "default",
                          (PyObject *)&PyUnicode_Type)))
    key = PyObject_Call(dumps, args, kw);
  Py_XDECREF(dumps);
  Py_XDECREF(args);
  Py_XDECREF(kw);
  if (!key)
    return -1;
  PyObject *hit = PyDict_GetItemWithError(c->auth_cache, key);
  if (hit) {
    *handle = (int)PyLong_AsLong(hit);
    Py_DECREF(key);
    return 0;
  }
  if (PyErr_Occurred() || auth_register(c, auth, handle) < 0) {
    Py_DECREF(key);
    return -1;
  }
  PyObject *hv = PyLong_FromLong(*handle);
  int rc = hv ? PyDict_SetItem(c->auth_cache, key, hv) : -1;
  Py_XDECREF(hv);
  Py_DECREF(key);
  return rc;
}

static PyObject *client_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"max_concurrency",
                           "initial_concurrency",
                           "rps",
                           "max_attempts",
                           "max_retry_time",
                           "connect_timeout",
                           "timeout",
                           "low_speed_time",
                           "max_body",
                           "max_ratio",
                           "max_redirects",
                           "same_host_redirects",
                           "allowed_hosts",
                           "ca_file",
                           "verify",
                           "headers",
                           "http2",
                           "queue_size",
                           "user_agent",
                           "backoff_base",
                           "backoff_cap",
                           "loop",
                           "decompress",
                           "auth",
                           NULL};
  struct dltc_engine_config cfg;
  dltc_engine_config_init(&cfg);
  PyObject *rps = Py_None, *allowed = Py_None, *ca = Py_None, *headers = Py_None, *ua = Py_None,
           *auth = Py_None;
  const char *loop = NULL, *decompress = NULL;
  long long max_body = cfg.max_body;
  char *hosts[DLTC_MAX_ALLOWED_HOSTS] = {0}, *hdrs[DLTC_MAX_HEADERS] = {0};
  Py_ssize_t n_hosts = 0, n_hdrs = 0;
  struct client_object *c = NULL;
  PyObject *mod, *result = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$iiOiddddLdipOOpOpiOddzzO:Client", kwlist,
                                   &cfg.max_concurrency, &cfg.initial_concurrency, &rps,
                                   &cfg.max_attempts, &cfg.max_retry_time, &cfg.connect_timeout,
                                   &cfg.timeout, &cfg.low_speed_time, &max_body, &cfg.max_ratio,
                                   &cfg.max_redirects, &cfg.same_host_redirects, &allowed, &ca,
                                   &cfg.verify, &headers, &cfg.http2, &cfg.queue_size, &ua,
                                   &cfg.backoff_base, &cfg.backoff_cap, &loop, &decompress, &auth))
    return NULL;
  cfg.max_body = max_body;
  if (rps != Py_None && ((cfg.rps = PyFloat_AsDouble(rps)) == -1.0 && PyErr_Occurred()))
    goto out;
  if (loop && strcmp(loop, "poll") != 0 && strcmp(loop, "epoll") != 0) {
    PyErr_SetString(PyExc_ValueError, "loop must be 'poll' or 'epoll'");
    goto out;
  }
  if (decompress && strcmp(decompress, "engine") != 0 && strcmp(decompress, "caller") != 0) {
    PyErr_SetString(PyExc_ValueError, "decompress must be 'engine' or 'caller'");
    goto out;
  }
  cfg.decompress_caller = decompress && strcmp(decompress, "caller") == 0;
  if (loop)
    cfg.loop = strcmp(loop, "epoll") == 0 ? DLTC_LOOP_EPOLL : DLTC_LOOP_POLL;
  if (allowed != Py_None) {
    if (PyUnicode_Check(allowed)) {
      PyErr_SetString(PyExc_TypeError, "allowed_hosts must be a list of host names, not a str");
      goto out;
    }
    if ((n_hosts = strings_from(allowed, hosts, DLTC_MAX_ALLOWED_HOSTS, "allowed_hosts")) < 0)
      goto out;
    cfg.allowed_hosts = (const char *const *)hosts;
    cfg.n_allowed = (size_t)n_hosts;
  }
  if (headers != Py_None) {
    if ((n_hdrs = headers_from(headers, hdrs, DLTC_MAX_HEADERS)) < 0)
      goto out;
    cfg.headers = (const char *const *)hdrs;
    cfg.n_headers = (size_t)n_hdrs;
  }
  if (ca != Py_None) {
    PyObject *fs = PyOS_FSPath(ca);
    if (!fs)
      goto out;
    PyObject *b = NULL;
    if (!PyUnicode_FSConverter(fs, &b)) {
      Py_DECREF(fs);
      goto out;
    }
    Py_DECREF(fs);
    char *p = strdup(PyBytes_AS_STRING(b));
    Py_DECREF(b);
    if (!p) {
      PyErr_NoMemory();
      goto out;
    }
    cfg.ca_file = p;
  }
  if (ua != Py_None && !(cfg.user_agent = PyUnicode_AsUTF8(ua)))
    goto out;
  if (!(mod = PyType_GetModuleByDef(type, &native_module)))
    goto out;
  c = (struct client_object *)type->tp_alloc(type, 0);
  if (!c)
    goto out;
  if (!(c->resp_type = PyObject_GetAttrString(mod, "Response")) || !(c->tags = PyDict_New()) ||
      !(c->auth_cache = PyDict_New()))
    goto out;
  struct dltc_error err;
  dltc_error_reset(&err);
  int rc = dltc_engine_new(&cfg, &c->eng, &err);
  if (rc) {
    engine_raise(rc, &err);
    goto out;
  }
  if (auth != Py_None && auth != Py_False && auth_handle(c, auth, &c->default_auth) < 0)
    goto out;
  result = (PyObject *)c;
  c = NULL;
out:
  Py_XDECREF(c);
  for (size_t i = 0; i < DLTC_MAX_ALLOWED_HOSTS; i++) /* also on partial failure */
    free(hosts[i]);
  for (size_t i = 0; i < DLTC_MAX_HEADERS; i++)
    free(hdrs[i]);
  free((char *)cfg.ca_file);
  return result;
}

static int client_traverse(PyObject *self, visitproc visit, void *arg) {
  struct client_object *c = (struct client_object *)self;
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(c->resp_type);
  Py_VISIT(c->tags);
  Py_VISIT(c->auth_cache);
  return 0;
}

static int client_clear(PyObject *self) {
  struct client_object *c = (struct client_object *)self;
  Py_CLEAR(c->resp_type);
  Py_CLEAR(c->tags);
  Py_CLEAR(c->auth_cache);
  return 0;
}

static void client_dealloc(PyObject *self) {
  struct client_object *c = (struct client_object *)self;
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  if (c->eng) {
    struct dltc_engine *eng = c->eng;
    c->eng = NULL;
    PyThreadState *ts = PyEval_SaveThread();
    dltc_engine_free(eng);
    PyEval_RestoreThread(ts);
  }
  client_clear(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}

/* submit(url, *, method="GET", params=None, headers=None, body=None, json=None,
 * data=None, auth=None, tag=None, etag=None, empty_on=()) -> int. The body
 * helpers live here: json= is json.dumps(obj, allow_nan=False) as UTF-8 with
 * Content-Type: application/json, data= a mapping/pairs form-encoded with
 * Content-Type: application/x-www-form-urlencoded or str/bytes sent raw (as
 * requests does); a Content-Type in headers wins. */
static PyObject *client_submit(PyObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"url",  "method", "params", "headers", "body",     "json",
                           "data", "auth",   "tag",    "etag",    "empty_on", NULL};
  struct client_object *c = (struct client_object *)self;
  const char *url, *etag = NULL, *method = NULL;
  PyObject *tag = Py_None, *empty = NULL, *params = Py_None, *headers = Py_None, *body = Py_None,
           *json = Py_None, *data = Py_None, *auth = Py_None;
  int codes[DLTC_MAX_EMPTY_ON];
  size_t n_codes = 0;
  char *lines[DLTC_MAX_REQ_HEADERS + 1] = {0};
  Py_ssize_t n_lines = 0;
  char *full_url = NULL;
  PyObject *body_obj = NULL, *result = NULL, *key = NULL;
  const char *ctype = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "s|$zOOOOOOOzO:submit", kwlist, &url, &method,
                                   &params, &headers, &body, &json, &data, &auth, &tag, &etag,
                                   &empty))
    return NULL;
  if (!client_ok(c))
    return NULL;
  if (empty && empty != Py_None) {
    PyObject *seq = PySequence_Fast(empty, "empty_on must be a sequence of HTTP statuses");
    if (!seq)
      return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > DLTC_MAX_EMPTY_ON) {
      Py_DECREF(seq);
      PyErr_Format(PyExc_ValueError, "empty_on: at most %d statuses", DLTC_MAX_EMPTY_ON);
      return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
      long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
      if (v == -1 && PyErr_Occurred()) {
        Py_DECREF(seq);
        return NULL;
      }
      codes[n_codes++] = (int)v;
    }
    Py_DECREF(seq);
  }
  struct dltc_request rq = {.method = method, .etag = etag, .empty_on = codes, .n_empty = n_codes};
  rq.auth = c->default_auth;
  if (auth != Py_None && auth_handle(c, auth, &rq.auth) < 0)
    goto out;
  if (params != Py_None) {
    struct pairs p;
    if (pairs_from(params, "params", &p) < 0)
      goto out;
    struct dltc_error qerr;
    int qrc = dltc_url_add_query(url, p.kv, p.lens, p.n, &full_url, &qerr);
    pairs_free(&p);
    if (qrc) {
      engine_raise(qrc, &qerr);
      goto out;
    }
  }
  rq.url = full_url ? full_url : url;
  if ((body != Py_None) + (json != Py_None) + (data != Py_None) > 1) {
    PyErr_SetString(PyExc_TypeError, "give at most one of body, json and data");
    goto out;
  }
  if (body != Py_None) {
    if (!PyBytes_Check(body)) {
      if (!(body_obj = PyBytes_FromObject(body)))
        goto out;
    } else {
      body_obj = Py_NewRef(body);
    }
  } else if (json != Py_None) {
    PyObject *mod = PyImport_ImportModule("json"), *dumps = NULL, *a = NULL, *kw = NULL,
             *text = NULL;
    if (mod && (dumps = PyObject_GetAttrString(mod, "dumps")) && (a = PyTuple_Pack(1, json)) &&
        (kw = Py_BuildValue("{s:O}", "allow_nan", Py_False)) &&
        (text = PyObject_Call(dumps, a, kw)))
      body_obj = PyUnicode_AsUTF8String(text);
    Py_XDECREF(mod);
    Py_XDECREF(dumps);
    Py_XDECREF(a);
    Py_XDECREF(kw);
    Py_XDECREF(text);
    if (!body_obj)
      goto out;
    ctype = "Content-Type: application/json";
  } else if (data != Py_None) {
    if (PyUnicode_Check(data)) {
      body_obj = PyUnicode_AsUTF8String(data);
    } else if (PyBytes_Check(data) || PyByteArray_Check(data) || PyMemoryView_Check(data)) {
      body_obj = PyBytes_FromObject(data);
    } else {
      struct pairs p;
      if (pairs_from(data, "data", &p) < 0)
        goto out;
      body_obj = pairs_form(&p);
      pairs_free(&p);
      ctype = "Content-Type: application/x-www-form-urlencoded";
    }
    if (!body_obj)
      goto out;
  }
  if (body_obj) {
    rq.body = PyBytes_AS_STRING(body_obj);
    rq.body_len = (size_t)PyBytes_GET_SIZE(body_obj);
  }
  if (headers != Py_None && (n_lines = headers_from(headers, lines, DLTC_MAX_REQ_HEADERS)) < 0)
    goto out;
  if (ctype) {
    int has = 0;
    for (Py_ssize_t i = 0; i < n_lines; i++)
      has |= strncasecmp(lines[i], "content-type", 12) == 0 &&
             (lines[i][12] == ':' || lines[i][12] == ' ');
    if (!has && !(lines[n_lines++] = strdup(ctype))) {
      PyErr_NoMemory();
      goto out;
    }
  }
  rq.headers = (const char *const *)lines;
  rq.n_headers = (size_t)n_lines;
  uint64_t id = 0;
  if (tag != Py_None) { /* record the tag before the request can complete */
    id = dltc_engine_reserve_id(c->eng);
    if (!(key = PyLong_FromUnsignedLongLong(id)) || PyDict_SetItem(c->tags, key, tag) < 0)
      goto out;
  }
  struct dltc_error err;
  dltc_error_reset(&err);
  int rc = dltc_engine_submit_request(c->eng, &rq, &id, &err);
  if (rc) {
    if (key && PyDict_DelItem(c->tags, key) < 0)
      PyErr_Clear();
    engine_raise(rc, &err);
    goto out;
  }
  result = PyLong_FromUnsignedLongLong(id);
out:
  Py_XDECREF(key);
  Py_XDECREF(body_obj);
  free(full_url);
  for (Py_ssize_t i = 0; i < DLTC_MAX_REQ_HEADERS + 1; i++)
    free(lines[i]);
  return result;
}

static PyObject *client_add_auth(PyObject *self, PyObject *spec) {
  struct client_object *c = (struct client_object *)self;
  int h = 0;
  if (!client_ok(c))
    return NULL;
  if (!PyDict_Check(spec)) {
    PyErr_SetString(PyExc_TypeError, "add_auth(spec): spec must be a dict");
    return NULL;
  }
  if (auth_handle(c, spec, &h) < 0)
    return NULL;
  return PyLong_FromLong(h);
}

static PyObject *client_set_limits(PyObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"max_concurrency", "rps", NULL};
  struct client_object *c = (struct client_object *)self;
  PyObject *mc = Py_None, *rps = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$OO:set_limits", kwlist, &mc, &rps))
    return NULL;
  if (!client_ok(c))
    return NULL;
  long conc = 0;
  double r = 0;
  if (mc != Py_None) {
    conc = PyLong_AsLong(mc);
    if (conc == -1 && PyErr_Occurred())
      return NULL;
    if (conc < 1 || conc > 1000000) {
      PyErr_SetString(PyExc_ValueError, "max_concurrency must be >= 1");
      return NULL;
    }
  }
  if (rps != Py_None && (r = PyFloat_AsDouble(rps)) == -1.0 && PyErr_Occurred())
    return NULL;
  struct dltc_error err;
  dltc_error_reset(&err);
  struct dltc_engine *eng = c->eng;
  PyThreadState *ts = PyEval_SaveThread();
  int rc = dltc_engine_set_limits(eng, (int)conc, rps != Py_None, r, &err);
  PyEval_RestoreThread(ts);
  if (rc)
    return engine_raise(rc, &err);
  Py_RETURN_NONE;
}

/* Wait for the next response. timeout < 0: forever. Returns a new reference
 * (Response or None) or NULL with an exception (e.g. KeyboardInterrupt). */
static PyObject *client_wait(struct client_object *c, double timeout) {
  double deadline = 0;
  if (timeout >= 0) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    deadline = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 + timeout;
  }
  for (;;) {
    if (c->closed || !c->eng)
      Py_RETURN_NONE;
    struct dltc_response *ready = NULL;
    struct dltc_error err0;
    /* fast path: a response is already waiting; take it without releasing the GIL */
    if (dltc_engine_next(c->eng, 0, &ready, &err0) == 0)
      return response_from(c, ready);
    if (dltc_engine_pending(c->eng) == 0)
      Py_RETURN_NONE;
    int slice = ENGINE_SLICE_MS;
    if (timeout >= 0) {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      double left = deadline - ((double)ts.tv_sec + (double)ts.tv_nsec * 1e-9);
      if (left < 0)
        left = 0;
      if (left * 1000 < slice)
        slice = (int)(left * 1000);
    }
    struct dltc_response *r = NULL;
    struct dltc_error err;
    int rc;
    struct dltc_engine *eng = c->eng;
    PyThreadState *ts = PyEval_SaveThread();
    rc = dltc_engine_next(eng, slice, &r, &err);
    PyEval_RestoreThread(ts);
    if (rc == 0)
      return response_from(c, r);
    if (rc != DLTC_EAGAIN)
      Py_RETURN_NONE; /* closed meanwhile */
    if (PyErr_CheckSignals() < 0)
      return NULL;
    if (timeout >= 0 && slice < ENGINE_SLICE_MS)
      Py_RETURN_NONE;
  }
}

static PyObject *client_next_method(PyObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"timeout", NULL};
  PyObject *t = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:next", kwlist, &t))
    return NULL;
  double timeout = -1;
  if (t != Py_None) {
    timeout = PyFloat_AsDouble(t);
    if (timeout == -1.0 && PyErr_Occurred())
      return NULL;
    if (timeout < 0)
      timeout = 0;
  }
  return client_wait((struct client_object *)self, timeout);
}

static PyObject *client_iternext(PyObject *self) {
  PyObject *r = client_wait((struct client_object *)self, -1);
  if (r == Py_None) { /* nothing pending: end of iteration */
    Py_DECREF(r);
    return NULL;
  }
  return r;
}

static PyObject *client_close(PyObject *self, PyObject *noargs) {
  (void)noargs;
  struct client_object *c = (struct client_object *)self;
  if (c->eng && !c->closed) {
    c->closed = 1;
    struct dltc_engine *eng = c->eng;
    PyThreadState *ts = PyEval_SaveThread();
    dltc_engine_stop(eng);
    PyEval_RestoreThread(ts);
    PyDict_Clear(c->tags);
  }
  Py_RETURN_NONE;
}

static PyObject *client_enter(PyObject *self, PyObject *noargs) {
  (void)noargs;
  if (!client_ok((struct client_object *)self))
    return NULL;
  return Py_NewRef(self);
}

static PyObject *client_exit(PyObject *self, PyObject *args) {
  (void)args;
  PyObject *r = client_close(self, NULL);
  if (!r)
    return NULL;
  Py_DECREF(r);
  Py_RETURN_FALSE;
}

/* Sets d[key] = v (stealing v). Returns 0 or -1. */
static int dict_steal(PyObject *d, const char *key, PyObject *v) {
  if (!v)
    return -1;
  int rc = PyDict_SetItemString(d, key, v);
  Py_DECREF(v);
  return rc;
}

static PyObject *client_stats(PyObject *self, PyObject *noargs) {
  (void)noargs;
  struct client_object *c = (struct client_object *)self;
  if (!c->eng)
    return PyDict_New();
  struct dltc_engine_stats *st = PyMem_Malloc(sizeof *st);
  if (!st)
    return PyErr_NoMemory();
  struct dltc_engine *eng = c->eng;
  PyThreadState *ts = PyEval_SaveThread();
  dltc_engine_stats(eng, st);
  PyEval_RestoreThread(ts);
  PyObject *d = PyDict_New(), *rb = PyDict_New(), *hist = PyList_New((Py_ssize_t)st->n_history);
  if (!d || !rb || !hist)
    goto fail;
  for (int i = 0; i < DLTC_RC_COUNT; i++)
    if (dict_steal(rb, dltc_retry_cause_name(i), PyLong_FromUnsignedLongLong(st->retries[i])) < 0)
      goto fail;
  for (size_t i = 0; i < st->n_history; i++) {
    PyObject *t = Py_BuildValue("(di)", st->history_t[i], st->history_w[i]);
    if (!t)
      goto fail;
    PyList_SET_ITEM(hist, (Py_ssize_t)i, t);
  }
  uint64_t total_retries = 0;
  for (int i = 0; i < DLTC_RC_COUNT; i++)
    total_retries += st->retries[i];
  if (dict_steal(d, "requests", PyLong_FromUnsignedLongLong(st->requests)) < 0 ||
      dict_steal(d, "responses", PyLong_FromUnsignedLongLong(st->responses)) < 0 ||
      dict_steal(d, "errors", PyLong_FromUnsignedLongLong(st->errors)) < 0 ||
      dict_steal(d, "wire_bytes", PyLong_FromUnsignedLongLong(st->wire_bytes)) < 0 ||
      dict_steal(d, "decoded_bytes", PyLong_FromUnsignedLongLong(st->decoded_bytes)) < 0 ||
      dict_steal(d, "not_modified", PyLong_FromUnsignedLongLong(st->not_modified)) < 0 ||
      dict_steal(d, "status_429", PyLong_FromUnsignedLongLong(st->status_429)) < 0 ||
      dict_steal(d, "status_503", PyLong_FromUnsignedLongLong(st->status_503)) < 0 ||
      dict_steal(d, "refused", PyLong_FromUnsignedLongLong(st->refused)) < 0 ||
      dict_steal(d, "redirects", PyLong_FromUnsignedLongLong(st->redirects)) < 0 ||
      dict_steal(d, "http2", PyLong_FromUnsignedLongLong(st->http2)) < 0 ||
      dict_steal(d, "connects", PyLong_FromUnsignedLongLong(st->connects)) < 0 ||
      dict_steal(d, "token_fetches", PyLong_FromUnsignedLongLong(st->token_fetches)) < 0 ||
      dict_steal(d, "retries", PyLong_FromUnsignedLongLong(total_retries)) < 0 ||
      dict_steal(d, "retries_by_cause", Py_NewRef(rb)) < 0 ||
      dict_steal(d, "window", PyLong_FromLong(st->window)) < 0 ||
      dict_steal(d, "window_history", Py_NewRef(hist)) < 0 ||
      dict_steal(d, "inflight", PyLong_FromLong(st->inflight)) < 0 ||
      dict_steal(d, "latency_p50", PyFloat_FromDouble(st->latency_p50)) < 0 ||
      dict_steal(d, "latency_p99", PyFloat_FromDouble(st->latency_p99)) < 0 ||
      dict_steal(d, "pending", PyLong_FromSize_t(dltc_engine_pending(eng))) < 0)
    goto fail;
  Py_DECREF(rb);
  Py_DECREF(hist);
  PyMem_Free(st);
  return d;
fail:
  Py_XDECREF(d);
  Py_XDECREF(rb);
  Py_XDECREF(hist);
  PyMem_Free(st);
  return NULL;
}

static PyObject *client_pending(PyObject *self, void *closure) {
  (void)closure;
  struct client_object *c = (struct client_object *)self;
  return PyLong_FromSize_t(c->eng && !c->closed ? dltc_engine_pending(c->eng) : 0);
}

static PyObject *client_closed(PyObject *self, void *closure) {
  (void)closure;
  return PyBool_FromLong(((struct client_object *)self)->closed);
}

static PyMethodDef client_methods[] = {
    {"submit", (PyCFunction)(void (*)(void))client_submit, METH_VARARGS | METH_KEYWORDS,
     "submit(url, *, method='GET', params=None, headers=None, body=None, json=None, data=None,\n"
     "       auth=None, tag=None, etag=None, empty_on=()) -> int\n\nQueue a request; "
     "thread-safe, never blocks on the network. Exactly one Response per call, refused URLs "
     "included. See docs/CONTRACTS.md 3.9."},
    {"add_auth", client_add_auth, METH_O,
     "add_auth(spec) -> int\n\nRegister an auth spec dict once; pass the handle as "
     "submit(auth=h)."},
    {"set_limits", (PyCFunction)(void (*)(void))client_set_limits, METH_VARARGS | METH_KEYWORDS,
     "set_limits(*, max_concurrency=None, rps=None)\n\nChange limits in flight (None: "
     "unchanged; rps <= 0: unlimited). Returns once the engine applied them."},
    {"next", (PyCFunction)(void (*)(void))client_next_method, METH_VARARGS | METH_KEYWORDS,
     "next(timeout=None) -> Response | None\n\nWait (GIL released) for a finished request. None "
     "on timeout, when nothing is pending, or once closed. Ctrl-C interrupts it."},
    {"stats", client_stats, METH_NOARGS, "Counters: requests, bytes, 304s, 429s, retries..."},
    {"close", client_close, METH_NOARGS,
     "Stop the engine: every transfer and curl handle is cleaned up, pending responses are "
     "dropped; waiting next() calls in other threads return None."},
    {"__enter__", client_enter, METH_NOARGS, NULL},
    {"__exit__", client_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef client_getset[] = {
    {"pending", client_pending, NULL, "Submitted and not yet returned.", NULL},
    {"closed", client_closed, NULL, "True after close().", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *client_iter(PyObject *self) { return Py_NewRef(self); }

static PyType_Slot client_slots[] = {
    {Py_tp_doc,
     "Client(*, max_concurrency=256, initial_concurrency=8, rps=None, ...)\n\n"
     "Concurrent HTTP GETs on a libcurl engine thread, with per-host adaptive concurrency,\n"
     "retries, conditional requests and safety caps. Iterating yields Responses until nothing\n"
     "is pending.\n\n"
     "decompress='engine' (default): the engine decodes gzip/br bodies (libdeflate/brotli).\n"
     "decompress='caller': the engine asks for gzip/br and hands bodies over as received\n"
     "(Response.content_encoding says how); decode them with dltc._native.inflate() on the\n"
     "consumer's threads (GIL released). max_body then counts wire bytes.\n\n"
     "Thread safety: one Client may be shared by several Python threads. submit(), next(),\n"
     "iteration, pending and stats() may run concurrently; each Response is delivered to\n"
     "exactly one caller. close() may be called from any thread; next() calls waiting in\n"
     "other threads then return None."},
    {Py_tp_new, client_new},
    {Py_tp_dealloc, client_dealloc},
    {Py_tp_traverse, client_traverse},
    {Py_tp_clear, client_clear},
    {Py_tp_methods, client_methods},
    {Py_tp_getset, client_getset},
    {Py_tp_iter, client_iter},
    {Py_tp_iternext, client_iternext},
    {0, NULL},
};

static PyType_Spec client_spec = {
    .name = "dltc._native.Client",
    .basicsize = sizeof(struct client_object),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = client_slots,
};

/* Stores a new type in the first free slot of the module state's types[]. */
static int engine_add_type(PyObject *module, PyType_Spec *spec, const char *name) {
  struct module_state *st = get_state(module);
  PyObject *t = PyType_FromModuleAndSpec(module, spec, NULL);
  if (!t)
    return -1;
  if (PyModule_AddObjectRef(module, name, t) < 0) {
    Py_DECREF(t);
    return -1;
  }
  for (size_t i = 0; i < sizeof st->types / sizeof st->types[0]; i++)
    if (!st->types[i]) {
      st->types[i] = t; /* steals */
      return 0;
    }
  Py_DECREF(t);
  PyErr_SetString(PyExc_SystemError, "dltc._native: module state types[] is full");
  return -1;
}

/* inflate(data, encoding, *, max_size=256 MiB, max_ratio=200.0) -> bytes: decode a
 * body that Client(decompress="caller") handed over. The GIL is released while
 * decoding; the output goes straight into the new bytes when the gzip trailer
 * announces its size. Raises ValueError (corrupt, truncated, cap hit, unknown
 * encoding) or MemoryError. Returns a new reference. */
static PyObject *py_inflate(PyObject *mod, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"data", "encoding", "max_size", "max_ratio", NULL};
  Py_buffer buf = {0};
  const char *encs = NULL;
  long long max_size = (long long)256 << 20;
  double max_ratio = 200.0;
  PyObject *res = NULL;
  uint8_t *out = NULL;
  size_t len = 0;
  (void)mod;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*z|$Ld:inflate", kwlist, &buf, &encs, &max_size,
                                   &max_ratio))
    return NULL;
  enum dltc_encoding enc;
  struct dltc_error err;
  if (max_size < 0 || !(max_ratio >= 1)) {
    PyErr_SetString(PyExc_ValueError, "max_size must be >= 0 and max_ratio >= 1");
    goto out;
  }
  if (dltc_encoding_parse(encs, &enc, &err) != 0) {
    PyErr_SetString(PyExc_ValueError, err.msg);
    goto out;
  }
  size_t n = (size_t)buf.len, hint = dltc_inflate_size_hint(buf.buf, n, enc);
  double ratio_room = max_ratio * (double)n;
  if (hint > 0 && hint <= (size_t)max_size &&
      (hint <= DLTC_INFLATE_RATIO_FLOOR || (double)hint <= ratio_room)) {
    if (!(res = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)hint)))
      goto out;
  }
  uint8_t *dst = res ? (uint8_t *)PyBytes_AS_STRING(res) : NULL;
  PyThreadState *ts = PyEval_SaveThread(); /* the input buffer and res are ours alone */
  int rc = dltc_inflate(buf.buf, n, enc, (size_t)max_size, max_ratio, dst, res ? hint : 0, &out,
                        &len, &err);
  PyEval_RestoreThread(ts);
  if (rc != 0) {
    Py_CLEAR(res);
    if (rc == DLTC_ENOMEM)
      PyErr_SetString(PyExc_MemoryError, err.msg);
    else
      PyErr_SetString(PyExc_ValueError, err.msg);
    goto out;
  }
  if (res && out == dst) {
    if (len != hint)
      _PyBytes_Resize(&res, (Py_ssize_t)len); /* on failure res is NULL, error set */
  } else {
    Py_XDECREF(res);
    res = PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)len);
    dltc__free(out);
  }
out:
  PyBuffer_Release(&buf);
  return res;
}

static int engine_add_types(PyObject *module) {
  if (engine_add_type(module, &response_spec, "Response") < 0)
    return -1;
  return engine_add_type(module, &client_spec, "Client");
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

/* Records path steps from a sequence of str ("*": the wildcard), as UTF-8 pointers
 * borrowed from the strs (kept alive by the returned new reference, a list). *steps is
 * PyMem-allocated; the caller frees it. */
static PyObject *steps_from(PyObject *seq, struct dltc_path_step **steps, size_t *n) {
  PyObject *fast = PySequence_Fast(seq, "records_path must be a list of str steps or \"auto\"");
  if (!fast)
    return NULL;
  Py_ssize_t m = PySequence_Fast_GET_SIZE(fast);
  *steps = PyMem_Calloc((size_t)m + 1, sizeof **steps);
  if (!*steps) {
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
        PyErr_Format(PyExc_TypeError, "records_path steps must be str, not %R", c);
      Py_DECREF(fast);
      return NULL;
    }
    if (l == 1 && u[0] == '*')
      continue; /* the wildcard: key NULL */
    (*steps)[i].key = u;
    (*steps)[i].len = (size_t)l;
  }
  *n = (size_t)m;
  return fast;
}

/* Returns a new reference: a list of str for n steps ("*" for the wildcard). */
static PyObject *steps_to_list(const struct dltc_path_step *st, int n) {
  PyObject *out = PyList_New(n);
  for (int i = 0; out && i < n; i++) {
    PyObject *k = st[i].key
                      ? PyUnicode_DecodeUTF8(st[i].key, (Py_ssize_t)st[i].len, "surrogatepass")
                      : PyUnicode_FromString("*");
    if (!k) {
      Py_CLEAR(out);
      break;
    }
    PyList_SET_ITEM(out, i, k);
  }
  return out;
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
      "selector",     "columns",     "infer",        "contract",         "child_tables",
      "dlt_ids",      "load_id",     "batch_rows",   "max_depth",        "max_string",
      "root_name",    "table_names", "records_path", "auto_record_keys", "skeleton",
      "row_captures", NULL};
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
  struct dltc_path_step *steps = NULL;
  struct dltc_capture_spec *caps = NULL;
  const char **akeys = NULL;
  size_t *akeys_len = NULL;
  size_t ncaps = 0;
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
  if ((x = plan_get(plan, "records_path"))) {
    if (PyUnicode_Check(x)) {
      if (PyUnicode_CompareWithASCIIString(x, "auto") != 0) {
        PyErr_Format(PyExc_ValueError,
                     "records_path must be a list of steps or \"auto\", not %R (see "
                     "dltc.json.compile_selector)",
                     x);
        goto out;
      }
      spec.records = DLTC_RECORDS_AUTO;
    } else {
      PyObject *held = steps_from(x, &steps, &spec.nrecords_path);
      if (!held)
        goto out;
      int app = PyList_Append(keep, held);
      Py_DECREF(held);
      if (app)
        goto out;
      spec.records = DLTC_RECORDS_PATH;
      spec.records_path = steps;
    }
    if (spec.selector) {
      PyErr_SetString(PyExc_ValueError, "plan has both 'selector' and 'records_path'");
      goto out;
    }
  }
  if ((x = plan_get(plan, "auto_record_keys"))) {
    PyObject *held = path_utf8(x, &akeys, &akeys_len, &spec.nauto_keys);
    if (!held)
      goto out;
    int app = PyList_Append(keep, held);
    Py_DECREF(held);
    if (app)
      goto out;
    spec.auto_keys = akeys;
    spec.auto_keys_len = akeys_len;
  }
  if ((x = plan_get(plan, "skeleton"))) {
    if (PyBool_Check(x))
      spec.skeleton_cap = x == Py_True ? 65536 : 0;
    else {
      long long cap = PyLong_AsLongLong(x);
      if (cap == -1 && PyErr_Occurred())
        goto out;
      if (cap < 1) {
        PyErr_SetString(PyExc_ValueError, "skeleton must be a bool or a cap in bytes (>= 1)");
        goto out;
      }
      spec.skeleton_cap = cap;
    }
  }
  if ((x = plan_get(plan, "row_captures"))) {
    PyObject *fast = PySequence_Fast(x, "row_captures must be a list of key paths");
    if (!fast)
      goto out;
    int app = PyList_Append(keep, fast);
    Py_DECREF(fast);
    if (app)
      goto out;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(fast);
    caps = PyMem_Calloc((size_t)m + 1, sizeof *caps);
    if (!caps) {
      PyErr_NoMemory();
      goto out;
    }
    for (Py_ssize_t i = 0; i < m; i++) {
      struct dltc_capture_spec *cs = &caps[ncaps++];
      PyObject *held = path_utf8(PySequence_Fast_GET_ITEM(fast, i), (const char ***)&cs->path,
                                 (size_t **)&cs->path_len, &cs->npath);
      if (!held)
        goto out;
      app = PyList_Append(keep, held);
      Py_DECREF(held);
      if (app)
        goto out;
    }
    spec.captures = caps;
    spec.ncaptures = ncaps;
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
      if (parse_mode(x, &spec.mode_columns) || parse_mode(x, &spec.mode_data_type) ||
          parse_mode(x, &spec.mode_tables))
        goto out;
    } else if (PyDict_Check(x)) {
      PyObject *m;
      if ((m = PyDict_GetItemString(x, "columns")) && parse_mode(m, &spec.mode_columns))
        goto out;
      if ((m = PyDict_GetItemString(x, "tables")) && parse_mode(m, &spec.mode_tables))
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
  for (size_t i = 0; i < ncaps; i++) {
    PyMem_Free((void *)caps[i].path);
    PyMem_Free((void *)caps[i].path_len);
  }
  PyMem_Free(caps);
  PyMem_Free(steps);
  PyMem_Free((void *)akeys);
  PyMem_Free(akeys_len);
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

/* Returns a new reference: the last document's skeleton as str. */
static PyObject *decoder_skeleton(PyObject *self, PyObject *noargs) {
  (void)noargs;
  DecoderObject *o = (DecoderObject *)self;
  if (decoder_ready(o))
    return NULL;
  const char *text;
  size_t n;
  struct dltc_error err;
  if (dltc_decoder_skeleton(o->dec, &text, &n, &err))
    return decoder_raise(self, &err);
  return PyUnicode_DecodeUTF8(text, (Py_ssize_t)n, "surrogatepass");
}

/* Returns a new reference: one tuple of captured values per root record. */
static PyObject *decoder_row_values(PyObject *self, PyObject *noargs) {
  (void)noargs;
  DecoderObject *o = (DecoderObject *)self;
  if (decoder_ready(o))
    return NULL;
  size_t rows = dltc_decoder_capture_rows(o->dec), nc = dltc_decoder_ncaptures(o->dec);
  PyObject *out = PyList_New((Py_ssize_t)rows);
  for (size_t r = 0; out && r < rows; r++) {
    PyObject *t = PyTuple_New((Py_ssize_t)nc);
    if (!t) {
      Py_CLEAR(out);
      break;
    }
    PyList_SET_ITEM(out, (Py_ssize_t)r, t);
    for (size_t i = 0; i < nc; i++) {
      struct dltc_capture c;
      dltc_decoder_capture(o->dec, r, i, &c);
      PyObject *v;
      switch (c.kind) {
      case DLTC_CAP_FALSE: v = Py_NewRef(Py_False); break;
      case DLTC_CAP_TRUE: v = Py_NewRef(Py_True); break;
      case DLTC_CAP_INT: v = PyLong_FromLongLong(c.i); break;
      case DLTC_CAP_DOUBLE: v = PyFloat_FromDouble(c.f); break;
      case DLTC_CAP_BIGINT: {
        PyObject *digits = PyUnicode_FromStringAndSize(c.s, (Py_ssize_t)c.n);
        v = digits ? PyLong_FromUnicodeObject(digits, 10) : NULL;
        Py_XDECREF(digits);
        break;
      }
      case DLTC_CAP_STRING:
      case DLTC_CAP_JSON: v = PyUnicode_DecodeUTF8(c.s, (Py_ssize_t)c.n, "surrogatepass"); break;
      default: v = Py_NewRef(Py_None); break;
      }
      if (!v) {
        Py_CLEAR(out);
        break;
      }
      PyTuple_SET_ITEM(t, (Py_ssize_t)i, v);
    }
  }
  return out;
}

/* Returns a new reference: the last document's records path (list of str) or None. */
static PyObject *decoder_records_path(PyObject *self, PyObject *noargs) {
  (void)noargs;
  DecoderObject *o = (DecoderObject *)self;
  if (decoder_ready(o))
    return NULL;
  const struct dltc_path_step *st;
  int n = dltc_decoder_records_path(o->dec, &st);
  if (n < 0)
    Py_RETURN_NONE;
  return steps_to_list(st, n);
}

/* Returns a new reference (None). */
static PyObject *decoder_set_records_path(PyObject *self, PyObject *arg) {
  DecoderObject *o = (DecoderObject *)self;
  if (decoder_ready(o))
    return NULL;
  struct dltc_error err;
  int rc;
  if (PyUnicode_Check(arg)) {
    if (PyUnicode_CompareWithASCIIString(arg, "auto") != 0) {
      PyErr_Format(PyExc_ValueError, "records path must be a list of steps or \"auto\", not %R",
                   arg);
      return NULL;
    }
    rc = dltc_decoder_set_records_path(o->dec, DLTC_RECORDS_AUTO, NULL, 0, &err);
  } else {
    struct dltc_path_step *steps = NULL;
    size_t n = 0;
    PyObject *held = steps_from(arg, &steps, &n);
    if (!held) {
      PyMem_Free(steps);
      return NULL;
    }
    rc = dltc_decoder_set_records_path(o->dec, DLTC_RECORDS_PATH, steps, n, &err);
    PyMem_Free(steps);
    Py_DECREF(held);
  }
  if (rc)
    return decoder_raise(self, &err);
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
  return Py_BuildValue("{sLsLsLsLsLsLsLsLsLsLsLsLsL}", "documents", (long long)s.documents, "rows",
                       (long long)s.rows, "child_rows", (long long)s.child_rows, "bytes",
                       (long long)s.bytes, "failed_documents", (long long)s.failed_documents,
                       "rejects_new_column", (long long)s.rejects_new_column, "rejects_data_type",
                       (long long)s.rejects_data_type, "rejects_missing",
                       (long long)s.rejects_missing, "rows_discarded", (long long)s.rows_discarded,
                       "variants", (long long)s.variants, "batches", (long long)s.batches,
                       "rejects_unrecorded", (long long)s.rejects_unrecorded, "rejects_new_table",
                       (long long)s.rejects_new_table);
}

static PyMethodDef decoder_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))decoder_feed, METH_VARARGS | METH_KEYWORDS,
     "feed(data, source_url='') -> int: parse one JSON document (GIL released)."},
    {"flush", decoder_flush, METH_NOARGS, "flush() -> {key: ArrowStream}: tables with rows."},
    {"stats", decoder_stats, METH_NOARGS, "stats() -> dict of counters."},
    {"skeleton", decoder_skeleton, METH_NOARGS,
     "skeleton() -> str: the last document without its records (plan 'skeleton')."},
    {"row_values", decoder_row_values, METH_NOARGS,
     "row_values() -> [tuple]: the plan's row_captures, one tuple per root record."},
    {"records_path", decoder_records_path, METH_NOARGS,
     "records_path() -> list[str] | None: where the last document's records were."},
    {"set_records_path", decoder_set_records_path, METH_O,
     "set_records_path(path | 'auto'): where the next documents' records are."},
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
    {Py_tp_doc, "Decoder(plan): schema-directed JSON to Arrow (see docs/CONTRACTS.md section 4)."},
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
    {"inflate", (PyCFunction)(void (*)(void))py_inflate, METH_VARARGS | METH_KEYWORDS,
     "inflate(data, encoding, *, max_size=256 MiB, max_ratio=200.0) -> bytes"},
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
