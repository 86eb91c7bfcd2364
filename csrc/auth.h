/* Authentication for the fetch engine: the specs a caller registers (bearer,
 * API key in a header or the query, HTTP basic, OAuth2 client credentials) and
 * the pure helpers behind them (base64, the token request's form body, the
 * token response's parser). The OAuth2 state machine (one fetch at a time,
 * waiting requests, refresh) lives in engine.c, which owns the requests. What
 * goes on the wire matches dlt's rest_client auth classes (auth.py). */
#ifndef DLTC_AUTH_H
#define DLTC_AUTH_H

#include <stddef.h>

#include "error.h"

enum dltc_auth_type {
  DLTC_AUTH_BEARER = 1,    /* Authorization: Bearer <token> */
  DLTC_AUTH_API_KEY = 2,   /* <name>: <api_key>, or name=api_key in the query */
  DLTC_AUTH_BASIC = 3,     /* Authorization: Basic base64(username:password) */
  DLTC_AUTH_OAUTH2_CC = 4, /* client credentials: token POSTed for, then Bearer */
};

#define DLTC_AUTH_MAX_FORM 32 /* extra fields of the token request */

/* Strings are copied by dltc_engine_add_auth. */
struct dltc_auth_spec {
  int type;             /* enum dltc_auth_type */
  const char *token;    /* bearer */
  const char *name;     /* api_key: header or query parameter name */
  const char *api_key;  /* api_key */
  int in_query;         /* api_key: 1 = query parameter, 0 = header */
  const char *username; /* basic */
  const char *password; /* basic */
  /* oauth2 client credentials */
  const char *token_url;
  const char *client_id, *client_secret;
  const char *const *form;   /* access_token_request_data: key, value, key, value... */
  size_t n_form;             /* pairs */
  double default_expiration; /* seconds when the response has no expires_in */
  int client_auth_basic;     /* 1: client id/secret as Basic auth, not form fields */
};

/* Base64 (standard alphabet, padded) of in[0..n). Returns a malloc'd string or NULL. */
char *dltc_base64(const char *in, size_t n);

/* The token request's form body as dlt builds it: client_id, client_secret
 * (both left out when basic), grant_type=client_credentials, then the spec's
 * form pairs (a key given again replaces the earlier field, in its place).
 * Returns 0 with *out malloc'd, or DLTC_ENOMEM. */
int dltc_auth_token_form(const struct dltc_auth_spec *s, char **out, size_t *out_len,
                         struct dltc_error *err);

/* Parse a token endpoint's JSON response: "access_token" (a string) and
 * "expires_in" (a number or a numeric string, truncated to whole seconds like
 * dlt's int()). *token is malloc'd; *expires_in is -1 when absent. Returns 0,
 * or DLTC_EPARSE (not a JSON object, no access_token, a token with control
 * characters) with a message that never quotes the token. */
int dltc_auth_token_parse(const char *body, size_t n, char **token, double *expires_in,
                          struct dltc_error *err);

#endif
