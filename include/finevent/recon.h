/*
 * libfinevent: reconciliation of a ledger against a custodian statement,
 * and the settlement calendar.
 *
 * At the end of a day a broker compares what its own books say it holds
 * (the ledger: per account and instrument, a quantity and an amount of
 * money) with what the custodian says (the statement file the custodian
 * sends).  Each side is a list of items keyed by (account, ref) - ref is
 * the instrument, or a trade or settlement reference: any short token.
 * fe_recon_run() matches the two lists by key and reports every break:
 *
 *   FE_RECON_MISSING   in the ledger, not on the statement
 *   FE_RECON_EXTRA     on the statement, not in the ledger
 *   FE_RECON_QUANTITY  on both, quantities differ by more than the
 *                      quantity tolerance
 *   FE_RECON_AMOUNT    on both, amounts differ by more than the amount
 *                      tolerance
 *
 * An item whose quantity and amount both differ yields two breaks (one of
 * each kind).  Tolerances are inclusive: a difference equal to the
 * tolerance matches.  The amount tolerance is the larger of an absolute
 * amount (FE_PRICE_SCALE fixed point) and a relative one in basis points
 * of the ledger amount, computed in integers (no floating point touches
 * money).  Breaks come out in key order (account, then ref bytewise), each
 * handed to the optional callback as it is found - a host wires it to its
 * audit trail - and kept in the report.
 *
 * The statement file (format version 1) is CSV, one item a line, UTF-8 or
 * ASCII, LF or CRLF line ends, lines of at most FE_RECON_LINE_MAX bytes:
 *
 *     # comment lines start with '#'; blank lines are ignored
 *     statement,v1,<custodian>,<YYYY-MM-DD>
 *     account,ref,quantity,amount
 *     1001,AAPL,100,-15025.50
 *     1002,T-000123,-20,3001.00000001
 *     end,2
 *
 * The first non-comment line is the statement line (custodian: 1..31
 * bytes of [A-Za-z0-9_.:-]; the as-of date a real calendar date); the
 * second is exactly that column header; then items; then the trailer
 * "end,<n>" with the number of items, which catches a truncated file.
 * Nothing may follow the trailer but comments and blank lines.  Fields:
 * account a decimal integer 1..2^64-1; ref 1..FE_RECON_REF_MAX-1 bytes of
 * [A-Za-z0-9_.:/-]; quantity a decimal integer (optional '-'); amount a
 * decimal number with an optional '-' and at most 8 decimals (the
 * FE_PRICE_SCALE), its fixed-point value within int64_t.  No spaces, no
 * quotes, no '+'.  A key may appear once.  A file that breaks any of
 * these rules is refused whole with FE_ECORRUPT and an fe_recon_error_t
 * naming the file, the line and the reason.
 *
 * Threads.  Every call works on the caller's objects only: thread-safe on
 * distinct objects, no shared state.  These are end-of-day calls: they
 * allocate and read files; none is for a hot path.
 */
#ifndef FINEVENT_RECON_H
#define FINEVENT_RECON_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "event.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FE_RECON_REF_MAX 32      /* ref bytes, including the NUL */
#define FE_RECON_NAME_MAX 32     /* custodian name bytes, including the NUL */
#define FE_RECON_LINE_MAX 1024   /* statement line bytes, without the end */
#define FE_RECON_MAX_ITEMS (UINT32_C(1) << 26) /* items on one side */

/* One position (or trade) on either side. */
typedef struct fe_recon_item {
  uint64_t account;
  char ref[FE_RECON_REF_MAX]; /* NUL-terminated, NUL padded */
  int64_t quantity;           /* whole units, signed */
  int64_t amount;             /* FE_PRICE_SCALE fixed point, signed */
  uint32_t line;              /* statement line it came from; 0 otherwise */
  uint32_t reserved;
} fe_recon_item_t;

typedef enum fe_recon_kind {
  FE_RECON_MISSING = 1,  /* ledger only */
  FE_RECON_EXTRA = 2,    /* statement only */
  FE_RECON_QUANTITY = 3, /* quantity differs beyond the tolerance */
  FE_RECON_AMOUNT = 4    /* amount differs beyond the tolerance */
} fe_recon_kind_t;
#define FE_RECON_KINDS 5 /* kinds are 1..FE_RECON_KINDS-1 */

/* One break.  The side an item is absent from reads 0. */
typedef struct fe_recon_break {
  uint32_t kind;              /* fe_recon_kind_t */
  uint32_t line;              /* statement line, 0 for FE_RECON_MISSING */
  uint64_t account;
  char ref[FE_RECON_REF_MAX];
  int64_t ledger_quantity, statement_quantity;
  int64_t ledger_amount, statement_amount;
} fe_recon_break_t;

/* Called once per break, in key order, on the thread calling
 * fe_recon_run(); b valid during the call only.  Return 0 to go on,
 * non-zero to stop the run (fe_recon_run returns that value). */
typedef int (*fe_recon_break_fn)(const fe_recon_break_t *b, void *user);

typedef struct fe_recon_config {
  int64_t quantity_tolerance; /* >= 0 (default 0: exact) */
  int64_t amount_tolerance;   /* >= 0, fixed point (default 0) */
  uint32_t amount_tolerance_bp; /* 0..10000 basis points of |ledger
                                   amount| (default 0) */
  uint32_t reserved;
  fe_recon_break_fn on_break; /* may be NULL */
  void *user;                 /* passed to on_break */
} fe_recon_config_t;

