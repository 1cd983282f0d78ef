/* A strict little JSON validator for the tests that check the library's
 * JSON output (RFC 8259 syntax; numbers, strings with escapes, nesting). */
#ifndef FE_TEST_JSON_CHECK_H
#define FE_TEST_JSON_CHECK_H

#include <ctype.h>
#include <string.h>

static const char *fe_tj_value(const char *p, int depth);

static const char *fe_tj_ws(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
    p++;
  return p;
}

static const char *fe_tj_string(const char *p) {
  if (*p++ != '"')
    return NULL;
  for (;;) {
    unsigned char c = (unsigned char)*p++;
    if (c == '"')
      return p;
    if (c < 0x20)
      return NULL;
    if (c == '\\') {
      c = (unsigned char)*p++;
      if (c == 'u') {
        for (int i = 0; i < 4; i++)
          if (!isxdigit((unsigned char)*p++))
            return NULL;
      } else if (!strchr("\"\\/bfnrt", c) || c == 0) {
        return NULL;
      }
    }
  }
}

static const char *fe_tj_number(const char *p) {
  if (*p == '-')
    p++;
  if (*p == '0')
    p++;
  else if (isdigit((unsigned char)*p))
    while (isdigit((unsigned char)*p))
      p++;
  else
    return NULL;
  if (*p == '.') {
    p++;
    if (!isdigit((unsigned char)*p))
      return NULL;
    while (isdigit((unsigned char)*p))
      p++;
  }
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '+' || *p == '-')
      p++;
    if (!isdigit((unsigned char)*p))
      return NULL;
    while (isdigit((unsigned char)*p))
      p++;
  }
  return p;
}

static const char *fe_tj_value(const char *p, int depth) {
  if (depth > 32)
    return NULL;
  p = fe_tj_ws(p);
  if (*p == '{' || *p == '[') {
    char close = *p == '{' ? '}' : ']';
    int obj = *p == '{';
    p = fe_tj_ws(p + 1);
    if (*p == close)
      return p + 1;
    for (;;) {
      if (obj) {
        p = fe_tj_string(fe_tj_ws(p));
        if (p == NULL || *(p = fe_tj_ws(p)) != ':')
          return NULL;
        p++;
      }
      p = fe_tj_value(p, depth + 1);
      if (p == NULL)
        return NULL;
      p = fe_tj_ws(p);
      if (*p == close)
        return p + 1;
      if (*p++ != ',')
        return NULL;
    }
  }
  if (*p == '"')
    return fe_tj_string(p);
  if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4))
    return p + 4;
  if (!strncmp(p, "false", 5))
    return p + 5;
  return fe_tj_number(p);
}

/* 1 when s[0..len) is exactly one JSON object (optionally followed by one
 * '\n'). */
static inline int fe_t_json_object(const char *s, size_t len) {
  char *copy = malloc(len + 1);
  memcpy(copy, s, len);
  copy[len] = '\0';
  const char *p = fe_tj_ws(copy);
  int ok = *p == '{';
  const char *e = ok ? fe_tj_value(p, 0) : NULL;
  ok = e != NULL && (*e == '\0' || (e[0] == '\n' && e[1] == '\0'));
  free(copy);
  return ok;
}

#endif /* FE_TEST_JSON_CHECK_H */
