/* Reason names and meanings, generated from FE_REASON_MAP. */
#include "internal.h"

#include "finevent/bus.h"
#include "finevent/reason.h"

#define FE__REASON_RANGE(name, value, meaning)                                 \
  _Static_assert((value) >= FE_REASON_RESERVED_MIN && (value) <= FE_REASON_MAX, \
                 "FE_REASON_" #name " must lie in the reserved range");
FE_REASON_MAP(FE__REASON_RANGE)
#undef FE__REASON_RANGE

const char *fe_reason_name(uint32_t reason) {
  switch (reason) {
#define FE__REASON_NAME(name, value, meaning) case (value): return #name;
  FE_REASON_MAP(FE__REASON_NAME)
#undef FE__REASON_NAME
  default: return NULL;
  }
}

const char *fe_reason_meaning(uint32_t reason) {
  switch (reason) {
#define FE__REASON_TEXT(name, value, meaning) case (value): return meaning;
  FE_REASON_MAP(FE__REASON_TEXT)
#undef FE__REASON_TEXT
  default: return NULL;
  }
}