/* The result of one run. */
typedef struct fe_recon_report {
  uint64_t ledger_items, statement_items;
  uint64_t matched;            /* keys on both sides with no break */
  uint64_t by_kind[FE_RECON_KINDS]; /* breaks per kind (index 0 unused) */
  uint64_t n_breaks;           /* entries in breaks */
  fe_recon_break_t *breaks;    /* in key order; owned by the report */
} fe_recon_report_t;

/* A parsed statement file. */
typedef struct fe_recon_statement {
  char custodian[FE_RECON_NAME_MAX];
  uint32_t as_of;              /* YYYYMMDD */
  uint32_t reserved;
  uint64_t n_items;
  fe_recon_item_t *items;      /* in file order; owned by the statement */
} fe_recon_statement_t;

/* Where and why a statement was refused. */
typedef struct fe_recon_error {
  int code;                    /* the returned code */
  uint32_t line;               /* 1-based; 0 when not about a line */
  char msg[FE_DIAG_MAX];       /* "<file>:<line>: <reason>" */
} fe_recon_error_t;

/* Fills cfg with the defaults above (exact matching, no callback).
 * Cannot fail. */
FE_API void fe_recon_config_init(fe_recon_config_t *cfg);

/* Reconciles ledger[0..n_ledger-1] against statement[0..n_statement-1].
 *   cfg        in, read during the call.
 *   ledger     in; may be NULL when n_ledger is 0.  Order does not matter.
 *   statement  in; likewise.
 *   report     out: filled (free with fe_recon_report_free()); on failure
 *              zeroed, nothing to free.
 *   diag       out, may be NULL: the code and a message.
 * Returns 0; FE_EINVAL (cfg or report NULL, an array NULL with a count,
 * an item with an unterminated or empty ref, a key twice on one side:
 * diag names it); FE_ERANGE (a negative tolerance, basis points above
 * 10000, a side above FE_RECON_MAX_ITEMS); FE_ENOMEM; or on_break's
 * non-zero value (the report then holds the breaks up to and including
 * that one).  Thread-safe; blocking (allocates, O(n log n)). */
FE_API int fe_recon_run(const fe_recon_config_t *cfg,
                        const fe_recon_item_t *ledger, size_t n_ledger,
                        const fe_recon_item_t *statement, size_t n_statement,
                        fe_recon_report_t *report, fe_diag_t *diag);

/* Frees what a report owns and zeroes it.  Accepts NULL. */
FE_API void fe_recon_report_free(fe_recon_report_t *report);

/* Parses a statement held in memory (format above).
 *   buf   in: len bytes (need not be NUL-terminated; a NUL byte inside is
 *         an error).
 *   name  the file name used in messages; NULL: "statement".
 *   out   out: the statement (fe_recon_statement_free()); untouched on
 *         failure.
 *   err   out, may be NULL: code, line and message on failure.
 * Returns 0, FE_EINVAL (buf NULL with len > 0, out NULL), FE_ECORRUPT (the
 * file breaks the format: err says where and why), FE_ENOMEM.  Nothing
 * allocated on failure.  Thread-safe; O(len). */
FE_API int fe_recon_parse(const char *buf, size_t len, const char *name,
                          fe_recon_statement_t **out, fe_recon_error_t *err);

/* Reads the file at path and parses it as fe_recon_parse(), naming it by
 * path.  Returns the same codes and FE_EIO (cannot open or read it: err
 * has the errno text), FE_ERANGE (larger than 1 GiB).  Blocking. */
FE_API int fe_recon_load(const char *path, fe_recon_statement_t **out,
                         fe_recon_error_t *err);

/* Frees st.  Accepts NULL. */
FE_API void fe_recon_statement_free(fe_recon_statement_t *st);

/* Writes a statement file that fe_recon_load() reads back to the same
 * items: custodian and as_of as in the statement line, items in the given
 * order.  Written to "<path>.tmp" and renamed, so a reader never sees half
 * a file.
 * Returns 0, FE_EINVAL (path or custodian NULL, items NULL with n > 0, a
 * custodian name, ref or account the format refuses, as_of not a date),
 * FE_EIO (cannot write; nothing left at path).  Blocking. */
FE_API int fe_recon_write(const char *path, const char *custodian,
                          uint32_t as_of, const fe_recon_item_t *items,
                          size_t n, fe_diag_t *diag);

/* Name of a break kind: "MISSING", "EXTRA", "QUANTITY", "AMOUNT", or
 * "UNKNOWN".  Static; cannot fail. */
FE_API const char *fe_recon_kind_name(uint32_t kind);

/* ------------------------------------------------- settlement calendar */

/* Settlement date: `days` business days after trade_date (both YYYYMMDD),
 * counting Monday to Friday only (T+1 of a Friday is the Monday).  No
 * holiday calendar: a host with one moves the result itself.  A trade
 * date on a weekend counts from the next Monday (T+0 of a Saturday is the
 * Monday).
 * Returns 0, FE_EINVAL (out NULL), FE_ERANGE (trade_date not a real date
 * between 1970-01-01 and 9999-12-31, days above 3650, or a result past
 * 9999-12-31).  Thread-safe; cannot block. */
FE_API int fe_recon_settle_date(uint32_t trade_date, uint32_t days,
                                uint32_t *out);

/* 1..7 for Monday..Sunday of a YYYYMMDD date, or FE_ERANGE (not a date
 * between 1970-01-01 and 9999-12-31).  Thread-safe. */
FE_API int fe_recon_weekday(uint32_t date);

#ifdef __cplusplus
}
#endif
#endif /* FINEVENT_RECON_H */
