/* Adapters from other modules' callbacks to audit records. */
#define _POSIX_C_SOURCE 200809L /* strnlen */
#include <inttypes.h>
#include <stdio.h>

#include "finevent/audit.h"
#include "internal.h"

static void note(void *user, uint32_t decision, uint64_t account, uint64_t id,
                 uint32_t stage, uint32_t reason, const char *detail) {
  fe_audit_rec_t r;
  memset(&r, 0, sizeof r);
  r.decision = decision;
  r.account = account;
  r.event_id = id;
  r.stage = stage;
  r.reason = reason;
  memcpy(r.detail, detail, strnlen(detail, sizeof r.detail));
  fe_audit_append(user, &r); /* a refusal is counted by the trail */
}

void fe_audit_breaker_hook(const char *name, fe_breaker_state_t from,
                           fe_breaker_state_t to, void *user) {
  char d[FE_AUDIT_DETAIL_MAX + 1];
  snprintf(d, sizeof d, "%s: %s -> %s", name ? name : "?",
           fe_breaker_state_name((int)from), fe_breaker_state_name((int)to));
  note(user, FE_AUDIT_BREAKER, 0, 0, 0, 0, d);
}

void fe_audit_trading_hook(uint64_t account, int is_global, fe_trading_state_t from,
                           fe_trading_state_t to, const char *why, void *user) {
  char d[FE_AUDIT_DETAIL_MAX + 1];
  snprintf(d, sizeof d, "%s: %s -> %s: %s", is_global ? "global" : "account",
           fe_trading_state_name((int)from), fe_trading_state_name((int)to),
           why ? why : "");
  note(user, FE_AUDIT_TRADING_STATE, is_global ? 0 : account, 0, 0, 0, d);
}

void fe_audit_kill_hook(fe_trading_state_t from, const char *why, void *user) {
  char d[FE_AUDIT_DETAIL_MAX + 1];
  snprintf(d, sizeof d, "%s -> halted: %s", fe_trading_state_name((int)from),
           why ? why : "");
  note(user, FE_AUDIT_KILL_SWITCH, 0, 0, 0, 0, d);
}

void fe_audit_saga_log(const void *rec, uint32_t len, void *user) {
  const fe_audit_saga_tap_t *tap = user;
  fe_saga_rec_t h;
  if (tap == NULL)
    return;
  if (tap->audit != NULL && rec != NULL && len >= sizeof h) {
    memcpy(&h, rec, sizeof h);
    if (h.magic == FE_SAGA_REC_MAGIC && h.type != FE_SAGA_REC_HEARTBEAT) {
      char d[FE_AUDIT_DETAIL_MAX + 1];
      snprintf(d, sizeof d, "%s state=%s step=%u attempt=%u",
               fe_saga_rec_type_name(h.type), fe_saga_state_name(h.state), h.step,
               h.attempt);
      uint32_t decision = h.type == FE_SAGA_REC_END && h.state == FE_SAGA_COMPENSATED
                              ? FE_AUDIT_COMPENSATED
                              : FE_AUDIT_SAGA;
      note(tap->audit, decision, 0, h.saga_id, h.step, h.reason, d);
    }
  }
  if (tap->next != NULL)
    tap->next(rec, len, tap->next_user);
}
