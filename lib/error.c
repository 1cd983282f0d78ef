/* Error names and messages, generated from FE_ERRNO_MAP. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

#define FE__COUNT(name, value, msg) +1
_Static_assert(FE_ERRNO_END == -1 - (0 FE_ERRNO_MAP(FE__COUNT)),
               "FE_ERRNO_END must close the range: update it when appending a code");
#undef FE__COUNT

const char *fe_strerror(int code) {
  switch (code) {
  case FE_OK: return "success";
#define FE__ERR_MSG(name, value, msg) case FE_##name: return msg;
  FE_ERRNO_MAP(FE__ERR_MSG)
#undef FE__ERR_MSG
  default: return "unknown error";
  }
}

const char *fe_err_name(int code) {
  switch (code) {
  case FE_OK: return "OK";
#define FE__ERR_NAME(name, value, msg) case FE_##name: return #name;
  FE_ERRNO_MAP(FE__ERR_NAME)
#undef FE__ERR_NAME
  default: return "UNKNOWN";
  }
}

int fe__diag(fe_diag_t *diag, int code, const char *fmt, ...) {
  if (diag != NULL) {
    va_list ap;
    va_start(ap, fmt);
    diag->code = code;
    vsnprintf(diag->msg, sizeof diag->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}
