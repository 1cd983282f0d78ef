/*
 * libfinevent-compliance-conf: loads pre-trade compliance rules from an INI
 * file (a companion library: link -lfinevent-compliance-conf -lfinevent,
 * pkg-config libfinevent-compliance-conf; it adds libinih, which the core
 * library does not need).
 *
 * The file (examples/compliance.ini is a complete one):
 *
 *   [compliance]
 *   profile  = production        ; production | development
 *   smp      = cancel_newest     ; cancel_newest | cancel_oldest | cancel_both
 *   pin      = detective         ; off | detective | preventive   (needs cfg)
 *   approved = 32 hex digits     ; the approved fingerprint       (needs cfg)
 *
 *   [modes]                      ; per-rule overrides of the profile
 *   max_qty = corrective         ; a rule name (fe_compliance_rule_name)
 *                                ; = off | preventive | detective | corrective
 *   [defaults]
 *   max_qty = 10000              ; quantities: whole units
 *   max_notional = 1000000.00    ; money and prices: decimals, <= 8 places
 *   credit = 250000              ; per-account buying power
 *   firm_credit = 50000000
 *   max_open = 32                ; 0..32
 *   max_position = 100000
 *   dup_window = 500ms           ; ns | us | ms | s (no unit: ns)
 *   throttle_rate = 50           ; orders per second per account
 *   throttle_burst = 10
 *   collar = 0:10%, 1.00:5%, 1000.00:2.50   ; FROM:WIDTH tiers, WIDTH in %
 *                                ; (up to 2 decimals) or an absolute price
 *   [authorized]
 *   accounts = 1001 1002 1003    ; spaces or commas; may repeat
 *   [restricted]
 *   symbols = GME AMC
 *   [account 1001]               ; max_qty max_notional credit max_open
 *   credit = 1000000             ; max_position, authorized = yes
 *   [symbol AAPL]                ; max_qty max_notional max_open
 *   max_qty = 5000               ; max_position collar, restricted = yes
 *   [tables]                     ; fe_compliance_config_t sizes (needs cfg)
 *   max_orders = 262144
 *
 * Any limit may be "unlimited".  Comments start with ; or # at the start of
 * a line, or " ;" after a value.  Sections and keys are case-sensitive.
 * The outcome does not depend on the order of sections or keys (a profile
 * is applied before the [modes] overrides wherever they appear); a key set
 * twice keeps its last value.
 *
 * All or nothing: the whole file is parsed and checked before anything is
 * handed back; on any error the caller gets no rules and cfg is untouched,
 * and err names the file, the line and the reason.
 */
#ifndef FINEVENT_COMPLIANCE_CONF_H
#define FINEVENT_COMPLIANCE_CONF_H

#include <stddef.h>

#include "compliance.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest line accepted (bytes, without the newline). */
#define FE_COMPLIANCE_CONF_MAX_LINE 190
/* Largest file accepted. */
#define FE_COMPLIANCE_CONF_MAX_BYTES (16u << 20)

/* Where and why a file was refused. */
typedef struct fe_compliance_conf_error {
  int code;           /* the returned code */
  int line;           /* 1-based; 0: not about a line (cannot read it) */
  char file[128];     /* the name given (truncated) */
  char reason[FE_DIAG_MAX];
} fe_compliance_conf_error_t;

/* Parses text[0..len) (it need not be NUL-terminated) as a compliance
 * file called name (for messages; NULL: "<string>").
 *   rules  out: a new draft (fe_compliance_rules_destroy()); untouched on
 *          failure.
 *   cfg    in/out, may be NULL: the [tables] sizes and the [compliance]
 *          pin and approved keys are stored into it on success; a file
 *          that has them is refused when cfg is NULL.
 *   err    out, may be NULL: on failure, the code, file, line and reason.
 * Returns 0, FE_EINVAL (text or rules NULL, or the file is invalid: err
 * says where), FE_ERANGE (a value out of its range), FE_ENOMEM.  Nothing
 * is changed on failure.  Thread-safe (no global state). */
FE_API int fe_compliance_conf_parse(const char *text, size_t len,
                                    const char *name,
                                    fe_compliance_rules_t **rules,
                                    fe_compliance_config_t *cfg,
                                    fe_compliance_conf_error_t *err);

/* Reads the file at path and parses it as fe_compliance_conf_parse().
 * Returns its codes, and FE_EIO (cannot open or read it: line 0),
 * FE_ERANGE (above FE_COMPLIANCE_CONF_MAX_BYTES).  Blocking (file I/O). */
FE_API int fe_compliance_conf_load(const char *path,
                                   fe_compliance_rules_t **rules,
                                   fe_compliance_config_t *cfg,
                                   fe_compliance_conf_error_t *err);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_COMPLIANCE_CONF_H */
